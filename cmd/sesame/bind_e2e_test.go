package main

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// Issue 19: an intermediate host whose RSA host key has a public exponent
// above 2^24 (which OpenSSH takes and x/crypto refuses) must not drop out
// of the chain of binds of the agent forwarded through it. Each test runs
// the same scenario against sesame and against OpenSSH's ssh-agent (the
// control), with real ssh -A through real sshd.

// bigExponent is the smallest prime above 2^32.
const bigExponent = "4294967311"

// bigHostWorld is a world with the intermediate host H (a large-exponent
// RSA host key) and the destination V, both in ~/.ssh/known_hosts; the
// user logs in to H with the key file "hkey", never through the agent.
type bigHostWorld struct {
	*e2eWorld
	h, v *testbed.SSHD
}

func newBigHostWorld(t *testing.T) *bigHostWorld {
	w := &bigHostWorld{e2eWorld: newE2EWorld(t)}
	w.h = w.serverWith(testbed.SSHDOptions{RSAHostKeyExponent: bigExponent})
	w.v = w.server(6)
	w.key("hkey")
	w.authorize(w.h, "hkey")
	return w
}

// farSide runs remote on H, logged in with the key file (H accepts no key
// of the agent's), with the agent at sock forwarded.
// The remote command goes through H's shell.
func (w *bigHostWorld) farSide(sock string, remote ...string) (string, error) {
	w.t.Helper()
	args := append([]string{"-i", w.keys["hkey"]}, w.sshArgs(w.h, "ForwardAgent=yes")...)
	return w.run([]string{"SSH_AUTH_SOCK=" + sock}, "ssh", append(args, remote...)...)
}

// farLogin logs in from H to V with the forwarded agent; true when it
// got in.
func (w *bigHostWorld) farLogin(sock string, before ...string) (bool, string) {
	w.t.Helper()
	inner := append(append(before, testbed.Path(w.t, "ssh")), w.sshArgs(w.v)...)
	out, err := w.farSide(sock, append(inner, "echo", "far-login-ok")...)
	return err == nil && strings.Contains(out, "far-login-ok"), out
}

// rawAgentScript sends each argument (hex) as one agent message on
// $SSH_AUTH_SOCK and prints each reply in hex, one a line.
const rawAgentScript = `import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["SSH_AUTH_SOCK"])
def recv(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("agent closed the connection")
        b += c
    return b
for m in sys.argv[1:]:
    m = bytes.fromhex(m)
    s.sendall(struct.pack(">I", len(m)) + m)
    print(recv(struct.unpack(">I", recv(4))[0]).hex(), flush=True)
`

// farRaw sends agent messages from H through the forwarded agent and
// returns the replies.
func (w *bigHostWorld) farRaw(sock string, msgs ...[]byte) []string {
	w.t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testbed.Missing(w.t, "/usr/bin/python3 not found")
	}
	script := filepath.Join(w.home, "raw-agent.py")
	os.WriteFile(script, []byte(rawAgentScript), 0o644)
	args := []string{py, script}
	for _, m := range msgs {
		args = append(args, hex.EncodeToString(m))
	}
	out, err := w.farSide(sock, args...)
	if err != nil {
		w.t.Fatalf("raw agent messages from H: %v\n%s", err, out)
	}
	var replies []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		b, err := hex.DecodeString(strings.TrimSpace(l))
		if err == nil {
			replies = append(replies, string(b))
		}
	}
	if len(replies) != len(msgs) {
		w.t.Fatalf("%d replies to %d messages:\n%s", len(replies), len(msgs), out)
	}
	return replies
}

func agentString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// probeWrapper puts an "ssh" first in PATH that logs each `ssh -G` (the
// pin policy's probe of its peer's configuration) and runs the real one.
func (w *bigHostWorld) probeWrapper() (pathEnv, log string) {
	w.t.Helper()
	dir := filepath.Join(w.home, "wrap")
	os.Mkdir(dir, 0o700)
	log = filepath.Join(dir, "probes.log")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$1\" in -G) echo \"$*\" >> %s;; esac\nexec %s \"$@\"\n", log, testbed.Path(w.t, "ssh"))
	os.WriteFile(filepath.Join(dir, "ssh"), []byte(script), 0o755)
	return "PATH=" + dir + ":" + os.Getenv("PATH"), log
}

// agentWith starts sesame's agent or ssh-agent (the control) with args
// and extra environment.
func (w *bigHostWorld) agentWith(which string, extraEnv []string, args ...string) *e2eAgent {
	w.t.Helper()
	sock := filepath.Join(w.t.TempDir(), which+".sock")
	a := &e2eAgent{sock: sock, stderr: &testbed.SyncBuffer{}, env: []string{"SSH_AUTH_SOCK=" + sock}}
	if which == "sesame" {
		a.cmd = exec.Command(w.bin, append([]string{"agent", "-D", "-a", sock}, args...)...)
	} else {
		a.cmd = exec.Command(testbed.Path(w.t, "ssh-agent"), append([]string{"-D", "-a", sock}, args...)...)
	}
	a.cmd.Env = append(append([]string(nil), w.env...), extraEnv...)
	a.cmd.Stderr = a.stderr
	w.startAgent(a, nil)
	return a
}

var agentsUnderTest = []string{"openssh", "sesame"}

// A plain login to a host whose RSA host key has a large exponent works
// through the agent, as with ssh-agent (sesame used to refuse the bind and
// then every signature on the connection).
func TestE2EBigExponentHostLogin(t *testing.T) {
	w := newBigHostWorld(t)
	w.key("k")
	w.authorize(w.h, "k")
	for _, which := range agentsUnderTest {
		t.Run(which, func(t *testing.T) {
			a := w.agentWith(which, nil)
			w.mustRun(a.env, "ssh-add", "-q", w.keys["k"])
			w.login(a, w.h)
		})
	}
}

// A key pinned to V (sesame pin) and a key added with `ssh-add -h V` never
// sign a login to V from the far side of an agent forwarded through H; a
// key allowed through H as well does (so the far-side login itself works),
// and sesame never runs its `ssh -G` probe for the far side's bind (that
// connection is not the local ssh's own login).
func TestE2EForwardedThroughBigExponentHost(t *testing.T) {
	w := newBigHostWorld(t)
	for _, k := range []string{"pinned", "hkeyed", "both"} {
		w.key(k)
		w.authorize(w.v, k)
	}
	v := hostPort(w.v)
	for _, which := range agentsUnderTest {
		t.Run(which, func(t *testing.T) {
			pathEnv, probes := w.probeWrapper()
			os.Remove(probes)
			a := w.agentWith(which, []string{pathEnv})
			// ssh-add -h V: only from here to V, never through H.
			w.mustRun(a.env, "ssh-add", "-q", "-H", w.knownHosts, "-h", v, w.keys["hkeyed"])
			if which == "sesame" {
				w.mustRun(a.env, "ssh-add", "-q", w.keys["pinned"])
				w.mustRun(nil, "sesame", "pin", v, w.keys["pinned"]+".pub")
				ok, out := w.farLogin(a.sock)
				if ok {
					t.Errorf("a key pinned to V signed a login to V from the far side of H:\n%s\nagent:\n%s", out, a.stderr)
				}
				w.mustRun(a.env, "ssh-add", "-q", "-d", w.keys["pinned"])
				// V's pins would hide every other key from V.
				w.mustRun(nil, "sesame", "unpin", v, w.keys["pinned"]+".pub")
			}
			// The local ssh's own login to H may be probed; nothing the
			// far side does may be (the marker is written from H).
			if ok, out := w.farLogin(a.sock, "echo", "far-side", ">>", probes, ";"); ok {
				t.Errorf("a key added with ssh-add -h V signed a login to V from the far side of H:\n%s\nagent:\n%s", out, a.stderr)
			}
			b, _ := os.ReadFile(probes)
			if _, after, ok := strings.Cut(string(b), "far-side\n"); !ok || strings.Contains(after, "-G") {
				t.Errorf("the agent probed the local ssh for the far side's bind:\n%s", b)
			}
			// The direct login to V still works with the -h key.
			w.login(a, w.v)
			// A key that may go through H: the far-side login works.
			w.mustRun(a.env, "ssh-add", "-q", "-D")
			if which == "sesame" {
				w.mustRun(a.env, "ssh-add", "-q", w.keys["both"])
				w.mustRun(nil, "sesame", "pin", hostPort(w.h), w.keys["both"]+".pub")
				w.mustRun(nil, "sesame", "pin", v, w.keys["both"]+".pub")
			} else {
				w.mustRun(a.env, "ssh-add", "-q", w.keys["both"])
			}
			if ok, out := w.farLogin(a.sock); !ok {
				t.Errorf("far-side login with a key allowed through H failed:\n%s\nagent:\n%s", out, a.stderr)
			}
		})
	}
}

// A PKCS#11 provider (ssh-add -s, and a hand-made ADD_SMARTCARD_KEY) and
// an sk-provider constraint (ssh-add -S) are never loaded from the far
// side of a forwarded agent, as in ssh-agent ("remote addition of
// providers is disabled"); the token's and the security key's keys are
// never listed at home afterwards.
func TestE2EForwardedProvidersRefused(t *testing.T) {
	w := newBigHostWorld(t)
	provider, conf, tokenPub := testbed.SoftHSM(t)
	tokenFP := fingerprintLine(t, tokenPub)
	sk := testbed.SKDummy(t)
	skKey := testbed.NewSKKey(t, sk, w.home, "ed25519-sk")
	skFP := fingerprintLine(t, readFileString(t, skKey+".pub"))
	askpass := filepath.Join(w.home, "pin-askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\necho 1234\n"), 0o755)
	pinEnv := []string{"env", "SSH_ASKPASS=" + askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "SOFTHSM2_CONF=" + conf}
	// ssh-agent matches the provider's real path against -P.
	real, err := filepath.EvalSymlinks(provider)
	if err != nil {
		t.Fatal(err)
	}
	allow := real + "," + sk
	for _, which := range agentsUnderTest {
		t.Run(which, func(t *testing.T) {
			a := w.agentWith(which, []string{"SOFTHSM2_CONF=" + conf}, "-P", allow)
			smartcard := agentString(agentString([]byte{20}, provider), "1234")
			constrained := append(agentString(agentString([]byte{26}, provider), "1234"), 1, 0, 0, 0, 60)
			for i, r := range w.farRaw(a.sock, smartcard, constrained) {
				if r != "\x05" {
					t.Errorf("hand-made ADD_SMARTCARD_KEY %d from the far side: reply %x, want SSH_AGENT_FAILURE", i, r)
				}
			}
			sshAdd := testbed.Path(t, "ssh-add")
			out, err := w.farSide(a.sock, append(pinEnv, sshAdd, "-s", provider)...)
			if err == nil {
				t.Errorf("ssh-add -s from the far side succeeded:\n%s", out)
			}
			out, err = w.farSide(a.sock, "env", "SSH_SK_PROVIDER=", sshAdd, "-S", sk, skKey)
			if err == nil {
				t.Errorf("ssh-add -S from the far side succeeded:\n%s", out)
			}
			list, _ := w.run(a.env, "ssh-add", "-l")
			if strings.Contains(list, tokenFP) || strings.Contains(list, skFP) {
				t.Errorf("a provider's key was loaded from the far side:\n%s\nagent:\n%s", list, a.stderr)
			}
			// The same requests at home load both: the refusals above are
			// for the far side, not for the providers.
			home := append([]string{"SSH_ASKPASS=" + askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "SOFTHSM2_CONF=" + conf}, a.env...)
			if out, err := w.run(home, "ssh-add", "-s", provider); err != nil {
				t.Errorf("ssh-add -s at home: %v\n%s\nagent:\n%s", err, out, a.stderr)
			}
			if out, err := w.run(append(a.env, "SSH_SK_PROVIDER="), "ssh-add", "-S", sk, skKey); err != nil {
				t.Errorf("ssh-add -S at home: %v\n%s\nagent:\n%s", err, out, a.stderr)
			}
			list, _ = w.run(a.env, "ssh-add", "-l")
			if !strings.Contains(list, tokenFP) || !strings.Contains(list, skFP) {
				t.Errorf("keys loaded at home not listed:\n%s", list)
			}
		})
	}
}

// sesame's private extensions (status@sesame, pins@sesame) answer the far
// side of a forwarded agent as ssh-agent answers an extension it does not
// know: SSH_AGENT_FAILURE, nothing else; the query lists none of them.
func TestE2EForwardedPrivateExtensionsRefused(t *testing.T) {
	w := newBigHostWorld(t)
	for _, which := range agentsUnderTest {
		t.Run(which, func(t *testing.T) {
			a := w.agentWith(which, nil)
			msgs := [][]byte{
				agentString([]byte{27}, "status@sesame"),
				agentString([]byte{27}, "pins@sesame"),
				agentString([]byte{27}, "query"),
			}
			r := w.farRaw(a.sock, msgs...)
			for i, name := range []string{"status@sesame", "pins@sesame"} {
				if r[i] != "\x05" {
					t.Errorf("%s from the far side: reply %q, want SSH_AGENT_FAILURE", name, r[i])
				}
			}
			if strings.Contains(r[2], "@sesame") {
				t.Errorf("query from the far side lists sesame's extensions: %q", r[2])
			}
			if which == "sesame" {
				// A local client still gets the status.
				if out, err := w.run(a.env, "sesame", "status"); err != nil {
					t.Errorf("sesame status at home: %v\n%s", err, out)
				}
			}
		})
	}
}

func readFileString(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fingerprintLine is the SHA256 fingerprint of a public key line.
func fingerprintLine(t *testing.T, line string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "k.pub")
	os.WriteFile(f, []byte(line+"\n"), 0o600)
	o, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-l", "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v\n%s", err, o)
	}
	return strings.Fields(string(o))[1]
}

// With -O allow-remote-pkcs11 (ssh-agent(1)), the far side may load a
// PKCS#11 provider, from sesame as from ssh-agent.
func TestE2EForwardedProvidersAllowRemote(t *testing.T) {
	w := newBigHostWorld(t)
	provider, conf, tokenPub := testbed.SoftHSM(t)
	tokenFP := fingerprintLine(t, tokenPub)
	askpass := filepath.Join(w.home, "pin-askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\necho 1234\n"), 0o755)
	pinEnv := []string{"env", "SSH_ASKPASS=" + askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "SOFTHSM2_CONF=" + conf}
	for _, which := range agentsUnderTest {
		t.Run(which, func(t *testing.T) {
			a := w.agentWith(which, []string{"SOFTHSM2_CONF=" + conf}, "-O", "allow-remote-pkcs11")
			out, err := w.farSide(a.sock, append(pinEnv, testbed.Path(t, "ssh-add"), "-s", provider)...)
			if err != nil {
				t.Errorf("ssh-add -s from the far side with -O allow-remote-pkcs11: %v\n%s\nagent:\n%s", err, out, a.stderr)
			}
			if list, _ := w.run(a.env, "ssh-add", "-l"); !strings.Contains(list, tokenFP) {
				t.Errorf("the token's key is not listed:\n%s", list)
			}
		})
	}
}
