package main

// End-to-end tests of per-host pinning through the real `sesame agent`
// binary, real sshd servers (internal/testbed) and the real ssh client:
// the four scenarios of the pinning issue, plus live pin changes, a bad
// pins file, and a changed host key.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// e2eWorld is one user's machine: a home directory (with ~/.ssh/known_hosts
// that both ssh and the agent read), sesame's state, keys and servers.
type e2eWorld struct {
	t          *testing.T
	bin        string
	home       string
	knownHosts string
	keys       map[string]string // name → private key file
	env        []string
}

func newE2EWorld(t *testing.T) *e2eWorld {
	t.Helper()
	testbed.NeedRoot(t)
	testbed.Need(t, "ssh", "ssh-add", "ssh-keygen", "ssh-agent", "sshd")
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	w := &e2eWorld{t: t, bin: sesameBin(t), home: home,
		knownHosts: filepath.Join(home, ".ssh", "known_hosts"), keys: map[string]string{}}
	w.env = append(os.Environ(), "HOME="+home, "SESAME_HOME="+filepath.Join(home, "sesame"),
		"SSH_AUTH_SOCK=", "SSH_AGENT_PID=", "SHELL=/bin/sh")
	return w
}

// server starts an sshd and trusts its host key in ~/.ssh/known_hosts.
func (w *e2eWorld) server(maxAuthTries int) *testbed.SSHD {
	w.t.Helper()
	return w.serverWith(testbed.SSHDOptions{MaxAuthTries: maxAuthTries})
}

// serverWith is server with any options.
func (w *e2eWorld) serverWith(opt testbed.SSHDOptions) *testbed.SSHD {
	w.t.Helper()
	s := testbed.NewSSHD(w.t, opt)
	kh, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		w.t.Fatal(err)
	}
	f, err := os.OpenFile(w.knownHosts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	f.Write(kh)
	f.Close()
	return s
}

// key makes an ed25519 key pair named name (its comment too).
func (w *e2eWorld) key(name string) string {
	w.t.Helper()
	f := filepath.Join(w.home, ".ssh", name)
	w.mustRun(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", f)
	w.keys[name] = f
	return f
}

func (w *e2eWorld) authorize(s *testbed.SSHD, name string) {
	w.t.Helper()
	pub, err := os.ReadFile(w.keys[name] + ".pub")
	if err != nil {
		w.t.Fatal(err)
	}
	s.Authorize(string(pub))
}

func (w *e2eWorld) fingerprint(name string) string {
	w.t.Helper()
	pub, err := os.ReadFile(w.keys[name] + ".pub")
	if err != nil {
		w.t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		w.t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

// run runs a program (sesame itself for "sesame") with the world's
// environment plus extra, and returns its combined output.
func (w *e2eWorld) run(extra []string, name string, args ...string) (string, error) {
	w.t.Helper()
	path := w.bin
	if name != "sesame" {
		path = testbed.Path(w.t, name)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(append([]string(nil), w.env...), extra...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (w *e2eWorld) mustRun(extra []string, name string, args ...string) string {
	w.t.Helper()
	out, err := w.run(extra, name, args...)
	if err != nil {
		w.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// e2eAgent is a running agent process.
type e2eAgent struct {
	sock   string
	cmd    *exec.Cmd
	stderr *testbed.SyncBuffer
	env    []string // SSH_AUTH_SOCK=sock
}

// sesameAgent starts `sesame agent -D` with args and loads the named keys.
func (w *e2eWorld) sesameAgent(keys []string, args ...string) *e2eAgent {
	w.t.Helper()
	sock := filepath.Join(w.t.TempDir(), "sesame.sock")
	a := &e2eAgent{sock: sock, stderr: &testbed.SyncBuffer{}, env: []string{"SSH_AUTH_SOCK=" + sock}}
	a.cmd = exec.Command(w.bin, append([]string{"agent", "-D", "-a", sock}, args...)...)
	a.cmd.Env = w.env
	a.cmd.Stderr = a.stderr
	w.startAgent(a, keys)
	return a
}

// opensshAgent starts OpenSSH's ssh-agent with the named keys.
func (w *e2eWorld) opensshAgent(keys []string) *e2eAgent {
	w.t.Helper()
	sock := filepath.Join(w.t.TempDir(), "openssh.sock")
	a := &e2eAgent{sock: sock, stderr: &testbed.SyncBuffer{}, env: []string{"SSH_AUTH_SOCK=" + sock}}
	a.cmd = exec.Command(testbed.Path(w.t, "ssh-agent"), "-D", "-a", sock)
	a.cmd.Env = w.env
	a.cmd.Stderr = a.stderr
	w.startAgent(a, keys)
	return a
}

func (w *e2eWorld) startAgent(a *e2eAgent, keys []string) {
	w.t.Helper()
	if err := a.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { a.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("unix", a.sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("agent did not listen on %s:\n%s", a.sock, a.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, k := range keys {
		w.mustRun(a.env, "ssh-add", "-q", w.keys[k])
	}
}

// stop ends the agent with SIGTERM, as a logout would, and waits.
func (a *e2eAgent) stop() {
	if a.cmd.Process == nil || a.cmd.ProcessState != nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
}

// sshArgs reaches s as "localhost" on its port with only ~/.ssh/known_hosts
// and no key files, so every key comes from the agent.
func (w *e2eWorld) sshArgs(s *testbed.SSHD, opts ...string) []string {
	return w.sshArgsKnown(s, w.knownHosts, opts...)
}

// sshArgsKnown is sshArgs with another known_hosts file for the client
// (ssh takes the first value of an option, so it cannot be appended).
func (w *e2eWorld) sshArgsKnown(s *testbed.SSHD, knownHosts string, opts ...string) []string {
	args := []string{"-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10",
		"-o", "IdentityFile=/dev/null",
		"-o", "GSSAPIAuthentication=no",
		"-p", fmt.Sprint(s.Port), "-l", s.User,
	}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	return append(args, "localhost")
}

// ssh logs in to s through agent a and runs cmd.
func (w *e2eWorld) ssh(a *e2eAgent, s *testbed.SSHD, opts []string, cmd ...string) (string, error) {
	w.t.Helper()
	return w.run(a.env, "ssh", append(w.sshArgs(s, opts...), cmd...)...)
}

// login must succeed; it returns the number of keys s rejected meanwhile.
func (w *e2eWorld) login(a *e2eAgent, s *testbed.SSHD) int {
	w.t.Helper()
	before := s.FailedPublickey()
	out, err := w.ssh(a, s, nil, "echo", "logged-in")
	if err != nil || !strings.Contains(out, "logged-in") {
		log, _ := os.ReadFile(s.Log)
		w.t.Fatalf("login to port %d: %v\n%s\nagent:\n%s\nsshd log:\n%s", s.Port, err, out, a.stderr, log)
	}
	return s.FailedPublickey() - before
}

func hostKeyFP(t *testing.T, s *testbed.SSHD) string {
	t.Helper()
	b, err := os.ReadFile(s.HostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

func hostPort(s *testbed.SSHD) string { return fmt.Sprintf("[localhost]:%d", s.Port) }

// Issue scenario 1: MaxAuthTries 3, six keys, only the sixth authorized.
// OpenSSH's agent gets the user thrown out; sesame with `sesame pin`
// (issued while the agent runs) logs in with no rejected key.
func TestE2EPinnedLoginUnderMaxAuthTries(t *testing.T) {
	w := newE2EWorld(t)
	s := w.server(3)
	names := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	for _, n := range names {
		w.key(n)
	}
	w.authorize(s, "k6")

	oa := w.opensshAgent(names)
	out, err := w.ssh(oa, s, nil, "true")
	if err == nil || !strings.Contains(out, "Too many authentication failures") {
		t.Fatalf("ssh-agent: expected a lockout, got %v\n%s", err, out)
	}
	oa.stop()

	a := w.sesameAgent(names)
	out = w.mustRun(a.env, "sesame", "pin", "localhost", w.keys["k6"]+".pub")
	if !strings.Contains(out, "pinned "+w.fingerprint("k6")+" (k6) to localhost") {
		t.Fatalf("sesame pin: %s", out)
	}
	if n := w.login(a, s); n != 0 {
		t.Errorf("%d Failed publickey lines with a declared pin, want 0", n)
	}
	// Unbound clients keep seeing every key.
	if out := w.mustRun(a.env, "ssh-add", "-l"); strings.Count(out, "ED25519") != 6 {
		t.Errorf("ssh-add -l:\n%s", out)
	}
}

// Issue scenario 2: the first login to a new host tries at most
// max_offer keys and succeeds with the right one among them; the second
// offers only the learned key. The learned pin survives the agent.
func TestE2ELearning(t *testing.T) {
	w := newE2EWorld(t)
	s := w.server(3)
	for _, n := range []string{"k1", "k2", "k3", "k4"} {
		w.key(n)
	}
	w.authorize(s, "k2")
	a := w.sesameAgent([]string{"k1", "k2", "k3", "k4"}, "--max-offer", "2")
	if n := w.login(a, s); n > 1 {
		t.Errorf("first login: %d Failed publickey, want at most 1 (max-offer 2)", n)
	}
	if n := w.login(a, s); n != 0 {
		t.Errorf("second login: %d Failed publickey, want 0 (learned)", n)
	}
	a.stop()
	out := w.mustRun(nil, "sesame", "pins")
	want := fmt.Sprintf("%s@%s", s.User, hostPort(s))
	if !strings.Contains(out, want) || !strings.Contains(out, w.fingerprint("k2")) || !strings.Contains(out, "2×") {
		t.Errorf("sesame pins after the agent stopped, want %s with k2 used twice:\n%s", want, out)
	}
	// A new agent remembers: the key that worked is offered alone.
	a = w.sesameAgent([]string{"k1", "k2", "k3", "k4"})
	if n := w.login(a, s); n != 0 {
		t.Errorf("login after restart: %d Failed publickey, want 0", n)
	}

	// With max-offer 2, a server that accepts only the fourth key is
	// never offered it: two failures, not four.
	s2 := w.server(6)
	w.authorize(s2, "k4")
	before := s2.FailedPublickey()
	if _, err := w.ssh(a, s2, nil, "true"); err == nil {
		t.Error("login with the fourth key succeeded under max-offer 2")
	}
	if n := s2.FailedPublickey() - before; n > 2 {
		t.Errorf("%d keys offered to an unpinned server, max-offer is 2", n)
	}
}

// agentFrame is one agent-protocol message from client to agent.
type agentFrame []byte

// recordingProxy sits between ssh and the agent and keeps every
// session-bind message, so that a test can replay a genuine bind.
type recordingProxy struct {
	sock  string
	mu    sync.Mutex
	binds []agentFrame   // every session-bind, in order
	chain [][]agentFrame // the session-binds of each connection
}

func newRecordingProxy(t *testing.T, agentSock string) *recordingProxy {
	p := &recordingProxy{sock: filepath.Join(t.TempDir(), "proxy.sock")}
	l, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", agentSock)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.chain = append(p.chain, nil)
			idx := len(p.chain) - 1
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				go func() { io.Copy(c, up); c.Close() }()
				for {
					f, err := readFrame(c)
					if err != nil {
						break
					}
					if isSessionBind(f) {
						p.mu.Lock()
						p.binds = append(p.binds, f)
						p.chain[idx] = append(p.chain[idx], f)
						p.mu.Unlock()
					}
					if writeFrame(up, f) != nil {
						break
					}
				}
				up.Close()
			}()
		}
	}()
	return p
}

func (p *recordingProxy) lastBind(t *testing.T) agentFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.binds) == 0 {
		t.Fatal("ssh sent no session-bind")
	}
	return p.binds[len(p.binds)-1]
}

// longestChain returns the binds of the connection that had the most.
func (p *recordingProxy) longestChain() []agentFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best []agentFrame
	for _, c := range p.chain {
		if len(c) > len(best) {
			best = c
		}
	}
	return best
}

func readFrame(r io.Reader) (agentFrame, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(n[:])
	if l == 0 || l > 256<<10 {
		return nil, fmt.Errorf("frame of %d bytes", l)
	}
	b := make([]byte, l)
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeFrame(w io.Writer, f agentFrame) error {
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
	if err == nil {
		_, err = w.Write(f)
	}
	return err
}

// isSessionBind: SSH_AGENTC_EXTENSION (27) named session-bind@openssh.com.
func isSessionBind(f agentFrame) bool {
	const name = "session-bind@openssh.com"
	return len(f) > 5+len(name) && f[0] == 27 && string(f[5:5+len(name)]) == name
}

// bindContents decodes a session-bind frame: byte 27, string name,
// string hostkey, string session_id, string signature, bool forwarding.
func bindContents(t *testing.T, f agentFrame) (hostKey ssh.PublicKey, sessionID []byte) {
	t.Helper()
	rest := f[1:]
	var fields [4][]byte
	for i := range fields {
		if len(rest) < 4 || uint64(binary.BigEndian.Uint32(rest)) > uint64(len(rest)-4) {
			t.Fatal("short session-bind")
		}
		n := binary.BigEndian.Uint32(rest)
		fields[i], rest = rest[4:4+n], rest[4+n:]
	}
	hk, err := ssh.ParsePublicKey(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	return hk, fields[2]
}

// signOnBind opens a fresh agent connection, replays bind, and asks key to
// sign a hostbound userauth request for that session, as a hop or server
// holding the forwarded agent could. It reports whether the agent signed.
func signOnBind(t *testing.T, sock string, bind agentFrame, key ssh.PublicKey, user string) bool {
	t.Helper()
	return signOnChain(t, sock, []agentFrame{bind}, key, user)
}

// signOnChain is signOnBind for a chain of binds (hops, then the
// destination), as a forwarded agent connection carries them.
func signOnChain(t *testing.T, sock string, chain []agentFrame, key ssh.PublicKey, user string) bool {
	t.Helper()
	hk, sid := bindContents(t, chain[len(chain)-1])
	data := ssh.Marshal(struct {
		SessionID []byte
		Type      byte
		User      string
		Service   string
		Method    string
		HasSig    bool
		Algo      string
		Key       []byte
		HostKey   []byte
	}{sid, 50, user, "ssh-connection", "publickey-hostbound-v00@openssh.com", true, key.Type(), key.Marshal(), hk.Marshal()})
	return signDataOnChain(t, sock, chain, key, data)
}

// signDataOnChain replays the binds of chain on a fresh agent connection
// and asks key to sign data there. It reports whether the agent signed.
func signDataOnChain(t *testing.T, sock string, chain []agentFrame, key ssh.PublicKey, data []byte) bool {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var reply agentFrame
	for _, bind := range chain {
		if err := writeFrame(c, bind); err != nil {
			t.Fatal(err)
		}
		reply, err = readFrame(c)
		if err != nil || len(reply) != 1 || reply[0] != 6 {
			t.Fatalf("replayed session-bind: %v %x", err, reply)
		}
	}
	req := ssh.Marshal(struct {
		Type  byte
		Key   []byte
		Data  []byte
		Flags uint32
	}{13, key.Marshal(), data, 0})
	if err := writeFrame(c, req); err != nil {
		t.Fatal(err)
	}
	reply, err = readFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	return reply[0] == 14 // SSH_AGENT_SIGN_RESPONSE
}

func (w *e2eWorld) publicKey(name string) ssh.PublicKey {
	w.t.Helper()
	pub, _ := os.ReadFile(w.keys[name] + ".pub")
	k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		w.t.Fatal(err)
	}
	return k
}

// Issue scenario 3: two sshds with different host keys both accept key K,
// which is pinned to the first. The second is not offered K, and a genuine
// session-bind for the second followed by a sign request with K is refused,
// while the same for the first is signed.
func TestE2ETwoServersPinnedKeyStaysHome(t *testing.T) {
	w := newE2EWorld(t)
	s1, s2 := w.server(6), w.server(6)
	w.key("k")
	w.authorize(s1, "k")
	w.authorize(s2, "k")
	a := w.sesameAgent([]string{"k"})
	w.mustRun(nil, "sesame", "pin", hostPort(s1), w.keys["k"]+".pub")
	proxy := newRecordingProxy(t, a.sock)
	pa := &e2eAgent{sock: proxy.sock, env: []string{"SSH_AUTH_SOCK=" + proxy.sock}, stderr: a.stderr}

	if n := w.login(pa, s1); n != 0 {
		t.Errorf("login to the pinned server: %d Failed publickey", n)
	}
	bind1 := proxy.lastBind(t)
	before := s2.FailedPublickey()
	out, err := w.ssh(pa, s2, nil, "echo", "logged-in")
	if err == nil || strings.Contains(out, "logged-in") {
		t.Fatalf("the key pinned to %s logged in to %s:\n%s", hostPort(s1), hostPort(s2), out)
	}
	if n := s2.FailedPublickey() - before; n != 0 {
		t.Errorf("the second server was offered %d keys, want none", n)
	}
	bind2 := proxy.lastBind(t)
	if bytes.Equal(bind1, bind2) {
		t.Fatal("no session-bind recorded for the second server")
	}
	k := w.publicKey("k")
	if signOnBind(t, a.sock, bind2, k, s2.User) {
		t.Error("the agent signed for the second server with a key pinned to the first")
	}
	if !signOnBind(t, a.sock, bind1, k, s1.User) {
		t.Error("the agent refused to sign for the server the key is pinned to")
	}
}

// Issue scenario 4: agent forwarding. The client logs in to a hop with
// ssh -A and runs ssh to a target from there; the forwarded agent sees the
// chain [hop (forwarding), target]. A key pinned to both hop and target is
// usable from the hop; a key pinned only to the target is not offered and
// not signed through the hop, though it works from the client directly.
func TestE2EForwardedAgentFollowsBindChain(t *testing.T) {
	w := newE2EWorld(t)
	hop, target := w.server(6), w.server(6)
	for _, n := range []string{"hopkey", "both", "targetonly"} {
		w.key(n)
	}
	w.authorize(hop, "hopkey")
	w.authorize(target, "both")
	w.authorize(target, "targetonly")
	a := w.sesameAgent([]string{"hopkey", "both", "targetonly"})
	w.mustRun(nil, "sesame", "pin", hostPort(hop), w.keys["hopkey"]+".pub")
	w.mustRun(nil, "sesame", "pin", hostPort(hop), w.keys["both"]+".pub")
	w.mustRun(nil, "sesame", "pin", hostPort(target), w.keys["both"]+".pub")
	w.mustRun(nil, "sesame", "pin", hostPort(target), w.keys["targetonly"]+".pub")

	sshBin := testbed.Path(t, "ssh")
	inner := func(extra ...string) string {
		args := append([]string{sshBin}, w.sshArgs(target, extra...)...)
		return strings.Join(append(args, "echo", "from-hop"), " ")
	}
	// The hop lists what the chain permits: keys pinned to both.
	out, err := w.ssh(a, hop, []string{"ForwardAgent=yes"}, testbed.Path(t, "ssh-add"), "-l")
	if err != nil {
		t.Fatalf("ssh-add -l on the hop: %v\n%s", err, out)
	}
	if !strings.Contains(out, " both ") || !strings.Contains(out, " hopkey ") || strings.Contains(out, "targetonly") {
		t.Errorf("keys listed on the hop:\n%s", out)
	}
	// Login from the hop to the target with the forwarded agent.
	before := target.FailedPublickey()
	out, err = w.ssh(a, hop, []string{"ForwardAgent=yes"}, inner())
	if err != nil || !strings.Contains(out, "from-hop") {
		t.Fatalf("ssh -A hop ssh target: %v\n%s\nagent:\n%s", err, out, a.stderr)
	}
	if n := target.FailedPublickey() - before; n != 0 {
		t.Errorf("target rejected %d keys through the hop", n)
	}
	// Only the key pinned to target alone is left: the hop cannot use it.
	w.mustRun(nil, "sesame", "unpin", hostPort(target), w.keys["both"]+".pub")
	proxy := newRecordingProxy(t, a.sock)
	pa := &e2eAgent{sock: proxy.sock, env: []string{"SSH_AUTH_SOCK=" + proxy.sock}, stderr: a.stderr}
	before = target.FailedPublickey()
	out, err = w.ssh(pa, hop, []string{"ForwardAgent=yes"}, inner())
	if err == nil || strings.Contains(out, "from-hop") {
		t.Fatalf("the hop logged in to the target with a key not pinned to the hop:\n%s", out)
	}
	if n := target.FailedPublickey() - before; n != 0 {
		t.Errorf("target was offered %d keys through the hop, want none", n)
	}
	// Nor sign with it: the forwarded connection's chain [hop, target],
	// replayed, gets a refusal; the target's bind alone, a signature.
	chain := proxy.longestChain()
	if len(chain) != 2 {
		t.Fatalf("the forwarded connection carried %d binds, want 2 (hop, target)", len(chain))
	}
	if hk, _ := bindContents(t, chain[0]); ssh.FingerprintSHA256(hk) != hostKeyFP(t, hop) {
		t.Error("the first bind of the chain is not the hop")
	}
	if signOnChain(t, a.sock, chain, w.publicKey("targetonly"), target.User) {
		t.Error("the agent signed through the hop with a key not pinned to the hop")
	}
	if !signOnChain(t, a.sock, chain[1:], w.publicKey("targetonly"), target.User) {
		t.Error("the agent refused the key pinned to the target on a direct connection")
	}
	// From the client itself the target accepts it.
	if n := w.login(a, target); n != 0 {
		t.Errorf("direct login to the target: %d Failed publickey", n)
	}
}

// A bad line in the pins file: the agent starts anyway with the good
// lines (the background start warns, naming the line), `sesame pins`
// names it, and a running agent keeps the pins it had when a bad line is
// added later.
func TestE2EBadPinsLine(t *testing.T) {
	w := newE2EWorld(t)
	s := w.server(3)
	names := []string{"k1", "k2", "k3", "k4"}
	for _, n := range names {
		w.key(n)
	}
	w.authorize(s, "k4")
	pins := filepath.Join(w.home, "sesame", "config", "pins")
	os.MkdirAll(filepath.Dir(pins), 0o700)
	good := fmt.Sprintf("%s %s\n", hostPort(s), w.fingerprint("k4"))
	os.WriteFile(pins, []byte("# mine\nthis is not a pin\n"+good), 0o600)

	// Background start: warns on stderr, naming the line, and runs.
	sock := filepath.Join(t.TempDir(), "bg.sock")
	cmd := exec.Command(w.bin, "agent", "-s", "-a", sock)
	cmd.Env = w.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sesame agent -s with a bad pins line: %v\n%s", err, stderr.String())
	}
	vars := agentParseShell(stdout.String())
	if vars["SSH_AUTH_SOCK"] != sock || !strings.Contains(stderr.String(), "line 2") {
		t.Errorf("background start:\nstdout %s\nstderr %s", stdout.String(), stderr.String())
	}
	if pid := vars["SSH_AGENT_PID"]; pid != "" {
		t.Cleanup(func() { w.run([]string{"SSH_AGENT_PID=" + pid}, "sesame", "agent", "-k") })
	}
	bg := &e2eAgent{sock: sock, env: []string{"SSH_AUTH_SOCK=" + sock}, stderr: &testbed.SyncBuffer{}}
	for _, k := range names {
		w.mustRun(bg.env, "ssh-add", "-q", w.keys[k])
	}
	if n := w.login(bg, s); n != 0 {
		t.Errorf("the good line did not apply: %d Failed publickey", n)
	}

	out, err := w.run(nil, "sesame", "pins")
	if err == nil || !strings.Contains(out, "line 2") {
		t.Errorf("sesame pins with a bad line: %v\n%s", err, out)
	}

	// Foreground agent started on a good file; a bad line added while it
	// runs leaves its pins in force.
	os.WriteFile(pins, []byte(good), 0o600)
	a := w.sesameAgent(names)
	if n := w.login(a, s); n != 0 {
		t.Errorf("pinned login: %d Failed publickey", n)
	}
	os.WriteFile(pins, []byte(good+"half-typed-line\n"), 0o600)
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(pins, future, future)
	if n := w.login(a, s); n != 0 {
		t.Errorf("after a bad line was added: %d Failed publickey, the agent lost its pins", n)
	}
	if !strings.Contains(a.stderr.String(), "line 2") {
		t.Errorf("the agent did not log the bad line:\n%s", a.stderr)
	}
	if _, err := w.run(nil, "sesame", "pin", "other.example.org", w.keys["k1"]+".pub"); err == nil {
		t.Error("sesame pin added a pin behind a broken line")
	}
}

// A server whose host key changed (known_hosts lists another key for its
// name) does not get the pins of that name: the pinned key is not offered
// and not signed for it.
func TestE2EChangedHostKeyNotTrusted(t *testing.T) {
	w := newE2EWorld(t)
	s := w.server(6)
	w.key("k")
	w.authorize(s, "k")
	// The user's known_hosts remembers another key for this name; the
	// client is told to accept the new one (as after a careless
	// ssh-keygen -R, or a client with its own known_hosts).
	other := filepath.Join(t.TempDir(), "other")
	w.mustRun(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
	otherPub, _ := os.ReadFile(other + ".pub")
	f := strings.Fields(string(otherPub))
	os.WriteFile(w.knownHosts, []byte(fmt.Sprintf("%s %s %s\n", hostPort(s), f[0], f[1])), 0o600)
	a := w.sesameAgent([]string{"k"})
	w.mustRun(nil, "sesame", "pin", hostPort(s), w.keys["k"]+".pub")
	proxy := newRecordingProxy(t, a.sock)
	pa := &e2eAgent{sock: proxy.sock, env: []string{"SSH_AUTH_SOCK=" + proxy.sock}, stderr: a.stderr}

	before := s.FailedPublickey()
	out, err := w.run(pa.env, "ssh", append(w.sshArgsKnown(s, s.KnownHosts), "echo", "logged-in")...)
	if err == nil || strings.Contains(out, "logged-in") {
		t.Fatalf("login to a server with a changed host key succeeded with the pinned key:\n%s", out)
	}
	if n := s.FailedPublickey() - before; n != 0 {
		t.Errorf("%d keys offered to the changed server", n)
	}
	if signOnBind(t, a.sock, proxy.lastBind(t), w.publicKey("k"), s.User) {
		t.Error("the agent signed for a server whose host key changed")
	}
}
