package agent

import (
	"bytes"
	"crypto/ed25519"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// bindPool is a set of session-binds made once for FuzzBindSequence: by an
// ed25519 host, a host with a large RSA exponent and a host certificate,
// for forwarding and for authentication.
func bindPool(t testing.TB) [][]byte {
	bindPoolOnce.Do(func() { bindPoolMsgs = makeBindPool(t) })
	return bindPoolMsgs
}

var (
	bindPoolOnce sync.Once
	bindPoolMsgs [][]byte
)

func makeBindPool(t testing.TB) [][]byte {
	ed, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	big := newBigRSA(t, 1024)
	ca, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)))
	cert := signCert(t, ed.PublicKey(), ca, "h")
	var out [][]byte
	for i, h := range []struct {
		pub    ssh.PublicKey
		signer ssh.Signer
	}{{ed.PublicKey(), ed}, {big.pub, big}, {cert, certSigner{cert, ed}}} {
		for _, fwd := range []bool{true, false} {
			sid := bytes.Repeat([]byte{byte(i + 10)}, 32)
			sid[0] = byte(len(out))
			out = append(out, bindMsg(t, h.pub, h.signer, sid, sid, fwd))
		}
	}
	return out
}

// FuzzBindSequence drives one connection through a sequence of binds
// (valid, repeated, corrupted) and requests, and checks the rules of
// issue 19 after each step: once a bind failed nothing is listed, signed
// or bound, and the connection is never local; at most MaxBinds are held
// and the backend replays exactly the binds held; private extensions and
// providers never answer a connection that is not local.
func FuzzBindSequence(f *testing.F) {
	f.Add([]byte{0, 0, 2, 1, 3, 0})
	f.Add([]byte{0, 4, 9, 1, 0, 0})
	f.Add([]byte{5, 1, 2, 3, 4, 6, 7})
	f.Add([]byte{0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 3})
	pool := bindPool(f)
	seed := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub, _ := ssh.NewPublicKey(seed.Public())

	f.Fuzz(func(t *testing.T, in []byte) {
		srv := quietServer(Options{BackendAgent: "/nonexistent/ssh-agent"})
		if err := srv.AddKey(xagent.AddedKey{PrivateKey: seed, Comment: "seed"}); err != nil {
			t.Fatal(err)
		}
		c := &conn{s: srv, info: ConnInfo{PID: -1}, log: srv.log}
		c.be.b = &srv.backend
		failed := false
		for i := 0; i < len(in); i++ {
			op, arg := in[i]%8, 0
			if i+1 < len(in) {
				arg = int(in[i+1])
			}
			switch op {
			case 0, 1: // a valid bind from the pool; op 1 corrupts one byte of it
				msg := bytes.Clone(pool[arg%len(pool)])
				if op == 1 {
					msg[(arg*7)%len(msg)] ^= byte(arg | 1)
				}
				i++
				before := len(c.info.Binds)
				reply, err := c.Extension(ExtSessionBind, msg)
				ok := err == nil && len(reply) == 0
				if ok && failed {
					t.Fatal("a bind was accepted after a failed one")
				}
				if !ok {
					failed = true
				}
				if ok && len(c.info.Binds) < before {
					t.Fatal("binds lost")
				}
			case 2: // list
				l, _ := c.List()
				if failed && len(l) != 0 {
					t.Fatal("a tainted connection lists keys")
				}
			case 3: // sign arbitrary data
				if _, err := c.Sign(pub, in[i:]); err == nil && failed {
					t.Fatal("a tainted connection signed")
				}
			case 4, 5: // private extensions
				name := ExtStatus
				if op == 5 {
					name = ExtPins
				}
				_, err := c.Extension(name, nil)
				if err == nil && (len(c.info.Binds) > 0 || c.bindAttempted) {
					t.Fatalf("%s answered a connection that is not local", name)
				}
			case 6: // a provider
				msg := appendString([]byte{msgAddSmartcardKey}, []byte("/usr/lib/x.so"))
				if namesProvider(msg) && c.mayAddProvider() && c.bindAttempted {
					t.Fatal("a provider would load on a connection that tried to bind")
				}
			case 7: // query
				res, err := c.Extension(ExtQuery, nil)
				if err == nil && !c.local() && bytes.Contains(res, []byte("@sesame")) {
					t.Fatal("the query lists private extensions to a connection that is not local")
				}
			}
			if len(c.info.Binds) > MaxBinds || len(c.be.binds) != len(c.info.Binds) {
				t.Fatalf("%d binds held, %d to replay", len(c.info.Binds), len(c.be.binds))
			}
			if failed && c.local() {
				t.Fatal("a tainted connection counts as local")
			}
		}
		if srv.backend.running() {
			t.Fatal("the backend was started")
		}
	})
}
