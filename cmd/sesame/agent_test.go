package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

type agentTestRun struct {
	t    *testing.T
	bin  string
	home string
	env  []string
}

func newAgentTestRun(t *testing.T) *agentTestRun {
	home := t.TempDir()
	return &agentTestRun{t: t, bin: sesameBin(t), home: home,
		env: append(os.Environ(), "SESAME_HOME="+home, "SHELL=/bin/sh")}
}

func (r *agentTestRun) cmd(extraEnv []string, args ...string) *exec.Cmd {
	c := exec.Command(r.bin, args...)
	c.Env = append(append([]string(nil), r.env...), extraEnv...)
	return c
}

var agentShellVar = regexp.MustCompile(`(?m)^([A-Z_]+)=([^;]*); export [A-Z_]+;$`)

func agentParseShell(out string) map[string]string {
	m := map[string]string{}
	for _, g := range agentShellVar.FindAllStringSubmatch(out, -1) {
		m[g[1]] = g[2]
	}
	return m
}

// foregroundWithKey starts `sesame agent -D -a sock ARGS…` and adds a new
// ed25519 key to it with ssh-add.
func (r *agentTestRun) foregroundWithKey(sock string, args ...string) *exec.Cmd {
	t := r.t
	t.Helper()
	c := r.cmd(nil, append([]string{"agent", "-D", "-a", sock}, args...)...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	key := filepath.Join(r.home, "k")
	if out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	agentWaitUntil(t, "ssh-add", func() bool { _, err := agentSSHAdd(t, sock, key); return err == nil })
	return c
}

func agentProcessGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	// A zombie (its parent has exited and nobody reaped it yet) is gone too.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || strings.Contains(string(b), ") Z ")
}

func agentWaitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func agentSSHAdd(t *testing.T, sock string, args ...string) (string, error) {
	c := exec.Command(testbed.Path(t, "ssh-add"), args...)
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := c.CombinedOutput()
	return string(out), err
}

// The agent goes to the background, prints the shell lines, serves ssh-add
// on a fresh private socket, and -k stops the agent named by SSH_AGENT_PID
// and removes its socket. Each -s starts a new agent, as ssh-agent does: a
// script's eval "$(ssh-agent -s)" … ssh-agent -k must not touch the
// user's other agent.
func TestAgentBackgroundAndKill(t *testing.T) {
	r := newAgentTestRun(t)
	start := func() (sock string, pid int) {
		t.Helper()
		out, err := r.cmd(nil, "agent", "-s").Output()
		if err != nil {
			t.Fatalf("sesame agent -s: %v", err)
		}
		vars := agentParseShell(string(out))
		sock, pidStr := vars["SSH_AUTH_SOCK"], vars["SSH_AGENT_PID"]
		if filepath.Dir(sock) != filepath.Join(r.home, "run") || !strings.HasPrefix(filepath.Base(sock), "agent.") || pidStr == "" {
			t.Fatalf("shell lines:\n%s", out)
		}
		if !strings.Contains(string(out), "echo Agent pid "+pidStr+";") || strings.Contains(string(out), "SESAME_AGENT_PID") {
			t.Errorf("shell lines:\n%s", out)
		}
		pid, _ = strconv.Atoi(pidStr)
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		return sock, pid
	}
	sock, pid := start()
	pidStr := strconv.Itoa(pid)

	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v mode %v", err, fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v", di.Mode().Perm())
	}
	limits, _ := os.ReadFile("/proc/" + pidStr + "/limits")
	if !regexp.MustCompile(`Max core file size\s+0\s+0`).Match(limits) {
		t.Errorf("core files not disabled:\n%s", limits)
	}
	if out, err := agentSSHAdd(t, sock, "-l"); !strings.Contains(out, "no identities") {
		t.Errorf("ssh-add -l: %v %s", err, out)
	}

	// Another `sesame agent -s` starts an agent of its own.
	sock2, pid2 := start()
	if sock2 == sock || pid2 == pid {
		t.Fatalf("second -s joined the first agent: %s %d", sock2, pid2)
	}

	// A second agent on a socket in use refuses, with a hint.
	var stderr bytes.Buffer
	c := r.cmd(nil, "agent", "-D", "-a", sock)
	c.Stderr = &stderr
	if err := c.Run(); err == nil || !strings.Contains(stderr.String(), "already listening") || !strings.Contains(stderr.String(), "hint:") {
		t.Errorf("second agent: %v\n%s", err, stderr.String())
	}

	out, err := r.cmd([]string{"SSH_AGENT_PID=" + pidStr}, "agent", "-k").Output()
	if err != nil {
		t.Fatalf("agent -k: %v", err)
	}
	want := "unset SSH_AUTH_SOCK;\nunset SSH_AGENT_PID;\necho Agent pid " + pidStr + " killed;\n"
	if string(out) != want {
		t.Errorf("agent -k printed:\n%s\nwant:\n%s", out, want)
	}
	agentWaitUntil(t, "the agent to exit", func() bool { return agentProcessGone(pid) })
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := os.Lstat(sock + ".pid"); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	// The other agent still serves.
	if agentProcessGone(pid2) {
		t.Fatal("-k stopped the other agent too")
	}
	if out, err := agentSSHAdd(t, sock2, "-l"); !strings.Contains(out, "no identities") {
		t.Errorf("ssh-add -l on the other agent: %v %s", err, out)
	}
}

// --shared is the one agent per user at the default socket: the first call
// starts it, later ones join it (and say so), and a call with other flags
// is refused rather than silently given an agent without them.
func TestAgentShared(t *testing.T) {
	r := newAgentTestRun(t)
	var stderr bytes.Buffer
	c := r.cmd(nil, "agent", "--shared", "-s", "-t", "1h")
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("agent --shared -s: %v\n%s", err, stderr.String())
	}
	vars := agentParseShell(string(out))
	pid, _ := strconv.Atoi(vars["SSH_AGENT_PID"])
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if vars["SSH_AUTH_SOCK"] != filepath.Join(r.home, "run", "agent.sock") || pid == 0 {
		t.Fatalf("shell lines:\n%s", out)
	}

	stderr.Reset()
	c = r.cmd(nil, "agent", "--shared", "-s", "-t", "3600")
	c.Stderr = &stderr
	again, err := c.Output()
	if err != nil || agentParseShell(string(again))["SSH_AGENT_PID"] != strconv.Itoa(pid) {
		t.Errorf("joining: %v\n%s%s", err, again, stderr.String())
	}
	if !strings.Contains(stderr.String(), "joining the shared agent (pid "+strconv.Itoa(pid)+")") {
		t.Errorf("joining said: %q", stderr.String())
	}

	stderr.Reset()
	c = r.cmd(nil, "agent", "--shared", "-s")
	c.Stderr = &stderr
	if out, err := c.Output(); err == nil || len(out) != 0 || !strings.Contains(stderr.String(), "runs with --lifetime=1h0m0s") {
		t.Errorf("joining with other flags: %v\n%s%s", err, out, stderr.String())
	}
}

// COMMAND runs with the agent's variables; the agent stops when it exits.
func TestAgentCommand(t *testing.T) {
	r := newAgentTestRun(t)
	pidFile := filepath.Join(r.home, "pid")
	// An agent already in the environment is replaced, not shadowing.
	c := r.cmd([]string{"SSH_AUTH_SOCK=/nonexistent", "SSH_AGENT_PID=1"}, "agent", "sh", "-c",
		`echo "$SSH_AGENT_PID" > "$0"; ssh-add -l; test -S "$SSH_AUTH_SOCK"`, pidFile)
	out, err := c.CombinedOutput()
	// ssh-add -l exits 1 on an empty agent; test -S decides the status.
	if err != nil || !strings.Contains(string(out), "no identities") {
		t.Fatalf("sesame agent sh -c: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatalf("no SSH_AGENT_PID in the command:\n%s", out)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	agentWaitUntil(t, "the agent to stop with its command", func() bool { return agentProcessGone(pid) })
}

// SIGUSR1 removes every key, as with ssh-agent.
func TestAgentSIGUSR1DropsKeys(t *testing.T) {
	r := newAgentTestRun(t)
	sock := filepath.Join(r.home, "u.sock")
	c := r.foregroundWithKey(sock)
	c.Process.Signal(syscall.SIGUSR1)
	agentWaitUntil(t, "the keys to go", func() bool {
		out, _ := agentSSHAdd(t, sock, "-l")
		return strings.Contains(out, "no identities")
	})
}

// ssh-agent's flags are accepted; bad ones get ssh-agent's errors, and a
// wrong -a path one clear line with nothing changed on disk.
func TestAgentFlagsAndBadInput(t *testing.T) {
	r := newAgentTestRun(t)
	sock := filepath.Join(r.home, "f.sock")
	c := r.cmd(nil, "agent", "-D", "-P", "/usr/lib/*", "-O", "no-restrict-websafe", "-O", "allow-remote-pkcs11", "-E", "md5", "-a", sock)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	agentWaitUntil(t, "the agent", func() bool {
		out, _ := agentSSHAdd(t, sock, "-l")
		return strings.Contains(out, "no identities")
	})

	file := filepath.Join(r.home, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	other := filepath.Join(r.home, "other")
	os.Mkdir(other, 0o755)
	if os.Getuid() == 0 {
		os.Chown(other, 65534, 65534)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-O", "bogus"}, `unknown -O option "bogus"`},
		{[]string{"-E", "sha3"}, `invalid hash algorithm "sha3"`},
		{[]string{"-P", "a", "-P", "b"}, "-P option already specified"},
		{[]string{"-s", "-c"}, "cannot be combined"},
		{[]string{"-s", "true"}, "COMMAND cannot be combined"},
		{[]string{"-a", filepath.Join(r.home, "missing", "s.sock")}, "does not exist"},
		{[]string{"-a", file}, "exists and is not a socket"},
	} {
		b, err := r.cmd([]string{"SSH_AGENT_PID="}, append([]string{"agent"}, tc.args...)...).CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err == nil || !strings.HasPrefix(lines[0], "sesame: ") || !strings.Contains(lines[0], tc.want) || len(lines) > 2 {
			t.Errorf("agent %q: %v\n%s", tc.args, err, b)
		}
	}
	if _, err := os.Stat(filepath.Join(r.home, "missing")); !os.IsNotExist(err) {
		t.Errorf("-a created the missing directory: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Errorf("-a replaced a file: %q", b)
	}
	if os.Getuid() == 0 {
		b, err := r.cmd(nil, "agent", "-D", "-a", filepath.Join(other, "s.sock")).CombinedOutput()
		if err == nil || !strings.Contains(string(b), "belongs to uid 65534") {
			t.Errorf("-a in another user's directory: %v\n%s", err, b)
		}
		if fi, _ := os.Stat(other); fi.Mode().Perm() != 0o755 {
			t.Errorf("-a changed the directory's mode to %v", fi.Mode().Perm())
		}
	}
}

// -a in a system directory binds there and leaves the directory alone:
// ssh-agent -a /tmp/x.sock must not make /tmp private.
func TestAgentSocketInSystemDir(t *testing.T) {
	r := newAgentTestRun(t)
	dir := t.TempDir()
	os.Chmod(dir, os.ModeSticky|0o777)
	sock := filepath.Join(dir, "x.sock")
	out, err := r.cmd(nil, "agent", "-s", "-a", sock).Output()
	if err != nil {
		t.Fatalf("agent -s -a: %v", err)
	}
	pid, _ := strconv.Atoi(agentParseShell(string(out))["SSH_AGENT_PID"])
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if agentParseShell(string(out))["SSH_AUTH_SOCK"] != sock {
		t.Errorf("shell lines:\n%s", out)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm()|fi.Mode()&os.ModeSticky != 0o777|os.ModeSticky {
		t.Errorf("directory mode changed to %v", fi.Mode())
	}
}

func TestAgentCshAndKillWithoutPid(t *testing.T) {
	r := newAgentTestRun(t)
	out, err := r.cmd(nil, "agent", "-c", "-a", filepath.Join(r.home, "c.sock")).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^setenv SSH_AGENT_PID (\d+);$`).FindStringSubmatch(string(out))
	if m == nil || !strings.Contains(string(out), "setenv SSH_AUTH_SOCK "+filepath.Join(r.home, "c.sock")+";\n") {
		t.Fatalf("csh lines:\n%s", out)
	}
	out, err = r.cmd([]string{"SSH_AGENT_PID=" + m[1]}, "agent", "-k", "-c").Output()
	if err != nil || !strings.Contains(string(out), "unsetenv SSH_AUTH_SOCK;") {
		t.Fatalf("agent -k -c: %v\n%s", err, out)
	}
	pid, _ := strconv.Atoi(m[1])
	agentWaitUntil(t, "the agent to exit", func() bool { return agentProcessGone(pid) })

	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AGENT_PID=") {
			env = append(env, kv)
		}
	}
	c := exec.Command(r.bin, "agent", "-k")
	c.Env = env
	b, err := c.CombinedOutput()
	if err == nil || !strings.HasPrefix(string(b), "sesame: ") {
		t.Errorf("agent -k without a pid: %v\n%s", err, b)
	}
}

// -D stays in the foreground; each of SIGTERM, SIGINT and SIGHUP stops it
// cleanly and removes the socket.
func TestAgentForegroundSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			r := newAgentTestRun(t)
			sock := filepath.Join(r.home, "fg.sock")
			c := r.cmd(nil, "agent", "-D", "-a", sock)
			stdout, _ := c.StdoutPipe()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if line != "SSH_AUTH_SOCK="+sock+"; export SSH_AUTH_SOCK;\n" {
				t.Errorf("first line %q", line)
			}
			if out, err := agentSSHAdd(t, sock, "-l"); err == nil || !strings.Contains(out, "no identities") {
				t.Errorf("ssh-add -l: %v %s", err, out)
			}
			c.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("exit after %v: %v", sig, err)
				}
			case <-time.After(30 * time.Second):
				c.Process.Kill()
				t.Fatalf("agent ignored %v", sig)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket left behind after %v: %v", sig, err)
			}
		})
	}
}

// -t sets the default lifetime of keys added without one.
func TestAgentDefaultLifetime(t *testing.T) {
	r := newAgentTestRun(t)
	sock := filepath.Join(r.home, "t.sock")
	r.foregroundWithKey(sock, "-t", "2")
	agentWaitUntil(t, "the key to expire", func() bool {
		out, _ := agentSSHAdd(t, sock, "-l")
		return strings.Contains(out, "no identities")
	})
}

func TestAgentBadLifetime(t *testing.T) {
	r := newAgentTestRun(t)
	b, err := r.cmd(nil, "agent", "-D", "-t", "1x").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "sesame: invalid lifetime") {
		t.Errorf("bad -t: %v\n%s", err, b)
	}
}

// With -d the agent logs each session-bind; a real ssh login shows the
// sshd's host key there.
func TestAgentDebugLogShowsSessionBind(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	r := newAgentTestRun(t)
	key := filepath.Join(r.home, "k")
	if out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	sshd.Authorize(string(pub))
	sock := filepath.Join(r.home, "d.sock")
	var logs bytes.Buffer
	var mu sync.Mutex
	c := r.cmd(nil, "agent", "-d", "-a", sock)
	c.Stderr = agentWriterFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	agentWaitUntil(t, "ssh-add", func() bool { _, err := agentSSHAdd(t, sock, key); return err == nil })

	ssh1 := exec.Command(testbed.Path(t, "ssh"), append(sshd.SSHArgs("IdentityFile=none", "IdentityAgent="+sock), "true")...)
	if out, err := ssh1.CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	hostPub, _ := os.ReadFile(sshd.HostKey + ".pub")
	hk, _, _, _, _ := ssh.ParseAuthorizedKey(hostPub)
	want := "hostkey=" + ssh.FingerprintSHA256(hk)
	agentWaitUntil(t, "the bind in the log", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "session-bind") && strings.Contains(logs.String(), want)
	})
}

type agentWriterFunc func([]byte) (int, error)

func (f agentWriterFunc) Write(p []byte) (int, error) { return f(p) }

// Under systemd socket activation the agent serves the socket it is
// given (fd 3) instead of refusing because something answers on the path.
func TestAgentSocketActivation(t *testing.T) {
	r := newAgentTestRun(t)
	sock := filepath.Join(r.home, "activated.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the socket file stays: f still listens
	// sh's $$ is the pid that exec hands on to sesame, as systemd sets it.
	c := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" agent -D -a "$1"`, r.bin, sock)
	c.Env = r.env
	c.ExtraFiles = []*os.File{f}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	agentWaitUntil(t, "the activated agent to answer", func() bool {
		out, _ := agentSSHAdd(t, sock, "-l")
		return strings.Contains(out, "no identities")
	})
}

// A key added with ssh-add -h shows its destinations in sesame pins and
// sesame doctor: they apply besides the pins.
func TestAgentDestinationsShown(t *testing.T) {
	r := newAgentTestRun(t)
	sock := filepath.Join(r.home, "h.sock")
	c := r.cmd(nil, "agent", "-D", "-a", sock)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	keygen := testbed.Path(t, "ssh-keygen")
	key, host := filepath.Join(r.home, "k"), filepath.Join(r.home, "host")
	for _, f := range []string{key, host} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "restricted", "-f", f).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	hostPub, _ := os.ReadFile(host + ".pub")
	kh := filepath.Join(r.home, "known_hosts")
	os.WriteFile(kh, append([]byte("login.example.org "), hostPub...), 0o600)
	agentWaitUntil(t, "ssh-add -h", func() bool {
		_, err := agentSSHAdd(t, sock, "-h", "login.example.org", "-h", "login.example.org>alice@login.example.org", "-H", kh, key)
		return err == nil
	})
	out, err := r.cmd([]string{"SSH_AUTH_SOCK=" + sock}, "pins").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restricted") ||
		!strings.Contains(string(out), "only login.example.org, login.example.org>alice@login.example.org") {
		t.Errorf("sesame pins: %v\n%s", err, out)
	}
	out, _ = r.cmd([]string{"SSH_AUTH_SOCK=" + sock}, "doctor").CombinedOutput()
	if !strings.Contains(string(out), "only for login.example.org, login.example.org>alice@login.example.org (ssh-add -h)") {
		t.Errorf("sesame doctor:\n%s", out)
	}
}
