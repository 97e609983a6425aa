package pin

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
)

// Known_hosts is read by a small parser of our own rather than through
// x/crypto/ssh/knownhosts: that package answers "is this key right for this
// name" but does not expose its entries, and the policy needs the reverse
// direction too (which names does this host key have).

// DefaultKnownHostsFiles are the files OpenSSH reads by default: the
// user's and the system's.
func DefaultKnownHostsFiles() []string {
	var files []string
	if h, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(h, ".ssh", "known_hosts"), filepath.Join(h, ".ssh", "known_hosts2"))
	}
	return append(files, "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
}

const maxKnownHostsFile = 64 << 20

const (
	markNone = iota
	markCA
	markRevoked
)

type khPattern struct {
	neg bool
	pat string // lower case; matched against "host" or "[host]:port"
}

type khEntry struct {
	marker   int
	patterns []khPattern
	salt     []byte // hashed entry: HMAC-SHA1(salt, name) == hash
	hash     []byte
	key      ssh.PublicKey
	blob     string
	file     string
	line     int
}

// ErrRevoked says a host key (or the CA that signed its certificate) is
// marked @revoked in known_hosts.
var ErrRevoked = errors.New("host key is marked @revoked in known_hosts")

// ErrUnknownHost says known_hosts has no key at all for a name.
var ErrUnknownHost = errors.New("host is not in known_hosts")

// MismatchError says known_hosts lists the name, but with other keys: the
// host key changed, or this is another server.
type MismatchError struct {
	Name  Name
	Known []string // fingerprints known_hosts has for the name
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("known_hosts lists %s with a different host key (%s)", e.Name, strings.Join(e.Known, ", "))
}

// KnownHosts is a parsed set of known_hosts files.
type KnownHosts struct {
	entries  []khEntry
	byBlob   map[string][]int // key blob → indexes of plain and CA entries
	revoked  map[string]bool  // key blobs marked @revoked
	Warnings []string         // lines that were skipped, "file:line: why"
}

// ParseKnownHosts parses known_hosts content. Bad lines are skipped and
// listed in Warnings, as OpenSSH skips them.
func ParseKnownHosts(data []byte, file string) *KnownHosts {
	k := &KnownHosts{byBlob: map[string][]int{}, revoked: map[string]bool{}}
	k.add(data, file)
	return k
}

// LoadKnownHosts reads the files; missing ones are skipped.
func LoadKnownHosts(files []string) (*KnownHosts, error) {
	k := &KnownHosts{byBlob: map[string][]int{}, revoked: map[string]bool{}}
	for _, f := range files {
		data, err := readBounded(f, maxKnownHostsFile)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		k.add(data, f)
	}
	return k, nil
}

func (k *KnownHosts) add(data []byte, file string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		e, ok, err := parseKnownHostsLine(sc.Text())
		if err != nil {
			k.Warnings = append(k.Warnings, fmt.Sprintf("%s:%d: %v", file, n, err))
			continue
		}
		if !ok {
			continue
		}
		e.file, e.line = file, n
		if e.marker == markRevoked {
			k.revoked[e.blob] = true
		}
		k.entries = append(k.entries, e)
		k.byBlob[e.blob] = append(k.byBlob[e.blob], len(k.entries)-1)
	}
	if err := sc.Err(); err != nil {
		k.Warnings = append(k.Warnings, fmt.Sprintf("%s:%d: %v", file, n+1, err))
	}
}

func parseKnownHostsLine(line string) (khEntry, bool, error) {
	var e khEntry
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return e, false, nil
	}
	f := strings.Fields(line)
	if strings.HasPrefix(f[0], "@") {
		switch f[0] {
		case "@cert-authority":
			e.marker = markCA
		case "@revoked":
			e.marker = markRevoked
		default:
			return e, false, fmt.Errorf("unknown marker %q", f[0])
		}
		f = f[1:]
	}
	if len(f) < 3 {
		return e, false, errors.New("expected hosts, key type and key")
	}
	blob, err := base64.StdEncoding.DecodeString(f[2])
	if err != nil {
		return e, false, fmt.Errorf("bad base64 key: %w", err)
	}
	key, err := agent.ParseHostKey(blob)
	if err != nil {
		return e, false, fmt.Errorf("bad key: %w", err)
	}
	if key.Type() != f[1] {
		return e, false, fmt.Errorf("key type %s does not match %s", key.Type(), f[1])
	}
	e.key, e.blob = key, string(blob)
	hosts := f[0]
	if strings.HasPrefix(hosts, "|1|") {
		parts := strings.Split(hosts[3:], "|")
		if len(parts) != 2 {
			return e, false, errors.New("bad hashed host")
		}
		e.salt, err = base64.StdEncoding.DecodeString(parts[0])
		if err != nil || len(e.salt) != sha1.Size {
			return e, false, errors.New("bad hashed host salt")
		}
		e.hash, err = base64.StdEncoding.DecodeString(parts[1])
		if err != nil || len(e.hash) != sha1.Size {
			return e, false, errors.New("bad hashed host hash")
		}
		return e, true, nil
	}
	for _, p := range strings.Split(strings.ToLower(hosts), ",") {
		kp := khPattern{}
		if strings.HasPrefix(p, "!") {
			kp.neg, p = true, p[1:]
		}
		if p == "" {
			continue
		}
		kp.pat = p
		e.patterns = append(e.patterns, kp)
	}
	if len(e.patterns) == 0 {
		return e, false, errors.New("no host patterns")
	}
	return e, true, nil
}

// matchName reports whether the entry's host field covers the name, the
// way OpenSSH matches "host" or "[host]:port" against it.
func (e *khEntry) matchName(n Name) bool {
	s := n.String()
	if e.salt != nil {
		mac := hmac.New(sha1.New, e.salt)
		mac.Write([]byte(s))
		return hmac.Equal(mac.Sum(nil), e.hash)
	}
	matched := false
	for _, p := range e.patterns {
		if wildMatch(p.pat, s) {
			if p.neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// literalNames lists the names an unhashed entry spells out without
// wildcards.
func (e *khEntry) literalNames() []Name {
	var out []Name
	for _, p := range e.patterns {
		if p.neg || strings.ContainsAny(p.pat, "*?") {
			continue
		}
		n, err := ParseName(p.pat)
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

// ports lists the ports an entry's patterns name, always with 22: the ports
// at which certificate principals are tried.
func (e *khEntry) ports() []int {
	ports := []int{22}
	for _, p := range e.patterns {
		if _, port, err := splitHostPort(p.pat); err == nil && port != 0 && port != 22 {
			ports = append(ports, port)
		}
	}
	return ports
}

// isRevoked reports whether key, or for a certificate its key or CA, is
// marked @revoked.
func (k *KnownHosts) isRevoked(key ssh.PublicKey) bool {
	if k.revoked[string(key.Marshal())] {
		return true
	}
	if c, ok := key.(*ssh.Certificate); ok {
		return k.revoked[string(c.Key.Marshal())] || k.revoked[string(c.SignatureKey.Marshal())]
	}
	return false
}

// hostCert returns key as a host certificate, or nil.
func hostCert(key ssh.PublicKey) *ssh.Certificate {
	if c, ok := key.(*ssh.Certificate); ok && c.CertType == ssh.HostCert {
		return c
	}
	return nil
}

// certValidFor checks a host certificate for one name: signature by its
// CA, validity period, and the name among its principals. A certificate
// without principals matches no name.
func certValidFor(c *ssh.Certificate, host string) bool {
	if len(c.ValidPrincipals) == 0 {
		return false
	}
	checker := ssh.CertChecker{}
	return checker.CheckCert(host, c) == nil
}

// HasKey reports whether known_hosts says that name has key: an entry for
// the name lists the key itself or, for a host certificate, its CA
// (@cert-authority) with the name among the certificate's principals. A
// revoked key has no names.
func (k *KnownHosts) HasKey(n Name, key ssh.PublicKey) bool {
	if k == nil || k.isRevoked(key) {
		return false
	}
	return k.hasKey(n, newKeyBlobs(key))
}

// keyBlobs holds the wire forms a lookup compares against, computed once.
type keyBlobs struct {
	cert  *ssh.Certificate
	plain string // the key, or the certificate's inner key
	ca    string // the certificate's CA key
}

func newKeyBlobs(key ssh.PublicKey) keyBlobs {
	var b keyBlobs
	if c := hostCert(key); c != nil {
		b.cert, b.plain, b.ca = c, string(c.Key.Marshal()), string(c.SignatureKey.Marshal())
		return b
	}
	b.plain = string(key.Marshal())
	return b
}

func (k *KnownHosts) hasKey(n Name, b keyBlobs) bool {
	if b.cert != nil {
		for _, i := range k.byBlob[b.ca] {
			e := &k.entries[i]
			if e.marker == markCA && e.matchName(n) && certValidFor(b.cert, n.Host) {
				return true
			}
		}
	}
	for _, i := range k.byBlob[b.plain] {
		e := &k.entries[i]
		if e.marker == markNone && e.matchName(n) {
			return true
		}
	}
	return false
}

// Check says what known_hosts thinks of key for name: nil when it is
// listed, ErrRevoked, a *MismatchError when the name is listed with other
// keys only, or ErrUnknownHost.
func (k *KnownHosts) Check(n Name, key ssh.PublicKey) error {
	if k.isRevoked(key) {
		return ErrRevoked
	}
	if k.HasKey(n, key) {
		return nil
	}
	var known []string
	for i := range k.entries {
		e := &k.entries[i]
		if e.marker != markRevoked && e.matchName(n) {
			fp := ssh.FingerprintSHA256(e.key)
			if e.marker == markCA {
				fp = "CA " + fp
			}
			known = append(known, fp)
		}
	}
	if len(known) > 0 {
		return &MismatchError{Name: n, Known: known}
	}
	return ErrUnknownHost
}

// Names returns the names known_hosts gives key: the literal names of the
// unhashed entries that list it (or its CA, through the certificate's
// principals), plus those of candidates that known_hosts confirms — the
// only way to match hashed and wildcard entries. A candidate with port 0
// is tried at port 22. The result has no duplicates; it is empty for a
// revoked key.
func (k *KnownHosts) Names(key ssh.PublicKey, candidates []Name) []Name {
	if k == nil || k.isRevoked(key) {
		return nil
	}
	b := newKeyBlobs(key)
	seen := map[Name]bool{}
	var out []Name
	try := func(n Name) {
		if n.Port == 0 {
			n.Port = 22
		}
		if seen[n] {
			return
		}
		seen[n] = true
		if k.hasKey(n, b) {
			out = append(out, n)
		}
	}
	if b.cert != nil {
		for _, i := range k.byBlob[b.ca] {
			e := &k.entries[i]
			if e.marker != markCA {
				continue
			}
			for _, port := range e.ports() {
				for _, p := range b.cert.ValidPrincipals {
					if !strings.ContainsAny(p, "*?") {
						try(Name{Host: strings.ToLower(p), Port: port})
					}
				}
			}
		}
	}
	for _, i := range k.byBlob[b.plain] {
		e := &k.entries[i]
		if e.marker != markNone {
			continue
		}
		for _, n := range e.literalNames() {
			try(n)
		}
	}
	if b.cert != nil && len(k.byBlob[b.ca]) > 0 {
		for _, n := range candidates {
			try(n)
		}
	}
	// Entry by entry rather than name by name, so that each hashed entry
	// keys its HMAC once for all candidates: with thousands of pinned
	// names this is most of the cost of identifying a new host.
	for _, i := range k.byBlob[b.plain] {
		e := &k.entries[i]
		if e.marker != markNone {
			continue
		}
		match := e.matcher()
		for _, n := range candidates {
			if n.Port == 0 {
				n.Port = 22
			}
			if !seen[n] && match(n) {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// matcher returns matchName with the HMAC keyed once.
func (e *khEntry) matcher() func(Name) bool {
	if e.salt == nil {
		return e.matchName
	}
	mac := hmac.New(sha1.New, e.salt)
	var sum [sha1.Size]byte
	var buf []byte
	return func(n Name) bool {
		mac.Reset()
		buf = appendName(buf[:0], n)
		mac.Write(buf)
		return hmac.Equal(mac.Sum(sum[:0]), e.hash)
	}
}

// appendName appends the known_hosts form of n without allocating.
func appendName(b []byte, n Name) []byte {
	if n.Port == 22 || n.Port == 0 {
		return append(b, n.Host...)
	}
	b = append(b, '[')
	b = append(b, n.Host...)
	b = append(b, "]:"...)
	return strconv.AppendInt(b, int64(n.Port), 10)
}
