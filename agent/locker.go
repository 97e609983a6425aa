package agent

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

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
	scryptN     = 1 << 15
	scryptR     = 8
	scryptP     = 1
	maxFailWait = 10 * time.Second
)

// NewPassphraseLocker returns the default Locker: it keeps only a salted
// scrypt hash of the passphrase, refuses an empty passphrase, compares in
// constant time, and makes every wrong guess wait 100 ms longer than the
// previous one (at most 10 s), as ssh-agent does.
func NewPassphraseLocker() Locker { return &passphraseLocker{} }

type passphraseLocker struct {
	mu       sync.Mutex
	locked   bool
	salt     []byte
	verifier []byte
	failures int
}

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
	l.locked, l.salt, l.verifier, l.failures = true, salt, v, 0
	return nil
}

func (l *passphraseLocker) Unlock(pass []byte) error {
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
	if subtle.ConstantTimeCompare(got, want) == 1 {
		l.locked, l.salt, l.verifier, l.failures = false, nil, nil, 0
		l.mu.Unlock()
		return nil
	}
	l.failures++
	wait := time.Duration(l.failures) * 100 * time.Millisecond
	l.mu.Unlock()
	// Only the guessing connection waits; others keep being served.
	time.Sleep(min(wait, maxFailWait))
	return ErrBadPassphrase
}

func (l *passphraseLocker) Locked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.locked
}
