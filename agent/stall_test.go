package agent

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// flooder is a client that never reads: it opens conns connections to
// the agent and on each sends many REQUEST_IDENTITIES without reading a
// reply (non-blocking, so that it is the agent that blocks), says "ready",
// then sleeps until killed.
const flooder = `
import socket, sys, time
sock, conns, reqs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(conns):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.setblocking(False)
    held.append([s, b"\x00\x00\x00\x01\x0b" * reqs])
for _ in range(50):
    for h in held:
        try:
            n = h[0].send(h[1])
            h[1] = h[1][n:]
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            pass
    time.sleep(0.02)
print("ready", flush=True)
time.sleep(3600)
`

// startFlooders runs n flooder processes against sock and waits until
// each has sent its requests.
func startFlooders(t *testing.T, sock string, n, conns int) {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testbed.Missing(t, "/usr/bin/python3 not found")
	}
	for range n {
		cmd := exec.Command(py, "-c", flooder, sock, strconv.Itoa(conns), "5000")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("flooder: %q", line)
		}
	}
}

// Four local processes that ask and never read their replies hold every
// connection the agent allows them (64 each, 256 in all); a fresh
// `ssh-add -l` is still answered, within 2 s. ssh-agent (the control)
// answers too, later.
func TestClientsThatNeverRead(t *testing.T) {
	k := testKeys(t)
	for _, name := range []string{"openssh", "sesame"} {
		t.Run(name, func(t *testing.T) {
			var e *env
			if name == "sesame" {
				e = startSesame(t, Options{})
			} else {
				e = startOpenSSH(t, "")
			}
			e.must("ssh-add", k["ed"])
			startFlooders(t, e.sock, 4, DefaultMaxConnsPerPeer)
			if e.srv != nil {
				if n := e.srv.activeConns(); n != DefaultMaxConns {
					t.Logf("%d connections open (the flooders hold %d)", n, 4*DefaultMaxConnsPerPeer)
				}
			}
			// ssh-agent takes longer than sesame here: it answers once
			// the flooders' connections time out.
			bound := 2 * time.Second
			if e.srv == nil {
				bound = 60 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), bound)
			defer cancel()
			start := time.Now()
			cmd := exec.CommandContext(ctx, testbed.Path(t, "ssh-add"), "-l")
			cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.sock)
			out, err := cmd.CombinedOutput()
			t.Logf("ssh-add -l answered in %v", time.Since(start))
			if err != nil || !strings.Contains(string(out), fingerprint(t, k["ed"]+".pub")) {
				t.Fatalf("ssh-add -l while four clients never read: %v\n%s", err, out)
			}
		})
	}
}

// A lock that times out on a busy backend (stopped here, as a token
// waiting for a touch would keep it) is carried out by the backend once it
// gets to it; sesame keeps the passphrase it locked with, so that the
// unlock reaches the backend and its keys come back.
func TestBackendLockWhileBusy(t *testing.T) {
	sk := testbed.SKDummy(t)
	skEd := testbed.NewSKKey(t, sk, t.TempDir(), "ed25519-sk")
	e := startSesame(t, Options{Providers: sk})
	if out, err := e.runEnv([]string{"SSH_SK_PROVIDER=" + sk}, "ssh-add", skEd); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	fp := fingerprint(t, skEd+".pub")
	if l := e.list(); !strings.Contains(l, fp) {
		t.Fatalf("sk key not listed:\n%s", l)
	}
	e.srv.backend.mu.Lock()
	proc := e.srv.backend.cmd.Process
	e.srv.backend.mu.Unlock()
	if err := syscall.Kill(-proc.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-proc.Pid, syscall.SIGCONT)
	if err := e.srv.Lock([]byte("lock-pass")); err != nil {
		t.Fatal(err)
	}
	// The lock request waits in the backend's socket; it is done as soon
	// as the backend runs again.
	syscall.Kill(-proc.Pid, syscall.SIGCONT)
	if err := e.srv.Unlock([]byte("lock-pass")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the backend's key back after unlock", func() bool {
		return strings.Contains(e.list(), fp)
	})
}
