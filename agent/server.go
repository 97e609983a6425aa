package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/paths"
	"github.com/sesame-ssh/sesame/lock"
)

// DefaultMaxConns bounds the connections open at once when Options does
// not say. A connection waiting for its next request is idle and costs no
// slot that a new client needs: when the agent is full, the connection
// that has been idle longest is closed to make room (an ssh client keeps
// its agent connection open for the whole session but uses it only to
// log in; forwarded agent channels are opened anew for each use). A new
// client finds no room only when every connection is busy with a request,
// and each request is bounded (MessageTimeout, the confirm and unlock
// waits); it is then refused.
const DefaultMaxConns = 256

// DefaultMaxConnsPerPeer bounds the connections of one client process
// (by the pid the kernel reports for the socket's peer): a process past
// its share loses its own longest-idle connection, or has the new one
// refused, and cannot crowd out the others. Every channel of a forwarded
// agent (ssh -A) comes through the one local ssh process, so a server the
// agent is forwarded to is held to this share too.
const DefaultMaxConnsPerPeer = 64

// DefaultWriteTimeout bounds the time to write one reply: a client that
// does not read what it asked for loses its connection. ssh-agent, which
// serves every client from one loop, never blocks on one; sesame serves
// each in a goroutine that would.
const DefaultWriteTimeout = 10 * time.Second

// stuckWrite is how long a reply may have been blocked before a full agent
// may close its connection to make room, as it closes idle ones: a peer
// that reads takes a reply in microseconds.
const stuckWrite = 100 * time.Millisecond

// DefaultMessageTimeout is how long a client that began a message has to
// send the rest of it.
const DefaultMessageTimeout = 30 * time.Second

// KeyLoader returns stored keys to load into the agent: at start when the
// agent is not locked (passphrase nil), then only while stored keys wait
// for a passphrase: after a successful unlock (with the unlock passphrase,
// which may also open the store) and on an unlock request while unlocked.
// Each call with a passphrase is an attempt of the lock's back-off. It returns an error wrapping ErrNeedPassphrase when the store
// needs a passphrase it was not given, and one wrapping ErrBadPassphrase
// when the passphrase does not open it. Keys already loaded are left as
// they are. The server wipes the ed25519 keys it is given once loaded, so
// each call must return fresh copies.
type KeyLoader func(passphrase []byte) ([]xagent.AddedKey, error)

// ErrNeedPassphrase: the key store needs a passphrase to be read.
var ErrNeedPassphrase = errors.New("stored keys need a passphrase")

// Options configure a Server.
type Options struct {
	// Socket is the path of the unix socket to listen on; its directory
	// is created 0700.
	Socket string
	// Listener, when set, is used instead of creating Socket: a socket
	// handed over by systemd socket activation. It is not removed on stop,
	// since it belongs to whoever created it.
	Listener net.Listener
	// DefaultLifetime applies to keys added without a lifetime (ssh-agent
	// -t). Zero: keys stay until removed.
	DefaultLifetime time.Duration
	// MaxConns bounds the connections open at once (DefaultMaxConns if
	// 0), MaxConnsPerPeer those of one client process
	// (DefaultMaxConnsPerPeer if 0).
	MaxConns        int
	MaxConnsPerPeer int
	// MessageTimeout bounds the time to send one message once started
	// (DefaultMessageTimeout if 0, negative: no bound).
	MessageTimeout time.Duration
	// WriteTimeout bounds the time to write one reply
	// (DefaultWriteTimeout if 0, negative: no bound).
	WriteTimeout time.Duration
	// Policy filters identities and signatures per connection; nil offers
	// and signs everything, like ssh-agent.
	Policy Policy
	// Locker handles lock and unlock; nil uses NewPassphraseLocker().
	Locker Locker
	// KeyLoader, when set, supplies stored keys at start and on unlock.
	KeyLoader KeyLoader
	// Askpass is the program asked to confirm keys added with ssh-add -c;
	// empty uses $SSH_ASKPASS.
	Askpass string
	// ConfirmTimeout bounds one confirmation prompt (default 2 minutes).
	ConfirmTimeout time.Duration
	// Logger receives debug logs; nil uses slog.Default().
	Logger *slog.Logger
	// OnBind, when set, is called after each accepted session-bind.
	OnBind func(c *ConnInfo, b Bind)
	// FingerprintHash shows key fingerprints in confirmation prompts
	// (ssh-agent -E); the zero value is SHA256.
	FingerprintHash FingerprintHash
	// Settings are the command-line settings the agent runs with, in a
	// canonical form; the status reports them.
	Settings []string
	// StatusExtra, when set, fills in what the server does not know
	// itself (the key store's backend, the lock settings) when a client
	// asks for the status.
	StatusExtra func(*Status)
	// BackendAgent is the ssh-agent run as the backend for keys sesame
	// does not hold (FIDO, PKCS#11; see backend.go); empty: ssh-agent
	// from PATH. Providers is its -P allow-list (DefaultProviders if
	// empty).
	BackendAgent string
	Providers    string
	// BackendOptions are the backend's -O options (ssh-agent's
	// allow-remote-pkcs11, no-restrict-websafe, websafe-allow=…).
	BackendOptions []string
}

func (o *Options) confirmTimeout() time.Duration {
	if o.ConfirmTimeout > 0 {
		return o.ConfirmTimeout
	}
	return 2 * time.Minute
}

// Server is a running SSH agent: a listener, the loaded keys and the
// connections being served.
type Server struct {
	opts Options
	keys *keyring
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]*slot
	perPeer  map[int]int // open connections by peer pid
	wg       sync.WaitGroup
	stopOnce sync.Once

	confirmMu sync.Mutex
	lockMu    sync.Mutex

	// sealer is opts.Locker when it seals the keys (nil otherwise).
	sealer *SealingLocker
	// guard is the back-off every passphrase check goes through: the
	// Locker's when it has one, so that lock guesses and key store
	// guesses are counted and slowed together.
	guard *lock.Guard
	// loadMu serialises loading stored keys (held across the store's
	// I/O and key derivation). pendMu guards pending, which records that
	// they could not be loaded for want of a passphrase (or failed at
	// start, pendingWhy saying why): Status and Pending take only pendMu,
	// so that a slow or stuck store never holds up other clients.
	loadMu     sync.Mutex
	pendMu     sync.Mutex
	pending    bool
	pendingWhy string

	trim memTrimmer

	backend backend
}

// New returns a Server that is not yet listening.
func New(opts Options) *Server {
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerPeer <= 0 {
		opts.MaxConnsPerPeer = min(DefaultMaxConnsPerPeer, opts.MaxConns)
	}
	if opts.MessageTimeout == 0 {
		opts.MessageTimeout = DefaultMessageTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Locker == nil {
		opts.Locker = NewPassphraseLocker()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: opts, keys: newKeyring(), log: opts.Logger,
		ctx: ctx, cancel: cancel,
		conns: make(map[net.Conn]*slot), perPeer: make(map[int]int),
	}
	s.trim.after = idleTrimAfter
	s.backend.s = s
	if g, ok := opts.Locker.(guarded); ok {
		s.guard = g.Guard()
	} else {
		s.guard = lock.NewGuard(0, 0)
	}
	if sl, ok := opts.Locker.(*SealingLocker); ok {
		s.sealer = sl
		if err := sl.l.AddHolder(keyHolder{s.keys}); err != nil {
			// Only refused while locked: the keyring is empty then anyway.
			s.log.Warn("lock: registering the keyring", "err", err)
		}
	}
	return s
}

// DefaultSocket is where the agent listens unless told otherwise.
func DefaultSocket() string {
	return filepath.Join(paths.Runtime(), "agent.sock")
}

// Listen creates the socket, exactly at Socket: it never creates or
// changes the directory the socket goes in (ssh-agent -a binds where it is
// told). The socket is 0600, bound under umask 0177 so it is never wider,
// even for an instant. A stale socket nobody answers on is replaced; a live
// one, anything else at the path, a missing directory or one that belongs
// to another user is a SocketPathError and nothing on disk changes. With no
// Socket it listens on DefaultSocket, creating only the last directory of
// its path (private, 0700).
func (s *Server) Listen() error {
	if s.opts.Listener != nil {
		s.mu.Lock()
		s.ln = s.opts.Listener
		s.mu.Unlock()
		return nil
	}
	path := s.opts.Socket
	if path == "" {
		path = DefaultSocket()
		s.opts.Socket = path
		if err := paths.PrivateDir(filepath.Dir(path)); err != nil {
			return &SocketPathError{Path: path, Err: err}
		}
	}
	if err := CheckSocketPath(path); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return &SocketInUseError{Path: path}
		}
		if err := os.Remove(path); err != nil {
			return &SocketPathError{Path: path, Err: fmt.Errorf("remove stale socket: %w", err)}
		}
	}
	var ln net.Listener
	err := withUmask(0o177, func() error {
		var err error
		ln, err = net.Listen("unix", path)
		return err
	})
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		return &SocketPathError{Path: path, Err: err}
	}
	// Closing the listener removes the socket file, unless a newer agent
	// has replaced it meanwhile (then it is not ours to remove).
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// CheckSocketPath tells whether the agent may bind at path without
// touching anything else on disk: its directory must exist and be ours or
// root's (a system directory such as /tmp), and the path must be free or
// hold a socket. It changes nothing.
func CheckSocketPath(path string) error {
	if !filepath.IsAbs(path) {
		return &SocketPathError{Path: path, Err: errors.New("not an absolute path")}
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		return &SocketPathError{Path: path, Err: fmt.Errorf("directory %s does not exist", dir),
			hint: "create it first (mkdir -m 0700 " + dir + "); sesame does not create it for you"}
	case err != nil:
		return &SocketPathError{Path: path, Err: err}
	case !di.IsDir():
		return &SocketPathError{Path: path, Err: fmt.Errorf("%s is not a directory", dir)}
	}
	if uid, ok := paths.OwnerUID(di); ok && uid != os.Getuid() && uid != 0 {
		return &SocketPathError{Path: path, Err: fmt.Errorf("directory %s belongs to uid %d", dir, uid),
			hint: "put the socket in a directory of your own (or a system one such as /tmp)"}
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != os.ModeSocket {
		return &SocketPathError{Path: path, Err: errors.New("it exists and is not a socket"),
			hint: "choose another path with -a; sesame does not remove what is there"}
	}
	return nil
}

// SocketPathError says why the agent cannot listen at Path.
type SocketPathError struct {
	Path string
	Err  error
	hint string
}

func (e *SocketPathError) Error() string {
	return "cannot listen on " + e.Path + ": " + e.Err.Error()
}

func (e *SocketPathError) Unwrap() error { return e.Err }

// Hint tells the user what to do, when there is something to say.
func (e *SocketPathError) Hint() string { return e.hint }

// SocketInUseError says another agent already answers on the socket.
type SocketInUseError struct{ Path string }

func (e *SocketInUseError) Error() string {
	return "an agent is already listening on " + e.Path
}

// Hint tells the user what to do.
func (e *SocketInUseError) Hint() string {
	return "stop it with `sesame agent -k`, or choose another socket with -a"
}

// Socket is the path the server listens on.
func (s *Server) Socket() string { return s.opts.Socket }

// Serve loads stored keys, then accepts connections until ctx ends or
// Close is called; it returns nil after a clean stop. Listen must have
// been called.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("agent: Serve before Listen")
	}
	stop := context.AfterFunc(ctx, s.Close)
	defer stop()
	// Close stops the backend too, but from another goroutine: make sure
	// it is gone before Serve returns and the process exits.
	defer s.backend.stop()

	if !s.opts.Locker.Locked() {
		// Clients wait in the listen backlog until the stored keys are
		// in, so that the first one sees them; a stop signal meanwhile
		// still ends the agent, however long the store takes.
		loaded := make(chan struct{})
		go func() {
			defer close(loaded)
			if err := s.loadKeys(nil); err != nil {
				s.log.Warn("loading stored keys", "err", err)
			}
		}()
		select {
		case <-loaded:
		case <-ctx.Done():
			return nil
		}
	}
	for {
		// Accept at once: a full agent makes room by closing an idle
		// connection (see DefaultMaxConns), and a client left in the
		// listen backlog behind idle ones would hang.
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				s.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and friends: back off instead of spinning.
			s.log.Warn("accept", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-s.ctx.Done():
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Close stops accepting, closes every connection and removes the socket.
// It is safe to call more than once and from any goroutine.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		s.cancel()
		s.mu.Lock()
		if s.ln != nil {
			s.ln.Close()
		}
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.backend.stop()
	})
}

// allowed is OpenSSH's rule: the agent's own uid, or root.
func (s *Server) allowed(uid int) bool {
	return uid == os.Getuid() || uid == 0
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	uid, pid, err := peerCred(c)
	if err != nil {
		s.log.Warn("refusing connection", "err", err)
		return
	}
	if !s.allowed(uid) {
		s.log.Warn("refusing connection from another user", "uid", uid, "pid", pid)
		return
	}
	sl, err := s.admit(c, pid)
	if err != nil {
		s.log.Debug("refusing connection", "pid", pid, "err", err)
		return
	}
	defer s.release(c)

	ca := &conn{s: s, info: ConnInfo{UID: uid, PID: pid}, log: s.log.With("pid", pid), slot: sl}
	ca.be.b = &s.backend
	defer ca.be.close()
	ca.log.Debug("connection")
	defer ca.closed()
	fc := newFrameConn(c, s.opts.MessageTimeout)
	fc.wtimeout, fc.slot = max(0, s.opts.WriteTimeout), sl
	fc.quick = ca.quickAnswer
	err = serveFrames(ca, fc)
	if err != nil && !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
		ca.log.Debug("connection ended", "err", err)
	}
}

// serveFrames serves requests until the connection ends. It waits for each
// request outside lock.Do; a request that carries a private key or a
// passphrase (add, lock, unlock) is then read, parsed and answered inside
// it, and a signature's use of the key runs inside its own lock.Do: with
// GOEXPERIMENT=runtimesecret the request buffer, the parsed key's
// temporaries and the signing scratch are erased once freed, and the stack
// on return, so that a lock leaves no copy of a key behind (an ssh session
// keeps its agent connection open for hours). Other requests stay outside:
// every allocation inside lock.Do costs a bookkeeping record, which made a
// 100-key listing five times slower.
func serveFrames(ca *conn, fc *frameConn) error {
	fc.oneShot = true
	defer fc.wipe()
	for {
		ca.slot.idle()
		if err := fc.waitMessage(); err != nil {
			return err
		}
		if !ca.slot.busy() {
			return errEvicted // closed to make room just as it spoke
		}
		ca.s.trim.touch()
		if ok, err := serveBackendRoutable(ca, fc); ok {
			if err != nil {
				return err
			}
			continue
		}
		var err error
		if fc.nextCarriesSecret() {
			lock.Do(func() {
				err = xagent.ServeAgent(ca, fc)
				fc.wipe()
			})
		} else {
			// Listing, signing (whose key use runs in its own
			// lock.Do), extensions: nothing secret passes here, and
			// runtime/secret makes every allocation markedly dearer.
			err = xagent.ServeAgent(ca, fc)
		}
		if !errors.Is(err, errRequestDone) {
			return err
		}
	}
}

// activeConns counts the connections being served.
func (s *Server) activeConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// errEvicted ends a connection closed to make room for another.
var errEvicted = errors.New("connection closed to make room for another")

// errNoRoom refuses a connection when every slot is busy.
var errNoRoom = errors.New("too many connections busy")

// slot is one connection's place in the server's table. Its idle time is
// read by admit without the connection's goroutine: since is the time
// (unix nanoseconds) the connection began waiting for its next request,
// 0 while it is busy with one, and evictedMark once admit closed it. The
// goroutine and admit settle a connection that speaks as it is chosen
// with a compare-and-swap: either the request is served or the
// connection is closed, never half of each.
// A connection busy writing a reply records in writeAt when the write
// began (0 when none is under way); admit may close one blocked for
// longer than stuckWrite, marking it evictedMark there.
type slot struct {
	c       net.Conn
	pid     int
	since   atomic.Int64
	writeAt atomic.Int64
}

const evictedMark = -1

// idle marks the connection as waiting for its next request. A nil slot
// (ServeConn) is never evicted.
func (sl *slot) idle() {
	if sl != nil {
		sl.since.Store(time.Now().UnixNano())
	}
}

// busy marks a request begun; false when admit has closed the connection.
func (sl *slot) busy() bool {
	if sl == nil {
		return true
	}
	for {
		v := sl.since.Load()
		if v == evictedMark {
			return false
		}
		if sl.since.CompareAndSwap(v, 0) {
			return true
		}
	}
}

// writing records that a reply is being written and returns its start.
func (sl *slot) writing() int64 {
	if sl == nil {
		return 0
	}
	now := time.Now().UnixNano()
	sl.writeAt.Store(now)
	return now
}

// written records that the reply begun at start is out; false when admit
// closed the connection meanwhile.
func (sl *slot) written(start int64) bool {
	return sl == nil || sl.writeAt.CompareAndSwap(start, 0)
}

// admit records a new connection from pid, first making room when the
// agent or the peer is at its bound by closing the longest-idle connection
// (of the same peer when the peer is at its own bound). It refuses the
// connection when no idle one can be closed.
func (s *Server) admit(c net.Conn, pid int) (*slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	for s.perPeer[pid] >= s.opts.MaxConnsPerPeer {
		if !s.evictLocked(pid, true) {
			return nil, fmt.Errorf("%w: %d from this process", errNoRoom, s.perPeer[pid])
		}
	}
	for len(s.conns) >= s.opts.MaxConns {
		if !s.evictLocked(pid, false) {
			return nil, fmt.Errorf("%w: %d in all", errNoRoom, len(s.conns))
		}
	}
	sl := &slot{c: c, pid: pid}
	sl.since.Store(time.Now().UnixNano()) // idle until it speaks
	s.conns[c] = sl
	s.perPeer[pid]++
	return sl, nil
}

// evictLocked closes the connection idle longest, among pid's when
// samePeer, and forgets it at once (its goroutine's release finds it
// gone). False when none is idle.
func (s *Server) evictLocked(pid int, samePeer bool) bool {
	// First a connection whose peer has stopped reading: its reply has
	// been blocked for a while.
	stuckBefore := time.Now().Add(-stuckWrite).UnixNano()
	for _, sl := range s.conns {
		if samePeer && sl.pid != pid {
			continue
		}
		if w := sl.writeAt.Load(); w > 0 && w < stuckBefore && sl.writeAt.CompareAndSwap(w, evictedMark) {
			sl.c.Close()
			s.forgetLocked(sl.c)
			s.log.Debug("closed a connection that does not read its replies to make room", "pid", sl.pid)
			return true
		}
	}
	for {
		var oldest *slot
		var at int64
		for _, sl := range s.conns {
			if samePeer && sl.pid != pid {
				continue
			}
			if v := sl.since.Load(); v > 0 && (oldest == nil || v < at) {
				oldest, at = sl, v
			}
		}
		if oldest == nil {
			return false
		}
		if !oldest.since.CompareAndSwap(at, evictedMark) {
			continue // it spoke (or idled again) meanwhile: choose again
		}
		oldest.c.Close()
		s.forgetLocked(oldest.c)
		s.log.Debug("closed an idle connection to make room", "pid", oldest.pid)
		return true
	}
}

func (s *Server) forgetLocked(c net.Conn) {
	sl, ok := s.conns[c]
	if !ok {
		return
	}
	delete(s.conns, c)
	if s.perPeer[sl.pid]--; s.perPeer[sl.pid] <= 0 {
		delete(s.perPeer, sl.pid)
	}
}

// release forgets a connection that has ended.
func (s *Server) release(c net.Conn) {
	s.mu.Lock()
	s.forgetLocked(c)
	s.mu.Unlock()
}

// ServeConn serves the agent protocol on rw as a connection from the
// given peer, without the socket checks. Fuzzing and tests use it.
func (s *Server) ServeConn(rw io.ReadWriter, info ConnInfo) error {
	ca := &conn{s: s, info: info, log: s.log}
	ca.be.b = &s.backend
	defer ca.be.close()
	defer ca.closed()
	if fc, ok := rw.(*frameConn); ok {
		if fc.quick == nil {
			fc.quick = ca.quickAnswer
		}
		return serveFrames(ca, fc)
	}
	return xagent.ServeAgent(ca, rw)
}

// Lock locks the agent through the Locker; while locked no key is listed
// or used. A SealingLocker seals the keys through the keyring's Holder; a
// Locker that is a KeySealer receives the keys; either way the agent
// forgets them until unlock.
func (s *Server) Lock(passphrase []byte) error { return s.lock(passphrase, true) }

// lock is Lock; arm says whether the passphrase may become the one
// automatic locks seal under (a local client's lock).
func (s *Server) lock(passphrase []byte, arm bool) error {
	if s.sealer != nil {
		do := s.sealer.Lock
		if !arm {
			do = s.sealer.lockOnly
		}
		if err := do(passphrase); err != nil {
			return err
		}
		s.backend.lock()
		s.log.Debug("locked", "sealed", s.keys.sealedCount())
		return nil
	}
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if err := s.opts.Locker.Lock(passphrase); err != nil {
		return err
	}
	sealer, ok := s.opts.Locker.(KeySealer)
	if !ok {
		s.keys.setLocked(true)
	} else {
		keys := s.keys.lockAndExport()
		if err := sealer.SealKeys(passphrase, keys); err != nil {
			// Stay usable rather than locked with keys nobody can get back.
			if uerr := s.opts.Locker.Unlock(passphrase); uerr != nil {
				s.log.Warn("undoing a failed lock", "err", uerr)
			}
			s.keys.unlockRetired()
			return fmt.Errorf("seal keys: %w", err)
		}
		s.keys.dropAll()
	}
	s.backend.lock()
	s.log.Debug("locked")
	return nil
}

// Unlock unlocks through the Locker, then loads the sealed keys and, when
// stored keys wait for a passphrase, the stored keys (from the KeyLoader,
// which may open the store with the same passphrase). When the agent is not locked but stored keys are waiting
// for a passphrase (the agent started without one), Unlock loads them with
// this passphrase instead: one `sesame unlock` then both unlocks and loads.
// Otherwise unlocking an unlocked agent is ErrNotLocked.
//
// Every check of the passphrase, the lock's and the store's, is one
// attempt of the same lock.Guard: guesses at the store pay the same
// back-off as guesses at the lock, and a store guess made by locking and
// unlocking with it is still counted.
func (s *Server) Unlock(passphrase []byte) error {
	if len(passphrase) == 0 {
		return fmt.Errorf("%w: empty passphrase", ErrBadPassphrase)
	}
	if !s.opts.Locker.Locked() {
		if s.Pending() {
			return s.guard.Attempt(s.ctx, func() error { return storeErr(s.loadPending(passphrase)) })
		}
		return ErrNotLocked
	}
	// The store is read with the unlock passphrase only while its keys
	// wait for one; keys loaded before come back from the seal.
	var storeErrSeen error
	loadStore := func() error {
		if !s.Pending() {
			return nil
		}
		storeErrSeen = s.loadKeys(passphrase)
		return storeErr(storeErrSeen)
	}
	// The Locker may make a wrong guess wait; no keyring or server mutex
	// is held meanwhile.
	var err error
	if s.sealer != nil {
		err = s.sealer.unlockThen(passphrase, loadStore)
		if err != nil && storeErrSeen != nil && !s.opts.Locker.Locked() {
			// Unlocked; only the store stays closed.
			err = nil
		}
	} else {
		err = s.opts.Locker.Unlock(passphrase)
	}
	if err != nil {
		return err
	}
	s.backend.unlock()
	if s.sealer == nil {
		s.lockMu.Lock()
		s.keys.setLocked(false)
		if sealer, ok := s.opts.Locker.(KeySealer); ok {
			keys, err := sealer.UnsealKeys(passphrase)
			if err != nil {
				s.log.Warn("unsealing keys", "err", err)
			}
			for _, k := range keys {
				if err := s.keys.add(k, time.Duration(k.LifetimeSecs)*time.Second); err != nil {
					s.log.Warn("reloading a sealed key", "comment", k.Comment, "err", err)
				}
			}
		}
		s.lockMu.Unlock()
	}
	s.log.Debug("unlocked", "keys", s.keys.count())
	if s.sealer == nil && s.Pending() {
		_ = s.guard.Attempt(s.ctx, loadStore)
	}
	if storeErrSeen != nil {
		// The lock passphrase need not be the store's: the sealed keys
		// are back, and the store stays for `sesame unlock` to open.
		s.log.Debug("loading stored keys after unlock", "err", storeErrSeen)
	}
	return nil
}

// storeErr marks a key store's refusal of a passphrase as a failed
// attempt for the lock.Guard.
func storeErr(err error) error {
	if errors.Is(err, ErrBadPassphrase) || errors.Is(err, ErrNeedPassphrase) {
		return fmt.Errorf("%w (%w)", err, lock.ErrBadPassphrase)
	}
	return err
}

// loadPending loads the stored keys that were waiting for a passphrase.
// A passphrase that opens the store also arms the automatic locks of a
// SealingLocker that has none yet, so that --lock-after works.
func (s *Server) loadPending(passphrase []byte) error {
	if err := s.loadKeys(passphrase); err != nil {
		if errors.Is(err, ErrNeedPassphrase) || errors.Is(err, ErrBadPassphrase) {
			return fmt.Errorf("%w: %w", ErrBadPassphrase, err)
		}
		return err
	}
	if s.sealer != nil && !s.sealer.l.Status().Armed {
		if err := s.sealer.l.SetPassphrase(passphrase); err != nil {
			s.log.Debug("arming the automatic lock", "err", err)
		}
	}
	return nil
}

// Pending reports whether stored keys wait for a passphrase (given by
// unlock) because the agent could not read the store without one.
func (s *Server) Pending() bool {
	p, _ := s.pendingState()
	return p
}

// pendingState is Pending and, when the stored keys failed to load at
// start, why.
func (s *Server) pendingState() (bool, string) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return s.pending, s.pendingWhy
}

func (s *Server) setPending(p bool, why string) {
	s.pendMu.Lock()
	s.pending, s.pendingWhy = p, why
	s.pendMu.Unlock()
}

// Locked reports whether the agent is locked.
func (s *Server) Locked() bool { return s.opts.Locker.Locked() }

// DropAllKeys forgets every key, loaded or sealed while locked, as
// ssh-agent does on SIGUSR1.
func (s *Server) DropAllKeys() {
	s.keys.mu.Lock()
	s.keys.clearLocked()
	s.keys.sealed = nil
	s.keys.mu.Unlock()
	s.backendRemoveAll()
	s.log.Debug("all keys removed")
}

// AddKey loads a key as if a client had added it (lifetime 0 uses the
// default lifetime).
func (s *Server) AddKey(k xagent.AddedKey) error {
	life := time.Duration(k.LifetimeSecs) * time.Second
	if life == 0 {
		life = s.opts.DefaultLifetime
	}
	return s.keys.add(k, life)
}

// Identities lists the loaded keys (none while locked).
func (s *Server) Identities() []Identity { return s.keys.identities() }

func (s *Server) loadKeys(passphrase []byte) error {
	if s.opts.KeyLoader == nil {
		return nil
	}
	// One load at a time: each may derive a slow key from the passphrase,
	// and concurrent guesses must not run in parallel.
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	// Inside lock.Do: the decrypted store and the parser's temporaries
	// are erased once freed.
	var keys []xagent.AddedKey
	var err error
	lock.Do(func() { keys, err = s.opts.KeyLoader(passphrase) })
	if err != nil {
		if errors.Is(err, ErrNeedPassphrase) && passphrase == nil {
			s.setPending(true, "")
			s.log.Debug("stored keys wait for a passphrase (sesame unlock)")
			return nil
		}
		if len(keys) == 0 {
			if passphrase == nil {
				// Failed at start (a wrong passphrase file, a vault
				// that could not be read): the keys stay loadable by
				// `sesame unlock` once the cause is mended, and
				// status says why they are missing.
				s.setPending(true, oneLine(err))
			}
			return err
		}
	}
	errs := []error{err}
	s.setPending(false, "")
	lock.Do(func() {
		for _, k := range keys {
			if pub, err := addedPublicKey(k); err == nil && s.keys.has(pub.Marshal()) {
				continue
			}
			if err := s.AddKey(k); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.Comment, err))
			}
		}
		// The keyring keeps copies of its own of ed25519 keys; wipe the
		// loader's only after all are added (a key and its certificate
		// may share one).
		for _, k := range keys {
			switch k.PrivateKey.(type) {
			case ed25519.PrivateKey, *ed25519.PrivateKey:
				lock.Wipe(k.PrivateKey)
			}
		}
	})
	return errors.Join(errs...)
}

// addedPublicKey is the public key an AddedKey will be listed under.
func addedPublicKey(k xagent.AddedKey) (ssh.PublicKey, error) {
	if k.Certificate != nil {
		return k.Certificate, nil
	}
	signer, err := ssh.NewSignerFromKey(k.PrivateKey)
	if err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}
