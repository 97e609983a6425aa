package krb

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/types"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OTP pre-authentication (RFC 6560) inside FAST, as MIT's client speaks
// it to MIT's KDC with its otp plugin (what FreeIPA runs): the KDC's
// FAST error carries PA-OTP-CHALLENGE, the client answers with
// PA-OTP-REQUEST holding the token value and the challenge's nonce
// encrypted under the armor key, and the reply key is the armor key
// (strengthened as in every FAST reply). RFC 6560's module uses IMPLICIT
// tags, unlike the core Kerberos ASN.1, so these structures are written
// with cryptobyte rather than gokrb5's explicit-tag types.

// Pre-authentication types of RFC 6560.
const (
	PAOTPChallenge = 141
	PAOTPRequest   = 142
)

// keyUsageOTPRequest encrypts PA-OTP-ENC-REQUEST (RFC 6560 section 4.2).
const keyUsageOTPRequest = 45

// OTP flags (RFC 6560 section 4.1, bit numbers of KerberosFlags).
const (
	otpFlagNextOTP             = 1
	otpFlagCollectPIN          = 3
	otpFlagSeparatePINRequired = 6
)

// OTPChallenge is a decoded PA-OTP-CHALLENGE.
type OTPChallenge struct {
	Nonce   []byte
	Service string // otp-service, the name of the OTP service, if sent
	Tokens  []OTPTokenInfo
}

// OTPTokenInfo is one OTP-TOKENINFO of a challenge.
type OTPTokenInfo struct {
	Flags     uint32 // bit 0 is the most significant, as KerberosFlags
	Vendor    string
	Challenge []byte // a value to show the user (challenge-response tokens)
	Length    int32  // digits expected, 0 if not said
	TokenID   []byte
	AlgID     string
}

func (ti OTPTokenInfo) flag(bit int) bool { return ti.Flags&(1<<(31-bit)) != 0 }

// maxOTPField bounds the strings of a challenge that sesame shows.
const maxOTPField = 256

// ParseOTPChallenge decodes PA-OTP-CHALLENGE:
//
//	PA-OTP-CHALLENGE ::= SEQUENCE {
//	  nonce [0] OCTET STRING, otp-service [1] UTF8String OPTIONAL,
//	  otp-tokenInfo [2] SEQUENCE (SIZE(1..MAX)) OF OTP-TOKENINFO,
//	  salt [3] KerberosString OPTIONAL, s2kparams [4] OCTET STRING OPTIONAL, ... }
//	OTP-TOKENINFO ::= SEQUENCE {
//	  flags [0] OTPFlags, otp-vendor [1] UTF8String OPTIONAL,
//	  otp-challenge [2] OCTET STRING OPTIONAL, otp-length [3] Int32 OPTIONAL,
//	  otp-format [4] OTPFormat OPTIONAL, otp-tokenID [5] OCTET STRING OPTIONAL,
//	  otp-algID [6] AnyURI OPTIONAL, supportedHashAlg [7] ... OPTIONAL,
//	  iterationCount [8] Int32 OPTIONAL, ... }
func ParseOTPChallenge(b []byte) (*OTPChallenge, error) {
	bad := errors.New("malformed otp challenge from the kdc")
	in := cryptobyte.String(b)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, bad
	}
	ch := &OTPChallenge{}
	var nonce cryptobyte.String
	if !seq.ReadASN1(&nonce, cbasn1.Tag(0).ContextSpecific()) || len(nonce) == 0 {
		return nil, bad
	}
	ch.Nonce = append([]byte(nil), nonce...)
	var svc cryptobyte.String
	var ok bool
	if !seq.ReadOptionalASN1(&svc, &ok, cbasn1.Tag(1).ContextSpecific()) {
		return nil, bad
	}
	if ok {
		if ch.Service, ok = otpText(svc); !ok {
			return nil, bad
		}
	}
	var infos cryptobyte.String
	if !seq.ReadASN1(&infos, cbasn1.Tag(2).ContextSpecific().Constructed()) || infos.Empty() {
		return nil, bad
	}
	for !infos.Empty() {
		var ti cryptobyte.String
		if !infos.ReadASN1(&ti, cbasn1.SEQUENCE) {
			return nil, bad
		}
		info, err := parseOTPTokenInfo(ti)
		if err != nil {
			return nil, bad
		}
		ch.Tokens = append(ch.Tokens, info)
	}
	// salt, s2kparams and extensions are not needed: the reply key is the
	// armor key, never one made from a password.
	return ch, nil
}

func parseOTPTokenInfo(ti cryptobyte.String) (OTPTokenInfo, error) {
	var info OTPTokenInfo
	bad := errors.New("malformed otp token info")
	var flags cryptobyte.String
	if !ti.ReadASN1(&flags, cbasn1.Tag(0).ContextSpecific()) {
		return info, bad
	}
	f, err := kerberosFlags(flags)
	if err != nil {
		return info, bad
	}
	info.Flags = f
	var v cryptobyte.String
	var ok bool
	if !ti.ReadOptionalASN1(&v, &ok, cbasn1.Tag(1).ContextSpecific()) {
		return info, bad
	}
	if ok {
		if info.Vendor, ok = otpText(v); !ok {
			return info, bad
		}
	}
	if !ti.ReadOptionalASN1(&v, &ok, cbasn1.Tag(2).ContextSpecific()) {
		return info, bad
	}
	if ok {
		if len(v) == 0 || len(v) > maxOTPField {
			return info, bad
		}
		info.Challenge = append([]byte(nil), v...)
	}
	if !ti.ReadOptionalASN1(&v, &ok, cbasn1.Tag(3).ContextSpecific()) {
		return info, bad
	}
	if ok {
		n, err := int32Content(v)
		if err != nil {
			return info, bad
		}
		info.Length = n
	}
	// otp-format [4]
	if !ti.ReadOptionalASN1(&v, &ok, cbasn1.Tag(4).ContextSpecific()) {
		return info, bad
	}
	if !ti.ReadOptionalASN1(&v, &ok, cbasn1.Tag(5).ContextSpecific()) {
		return info, bad
	}
	if ok {
		if len(v) > maxOTPField {
			return info, bad
		}
		info.TokenID = append([]byte(nil), v...)
	}
	if !ti.ReadOptionalASN1(&v, &ok, cbasn1.Tag(6).ContextSpecific()) {
		return info, bad
	}
	if ok {
		if info.AlgID, ok = otpText(v); !ok {
			return info, bad
		}
	}
	return info, nil
}

// otpText checks a UTF8String of a challenge: valid, bounded, printable.
func otpText(v []byte) (string, bool) {
	if len(v) > maxOTPField || !utf8.Valid(v) {
		return "", false
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, string(v)), true
}

// kerberosFlags reads the content of a BIT STRING of at least 32 bits
// (its first 32 bits).
func kerberosFlags(v []byte) (uint32, error) {
	if len(v) < 1 || v[0] > 7 || (len(v) == 1 && v[0] != 0) {
		return 0, errors.New("bad bit string")
	}
	var f uint32
	for i := 0; i < 4 && 1+i < len(v); i++ {
		f |= uint32(v[1+i]) << (24 - 8*i)
	}
	return f, nil
}

// int32Content decodes the content octets of a (implicitly tagged)
// INTEGER that fits in 32 bits.
func int32Content(v []byte) (int32, error) {
	if len(v) == 0 || len(v) > 4 || (len(v) > 1 && (v[0] == 0 && v[1]&0x80 == 0 || v[0] == 0xff && v[1]&0x80 != 0)) {
		return 0, errors.New("bad integer")
	}
	n := int32(int8(v[0]))
	for _, b := range v[1:] {
		n = n<<8 | int32(b)
	}
	return n, nil
}

// Prompt returns the text to ask the user with for this challenge, as
// MIT's client does ("Enter OTP Token Value"), naming the service when
// the KDC named one, and a banner with the token's challenge when it has
// one (MIT's "OTP Challenge: ...").
func (ch *OTPChallenge) Prompt() (banner, prompt string) {
	prompt = "Enter OTP Token Value"
	if ch.Service != "" {
		prompt += " for " + ch.Service
	}
	if ti := ch.token(); ti != nil && len(ti.Challenge) > 0 {
		if s, ok := otpText(ti.Challenge); ok {
			banner = "OTP Challenge: " + s
		}
	}
	return banner, prompt + ": "
}

// token is the token info sesame answers for: the first one (MIT asks
// the user to choose when there are several; MIT's and FreeIPA's KDCs
// send one).
func (ch *OTPChallenge) token() *OTPTokenInfo {
	if len(ch.Tokens) == 0 {
		return nil
	}
	return &ch.Tokens[0]
}

// NeedsPIN reports whether the token wants a PIN asked separately.
func (ch *OTPChallenge) NeedsPIN() bool {
	ti := ch.token()
	return ti != nil && (ti.flag(otpFlagCollectPIN) || ti.flag(otpFlagSeparatePINRequired))
}

// otpRequest builds PA-OTP-REQUEST for the challenge under the armor key
// of the request that carries it:
//
//	PA-OTP-REQUEST ::= SEQUENCE {
//	  flags [0] OTPFlags, nonce [1] OCTET STRING OPTIONAL,
//	  encData [2] EncryptedData, -- PA-OTP-ENC-REQUEST, usage 45
//	  hashAlg [3] ... OPTIONAL, iterationCount [4] Int32 OPTIONAL,
//	  otp-value [5] OCTET STRING OPTIONAL, otp-pin [6] UTF8String OPTIONAL,
//	  ..., otp-tokenID [11] OCTET STRING OPTIONAL, otp-algID [12] AnyURI OPTIONAL,
//	  otp-vendor [13] UTF8String OPTIONAL, ... }
//	PA-OTP-ENC-REQUEST ::= SEQUENCE { nonce [0] OCTET STRING, ... }
//
// Like MIT's client it sends the flags, the encrypted nonce, an
// iteration count of 0 and the value, plus the token's identity when
// the challenge named one.
func (fa *fastArmor) otpRequest(ch *OTPChallenge, value, pin []byte) (types.PAData, error) {
	var eb cryptobyte.Builder
	eb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ch.Nonce) })
	})
	plain, err := eb.Bytes()
	if err != nil {
		return types.PAData{}, err
	}
	ed, err := crypto.GetEncryptedData(plain, fa.key, keyUsageOTPRequest, 0)
	if err != nil {
		return types.PAData{}, fmt.Errorf("encrypt otp nonce: %w", err)
	}
	edb, err := ed.Marshal()
	if err != nil {
		return types.PAData{}, err
	}
	// EncryptedData keeps its own (explicit) inner tags; only its outer
	// SEQUENCE tag becomes the implicit [2].
	edIn := cryptobyte.String(edb)
	var edContent cryptobyte.String
	if !edIn.ReadASN1(&edContent, cbasn1.SEQUENCE) {
		return types.PAData{}, errors.New("encode otp request: bad encrypted data")
	}
	ti := ch.token()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
			var flags uint32
			if ti != nil && ti.flag(otpFlagNextOTP) {
				flags |= 1 << (31 - otpFlagNextOTP)
			}
			b.AddBytes([]byte{0, byte(flags >> 24), byte(flags >> 16), byte(flags >> 8), byte(flags)})
		})
		b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddBytes(edContent) })
		b.AddASN1(cbasn1.Tag(4).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte{0}) })
		b.AddASN1(cbasn1.Tag(5).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(value) })
		if len(pin) > 0 {
			b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(pin) })
		}
		if ti != nil && len(ti.TokenID) > 0 {
			b.AddASN1(cbasn1.Tag(11).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ti.TokenID) })
		}
		if ti != nil && ti.AlgID != "" {
			b.AddASN1(cbasn1.Tag(12).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(ti.AlgID)) })
		}
		if ti != nil && ti.Vendor != "" {
			b.AddASN1(cbasn1.Tag(13).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(ti.Vendor)) })
		}
	})
	out, err := b.Bytes()
	if err != nil {
		return types.PAData{}, fmt.Errorf("encode otp request: %w", err)
	}
	return types.PAData{PADataType: PAOTPRequest, PADataValue: out}, nil
}

// otpChallengeIn finds and decodes the PA-OTP-CHALLENGE of a FAST error.
func otpChallengeIn(pas types.PADataSequence) (*OTPChallenge, bool, error) {
	for _, pa := range pas {
		if pa.PADataType == PAOTPChallenge {
			ch, err := ParseOTPChallenge(pa.PADataValue)
			return ch, true, err
		}
	}
	return nil, false, nil
}
