package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// recordingAgent is a plain x/crypto keyring that records, per agent
// connection, the session-bind requests (verified like the real agent
// will) and the data it is asked to sign: what OpenSSH's ssh really sends.
type recordingAgent struct {
	xagent.Agent
	mu    sync.Mutex
	info  agent.ConnInfo
	signs []signReq
	bad   []error
}

type signReq struct {
	key  ssh.PublicKey
	data []byte
}

var _ xagent.ExtendedAgent = (*recordingAgent)(nil)

func (r *recordingAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return r.SignWithFlags(key, data, 0)
}

func (r *recordingAgent) SignWithFlags(key ssh.PublicKey, data []byte, flags xagent.SignatureFlags) (*ssh.Signature, error) {
	r.mu.Lock()
	r.signs = append(r.signs, signReq{key, append([]byte(nil), data...)})
	r.mu.Unlock()
	return r.Agent.(xagent.ExtendedAgent).SignWithFlags(key, data, flags)
}

func (r *recordingAgent) Extension(typ string, contents []byte) ([]byte, error) {
	if typ != "session-bind@openssh.com" {
		return nil, xagent.ErrExtensionUnsupported
	}
	var m struct {
		HostKey    []byte
		SessionID  []byte
		Signature  []byte
		Forwarding bool
	}
	err := ssh.Unmarshal(contents, &m)
	var hk ssh.PublicKey
	if err == nil {
		hk, err = ssh.ParsePublicKey(m.HostKey)
	}
	var sig ssh.Signature
	if err == nil {
		err = ssh.Unmarshal(m.Signature, &sig)
	}
	if err == nil {
		err = hk.Verify(m.SessionID, &sig)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad = append(r.bad, err)
		return nil, err
	}
	r.info.Binds = append(r.info.Binds, agent.Bind{HostKey: hk, SessionID: m.SessionID, Forwarding: m.Forwarding})
	return nil, nil
}

// serveRecording serves keyring on a fresh socket; every connection gets
// its own recorder.
func serveRecording(t *testing.T, keyring xagent.Agent) (string, func() []*recordingAgent) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []*recordingAgent
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := &recordingAgent{Agent: keyring}
			mu.Lock()
			conns = append(conns, r)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				xagent.ServeAgent(r, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return sock, func() []*recordingAgent {
		mu.Lock()
		defer mu.Unlock()
		return append([]*recordingAgent(nil), conns...)
	}
}

// loginCapture logs in to sshd with real ssh through the recording agent
// and returns the connection that carried the signature.
func loginCapture(t *testing.T, sshd *testbed.SSHD, sock string, conns func() []*recordingAgent) *recordingAgent {
	t.Helper()
	before := len(conns())
	cmd := exec.Command(testbed.Path(t, "ssh"), append(sshd.SSHArgs("IdentityFile=/dev/null"), "echo", "logged-in")...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "logged-in") {
		b, _ := os.ReadFile(sshd.Log)
		t.Fatalf("ssh: %v\n%s\nsshd log:\n%s", err, out, b)
	}
	for _, r := range conns()[before:] {
		r.mu.Lock()
		n, bad := len(r.signs), r.bad
		r.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("session-bind did not verify: %v", bad)
		}
		if n > 0 {
			return r
		}
	}
	t.Fatal("ssh never asked the agent to sign")
	return nil
}

// What real ssh sends: session-bind and a hostbound userauth request. The
// policy accepts the signature for the host the key is pinned to, refuses
// it for a second sshd (same name, another port and host key), and learns
// from it.
func TestRealSSHSignRequests(t *testing.T) {
	sshd1 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	key := signer.PublicKey()
	line := string(ssh.MarshalAuthorizedKey(key))
	sshd1.Authorize(line)
	sshd2.Authorize(line)

	keyring := xagent.NewKeyring()
	if err := keyring.Add(xagent.AddedKey{PrivateKey: priv, Comment: "test-key"}); err != nil {
		t.Fatal(err)
	}
	sock, conns := serveRecording(t, keyring)
	r1 := loginCapture(t, sshd1, sock, conns)
	r2 := loginCapture(t, sshd2, sock, conns)

	dir := t.TempDir()
	pins := filepath.Join(dir, "pins")
	learned := filepath.Join(dir, "learned.json")
	os.WriteFile(pins, []byte(fmt.Sprintf("[localhost]:%d %s\n", sshd1.Port, fp(key))), 0o600)
	p := New(Options{PinsFile: pins, LearnedFile: learned, KnownHostsFiles: []string{sshd1.KnownHosts, sshd2.KnownHosts}})
	defer p.Close()

	for _, r := range []*recordingAgent{r1, r2} {
		if len(r.info.Binds) != 1 || r.info.Binds[0].Forwarding {
			t.Fatalf("binds: %+v", r.info.Binds)
		}
	}
	req, err := ParseUserauthRequest(r1.signs[0].data)
	if err != nil {
		t.Fatalf("real userauth request: %v", err)
	}
	if req.Method != MethodHostbound || req.User != sshd1.User || req.Service != "ssh-connection" {
		t.Errorf("real request: %+v", req)
	}
	hk1, _ := os.ReadFile(sshd1.HostKey + ".pub")
	want, _, _, _, _ := ssh.ParseAuthorizedKey(hk1)
	if string(req.HostKey) != string(want.Marshal()) || string(r1.info.Binds[0].HostKey.Marshal()) != string(want.Marshal()) {
		t.Error("host key in the request or bind is not sshd1's")
	}

	ids := []agent.Identity{{Key: key, Comment: "test-key"}}
	if got := p.Offer(&r1.info, ids); len(got) != 1 {
		t.Errorf("offer to sshd1: %d keys", len(got))
	}
	if err := p.CheckSign(&r1.info, r1.signs[0].key, r1.signs[0].data); err != nil {
		t.Errorf("sign for sshd1: %v", err)
	}
	if got := p.Offer(&r2.info, ids); len(got) != 0 {
		t.Errorf("offer to sshd2: %d keys", len(got))
	}
	var re *RefusedError
	if err := p.CheckSign(&r2.info, r2.signs[0].key, r2.signs[0].data); !errors.As(err, &re) {
		t.Errorf("sign for sshd2: %v", err)
	}
	// sshd1's request replayed on sshd2's connection: wrong session.
	if err := p.CheckSign(&r2.info, r1.signs[0].key, r1.signs[0].data); !errors.Is(err, ErrSessionMismatch) {
		t.Errorf("replay: %v", err)
	}

	p.Signed(&r1.info, r1.signs[0].key, r1.signs[0].data)
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	l, err := ReadLearned(learned)
	if err != nil || len(l) != 1 || l[0].User != sshd1.User || l[0].HostKey != fp(want) ||
		len(l[0].Names) != 2 || l[0].Names[0] != fmt.Sprintf("[localhost]:%d", sshd1.Port) {
		t.Errorf("learned: %+v %v", l, err)
	}
}

// sshConfigArgs replaces the test bed's "-F /dev/null" with config.
func sshConfigArgs(sshd *testbed.SSHD, config string, cmd ...string) []string {
	args := sshd.SSHArgs()
	if args[0] == "-F" {
		args[1] = config
	}
	return append(args, cmd...)
}

// For clients without session-bind, the blocks of `sesame ssh-config`
// make real ssh, through OpenSSH's own ssh-agent holding six keys, offer
// only the pinned one: with MaxAuthTries 3 the login succeeds with no
// failed key, where the same agent without them is locked out.
func TestRealSSHConfigBlocks(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	bins := testbed.Need(t, "ssh-agent", "ssh-add", "ssh-keygen", "ssh")
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	ag := exec.Command(bins[0], "-D", "-a", sock)
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Process.Kill(); ag.Wait() })
	if err := waitSocket(sock); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	var last string
	for i := 1; i <= 6; i++ {
		kf := filepath.Join(dir, fmt.Sprintf("id%d", i))
		run := func(name string, args ...string) {
			cmd := exec.Command(name, args...)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, out)
			}
		}
		run(bins[2], "-q", "-t", "ed25519", "-N", "", "-C", fmt.Sprintf("key%d", i), "-f", kf)
		run(bins[1], kf)
		last = kf
	}
	pub, _ := os.ReadFile(last + ".pub")
	sshd.Authorize(string(pub))

	// Baseline: every key offered in turn, locked out before the 6th.
	cmd := exec.Command(bins[3], sshConfigArgs(sshd, "/dev/null", "true")...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Too many authentication failures") {
		t.Fatalf("expected a lockout without pins: %v\n%s", err, out)
	}
	before := sshd.FailedPublickey()

	files := Files{Pins: filepath.Join(dir, "config", "pins"), Learned: filepath.Join(dir, "state", "learned"), KeysDir: filepath.Join(dir, "config", "keys")}
	src := KeySource{AgentSocket: sock, PubFiles: []string{}}
	k, err := ResolveKey("key6", src) // by comment, from the running agent
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := PinKey(files, fmt.Sprintf("[localhost]:%d", sshd.Port), k, false); err != nil {
		t.Fatal(err)
	}
	conf, err := SSHConfig(files, src, SSHConfigOptions{GSSAPI: func(p []string) bool { return p[0] == "localhost" }})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "Host localhost\n") || !strings.Contains(conf, "    GSSAPIAuthentication yes\n") {
		t.Errorf("config:\n%s", conf)
	}
	cf := filepath.Join(dir, "ssh_config")
	os.WriteFile(cf, []byte(conf), 0o600)
	cmd = exec.Command(bins[3], sshConfigArgs(sshd, cf, "echo", "pinned-login")...)
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pinned-login") {
		t.Fatalf("ssh with sesame ssh-config: %v\n%s\nconfig:\n%s", err, out, conf)
	}
	if n := sshd.FailedPublickey() - before; n != 0 {
		t.Errorf("%d keys were rejected with the pinned config", n)
	}
}

func waitSocket(path string) error {
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no agent on %s", path)
}
