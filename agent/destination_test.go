package agent

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// destHopWire encodes a hop as ssh-add does: user, host, reserved, then
// (key, is_ca) pairs.
func destHopWire(user, host string, keys []ssh.PublicKey, ca bool) []byte {
	b := ssh.Marshal(struct{ U, H, R string }{user, host, ""})
	for _, k := range keys {
		b = append(b, ssh.Marshal(struct {
			K  []byte
			CA bool
		}{k.Marshal(), ca})...)
	}
	return b
}

// destRule is one constraint for the test: from (nil: origin) to host.
type destRule struct {
	fromHost string
	from     []ssh.PublicKey
	toUser   string
	toHost   string
	to       []ssh.PublicKey
	toCA     bool
}

func destExtension(rules ...destRule) xagent.ConstraintExtension {
	var details []byte
	for _, r := range rules {
		c := ssh.Marshal(struct{ F, T, R []byte }{
			destHopWire("", r.fromHost, r.from, false),
			destHopWire(r.toUser, r.toHost, r.to, r.toCA), nil})
		details = append(details, ssh.Marshal(struct{ C []byte }{c})...)
	}
	return xagent.ConstraintExtension{ExtensionName: ExtRestrictDestination, ExtensionDetails: details}
}

// userauthData is what ssh asks the agent to sign for publickey
// authentication (hostbound when host is not nil).
func userauthData(sid []byte, user string, key ssh.PublicKey, host ssh.PublicKey) []byte {
	method := MethodPublickey
	if host != nil {
		method = MethodHostbound
	}
	b := ssh.Marshal(struct {
		SID    []byte
		Type   byte
		User   string
		Svc    string
		Method string
		Sig    bool
		Algo   string
		Key    []byte
	}{sid, msgUserauthRequest, user, "ssh-connection", method, true, key.Type(), key.Marshal()})
	if host != nil {
		b = append(b, ssh.Marshal(struct{ H []byte }{host.Marshal()})...)
	}
	return b
}

// bindTo binds the connection to host (forwarding or not) and returns the
// session id.
func bindTo(t *testing.T, ag xagent.ExtendedAgent, host ssh.Signer, fwd bool) []byte {
	t.Helper()
	sid := randBytes(32)
	if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, fwd)); err != nil {
		t.Fatalf("bind: %v", err)
	}
	return sid
}

func listed(t *testing.T, ag xagent.ExtendedAgent, pub ssh.PublicKey) bool {
	t.Helper()
	keys, err := ag.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if string(k.Blob) == string(pub.Marshal()) {
			return true
		}
	}
	return false
}

// ssh-add -h host: the key is listed and signs only for that host, from
// the origin; locally (unbound) it is listed but signs nothing.
func TestDestinationConstraintBasic(t *testing.T) {
	srv := quietServer(Options{})
	hostA, hostB := newHostKey(t), newHostKey(t)
	key := mustEd25519(t)
	pub, _ := ssh.NewPublicKey(key.Public())
	local := pipeAgent(t, srv)
	if err := local.Add(xagent.AddedKey{PrivateKey: key, Comment: "a",
		ConstraintExtensions: []xagent.ConstraintExtension{destExtension(destRule{toHost: "host_a", to: []ssh.PublicKey{hostA.PublicKey()}})}}); err != nil {
		t.Fatalf("add with -h: %v", err)
	}
	if !listed(t, local, pub) {
		t.Error("not listed on an unbound connection")
	}
	if _, err := local.Sign(pub, userauthData(randBytes(32), "u", pub, nil)); err == nil {
		t.Error("signed on an unbound connection")
	}

	toA := pipeAgent(t, srv)
	sid := bindTo(t, toA, hostA, false)
	if !listed(t, toA, pub) {
		t.Fatal("not listed for its host")
	}
	if _, err := toA.Sign(pub, userauthData(sid, "u", pub, hostA.PublicKey())); err != nil {
		t.Errorf("refused for its host: %v", err)
	}
	if _, err := toA.Sign(pub, []byte("SSHSIG not userauth")); err == nil {
		t.Error("signed something that is not a userauth request")
	}

	toB := pipeAgent(t, srv)
	sidB := bindTo(t, toB, hostB, false)
	if listed(t, toB, pub) {
		t.Error("listed for another host")
	}
	if _, err := toB.Sign(pub, userauthData(sidB, "u", pub, hostB.PublicKey())); err == nil {
		t.Error("signed for another host")
	}
	if err := toB.Remove(pub); err == nil {
		t.Error("removed through a connection that may not see it")
	}
}

// Multi-hop: a>b allows forwarding through a to b, and nothing beyond.
func TestDestinationConstraintHops(t *testing.T) {
	srv := quietServer(Options{})
	hostA, hostB, hostC := newHostKey(t), newHostKey(t), newHostKey(t)
	key := mustEd25519(t)
	pub, _ := ssh.NewPublicKey(key.Public())
	a, b := []ssh.PublicKey{hostA.PublicKey()}, []ssh.PublicKey{hostB.PublicKey()}
	local := pipeAgent(t, srv)
	ext := destExtension(destRule{toHost: "host_a", to: a},
		destRule{fromHost: "host_a", from: a, toUser: "al*", toHost: "host_b", to: b})
	if err := local.Add(xagent.AddedKey{PrivateKey: key, ConstraintExtensions: []xagent.ConstraintExtension{ext}}); err != nil {
		t.Fatal(err)
	}

	// On host_a (agent forwarded there): listed, since it may go on to b.
	onA := pipeAgent(t, srv)
	bindTo(t, onA, hostA, true)
	if !listed(t, onA, pub) {
		t.Error("not listed on a forwarding hop it may be used beyond")
	}
	// From host_a to host_b as alice: signs.
	sid := bindTo(t, onA, hostB, false)
	if _, err := onA.Sign(pub, userauthData(sid, "alice", pub, hostB.PublicKey())); err != nil {
		t.Errorf("a>b refused: %v", err)
	}

	// Wrong user at the last hop.
	onA2 := pipeAgent(t, srv)
	bindTo(t, onA2, hostA, true)
	sid = bindTo(t, onA2, hostB, false)
	if _, err := onA2.Sign(pub, userauthData(sid, "bob", pub, hostB.PublicKey())); err == nil {
		t.Error("signed for a user the rule does not name")
	}
	// Not hostbound through a forwarded agent.
	if _, err := onA2.Sign(pub, userauthData(sid, "alice", pub, nil)); err == nil {
		t.Error("signed a non-hostbound request through a forwarded agent")
	}

	// Forwarded to b and on to c: b>c is not allowed, and on b the key
	// is not listed (it may not be used beyond b).
	onB := pipeAgent(t, srv)
	bindTo(t, onB, hostA, true)
	bindTo(t, onB, hostB, true)
	if listed(t, onB, pub) {
		t.Error("listed on a hop it may not be used beyond")
	}
	sid = bindTo(t, onB, hostC, false)
	if _, err := onB.Sign(pub, userauthData(sid, "alice", pub, hostC.PublicKey())); err == nil {
		t.Error("a>b>c signed without a b>c rule")
	}
}

// A host certificate matches a CA rule when it names the rule's host.
func TestDestinationConstraintHostCertificate(t *testing.T) {
	ca, hostD := newHostKey(t), newHostKey(t)
	cert := &ssh.Certificate{Key: hostD.PublicKey(), CertType: ssh.HostCert, KeyId: "d",
		ValidPrincipals: []string{"host_d"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	cas := []ssh.PublicKey{ca.PublicKey()}
	rule := func(host string) []DestConstraint {
		return []DestConstraint{{To: DestHop{Host: host, Keys: []DestKey{{Key: cas[0], IsCA: true}}}}}
	}
	binds := []Bind{{HostKey: cert, SessionID: randBytes(32)}}
	if err := destPermitted(rule("host_d"), binds, nil); err != nil {
		t.Errorf("certificate naming host_d: %v", err)
	}
	if err := destPermitted(rule("host_e"), binds, nil); !errors.Is(err, ErrDestination) {
		t.Errorf("certificate for host_d allowed host_e: %v", err)
	}
	expired := *cert
	expired.ValidBefore = uint64(time.Now().Add(-time.Hour).Unix())
	expired.SignCert(rand.Reader, ca)
	if err := destPermitted(rule("host_d"), []Bind{{HostKey: &expired, SessionID: randBytes(32)}}, nil); err == nil {
		t.Error("expired certificate allowed")
	}
}

// Constraints survive a lock and unlock.
func TestDestinationConstraintAcrossLock(t *testing.T) {
	srv := quietServer(Options{})
	hostA, hostB := newHostKey(t), newHostKey(t)
	key := mustEd25519(t)
	pub, _ := ssh.NewPublicKey(key.Public())
	local := pipeAgent(t, srv)
	if err := local.Add(xagent.AddedKey{PrivateKey: key, ConstraintExtensions: []xagent.ConstraintExtension{
		destExtension(destRule{toHost: "host_a", to: []ssh.PublicKey{hostA.PublicKey()}})}}); err != nil {
		t.Fatal(err)
	}
	if err := local.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := local.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	toB := pipeAgent(t, srv)
	bindTo(t, toB, hostB, false)
	if listed(t, toB, pub) {
		t.Error("constraint lost across lock and unlock")
	}
}

func FuzzParseDestConstraints(f *testing.F) {
	k := newHostKey(f).PublicKey()
	f.Add(destExtension(destRule{toHost: "h", to: []ssh.PublicKey{k}}).ExtensionDetails)
	f.Add(destExtension(destRule{fromHost: "a", from: []ssh.PublicKey{k}, toUser: "u*", toHost: "b", to: []ssh.PublicKey{k}, toCA: true}).ExtensionDetails)
	f.Add([]byte{0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := parseDestConstraints(b)
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.To.Host == "" || len(c.To.Keys) == 0 || c.From.User != "" {
				t.Fatalf("inconsistent constraint accepted: %+v", c)
			}
			_ = c.String()
		}
	})
}

func TestMatchWildcard(t *testing.T) {
	for _, tc := range []struct {
		s, p string
		ok   bool
	}{
		{"alice", "alice", true}, {"alice", "al*", true}, {"alice", "*", true}, {"alice", "a?ice", true},
		{"alice", "bob", false}, {"alice", "--BADUSER", false}, {"", "*", true}, {"al", "al?", false},
		{"alice", "*ce", true}, {"alice", "*x*", false},
	} {
		if got := matchWildcard(tc.s, tc.p); got != tc.ok {
			t.Errorf("matchWildcard(%q, %q) = %v", tc.s, tc.p, got)
		}
	}
}
