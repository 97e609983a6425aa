// Package atomicfile writes files so that readers see either the old content
// or the new content, never a half-written file: the data goes to a fresh
// temporary file in the same directory (created with O_EXCL and the final
// mode), is synced, and is renamed over the target. A full disk or a crash
// leaves the old file untouched.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sesame-ssh/sesame/internal/fileerr"
)

// Write replaces path with data, atomically and durably, creating it with
// perm.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, true)
}

// WriteUnsynced is Write without the fsyncs: readers still see the old or
// the new content, never a mix, but a power cut may lose the new content.
// For files that are cheap to recreate and rewritten often — credential
// caches, which MIT writes the same way — the two syncs would cost more
// than the file is worth.
func WriteUnsynced(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, false)
}

func write(path string, data []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return &fileerr.Error{Path: path, Msg: "cannot be written: directory " + dir + " does not exist", Err: err}
		}
		return failed(path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	// CreateTemp uses 0600; set the requested mode before any data lands.
	if err := tmp.Chmod(perm); err != nil {
		return failed(path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return failed(path, err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return failed(path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return failed(path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return failed(path, err)
	}
	ok = true
	if !durable {
		return nil
	}
	// Make the rename itself durable; failure here does not undo the write.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// failed names the target, never the temporary file: the user did not ask
// for that name and cannot do anything with it.
func failed(path string, err error) error {
	e := fileerr.Describe("", path, err).(*fileerr.Error)
	if e.Msg == "" {
		e.Msg = "cannot be written: " + fileerr.Strip(err).Error()
	}
	return e
}
