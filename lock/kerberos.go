package lock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
)

// KerberosMode says what happens to the Kerberos ticket cache on lock.
type KerberosMode string

// Kerberos modes, as spelled in configuration and flags.
const (
	// KerberosKeep leaves the ticket cache alone: locking guards the keys
	// only.
	KerberosKeep KerberosMode = "keep"
	// KerberosDestroy overwrites the cache with zeros and removes it, like
	// kdestroy. Unlock does not bring it back.
	KerberosDestroy KerberosMode = "destroy"
	// KerberosStash moves the cache into the sealed store and removes the
	// file; unlock writes it back if the TGT in it is still valid.
	KerberosStash KerberosMode = "stash"
)

// ParseKerberosMode accepts "keep", "destroy" or "stash".
func ParseKerberosMode(s string) (KerberosMode, error) {
	switch m := KerberosMode(s); m {
	case KerberosKeep, KerberosDestroy, KerberosStash:
		return m, nil
	}
	return "", fmt.Errorf("unknown kerberos lock mode %q (want keep, destroy or stash)", s)
}

// ErrStashExpired is reported (through Options.OnError) when the stashed
// ticket cache was no longer valid at unlock and so was not written back.
var ErrStashExpired = errors.New("stashed kerberos ticket expired while locked; not restored")

// Kerberos is a Holder for a FILE: ticket cache. Add it with
// Locker.AddHolder; for KerberosKeep it does nothing.
type Kerberos struct {
	// Mode is what to do on lock.
	Mode KerberosMode
	// Path of the FILE: cache, with or without the "FILE:" prefix,
	// resolved by the caller from -c / KRB5CCNAME / krb5.conf.
	Path string
	// Cache, when set, is used instead of Path: a cache that is not one
	// plain file (a DIR member, KCM, KEYRING), reached by the caller.
	Cache CacheStore
	// Valid reports whether a ticket cache (its raw bytes) still holds a
	// usable TGT; the cache is written back only when it does. Nil writes
	// it back unconditionally. Wire it to the krb package's ccache
	// parser; renewing the TGT after unlock is the caller's business
	// (an OnUnlock hook).
	Valid func(ccache []byte) bool
}

// CacheStore moves a ticket cache of any type in and out of the stash,
// as bytes in the FILE format.
type CacheStore interface {
	// Take calls put with the cache's contents and, once put returned
	// nil, removes the cache. No cache: put is not called, nil returned.
	Take(put func([]byte) error) error
	// Restore writes data back, unless a cache with a principal exists
	// (a ticket obtained while locked is newer than the stash).
	Restore(data []byte) error
	// Destroy removes the cache; a missing one is not an error.
	Destroy() error
}

const stashID = "ccache"

// Seal implements Holder.
func (k *Kerberos) Seal(v *Vault) error {
	switch k.Mode {
	case KerberosKeep, "":
		return nil
	case KerberosDestroy:
		if k.Cache != nil {
			return k.Cache.Destroy()
		}
		return Destroy(k.file())
	case KerberosStash:
		if k.Cache != nil {
			err := k.Cache.Take(func(data []byte) error { return v.Put(stashID, data) })
			if err != nil {
				return fmt.Errorf("stash ticket cache: %w", err)
			}
			return nil
		}
		return StashCCache(v, k.file())
	}
	return fmt.Errorf("unknown kerberos lock mode %q", k.Mode)
}

// Unseal implements Holder.
func (k *Kerberos) Unseal(m map[string][]byte) error {
	if k.Mode != KerberosStash {
		return nil
	}
	if k.Cache != nil {
		data, ok := m[stashID]
		if !ok {
			return nil
		}
		if k.Valid != nil && !k.Valid(data) {
			return ErrStashExpired
		}
		if err := k.Cache.Restore(data); err != nil {
			return fmt.Errorf("restore ticket cache: %w", err)
		}
		return nil
	}
	return RestoreCCache(m, k.file(), k.Valid)
}

func (k *Kerberos) file() string { return strings.TrimPrefix(k.Path, "FILE:") }

// StashCCache reads the ticket cache at path into v and then destroys the
// file. A missing file is not an error: there is nothing to stash. The
// file is destroyed only once its content is sealed.
func StashCCache(v *Vault, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stash ticket cache: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("stash ticket cache: %s is not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("stash ticket cache: %w", err)
	}
	if err := v.Put(stashID, data); err != nil {
		return fmt.Errorf("stash ticket cache: %w", err)
	}
	return Destroy(path)
}

// RestoreCCache writes the stashed cache in m back to path, atomically and
// with mode 0600, when valid (nil: always) accepts it. It leaves an existing
// file alone: a cache made while locked (a fresh kinit) is newer than the
// stash. Nothing stashed is not an error.
func RestoreCCache(m map[string][]byte, path string, valid func([]byte) bool) error {
	data, ok := m[stashID]
	if !ok {
		return nil
	}
	if valid != nil && !valid(data) {
		return ErrStashExpired
	}
	if _, err := os.Lstat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore ticket cache: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("restore ticket cache: %w", err)
	}
	return nil
}

// Destroy overwrites the regular file at path with zeros, syncs, and
// removes it, as kdestroy does. A symlink or other non-regular file is
// removed without following it. A missing file is not an error.
func Destroy(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy %s: %w", path, err)
	}
	if fi.Mode().IsRegular() {
		if err := zeroFile(path); err != nil {
			return fmt.Errorf("destroy %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("destroy %s: %w", path, err)
	}
	return nil
}

func zeroFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscallNoFollow, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 32<<10)
	for n := fi.Size(); n > 0; {
		c := min(n, int64(len(zeros)))
		if _, err := f.Write(zeros[:c]); err != nil {
			return err
		}
		n -= c
	}
	return f.Sync()
}
