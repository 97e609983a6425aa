package pin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// A FIDO key held by the agent's backend ssh-agent is pinned like any
// other: offered to the server it is pinned to, never shown to another
// one, which then sees no key at all (no failed publickey line).
func TestBackendSKKeyPinned(t *testing.T) {
	sk := testbed.SKDummy(t)
	dir := t.TempDir()
	skKey := testbed.NewSKKey(t, sk, dir, "ed25519-sk")
	pubLine, err := os.ReadFile(skKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubLine)
	if err != nil {
		t.Fatal(err)
	}
	sshd1 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd1.Authorize(string(pubLine))
	sshd2.Authorize(string(pubLine))

	pins := filepath.Join(dir, "pins")
	if err := os.WriteFile(pins, []byte(hostName(sshd1)+" "+fp(pub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := New(Options{PinsFile: pins, LearnedFile: filepath.Join(dir, "learned.json"),
		KnownHostsFiles: []string{sshd1.KnownHosts, sshd2.KnownHosts}})
	t.Cleanup(func() { p.Close() })
	sock := filepath.Join(dir, "agent.sock")
	srv := agent.New(agent.Options{Socket: sock, Policy: p, Providers: sk})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(t.Context())
	t.Cleanup(srv.Close)

	add := exec.Command(testbed.Path(t, "ssh-add"), skKey)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_SK_PROVIDER="+sk)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	login := func(s *testbed.SSHD) (string, error) {
		cmd := exec.Command(testbed.Path(t, "ssh"), append(s.SSHArgs("IdentityFile=none", "IdentityAgent="+sock), "echo", "login-ok")...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := login(sshd1); err != nil || !strings.Contains(out, "login-ok") {
		t.Fatalf("login to the pinned server: %v\n%s", err, out)
	}
	if out, err := login(sshd2); err == nil {
		t.Errorf("logged in to another server with the pinned sk key:\n%s", out)
	}
	if n := sshd2.FailedPublickey(); n != 0 {
		t.Errorf("the other server saw %d keys", n)
	}
	if n := testbed.CountLines(t, sshd2.Log, "ED25519-SK"); n != 0 {
		t.Errorf("the other server's log mentions the sk key %d times", n)
	}
}
