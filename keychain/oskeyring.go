package keychain

import (
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/99designs/keyring"
)

// serviceName names sesame's folder and
// application (KWallet), named keyring (keyctl), item service (macOS) and
// pass subdirectory, so that its items never mix with other programs'.
const serviceName = "sesame"

// osStore adapts a keyring.Keyring to Store. Item keys are our names,
// path-escaped (names contain '/', as in krb-password/host/x@REALM, which
// pass would turn into directories) behind an "sesame:" prefix: the Secret
// Service items live in the shared login collection, and List must skip
// other programs' items there.
type osStore struct {
	ring keyring.Keyring
	name string
}

var _ Store = (*osStore)(nil)

const itemPrefix = "sesame:"

func itemKey(name string) string { return itemPrefix + url.PathEscape(name) }

func (s *osStore) Get(name string) ([]byte, error) {
	it, err := s.ring.Get(itemKey(name))
	if errors.Is(err, keyring.ErrKeyNotFound) {
		return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %q: %w", s.name, name, err)
	}
	return it.Data, nil
}

func (s *osStore) Set(name string, secret []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	err := s.ring.Set(keyring.Item{
		Key:   itemKey(name),
		Data:  append([]byte(nil), secret...),
		Label: "sesame: " + name,
		// macOS: do not let other applications read the key silently, and
		// keep private keys out of iCloud.
		KeychainNotTrustApplication: true,
		KeychainNotSynchronizable:   true,
	})
	if err != nil {
		return fmt.Errorf("%s: store %q: %w", s.name, name, err)
	}
	return nil
}

func (s *osStore) Remove(name string) error {
	// Backends disagree about removing a missing item (Secret Service
	// says nothing, keyctl fails with its own error): look first.
	if _, err := s.ring.Get(itemKey(name)); errors.Is(err, keyring.ErrKeyNotFound) {
		return fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	if err := s.ring.Remove(itemKey(name)); err != nil && !errors.Is(err, keyring.ErrKeyNotFound) {
		return fmt.Errorf("%s: remove %q: %w", s.name, name, err)
	}
	return nil
}

func (s *osStore) List() ([]string, error) {
	keys, err := s.ring.Keys()
	if err != nil {
		return nil, fmt.Errorf("%s: list: %w", s.name, err)
	}
	var names []string
	for _, k := range keys {
		k, ours := strings.CutPrefix(k, itemPrefix)
		if !ours {
			continue
		}
		n, err := url.PathUnescape(k)
		if err != nil || validName(n) != nil {
			continue // not one of ours
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Compact(names), nil
}

// openOS opens an OS store, checking first that it can work here: keyring
// registers Secret Service and KWallet only when a session bus answered,
// lists pass even when the program is missing, and needs a keyctl scope.
func openOS(name, scope string) (Store, string, error) {
	cfg := keyring.Config{
		ServiceName: serviceName,
		// The login collection exists and is unlocked with the session on
		// GNOME; a collection of our own would have to be created through
		// an interactive prompt, which fails over SSH.
		LibSecretCollectionName: "login",
		KWalletAppID:            serviceName,
		KWalletFolder:           serviceName,
		PassPrefix:              serviceName,
		KeychainName:            "login",
	}
	var detail string
	switch name {
	case BackendSecretService, BackendKWallet:
		if !registered(keyring.BackendType(name)) {
			return nil, "", unavailable(name, "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset or unreachable)")
		}
		bus := secretServiceBusName
		if name == BackendKWallet {
			bus = kwalletBusName
		}
		if !busNameReachable(bus) {
			return nil, "", unavailable(name, bus+" is not running on the session bus")
		}
	case BackendKeychain:
		if !registered(keyring.KeychainBackend) {
			return nil, "", unavailable(name, "only on macOS, in a build with cgo")
		}
	case BackendWinCred:
		if !registered(keyring.WinCredBackend) {
			return nil, "", unavailable(name, "only on Windows")
		}
	case BackendPass:
		if _, err := exec.LookPath("pass"); err != nil {
			return nil, "", unavailable(name, "the pass program is not installed")
		}
	case BackendKeyctl:
		if runtime.GOOS != "linux" {
			return nil, "", unavailable(name, "only on Linux")
		}
		// The user keyring outlives the session but not a reboot; sesame
		// never picks keyctl by itself for that reason.
		if scope == "" {
			scope = "user"
		}
		switch scope {
		case "user", "session", "process", "thread":
		default:
			return nil, "", unknownBackend(name + ":" + scope)
		}
		cfg.KeyCtlScope = scope
		// possessor and user: view, read, write, search, link, setattr.
		cfg.KeyCtlPerm = 0x3f3f0000
		detail = "scope " + scope
	}
	cfg.AllowedBackends = []keyring.BackendType{keyring.BackendType(name)}
	ring, err := keyring.Open(cfg)
	if err != nil {
		return nil, "", unavailable(name, strings.ToLower(err.Error()))
	}
	return &osStore{ring: ring, name: name}, detail, nil
}

func registered(b keyring.BackendType) bool {
	return slices.Contains(keyring.AvailableBackends(), b)
}

// D-Bus names of the services behind the Secret Service and KWallet backends.
const (
	secretServiceBusName = "org.freedesktop.secrets"
	kwalletBusName       = "org.kde.kwalletd5"
)

// autoBackend picks an OS store that is really there, else the vault.
// pass and keyctl are never chosen automatically: pass is listed by keyring
// whether or not it is set up, and keyctl keys vanish at reboot.
func autoBackend() string {
	switch runtime.GOOS {
	case "darwin":
		if registered(keyring.KeychainBackend) {
			return BackendKeychain
		}
	case "windows":
		if registered(keyring.WinCredBackend) {
			return BackendWinCred
		}
	default:
		if registered(keyring.SecretServiceBackend) && busNameReachable(secretServiceBusName) {
			return BackendSecretService
		}
		if registered(keyring.KWalletBackend) && busNameReachable(kwalletBusName) {
			return BackendKWallet
		}
	}
	return BackendVault
}
