package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func TestParseLifetime(t *testing.T) {
	good := map[string]time.Duration{
		"90": 90 * time.Second, "30m": 30 * time.Minute, "1h30m": 90 * time.Minute,
		"2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "10s": 10 * time.Second, "1H2M3S": 3723 * time.Second,
		"0": 0,
	}
	for in, want := range good {
		if got, err := ParseLifetime(in); err != nil || got != want {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "1x", "-1", "1.5h", "m30", "99999999999", "4000w", " 1"} {
		if got, err := ParseLifetime(in); err == nil {
			t.Errorf("ParseLifetime(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParseLifetime(f *testing.F) {
	for _, s := range []string{"90", "1h30m", "2d", "1x", "", "4000w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseLifetime(s)
		if err == nil && (d < 0 || d > time.Duration(1<<31)*time.Second) {
			t.Fatalf("ParseLifetime(%q) = %v", s, d)
		}
	})
}

func TestPassphraseLocker(t *testing.T) {
	l := NewPassphraseLocker()
	if err := l.Lock(nil); err == nil {
		t.Error("empty passphrase accepted")
	}
	if err := l.Unlock([]byte("x")); !errors.Is(err, ErrNotLocked) {
		t.Errorf("unlock while unlocked: %v", err)
	}
	if err := l.Lock([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := l.Lock([]byte("other")); !errors.Is(err, ErrLocked) {
		t.Errorf("lock while locked: %v", err)
	}
	pl := l.(*passphraseLocker)
	if bytes.Contains(pl.verifier, []byte("secret")) || len(pl.salt) != 16 {
		t.Error("verifier is not a salted hash")
	}
	if err := l.Unlock([]byte("wrong")); !errors.Is(err, ErrBadPassphrase) || !l.Locked() {
		t.Errorf("wrong passphrase: %v, locked %v", err, l.Locked())
	}
	if err := l.Unlock([]byte("secret")); err != nil || l.Locked() {
		t.Errorf("right passphrase: %v, locked %v", err, l.Locked())
	}
}

// A message longer than MaxMessage ends the connection before anything is
// read or allocated for it; one just under is read and answered.
func TestMessageSizeLimit(t *testing.T) {
	srv := quietServer(Options{})
	for _, tc := range []struct {
		size    int
		replied bool
	}{{MaxMessage, true}, {MaxMessage + 1, false}} {
		a, b := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(newFrameConn(a, 0), ConnInfo{}); a.Close() }()
		go func() {
			msg := binary.BigEndian.AppendUint32(nil, uint32(tc.size))
			msg = append(msg, make([]byte, tc.size)...)
			msg[4] = 0xee // unknown request type
			b.Write(msg)
		}()
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		reply := make([]byte, 5)
		_, err := io.ReadFull(b, reply)
		if tc.replied && (err != nil || reply[4] != replyFailure) {
			t.Errorf("size %d: reply %x, %v", tc.size, reply, err)
		}
		if !tc.replied {
			if err == nil {
				t.Errorf("size %d: got a reply", tc.size)
			}
			if serr := <-done; !errors.Is(serr, ErrMessageTooLarge) {
				t.Errorf("size %d: server ended with %v", tc.size, serr)
			}
		}
		b.Close()
	}
}

// A client that starts a message and stalls is dropped after the message
// timeout; an idle connection between messages is not.
func TestStalledMessageDropped(t *testing.T) {
	e := startSesame(t, Options{MessageTimeout: 300 * time.Millisecond})
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0, 0, 0, 10, 11})
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("stalled client: %v, want EOF from the agent closing", err)
	}
	// The deadline is armed only for messages that have not fully arrived
	// (see frameConn.armDeadline): a stall inside the length, and a stall
	// in a second message that came in the same write as a whole first
	// one, are dropped too.
	for _, stall := range [][]byte{{0, 0}, {0, 0, 0, 1, 11, 0, 0, 0, 9, 11}} {
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(stall)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("stall after % x: %v, want the agent to close", stall, err)
		}
	}

	idle, ag := dial(t, e.sock)
	defer idle.Close()
	time.Sleep(time.Second)
	if _, err := ag.List(); err != nil {
		t.Errorf("idle connection dropped: %v", err)
	}
}

func TestKeyLoader(t *testing.T) {
	k1, k2 := mustEd25519(t), mustEd25519(t)
	var calls atomic.Int32
	e := startSesame(t, Options{KeyLoader: func([]byte) ([]xagent.AddedKey, error) {
		calls.Add(1)
		// Fresh copies each time: the server wipes what it loaded.
		return []xagent.AddedKey{{PrivateKey: slices.Clone(k1), Comment: "stored-1"}, {PrivateKey: slices.Clone(k2), Comment: "stored-2"}}, nil
	}})
	waitFor(t, 10*time.Second, "keys loaded at start", func() bool { return len(e.srv.Identities()) == 2 })
	if err := e.srv.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.Identities()); n != 0 {
		t.Errorf("%d identities while locked", n)
	}
	if err := e.srv.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	// The store is not read again: its keys came back from the lock, and
	// trying it with the unlock passphrase would be a guess.
	if calls.Load() != 1 {
		t.Errorf("loader called %d times, want 1 (start)", calls.Load())
	}
	if n := len(e.srv.Identities()); n != 2 {
		t.Errorf("%d identities after unlock, want 2 (no duplicates)", n)
	}
}

func TestConfirmWithoutAskpass(t *testing.T) {
	t.Setenv("SSH_ASKPASS", "")
	srv := quietServer(Options{})
	k := mustEd25519(t)
	srv.AddKey(xagent.AddedKey{PrivateKey: k, ConfirmBeforeUse: true})
	pub, _ := ssh.NewPublicKey(k.Public())
	if _, err := pipeAgent(t, srv).Sign(pub, []byte("x")); err == nil {
		t.Fatal("confirm key signed with nobody to ask")
	}
}

func TestListenRefusesLiveSocketAndNonSocket(t *testing.T) {
	e := startSesame(t, Options{})
	err := New(Options{Socket: e.sock}).Listen()
	var inUse *SocketInUseError
	if !errors.As(err, &inUse) || inUse.Hint() == "" {
		t.Errorf("second listener: %v", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(file, []byte("keep me"), 0o600)
	if err := New(Options{Socket: file}).Listen(); err == nil {
		t.Error("listened over a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("regular file was replaced")
	}
}

// Close is safe to call twice and Serve returns nil after it.
func TestCloseTwice(t *testing.T) {
	srv := New(Options{Socket: filepath.Join(t.TempDir(), "s"), Logger: quietServer(Options{}).log})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context()) }()
	c, _ := net.Dial("unix", srv.Socket())
	defer c.Close()
	srv.Close()
	srv.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := os.Lstat(srv.Socket()); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// A key added over the protocol keeps working after frameConn wiped the
// request that carried it, and the caller's buffer that held a private key
// is cleared once the next message is asked for.
func TestSecretRequestsWiped(t *testing.T) {
	srv := quietServer(Options{})
	ag := pipeAgent(t, srv)
	k := mustEd25519(t)
	if err := ag.Add(xagent.AddedKey{PrivateKey: k, Comment: "wiped"}); err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(k.Public())
	sig, err := ag.Sign(pub, []byte("after wipe"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify([]byte("after wipe"), sig); err != nil {
		t.Fatalf("stored key damaged by the wipe: %v", err)
	}

	a, b := net.Pipe()
	defer b.Close()
	fc := newFrameConn(a, 0)
	secret := append([]byte{msgLock}, ssh.Marshal(struct{ P string }{"hunter2-passphrase"})...)
	go func() {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(secret))))
		b.Write(secret)
		b.Write([]byte{0, 0, 0, 1, msgRequestIdentities})
	}()
	var hdr [4]byte
	io.ReadFull(fc, hdr[:])
	req := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(fc, req); err != nil || !bytes.Contains(req, []byte("hunter2")) {
		t.Fatalf("read lock request: %v %q", err, req)
	}
	io.ReadFull(fc, hdr[:]) // the next message: the lock request is done
	if bytes.Contains(req, []byte("hunter2")) {
		t.Error("lock request still holds the passphrase")
	}
	if bytes.Contains(fc.rbuf[:], []byte("hunter2")) {
		t.Error("read buffer still holds the passphrase")
	}
}

// sealingLocker is a KeySealer for tests: it keeps what it is given.
type sealingLocker struct {
	fastLocker
	sealed []xagent.AddedKey
	fail   bool
}

func (l *sealingLocker) SealKeys(p []byte, keys []xagent.AddedKey) error {
	if l.fail {
		return errors.New("sealing failed")
	}
	l.sealed = keys
	return nil
}

func (l *sealingLocker) UnsealKeys(p []byte) ([]xagent.AddedKey, error) {
	k := l.sealed
	l.sealed = nil
	return k, nil
}

func TestLockSealsKeys(t *testing.T) {
	l := &sealingLocker{}
	srv := quietServer(Options{Locker: l})
	k1, k2 := mustEd25519(t), mustEd25519(t)
	srv.AddKey(xagent.AddedKey{PrivateKey: k1, Comment: "one"})
	srv.AddKey(xagent.AddedKey{PrivateKey: k2, Comment: "two", LifetimeSecs: 600, ConfirmBeforeUse: true})
	ag := pipeAgent(t, srv)
	if err := ag.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	srv.keys.mu.RLock()
	held := len(srv.keys.order)
	srv.keys.mu.RUnlock()
	if held != 0 || len(l.sealed) != 2 {
		t.Fatalf("locked agent holds %d keys, sealer got %d", held, len(l.sealed))
	}
	if s := l.sealed[1]; s.Comment != "two" || !s.ConfirmBeforeUse || s.LifetimeSecs == 0 || s.LifetimeSecs > 600 {
		t.Errorf("sealed key lost its constraints: %+v", s)
	}
	if err := ag.Unlock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	ids := srv.Identities()
	if len(ids) != 2 || ids[0].Comment != "one" {
		t.Fatalf("after unlock: %v", ids)
	}
	pub, _ := ssh.NewPublicKey(k1.Public())
	if _, err := ag.Sign(pub, []byte("x")); err != nil {
		t.Errorf("sign after unlock: %v", err)
	}

	// A sealer that fails leaves the agent unlocked with its keys.
	l.fail = true
	if err := srv.Lock([]byte("pw")); err == nil {
		t.Fatal("lock succeeded although sealing failed")
	}
	if srv.Locked() || len(srv.Identities()) != 2 {
		t.Errorf("after failed sealing: locked %v, %d keys", srv.Locked(), len(srv.Identities()))
	}
}

// listOK sends REQUEST_IDENTITIES on c and reports whether an answer came.
func listOK(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{0, 0, 0, 1, msgRequestIdentities}); err != nil {
		return false
	}
	var hdr [5]byte
	_, err := io.ReadFull(c, hdr[:])
	if err != nil || hdr[4] != msgIdentitiesAnswer {
		return false
	}
	_, err = io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:4]))-1)
	return err == nil
}

// closedByAgent reports whether the agent has closed c.
func closedByAgent(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

// A full agent closes the connection idle longest to admit a new client;
// a connection busy with a request keeps its place, and when every one is
// busy the newcomer is refused rather than left hanging. A process past
// its own share loses its own idle connections, not the others'.
func TestConnectionRoom(t *testing.T) {
	e := startSesame(t, Options{MaxConns: 4, MaxConnsPerPeer: 4})
	dial := func() net.Conn {
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var cs []net.Conn
	for i := 0; i < 4; i++ {
		cs = append(cs, dial())
		if !listOK(cs[i]) {
			t.Fatalf("connection %d not served", i)
		}
		// Idle in this order.
		waitFor(t, 10*time.Second, "an idle connection", func() bool { return busySlots(e.srv) == 0 })
	}
	// Connection 1 becomes busy: half a message, which the agent waits
	// for (MessageTimeout).
	cs[1].Write([]byte{0, 0, 0, 9})
	waitFor(t, 10*time.Second, "a busy connection", func() bool { return busySlots(e.srv) == 1 })
	n := dial()
	if !listOK(n) {
		t.Fatal("new connection not served on a full agent")
	}
	if !closedByAgent(cs[0]) {
		t.Error("the longest-idle connection was not closed to make room")
	}
	for _, i := range []int{2, 3} {
		if !listOK(cs[i]) {
			t.Errorf("connection %d, idle but not the oldest, was closed", i)
		}
	}
	waitFor(t, 10*time.Second, "idle connections", func() bool { return busySlots(e.srv) == 1 })
	// Now every connection but the busy one is used again; make them all
	// busy, and the next one is refused.
	for _, c := range []net.Conn{cs[2], cs[3], n} {
		c.Write([]byte{0, 0, 0, 9})
	}
	waitFor(t, 10*time.Second, "four busy connections", func() bool { return busySlots(e.srv) == 4 })
	if r := dial(); !closedByAgent(r) {
		t.Error("a connection was admitted although every slot is busy")
	}
	if a := e.srv.activeConns(); a != 4 {
		t.Errorf("%d connections open, want 4", a)
	}
}

// busySlots counts the connections in the middle of a request.
func busySlots(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sl := range s.conns {
		if sl.since.Load() == 0 {
			n++
		}
	}
	return n
}

// Adding keys does not rebuild the prepared listing each time (which made
// adding n keys cost n² — 20,000 keys took minutes); the first listing
// after the changes builds it once.
func TestAddingKeysBuildsTheListOnce(t *testing.T) {
	srv := quietServer(Options{})
	ag := pipeAgent(t, srv)
	for i := 0; i < 500; i++ {
		if err := ag.Add(xagent.AddedKey{PrivateKey: mustEd25519(t)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if keys, err := ag.List(); err != nil || len(keys) != 500 {
			t.Fatalf("list: %d keys, %v", len(keys), err)
		}
	}
	srv.keys.mu.RLock()
	builds := srv.keys.builds
	srv.keys.mu.RUnlock()
	if builds != 1 {
		t.Errorf("the listing was built %d times for 500 adds and 3 listings, want 1", builds)
	}
}

// A listing that would pass OpenSSH's 256 KiB limit on a reply lists the
// keys that fit, in order, instead of breaking ssh-add -l; every key still
// signs.
func TestListOverMessageLimit(t *testing.T) {
	testbed.Need(t, "ssh-add")
	e := startSesame(t, Options{})
	comment := strings.Repeat("c", 200)
	var last ssh.PublicKey
	const n = 1200 // about 300 KiB of identities
	for i := 0; i < n; i++ {
		k := mustEd25519(t)
		if err := e.srv.AddKey(xagent.AddedKey{PrivateKey: k, Comment: fmt.Sprintf("%04d%s", i, comment)}); err != nil {
			t.Fatal(err)
		}
		last, _ = ssh.NewPublicKey(k.Public())
	}
	out, err := e.run("ssh-add", "-l")
	lines := strings.Count(out, "\n")
	if err != nil || lines == 0 || lines >= n || !strings.Contains(out, "0000"+comment) {
		t.Fatalf("ssh-add -l with %d keys: %v, %d lines\n%.300s", n, err, lines, out)
	}
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := xagent.NewClient(c).Sign(last, []byte("x")); err != nil {
		t.Errorf("a key past the listing does not sign: %v", err)
	}
}
