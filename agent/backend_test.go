package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// runEnv is env.run with extra environment variables.
func (e *env) runEnv(extra []string, name string, args ...string) (string, error) {
	e.t.Helper()
	cmd := exec.Command(testbed.Path(e.t, name), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.sock)
	cmd.Env = append(cmd.Env, e.askpassEnv()...)
	cmd.Env = append(cmd.Env, extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// lonePub copies a public key file where no private key is beside it, so
// that ssh and ssh-keygen can use the key only through the agent.
func lonePub(t *testing.T, pub string) string {
	b, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "lone.pub")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loginWith logs in to sshd offering only the key of pub, held by the
// agent.
func (e *env) loginWith(sshd *testbed.SSHD, pub string) (string, error) {
	args := append(sshd.SSHArgs("IdentityFile="+lonePub(e.t, pub), "IdentitiesOnly=yes", "IdentityAgent="+e.sock), "echo", "login-ok")
	out, err := e.run("ssh", args...)
	if err == nil && !strings.Contains(out, "login-ok") {
		err = os.ErrInvalid
	}
	return out, err
}

// FIDO keys of both types are added with ssh-add, listed beside a software
// key, sign, and log in to sshd; locking refuses them until unlock; the
// backend ssh-agent goes when sesame stops.
func TestBackendSecurityKeys(t *testing.T) {
	sk := testbed.SKDummy(t)
	k := testKeys(t)
	dir := t.TempDir()
	skEd := testbed.NewSKKey(t, sk, dir, "ed25519-sk")
	skEC := testbed.NewSKKey(t, sk, dir, "ecdsa-sk")
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	for _, f := range []string{skEd, skEC} {
		pub, _ := os.ReadFile(f + ".pub")
		sshd.Authorize(string(pub))
	}
	e := startSesame(t, Options{Providers: sk})
	skEnv := []string{"SSH_SK_PROVIDER=" + sk}
	if out, err := e.runEnv(skEnv, "ssh-add", k["ed"], skEd, skEC); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	list := e.list()
	for _, want := range []string{"(ED25519-SK)", "(ECDSA-SK)", fingerprint(t, k["ed"]+".pub"),
		fingerprint(t, skEd+".pub"), fingerprint(t, skEC+".pub")} {
		if !strings.Contains(list, want) {
			t.Errorf("ssh-add -l lacks %s:\n%s", want, list)
		}
	}
	if n := strings.Count(list, "\n"); n != 3 {
		t.Errorf("ssh-add -l lists %d keys, want 3:\n%s", n, list)
	}
	for _, f := range []string{skEd, skEC} {
		if err := e.signFile(f + ".pub"); err != nil {
			t.Errorf("sign with %s: %v", filepath.Base(f), err)
		}
		if out, err := e.loginWith(sshd, f+".pub"); err != nil {
			t.Errorf("login with %s: %v\n%s", filepath.Base(f), err, out)
		}
	}
	for _, typ := range []string{"ED25519-SK", "ECDSA-SK"} {
		if testbed.CountLines(t, sshd.Log, "Accepted publickey") == 0 || testbed.CountLines(t, sshd.Log, typ) == 0 {
			t.Errorf("sshd log shows no %s login", typ)
		}
	}

	// Locked: nothing listed, the sk key neither signs nor logs in.
	if err := e.srv.Lock([]byte("lock-pass")); err != nil {
		t.Fatal(err)
	}
	if l := e.list(); l != "" {
		t.Errorf("locked agent lists:\n%s", l)
	}
	if err := e.signFile(skEd + ".pub"); err == nil {
		t.Error("a locked agent signed with the sk key")
	}
	if out, err := e.loginWith(sshd, skEd+".pub"); err == nil {
		t.Errorf("login through a locked agent:\n%s", out)
	}
	if out, err := e.runEnv(skEnv, "ssh-add", skEd); err == nil {
		t.Errorf("a locked agent took an sk key:\n%s", out)
	}
	if err := e.srv.Unlock([]byte("lock-pass")); err != nil {
		t.Fatal(err)
	}
	if out, err := e.loginWith(sshd, skEd+".pub"); err != nil {
		t.Errorf("login after unlock: %v\n%s", err, out)
	}

	// Removing one sk key leaves the rest.
	e.must("ssh-add", "-d", skEC+".pub")
	if l := e.list(); strings.Contains(l, "ECDSA-SK") || !strings.Contains(l, "ED25519-SK") {
		t.Errorf("after ssh-add -d of the ecdsa-sk key:\n%s", l)
	}
	e.must("ssh-add", "-D")
	if l := e.list(); l != "" {
		t.Errorf("after ssh-add -D:\n%s", l)
	}

	e.srv.backend.mu.Lock()
	cmd, bdir := e.srv.backend.cmd, e.srv.backend.dir
	e.srv.backend.mu.Unlock()
	if cmd == nil {
		t.Fatal("no backend ssh-agent was started")
	}
	if fi, err := os.Stat(bdir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("backend directory %s: %v %v", bdir, fi.Mode(), err)
	}
	e.srv.Close() // stops the backend before it returns
	if cmd.ProcessState == nil {
		t.Error("backend ssh-agent still running after Close")
	}
	if _, err := os.Stat(bdir); !os.IsNotExist(err) {
		t.Errorf("backend directory left behind: %v", err)
	}
}

// A provider outside the allow-list (-P) is refused with ssh-agent's own
// message; a provider that does not exist fails the add; either way the
// agent keeps serving.
func TestBackendProviderRefused(t *testing.T) {
	sk := testbed.SKDummy(t)
	k := testKeys(t)
	skEd := testbed.NewSKKey(t, sk, t.TempDir(), "ed25519-sk")
	e := startSesame(t, Options{}) // the default allow-list: /usr/lib*/*,/usr/local/lib*/*
	e.must("ssh-add", k["ed"])
	if out, err := e.runEnv([]string{"SSH_SK_PROVIDER=" + sk}, "ssh-add", skEd); err == nil {
		t.Fatalf("ssh-add with a provider outside the allow-list succeeded:\n%s", out)
	}
	waitFor(t, 10*time.Second, "ssh-agent's refusal in the log", func() bool {
		return strings.Contains(e.logBuf.String(), "not allowed")
	})
	if !strings.Contains(e.logBuf.String(), sk) {
		t.Errorf("the refusal does not name the provider:\n%s", e.logBuf.String())
	}
	if out, err := e.runEnv([]string{"SSH_SK_PROVIDER=/usr/lib/sesame-no-such-provider.so"}, "ssh-add", skEd); err == nil {
		t.Errorf("ssh-add with a missing provider succeeded:\n%s", out)
	}
	if l := e.list(); strings.Contains(l, "SK") || !strings.Contains(l, "ED25519") {
		t.Errorf("after refused adds:\n%s", l)
	}
	if err := e.signFile(k["ed"] + ".pub"); err != nil {
		t.Errorf("software key after refused adds: %v", err)
	}
}

// A backend that cannot start fails only the requests for it.
func TestBackendBroken(t *testing.T) {
	sk := testbed.SKDummy(t)
	k := testKeys(t)
	skEd := testbed.NewSKKey(t, sk, t.TempDir(), "ed25519-sk")
	for name, bin := range map[string]string{"exits": testbed.Path(t, "false"), "missing": "/nonexistent/ssh-agent"} {
		t.Run(name, func(t *testing.T) {
			e := startSesame(t, Options{BackendAgent: bin, Providers: sk})
			e.must("ssh-add", k["ed"])
			if out, err := e.runEnv([]string{"SSH_SK_PROVIDER=" + sk}, "ssh-add", skEd); err == nil {
				t.Fatalf("ssh-add succeeded without a backend:\n%s", out)
			}
			if !strings.Contains(e.logBuf.String(), "backend ssh-agent unavailable") {
				t.Errorf("log does not say why:\n%s", e.logBuf.String())
			}
			if err := e.signFile(k["ed"] + ".pub"); err != nil {
				t.Errorf("software key: %v", err)
			}
		})
	}
}
