package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sesame-ssh/sesame/agent"
)

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fp(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// userauthMsg is the RFC 4252 §7 signed data, built with x/crypto's wire
// marshalling rather than our parser's own code.
type userauthMsg struct {
	SessionID []byte
	Type      byte
	User      string
	Service   string
	Method    string
	HasSig    bool
	Algo      string
	Key       []byte
}

type hostboundMsg struct {
	SessionID []byte
	Type      byte
	User      string
	Service   string
	Method    string
	HasSig    bool
	Algo      string
	Key       []byte
	HostKey   []byte
}

func userauth(sid []byte, user string, key ssh.PublicKey) []byte {
	return ssh.Marshal(userauthMsg{sid, 50, user, "ssh-connection", "publickey", true, key.Type(), key.Marshal()})
}

func hostbound(sid []byte, user string, key, hostKey ssh.PublicKey) []byte {
	return ssh.Marshal(hostboundMsg{sid, 50, user, "ssh-connection", MethodHostbound, true, key.Type(), key.Marshal(), hostKey.Marshal()})
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pat  string
		name string
		want bool
	}{
		{"login.example.org", "login.example.org", true},
		{"login.example.org", "LOGIN.Example.org", true},
		{"login.example.org", "[login.example.org]:2222", true}, // no port: every port
		{"login.example.org", "login.example.com", false},
		{"*.example.org", "a.example.org", true},
		{"*.example.org", "example.org", false},
		{"node??.example.org", "node07.example.org", true},
		{"node??.example.org", "node7.example.org", false},
		{"*.example.org,!gw.example.org", "gw.example.org", false},
		{"*.example.org,!gw.example.org", "n1.example.org", true},
		{"!gw.example.org,*.example.org", "gw.example.org", false},
		{"a,b,c", "b", true},
		{"[git.example.org]:2222", "[git.example.org]:2222", true},
		{"[git.example.org]:2222", "git.example.org", false},
		{"[*.example.org]:2222", "[x.example.org]:2222", true},
		{"[*.example.org]:2222", "[x.example.org]:22", false},
		{"*", "anything", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"10.0.0.*", "10.0.0.7", true},
	}
	for _, c := range cases {
		p, err := ParsePatterns(c.pat)
		if err != nil {
			t.Fatalf("%q: %v", c.pat, err)
		}
		n, err := ParseName(c.name)
		if err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		if got := p.Match(n); got != c.want {
			t.Errorf("%q matches %q: got %v, want %v", c.pat, c.name, got, c.want)
		}
	}
	for _, bad := range []string{"", "!a", "a,,b", "a b", "[a:22", "[a]:x", "[a]:70000", "a@b", "[]:22"} {
		if _, err := ParsePatterns(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func TestWildMatchNoBlowup(t *testing.T) {
	pat := strings.Repeat("*a", 200) + "b"
	if wildMatch(pat, strings.Repeat("a", 5000)) {
		t.Fatal("matched")
	}
}

const fpA = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
const fpB = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

func TestParsePins(t *testing.T) {
	good := `# my pins
alice@login.cluster.example.org  ` + fpA + `  # work
*.cluster.example.org,!gw.cluster.example.org ` + fpB + `
[git.example.org]:2222	` + fpA + `
hostkey ` + fpB + ` ` + fpA + `
hostkey bob@` + fpB + ` ` + fpB + `

`
	pins, err := ParsePins([]byte(good), "pins")
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 5 {
		t.Fatalf("got %d pins", len(pins))
	}
	if pins[0].User != "alice" || pins[0].Comment != "work" || pins[0].Line != 2 || pins[0].Key != fpA {
		t.Errorf("pin 0: %+v", pins[0])
	}
	if pins[3].HostKey != fpB || pins[4].User != "bob" || pins[4].Line != 6 {
		t.Errorf("host key pins: %+v %+v", pins[3], pins[4])
	}
	// The line written back parses to the same pin.
	for _, p := range pins {
		q, ok, err := parsePinLine(p.String())
		if err != nil || !ok || q.Target() != p.Target() || q.Key != p.Key || q.Comment != p.Comment {
			t.Errorf("round trip of %q: %+v %v", p.String(), q, err)
		}
	}

	bad := []struct {
		text string
		line int
		msg  string
	}{
		{"host " + fpA + "\nhost SHA256:short\n", 2, "not a valid SHA256"},
		{"\n\nhost\n", 3, "expected"},
		{"host " + fpA + " extra\n", 1, "expected"},
		{"!host " + fpA + "\n", 1, "only negations"},
		{"hostkey notafp " + fpA + "\n", 1, "host key"},
		{"host md5:aa:bb\n", 1, "not a SHA256"},
		{"a,,b " + fpA + "\n", 1, "empty element"},
		{"[h]:99999 " + fpA + "\n", 1, "bad port"},
	}
	for _, b := range bad {
		_, err := ParsePins([]byte(b.text), "/x/pins")
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: want ParseError, got %v", b.text, err)
			continue
		}
		if pe.Line != b.line || !strings.Contains(err.Error(), b.msg) || !strings.Contains(err.Error(), fmt.Sprintf("/x/pins line %d", b.line)) {
			t.Errorf("%q: got %v", b.text, err)
		}
	}
}

func TestAddRemovePins(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cfg", "pins")
	p, _ := ParseTarget("alice@login.example.org")
	p.Key = fpA
	if ch, err := AddPin(f, p); err != nil || !ch {
		t.Fatal(ch, err)
	}
	if ch, err := AddPin(f, p); err != nil || ch {
		t.Fatal("duplicate added", ch, err)
	}
	q, _ := ParseTarget("login.example.org")
	q.Key = fpB
	AddPin(f, q)
	os.WriteFile(f, append(mustRead(t, f), "# keep me\n"...), 0o600)
	removed, err := RemovePins(f, p, "")
	if err != nil || len(removed) != 1 {
		t.Fatal(removed, err)
	}
	data := string(mustRead(t, f))
	if strings.Contains(data, "alice@") || !strings.Contains(data, "# keep me") || !strings.Contains(data, fpB) {
		t.Fatalf("after remove:\n%s", data)
	}
	fi, _ := os.Stat(f)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	// A broken file is never appended to.
	os.WriteFile(f, []byte("garbage\n"), 0o600)
	if _, err := AddPin(f, p); err == nil {
		t.Fatal("added behind a bad line")
	}
}

func mustRead(t testing.TB, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func authLine(marker string, hosts string, k ssh.PublicKey) string {
	l := hosts + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if marker != "" {
		l = marker + " " + l
	}
	return l + "\n"
}

func hostCertFor(t testing.TB, ca ssh.Signer, hostKey ssh.PublicKey, principals ...string) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{Key: hostKey, CertType: ssh.HostCert, ValidPrincipals: principals,
		ValidAfter: 0, ValidBefore: ssh.CertTimeInfinity, KeyId: "test"}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKnownHosts(t *testing.T) {
	h1, h2, h3, h4, ca := newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t)
	var kh strings.Builder
	kh.WriteString("# comment\n\n")
	kh.WriteString(authLine("", "login.example.org,10.0.0.1", h1))
	kh.WriteString(authLine("", knownhosts.HashHostname("hidden.example.org"), h2))
	kh.WriteString(authLine("", knownhosts.HashHostname("[hidden.example.org]:2222"), h3))
	kh.WriteString(authLine("", "[git.example.org]:2222", h3))
	kh.WriteString(authLine("", "*.wild.example.org,!bad.wild.example.org", h4))
	kh.WriteString(authLine("@cert-authority", "*.cluster.example.org", ca.PublicKey()))
	kh.WriteString(authLine("", "changed.example.org", h2))
	kh.WriteString("this line is bad\n")
	kh.WriteString("@bogus host ssh-ed25519 AAAA\n")
	k := ParseKnownHosts([]byte(kh.String()), "kh")
	if len(k.Warnings) != 2 || !strings.Contains(k.Warnings[0], "kh:10:") {
		t.Errorf("warnings: %q", k.Warnings)
	}
	n := func(s string) Name { x, _ := ParseName(s); return x }

	if got := k.Names(h1, nil); len(got) != 2 || got[0] != n("login.example.org") || got[1] != n("10.0.0.1") {
		t.Errorf("names of h1: %v", got)
	}
	// Hashed entries are found only by testing a candidate.
	if got := k.Names(h2, nil); len(got) != 1 || got[0] != n("changed.example.org") {
		t.Errorf("names of h2 without candidates: %v", got)
	}
	if got := k.Names(h2, []Name{n("hidden.example.org"), n("other.example.org")}); len(got) != 2 {
		t.Errorf("names of h2 with candidates: %v", got)
	}
	if !k.HasKey(n("[hidden.example.org]:2222"), h3) || k.HasKey(n("hidden.example.org"), h3) {
		t.Error("hashed [host]:port")
	}
	if got := k.Names(h3, nil); len(got) != 1 || got[0] != n("[git.example.org]:2222") {
		t.Errorf("names of h3: %v", got)
	}
	if !k.HasKey(n("a.wild.example.org"), h4) || k.HasKey(n("bad.wild.example.org"), h4) {
		t.Error("wildcard / negation")
	}
	// Mismatch: the name is known, with another key.
	var me *MismatchError
	if err := k.Check(n("login.example.org"), h2); !errors.As(err, &me) || me.Known[0] != fp(h1) {
		t.Errorf("mismatch: %v", err)
	}
	if k.HasKey(n("login.example.org"), h2) {
		t.Error("mismatched key matched")
	}
	if err := k.Check(n("nowhere.example.org"), h1); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("unknown: %v", err)
	}
	// Host certificates signed by a listed CA match the CA's names.
	hk := newSigner(t).PublicKey()
	cert := hostCertFor(t, ca, hk, "n1.cluster.example.org", "n1")
	if got := k.Names(cert, nil); len(got) != 1 || got[0] != n("n1.cluster.example.org") {
		t.Errorf("cert names: %v", got)
	}
	if k.HasKey(n("n2.cluster.example.org"), cert) {
		t.Error("cert matched a name outside its principals")
	}
	other := newSigner(t)
	if got := k.Names(hostCertFor(t, other, hk, "n1.cluster.example.org"), nil); len(got) != 0 {
		t.Errorf("cert by an unknown CA: %v", got)
	}
	if got := k.Names(hostCertFor(t, ca, hk), []Name{n("n1.cluster.example.org")}); len(got) != 0 {
		t.Errorf("cert without principals: %v", got)
	}

	// @revoked: the key never matches, directly or as a certificate's CA.
	k2 := ParseKnownHosts([]byte(kh.String()+authLine("@revoked", "*", h1)+authLine("@revoked", "*", ca.PublicKey())), "kh")
	if k2.HasKey(n("login.example.org"), h1) || len(k2.Names(h1, nil)) != 0 {
		t.Error("revoked key matched")
	}
	if err := k2.Check(n("login.example.org"), h1); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked: %v", err)
	}
	if len(k2.Names(cert, nil)) != 0 {
		t.Error("cert of a revoked CA matched")
	}
}

func TestUserauthParse(t *testing.T) {
	k := newSigner(t).PublicKey()
	hk := newSigner(t).PublicKey()
	sid := []byte("0123456789abcdef0123456789abcdef")
	u, err := ParseUserauthRequest(userauth(sid, "alice", k))
	if err != nil || u.User != "alice" || string(u.SessionID) != string(sid) || u.Method != MethodPublickey || string(u.Key) != string(k.Marshal()) {
		t.Fatalf("%+v %v", u, err)
	}
	u, err = ParseUserauthRequest(hostbound(sid, "bob", k, hk))
	if err != nil || u.User != "bob" || string(u.HostKey) != string(hk.Marshal()) {
		t.Fatalf("%+v %v", u, err)
	}
	good := userauth(sid, "alice", k)
	for i := 0; i < len(good); i++ {
		if _, err := ParseUserauthRequest(good[:i]); !errors.Is(err, ErrNotUserauth) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := ParseUserauthRequest(append(good, 0)); !errors.Is(err, ErrNotUserauth) {
		t.Fatal("trailing byte accepted")
	}
	if _, err := ParseUserauthRequest([]byte("SSHSIG\x00\x00\x00\x01")); !errors.Is(err, ErrNotUserauth) {
		t.Fatal("sshsig accepted")
	}
	probe := ssh.Marshal(struct {
		SessionID []byte
		Type      byte
		User      string
		Service   string
		Method    string
		HasSig    bool
		Algo      string
		Key       []byte
	}{sid, 50, "a", "ssh-connection", "publickey", false, k.Type(), k.Marshal()})
	if _, err := ParseUserauthRequest(probe); err == nil {
		t.Fatal("a request without signature flag accepted")
	}
}

// world is a policy on temp files with real host keys and client keys.
type world struct {
	t       *testing.T
	dir     string
	pins    string
	learned string
	kh      string
	p       *Policy
	now     time.Time
}

func newWorld(t *testing.T, khText string) *world {
	w := &world{t: t, dir: t.TempDir(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	w.pins = filepath.Join(w.dir, "pins")
	w.learned = filepath.Join(w.dir, "learned.json")
	w.kh = filepath.Join(w.dir, "known_hosts")
	os.WriteFile(w.kh, []byte(khText), 0o600)
	w.p = New(Options{PinsFile: w.pins, LearnedFile: w.learned, KnownHostsFiles: []string{w.kh},
		Now:    func() time.Time { w.now = w.now.Add(time.Second); return w.now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { w.p.Close() })
	return w
}

func (w *world) setPins(text string) {
	w.t.Helper()
	// A different size or a rename is what the policy notices; rename also
	// mimics editors that replace the file.
	tmp := w.pins + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, w.pins); err != nil {
		w.t.Fatal(err)
	}
}

func bound(hostKeys ...ssh.PublicKey) *agent.ConnInfo {
	c := &agent.ConnInfo{}
	for i, hk := range hostKeys {
		c.Binds = append(c.Binds, agent.Bind{HostKey: hk, SessionID: []byte(fmt.Sprintf("session-%d-%s", i, fp(hk))), Forwarding: i < len(hostKeys)-1})
	}
	return c
}

func ids(keys ...ssh.PublicKey) []agent.Identity {
	var out []agent.Identity
	for i, k := range keys {
		out = append(out, agent.Identity{Key: k, Comment: fmt.Sprintf("key%d", i)})
	}
	return out
}

func fps(list []agent.Identity) string {
	var s []string
	for _, id := range list {
		s = append(s, id.Comment)
	}
	return strings.Join(s, ",")
}

func TestPolicyOfferAndSign(t *testing.T) {
	hA, hB, hC := newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "a.example.org", hA)+authLine("", knownhosts.HashHostname("b.example.org"), hB)+authLine("", "c.example.org", hC))
	var keys []ssh.PublicKey
	for i := 0; i < 6; i++ {
		keys = append(keys, newSigner(t).PublicKey())
	}
	all := ids(keys...)
	w.setPins(fmt.Sprintf("a.example.org %s\nalice@b.example.org %s\nhostkey %s %s\n", fp(keys[5]), fp(keys[4]), fp(hC), fp(keys[3])))
	if err := w.p.Err(); err != nil {
		t.Fatal(err)
	}

	// Unbound: everything, unchanged order.
	if got := fps(w.p.Offer(&agent.ConnInfo{}, all)); got != "key0,key1,key2,key3,key4,key5" {
		t.Errorf("unbound: %s", got)
	}
	// Pinned by name, by hashed name, by host key.
	if got := fps(w.p.Offer(bound(hA), all)); got != "key5" {
		t.Errorf("a: %s", got)
	}
	if got := fps(w.p.Offer(bound(hB), all)); got != "key4" {
		t.Errorf("b: %s", got)
	}
	if got := fps(w.p.Offer(bound(hC), all)); got != "key3" {
		t.Errorf("c: %s", got)
	}
	// Unpinned host: unpinned keys only, at most MaxOffer.
	hD := newSigner(t).PublicKey()
	if got := fps(w.p.Offer(bound(hD), all)); got != "key0,key1" {
		t.Errorf("unpinned: %s", got)
	}

	// Signing.
	cA := bound(hA)
	sid := cA.Binds[0].SessionID
	if err := w.p.CheckSign(cA, keys[5], userauth(sid, "root", keys[5])); err != nil {
		t.Errorf("pinned key on its host: %v", err)
	}
	if err := w.p.CheckSign(cA, keys[0], userauth(sid, "root", keys[0])); err == nil {
		t.Error("unpinned key signed for a pinned host")
	}
	if err := w.p.CheckSign(bound(hD), keys[5], userauth(bound(hD).Binds[0].SessionID, "root", keys[5])); err == nil {
		t.Error("key pinned to a signed for another host")
	}
	if err := w.p.CheckSign(cA, keys[5], userauth([]byte("another-session"), "root", keys[5])); !errors.Is(err, ErrSessionMismatch) {
		t.Errorf("session mismatch: %v", err)
	}
	if err := w.p.CheckSign(cA, keys[5], userauth(sid, "root", keys[4])); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("key mismatch: %v", err)
	}
	if err := w.p.CheckSign(cA, keys[5], hostbound(sid, "root", keys[5], hA)); err != nil {
		t.Errorf("hostbound: %v", err)
	}
	if err := w.p.CheckSign(cA, keys[5], hostbound(sid, "root", keys[5], hB)); !errors.Is(err, ErrHostKeyMismatch) {
		t.Errorf("hostbound mismatch: %v", err)
	}
	// User part: alice@b takes key4, bob on b is not pinned, so key4
	// (pinned to alice@b only) is refused and an unpinned key is fine.
	cB := bound(hB)
	sidB := cB.Binds[0].SessionID
	if err := w.p.CheckSign(cB, keys[4], userauth(sidB, "alice", keys[4])); err != nil {
		t.Errorf("alice: %v", err)
	}
	if err := w.p.CheckSign(cB, keys[4], userauth(sidB, "bob", keys[4])); err == nil {
		t.Error("bob signed with alice's pinned key")
	}
	if err := w.p.CheckSign(cB, keys[0], userauth(sidB, "bob", keys[0])); err != nil {
		t.Errorf("bob with an unpinned key: %v", err)
	}
	// Non-userauth data: allowed unbound; on a bound connection only for
	// keys without pins.
	sshsig := []byte("SSHSIG\x00\x00\x00\x04file")
	if err := w.p.CheckSign(&agent.ConnInfo{}, keys[5], sshsig); err != nil {
		t.Errorf("unbound sshsig: %v", err)
	}
	if err := w.p.CheckSign(cA, keys[5], sshsig); !errors.Is(err, ErrUnidentified) {
		t.Errorf("bound sshsig with a pinned key: %v", err)
	}
	if err := w.p.CheckSign(cA, keys[0], sshsig); err != nil {
		t.Errorf("bound sshsig with an unpinned key: %v", err)
	}
}

func TestPolicyForwardingChain(t *testing.T) {
	hJ, hT, hS := newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "jump", hJ)+authLine("", "target", hT)+authLine("", "secret", hS))
	kT, kS, kFree := newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey()
	// kT may go through the jump host to the target; kS only directly to
	// secret.
	w.setPins(fmt.Sprintf("jump,target %s\nsecret %s\n", fp(kT), fp(kS)))
	all := ids(kT, kS, kFree)

	viaJ := bound(hJ, hT)
	sid := viaJ.Binds[1].SessionID
	if err := w.p.CheckSign(viaJ, kT, hostbound(sid, "u", kT, hT)); err != nil {
		t.Errorf("kT via jump to target: %v", err)
	}
	// On a forwarded chain a pinned key signs only a hostbound request,
	// which names the server it is for (OpenSSH's rule for
	// destination-constrained keys); an unpinned key signs either.
	if err := w.p.CheckSign(viaJ, kT, userauth(sid, "u", kT)); !errors.Is(err, ErrNotHostbound) {
		t.Errorf("kT via jump, publickey without the host key: %v", err)
	}
	free := bound(newSigner(t).PublicKey(), newSigner(t).PublicKey())
	if err := w.p.CheckSign(free, kFree, userauth(free.Binds[1].SessionID, "u", kFree)); err != nil {
		t.Errorf("unpinned key via jump, publickey without the host key: %v", err)
	}
	if err := w.p.CheckSign(bound(hT), kT, userauth(bound(hT).Binds[0].SessionID, "u", kT)); err != nil {
		t.Errorf("kT directly, publickey without the host key: %v", err)
	}
	if got := fps(w.p.Offer(viaJ, all)); got != "key0" {
		t.Errorf("offer via jump: %s", got)
	}
	// A compromised jump host uses the forwarded agent against secret: kS
	// is pinned to secret, but not permitted on the jump hop.
	toS := bound(hJ, hS)
	if err := w.p.CheckSign(toS, kS, hostbound(toS.Binds[1].SessionID, "u", kS, hS)); err == nil || !strings.Contains(err.Error(), "hop 1") {
		t.Errorf("kS through jump: %v", err)
	}
	if got := fps(w.p.Offer(toS, all)); got != "" {
		t.Errorf("offer to secret via jump: %q", got)
	}
	// Directly, kS works on secret.
	if err := w.p.CheckSign(bound(hS), kS, userauth(bound(hS).Binds[0].SessionID, "u", kS)); err != nil {
		t.Errorf("kS direct: %v", err)
	}
	// Signing for the forwarding bind itself is refused.
	fwd := bound(hJ, hT)
	fwd.Binds[1].Forwarding = true
	if err := w.p.CheckSign(fwd, kT, userauth(fwd.Binds[1].SessionID, "u", kT)); !errors.Is(err, ErrForwardingHop) {
		t.Errorf("sign on forwarding hop: %v", err)
	}
	// A chain whose earlier bind was for authentication is not a chain.
	broken := bound(hJ, hT)
	broken.Binds[0].Forwarding = false
	if err := w.p.CheckSign(broken, kFree, userauth(broken.Binds[1].SessionID, "u", kFree)); !errors.Is(err, ErrBrokenChain) {
		t.Errorf("broken chain: %v", err)
	}
	if got := w.p.Offer(broken, all); len(got) != 0 {
		t.Errorf("offer on a broken chain: %s", fps(got))
	}
	// An earlier bind's session id is not the destination.
	if err := w.p.CheckSign(viaJ, kT, hostbound(viaJ.Binds[0].SessionID, "u", kT, hT)); !errors.Is(err, ErrSessionMismatch) {
		t.Errorf("hop session id: %v", err)
	}
}

func TestPolicyLearning(t *testing.T) {
	hA, hB := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "a.example.org", hA)+authLine("", "b.example.org", hB))
	keys := []ssh.PublicKey{newSigner(t).PublicKey(), newSigner(t).PublicKey(), newSigner(t).PublicKey()}
	all := ids(keys...)
	c := bound(hA)
	if got := fps(w.p.Offer(c, all)); got != "key0,key1" {
		t.Fatalf("first offer: %s", got)
	}
	data := userauth(c.Binds[0].SessionID, "alice", keys[1])
	if err := w.p.CheckSign(c, keys[1], data); err != nil {
		t.Fatal(err)
	}
	w.p.Signed(c, keys[1], data)
	if got := fps(w.p.Offer(bound(hA), all)); got != "key1" {
		t.Errorf("after learning: %s", got)
	}
	// Another host: keys that worked elsewhere first, most recently
	// successful first, then the others.
	if got := fps(w.p.Offer(bound(hB), all)); got != "key1,key0" {
		t.Errorf("other host after learning: %s", got)
	}
	// A learned key still signs elsewhere (the same key on many hosts is
	// common); only declared pins refuse.
	cb := bound(hB)
	if err := w.p.CheckSign(cb, keys[1], userauth(cb.Binds[0].SessionID, "alice", keys[1])); err != nil {
		t.Errorf("learned key elsewhere: %v", err)
	}
	if err := w.p.Flush(); err != nil {
		t.Fatal(err)
	}
	l, err := ReadLearned(w.learned)
	if err != nil || len(l) != 1 || l[0].HostKey != fp(hA) || l[0].User != "alice" || l[0].Key != fp(keys[1]) || l[0].Count != 1 || l[0].Names[0] != "a.example.org" {
		t.Fatalf("learned file: %+v %v", l, err)
	}
	// A second policy (a restarted agent) reads it.
	p2 := New(Options{PinsFile: w.pins, LearnedFile: w.learned, KnownHostsFiles: []string{w.kh}})
	if got := fps(p2.Offer(bound(hA), all)); got != "key1" {
		t.Errorf("restarted: %s", got)
	}
	// Unpin through the file while the agent runs: the agent forgets.
	if err := UpdateLearned(w.learned, func([]Learned) []Learned { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := fps(w.p.Offer(bound(hA), all)); got != "key0,key1" {
		t.Errorf("after unpin: %s", got)
	}
	// Not learned: a sign whose session id is not the bound one.
	w.p.Signed(c, keys[2], userauth([]byte("other"), "alice", keys[2]))
	w.p.Flush()
	if l, _ := ReadLearned(w.learned); len(l) != 0 {
		t.Errorf("learned from a mismatched session: %+v", l)
	}
}

func TestPolicyReloadKeepsOldPinsOnError(t *testing.T) {
	hA := newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "a.example.org", hA))
	k0, k1 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w.setPins("a.example.org " + fp(k1) + "\n")
	if got := fps(w.p.Offer(bound(hA), ids(k0, k1))); got != "key1" {
		t.Fatalf("offer: %s", got)
	}
	w.setPins("a.example.org " + fp(k1) + "\nthis is not a pin\n")
	if got := fps(w.p.Offer(bound(hA), ids(k0, k1))); got != "key1" {
		t.Errorf("old pins not kept: %s", got)
	}
	var pe *ParseError
	if err := w.p.Err(); !errors.As(err, &pe) || pe.Line != 2 || pe.File != w.pins {
		t.Errorf("err: %v", err)
	}
	// Fixing the file picks up the new content.
	w.setPins("a.example.org " + fp(k0) + "\n")
	if got := fps(w.p.Offer(bound(hA), ids(k0, k1))); got != "key0" {
		t.Errorf("after fix: %s", got)
	}
	if err := w.p.Err(); err != nil {
		t.Error(err)
	}
}

// An agent starting on a broken pins file uses its good lines.
func TestPolicyStartsWithGoodLines(t *testing.T) {
	hA := newSigner(t).PublicKey()
	dir := t.TempDir()
	k0, k1 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	os.WriteFile(filepath.Join(dir, "kh"), []byte(authLine("", "a.example.org", hA)), 0o600)
	os.WriteFile(filepath.Join(dir, "pins"), []byte("broken\na.example.org "+fp(k1)+"\n"), 0o600)
	p := New(Options{PinsFile: filepath.Join(dir, "pins"), LearnedFile: filepath.Join(dir, "l"), KnownHostsFiles: []string{filepath.Join(dir, "kh")}})
	if got := fps(p.Offer(bound(hA), ids(k0, k1))); got != "key1" {
		t.Errorf("offer: %s", got)
	}
	if p.Err() == nil {
		t.Error("no error for the broken line")
	}
}

func TestPolicyKnownHostsMismatchAndRevoked(t *testing.T) {
	hA, hEvil := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "a.example.org", hA))
	k := newSigner(t).PublicKey()
	w.setPins("a.example.org " + fp(k) + "\n")
	// A server with another host key claiming the name gets nothing pinned.
	c := bound(hEvil)
	if got := fps(w.p.Offer(c, ids(k))); got != "" {
		t.Errorf("offered to a mismatched host key: %s", got)
	}
	if err := w.p.CheckSign(c, k, userauth(c.Binds[0].SessionID, "u", k)); err == nil {
		t.Error("signed for a mismatched host key")
	}
	// Revoke hA: the pinned key is no longer offered or signed.
	os.WriteFile(w.kh, []byte(authLine("", "a.example.org", hA)+authLine("@revoked", "*", hA)), 0o600)
	ca := bound(hA)
	if got := fps(w.p.Offer(ca, ids(k))); got != "" {
		t.Errorf("offered to a revoked host: %s", got)
	}
	if err := w.p.CheckSign(ca, k, userauth(ca.Binds[0].SessionID, "u", k)); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked: %v", err)
	}
}

func TestPolicyHostCertificate(t *testing.T) {
	ca := newSigner(t)
	w := newWorld(t, authLine("@cert-authority", "*.cluster.example.org", ca.PublicKey()))
	k0, k1 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w.setPins("*.cluster.example.org " + fp(k1) + "\n")
	cert := hostCertFor(t, ca, newSigner(t).PublicKey(), "login.cluster.example.org")
	if got := fps(w.p.Offer(bound(cert), ids(k0, k1))); got != "key1" {
		t.Errorf("cert host: %s", got)
	}
}

// Many connections at once while the pins file changes under them (run
// with -race).
func TestPolicyConcurrent(t *testing.T) {
	hA := newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "a.example.org", hA))
	keys := []ssh.PublicKey{newSigner(t).PublicKey(), newSigner(t).PublicKey()}
	all := ids(keys...)
	w.setPins("a.example.org " + fp(keys[1]) + "\n")
	done := make(chan struct{})
	var signed atomic.Int64
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				c := bound(hA)
				got := w.p.Offer(c, all)
				if len(got) != 1 {
					t.Errorf("offer: %s", fps(got))
					return
				}
				data := userauth(c.Binds[0].SessionID, "u", got[0].Key)
				// The pin may flip between listing and signing: then a
				// refusal is right.
				var re *RefusedError
				if err := w.p.CheckSign(c, got[0].Key, data); errors.As(err, &re) {
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				w.p.Signed(c, got[0].Key, data)
				signed.Add(1)
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if i%2 == 0 {
			w.setPins("a.example.org " + fp(keys[0]) + "\n")
		} else {
			w.setPins("a.example.org " + fp(keys[1]) + "\n")
		}
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	if err := w.p.Flush(); err != nil {
		t.Fatal(err)
	}
	total := 0
	l, _ := ReadLearned(w.learned)
	for _, e := range l {
		total += e.Count
	}
	if int64(total) != signed.Load() || total == 0 {
		t.Errorf("learned %d signatures, want %d", total, signed.Load())
	}
}

func TestExplain(t *testing.T) {
	hA, ca := newSigner(t).PublicKey(), newSigner(t)
	w := newWorld(t, authLine("", "a.example.org", hA)+authLine("@cert-authority", "*.c.example.org", ca.PublicKey()))
	k0, k1 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	w.setPins("a.example.org " + fp(k1) + "\nn.c.example.org " + fp(k0) + "\n")
	r, err := w.p.Explain("a.example.org", "", ids(k0, k1))
	if err != nil || len(r) != 1 || len(r[0].Declared) != 1 || fps(r[0].Offered) != "key1" || r[0].Unpinned {
		t.Fatalf("%+v %v", r, err)
	}
	r, _ = w.p.Explain("n.c.example.org", "", ids(k0, k1))
	if len(r) != 1 || !r[0].CA || len(r[0].Declared) != 1 {
		t.Errorf("ca: %+v", r)
	}
	r, _ = w.p.Explain("new.example.org:2222", "", ids(k0, k1))
	if len(r) != 1 || !r[0].NotListed || !strings.Contains(r[0].Reason, "[new.example.org]:2222 is not in known_hosts") {
		t.Errorf("unknown: %+v", r)
	}
}

func TestSSHDestination(t *testing.T) {
	cases := []struct {
		argv string
		want string
	}{
		{"ssh login.example.org", "login.example.org"},
		{"/usr/bin/ssh -A alice@Login.Example.org uptime", "login.example.org"},
		{"ssh -p 2222 -i key host", "[host]:2222"},
		{"ssh -p2222 host", "[host]:2222"},
		{"ssh -vAp 2200 host", "[host]:2200"},
		{"ssh -o Port=2022 -l bob host cmd -p 1", "[host]:2022"},
		{"ssh -oPort=2022 host", "[host]:2022"},
		{"ssh ssh://bob@git.example.org:7999", "[git.example.org]:7999"},
		{"ssh -x -oForwardX11=no -l u -- host sftp", "host"},
		{"ssh -W [target]:22 jump", "jump"},
		{"ssh -F /dev/null -o UserKnownHostsFile=/x -p 40 localhost echo", "[localhost]:40"},
		{"sftp host", ""},
		{"ssh -p", ""},
		{"ssh *.example.org", ""},
	}
	for _, c := range cases {
		got := SSHDestination(strings.Fields(c.argv))
		s := ""
		if len(got) == 1 {
			s = got[0].String()
		}
		if s != c.want {
			t.Errorf("%q: got %q, want %q", c.argv, s, c.want)
		}
	}
	if got := PeerNames(os.Getpid()); got != nil {
		t.Errorf("the test binary is not ssh: %v", got)
	}
}

// Hashed known_hosts hide names from wildcard pins; the client's command
// line supplies the name, and only a name known_hosts confirms counts.
func TestPolicyPeerNamesWithHashedKnownHosts(t *testing.T) {
	hA := newSigner(t).PublicKey()
	dir := t.TempDir()
	kh := filepath.Join(dir, "kh")
	os.WriteFile(kh, []byte(authLine("", knownhosts.HashHostname("n1.cluster.example.org"), hA)), 0o600)
	peer := map[int][]Name{
		100: {{Host: "n1.cluster.example.org", Port: 22}},
		200: {{Host: "n2.cluster.example.org", Port: 22}}, // not this key's name
	}
	p := New(Options{PinsFile: filepath.Join(dir, "pins"), LearnedFile: filepath.Join(dir, "l"), KnownHostsFiles: []string{kh},
		PeerNames: func(pid int) []Name { return peer[pid] }})
	k0, k1 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	os.WriteFile(filepath.Join(dir, "pins"), []byte("*.cluster.example.org "+fp(k1)+"\n"), 0o600)
	c := bound(hA)
	c.PID = 200
	if got := fps(p.Offer(c, ids(k0, k1))); got != "key0" {
		t.Errorf("unconfirmed name: %s", got)
	}
	c.PID = 100
	if got := fps(p.Offer(c, ids(k0, k1))); got != "key1" {
		t.Errorf("confirmed name: %s", got)
	}
}

// A hand edit of the pins file applies to the very next signature, even
// with no listing in between.
func TestPolicyPinsEditAppliesAtNextSignature(t *testing.T) {
	hA := newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "a.example.org", hA))
	k := newSigner(t).PublicKey()
	c := bound(hA)
	data := userauth(c.Binds[0].SessionID, "u", k)
	if err := w.p.CheckSign(c, k, data); err != nil {
		t.Fatal(err)
	}
	w.setPins("b.example.org " + fp(k) + "\n")
	if err := w.p.CheckSign(c, k, data); err == nil {
		t.Error("a pin to another host, added by hand, did not apply to the next signature")
	}
	w.setPins("a.example.org " + fp(k) + "\n")
	if err := w.p.CheckSign(c, k, data); err != nil {
		t.Errorf("after pinning the key here by hand: %v", err)
	}
}
