package krb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
)

// Locking, as MIT's libkrb5 does it (lib/krb5/os/lock_file.c, used by
// ccache/cc_file.c): an fcntl write lock over the whole cache file for
// every change of it (storing a credential appends under it), a read lock
// for every read. MIT tools and sesame therefore serialise on the same
// lock. MIT waits in F_OFD_SETLKW; sesame polls the non-blocking form so
// that a cancelled context (SIGINT, SIGTERM) ends the wait within a tick.

// ccLockPoll is how often a contended lock is tried again.
const ccLockPoll = 20 * time.Millisecond

// lockCCacheFile takes an fcntl lock (exclusive or shared) on the whole of
// f, waiting until it is free or ctx ends.
func lockCCacheFile(ctx context.Context, f *os.File, exclusive bool) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if exclusive {
		lk.Type = unix.F_WRLCK
	}
	cmd := ccLockCmd
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EINVAL) && cmd != ccLockFallbackCmd {
			cmd = ccLockFallbackCmd
			continue
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lock credentials cache %s: %w", f.Name(), err)
		}
		t := time.NewTimer(ccLockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("lock credentials cache %s: %w", f.Name(), ctx.Err())
		case <-t.C:
		}
	}
}

// openCCacheFile opens the cache file without following a symbolic link
// at its name and without blocking on a FIFO or device (O_NONBLOCK, then
// fstat: anything but a regular file is refused). A missing file gives a
// *NoCacheError.
func openCCacheFile(path string, write bool) (*os.File, fs.FileInfo, error) {
	flags := os.O_RDONLY
	if write {
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(path, flags|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return nil, nil, &NoCacheError{Path: path, Err: err}
		case errors.Is(err, syscall.ELOOP) && !write && ownLink(path):
			// A link the user made is followed for reading, once.
			target, lerr := filepath.EvalSymlinks(path)
			if lerr != nil {
				return nil, nil, &NoCacheError{Path: path, Err: lerr}
			}
			return openCCacheFile(target, false)
		case errors.Is(err, syscall.ELOOP):
			return nil, nil, &ccLinkError{path}
		case errors.Is(err, syscall.EISDIR):
			return nil, nil, &NotAFileError{Path: path, IsDir: true}
		}
		return nil, nil, fmt.Errorf("open credentials cache %s: %w", path, ccErrFromPath(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open credentials cache %s: %w", path, ccErrFromPath(err))
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &NotAFileError{Path: path, IsDir: st.IsDir()}
	}
	if write {
		// Written in place: never into another user's file, nor into
		// one with other hard links (their content is not only ours).
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != os.Getuid() || sys.Nlink > 1) {
			f.Close()
			why := "belongs to another user"
			if int(sys.Uid) == os.Getuid() {
				why = "has other hard links"
			}
			return nil, nil, &ccForeignError{path, why}
		}
	}
	return f, st, nil
}

// ccLinkError refuses a symbolic link at a cache's name.
type ccLinkError struct{ path string }

func (e *ccLinkError) Error() string {
	return fmt.Sprintf("credentials cache %s is a symbolic link; sesame does not write through it", e.path)
}

// Unwrap makes errors.Is(err, syscall.ELOOP) true.
func (e *ccLinkError) Unwrap() error { return syscall.ELOOP }

// ccForeignError refuses to change a cache file in place that is not only
// ours.
type ccForeignError struct{ path, why string }

func (e *ccForeignError) Error() string {
	return fmt.Sprintf("credentials cache %s %s; sesame does not change it", e.path, e.why)
}

// Unwrap makes the error a permission problem (errors.Is syscall.EPERM).
func (e *ccForeignError) Unwrap() error { return syscall.EPERM }

// ownLink reports whether the symbolic link at path belongs to us (or to
// root): only then is it followed. A link planted by another user in a
// shared directory such as /tmp is not.
func ownLink(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (int(st.Uid) == os.Getuid() || st.Uid == 0)
}

// sameFile reports whether path still names the file f was opened as.
func sameFile(path string, st fs.FileInfo) (bool, error) {
	now, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(now, st), nil
}

// readCCacheFile reads and parses all of f from its start.
func readCCacheFile(f *os.File, path string) (*CCache, error) {
	data, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, ccMaxFileSize+1), ccMaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read credentials cache %s: %w", path, ccErrFromPath(err))
	}
	if len(data) > ccMaxFileSize {
		return nil, &CCacheFormatError{Path: path, Msg: fmt.Sprintf("larger than %d MiB", ccMaxFileSize>>20)}
	}
	cc, err := ParseCCache(data)
	if err != nil {
		var fe *CCacheFormatError
		if errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, err
	}
	return cc, nil
}

// ErrCacheChanged is returned by UpdateCCache's modify function (and so by
// UpdateCCache) when the cache on disk is no longer the one the change was
// meant for: another principal, another TGT. Nothing is written.
var ErrCacheChanged = errors.New("the credentials cache changed meanwhile")

// testHookBeforeWrite, when set (tests), runs inside UpdateCCache's write
// window: after the cache was read under the lock and modify agreed,
// before anything is written.
var testHookBeforeWrite func(path string)

// UpdateCCache is a read-modify-write of the cache file at path under
// MIT's lock: it locks the file, re-reads it (with whatever MIT or sesame
// stored meanwhile, e.g. service tickets), calls modify with that content,
// and writes modify's result back into the same file before unlocking.
//
// A cache removed meanwhile stays removed (a *NoCacheError); a cache
// replaced by a rename (kinit) is read afresh and given to modify, which
// decides whether the change still applies. The write goes in place, so
// that an MIT process waiting for the lock to append a service ticket
// appends to the file that stays; space is reserved first (fallocate), so
// a full disk leaves the old content intact.
func UpdateCCache(ctx context.Context, path string, modify func(cur *CCache) (*CCache, error)) error {
	for attempt := 0; ; attempt++ {
		done, err := updateOnce(ctx, path, modify)
		if done || err != nil || attempt >= 10 {
			if err == nil && !done {
				err = fmt.Errorf("credentials cache %s keeps being replaced", path)
			}
			return err
		}
	}
}

func updateOnce(ctx context.Context, path string, modify func(cur *CCache) (*CCache, error)) (bool, error) {
	f, st, err := openCCacheFile(path, true)
	if err != nil {
		return false, err
	}
	defer f.Close() // closing the descriptor releases the OFD lock
	if err := lockCCacheFile(ctx, f, true); err != nil {
		return false, err
	}
	// Between open and lock the name may have been removed (kdestroy)
	// or pointed at a new file (kinit): follow the name.
	if same, err := sameFile(path, st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, &NoCacheError{Path: path, Err: err}
		}
		return false, fmt.Errorf("credentials cache %s: %w", path, ccErrFromPath(err))
	} else if !same {
		return false, nil
	}
	cur, err := readCCacheFile(f, path)
	if err != nil {
		return false, err
	}
	next, err := modify(cur)
	if err != nil {
		return false, err
	}
	if testHookBeforeWrite != nil {
		testHookBeforeWrite(path)
	}
	data := next.Marshal()
	defer clear(data)
	if err := writeInPlace(f, data); err != nil {
		return false, fmt.Errorf("cannot store credentials in %s: %w", path, err)
	}
	removeStaleTemps(path, false)
	return true, nil
}

// writeInPlace replaces the content of the locked file f with data.
func writeInPlace(f *os.File, data []byte) error {
	// Reserve the space first: if the disk is full this fails with the
	// old content untouched. File systems without fallocate go on.
	if err := ccReserve(f, len(data)); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return ccErrFromPath(err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		return ccErrFromPath(err)
	}
	return nil
}

// removeStaleTemps zeroes and removes the temporary files a killed sesame
// left next to the cache at path (.NAME.tmp-*, and .primary.tmp-* of a DIR
// collection): they hold full credentials. Only regular files owned by us
// are touched, and with all false only those older than
// atomicfile.StaleAge.
func removeStaleTemps(path string, all bool) {
	dir, base := filepath.Split(path)
	minAge := atomicfile.StaleAge
	if all {
		minAge = 0
	}
	atomicfile.RemoveStale(dir, func(n string) bool {
		return strings.HasPrefix(n, atomicfile.TempPrefix(base)) || strings.HasPrefix(n, atomicfile.TempPrefix(ccPrimaryFile)) ||
			// Destroying a DIR collection's cache also clears the
			// leftovers of its other caches.
			all && strings.HasPrefix(base, ccSubsidiaryPrefix) && strings.HasPrefix(n, "."+ccSubsidiaryPrefix) && strings.Contains(n, ".tmp-")
	}, minAge)
}

// ccDestroyLockWait bounds how long destroying a cache waits for a writer
// to finish; after it the file is destroyed anyway.
const ccDestroyLockWait = 5 * time.Second

// TakeCCache reads the cache file at path under its exclusive lock, hands
// the bytes to keep (which must have stored them when it returns nil), and
// then, still under the lock, zeroes and removes the file — so a ticket
// MIT stores meanwhile is either in what keep got or waits and lands in
// nothing that is kept. A missing file is not an error: keep is not called.
func TakeCCache(ctx context.Context, path string, keep func([]byte) error) error {
	f, st, err := openCCacheFile(path, true)
	if errors.Is(err, ErrNoCache) {
		return nil
	}
	var fe *ccForeignError
	if errors.As(err, &fe) {
		// Not only ours: no lock of ours guards it. Take it as it is,
		// so that it does not stay behind either.
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read credentials cache %s: %w", path, ccErrFromPath(err))
		}
		if err := keep(data); err != nil {
			return err
		}
		return DestroyCCache(path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockCCacheFile(ctx, f, true); err != nil {
		return err
	}
	if same, err := sameFile(path, st); err != nil || !same {
		// Removed or replaced between open and lock: take what is
		// there now.
		f.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return TakeCCache(ctx, path, keep)
	}
	data, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, ccMaxFileSize), ccMaxFileSize))
	if err != nil {
		return fmt.Errorf("read credentials cache %s: %w", path, ccErrFromPath(err))
	}
	if err := keep(data); err != nil {
		return err
	}
	return DestroyCCache(path)
}

// CreateCCacheFile writes data as a new cache file at path (mode 0600)
// unless a file is there already: a cache made meanwhile (a fresh kinit)
// is newer and is kept (created reports false then). The file appears
// whole or not at all.
func CreateCCacheFile(path string, data []byte) (created bool, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("cannot store credentials: %w", ccErrFromPath(err))
	}
	name := tmp.Name()
	defer os.Remove(name) // the temporary name only; the file lives on under path
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		atomicfile.Zero(name)
		return false, fmt.Errorf("cannot store credentials in %s: %w", path, ccErrFromPath(werr))
	}
	// link(2) fails if path exists, where rename(2) would replace it.
	if err := os.Link(name, path); err != nil {
		atomicfile.Zero(name)
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("cannot store credentials in %s: %w", path, ccErrFromPath(err))
	}
	return true, nil
}

// CheckReplaceable reports, as one clear error, why the cache file at path
// could not be updated: a symbolic link, not a regular file, no
// permission to write it. A missing file gives a *NoCacheError.
func CheckReplaceable(path string) error {
	f, _, err := openCCacheFile(path, true)
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("cannot write the credentials cache %s: %w", path, ccErrFromPath(err))
		}
		return err
	}
	f.Close()
	return nil
}
