package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
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

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// targets are the two agents the behavioural suite runs against: sesame's
// and OpenSSH's, so that any difference shows up as a failing row.
var targets = []struct {
	name  string
	start func(t *testing.T) *env
}{
	{"sesame", func(t *testing.T) *env { return startSesame(t, Options{}) }},
	{"openssh", func(t *testing.T) *env { return startOpenSSH(t, "") }},
}

// behaviours shared by both agents. Each gets a fresh agent.
var behaviours = []struct {
	name string
	run  func(t *testing.T, e *env, k map[string]string)
}{
	{"AddListRemove", func(t *testing.T, e *env, k map[string]string) {
		for _, n := range []string{"ed", "ec", "rsa"} {
			e.must("ssh-add", k[n])
		}
		l := e.list()
		for _, n := range []string{"ed", "ec", "rsa"} {
			if !strings.Contains(l, fingerprint(t, k[n]+".pub")) || !strings.Contains(l, "comment-"+n) {
				t.Errorf("ssh-add -l lacks %s:\n%s", n, l)
			}
		}
		for _, want := range []string{"(ED25519)", "(ECDSA)", "(RSA)"} {
			if !strings.Contains(l, want) {
				t.Errorf("ssh-add -l lacks %s:\n%s", want, l)
			}
		}
		// -L prints the public keys exactly as in the .pub files.
		L := e.must("ssh-add", "-L")
		for _, n := range []string{"ed", "ec", "rsa"} {
			pub, _ := os.ReadFile(k[n] + ".pub")
			if !strings.Contains(L, strings.TrimSpace(string(pub))) {
				t.Errorf("ssh-add -L lacks %s:\n%s", n, L)
			}
		}
		// -d removes one key and only that one.
		e.must("ssh-add", "-d", k["ec"])
		l = e.list()
		if strings.Contains(l, fingerprint(t, k["ec"]+".pub")) || !strings.Contains(l, fingerprint(t, k["ed"]+".pub")) {
			t.Errorf("after -d:\n%s", l)
		}
		// Removing a key that is not there fails.
		if out, err := e.run("ssh-add", "-d", k["extra"]); err == nil {
			t.Errorf("removing an absent key succeeded: %s", out)
		}
		e.must("ssh-add", "-D")
		if l := e.list(); l != "" {
			t.Errorf("after -D: %s", l)
		}
	}},
	{"ReAddKeepsPlace", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["ed"], k["ec"])
		e.must("ssh-add", "-t", "600", k["ed"])
		l := e.list()
		ed, ec := strings.Index(l, fingerprint(t, k["ed"]+".pub")), strings.Index(l, fingerprint(t, k["ec"]+".pub"))
		if ed < 0 || ec < 0 || ed > ec || strings.Count(l, "\n") != 2 {
			t.Errorf("after re-adding the first key:\n%s", l)
		}
	}},
	{"Certificate", func(t *testing.T, e *env, k map[string]string) {
		// ssh-add loads certkey and certkey-cert.pub: two identities.
		e.must("ssh-add", k["certkey"])
		l := e.list()
		if !strings.Contains(l, "(ED25519-CERT)") || !strings.Contains(l, "(ED25519)") {
			t.Fatalf("ssh-add -l after adding key with certificate:\n%s", l)
		}
		cert, _ := os.ReadFile(k["certkey"] + "-cert.pub")
		if L := e.must("ssh-add", "-L"); !strings.Contains(L, strings.Fields(string(cert))[1]) {
			t.Errorf("ssh-add -L lacks the certificate:\n%s", L)
		}
		if err := e.signFile(k["certkey"] + ".pub"); err != nil {
			t.Errorf("sign with certified key: %v", err)
		}
		// ECDSA and RSA certificates; sign with the certificate identity
		// itself, RSA with each hash.
		e.must("ssh-add", k["certec"], k["certrsa"])
		l = e.list()
		for _, want := range []string{"(ECDSA-CERT)", "(RSA-CERT)"} {
			if !strings.Contains(l, want) {
				t.Errorf("ssh-add -l lacks %s:\n%s", want, l)
			}
		}
		c, ag := dial(t, e.sock)
		defer c.Close()
		for _, n := range []string{"certkey", "certec", "certrsa"} {
			cert := readPub(t, k[n]+"-cert.pub").(*ssh.Certificate)
			flags := []xagent.SignatureFlags{0}
			if n == "certrsa" {
				flags = append(flags, xagent.SignatureFlagRsaSha256, xagent.SignatureFlagRsaSha512)
			}
			for _, f := range flags {
				sig, err := ag.SignWithFlags(cert, []byte("data"), f)
				if err != nil {
					t.Errorf("%s flags %d: %v", n, f, err)
					continue
				}
				if err := cert.Key.Verify([]byte("data"), sig); err != nil {
					t.Errorf("%s flags %d: %s signature does not verify: %v", n, f, sig.Format, err)
				}
			}
		}
	}},
	{"Lifetime", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", "-t", "2", k["ed"])
		e.must("ssh-add", k["ec"])
		if l := e.list(); !strings.Contains(l, fingerprint(t, k["ed"]+".pub")) {
			t.Fatalf("key with lifetime not listed right after adding:\n%s", l)
		}
		waitFor(t, 60*time.Second, "the key to expire", func() bool {
			return !strings.Contains(e.list(), fingerprint(t, k["ed"]+".pub"))
		})
		if l := e.list(); !strings.Contains(l, fingerprint(t, k["ec"]+".pub")) {
			t.Errorf("key without lifetime vanished too:\n%s", l)
		}
	}},
	{"ConfirmYes", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", "-c", k["ed"])
		e.setConfirm(0)
		if err := e.signFile(k["ed"] + ".pub"); err != nil {
			t.Fatalf("confirmed signature failed: %v", err)
		}
		b, _ := os.ReadFile(filepath.Join(e.dir, "askpass.log"))
		if !strings.Contains(string(b), "confirm|") {
			t.Errorf("askpass was not asked to confirm; its log:\n%s", b)
		}
	}},
	{"ConfirmNo", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", "-c", k["ed"])
		e.setConfirm(1)
		if err := e.signFile(k["ed"] + ".pub"); err == nil {
			t.Fatal("signature made although askpass said no")
		}
		// The key is still there; a later yes works.
		e.setConfirm(0)
		if err := e.signFile(k["ed"] + ".pub"); err != nil {
			t.Fatalf("confirmed signature failed: %v", err)
		}
	}},
	{"SignFlagsRSA", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["rsa"])
		c, ag := dial(t, e.sock)
		defer c.Close()
		pub := readPub(t, k["rsa"]+".pub")
		data := []byte("data")
		for flags, want := range map[xagent.SignatureFlags]string{
			0: ssh.KeyAlgoRSA, xagent.SignatureFlagRsaSha256: ssh.KeyAlgoRSASHA256, xagent.SignatureFlagRsaSha512: ssh.KeyAlgoRSASHA512,
		} {
			sig, err := ag.SignWithFlags(pub, data, flags)
			if err != nil {
				t.Fatalf("flags %d: %v", flags, err)
			}
			if sig.Format != want {
				t.Errorf("flags %d: signature format %s, want %s", flags, sig.Format, want)
			}
			if err := pub.Verify(data, sig); err != nil {
				t.Errorf("flags %d: signature does not verify: %v", flags, err)
			}
		}
	}},
	{"SignUnknownKey", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["ed"])
		c, ag := dial(t, e.sock)
		defer c.Close()
		if _, err := ag.Sign(readPub(t, k["extra"]+".pub"), []byte("x")); err == nil {
			t.Error("signed with a key that is not loaded")
		}
	}},
	{"LockUnlock", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["ed"])
		e.setPassphrase("correct horse")
		e.must("ssh-add", "-x")
		if l := e.list(); l != "" {
			t.Errorf("locked agent lists keys:\n%s", l)
		}
		if err := e.signFile(k["ed"] + ".pub"); err == nil {
			t.Error("locked agent signed")
		}
		if _, err := e.run("ssh-add", k["ec"]); err == nil {
			t.Error("locked agent accepted a key")
		}
		e.setPassphrase("wrong")
		if out, err := e.run("ssh-add", "-X"); err == nil {
			t.Errorf("wrong passphrase unlocked: %s", out)
		}
		e.setPassphrase("correct horse")
		e.must("ssh-add", "-X")
		if l := e.list(); !strings.Contains(l, fingerprint(t, k["ed"]+".pub")) {
			t.Errorf("after unlock:\n%s", l)
		}
		if err := e.signFile(k["ed"] + ".pub"); err != nil {
			t.Errorf("sign after unlock: %v", err)
		}
	}},
	{"UnknownExtension", func(t *testing.T, e *env, k map[string]string) {
		c, ag := dial(t, e.sock)
		defer c.Close()
		if _, err := ag.Extension("no-such-extension@example.com", nil); err != xagent.ErrExtensionUnsupported {
			t.Errorf("unknown extension: %v, want ErrExtensionUnsupported", err)
		}
	}},
	{"BadMessages", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["ed"])
		frames := [][]byte{
			{},                               // zero-length message
			{0xff},                           // unknown type
			{11, 1, 2},                       // REQUEST_IDENTITIES with trailing junk
			{13, 0, 0, 0, 200, 1},            // SIGN_REQUEST truncated
			{17, 0, 0, 0, 11, 's', 's', 'h'}, // ADD_IDENTITY truncated
			{18},                             // REMOVE_IDENTITY without a key
			{27, 0, 0, 0, 5, 'q'},            // EXTENSION with a short name
			{12},                             // SSH1 request
			bytes.Repeat([]byte{13}, 1000),   // garbage
			{25, 0, 0, 0, 11},                // ADD_ID_CONSTRAINED truncated
			{6},                              // a reply code sent as a request
			append([]byte{27}, ssh.Marshal(struct{ N, C string }{ExtSessionBind, "x"})...),
		}
		for i, f := range frames {
			c, err := net.Dial("unix", e.sock)
			if err != nil {
				t.Fatal(err)
			}
			msg := binary.BigEndian.AppendUint32(nil, uint32(len(f)))
			c.Write(append(msg, f...))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var hdr [5]byte
			n, _ := c.Read(hdr[:])
			t.Logf("frame %d: reply %x", i, hdr[:n])
			c.Close()
		}
		// Truncated message, then disconnect mid-request.
		c, _ := net.Dial("unix", e.sock)
		c.Write([]byte{0, 0, 1, 0, 13, 0})
		c.Close()
		// Oversized length: the connection is dropped, nothing allocated.
		c, _ = net.Dial("unix", e.sock)
		c.Write([]byte{0x7f, 0xff, 0xff, 0xff, 11})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := c.Read(make([]byte, 8)); n != 0 {
			t.Errorf("oversized message got a %d-byte reply", n)
		}
		c.Close()
		// Out of order: a reply-less half message then a full one on the
		// same connection is read as one message; the agent must not hang.
		c, _ = net.Dial("unix", e.sock)
		c.Write([]byte{0, 0, 0, 5, 11})
		c.Write([]byte{0, 0, 0, 1, 11})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 64))
		c.Close()
		// Still serving, key intact.
		if l := e.list(); !strings.Contains(l, fingerprint(t, k["ed"]+".pub")) {
			t.Errorf("after bad messages:\n%s", l)
		}
		if err := e.signFile(k["ed"] + ".pub"); err != nil {
			t.Errorf("sign after bad messages: %v", err)
		}
	}},
	{"MalformedLock", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["ed"])
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0, 0, 0, 1, 22}) // LOCK without its passphrase string
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 16))
		c.Close()
		out, err := e.run("ssh-add", "-l")
		if err != nil && e.name == "openssh" {
			// ssh-agent treats a LOCK it cannot parse as fatal and exits.
			t.Skipf("known difference: OpenSSH's agent stops on a malformed LOCK: %s", strings.TrimSpace(out))
		}
		if err != nil || !strings.Contains(out, fingerprint(t, k["ed"]+".pub")) {
			t.Fatalf("after malformed LOCK: %v\n%s", err, out)
		}
	}},
	{"ManyConnections", func(t *testing.T, e *env, k map[string]string) {
		e.must("ssh-add", k["ed"])
		const n = 3000
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []net.Conn
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{Timeout: 5 * time.Second}
				c, err := d.Dial("unix", e.sock)
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}()
		}
		wg.Wait()
		t.Logf("%d of %d connections opened", len(conns), n)
		if e.srv != nil {
			waitFor(t, 30*time.Second, "accepted connections", func() bool { return e.srv.activeConns() > 0 })
			if a := e.srv.activeConns(); a > DefaultMaxConns {
				t.Errorf("%d connections served at once, bound is %d", a, DefaultMaxConns)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		waitFor(t, 60*time.Second, "the agent to serve again", func() bool {
			out, err := e.run("ssh-add", "-l")
			return err == nil && strings.Contains(out, fingerprint(t, k["ed"]+".pub"))
		})
	}},
	{"IdleConnectionsAndFlood", func(t *testing.T, e *env, k map[string]string) {
		// 300 connections that say nothing and one process flooding the
		// agent with new connections and listings: another client (a
		// process of its own) is still answered promptly.
		e.must("ssh-add", k["ed"])
		var idle []net.Conn
		for i := 0; i < 300; i++ {
			c, err := net.DialTimeout("unix", e.sock, 5*time.Second)
			if err != nil {
				break
			}
			idle = append(idle, c)
		}
		defer func() {
			for _, c := range idle {
				c.Close()
			}
		}()
		if len(idle) < 300 {
			t.Logf("%d idle connections opened", len(idle))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("unix", e.sock, time.Second)
					if err != nil {
						time.Sleep(time.Millisecond)
						continue
					}
					c.SetDeadline(time.Now().Add(time.Second))
					for j := 0; j < 20; j++ {
						if _, err := c.Write([]byte{0, 0, 0, 1, 11}); err != nil {
							break
						}
						if _, err := c.Read(buf); err != nil {
							break
						}
					}
					c.Close()
				}
			}()
		}
		defer func() {
			close(stop)
			wg.Wait()
		}()
		time.Sleep(200 * time.Millisecond) // the flood is on
		for i := 0; i < 3; i++ {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			cmd := exec.CommandContext(ctx, testbed.Path(t, "ssh-add"), "-l")
			cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.sock)
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil || !strings.Contains(string(out), fingerprint(t, k["ed"]+".pub")) {
				t.Fatalf("ssh-add -l not answered within 5 s among idle connections and a flood: %v\n%s", err, out)
			}
		}
		if e.srv != nil {
			if a := e.srv.activeConns(); a > DefaultMaxConns {
				t.Errorf("%d connections open, bound is %d", a, DefaultMaxConns)
			}
		}
	}},
	{"OtherUIDRefused", func(t *testing.T, e *env, k map[string]string) {
		if os.Getuid() != 0 {
			testbed.Missing(t, "switching to uid 65534 needs root")
		}
		e.must("ssh-add", k["ed"])
		// Open the path up so that the connection reaches the agent and
		// only its own peer check stands in the way.
		for d := filepath.Dir(e.sock); d != "/"; d = filepath.Dir(d) {
			if strings.HasPrefix(d, os.TempDir()+"/") {
				os.Chmod(d, 0o755)
			}
		}
		os.Chmod(filepath.Dir(e.sock), 0o777)
		os.Chmod(e.sock, 0o777)
		cmd := exec.Command(testbed.Path(t, "ssh-add"), "-l")
		cmd.Env = []string{"SSH_AUTH_SOCK=" + e.sock, "PATH=/usr/bin:/bin"}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || strings.Contains(string(out), "SHA256:") {
			t.Fatalf("uid 65534 was served: %v\n%s", err, out)
		}
		t.Logf("uid 65534: %s", strings.TrimSpace(string(out)))
		if e.logBuf != nil && !strings.Contains(e.logBuf.String(), "refusing connection from another user") {
			t.Errorf("the agent did not log the refusal:\n%s", e.logBuf.String())
		}
		if l := e.list(); !strings.Contains(l, fingerprint(t, k["ed"]+".pub")) {
			t.Errorf("after refused connection:\n%s", l)
		}
	}},
}

// TestBehaviour runs every shared behaviour against both agents.
func TestBehaviour(t *testing.T) {
	testbed.Need(t, "ssh-add", "ssh-keygen", "ssh-agent")
	k := testKeys(t)
	for _, b := range behaviours {
		for _, tg := range targets {
			t.Run(b.name+"/"+tg.name, func(t *testing.T) {
				e := tg.start(t)
				b.run(t, e, k)
			})
		}
	}
}

// TestLogin logs in to the test sshd with a key held only by each agent.
func TestLogin(t *testing.T) {
	k := testKeys(t)
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	pub, _ := os.ReadFile(k["ed"] + ".pub")
	sshd.Authorize(string(pub))
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			e := tg.start(t)
			e.must("ssh-add", k["ed"])
			args := append(sshd.SSHArgs("IdentityFile=none", "IdentityAgent="+e.sock), "echo", "login-ok")
			if out := e.must("ssh", args...); !strings.Contains(out, "login-ok") {
				t.Fatalf("ssh output: %s", out)
			}
		})
	}
}

// TestSessionBindFromSSH: a real ssh login through sesame's agent binds the
// connection to the sshd's host key before the key is used.
func TestSessionBindFromSSH(t *testing.T) {
	k := testKeys(t)
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	pub, _ := os.ReadFile(k["ed"] + ".pub")
	sshd.Authorize(string(pub))
	var mu sync.Mutex
	var binds []Bind
	var signedOnBound int
	e := startSesame(t, Options{
		OnBind: func(c *ConnInfo, b Bind) { mu.Lock(); binds = append(binds, b); mu.Unlock() },
		Policy: policyFunc{signed: func(c *ConnInfo) {
			mu.Lock()
			if c.Destination() != nil {
				signedOnBound++
			}
			mu.Unlock()
		}},
	})
	e.must("ssh-add", k["ed"])
	args := append(sshd.SSHArgs("IdentityFile=none", "IdentityAgent="+e.sock), "true")
	e.must("ssh", args...)

	hostPub, _ := os.ReadFile(sshd.HostKey + ".pub")
	want, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(binds) == 0 {
		t.Fatalf("no session-bind recorded; agent log:\n%s", e.logBuf.String())
	}
	if !bytes.Equal(binds[0].HostKey.Marshal(), want.Marshal()) {
		t.Errorf("bound host key %s, sshd's is %s", ssh.FingerprintSHA256(binds[0].HostKey), ssh.FingerprintSHA256(want))
	}
	if binds[0].Forwarding {
		t.Error("direct login recorded as forwarding")
	}
	if signedOnBound != 1 {
		t.Errorf("%d signatures on a bound connection, want 1", signedOnBound)
	}
	if !strings.Contains(e.logBuf.String(), "session-bind") {
		t.Error("debug log does not mention the session-bind")
	}
}

// policyFunc is a Policy for tests: offers everything, records signatures.
type policyFunc struct {
	signed func(c *ConnInfo)
	offer  func(c *ConnInfo, ids []Identity) []Identity
	check  func(c *ConnInfo, key ssh.PublicKey) error
}

func (p policyFunc) Offer(c *ConnInfo, ids []Identity) []Identity {
	if p.offer != nil {
		return p.offer(c, ids)
	}
	return ids
}

func (p policyFunc) CheckSign(c *ConnInfo, key ssh.PublicKey, data []byte) error {
	if p.check != nil {
		return p.check(c, key)
	}
	return nil
}

func (p policyFunc) Signed(c *ConnInfo, key ssh.PublicKey, data []byte) {
	if p.signed != nil {
		p.signed(c)
	}
}

func dial(t testing.TB, sock string) (net.Conn, xagent.ExtendedAgent) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return c, xagent.NewClient(c)
}

func readPub(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var _ = rand.Reader
var _ = fmt.Sprint

// With ssh -A, the forwarded agent connection arrives bound to the server
// it was forwarded to, marked as forwarding; what the remote ssh-add sees
// is the agent's list.
func TestSessionBindForwarded(t *testing.T) {
	k := testKeys(t)
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{})
	pub, _ := os.ReadFile(k["ed"] + ".pub")
	sshd.Authorize(string(pub))
	var mu sync.Mutex
	var fwd []Bind
	e := startSesame(t, Options{OnBind: func(c *ConnInfo, b Bind) {
		mu.Lock()
		defer mu.Unlock()
		if b.Forwarding {
			fwd = append(fwd, b)
		}
	}})
	e.must("ssh-add", k["ed"])
	args := append(sshd.SSHArgs("IdentityFile=none", "IdentityAgent="+e.sock, "ForwardAgent=yes"), "ssh-add", "-l")
	out := e.must("ssh", args...)
	if !strings.Contains(out, fingerprint(t, k["ed"]+".pub")) {
		t.Fatalf("remote ssh-add -l through the forwarded agent:\n%s", out)
	}
	hostPub, _ := os.ReadFile(sshd.HostKey + ".pub")
	want, _, _, _, _ := ssh.ParseAuthorizedKey(hostPub)
	mu.Lock()
	defer mu.Unlock()
	if len(fwd) == 0 {
		t.Fatalf("no forwarding bind; agent log:\n%s", e.logBuf.String())
	}
	if !bytes.Equal(fwd[0].HostKey.Marshal(), want.Marshal()) {
		t.Error("forwarding bind names another host key")
	}
}
