package lock

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Reason says why the Locker is locked.
type Reason string

// Reasons for a lock, as shown by `sesame status`.
const (
	ReasonCommand    Reason = "command"     // ssh-add -x, sesame lock
	ReasonIdle       Reason = "idle"        // no use for the idle period
	ReasonSuspend    Reason = "suspend"     // logind PrepareForSleep
	ReasonScreenLock Reason = "screen-lock" // screen saver or logind session Lock
)

// Status is a snapshot of the Locker's state.
type Status struct {
	Locked bool
	// Since is when the current state began (the Locker's creation for
	// the first unlocked period).
	Since time.Time
	// Reason is why it is locked; empty while unlocked.
	Reason Reason
	// Failures counts wrong passphrases since the last successful unlock.
	Failures int
	// Armed reports whether a lock passphrase is known, so that the
	// automatic triggers (idle, suspend, screen lock) can lock.
	Armed bool
}

// A Holder owns plaintext secrets that must not survive a lock: the
// agent's keyring, the Kerberos ticket cache in stash mode.
//
// Seal is called on every lock with an empty Vault. It must Put each secret
// (Put zeroes the buffer it is given) and wipe and drop every copy of its
// own (see Wipe); after Seal returns, the Holder must hold no usable secret.
// It runs inside Do. An error is reported through Options.OnError; the lock
// goes ahead regardless.
//
// Unseal is called on unlock with the plaintexts this Holder put, keyed by
// id. The buffers are zeroed as soon as Unseal returns, so it must parse or
// copy what it keeps. It runs inside Do, so keys parsed there are
// erased by the runtime once dropped (with GOEXPERIMENT=runtimesecret). An
// error is reported through Options.OnError; the unlock goes ahead.
//
// Both run with the Locker's transition mutex held: they may call Locked,
// Status and Touch but not Lock, LockNow, Unlock or SetPassphrase.
type Holder interface {
	Seal(v *Vault) error
	Unseal(secrets map[string][]byte) error
}

// Options configure a Locker. The zero value is usable.
type Options struct {
	// KDF is the argon2id cost; zero means DefaultKDF.
	KDF KDF
	// BackoffBase and BackoffMax shape the delay after wrong passphrases:
	// Base × 2^(n−1) after the n-th consecutive failure, capped at Max.
	// Zero means 100 ms and 10 s.
	BackoffBase, BackoffMax time.Duration
	// IdleAfter locks after this long without Touch; zero disables.
	IdleAfter time.Duration
	// OnError receives errors that have no caller to return to: a Holder
	// failing to seal or unseal, an automatic lock that could not happen.
	// Nil drops them.
	OnError func(error)
}

// Locker is the lock state machine. Create it with New; it is safe for
// concurrent use. Locked, Status and Touch never block on a transition in
// progress.
type Locker struct {
	opts  Options
	epoch time.Time // base for the idle clock (monotonic)

	status atomic.Pointer[Status]

	mu       sync.Mutex // serialises transitions; guards the fields below
	verifier *Verifier  // of the current lock (or the last one)
	armed    *Verifier  // what automatic locks seal under; nil: none
	holders  []Holder
	vaults   []*Vault // one per holder while locked
	onLock   []func(Status)
	onUnlock []func(Status)
	closed   bool

	// guard is the back-off of unlock attempts, shared with every other
	// passphrase check of the program (see Guard).
	guard *Guard

	idle idleState
}

// New returns an unlocked Locker.
func New(o Options) *Locker {
	if o.BackoffBase <= 0 {
		o.BackoffBase = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	l := &Locker{opts: o, epoch: time.Now(), guard: NewGuard(o.BackoffBase, o.BackoffMax)}
	l.status.Store(&Status{Since: time.Now()})
	l.SetIdle(o.IdleAfter)
	return l
}

// Locked reports whether the Locker is locked.
func (l *Locker) Locked() bool { return l.status.Load().Locked }

// Status returns the current state.
func (l *Locker) Status() Status {
	// The failure count is the guard's, shared with other checks.
	s := *l.status.Load()
	s.Failures = l.guard.Failures()
	return s
}

// Guard is the back-off the Locker's unlock attempts go through. Every
// other passphrase check that guards the same secrets must use it too.
func (l *Locker) Guard() *Guard { return l.guard }

// AddHolder registers h to be sealed on every lock and unsealed on unlock.
// Refused while locked.
func (l *Locker) AddHolder(h Holder) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Locked() {
		return ErrLocked
	}
	l.holders = append(l.holders, h)
	return nil
}

// OnLock registers f to run after every lock, with the new status. Hooks run
// in order with the transition mutex held (same rules as Holder).
func (l *Locker) OnLock(f func(Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onLock = append(l.onLock, f)
}

// OnUnlock registers f to run after every unlock, like OnLock. Work that
// may take long (renewing a Kerberos ticket over the network) belongs in a
// goroutine started by f, so that the transition mutex is not held for it.
func (l *Locker) OnUnlock(f func(Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onUnlock = append(l.onUnlock, f)
}

// SetPassphrase sets the lock passphrase without locking, which arms the
// automatic triggers. Refused while locked (the sealed secrets are bound to
// the current one). The caller should zero pass afterwards.
func (l *Locker) SetPassphrase(pass []byte) error {
	if l.Locked() {
		return ErrLocked
	}
	v, err := NewVerifier(pass, l.opts.KDF)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Locked() {
		return ErrLocked
	}
	l.armed = v
	l.setStatus(func(s *Status) { s.Armed = true })
	return nil
}

// Lock locks with pass (as ssh-add -x does): every Holder's secrets are
// sealed under it and wiped, and only pass unlocks. When no passphrase is
// armed yet, pass also becomes the one automatic locks seal under; an
// armed passphrase is never replaced by a lock, so that whoever can send a
// lock and its unlock (a server the agent is forwarded to) cannot choose
// the passphrase of the locks that follow. Locking when locked is
// ErrLocked with nothing changed. The caller should zero pass afterwards.
func (l *Locker) Lock(pass []byte) error { return l.lock(pass, true) }

// LockOnly is Lock that never arms the automatic locks: for a lock asked
// by a client that cannot be trusted with them.
func (l *Locker) LockOnly(pass []byte) error { return l.lock(pass, false) }

func (l *Locker) lock(pass []byte, arm bool) error {
	if err := checkPassphrase(pass); err != nil {
		return err
	}
	if l.Locked() {
		return ErrLocked // before paying for argon2id
	}
	v, err := NewVerifier(pass, l.opts.KDF)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Locked() {
		return ErrLocked
	}
	if l.closed {
		return ErrClosed
	}
	l.verifier = v
	if arm && l.armed == nil {
		l.armed = v
		l.setStatus(func(s *Status) { s.Armed = true })
	}
	l.lockLocked(ReasonCommand)
	return nil
}

// LockNow locks under the armed passphrase (set by SetPassphrase or the
// first Lock); it needs no passphrase and costs no argon2id. It is what
// the automatic triggers call. ErrNoPassphrase when none is set, ErrLocked
// when already locked.
func (l *Locker) LockNow(reason Reason) error {
	if l.Locked() {
		return ErrLocked // without waiting for an unlock attempt in progress
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case l.Locked():
		return ErrLocked
	case l.armed == nil:
		return ErrNoPassphrase
	}
	l.verifier = l.armed
	l.lockLocked(reason)
	return nil
}

// lockLocked seals every holder and flips the state. l.mu must be held.
func (l *Locker) lockLocked(reason Reason) {
	l.idleStop()
	vaults := make([]*Vault, len(l.holders))
	var errs []error
	Do(func() {
		for i, h := range l.holders {
			vaults[i] = newVault(l.verifier.pub)
			if err := h.Seal(vaults[i]); err != nil {
				errs = append(errs, fmt.Errorf("lock: seal: %w", err))
			}
		}
	})
	l.vaults = vaults
	st := l.setStatus(func(s *Status) {
		s.Locked, s.Since, s.Reason = true, time.Now(), reason
	})
	for _, f := range l.onLock {
		f(st)
	}
	l.report(errs...)
	scrubHeap()
}

// scrubHeap makes freed secrets go away now rather than at some later GC:
// the first collection frees (and, under runtime/secret, zeroes) what the
// holders dropped and queues the cleanups that evict crypto's cached FIPS
// keys; after those have had a moment to run, FreeOSMemory collects again
// and hands free pages back to the kernel, which zero-fills them.
func scrubHeap() {
	runtime.GC()
	time.Sleep(5 * time.Millisecond)
	debug.FreeOSMemory()
}

// Unlock checks pass and, when it is right, gives every Holder its secrets
// back. It is one attempt of the Locker's Guard: attempts are serialised;
// after a wrong passphrase the caller and every later attempt wait out a
// delay that doubles with each consecutive failure (see Options). A caller
// may give up waiting through ctx; a penalty once started still applies to
// the next attempt. Unlocking when not locked is ErrNotLocked with nothing
// changed; a wrong passphrase is ErrBadPassphrase.
func (l *Locker) Unlock(ctx context.Context, pass []byte) error {
	return l.UnlockThen(ctx, pass, nil)
}

// UnlockThen is Unlock followed, within the same attempt, by then (when
// the unlock succeeded and then is not nil): a further check of the same
// passphrase, such as opening a key store with it. When then fails with
// ErrBadPassphrase the Locker stays unlocked but the attempt counts as a
// failure, so that locking and unlocking with chosen passphrases is no
// way round the back-off of the other check. Its error is returned.
func (l *Locker) UnlockThen(ctx context.Context, pass []byte, then func() error) error {
	if err := checkPassphrase(pass); err != nil {
		return err
	}
	if !l.Locked() {
		return ErrNotLocked
	}
	return l.guard.Attempt(ctx, func() error {
		if err := l.tryUnlock(pass); err != nil || then == nil {
			return err
		}
		return then()
	})
}

// tryUnlock checks pass and, when it is right, opens the vaults, hands
// the plaintexts to the holders and flips the state, all inside Do.
func (l *Locker) tryUnlock(pass []byte) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.Locked() {
		return ErrNotLocked
	}
	var errs []error
	Do(func() {
		priv, e := l.verifier.open(pass)
		if e != nil {
			err = e
			return
		}
		// Open everything before handing anything out: a vault that
		// does not open leaves the state locked and nothing restored.
		opened := make([]map[string][]byte, len(l.vaults))
		for i, v := range l.vaults {
			if opened[i], e = v.open(priv); e != nil {
				for _, m := range opened[:i] {
					for _, p := range m {
						clear(p)
					}
				}
				err = fmt.Errorf("lock: %w", e)
				return
			}
		}
		for i, h := range l.holders {
			if e := h.Unseal(opened[i]); e != nil {
				errs = append(errs, fmt.Errorf("lock: unseal: %w", e))
			}
			for _, p := range opened[i] {
				clear(p)
			}
		}
	})
	if err != nil {
		return err
	}
	l.vaults = nil
	st := l.setStatus(func(s *Status) {
		s.Locked, s.Since, s.Reason = false, time.Now(), ""
	})
	st.Failures = l.guard.Failures()
	for _, f := range l.onUnlock {
		f(st)
	}
	l.report(errs...)
	l.idleArm()
	return nil
}

// Close stops the idle timer and makes later locks fail with ErrClosed.
// The state is left as it is.
func (l *Locker) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.idleStop()
}

func (l *Locker) setStatus(f func(*Status)) Status {
	s := *l.status.Load()
	f(&s)
	l.status.Store(&s)
	return s
}

func (l *Locker) report(errs ...error) {
	if l.opts.OnError == nil {
		return
	}
	for _, e := range errs {
		if e != nil {
			l.opts.OnError(e)
		}
	}
}
