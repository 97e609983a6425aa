package krb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// The MIT FILE credentials cache format (versions 3 and 4), as described
// in MIT's lib/krb5/ccache/cc_file.c and ccmarshal.c:
//
//	file       = 05 vv, [header (v4 only)], default principal, credential*
//	header     = u16 total length, then (u16 tag, u16 length, value)*
//	principal  = u32 name type, u32 component count, realm, components
//	credential = client, server, keyblock, 4 × u32 times, u8 is_skey,
//	             u32 flags, addresses, authdata, ticket, second ticket
//
// All integers are big-endian in versions 3 and 4; strings and blobs are a
// u32 length followed by the bytes. Version 3 writes the key's enctype
// twice. Versions 1 and 2 use host byte order and are refused.

// Ticket flags in MIT's layout (RFC 4120 section 5.3 bit n is 1<<(31-n)),
// as stored in Credential.Flags.
const (
	TktFlagForwardable          uint32 = 0x40000000
	TktFlagForwarded            uint32 = 0x20000000
	TktFlagProxiable            uint32 = 0x10000000
	TktFlagProxy                uint32 = 0x08000000
	TktFlagMayPostdate          uint32 = 0x04000000
	TktFlagPostdated            uint32 = 0x02000000
	TktFlagInvalid              uint32 = 0x01000000
	TktFlagRenewable            uint32 = 0x00800000
	TktFlagInitial              uint32 = 0x00400000
	TktFlagPreAuth              uint32 = 0x00200000
	TktFlagHWAuth               uint32 = 0x00100000
	TktFlagTransitPolicyChecked uint32 = 0x00080000
	TktFlagOKAsDelegate         uint32 = 0x00040000
	TktFlagEncPARep             uint32 = 0x00010000
	TktFlagAnonymous            uint32 = 0x00008000

	// CacheConfigRealm and CacheConfigPrefix mark MIT cache configuration entries:
	// server principal krb5_ccache_conf_data/<key>[/<principal>]@X-CACHECONF:.
	CacheConfigRealm  = "X-CACHECONF:"
	CacheConfigPrefix = "krb5_ccache_conf_data"
)

const (
	ccHeaderTagKDCOffset uint16 = 1
	ccKDCOffsetLen              = 8
	ccHeaderTagLen              = 4
	ccMaxHeader                 = math.MaxUint16
	// Far above any real cache (a ticket is a few KiB) yet small enough
	// that a hostile file cannot make us allocate without bound.
	ccMaxFileSize         = 64 << 20
	ccFileVersionBase     = 0x0500
	ccDefaultWriteVersion = 4

	ccNameTypeUnknown   int32 = 0
	ccNameTypePrincipal int32 = 1
	ccNameTypeSrvInst   int32 = 2

	ccNoCacheMsg   = "no credentials cache found"
	ccTruncatedMsg = "truncated %s at byte %d"
)

// ccFlagOrder is MIT klist's flags_string order and letters.
var ccFlagOrder = []struct {
	flag   uint32
	letter byte
}{
	{TktFlagForwardable, 'F'},
	{TktFlagForwarded, 'f'},
	{TktFlagProxiable, 'P'},
	{TktFlagProxy, 'p'},
	{TktFlagMayPostdate, 'D'},
	{TktFlagPostdated, 'd'},
	{TktFlagInvalid, 'i'},
	{TktFlagRenewable, 'R'},
	{TktFlagInitial, 'I'},
	{TktFlagHWAuth, 'H'},
	{TktFlagPreAuth, 'A'},
	{TktFlagTransitPolicyChecked, 'T'},
	{TktFlagOKAsDelegate, 'O'},
	{TktFlagAnonymous, 'a'},
}

// FlagString renders ticket flags as MIT `klist -f` does, e.g. "FRIA".
func FlagString(flags uint32) string {
	var b []byte
	for _, f := range ccFlagOrder {
		if flags&f.flag != 0 {
			b = append(b, f.letter)
		}
	}
	return string(b)
}

// FlagString renders the credential's flags as MIT `klist -f` does.
func (c Credential) FlagString() string { return FlagString(c.Flags) }

// ---- errors ----

// ErrNoCache is matched (errors.Is) by the error of reading or destroying
// a cache file that does not exist.
var ErrNoCache = errors.New("no credentials cache found")

// NoCacheError says that the cache file is not there. It matches both
// ErrNoCache and fs.ErrNotExist.
type NoCacheError struct {
	Path string
	Err  error
}

// Error says that no cache was found, naming the file as MIT klist does.
func (e *NoCacheError) Error() string {
	return fmt.Sprintf("%s (filename: %s)", ccNoCacheMsg, e.Path)
}

// Unwrap returns the underlying file system error.
func (e *NoCacheError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNoCache) true.
func (e *NoCacheError) Is(target error) bool { return target == ErrNoCache }

// Hint suggests the way out.
func (e *NoCacheError) Hint() string { return "get a ticket with: sesame kinit" }

// CCacheFormatError reports a cache file that cannot be parsed: truncated,
// damaged, hostile, or in a format version sesame does not read.
type CCacheFormatError struct {
	Path   string // file name when known
	Offset int    // byte offset where parsing stopped
	Msg    string
	// NotCache: the file does not start like a credentials cache at all,
	// so it is more likely a wrong name than a damaged cache.
	NotCache bool
}

// Error is one line naming the file and what is wrong with it.
func (e *CCacheFormatError) Error() string {
	if e.NotCache && e.Path != "" {
		return fmt.Sprintf("%s is not a credentials cache: %s", e.Path, e.Msg)
	}
	if e.Path != "" {
		return fmt.Sprintf("%s: %s: %s", "credentials cache is damaged", e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", "credentials cache is damaged", e.Msg)
}

// Hint suggests the way out. A file that is not a cache at all may be
// someone's data named by mistake: kdestroy would overwrite it.
func (e *CCacheFormatError) Hint() string {
	if e.NotCache {
		return "check the cache name given with -c or KRB5CCNAME"
	}
	return "remove it with `sesame kdestroy` and get a new ticket with `sesame kinit`"
}

// NotAFileError says that the cache name points at a directory or another
// file that is not a regular file: not damaged, but the wrong name.
type NotAFileError struct {
	Path  string
	IsDir bool
}

func (e *NotAFileError) Error() string {
	if e.IsDir {
		return fmt.Sprintf("credentials cache %s is a directory, not a cache file", e.Path)
	}
	return fmt.Sprintf("credentials cache %s is not a regular file", e.Path)
}

// Hint names the forms a cache name can take.
func (e *NotAFileError) Hint() string {
	if e.IsDir {
		return "name a cache file with -c or KRB5CCNAME (FILE:/tmp/krb5cc_$(id -u)), or DIR:" + e.Path + " for a collection of caches in it"
	}
	return "name a cache file with -c or KRB5CCNAME, e.g. FILE:/tmp/krb5cc_$(id -u)"
}

// ---- reading ----

// ccReader is a bounds-checked cursor: every read checks the bytes left,
// and every count is checked against them before anything is allocated,
// so hostile length fields cannot cause huge allocations or panics.
type ccReader struct {
	b   []byte
	off int
}

func (r *ccReader) left() int { return len(r.b) - r.off }

func (r *ccReader) fail(format string, args ...any) error {
	return &CCacheFormatError{Offset: r.off, Msg: fmt.Sprintf(format, args...)}
}

func (r *ccReader) u8(what string) (uint8, error) {
	if r.left() < 1 {
		return 0, r.fail(ccTruncatedMsg, what, r.off)
	}
	v := r.b[r.off]
	r.off++
	return v, nil
}

func (r *ccReader) u16(what string) (uint16, error) {
	if r.left() < 2 {
		return 0, r.fail(ccTruncatedMsg, what, r.off)
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v, nil
}

func (r *ccReader) u32(what string) (uint32, error) {
	if r.left() < 4 {
		return 0, r.fail(ccTruncatedMsg, what, r.off)
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, nil
}

func (r *ccReader) bytes(n int, what string) ([]byte, error) {
	if n < 0 || r.left() < n {
		return nil, r.fail(ccTruncatedMsg, what, r.off)
	}
	// Copy so that the result does not pin or alias the input buffer.
	v := append([]byte(nil), r.b[r.off:r.off+n]...)
	r.off += n
	return v, nil
}

// data reads a u32 length and that many bytes.
func (r *ccReader) data(what string) ([]byte, error) {
	n, err := r.u32(what + " length")
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(r.left()) {
		return nil, r.fail(ccTruncatedMsg, what, r.off)
	}
	return r.bytes(int(n), what)
}

// count reads a u32 element count and checks that at least min bytes per
// element remain.
func (r *ccReader) count(what string, min int) (int, error) {
	n, err := r.u32(what + " count")
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(min) > uint64(r.left()) {
		return 0, r.fail("%s count %d at byte %d exceeds the data left", what, n, r.off-4)
	}
	return int(n), nil
}

func (r *ccReader) principal(what string) (Principal, error) {
	var p Principal
	nt, err := r.u32(what + " name type")
	if err != nil {
		return p, err
	}
	p.NameType = int32(nt)
	n, err := r.count(what+" component", 4)
	if err != nil {
		return p, err
	}
	realm, err := r.data(what + " realm")
	if err != nil {
		return p, err
	}
	p.Realm = string(realm)
	if n > 0 {
		p.Components = make([]string, 0, n)
	}
	for i := 0; i < n; i++ {
		c, err := r.data(what + " component")
		if err != nil {
			return p, err
		}
		p.Components = append(p.Components, string(c))
	}
	return p, nil
}

func ccTime(v uint32) time.Time {
	if v == 0 {
		return time.Time{}
	}
	// MIT stores times as unsigned 32-bit seconds (good until 2106).
	return time.Unix(int64(v), 0)
}

func (r *ccReader) credential(version int) (Credential, error) {
	var c Credential
	var err error
	if c.Client, err = r.principal("client principal"); err != nil {
		return c, err
	}
	if c.Server, err = r.principal("server principal"); err != nil {
		return c, err
	}
	et, err := r.u16("key enctype")
	if err != nil {
		return c, err
	}
	if version == 3 {
		if _, err := r.u16("key enctype"); err != nil {
			return c, err
		}
	}
	c.Key.EncType = int32(int16(et))
	if c.Key.Value, err = r.data("key"); err != nil {
		return c, err
	}
	var times [4]uint32
	for i := range times {
		if times[i], err = r.u32("ticket times"); err != nil {
			return c, err
		}
	}
	c.AuthTime, c.StartTime, c.EndTime, c.RenewTill = ccTime(times[0]), ccTime(times[1]), ccTime(times[2]), ccTime(times[3])
	skey, err := r.u8("is_skey")
	if err != nil {
		return c, err
	}
	c.IsSKey = skey != 0
	if c.Flags, err = r.u32("ticket flags"); err != nil {
		return c, err
	}
	n, err := r.count("address", 6)
	if err != nil {
		return c, err
	}
	for i := 0; i < n; i++ {
		t, err := r.u16("address type")
		if err != nil {
			return c, err
		}
		d, err := r.data("address")
		if err != nil {
			return c, err
		}
		c.Addresses = append(c.Addresses, Address{Type: int16(t), Data: d})
	}
	if n, err = r.count("authdata", 6); err != nil {
		return c, err
	}
	for i := 0; i < n; i++ {
		t, err := r.u16("authdata type")
		if err != nil {
			return c, err
		}
		d, err := r.data("authdata")
		if err != nil {
			return c, err
		}
		c.AuthData = append(c.AuthData, AuthData{Type: int16(t), Data: d})
	}
	if c.Ticket, err = r.data("ticket"); err != nil {
		return c, err
	}
	if c.SecondTicket, err = r.data("second ticket"); err != nil {
		return c, err
	}
	return c, nil
}

// ParseCCache parses an MIT FILE credentials cache (format version 3 or
// 4). Unknown v4 header fields are kept in OtherHeader; the KDC time
// offset (tag 1) sets KDCOffset. Any truncation or inconsistency is a
// *CCacheFormatError; no input makes it panic.
func ParseCCache(data []byte) (*CCache, error) {
	r := &ccReader{b: data}
	if len(data) < 2 {
		e := r.fail("file is too short to be a credentials cache (%d bytes)", len(data)).(*CCacheFormatError)
		e.NotCache = len(data) == 0
		return nil, e
	}
	if data[0] != 5 {
		e := r.fail("it does not start with a cache header (first byte %#02x)", data[0]).(*CCacheFormatError)
		e.NotCache = true
		return nil, e
	}
	version := int(data[1])
	if version != 3 && version != 4 {
		return nil, r.fail("format version %d is not supported (only 3 and 4)", version)
	}
	r.off = 2
	cc := &CCache{Version: version}
	if version == 4 {
		hlen, err := r.u16("header length")
		if err != nil {
			return nil, err
		}
		hdr, err := r.bytes(int(hlen), "header")
		if err != nil {
			return nil, err
		}
		h := &ccReader{b: hdr}
		for h.left() > 0 {
			start := 4 + h.off
			if h.left() < ccHeaderTagLen {
				return nil, r.fail("bad header field at byte %d", start)
			}
			tag, _ := h.u16("header tag")
			flen, _ := h.u16("header field length")
			val, err := h.bytes(int(flen), "header field")
			if err != nil {
				return nil, r.fail("bad header field at byte %d", start)
			}
			if tag != ccHeaderTagKDCOffset {
				cc.OtherHeader = append(cc.OtherHeader, HeaderField{Tag: tag, Value: val})
				continue
			}
			if flen != ccKDCOffsetLen {
				return nil, r.fail("KDC time offset field has length %d, want 8", flen)
			}
			// Like MIT, the first offset counts and later ones are ignored.
			if !cc.HasKDCOffset {
				sec := int32(binary.BigEndian.Uint32(val))
				usec := int32(binary.BigEndian.Uint32(val[4:]))
				cc.HasKDCOffset = true
				cc.KDCOffset = time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
			}
		}
	}
	var err error
	if cc.DefaultPrincipal, err = r.principal("default principal"); err != nil {
		return nil, err
	}
	for r.left() > 0 {
		c, err := r.credential(version)
		if err != nil {
			return nil, err
		}
		cc.Credentials = append(cc.Credentials, c)
	}
	return cc, nil
}

// ---- writing ----

type ccWriter struct{ b []byte }

func (w *ccWriter) u8(v uint8)   { w.b = append(w.b, v) }
func (w *ccWriter) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *ccWriter) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *ccWriter) data(d []byte) {
	w.u32(uint32(len(d)))
	w.b = append(w.b, d...)
}

func (w *ccWriter) principal(p Principal) {
	w.u32(uint32(p.NameType))
	w.u32(uint32(len(p.Components)))
	w.data([]byte(p.Realm))
	for _, c := range p.Components {
		w.data([]byte(c))
	}
}

func ccTimeValue(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix()
	switch {
	case s <= 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// Marshal encodes the cache in FILE format version 4 (or 3 when Version
// is 3 and nothing needs the v4 header). A cache parsed from MIT's output
// and not modified marshals to the same bytes.
func (cc *CCache) Marshal() []byte {
	version := ccDefaultWriteVersion
	if cc.Version == 3 && !cc.HasKDCOffset && len(cc.OtherHeader) == 0 {
		version = 3
	}
	w := &ccWriter{b: make([]byte, 0, 512+len(cc.Credentials)*1024)}
	w.u16(uint16(ccFileVersionBase + version))
	if version == 4 {
		var h ccWriter
		if cc.HasKDCOffset {
			sec, usec := cc.offsetParts()
			h.u16(ccHeaderTagKDCOffset)
			h.u16(ccKDCOffsetLen)
			h.u32(uint32(sec))
			h.u32(uint32(usec))
		}
		for _, f := range cc.OtherHeader {
			// A field that would overflow the 16-bit header length is
			// dropped rather than written corrupt.
			if len(h.b)+ccHeaderTagLen+len(f.Value) > ccMaxHeader || f.Tag == ccHeaderTagKDCOffset {
				continue
			}
			h.u16(f.Tag)
			h.u16(uint16(len(f.Value)))
			h.b = append(h.b, f.Value...)
		}
		w.u16(uint16(len(h.b)))
		w.b = append(w.b, h.b...)
	}
	w.principal(cc.DefaultPrincipal)
	for i := range cc.Credentials {
		w.credential(&cc.Credentials[i], version)
	}
	return w.b
}

// credential appends one credential entry in the given format version
// (3 or 4); KCM and KEYRING caches carry entries in the version 4 form.
func (w *ccWriter) credential(c *Credential, version int) {
	w.principal(c.Client)
	w.principal(c.Server)
	w.u16(uint16(int16(c.Key.EncType)))
	if version == 3 {
		w.u16(uint16(int16(c.Key.EncType)))
	}
	w.data(c.Key.Value)
	w.u32(ccTimeValue(c.AuthTime))
	w.u32(ccTimeValue(c.StartTime))
	w.u32(ccTimeValue(c.EndTime))
	w.u32(ccTimeValue(c.RenewTill))
	if c.IsSKey {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u32(c.Flags)
	w.u32(uint32(len(c.Addresses)))
	for _, a := range c.Addresses {
		w.u16(uint16(a.Type))
		w.data(a.Data)
	}
	w.u32(uint32(len(c.AuthData)))
	for _, a := range c.AuthData {
		w.u16(uint16(a.Type))
		w.data(a.Data)
	}
	w.data(c.Ticket)
	w.data(c.SecondTicket)
}

// offsetParts splits KDCOffset into MIT's seconds and microseconds. MIT
// derives the pair from the KDC's reply time with microseconds usually 0,
// so an unchanged offset reproduces the same bytes.
func (cc *CCache) offsetParts() (int32, int32) {
	sec := max(math.MinInt32, min(math.MaxInt32, cc.KDCOffset/time.Second))
	// Whatever does not fit the seconds goes to the microseconds, so any
	// offset read from a file (up to 2^31 s + 2^31 µs) is written back intact.
	usec := max(math.MinInt32, min(math.MaxInt32, (cc.KDCOffset-sec*time.Second)/time.Microsecond))
	return int32(sec), int32(usec)
}

// SetKDCOffset records the KDC clock offset (KDC time minus local time),
// which MIT and sesame add to the local clock for later requests.
func (cc *CCache) SetKDCOffset(d time.Duration) {
	cc.KDCOffset = d
	cc.HasKDCOffset = true
}

// ---- cache contents ----

// IsConfigEntry reports whether the credential is an MIT cache
// configuration entry (server krb5_ccache_conf_data/…@X-CACHECONF:)
// rather than a ticket. klist hides these unless asked.
func (c Credential) IsConfigEntry() bool {
	return c.Server.Realm == CacheConfigRealm && len(c.Server.Components) >= 2 &&
		c.Server.Components[0] == CacheConfigPrefix
}

// ConfigKey returns the key of a config entry ("pa_type", "fast_avail",
// "refresh_time", …), or "" for a ticket.
func (c Credential) ConfigKey() string {
	if !c.IsConfigEntry() {
		return ""
	}
	return c.Server.Components[1]
}

// ConfigValue returns the value of the first config entry with key that
// applies to the whole cache (not to a specific service principal).
func (cc *CCache) ConfigValue(key string) ([]byte, bool) {
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.IsConfigEntry() && len(c.Server.Components) == 2 && c.Server.Components[1] == key {
			return c.Ticket, true
		}
	}
	return nil, false
}

// SetConfigValue stores a cache-wide config entry the way MIT's
// krb5_cc_set_config does (client = default principal, value in the
// ticket field), replacing an existing one with the same key.
func (cc *CCache) SetConfigValue(key string, value []byte) {
	cc.Upsert(Credential{
		Client: cc.DefaultPrincipal,
		Server: Principal{NameType: ccNameTypePrincipal, Realm: CacheConfigRealm, Components: []string{CacheConfigPrefix, key}},
		Ticket: append([]byte(nil), value...),
	})
}

// TGT returns the ticket-granting ticket of the default principal's realm
// (krbtgt/REALM@REALM, realm compared without regard to case). If several
// are present the one valid longest wins.
func (cc *CCache) TGT() (*Credential, bool) {
	var best *Credential
	realm := cc.DefaultPrincipal.Realm
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.IsConfigEntry() || !c.Server.IsTGT(realm) {
			continue
		}
		if best == nil || c.EndTime.After(best.EndTime) {
			best = c
		}
	}
	return best, best != nil
}

// Tickets returns the credentials that are tickets (config entries left
// out), in cache order.
func (cc *CCache) Tickets() []*Credential {
	var out []*Credential
	for i := range cc.Credentials {
		if !cc.Credentials[i].IsConfigEntry() {
			out = append(out, &cc.Credentials[i])
		}
	}
	return out
}

// Upsert stores cred, replacing every entry for the same server principal
// (see Principal.Equal) or appending it when there is none. Other entries,
// such as service tickets, are kept, so a renewed TGT does not cost the
// user the service tickets already obtained.
func (cc *CCache) Upsert(cred Credential) {
	out := cc.Credentials[:0]
	placed := false
	for _, c := range cc.Credentials {
		if c.Server.Equal(cred.Server) && c.IsConfigEntry() == cred.IsConfigEntry() {
			if !placed {
				out = append(out, cred)
				placed = true
			}
			continue
		}
		out = append(out, c)
	}
	if !placed {
		out = append(out, cred)
	}
	cc.Credentials = out
}

// Valid reports whether the credential is usable at now (StartTime, or
// AuthTime when unset, not in the future; EndTime in the future), with the
// KDC offset applied to the local clock.
func (c Credential) Valid(now time.Time) bool {
	start := c.StartTime
	if start.IsZero() {
		start = c.AuthTime
	}
	return !c.EndTime.IsZero() && now.Before(c.EndTime) && !now.Before(start)
}

// KDCNow is the local clock corrected by the cache's KDC offset, the time
// to compare ticket times against.
func (cc *CCache) KDCNow() time.Time {
	if cc.HasKDCOffset {
		return time.Now().Add(cc.KDCOffset)
	}
	return time.Now()
}

// SortedByEndTime is a convenience for listings: ticket credentials
// ordered by end time, earliest first, keeping cache order for ties.
func (cc *CCache) SortedByEndTime() []*Credential {
	t := cc.Tickets()
	sort.SliceStable(t, func(i, j int) bool { return t[i].EndTime.Before(t[j].EndTime) })
	return t
}
