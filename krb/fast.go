package krb

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// FAST (RFC 6113), the armored AS exchange of MIT kinit -T. gokrb5 has
// no FAST support (it only notices that a KDC offers it), so the armor,
// the KDC-REQ wrapping, the reply unwrapping and the key combination
// KRB-FX-CF2 with the enctypes' PRF are written here on top of gokrb5's
// ASN.1 types and enctype primitives.

// Key usages of RFC 6113 section 5.4.
const (
	keyUsageFastReqChksum      = 50
	keyUsageFastEnc            = 51
	keyUsageFastRep            = 52
	keyUsageFastFinished       = 53
	keyUsageEncChallengeClient = 54
	keyUsageEncChallengeKDC    = 55
	fxFastArmorAPRequest       = 1
)

// ErrArmor is the kind of a failure to use the FAST armor (kinit -T).
var ErrArmor = errors.New("fast armor unusable")

// prf is the pseudo-random function of an enctype: RFC 3962 section 3 for
// aes-cts-hmac-sha1-96, RFC 8009 section 5 for aes-cts-hmac-sha2.
func prf(key types.EncryptionKey, in []byte) ([]byte, error) {
	switch key.KeyType {
	case etypeID.AES128_CTS_HMAC_SHA1_96, etypeID.AES256_CTS_HMAC_SHA1_96:
		et, err := crypto.GetEtype(key.KeyType)
		if err != nil {
			return nil, err
		}
		// tmp = SHA-1(in) truncated to one AES block, encrypted in CBC
		// with a zero IV under DK(key, "prf"): one block, so plain AES.
		dk, err := et.DeriveKey(key.KeyValue, []byte("prf"))
		if err != nil {
			return nil, err
		}
		sum := sha1.Sum(in)
		blk, err := aes.NewCipher(dk)
		if err != nil {
			return nil, err
		}
		out := make([]byte, aes.BlockSize)
		blk.Encrypt(out, sum[:aes.BlockSize])
		return out, nil
	case etypeID.AES128_CTS_HMAC_SHA256_128:
		return kdfHMACSHA2(sha256.New, key.KeyValue, "prf", in, 256), nil
	case etypeID.AES256_CTS_HMAC_SHA384_192:
		return kdfHMACSHA2(sha512.New384, key.KeyValue, "prf", in, 384), nil
	}
	return nil, fmt.Errorf("no FAST support for encryption type %d", key.KeyType)
}

// kdfHMACSHA2 is KDF-HMAC-SHA2 of RFC 8009 section 3 for outputs of at
// most one hash length (all that the PRF needs).
func kdfHMACSHA2(h func() hash.Hash, key []byte, label string, context []byte, bits int) []byte {
	m := hmac.New(h, key)
	m.Write([]byte{0, 0, 0, 1})
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(context)
	binary.Write(m, binary.BigEndian, uint32(bits))
	return m.Sum(nil)[:bits/8]
}

// prfPlus is PRF+ of RFC 6113 section 5.1: PRF(key, 1|in) | PRF(key,
// 2|in) | ... truncated to n bytes.
func prfPlus(key types.EncryptionKey, in []byte, n int) ([]byte, error) {
	var out []byte
	for i := 1; len(out) < n; i++ {
		if i > 255 {
			return nil, errors.New("prf+ output too long")
		}
		b, err := prf(key, append([]byte{byte(i)}, in...))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out[:n], nil
}

// cf2 is KRB-FX-CF2 of RFC 6113 section 5.1: a key of k1's enctype made
// from PRF+(k1, pepper1) XOR PRF+(k2, pepper2).
func cf2(k1, k2 types.EncryptionKey, pepper1, pepper2 string) (types.EncryptionKey, error) {
	et, err := crypto.GetEtype(k1.KeyType)
	if err != nil {
		return types.EncryptionKey{}, err
	}
	n := et.GetKeySeedBitLength() / 8
	a, err := prfPlus(k1, []byte(pepper1), n)
	if err != nil {
		return types.EncryptionKey{}, err
	}
	b, err := prfPlus(k2, []byte(pepper2), n)
	if err != nil {
		return types.EncryptionKey{}, err
	}
	subtle.XORBytes(a, a, b)
	return types.EncryptionKey{KeyType: k1.KeyType, KeyValue: et.RandomToKey(a)}, nil
}

// The ASN.1 of RFC 6113 section 5.4.
type krbFastArmor struct {
	ArmorType  int32  `asn1:"explicit,tag:0"`
	ArmorValue []byte `asn1:"explicit,tag:1"`
}

type krbFastArmoredReq struct {
	Armor       krbFastArmor        `asn1:"explicit,optional,tag:0"`
	ReqChecksum types.Checksum      `asn1:"explicit,tag:1"`
	EncFastReq  types.EncryptedData `asn1:"explicit,tag:2"`
}

type krbFastReq struct {
	FastOptions asn1.BitString       `asn1:"explicit,tag:0"`
	PAData      types.PADataSequence `asn1:"explicit,tag:1"`
	// ReqBody is the [2]-tagged KDC-REQ-BODY, wrapped by hand: the
	// encoder writes a RawValue's FullBytes as they are, ignoring tags.
	ReqBody asn1.RawValue
}

type krbFastArmoredRep struct {
	EncFastRep types.EncryptedData `asn1:"explicit,tag:0"`
}

type krbFastResponse struct {
	PAData        types.PADataSequence `asn1:"explicit,tag:0"`
	StrengthenKey types.EncryptionKey  `asn1:"explicit,optional,tag:1"`
	Finished      krbFastFinished      `asn1:"explicit,optional,tag:2"`
	Nonce         int64                `asn1:"explicit,tag:3"`
}

type krbFastFinished struct {
	Timestamp      time.Time           `asn1:"generalized,explicit,tag:0"`
	Usec           int                 `asn1:"explicit,tag:1"`
	CRealm         string              `asn1:"generalstring,explicit,tag:2"`
	CName          types.PrincipalName `asn1:"explicit,tag:3"`
	TicketChecksum types.Checksum      `asn1:"explicit,tag:4"`
}

// fastArmor is one armored request's state: the armor key and the
// KrbFastArmor carrying the AP-REQ it came from.
type fastArmor struct {
	key   types.EncryptionKey
	armor krbFastArmor
}

// newFastArmor builds the FX_FAST_ARMOR_AP_REQUEST armor from a TGT (RFC
// 6113 section 5.4.1.1): an AP-REQ for the ticket with a fresh subkey,
// and the armor key KRB-FX-CF2(subkey, session key, "subkeyarmor",
// "ticketarmor"). A new one is made for every request, so that no KDC
// replay cache ever sees the same authenticator twice.
func newFastArmor(tgt Credential, now time.Time) (*fastArmor, error) {
	tkt, err := tgt.Gokrb5Ticket()
	if err != nil {
		return nil, err
	}
	session := tgt.Key.Gokrb5()
	et, err := crypto.GetEtype(session.KeyType)
	if err != nil {
		return nil, fmt.Errorf("armor ticket session key has unsupported encryption type %d", session.KeyType)
	}
	auth, err := types.NewAuthenticator(tgt.Client.Realm, tgt.Client.Gokrb5())
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	auth.CTime, auth.Cusec = now.Truncate(time.Second), now.Nanosecond()/1000
	if err := auth.GenerateSeqNumberAndSubKey(session.KeyType, et.GetKeyByteSize()); err != nil {
		return nil, err
	}
	key, err := cf2(auth.SubKey, session, "subkeyarmor", "ticketarmor")
	if err != nil {
		return nil, err
	}
	// Not messages.NewAPReq: for a krbtgt ticket it encrypts the
	// authenticator with the TGS-REQ usage (7), and the armor's AP-REQ is
	// an ordinary one (usage 11) — MIT's KDC rejects the other.
	ab, err := auth.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode armor authenticator: %w", err)
	}
	ed, err := crypto.GetEncryptedData(ab, session, keyusage.AP_REQ_AUTHENTICATOR, tkt.EncPart.KVNO)
	if err != nil {
		return nil, fmt.Errorf("encrypt armor authenticator: %w", err)
	}
	ap := messages.APReq{PVNO: iana.PVNO, MsgType: msgtype.KRB_AP_REQ, APOptions: types.NewKrbFlags(), Ticket: tkt, EncryptedAuthenticator: ed}
	apb, err := ap.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode armor ap-req: %w", err)
	}
	return &fastArmor{key: key, armor: krbFastArmor{ArmorType: fxFastArmorAPRequest, ArmorValue: apb}}, nil
}

// wrap replaces the padata of req by PA-FX-FAST holding inner (the
// padata meant for the KDC) and the request body, encrypted under the
// armor key (RFC 6113 section 5.4.2). The outer body stays as it is;
// the KDC uses the inner one and checks the outer by req-checksum.
func (fa *fastArmor) wrap(req *messages.ASReq, inner types.PADataSequence) error {
	body, err := req.ReqBody.Marshal()
	if err != nil {
		return fmt.Errorf("encode as-req body: %w", err)
	}
	et, err := crypto.GetEtype(fa.key.KeyType)
	if err != nil {
		return err
	}
	sum, err := et.GetChecksumHash(fa.key.KeyValue, body, keyUsageFastReqChksum)
	if err != nil {
		return fmt.Errorf("checksum as-req body: %w", err)
	}
	if inner == nil {
		inner = types.PADataSequence{}
	}
	fr, err := asn1.Marshal(krbFastReq{
		FastOptions: asn1.BitString{Bytes: make([]byte, 4), BitLength: 32},
		PAData:      inner,
		ReqBody:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: body},
	})
	if err != nil {
		return fmt.Errorf("encode krb-fast-req: %w", err)
	}
	enc, err := crypto.GetEncryptedData(fr, fa.key, keyUsageFastEnc, 0)
	if err != nil {
		return fmt.Errorf("encrypt krb-fast-req: %w", err)
	}
	ar, err := asn1.Marshal(krbFastArmoredReq{
		Armor:       fa.armor,
		ReqChecksum: types.Checksum{CksumType: et.GetHashID(), Checksum: sum},
		EncFastReq:  enc,
	})
	if err != nil {
		return fmt.Errorf("encode krb-fast-armored-req: %w", err)
	}
	// PA-FX-FAST-REQUEST ::= CHOICE { armored-data [0] KrbFastArmoredReq }
	v, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: ar})
	if err != nil {
		return err
	}
	req.PAData = types.PADataSequence{{PADataType: patype.PA_FX_FAST, PADataValue: v}}
	return nil
}

// parseFastReply decodes a PA-FX-FAST-REPLY value: the armored reply
// (CHOICE [0] KrbFastArmoredRep).
func parseFastReply(b []byte) (krbFastArmoredRep, error) {
	var rv asn1.RawValue
	var rep krbFastArmoredRep
	rest, err := asn1.Unmarshal(b, &rv)
	if err != nil || len(rest) != 0 || rv.Class != asn1.ClassContextSpecific || rv.Tag != 0 || !rv.IsCompound {
		return rep, errors.New("malformed pa-fx-fast reply")
	}
	if rest, err := asn1.Unmarshal(rv.Bytes, &rep); err != nil || len(rest) != 0 {
		return rep, errors.New("malformed krb-fast-armored-rep")
	}
	return rep, nil
}

// unwrap finds PA-FX-FAST in pas and returns the KrbFastResponse it
// carries, decrypted with the armor key and checked against nonce. ok is
// false when pas holds no PA-FX-FAST at all.
func (fa *fastArmor) unwrap(pas types.PADataSequence, nonce int) (resp krbFastResponse, ok bool, err error) {
	for _, pa := range pas {
		if pa.PADataType != patype.PA_FX_FAST {
			continue
		}
		rep, err := parseFastReply(pa.PADataValue)
		if err != nil {
			return resp, true, err
		}
		plain, err := decryptEncPart(rep.EncFastRep, fa.key, keyUsageFastRep)
		if err != nil {
			return resp, true, fmt.Errorf("decrypt krb-fast-response: %w", err)
		}
		if rest, err := asn1.Unmarshal(plain, &resp); err != nil || len(rest) != 0 {
			return resp, true, errors.New("malformed krb-fast-response")
		}
		if resp.Nonce != int64(nonce) {
			return resp, true, errors.New("krb-fast-response nonce differs from the request's (possible replay)")
		}
		return resp, true, nil
	}
	return resp, false, nil
}

// checkFinished verifies the KrbFastFinished of an AS reply: the
// checksum over the ticket under the armor key (RFC 6113 5.4.3). The
// finished's client name is the authenticated one.
func (fa *fastArmor) checkFinished(f krbFastFinished, ticketDER []byte) error {
	if len(f.TicketChecksum.Checksum) == 0 {
		return errors.New("kdc reply under FAST has no finished checksum")
	}
	et, err := crypto.GetEtype(fa.key.KeyType)
	if err != nil {
		return err
	}
	if f.TicketChecksum.CksumType != et.GetHashID() || !et.VerifyChecksum(fa.key.KeyValue, ticketDER, f.TicketChecksum.Checksum, keyUsageFastFinished) {
		return errors.New("kdc reply under FAST: ticket checksum does not verify (ticket altered in transit)")
	}
	return nil
}

// encChallenge is PA-ENCRYPTED-CHALLENGE (RFC 6113 section 5.4.6): the
// timestamp encrypted under KRB-FX-CF2(armor key, client key,
// "clientchallengearmor", "challengelongterm"). Under FAST it replaces
// the encrypted timestamp, which MIT's KDC neither offers nor accepts
// with armor.
func (fa *fastArmor) encChallenge(client types.EncryptionKey, now time.Time) (types.PAData, error) {
	ck, err := cf2(fa.key, client, "clientchallengearmor", "challengelongterm")
	if err != nil {
		return types.PAData{}, err
	}
	pa, err := encTimestampUsage(ck, now, keyUsageEncChallengeClient)
	pa.PADataType = patype.PA_ENCRYPTED_CHALLENGE
	return pa, err
}

// checkKDCChallenge verifies the KDC's PA-ENCRYPTED-CHALLENGE in a FAST
// reply, which proves that the KDC knows the client's key. RFC 6113
// derives its key with the pepper "kdcchallengearmor"; Heimdal's KDC (7.x,
// as Debian ships it) uses "clientchallengearmor" with the KDC's key usage,
// which still takes the client's key to make, so both are accepted.
func (fa *fastArmor) checkKDCChallenge(pas types.PADataSequence, client types.EncryptionKey) error {
	for _, pa := range pas {
		if pa.PADataType != patype.PA_ENCRYPTED_CHALLENGE {
			continue
		}
		var ed types.EncryptedData
		if err := ed.Unmarshal(pa.PADataValue); err != nil {
			return errors.New("malformed kdc encrypted challenge")
		}
		for _, pepper := range []string{"kdcchallengearmor", "clientchallengearmor"} {
			kk, err := cf2(fa.key, client, pepper, "challengelongterm")
			if err != nil {
				return err
			}
			if _, err := decryptEncPart(ed, kk, keyUsageEncChallengeKDC); err == nil {
				return nil
			}
		}
		return errors.New("kdc encrypted challenge does not decrypt: the kdc does not know the client's key")
	}
	return errors.New("kdc reply under FAST lacks the kdc's encrypted challenge")
}

// armorTGT picks the armor ticket from a cache: the TGT of realm, as MIT
// kinit -T uses the cache's krbtgt ticket.
func armorTGT(cc *CCache, realm string, now time.Time) (Credential, error) {
	for _, cr := range cc.Credentials {
		if cr.Server.IsTGT(realm) && cr.Server.Realm == realm {
			if !cr.EndTime.IsZero() && !now.Before(cr.EndTime) {
				return cr, &Error{Kind: ErrArmor, Msg: fmt.Sprintf("the armor cache's ticket for %s has expired", realm),
					hint: "renew it with a keytab login (sesame kinit -k -c ARMOR_CACHE host/...) and run kinit -T again"}
			}
			return cr, nil
		}
	}
	return Credential{}, &Error{Kind: ErrArmor, Msg: fmt.Sprintf("the armor cache holds no ticket-granting ticket for realm %s", realm),
		hint: "create it with a keytab login, e.g. sesame kinit -k -c ARMOR_CACHE host/$(hostname -f)"}
}

// unwrapError opens a KRB-ERROR answering an armored request: the real
// error is the PA-FX-ERROR inside the FAST response, and the padata the
// KDC sends with it (salt, cookie, mechanisms) are those of the response,
// never the unauthenticated outer ones. An error without FAST protection
// is a rejected armor, or a KDC that does not do FAST.
func (fa *fastArmor) unwrapError(ke *KDCError, nonce int) (*KDCError, types.PADataSequence, error) {
	resp, ok, err := fa.unwrap(methodData(ke.EData), nonce)
	if err != nil {
		return nil, nil, &Error{Kind: ErrArmor, Err: err, Msg: fmt.Sprintf("kdc %s sent a FAST error that does not verify: %v", ke.KDC, err)}
	}
	if !ok {
		switch {
		case ke.Code == errorcode.KRB_AP_ERR_SKEW:
			// The armor's authenticator was too far off the KDC's
			// clock: the login's one skew correction applies.
			return ke, nil, nil
		case ke.Code >= 31 && ke.Code <= 52: // KRB_AP_ERR_*: the armor's AP-REQ
			return nil, nil, &Error{Kind: ErrArmor, Err: ke, Msg: fmt.Sprintf("kdc %s rejected the armor ticket: %s", ke.KDC, kdcErrorText(ke.Code)),
				hint: "recreate the armor cache with a keytab login (kinit -k) against this realm's KDC"}
		case ke.Code == errorcode.KDC_ERR_ETYPE_NOSUPP || ke.Code == errorcode.KDC_ERR_PREAUTH_REQUIRED:
			return nil, nil, &Error{Kind: ErrArmor, Err: ke, Msg: fmt.Sprintf("kdc %s answered without FAST protection (%s)", ke.KDC, kdcErrorText(ke.Code)),
				hint: "the KDC may not support FAST; drop -T to log in without armor"}
		}
		return ke, nil, nil
	}
	var inner *KDCError
	for _, pa := range resp.PAData {
		if pa.PADataType == patype.PA_FX_ERROR && parseKRBError(pa.PADataValue, ke.KDC, &inner) == nil {
			return inner, resp.PAData, nil
		}
	}
	return nil, nil, &Error{Kind: ErrArmor, Msg: fmt.Sprintf("kdc %s sent a FAST error without the error inside", ke.KDC)}
}

// reply opens the FAST response of an AS-REP and checks its finished
// checksum over the ticket.
func (fa *fastArmor) reply(rep rawKDCRep, ticketDER []byte, nonce int) (krbFastResponse, error) {
	resp, ok, err := fa.unwrap(rep.PAData, nonce)
	if err == nil && !ok {
		err = errors.New("it has no FAST response")
	}
	if err == nil {
		err = fa.checkFinished(resp.Finished, ticketDER)
	}
	if err != nil {
		return resp, &Error{Kind: ErrArmor, Err: err, Msg: "kdc reply under FAST refused: " + err.Error()}
	}
	return resp, nil
}

// decryptReply decrypts the enc-part of an armored AS-REP. The reply key
// is the client key, combined with the strengthen key by KRB-FX-CF2 when
// the KDC sent one (RFC 6113 5.4.3; MIT's KDC always does, after an
// encrypted challenge too; Heimdal's sends none). The KDC's own encrypted
// challenge, when present, must decrypt under the client key.
func (fa *fastArmor) decryptReply(rep rawKDCRep, key types.EncryptionKey, strengthen *types.EncryptionKey, preauthed bool) (messages.EncKDCRepPart, error) {
	if preauthed && hasPAType(rep.PAData, patype.PA_ENCRYPTED_CHALLENGE) {
		if err := fa.checkKDCChallenge(rep.PAData, key); err != nil {
			return messages.EncKDCRepPart{}, err
		}
	}
	if strengthen != nil {
		var err error
		if key, err = cf2(*strengthen, key, "strengthenkey", "replykey"); err != nil {
			return messages.EncKDCRepPart{}, err
		}
	}
	return decryptRepPart(rep.EncPart, key, keyusage.AS_REP_ENCPART)
}
