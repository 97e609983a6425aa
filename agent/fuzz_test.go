package agent

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// fastLocker is a Locker without the slow hash and the back-off, so the
// fuzzer can lock and unlock quickly.
type fastLocker struct{ pass []byte }

func (l *fastLocker) Lock(p []byte) error {
	if l.pass != nil {
		return ErrLocked
	}
	if len(p) == 0 {
		return errors.New("empty")
	}
	l.pass = append([]byte(nil), p...)
	return nil
}

func (l *fastLocker) Unlock(p []byte) error {
	if l.pass == nil || string(l.pass) != string(p) {
		return ErrBadPassphrase
	}
	l.pass = nil
	return nil
}

func (l *fastLocker) Locked() bool { return l.pass != nil }

func frame(b ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// FuzzAgentMessage feeds arbitrary bytes, as one or more framed messages,
// to a per-connection server over net.Pipe. The server must neither panic
// nor hang, and must keep its key.
func FuzzAgentMessage(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub, _ := ssh.NewPublicKey(seed.Public())
	host, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(append(make([]byte, 31), 1)))
	sid := make([]byte, 32)
	sig, _ := host.Sign(nil, sid)
	bind := ssh.Marshal(struct {
		N string
		M []byte `ssh:"rest"`
	}{ExtSessionBind, ssh.Marshal(sessionBindMsg{host.PublicKey().Marshal(), sid, ssh.Marshal(sig), false})})

	f.Add(frame(11))
	f.Add(frame(append([]byte{13}, ssh.Marshal(struct {
		K, D  []byte
		Flags uint32
	}{pub.Marshal(), []byte("data"), 2})...)...))
	f.Add(frame(append([]byte{18}, ssh.Marshal(struct{ K []byte }{pub.Marshal()})...)...))
	f.Add(frame(append([]byte{22}, ssh.Marshal(struct{ P string }{"pw"})...)...))
	f.Add(append(frame(append([]byte{22}, ssh.Marshal(struct{ P string }{"pw"})...)...),
		frame(append([]byte{23}, ssh.Marshal(struct{ P string }{"pw"})...)...)...))
	f.Add(frame(append([]byte{27}, bind...)...))
	f.Add(frame(append([]byte{27}, ssh.Marshal(struct{ N string }{"query"})...)...))
	f.Add(frame(17, 0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9'))
	f.Add(frame(25, 0, 0, 0, 3, 'r', 's', 'a', 1, 0, 0, 0, 1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(frame(19))

	f.Fuzz(func(t *testing.T, in []byte) {
		srv := quietServer(Options{Locker: &fastLocker{}})
		if err := srv.AddKey(xagent.AddedKey{PrivateKey: seed, Comment: "seed"}); err != nil {
			t.Fatal(err)
		}
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			srv.ServeConn(newFrameConn(a, time.Second), ConnInfo{})
			a.Close()
			close(done)
		}()
		go io.Copy(io.Discard, b)
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		b.Write(in)
		b.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("server did not finish")
		}
		// Whatever happened, the key is either still there or was removed
		// or locked by a well-formed request; the server still answers.
		srv.Unlock([]byte("pw"))
		ag := pipeAgent(t, srv)
		if _, err := ag.List(); err != nil {
			t.Fatalf("list after fuzz input: %v", err)
		}
	})
}
