package testbed

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// NewBus runs a private dbus-daemon with the session configuration (any
// connection may own any name and emit any signal) and returns its address
// once it accepts connections. The daemon prints its address only after it
// listens; waiting for the socket file instead leaves a window between bind
// and listen in which a dial is refused.
func NewBus(t T) string {
	t.Helper()
	daemon := Path(t, "dbus-daemon")
	addr := "unix:path=" + filepath.Join(t.TempDir(), "bus")
	cmd := exec.Command(daemon, "--session", "--nofork", "--nopidfile", "--print-address", "--address="+addr)
	cmd.SysProcAttr = daemonAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, addr) {
			err = fmt.Errorf("it printed %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("dbus-daemon did not start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon did not start within 10 s")
	}
	return addr
}
