package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// MaxMessage is the largest agent message accepted, as in OpenSSH
// (AGENT_MAX_LEN); x/crypto alone would take 16 MiB.
const MaxMessage = 256 * 1024

// ErrMessageTooLarge ends a connection that announces a bigger message.
var ErrMessageTooLarge = errors.New("agent message too large")

// Message types (draft-ietf-sshm-ssh-agent, section 6.1) that the framing
// layer and the quick path look at.
const (
	msgFailure           = 5
	msgRequestIdentities = 11
	msgSignRequest       = 13
	msgSignResponse      = 14
	msgAddIdentity       = 17
	msgLock              = 22
	msgUnlock            = 23
	msgAddIDConstrained  = 25
)

// carriesSecret reports whether a request of this type holds a private key
// or a passphrase.
func carriesSecret(typ byte) bool {
	switch typ {
	case msgAddIdentity, msgAddIDConstrained, msgLock, msgUnlock:
		return true
	}
	return false
}

// frameConn sits between a connection and ServeAgent.
//
// On the way in it checks each message's length before ServeAgent
// allocates for it, and gives a client that started a message a bounded
// time to finish it, so a stalled half-message cannot hold a connection
// slot for ever. Bytes are passed on without being kept: its own buffer is
// cleared as it is consumed, and the caller's buffers that received a
// private key or a passphrase are cleared once ServeAgent has handled that
// message (it asks for the next one only after replying), so a request's
// secrets do not linger in freed memory. Whatever keeps a key must copy it.
//
// On the way out it gathers each reply (ServeAgent writes the length and
// the body separately) into one write.
type frameConn struct {
	c        net.Conn
	timeout  time.Duration
	deadline bool // a read deadline is set on c

	rbuf       [4096]byte
	rpos, rend int // rbuf[rpos:rend] is read from c, not yet passed on

	hdr       [4]byte // a validated length not yet handed to the reader
	hdrLeft   int
	body      int  // bytes of the current message still to pass on
	bodyStart bool // the next body byte is the message type
	secret    bool // the current message carries a secret
	filled    [][]byte

	wbuf []byte

	// wtimeout bounds the time to write one reply (0: no bound): a client
	// that does not read its replies must not keep its slot (and the
	// goroutine serving it) for ever. wdl is the write deadline set on c;
	// it is moved forward only when less than half of wtimeout is left,
	// so that most replies set no timer. slot, when set, learns when a
	// write is under way, so that a full agent can close a connection
	// whose peer has stopped reading (see Server.evictLocked).
	wtimeout time.Duration
	wdl      time.Time
	slot     *slot

	// quick, when set, answers a request that has fully arrived without
	// ServeAgent, or returns nil to let ServeAgent handle it. It sees no
	// request that carries a secret, and msg is valid only during the call.
	// Listing and signing are what every ssh login does; x/crypto's
	// reflection-based parsing and marshalling were a fifth of the agent's
	// own work per signature.
	quick func(msg []byte) []byte

	// oneShot makes Read report errRequestDone instead of starting a
	// second message, so that ServeAgent returns after each request and
	// the caller can run every request in its own lock.Do.
	oneShot bool
	served  bool // a message was passed on (or answered) in this shot
}

// errRequestDone ends ServeAgent after one request in oneShot mode.
var errRequestDone = errors.New("request done")

// waitMessage blocks until the next message begins to arrive, without a
// deadline: between messages a client may stay idle as long as it likes.
// It starts a new shot.
func (f *frameConn) waitMessage() error {
	f.served = false
	if f.hdrLeft != 0 || f.body != 0 || f.rpos < f.rend {
		return nil
	}
	f.clearDeadline()
	return f.fill()
}

// clearDeadline lifts the deadline of a message that had to wait for its
// bytes.
func (f *frameConn) clearDeadline() {
	if f.deadline {
		f.c.SetReadDeadline(time.Time{})
		f.deadline = false
	}
}

// armDeadline bounds the time for the rest of a message that has begun,
// unless all of it has already arrived (the usual case: a request comes
// in one write). A deadline is a runtime timer; setting and clearing one
// for every request showed in the cost of a signature.
func (f *frameConn) armDeadline() {
	if f.timeout <= 0 || f.deadline {
		return
	}
	if have := f.rend - f.rpos; have >= 4 && have-4 >= int(binary.BigEndian.Uint32(f.rbuf[f.rpos:])) {
		return
	}
	f.c.SetReadDeadline(time.Now().Add(f.timeout))
	f.deadline = true
}

// nextCarriesSecret reports whether the next request, whose first bytes
// waitMessage has read, carries a private key or a passphrase. When its
// type byte has not arrived yet it answers true, the safe side.
func (f *frameConn) nextCarriesSecret() bool {
	if f.hdrLeft != 0 || f.body != 0 || f.rend-f.rpos < 5 {
		return true
	}
	return carriesSecret(f.rbuf[f.rpos+4])
}

func newFrameConn(c net.Conn, timeout time.Duration) *frameConn {
	return &frameConn{c: c, timeout: timeout}
}

// fill reads more from the connection when the buffer is empty.
func (f *frameConn) fill() error {
	if f.rpos < f.rend {
		return nil
	}
	n, err := f.c.Read(f.rbuf[:])
	f.rpos, f.rend = 0, n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// take moves buffered bytes into p and clears them from the buffer.
func (f *frameConn) take(p []byte) int {
	n := copy(p, f.rbuf[f.rpos:f.rend])
	clear(f.rbuf[f.rpos : f.rpos+n])
	f.rpos += n
	return n
}

// readFull reads len(p) bytes of a message already begun, so an end of
// stream is unexpected.
func (f *frameConn) readFull(p []byte) error {
	for len(p) > 0 {
		if err := f.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		p = p[f.take(p):]
	}
	return nil
}

// wipe clears the secret-bearing request bytes handed out so far.
func (f *frameConn) wipe() {
	for _, b := range f.filled {
		clear(b)
	}
	f.filled = f.filled[:0]
}

func (f *frameConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for f.hdrLeft == 0 && f.body == 0 {
		// ServeAgent asks for a new message only after it has answered the
		// last one: its request buffer is no longer in use.
		f.wipe()
		if f.oneShot && f.served {
			return 0, errRequestDone
		}
		f.served = true
		// Between messages a client may stay idle as long as it likes.
		f.clearDeadline()
		if err := f.fill(); err != nil {
			return 0, err
		}
		f.armDeadline()
		if err := f.readFull(f.hdr[:]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint32(f.hdr[:])
		if n > MaxMessage {
			return 0, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, n)
		}
		if f.quick != nil && n > 0 && int(n) <= len(f.rbuf) {
			if f.rpos == f.rend && n == 1 {
				// A listing whose type byte comes in a later write.
				if err := f.fill(); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return 0, err
				}
			}
			if int(n) <= f.rend-f.rpos {
				msg := f.rbuf[f.rpos : f.rpos+int(n)]
				if !carriesSecret(msg[0]) {
					if reply := f.quick(msg); reply != nil {
						clear(msg)
						f.rpos += int(n)
						if err := f.writeMessage(reply); err != nil {
							return 0, err
						}
						continue
					}
				}
			}
		}
		f.hdrLeft, f.body, f.bodyStart, f.secret = 4, int(n), true, false
	}
	if f.hdrLeft > 0 {
		n := copy(p, f.hdr[4-f.hdrLeft:])
		f.hdrLeft -= n
		return n, nil
	}
	if len(p) > f.body {
		p = p[:f.body]
	}
	var n int
	if f.rpos < f.rend {
		n = f.take(p)
	} else if len(p) >= len(f.rbuf) {
		// Large bodies go straight into the caller's buffer.
		var err error
		if n, err = f.c.Read(p); n == 0 {
			return 0, err
		}
	} else {
		if err := f.fill(); err != nil {
			return 0, err
		}
		n = f.take(p)
	}
	if f.bodyStart {
		f.secret = carriesSecret(p[0])
		f.bodyStart = false
	}
	if f.secret {
		f.filled = append(f.filled, p[:n])
	}
	f.body -= n
	return n, nil
}

func (f *frameConn) Write(p []byte) (int, error) {
	f.wbuf = append(f.wbuf, p...)
	if len(f.wbuf) < 4 {
		return len(p), nil
	}
	want := 4 + int(binary.BigEndian.Uint32(f.wbuf))
	if len(f.wbuf) < want {
		return len(p), nil
	}
	err := f.send(f.wbuf)
	if cap(f.wbuf) > 64*1024 {
		f.wbuf = nil
	} else {
		f.wbuf = f.wbuf[:0]
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeMessage sends one whole message in a single write.
func (f *frameConn) writeMessage(body []byte) error {
	f.wbuf = binary.BigEndian.AppendUint32(f.wbuf[:0], uint32(len(body)))
	f.wbuf = append(f.wbuf, body...)
	err := f.send(f.wbuf)
	f.wbuf = f.wbuf[:0]
	return err
}

// send writes one whole reply within the write deadline.
func (f *frameConn) send(b []byte) error {
	if f.wtimeout > 0 {
		now := time.Now()
		if f.wdl.Sub(now) < f.wtimeout/2 {
			f.wdl = now.Add(f.wtimeout)
			f.c.SetWriteDeadline(f.wdl)
		}
	}
	start := f.slot.writing()
	_, err := f.c.Write(b)
	if !f.slot.written(start) && err == nil {
		err = errEvicted
	}
	return err
}
