package keychain

import "errors"

// Sentinel errors, for errors.Is. The errors returned by this package wrap
// them with the name or path concerned and, where the user can act, a hint
// (see Hint).
var (
	// ErrNotFound: no entry with that name, or no stored key matches.
	ErrNotFound = errors.New("not found")
	// ErrWrongPassphrase: the vault passphrase does not open the vault.
	ErrWrongPassphrase = errors.New("wrong vault passphrase")
	// ErrCorruptVault: the vault file exists but is not a vault this
	// version can read. It is never overwritten while in that state.
	ErrCorruptVault = errors.New("vault file is damaged or not a sesame vault")
	// ErrEmptyPassphrase: an empty passphrase was offered for a new vault.
	ErrEmptyPassphrase = errors.New("empty passphrase refused")
	// ErrNoPassphrase: the vault needs a passphrase and no source gave one.
	ErrNoPassphrase = errors.New("no vault passphrase available")
	// ErrBackendUnavailable: a backend was asked for that cannot be used here.
	ErrBackendUnavailable = errors.New("keychain backend not available")
	// ErrAmbiguous: a key selector matches more than one stored key.
	ErrAmbiguous = errors.New("matches more than one key")
	// ErrNotAKey: a file given as a private key is not one.
	ErrNotAKey = errors.New("not a private key")
	// ErrWrongKeyPassphrase: the passphrase of an encrypted private key file
	// is wrong.
	ErrWrongKeyPassphrase = errors.New("wrong passphrase for key")
)

// hinted wraps an error with advice for the user; cmd/sesame prints the
// advice as a `sesame: hint:` line.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// Hint says what the user can do about the error.
func (h *hinted) Hint() string { return h.hint }

func withHint(err error, hint string) error { return &hinted{err: err, hint: hint} }
