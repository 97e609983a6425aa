package krb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/sesame-ssh/sesame/internal/osuser"
)

// DefaultConfigPath is where MIT (and Debian) look for krb5.conf when
// KRB5_CONFIG is not set.
const DefaultConfigPath = "/etc/krb5.conf"

// MIT library defaults for the values gokrb5 gets wrong or leaves out.
const (
	cfgDefaultTicketLifetime     = 24 * time.Hour
	cfgDefaultClockskew          = 300 * time.Second
	cfgDefaultUDPPreferenceLimit = 1465
	// MIT refuses UDP for anything larger than this whatever the setting.
	cfgMaxUDPPreferenceLimit = 32700
	cfgDefaultKeytabName     = "FILE:/etc/krb5.keytab"
	// Debian's build of MIT krb5 (see `strings libkrb5.so.3`).
	cfgDefaultClientKeytabName = "FILE:/etc/krb5/user/%{euid}/client.keytab"
	// MIT gives up rather than recurse forever on an include loop; it has
	// no explicit limit, we stop at a depth no sane setup reaches.
	cfgMaxIncludeDepth = 16
)

// Config is the merged krb5.conf as MIT reads it: every file of
// KRB5_CONFIG in order, with include and includedir expanded in place.
// The typed fields hold the [libdefaults] values the Kerberos exchanges
// need, with MIT's defaults filled in; Get and GetAll reach anything else.
type Config struct {
	// Files lists every file actually read, in reading order (top-level
	// files and the files they include).
	Files []string

	DefaultRealm string
	// DefaultCCacheName is default_ccache_name as written (tokens such as
	// %{uid} unexpanded), or "" when unset. ResolveCacheName expands it.
	DefaultCCacheName string
	// DefaultKeytabName and DefaultClientKeytabName are as written, or
	// MIT's defaults; see KeytabName and ClientKeytabName for the
	// environment-aware, expanded forms.
	DefaultKeytabName       string
	DefaultClientKeytabName string

	TicketLifetime     time.Duration // default 1 day
	RenewLifetime      time.Duration // default 0: not renewable unless asked
	Forwardable        bool
	Proxiable          bool
	UDPPreferenceLimit int           // default 1465; 1 means always TCP
	Clockskew          time.Duration // default 300s
	KDCTimeSync        bool          // default true: record the KDC offset in the cache
	DNSLookupKDC       bool          // MIT default true (gokrb5: false)
	DNSLookupRealm     bool          // default false
	// DNSCanonicalizeHostname is "true" (MIT default), "false" or "fallback".
	DNSCanonicalizeHostname string
	RDNS                    bool // default true
	NoAddresses             bool // default true

	// Realms maps each realm named in [realms] to its settings, spelled as
	// in the file. Use Realm for a lookup that tolerates a case mismatch.
	Realms map[string]*RealmConfig
	// DomainRealm is the [domain_realm] section: lower-cased host or
	// .domain to realm.
	DomainRealm map[string]string

	roots []*profNode // one merged tree per top-level file
}

// RealmConfig is one entry of the [realms] section.
type RealmConfig struct {
	Name          string
	KDC           []string // as written: host, host:port, [v6]:port, tcp/host, https://…
	MasterKDC     []string
	AdminServer   []string
	KPasswdServer []string
	DefaultDomain string
}

// ConfigError reports a krb5.conf line MIT would reject. Its message names
// the file and the line so that the user can go and fix it.
type ConfigError struct {
	File string
	Line int // 1-based; 0 when the problem is not a single line
	Msg  string
	Err  error // underlying I/O error, if any
}

// Error is one line: "krb5.conf FILE:LINE: what is wrong".
func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("krb5.conf %s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("krb5.conf %s: %s", e.File, e.Msg)
}

// Unwrap returns the underlying I/O error.
func (e *ConfigError) Unwrap() error { return e.Err }

// Hint tells the user where the problem lives.
func (e *ConfigError) Hint() string {
	return "fix that line, or point KRB5_CONFIG at another krb5.conf"
}

// ConfigPaths returns the krb5.conf files MIT would read: the
// colon-separated KRB5_CONFIG when set, else DefaultConfigPath.
func ConfigPaths() []string {
	v, ok := os.LookupEnv("KRB5_CONFIG")
	if !ok {
		return []string{DefaultConfigPath}
	}
	var out []string
	for _, p := range strings.Split(v, ":") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// LoadConfig reads the krb5.conf files named by KRB5_CONFIG (or the
// default) the way MIT does: files that do not exist or cannot be read are
// skipped, includes are followed, and a syntax error anywhere is an error
// naming the file and line. With no file at all the result holds MIT's
// defaults, as MIT's library does.
func LoadConfig() (*Config, error) {
	return LoadConfigFiles(ConfigPaths()...)
}

// LoadConfigFiles is LoadConfig for an explicit list of files, earlier
// files taking precedence for single values.
func LoadConfigFiles(paths ...string) (*Config, error) {
	c := &Config{}
	for _, p := range paths {
		if strings.HasPrefix(p, "~/") {
			if home, err := os.UserHomeDir(); err == nil {
				p = filepath.Join(home, p[2:])
			}
		}
		root := &profNode{}
		pp := profParser{open: cfgReadFile, readDir: os.ReadDir, files: &c.Files}
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
			// MIT's profile library quietly skips a missing or unreadable
			// entry of the path list; only includes must exist.
			continue
		case err != nil:
			return nil, &ConfigError{File: p, Msg: "cannot read: " + cfgErrText(err), Err: err}
		case fi.IsDir():
			// A directory in the list is read like includedir.
			if err := pp.includeDir(p, 0, p, root, 0); err != nil {
				return nil, err
			}
		default:
			data, err := cfgReadFile(p)
			if errors.Is(err, fs.ErrPermission) {
				continue
			}
			if err != nil {
				return nil, &ConfigError{File: p, Msg: "cannot read: " + cfgErrText(err), Err: err}
			}
			if err := pp.parseFile(p, data, root, 0); err != nil {
				return nil, err
			}
		}
		c.roots = append(c.roots, root)
	}
	c.fill()
	return c, nil
}

// cfgReadFile reads a profile file. A directory reads as empty, as it does
// for MIT (fopen succeeds, the first read ends the file).
func cfgReadFile(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil && cfgIsDirErr(err) {
		return nil, nil
	}
	return b, err
}

// ParseConfig parses one krb5.conf held in memory; name is used in error
// messages. include and includedir lines are followed on the filesystem.
func ParseConfig(name string, data []byte) (*Config, error) {
	return parseConfigWith(name, data, cfgReadFile, os.ReadDir)
}

func parseConfigWith(name string, data []byte, open func(string) ([]byte, error), readDir func(string) ([]os.DirEntry, error)) (*Config, error) {
	c := &Config{}
	root := &profNode{}
	pp := profParser{open: open, readDir: readDir, files: &c.Files}
	if err := pp.parseFile(name, data, root, 0); err != nil {
		return nil, err
	}
	c.roots = []*profNode{root}
	c.fill()
	return c, nil
}

func cfgIsDirErr(err error) bool {
	return errors.Is(err, syscall.EISDIR)
}

// cfgErrText is the lowercase reason of an I/O error without the path, which
// the caller already names.
func cfgErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ---- the profile tree, as MIT's profile library builds it ----

// profNode is a section (value == nil) or a relation. Sections of the same
// name under one parent are merged, as MIT does.
type profNode struct {
	name  string
	value *string
	final bool
	kids  []*profNode
}

func (n *profNode) section(name string) *profNode {
	for _, k := range n.kids {
		if k.value == nil && k.name == name {
			return k
		}
	}
	return nil
}

func (n *profNode) addSection(name string) *profNode {
	if s := n.section(name); s != nil {
		return s
	}
	s := &profNode{name: name}
	n.kids = append(n.kids, s)
	return s
}

// addRelation appends tag = value unless a final relation of that name is
// already there (MIT's check_final).
func (n *profNode) addRelation(tag, value string) *profNode {
	for _, k := range n.kids {
		if k.value != nil && k.name == tag && k.final {
			return nil
		}
	}
	v := value
	r := &profNode{name: tag, value: &v}
	n.kids = append(n.kids, r)
	return r
}

type profParser struct {
	open    func(string) ([]byte, error)
	readDir func(string) ([]os.DirEntry, error)
	files   *[]string
}

const (
	profInit     = iota // before the first section: everything else ignored
	profStd             // ordinary lines
	profGetBrace        // "tag =" seen, the next line must open with {
)

// parseFile parses one file into root with fresh syntactic state, as MIT
// does for each file and each included fragment.
func (pp *profParser) parseFile(name string, data []byte, root *profNode, depth int) error {
	*pp.files = append(*pp.files, name)
	state := profInit
	level := 0   // 0 outside sections, 1 in a section, >1 inside { }
	discard := 0 // level of a final section whose later values are dropped
	var cur *profNode
	// stack of sections entered with "tag = {", to go back up on "}".
	var stack []*profNode
	lines := strings.Split(string(data), "\n")
	for i, raw := range lines {
		lineNo := i + 1
		line := strings.TrimRight(raw, "\r")
		fail := func(msg string) error {
			return &ConfigError{File: name, Line: lineNo, Msg: msg}
		}
		// include and includedir count only at the very start of a line.
		if rest, ok := profDirective(line, "include"); ok {
			if err := pp.include(name, lineNo, rest, root, depth); err != nil {
				return err
			}
			continue
		}
		if rest, ok := profDirective(line, "includedir"); ok {
			if err := pp.includeDir(name, lineNo, rest, root, depth); err != nil {
				return err
			}
			continue
		}
		switch state {
		case profInit:
			if !strings.HasPrefix(line, "[") {
				continue
			}
			state = profStd
		case profGetBrace:
			if !strings.HasPrefix(strings.TrimLeftFunc(line, unicode.IsSpace), "{") {
				return fail(`expected "{" after a relation with no value`)
			}
			state = profStd
			continue
		}

		s := strings.TrimLeftFunc(line, unicode.IsSpace)
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		switch s[0] {
		case '[':
			if level > 1 {
				return fail("section header inside a { } block (missing })")
			}
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return fail(`section header without "]"`)
			}
			cur = root.addSection(s[1:end])
			stack = stack[:0]
			level = 1
			discard = 0
			if cur.final {
				discard = 1
			}
			rest := s[end+1:]
			if strings.HasPrefix(rest, "*") {
				cur.final = true
				rest = rest[1:]
			}
			if strings.TrimSpace(rest) != "" {
				return fail("text after section header")
			}
			continue
		case '}':
			if level < 2 {
				return fail(`"}" without a matching "{"`)
			}
			if strings.HasPrefix(s[1:], "*") && discard == 0 {
				cur.final = true
			}
			level--
			if level < discard {
				discard = 0
			}
			if discard == 0 && len(stack) > 0 {
				cur = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			}
			continue
		}

		// A relation: tag = value, tag = {, or tag = (with { on the next line).
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return fail(fmt.Sprintf("expected \"tag = value\", got %q", profClip(s)))
		}
		if eq == 0 {
			return fail(`relation with an empty name before "="`)
		}
		tag := s[:eq]
		if f := strings.IndexFunc(tag, unicode.IsSpace); f >= 0 {
			if strings.TrimSpace(tag[f:]) != "" {
				return fail(fmt.Sprintf("space inside the name %q", profClip(strings.TrimSpace(tag))))
			}
			tag = tag[:f]
		}
		value := strings.TrimLeftFunc(s[eq+1:], unicode.IsSpace)
		sub := false
		switch {
		case strings.HasPrefix(value, `"`):
			value = profUnquote(value[1:])
		case value == "":
			sub = true
			state = profGetBrace
		case value[0] == '{' && strings.TrimSpace(value[1:]) == "":
			sub = true
		default:
			value = strings.TrimRightFunc(value, unicode.IsSpace)
		}
		final := false
		if k := strings.IndexByte(tag, '*'); k >= 0 {
			tag, final = tag[:k], true
		}
		if sub {
			level++
			if discard == 0 {
				stack = append(stack, cur)
				cur = cur.addSection(tag)
				if cur.final {
					discard = level
				}
				if final {
					cur.final = true
				}
			}
			continue
		}
		if discard == 0 {
			if r := cur.addRelation(tag, value); r != nil && final {
				r.final = true
			}
		}
	}
	// MIT accepts a file that ends inside an open { } block; so do we.
	return nil
}

// profDirective matches MIT's test: the word at column 0 followed by white
// space. It returns the argument with surrounding white space removed.
func profDirective(line, word string) (string, bool) {
	if len(line) <= len(word) || !strings.HasPrefix(line, word) || !unicode.IsSpace(rune(line[len(word)])) {
		return "", false
	}
	return strings.TrimSpace(line[len(word):]), true
}

func (pp *profParser) include(from string, line int, path string, root *profNode, depth int) error {
	if depth >= cfgMaxIncludeDepth {
		return &ConfigError{File: from, Line: line, Msg: "includes nested too deeply (include loop?)"}
	}
	data, err := pp.open(path)
	if err != nil {
		return &ConfigError{File: from, Line: line, Msg: fmt.Sprintf("cannot include %s: %s", path, cfgErrText(err)), Err: err}
	}
	return pp.parseFile(path, data, root, depth+1)
}

func (pp *profParser) includeDir(from string, line int, dir string, root *profNode, depth int) error {
	if depth >= cfgMaxIncludeDepth {
		return &ConfigError{File: from, Line: line, Msg: "includes nested too deeply (include loop?)"}
	}
	ents, err := pp.readDir(dir)
	if err != nil {
		return &ConfigError{File: from, Line: line, Msg: fmt.Sprintf("cannot include directory %s: %s", dir, cfgErrText(err)), Err: err}
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		// A subdirectory reads as empty for MIT; skipping it is the same.
		if IncludeDirName(e.Name()) && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := dir + "/" + n
		data, err := pp.open(p)
		if err != nil {
			// A directory or unreadable entry in the include dir makes MIT
			// fail the whole profile, so it does here.
			return &ConfigError{File: from, Line: line, Msg: fmt.Sprintf("cannot include %s: %s", p, cfgErrText(err)), Err: err}
		}
		if err := pp.parseFile(p, data, root, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// IncludeDirName reports whether includedir reads a file of this name: MIT
// takes names made only of letters, digits, "-" and "_", or ending in
// ".conf", and never dot files (editor backups, .rpmsave and the like are
// skipped).
func IncludeDirName(name string) bool {
	if name == "" || name[0] == '.' {
		return false
	}
	if strings.HasSuffix(name, ".conf") {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// profUnquote decodes a quoted value the way MIT does: up to the next
// unescaped quote (or the end), with \n \t \b and \<any> escapes.
func profUnquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			break
		}
		if c == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			default:
				c = s[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func profClip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// ---- lookups ----

// GetAll returns every value of the relation at path (section, subsections…,
// tag) across all files in order, stopping after a file whose matching
// section or relation is marked final with "*".
func (c *Config) GetAll(path ...string) []string {
	if c == nil || len(path) < 2 {
		return nil
	}
	var out []string
	for _, root := range c.roots {
		n, final := root, false
		for _, name := range path[:len(path)-1] {
			n = n.section(name)
			if n == nil {
				break
			}
			final = final || n.final
		}
		if n != nil {
			for _, k := range n.kids {
				if k.value != nil && k.name == path[len(path)-1] {
					out = append(out, *k.value)
					final = final || k.final
				}
			}
		}
		if final {
			break
		}
	}
	return out
}

// Get returns the first value of the relation at path, as MIT's
// profile_get_string does.
func (c *Config) Get(path ...string) (string, bool) {
	v := c.GetAll(path...)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// subsections lists the names of the subsections of section across files,
// first appearance first.
func (c *Config) subsections(section string) []string {
	seen := map[string]bool{}
	var out []string
	for _, root := range c.roots {
		s := root.section(section)
		if s == nil {
			continue
		}
		for _, k := range s.kids {
			if k.value == nil && !seen[k.name] {
				seen[k.name] = true
				out = append(out, k.name)
			}
		}
	}
	return out
}

// relations lists tag/value pairs directly in section across files.
func (c *Config) relations(section string) [][2]string {
	var out [][2]string
	for _, root := range c.roots {
		s := root.section(section)
		if s == nil {
			continue
		}
		for _, k := range s.kids {
			if k.value != nil {
				out = append(out, [2]string{k.name, *k.value})
			}
		}
	}
	return out
}

// Libdefault looks a [libdefaults] value up the way MIT's library does:
// first in the subsection named after the default realm
// ([libdefaults] REALM = { key = … }), then in [libdefaults] itself.
func (c *Config) Libdefault(key string) (string, bool) {
	if c.DefaultRealm != "" {
		if v, ok := c.Get("libdefaults", c.DefaultRealm, key); ok {
			return v, true
		}
	}
	return c.Get("libdefaults", key)
}

// fill sets the typed fields from the trees, with MIT's defaults.
func (c *Config) fill() {
	c.DefaultRealm, _ = c.Get("libdefaults", "default_realm")
	str := func(key, def string) string {
		if v, ok := c.Libdefault(key); ok {
			return v
		}
		return def
	}
	boolean := func(key string, def bool) bool {
		if v, ok := c.Libdefault(key); ok {
			return ParseConfigBool(v)
		}
		return def
	}
	dur := func(key string, def time.Duration) time.Duration {
		if v, ok := c.Libdefault(key); ok {
			if d, err := ParseDeltat(v); err == nil {
				return d
			}
		}
		return def
	}
	c.DefaultCCacheName = str("default_ccache_name", "")
	c.DefaultKeytabName = str("default_keytab_name", cfgDefaultKeytabName)
	c.DefaultClientKeytabName = str("default_client_keytab_name", cfgDefaultClientKeytabName)
	c.TicketLifetime = dur("ticket_lifetime", cfgDefaultTicketLifetime)
	c.RenewLifetime = dur("renew_lifetime", 0)
	c.Clockskew = dur("clockskew", cfgDefaultClockskew)
	c.Forwardable = boolean("forwardable", false)
	c.Proxiable = boolean("proxiable", false)
	c.DNSLookupKDC = boolean("dns_lookup_kdc", true)
	c.DNSLookupRealm = boolean("dns_lookup_realm", false)
	c.RDNS = boolean("rdns", true)
	c.NoAddresses = boolean("noaddresses", true)
	c.KDCTimeSync = true
	if v, ok := c.Libdefault("kdc_timesync"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		c.KDCTimeSync = err != nil || n != 0
	}
	c.UDPPreferenceLimit = cfgDefaultUDPPreferenceLimit
	if v, ok := c.Libdefault("udp_preference_limit"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			c.UDPPreferenceLimit = min(n, cfgMaxUDPPreferenceLimit)
		}
	}
	c.DNSCanonicalizeHostname = "true"
	if v, ok := c.Libdefault("dns_canonicalize_hostname"); ok {
		switch {
		case strings.EqualFold(strings.TrimSpace(v), "fallback"):
			c.DNSCanonicalizeHostname = "fallback"
		case !ParseConfigBool(v):
			c.DNSCanonicalizeHostname = "false"
		}
	}

	c.Realms = map[string]*RealmConfig{}
	for _, name := range c.subsections("realms") {
		r := &RealmConfig{
			Name:          name,
			KDC:           c.GetAll("realms", name, "kdc"),
			MasterKDC:     c.GetAll("realms", name, "master_kdc"),
			AdminServer:   c.GetAll("realms", name, "admin_server"),
			KPasswdServer: c.GetAll("realms", name, "kpasswd_server"),
		}
		r.DefaultDomain, _ = c.Get("realms", name, "default_domain")
		c.Realms[name] = r
	}
	c.DomainRealm = map[string]string{}
	for _, kv := range c.relations("domain_realm") {
		k := strings.ToLower(kv[0])
		if _, dup := c.DomainRealm[k]; !dup { // first one wins, as in MIT
			c.DomainRealm[k] = kv[1]
		}
	}
}

// Realm returns the [realms] entry for name. An exact match wins; failing
// that a case-insensitive one is accepted, because Active Directory users
// routinely type the realm in lower case and the KDC answers in upper case.
func (c *Config) Realm(name string) (*RealmConfig, bool) {
	if c == nil {
		return nil, false
	}
	if r, ok := c.Realms[name]; ok {
		return r, true
	}
	var names []string
	for n := range c.Realms {
		if strings.EqualFold(n, name) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, false
	}
	sort.Strings(names) // deterministic if several spellings exist
	return c.Realms[names[0]], true
}

// KDCs returns the configured KDC entries of realm (case-insensitive, see
// Realm), as written in krb5.conf. Empty means: ask DNS when DNSLookupKDC.
func (c *Config) KDCs(realm string) []string {
	if r, ok := c.Realm(realm); ok {
		return r.KDC
	}
	return nil
}

// RealmOfHost maps a host name to its realm through [domain_realm], most
// specific entry first, like MIT: the full name, then .domain suffixes.
// It returns "" when nothing matches.
func (c *Config) RealmOfHost(host string) string {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if r, ok := c.DomainRealm[h]; ok {
		return r
	}
	for i := 0; i < len(h); i++ {
		if h[i] == '.' {
			if r, ok := c.DomainRealm[h[i:]]; ok {
				return r
			}
		}
	}
	return ""
}

// KeytabName is the default keytab as MIT picks it: KRB5_KTNAME, else
// default_keytab_name, with %{…} tokens expanded.
func (c *Config) KeytabName() (string, error) {
	if v := os.Getenv("KRB5_KTNAME"); v != "" {
		return v, nil
	}
	return ExpandPath(c.defaulted(c.DefaultKeytabName, cfgDefaultKeytabName))
}

// ClientKeytabName is the default client keytab as MIT picks it:
// KRB5_CLIENT_KTNAME, else default_client_keytab_name, expanded.
func (c *Config) ClientKeytabName() (string, error) {
	if v := os.Getenv("KRB5_CLIENT_KTNAME"); v != "" {
		return v, nil
	}
	return ExpandPath(c.defaulted(c.DefaultClientKeytabName, cfgDefaultClientKeytabName))
}

func (c *Config) defaulted(v, def string) string {
	if c == nil || v == "" {
		return def
	}
	return v
}

// ParseConfigBool reads a krb5.conf boolean as MIT's library does: y, yes,
// true, t, 1 and on (any case) are true; anything else is false.
func ParseConfigBool(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "y", "yes", "true", "t", "1", "on":
		return true
	}
	return false
}

// ParseDeltat parses a Kerberos duration the way MIT's krb5_string_to_deltat
// does: "10h", "7d", "90m", "30s", combinations such as "1d2h30m" (spaces
// allowed between parts), "h:mm" or "h:mm:ss", "Nd h:mm:ss", or a plain
// number of seconds. Negative durations are rejected.
func ParseDeltat(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	bad := fmt.Errorf("invalid duration %q (use forms like 10h, 7d, 90m, 1d2h, 1:30:00)", profClip(s))
	if in == "" {
		return 0, bad
	}
	if n, err := strconv.ParseUint(in, 10, 31); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	var total time.Duration
	rest := in
	// Optional leading "Nd" part before an h:m[:s] clock form.
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		clock := rest
		if d := strings.IndexByte(rest, 'd'); d >= 0 && d < i {
			n, err := strconv.ParseUint(strings.TrimSpace(rest[:d]), 10, 31)
			if err != nil {
				return 0, bad
			}
			total = time.Duration(n) * 24 * time.Hour
			clock = strings.TrimSpace(rest[d+1:])
		}
		parts := strings.Split(clock, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return 0, bad
		}
		units := []time.Duration{time.Hour, time.Minute, time.Second}
		for k, p := range parts {
			n, err := strconv.ParseUint(p, 10, 31)
			if err != nil || (k > 0 && (len(p) > 2 || n > 59)) {
				return 0, bad
			}
			total += time.Duration(n) * units[k]
		}
		return total, nil
	}
	seen := map[byte]bool{}
	order := "dhms"
	last := -1
	for rest != "" {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 || j == len(rest) || j > 9 {
			return 0, bad
		}
		n, _ := strconv.ParseUint(rest[:j], 10, 31)
		u := rest[j]
		k := strings.IndexByte(order, u)
		if k < 0 || seen[u] || k <= last {
			return 0, bad
		}
		seen[u], last = true, k
		unit := []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second}[k]
		total += time.Duration(n) * unit
		rest = rest[j+1:]
	}
	return total, nil
}

// ExpandPath expands MIT path tokens: %{uid}, %{USERID}, %{euid},
// %{username}, %{TEMP} ($TMPDIR or /tmp), %{null}, %{LIBDIR}, %{BINDIR},
// %{SBINDIR}. An unknown or unterminated token is an error, as in MIT.
func ExpandPath(s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "%{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("path %q: %%{ without a closing }", profClip(s))
		}
		tok := s[i+2 : i+j]
		v, err := cfgExpandToken(tok)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		s = s[i+j+1:]
	}
}

func cfgExpandToken(tok string) (string, error) {
	switch tok {
	case "uid", "USERID":
		return strconv.Itoa(os.Getuid()), nil
	case "euid":
		return strconv.Itoa(os.Geteuid()), nil
	case "username":
		return cfgCurrentUsername()
	case "TEMP":
		if t := os.Getenv("TMPDIR"); t != "" {
			return t, nil
		}
		return "/tmp", nil
	case "null":
		return "", nil
	case "LIBDIR":
		return "/usr/lib/x86_64-linux-gnu", nil
	case "BINDIR":
		return "/usr/bin", nil
	case "SBINDIR":
		return "/usr/sbin", nil
	}
	return "", fmt.Errorf("unknown path token %%{%s}", profClip(tok))
}

// ccfgUserLookup is replaceable in tests; it maps the effective uid to a
// user name.
var ccfgUserLookup = cfgLookupUsername

func cfgCurrentUsername() (string, error) {
	return ccfgUserLookup(os.Geteuid())
}

func cfgLookupUsername(uid int) (string, error) { return osuser.Name(uid) }
