package krb

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ccLockCmd is the non-blocking fcntl lock command MIT's krb5_lock_file
// uses on Linux: an open-file-description lock, which contends with MIT's
// and with classic POSIX record locks alike.
const ccLockCmd = unix.F_OFD_SETLK

// ccLockFallbackCmd is used when the kernel predates OFD locks (EINVAL),
// as MIT falls back.
const ccLockFallbackCmd = unix.F_SETLK

// ccReserve allocates n bytes for f so that writing them cannot fail for
// lack of space. File systems without fallocate are let through.
func ccReserve(f *os.File, n int) error {
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(n)); err != nil &&
		!errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return nil
}
