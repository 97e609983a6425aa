package krb

import (
	"bytes"
	"testing"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/types"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// otpChallengeDER encodes a PA-OTP-CHALLENGE with IMPLICIT tags, as
// MIT's KDC sends it (nonce, one token info with zero flags), plus the
// optional fields when service or challenge are set.
func otpChallengeDER(nonce []byte, service string, flags uint32, challenge string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(nonce) })
		if service != "" {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(service)) })
		}
		b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddBytes([]byte{0, byte(flags >> 24), byte(flags >> 16), byte(flags >> 8), byte(flags)})
				})
				if challenge != "" {
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(challenge)) })
				}
				b.AddASN1(cbasn1.Tag(3).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte{6}) })
			})
		})
	})
	return b.BytesOrPanic()
}

func TestParseOTPChallenge(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, 36)
	ch, err := ParseOTPChallenge(otpChallengeDER(nonce, "", 0, ""))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ch.Nonce, nonce) || len(ch.Tokens) != 1 || ch.Tokens[0].Length != 6 || ch.NeedsPIN() {
		t.Errorf("parsed %+v", ch)
	}
	if banner, prompt := ch.Prompt(); banner != "" || prompt != "Enter OTP Token Value: " {
		t.Errorf("prompt %q %q", banner, prompt)
	}
	ch, err = ParseOTPChallenge(otpChallengeDER(nonce, "FreeIPA\x1b[2J", 1<<(31-otpFlagCollectPIN), "4711"))
	if err != nil {
		t.Fatal(err)
	}
	banner, prompt := ch.Prompt()
	if banner != "OTP Challenge: 4711" || prompt != "Enter OTP Token Value for FreeIPA?[2J: " || !ch.NeedsPIN() {
		t.Errorf("prompt %q %q pin %v", banner, prompt, ch.NeedsPIN())
	}
	for name, b := range map[string][]byte{
		"empty":    nil,
		"trailing": append(otpChallengeDER(nonce, "", 0, ""), 0),
		"no nonce": otpChallengeDER(nil, "", 0, ""),
		"explicit": {0x30, 0x06, 0xa0, 0x04, 0x04, 0x02, 1, 2},
	} {
		if _, err := ParseOTPChallenge(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The PA-OTP-REQUEST carries the value and the challenge's nonce
// encrypted under the armor key with usage 45, with IMPLICIT tags.
func TestOTPRequest(t *testing.T) {
	key := types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{1}, 32)}
	fa := &fastArmor{key: key}
	nonce := []byte("0123456789abcdef0123456789abcdef0123")
	ch, err := ParseOTPChallenge(otpChallengeDER(nonce, "", 0, ""))
	if err != nil {
		t.Fatal(err)
	}
	pa, err := fa.otpRequest(ch, []byte("123456"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pa.PADataType != PAOTPRequest {
		t.Errorf("padata type %d", pa.PADataType)
	}
	in := cryptobyte.String(pa.PADataValue)
	var seq, flags, ed, iter, value cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&flags, cbasn1.Tag(0).ContextSpecific()) ||
		!seq.ReadASN1(&ed, cbasn1.Tag(2).ContextSpecific().Constructed()) ||
		!seq.ReadASN1(&iter, cbasn1.Tag(4).ContextSpecific()) ||
		!seq.ReadASN1(&value, cbasn1.Tag(5).ContextSpecific()) || !seq.Empty() {
		t.Fatalf("bad encoding % x", pa.PADataValue)
	}
	if string(value) != "123456" || !bytes.Equal(flags, []byte{0, 0, 0, 0, 0}) || !bytes.Equal(iter, []byte{0}) {
		t.Errorf("fields: flags % x iter % x value %q", flags, iter, value)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(ed) })
	var encData types.EncryptedData
	if err := encData.Unmarshal(b.BytesOrPanic()); err != nil {
		t.Fatal(err)
	}
	plain, err := decryptEncPart(encData, key, keyUsageOTPRequest)
	if err != nil {
		t.Fatal(err)
	}
	pin := cryptobyte.String(plain)
	var encReq, gotNonce cryptobyte.String
	if !pin.ReadASN1(&encReq, cbasn1.SEQUENCE) || !encReq.ReadASN1(&gotNonce, cbasn1.Tag(0).ContextSpecific()) || !bytes.Equal(gotNonce, nonce) {
		t.Errorf("PA-OTP-ENC-REQUEST % x", plain)
	}
}

func FuzzParseOTPChallenge(f *testing.F) {
	f.Add(otpChallengeDER(bytes.Repeat([]byte{7}, 36), "", 0, ""))
	f.Add(otpChallengeDER([]byte{1}, "svc", 1<<(31-otpFlagSeparatePINRequired), "chal"))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := ParseOTPChallenge(b)
		if err != nil {
			return
		}
		if len(ch.Nonce) == 0 || len(ch.Tokens) == 0 {
			t.Fatalf("accepted a challenge without nonce or token: %+v", ch)
		}
		banner, prompt := ch.Prompt()
		for _, s := range []string{banner, prompt} {
			for _, r := range s {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("control character in %q", s)
				}
			}
		}
		fa := &fastArmor{key: types.EncryptionKey{KeyType: etypeID.AES128_CTS_HMAC_SHA1_96, KeyValue: make([]byte, 16)}}
		if _, err := fa.otpRequest(ch, []byte("1"), nil); err != nil {
			t.Fatalf("request for an accepted challenge: %v", err)
		}
	})
}
