package main

// End-to-end tests of certificates through the real `sesame agent`, sshd
// servers that trust a user CA (TrustedUserCAKeys) and the real ssh: a
// certificate is its key for every pin, and a client with the certificate
// on disk and the key in the agent logs in.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// userCA makes a user certificate authority and returns its key file.
func (w *e2eWorld) userCA() string {
	w.t.Helper()
	ca := filepath.Join(w.t.TempDir(), "user_ca")
	w.mustRun(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "user-ca", "-f", ca)
	return ca
}

// certify signs key name's public half with ca for principal, next to
// the key as name-cert.pub (where ssh-add and ssh look for it).
func (w *e2eWorld) certify(ca, name, principal string) ssh.PublicKey {
	w.t.Helper()
	w.mustRun(nil, "ssh-keygen", "-q", "-s", ca, "-I", name, "-n", principal, w.keys[name]+".pub")
	b, err := os.ReadFile(w.keys[name] + "-cert.pub")
	if err != nil {
		w.t.Fatal(err)
	}
	cert, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		w.t.Fatal(err)
	}
	return cert
}

// caServer starts an sshd that accepts certificates of ca and no plain key.
func (w *e2eWorld) caServer(ca string) *testbed.SSHD {
	w.t.Helper()
	return w.serverWith(testbed.SSHDOptions{MaxAuthTries: 6, Extra: "TrustedUserCAKeys " + ca + ".pub"})
}

// A key pinned to one host, loaded with its certificate (ssh-add loads
// -cert.pub beside the key): the certificate goes only where the key may.
// It is not offered to or signed for another host, nor through a hop the
// key is not pinned to, nor over arbitrary data on a bound connection;
// it is for the host the key is pinned to.
func TestE2ECertificateFollowsItsKeysPins(t *testing.T) {
	w := newE2EWorld(t)
	ca := w.userCA()
	hop, target, other := w.caServer(ca), w.caServer(ca), w.caServer(ca)
	w.key("hopkey")
	w.authorize(hop, "hopkey")
	w.key("k")
	cert := w.certify(ca, "k", target.User)
	a := w.sesameAgent([]string{"hopkey", "k"})
	if out := w.mustRun(a.env, "ssh-add", "-l"); !strings.Contains(out, "ED25519-CERT") {
		t.Fatalf("ssh-add did not load the certificate:\n%s", out)
	}
	w.mustRun(nil, "sesame", "pin", hostPort(hop), w.keys["hopkey"]+".pub")
	w.mustRun(nil, "sesame", "pin", hostPort(target), w.keys["k"]+".pub")
	proxy := newRecordingProxy(t, a.sock)
	pa := &e2eAgent{sock: proxy.sock, env: []string{"SSH_AUTH_SOCK=" + proxy.sock}, stderr: a.stderr}

	// The host the key is pinned to takes the certificate.
	w.login(pa, target)
	bindTarget := proxy.lastBind(t)
	if !signOnBind(t, a.sock, bindTarget, cert, target.User) {
		t.Error("the certificate was refused for the host its key is pinned to")
	}
	if signDataOnChain(t, a.sock, []agentFrame{bindTarget}, cert, []byte("not a userauth request")) {
		t.Error("the certificate of a pinned key signed arbitrary data on a bound connection")
	}

	// Another host (no pins of its own) gets neither.
	before := other.FailedPublickey()
	out, err := w.ssh(pa, other, nil, "echo", "logged-in")
	if err == nil || strings.Contains(out, "logged-in") {
		t.Fatalf("the certificate of a key pinned to %s logged in to %s:\n%s", hostPort(target), hostPort(other), out)
	}
	if n := other.FailedPublickey() - before; n != 0 {
		t.Errorf("the other host was offered %d keys, want none", n)
	}
	if signOnBind(t, a.sock, proxy.lastBind(t), cert, other.User) {
		t.Error("the agent signed for another host with the certificate of a pinned key")
	}

	// Through a hop the key is not pinned to: not offered, not signed.
	inner := strings.Join(append(append([]string{testbed.Path(t, "ssh")}, w.sshArgs(target)...), "echo", "from-hop"), " ")
	out, err = w.ssh(pa, hop, []string{"ForwardAgent=yes"}, inner)
	if err == nil || strings.Contains(out, "from-hop") {
		t.Fatalf("the hop logged in to the target with the certificate of a key not pinned to the hop:\n%s", out)
	}
	chain := proxy.longestChain()
	if len(chain) != 2 {
		t.Fatalf("the forwarded connection carried %d binds, want 2 (hop, target)", len(chain))
	}
	if signOnChain(t, a.sock, chain, cert, target.User) {
		t.Error("the agent signed through the hop with the certificate of a key not pinned to the hop")
	}
}

// The certificate on disk (CertificateFile) and only the key in the
// agent: ssh asks the key to sign a request that names the certificate,
// which the agent accepts as the same key, pinned or not.
func TestE2ECertificateFileWithKeyInAgent(t *testing.T) {
	w := newE2EWorld(t)
	ca := w.userCA()
	s := w.caServer(ca)
	w.key("k")
	a := w.sesameAgent([]string{"k"})
	w.certify(ca, "k", s.User)
	certFile := "CertificateFile=" + w.keys["k"] + "-cert.pub"
	for _, pinned := range []bool{false, true} {
		if pinned {
			w.mustRun(nil, "sesame", "pin", hostPort(s), w.keys["k"]+".pub")
		}
		out, err := w.ssh(a, s, []string{certFile}, "echo", "logged-in")
		if err != nil || !strings.Contains(out, "logged-in") {
			log, _ := os.ReadFile(s.Log)
			t.Fatalf("login with the certificate file and the key in the agent (pinned %v): %v\n%s\nagent:\n%s\nsshd log:\n%s",
				pinned, err, out, a.stderr, log)
		}
	}
}

// The client's explicit choice with a certificate on disk: three plain
// keys in the agent, which offers an unpinned server one (max-offer 1),
// and ssh with IdentitiesOnly, IdentityFile k3 (its private half only in
// the agent) and CertificateFile k3-cert.pub: the agent lists k3 for it,
// and the login with the certificate works on the first try.
func TestE2ECertificateFileIdentitiesOnly(t *testing.T) {
	w := newE2EWorld(t)
	ca := w.userCA()
	s := w.caServer(ca)
	for _, n := range []string{"k1", "k2", "k3"} {
		w.key(n)
	}
	a := w.sesameAgent([]string{"k1", "k2", "k3"}, "--max-offer=1")
	w.certify(ca, "k3", s.User)
	os.Remove(w.keys["k3"]) // only k3.pub on disk: ssh must use the agent
	out, err := w.ssh(a, s, []string{"IdentitiesOnly=yes", "IdentityFile=" + w.keys["k3"],
		"CertificateFile=" + w.keys["k3"] + "-cert.pub"}, "echo", "cert-login")
	if err != nil || !strings.Contains(out, "cert-login") {
		t.Fatalf("ssh with CertificateFile and IdentitiesOnly: %v\n%s\nagent:\n%s", err, out, a.stderr)
	}
	if n := s.FailedPublickey(); n != 0 {
		t.Errorf("%d rejected keys", n)
	}
}
