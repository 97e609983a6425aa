// Package keychain stores sesame's secrets persistently and encrypted: the
// private keys that `sesame add` imports and the agent loads, and, when the
// user asks for it, Kerberos passwords used to re-acquire tickets.
//
// Everything goes through one small interface, Store. Backends are the OS
// stores reached through github.com/99designs/keyring (macOS Keychain,
// Secret Service, KWallet; pass and the kernel keyring only when chosen)
// and, on a headless machine, a vault file of our own: one age file
// encrypted with an scrypt-derived key, written atomically under a lock.
// Open picks the backend (or honours the one forced by Options.Backend or
// $SESAME_BACKEND) and Keychain.Backend says which one it took.
//
// This package never prints and never reads the terminal: a vault
// passphrase comes from a PassphraseFunc supplied by the caller.
package keychain

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	// dbusguard must initialise before github.com/99designs/keyring, whose
	// init would otherwise start dbus-launch on a machine without a session
	// bus. Its package comment explains why the order holds whatever the
	// order of these lines; TestNoDBusLaunchWithoutSessionBus checks it.
	"github.com/sesame-ssh/sesame/keychain/internal/dbusguard"

	"github.com/99designs/keyring"
)

// Store is persistent, encrypted storage of named secrets. Names are
// printable UTF-8 (see the naming conventions of Keychain's helpers);
// secrets are opaque bytes of at most 1 MiB.
type Store interface {
	// Get returns the secret stored under name, or an error wrapping
	// ErrNotFound.
	Get(name string) ([]byte, error)
	// Set stores secret under name, replacing any previous value.
	Set(name string, secret []byte) error
	// Remove deletes name, or returns an error wrapping ErrNotFound.
	Remove(name string) error
	// List returns every stored name, sorted.
	List() ([]string, error)
}

// Backend names, as accepted by Options.Backend, --backend and
// $SESAME_BACKEND.
const (
	BackendAuto          = "auto"
	BackendVault         = "vault"
	BackendSecretService = "secret-service"
	BackendKWallet       = "kwallet"
	BackendKeychain      = "keychain" // macOS Keychain
	BackendPass          = "pass"
	BackendKeyctl        = "keyctl" // Linux kernel keyring; "keyctl:SCOPE" picks the scope
	BackendWinCred       = "wincred"
)

// EnvBackend names the environment variable that forces a backend when
// Options.Backend is empty.
const EnvBackend = "SESAME_BACKEND"

// PassphraseFunc supplies the vault passphrase. create is true when the
// vault does not exist yet and is about to be created: an interactive
// source should then ask twice and compare. The keychain wipes the
// returned slice when it is done with it; an empty passphrase is refused
// for a new vault.
type PassphraseFunc func(create bool) ([]byte, error)

// Options configure Open. The zero value picks the backend automatically
// and can read but not create or open an existing vault (no passphrase).
type Options struct {
	// Backend forces a backend (see the Backend* constants); "" consults
	// $SESAME_BACKEND, then chooses automatically.
	Backend string
	// Passphrase supplies the vault passphrase when it is needed; it is
	// not called for the OS stores, nor for reading a vault that does not
	// exist yet.
	Passphrase PassphraseFunc
	// VaultDir holds the vault file; "" means paths.State().
	VaultDir string
	// WorkFactor is the scrypt cost (log2 N) for vault writes; 0 means
	// DefaultWorkFactor. Tests lower it; nothing else should.
	WorkFactor int
}

// Keychain is an open Store plus the typed helpers for SSH keys and
// Kerberos passwords.
type Keychain struct {
	Store
	backend string
	detail  string
}

// Backend is the name of the backend in use, e.g. "vault".
func (k *Keychain) Backend() string { return k.backend }

// Describe names the backend for people: "vault /home/u/.local/state/sesame/vault.age".
func (k *Keychain) Describe() string {
	if k.detail == "" {
		return k.backend
	}
	return k.backend + " " + k.detail
}

// NeedsPassphrase reports whether using the keychain will call the
// passphrase source: true for a vault file that exists and has not been
// opened yet. The agent can use it to decide whether to start locked.
func (k *Keychain) NeedsPassphrase() bool {
	v, ok := k.Store.(*vault)
	if !ok {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.passphrase != nil {
		return false
	}
	_, err := os.Stat(v.path)
	return err == nil
}

// Close releases the backend and wipes what it cached in memory (the vault
// passphrase and decrypted entries).
func (k *Keychain) Close() error {
	if c, ok := k.Store.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// Open opens the keychain with the backend forced by opts or the
// environment, or else the first OS store that is actually reachable
// (macOS Keychain; Secret Service or KWallet with their service present on
// the session bus), falling back to the vault. keyring.Open would silently
// skip a failing backend; here a forced backend that cannot be used is an
// error wrapping ErrBackendUnavailable that says why.
func Open(opts Options) (*Keychain, error) {
	name := opts.Backend
	if name == "" {
		name = os.Getenv(EnvBackend)
	}
	name = strings.TrimSpace(name)
	if name == "" || name == BackendAuto {
		name = autoBackend()
	}
	// --debug also switches on keyring's own log lines (a global of that
	// package, so set once).
	keyringDebugOnce.Do(func() {
		keyring.Debug = slog.Default().Enabled(context.Background(), slog.LevelDebug)
	})
	slog.Debug("keychain: backend chosen", "backend", name, "dbus_guard", dbusguard.Applied)
	if name == BackendVault {
		v := newVault(opts.VaultDir, opts.Passphrase, opts.WorkFactor)
		return &Keychain{Store: v, backend: BackendVault, detail: v.Path()}, nil
	}
	base, scope, _ := strings.Cut(name, ":")
	if base != BackendKeyctl && scope != "" {
		return nil, unknownBackend(name)
	}
	switch base {
	case BackendSecretService, BackendKWallet, BackendKeychain, BackendPass, BackendKeyctl, BackendWinCred:
	default:
		return nil, unknownBackend(name)
	}
	s, detail, err := openOS(base, scope)
	if err != nil {
		return nil, err
	}
	return &Keychain{Store: s, backend: base, detail: detail}, nil
}

var keyringDebugOnce sync.Once

func unknownBackend(name string) error {
	return withHint(fmt.Errorf("unknown keychain backend %q", name),
		"use one of: vault, secret-service, kwallet, keychain, pass, keyctl[:user|session|process|thread], wincred")
}

// Backends lists the backend names Open accepts, for help texts.
func Backends() []string {
	return []string{BackendAuto, BackendVault, BackendSecretService, BackendKWallet, BackendKeychain, BackendPass, BackendKeyctl, BackendWinCred}
}

// unavailable builds the error for a forced backend that cannot be used.
func unavailable(name, why string) error {
	return withHint(fmt.Errorf("%s: %w: %s", name, ErrBackendUnavailable, why),
		"choose another with --backend or SESAME_BACKEND (vault works everywhere)")
}
