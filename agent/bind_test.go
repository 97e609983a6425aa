package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// pipeAgent serves one in-memory connection of srv and returns a client.
func pipeAgent(t testing.TB, srv *Server) xagent.ExtendedAgent {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		srv.ServeConn(newFrameConn(a, 0), ConnInfo{UID: 0, PID: 1})
		a.Close()
	}()
	t.Cleanup(func() { b.Close() })
	return xagent.NewClient(b)
}

func quietServer(opts Options) *Server {
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return New(opts)
}

func newHostKey(t testing.TB) ssh.Signer {
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

// bindMsg builds a session-bind body; signer signs signed (normally sid).
func bindMsg(t testing.TB, host ssh.PublicKey, signer ssh.Signer, sid, signed []byte, fwd bool) []byte {
	t.Helper()
	sig, err := signer.Sign(rand.Reader, signed)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Marshal(sessionBindMsg{HostKey: host.Marshal(), SessionID: sid, Signature: ssh.Marshal(sig), Forwarding: fwd})
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestSessionBind(t *testing.T) {
	host, other := newHostKey(t), newHostKey(t)
	sid := randBytes(32)
	good := bindMsg(t, host.PublicKey(), host, sid, sid, false)
	long := randBytes(MaxSessionIDLen + 1)
	valid := ssh.Marshal(sessionBindMsg{HostKey: host.PublicKey().Marshal(), SessionID: sid})

	tests := []struct {
		name      string
		msgs      [][]byte
		wantOK    []bool
		wantBinds int // seen by the policy; none once a bind failed (the connection lists nothing)
	}{
		{"valid", [][]byte{good}, []bool{true}, 1},
		{"wrong data signed", [][]byte{bindMsg(t, host.PublicKey(), host, sid, []byte("other"), false)}, []bool{false}, 0},
		{"signed by another key", [][]byte{bindMsg(t, host.PublicKey(), other, sid, sid, false)}, []bool{false}, 0},
		{"truncated", [][]byte{good[:len(good)-3]}, []bool{false}, 0},
		{"trailing bytes", [][]byte{append(bytes.Clone(good), 0)}, []bool{false}, 0},
		{"no signature", [][]byte{valid}, []bool{false}, 0},
		{"garbage key", [][]byte{ssh.Marshal(sessionBindMsg{HostKey: []byte("junk"), SessionID: sid})}, []bool{false}, 0},
		{"empty", [][]byte{nil}, []bool{false}, 0},
		{"session id too long", [][]byte{bindMsg(t, host.PublicKey(), host, long, long, false)}, []bool{false}, 0},
		{"rebind after authentication bind", [][]byte{good, bindMsg(t, other.PublicKey(), other, sid[:16], sid[:16], false)}, []bool{true, false}, 0},
		{"same bind twice", [][]byte{
			bindMsg(t, host.PublicKey(), host, sid, sid, true), bindMsg(t, host.PublicKey(), host, sid, sid, true),
		}, []bool{true, true}, 1},
		{"same session id, other key", [][]byte{
			bindMsg(t, host.PublicKey(), host, sid, sid, true), bindMsg(t, other.PublicKey(), other, sid, sid, true),
		}, []bool{true, false}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []Bind
			srv := quietServer(Options{Policy: policyFunc{offer: func(c *ConnInfo, ids []Identity) []Identity {
				seen = append([]Bind(nil), c.Binds...)
				return ids
			}}})
			srv.AddKey(xagent.AddedKey{PrivateKey: mustEd25519(t), Comment: "k"})
			ag := pipeAgent(t, srv)
			for i, m := range tt.msgs {
				_, err := ag.Extension(ExtSessionBind, m)
				if ok := err == nil; ok != tt.wantOK[i] {
					t.Errorf("message %d: ok=%v (err %v), want %v", i, ok, err, tt.wantOK[i])
				}
				if err != nil && err != xagent.ErrExtensionUnsupported {
					t.Errorf("message %d: reply %v, want SSH_AGENT_FAILURE like OpenSSH", i, err)
				}
			}
			if _, err := ag.List(); err != nil {
				t.Fatal(err)
			}
			if len(seen) != tt.wantBinds {
				t.Fatalf("policy saw %d binds, want %d", len(seen), tt.wantBinds)
			}
			if tt.wantBinds > 0 && !bytes.Equal(seen[0].HostKey.Marshal(), host.PublicKey().Marshal()) {
				t.Error("bound host key differs")
			}
		})
	}
}

func TestSessionBindLimit(t *testing.T) {
	srv := quietServer(Options{})
	ag := pipeAgent(t, srv)
	host := newHostKey(t)
	for i := 0; i < MaxBinds; i++ {
		sid := randBytes(32)
		if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, true)); err != nil {
			t.Fatalf("bind %d: %v", i, err)
		}
	}
	sid := randBytes(32)
	if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, true)); err == nil {
		t.Fatalf("bind %d accepted, limit is %d", MaxBinds+1, MaxBinds)
	}
}

// After a failed bind the connection signs nothing, as in OpenSSH: the
// client may not be talking to the server it claims.
func TestSignRefusedAfterFailedBind(t *testing.T) {
	srv := quietServer(Options{})
	key := mustEd25519(t)
	srv.AddKey(xagent.AddedKey{PrivateKey: key, Comment: "k"})
	pub, _ := ssh.NewPublicKey(key.Public())
	ag := pipeAgent(t, srv)
	if _, err := ag.Sign(pub, []byte("x")); err != nil {
		t.Fatalf("sign before bind: %v", err)
	}
	host, other := newHostKey(t), newHostKey(t)
	sid := randBytes(32)
	ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), other, sid, sid, false))
	if _, err := ag.Sign(pub, []byte("x")); err == nil {
		t.Fatal("signed after a forged bind")
	}
}

func TestQueryExtension(t *testing.T) {
	ag := pipeAgent(t, quietServer(Options{}))
	res, err := ag.Extension(ExtQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	// As OpenSSH's ssh-agent answers and ssh-add -Q expects.
	if res[0] != replyExtensionResponse {
		t.Fatalf("reply code %d", res[0])
	}
	var names []string
	rest := res[1:]
	for len(rest) > 0 {
		var s struct {
			S    string
			Rest []byte `ssh:"rest"`
		}
		if err := ssh.Unmarshal(rest, &s); err != nil {
			t.Fatal(err)
		}
		names = append(names, s.S)
		rest = s.Rest
	}
	if len(names) != 5 || names[0] != ExtQuery || names[1] != ExtQuery || names[2] != ExtSessionBind || names[3] != ExtStatus || names[4] != ExtPins {
		t.Errorf("query lists %q", names)
	}
}

// A policy sees the connection and can refuse a signature.
func TestPolicyRefusesSign(t *testing.T) {
	key := mustEd25519(t)
	pub, _ := ssh.NewPublicKey(key.Public())
	signed := 0
	srv := quietServer(Options{Policy: policyFunc{
		check:  func(c *ConnInfo, k ssh.PublicKey) error { return io.ErrUnexpectedEOF },
		signed: func(*ConnInfo) { signed++ },
		offer:  func(c *ConnInfo, ids []Identity) []Identity { return nil },
	}})
	srv.AddKey(xagent.AddedKey{PrivateKey: key})
	ag := pipeAgent(t, srv)
	if l, _ := ag.List(); len(l) != 0 {
		t.Errorf("policy offered nothing but list has %d keys", len(l))
	}
	if _, err := ag.Sign(pub, []byte("x")); err == nil || signed != 0 {
		t.Errorf("policy refusal ignored: err %v, signed %d", err, signed)
	}
}

// Constraint extensions (ssh-add -h destination restrictions) are refused,
// never silently dropped.
func TestConstraintExtensionRefused(t *testing.T) {
	srv := quietServer(Options{})
	ag := pipeAgent(t, srv)
	err := ag.Add(xagent.AddedKey{PrivateKey: mustEd25519(t), ConstraintExtensions: []xagent.ConstraintExtension{
		{ExtensionName: "restrict-destination-v00@openssh.com", ExtensionDetails: []byte{0, 0, 0, 0}},
	}})
	if err == nil {
		t.Fatal("key with an unknown constraint was accepted")
	}
	if len(srv.Identities()) != 0 {
		t.Error("key stored anyway")
	}
}

func mustEd25519(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The prepared identities answer says exactly what ServeAgent would.
func TestFastListMatchesServeAgent(t *testing.T) {
	srv := quietServer(Options{})
	for i := 0; i < 5; i++ {
		k := xagent.AddedKey{PrivateKey: mustEd25519(t), Comment: strings.Repeat("c", i)}
		if i == 3 {
			k.LifetimeSecs = 3600
		}
		srv.AddKey(k)
	}
	list := func(fast bool) []*xagent.Key {
		a, b := net.Pipe()
		defer b.Close()
		fc := newFrameConn(a, 0)
		if !fast {
			fc.quick = func([]byte) []byte { return nil }
		}
		go srv.ServeConn(fc, ConnInfo{})
		keys, err := xagent.NewClient(b).List()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	fast, slow := list(true), list(false)
	if len(fast) != 5 || len(fast) != len(slow) {
		t.Fatalf("fast %d keys, slow %d", len(fast), len(slow))
	}
	for i := range fast {
		if fast[i].String() != slow[i].String() || fast[i].Comment != slow[i].Comment {
			t.Errorf("key %d: fast %s %q, slow %s %q", i, fast[i], fast[i].Comment, slow[i], slow[i].Comment)
		}
	}
	srv.Lock([]byte("pw"))
	if l := list(true); len(l) != 0 {
		t.Errorf("locked fast list has %d keys", len(l))
	}
}
