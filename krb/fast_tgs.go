package krb

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// FAST for renewals (RFC 6113 5.4.1.1): a TGS request needs no armor
// ticket of its own. The authenticator of PA-TGS-REQ carries a subkey,
// and the armor key is KRB-FX-CF2(subkey, the TGT's session key,
// "subkeyarmor", "ticketarmor"); the req-checksum covers the AP-REQ; the
// reply is encrypted under the subkey, strengthened by the KDC's
// strengthen key.

// keyUsageTGSRepSubkey encrypts a TGS-REP's enc-part under the
// authenticator's subkey (RFC 4120 7.5.1, usage 9).
const keyUsageTGSRepSubkey = 9

// armoredLogin reports whether the cache's ticket came from a login
// inside FAST: its pa_type is the encrypted challenge (138) or OTP (141),
// which a KDC takes only under armor.
func armoredLogin(cc *CCache) bool {
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.ConfigKey() == "pa_type" && (string(c.Ticket) == "138" || string(c.Ticket) == fmt.Sprint(PAOTPChallenge)) {
			return true
		}
	}
	return false
}

// renewReqFAST is renewReq, wrapped in FAST when armored; it then returns
// the armor (for the reply) and the authenticator's subkey.
func (c *Client) renewReqFAST(realm string, old Credential, tkt messages.Ticket, session types.EncryptionKey, now time.Time, armored bool) (messages.TGSReq, *fastArmor, types.EncryptionKey, error) {
	if !armored {
		req, err := c.renewReq(realm, old, tkt, session, now, nil)
		return req, nil, types.EncryptionKey{}, err
	}
	et, err := crypto.GetEtype(session.KeyType)
	if err != nil {
		return messages.TGSReq{}, nil, types.EncryptionKey{}, err
	}
	var subkey types.EncryptionKey
	req, err := c.renewReq(realm, old, tkt, session, now, func(auth *types.Authenticator) error {
		if err := auth.GenerateSeqNumberAndSubKey(session.KeyType, et.GetKeyByteSize()); err != nil {
			return err
		}
		subkey = auth.SubKey
		return nil
	})
	if err != nil {
		return req, nil, subkey, err
	}
	key, err := cf2(subkey, session, "subkeyarmor", "ticketarmor")
	if err != nil {
		return req, nil, subkey, err
	}
	fa := &fastArmor{key: key}
	slog.Debug("renewal inside FAST: the login was armored", "client", old.Client.String())
	apb := req.PAData[0].PADataValue
	ket, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return req, nil, subkey, err
	}
	sum, err := ket.GetChecksumHash(key.KeyValue, apb, keyUsageFastReqChksum)
	if err != nil {
		return req, nil, subkey, fmt.Errorf("checksum tgs-req ap-req: %w", err)
	}
	body, err := req.ReqBody.Marshal()
	if err != nil {
		return req, nil, subkey, err
	}
	fr, err := asn1.Marshal(krbFastReq{
		FastOptions: asn1.BitString{Bytes: make([]byte, 4), BitLength: 32},
		PAData:      types.PADataSequence{},
		ReqBody:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, IsCompound: true, Bytes: body},
	})
	if err != nil {
		return req, nil, subkey, fmt.Errorf("encode krb-fast-req: %w", err)
	}
	enc, err := crypto.GetEncryptedData(fr, key, keyUsageFastEnc, 0)
	if err != nil {
		return req, nil, subkey, fmt.Errorf("encrypt krb-fast-req: %w", err)
	}
	// No armor field: the TGS request's own AP-REQ is the armor.
	ar, err := asn1.Marshal(krbFastArmoredReq{
		ReqChecksum: types.Checksum{CksumType: ket.GetHashID(), Checksum: sum},
		EncFastReq:  enc,
	})
	if err != nil {
		return req, nil, subkey, fmt.Errorf("encode krb-fast-armored-req: %w", err)
	}
	v, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: ar})
	if err != nil {
		return req, nil, subkey, err
	}
	req.PAData = append(req.PAData, types.PAData{PADataType: patype.PA_FX_FAST, PADataValue: v})
	return req, fa, subkey, nil
}

// tgsReply opens an armored TGS-REP: its FAST response (nonce, ticket
// checksum), and the enc-part under the subkey strengthened with the
// KDC's strengthen key.
//
// A KDC that does not do FAST for TGS requests (Heimdal 7) ignores the
// armor and answers as to a plain request, under the subkey: that reply
// is as authenticated as any renewal's (only the KDC knows the session
// key that protects the subkey), so it is taken.
func (fa *fastArmor) tgsReply(rep rawKDCRep, ticketDER []byte, nonce int, subkey types.EncryptionKey) (messages.EncKDCRepPart, error) {
	if !hasPAType(rep.PAData, patype.PA_FX_FAST) {
		slog.Debug("the kdc answered the armored renewal without FAST")
		return decryptRepPart(rep.EncPart, subkey, keyUsageTGSRepSubkey)
	}
	resp, err := fa.reply(rep, ticketDER, nonce)
	if err != nil {
		return messages.EncKDCRepPart{}, err
	}
	key := subkey
	if len(resp.StrengthenKey.KeyValue) > 0 {
		if key, err = cf2(resp.StrengthenKey, subkey, "strengthenkey", "replykey"); err != nil {
			return messages.EncKDCRepPart{}, err
		}
	}
	return decryptRepPart(rep.EncPart, key, keyUsageTGSRepSubkey)
}
