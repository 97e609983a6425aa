package lock

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

func TestWipe(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edPtr := &ed
	edSlice := ed // the value form shares the array
	if err := Wipe(edPtr); err != nil {
		t.Fatal(err)
	}
	if *edPtr != nil || !allZero(edSlice) {
		t.Fatal("ed25519 key not zeroed")
	}
	_, ed2, _ := ed25519.GenerateKey(rand.Reader)
	Wipe(ed2)
	if !allZero(ed2) {
		t.Fatal("ed25519 value not zeroed")
	}

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d, p := rk.D, rk.Primes[0]
	dp := rk.Precomputed.Dp
	pub := rk.PublicKey
	digest := sha256.Sum256([]byte("m"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, rk, 0, digest[:])
	Wipe(rk)
	for name, x := range map[string]interface{ Sign() int }{"d": d, "p": p, "dp": dp} {
		if x.Sign() != 0 {
			t.Fatalf("rsa %s not zeroed", name)
		}
	}
	if w := d.Bits(); !wordsZero(w[:cap(w)]) {
		t.Fatal("rsa d spare capacity not zeroed")
	}
	if rk.Precomputed.Dp != nil || rk.Precomputed.CRTValues != nil {
		t.Fatal("precomputed values kept")
	}
	// The public half still verifies what the key signed.
	if err := rsa.VerifyPKCS1v15(&pub, 0, digest[:], sig); err != nil {
		t.Fatalf("public key damaged: %v", err)
	}
	if _, err := rsa.SignPKCS1v15(rand.Reader, rk, 0, digest[:]); err == nil {
		t.Fatal("wiped rsa key still signs")
	}

	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed0 := ek.D
	Wipe(ek)
	if ed0.Sign() != 0 || ek.X.Sign() == 0 {
		t.Fatal("ecdsa D not zeroed, or public point damaged")
	}

	buf := []byte("pem bytes")
	bufp := &buf
	alias := buf
	Wipe(bufp)
	if buf != nil || !allZero(alias) {
		t.Fatal("*[]byte not wiped")
	}
	if err := Wipe("a string"); err == nil {
		t.Fatal("unsupported type accepted")
	}
	if err := Wipe(nil); err != nil {
		t.Fatal(err)
	}
	var nilRSA *rsa.PrivateKey
	if err := Wipe(nilRSA); err != nil {
		t.Fatal(err)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func wordsZero[W ~uint](w []W) bool {
	for _, c := range w {
		if c != 0 {
			return false
		}
	}
	return true
}
