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

// ccPrimaryFile is the file inside a DIR collection that names the
// current cache; ccSubsidiaryPrefix starts every cache file name there.
const (
	ccPrimaryFile      = "primary"
	ccSubsidiaryPrefix = "tkt"
	// MIT reads the primary file into a 64-byte buffer.
	ccMaxPrimaryLine = 63
)

// DirCache is one FILE-format cache of a DIR collection: a directory with
// files tkt…, one of which the file "primary" names.
type DirCache struct {
	Path string // the cache file
	Dir  string // the collection directory
}

// Name is MIT's name of one member, "DIR::" and the file.
func (c *DirCache) Name() string { return "DIR::" + c.Path }

// Read parses the cache file.
func (c *DirCache) Read() (*CCache, error) { return ReadCCache(c.Path) }

// Replace writes a new file and renames it over the old one.
func (c *DirCache) Replace(cc *CCache) error { return WriteCCache(c.Path, cc) }

// Destroy zeroes and removes the cache file.
func (c *DirCache) Destroy() error { return DestroyCCache(c.Path) }

// resolveDir resolves DIR:dir (the collection's primary cache) or
// DIR::path (one member).
func resolveDir(residual, name, source string) (*DirCache, error) {
	if residual == "" || residual == ":" {
		return nil, fmt.Errorf("credentials cache name %q (from %s) has no directory", name, source)
	}
	if strings.HasPrefix(residual, ":") {
		c := &DirCache{Path: residual[1:]}
		c.Dir = filepath.Dir(c.Path)
		if err := ccEnsureDir(c.Dir); err != nil {
			return nil, err
		}
		return c, nil
	}
	c := &DirCache{Dir: residual}
	if err := ccEnsureDir(c.Dir); err != nil {
		return nil, err
	}
	primary := filepath.Join(c.Dir, ccPrimaryFile)
	sub, err := ccReadPrimary(primary)
	if errors.Is(err, fs.ErrNotExist) {
		sub = ccSubsidiaryPrefix
		if err := ccWritePrimary(primary, sub); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	c.Path = filepath.Join(c.Dir, sub)
	return c, nil
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

// SetPrimary makes this cache the current one of its collection (MIT's
// kswitch), by rewriting the collection's primary file.
func (c *DirCache) SetPrimary() error {
	base := filepath.Base(c.Path)
	if !strings.HasPrefix(base, ccSubsidiaryPrefix) {
		return fmt.Errorf("cannot make %s the primary cache: names in a DIR collection must start with %q", c.Path, ccSubsidiaryPrefix)
	}
	return ccWritePrimary(filepath.Join(c.Dir, ccPrimaryFile), base)
}

// NewSubsidiary creates a new, empty, uniquely named cache file (tkt…,
// mode 0600) in the collection; Replace fills it.
func (c *DirCache) NewSubsidiary() (*DirCache, error) {
	f, err := os.CreateTemp(c.Dir, ccSubsidiaryPrefix)
	if err != nil {
		return nil, fmt.Errorf("cannot create a new cache in %s: %w", c.Dir, ccErrFromPath(err))
	}
	f.Close()
	return &DirCache{Path: f.Name(), Dir: c.Dir}, nil
}

// List returns the collection's caches (regular files named tkt…) in
// name order.
func (c *DirCache) List() ([]*DirCache, error) {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("read credentials cache directory %s: %w", c.Dir, ccErrFromPath(err))
	}
	var out []*DirCache
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ccSubsidiaryPrefix) || !e.Type().IsRegular() {
			continue
		}
		out = append(out, &DirCache{Path: filepath.Join(c.Dir, e.Name()), Dir: c.Dir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
