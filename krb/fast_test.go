package krb

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/patype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// TestCF2Vectors checks KRB-FX-CF2 against MIT's regression values
// (keys from string-to-key of "key1" and "key2", each its own salt;
// peppers "a" and "b").
func TestCF2Vectors(t *testing.T) {
	for _, c := range []struct {
		etype int32
		want  string
	}{
		{17, "97df97e4b798b29eb31ed7280287a92a"},
		{18, "4d6ca4e629785c1f01baf55e2e548566b9617ae3a96868c337cb93b5e72b1c7b"},
	} {
		et, err := crypto.GetEtype(c.etype)
		if err != nil {
			t.Fatal(err)
		}
		key := func(s string) types.EncryptionKey {
			b, err := et.StringToKey(s, s, et.GetDefaultStringToKeyParams())
			if err != nil {
				t.Fatal(err)
			}
			return types.EncryptionKey{KeyType: c.etype, KeyValue: b}
		}
		got, err := cf2(key("key1"), key("key2"), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		if h := hex.EncodeToString(got.KeyValue); h != c.want {
			t.Errorf("etype %d: cf2 = %s, want %s", c.etype, h, c.want)
		}
	}
}

// TestPRFSHA2Vectors checks the aes-sha2 PRF against RFC 8009 appendix A.
func TestPRFSHA2Vectors(t *testing.T) {
	for _, c := range []struct {
		etype    int32
		key, out string
	}{
		{19, "3705D96080C17728A0E800EAB6E0D23C", "9D188616F63852FE86915BB840B4A886FF3E6BB0F819B49B893393D393854295"},
		{20, "6D404D37FAF79F9DF0D33568D320669800EB4836472EA8A026D16B7182460C52",
			"9801F69A368C2BF675E59521E177D9A07F67EFE1CFDE8D3C8D6F6A0256E3B17DB3C1B62AD1B8553360D17367EB1514D2"},
	} {
		k, _ := hex.DecodeString(c.key)
		got, err := prf(types.EncryptionKey{KeyType: c.etype, KeyValue: k}, []byte("test"))
		if err != nil {
			t.Fatal(err)
		}
		if h := hex.EncodeToString(got); !strings.EqualFold(h, c.out) {
			t.Errorf("etype %d: prf = %s, want %s", c.etype, h, c.out)
		}
	}
}

// testArmor is an armor with a fixed aes256 key.
func testArmor() *fastArmor {
	return &fastArmor{key: types.EncryptionKey{KeyType: 18, KeyValue: []byte("0123456789abcdef0123456789abcdef")}}
}

// fastReplyPA is the PA-FX-FAST a KDC sends: plain (a KrbFastResponse)
// encrypted under key, in KrbFastArmoredRep, in the CHOICE's [0].
func fastReplyPA(t testing.TB, key types.EncryptionKey, plain []byte) types.PAData {
	t.Helper()
	ed, err := crypto.GetEncryptedData(plain, key, keyUsageFastRep, 0)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := asn1.Marshal(krbFastArmoredRep{EncFastRep: ed})
	if err != nil {
		t.Fatal(err)
	}
	v, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: ar})
	if err != nil {
		t.Fatal(err)
	}
	return types.PAData{PADataType: patype.PA_FX_FAST, PADataValue: v}
}

// TestFASTReplyChecks: a FAST response is taken only with the request's
// nonce, under the armor key, and its finished checksum must cover the
// ticket that came with it.
func TestFASTReplyChecks(t *testing.T) {
	fa := testArmor()
	et, _ := crypto.GetEtype(18)
	ticket := []byte("the ticket's DER")
	sum, err := et.GetChecksumHash(fa.key.KeyValue, ticket, keyUsageFastFinished)
	if err != nil {
		t.Fatal(err)
	}
	resp := krbFastResponse{
		PAData:   types.PADataSequence{{PADataType: patype.PA_FX_COOKIE, PADataValue: []byte("cookie")}},
		Finished: krbFastFinished{Timestamp: time.Now().UTC().Truncate(time.Second), CRealm: "R", CName: types.NewPrincipalName(1, "alice"), TicketChecksum: types.Checksum{CksumType: et.GetHashID(), Checksum: sum}},
		Nonce:    42,
	}
	plain, err := asn1.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	pas := types.PADataSequence{fastReplyPA(t, fa.key, plain)}
	got, ok, err := fa.unwrap(pas, 42)
	if err != nil || !ok || len(got.PAData) != 1 || got.Finished.CName.NameString[0] != "alice" {
		t.Fatalf("unwrap = %+v %v %v", got, ok, err)
	}
	if err := fa.checkFinished(got.Finished, ticket); err != nil {
		t.Errorf("finished: %v", err)
	}
	if err := fa.checkFinished(got.Finished, []byte("another ticket")); err == nil {
		t.Error("finished checksum accepted for another ticket")
	}
	if _, _, err := fa.unwrap(pas, 43); err == nil {
		t.Error("a response with another nonce was accepted")
	}
	other := testArmor()
	other.key.KeyValue = []byte("fedcba9876543210fedcba9876543210")
	if _, _, err := other.unwrap(pas, 42); err == nil {
		t.Error("a response under another armor key was accepted")
	}
	if _, ok, err := fa.unwrap(nil, 42); ok || err != nil {
		t.Errorf("no PA-FX-FAST: ok=%v err=%v", ok, err)
	}
}

// FuzzFASTResponse feeds arbitrary bytes to the FAST reply parsers: as
// the PA-FX-FAST value a KDC sends, and as the KrbFastResponse inside it
// (properly encrypted, so that the decoder behind the decryption is
// reached), also inside a KRB-ERROR's METHOD-DATA.
func FuzzFASTResponse(f *testing.F) {
	fa := testArmor()
	resp, _ := asn1.Marshal(krbFastResponse{Nonce: 7, PAData: types.PADataSequence{{PADataType: patype.PA_FX_ERROR, PADataValue: []byte{0x7e, 0}}}})
	f.Add(resp)
	f.Add(fastReplyPA(f, fa.key, resp).PADataValue)
	f.Add([]byte{0xa0, 0x03, 0x30, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseFastReply(b)
		fa.unwrap(types.PADataSequence{{PADataType: patype.PA_FX_FAST, PADataValue: b}}, 7)
		pas := types.PADataSequence{fastReplyPA(t, fa.key, b)}
		if r, ok, err := fa.unwrap(pas, 7); ok && err == nil {
			fa.checkFinished(r.Finished, b)
			fa.checkKDCChallenge(r.PAData, fa.key)
		}
		md, err := asn1.Marshal(pas)
		if err != nil {
			t.Fatal(err)
		}
		fa.unwrapError(&KDCError{Code: 25, EData: md}, 7)
	})
}

// TestLoginFASTClockSkew: with FAST the KDC checks the armor's
// authenticator first, and its skew error comes unprotected; the login's
// one skew correction still applies, and the password is sent once.
func TestLoginFASTClockSkew(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	kdc.AddPrincipal("host/localhost", "")
	kt, err := keytab.Load(kdc.Keytab("host/localhost"))
	if err != nil {
		t.Fatal(err)
	}
	armor, err := cl.Login(context.Background(), LoginOptions{Principal: "host/localhost", Keytab: kt})
	if err != nil {
		t.Fatal(err)
	}
	skewed := NewClient(cl.Config)
	skewed.Clock = func() time.Time { return time.Now().Add(time.Hour) }
	cc, err := skewed.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword), Armor: armor})
	if err != nil {
		t.Fatal(err)
	}
	if cc.KDCOffset > -59*time.Minute || cc.KDCOffset < -61*time.Minute {
		t.Errorf("offset %v, want about -1h", cc.KDCOffset)
	}
	before := kdc.LogCount("PREAUTH_FAILED: alice")
	skewed = NewClient(cl.Config)
	skewed.Clock = func() time.Time { return time.Now().Add(time.Hour) }
	_, err = skewed.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte("wrong"), Armor: armor})
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("err = %v", err)
	}
	if n := kdc.LogCount("PREAUTH_FAILED: alice") - before; n != 1 {
		t.Errorf("%d PREAUTH_FAILED lines for one wrong password, want 1", n)
	}
	// An armor cache of another realm has no TGT to armor with.
	_, err = cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword), Armor: &CCache{}})
	if !errors.Is(err, ErrArmor) {
		t.Errorf("empty armor cache: err = %v", err)
	}
}
