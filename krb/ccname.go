package krb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
)

// DefaultCCacheName is MIT's (and Debian's) built-in cache name, used when
// neither -c, KRB5CCNAME nor default_ccache_name says otherwise.
const DefaultCCacheName = "FILE:/tmp/krb5cc_%{uid}"

// Where a cache name came from, in CacheName.Source.
const (
	SourceFlag    = "-c"
	SourceEnv     = "KRB5CCNAME"
	SourceConfig  = "default_ccache_name"
	SourceDefault = "default"
)

// ccPrimaryFile is the file inside a DIR collection that names the
// current cache; ccSubsidiaryPrefix starts every cache file name there.
const (
	ccPrimaryFile      = "primary"
	ccSubsidiaryPrefix = "tkt"
	// MIT reads the primary file into a 64-byte buffer.
	ccMaxPrimaryLine = 63
)

// CacheName is a resolved credentials cache name: a FILE cache, or one
// cache of a DIR collection.
type CacheName struct {
	// Type is "FILE" or "DIR".
	Type string
	// Residual is the name after "TYPE:" as given (for DIR, the
	// collection directory, or ":path" for a single member).
	Residual string
	// Source tells where the name came from: SourceFlag, SourceEnv,
	// SourceConfig or SourceDefault.
	Source string

	path string // the cache file
	dir  string // DIR: the collection directory
}

// Path is the cache file to read and write.
func (n CacheName) Path() string { return n.path }

// Dir is the collection directory of a DIR cache, "" for FILE.
func (n CacheName) Dir() string { return n.dir }

// String names the cache as MIT klist prints it: "FILE:/tmp/krb5cc_1000",
// or "DIR::/run/user/1000/krb5cc/tkt" for a member of a collection.
func (n CacheName) String() string {
	if n.Type == "DIR" {
		return "DIR::" + n.path
	}
	return "FILE:" + n.path
}

// UnsupportedCacheError is returned for cache types sesame cannot use yet
// (KEYRING:, KCM:, MEMORY:, API:, …). Its hint says how to switch to a
// FILE cache.
type UnsupportedCacheError struct {
	Name   string
	Type   string
	Source string
}

// Error names the cache, where it came from, and why it cannot be used.
func (e *UnsupportedCacheError) Error() string {
	switch e.Type {
	case "KEYRING", "KCM", "MEMORY", "API", "MSLSA":
	default:
		return fmt.Sprintf("credentials cache %q (from %s): unknown cache type %s", e.Name, e.Source, e.Type)
	}
	return fmt.Sprintf("credentials cache %q (from %s): type %s is not supported yet, only FILE: and DIR:", e.Name, e.Source, e.Type)
}

// Hint tells the user how to point Kerberos at a FILE cache, which MIT
// tools and OpenSSH also use.
func (e *UnsupportedCacheError) Hint() string {
	return "use a file cache: export KRB5CCNAME=FILE:/tmp/krb5cc_$(id -u)"
}

// ResolveCacheName picks the credentials cache the way MIT does: the -c
// value when given, else KRB5CCNAME, else default_ccache_name from
// krb5.conf (with %{uid}-style tokens expanded), else
// FILE:/tmp/krb5cc_%{uid}. cfg may be nil.
//
// Accepted forms: FILE:path, a bare path, DIR:dir (the collection's
// current cache, named by dir/primary) and DIR::path (one member). As in
// MIT, resolving a DIR name creates the directory (mode 0700) when it is
// missing and writes a primary file naming "tkt" when there is none.
func ResolveCacheName(flag string, cfg *Config) (CacheName, error) {
	if flag != "" {
		return ParseCacheName(flag, SourceFlag)
	}
	if v := os.Getenv("KRB5CCNAME"); v != "" {
		return ParseCacheName(v, SourceEnv)
	}
	if cfg != nil && cfg.DefaultCCacheName != "" {
		v, err := ExpandPath(cfg.DefaultCCacheName)
		if err != nil {
			return CacheName{}, fmt.Errorf("default_ccache_name: %w", err)
		}
		return ParseCacheName(v, SourceConfig)
	}
	v, err := ExpandPath(DefaultCCacheName)
	if err != nil {
		return CacheName{}, err
	}
	return ParseCacheName(v, SourceDefault)
}

// ParseCacheName resolves one cache name (no token expansion: MIT expands
// only names from krb5.conf and its built-in default). source is recorded
// in the result and used in error messages.
func ParseCacheName(name, source string) (CacheName, error) {
	typ, residual := "FILE", name
	if i := strings.IndexByte(name, ':'); i > 0 && !strings.ContainsRune(name[:i], '/') {
		typ, residual = strings.ToUpper(name[:i]), name[i+1:]
	}
	n := CacheName{Type: typ, Residual: residual, Source: source}
	switch typ {
	case "FILE":
		if residual == "" {
			return CacheName{}, fmt.Errorf("credentials cache name %q (from %s) has no file name", name, source)
		}
		n.path = residual
		return n, nil
	case "DIR":
		return ccResolveDir(n, name)
	}
	return CacheName{}, &UnsupportedCacheError{Name: name, Type: typ, Source: source}
}

func ccResolveDir(n CacheName, name string) (CacheName, error) {
	if n.Residual == "" || n.Residual == ":" {
		return CacheName{}, fmt.Errorf("credentials cache name %q (from %s) has no directory", name, n.Source)
	}
	if strings.HasPrefix(n.Residual, ":") {
		n.path = n.Residual[1:]
		n.dir = filepath.Dir(n.path)
		if err := ccEnsureDir(n.dir); err != nil {
			return CacheName{}, err
		}
		return n, nil
	}
	n.dir = n.Residual
	if err := ccEnsureDir(n.dir); err != nil {
		return CacheName{}, err
	}
	primary := filepath.Join(n.dir, ccPrimaryFile)
	sub, err := ccReadPrimary(primary)
	if errors.Is(err, fs.ErrNotExist) {
		sub = ccSubsidiaryPrefix
		if err := ccWritePrimary(primary, sub); err != nil {
			return CacheName{}, err
		}
	} else if err != nil {
		return CacheName{}, err
	}
	n.path = filepath.Join(n.dir, sub)
	return n, nil
}

// ccEnsureDir checks the collection directory, creating it with mode 0700
// when it is missing (only the last component, as MIT does).
func ccEnsureDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("credentials cache directory %s does not exist and cannot be created: %w", dir, ccErrFromPath(err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("credentials cache directory %s: %w", dir, ccErrFromPath(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("credentials cache directory %s exists but is not a directory", dir)
	}
	return nil
}

// ccReadPrimary returns the file name in a collection's primary file, with
// MIT's checks: one line ending in a newline, starting with "tkt", no
// path separators.
func ccReadPrimary(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, found := strings.Cut(string(b), "\n")
	if !found || len(line) > ccMaxPrimaryLine-1 || !strings.HasPrefix(line, ccSubsidiaryPrefix) || strings.ContainsAny(line, "/\\") {
		return "", fmt.Errorf("%s contains an invalid file name", path)
	}
	return line, nil
}

func ccWritePrimary(path, name string) error {
	if err := atomicfile.Write(path, []byte(name+"\n"), 0o600); err != nil {
		return fmt.Errorf("cannot set the primary cache: %w", err)
	}
	return nil
}

// SetPrimary makes this cache the current one of its DIR collection (MIT's
// kswitch), by rewriting the collection's primary file. It is a no-op for
// FILE caches.
func (n CacheName) SetPrimary() error {
	if n.Type != "DIR" {
		return nil
	}
	base := filepath.Base(n.path)
	if !strings.HasPrefix(base, ccSubsidiaryPrefix) {
		return fmt.Errorf("cannot make %s the primary cache: names in a DIR collection must start with %q", n.path, ccSubsidiaryPrefix)
	}
	return ccWritePrimary(filepath.Join(n.dir, ccPrimaryFile), base)
}

// NewSubsidiary creates a new, empty, uniquely named cache file (tkt…,
// mode 0600) in a DIR collection and returns its name; the file is filled
// by WriteCCache. It does not change the primary cache.
func (n CacheName) NewSubsidiary() (CacheName, error) {
	if n.Type != "DIR" {
		return CacheName{}, fmt.Errorf("cannot create a new cache: %s is not a DIR collection", n)
	}
	f, err := os.CreateTemp(n.dir, ccSubsidiaryPrefix)
	if err != nil {
		return CacheName{}, fmt.Errorf("cannot create a new cache in %s: %w", n.dir, ccErrFromPath(err))
	}
	f.Close()
	return CacheName{Type: "DIR", Residual: ":" + f.Name(), Source: n.Source, path: f.Name(), dir: n.dir}, nil
}

// Collection lists the caches of a DIR collection (files named tkt…), in
// name order; for a FILE cache it is just n.
func (n CacheName) Collection() ([]CacheName, error) {
	if n.Type != "DIR" {
		return []CacheName{n}, nil
	}
	ents, err := os.ReadDir(n.dir)
	if err != nil {
		return nil, fmt.Errorf("read credentials cache directory %s: %w", n.dir, ccErrFromPath(err))
	}
	var out []CacheName
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ccSubsidiaryPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(n.dir, e.Name())
		out = append(out, CacheName{Type: "DIR", Residual: ":" + p, Source: n.Source, path: p, dir: n.dir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}
