//go:build unix

package dbusguard

import "syscall"

// exists reports whether path is a socket.
func exists(path string) bool {
	var st syscall.Stat_t
	return syscall.Stat(path, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK
}
