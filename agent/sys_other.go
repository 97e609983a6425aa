//go:build !linux && !darwin

package agent

import (
	"errors"
	"net"
	"syscall"
)

// Harden disables core files; making the process non-dumpable is only
// implemented on Linux.
func Harden() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
}

// peerCred is only implemented on Linux; elsewhere every connection is
// refused rather than served unchecked.
func peerCred(c net.Conn) (uid, pid int, err error) {
	return 0, 0, errors.New("peer credentials are not supported on this system")
}

func withUmask(mask int, f func() error) error {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	return f()
}
