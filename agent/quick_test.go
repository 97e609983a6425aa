package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/sshwire"
)

// refuseData is a Policy that refuses to sign data starting with "no".
type refuseData struct{ signed int }

func (p *refuseData) Offer(_ *ConnInfo, ids []Identity) []Identity { return ids }
func (p *refuseData) CheckSign(_ *ConnInfo, _ ssh.PublicKey, data []byte) error {
	if bytes.HasPrefix(data, []byte("no")) {
		return errors.New("refused by test policy")
	}
	return nil
}
func (p *refuseData) Signed(*ConnInfo, ssh.PublicKey, []byte) { p.signed++ }

// exchange sends one raw request through a frameConn, with or without the
// quick path, and returns the raw reply body.
func exchange(t *testing.T, srv *Server, quick bool, req []byte) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	fc := newFrameConn(a, 0)
	if !quick {
		fc.quick = func([]byte) []byte { return nil }
	}
	go func() { srv.ServeConn(fc, ConnInfo{}); a.Close() }()
	if _, err := b.Write(frame(req...)); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(b, reply); err != nil {
		t.Fatal(err)
	}
	return reply
}

func signReq(blob, data []byte, flags uint32, extra ...byte) []byte {
	req := []byte{msgSignRequest}
	req = binary.BigEndian.AppendUint32(req, uint32(len(blob)))
	req = append(req, blob...)
	req = binary.BigEndian.AppendUint32(req, uint32(len(data)))
	req = append(req, data...)
	req = binary.BigEndian.AppendUint32(req, flags)
	return append(req, extra...)
}

// The quick sign path answers exactly what ServeAgent answers: the same
// signature bytes for deterministic key types, a verifying signature for
// ECDSA, and a failure for the same malformed, unknown, refused or locked
// requests.
func TestQuickSignMatchesServeAgent(t *testing.T) {
	policy := &refuseData{}
	srv := quietServer(Options{Policy: policy, Locker: &fastLocker{}})
	edKey := mustEd25519(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var blobs [][]byte
	for _, k := range []any{edKey, rsaKey, ecKey} {
		if err := srv.AddKey(xagent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
		s, _ := ssh.NewSignerFromKey(k)
		blobs = append(blobs, s.PublicKey().Marshal())
	}
	data := []byte("session data to sign")

	same := func(name string, req []byte) []byte {
		t.Helper()
		q, s := exchange(t, srv, true, req), exchange(t, srv, false, req)
		if !bytes.Equal(q, s) {
			t.Errorf("%s: quick answer % x, ServeAgent % x", name, q[:min(len(q), 16)], s[:min(len(s), 16)])
		}
		// And the quick path did answer it rather than pass it on.
		c := &conn{s: srv, log: srv.log}
		if direct := c.quickAnswer(slices.Clone(req)); !bytes.Equal(direct, s) {
			t.Errorf("%s: quickAnswer gave % x, want % x", name, direct[:min(len(direct), 16)], s[:min(len(s), 16)])
		}
		return q
	}
	for i, flags := range []uint32{0, uint32(xagent.SignatureFlagRsaSha256), uint32(xagent.SignatureFlagRsaSha512)} {
		for _, blob := range blobs[:2] {
			if r := same("sign", signReq(blob, data, flags)); r[0] != msgSignResponse {
				t.Errorf("sign %d: reply type %d", i, r[0])
			}
		}
	}
	// ECDSA signatures are randomised: both must verify.
	pub, _ := ssh.ParsePublicKey(blobs[2])
	for _, quick := range []bool{true, false} {
		r := exchange(t, srv, quick, signReq(blobs[2], data, 0))
		w := sshwire.Reader{B: r[1:]}
		sigBlob := w.String()
		var sig ssh.Signature
		if r[0] != msgSignResponse || w.Err != nil || ssh.Unmarshal(sigBlob, &sig) != nil || pub.Verify(data, &sig) != nil {
			t.Errorf("ECDSA signature (quick %v) does not verify", quick)
		}
	}

	unknown, _ := ssh.NewPublicKey(mustEd25519(t).Public())
	good := signReq(blobs[0], data, 0)
	for name, req := range map[string][]byte{
		"unknown key":     signReq(unknown.Marshal(), data, 0),
		"refused":         signReq(blobs[0], []byte("no thanks"), 0),
		"no flags":        good[:len(good)-4],
		"trailing byte":   signReq(blobs[0], data, 0, 0),
		"short blob":      good[:3],
		"blob past end":   append([]byte{msgSignRequest, 0, 0, 1, 0}, blobs[0]...),
		"data past end":   good[:len(good)-10],
		"empty key":       signReq(nil, data, 0),
		"garbage key":     signReq([]byte("\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x01x"), data, 0),
		"just the type":   {msgSignRequest},
		"huge blob count": {msgSignRequest, 0xff, 0xff, 0xff, 0xff},
	} {
		if r := same(name, req); !bytes.Equal(r, []byte{msgFailure}) {
			t.Errorf("%s: reply % x, want failure", name, r)
		}
	}
	signed := policy.signed
	srv.Lock([]byte("pw"))
	if r := same("locked", good); !bytes.Equal(r, []byte{msgFailure}) {
		t.Errorf("locked: reply % x, want failure", r)
	}
	if policy.signed != signed {
		t.Error("a locked agent signed")
	}
}
