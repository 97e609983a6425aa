package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/sesame-ssh/sesame/lock"

	"golang.org/x/crypto/scrypt"
	xagent "golang.org/x/crypto/ssh/agent"
)

// Locker decides whether a passphrase locks and unlocks the agent
// (SSH_AGENTC_LOCK / SSH_AGENTC_UNLOCK, `ssh-add -x` / `-X`). The server
// asks it first and only then hides or restores the keys; a Locker that
// seals key material can replace the default one.
type Locker interface {
	// Lock records passphrase as the one that unlocks. It fails when the
	// agent is already locked or the passphrase is not acceptable.
	Lock(passphrase []byte) error
	// Unlock checks passphrase and, when it is right, unlocks.
	Unlock(passphrase []byte) error
	// Locked reports the current state.
	Locked() bool
}

// KeySealer may be implemented by a Locker that keeps keys sealed while
// the agent is locked. On lock the agent hands it every loaded key and
// then drops them, so that it holds no key material until unlock; after a
// successful Unlock it loads the keys UnsealKeys returns. LifetimeSecs of
// a handed-over key is its remaining lifetime.
type KeySealer interface {
	SealKeys(passphrase []byte, keys []xagent.AddedKey) error
	UnsealKeys(passphrase []byte) ([]xagent.AddedKey, error)
}

// Parameters of the passphrase verifier: scrypt with a fresh salt, slow
// enough that a copy of the process memory does not give the passphrase
// away cheaply.
const (
	scryptN = 1 << 15
	scryptR = 8
	scryptP = 1
)

// NewPassphraseLocker returns the default Locker: it keeps only a salted
// scrypt hash of the passphrase, refuses an empty passphrase, compares in
// constant time, and makes wrong guesses wait out the lock package's
// back-off (lock.Guard), which the server's other passphrase checks share.
func NewPassphraseLocker() Locker { return &passphraseLocker{guard: lock.NewGuard(0, 0)} }

// guarded is implemented by a Locker whose unlock attempts go through a
// lock.Guard; the server puts its other passphrase checks through it too.
type guarded interface{ Guard() *lock.Guard }

type passphraseLocker struct {
	mu       sync.Mutex
	locked   bool
	salt     []byte
	verifier []byte
	guard    *lock.Guard
}

// Guard implements guarded.
func (l *passphraseLocker) Guard() *lock.Guard { return l.guard }

func hashPassphrase(pass, salt []byte) ([]byte, error) {
	return scrypt.Key(pass, salt, scryptN, scryptR, scryptP, 32)
}

func (l *passphraseLocker) Lock(pass []byte) error {
	if len(pass) == 0 {
		return errors.New("empty passphrase")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	v, err := hashPassphrase(pass, salt)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locked {
		return ErrLocked
	}
	l.locked, l.salt, l.verifier = true, salt, v
	return nil
}

func (l *passphraseLocker) Unlock(pass []byte) error {
	if !l.Locked() {
		return ErrNotLocked
	}
	return l.guard.Attempt(context.Background(), func() error {
		if err := l.unlock(pass); err != nil {
			if errors.Is(err, ErrBadPassphrase) {
				return fmt.Errorf("%w (%w)", err, lock.ErrBadPassphrase)
			}
			return err
		}
		return nil
	})
}

func (l *passphraseLocker) unlock(pass []byte) error {
	l.mu.Lock()
	if !l.locked {
		l.mu.Unlock()
		return ErrNotLocked
	}
	salt, want := l.salt, l.verifier
	l.mu.Unlock()

	got, err := hashPassphrase(pass, salt)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if !l.locked {
		l.mu.Unlock()
		return ErrNotLocked
	}
	defer l.mu.Unlock()
	if subtle.ConstantTimeCompare(got, want) == 1 {
		l.locked, l.salt, l.verifier = false, nil, nil
		return nil
	}
	return ErrBadPassphrase
}

func (l *passphraseLocker) Locked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.locked
}
