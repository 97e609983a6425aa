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
// on a private socket, and -k stops it and removes the socket.
func TestAgentBackgroundAndKill(t *testing.T) {
	r := newAgentTestRun(t)
	out, err := r.cmd(nil, "agent", "-s").Output()
	if err != nil {
		t.Fatalf("sesame agent -s: %v", err)
	}
	vars := agentParseShell(string(out))
	sock, pidStr := vars["SSH_AUTH_SOCK"], vars["SSH_AGENT_PID"]
	if sock != filepath.Join(r.home, "run", "agent.sock") || pidStr == "" || vars["SESAME_AGENT_PID"] != pidStr {
		t.Fatalf("shell lines:\n%s", out)
	}
	if !strings.Contains(string(out), "echo Agent pid "+pidStr+";") {
		t.Errorf("no echo line:\n%s", out)
	}
	pid, _ := strconv.Atoi(pidStr)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

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

	// Another `sesame agent -s` (a new shell) joins the running agent.
	again, err := r.cmd(nil, "agent", "-s").Output()
	if err != nil || agentParseShell(string(again))["SSH_AGENT_PID"] != pidStr {
		t.Errorf("second sesame agent -s: %v\n%s", err, again)
	}

	// A second agent on the same socket refuses, with a hint.
	var stderr bytes.Buffer
	c := r.cmd(nil, "agent", "-D")
	c.Stderr = &stderr
	if err := c.Run(); err == nil || !strings.Contains(stderr.String(), "already listening") || !strings.Contains(stderr.String(), "hint:") {
		t.Errorf("second agent: %v\n%s", err, stderr.String())
	}

	out, err = r.cmd([]string{"SESAME_AGENT_PID=" + pidStr}, "agent", "-k").Output()
	if err != nil {
		t.Fatalf("agent -k: %v", err)
	}
	want := "unset SSH_AUTH_SOCK;\nunset SSH_AGENT_PID;\nunset SESAME_AGENT_PID;\necho Agent pid " + pidStr + " killed;\n"
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
	out, err = r.cmd([]string{"SSH_AGENT_PID=" + m[1], "SESAME_AGENT_PID="}, "agent", "-k", "-c").Output()
	if err != nil || !strings.Contains(string(out), "unsetenv SSH_AUTH_SOCK;") {
		t.Fatalf("agent -k -c: %v\n%s", err, out)
	}
	pid, _ := strconv.Atoi(m[1])
	agentWaitUntil(t, "the agent to exit", func() bool { return agentProcessGone(pid) })

	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AGENT_PID=") && !strings.HasPrefix(kv, "SESAME_AGENT_PID=") {
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
	c := r.cmd(nil, "agent", "-D", "-t", "2", "-a", sock)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	key := filepath.Join(r.home, "k")
	if out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	agentWaitUntil(t, "ssh-add", func() bool { _, err := agentSSHAdd(t, sock, key); return err == nil })
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
