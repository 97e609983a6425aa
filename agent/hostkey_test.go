package agent

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// bigRSASigner is an RSA key with a public exponent x/crypto refuses
// (above 2^24), made and used with math/big: crypto/rsa cannot generate
// one. It signs as OpenSSH does (PKCS #1 v1.5 over SHA-1, SHA-256 or
// SHA-512).
type bigRSASigner struct {
	pub  *bigRSAKey
	d    *big.Int
	algo string
}

// bigExponent is the smallest prime above 2^32.
var bigExponent = big.NewInt(4294967311)

func newBigRSA(t testing.TB, bits int) *bigRSASigner {
	t.Helper()
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, bits-bits/2)
		if err != nil {
			t.Fatal(err)
		}
		n := new(big.Int).Mul(p, q)
		if p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(bigExponent, phi)
		if d == nil {
			continue
		}
		return &bigRSASigner{pub: &bigRSAKey{e: new(big.Int).Set(bigExponent), n: n}, d: d, algo: ssh.KeyAlgoRSASHA512}
	}
}

func (s *bigRSASigner) PublicKey() ssh.PublicKey { return s.pub }

func (s *bigRSASigner) Sign(_ io.Reader, data []byte) (*ssh.Signature, error) {
	var digest, prefix []byte
	switch s.algo {
	case ssh.KeyAlgoRSA:
		h := sha1.Sum(data)
		digest, prefix = h[:], digestInfoSHA1
	case ssh.KeyAlgoRSASHA256:
		h := sha256.Sum256(data)
		digest, prefix = h[:], digestInfoSHA256
	default:
		h := sha512.Sum512(data)
		digest, prefix = h[:], digestInfoSHA512
	}
	k := (s.pub.n.BitLen() + 7) / 8
	em := make([]byte, k)
	em[1] = 1
	t := append(bytes.Clone(prefix), digest...)
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(t):], t)
	sig := new(big.Int).Exp(new(big.Int).SetBytes(em), s.d, s.pub.n).FillBytes(make([]byte, k))
	return &ssh.Signature{Format: s.algo, Blob: sig}, nil
}

// x/crypto refuses the key; sesame reads it, and binds with it under all
// three signature algorithms OpenSSH accepts for RSA.
func TestBindBigExponentRSA(t *testing.T) {
	host := newBigRSA(t, 2048)
	blob := host.pub.Marshal()
	if _, err := ssh.ParsePublicKey(blob); err == nil || !strings.Contains(err.Error(), "exponent") {
		t.Fatalf("x/crypto parses the key (%v): the test proves nothing", err)
	}
	for _, algo := range []string{ssh.KeyAlgoRSA, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512} {
		host.algo = algo
		sid := randBytes(32)
		b, err := parseSessionBind(bindMsg(t, host.pub, host, sid, sid, true))
		if err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		if !bytes.Equal(b.HostKey.Marshal(), blob) {
			t.Errorf("%s: the bind's host key is not the one sent", algo)
		}
		if _, err := parseSessionBind(bindMsg(t, host.pub, host, sid, []byte("other"), true)); err == nil {
			t.Errorf("%s: a signature over other data verified", algo)
		}
		// A signature with its leading zero bytes dropped still verifies,
		// as in OpenSSH; one longer than the modulus does not.
		sig, _ := host.Sign(nil, sid)
		if sig.Blob[0] == 0 {
			short := &ssh.Signature{Format: algo, Blob: bytes.TrimLeft(sig.Blob, "\x00")}
			if err := host.pub.Verify(sid, short); err != nil {
				t.Errorf("%s: short signature: %v", algo, err)
			}
		}
		long := &ssh.Signature{Format: algo, Blob: append([]byte{0}, sig.Blob...)}
		if err := host.pub.Verify(sid, long); err == nil {
			t.Errorf("%s: a signature longer than the modulus verified", algo)
		}
	}
	host.algo = "ssh-ed25519"
	if err := host.pub.Verify([]byte("x"), &ssh.Signature{Format: "ssh-ed25519", Blob: make([]byte, 64)}); err == nil {
		t.Error("an ed25519 signature verified for an RSA key")
	}
}

// OpenSSH's limits on RSA host keys: at least 1024 bits of modulus, and
// a canonical encoding (sesame compares host keys by their blobs).
func TestHostKeyRSALimits(t *testing.T) {
	small := newBigRSA(t, 768)
	if _, err := ParseHostKey(small.pub.Marshal()); err == nil {
		t.Error("a 768-bit RSA host key was accepted")
	}
	k := newBigRSA(t, 1024)
	if _, err := ParseHostKey(k.pub.Marshal()); err != nil {
		t.Errorf("1024-bit key: %v", err)
	}
	// e with a leading zero byte it does not need.
	blob := ssh.Marshal(&struct {
		Name string
		E    []byte
		N    *big.Int
	}{ssh.KeyAlgoRSA, append([]byte{0}, k.pub.e.Bytes()...), k.pub.n})
	if _, err := ParseHostKey(blob); err == nil {
		t.Error("a non-canonical exponent was accepted")
	}
	even := &bigRSAKey{e: new(big.Int).Add(k.pub.e, big.NewInt(1)), n: k.pub.n}
	if _, err := ParseHostKey(even.Marshal()); err == nil {
		t.Error("an even exponent was accepted")
	}
}

// signCert makes a host certificate of key signed by ca; the test's own
// signers include bigRSASigner, which x/crypto's SignCert would refuse.
func signCert(t testing.TB, key ssh.PublicKey, ca ssh.Signer, principals ...string) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{Key: key, Serial: 7, CertType: ssh.HostCert, KeyId: "host",
		ValidPrincipals: principals, ValidAfter: 0, ValidBefore: ssh.CertTimeInfinity,
		Nonce: randBytes(32), SignatureKey: ca.PublicKey()}
	blob := c.Marshal()
	signed := blob[:len(blob)-4] // the empty signature string
	sig, err := ca.Sign(rand.Reader, signed)
	if err != nil {
		t.Fatal(err)
	}
	c.Signature = sig
	return c
}

// Host certificates are read with their CA's signature checked, whether
// the certified key or the CA has a large RSA exponent.
func TestHostCertificates(t *testing.T) {
	big1, big2, ed := newBigRSA(t, 2048), newBigRSA(t, 2048), newHostKey(t)
	cases := []struct {
		name string
		key  ssh.Signer
		ca   ssh.Signer
	}{
		{"ed25519 by ed25519", ed, newHostKey(t)},
		{"ed25519 by big-exponent RSA", ed, big1},
		{"big-exponent RSA by ed25519", big2, newHostKey(t)},
		{"big-exponent RSA by big-exponent RSA", big2, big1},
	}
	for _, tc := range cases {
		cert := signCert(t, tc.key.PublicKey(), tc.ca, "v.example")
		blob := cert.Marshal()
		k, err := ParseHostKey(blob)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got, ok := k.(*ssh.Certificate)
		if !ok || !bytes.Equal(got.Marshal(), blob) || !hostCertNames(got, "v.example") {
			t.Errorf("%s: certificate read back wrong", tc.name)
		}
		// The bind is signed by the certified key.
		signer, err := ssh.NewCertSigner(cert, tc.key)
		if err != nil {
			// x/crypto's cert signer checks the key type only: a
			// bigRSASigner's key is not its own type.
			signer = certSigner{cert, tc.key}
		}
		sid := randBytes(32)
		if _, err := parseSessionBind(bindMsg(t, cert, signer, sid, sid, false)); err != nil {
			t.Errorf("%s: bind: %v", tc.name, err)
		}
		// A certificate whose CA signature does not verify is refused.
		bad := bytes.Clone(blob)
		bad[len(bad)-10] ^= 1
		if _, err := ParseHostKey(bad); err == nil {
			t.Errorf("%s: a certificate with a bad signature was accepted", tc.name)
		}
	}
}

type certSigner struct {
	cert *ssh.Certificate
	ssh.Signer
}

func (s certSigner) PublicKey() ssh.PublicKey { return s.cert }

// After a failed bind, a connection is tainted: later valid binds are
// refused, it lists and signs nothing, and it is never local again.
func TestFailedBindTaints(t *testing.T) {
	srv := quietServer(Options{})
	key := mustEd25519(t)
	srv.AddKey(xagent.AddedKey{PrivateKey: key, Comment: "k"})
	pub, _ := ssh.NewPublicKey(key.Public())
	host, other := newHostKey(t), newHostKey(t)

	for _, first := range []string{"good then bad", "bad first"} {
		ag := pipeAgent(t, srv)
		sid := randBytes(32)
		if first == "good then bad" {
			if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, true)); err != nil {
				t.Fatal(err)
			}
		}
		sid2 := randBytes(32)
		if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), other, sid2, sid2, true)); err == nil {
			t.Fatalf("%s: forged bind accepted", first)
		}
		sid3 := randBytes(32)
		if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid3, sid3, false)); err == nil {
			t.Errorf("%s: a bind after a failed one was accepted", first)
		}
		if l, err := ag.List(); err != nil || len(l) != 0 {
			t.Errorf("%s: tainted connection lists %d keys (%v)", first, len(l), err)
		}
		if _, err := ag.Sign(pub, []byte("x")); err == nil {
			t.Errorf("%s: tainted connection signed", first)
		}
		if _, err := ag.Extension(ExtStatus, nil); err == nil {
			t.Errorf("%s: tainted connection got the status", first)
		}
	}
}

// A repeated bind is stored once, and so replayed to the backend once.
func TestRepeatedBindStoredOnce(t *testing.T) {
	srv := quietServer(Options{})
	c := &conn{s: srv, log: srv.log}
	c.be.b = &srv.backend
	host := newHostKey(t)
	sid := randBytes(32)
	msg := bindMsg(t, host.PublicKey(), host, sid, sid, true)
	for range 1000 {
		if reply, err := c.Extension(ExtSessionBind, msg); err != nil || len(reply) != 0 {
			t.Fatalf("repeated bind: %v %v", reply, err)
		}
	}
	if len(c.info.Binds) != 1 || len(c.be.binds) != 1 {
		t.Fatalf("%d binds, %d to replay; want 1 and 1", len(c.info.Binds), len(c.be.binds))
	}
}

// sendRaw writes one agent message on a fresh connection of srv served as
// the given peer, and returns the reply body.
func rawConn(t testing.TB, srv *Server) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		srv.ServeConn(newFrameConn(a, 0), ConnInfo{UID: 0, PID: 1})
		a.Close()
	}()
	t.Cleanup(func() { b.Close() })
	return b
}

func roundTrip(t testing.TB, c net.Conn, msg []byte) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	out := binary.BigEndian.AppendUint32(nil, uint32(len(msg)))
	if _, err := c.Write(append(out, msg...)); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatal(err)
	}
	return reply
}

// A provider is never loaded for a connection that is not local: sesame
// refuses it before the backend ssh-agent is even started, whatever the
// backend would make of the connection.
func TestProviderRefusedWhenBound(t *testing.T) {
	host := newHostKey(t)
	smartcard := appendString(appendString([]byte{msgAddSmartcardKey}, []byte("/usr/lib/softhsm/libsofthsm2.so")), []byte("1234"))
	smartcardC := append(bytes.Clone(smartcard), 1, 0, 0, 0, 60)
	smartcardC[0] = msgAddSmartcardKeyConstrained
	skAdd := appendString([]byte{msgAddIDConstrained}, []byte(ssh.KeyAlgoSKED25519))
	skAdd = appendString(skAdd, make([]byte, 32))
	skAdd = appendString(skAdd, []byte("ssh:"))
	skAdd = append(skAdd, 1)
	skAdd = appendString(skAdd, []byte("handle"))
	skAdd = appendString(skAdd, nil)
	skAdd = appendString(skAdd, []byte("comment"))
	skAdd = append(skAdd, 255) // SSH_AGENT_CONSTRAIN_EXTENSION
	skAdd = appendString(skAdd, []byte(ExtSKProvider))
	skAdd = appendString(skAdd, []byte("/tmp/evil.so"))

	for _, state := range []string{"bound", "failed bind"} {
		for name, msg := range map[string][]byte{"smartcard": smartcard, "smartcard constrained": smartcardC, "sk-provider": skAdd} {
			srv := quietServer(Options{BackendAgent: "/nonexistent/ssh-agent"})
			c := rawConn(t, srv)
			sid := randBytes(32)
			signer := host
			if state == "failed bind" {
				signer = newHostKey(t)
			}
			bind := appendString([]byte{msgExtension}, []byte(ExtSessionBind))
			bind = append(bind, bindMsg(t, host.PublicKey(), signer, sid, sid, true)...)
			roundTrip(t, c, bind)
			if reply := roundTrip(t, c, msg); len(reply) != 1 || reply[0] != msgFailure {
				t.Errorf("%s, %s: reply %v", state, name, reply)
			}
			if srv.backend.running() || srv.backend.stopped {
				t.Errorf("%s, %s: the backend was asked", state, name)
			}
			srv.backend.mu.Lock()
			srv.backend.mu.Unlock()
		}
	}
}

// Private extensions answer local clients only; a forwarded one gets the
// failure of an unknown extension, and the query does not list them.
func TestPrivateExtensionsLocalOnly(t *testing.T) {
	srv := quietServer(Options{})
	host := newHostKey(t)
	ag := pipeAgent(t, srv)
	if _, err := ag.Extension(ExtStatus, nil); err != nil {
		t.Fatalf("local status: %v", err)
	}
	sid := randBytes(32)
	if _, err := ag.Extension(ExtSessionBind, bindMsg(t, host.PublicKey(), host, sid, sid, true)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ExtStatus, ExtPins} {
		if _, err := ag.Extension(name, nil); err != xagent.ErrExtensionUnsupported {
			t.Errorf("%s on a bound connection: %v, want the unknown-extension failure", name, err)
		}
	}
	res, err := ag.Extension(ExtQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(res, []byte("@sesame")) {
		t.Errorf("query on a bound connection lists sesame's extensions: %q", res)
	}
}

// The same forwarding bind sent 100,000 times on one connection (what a
// remote host can do) leaves the agent's heap as it was after the first
// few: a repeated bind is neither stored nor queued for the backend again.
// ssh-agent stays flat the same way.
func TestRepeatedBindsHeapFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 binds")
	}
	srv := quietServer(Options{})
	host := newHostKey(t)
	sid := randBytes(32)
	bind := appendString([]byte{msgExtension}, []byte(ExtSessionBind))
	bind = append(bind, bindMsg(t, host.PublicKey(), host, sid, sid, true)...)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(bind)))
	frame = append(frame, bind...)

	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		srv.ServeConn(newFrameConn(a, 0), ConnInfo{UID: 0, PID: 1})
		a.Close()
		close(done)
	}()
	defer func() { b.Close(); <-done }()
	send := func(n int) {
		errc := make(chan error, 1)
		go func() {
			var err error
			for range n {
				if _, err = b.Write(frame); err != nil {
					break
				}
			}
			errc <- err
		}()
		var reply [5]byte
		for i := range n {
			if _, err := io.ReadFull(b, reply[:]); err != nil || reply[4] != replySuccess {
				t.Fatalf("bind %d: reply %v, %v", i, reply, err)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	send(100)
	before := heap()
	send(100_000)
	after := heap()
	t.Logf("heap %d before, %d after 100,000 repeated binds", before, after)
	if after > before+1<<20 {
		t.Errorf("heap grew by %d bytes over 100,000 repeated binds", after-before)
	}
}
