package lock

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// cheap keeps argon2id fast in tests that are not about its cost.
var cheap = KDF{Time: 1, MemoryKiB: 64, Threads: 1}

// memHolder is a Holder keeping secrets in a map, as the agent's keyring
// keeps keys.
type memHolder struct {
	mu      sync.Mutex
	secrets map[string][]byte
	seals   int
}

func newMemHolder(kv ...string) *memHolder {
	h := &memHolder{secrets: map[string][]byte{}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.secrets[kv[i]] = []byte(kv[i+1])
	}
	return h
}

func (h *memHolder) Seal(v *Vault) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seals++
	for id, s := range h.secrets {
		if err := v.Put(id, s); err != nil {
			return err
		}
		if len(s) > 0 && s[0] != 0 {
			panic("Put did not zero the plaintext")
		}
	}
	h.secrets = map[string][]byte{}
	return nil
}

func (h *memHolder) Unseal(m map[string][]byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, s := range m {
		h.secrets[id] = bytes.Clone(s)
	}
	return nil
}

func (h *memHolder) get(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(h.secrets[id])
}

func TestVerifier(t *testing.T) {
	v, err := NewVerifier([]byte("correct horse"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check([]byte("correct horse")); err != nil {
		t.Fatalf("right passphrase: %v", err)
	}
	for _, bad := range []string{"correct hors", "correct horsf", "Correct horse", "x"} {
		if err := v.Check([]byte(bad)); !errors.Is(err, ErrBadPassphrase) {
			t.Errorf("Check(%q) = %v, want ErrBadPassphrase", bad, err)
		}
	}
	// Same passphrase, fresh salt: different verifier.
	v2, _ := NewVerifier([]byte("correct horse"), cheap)
	if bytes.Equal(v.salt, v2.salt) || bytes.Equal(v.tag, v2.tag) {
		t.Fatal("salt not fresh")
	}
	if bytes.Contains(v.tag, []byte("correct horse")) {
		t.Fatal("tag holds the passphrase")
	}
}

func TestVerifierRefusesEmptyAndHuge(t *testing.T) {
	if _, err := NewVerifier(nil, cheap); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty: %v", err)
	}
	huge := bytes.Repeat([]byte("a"), 2<<20)
	start := time.Now()
	if _, err := NewVerifier(huge, DefaultKDF); !errors.Is(err, ErrPassphraseTooLong) {
		t.Fatalf("huge: %v", err)
	}
	t.Logf("huge refused in %v", time.Since(start))
	if _, err := NewVerifier(bytes.Repeat([]byte("a"), MaxPassphrase), cheap); err != nil {
		t.Fatalf("max length refused: %v", err)
	}
}

func TestVaultRoundTripAndTamper(t *testing.T) {
	pass := []byte("pw")
	ver, _ := NewVerifier(pass, cheap)
	v := newVault(ver.pub)
	a, b := []byte("alpha secret"), []byte("beta")
	if err := v.Put("a", a); err != nil {
		t.Fatal(err)
	}
	v.Put("b", b)
	if !bytes.Equal(a, make([]byte, len(a))) || !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("Put left plaintext in the caller's buffer")
	}
	if got := v.IDs(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("ids %v", got)
	}
	for _, s := range v.items {
		if bytes.Contains(s.box, []byte("alpha")) {
			t.Fatal("ciphertext holds plaintext")
		}
	}
	priv, err := ver.open(pass)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.open(priv)
	if err != nil || string(m["a"]) != "alpha secret" || string(m["b"]) != "beta" {
		t.Fatalf("open: %q %v", m, err)
	}
	// A flipped bit, or a secret moved to another id, does not open.
	s := v.items["a"]
	s.box[0] ^= 1
	if _, err := v.open(priv); err == nil {
		t.Fatal("tampered ciphertext opened")
	}
	s.box[0] ^= 1
	v.items["b"], v.items["a"] = v.items["a"], v.items["b"]
	if _, err := v.open(priv); err == nil {
		t.Fatal("swapped ids opened")
	}
	// Another passphrase's key does not open it.
	other, _ := NewVerifier([]byte("other"), cheap)
	opriv, _ := other.open([]byte("other"))
	v.items["b"], v.items["a"] = v.items["a"], v.items["b"]
	if _, err := v.open(opriv); err == nil {
		t.Fatal("opened with another key")
	}
}

func TestLockUnlock(t *testing.T) {
	ctx := context.Background()
	l := New(Options{KDF: cheap})
	h := newMemHolder("k1", "secret one", "k2", "secret two")
	l.AddHolder(h)
	var events []string
	l.OnLock(func(s Status) { events = append(events, "lock:"+string(s.Reason)) })
	l.OnUnlock(func(s Status) { events = append(events, "unlock") })

	if err := l.Unlock(ctx, []byte("pw")); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("unlock when unlocked: %v", err)
	}
	if err := l.Lock(nil); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty lock: %v", err)
	}
	if err := l.Lock(bytes.Repeat([]byte{'x'}, MaxPassphrase+1)); !errors.Is(err, ErrPassphraseTooLong) {
		t.Fatalf("huge lock: %v", err)
	}
	if l.Locked() || h.get("k1") != "secret one" {
		t.Fatal("refused lock changed state")
	}
	before := time.Now()
	if err := l.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	st := l.Status()
	if !st.Locked || st.Reason != ReasonCommand || st.Since.Before(before) || !st.Armed {
		t.Fatalf("status %+v", st)
	}
	if h.get("k1") != "" || len(h.secrets) != 0 {
		t.Fatal("holder still has secrets while locked")
	}
	if err := l.Lock([]byte("pw2")); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock when locked: %v", err)
	}
	if err := l.LockNow(ReasonIdle); !errors.Is(err, ErrLocked) {
		t.Fatalf("LockNow when locked: %v", err)
	}
	if err := l.SetPassphrase([]byte("x")); !errors.Is(err, ErrLocked) {
		t.Fatalf("SetPassphrase when locked: %v", err)
	}
	if err := l.AddHolder(newMemHolder()); !errors.Is(err, ErrLocked) {
		t.Fatalf("AddHolder when locked: %v", err)
	}
	if l.Status() != st {
		t.Fatal("refused request changed status")
	}
	// The second lock's passphrase did not replace the first.
	if err := l.Unlock(ctx, []byte("pw2")); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("wrong unlock: %v", err)
	}
	if !l.Locked() || l.Status().Failures != 1 {
		t.Fatalf("after wrong unlock %+v", l.Status())
	}
	if err := l.Unlock(ctx, []byte("")); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty unlock: %v", err)
	}
	if err := l.Unlock(ctx, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	st = l.Status()
	if st.Locked || st.Reason != "" || st.Failures != 0 {
		t.Fatalf("status %+v", st)
	}
	if h.get("k1") != "secret one" || h.get("k2") != "secret two" {
		t.Fatalf("secrets not restored: %q", h.secrets)
	}
	// LockNow reuses the passphrase of the last lock.
	if err := l.LockNow(ReasonSuspend); err != nil {
		t.Fatal(err)
	}
	if l.Status().Reason != ReasonSuspend || h.get("k1") != "" {
		t.Fatalf("status %+v", l.Status())
	}
	if err := l.Unlock(ctx, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	want := []string{"lock:command", "unlock", "lock:suspend", "unlock"}
	if len(events) != len(want) {
		t.Fatalf("hooks %v, want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("hooks %v, want %v", events, want)
		}
	}
}

func TestLockNowNeedsPassphrase(t *testing.T) {
	l := New(Options{KDF: cheap})
	if err := l.LockNow(ReasonIdle); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("LockNow without passphrase: %v", err)
	}
	if l.Status().Armed {
		t.Fatal("armed without passphrase")
	}
	if err := l.SetPassphrase([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if l.Locked() || !l.Status().Armed {
		t.Fatalf("SetPassphrase: %+v", l.Status())
	}
	if err := l.LockNow(ReasonScreenLock); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
}

type failingHolder struct{}

func (failingHolder) Seal(*Vault) error              { return errors.New("seal broke") }
func (failingHolder) Unseal(map[string][]byte) error { return errors.New("unseal broke") }

func TestHolderErrorsReportedStateStillChanges(t *testing.T) {
	var mu sync.Mutex
	var got []error
	l := New(Options{KDF: cheap, OnError: func(e error) { mu.Lock(); got = append(got, e); mu.Unlock() }})
	h := newMemHolder("k", "v")
	l.AddHolder(failingHolder{})
	l.AddHolder(h)
	if err := l.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if !l.Locked() || h.get("k") != "" {
		t.Fatal("a failing holder stopped the lock")
	}
	if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if h.get("k") != "v" {
		t.Fatal("a failing holder stopped the unlock")
	}
	if len(got) != 2 {
		t.Fatalf("OnError got %v", got)
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	ctx := context.Background()
	base := 150 * time.Millisecond
	l := New(Options{KDF: cheap, BackoffBase: base, BackoffMax: 4 * base})
	l.Lock([]byte("pw"))
	for i, want := range []time.Duration{base, 2 * base, 4 * base, 4 * base} {
		if d := l.guard.delay(i + 1); d != want {
			t.Fatalf("delay(%d) = %v, want %v", i+1, d, want)
		}
	}
	start := time.Now()
	if err := l.Unlock(ctx, []byte("bad")); !errors.Is(err, ErrBadPassphrase) {
		t.Fatal(err)
	}
	if d := time.Since(start); d < base {
		t.Fatalf("first wrong attempt returned after %v, want ≥ %v", d, base)
	}
	start = time.Now()
	l.Unlock(ctx, []byte("bad"))
	if d := time.Since(start); d < 2*base {
		t.Fatalf("second wrong attempt returned after %v, want ≥ %v", d, 2*base)
	}
	if l.Status().Failures != 2 {
		t.Fatalf("failures %d", l.Status().Failures)
	}
	// The right passphrase works at once after the penalty and resets it.
	if err := l.Unlock(ctx, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	l.Lock([]byte("pw"))
	start = time.Now()
	l.Unlock(ctx, []byte("bad"))
	if d := time.Since(start); d < base || l.Status().Failures != 1 {
		t.Fatalf("after reset: %v failures=%d", d, l.Status().Failures)
	}
}

func TestBackoffSharedAndCancellable(t *testing.T) {
	base := 100 * time.Millisecond
	l := New(Options{KDF: cheap, BackoffBase: base})
	l.Lock([]byte("pw"))
	l.Unlock(context.Background(), []byte("bad")) // penalty for the next: 2×base

	// Many parallel guessers: each waits its turn, so n wrong guesses take
	// at least the sum of their penalties, whatever the parallelism.
	const n = 3
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Unlock(context.Background(), []byte("bad")); !errors.Is(err, ErrBadPassphrase) {
				t.Errorf("parallel guess: %v", err)
			}
		}()
	}
	// Status and Touch are not held up meanwhile.
	time.Sleep(50 * time.Millisecond)
	ts := time.Now()
	for range 1000 {
		_ = l.Status()
		l.Touch()
	}
	if time.Since(ts) > base {
		t.Errorf("Status/Touch blocked behind unlock attempts")
	}
	wg.Wait()
	if d, min := time.Since(start), (2+4+8)*base; d < min {
		t.Fatalf("%d parallel guesses took %v, want ≥ %v", n, d, min)
	}
	// A caller waiting behind a penalty can give up.
	done := make(chan struct{})
	go func() { l.Unlock(context.Background(), []byte("bad")); close(done) }()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Unlock(ctx, []byte("pw")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled unlock: %v", err)
	}
	<-done
	if !l.Locked() {
		t.Fatal("cancelled unlock unlocked")
	}
}

func TestConcurrentUnlockOneWins(t *testing.T) {
	l := New(Options{KDF: cheap})
	h := newMemHolder("k", "v")
	l.AddHolder(h)
	l.Lock([]byte("pw"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Unlock(context.Background(), []byte("pw"))
			k := "ok"
			if err != nil {
				k = err.Error()
			}
			mu.Lock()
			results[k]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if results["ok"] != 1 || results[ErrNotLocked.Error()] != 7 {
		t.Fatalf("results %v", results)
	}
	if h.get("k") != "v" {
		t.Fatal("secret not restored exactly once")
	}
}

func TestIdleLocks(t *testing.T) {
	idle := 200 * time.Millisecond
	locked := make(chan Status, 1)
	errs := make(chan error, 4)
	l := New(Options{KDF: cheap, IdleAfter: idle, OnError: func(e error) {
		select {
		case errs <- e:
		default:
		}
	}})
	defer l.Close()
	l.OnLock(func(s Status) { locked <- s })
	// No passphrase yet: the timer reports and does not lock.
	select {
	case e := <-errs:
		if !errors.Is(e, ErrNoPassphrase) {
			t.Fatal(e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle timer never fired")
	}
	if l.Locked() {
		t.Fatal("locked without passphrase")
	}
	l.SetPassphrase([]byte("pw"))
	start := time.Now()
	l.Touch()
	select {
	case s := <-locked:
		if s.Reason != ReasonIdle {
			t.Fatalf("reason %q", s.Reason)
		}
		if d := time.Since(start); d < idle {
			t.Fatalf("idle lock after %v, before %v", d, idle)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle lock never came")
	}
	// Unlock re-arms it.
	l.Unlock(context.Background(), []byte("pw"))
	select {
	case <-locked:
	case <-time.After(10 * time.Second):
		t.Fatal("idle lock not re-armed after unlock")
	}
}

func TestIdleTouchAndHoldPostpone(t *testing.T) {
	idle := 300 * time.Millisecond
	l := New(Options{KDF: cheap})
	defer l.Close()
	l.SetPassphrase([]byte("pw"))
	l.SetIdle(idle)
	// Touching more often than the period keeps it unlocked.
	end := time.Now().Add(3 * idle)
	for time.Now().Before(end) {
		l.Touch()
		time.Sleep(idle / 6)
	}
	if l.Locked() {
		t.Fatal("locked despite regular use")
	}
	release := l.Hold()
	time.Sleep(3 * idle)
	if l.Locked() {
		t.Fatal("locked during a Hold")
	}
	release()
	release() // idempotent
	deadline := time.Now().Add(10 * time.Second)
	for !l.Locked() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !l.Locked() {
		t.Fatal("no idle lock after release")
	}
	l.Unlock(context.Background(), []byte("pw"))
	l.SetIdle(0)
	time.Sleep(2 * idle)
	if l.Locked() {
		t.Fatal("SetIdle(0) did not disable")
	}
}

// A lock seals under its own passphrase but never replaces the armed one
// that automatic locks use: a client that can lock and unlock (a server
// the agent is forwarded to) cannot choose the passphrase of the next idle
// lock. The first Lock arms when nothing is armed; LockOnly never does.
func TestLockDoesNotReplaceArmedPassphrase(t *testing.T) {
	ctx := context.Background()
	l := New(Options{KDF: cheap})
	defer l.Close()
	if err := l.SetPassphrase([]byte("armed")); err != nil {
		t.Fatal(err)
	}
	if err := l.Lock([]byte("chosen")); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx, []byte("armed")); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("a lock under its own passphrase opened with the armed one: %v", err)
	}
	if err := l.Unlock(ctx, []byte("chosen")); err != nil {
		t.Fatal(err)
	}
	if err := l.LockNow(ReasonIdle); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx, []byte("chosen")); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("the idle lock sealed under the passphrase of a client's lock: %v", err)
	}
	if err := l.Unlock(ctx, []byte("armed")); err != nil {
		t.Fatalf("the idle lock did not seal under the armed passphrase: %v", err)
	}

	l2 := New(Options{KDF: cheap})
	defer l2.Close()
	if err := l2.LockOnly([]byte("x")); err != nil {
		t.Fatal(err)
	}
	l2.Unlock(ctx, []byte("x"))
	if err := l2.LockNow(ReasonIdle); !errors.Is(err, ErrNoPassphrase) || l2.Status().Armed {
		t.Fatalf("LockOnly armed the automatic lock: %v", err)
	}
	l2.Lock([]byte("first"))
	l2.Unlock(ctx, []byte("first"))
	l2.Lock([]byte("second"))
	l2.Unlock(ctx, []byte("second"))
	if err := l2.LockNow(ReasonIdle); err != nil {
		t.Fatal(err)
	}
	if err := l2.Unlock(ctx, []byte("first")); err != nil {
		t.Fatalf("the first lock's passphrase did not arm: %v", err)
	}
}
