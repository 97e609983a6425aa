//go:build !linux

package testbed

import "syscall"

// daemonAttr puts a server in its own process group; only Linux can also
// tie its life to the test process.
func daemonAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
