//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

// Zero overwrites the regular file at path with zeros and syncs it, so
// that the secrets it held do not linger on disk once the caller removes
// it (as MIT kdestroy does). It does not remove the file. It writes
// through neither a symbolic link swapped in after the caller's check
// (O_NOFOLLOW) nor into a file with other hard links, whose content is not
// (only) the caller's: removing the caller's name is enough then. It does
// not block on a FIFO planted at path.
func Zero(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 || !st.Mode().IsRegular() {
		return nil
	}
	zeros := make([]byte, 32<<10)
	for left := st.Size(); left > 0; {
		n := min(left, int64(len(zeros)))
		if _, err := f.Write(zeros[:n]); err != nil {
			return err
		}
		left -= n
	}
	return f.Sync()
}
