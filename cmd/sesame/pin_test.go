package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent/pin"
)

// sesame runs the CLI in-process and returns stdout, stderr and status.
func sesame(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	rootCmd.SetOut(&out)
	defer rootCmd.SetOut(nil)
	code := run(args, &errb)
	return out.String(), errb.String(), code
}

func writeKey(t *testing.T, dir, comment string) (string, ssh.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sp, _ := ssh.NewPublicKey(pub)
	f := filepath.Join(dir, comment+".pub")
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment + "\n"
	if err := os.WriteFile(f, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return f, sp, priv
}

func TestPinPinsUnpin(t *testing.T) {
	home := t.TempDir()
	t.Setenv("SESAME_HOME", home)
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/*.pub from the machine
	t.Setenv("SSH_AUTH_SOCK", "")
	file, key, _ := writeKey(t, t.TempDir(), "laptop")
	fp := ssh.FingerprintSHA256(key)

	out, errs, code := sesame(t, "pin", "alice@login.example.org", file)
	if code != 0 || !strings.Contains(out, "pinned "+fp+" (laptop) to alice@login.example.org") {
		t.Fatalf("pin: %d %q %q", code, out, errs)
	}
	out, _, code = sesame(t, "pin", "alice@login.example.org", fp)
	if code != 0 || !strings.Contains(out, "already pinned") {
		t.Fatalf("pin again: %d %q", code, out)
	}
	// Comment lookup finds the exported .pub.
	out, errs, code = sesame(t, "pin", "*.cluster.example.org", "laptop")
	if code != 0 {
		t.Fatalf("pin by comment: %q %q", out, errs)
	}
	pins, _ := os.ReadFile(filepath.Join(home, "config", "pins"))
	if !strings.Contains(string(pins), "alice@login.example.org  "+fp+"  # laptop") {
		t.Errorf("pins file:\n%s", pins)
	}
	// A learned pin, as the agent writes it.
	learned := filepath.Join(home, "state", pin.LearnedFileName)
	err := pin.UpdateLearned(learned, func([]pin.Learned) []pin.Learned {
		return []pin.Learned{{HostKey: fp, Names: []string{"n1.cluster.example.org"}, User: "bob", Key: fp,
			FirstUsed: time.Now(), LastUsed: time.Now(), Count: 3}}
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _, code = sesame(t, "pins")
	if code != 0 || !strings.Contains(out, "*.cluster.example.org") || !strings.Contains(out, "bob@n1.cluster.example.org") || !strings.Contains(out, "3×") ||
		strings.Count(out, "never used") != 1 {
		t.Fatalf("pins: %d\n%s", code, out)
	}
	out, _, _ = sesame(t, "ssh-config")
	if !strings.Contains(out, "Match host login.example.org user alice") || !strings.Contains(out, "IdentitiesOnly yes") ||
		!strings.Contains(out, "IdentityFile "+filepath.Join(home, "config", "keys")) {
		t.Errorf("ssh-config:\n%s", out)
	}
	// A private key file with its .pub beside it names the key too.
	priv := strings.TrimSuffix(file, ".pub")
	os.WriteFile(priv, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 0o600)
	out, errs, code = sesame(t, "pin", "bob@x.example.org", priv)
	if code != 0 || !strings.Contains(out, "pinned "+fp) {
		t.Fatalf("pin by private key path: %d %q %q", code, out, errs)
	}
	// Unpin without a user removes every user's pins for the host.
	out, _, code = sesame(t, "unpin", "x.example.org")
	if code != 0 || !strings.Contains(out, "from bob@x.example.org") {
		t.Fatalf("unpin all users: %d %q", code, out)
	}
	// Unpin a pattern: the declared line and the learned pin under it.
	out, errs, code = sesame(t, "unpin", "*.cluster.example.org")
	if code != 0 || !strings.Contains(out, "unpinned "+fp) || !strings.Contains(out, "forgot learned") {
		t.Fatalf("unpin: %d %q %q", code, out, errs)
	}
	_, errs, code = sesame(t, "unpin", "*.cluster.example.org")
	if code != 1 || errs != "sesame: no pin for *.cluster.example.org\nsesame: hint: sesame pins lists the declared and learned pins\n" {
		t.Errorf("unpin twice: %d %q", code, errs)
	}
	// A bad line: one error naming file and line; pin refuses to append.
	os.WriteFile(filepath.Join(home, "config", "pins"), append(pins, "oops\n"...), 0o600)
	_, errs, code = sesame(t, "pins")
	if code != 1 || !strings.Contains(errs, filepath.Join(home, "config", "pins")+" line 4:") {
		t.Errorf("bad line: %d %q", code, errs)
	}
	_, _, code = sesame(t, "pin", "other.example.org", fp)
	if code != 1 {
		t.Error("pin appended behind a bad line")
	}
	_, errs, code = sesame(t, "pin", "!only.negated", fp)
	if code != 1 || strings.Count(errs, "\n") > 2 || !strings.Contains(errs, "only negations") {
		t.Errorf("bad pattern: %d %q", code, errs)
	}
}

// KEY given as the comment of a key in the running agent.
func TestPinByAgentComment(t *testing.T) {
	home := t.TempDir()
	t.Setenv("SESAME_HOME", home)
	t.Setenv("HOME", t.TempDir())
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	kr := xagent.NewKeyring()
	kr.Add(xagent.AddedKey{PrivateKey: priv, Comment: "cluster-key"})
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { xagent.ServeAgent(kr, c); c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	out, errs, code := sesame(t, "pin", "bob@[git.example.org]:2222", "cluster-key")
	signer, _ := ssh.NewSignerFromKey(priv)
	fp := ssh.FingerprintSHA256(signer.PublicKey())
	if code != 0 || !strings.Contains(out, fp) {
		t.Fatalf("%d %q %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(home, "config", "keys", strings.NewReplacer(":", "_", "/", "_", "+", "-").Replace(fp)+".pub")); err != nil {
		t.Errorf("public key not exported: %v", err)
	}
}
