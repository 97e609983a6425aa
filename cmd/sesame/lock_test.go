package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/testbed"
	"github.com/sesame-ssh/sesame/krb"
	"github.com/sesame-ssh/sesame/lock"
)

// lockEnv is a background `sesame agent` with its own home, driven by the
// real sesame binary, ssh-add and ssh.
type lockEnv struct {
	t    *testing.T
	bin  string
	dir  string
	home string
	env  []string
	sock string
	pid  int
}

func newLockEnv(t *testing.T) *lockEnv {
	t.Helper()
	testbed.Need(t, "ssh-keygen", "ssh-add")
	dir := t.TempDir()
	e := &lockEnv{t: t, bin: sesameBin(t), dir: dir, home: filepath.Join(dir, "home")}
	if err := os.Mkdir(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK", "SSH_ASKPASS", "SSH_AGENT_PID",
			"SSH_ASKPASS_REQUIRE", "DISPLAY", "SESAME_BACKEND", "SESAME_PASSPHRASE_FILE", "SESAME_HOME", "KRB5CCNAME":
			continue
		}
		e.env = append(e.env, kv)
	}
	e.env = append(e.env, "SESAME_HOME="+e.home, "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"SESAME_BACKEND=vault", "SHELL=/bin/sh")
	return e
}

// start runs `sesame agent -s` with extra flags and environment.
func (e *lockEnv) start(extraEnv []string, args ...string) {
	e.t.Helper()
	c := exec.Command(e.bin, append([]string{"agent", "-s"}, args...)...)
	c.Env = append(append([]string(nil), e.env...), extraEnv...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		e.t.Fatalf("sesame agent -s: %v\n%s", err, stderr.String())
	}
	vars := agentParseShell(string(out))
	e.sock = vars["SSH_AUTH_SOCK"]
	pid, err := strconv.Atoi(vars["SSH_AGENT_PID"])
	if err != nil || e.sock == "" {
		e.t.Fatalf("shell lines:\n%s", out)
	}
	e.pid = pid
	e.t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// stop ends the agent and waits until its socket is gone.
func (e *lockEnv) stop() {
	syscall.Kill(e.pid, syscall.SIGTERM)
	agentWaitUntil(e.t, "the agent to stop", func() bool { return agentProcessGone(e.pid) })
}

// sesame runs a sesame command against the agent, in a new session so
// that no terminal can be opened.
func (e *lockEnv) sesame(stdin string, extraEnv []string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	env := append(append([]string(nil), e.env...), "SSH_AUTH_SOCK="+e.sock)
	return runNoTTY(e.t, append(env, extraEnv...), stdin, e.bin, args...)
}

// askpass returns the environment that makes ssh-add read pw from a
// program, without a terminal.
func (e *lockEnv) askpass(pw string) []string {
	f, err := os.CreateTemp(e.dir, "askpass")
	if err != nil {
		e.t.Fatal(err)
	}
	fmt.Fprintf(f, "#!/bin/sh\nprintf '%%s\\n' '%s'\n", pw)
	f.Close()
	os.Chmod(f.Name(), 0o755)
	return []string{"SSH_ASKPASS=" + f.Name(), "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}
}

// sshAdd runs the stock ssh-add against the agent in a new session.
func (e *lockEnv) sshAdd(extraEnv []string, args ...string) (string, error) {
	c := exec.Command(testbed.Path(e.t, "ssh-add"), args...)
	c.Env = append(append([]string(nil), e.env...), "SSH_AUTH_SOCK="+e.sock)
	c.Env = append(c.Env, extraEnv...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := c.CombinedOutput()
	return string(out), err
}

func (e *lockEnv) status() agent.Status {
	e.t.Helper()
	out, errOut, code := e.sesame("", nil, "status", "--json")
	if code != 0 {
		e.t.Fatalf("sesame status: %d %s", code, errOut)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("status JSON: %v\n%s", err, out)
	}
	return st
}

// lockKeygen makes an unencrypted key of each type with ssh-keygen.
func lockKeygen(t *testing.T, dir string) []string {
	var files []string
	for _, k := range []struct{ typ, bits string }{{"ed25519", ""}, {"rsa", "3072"}, {"ecdsa", "256"}} {
		f := filepath.Join(dir, "id_"+k.typ)
		args := []string{"-q", "-t", k.typ, "-N", "", "-C", "lock-" + k.typ, "-f", f}
		if k.bits != "" {
			args = append(args, "-b", k.bits)
		}
		if out, err := exec.Command(testbed.Path(t, "ssh-keygen"), args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		files = append(files, f)
	}
	return files
}

// secretNeedle is a private key's secret bytes as they may lie in memory.
type secretNeedle struct {
	name  string
	bytes []byte
}

// window is 32 bytes from the middle: unique, and clear of the padding
// that differs between encodings.
func lockWindow(b []byte) []byte {
	if len(b) <= 32 {
		return b
	}
	i := (len(b) - 32) / 2
	return b[i : i+32]
}

func intSecretNeedles(name string, x *big.Int) []secretNeedle {
	w := lockWindow(x.Bytes())
	le := make([]byte, len(w))
	for i := range w {
		le[len(w)-1-i] = w[i]
	}
	// Big-endian as in the wire format and FIPS byte slices; reversed as
	// big.Int words and bigmod limbs lie in little-endian memory.
	return []secretNeedle{{name, w}, {name, le}}
}

// keySecretNeedles: the ed25519 seed, RSA d, p and q, the ECDSA scalar.
func keySecretNeedles(t *testing.T, file string) []secretNeedle {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(file)
	switch k := k.(type) {
	case *ed25519.PrivateKey:
		return []secretNeedle{{base + " seed", k.Seed()}}
	case *rsa.PrivateKey:
		n := intSecretNeedles(base+" d", k.D)
		n = append(n, intSecretNeedles(base+" p", k.Primes[0])...)
		return append(n, intSecretNeedles(base+" q", k.Primes[1])...)
	case *ecdsa.PrivateKey:
		return intSecretNeedles(base+" d", k.D)
	}
	t.Fatalf("no needles for %T", k)
	return nil
}

// scanProcess searches every readable mapping of process pid (through
// /proc/PID/mem, which needs root since the agent is not dumpable) and
// returns the names of the secrets found.
func scanProcess(t *testing.T, pid int, needles []secretNeedle) map[string]bool {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		testbed.Missing(t, "reading the agent's memory: "+err.Error())
	}
	defer mem.Close()
	found := map[string]bool{}
	buf := make([]byte, 1<<20)
	const overlap = 64
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		if len(f) >= 6 && strings.HasPrefix(f[5], "[v") {
			continue // vvar, vsyscall: not readable this way
		}
		a, b, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(a, 16, 64)
		end, _ := strconv.ParseUint(b, 16, 64)
		for off := start; off < end; {
			n := min(uint64(len(buf)), end-off)
			got, err := syscall.Pread(int(mem.Fd()), buf[:n], int64(off))
			if err != nil || got <= 0 {
				break
			}
			for _, nd := range needles {
				if bytes.Contains(buf[:got], nd.bytes) {
					found[nd.name] = true
				}
			}
			if uint64(got) < n || off+uint64(got) >= end {
				break
			}
			off += uint64(got) - overlap
		}
	}
	return found
}

// sshLogin logs in to sshd with the agent's keys only.
func sshLogin(t *testing.T, sshd *testbed.SSHD, sock string, extraEnv []string, opts ...string) (string, error) {
	c := exec.Command(testbed.Path(t, "ssh"), append(sshd.SSHArgs(opts...), "echo", "logged-in")...)
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	c.Env = append(c.Env, extraEnv...)
	out, err := c.CombinedOutput()
	return string(out), err
}

// The main scenario, with stock ssh-add through SSH_ASKPASS and no
// terminal: lock, nothing listed, no login, no key in the agent's memory;
// wrong unlocks delayed more and more; the right one restores every key.
func TestLockSealsKeysEndToEnd(t *testing.T) {
	testbed.NeedRoot(t)
	e := newLockEnv(t)
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	files := lockKeygen(t, e.dir)
	var needles []secretNeedle
	for _, f := range files {
		pub, _ := os.ReadFile(f + ".pub")
		sshd.Authorize(string(pub))
		needles = append(needles, keySecretNeedles(t, f)...)
	}
	secretNames := map[string]bool{}
	for _, n := range needles {
		secretNames[n.name] = true
	}
	e.start(nil)
	if out, err := e.sshAdd(nil, files...); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	pubkey := []string{"PubkeyAuthentication=yes", "PasswordAuthentication=no", "KbdInteractiveAuthentication=no"}
	if out, err := sshLogin(t, sshd, e.sock, nil, pubkey...); err != nil || !strings.Contains(out, "logged-in") {
		t.Fatalf("login before lock: %v\n%s", err, out)
	}

	// Control: while unlocked the scan finds every secret, so it can see.
	found := scanProcess(t, e.pid, needles)
	for n := range secretNames {
		if !found[n] {
			t.Fatalf("control: %s not found in the unlocked agent's memory; the scan is blind (found %v)", n, found)
		}
	}

	lockEnvs := e.askpass("correct horse")
	if out, err := e.sshAdd(lockEnvs, "-x"); err != nil {
		t.Fatalf("ssh-add -x: %v\n%s", err, out)
	}
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "no identities") {
		t.Errorf("ssh-add -l while locked:\n%s", out)
	}
	if out, err := sshLogin(t, sshd, e.sock, nil, pubkey...); err == nil || strings.Contains(out, "logged-in") {
		t.Errorf("login with a key succeeded while locked:\n%s", out)
	}
	if st := e.status(); !st.Locked || st.Reason != "command" || st.Keys != 3 || !st.Sealing {
		t.Errorf("status while locked: %+v", st)
	}
	if !lock.SecretMode && os.Getenv("CI") == "" {
		// Without runtime/secret the parser's and signer's temporaries
		// stay in freed memory; the build sets the experiment for this.
		t.Skip("built without GOEXPERIMENT=runtimesecret: the locked agent's memory is not clean")
	}
	// The lock collects its garbage in the background; allow it a moment.
	var left map[string]bool
	for range 50 {
		if left = scanProcess(t, e.pid, needles); len(left) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) != 0 {
		t.Errorf("locked agent's memory still holds %v", left)
	}

	// Wrong passphrases: each fails, and the second waits out the doubled
	// delay (100 ms then 200 ms): a lower bound, nothing else timed.
	wrong := e.askpass("wrong horse")
	if out, err := e.sshAdd(wrong, "-X"); err == nil {
		t.Fatalf("wrong ssh-add -X succeeded:\n%s", out)
	}
	began := time.Now()
	if out, err := e.sshAdd(wrong, "-X"); err == nil {
		t.Fatalf("second wrong ssh-add -X succeeded:\n%s", out)
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("second wrong unlock took %v, want at least the 200 ms back-off", d)
	}
	if st := e.status(); !st.Locked || st.Failures != 2 {
		t.Errorf("after wrong unlocks: %+v", st)
	}

	if out, err := e.sshAdd(lockEnvs, "-X"); err != nil {
		t.Fatalf("ssh-add -X: %v\n%s", err, out)
	}
	out, _ := e.sshAdd(nil, "-l")
	for _, f := range files {
		if !strings.Contains(out, "lock-"+strings.TrimPrefix(filepath.Base(f), "id_")) {
			t.Errorf("after unlock, %s missing:\n%s", f, out)
		}
	}
	if out, err := sshLogin(t, sshd, e.sock, nil, pubkey...); err != nil || !strings.Contains(out, "logged-in") {
		t.Fatalf("login after unlock: %v\n%s", err, out)
	}
	if found := scanProcess(t, e.pid, needles); len(found) != len(secretNames) {
		t.Errorf("after unlock the scan finds only %v", found)
	}
}

// Bad input: each a clear failure, the state unchanged.
func TestLockBadInput(t *testing.T) {
	e := newLockEnv(t)
	files := lockKeygen(t, e.dir)
	e.start(nil)
	if out, err := e.sshAdd(nil, files[0]); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}

	// Unlock when unlocked.
	if _, errOut, code := e.sesame("pw\n", nil, "unlock", "--passphrase-stdin"); code == 0 || !strings.Contains(errOut, "agent is not locked") {
		t.Errorf("unlock when unlocked: %d %q", code, errOut)
	}
	if out, err := e.sshAdd(e.askpass("pw"), "-X"); err == nil {
		t.Errorf("ssh-add -X when unlocked succeeded:\n%s", out)
	}
	// Empty and huge passphrases.
	if _, errOut, code := e.sesame("\n", nil, "lock", "--passphrase-stdin"); code == 0 || !strings.Contains(errOut, "empty") {
		t.Errorf("empty passphrase: %d %q", code, errOut)
	}
	huge := strings.Repeat("x", 1<<20)
	if _, errOut, code := e.sesame(huge+"\n", nil, "lock", "--passphrase-stdin"); code == 0 || !strings.Contains(errOut, "longer") {
		t.Errorf("1 MiB passphrase: %d %q", code, errOut)
	}
	// Straight over the protocol: a 1 MiB lock message is refused by the
	// framing, a 100 KiB one by the lock.
	for _, n := range []int{1 << 20, 100 << 10} {
		conn, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		err = xagent.NewClient(conn).Lock(bytes.Repeat([]byte("y"), n))
		conn.Close()
		if err == nil {
			t.Errorf("%d-byte lock passphrase accepted", n)
		}
	}
	if st := e.status(); st.Locked || st.Keys != 1 {
		t.Fatalf("after refused locks: %+v", st)
	}

	// Lock when locked.
	if _, errOut, code := e.sesame("pw\n", nil, "lock", "--passphrase-stdin"); code != 0 {
		t.Fatalf("lock: %d %s", code, errOut)
	}
	if _, errOut, code := e.sesame("other\n", nil, "lock", "--passphrase-stdin"); code == 0 || !strings.Contains(errOut, "already locked") {
		t.Errorf("lock when locked: %d %q", code, errOut)
	}
	if out, err := e.sshAdd(e.askpass("other"), "-x"); err == nil {
		t.Errorf("ssh-add -x when locked succeeded:\n%s", out)
	}
	// Every request but unlock fails while locked.
	if out, err := e.sshAdd(nil, files[1]); err == nil {
		t.Errorf("ssh-add of a key while locked succeeded:\n%s", out)
	}
	if out, err := e.sshAdd(nil, "-D"); err == nil {
		t.Errorf("ssh-add -D while locked succeeded:\n%s", out)
	}

	// Concurrent wrong unlocks: all fail, and the right one still works.
	var wg sync.WaitGroup
	var mu sync.Mutex
	succeeded := 0
	for range 6 {
		wg.Go(func() {
			if _, err := e.sshAdd(e.askpass("guess"), "-X"); err == nil {
				mu.Lock()
				succeeded++
				mu.Unlock()
			}
		})
	}
	// The status is still answered while unlock attempts wait.
	if st := e.status(); !st.Locked {
		t.Errorf("status during guesses: %+v", st)
	}
	wg.Wait()
	if succeeded != 0 {
		t.Errorf("%d wrong concurrent unlocks succeeded", succeeded)
	}
	if st := e.status(); !st.Locked || st.Keys != 1 || st.Failures != 6 {
		t.Errorf("after concurrent guesses: %+v", st)
	}

	// Another uid is refused by the socket check and changes nothing.
	if os.Getuid() == 0 {
		for d := filepath.Dir(e.sock); d != "/"; d = filepath.Dir(d) {
			if strings.HasPrefix(d, os.TempDir()+"/") {
				os.Chmod(d, 0o755)
			}
		}
		os.Chmod(filepath.Dir(e.sock), 0o777)
		os.Chmod(e.sock, 0o777)
		for _, arg := range []string{"-X", "-x"} {
			c := exec.Command(testbed.Path(t, "ssh-add"), arg)
			c.Env = append([]string{"SSH_AUTH_SOCK=" + e.sock, "PATH=/usr/bin:/bin"}, e.askpass("pw")...)
			c.Dir = "/"
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			if out, err := c.CombinedOutput(); err == nil {
				t.Errorf("ssh-add %s as uid 65534 succeeded:\n%s", arg, out)
			}
		}
		if st := e.status(); !st.Locked || st.Keys != 1 {
			t.Errorf("after another uid's attempts: %+v", st)
		}
	}

	// unlock takes --passphrase-file as add, keys and remove do.
	passFile := filepath.Join(e.dir, "lock-pass")
	if err := os.WriteFile(passFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := e.sesame("", nil, "unlock", "--passphrase-file", passFile); code != 0 {
		t.Fatalf("unlock --passphrase-file: %d %s", code, errOut)
	}
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "lock-ed25519") {
		t.Errorf("after unlock:\n%s", out)
	}
}

// --lock-after locks by itself once nothing has signed for that long; the
// agent started with the vault passphrase is armed without a `sesame lock`.
func TestLockAfterIdle(t *testing.T) {
	e := newLockEnv(t)
	files := lockKeygen(t, e.dir)
	pass := filepath.Join(e.dir, "pass")
	os.WriteFile(pass, []byte("vault pw\n"), 0o600)
	e.start([]string{"SESAME_PASSPHRASE_FILE=" + pass}, "--lock-after", "2s")
	if out, err := e.sshAdd(nil, files[0]); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	if st := e.status(); st.Locked || !st.Armed || time.Duration(st.LockAfter) != 2*time.Second {
		t.Fatalf("status after start: %+v", st)
	}
	agentWaitUntil(t, "the idle lock", func() bool { return e.status().Locked })
	if st := e.status(); st.Reason != "idle" || st.Keys != 1 {
		t.Errorf("status after idle lock: %+v", st)
	}
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "no identities") {
		t.Errorf("ssh-add -l after idle lock:\n%s", out)
	}
	out, errOut, code := e.sesame("", nil, "status")
	if code != 0 || !strings.Contains(out, "locked since") || !strings.Contains(out, "by idle") {
		t.Errorf("sesame status: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := e.sesame("", []string{"SESAME_PASSPHRASE_FILE=" + pass}, "unlock"); code != 0 {
		t.Fatalf("unlock with the vault passphrase file: %s", errOut)
	}
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "lock-ed25519") {
		t.Errorf("after unlock:\n%s", out)
	}
}

// Keys stored with `sesame add` come back when the agent restarts: at once
// with SESAME_PASSPHRASE_FILE, else on `sesame unlock` with the vault
// passphrase, which also works when the agent is not locked.
func TestAgentLoadsStoredKeys(t *testing.T) {
	e := newLockEnv(t)
	files := lockKeygen(t, e.dir)
	pass := filepath.Join(e.dir, "pass")
	os.WriteFile(pass, []byte("vault pw\n"), 0o600)
	withPass := []string{"SESAME_PASSPHRASE_FILE=" + pass}

	e.start(withPass)
	if _, errOut, code := e.sesame("", withPass, "add", files[0]); code != 0 {
		t.Fatalf("sesame add: %s", errOut)
	}
	e.stop()

	e.start(withPass)
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "lock-ed25519") {
		t.Errorf("agent started with the passphrase file did not load the key:\n%s", out)
	}
	e.stop()

	e.start(nil)
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "no identities") {
		t.Errorf("agent without the passphrase lists:\n%s", out)
	}
	st := e.status()
	if st.Locked || !st.StoredKeysPending {
		t.Errorf("status without the passphrase: %+v", st)
	}
	if out, _, _ := e.sesame("", nil, "status"); !strings.Contains(out, "sesame unlock") {
		t.Errorf("sesame status does not say how to load the stored keys:\n%s", out)
	}
	if _, errOut, code := e.sesame("wrong\n", nil, "unlock", "--passphrase-stdin"); code == 0 || !strings.Contains(errOut, "wrong passphrase") {
		t.Errorf("unlock with a wrong vault passphrase: %d %q", code, errOut)
	}
	if _, errOut, code := e.sesame("vault pw\n", nil, "unlock", "--passphrase-stdin"); code != 0 {
		t.Fatalf("unlock with the vault passphrase: %s", errOut)
	}
	if out, _ := e.sshAdd(nil, "-l"); !strings.Contains(out, "lock-ed25519") {
		t.Errorf("sesame unlock did not load the stored key:\n%s", out)
	}
	if st := e.status(); st.StoredKeysPending || !st.Armed {
		t.Errorf("status after loading: %+v", st)
	}
	// Loaded: a second unlock is an unlock of an unlocked agent again.
	if _, errOut, code := e.sesame("vault pw\n", nil, "unlock", "--passphrase-stdin"); code == 0 || !strings.Contains(errOut, "not locked") {
		t.Errorf("second unlock: %d %q", code, errOut)
	}
}

// --kerberos-on-lock stash: the ticket cache disappears while locked, so
// a GSSAPI login fails, and comes back on unlock; destroy does not bring
// it back.
func TestLockKerberosStash(t *testing.T) {
	testbed.NeedRoot(t)
	testbed.Need(t, "kinit", "ssh")
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: kdc})
	kdc.AddPrincipal(sshd.User, "pw-for-tests")
	e := newLockEnv(t)
	cc := filepath.Join(e.dir, "krb5cc")
	krbEnv := append(kdc.Env(), "KRB5CCNAME=FILE:"+cc)
	e.env = append(e.env, krbEnv...)
	gss := []string{"GSSAPIAuthentication=yes", "PubkeyAuthentication=no", "PasswordAuthentication=no", "KbdInteractiveAuthentication=no"}
	kinit := func() {
		c := exec.Command(testbed.Path(t, "kinit"), sshd.User)
		c.Env = append(os.Environ(), krbEnv...)
		c.Stdin = strings.NewReader("pw-for-tests\n")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("kinit: %v\n%s", err, out)
		}
	}
	login := func() (string, error) { return sshLogin(t, sshd, "/nonexistent", krbEnv, gss...) }

	for _, mode := range []string{"stash", "destroy"} {
		t.Run(mode, func(t *testing.T) {
			kinit()
			e.start(nil, "--kerberos-on-lock", mode)
			defer e.stop()
			if out, err := login(); err != nil || !strings.Contains(out, "logged-in") {
				t.Fatalf("GSSAPI login before lock: %v\n%s", err, out)
			}
			if _, errOut, code := e.sesame("pw\n", nil, "lock", "--passphrase-stdin"); code != 0 {
				t.Fatalf("lock: %s", errOut)
			}
			if _, err := os.Stat(cc); !os.IsNotExist(err) {
				t.Errorf("ticket cache still there while locked: %v", err)
			}
			if out, err := login(); err == nil || strings.Contains(out, "logged-in") {
				t.Errorf("GSSAPI login succeeded while locked:\n%s", out)
			}
			if st := e.status(); st.KerberosOnLock != mode {
				t.Errorf("status: %+v", st)
			}
			if _, errOut, code := e.sesame("pw\n", nil, "unlock", "--passphrase-stdin"); code != 0 {
				t.Fatalf("unlock: %s", errOut)
			}
			_, err := os.Stat(cc)
			out, lerr := login()
			if mode == "stash" {
				if err != nil {
					t.Fatalf("stashed cache not restored: %v", err)
				}
				if fi, _ := os.Stat(cc); fi.Mode().Perm() != 0o600 {
					t.Errorf("restored cache mode %v", fi.Mode().Perm())
				}
				if lerr != nil || !strings.Contains(out, "logged-in") {
					t.Errorf("GSSAPI login after unlock: %v\n%s", lerr, out)
				}
			} else if !os.IsNotExist(err) || lerr == nil {
				t.Errorf("destroyed cache came back: %v, login %v", err, lerr)
			}
		})
	}
}

// On a terminal (a pseudo-terminal from script(1)) the lock passphrase is
// asked twice, and the unlock passphrase once.
func TestLockPassphraseOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		testbed.Missing(t, "script(1) not installed: no pseudo-terminal to drive the prompt")
	}
	e := newLockEnv(t)
	e.start(nil)
	onTTY := func(input string, args ...string) (string, int) {
		c := exec.Command(script, "-qec", e.bin+" "+strings.Join(args, " "), "/dev/null")
		c.Env = append(append([]string(nil), e.env...), "SSH_AUTH_SOCK="+e.sock)
		c.Stdin = strings.NewReader(input)
		out, err := c.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := onTTY("tty-secret-1\ntty-secret-2\n", "lock"); code == 0 || !strings.Contains(out, "do not match") {
		t.Fatalf("mismatched lock passphrases: exit %d\n%s", code, out)
	}
	if e.status().Locked {
		t.Fatal("locked after mismatched passphrases")
	}
	out, code := onTTY("tty-secret\ntty-secret\n", "lock")
	// (The input is typed ahead, so the terminal echoes it before the
	// prompt turns echo off: no assertion about echo here.)
	if code != 0 || !strings.Contains(out, "Enter lock password:") || !strings.Contains(out, "Again:") {
		t.Fatalf("lock on the terminal: exit %d\n%s", code, out)
	}
	if !e.status().Locked {
		t.Fatal("not locked")
	}
	if out, code := onTTY("tty-secret\n", "unlock"); code != 0 || strings.Contains(out, "Again:") {
		t.Fatalf("unlock on the terminal: exit %d\n%s", code, out)
	}
	if e.status().Locked {
		t.Fatal("still locked")
	}
}

// A stashed ticket that reached its renewal point while the agent was
// locked is renewed right after unlock: the agent's keeper wakes then, and
// it wrote nothing while the lock held the ticket.
func TestLockStashedTicketRenewedAfterUnlock(t *testing.T) {
	t.Parallel()
	testbed.Need(t, "kinit")
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	kdc.AddPrincipal("grace", "pw-for-tests")
	e := newLockEnv(t)
	cc := filepath.Join(e.dir, "krb5cc")
	krbEnv := append(kdc.Env(), "KRB5CCNAME=FILE:"+cc)
	e.env = append(e.env, krbEnv...)
	c := exec.Command(testbed.Path(t, "kinit"), "-l", "40s", "-r", "10m", "grace")
	c.Env = append(os.Environ(), krbEnv...)
	c.Stdin = strings.NewReader("pw-for-tests\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	first, err := krb.ReadCCache(cc)
	if err != nil {
		t.Fatal(err)
	}
	tgt, _ := first.TGT()

	e.start(nil, "--kerberos-on-lock", "stash")
	defer e.stop()
	if _, errOut, code := e.sesame("pw\n", nil, "lock", "--passphrase-stdin"); code != 0 {
		t.Fatalf("lock: %s", errOut)
	}
	// Past the half-life (20 s), where the keeper wakes up and finds no
	// cache: it must neither write one nor give up for good.
	time.Sleep(time.Until(tgt.StartTime.Add(25 * time.Second)))
	if _, err := os.Stat(cc); !os.IsNotExist(err) {
		t.Fatalf("a ticket cache appeared while locked: %v", err)
	}
	if _, errOut, code := e.sesame("pw\n", nil, "unlock", "--passphrase-stdin"); code != 0 {
		t.Fatalf("unlock: %s", errOut)
	}
	agentWaitUntil(t, "the restored ticket to be renewed", func() bool {
		cur, err := krb.ReadCCache(cc)
		if err != nil {
			return false
		}
		t2, ok := cur.TGT()
		return ok && t2.EndTime.After(tgt.EndTime)
	})
}
