package krb

import (
	"fmt"
	"os"
	"strings"
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

// CacheName is a resolved credentials cache name: a FILE cache, one cache
// of a DIR collection, a KCM cache or a KEYRING cache. Commands read,
// replace and destroy it through its methods without asking which type it
// is.
type CacheName struct {
	// Type is "FILE", "DIR", "KCM" or "KEYRING".
	Type string
	// Residual is the name after "TYPE:" as given (for DIR, the
	// collection directory, or ":path" for a single member).
	Residual string
	// Source tells where the name came from: SourceFlag, SourceEnv,
	// SourceConfig or SourceDefault.
	Source string

	cache Cache
}

// Cache is the resolved cache behind the name.
func (n CacheName) Cache() Cache { return n.cache }

// Path is the cache file of a FILE or DIR cache, "" for the other types.
func (n CacheName) Path() string {
	switch c := n.cache.(type) {
	case *FileCache:
		return c.Path
	case *DirCache:
		return c.Path
	}
	return ""
}

// Dir is the collection directory of a DIR cache, "" otherwise.
func (n CacheName) Dir() string {
	if c, ok := n.cache.(*DirCache); ok {
		return c.Dir
	}
	return ""
}

// String names the cache as MIT klist prints it: "FILE:/tmp/krb5cc_1000",
// "DIR::/run/user/1000/krb5cc/tkt", "KCM:1000",
// "KEYRING:persistent:1000:1000".
func (n CacheName) String() string {
	if n.cache == nil {
		return n.Type + ":" + n.Residual
	}
	return n.cache.Name()
}

// UnsupportedCacheError is returned for cache types sesame cannot use
// (MEMORY:, API:, MSLSA:, unknown types). Its hint says how to switch to a
// FILE cache.
type UnsupportedCacheError struct {
	Name   string
	Type   string
	Source string
}

// Error names the cache, where it came from, and why it cannot be used.
func (e *UnsupportedCacheError) Error() string {
	switch e.Type {
	case "MEMORY", "API", "MSLSA":
	default:
		return fmt.Sprintf("credentials cache %q (from %s): unknown cache type %s", e.Name, e.Source, e.Type)
	}
	return fmt.Sprintf("credentials cache %q (from %s): type %s is not supported, only FILE:, DIR:, KCM: and KEYRING:", e.Name, e.Source, e.Type)
}

// Hint tells the user how to point Kerberos at a FILE cache, which MIT
// tools and OpenSSH also use.
func (e *UnsupportedCacheError) Hint() string {
	return "use a file cache: export KRB5CCNAME=FILE:/tmp/krb5cc_$(id -u)"
}

// ResolveCacheName picks the credentials cache the way MIT does: the -c
// value when given, else KRB5CCNAME, else default_ccache_name from
// krb5.conf (with %{uid}-style tokens expanded), else
// FILE:/tmp/krb5cc_%{uid}. cfg may be nil; it also names the KCM socket.
//
// Accepted forms: FILE:path, a bare path, DIR:dir (the collection's
// current cache, named by dir/primary), DIR::path (one member), KCM:,
// KCM:NAME, KEYRING:anchor:collection[:subsidiary] and KEYRING:NAME. As in
// MIT, resolving a collection name creates the collection when it is
// missing (a DIR directory of mode 0700 and its primary file, a keyring
// collection) and asks the KCM daemon for its default cache.
func ResolveCacheName(flag string, cfg *Config) (CacheName, error) {
	if flag != "" {
		return ParseCacheNameConfig(flag, SourceFlag, cfg)
	}
	if v := os.Getenv("KRB5CCNAME"); v != "" {
		return ParseCacheNameConfig(v, SourceEnv, cfg)
	}
	if cfg != nil && cfg.DefaultCCacheName != "" {
		v, err := ExpandPath(cfg.DefaultCCacheName)
		if err != nil {
			return CacheName{}, fmt.Errorf("default_ccache_name: %w", err)
		}
		return ParseCacheNameConfig(v, SourceConfig, cfg)
	}
	v, err := ExpandPath(DefaultCCacheName)
	if err != nil {
		return CacheName{}, err
	}
	return ParseCacheNameConfig(v, SourceDefault, cfg)
}

// ParseCacheName resolves one cache name (no token expansion: MIT expands
// only names from krb5.conf and its built-in default), with the default
// KCM socket. source is recorded in the result and used in error
// messages.
func ParseCacheName(name, source string) (CacheName, error) {
	return ParseCacheNameConfig(name, source, nil)
}

// ParseCacheNameConfig is ParseCacheName with krb5.conf's kcm_socket.
func ParseCacheNameConfig(name, source string, cfg *Config) (CacheName, error) {
	typ, residual := "FILE", name
	if i := strings.IndexByte(name, ':'); i > 0 && !strings.ContainsRune(name[:i], '/') {
		typ, residual = strings.ToUpper(name[:i]), name[i+1:]
	}
	n := CacheName{Type: typ, Residual: residual, Source: source}
	var err error
	switch typ {
	case "FILE":
		if residual == "" {
			return CacheName{}, fmt.Errorf("credentials cache name %q (from %s) has no file name", name, source)
		}
		n.cache = &FileCache{Path: residual}
	case "DIR":
		n.cache, err = resolveDir(residual, name, source)
	case "KCM":
		n.cache, err = ResolveKCM(KCMSocket(cfg), residual)
	case "KEYRING":
		n.cache, err = ResolveKeyring(residual)
	default:
		return CacheName{}, &UnsupportedCacheError{Name: name, Type: typ, Source: source}
	}
	if err != nil {
		return CacheName{}, err
	}
	return n, nil
}
