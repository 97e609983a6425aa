package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// newCert certifies k's public key as a user certificate signed by a
// fresh CA.
func newCert(t *testing.T, k ed25519.PrivateKey) *ssh.Certificate {
	t.Helper()
	pub, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(mustEd25519(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, KeyId: "k",
		ValidPrincipals: []string{"u"}, ValidBefore: ssh.CertTimeInfinity}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

// A certificate inherits its key's constraints while the key is loaded:
// it needs the key's confirmation to sign, and goes when the key expires.
func TestCertificateInheritsKeyConstraints(t *testing.T) {
	t.Setenv("SSH_ASKPASS", "")
	srv := quietServer(Options{})
	k := mustEd25519(t)
	cert := newCert(t, k)
	if err := srv.AddKey(xagent.AddedKey{PrivateKey: k, ConfirmBeforeUse: true, LifetimeSecs: 2}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddKey(xagent.AddedKey{PrivateKey: k, Certificate: cert}); err != nil {
		t.Fatal(err)
	}
	ag := pipeAgent(t, srv)
	if _, err := ag.Sign(cert, []byte("x")); err == nil {
		t.Error("the certificate of a confirm-only key signed without confirmation")
	}
	if ids := srv.Identities(); len(ids) != 2 {
		t.Fatalf("%d identities, want the key and its certificate", len(ids))
	}
	waitFor(t, 10*time.Second, "the key to expire", func() bool { return len(srv.Identities()) == 0 })
	if _, err := ag.Sign(cert, []byte("x")); err == nil {
		t.Error("the certificate signed after its key expired")
	}
}

// A certificate loaded without constraints beside its key loaded with
// ssh-add -h is bound by the key's destination constraints too.
func TestCertificateInheritsDestinationConstraints(t *testing.T) {
	srv := quietServer(Options{})
	hostA, hostB := newHostKey(t), newHostKey(t)
	k := mustEd25519(t)
	cert := newCert(t, k)
	local := pipeAgent(t, srv)
	if err := local.Add(xagent.AddedKey{PrivateKey: k, ConstraintExtensions: []xagent.ConstraintExtension{
		destExtension(destRule{toHost: "host_a", to: []ssh.PublicKey{hostA.PublicKey()}})}}); err != nil {
		t.Fatal(err)
	}
	if err := local.Add(xagent.AddedKey{PrivateKey: k, Certificate: cert}); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Sign(cert, []byte("anything")); err == nil {
		t.Error("the certificate of a destination-constrained key signed on an unbound connection")
	}
	toB := pipeAgent(t, srv)
	sidB := bindTo(t, toB, hostB, false)
	if listed(t, toB, cert) {
		t.Error("the certificate is listed for a host its key may not go to")
	}
	if _, err := toB.Sign(cert, userauthData(sidB, "u", cert, hostB.PublicKey())); err == nil {
		t.Error("the certificate signed for a host its key may not go to")
	}
	toA := pipeAgent(t, srv)
	sidA := bindTo(t, toA, hostA, false)
	if _, err := toA.Sign(cert, userauthData(sidA, "u", cert, hostA.PublicKey())); err != nil {
		t.Errorf("the certificate refused for its key's host: %v", err)
	}
}
