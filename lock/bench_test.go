package lock

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Run with and without GOEXPERIMENT=runtimesecret to see what Do costs.

func BenchmarkEd25519Sign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func BenchmarkEd25519SignInDo(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		Do(func() { ed25519.Sign(priv, msg) })
	}
}

// BenchmarkDoEmpty is the fixed cost of entering and leaving Do.
func BenchmarkDoEmpty(b *testing.B) {
	for b.Loop() {
		Do(func() {})
	}
}

func benchLocker(b *testing.B, kdf KDF, secrets int) (*Locker, *memHolder) {
	l := New(Options{KDF: kdf})
	h := newMemHolder()
	for i := range secrets {
		h.secrets[string(rune('a'+i))] = make([]byte, 400) // an ed25519 PEM
	}
	l.AddHolder(h)
	return l, h
}

// BenchmarkLock is `ssh-add -x` with ten keys: argon2id for the new
// verifier, sealing, heap scrub.
func BenchmarkLock(b *testing.B) {
	l, h := benchLocker(b, DefaultKDF, 0)
	for b.Loop() {
		for i := range 10 {
			h.secrets[string(rune('a'+i))] = make([]byte, 400)
		}
		if err := l.Lock([]byte("pw")); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		l.Unlock(context.Background(), []byte("pw"))
		b.StartTimer()
	}
}

// BenchmarkLockNow is an automatic lock: no argon2id.
func BenchmarkLockNow(b *testing.B) {
	l, h := benchLocker(b, DefaultKDF, 0)
	l.SetPassphrase([]byte("pw"))
	for b.Loop() {
		for i := range 10 {
			h.secrets[string(rune('a'+i))] = make([]byte, 400)
		}
		if err := l.LockNow(ReasonIdle); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		l.Unlock(context.Background(), []byte("pw"))
		b.StartTimer()
	}
}

// BenchmarkUnlock is `ssh-add -X` with ten keys: argon2id and opening.
func BenchmarkUnlock(b *testing.B) {
	l, h := benchLocker(b, DefaultKDF, 0)
	l.SetPassphrase([]byte("pw"))
	for b.Loop() {
		b.StopTimer()
		for i := range 10 {
			h.secrets[string(rune('a'+i))] = make([]byte, 400)
		}
		l.LockNow(ReasonIdle)
		b.StartTimer()
		if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
			b.Fatal(err)
		}
	}
}

// Parsing allocates a lot; under runtime/secret every allocation inside Do
// is tracked and zeroed when freed. This is the cost the agent pays when a
// whole request (ssh-add's key upload) runs inside Do.
func benchParse(b *testing.B, inDo bool) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "bench")
	if err != nil {
		b.Fatal(err)
	}
	data := pem.EncodeToMemory(blk)
	run := func(f func()) { f() }
	if inDo {
		run = Do
	}
	b.ReportAllocs()
	for b.Loop() {
		run(func() {
			k, err := ssh.ParseRawPrivateKey(data)
			if err != nil {
				b.Fatal(err)
			}
			s, _ := ssh.NewSignerFromKey(k)
			s.Sign(rand.Reader, data[:64])
			Wipe(k)
		})
	}
}

func BenchmarkParseSign(b *testing.B)     { benchParse(b, false) }
func BenchmarkParseSignInDo(b *testing.B) { benchParse(b, true) }
