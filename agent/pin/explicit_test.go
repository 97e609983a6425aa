package pin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// The client's explicit choice wins: `ssh -i k4.pub -o IdentitiesOnly=yes`
// and the same in a config file log in on the first try with k4 pinned
// nowhere, although the agent would offer an unpinned server only two of
// its six keys. A key pinned to another host is still refused.
func TestExplicitIdentityWins(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	b := newAgentBed(t, 6, []string{sshd.KnownHosts, sshd2.KnownHosts}, Options{MaxOffer: 2})
	sshd.Authorize(b.lines[3])
	sshd.Authorize(b.lines[4])
	b.setPins("other.example.org " + fp(b.keys[4]) + "\n")

	// Relative -i: ssh resolves it in its own directory, and so does the
	// agent's probe.
	out, err := b.ssh(append(sshd.SSHArgs("IdentitiesOnly=yes"), "-i", "k4.pub", "echo", "explicit-ok")...)
	if err != nil || !strings.Contains(out, "explicit-ok") {
		t.Fatalf("ssh -i k4.pub -o IdentitiesOnly=yes: %v\n%s", err, out)
	}
	if n := sshd.FailedPublickey(); n != 0 {
		t.Errorf("%d rejected keys", n)
	}
	// The key pinned to other.example.org: refused even when named.
	out, err = b.ssh(append(sshd.SSHArgs("IdentitiesOnly=yes"), "-i", "k5.pub", "echo", "pinned-elsewhere")...)
	if err == nil || strings.Contains(out, "pinned-elsewhere") {
		t.Fatalf("a key pinned to another host logged in: %s", out)
	}

	// The same through ~/.ssh/config-style blocks, on a server that has
	// learned nothing yet.
	sshd2.Authorize(b.lines[3])
	cf := filepath.Join(b.Dir, "config")
	os.WriteFile(cf, []byte("Host localhost\n    IdentityFile "+filepath.Join(b.Dir, "k4")+"\n    IdentitiesOnly yes\n"), 0o600)
	out, err = b.ssh(sshConfigArgs(sshd2, cf, "echo", "config-ok")...)
	if err != nil || !strings.Contains(out, "config-ok") {
		t.Fatalf("IdentityFile in a config file: %v\n%s", err, out)
	}
	if n := sshd2.FailedPublickey(); n != 0 {
		t.Errorf("%d rejected keys with the config file", n)
	}
}

// The probe never runs what the peer's command line or config asks for:
// not ProxyCommand or LocalCommand from -o, not a Match exec command, and
// it writes no -E log file.
func TestProbeRunsNothing(t *testing.T) {
	testbed.Need(t, "ssh")
	dir := t.TempDir()
	marker := func(n string) string { return filepath.Join(dir, n) }
	cfg := filepath.Join(dir, "cfg")
	os.WriteFile(cfg, []byte("Match exec \"touch "+marker("match-exec")+"\"\n    IdentityFile /x\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	argv := []string{"ssh", "-o", "ProxyCommand=touch " + marker("proxy"), "-o", "PermitLocalCommand=yes",
		"-o", "LocalCommand=touch " + marker("local"), "-E", marker("log"), "-vy",
		"-o", "KnownHostsCommand=touch " + marker("khc"), "-F", "/dev/null", "-l", "bob", "host", "cmd; touch " + marker("cmd")}
	cmd, ok := ParseSSHCommand(argv)
	if !ok {
		t.Fatal("not parsed")
	}
	c, err := ProbePeer(ctx, "", cmd, dir)
	if err != nil || c.User != "bob" {
		t.Fatalf("probe: %+v %v", c, err)
	}
	// A host name with a shell command in it: ssh refuses it.
	cmd, _ = ParseSSHCommand([]string{"ssh", "-F", "/dev/null", "host; touch " + marker("host")})
	if c, err := ProbePeer(ctx, "", cmd, dir); err == nil {
		t.Errorf("hostile host name gave a result: %+v", c)
	}
	// Match exec: the result is discarded, and nothing ran.
	cmd, _ = ParseSSHCommand([]string{"ssh", "-F", cfg, "host"})
	if c, err := ProbePeer(ctx, "", cmd, dir); err == nil {
		t.Errorf("a config with Match exec gave a result: %+v", c)
	}
	for _, m := range []string{"proxy", "local", "log", "khc", "host", "cmd", "match-exec"} {
		if _, err := os.Stat(marker(m)); err == nil {
			t.Errorf("the probe ran or wrote %s", m)
		}
	}
}

func TestParseSSHCommand(t *testing.T) {
	cases := []struct {
		argv, probe string
		ok          bool
	}{
		{"ssh host", "-G -o LogLevel=ERROR -- host", true},
		{"ssh -i k.pub -oIdentitiesOnly=yes host ls -l", "-G -o LogLevel=ERROR -i k.pub -o IdentitiesOnly=yes -- host ls -l", true},
		{"ssh host -i k -p 22 uptime", "-G -o LogLevel=ERROR -i k -p 22 -- host uptime", true},
		{"ssh -vE log -y -O exit -M -f -N -q -A host", "-G -o LogLevel=ERROR -A -- host", true},
		{"ssh -- -host", "-G -o LogLevel=ERROR -- -host", true},
		{"ssh -Z host", "", false},
		{"ssh -i", "", false},
		{"scp a b", "", false},
		{"ssh -v", "", false},
	}
	for _, c := range cases {
		cmd, ok := ParseSSHCommand(strings.Fields(c.argv))
		if ok != c.ok {
			t.Errorf("%q: ok %v", c.argv, ok)
			continue
		}
		if ok {
			if got := strings.Join(cmd.ProbeArgs(), " "); got != c.probe {
				t.Errorf("%q: probe args %q, want %q", c.argv, got, c.probe)
			}
		}
	}
}
