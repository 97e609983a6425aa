package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/lock"
)

// SealingLocker is the Locker backed by a lock.Locker: while locked the
// agent's private keys exist only sealed in the lock's Vault, under a key
// that only the lock passphrase re-derives. The server registers its
// keyring as a lock.Holder, so every lock seals the keys whatever its
// cause (ssh-add -x, the idle timer, suspend, screen lock), and tells the
// lock about each use so the idle timer measures inactivity.
type SealingLocker struct {
	l   *lock.Locker
	ctx context.Context
}

var _ Locker = (*SealingLocker)(nil)

// NewSealingLocker adapts l. ctx bounds the wait of unlock attempts that
// are delayed after wrong passphrases (the agent's lifetime, typically).
func NewSealingLocker(ctx context.Context, l *lock.Locker) *SealingLocker {
	l.OnLock(func(lock.Status) { go scrub() })
	return &SealingLocker{l: l, ctx: ctx}
}

// scrub collects the garbage a lock leaves: the wiped keys' signers and
// the crypto libraries' cached copies (RSA's precomputed FIPS key, the
// expanded ed25519 and ECDSA keys in a weak map that is cleared by a
// cleanup after one collection and freed at the next). Made inside
// lock.Do, they are zeroed as they are freed; without a collection they
// would stay readable until the next one, which an idle agent may not run
// for minutes.
func scrub() {
	runtime.GC()
	time.Sleep(20 * time.Millisecond) // let the weak-map cleanups run
	runtime.GC()
	debug.FreeOSMemory()
}

// Lock implements Locker: the keys are sealed under pass, which also arms
// the automatic locks when nothing armed them yet (lock.Locker.Lock).
func (s *SealingLocker) Lock(pass []byte) error { return lockErr(s.l.Lock(pass)) }

// lockOnly locks without arming the automatic locks.
func (s *SealingLocker) lockOnly(pass []byte) error { return lockErr(s.l.LockOnly(pass)) }

// Unlock implements Locker. Attempts wait out the shared back-off of the
// lock package; the agent holds none of its own mutexes meanwhile, so
// other clients are served.
func (s *SealingLocker) Unlock(pass []byte) error { return lockErr(s.l.Unlock(s.ctx, pass)) }

// unlockThen unlocks and, within the same attempt, runs then (see
// lock.Locker.UnlockThen): a wrong passphrase for the key store after a
// right one for the lock still counts as a failure.
func (s *SealingLocker) unlockThen(pass []byte, then func() error) error {
	return lockErr(s.l.UnlockThen(s.ctx, pass, then))
}

// Guard implements guarded: the lock's back-off.
func (s *SealingLocker) Guard() *lock.Guard { return s.l.Guard() }

// Locked implements Locker.
func (s *SealingLocker) Locked() bool { return s.l.Locked() }

// lockErr makes the lock package's state errors match this package's
// sentinels too, so callers of Server need test only one set.
func lockErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lock.ErrLocked):
		return fmt.Errorf("%w (%w)", ErrLocked, err)
	case errors.Is(err, lock.ErrNotLocked):
		return fmt.Errorf("%w (%w)", ErrNotLocked, err)
	case errors.Is(err, lock.ErrBadPassphrase):
		return fmt.Errorf("%w (%w)", ErrBadPassphrase, err)
	}
	return err
}

// sealedKey is what the keyring keeps of a key while locked: everything
// but the private half, which sits in the Vault under id.
type sealedKey struct {
	id      string
	cert    *ssh.Certificate
	comment string
	confirm bool
	expire  time.Time // zero: never; an expiry passes while locked too
	exts    []xagent.ConstraintExtension
}

// keyHolder is the keyring as a lock.Holder.
type keyHolder struct{ k *keyring }

var _ lock.Holder = keyHolder{}

// Seal hands every live private key to v, in OpenSSH's private key format,
// then wipes the keys and drops the signers. It runs inside lock.Do, so
// the encoding's temporaries are erased by the runtime when freed.
func (h keyHolder) Seal(v *lock.Vault) error {
	k := h.k
	k.mu.Lock()
	defer k.mu.Unlock()
	k.locked = true
	var errs []error
	sealed := make([]sealedKey, 0, len(k.order))
	// Marshal everything before wiping anything: a certificate and its
	// plain key may share one private key value.
	for i, e := range k.order {
		if !k.liveLocked(e) {
			continue
		}
		id := strconv.Itoa(i)
		blk, err := ssh.MarshalPrivateKey(e.priv, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("seal %s: %w", e.comment, err))
			continue
		}
		data := pem.EncodeToMemory(blk)
		clear(blk.Bytes)
		if err := v.Put(id, data); err != nil {
			errs = append(errs, fmt.Errorf("seal %s: %w", e.comment, err))
			continue
		}
		sealed = append(sealed, sealedKey{id: id, cert: e.cert, comment: e.comment, confirm: e.confirm, expire: e.expire, exts: e.exts})
	}
	// Signatures in flight finish with the whole key before it is wiped.
	retire(k.order, func() {
		for _, e := range k.order {
			if e.timer != nil {
				e.timer.Stop()
			}
			// A key that could not be sealed is lost rather than left in
			// the clear; the keychain can bring it back on unlock.
			lock.Wipe(e.priv)
			e.priv, e.signer = nil, nil
		}
	})
	k.order = nil
	k.byBlob = make(map[string]*entry)
	k.sealed = sealed
	k.rebuildLocked()
	return errors.Join(errs...)
}

// Unseal parses the keys back (inside lock.Do) and restores them with
// their comments, constraints and remaining lifetimes, in their order.
func (h keyHolder) Unseal(m map[string][]byte) error {
	k := h.k
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	now := k.nowFunc()
	for _, s := range k.sealed {
		data, ok := m[s.id]
		if !ok {
			errs = append(errs, fmt.Errorf("unseal %s: missing from the vault", s.comment))
			continue
		}
		var life time.Duration
		if !s.expire.IsZero() {
			if life = s.expire.Sub(now); life <= 0 {
				continue // expired while locked
			}
		}
		priv, err := ssh.ParseRawPrivateKey(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("unseal %s: %w", s.comment, err))
			continue
		}
		e, err := newEntry(xagent.AddedKey{PrivateKey: priv, Certificate: s.cert, Comment: s.comment, ConfirmBeforeUse: s.confirm,
			ConstraintExtensions: s.exts})
		if pk, ok := priv.(*ed25519.PrivateKey); ok {
			lock.Wipe(pk) // newEntry keeps a copy of its own
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unseal %s: %w", s.comment, err))
			continue
		}
		k.insertLocked(e, life)
	}
	k.sealed = nil
	k.locked = false
	k.rebuildLocked()
	return errors.Join(errs...)
}

// sealedCount is the number of keys held sealed.
func (k *keyring) sealedCount() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.sealed)
}

// count is the number of keys loaded in the clear.
func (k *keyring) count() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.order)
}
