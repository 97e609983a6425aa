package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// The vault under hostile files and faults: whatever sits at the vault's
// path, every command answers at once with one line that says what it
// found, nothing is replaced, and the user's keys are never given up.

// runWithin runs sesame like kcEnv.run, but fails the test if it has not
// finished within d (a hang is the failure these tests look for).
func (e *kcEnv) runWithin(d time.Duration, stdin string, extraEnv []string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, e.bin, args...)
	c.Env = append(append([]string(nil), e.env...), extraEnv...)
	c.Stdin = strings.NewReader(stdin)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var o, se bytes.Buffer
	c.Stdout, c.Stderr = &o, &se
	err := c.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("sesame %s hung (killed after %s)\n%s", strings.Join(args, " "), d, se.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return o.String(), se.String(), code
}

// storeOneKey makes a vault holding one ed25519 key and returns the key's
// fingerprint.
func (e *kcEnv) storeOneKey(comment string) string {
	e.t.Helper()
	key, fp := keygen(e.t, "ed25519", "", comment)
	_, stderr, code := e.run("", []string{"SSH_AUTH_SOCK=/nonexistent"}, "add", "--passphrase-file", e.passFile, key)
	if code != 0 {
		e.t.Fatalf("sesame add: exit %d\n%s", code, stderr)
	}
	return fp
}

func TestVaultPathIsFIFO(t *testing.T) {
	e := newKCEnv(t)
	os.MkdirAll(filepath.Dir(e.vaultPath()), 0o700)
	if err := syscall.Mkfifo(e.vaultPath(), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := keygen(t, "ed25519", "", "k")
	for _, args := range [][]string{
		{"keys", "--passphrase-file", e.passFile},
		{"add", "--passphrase-file", e.passFile, key},
		{"remove", "--passphrase-file", e.passFile, "k"},
	} {
		_, stderr, code := e.runWithin(20*time.Second, "", []string{"SSH_AUTH_SOCK=/nonexistent"}, args...)
		if code == 0 || !strings.Contains(stderr, "is a FIFO") {
			t.Errorf("sesame %s: exit %d\n%s", args[0], code, stderr)
		}
	}
	if fi, err := os.Lstat(e.vaultPath()); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi, err)
	}
}

// An agent whose vault is a FIFO answers its clients, reports why the
// stored keys are missing, and ends on SIGTERM.
func TestAgentVaultIsFIFO(t *testing.T) {
	e := newLockEnv(t)
	state := filepath.Join(e.home, "state")
	os.MkdirAll(state, 0o700)
	if err := syscall.Mkfifo(filepath.Join(state, "vault.age"), 0o600); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(e.dir, "pass")
	os.WriteFile(passFile, []byte("vault passphrase\n"), 0o600)
	e.start([]string{"SESAME_PASSPHRASE_FILE=" + passFile})
	done := make(chan string, 1)
	go func() {
		out, _ := e.sshAdd(nil, "-l")
		done <- out
	}()
	select {
	case out := <-done:
		if !strings.Contains(out, "no identities") {
			t.Errorf("ssh-add -l: %s", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ssh-add -l hung")
	}
	out, stderr, _ := e.sesame("", nil, "status")
	if !strings.Contains(out, "not loaded at start") || !strings.Contains(out, "FIFO") {
		t.Errorf("status does not say why the stored keys are missing:\n%s%s", out, stderr)
	}
	syscall.Kill(e.pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for !agentProcessGone(e.pid) {
		if time.Now().After(deadline) {
			t.Fatal("the agent survived SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A vault path that is the user's symbolic link is followed for reading
// and writing: the link stays, its target gets the update.
func TestVaultPathSymlinkWritesThrough(t *testing.T) {
	e := newKCEnv(t)
	fp1 := e.storeOneKey("one")
	// The user moves the vault to a synced folder and links it back.
	synced := filepath.Join(t.TempDir(), "synced")
	os.Mkdir(synced, 0o700)
	target := filepath.Join(synced, "my.vault")
	if err := os.Rename(e.vaultPath(), target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, e.vaultPath()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(target)
	if err != nil {
		t.Fatalf("the target holds no vault: %v", err)
	}
	fp2 := e.storeOneKey("two")
	if fi, err := os.Lstat(e.vaultPath()); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced on the second write: %v %v", fi, err)
	}
	after, _ := os.ReadFile(target)
	if bytes.Equal(before, after) {
		t.Fatal("the link's target did not get the update")
	}
	out, stderr, code := e.run("", nil, "keys", "--passphrase-file", e.passFile)
	if code != 0 || !strings.Contains(out, fp1) || !strings.Contains(out, fp2) {
		t.Fatalf("keys: exit %d\n%s%s", code, out, stderr)
	}
	// No temporary file in either directory.
	for _, dir := range []string{synced, filepath.Dir(e.vaultPath())} {
		ents, _ := os.ReadDir(dir)
		for _, en := range ents {
			if strings.Contains(en.Name(), ".tmp-") {
				t.Errorf("temporary file left in %s: %s", dir, en.Name())
			}
		}
	}
}

// A dangling link is the user's missing vault, never an empty one.
func TestVaultPathDanglingSymlink(t *testing.T) {
	e := newKCEnv(t)
	target := filepath.Join(t.TempDir(), "unmounted", "my.vault")
	os.MkdirAll(filepath.Dir(e.vaultPath()), 0o700)
	os.Symlink(target, e.vaultPath())
	out, stderr, code := e.runWithin(20*time.Second, "", nil, "keys", "--passphrase-file", e.passFile)
	if code == 0 || !strings.Contains(stderr, "does not exist") || strings.Contains(out+stderr, "no keys stored") {
		t.Errorf("keys: exit %d\n%s%s", code, out, stderr)
	}
	key, _ := keygen(t, "ed25519", "", "k")
	_, stderr, code = e.runWithin(20*time.Second, "", []string{"SSH_AUTH_SOCK=/nonexistent"}, "add", "--passphrase-file", e.passFile, key)
	if code == 0 || !strings.Contains(stderr, "does not exist") {
		t.Errorf("add: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("add created a new vault behind the dangling link")
	}
	if fi, err := os.Lstat(e.vaultPath()); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
}

// /dev/zero at the vault's path: refused, not read until memory runs out.
func TestVaultPathDevZero(t *testing.T) {
	e := newKCEnv(t)
	os.MkdirAll(filepath.Dir(e.vaultPath()), 0o700)
	os.Symlink("/dev/zero", e.vaultPath())
	out, stderr, code := e.runWithin(20*time.Second, "", nil, "keys", "--passphrase-file", e.passFile)
	if code != 1 || !strings.Contains(stderr, "character device") || strings.Contains(stderr, "goroutine") {
		t.Errorf("keys: exit %d\n%s%s", code, out, stderr)
	}
}

// A vault on a read-only file system can still be listed; a change says
// why it cannot be made.
func TestVaultOnReadOnlyFileSystem(t *testing.T) {
	e := newKCEnv(t)
	fp := e.storeOneKey("k")
	state := filepath.Dir(e.vaultPath())
	if os.Getuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("a read-only bind mount needs root")
		}
		t.Skip("a read-only bind mount needs root")
	}
	if out, err := exec.Command("mount", "--bind", state, state).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", state).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(state, "probe"), nil, 0o600); err == nil {
		t.Fatal("the bind mount is not read-only")
	}
	out, stderr, code := e.runWithin(20*time.Second, "", nil, "keys", "--passphrase-file", e.passFile)
	if code != 0 || !strings.Contains(out, fp) {
		t.Errorf("keys on a read-only file system: exit %d\n%s%s", code, out, stderr)
	}
	key, _ := keygen(t, "ed25519", "", "k2")
	_, stderr, code = e.runWithin(20*time.Second, "", []string{"SSH_AUTH_SOCK=/nonexistent"}, "add", "--passphrase-file", e.passFile, key)
	if code == 0 || !strings.Contains(stderr, "read-only") {
		t.Errorf("add on a read-only file system: exit %d\n%s", code, stderr)
	}
}

// A writer killed between writing the temporary vault and renaming it
// leaves a complete copy of the keys; the next write zeroes and removes
// it once it is old enough to be nobody's work.
func TestVaultKilledBeforeRename(t *testing.T) {
	e := newKCEnv(t)
	e.storeOneKey("first")
	strace := testbed.Path(t, "strace")
	old, _ := os.ReadFile(e.vaultPath())
	key, _ := keygen(t, "ed25519", "", "second")
	// SIGKILL at the rename system call: the temporary file is written
	// and closed, the rename never happens.
	args := append([]string{"-f", "-qq", "-o", "/dev/null", "-P", e.vaultPath(), "-e", "trace=rename,renameat,renameat2",
		"-e", "inject=rename,renameat,renameat2:signal=KILL", e.bin},
		"add", "--passphrase-file", e.passFile, key)
	c := exec.Command(strace, args...)
	c.Env = append(append([]string(nil), e.env...), "SSH_AUTH_SOCK=/nonexistent")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Run()
	state := filepath.Dir(e.vaultPath())
	var temps []string
	ents, _ := os.ReadDir(state)
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), ".vault.age.tmp-") {
			temps = append(temps, filepath.Join(state, en.Name()))
		}
	}
	if len(temps) != 1 {
		t.Fatalf("the kill did not leave one temporary vault: %v", ents)
	}
	if now, _ := os.ReadFile(e.vaultPath()); !bytes.Equal(now, old) {
		t.Fatal("the vault changed although the rename never happened")
	}
	// Older than a writer at work can be.
	past := time.Now().Add(-time.Minute)
	os.Chtimes(temps[0], past, past)
	e.storeOneKey("third")
	if _, err := os.Lstat(temps[0]); err == nil {
		t.Fatal("the stale temporary vault is still there after the next write")
	}
}

// A damaged header is not a wrong passphrase; an intact vault with a
// wrong passphrase is.
func TestVaultDamagedHeaderNotBlamedOnPassphrase(t *testing.T) {
	e := newKCEnv(t)
	e.storeOneKey("k")
	data, _ := os.ReadFile(e.vaultPath())
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not the passphrase\n"), 0o600)
	_, stderr, code := e.run("", nil, "keys", "--passphrase-file", wrong)
	if code == 0 || !strings.Contains(stderr, "wrong vault passphrase") {
		t.Fatalf("a wrong passphrase on an intact vault: exit %d\n%s", code, stderr)
	}
	// Change one character of the scrypt stanza's salt to another
	// base64 character: still a well-formed header.
	lines := strings.SplitN(string(data), "\n", 3)
	f := strings.Fields(lines[1]) // -> scrypt SALT N
	salt := []byte(f[2])
	if salt[3] == 'A' {
		salt[3] = 'B'
	} else {
		salt[3] = 'A'
	}
	f[2] = string(salt)
	lines[1] = strings.Join(f, " ")
	os.WriteFile(e.vaultPath(), []byte(strings.Join(lines, "\n")), 0o600)
	_, stderr, code = e.run("", nil, "keys", "--passphrase-file", e.passFile)
	if code == 0 || strings.Contains(stderr, "wrong vault passphrase") || !strings.Contains(stderr, "damaged") {
		t.Fatalf("a damaged header with the right passphrase: exit %d\n%s", code, stderr)
	}
}

// An agent started with a wrong SESAME_PASSPHRASE_FILE says why its
// stored keys are missing, and `sesame unlock` with the right passphrase
// loads them into the running agent.
func TestAgentWrongPassphraseFileAtStart(t *testing.T) {
	e := newLockEnv(t)
	k := newKCEnvIn(t, e.home)
	fp := k.storeOneKey("stored")
	wrong := filepath.Join(e.dir, "wrong")
	os.WriteFile(wrong, []byte("not the passphrase\n"), 0o600)
	e.start([]string{"SESAME_PASSPHRASE_FILE=" + wrong})
	out, _, _ := e.sesame("", nil, "status")
	if !strings.Contains(out, "not loaded at start") || !strings.Contains(out, "wrong vault passphrase") {
		t.Errorf("status:\n%s", out)
	}
	_, stderr, code := e.sesame("vault passphrase\n", nil, "unlock", "--passphrase-stdin")
	if code != 0 || !strings.Contains(stderr, "Stored keys loaded: 1 keys") {
		t.Fatalf("unlock: exit %d\n%s", code, stderr)
	}
	if l, _ := e.sshAdd(nil, "-l"); !strings.Contains(l, fp) {
		t.Fatalf("ssh-add -l after unlock:\n%s", l)
	}
}

// The agent dies while it checks the passphrase of `sesame unlock`: the
// client says the agent went away, not that the passphrase was wrong.
func TestUnlockAgentDiesMeanwhile(t *testing.T) {
	e := newLockEnv(t)
	k := newKCEnvIn(t, e.home)
	k.storeOneKey("stored")
	e.start(nil) // no passphrase: the stored keys wait for `sesame unlock`
	c := exec.Command(e.bin, "unlock", "--passphrase-stdin")
	c.Env = append(append([]string(nil), e.env...), "SSH_AUTH_SOCK="+e.sock)
	c.Stdin = strings.NewReader("vault passphrase\n")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	start := cpuTicks(t, e.pid)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// The vault's key derivation costs the agent a good part of a
	// second of CPU: kill it in the middle.
	agentWaitUntil(t, "the agent to derive the vault key", func() bool { return cpuTicks(t, e.pid)-start >= 5 })
	syscall.Kill(e.pid, syscall.SIGKILL)
	c.Wait()
	if c.ProcessState.ExitCode() == 0 || !strings.Contains(stderr.String(), "went away") || strings.Contains(stderr.String(), "wrong passphrase") {
		t.Fatalf("unlock while the agent died: exit %d\n%s", c.ProcessState.ExitCode(), stderr.String())
	}
}

// cpuTicks is the user+system CPU time of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 1 << 30 // gone: nothing more to wait for
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return u + st
}

// newKCEnvIn is a kcEnv whose SESAME_HOME is home (an agent's).
func newKCEnvIn(t *testing.T, home string) *kcEnv {
	k := newKCEnv(t)
	k.home = home
	for i, kv := range k.env {
		if strings.HasPrefix(kv, "SESAME_HOME=") {
			k.env[i] = "SESAME_HOME=" + home
		}
	}
	k.env = append(k.env, "SESAME_BACKEND=vault")
	return k
}
