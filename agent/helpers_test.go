package agent

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// keyDir holds key files made once for the whole package run.
var (
	keyDir     string
	keyOnce    sync.Once
	keyOnceErr error
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "sesame-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keyDir = d
	// x/crypto's agent server logs every failed request through the log
	// package; the tests send many on purpose.
	log.SetOutput(io.Discard)
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// testKeys makes (once) an ed25519, an ECDSA and an RSA key, a CA, and a
// certificate for the ed25519 key, with ssh-keygen.
func testKeys(t testing.TB) map[string]string {
	t.Helper()
	kg := testbed.Path(t, "ssh-keygen")
	keyOnce.Do(func() {
		for _, k := range [][]string{
			{"ed", "-t", "ed25519"}, {"ec", "-t", "ecdsa", "-b", "256"}, {"rsa", "-t", "rsa", "-b", "2048"},
			{"ca", "-t", "ed25519"}, {"certkey", "-t", "ed25519"}, {"extra", "-t", "ed25519"},
			{"certec", "-t", "ecdsa", "-b", "384"}, {"certrsa", "-t", "rsa", "-b", "2048"},
		} {
			args := append([]string{"-q", "-N", "", "-C", "comment-" + k[0], "-f", filepath.Join(keyDir, k[0])}, k[1:]...)
			if out, err := exec.Command(kg, args...).CombinedOutput(); err != nil {
				keyOnceErr = fmt.Errorf("ssh-keygen %v: %v\n%s", args, err, out)
				return
			}
		}
		for _, k := range []string{"certkey", "certec", "certrsa"} {
			out, err := exec.Command(kg, "-q", "-s", filepath.Join(keyDir, "ca"), "-I", "test-cert", "-n", "root",
				filepath.Join(keyDir, k+".pub")).CombinedOutput()
			if err != nil {
				keyOnceErr = fmt.Errorf("ssh-keygen -s: %v\n%s", err, out)
				return
			}
		}
	})
	if keyOnceErr != nil {
		t.Fatal(keyOnceErr)
	}
	m := map[string]string{}
	for _, n := range []string{"ed", "ec", "rsa", "ca", "certkey", "certec", "certrsa", "extra"} {
		m[n] = filepath.Join(keyDir, n)
	}
	return m
}

// env is one agent under test plus the askpass script both agents use.
type env struct {
	t       *testing.T
	name    string
	dir     string
	sock    string
	askpass string
	srv     *Server // nil for OpenSSH's agent
	logBuf  *testbed.SyncBuffer
}

// newEnv prepares a directory with an askpass script: it logs its prompt,
// answers confirm prompts with the exit status in file "confirm" and
// passphrase prompts with the content of file "passphrase".
func newEnv(t *testing.T, name string) *env {
	dir := t.TempDir()
	ap := filepath.Join(dir, "askpass")
	script := fmt.Sprintf(`#!/bin/sh
echo "${SSH_ASKPASS_PROMPT:-none}|$1" >> %[1]s/askpass.log
if [ "$SSH_ASKPASS_PROMPT" = confirm ]; then exit $(cat %[1]s/confirm); fi
cat %[1]s/passphrase
`, dir)
	if err := os.WriteFile(ap, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, name: name, dir: dir, sock: filepath.Join(dir, "s", "agent.sock"), askpass: ap}
	// The agent binds exactly where it is told; the directory is ours.
	os.Mkdir(filepath.Dir(e.sock), 0o700)
	e.setConfirm(0)
	e.setPassphrase("")
	return e
}

func (e *env) setConfirm(code int) {
	os.WriteFile(filepath.Join(e.dir, "confirm"), []byte(fmt.Sprint(code)), 0o600)
}

func (e *env) setPassphrase(p string) {
	os.WriteFile(filepath.Join(e.dir, "passphrase"), []byte(p+"\n"), 0o600)
}

// askpassEnv makes OpenSSH tools use the askpass script without a terminal.
func (e *env) askpassEnv() []string {
	return []string{"SSH_ASKPASS=" + e.askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}
}

// startSesame runs a Server in this process on a temporary socket.
func startSesame(t *testing.T, opts Options) *env {
	e := newEnv(t, "sesame")
	opts.Socket = e.sock
	opts.Askpass = e.askpass
	e.logBuf = &testbed.SyncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(opts)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context()) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	e.srv = srv
	return e
}

// startOpenSSH runs OpenSSH's ssh-agent -D on a temporary socket.
func startOpenSSH(t *testing.T, lifetime string) *env {
	e := newEnv(t, "openssh")
	bin := testbed.Path(t, "ssh-agent")
	os.MkdirAll(filepath.Dir(e.sock), 0o700)
	args := []string{"-D", "-a", e.sock}
	if lifetime != "" {
		args = append(args, "-t", lifetime)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), e.askpassEnv()...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitSocket(t, e.sock)
	return e
}

func waitSocket(t testing.TB, sock string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent socket %s never answered: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs an OpenSSH tool against the agent and returns its combined
// output and error.
func (e *env) run(name string, args ...string) (string, error) {
	e.t.Helper()
	cmd := exec.Command(testbed.Path(e.t, name), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.sock)
	cmd.Env = append(cmd.Env, e.askpassEnv()...)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must is run that fails the test on error.
func (e *env) must(name string, args ...string) string {
	e.t.Helper()
	out, err := e.run(name, args...)
	if err != nil {
		e.t.Fatalf("[%s] %s %s: %v\n%s", e.name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// list returns ssh-add -l output ("" when the agent has no identities).
func (e *env) list() string {
	e.t.Helper()
	out, err := e.run("ssh-add", "-l")
	if err != nil && strings.Contains(out, "no identities") {
		return ""
	}
	if err != nil {
		e.t.Fatalf("[%s] ssh-add -l: %v\n%s", e.name, err, out)
	}
	return out
}

// fingerprint of a public key file, as ssh-add -l prints it.
func fingerprint(t testing.TB, pubFile string) string {
	t.Helper()
	out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-l", "-f", pubFile).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v\n%s", err, out)
	}
	return strings.Fields(string(out))[1]
}

// signFile signs a file through the agent with ssh-keygen -Y sign.
func (e *env) signFile(pub string) error {
	e.t.Helper()
	// ssh-keygen falls back to the private key file next to the public
	// one when the agent does not sign: sign with a lone copy instead.
	lone := filepath.Join(e.dir, "lone.pub")
	b, err := os.ReadFile(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	os.WriteFile(lone, b, 0o600)
	data := filepath.Join(e.dir, "data")
	os.WriteFile(data, []byte("to be signed"), 0o600)
	os.Remove(data + ".sig")
	out, err := e.run("ssh-keygen", "-Y", "sign", "-f", lone, "-n", "file", data)
	if err == nil {
		if _, serr := os.Stat(data + ".sig"); serr != nil {
			return fmt.Errorf("no signature file: %w", serr)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
