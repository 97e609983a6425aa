//go:build !linux

package agent

import (
	"os/exec"
	"syscall"
)

// backendProcAttr keeps the backend out of the terminal's process group.
func backendProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
