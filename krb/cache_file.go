package krb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/fileerr"
)

// FileCache is an MIT FILE cache (format in ccache.go).
type FileCache struct{ Path string }

// Name is "FILE:" and the path.
func (c *FileCache) Name() string { return "FILE:" + c.Path }

// Read parses the file.
func (c *FileCache) Read() (*CCache, error) { return ReadCCache(c.Path) }

// Replace writes a new file and renames it over the old one.
func (c *FileCache) Replace(cc *CCache) error { return WriteCCache(c.Path, cc) }

// Destroy zeroes and removes the file.
func (c *FileCache) Destroy() error { return DestroyCCache(c.Path) }

// The FILE cache on disk: reading under MIT's lock, atomic replacement,
// destruction that overwrites first. The format itself is in ccache.go.

// ReadCCache reads and parses the cache file at path. A missing file gives
// a *NoCacheError (errors.Is ErrNoCache); a damaged one a
// *CCacheFormatError naming the file.
func ReadCCache(path string) (*CCache, error) {
	f, _, err := openCCacheFile(path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// MIT reads under a shared lock, so a writer's change is seen whole.
	// A lock held longer than this is not waited for: reading must not
	// hang (a file written in place is still checked by the parser).
	ctx, cancel := context.WithTimeout(context.Background(), ccReadLockWait)
	lockCCacheFile(ctx, f, false)
	cancel()
	return readCCacheFile(f, path)
}

// ccReadLockWait bounds how long a reader waits for a writer's lock.
const ccReadLockWait = 2 * time.Second

// ccErrFromPath drops the *fs.PathError wrapper (the caller names the path).
func ccErrFromPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// WriteCCache replaces the cache file at path with cc, atomically (a
// temporary file in the same directory renamed over the target, not
// synced: MIT does not sync either, and a lost cache costs one kinit),
// with mode 0600. If anything fails the old cache is left untouched. A
// symbolic link at path is refused: the default location in /tmp is
// predictable, and following a planted link would let another user choose
// where our tickets go.
func WriteCCache(path string, cc *CCache) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("refusing to write credentials cache %s: it is a symbolic link", path)
		}
		if !fi.Mode().IsRegular() {
			return &NotAFileError{Path: path, IsDir: fi.IsDir()}
		}
	}
	if err := atomicfile.WriteUnsynced(path, cc.Marshal(), 0o600); err != nil {
		var fe *fileerr.Error
		if errors.As(err, &fe) {
			fe.What = "credentials cache"
			return fe
		}
		return fmt.Errorf("cannot store credentials: %w", err)
	}
	removeStaleTemps(path, false)
	return nil
}

// DestroyCCache removes the cache file at path the way MIT kdestroy does:
// it overwrites the contents with zeros, syncs, and unlinks, so that the
// keys do not linger on disk. A symbolic link is removed without writing
// through it. A missing file gives a *NoCacheError.
func DestroyCCache(path string) error {
	// Stale temporary files of ours hold credentials too.
	defer removeStaleTemps(path, true)
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &NoCacheError{Path: path, Err: err}
		}
		return fmt.Errorf("destroy credentials cache %s: %w", path, ccErrFromPath(err))
	}
	if fi.Mode().IsRegular() {
		// Wait (briefly) for a writer holding the lock, so that the
		// zeros do not land in the middle of its write.
		if f, _, err := openCCacheFile(path, true); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), ccDestroyLockWait)
			lockCCacheFile(ctx, f, true)
			cancel()
			defer f.Close()
		}
		if err := atomicfile.Zero(path); err != nil {
			return fmt.Errorf("destroy credentials cache %s: %w", path, ccErrFromPath(err))
		}
	} else if fi.Mode()&fs.ModeSymlink == 0 {
		return &NotAFileError{Path: path, IsDir: fi.IsDir()}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("destroy credentials cache %s: %w", path, ccErrFromPath(err))
	}
	return nil
}
