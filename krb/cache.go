package krb

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Cache is one credentials cache of any type: FILE (cache_file.go), a
// member of a DIR collection (cache_dir.go), KCM (kcm.go) or KEYRING
// (keyring_linux.go). The renewer, the lock's stash and the commands use
// only this, through CacheName.
type Cache interface {
	// Name is the full name as MIT klist prints it.
	Name() string
	// Read loads the whole cache. A cache that is not there gives an
	// error matching ErrNoCache.
	Read() (*CCache, error)
	// Replace makes the cache hold exactly cc, as atomically as the type
	// allows: a failure never leaves it empty where it held a ticket.
	Replace(cc *CCache) error
	// Destroy removes the cache (overwriting what can be overwritten). A
	// cache that is not there gives an error matching ErrNoCache.
	Destroy() error
}

var (
	_ Cache = (*FileCache)(nil)
	_ Cache = (*DirCache)(nil)
	_ Cache = (*KCMCache)(nil)
	_ Cache = (*KeyringCache)(nil)
)

// Read loads the cache.
func (n CacheName) Read() (*CCache, error) {
	if n.cache == nil {
		return nil, errors.New("credentials cache not resolved")
	}
	return n.cache.Read()
}

// Replace makes the cache hold exactly cc.
func (n CacheName) Replace(cc *CCache) error {
	if n.cache == nil {
		return errors.New("credentials cache not resolved")
	}
	return n.cache.Replace(cc)
}

// Destroy removes the cache.
func (n CacheName) Destroy() error {
	if n.cache == nil {
		return errors.New("credentials cache not resolved")
	}
	return n.cache.Destroy()
}

// Update is a read-modify-write of the cache: modify gets the current
// content and returns what to store (or an error, such as
// ErrCacheChanged, to store nothing). FILE and DIR caches do it under
// MIT's file lock (UpdateCCache); KCM and KEYRING caches have no lock
// shared with MIT, so there it is a read followed by Replace.
func (n CacheName) Update(ctx context.Context, modify func(cur *CCache) (*CCache, error)) error {
	if p := n.Path(); p != "" {
		return UpdateCCache(ctx, p, modify)
	}
	cur, err := n.Read()
	if err != nil {
		return err
	}
	next, err := modify(cur)
	if err != nil {
		return err
	}
	return n.Replace(next)
}

// IsCollection reports whether the name was given as a collection (DIR:dir,
// KCM:, KEYRING:anchor:collection), so that kinit may pick or create
// another cache in it for a different principal, as MIT kinit does.
func (n CacheName) IsCollection() bool {
	switch c := n.cache.(type) {
	case *DirCache:
		return !strings.HasPrefix(n.Residual, ":")
	case *KCMCache:
		return n.Residual == ""
	case *KeyringCache:
		return !c.Single
	}
	return false
}

// with wraps a cache of the same collection in a name.
func (n CacheName) with(c Cache) CacheName {
	m := CacheName{Type: n.Type, Source: n.Source, cache: c}
	m.Residual = strings.TrimPrefix(c.Name(), n.Type+":")
	return m
}

// SetPrimary makes this cache the current one of its collection (MIT's
// kswitch). It is a no-op for FILE caches.
func (n CacheName) SetPrimary() error {
	switch c := n.cache.(type) {
	case *DirCache:
		return c.SetPrimary()
	case *KCMCache:
		return c.SetPrimary()
	case *KeyringCache:
		return c.SetPrimary()
	}
	return nil
}

// NewSubsidiary creates a new, empty, uniquely named cache in the
// collection and returns its name; Replace fills it. It does not change
// the primary cache.
func (n CacheName) NewSubsidiary() (CacheName, error) {
	var c Cache
	var err error
	switch cur := n.cache.(type) {
	case *DirCache:
		c, err = cur.NewSubsidiary()
	case *KCMCache:
		c, err = KCMNewSubsidiary(cur.Socket)
	case *KeyringCache:
		c, err = cur.NewSubsidiary()
	default:
		return CacheName{}, fmt.Errorf("cannot create a new cache: %s is not a collection", n)
	}
	if err != nil {
		return CacheName{}, err
	}
	return n.with(c), nil
}

// Collection lists the caches of the collection: for DIR every tkt… file
// in name order, for KCM and KEYRING the initialised caches with the
// primary first. For a FILE cache it is just n.
func (n CacheName) Collection() ([]CacheName, error) {
	var out []CacheName
	switch c := n.cache.(type) {
	case *DirCache:
		l, err := c.List()
		if err != nil {
			return nil, err
		}
		for _, m := range l {
			out = append(out, n.with(m))
		}
	case *KCMCache:
		l, err := KCMCollection(c.Socket)
		if err != nil {
			return nil, err
		}
		for _, m := range l {
			out = append(out, n.with(m))
		}
	case *KeyringCache:
		l, err := c.List()
		if err != nil {
			return nil, err
		}
		for _, m := range l {
			out = append(out, n.with(m))
		}
	default:
		out = []CacheName{n}
	}
	return out, nil
}
