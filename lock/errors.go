package lock

import "errors"

// Errors returned by the Locker and the Verifier. Test with errors.Is.
var (
	// ErrEmptyPassphrase: an empty lock passphrase is refused, as ssh-agent does.
	ErrEmptyPassphrase = errors.New("lock passphrase is empty")
	// ErrPassphraseTooLong: longer than MaxPassphrase; refused before hashing.
	ErrPassphraseTooLong = errors.New("lock passphrase is too long (over 64 KiB)")
	// ErrBadPassphrase: the passphrase does not match.
	ErrBadPassphrase = errors.New("wrong lock passphrase")
	// ErrLocked: the operation needs the unlocked state (for example Lock
	// when already locked).
	ErrLocked = errors.New("agent is already locked")
	// ErrNotLocked: Unlock when not locked.
	ErrNotLocked = errors.New("agent is not locked")
	// ErrNoPassphrase: an automatic lock was due but no lock passphrase is
	// known yet (neither SetPassphrase nor Lock was called).
	ErrNoPassphrase = errors.New("no lock passphrase set; cannot lock automatically")
	// ErrUnavailable: a trigger (system or session bus, logind, screen
	// saver) is not available on this machine. Worth a debug line at most.
	ErrUnavailable = errors.New("not available")
	// ErrClosed: the Locker was closed.
	ErrClosed = errors.New("locker is closed")
)
