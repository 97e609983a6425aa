package keychain

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The vault's path is questioned the way the credentials-cache code
// questions a cache's: whatever sits at that name — a FIFO, a device, a
// link to something else — must not hang a command, exhaust memory, or be
// silently replaced.
//
//   - A symbolic link the user owns is followed, for reading and for
//     writing alike: the new vault is written atomically in the target's
//     directory and renamed over the target, so a vault kept in a synced
//     folder or on another disk keeps getting the updates. The link is
//     never replaced. A link owned by someone else is refused.
//   - A dangling link is an error, never "no vault yet": the user's vault
//     was expected there.
//   - Anything but a regular file (FIFO, device, socket, directory) is
//     refused with a line that says what it is; it is opened with
//     O_NONBLOCK so that a FIFO without a writer cannot block the open.
//   - Reads are bounded: a vault is at most maxVaultFileSize bytes.

// maxVaultFileSize bounds what is read from the vault's path: the
// encrypted form of the largest contents decodeVault accepts, plus room
// for age's header and per-chunk tags.
const maxVaultFileSize = maxVaultSize + maxVaultSize/1024 + 64<<10

// vaultTarget resolves the vault's path: path itself, or the file a
// symbolic link of the user's points to.
func vaultTarget(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return path, nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return "", withHint(fmt.Errorf("vault %s is a symbolic link owned by another user; sesame does not follow it", path),
			"remove the link, or replace it with your vault file")
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		dest, _ := os.Readlink(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", withHint(fmt.Errorf("vault %s is a symbolic link to %s, which does not exist", path, dest),
				"mount or restore the link's target, or remove the link to start a new vault")
		}
		return "", fmt.Errorf("vault %s: symbolic link to %s cannot be followed: %w", path, dest, err)
	}
	return target, nil
}

// notRegularError refuses what is not a regular file at the vault's path.
func notRegularError(path string, mode fs.FileMode) error {
	what := "not a regular file"
	switch {
	case mode.IsDir():
		what = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		what = "a FIFO (named pipe)"
	case mode&fs.ModeCharDevice != 0:
		what = "a character device"
	case mode&fs.ModeDevice != 0:
		what = "a block device"
	case mode&fs.ModeSocket != 0:
		what = "a socket"
	}
	return withHint(fmt.Errorf("vault %s is %s, not a vault file; sesame neither reads nor replaces it", path, what),
		"move it aside (the vault is a regular file made by sesame)")
}

// readVaultFile reads the vault at path (already resolved by vaultTarget)
// without blocking and with a bounded read. A missing file returns
// exists false and no error.
func readVaultFile(path string) (data []byte, exists bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, false, nil
		case errors.Is(err, syscall.ELOOP):
			// A link swapped in after vaultTarget looked.
			return nil, true, fmt.Errorf("vault %s became a symbolic link while being opened; try again", path)
		case errors.Is(err, syscall.ENXIO):
			// O_NONBLOCK on a FIFO or socket with no one at the other end.
			return nil, true, notRegularError(path, fs.ModeNamedPipe)
		}
		return nil, true, fmt.Errorf("read vault: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, true, fmt.Errorf("read vault: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, true, notRegularError(path, fi.Mode())
	}
	if fi.Size() > maxVaultFileSize {
		return nil, true, withHint(fmt.Errorf("vault %s: %w (%d bytes, more than a vault can hold)", path, ErrCorruptVault, fi.Size()),
			"sesame will not read or write it; move it aside to start an empty vault")
	}
	data, err = io.ReadAll(io.LimitReader(f, maxVaultFileSize+1))
	if err != nil {
		return nil, true, fmt.Errorf("read vault: %w", err)
	}
	if len(data) > maxVaultFileSize {
		return nil, true, withHint(fmt.Errorf("vault %s: %w (it grew past the size a vault can hold)", path, ErrCorruptVault),
			"sesame will not read or write it; move it aside to start an empty vault")
	}
	return data, true, nil
}
