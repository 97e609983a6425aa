package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

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
	st := e.srv.Status()
	if st.Keys != 3 || len(st.Kinds) != 2 || st.Kinds[fingerprint(t, skEd+".pub")] != "sk" || st.Kinds[fingerprint(t, skEC+".pub")] != "sk" {
		t.Errorf("status: %d keys, kinds %v", st.Keys, st.Kinds)
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
	// The backend itself is locked too (it lists nothing to anyone).
	e.srv.backend.mu.Lock()
	bsock, bpid := e.srv.backend.sock, e.srv.backend.cmd.Process.Pid
	e.srv.backend.mu.Unlock()
	_, bclient := dial(t, bsock)
	if keys, err := bclient.List(); err != nil || len(keys) != 0 {
		t.Errorf("the backend lists %d keys while sesame is locked (%v)", len(keys), err)
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
	if cmd.Process.Pid != bpid {
		t.Errorf("the backend was restarted (pid %d, then %d): its keys were lost", bpid, cmd.Process.Pid)
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

// softHSM makes a SoftHSM2 token (PIN 1234) holding one RSA key, with its
// configuration in SOFTHSM2_CONF for this test (the backend ssh-agent's
// PKCS#11 helper inherits it), and returns the provider library and the
// key's public line as ssh-keygen -D prints it.
func softHSM(t *testing.T) (provider, pubLine string) {
	provider, conf, pubLine := testbed.SoftHSM(t)
	t.Setenv("SOFTHSM2_CONF", conf)
	return provider, pubLine
}

// A PKCS#11 key from a SoftHSM2 token: ssh-add -s with the PIN through
// SSH_ASKPASS, listed, used to log in, refused while locked, gone after
// ssh-add -e.
func TestBackendPKCS11(t *testing.T) {
	provider, pub := softHSM(t)
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd.Authorize(pub + "\n")
	e := startSesame(t, Options{})

	// Refused: a wrong PIN (once: sesame does not retry it), a copy of
	// the provider outside the allow-list, a provider that is not there.
	e.setPassphrase("9999")
	if out, err := e.run("ssh-add", "-s", provider); err == nil {
		t.Fatalf("ssh-add -s with a wrong PIN succeeded:\n%s", out)
	}
	outside := filepath.Join(t.TempDir(), "libsofthsm2.so")
	if b, err := os.ReadFile(provider); err != nil {
		t.Fatal(err)
	} else {
		os.WriteFile(outside, b, 0o700)
	}
	e.setPassphrase("1234")
	if out, err := e.run("ssh-add", "-s", outside); err == nil {
		t.Fatalf("ssh-add -s of a provider outside the allow-list succeeded:\n%s", out)
	}
	// (ssh-agent logs this refusal at its verbose level only, unlike
	// the security-key one, so there is no message to look for.)
	if out, err := e.run("ssh-add", "-s", "/usr/lib/sesame-no-such-pkcs11.so"); err == nil {
		t.Fatalf("ssh-add -s of a missing provider succeeded:\n%s", out)
	}
	if l := e.list(); l != "" {
		t.Fatalf("keys after refused ssh-add -s:\n%s", l)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, "askpass.log")); strings.Count(string(b), "\n") != 3 {
		t.Errorf("want one PIN prompt per ssh-add -s (3), askpass asked:\n%s", b)
	}

	if out, err := e.run("ssh-add", "-s", provider); err != nil {
		t.Fatalf("ssh-add -s: %v\n%s", err, out)
	}
	pubFile := filepath.Join(t.TempDir(), "token.pub")
	os.WriteFile(pubFile, []byte(pub+"\n"), 0o600)
	if l := e.list(); !strings.Contains(l, fingerprint(t, pubFile)) || !strings.Contains(l, "(RSA)") {
		t.Fatalf("ssh-add -l after ssh-add -s:\n%s", l)
	}
	if st := e.srv.Status(); st.Keys != 1 || st.Kinds[fingerprint(t, pubFile)] != "pkcs11" {
		t.Errorf("status: %d keys, kinds %v", st.Keys, st.Kinds)
	}
	if out, err := e.loginWith(sshd, pubFile); err != nil {
		t.Fatalf("login with the token's key: %v\n%s", err, out)
	}
	if err := e.srv.Lock([]byte("lock-pass")); err != nil {
		t.Fatal(err)
	}
	if out, err := e.loginWith(sshd, pubFile); err == nil {
		t.Errorf("login through a locked agent:\n%s", out)
	}
	if err := e.srv.Unlock([]byte("lock-pass")); err != nil {
		t.Fatal(err)
	}
	if out, err := e.loginWith(sshd, pubFile); err != nil {
		t.Errorf("login after unlock: %v\n%s", err, out)
	}
	if out, err := e.run("ssh-add", "-e", provider); err != nil {
		t.Fatalf("ssh-add -e: %v\n%s", err, out)
	}
	if l := e.list(); l != "" {
		t.Errorf("after ssh-add -e:\n%s", l)
	}
}

// ssh-add -c and -t hold for a FIDO key as for a software key: a refused
// confirmation refuses the signature, an accepted one signs, and the key
// goes when its lifetime ends.
func TestBackendConstraints(t *testing.T) {
	sk := testbed.SKDummy(t)
	skEd := testbed.NewSKKey(t, sk, t.TempDir(), "ed25519-sk")
	e := startSesame(t, Options{Providers: sk})
	skEnv := []string{"SSH_SK_PROVIDER=" + sk}
	if out, err := e.runEnv(skEnv, "ssh-add", "-c", skEd); err != nil {
		t.Fatalf("ssh-add -c: %v\n%s", err, out)
	}
	e.setConfirm(1)
	if err := e.signFile(skEd + ".pub"); err == nil {
		t.Error("signed although the confirmation was refused")
	}
	e.setConfirm(0)
	if err := e.signFile(skEd + ".pub"); err != nil {
		t.Errorf("sign after confirmation: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, "askpass.log")); strings.Count(string(b), "confirm|") != 2 {
		t.Errorf("askpass asked:\n%s", b)
	}
	e.must("ssh-add", "-D")
	if out, err := e.runEnv(skEnv, "ssh-add", "-t", "2", skEd); err != nil {
		t.Fatalf("ssh-add -t: %v\n%s", err, out)
	}
	if !strings.Contains(e.list(), "ED25519-SK") {
		t.Fatal("key with a lifetime not listed")
	}
	waitFor(t, 20*time.Second, "the sk key to expire", func() bool { return e.list() == "" })
}

// ssh-add -h holds for a FIDO key: the client's session-binds reach the
// backend, which offers and signs with the key only for its host.
func TestBackendDestinationConstraint(t *testing.T) {
	sk := testbed.SKDummy(t)
	skEd := testbed.NewSKKey(t, sk, t.TempDir(), "ed25519-sk")
	pub, _ := os.ReadFile(skEd + ".pub")
	sshd1 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd1.Authorize(string(pub))
	sshd2.Authorize(string(pub))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var both []byte
	for _, s := range []*testbed.SSHD{sshd1, sshd2} {
		b, _ := os.ReadFile(s.KnownHosts)
		both = append(both, b...)
	}
	os.WriteFile(kh, both, 0o600)
	e := startSesame(t, Options{Providers: sk})
	host1 := "[localhost]:" + strconv.Itoa(sshd1.Port)
	if out, err := e.runEnv([]string{"SSH_SK_PROVIDER=" + sk}, "ssh-add", "-H", kh, "-h", host1, skEd); err != nil {
		t.Fatalf("ssh-add -h: %v\n%s", err, out)
	}
	login := func(s *testbed.SSHD) (string, error) {
		args := append(s.SSHArgs("IdentityFile=none", "IdentityAgent="+e.sock, "UserKnownHostsFile="+kh), "echo", "login-ok")
		return e.run("ssh", args...)
	}
	if out, err := login(sshd1); err != nil || !strings.Contains(out, "login-ok") {
		t.Fatalf("login to the allowed host: %v\n%s", err, out)
	}
	if out, err := login(sshd2); err == nil {
		t.Errorf("logged in to a host outside the -h constraint:\n%s", out)
	}
	if n := sshd2.FailedPublickey(); n != 0 {
		t.Errorf("the other host was offered the key %d times", n)
	}
}

// A token that does not answer (the backend stopped, as while it waits
// for a touch) holds up only the request for it: other connections list
// and sign with software keys meanwhile, and the waiting signature
// completes once the token answers.
func TestBackendSlowToken(t *testing.T) {
	sk := testbed.SKDummy(t)
	k := testKeys(t)
	skEd := testbed.NewSKKey(t, sk, t.TempDir(), "ed25519-sk")
	e := startSesame(t, Options{Providers: sk})
	if out, err := e.runEnv([]string{"SSH_SK_PROVIDER=" + sk}, "ssh-add", k["ed"], skEd); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	e.srv.backend.mu.Lock()
	proc := e.srv.backend.cmd.Process
	e.srv.backend.mu.Unlock()
	// The backend's process group: its watcher and ssh-agent.
	if err := syscall.Kill(-proc.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-proc.Pid, syscall.SIGCONT)

	// The sign request goes straight to the agent: a client that lists
	// first (ssh, ssh-keygen) would not see the key while the backend
	// does not answer.
	skPub := readPub(t, skEd+".pub")
	_, client := dial(t, e.sock)
	done := make(chan error, 1)
	go func() {
		sig, err := client.Sign(skPub, []byte("to be signed"))
		if err == nil {
			err = skPub.Verify([]byte("to be signed"), sig)
		}
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // let the signature reach the backend

	start := time.Now()
	if l := e.list(); !strings.Contains(l, fingerprint(t, k["ed"]+".pub")) {
		t.Errorf("listing while the token is busy:\n%s", l)
	}
	if err := e.signFile(k["ed"] + ".pub"); err != nil {
		t.Errorf("software key while the token is busy: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("other connections waited %v for the busy token", d)
	}
	select {
	case err := <-done:
		t.Fatalf("the sk signature finished while the token was stopped: %v", err)
	default:
	}
	syscall.Kill(-proc.Pid, syscall.SIGCONT)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sk signature after the token answered: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the sk signature did not finish after the token answered")
	}
}

// FuzzParseIdentities: the backend's IDENTITIES_ANSWER is read without
// panicking, and every key returned parses.
func FuzzParseIdentities(f *testing.F) {
	srv := New(Options{})
	f.Add(srv.keys.answer)
	f.Add([]byte{msgIdentitiesAnswer, 0, 0, 0, 1, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0})
	f.Add([]byte{msgIdentitiesAnswer, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, _ := parseIdentities(b)
		for _, k := range keys {
			if _, err := ssh.ParsePublicKey(k.Blob); err != nil {
				t.Fatalf("returned a key that does not parse: %v", err)
			}
		}
	})
}
