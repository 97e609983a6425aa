package pin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// A process that calls itself ssh: the test binary, started with any argv
// and this variable, waits until killed (before flag parsing, so that its
// arguments are only data).
const fakeSSHEnv = "SESAME_TEST_FAKE_SSH"

func init() {
	if os.Getenv(fakeSSHEnv) != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

// fakeSSH starts a process whose command line is argv, in dir.
func fakeSSH(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: self, Args: argv, Dir: dir, Env: append(os.Environ(), fakeSSHEnv+"=1")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait until the new program runs (its command line is visible).
	for i := 0; i < 100; i++ {
		if a := peerArgv(cmd.Process.Pid); len(a) > 0 && a[0] == argv[0] {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd
}

// Bad input from the peer: a hostile command line is inspected as data
// (the ProxyCommand and LocalCommand never run, no -E log is written), a
// relative -i is found in the peer's directory; a huge command line, a
// peer that is not ssh and a peer that has exited give nothing.
func TestProbeSSHPeers(t *testing.T) {
	testbed.Need(t, "ssh")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.pub"), []byte(authLine("", "x", newSigner(t).PublicKey())[2:]), 0o600)
	marker := filepath.Join(dir, "ran")
	c := fakeSSH(t, dir, "ssh", "-F", "/dev/null", "-o", "ProxyCommand=touch "+marker, "-o", "PermitLocalCommand=yes",
		"-o", "LocalCommand=touch "+marker, "-E", marker+".log", "-i", "k.pub", "-o", "IdentitiesOnly yes",
		"-l", "alice smith", "host", "touch "+marker)
	pc := ProbeSSH(c.Process.Pid)
	if pc == nil || pc.User != "alice smith" || !pc.IdentitiesOnly || len(pc.Keys) != 1 || !pc.Explicit {
		t.Fatalf("probe: %+v", pc)
	}
	for _, f := range []string{marker, marker + ".log"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s exists: the probe ran something", f)
		}
	}
	huge := fakeSSH(t, dir, "ssh", "-o", "SendEnv="+strings.Repeat("x", maxCmdline), "host")
	if pc := ProbeSSH(huge.Process.Pid); pc != nil {
		t.Errorf("huge command line inspected: %+v", pc)
	}
	other := fakeSSH(t, dir, "scp", "a", "host:b")
	if pc := ProbeSSH(other.Process.Pid); pc != nil {
		t.Errorf("scp inspected: %+v", pc)
	}
	gone := fakeSSH(t, dir, "ssh", "host")
	pid := gone.Process.Pid
	gone.Process.Kill()
	gone.Wait()
	if pc := ProbeSSH(pid); pc != nil {
		t.Errorf("exited peer inspected: %+v", pc)
	}
}
