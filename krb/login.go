package krb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// LoginOptions describe one AS exchange for a ticket-granting ticket.
// Exactly one of Password and Keytab is set.
type LoginOptions struct {
	// Principal is "name[/instance...][@REALM]"; without a realm the
	// default_realm of krb5.conf applies.
	Principal string
	Password  []byte
	Keytab    *keytab.Keytab
	// Lifetime is the requested ticket lifetime; zero means ticket_lifetime
	// from krb5.conf (24h if unset).
	Lifetime time.Duration
	// RenewLife is the requested renewable life; zero means no renewable
	// ticket is asked for (the KDC may still grant one for RENEWABLE-OK).
	RenewLife   time.Duration
	Forwardable bool
	Proxiable   bool
	// Canonicalize asks the KDC for the client's canonical name (RFC 6806;
	// MIT kinit -C, krb5.conf canonicalize). Only then may the reply name
	// another client than the request, and that name is stored.
	Canonicalize bool
	// Enterprise sends Principal as one NT-ENTERPRISE name (RFC 6806
	// section 5; MIT kinit -E): "user@upn.suffix" with the realm after a
	// second "@", or default_realm. Implies Canonicalize.
	Enterprise bool
	// Service, when set, is the server of the initial ticket instead of
	// krbtgt/REALM (MIT kinit -S), e.g. kadmin/changepw.
	Service string
	// Addresses puts this host's addresses into the ticket (MIT kinit -a);
	// otherwise the ticket is address-less, as MIT's noaddresses default.
	Addresses bool
	// KDCOffset (KDC clock minus local clock) to start from, when known.
	KDCOffset time.Duration
	// Armor, when set, is the cache whose TGT armors the exchange with
	// FAST (RFC 6113; MIT kinit -T ARMOR_CCACHE). Every request then goes
	// inside PA-FX-FAST, the password's proof is an encrypted challenge,
	// and a reply or error without FAST protection is refused.
	Armor *CCache
	// Prompt asks the user for a secret once the KDC has said which one
	// it needs: a password, or a one-time password (OTP, RFC 6560, under
	// FAST), as MIT kinit prompts only after the KDC's first answer. It
	// is used when neither Password nor Keytab is set; what it returns
	// belongs to the caller (to store or clear).
	Prompt func(SecretPrompt) ([]byte, error)
}

// SecretKind is what a SecretPrompt asks for.
type SecretKind int

const (
	SecretPassword SecretKind = iota // the principal's password
	SecretOTP                        // a one-time password (token value)
	SecretOTPPIN                     // the PIN of an OTP token
)

// SecretPrompt is one question to the user: Banner (may be empty) goes
// on a line of its own before Text, the prompt itself.
type SecretPrompt struct {
	Kind   SecretKind
	Banner string
	Text   string
}

// DefaultLoginOptions returns the options krb5.conf asks for: lifetime,
// renew_lifetime, forwardable and proxiable from [libdefaults].
func (c *Client) DefaultLoginOptions() LoginOptions {
	ld := c.Config.LibDefaults
	return LoginOptions{
		Lifetime:     ld.TicketLifetime,
		RenewLife:    ld.RenewLifetime,
		Forwardable:  ld.Forwardable,
		Proxiable:    ld.Proxiable,
		Canonicalize: ld.Canonicalize,
	}
}

// ParseLoginPrincipal parses the client name of a login: as
// ParsePrincipal, or with enterprise set as an NT-ENTERPRISE name, which
// is the whole string up to the last "@" when it holds two (the realm
// follows), else all of it in defaultRealm — as MIT parses kinit -E.
func ParseLoginPrincipal(s, defaultRealm string, enterprise bool) (Principal, error) {
	if !enterprise {
		return ParsePrincipal(s, defaultRealm)
	}
	name, realm := s, defaultRealm
	if strings.Count(s, "@") >= 2 {
		i := strings.LastIndexByte(s, '@')
		name, realm = s[:i], s[i+1:]
	}
	if name == "" || realm == "" {
		return Principal{}, fmt.Errorf("enterprise name %q needs a name and a realm (or default_realm)", s)
	}
	return Principal{NameType: nametype.KRB_NT_ENTERPRISE, Realm: realm, Components: []string{name}}, nil
}

// configuredRealm returns the spelling of realm that krb5.conf's [realms]
// uses when it differs only in case. Realm names are case-sensitive, and
// MIT kinit refuses alice@samba.test when only SAMBA.TEST is configured
// ("cannot find KDC"); Active Directory answers such a request for
// SAMBA.TEST, which left a cache nothing could use. Asking for the
// configured realm gives the user the ticket they meant instead.
//
// The first match wins: Config.Gokrb5 lists krb5.conf's realms first and
// then, for gokrb5's case-sensitive lookups, copies under the spellings a
// caller asked for.
func (c *Client) configuredRealm(realm string) string {
	for _, r := range c.Config.Realms {
		if strings.EqualFold(r.Realm, realm) {
			return r.Realm
		}
	}
	return realm
}

// nonce returns a random 31-bit request nonce.
func nonce() (int, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(math.MaxInt32))
	if err != nil {
		return 0, err
	}
	return int(n.Int64()), nil
}

// Login performs an AS exchange and returns a new cache holding the TGT as
// its only entry, with the client as default principal and the KDC clock
// offset in its header.
//
// A password is tried exactly once: a KDC that rejects it is never asked
// again, because lockout policies count every rejected attempt. The only
// repeated request is the one after KRB_AP_ERR_SKEW (see skew.go).
func (c *Client) Login(ctx context.Context, opt LoginOptions) (*CCache, error) {
	if (opt.Password != nil && opt.Keytab != nil) || (opt.Password == nil && opt.Keytab == nil && opt.Prompt == nil) {
		return nil, errors.New("login needs either a password or a keytab")
	}
	client, err := ParseLoginPrincipal(opt.Principal, c.Config.LibDefaults.DefaultRealm, opt.Enterprise)
	if err != nil {
		return nil, err
	}
	if opt.Enterprise {
		opt.Canonicalize = true
	}
	client.Realm = c.configuredRealm(client.Realm)
	realm := client.Realm
	cname := client.Gokrb5()
	server := TGTPrincipal(realm)
	if opt.Service != "" {
		if server, err = ParsePrincipal(opt.Service, realm); err != nil {
			return nil, err
		}
	}
	sname := server.Gokrb5()
	etypes := supportedEtypes(c.Config.LibDefaults.DefaultTktEnctypeIDs)
	if opt.Keytab != nil {
		etypes = keytabEtypes(opt.Keytab, cname, realm, etypes)
		if len(etypes) == 0 {
			return nil, &Error{Kind: ErrKeytab, Msg: fmt.Sprintf("keytab has no key for %s with a supported encryption type", client),
				hint: "list it with `klist -k -e KEYTAB`; recreate it with ktadd for this principal"}
		}
	}
	if len(etypes) == 0 {
		return nil, errors.New("krb5.conf permits no encryption type that sesame supports")
	}
	if opt.Lifetime <= 0 {
		opt.Lifetime = 24 * time.Hour
	}

	clock := skewClock{local: c.now, offset: opt.KDCOffset}
	var armorTkt Credential
	if opt.Armor != nil {
		if armorTkt, err = armorTGT(opt.Armor, realm, clock.now()); err != nil {
			return nil, err
		}
	}
	var (
		fa        *fastArmor           // this request's armor (with opt.Armor)
		cookie    types.PADataSequence // PA-FX-COOKIE to return to the KDC
		paType    int32                // the pre-authentication used
		key       types.EncryptionKey
		haveKey   bool
		preauth   bool // an encrypted timestamp goes with the next request
		preauthed bool // one has been sent: the password's single attempt
		skewed    bool // the one retry after KRB_AP_ERR_SKEW is used up
		saltInfo  types.PADataSequence
		fastAvail bool       // the KDC offered FAST (PA-FX-FAST)
		otp       *otpAnswer // an OTP to send with the next request
		otpSent   bool       // it has been sent: the token's single use
		otpKDC    string     // the KDC that sent the OTP challenge
	)
	for {
		req, err := c.asReq(realm, cname, sname, etypes, opt, clock.now())
		if err != nil {
			return nil, err
		}
		if opt.Armor != nil {
			if fa, err = newFastArmor(armorTkt, clock.now()); err != nil {
				return nil, &Error{Kind: ErrArmor, Err: err, Msg: "cannot use the armor ticket: " + err.Error(),
					hint: "recreate the armor cache with a keytab login (kinit -k)"}
			}
		}
		if preauth {
			var pa types.PAData
			if fa != nil {
				pa, err = fa.encChallenge(key, clock.now())
			} else {
				pa, err = encTimestamp(key, clock.now())
			}
			if err != nil {
				return nil, err
			}
			req.PAData = append(req.PAData, pa)
			preauthed, paType = true, pa.PADataType
		}
		once := false
		if otp != nil && fa != nil {
			pa, err := fa.otpRequest(otp.challenge, otp.value, otp.pin)
			otp.clear()
			otp = nil
			if err != nil {
				return nil, err
			}
			req.PAData = append(req.PAData, pa)
			// MIT records the challenge's type as the cache's pa_type.
			preauthed, otpSent, once, paType = true, true, true, PAOTPChallenge
		}
		// RFC 6806 FAST negotiation, as MIT asks for it (fastnego.go).
		req.PAData = append(req.PAData, encPARepRequest())
		if fa != nil {
			if err := fa.wrap(&req, append(append(types.PADataSequence{}, cookie...), req.PAData...)); err != nil {
				return nil, err
			}
		}
		b, err := req.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode as-req: %w", err)
		}
		var reply []byte
		if once {
			// The token goes out exactly once: no UDP-then-TCP, no
			// second KDC, no resend when the answer is slow.
			reply, err = c.sendOnce(ctx, realm, otpKDC, b)
		} else {
			reply, err = c.send(ctx, realm, b)
		}
		var ke *KDCError
		if errors.As(err, &ke) && fa != nil {
			var pas types.PADataSequence
			if ke, pas, err = fa.unwrapError(ke, req.ReqBody.Nonce); err != nil {
				return nil, err
			}
			err = ke // the error inside FAST is the KDC's answer
			ke.EData, cookie = nil, nil
			for _, pa := range pas {
				if pa.PADataType == patype.PA_FX_COOKIE {
					cookie = append(cookie, pa)
				}
			}
			if ke.Code == errorcode.KDC_ERR_PREAUTH_REQUIRED && !preauthed && opt.Keytab == nil {
				// OTP when the KDC offers it under armor, also to an
				// account that has a password, as MIT does.
				// Without a way to ask (a renewer with a stored
				// password) the password goes, where the KDC takes one.
				ch, ok, err := otpChallengeIn(pas)
				if ok && (opt.Prompt != nil || !hasPAType(pas, patype.PA_ENCRYPTED_CHALLENGE)) {
					if err != nil {
						return nil, &Error{Kind: ErrOTP, Err: err, Msg: fmt.Sprintf("kdc %s sent an otp challenge for %s that sesame cannot read: %v", ke.KDC, client, err)}
					}
					if otp, err = askOTP(opt, ch, client); err != nil {
						return nil, err
					}
					otpKDC, fastAvail = ke.KDC, true
					continue
				}
			}
			if ke.Code == errorcode.KDC_ERR_PREAUTH_REQUIRED && !preauthed {
				if !hasPAType(pas, patype.PA_ENCRYPTED_CHALLENGE) {
					return nil, &Error{Kind: ErrWrongPassword, Err: ke,
						Msg:  fmt.Sprintf("kdc %s offers no password pre-authentication under FAST for %s", ke.KDC, client),
						hint: "the account may need another login method (OTP, PKINIT) that sesame does not support; use MIT kinit"}
				}
				saltInfo, fastAvail = pas, true
				if err := askPassword(&opt, client); err != nil {
					return nil, err
				}
				if key, err = c.clientKey(opt, client, etypes, saltInfo, 0); err != nil {
					return nil, err
				}
				haveKey, preauth = true, true
				continue
			}
		}
		if otpSent && err != nil {
			return nil, c.otpError(err, client)
		}
		if errors.As(err, &ke) {
			switch ke.Code {
			case errorcode.KDC_ERR_PREAUTH_REQUIRED:
				if fa == nil && opt.Password == nil && opt.Keytab == nil {
					if err := needsArmor(ke, client); err != nil {
						return nil, err
					}
				}
				if preauthed {
					// The KDC wants a mechanism we do not speak (OTP,
					// PKINIT): sending the timestamp again would count as
					// a failed attempt.
					return nil, &Error{Kind: ErrWrongPassword, Err: ke,
						Msg:  fmt.Sprintf("kdc %s did not accept %s pre-authentication for %s", ke.KDC, map[bool]string{false: "encrypted-timestamp", true: "encrypted-challenge"}[fa != nil], client),
						hint: "the account may need another login method (OTP, PKINIT) that sesame does not support; use MIT kinit"}
				}
				saltInfo = methodData(ke.EData)
				if err := askPassword(&opt, client); err != nil {
					return nil, err
				}
				key, err = c.clientKey(opt, client, etypes, saltInfo, 0)
				if err != nil {
					return nil, err
				}
				haveKey, preauth = true, true
				continue
			case errorcode.KRB_AP_ERR_SKEW:
				if skewed || c.Config.LibDefaults.KDCTimeSync == 0 {
					return nil, skewError(ke, clock)
				}
				skewed = true
				clock.learn(ke.STime)
				continue
			}
			return nil, c.loginError(ke, client, opt.Keytab != nil)
		}
		if err != nil {
			return nil, err
		}
		rep, tkt, der, err := parseKDCRep(reply, asnAppTag.ASREP)
		if err != nil {
			return nil, err
		}
		var strengthen *types.EncryptionKey
		if fa != nil {
			resp, err := fa.reply(rep, der, req.ReqBody.Nonce)
			if err != nil {
				return nil, err
			}
			// The authenticated padata and client name replace the
			// outer ones (RFC 6113 5.4.3).
			rep.PAData = resp.PAData
			rep.CRealm, rep.CName = resp.Finished.CRealm, resp.Finished.CName
			if len(resp.StrengthenKey.KeyValue) > 0 {
				strengthen = &resp.StrengthenKey
			}
			fastAvail = true
		}
		if otpSent {
			// RFC 6560 4.3: the reply key of an OTP login is the armor
			// key, strengthened below as in any FAST reply.
			if fa.key.KeyType != rep.EncPart.EType {
				return nil, &Error{Kind: ErrArmor, Msg: fmt.Sprintf("kdc reply after the one-time password is encrypted with type %d, not the armor key's %d", rep.EncPart.EType, fa.key.KeyType)}
			}
			key, haveKey = fa.key, true
		}
		// The reply may be encrypted in another enctype than the one the
		// pre-authentication used, or arrive without pre-authentication.
		if !haveKey || key.KeyType != rep.EncPart.EType {
			if err := askPassword(&opt, client); err != nil {
				return nil, err
			}
			info := append(types.PADataSequence{}, rep.PAData...)
			info = append(info, saltInfo...)
			key, err = c.clientKey(opt, client, []int32{rep.EncPart.EType}, info, rep.EncPart.KVNO)
			if err != nil {
				return nil, err
			}
		}
		var part messages.EncKDCRepPart
		if fa != nil {
			part, err = fa.decryptReply(rep, key, strengthen, preauthed)
		} else {
			part, err = decryptRepPart(rep.EncPart, key, keyusage.AS_REP_ENCPART)
		}
		if err != nil {
			if opt.Keytab != nil {
				return nil, &Error{Kind: ErrKeytab, Err: err, Msg: fmt.Sprintf("the keytab key for %s does not match the kdc's", client),
					hint: "the keytab is stale (key version changed); extract a new one"}
			}
			if otpSent {
				return nil, &Error{Kind: ErrArmor, Err: err, Msg: "kdc reply after the one-time password does not decrypt with the armor key: " + err.Error()}
			}
			return nil, wrongPassword(client, err)
		}
		if err := checkASRep(rep, part, req, client, server, opt.Canonicalize); err != nil {
			return nil, err
		}
		if fa == nil {
			// Under FAST the KDC plainly supports it; without, the
			// reply says so (fastnego.go).
			if fastAvail, err = fastNegotiated(part, key, b); err != nil {
				return nil, err
			}
		}
		if c.Config.LibDefaults.KDCTimeSync != 0 {
			// Like MIT with kdc_timesync: the KDC's authtime is the
			// reference clock for this cache from now on.
			clock.learnSeconds(part.AuthTime)
		} else if d := part.AuthTime.Sub(c.now()); d > c.Config.LibDefaults.Clockskew || -d > c.Config.LibDefaults.Clockskew {
			return nil, &Error{Kind: ErrClockSkew, Msg: fmt.Sprintf("clock skew with the kdc is %v", d.Round(time.Second)),
				hint: "synchronise this machine's clock (NTP), or set kdc_timesync = 1"}
		}
		cred, err := credentialFrom(rep, tkt, part, der)
		if err != nil {
			return nil, err
		}
		cc := &CCache{
			Version: 4,
			// MIT writes the offset header only with kdc_timesync.
			KDCOffset:        clock.offset,
			HasKDCOffset:     c.Config.LibDefaults.KDCTimeSync != 0,
			DefaultPrincipal: cred.Client,
			Credentials:      []Credential{cred},
		}
		addLoginConfig(cc, cred.Server, paType, fastAvail)
		return cc, nil
	}
}

// asReq builds the request body the way MIT kinit does: the lifetime and
// renewable life are counted from the (offset-corrected) clock, and the
// options are exactly those asked for, not gokrb5's defaults (NewASReq
// forces renew-till to now+48h).
func (c *Client) asReq(realm string, cname, sname types.PrincipalName, etypes []int32, opt LoginOptions, now time.Time) (messages.ASReq, error) {
	req, err := messages.NewASReq(realm, c.Config, cname, sname)
	if err != nil {
		return req, err
	}
	req.ReqBody.Addresses = nil
	if opt.Addresses {
		if req.ReqBody.Addresses, err = types.LocalHostAddresses(); err != nil {
			return req, fmt.Errorf("list this host's addresses: %w", err)
		}
	}
	now = now.UTC()
	body := &req.ReqBody
	body.EType = etypes
	body.Till = now.Add(opt.Lifetime).Truncate(time.Second)
	body.RTime = time.Time{}
	body.From = time.Time{}
	types.UnsetFlags(&body.KDCOptions, []int{flags.Forwardable, flags.Proxiable, flags.Renewable, flags.Canonicalize})
	if opt.Canonicalize {
		types.SetFlag(&body.KDCOptions, flags.Canonicalize)
	}
	if opt.Forwardable {
		types.SetFlag(&body.KDCOptions, flags.Forwardable)
	}
	if opt.Proxiable {
		types.SetFlag(&body.KDCOptions, flags.Proxiable)
	}
	if opt.RenewLife > 0 {
		types.SetFlag(&body.KDCOptions, flags.Renewable)
		body.RTime = now.Add(opt.RenewLife).Truncate(time.Second)
	}
	req.PAData = types.PADataSequence{}
	return req, nil
}

// encTimestamp is PA-ENC-TIMESTAMP (RFC 4120 5.2.7.2) for the given time.
func encTimestamp(key types.EncryptionKey, now time.Time) (types.PAData, error) {
	return encTimestampUsage(key, now, keyusage.AS_REQ_PA_ENC_TIMESTAMP)
}

// encTimestampUsage encrypts PA-ENC-TS-ENC with key under usage.
func encTimestampUsage(key types.EncryptionKey, now time.Time, usage uint32) (types.PAData, error) {
	now = now.UTC()
	ts := types.PAEncTSEnc{PATimestamp: now.Truncate(time.Second), PAUSec: now.Nanosecond() / 1000}
	b, err := asn1.Marshal(ts)
	if err != nil {
		return types.PAData{}, fmt.Errorf("encode pa-enc-timestamp: %w", err)
	}
	ed, err := crypto.GetEncryptedData(b, key, usage, 0)
	if err != nil {
		return types.PAData{}, fmt.Errorf("encrypt pa-enc-timestamp: %w", err)
	}
	eb, err := ed.Marshal()
	if err != nil {
		return types.PAData{}, fmt.Errorf("encode pa-enc-timestamp: %w", err)
	}
	return types.PAData{PADataType: patype.PA_ENC_TIMESTAMP, PADataValue: eb}, nil
}

// methodData decodes the METHOD-DATA of a PREAUTH_REQUIRED error; garbage
// yields nothing (the default salt then applies).
func methodData(edata []byte) types.PADataSequence {
	var pas types.PADataSequence
	if len(edata) == 0 || pas.Unmarshal(edata) != nil {
		return nil
	}
	return pas
}

// saltFor finds the salt and string-to-key parameters for etype in
// ETYPE-INFO2, ETYPE-INFO or PW-SALT (RFC 4120 5.2.7.5: INFO2 wins).
func saltFor(pas types.PADataSequence, etype int32) (salt, params string, found bool) {
	var info1, pw *string
	for _, pa := range pas {
		switch pa.PADataType {
		case patype.PA_ETYPE_INFO2:
			var e2 types.ETypeInfo2
			if e2.Unmarshal(pa.PADataValue) != nil {
				continue
			}
			for _, e := range e2 {
				if e.EType == etype {
					if len(e.S2KParams) > 0 {
						params = hex.EncodeToString(e.S2KParams)
					}
					return e.Salt, params, true
				}
			}
		case patype.PA_ETYPE_INFO:
			var e1 types.ETypeInfo
			if e1.Unmarshal(pa.PADataValue) != nil {
				continue
			}
			for _, e := range e1 {
				if e.EType == etype {
					s := string(e.Salt)
					info1 = &s
				}
			}
		case patype.PA_PW_SALT:
			s := string(pa.PADataValue)
			pw = &s
		}
	}
	if info1 != nil {
		return *info1, "", true
	}
	if pw != nil {
		return *pw, "", true
	}
	return "", "", false
}

// firstInfoEtype is the enctype the KDC prefers in ETYPE-INFO2/ETYPE-INFO,
// restricted to the ones we asked for.
func firstInfoEtype(pas types.PADataSequence, allowed []int32) (int32, bool) {
	ok := func(e int32) bool {
		for _, a := range allowed {
			if a == e {
				return true
			}
		}
		return false
	}
	for _, pa := range pas {
		if pa.PADataType == patype.PA_ETYPE_INFO2 {
			var e2 types.ETypeInfo2
			if e2.Unmarshal(pa.PADataValue) == nil {
				for _, e := range e2 {
					if ok(e.EType) {
						return e.EType, true
					}
				}
			}
		}
	}
	for _, pa := range pas {
		if pa.PADataType == patype.PA_ETYPE_INFO {
			var e1 types.ETypeInfo
			if e1.Unmarshal(pa.PADataValue) == nil {
				for _, e := range e1 {
					if ok(e.EType) {
						return e.EType, true
					}
				}
			}
		}
	}
	return 0, false
}

// clientKey derives the client's long-term key for one of etypes: from
// the password with the KDC's salt, or from the keytab (key version kvno
// when the KDC named one, else the newest).
func (c *Client) clientKey(opt LoginOptions, client Principal, etypes []int32, pas types.PADataSequence, kvno int) (types.EncryptionKey, error) {
	etype, ok := firstInfoEtype(pas, etypes)
	if !ok {
		etype = etypes[0]
	}
	if opt.Keytab != nil {
		k, _, err := opt.Keytab.GetEncryptionKey(client.Gokrb5(), client.Realm, kvno, etype)
		if err != nil && kvno != 0 {
			k, _, err = opt.Keytab.GetEncryptionKey(client.Gokrb5(), client.Realm, 0, etype)
		}
		if err != nil {
			return k, &Error{Kind: ErrKeytab, Err: err, Msg: fmt.Sprintf("keytab has no key for %s with encryption type %d", client, etype),
				hint: "list it with `klist -k -e KEYTAB`; recreate it with ktadd for this principal"}
		}
		return k, nil
	}
	et, err := crypto.GetEtype(etype)
	if err != nil {
		return types.EncryptionKey{}, fmt.Errorf("kdc chose unsupported encryption type %d", etype)
	}
	salt, params, found := saltFor(pas, etype)
	if !found {
		salt = client.Gokrb5().GetSalt(client.Realm)
	}
	if params == "" {
		params = et.GetDefaultStringToKeyParams()
	}
	kb, err := et.StringToKey(string(opt.Password), salt, params)
	if err != nil {
		return types.EncryptionKey{}, fmt.Errorf("derive key from password: %w", err)
	}
	return types.EncryptionKey{KeyType: etype, KeyValue: kb}, nil
}

// keytabEtypes keeps the enctypes for which kt holds a key of the client.
func keytabEtypes(kt *keytab.Keytab, cname types.PrincipalName, realm string, want []int32) []int32 {
	var out []int32
	for _, e := range want {
		if _, _, err := kt.GetEncryptionKey(cname, realm, 0, e); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// checkASRep verifies that the reply answers our request (RFC 4120 3.1.5):
// same nonce, the TGT we asked for, our client. As in MIT, names must be
// exactly those of the request unless canonicalization was asked for; then
// RFC 6806 lets the KDC name the client's canonical principal (an alias
// resolved, an enterprise name mapped, the realm's case corrected), and
// that is what the cache stores. Even then the realm may differ only in
// case: a client referral to another realm comes as an error, not a
// ticket, and the reply must still be a TGT of the client's realm.
func checkASRep(rep rawKDCRep, part messages.EncKDCRepPart, req messages.ASReq, client, server Principal, canonicalize bool) error {
	bad := func(what string) error { return fmt.Errorf("kdc reply does not match the request: %s", what) }
	if rep.MsgType != msgtype.KRB_AS_REP || rep.PVNO != iana.PVNO {
		return bad("not an as-rep")
	}
	if part.Nonce != req.ReqBody.Nonce {
		return bad("nonce differs (possible replay)")
	}
	sameRealm := func(r string) bool {
		return r == client.Realm || (canonicalize && strings.EqualFold(r, client.Realm))
	}
	if !sameRealm(rep.CRealm) {
		return bad("client realm " + rep.CRealm)
	}
	if !canonicalize && !rep.CName.Equal(req.ReqBody.CName) {
		return bad("client name " + rep.CName.PrincipalNameString())
	}
	if len(rep.CName.NameString) == 0 {
		return bad("no client name")
	}
	okServer := sameRealm(part.SRealm) && len(part.SName.NameString) == len(server.Components)
	for i := 0; okServer && i < len(server.Components); i++ {
		okServer = part.SName.NameString[i] == server.Components[i] ||
			(server.IsTGT(client.Realm) && i == 1 && sameRealm(part.SName.NameString[i]))
	}
	if !okServer {
		return bad("service " + part.SName.PrincipalNameString() + "@" + part.SRealm)
	}
	if part.EndTime.IsZero() {
		return bad("no end time")
	}
	return nil
}

// hasPAType reports whether pas holds padata of type t.
func hasPAType(pas types.PADataSequence, t int32) bool {
	for _, pa := range pas {
		if pa.PADataType == t {
			return true
		}
	}
	return false
}

// addLoginConfig records, before the ticket, the cache config entries
// MIT's kinit writes for the server of an initial ticket: pa_type (2, the
// encrypted timestamp, or 138, the encrypted challenge under FAST, when
// one was used) and fast_avail (the KDC offered FAST). MIT's kinit reads fast_avail to decide whether to use FAST on
// the next login, so a cache written by sesame behaves like one of its own.
func addLoginConfig(cc *CCache, server Principal, paType int32, fast bool) {
	var entries []Credential
	add := func(key, value string) {
		entries = append(entries, Credential{
			Client: cc.DefaultPrincipal,
			Server: Principal{NameType: ccNameTypePrincipal, Realm: CacheConfigRealm, Components: []string{CacheConfigPrefix, key, server.String()}},
			Ticket: []byte(value),
		})
	}
	if fast {
		add("fast_avail", "yes")
	}
	if paType != 0 {
		add("pa_type", fmt.Sprint(paType))
	}
	cc.Credentials = append(entries, cc.Credentials...)
}

func wrongPassword(client Principal, cause error) error {
	return &Error{Kind: ErrWrongPassword, Err: cause,
		Msg:  fmt.Sprintf("password incorrect for %s", client),
		hint: "sesame tried it once and will not retry, so a lockout policy counts one failure; check the password and the principal name"}
}

// loginError turns a KRB-ERROR answering an AS-REQ into one clear error.
func (c *Client) loginError(ke *KDCError, client Principal, keytab bool) error {
	switch ke.Code {
	case errorcode.KDC_ERR_PREAUTH_FAILED, errorcode.KRB_AP_ERR_BAD_INTEGRITY:
		if keytab {
			return &Error{Kind: ErrKeytab, Err: ke, Msg: fmt.Sprintf("kdc rejected the keytab key for %s", client),
				hint: "the keytab is stale (key version changed); extract a new one"}
		}
		return wrongPassword(client, ke)
	case errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN:
		return &Error{Kind: ErrPrincipalUnknown, Err: ke, Msg: fmt.Sprintf("client %s not found in the kerberos database (kdc %s)", client, ke.KDC),
			hint: "check the spelling and the realm (user@REALM)"}
	case errorcode.KDC_ERR_KEY_EXPIRED:
		return &Error{Kind: ErrPasswordExpired, Err: ke, Msg: fmt.Sprintf("password for %s has expired", client),
			hint: "change it with kpasswd, then run kinit again"}
	case errorcode.KDC_ERR_POLICY:
		// Heimdal's answer for a principal that may get no tickets.
		return &Error{Kind: ErrAccountLocked, Err: ke, Msg: fmt.Sprintf("kdc %s refuses tickets for %s by policy (account disabled or restricted)", ke.KDC, client),
			hint: "ask the administrators whether the account is enabled"}
	case errorcode.KDC_ERR_CLIENT_REVOKED:
		return &Error{Kind: ErrAccountLocked, Err: ke, Msg: fmt.Sprintf("account %s is locked or disabled (kdc %s)", client, ke.KDC),
			hint: "wait for the lockout to expire or ask the administrators"}
	}
	return ke
}
