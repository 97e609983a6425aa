package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/lock"
)

var cheapKDF = lock.KDF{Time: 1, MemoryKiB: 64, Threads: 1}

func sealingServer(t *testing.T, o lock.Options, opts Options) (*Server, *lock.Locker) {
	t.Helper()
	o.KDF = cheapKDF
	l := lock.New(o)
	t.Cleanup(l.Close)
	opts.Locker = NewSealingLocker(context.Background(), l)
	return quietServer(opts), l
}

// A lock through the protocol leaves no private key in the keyring, only
// what is needed to list them again; unlock restores every key with its
// comment, order, confirm flag and remaining lifetime.
func TestSealingLockerSealsAndRestores(t *testing.T) {
	srv, _ := sealingServer(t, lock.Options{}, Options{})
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed := mustEd25519(t)
	srv.AddKey(xagent.AddedKey{PrivateKey: ed, Comment: "ed"})
	srv.AddKey(xagent.AddedKey{PrivateKey: rk, Comment: "rsa", LifetimeSecs: 600})
	srv.AddKey(xagent.AddedKey{PrivateKey: ek, Comment: "ecdsa", ConfirmBeforeUse: true})
	ag := pipeAgent(t, srv)

	if err := ag.Lock(nil); err == nil {
		t.Fatal("empty lock passphrase accepted")
	}
	if err := ag.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	srv.keys.mu.RLock()
	held, sealed := len(srv.keys.order), len(srv.keys.sealed)
	srv.keys.mu.RUnlock()
	if held != 0 || sealed != 3 {
		t.Fatalf("locked: %d keys in the clear, %d sealed", held, sealed)
	}
	if rk.D.Sign() != 0 {
		t.Error("RSA private exponent not wiped")
	}
	if keys, _ := ag.List(); len(keys) != 0 {
		t.Errorf("locked agent lists %d keys", len(keys))
	}
	if err := ag.Lock([]byte("again")); err == nil {
		t.Error("lock when locked succeeded")
	}
	if err := srv.AddKey(xagent.AddedKey{PrivateKey: mustEd25519(t)}); !errors.Is(err, ErrLocked) {
		t.Errorf("add while locked: %v", err)
	}
	if _, err := ag.Extension(ExtQuery, nil); err == nil {
		t.Error("query answered while locked")
	}
	if st := srv.Status(); !st.Locked || st.Keys != 3 || st.Reason != "command" || !st.Sealing {
		t.Errorf("status: %+v", st)
	}
	if err := ag.Unlock([]byte("nope")); err == nil {
		t.Fatal("wrong passphrase unlocked")
	}
	if err := ag.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := ag.Unlock([]byte("pw")); err == nil {
		t.Error("unlock when unlocked succeeded")
	}
	ids := srv.Identities()
	if len(ids) != 3 || ids[0].Comment != "ed" || ids[1].Comment != "rsa" || ids[2].Comment != "ecdsa" {
		t.Fatalf("after unlock: %v", ids)
	}
	srv.keys.mu.RLock()
	rsaEntry, ecEntry := srv.keys.order[1], srv.keys.order[2]
	srv.keys.mu.RUnlock()
	if rsaEntry.expire.IsZero() || time.Until(rsaEntry.expire) > 600*time.Second {
		t.Errorf("lifetime lost: expires %v", rsaEntry.expire)
	}
	if !ecEntry.confirm {
		t.Error("confirm constraint lost")
	}
	for _, id := range ids[:2] {
		sig, err := ag.Sign(id.Key, []byte("data"))
		if err != nil {
			t.Fatalf("sign with %s after unlock: %v", id.Comment, err)
		}
		if err := id.Key.Verify([]byte("data"), sig); err != nil {
			t.Error(err)
		}
	}
}

// An automatic lock (as the idle timer or suspend does it) seals too.
func TestSealingLockerAutomaticLock(t *testing.T) {
	srv, l := sealingServer(t, lock.Options{}, Options{})
	srv.AddKey(xagent.AddedKey{PrivateKey: mustEd25519(t), Comment: "ed"})
	if err := l.LockNow(lock.ReasonIdle); !errors.Is(err, lock.ErrNoPassphrase) {
		t.Fatalf("automatic lock without a passphrase: %v", err)
	}
	if err := l.SetPassphrase([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := l.LockNow(lock.ReasonSuspend); err != nil {
		t.Fatal(err)
	}
	if st := srv.Status(); !st.Locked || st.Reason != "suspend" || srv.keys.count() != 0 {
		t.Fatalf("after automatic lock: %+v, %d in the clear", st, srv.keys.count())
	}
	if err := srv.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if len(srv.Identities()) != 1 {
		t.Error("key not restored")
	}
}

// Stored keys that need a passphrase wait for an unlock, which loads them
// even though the agent is not locked and arms the automatic lock.
func TestUnlockLoadsPendingStore(t *testing.T) {
	k := mustEd25519(t)
	loader := func(p []byte) ([]xagent.AddedKey, error) {
		switch string(p) {
		case "":
			return nil, ErrNeedPassphrase
		case "vault":
			return []xagent.AddedKey{{PrivateKey: slices.Clone(k), Comment: "stored"}}, nil
		}
		return nil, ErrBadPassphrase
	}
	srv, l := sealingServer(t, lock.Options{}, Options{KeyLoader: loader})
	if err := srv.loadKeys(nil); err != nil {
		t.Fatal(err)
	}
	if !srv.Pending() || len(srv.Identities()) != 0 {
		t.Fatal("store not pending")
	}
	if err := srv.Unlock([]byte("wrong")); !errors.Is(err, ErrBadPassphrase) || !srv.Pending() {
		t.Fatalf("wrong vault passphrase: %v, pending %v", err, srv.Pending())
	}
	if err := srv.Unlock([]byte("vault")); err != nil {
		t.Fatal(err)
	}
	ids := srv.Identities()
	if srv.Pending() || len(ids) != 1 || ids[0].Comment != "stored" || !l.Status().Armed {
		t.Fatalf("after loading: pending %v, %v, armed %v", srv.Pending(), ids, l.Status().Armed)
	}
	if err := srv.Unlock([]byte("vault")); !errors.Is(err, ErrNotLocked) {
		t.Errorf("unlock when loaded and unlocked: %v", err)
	}
	pub, _ := ssh.NewPublicKey(k.Public())
	if _, err := pipeAgent(t, srv).Sign(pub, []byte("x")); err != nil {
		t.Error(err)
	}
}

// Requests that arrive together (pipelined in one write) are each answered
// in their own shot, the fast list path included.
func TestPipelinedRequestsOneShotEach(t *testing.T) {
	srv := quietServer(Options{})
	srv.AddKey(xagent.AddedKey{PrivateKey: mustEd25519(t), Comment: "k"})
	a, b := net.Pipe()
	defer b.Close()
	go func() { srv.ServeConn(newFrameConn(a, 0), ConnInfo{}); a.Close() }()
	query := append([]byte{27}, ssh.Marshal(struct{ S string }{ExtQuery})...)
	var batch []byte
	batch = append(batch, 0, 0, 0, 1, msgRequestIdentities)
	batch = binary.BigEndian.AppendUint32(batch, uint32(len(query)))
	batch = append(batch, query...)
	batch = append(batch, 0, 0, 0, 1, msgRequestIdentities)
	go b.Write(batch)
	want := []byte{msgIdentitiesAnswer, replyExtensionResponse, msgIdentitiesAnswer}
	for i, w := range want {
		var hdr [4]byte
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(b, hdr[:]); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(b, body); err != nil || body[0] != w {
			t.Fatalf("reply %d: %v, type %d want %d", i, err, body[0], w)
		}
	}
}

// Guesses at the key store's passphrase through UNLOCK, while its keys
// wait for one, go through the lock's back-off and failure count: each
// wrong one waits longer, and a lock guess after them waits longer still.
// Locking and unlocking with a chosen passphrase, which the store is then
// tried with, is no way round it.
func TestStoreGuessesShareTheLockBackoff(t *testing.T) {
	loader := func(p []byte) ([]xagent.AddedKey, error) {
		if len(p) == 0 {
			return nil, ErrNeedPassphrase
		}
		return nil, ErrBadPassphrase
	}
	const base = 40 * time.Millisecond
	srv, l := sealingServer(t, lock.Options{BackoffBase: base, BackoffMax: time.Minute}, Options{KeyLoader: loader})
	if err := srv.loadKeys(nil); err != nil || !srv.Pending() {
		t.Fatalf("store not pending: %v", err)
	}
	ag := pipeAgent(t, srv)
	start := time.Now()
	for i := 1; i <= 3; i++ {
		if err := ag.Unlock([]byte("guess")); err == nil {
			t.Fatal("wrong store passphrase accepted")
		}
		if f := srv.Status().Failures; f != i {
			t.Fatalf("after %d store guesses the status counts %d failures", i, f)
		}
	}
	// Penalties 1, 2 and 4 × base, each served by the guesser.
	if d := time.Since(start); d < 7*base {
		t.Errorf("3 store guesses took %v, want at least %v", d, 7*base)
	}
	// A lock chosen by the guesser, then unlocked with it: the store is
	// tried with it, and that failure counts too (after the wait of the
	// third one, 8 × base).
	if err := ag.Lock([]byte("guess")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := ag.Unlock([]byte("guess")); err != nil {
		t.Fatalf("unlock with the lock's passphrase: %v", err)
	}
	if d := time.Since(start); d < 8*base {
		t.Errorf("unlock after 3 failures took %v, want at least %v", d, 8*base)
	}
	if f := l.Status().Failures; f != 4 || !srv.Pending() || srv.Locked() {
		t.Errorf("after lock and unlock with a wrong store passphrase: %d failures, pending %v, locked %v",
			f, srv.Pending(), srv.Locked())
	}
}

// While locked the agent answers nothing but unlock and an empty list,
// like ssh-agent: session-bind fails, and so does the status, except to
// a local client (sesame status, lock and unlock need it).
func TestLockedAnswersOnlyUnlock(t *testing.T) {
	srv, _ := sealingServer(t, lock.Options{}, Options{})
	host := newHostKey(t)
	sid := randBytes(32)
	bound := pipeAgent(t, srv)
	if _, err := bound.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, false)); err != nil {
		t.Fatal(err)
	}
	local := pipeAgent(t, srv)
	if err := local.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	sid2 := randBytes(32)
	if _, err := local.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid2, sid2, false)); err == nil {
		t.Error("session-bind accepted while locked")
	}
	if _, err := bound.Extension(ExtStatus, nil); err == nil {
		t.Error("status answered to a bound (possibly forwarded) connection while locked")
	}
	if reply, err := pipeAgent(t, srv).Extension(ExtStatus, nil); err != nil || len(reply) == 0 || reply[0] != replySuccess {
		t.Errorf("status to a local client while locked: %v", err)
	}
	if _, err := local.Extension(ExtQuery, nil); err == nil {
		t.Error("query answered while locked")
	}
}

// A lock sent on a connection that may come from a forwarded agent does
// not arm the automatic locks with its passphrase; a local one does.
func TestForwardedLockDoesNotArm(t *testing.T) {
	srv, l := sealingServer(t, lock.Options{}, Options{})
	host := newHostKey(t)
	sid := randBytes(32)
	fwd := pipeAgent(t, srv)
	if _, err := fwd.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, true)); err != nil {
		t.Fatal(err)
	}
	if err := fwd.Lock([]byte("chosen")); err != nil {
		t.Fatal(err)
	}
	if err := fwd.Unlock([]byte("chosen")); err != nil {
		t.Fatal(err)
	}
	if l.Status().Armed {
		t.Fatal("a lock from a forwarded connection armed the automatic locks")
	}
	if err := l.LockNow(lock.ReasonIdle); !errors.Is(err, lock.ErrNoPassphrase) {
		t.Fatalf("idle lock after a forwarded lock: %v", err)
	}
	local := pipeAgent(t, srv)
	local.Lock([]byte("mine"))
	local.Unlock([]byte("mine"))
	if !l.Status().Armed {
		t.Error("a local lock did not arm the automatic locks")
	}
}
