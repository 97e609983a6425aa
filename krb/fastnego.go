package krb

import (
	"errors"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// FAST negotiation (RFC 6806 section 11), the way MIT's client decides
// what its fast_avail cache entry says (krb5int_fast_verify_nego): every
// AS-REQ carries an empty PA-REQ-ENC-PA-REP; a KDC that knows it sets the
// enc-pa-rep flag in the reply's encrypted part and puts there a checksum
// of the request under the reply key, plus PA-FX-FAST if it supports
// FAST. The checksum is what makes the answer trustworthy: an attacker
// who strips FAST from the exchange cannot forge it. So a login learns
// that the KDC supports FAST even when the principal needs no
// pre-authentication, without an extra round trip.

// encPARepRequest is the empty PA-REQ-ENC-PA-REP of a request.
func encPARepRequest() types.PAData {
	return types.PAData{PADataType: patype.PA_REQ_ENC_PA_REP, PADataValue: []byte{}}
}

// fastNegotiated reports whether the decrypted reply part shows that the
// KDC supports FAST, after checking the request checksum in it; reqDER
// is the AS-REQ as sent, key the key that decrypted the reply. A reply
// that sets the flag without a valid checksum was altered: an error, as
// MIT makes it (KRB5_KDCREP_MODIFIED).
func fastNegotiated(part messages.EncKDCRepPart, key types.EncryptionKey, reqDER []byte) (bool, error) {
	if !types.IsFlagSet(&part.Flags, flags.EncPARep) {
		return false, nil
	}
	var sum []byte
	for _, pa := range part.EncPAData {
		if pa.PADataType == patype.PA_REQ_ENC_PA_REP {
			sum = pa.PADataValue
		}
	}
	modified := errors.New("kdc reply does not match the request: the request checksum in the reply does not verify (reply altered in transit)")
	if sum == nil {
		return false, modified
	}
	var cksum types.Checksum
	if rest, err := asn1.Unmarshal(sum, &cksum); err != nil || len(rest) != 0 {
		return false, modified
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return false, err
	}
	if cksum.CksumType != et.GetHashID() || !et.VerifyChecksum(key.KeyValue, reqDER, cksum.Checksum, keyusage.KEY_USAGE_AS_REQ) {
		return false, modified
	}
	return hasPAType(part.EncPAData, patype.PA_FX_FAST), nil
}
