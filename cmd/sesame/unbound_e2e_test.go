package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// The agent's socket forwarded with ssh -R: the far side's requests reach
// the agent through the local ssh (8.9 or later), which binds every
// connection of its own, on a connection it did not bind. A pinned key
// does not sign there; an unpinned one does, and the pinned key still
// signs for ssh-keygen -Y sign on this machine.
func TestE2EPinnedKeyNotThroughForwardedSocket(t *testing.T) {
	w := newE2EWorld(t)
	s := w.server(6)
	w.key("k")
	w.key("free")
	w.authorize(s, "k")
	a := w.sesameAgent([]string{"k", "free"})
	w.mustRun(nil, "sesame", "pin", hostPort(s), w.keys["k"]+".pub")

	// Local use: git's ssh-keygen -Y sign with the pinned key.
	msg := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(msg, []byte("commit\n"), 0o600)
	w.mustRun(a.env, "ssh-keygen", "-Y", "sign", "-f", w.keys["k"]+".pub", "-n", "git", msg)
	if _, err := os.Stat(msg + ".sig"); err != nil {
		t.Fatalf("ssh-keygen -Y sign with the pinned key: %v", err)
	}

	remote := filepath.Join(t.TempDir(), "forwarded.sock")
	args := append([]string{"-o", "ExitOnForwardFailure=yes", "-R", remote + ":" + a.sock}, w.sshArgs(s)...)
	cmd := exec.Command(testbed.Path(t, "ssh"), append(args, "sleep", "60")...)
	cmd.Env = append(append([]string(nil), w.env...), a.env...)
	out := &testbed.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(remote); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh -R did not forward the agent socket:\n%s\nagent:\n%s", out, a.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The far side.
	c, err := net.Dial("unix", remote)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	far := xagent.NewClient(c)
	keys, err := far.List()
	if err != nil {
		t.Fatal(err)
	}
	pub := func(name string) ssh.PublicKey { return w.publicKey(name) }
	if len(keys) == 0 {
		t.Fatal("the forwarded socket lists no keys")
	}
	if _, err := far.Sign(pub("free"), []byte("anything")); err != nil {
		t.Errorf("an unpinned key did not sign through the forwarded socket: %v", err)
	}
	if _, err := far.Sign(pub("k"), []byte("anything")); err == nil {
		t.Error("a pinned key signed for the far side of a forwarded socket")
	}
}
