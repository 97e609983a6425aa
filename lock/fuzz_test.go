package lock

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzUnlock feeds arbitrary passphrases to a locked Locker: only the right
// one unlocks, nothing panics, and a refused attempt changes nothing but
// the failure count.
func FuzzUnlock(f *testing.F) {
	right := []byte("right passphrase")
	for _, s := range [][]byte{nil, {0}, right, right[:len(right)-1], append(bytes.Clone(right), 0), bytes.Repeat([]byte{0xff}, 300)} {
		f.Add(s)
	}
	l := New(Options{KDF: cheap, BackoffBase: time.Nanosecond, BackoffMax: time.Nanosecond})
	h := newMemHolder("k", "secret")
	l.AddHolder(h)
	if err := l.Lock(right); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pass []byte) {
		err := l.Unlock(context.Background(), pass)
		switch {
		case bytes.Equal(pass, right):
			if err != nil || l.Locked() || h.get("k") != "secret" {
				t.Fatalf("right passphrase: %v", err)
			}
			if err := l.Lock(right); err != nil {
				t.Fatal(err)
			}
		case len(pass) == 0:
			if !errors.Is(err, ErrEmptyPassphrase) {
				t.Fatalf("empty: %v", err)
			}
		case len(pass) > MaxPassphrase:
			if !errors.Is(err, ErrPassphraseTooLong) {
				t.Fatalf("long: %v", err)
			}
		default:
			if !errors.Is(err, ErrBadPassphrase) {
				t.Fatalf("wrong passphrase %q: %v", pass, err)
			}
		}
		if !l.Locked() || h.get("k") != "" {
			t.Fatal("state changed by a refused unlock")
		}
	})
}
