package testbed

import (
	"os/exec"
	"syscall"
	"time"
)

// stopGroup ends a server started with daemonAttr: SIGTERM to its process
// group, SIGKILL after 5 s, and waits for it. It is a no-op for nil or
// never-started commands.
func stopGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}
