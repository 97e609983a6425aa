package agent

import (
	"os/exec"
	"syscall"
)

// backendProcAttr makes the backend die with sesame, even when sesame is
// killed, and keeps it out of the terminal's process group (a ^C meant
// for a command run under `sesame agent` is not the backend's).
func backendProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
