package krb

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// KCM caches live in a daemon (sssd-kcm on Fedora, RHEL and FreeIPA
// clients), reached over a Unix socket; names are KCM: (the user's
// default cache), KCM:UID and KCM:UID:NAME. Everything is read and written
// through the daemon, which scopes caches by the peer's uid: there is no
// file to fall back to.

// KCMSocket is the daemon's socket: kcm_socket from krb5.conf, else
// DefaultKCMSocket. cfg may be nil.
func KCMSocket(cfg *Config) string {
	if cfg != nil {
		if v, ok := cfg.Libdefault("kcm_socket"); ok && v != "" {
			return v
		}
	}
	return DefaultKCMSocket
}

// KCMCache is one cache kept by a KCM daemon.
type KCMCache struct {
	// Socket is the daemon's Unix socket.
	Socket string
	// Residual is the cache's name as the daemon knows it, e.g. "1000"
	// or "1000:48213".
	Residual string
}

// Name is the full cache name, "KCM:" and the residual.
func (c *KCMCache) Name() string { return "KCM:" + c.Residual }

// ResolveKCM resolves the residual of a KCM: name. An empty residual
// means the collection's default cache, which the daemon names.
func ResolveKCM(socket, residual string) (*KCMCache, error) {
	if residual != "" {
		return &KCMCache{Socket: socket, Residual: residual}, nil
	}
	k, err := kcmDial(socket)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	name, err := k.defaultCache()
	if err != nil {
		return nil, err
	}
	return &KCMCache{Socket: socket, Residual: name}, nil
}

func (k *kcmConn) defaultCache() (string, error) {
	const what = "get the default cache"
	b, err := k.call(what, kcmOpGetDefaultCache, nil, nil)
	if err != nil {
		return "", err
	}
	return kcmParseName(b, what)
}

// KCMNewSubsidiary asks the daemon for a new, unused cache name in the
// user's collection. The cache exists once Replace fills it.
func KCMNewSubsidiary(socket string) (*KCMCache, error) {
	k, err := kcmDial(socket)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	const what = "create a new cache"
	b, err := k.call(what, kcmOpGenNew, nil, nil)
	if err != nil {
		return nil, err
	}
	name, err := kcmParseName(b, what)
	if err != nil {
		return nil, err
	}
	return &KCMCache{Socket: socket, Residual: name}, nil
}

// KCMCollection lists the user's KCM caches that hold a principal, the
// default cache first (MIT's order for klist -l and kdestroy -A).
func KCMCollection(socket string) ([]*KCMCache, error) {
	k, err := kcmDial(socket)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	const what = "list caches"
	b, err := k.call(what, kcmOpGetCacheUUIDList, nil, nil)
	if errors.Is(err, ErrNoCache) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	uuids, err := kcmParseUUIDs(b, what)
	if err != nil {
		return nil, err
	}
	primary, err := k.defaultCache()
	if err != nil {
		return nil, err
	}
	var out []*KCMCache
	if _, err := k.principal(primary); err == nil {
		out = append(out, &KCMCache{Socket: socket, Residual: primary})
	}
	for _, id := range uuids {
		b, err := k.call("name a cache", kcmOpGetCacheByUUID, nil, id[:])
		var ke *KCMError
		if errors.As(err, &ke) && (ke.Code == kcmErrCCEnd || ke.Code == kcmErrFCCNoFile) {
			continue // destroyed meanwhile
		}
		if err != nil {
			return nil, err
		}
		name, err := kcmParseName(b, "name a cache")
		if err != nil {
			return nil, err
		}
		if name == primary {
			continue
		}
		if _, err := k.principal(name); err != nil {
			continue
		}
		out = append(out, &KCMCache{Socket: socket, Residual: name})
	}
	return out, nil
}

func (k *kcmConn) principal(name string) (Principal, error) {
	const what = "read the default principal"
	b, err := k.call(what, kcmOpGetPrincipal, &name, nil)
	if err != nil {
		return Principal{}, err
	}
	// Heimdal's kcm answers success with no principal for an empty cache.
	if len(b) == 0 {
		return Principal{}, &KCMError{Op: what, Name: name, Code: kcmErrFCCNoFile}
	}
	return kcmParsePrincipal(b, what)
}

// Read fetches the whole cache: default principal, KDC offset and every
// credential (config entries included). A cache the daemon does not have
// gives an error matching ErrNoCache.
func (c *KCMCache) Read() (*CCache, error) {
	k, err := kcmDial(c.Socket)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return k.read(c.Residual)
}

func (k *kcmConn) read(name string) (*CCache, error) {
	p, err := k.principal(name)
	if err != nil {
		return nil, err
	}
	cc := &CCache{Version: 4, DefaultPrincipal: p}
	if b, err := k.call("read the KDC offset", kcmOpGetKDCOffset, &name, nil); err == nil {
		if d, ok, err := kcmParseOffset(b, "read the KDC offset"); err != nil {
			return nil, err
		} else if ok {
			cc.SetKDCOffset(d)
		}
	} else if !kcmUnsupported(err) {
		return nil, err
	}
	if cc.Credentials, err = k.creds(name); err != nil {
		return nil, err
	}
	return cc, nil
}

// creds lists the credentials with MIT's GET_CRED_LIST, or, from daemons
// without it, a UUID list and one request per credential.
func (k *kcmConn) creds(name string) ([]Credential, error) {
	const what = "list credentials"
	b, err := k.call(what, kcmOpGetCredList, &name, nil)
	if err == nil {
		return kcmParseCredList(b, what)
	}
	if !kcmUnsupported(err) {
		return nil, err
	}
	if b, err = k.call(what, kcmOpGetCredUUIDList, &name, nil); err != nil {
		return nil, err
	}
	uuids, err := kcmParseUUIDs(b, what)
	if err != nil {
		return nil, err
	}
	var out []Credential
	for _, id := range uuids {
		const what = "read a credential"
		b, err := k.call(what, kcmOpGetCredByUUID, &name, id[:])
		var ke *KCMError
		if errors.As(err, &ke) && ke.Code == kcmErrCCEnd {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		cred, err := kcmParseCred(b, what)
		if err != nil {
			return nil, err
		}
		out = append(out, cred)
	}
	return out, nil
}

// Replace makes the cache hold exactly cc, as atomically as the daemon
// allows:
//   - MIT's REPLACE request swaps the whole cache in one step;
//   - sssd-kcm lacks it, but replaces a stored credential with the same
//     client and server in one step, so a cache that already holds cc's
//     principal is updated in place, credential by credential (the TGT
//     first), and is never empty in between;
//   - otherwise (another principal, or a daemon that keeps duplicates)
//     the cache is re-initialised and filled, TGT first, and if a step
//     fails the previous contents are put back.
func (c *KCMCache) Replace(cc *CCache) error {
	k, err := kcmDial(c.Socket)
	if err != nil {
		return err
	}
	defer k.Close()
	name := c.Residual
	creds := kcmStoreOrder(cc)
	err = k.replace(name, cc, creds)
	if err == nil || !kcmUnsupported(err) {
		return err
	}
	old, oerr := k.read(name)
	if oerr == nil && old.DefaultPrincipal.Equal(cc.DefaultPrincipal) && kcmCoveredBy(old, cc) {
		if err := k.storeAll(name, creds); err != nil {
			return err
		}
		if err := k.setOffset(name, cc); err != nil {
			return err
		}
		// A daemon that keeps the old entries next to the new ones
		// would grow with every renewal: then rewrite it whole.
		if now, err := k.creds(name); err != nil || !kcmHasDuplicates(now) {
			return err
		}
	}
	if err := k.fill(name, cc, creds); err != nil {
		if oerr == nil {
			k.fill(name, old, kcmStoreOrder(old))
		}
		return err
	}
	return nil
}

// kcmStoreOrder lists cc's credentials with the TGT first, so that a
// cache being filled holds a usable ticket as early as possible.
func kcmStoreOrder(cc *CCache) []*Credential {
	out := make([]*Credential, 0, len(cc.Credentials))
	tgt, _ := cc.TGT()
	if tgt != nil {
		out = append(out, tgt)
	}
	for i := range cc.Credentials {
		if c := &cc.Credentials[i]; c != tgt {
			out = append(out, c)
		}
	}
	return out
}

// kcmCoveredBy reports whether every entry of old has a successor in cc
// (same client and server), so that storing cc over old leaves nothing of
// old behind on a daemon that replaces such entries.
func kcmCoveredBy(old, cc *CCache) bool {
	for i := range old.Credentials {
		o := &old.Credentials[i]
		found := false
		for j := range cc.Credentials {
			n := &cc.Credentials[j]
			if o.Client.Equal(n.Client) && o.Server.Equal(n.Server) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func kcmHasDuplicates(creds []Credential) bool {
	for i := range creds {
		for j := i + 1; j < len(creds); j++ {
			if creds[i].Client.Equal(creds[j].Client) && creds[i].Server.Equal(creds[j].Server) {
				return true
			}
		}
	}
	return false
}

func kcmOffsetSeconds(cc *CCache) uint32 {
	if !cc.HasKDCOffset {
		return 0
	}
	s := max(math.MinInt32, min(math.MaxInt32-1, cc.KDCOffset/time.Second))
	return uint32(int32(s))
}

// replace sends MIT's atomic REPLACE: offset, principal, then each
// credential with its length.
func (k *kcmConn) replace(name string, cc *CCache, creds []*Credential) error {
	w := &ccWriter{}
	w.u32(kcmOffsetSeconds(cc))
	w.principal(cc.DefaultPrincipal)
	w.u32(uint32(len(creds)))
	for _, c := range creds {
		pos := len(w.b)
		w.u32(0)
		w.credential(c, 4)
		binary.BigEndian.PutUint32(w.b[pos:], uint32(len(w.b)-pos-4))
	}
	_, err := k.call("replace the cache", kcmOpReplace, &name, w.b)
	return err
}

// fill initialises the cache with cc's principal and stores creds.
// sssd-kcm makes every cache it initialises the default one; writing a
// cache by name must not switch the user's default, so the previous
// default is put back.
func (k *kcmConn) fill(name string, cc *CCache, creds []*Credential) error {
	before, berr := k.defaultCache()
	w := &ccWriter{}
	w.principal(cc.DefaultPrincipal)
	if _, err := k.call("initialize the cache", kcmOpInitialize, &name, w.b); err != nil {
		return err
	}
	if after, err := k.defaultCache(); berr == nil && err == nil && after != before {
		k.call("set the default cache", kcmOpSetDefaultCache, &before, nil)
	}
	if err := k.storeAll(name, creds); err != nil {
		return err
	}
	return k.setOffset(name, cc)
}

func (k *kcmConn) storeAll(name string, creds []*Credential) error {
	for _, c := range creds {
		w := &ccWriter{}
		w.credential(c, 4)
		if _, err := k.call("store credentials", kcmOpStore, &name, w.b); err != nil {
			return err
		}
	}
	return nil
}

func (k *kcmConn) setOffset(name string, cc *CCache) error {
	if !cc.HasKDCOffset {
		return nil
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], kcmOffsetSeconds(cc))
	_, err := k.call("set the KDC offset", kcmOpSetKDCOffset, &name, b[:])
	if kcmUnsupported(err) {
		return nil
	}
	return err
}

// Destroy removes the cache from the daemon. A cache that is not there
// gives an error matching ErrNoCache.
func (c *KCMCache) Destroy() error { return c.simple("destroy the cache", kcmOpDestroy) }

// SetPrimary makes this cache the user's default KCM cache (kswitch).
func (c *KCMCache) SetPrimary() error {
	return c.simple("set the default cache", kcmOpSetDefaultCache)
}

// simple sends one request that takes only the cache name.
func (c *KCMCache) simple(what string, op uint16) error {
	k, err := kcmDial(c.Socket)
	if err != nil {
		return err
	}
	defer k.Close()
	_, err = k.call(what, op, &c.Residual, nil)
	return err
}

// String is the full cache name.
func (c *KCMCache) String() string { return c.Name() }
