package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/krb"
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
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("stash ticket cache: %s is not a regular file", path)
	}
	// Under the cache's lock, as MIT tools take it: a ticket stored
	// meanwhile is either stashed or waits for the file to be gone.
	err := krb.TakeCCache(context.Background(), path, func(data []byte) error { return v.Put(stashID, data) })
	if err != nil {
		return fmt.Errorf("stash ticket cache: %w", err)
	}
	return nil
}

// RestoreCCache writes the stashed cache in m back to path, atomically and
// with mode 0600, when valid (nil: always) accepts it. It leaves alone a
// cache made while locked (a fresh kinit), which is newer than the stash:
// a regular file of the user's own with no other link. Anything else at
// path appeared while the name was free, and the default name
// (/tmp/krb5cc_UID) is in a directory every user can write to: a cache
// another user planted there would make the user's logins use the
// planter's tickets (or write through a link). It is removed and the
// stash written; when it cannot be removed (the sticky /tmp keeps
// another user's file), nothing is written and the error says why.
// Nothing stashed is not an error.
func RestoreCCache(m map[string][]byte, path string, valid func([]byte) bool) error {
	data, ok := m[stashID]
	if !ok {
		return nil
	}
	if valid != nil && !valid(data) {
		return ErrStashExpired
	}
	if fi, err := os.Lstat(path); err == nil {
		if ownCache(fi) {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("restore ticket cache: %s appeared while locked and is not yours; not restored: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore ticket cache: %w", err)
	}
	// Created only if no cache is there, also when one appears while
	// restoring: it is newer than the stash.
	if _, err := krb.CreateCCacheFile(path, data); err != nil {
		return fmt.Errorf("restore ticket cache: %w", err)
	}
	return nil
}

// ownCache reports whether fi is a regular file of this process's user
// with no other hard link.
func ownCache(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode().IsRegular() && int(st.Uid) == os.Getuid() && st.Nlink == 1
}

// Destroy overwrites the regular file at path with zeros, syncs, and
// removes it, as kdestroy does (a file with other hard links is only
// removed: its content is not only the cache's). A symlink or other non-regular file is
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
		if err := atomicfile.Zero(path); err != nil {
			return fmt.Errorf("destroy %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("destroy %s: %w", path, err)
	}
	return nil
}
