package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func TestOpenSSHVersion(t *testing.T) {
	for in, want := range map[string][2]int{
		"\x00OpenSSH_2.*,OpenSSH_3.0*,OpenSSH_3.1*\x00OpenSSH_6.6.1*\x00OpenSSH_7.7*\x00OpenSSH_9.2p1 Debian-2\x00": {9, 2},
		"OpenSSH_8.4p1\x00":   {8, 4},
		"OpenSSH_10.0\x00":    {10, 0},
		"OpenSSH_7.4*":        {0, 0},
		"nothing of the kind": {0, 0},
		"OpenSSH_":            {0, 0},
		"OpenSSH_9.":          {0, 0},
	} {
		if got := opensshVersion(strings.NewReader(in)); got != want {
			t.Errorf("opensshVersion(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzOpenSSHVersion(f *testing.F) {
	f.Add([]byte("OpenSSH_2.*,OpenSSH_9.2p1"))
	f.Add([]byte("OpenSSH_6.6.1*OpenSSH_10.0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := opensshVersion(bytes.NewReader(data))
		if v[0] < 0 || v[1] < 0 || v[0] > 9999 || v[1] > 9999 {
			t.Fatalf("version %v", v)
		}
		if v != ([2]int{}) && !bytes.Contains(data, []byte("OpenSSH_")) {
			t.Fatalf("version %v without the marker", v)
		}
	})
}

// OpenSSHBinds looks at the running program: the real ssh binds, a
// program named ssh built as an older release does not, nor does a
// program of another name.
func TestOpenSSHBindsRunningProcesses(t *testing.T) {
	paths := testbed.Need(t, "ssh", "sleep")
	start := func(name string, args ...string) int {
		cmd := exec.Command(name, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	// A real ssh that stays up: its proxy command is a long sleep.
	real := start(paths[0], "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ProxyCommand=sleep 30", "nowhere.invalid")
	sleeper := start(paths[1], "30")
	bin, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "ssh")
	// An ELF binary ignores bytes after its sections.
	if err := os.WriteFile(old, append(bin, "\x00OpenSSH_8.4p1 Old\x00"...), 0o700); err != nil {
		t.Fatal(err)
	}
	oldSSH := start(old, "30")
	out, _ := exec.Command(paths[0], "-V").CombinedOutput()
	wantReal := releaseBinds(opensshVersion(bytes.NewReader(out)))
	// Right after the fork the child still runs this test's binary.
	isSSH := func(pid int) {
		for i := 0; i < 200; i++ {
			if target, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && filepath.Base(target) == "ssh" {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("process %d does not run a program named ssh", pid)
	}
	isSSH(real)
	isSSH(oldSSH)
	if OpenSSHBinds(real) != wantReal {
		t.Errorf("the running %s (%s) is not recognised as binding %v", paths[0], strings.TrimSpace(string(out)), wantReal)
	}
	if OpenSSHBinds(sleeper) {
		t.Error("sleep taken for a binding ssh")
	}
	if OpenSSHBinds(oldSSH) {
		t.Error("a program named ssh built as OpenSSH 8.4 taken for a binding ssh")
	}
	if OpenSSHBinds(os.Getpid()) {
		t.Error("the test itself taken for ssh")
	}
}
