//go:build !linux

package krb

import (
	"os"

	"golang.org/x/sys/unix"
)

// Without OFD locks MIT takes classic POSIX record locks.
const (
	ccLockCmd         = unix.F_SETLK
	ccLockFallbackCmd = unix.F_SETLK
)

// ccReserve is a no-op where fallocate is not available.
func ccReserve(*os.File, int) error { return nil }
