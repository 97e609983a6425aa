package krb

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// KEYRING caches keep tickets in the Linux kernel's key retention service,
// in the layout of MIT's cc_keyring.c, so that MIT tools and sesame share
// them:
//
//   - a residual is anchor:collection[:subsidiary], or a bare name, which
//     means legacy:name (the session keyring);
//   - the collection is a keyring named "_krb_<collection>" linked from the
//     anchor keyring (for persistent:UID, the keyring "_krb" in the uid's
//     persistent keyring);
//   - the collection holds a user key "krb_ccache:primary" (u32 version 1,
//     u32 length, the primary cache's name) and one keyring per cache,
//     named by its subsidiary name;
//   - a cache keyring holds a user key "__krb5_princ__" (the default
//     principal), optionally "__krb5_time_offsets__" (i32 seconds, i32
//     microseconds), and one key per credential named by its server
//     principal, each in the FILE v4 encoding; the keys expire with the
//     ticket.
//
// No Go library implements it; the keyctl system calls come from
// golang.org/x/sys/unix.

const (
	krKeyring          = "keyring"
	krUser             = "user"
	krBigKey           = "big_key"
	krPrincipalKey     = "__krb5_princ__"
	krOffsetsKey       = "__krb5_time_offsets__"
	krPrimaryKey       = "krb_ccache:primary"
	krCollectionPrefix = "_krb_"
	krPersistentName   = "_krb"
	krUniquePrefix     = "krb_ccache_"
	krCollectionVer    = 1
	// A key payload is at most 1 MiB (big_key); a keyring lists 4-byte
	// serials. Anything larger is refused before allocating.
	krMaxRead = 4 << 20
)

// KeyringUnavailableError says that the kernel refuses keyring calls:
// keyrings compiled out, or blocked (Docker's default seccomp profile).
type KeyringUnavailableError struct{ Err error }

func (e *KeyringUnavailableError) Error() string {
	return fmt.Sprintf("KEYRING credentials cache: kernel keyrings are not available here (%v)", e.Err)
}

func (e *KeyringUnavailableError) Unwrap() error { return e.Err }

// Hint says what to do instead.
func (e *KeyringUnavailableError) Hint() string {
	return "the kernel or the container forbids keyctl; use a file cache: export KRB5CCNAME=FILE:/tmp/krb5cc_$(id -u)"
}

// KeyringCache is one cache in a keyring collection.
type KeyringCache struct {
	Anchor     string // persistent, user, session, process, thread or legacy
	Collection string
	Subsidiary string
	// Single is set when the name given was one cache (three parts)
	// rather than a collection: a collection listing then has only it.
	Single bool

	collection int // serial of the collection keyring
}

// Name is MIT's full name of the cache, KEYRING:anchor:collection:subsidiary.
func (c *KeyringCache) Name() string {
	return "KEYRING:" + c.Anchor + ":" + c.Collection + ":" + c.Subsidiary
}

// String is the full cache name.
func (c *KeyringCache) String() string { return c.Name() }

func krErr(what string, err error) error {
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return &KeyringUnavailableError{Err: err}
	}
	return fmt.Errorf("KEYRING: %s: %w", what, err)
}

// resolveKeyring is ResolveKeyring on the locked thread: it resolves the residual of a KEYRING: name the way MIT
// does, finding or creating the collection keyring and, for a collection
// name, reading (or initialising) its primary cache name.
func resolveKeyring(residual string) (*KeyringCache, error) {
	c := &KeyringCache{}
	parts := strings.SplitN(residual, ":", 3)
	switch len(parts) {
	case 1:
		c.Anchor, c.Collection = "legacy", parts[0]
	case 2:
		c.Anchor, c.Collection = parts[0], parts[1]
	case 3:
		c.Anchor, c.Collection, c.Subsidiary, c.Single = parts[0], parts[1], parts[2], true
	}
	if c.Single && c.Subsidiary == "" {
		return nil, fmt.Errorf("KEYRING:%s: empty cache name", residual)
	}
	id, err := krCollection(c.Anchor, c.Collection)
	if err != nil {
		return nil, err
	}
	c.collection = id
	if !c.Single {
		if c.Subsidiary, err = krPrimary(c.Anchor, c.Collection, id); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// krCollection finds or creates the collection keyring.
func krCollection(anchor, collection string) (int, error) {
	switch anchor {
	case "persistent":
		uid := os.Geteuid()
		if collection != "" {
			n, err := strconv.Atoi(collection)
			if err != nil || n < 0 || n > math.MaxInt32 {
				return 0, fmt.Errorf("KEYRING:persistent:%s: not a uid", collection)
			}
			uid = n
		}
		p, err := unix.KeyctlInt(unix.KEYCTL_GET_PERSISTENT, uid, unix.KEY_SPEC_PROCESS_KEYRING, 0, 0)
		if errors.Is(err, unix.EOPNOTSUPP) && uid == os.Geteuid() {
			p, err = unix.KEY_SPEC_USER_KEYRING, nil
		}
		if err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				if uid != os.Geteuid() {
					return 0, fmt.Errorf("KEYRING:persistent:%d: permission denied: the keyring belongs to another user", uid)
				}
			}
			return 0, krErr("persistent keyring of uid "+strconv.Itoa(uid), err)
		}
		// Linking the collection into the process keyring gives us
		// possession, without which its keys cannot be read.
		return krFindOrCreate(p, unix.KEY_SPEC_PROCESS_KEYRING, krPersistentName)
	case "process":
		return krFindOrCreate(unix.KEY_SPEC_PROCESS_KEYRING, 0, krCollectionPrefix+collection)
	case "thread":
		return krFindOrCreate(unix.KEY_SPEC_THREAD_KEYRING, 0, krCollectionPrefix+collection)
	case "session", "legacy":
		return krFindOrCreate(krSessionAnchor(), 0, krCollectionPrefix+collection)
	case "user":
		return krFindOrCreate(unix.KEY_SPEC_USER_KEYRING, unix.KEY_SPEC_PROCESS_KEYRING, krCollectionPrefix+collection)
	}
	return 0, fmt.Errorf("KEYRING: unknown keyring anchor %q (persistent, user, session, process or thread)", anchor)
}

// krSessionAnchor is the keyring to write session caches to: without an
// explicit session keyring, writing to @s would make a new, private one
// on some kernels, so MIT writes to the user session keyring then.
func krSessionAnchor() int {
	s, err1 := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	u, err2 := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_SESSION_KEYRING, false)
	if err1 == nil && err2 == nil && s == u {
		return unix.KEY_SPEC_USER_SESSION_KEYRING
	}
	return unix.KEY_SPEC_SESSION_KEYRING
}

// krFindOrCreate looks name up in parent (linking it into possess when
// non-zero) or creates it there.
func krFindOrCreate(parent, possess int, name string) (int, error) {
	id, err := unix.KeyctlSearch(parent, krKeyring, name, possess)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, unix.ENOKEY) {
		return 0, krErr("find keyring "+name, err)
	}
	if possess == 0 {
		id, err = unix.AddKey(krKeyring, name, nil, parent)
		if err != nil {
			return 0, krErr("create keyring "+name, err)
		}
		return id, nil
	}
	if id, err = unix.AddKey(krKeyring, name, nil, possess); err != nil {
		return 0, krErr("create keyring "+name, err)
	}
	if _, err := unix.KeyctlInt(unix.KEYCTL_LINK, id, parent, 0, 0); err != nil {
		return 0, krErr("link keyring "+name, err)
	}
	return id, nil
}

// krPrimary returns the collection's primary cache name, setting it to
// the collection name ("tkt" when empty) when there is none yet, as MIT
// does on resolve.
func krPrimary(anchor, collection string, coll int) (string, error) {
	id, err := unix.KeyctlSearch(coll, krUser, krPrimaryKey, 0)
	if errors.Is(err, unix.ENOKEY) {
		name := collection
		if name == "" {
			name = "tkt"
		}
		return name, krSetPrimary(coll, name)
	}
	if err != nil {
		return "", krErr("find the primary cache", err)
	}
	b, err := krRead(id)
	if err != nil {
		return "", krErr("read the primary cache name", err)
	}
	return krParsePrimary(b)
}

// krParsePrimary decodes the primary key's payload.
func krParsePrimary(b []byte) (string, error) {
	if len(b) < 8 {
		return "", &CCacheFormatError{Path: krPrimaryKey, Msg: "primary cache key is too short"}
	}
	if v := binary.BigEndian.Uint32(b); v != krCollectionVer {
		return "", &CCacheFormatError{Path: krPrimaryKey, Msg: fmt.Sprintf("unknown collection version %d", v)}
	}
	n := binary.BigEndian.Uint32(b[4:])
	if uint64(n) > uint64(len(b)-8) || n == 0 {
		return "", &CCacheFormatError{Path: krPrimaryKey, Msg: "bad primary cache name length"}
	}
	name := string(b[8 : 8+n])
	if strings.ContainsRune(name, 0) {
		return "", &CCacheFormatError{Path: krPrimaryKey, Msg: "primary cache name contains a NUL"}
	}
	return name, nil
}

func krSetPrimary(coll int, name string) error {
	b := binary.BigEndian.AppendUint32(nil, krCollectionVer)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	if _, err := unix.AddKey(krUser, krPrimaryKey, b, coll); err != nil {
		return krErr("set the primary cache", err)
	}
	return nil
}

// krRead reads a key's payload (or a keyring's list of serials).
func krRead(id int) ([]byte, error) {
	for {
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, nil, 0)
		if err != nil {
			return nil, err
		}
		if n > krMaxRead {
			return nil, fmt.Errorf("key %d holds %d bytes, more than %d", id, n, krMaxRead)
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		m, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		if err != nil {
			return nil, err
		}
		if m <= n {
			return buf[:m], nil
		}
	}
}

// krList returns the serials linked from a keyring.
func krList(ring int) ([]int, error) {
	b, err := krRead(ring)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		out = append(out, int(int32(binary.NativeEndian.Uint32(b[i:]))))
	}
	return out, nil
}

// krDescribe returns a key's type and description.
func krDescribe(id int) (typ, desc string, err error) {
	s, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	if err != nil {
		return "", "", err
	}
	f := strings.SplitN(s, ";", 5)
	if len(f) != 5 {
		return "", "", fmt.Errorf("key %d: unexpected description %q", id, s)
	}
	return f[0], f[4], nil
}

// krGone reports errors of keys that vanished or expired while we looked.
func krGone(err error) bool {
	return errors.Is(err, unix.ENOKEY) || errors.Is(err, unix.EKEYEXPIRED) ||
		errors.Is(err, unix.EKEYREVOKED) || errors.Is(err, unix.EACCES)
}

// cacheID is the serial of the cache keyring, 0 when it does not exist.
func (c *KeyringCache) cacheID() (int, error) {
	id, err := unix.KeyctlSearch(c.collection, krKeyring, c.Subsidiary, 0)
	if errors.Is(err, unix.ENOKEY) {
		return 0, nil
	}
	if err != nil {
		return 0, krErr("find cache "+c.Subsidiary, err)
	}
	return id, nil
}

// read is Read on the locked thread. A cache without a principal key gives an error
// matching ErrNoCache; a key with garbage in it a *CCacheFormatError
// naming the key.
func (c *KeyringCache) read() (*CCache, error) {
	id, err := c.cacheID()
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, &cacheMissingError{Name: c.Name()}
	}
	return c.readRing(id)
}

func (c *KeyringCache) readRing(id int) (*CCache, error) {
	keys, err := krList(id)
	if err != nil {
		if krGone(err) {
			return nil, &cacheMissingError{Name: c.Name()}
		}
		return nil, krErr("read cache "+c.Name(), err)
	}
	cc := &CCache{Version: 4}
	havePrincipal := false
	for _, k := range keys {
		typ, desc, err := krDescribe(k)
		if err != nil {
			continue // unlinked or expired meanwhile
		}
		if typ != krUser && typ != krBigKey {
			continue
		}
		b, err := krRead(k)
		if krGone(err) {
			continue
		}
		if err != nil {
			return nil, krErr("read key "+desc, err)
		}
		bad := func(err error) error {
			fe := &CCacheFormatError{Path: c.Name() + " key " + strconv.Quote(desc), Msg: err.Error()}
			var inner *CCacheFormatError
			if errors.As(err, &inner) {
				fe.Msg = inner.Msg
			}
			return fe
		}
		switch desc {
		case krPrincipalKey:
			r := &ccReader{b: b}
			if cc.DefaultPrincipal, err = r.principal("default principal"); err != nil {
				return nil, bad(err)
			}
			havePrincipal = true
		case krOffsetsKey:
			if len(b) < 8 {
				return nil, bad(errors.New("time offsets key is too short"))
			}
			sec := int32(binary.BigEndian.Uint32(b))
			usec := int32(binary.BigEndian.Uint32(b[4:]))
			cc.SetKDCOffset(time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond)
		default:
			r := &ccReader{b: b}
			cred, err := r.credential(4)
			if err != nil {
				return nil, bad(err)
			}
			cc.Credentials = append(cc.Credentials, cred)
		}
	}
	if !havePrincipal {
		return nil, &cacheMissingError{Name: c.Name()}
	}
	return cc, nil
}

func (c *KeyringCache) writable() error {
	if c.Anchor == "process" || c.Anchor == "thread" {
		return fmt.Errorf("%s: a %s keyring lives only as long as one %s, so no other program would see tickets stored there", c.Name(), c.Anchor, c.Anchor)
	}
	return nil
}

// replace makes the cache hold exactly cc. It builds a complete new cache
// keyring and then links it into the collection, which the kernel does in
// one step, displacing the old keyring of the same name: readers see the
// old cache or the new one, never a half-written or empty one. Only when
// the user's key quota has no room for both does it update the keys of
// the existing keyring one by one (each update is atomic; the principal
// and the TGT are never missing).
func (c *KeyringCache) replace(cc *CCache) error {
	if err := c.writable(); err != nil {
		return err
	}
	old, err := c.cacheID()
	if err != nil {
		return err
	}
	fresh, err := unix.AddKey(krKeyring, c.Subsidiary, nil, unix.KEY_SPEC_PROCESS_KEYRING)
	if err != nil {
		return krErr("create cache keyring", err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_UNLINK, fresh, unix.KEY_SPEC_PROCESS_KEYRING, 0, 0)
	err = krFill(fresh, cc)
	if err == nil {
		_, err = unix.KeyctlInt(unix.KEYCTL_LINK, fresh, c.collection, 0, 0)
	}
	if err != nil {
		unix.KeyctlInt(unix.KEYCTL_CLEAR, fresh, 0, 0, 0)
		if errors.Is(err, unix.EDQUOT) && old != 0 {
			return c.updateInPlace(old, cc)
		}
		return krErr("store credentials in "+c.Name(), err)
	}
	if c.legacyName() {
		unix.KeyctlInt(unix.KEYCTL_LINK, fresh, krSessionAnchor(), 0, 0)
	}
	if old != 0 && old != fresh {
		// The displaced keyring is unreachable now; empty it so the old
		// tickets do not linger until the kernel collects it.
		unix.KeyctlInt(unix.KEYCTL_CLEAR, old, 0, 0, 0)
	}
	return nil
}

// legacyName reports MIT's legacy cache (legacy:NAME:NAME), which is also
// linked from the session keyring for old readers.
func (c *KeyringCache) legacyName() bool {
	return c.Anchor == "legacy" && c.Collection == c.Subsidiary
}

// krFill adds the principal, offset and credential keys to ring.
func krFill(ring int, cc *CCache) error {
	w := &ccWriter{}
	w.principal(cc.DefaultPrincipal)
	if _, err := unix.AddKey(krUser, krPrincipalKey, w.b, ring); err != nil {
		return err
	}
	if cc.HasKDCOffset {
		sec, usec := cc.offsetParts()
		b := binary.BigEndian.AppendUint32(nil, uint32(sec))
		b = binary.BigEndian.AppendUint32(b, uint32(usec))
		if _, err := unix.AddKey(krUser, krOffsetsKey, b, ring); err != nil {
			return err
		}
	}
	var last time.Time
	now := time.Now()
	for i := range cc.Credentials {
		cr := &cc.Credentials[i]
		id, err := krStoreCred(ring, cr)
		if err != nil {
			return err
		}
		if cr.EndTime.After(now) {
			krSetTimeout(id, cr.EndTime.Sub(now))
			if cr.EndTime.After(last) {
				last = cr.EndTime
			}
		}
	}
	if !last.IsZero() {
		krSetTimeout(ring, last.Sub(now))
	}
	return nil
}

// krStoreCred adds one credential key named by its server principal,
// preferring big_key (as MIT does) and falling back to user keys on
// kernels without it.
func krStoreCred(ring int, cr *Credential) (int, error) {
	w := &ccWriter{}
	w.credential(cr, 4)
	name := cr.Server.String()
	id, err := unix.AddKey(krBigKey, name, w.b, ring)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV) {
		id, err = unix.AddKey(krUser, name, w.b, ring)
	}
	clear(w.b)
	return id, err
}

func krSetTimeout(id int, d time.Duration) {
	s := int(d / time.Second)
	if s < 1 {
		s = 1
	}
	unix.KeyctlInt(unix.KEYCTL_SET_TIMEOUT, id, s, 0, 0)
}

// updateInPlace rewrites the keys of the existing cache keyring: adding a
// key whose type and description exist replaces it in one step, then
// keys that cc no longer has are unlinked.
func (c *KeyringCache) updateInPlace(ring int, cc *CCache) error {
	if err := krFill(ring, cc); err != nil {
		return krErr("store credentials in "+c.Name(), err)
	}
	keep := map[string]bool{krPrincipalKey: true}
	if cc.HasKDCOffset {
		keep[krOffsetsKey] = true
	}
	for i := range cc.Credentials {
		keep[cc.Credentials[i].Server.String()] = true
	}
	keys, err := krList(ring)
	if err != nil {
		return krErr("read cache "+c.Name(), err)
	}
	for _, k := range keys {
		if _, desc, err := krDescribe(k); err == nil && !keep[desc] {
			unix.KeyctlInt(unix.KEYCTL_UNLINK, k, ring, 0, 0)
		}
	}
	return nil
}

// destroy empties the cache keyring and unlinks it from its collection.
func (c *KeyringCache) destroy() error {
	id, err := c.cacheID()
	if err != nil {
		return err
	}
	if id == 0 {
		return &cacheMissingError{Name: c.Name()}
	}
	if _, err := unix.KeyctlInt(unix.KEYCTL_CLEAR, id, 0, 0, 0); err != nil && !krGone(err) {
		return krErr("destroy "+c.Name(), err)
	}
	if _, err := unix.KeyctlInt(unix.KEYCTL_UNLINK, id, c.collection, 0, 0); err != nil && !krGone(err) {
		return krErr("destroy "+c.Name(), err)
	}
	if c.legacyName() {
		unix.KeyctlInt(unix.KEYCTL_UNLINK, id, krSessionAnchor(), 0, 0)
	}
	return nil
}

// setPrimary makes this cache the primary one of its collection.
func (c *KeyringCache) setPrimary() error {
	if err := c.writable(); err != nil {
		return err
	}
	return krSetPrimary(c.collection, c.Subsidiary)
}

// newSubsidiary reserves a new uniquely named cache keyring
// (krb_ccache_XXXXXXXX) in the collection, as MIT's gen_new does.
func (c *KeyringCache) newSubsidiary() (*KeyringCache, error) {
	if err := c.writable(); err != nil {
		return nil, err
	}
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for tries := 0; tries < 100; tries++ {
		var r [8]byte
		rand.Read(r[:])
		name := []byte(krUniquePrefix)
		for _, b := range r {
			name = append(name, letters[int(b)%len(letters)])
		}
		if _, err := unix.KeyctlSearch(c.collection, krKeyring, string(name), 0); err == nil {
			continue
		}
		if _, err := unix.AddKey(krKeyring, string(name), nil, c.collection); err != nil {
			return nil, krErr("create a new cache", err)
		}
		return &KeyringCache{Anchor: c.Anchor, Collection: c.Collection, Subsidiary: string(name), Single: true, collection: c.collection}, nil
	}
	return nil, fmt.Errorf("KEYRING: no free cache name in collection %s", c.Collection)
}

// list returns the initialised caches of the collection, the primary
// first. For a name that gave one cache (anchor:collection:subsidiary)
// it is only that cache, as in MIT.
func (c *KeyringCache) list() ([]*KeyringCache, error) {
	with := func(sub string) *KeyringCache {
		return &KeyringCache{Anchor: c.Anchor, Collection: c.Collection, Subsidiary: sub, Single: true, collection: c.collection}
	}
	initialised := func(k *KeyringCache) bool {
		id, err := k.cacheID()
		if err != nil || id == 0 {
			return false
		}
		_, err = unix.KeyctlSearch(id, krUser, krPrincipalKey, 0)
		return err == nil
	}
	if c.Single {
		if initialised(c) {
			return []*KeyringCache{c}, nil
		}
		return nil, nil
	}
	primary, err := krPrimary(c.Anchor, c.Collection, c.collection)
	if err != nil {
		return nil, err
	}
	var out []*KeyringCache
	if p := with(primary); initialised(p) {
		out = append(out, p)
	}
	keys, err := krList(c.collection)
	if err != nil {
		return nil, krErr("list collection "+c.Collection, err)
	}
	for _, k := range keys {
		typ, desc, err := krDescribe(k)
		if err != nil || typ != krKeyring || desc == primary {
			continue
		}
		if s := with(desc); initialised(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Possession of a key (without which its payload cannot be read) comes
// from a link in one of the caller's keyrings; the collection is linked
// into the process keyring for that, as MIT does. Linux keeps the process
// keyring in each thread's credentials, and Go moves goroutines between
// threads: so every operation runs on one locked thread and first links
// the collection into that thread's process keyring again.

// onThread runs f on a locked OS thread after re-linking the collection.
func (c *KeyringCache) onThread(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := krCollection(c.Anchor, c.Collection)
	if err != nil {
		return err
	}
	c.collection = id
	return f()
}

// ResolveKeyring resolves the residual of a KEYRING: name the way MIT
// does, finding or creating the collection keyring and, for a collection
// name, reading (or initialising) its primary cache name.
func ResolveKeyring(residual string) (*KeyringCache, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return resolveKeyring(residual)
}

// Read loads the cache. A cache without a principal key gives an error
// matching ErrNoCache; a key with garbage in it a *CCacheFormatError
// naming the key.
func (c *KeyringCache) Read() (cc *CCache, err error) {
	err = c.onThread(func() error { cc, err = c.read(); return err })
	return cc, err
}

// Replace makes the cache hold exactly cc (see replace).
func (c *KeyringCache) Replace(cc *CCache) error {
	return c.onThread(func() error { return c.replace(cc) })
}

// Destroy empties the cache keyring and unlinks it from its collection.
func (c *KeyringCache) Destroy() error { return c.onThread(c.destroy) }

// SetPrimary makes this cache the primary one of its collection.
func (c *KeyringCache) SetPrimary() error { return c.onThread(c.setPrimary) }

// NewSubsidiary reserves a new uniquely named cache keyring in the
// collection, as MIT's gen_new does.
func (c *KeyringCache) NewSubsidiary() (n *KeyringCache, err error) {
	err = c.onThread(func() error { n, err = c.newSubsidiary(); return err })
	return n, err
}

// List returns the initialised caches of the collection, the primary
// first; for a name that gave one cache, only that cache.
func (c *KeyringCache) List() (l []*KeyringCache, err error) {
	err = c.onThread(func() error { l, err = c.list(); return err })
	return l, err
}
