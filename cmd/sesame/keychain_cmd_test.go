package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// kcEnv runs the real sesame binary the way a script on a headless login
// node would: its own SESAME_HOME, no session bus, no controlling terminal,
// and a fake dbus-launch on PATH that records any start.
type kcEnv struct {
	t        *testing.T
	bin      string
	home     string
	env      []string
	marker   string // written by the fake dbus-launch
	askLog   string // one line per askpass call
	passFile string
}

func newKCEnv(t *testing.T) *kcEnv {
	t.Helper()
	testbed.Need(t, "ssh-keygen", "ssh-agent", "ssh-add")
	dir := t.TempDir()
	e := &kcEnv{t: t, bin: sesameBin(t), home: filepath.Join(dir, "home"),
		marker: filepath.Join(dir, "dbus-launch-started"), askLog: filepath.Join(dir, "askpass.log"),
		passFile: filepath.Join(dir, "vault-pass")}
	fake := filepath.Join(dir, "fakebin")
	os.Mkdir(fake, 0o700)
	os.WriteFile(filepath.Join(fake, "dbus-launch"), []byte("#!/bin/sh\necho started >> '"+e.marker+"'\nexit 1\n"), 0o755)
	os.WriteFile(e.passFile, []byte("vault passphrase\n"), 0o600)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "PATH", "SSH_AUTH_SOCK", "SSH_ASKPASS",
			"SSH_ASKPASS_REQUIRE", "DISPLAY", "SESAME_BACKEND", "SESAME_PASSPHRASE_FILE", "SESAME_HOME":
			continue
		}
		e.env = append(e.env, kv)
	}
	e.env = append(e.env, "PATH="+fake+":"+os.Getenv("PATH"), "SESAME_HOME="+e.home, "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"))
	return e
}

// askpass returns env entries making sesame take a key passphrase from a
// program that answers pw and logs each call.
func (e *kcEnv) askpass(pw string) []string {
	p := filepath.Join(e.t.TempDir(), "askpass")
	os.WriteFile(p, []byte("#!/bin/sh\necho \"$1\" >> '"+e.askLog+"'\nprintf '%s\\n' '"+pw+"'\n"), 0o755)
	return []string{"SSH_ASKPASS=" + p, "SSH_ASKPASS_REQUIRE=force"}
}

func (e *kcEnv) askCalls() int {
	data, _ := os.ReadFile(e.askLog)
	return bytes.Count(data, []byte("\n"))
}

// run executes sesame in a new session, so that /dev/tty cannot be opened.
func (e *kcEnv) run(stdin string, extraEnv []string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	return runNoTTY(e.t, append(append([]string(nil), e.env...), extraEnv...), stdin, e.bin, args...)
}

func (e *kcEnv) vaultPath() string { return filepath.Join(e.home, "state", "vault.age") }

func keygen(t *testing.T, typ, pass, comment string) (file, fingerprint string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "id_"+typ)
	if out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-q", "-t", typ, "-N", pass, "-C", comment, "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(file + ".pub")
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return file, ssh.FingerprintSHA256(pub)
}

// sshAgent runs OpenSSH's ssh-agent -D on a fresh socket.
func sshAgent(t *testing.T) (sock string, stop func()) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(testbed.Path(t, "ssh-agent"), "-D", "-a", sock)
	// Killed with the test binary even if the test never gets to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() { cmd.Process.Kill(); <-done }
	t.Cleanup(stop)
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, stop
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("ssh-agent did not create its socket")
	return "", nil
}

func sshAddList(t *testing.T, sock string) string {
	t.Helper()
	cmd := exec.Command(testbed.Path(t, "ssh-add"), "-l")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, _ := cmd.CombinedOutput() // exit 1 means "no identities"
	return string(out)
}

// The scenario of the issue: a passphrase-protected ed25519 key added with
// `sesame add` lands in a running OpenSSH ssh-agent and in the vault, is
// listed by `sesame keys`, and is removed by `sesame remove`.
func TestAddKeysRemoveWithOpenSSHAgent(t *testing.T) {
	e := newKCEnv(t)
	key, fp := keygen(t, "ed25519", "key passphrase", "alice@laptop")
	sock, stop := sshAgent(t)
	agentEnv := append(e.askpass("key passphrase"), "SSH_AUTH_SOCK="+sock)

	_, stderr, code := e.run("", agentEnv, "add", "--passphrase-file", e.passFile, key)
	if code != 0 {
		t.Fatalf("sesame add: exit %d\n%s", code, stderr)
	}
	if n := e.askCalls(); n != 1 {
		t.Fatalf("key passphrase asked %d times, want once", n)
	}
	if l := sshAddList(t, sock); !strings.Contains(l, fp) || !strings.Contains(l, "alice@laptop") {
		t.Fatalf("ssh-add -l after sesame add:\n%s", l)
	}
	if fi, err := os.Stat(e.vaultPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("vault: %v %v", fi, err)
	}

	// keys: table and JSON, loaded = yes.
	stdout, stderr, code := e.run("", agentEnv, "keys", "--passphrase-file", e.passFile)
	if code != 0 || !strings.Contains(stdout, fp) || !strings.Contains(stdout, "alice@laptop") || !strings.Contains(stdout, "yes") {
		t.Fatalf("sesame keys: exit %d\n%s%s", code, stdout, stderr)
	}
	// The vault passphrase on standard input, and SESAME_PASSPHRASE_FILE.
	stdout, stderr, code = e.run("vault passphrase\n", agentEnv, "keys", "--passphrase-stdin", "--json")
	var listing []keyListing
	if code != 0 || json.Unmarshal([]byte(stdout), &listing) != nil || len(listing) != 1 ||
		listing[0].Fingerprint != fp || listing[0].Loaded == nil || !*listing[0].Loaded {
		t.Fatalf("sesame keys --json: exit %d\n%s%s", code, stdout, stderr)
	}

	// A fresh agent: the key is stored, not loaded ("no"); without an agent "-".
	stop()
	sock2, _ := sshAgent(t)
	stdout, _, code = e.run("", []string{"SSH_AUTH_SOCK=" + sock2, "SESAME_PASSPHRASE_FILE=" + e.passFile}, "keys")
	if code != 0 || !strings.Contains(stdout, fp) || !strings.HasSuffix(strings.TrimSpace(stdout), "no") {
		t.Fatalf("keys with a fresh agent:\n%s", stdout)
	}
	stdout, _, _ = e.run("", []string{"SESAME_PASSPHRASE_FILE=" + e.passFile}, "keys")
	if !strings.HasSuffix(strings.TrimSpace(stdout), "-") {
		t.Fatalf("keys without an agent:\n%s", stdout)
	}

	// Add again into the fresh agent (the stored copy is replaced, same key),
	// then remove by comment: gone from both.
	_, stderr, code = e.run("", append(e.askpass("key passphrase"), "SSH_AUTH_SOCK="+sock2), "add", "-t", "1h", "--passphrase-file", e.passFile, key)
	if code != 0 || !strings.Contains(sshAddList(t, sock2), fp) {
		t.Fatalf("second add: exit %d\n%s", code, stderr)
	}
	_, stderr, code = e.run("", []string{"SSH_AUTH_SOCK=" + sock2}, "remove", "--passphrase-file", e.passFile, "alice@laptop")
	if code != 0 {
		t.Fatalf("sesame remove: exit %d\n%s", code, stderr)
	}
	if l := sshAddList(t, sock2); strings.Contains(l, fp) {
		t.Fatalf("key still in the agent after remove:\n%s", l)
	}
	stdout, _, _ = e.run("", []string{"SESAME_PASSPHRASE_FILE=" + e.passFile}, "keys", "--json")
	if strings.TrimSpace(stdout) != "[]" {
		t.Fatalf("keys after remove: %s", stdout)
	}
	_, stderr, code = e.run("", nil, "remove", "--passphrase-file", e.passFile, fp)
	if code != 1 || !strings.Contains(stderr, "no stored key matches") {
		t.Fatalf("removing twice: exit %d\n%s", code, stderr)
	}

	if _, err := os.Stat(e.marker); err == nil {
		t.Fatal("sesame started dbus-launch on a machine without a session bus")
	}
}

// Bad input stores nothing and says so in one line naming the problem.
func TestAddBadInput(t *testing.T) {
	e := newKCEnv(t)
	key, _ := keygen(t, "ed25519", "right", "k@test")
	notKey := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notKey, []byte("just text\n"), 0o600)

	_, stderr, code := e.run("", nil, "add", "--passphrase-file", e.passFile, notKey)
	if code != 1 || !strings.HasPrefix(stderr, "sesame: "+notKey+": not a private key") {
		t.Fatalf("not a key: exit %d\n%s", code, stderr)
	}
	_, stderr, code = e.run("", e.askpass("wrong"), "add", "--passphrase-file", e.passFile, key)
	if code != 1 || !strings.Contains(stderr, "wrong passphrase for key") || !strings.Contains(stderr, key) {
		t.Fatalf("wrong key passphrase: exit %d\n%s", code, stderr)
	}
	if n := e.askCalls(); n != 1 {
		t.Fatalf("wrong key passphrase asked %d times, want once", n)
	}
	// A good key next to a bad file: nothing stored.
	_, _, code = e.run("", e.askpass("right"), "add", "--passphrase-file", e.passFile, key, notKey)
	if _, err := os.Stat(e.vaultPath()); code != 1 || err == nil {
		t.Fatalf("partial add stored something (exit %d, vault %v)", code, err)
	}
	// An encrypted key without terminal or askpass: clear error.
	_, stderr, code = e.run("", nil, "add", "--passphrase-file", e.passFile, key)
	if code != 1 || !strings.Contains(stderr, "no terminal") {
		t.Fatalf("no way to ask: exit %d\n%s", code, stderr)
	}
	// A new vault refuses an empty passphrase.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	_, stderr, code = e.run("", e.askpass("right"), "add", "--passphrase-file", empty, key)
	if code != 1 || !strings.Contains(stderr, "empty") {
		t.Fatalf("empty vault passphrase: exit %d\n%s", code, stderr)
	}

	// Store it properly, then a wrong vault passphrase changes nothing.
	if _, stderr, code := e.run("", e.askpass("right"), "add", "--passphrase-file", e.passFile, key); code != 0 {
		t.Fatalf("add: %s", stderr)
	}
	before, _ := os.ReadFile(e.vaultPath())
	key2, _ := keygen(t, "ecdsa", "", "k2@test")
	_, stderr, code = e.run("not the passphrase\n", nil, "add", "--passphrase-stdin", key2)
	if code != 1 || !strings.Contains(stderr, "wrong vault passphrase") || !strings.Contains(stderr, "sesame: hint:") {
		t.Fatalf("wrong vault passphrase: exit %d\n%s", code, stderr)
	}
	if after, _ := os.ReadFile(e.vaultPath()); !bytes.Equal(before, after) {
		t.Fatal("vault changed after a wrong passphrase")
	}
	// A corrupt vault is reported and left alone.
	os.WriteFile(e.vaultPath(), []byte("garbage"), 0o600)
	_, stderr, code = e.run("", nil, "add", "--passphrase-file", e.passFile, key2)
	if data, _ := os.ReadFile(e.vaultPath()); code != 1 || string(data) != "garbage" || !strings.Contains(stderr, "damaged") {
		t.Fatalf("corrupt vault: exit %d, file %q\n%s", code, data, stderr)
	}
	// Unknown and unavailable backends.
	_, stderr, code = e.run("", nil, "keys", "--backend", "floppy")
	if code != 1 || !strings.Contains(stderr, "unknown keychain backend") {
		t.Fatalf("unknown backend: %s", stderr)
	}
	_, stderr, code = e.run("", nil, "keys", "--backend", "secret-service")
	if code != 1 || !strings.Contains(stderr, "not available") {
		t.Fatalf("secret-service without a bus: %s", stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Fatalf("more than an error and a hint line:\n%s", stderr)
	}
}

func TestParseKeyLifetime(t *testing.T) {
	for in, want := range map[string]uint32{"30": 30, "90m": 5400, "10h": 36000, "7d": 604800, "1h30m": 5400} {
		if got, err := parseKeyLifetime(in); err != nil || got != want {
			t.Errorf("parseKeyLifetime(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-5m", "0s", "99999999999"} {
		if _, err := parseKeyLifetime(bad); err == nil {
			t.Errorf("parseKeyLifetime(%q) accepted", bad)
		}
	}
}

// FILE-cert.pub is stored and loaded with its key, as ssh-add does.
func TestAddWithCertificate(t *testing.T) {
	e := newKCEnv(t)
	ca, _ := keygen(t, "ed25519", "", "ca")
	key, fp := keygen(t, "ed25519", "", "user@test")
	if out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-q", "-s", ca, "-I", "cert-id", "-n", "user", key+".pub").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
	}
	sock, _ := sshAgent(t)
	env := []string{"SSH_AUTH_SOCK=" + sock, "SESAME_PASSPHRASE_FILE=" + e.passFile}
	if _, stderr, code := e.run("", env, "add", key); code != 0 || !strings.Contains(stderr, "with its certificate") {
		t.Fatalf("add: exit %d\n%s", code, stderr)
	}
	if l := sshAddList(t, sock); !strings.Contains(l, "(ED25519-CERT)") || !strings.Contains(l, "(ED25519)") {
		t.Fatalf("ssh-add -l:\n%s", l)
	}
	if stdout, _, _ := e.run("", env, "keys"); !strings.Contains(stdout, fp) || !strings.Contains(stdout, "ssh-ed25519+cert") {
		t.Fatalf("keys:\n%s", stdout)
	}
	// remove takes the key and its certificate out of the agent.
	if _, stderr, code := e.run("", env, "remove", key+".pub"); code != 0 {
		t.Fatalf("remove: exit %d\n%s", code, stderr)
	}
	if l := sshAddList(t, sock); strings.Contains(l, "ED25519") {
		t.Fatalf("ssh-add -l after remove:\n%s", l)
	}
}

// Without a passphrase file, the vault passphrase is asked on the terminal
// (a pseudo-terminal from script(1) here): twice for a new vault.
func TestVaultPassphrasePrompt(t *testing.T) {
	e := newKCEnv(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed: no pseudo-terminal to drive the prompt")
	}
	key, fp := keygen(t, "ed25519", "", "tty@test")
	onTTY := func(input string, args ...string) (string, int) {
		cmd := exec.Command(script, "-qec", e.bin+" "+strings.Join(args, " "), "/dev/null")
		cmd.Env = e.env
		cmd.Stdin = strings.NewReader(input)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := onTTY("one\ntwo\n", "add", key)
	if code == 0 || !strings.Contains(out, "Repeat vault passphrase") || !strings.Contains(out, "do not match") {
		t.Fatalf("mismatched new passphrase: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(e.vaultPath()); err == nil {
		t.Fatal("vault created after mismatched passphrases")
	}
	if out, code = onTTY("same\nsame\n", "add", key); code != 0 {
		t.Fatalf("new vault on the terminal: exit %d\n%s", code, out)
	}
	if out, code = onTTY("same\n", "keys"); code != 0 || !strings.Contains(out, "Enter vault passphrase") || !strings.Contains(out, fp) {
		t.Fatalf("keys on the terminal: exit %d\n%s", code, out)
	}
	if out, code = onTTY("nope\n", "keys"); code == 0 || !strings.Contains(out, "wrong vault passphrase") {
		t.Fatalf("wrong passphrase on the terminal: exit %d\n%s", code, out)
	}
}
