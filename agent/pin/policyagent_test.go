package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
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
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// policyAgent is a stand-in for sesame's agent server, just enough to run
// real ssh against the policy: the recording agent's verified
// session-bind, the policy's Offer on listing, CheckSign before and Signed
// after each signature.
type policyAgent struct {
	*recordingAgent
	p       *Policy
	refused *[]error
	mu      *sync.Mutex
}

func (a *policyAgent) conn() agent.ConnInfo {
	a.recordingAgent.mu.Lock()
	defer a.recordingAgent.mu.Unlock()
	return agent.ConnInfo{PID: a.info.PID, Binds: append([]agent.Bind(nil), a.info.Binds...)}
}

func (a *policyAgent) List() ([]*xagent.Key, error) {
	keys, err := a.Agent.List()
	if err != nil {
		return nil, err
	}
	var ids []agent.Identity
	byFP := map[string]*xagent.Key{}
	for _, k := range keys {
		pub, _ := ssh.ParsePublicKey(k.Blob)
		ids = append(ids, agent.Identity{Key: pub, Comment: k.Comment})
		byFP[ssh.FingerprintSHA256(pub)] = k
	}
	c := a.conn()
	var out []*xagent.Key
	for _, id := range a.p.Offer(&c, ids) {
		out = append(out, byFP[ssh.FingerprintSHA256(id.Key)])
	}
	return out, nil
}

func (a *policyAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return a.SignWithFlags(key, data, 0)
}

func (a *policyAgent) SignWithFlags(key ssh.PublicKey, data []byte, flags xagent.SignatureFlags) (*ssh.Signature, error) {
	c := a.conn()
	if err := a.p.CheckSign(&c, key, data); err != nil {
		a.mu.Lock()
		*a.refused = append(*a.refused, err)
		a.mu.Unlock()
		return nil, err
	}
	sig, err := a.Agent.(xagent.ExtendedAgent).SignWithFlags(key, data, flags)
	if err == nil {
		a.p.Signed(&c, key, data)
	}
	return sig, err
}

type policyBed struct {
	t       *testing.T
	sock    string
	p       *Policy
	pins    string
	kh      []string
	mu      sync.Mutex
	refused []error
	keys    []ssh.PublicKey
	lines   []string
}

// newPolicyBed serves n fresh ed25519 keys through the policy.
func newPolicyBed(t *testing.T, n int, knownHosts []string, maxOffer int) *policyBed {
	dir := t.TempDir()
	b := &policyBed{t: t, pins: filepath.Join(dir, "pins"), kh: knownHosts}
	b.p = New(Options{PinsFile: b.pins, LearnedFile: filepath.Join(dir, "learned.json"), KnownHostsFiles: knownHosts, MaxOffer: maxOffer})
	t.Cleanup(func() { b.p.Close() })
	kr := xagent.NewKeyring()
	for i := 0; i < n; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		kr.Add(xagent.AddedKey{PrivateKey: priv, Comment: fmt.Sprint("key", i)})
		s, _ := ssh.NewSignerFromKey(priv)
		b.keys = append(b.keys, s.PublicKey())
		b.lines = append(b.lines, string(ssh.MarshalAuthorizedKey(s.PublicKey())))
	}
	b.sock = filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", b.sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a := &policyAgent{recordingAgent: &recordingAgent{Agent: kr}, p: b.p, refused: &b.refused, mu: &b.mu}
			a.info.PID = peerPID(c)
			wg.Add(1)
			go func() { defer wg.Done(); xagent.ServeAgent(a, c); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return b
}

// peerPID is the client's pid from SO_PEERCRED, as the agent server gets it.
func peerPID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

func (b *policyBed) setPins(text string) {
	if err := os.WriteFile(b.pins, []byte(text), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

func (b *policyBed) ssh(args ...string) (string, error) {
	cmd := exec.Command(testbed.Path(b.t, "ssh"), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+b.sock)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func hostName(s *testbed.SSHD) string { return fmt.Sprintf("[localhost]:%d", s.Port) }

// Six keys, MaxAuthTries 3, only the sixth authorized: a declared pin gets
// in with no rejected key.
func TestPolicyAgentDeclaredPinNoLockout(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	b := newPolicyBed(t, 6, []string{sshd.KnownHosts}, 0)
	sshd.Authorize(b.lines[5])
	b.setPins(hostName(sshd) + " " + fp(b.keys[5]) + "\n")
	out, err := b.ssh(append(sshd.SSHArgs("IdentityFile=/dev/null"), "echo", "in")...)
	if err != nil || !strings.Contains(out, "in") {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	if n := sshd.FailedPublickey(); n != 0 {
		t.Errorf("%d failed publickey lines", n)
	}
}

// Learning: the first login tries at most max_offer keys; the second
// offers only the key that worked.
func TestPolicyAgentLearns(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	b := newPolicyBed(t, 4, []string{sshd.KnownHosts}, 2)
	sshd.Authorize(b.lines[1])
	args := append(sshd.SSHArgs("IdentityFile=/dev/null"), "true")
	if out, err := b.ssh(args...); err != nil {
		t.Fatalf("first login: %v\n%s", err, out)
	}
	first := sshd.FailedPublickey()
	if first > 1 {
		t.Errorf("first login: %d failures, want at most 1", first)
	}
	if out, err := b.ssh(args...); err != nil {
		t.Fatalf("second login: %v\n%s", err, out)
	}
	if n := sshd.FailedPublickey() - first; n != 0 {
		t.Errorf("second login: %d failures", n)
	}
	// Beyond max_offer nothing is tried: the fourth key alone is
	// authorized on another server, and the login fails without a single
	// rejected key beyond the two offered.
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	b2 := newPolicyBed(t, 4, []string{sshd2.KnownHosts}, 2)
	sshd2.Authorize(b2.lines[3])
	if _, err := b2.ssh(append(sshd2.SSHArgs("IdentityFile=/dev/null"), "true")...); err == nil {
		t.Error("login with the key beyond max_offer succeeded")
	}
	if n := sshd2.FailedPublickey(); n > 2 {
		t.Errorf("%d keys tried, max_offer is 2", n)
	}
}

// Two servers with different host keys: a key pinned to the first is not
// offered to the second.
func TestPolicyAgentOtherServer(t *testing.T) {
	sshd1 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	b := newPolicyBed(t, 1, []string{sshd1.KnownHosts, sshd2.KnownHosts}, 0)
	sshd1.Authorize(b.lines[0])
	sshd2.Authorize(b.lines[0])
	b.setPins(hostName(sshd1) + " " + fp(b.keys[0]) + "\n")
	if out, err := b.ssh(append(sshd1.SSHArgs("IdentityFile=/dev/null"), "true")...); err != nil {
		t.Fatalf("sshd1: %v\n%s", err, out)
	}
	if _, err := b.ssh(append(sshd2.SSHArgs("IdentityFile=/dev/null"), "true")...); err == nil {
		t.Error("logged in to sshd2 with the key pinned to sshd1")
	}
	if n := sshd2.FailedPublickey(); n != 0 {
		t.Errorf("sshd2 saw %d keys", n)
	}
}

// Agent forwarding: through hop sshd1 to sshd2, a key is usable only when
// pinned to both; a key pinned to sshd2 alone stays out of the hop's reach.
func TestPolicyAgentForwarding(t *testing.T) {
	sshd1 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{})
	b := newPolicyBed(t, 2, []string{sshd1.KnownHosts, sshd2.KnownHosts}, 0)
	sshd1.Authorize(b.lines[0])
	sshd2.Authorize(b.lines[1])
	inner := "echo outer-ok; " + testbed.Path(t, "ssh") + " " + strings.Join(append(sshd2.SSHArgs("IdentityFile=/dev/null"), "echo", "inner-ok"), " ")
	outer := append(sshd1.SSHArgs("IdentityFile=/dev/null", "ForwardAgent=yes"), inner)

	b.setPins(fmt.Sprintf("%s %s\n%s %s\n", hostName(sshd1), fp(b.keys[0]), hostName(sshd2), fp(b.keys[1])))
	t0 := time.Now()
	out, err := b.ssh(outer...)
	t.Logf("case 1 %v: %s", time.Since(t0), out)
	if err == nil || !strings.Contains(out, "outer-ok") || strings.Contains(out, "inner-ok") || !strings.Contains(out, "Permission denied") {
		t.Fatalf("key pinned to sshd2 alone was used through sshd1: %v\n%s", err, out)
	}
	if n := sshd2.FailedPublickey(); n != 0 {
		t.Errorf("sshd2 saw %d keys through the hop", n)
	}

	b.setPins(fmt.Sprintf("%s %s\n%s,%s %s\n", hostName(sshd1), fp(b.keys[0]), hostName(sshd1), hostName(sshd2), fp(b.keys[1])))
	t0 = time.Now()
	out, err = b.ssh(outer...)
	t.Logf("case 2 %v: %s", time.Since(t0), out)
	if err != nil || !strings.Contains(out, "inner-ok") {
		t.Fatalf("key pinned to hop and destination: %v\n%s", err, out)
	}
}

// With known_hosts hashed (Debian's HashKnownHosts yes) a wildcard pin
// still applies: the name comes from ssh's command line and known_hosts
// confirms it.
func TestPolicyAgentHashedKnownHostsWildcardPin(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	keygen := exec.Command(testbed.Path(t, "ssh-keygen"), "-H", "-f", sshd.KnownHosts)
	if out, err := keygen.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(sshd.KnownHosts); strings.Contains(string(b), "localhost") {
		t.Fatalf("known_hosts not hashed:\n%s", b)
	}
	b := newPolicyBed(t, 6, []string{sshd.KnownHosts}, 0)
	sshd.Authorize(b.lines[5])
	b.setPins(fmt.Sprintf("[local*]:%d %s\n", sshd.Port, fp(b.keys[5])))
	out, err := b.ssh(append(sshd.SSHArgs("IdentityFile=/dev/null"), "echo", "in")...)
	if err != nil || !strings.Contains(out, "in") {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	if n := sshd.FailedPublickey(); n != 0 {
		t.Errorf("%d failed publickey lines", n)
	}
}
