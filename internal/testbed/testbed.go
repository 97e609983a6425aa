// Package testbed starts real servers for the tests: an MIT KDC, a Heimdal
// KDC (run from its unpacked packages), a Samba Active Directory DC and an
// OpenSSH sshd, on 127.0.0.1 with free ports, in temporary directories,
// without touching /etc. Every Kerberos and SSH feature of sesame is tested
// against them.
//
// When the environment variable CI is set, a missing prerequisite (a binary,
// root for sshd) fails the test; otherwise it skips, so that a developer
// without the Debian packages can still run the unit tests.
package testbed

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Search path for daemons that live in sbin, which is often not on PATH.
var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"}

// Need returns the full path of each named program, or fails (under CI) or
// skips the test when one is missing.
func Need(t T, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p, err := lookPath(n)
		if err != nil {
			Missing(t, fmt.Sprintf("%s not found (install it with scripts/install-deps.sh)", n))
		}
		out = append(out, p)
	}
	return out
}

// Path is Need for a single program.
func Path(t T, name string) string {
	t.Helper()
	return Need(t, name)[0]
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

// Missing reports an unmet prerequisite: a failure under CI, a skip elsewhere.
func Missing(t T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("prerequisite missing under CI: %s", why)
	}
	t.Skipf("prerequisite missing: %s", why)
}

// NeedRoot requires uid 0 (sshd refuses to run otherwise).
func NeedRoot(t T) {
	t.Helper()
	if os.Getuid() != 0 {
		Missing(t, "sshd must run as root")
	}
}

// FreePort returns a port that is free on 127.0.0.1 for both TCP and UDP at
// the time of the call.
func FreePort(t T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port with both TCP and UDP available")
	return 0
}

// WaitTCP waits until something accepts TCP connections on addr.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run executes a command with env added to the current environment and
// fails the test with its output if it does not succeed.
func run(t T, env []string, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// CountLines counts the lines of file that contain substr.
func CountLines(t T, file, substr string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("read %s: %v", file, err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}
