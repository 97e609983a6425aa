package testbed

import "syscall"

// daemonAttr puts a server in its own process group (so Stop can signal
// its children too) and kills it if the test process dies first.
func daemonAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
