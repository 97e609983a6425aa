package agent

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/sshwire"
	"github.com/sesame-ssh/sesame/lock"
)

// Keys sesame does not hold itself go to a backend: a private OpenSSH
// ssh-agent, started on first need. FIDO keys (sk-*) sign through a USB
// authenticator and PKCS#11 keys through a library loaded into a helper
// process; OpenSSH already does both well (ssh-sk-helper,
// ssh-pkcs11-helper, the -P allow-list), and sesame stays a static Go
// program that loads no C library. The backend's socket is in a private
// directory of sesame's and nobody else talks to it: every client
// connection that needs it gets a connection of its own there, with the
// client's session-binds forwarded, so that ssh-agent enforces the keys'
// own constraints (ssh-add -c, -t, -h) per connection as it does for its
// own clients. sesame's policy (pins, max_offer, refusing other hosts)
// decides before any request is passed on, and while sesame is locked no
// request reaches the backend (which is locked too).

// Message types of the agent protocol (draft-ietf-sshm-ssh-agent) that
// only the backend serves, or that sesame passes on to it.
const (
	msgRemoveIdentity             = 18
	msgRemoveAllIdentities        = 19
	msgAddSmartcardKey            = 20
	msgRemoveSmartcardKey         = 21
	msgAddSmartcardKeyConstrained = 26
	msgExtension                  = 27
)

// heldTypes are the key types sesame holds itself (what x/crypto's agent
// parses); an added key of any other type goes to the backend.
var heldTypes = map[string]bool{
	ssh.KeyAlgoRSA: true, ssh.InsecureKeyAlgoDSA: true,
	ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true, ssh.KeyAlgoECDSA521: true,
	ssh.KeyAlgoED25519: true,
	ssh.CertAlgoRSAv01: true, ssh.InsecureCertAlgoDSAv01: true,
	ssh.CertAlgoECDSA256v01: true, ssh.CertAlgoECDSA384v01: true, ssh.CertAlgoECDSA521v01: true,
	ssh.CertAlgoED25519v01: true,
}

// DefaultProviders is ssh-agent's default -P allow-list.
const DefaultProviders = "/usr/lib*/*,/usr/local/lib*/*"

// ErrBackend: the backend agent could not be started or reached.
var ErrBackend = errors.New("backend ssh-agent unavailable")

// backend is the private ssh-agent child. Its zero value is usable: it
// starts on first use.
type backend struct {
	s *Server

	mu       sync.Mutex
	dir      string // private directory holding the socket
	sock     string
	cmd      *exec.Cmd
	done     chan struct{}  // closed when the child has exited
	stdin    io.WriteCloser // the watcher's input: closing it stops the backend
	stopped  bool
	pass     []byte // the passphrase the backend is (or may be) locked with
	locked   bool   // the backend is or may be locked
	retrying bool   // retryUnlock is running
}

// running reports whether the backend has been started (and so may hold
// keys).
func (b *backend) running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// socket starts the backend if needed and returns its socket.
func (b *backend) socket() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return "", fmt.Errorf("%w: agent stopping", ErrBackend)
	}
	if b.cmd != nil {
		select {
		case <-b.done:
			b.cleanupLocked()
			return "", fmt.Errorf("%w: it exited", ErrBackend)
		default:
			return b.sock, nil
		}
	}
	if err := b.startLocked(); err != nil {
		return "", err
	}
	return b.sock, nil
}

func (b *backend) startLocked() error {
	opts := &b.s.opts
	bin := opts.BackendAgent
	if bin == "" {
		p, err := exec.LookPath("ssh-agent")
		if err != nil {
			return fmt.Errorf("%w: ssh-agent not found in PATH", ErrBackend)
		}
		bin = p
	}
	dir, err := os.MkdirTemp("", "sesame-backend-") // 0700
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	sock := filepath.Join(dir, "agent.sock")
	providers := opts.Providers
	if providers == "" {
		providers = DefaultProviders
	}
	args := []string{"-D", "-a", sock, "-P", providers}
	for _, o := range opts.BackendOptions {
		args = append(args, "-O", o)
	}
	if opts.DefaultLifetime > 0 {
		args = append(args, "-t", strconv.Itoa(int(max(1, opts.DefaultLifetime/time.Second))))
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", backendScript, "sh", bin}, args...)...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "SSH_AGENT_PID=", "SESAME_BACKEND_DIR="+dir)
	// Confirmation (ssh-add -c) is asked as sesame asks it (confirm.go):
	// through the askpass program, whether or not DISPLAY is set.
	askpass := opts.Askpass
	if askpass == "" {
		askpass = os.Getenv("SSH_ASKPASS")
	}
	if askpass != "" {
		cmd.Env = append(cmd.Env, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	// Its own process group: a ^C meant for a command run under
	// `sesame agent` is not the backend's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		// ssh-agent's own messages (a provider refused, a helper that
		// failed) go to sesame's log.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			b.s.log.Warn("ssh-agent: " + sc.Text())
		}
		cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		stdin.Close()
		os.RemoveAll(dir)
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	// ssh-agent -D binds before it serves; wait for the socket.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			stdin.Close()
			os.RemoveAll(dir)
			return fmt.Errorf("%w: %s exited at start", ErrBackend, bin)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stdin.Close()
			killBackend(cmd, done)
			os.RemoveAll(dir)
			return fmt.Errorf("%w: %s did not start", ErrBackend, bin)
		}
	}
	b.dir, b.sock, b.cmd, b.done, b.stdin = dir, sock, cmd, done, stdin
	b.s.log.Debug("backend ssh-agent started", "pid", cmd.Process.Pid, "providers", providers)
	return nil
}

func (b *backend) cleanupLocked() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
	if b.stdin != nil {
		b.stdin.Close()
	}
	b.dir, b.sock, b.cmd, b.done, b.stdin = "", "", nil, nil, nil
	clear(b.pass)
	b.pass, b.locked = nil, false
}

// stop kills the backend and removes its directory.
func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.cmd == nil {
		return
	}
	b.stdin.Close() // the watcher stops ssh-agent
	killBackend(b.cmd, b.done)
	b.cleanupLocked()
}

// backendScript runs ssh-agent ("$@") under a watcher that stops it when
// sesame's end of the watcher's standard input closes: when sesame stops
// it, and when sesame dies however it dies. The kernel's parent-death
// signal cannot do this: ssh-agent is set-group-ID on Debian, and exec of
// such a program clears it. The watcher ends when ssh-agent does, and
// removes the socket's directory (ssh-agent removes the socket).
// (An asynchronous list's standard input is /dev/null, so the watcher
// reads a descriptor duplicated before it starts; only the watcher keeps
// it open.)
const backendScript = `exec 3<&0; "$@" </dev/null 3<&- & a=$!
{ read _ <&3; kill $a 2>/dev/null; } & r=$!
exec 3<&-; wait $a; s=$?; kill $r 2>/dev/null; rmdir "$SESAME_BACKEND_DIR" 2>/dev/null; exit $s`

// killBackend waits for the backend to end after its watcher's input was
// closed, and kills its process group (the shell, ssh-agent, its helpers)
// when it does not within a few seconds.
func killBackend(cmd *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// oneShotTimeout bounds a request of sesame's own to the backend:
// ssh-agent serves one request at a time, and one may be waiting for a
// touch or a PIN.
const oneShotTimeout = 2 * time.Second

// listTimeout bounds listing the backend's keys for a client. ssh-agent
// serves one request at a time: while it waits for a touch or a PIN for
// one client, a listing for another would wait too, and a login with a
// software key would hang behind a token. Past the bound the listing
// shows sesame's own keys only.
const listTimeout = 2 * time.Second

// oneShot sends one request on a fresh connection, for requests that
// concern the whole backend (lock, unlock, remove all, the status).
func (b *backend) oneShot(msg []byte) ([]byte, error) {
	if !b.running() {
		return nil, nil
	}
	bc := backendConn{b: b, deadline: time.Now().Add(oneShotTimeout)}
	defer bc.close()
	return bc.request(msg)
}

// kinds lists the backend's keys by fingerprint (KeyFingerprint) with
// their kind (KeyKind).
func (b *backend) kinds() map[string]string {
	reply, err := b.oneShot([]byte{msgRequestIdentities})
	if err != nil || reply == nil {
		return nil
	}
	keys, _ := parseIdentities(reply)
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if pub, err := ssh.ParsePublicKey(k.Blob); err == nil {
			out[KeyFingerprint(pub)] = KeyKind(pub, true)
		}
	}
	return out
}

// lock locks the backend with a random passphrase of its own: sesame's
// passphrase never leaves sesame.
//
// The passphrase is kept from before the request is sent until the
// backend has been seen to unlock: a lock that times out on a busy
// backend (one waiting for a touch or a PIN) may still be carried out
// once the backend gets to it, and a passphrase thrown away then would
// leave its keys locked until sesame restarts. A backend that may still
// be locked is locked again with the same passphrase.
func (b *backend) lock() {
	if !b.running() {
		return
	}
	b.mu.Lock()
	if b.pass == nil {
		// Text without NUL: ssh-agent reads it as a C string and exits
		// on a malformed one.
		raw := make([]byte, 32)
		rand.Read(raw)
		b.pass = []byte(hex.EncodeToString(raw))
		clear(raw)
	}
	pass := bytes.Clone(b.pass)
	b.locked = true // from now on it may be, whatever the answer
	b.mu.Unlock()
	defer clear(pass)
	reply, err := b.oneShot(appendString([]byte{msgLock}, pass))
	if err != nil || len(reply) != 1 || reply[0] != msgSuccess {
		// A refusal: already locked by an earlier lock that timed out
		// (with this passphrase); or not yet done.
		b.s.log.Warn("locking the backend ssh-agent", "err", err)
	}
}

// unlock unlocks the backend. When the backend does not answer in time
// the passphrase is kept and the unlock is tried again, in the
// background, until it answers or sesame locks again.
func (b *backend) unlock() {
	if !b.tryUnlock() {
		go b.retryUnlock()
	}
}

// unlockRetry is how often retryUnlock asks a busy backend again.
var unlockRetry = time.Second

// tryUnlock sends the unlock; true when the backend answered (or there is
// nothing to unlock). Any answer settles it: success, or a failure,
// which from ssh-agent with the right passphrase means it was not locked
// (the lock that timed out never reached it).
func (b *backend) tryUnlock() bool {
	b.mu.Lock()
	if !b.locked || b.cmd == nil {
		b.mu.Unlock()
		return true
	}
	pass := bytes.Clone(b.pass)
	b.mu.Unlock()
	defer clear(pass)
	reply, err := b.oneShot(appendString([]byte{msgUnlock}, pass))
	if err != nil || len(reply) == 0 {
		b.s.log.Warn("unlocking the backend ssh-agent; trying again", "err", err)
		return false
	}
	b.mu.Lock()
	if b.locked && bytes.Equal(b.pass, pass) && !b.s.Locked() {
		clear(b.pass)
		b.pass, b.locked = nil, false
	}
	b.mu.Unlock()
	return true
}

func (b *backend) retryUnlock() {
	b.mu.Lock()
	if b.retrying {
		b.mu.Unlock()
		return
	}
	b.retrying = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.retrying = false
		b.mu.Unlock()
	}()
	for {
		select {
		case <-b.s.ctx.Done():
			return
		case <-time.After(unlockRetry):
		}
		if b.s.Locked() || b.tryUnlock() {
			return
		}
	}
}

const msgSuccess = 6

// backendConn is one client connection's connection to the backend,
// opened on first use, with the client's session-binds replayed so that
// the backend applies destination constraints as if it were talking to
// the client.
type backendConn struct {
	b        *backend
	c        net.Conn
	binds    [][]byte  // session-bind extension requests, whole
	deadline time.Time // for oneShot; zero for a client's connection
}

// bind records an accepted session-bind. It reaches the backend with the
// next request that needs it: an open backend connection is dropped and
// the next one replays every bind, so that the client's bind is never
// held up by a backend busy with another client's token.
func (bc *backendConn) bind(contents []byte) {
	req := appendString([]byte{msgExtension}, []byte(ExtSessionBind))
	req = append(req, contents...)
	bc.binds = append(bc.binds, req)
	bc.close()
}

func (bc *backendConn) close() {
	if bc.c != nil {
		bc.c.Close()
		bc.c = nil
	}
}

// requestWithin is request with a bound on the time for the answer; past
// it the connection is dropped (its answer would come out of turn) and
// the next request opens another one.
func (bc *backendConn) requestWithin(msg []byte, d time.Duration) ([]byte, error) {
	if !bc.deadline.IsZero() {
		return bc.request(msg)
	}
	bc.deadline = time.Now().Add(d)
	defer func() {
		bc.deadline = time.Time{}
		if bc.c != nil {
			bc.c.SetDeadline(time.Time{})
		}
	}()
	return bc.request(msg)
}

// request sends msg (without its length) and returns the reply body.
func (bc *backendConn) request(msg []byte) ([]byte, error) {
	if bc.c == nil {
		sock, err := bc.b.socket()
		if err != nil {
			return nil, err
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBackend, err)
		}
		bc.c = c
		if !bc.deadline.IsZero() {
			c.SetDeadline(bc.deadline)
		}
		for _, req := range bc.binds {
			reply, err := bc.roundTrip(req)
			if err != nil {
				bc.close()
				return nil, err
			}
			if len(reply) != 1 || reply[0] != msgSuccess {
				// The bind verified here; the backend refusing it means
				// it would not apply the constraints: use nothing.
				bc.close()
				return nil, fmt.Errorf("%w: session-bind refused", ErrBackend)
			}
		}
	}
	if !bc.deadline.IsZero() {
		bc.c.SetDeadline(bc.deadline)
	}
	reply, err := bc.roundTrip(msg)
	if err != nil {
		bc.close()
	}
	return reply, err
}

func (bc *backendConn) roundTrip(msg []byte) ([]byte, error) {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(msg)), uint32(len(msg)))
	out = append(out, msg...)
	_, err := bc.c.Write(out)
	clear(out)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackend, err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(bc.c, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackend, err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxMessage {
		return nil, fmt.Errorf("%w: bad reply length %d", ErrBackend, n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(bc.c, reply); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return reply, nil
}

// KeyKind tells how a loaded key is held: "software" for one sesame holds,
// "sk" for a FIDO authenticator's, "pkcs11" for a token's (a key of a type
// sesame holds that is nevertheless in the backend came from a token), or
// "backend" for another type the backend holds.
func KeyKind(k ssh.PublicKey, inBackend bool) string {
	t := underlyingType(k)
	switch {
	case !inBackend:
		return "software"
	case strings.HasPrefix(t, "sk-"):
		return "sk"
	case heldTypes[t]:
		return "pkcs11"
	}
	return "backend"
}

// backendIdentities lists the backend's keys as this connection's
// backend connection sees them (its destination constraints applied).
func (c *conn) backendIdentities() []*xagent.Key {
	if !c.s.backend.running() || c.s.Locked() {
		return nil
	}
	reply, err := c.be.requestWithin([]byte{msgRequestIdentities}, listTimeout)
	if err != nil {
		c.log.Debug("listing the backend's keys", "err", err)
		return nil
	}
	keys, err := parseIdentities(reply)
	if err != nil {
		c.log.Debug("listing the backend's keys", "err", err)
	}
	return keys
}

// parseIdentities reads an IDENTITIES_ANSWER.
func parseIdentities(reply []byte) ([]*xagent.Key, error) {
	if len(reply) == 0 || reply[0] != msgIdentitiesAnswer {
		return nil, errors.New("not an identities answer")
	}
	r := sshwire.Reader{B: reply[1:]}
	n := r.Uint32()
	var keys []*xagent.Key
	for i := uint32(0); i < n && r.Err == nil; i++ {
		blob, comment := r.String(), r.String()
		if r.Err != nil {
			break
		}
		pub, err := ssh.ParsePublicKey(blob)
		if err != nil {
			continue // a type x/crypto cannot read: the policy could not judge it
		}
		keys = append(keys, &xagent.Key{Format: pub.Type(), Blob: bytes.Clone(blob), Comment: string(comment)})
	}
	return keys, r.Err
}

// backendSign asks the backend to sign, once sesame's own checks (the
// failed bind, the policy) have allowed it. The key is not sesame's, so
// ErrKeyNotFound when the backend is not running.
func (c *conn) backendSign(blob, data []byte, flags xagent.SignatureFlags) (*ssh.Signature, error) {
	if !c.s.backend.running() {
		return nil, ErrKeyNotFound
	}
	if c.s.Locked() {
		return nil, ErrLocked
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, ErrKeyNotFound
	}
	if p := c.s.opts.Policy; p != nil {
		if err := p.CheckSign(&c.info, pub, data); err != nil {
			c.log.Debug("policy refused signature", "key", KeyFingerprint(pub), "err", err)
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	req := appendString([]byte{msgSignRequest}, blob)
	req = appendString(req, data)
	req = binary.BigEndian.AppendUint32(req, uint32(flags))
	if c.s.sealer != nil {
		defer c.s.sealer.l.Hold()() // a touch or a PIN may take a while
	}
	reply, err := c.be.request(req)
	if err != nil {
		return nil, err
	}
	if len(reply) == 0 || reply[0] != msgSignResponse {
		return nil, fmt.Errorf("%w: the backend did not sign", ErrRefused)
	}
	r := sshwire.Reader{B: reply[1:]}
	sb := r.String()
	if r.Err != nil {
		return nil, fmt.Errorf("%w: bad sign response", ErrBackend)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(sb, &sig); err != nil {
		return nil, fmt.Errorf("%w: bad signature: %w", ErrBackend, err)
	}
	if c.s.Locked() {
		return nil, ErrLocked // locked while the token was busy
	}
	if c.s.sealer != nil {
		c.s.sealer.l.Touch()
	}
	c.log.Debug("signed by the backend", "key", KeyFingerprint(pub))
	if p := c.s.opts.Policy; p != nil {
		p.Signed(&c.info, pub, data)
	}
	return &sig, nil
}

// backendRemove passes a REMOVE_IDENTITY for a key sesame does not hold.
func (c *conn) backendRemove(blob []byte) error {
	if !c.s.backend.running() {
		return ErrKeyNotFound
	}
	reply, err := c.be.request(appendString([]byte{msgRemoveIdentity}, blob))
	if err != nil {
		return err
	}
	if len(reply) != 1 || reply[0] != msgSuccess {
		return ErrKeyNotFound
	}
	return nil
}

// backendRemoveAll passes REMOVE_ALL_IDENTITIES on.
func (s *Server) backendRemoveAll() {
	if _, err := s.backend.oneShot([]byte{msgRemoveAllIdentities}); err != nil {
		s.log.Warn("removing the backend's keys", "err", err)
	}
}

// peekType returns the type of the next request, waiting (within the
// message timeout) for its first five bytes: ssh-add writes the length and
// the body separately. false when they do not come; the next read then
// meets the same end or error.
func (f *frameConn) peekType() (byte, bool) {
	if f.hdrLeft != 0 || f.body != 0 {
		return 0, false
	}
	if f.rend-f.rpos < 5 {
		n := copy(f.rbuf[:], f.rbuf[f.rpos:f.rend])
		clear(f.rbuf[n:f.rend])
		f.rpos, f.rend = 0, n
		f.armDeadline()
		for f.rend < 5 {
			m, err := f.c.Read(f.rbuf[f.rend:])
			f.rend += m
			if err != nil {
				return 0, false
			}
		}
	}
	return f.rbuf[f.rpos+4], true
}

// routable reports whether a request of this type may be for the backend.
func routable(typ byte) bool {
	switch typ {
	case msgAddIdentity, msgAddIDConstrained, msgAddSmartcardKey, msgAddSmartcardKeyConstrained, msgRemoveSmartcardKey:
		return true
	}
	return false
}

// readMessage reads one whole request from f (body only), within the
// message timeout.
func (f *frameConn) readMessage() ([]byte, error) {
	f.armDeadline()
	defer f.clearDeadline()
	var hdr [4]byte
	if err := f.readFull(hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, n)
	}
	msg := make([]byte, n)
	if err := f.readFull(msg); err != nil {
		clear(msg)
		return nil, err
	}
	return msg, nil
}

// serveRoutable serves a request that routable accepted: an added key of
// a type sesame does not hold and the smartcard requests go to the
// backend, anything else to ServeAgent as usual. The request may carry a
// private key or a PIN; it is wiped once answered, and the caller runs
// this inside lock.Do.
func (c *conn) serveRoutable(fc *frameConn) error {
	msg, err := fc.readMessage()
	if err != nil {
		return err
	}
	defer clear(msg)
	if len(msg) == 0 {
		return fc.writeMessage([]byte{msgFailure})
	}
	if c.tainted {
		c.log.Debug("request refused", "type", msg[0], "err", errTainted)
		return fc.writeMessage([]byte{msgFailure})
	}
	if namesProvider(msg) && !c.mayAddProvider() {
		// ssh-agent: "remote addition of providers is disabled".
		c.log.Info("refused loading a provider for a client that is not local (see -O allow-remote-pkcs11)", "type", msg[0])
		return fc.writeMessage([]byte{msgFailure})
	}
	toBackend := true
	if msg[0] == msgAddIdentity || msg[0] == msgAddIDConstrained {
		r := sshwire.Reader{B: msg[1:]}
		typ := r.String()
		toBackend = r.Err == nil && !heldTypes[string(typ)]
	}
	if !toBackend {
		// ServeAgent reads it from memory and answers through fc.
		full := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(msg)), uint32(len(msg)))
		full = append(full, msg...)
		defer clear(full)
		err := xagent.ServeAgent(c, &replayConn{r: bytes.NewReader(full), w: fc})
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil
		}
		return err
	}
	if c.s.Locked() {
		return fc.writeMessage([]byte{msgFailure})
	}
	reply, err := c.be.request(msg)
	if err != nil {
		c.log.Warn("passing a request to the backend ssh-agent", "err", err)
		return fc.writeMessage([]byte{msgFailure})
	}
	c.log.Debug("request served by the backend", "type", msg[0], "reply", reply[0])
	return fc.writeMessage(reply)
}

// ExtSKProvider is the key constraint naming the FIDO middleware library
// the agent should load for a security key (ssh-add -S).
const ExtSKProvider = "sk-provider@openssh.com"

// skProviderName is the constraint's name as it appears on the wire.
var skProviderName = appendString(nil, []byte(ExtSKProvider))

// namesProvider reports whether a request would have the agent load a
// library: a PKCS#11 provider (ADD_SMARTCARD_KEY, with or without
// constraints), or a key added with the sk-provider constraint. The
// constraint is looked for as its length-prefixed name anywhere in the
// request: where the constraints start depends on the key type, and a
// request that merely carries those bytes elsewhere (in a comment) is
// refused too, which errs on the safe side.
func namesProvider(msg []byte) bool {
	switch msg[0] {
	case msgAddSmartcardKey, msgAddSmartcardKeyConstrained:
		return true
	case msgAddIDConstrained:
		return bytes.Contains(msg[1:], skProviderName)
	}
	return false
}

// allowRemoteProviders reports whether the agent runs with -O
// allow-remote-pkcs11 (ssh-agent(1)): providers may then be loaded for
// forwarded clients too.
func (s *Server) allowRemoteProviders() bool {
	for _, o := range s.opts.BackendOptions {
		if o == "allow-remote-pkcs11" {
			return true
		}
	}
	return false
}

// replayConn hands ServeAgent one request held in memory.
type replayConn struct {
	r io.Reader
	w io.Writer
}

func (r *replayConn) Read(p []byte) (int, error)  { return r.r.Read(p) }
func (r *replayConn) Write(p []byte) (int, error) { return r.w.Write(p) }

// serveBackendRoutable is the hook serveFrames calls for each request:
// it reports whether the request was one for serveRoutable, and serves it.
func serveBackendRoutable(ca *conn, fc *frameConn) (bool, error) {
	typ, ok := fc.peekType()
	if !ok || !routable(typ) {
		return false, nil
	}
	var err error
	lock.Do(func() { err = ca.serveRoutable(fc) })
	return true, err
}
