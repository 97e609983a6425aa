package keychain

import (
	"fmt"
	"strings"
)

// KrbPasswordPrefix starts the name of a Kerberos password entry:
// "krb-password/<principal>", e.g. "krb-password/alice@EXAMPLE.ORG".
// Other Kerberos secrets (a stashed credentials cache) may use their own
// "krb-…/" prefix through the plain Store methods.
const KrbPasswordPrefix = "krb-password/"

func krbName(principal string) (string, error) {
	if principal == "" || strings.ContainsAny(principal, "\x00\n") {
		return "", fmt.Errorf("invalid principal %q", principal)
	}
	return KrbPasswordPrefix + principal, nil
}

// SetKrbPassword stores the password of principal, for re-acquiring
// tickets when renewal runs out (`sesame kinit --remember`).
func (k *Keychain) SetKrbPassword(principal string, password []byte) error {
	if len(password) == 0 {
		return fmt.Errorf("password for %s: %w", principal, ErrEmptyPassphrase)
	}
	n, err := krbName(principal)
	if err != nil {
		return err
	}
	return k.Set(n, password)
}

// KrbPassword returns the stored password of principal, or an error
// wrapping ErrNotFound. The caller should wipe it after use.
func (k *Keychain) KrbPassword(principal string) ([]byte, error) {
	n, err := krbName(principal)
	if err != nil {
		return nil, err
	}
	return k.Get(n)
}

// RemoveKrbPassword forgets the stored password of principal (for example
// after the KDC rejected it, so that it is never tried twice).
func (k *Keychain) RemoveKrbPassword(principal string) error {
	n, err := krbName(principal)
	if err != nil {
		return err
	}
	return k.Remove(n)
}

// KrbPrincipals lists the principals with a stored password.
func (k *Keychain) KrbPrincipals() ([]string, error) {
	names, err := k.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if p, ok := strings.CutPrefix(n, KrbPasswordPrefix); ok {
			out = append(out, p)
		}
	}
	return out, nil
}
