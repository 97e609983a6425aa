package krb

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// CheckRenewable says why the cache's TGT cannot be renewed at time now
// (local clock), or nil when it can.
func CheckRenewable(cc *CCache, local time.Time) error {
	tgt, ok := cc.TGT()
	if !ok {
		return &Error{Kind: ErrNoTGT, Msg: fmt.Sprintf("no ticket-granting ticket for %s in the cache", cc.DefaultPrincipal),
			hint: "get one with `sesame kinit`"}
	}
	now := kdcTime(cc, local)
	if tgt.Flags&TktFlagRenewable == 0 || tgt.RenewTill.IsZero() {
		return &Error{Kind: ErrNotRenewable, Msg: fmt.Sprintf("the ticket-granting ticket of %s is not renewable", cc.DefaultPrincipal),
			hint: "get a renewable one with `sesame kinit -r 7d` (the realm must allow renewable tickets)"}
	}
	if !tgt.EndTime.After(now) {
		return &Error{Kind: ErrTicketExpired, Msg: fmt.Sprintf("the ticket-granting ticket of %s expired at %s and can no longer be renewed", cc.DefaultPrincipal, tgt.EndTime.Local().Format(time.DateTime)),
			hint: "an expired ticket cannot be renewed; run `sesame kinit` again"}
	}
	if !tgt.RenewTill.After(now) {
		return &Error{Kind: ErrTicketExpired, Msg: fmt.Sprintf("the renewable life of %s's ticket ended at %s", cc.DefaultPrincipal, tgt.RenewTill.Local().Format(time.DateTime)),
			hint: "run `sesame kinit` again"}
	}
	return nil
}

// Renew sends a TGS-REQ with the RENEW option for the default principal's
// TGT and returns a copy of cc in which that TGT is replaced by the renewed
// one. Service tickets and config entries are kept. The KDC offset in the
// header is used for the authenticator's time and updated if the KDC
// reports skew.
func (c *Client) Renew(ctx context.Context, cc *CCache) (*CCache, error) {
	if err := CheckRenewable(cc, c.now()); err != nil {
		return nil, err
	}
	tgt, _ := cc.TGT()
	old := *tgt
	realm := old.Server.Realm
	var tkt messages.Ticket
	if err := tkt.Unmarshal(old.Ticket); err != nil {
		return nil, fmt.Errorf("the ticket-granting ticket in the cache is malformed: %w", err)
	}
	session := types.EncryptionKey{KeyType: old.Key.EncType, KeyValue: old.Key.Value}
	if _, err := crypto.GetEtype(session.KeyType); err != nil {
		return nil, fmt.Errorf("the ticket's session key type %d is not supported", session.KeyType)
	}
	clock := skewClock{local: c.now}
	if cc.HasKDCOffset {
		clock.offset = cc.KDCOffset
	}
	skewed := false
	// A ticket from an armored login is renewed inside FAST too (the
	// TGT itself is the armor, RFC 6113 5.4.1.1).
	armored := armoredLogin(cc)
	for {
		req, fa, subkey, err := c.renewReqFAST(realm, old, tkt, session, clock.now(), armored)
		if err != nil {
			return nil, err
		}
		b, err := req.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode tgs-req: %w", err)
		}
		reply, err := c.send(ctx, realm, b)
		var ke *KDCError
		if errors.As(err, &ke) && fa != nil {
			inner, _, uerr := fa.unwrapError(ke, req.ReqBody.Nonce)
			if uerr != nil {
				return nil, uerr
			}
			err, ke = inner, inner
		}
		if errors.As(err, &ke) {
			switch ke.Code {
			case errorcode.KRB_AP_ERR_SKEW:
				// No secret is at stake here: retry once with the KDC's time.
				if !skewed && c.Config.LibDefaults.KDCTimeSync != 0 {
					skewed = true
					clock.learn(ke.STime)
					continue
				}
				return nil, skewError(ke, clock)
			case errorcode.KRB_AP_ERR_TKT_EXPIRED:
				if left := old.EndTime.Sub(clock.now()); left > 0 {
					// Samba's KDC already treats a TGT as expired in
					// its last two minutes or so.
					return nil, &Error{Kind: ErrTicketExpired, Err: ke,
						Msg:  fmt.Sprintf("the kdc refuses to renew the ticket-granting ticket %v before it expires (too close to its end for this kdc)", left.Round(time.Second)),
						hint: "run `sesame kinit` again; renew earlier next time"}
				}
				return nil, &Error{Kind: ErrTicketExpired, Err: ke, Msg: "the kdc says the ticket-granting ticket has expired",
					hint: "run `sesame kinit` again"}
			case errorcode.KDC_ERR_BADOPTION:
				return nil, &Error{Kind: ErrNotRenewable, Err: ke, Msg: "the kdc refused to renew the ticket (" + ke.Error() + ")",
					hint: "run `sesame kinit` again"}
			}
			return nil, ke
		}
		if err != nil {
			return nil, err
		}
		rep, newTkt, der, err := parseKDCRep(reply, asnAppTag.TGSREP)
		if err != nil {
			return nil, err
		}
		var part messages.EncKDCRepPart
		if fa != nil {
			part, err = fa.tgsReply(rep, der, req.ReqBody.Nonce, subkey)
			if err == nil && rep.CName.NameString == nil {
				err = errors.New("kdc reply under FAST names no client")
			}
		} else {
			part, err = decryptRepPart(rep.EncPart, session, keyusage.TGS_REP_ENCPART_SESSION_KEY)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot decrypt the kdc's renewal reply: %w", err)
		}
		if rep.MsgType != msgtype.KRB_TGS_REP || part.Nonce != req.ReqBody.Nonce {
			return nil, errors.New("kdc reply does not match the renewal request (nonce)")
		}
		// The renewed ticket is the same client's (RFC 4120 3.3.3.1; MIT
		// checks it too): a reply naming another client is not ours.
		if got := PrincipalFromGokrb5(rep.CName, rep.CRealm); !got.Equal(old.Client) {
			return nil, fmt.Errorf("kdc reply does not match the renewal request: client %s instead of %s", got, old.Client)
		}
		if len(part.SName.NameString) != 2 || part.SName.NameString[0] != "krbtgt" || !strings.EqualFold(part.SRealm, realm) {
			return nil, fmt.Errorf("kdc renewed %s@%s instead of the ticket-granting ticket", part.SName.PrincipalNameString(), part.SRealm)
		}
		out := cloneCCache(cc)
		nc, err := credentialFrom(rep, newTkt, part, der)
		if err != nil {
			return nil, err
		}
		out.Upsert(nc)
		if skewed {
			out.SetKDCOffset(clock.offset)
		}
		return out, nil
	}
}

// renewReq builds the TGS-REQ for renewal by hand rather than with
// messages.NewTGSReq, which takes till/rtime and options from krb5.conf
// and the authenticator's time from the local clock. rtime is the old
// renew_till, since a smaller rtime would shorten it.
func (c *Client) renewReq(realm string, old Credential, tkt messages.Ticket, session types.EncryptionKey, now time.Time, withAuth func(*types.Authenticator) error) (messages.TGSReq, error) {
	n, err := nonce()
	if err != nil {
		return messages.TGSReq{}, err
	}
	etypes := supportedEtypes(c.Config.LibDefaults.DefaultTGSEnctypeIDs)
	if len(etypes) == 0 {
		etypes = []int32{session.KeyType}
	}
	opts := renewOptions(old.Flags)
	req := messages.TGSReq{KDCReqFields: messages.KDCReqFields{
		PVNO:    iana.PVNO,
		MsgType: msgtype.KRB_TGS_REQ,
		ReqBody: messages.KDCReqBody{
			KDCOptions: opts,
			Realm:      realm,
			SName:      types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", realm}},
			Till:       old.RenewTill.UTC(),
			RTime:      old.RenewTill.UTC(),
			Nonce:      n,
			EType:      etypes,
		},
		Renewal: true,
	}}
	body, err := req.ReqBody.Marshal()
	if err != nil {
		return req, fmt.Errorf("encode tgs-req body: %w", err)
	}
	et, _ := crypto.GetEtype(session.KeyType)
	sum, err := et.GetChecksumHash(session.KeyValue, body, keyusage.TGS_REQ_PA_TGS_REQ_AP_REQ_AUTHENTICATOR_CHKSUM)
	if err != nil {
		return req, fmt.Errorf("checksum tgs-req body: %w", err)
	}
	seq, err := nonce()
	if err != nil {
		return req, err
	}
	now = now.UTC()
	auth := types.Authenticator{
		AVNO:      iana.PVNO,
		CRealm:    old.Client.Realm,
		CName:     old.Client.Gokrb5(),
		Cksum:     types.Checksum{CksumType: et.GetHashID(), Checksum: sum},
		CTime:     now.Truncate(time.Second),
		Cusec:     now.Nanosecond() / 1000,
		SeqNumber: int64(seq) & math.MaxInt32,
	}
	if withAuth != nil {
		if err := withAuth(&auth); err != nil {
			return req, err
		}
	}
	ap, err := messages.NewAPReq(tkt, session, auth)
	if err != nil {
		return req, fmt.Errorf("build ap-req: %w", err)
	}
	apb, err := ap.Marshal()
	if err != nil {
		return req, fmt.Errorf("encode ap-req: %w", err)
	}
	req.PAData = types.PADataSequence{{PADataType: patype.PA_TGS_REQ, PADataValue: apb}}
	return req, nil
}

// renewOptions are the KDC options of a renewal of a ticket with the given
// flags: RENEW, and — as MIT's kinit -R asks — forwardable, proxiable,
// may-postdate and renewable when the ticket has them. MIT's KDC keeps a
// renewed ticket's flags anyway, but Heimdal and Active Directory grant
// forwardable and proxiable only when the request asks, and a TGT that is
// no longer forwardable silently ends GSSAPI credential delegation.
func renewOptions(ticketFlags uint32) asn1.BitString {
	opts := types.NewKrbFlags()
	types.SetFlag(&opts, flags.Renew)
	types.SetFlag(&opts, flags.Renewable)
	for _, f := range []struct {
		tkt uint32
		opt int
	}{
		{TktFlagForwardable, flags.Forwardable},
		{TktFlagProxiable, flags.Proxiable},
		{TktFlagMayPostdate, flags.AllowPostDate},
	} {
		if ticketFlags&f.tkt != 0 {
			types.SetFlag(&opts, f.opt)
		}
	}
	return opts
}

// cloneCCache copies the cache deeply enough that replacing an entry or
// changing the header does not affect the original.
func cloneCCache(cc *CCache) *CCache {
	out := *cc
	out.Credentials = append([]Credential(nil), cc.Credentials...)
	out.OtherHeader = append([]HeaderField(nil), cc.OtherHeader...)
	return &out
}
