package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The fast signer must give exactly the standard library's signatures
// (Ed25519 is deterministic), and they must verify.
func TestEd25519MatchesStdlib(t *testing.T) {
	msgs := [][]byte{nil, {0}, bytes.Repeat([]byte{0xff}, 150), make([]byte, 4096)}
	for i := 0; i < 300; i++ {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m := make([]byte, i)
		rand.Read(m)
		for _, msg := range append(msgs, m) {
			sig := signEd25519(k, msg)
			if want := ed25519.Sign(k, msg); !bytes.Equal(sig.Blob, want) {
				t.Fatalf("key %d, %d-byte message: signature differs from crypto/ed25519", i, len(msg))
			}
			pub, _ := ssh.NewPublicKey(k.Public())
			if err := pub.Verify(msg, sig); err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
		}
	}
}

func TestEd25519Key(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	if got := ed25519Key(k); !bytes.Equal(got, k) {
		t.Fatal("value key not recognised")
	}
	if got := ed25519Key(&k); !bytes.Equal(got, k) {
		t.Fatal("pointer key not recognised")
	}
	var nilPtr *ed25519.PrivateKey
	if ed25519Key(nilPtr) != nil || ed25519Key(nil) != nil || ed25519Key("x") != nil {
		t.Fatal("non-keys recognised")
	}
}

// Any 64 bytes, even a private half that does not match its public half,
// sign the same way in both implementations.
func FuzzEd25519MatchesStdlib(f *testing.F) {
	f.Add(make([]byte, 64), []byte("data"))
	f.Add(bytes.Repeat([]byte{0xff}, 64), []byte{})
	f.Fuzz(func(t *testing.T, key, msg []byte) {
		if len(key) < ed25519.SeedSize {
			return
		}
		var k ed25519.PrivateKey
		if len(key) >= ed25519.PrivateKeySize {
			k = ed25519.PrivateKey(key[:ed25519.PrivateKeySize])
		} else {
			k = ed25519.NewKeyFromSeed(key[:ed25519.SeedSize])
		}
		if got, want := signEd25519(k, msg).Blob, ed25519.Sign(k, msg); !bytes.Equal(got, want) {
			t.Fatalf("signature differs from crypto/ed25519 for key %x", key)
		}
	})
}
