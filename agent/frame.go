package agent

import (
	"bufio"
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

// frameConn sits between a connection and ServeAgent. On the way in it
// checks each message's length before ServeAgent allocates for it, and
// gives a client that started a message a bounded time to finish it, so a
// stalled half-message cannot hold a connection slot for ever. On the way
// out it gathers each reply (ServeAgent writes the length and the body
// separately) into one write.
type frameConn struct {
	c       net.Conn
	r       *bufio.Reader
	body    int     // bytes of the current message still to pass on
	hdr     [4]byte // a validated length not yet handed to the reader
	hdrLeft int
	wbuf    []byte
	timeout time.Duration
	// list, when set, answers REQUEST_IDENTITIES without ServeAgent, or
	// returns nil to let ServeAgent handle it. Listing is what every ssh
	// login does first; this keeps it a copy of a prepared answer.
	list func() []byte
}

// SSH_AGENTC_REQUEST_IDENTITIES.
const msgRequestIdentities = 11

func newFrameConn(c net.Conn, timeout time.Duration) *frameConn {
	return &frameConn{c: c, r: bufio.NewReaderSize(c, 4096), timeout: timeout}
}

func (f *frameConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for f.hdrLeft == 0 && f.body == 0 {
		// Start of a message: wait as long as the client likes for it.
		if f.timeout > 0 {
			f.c.SetReadDeadline(time.Time{})
		}
		if _, err := io.ReadFull(f.r, f.hdr[:1]); err != nil {
			return 0, err
		}
		if f.timeout > 0 {
			f.c.SetReadDeadline(time.Now().Add(f.timeout))
		}
		if _, err := io.ReadFull(f.r, f.hdr[1:]); err != nil {
			return 0, err
		}
		n := binary.BigEndian.Uint32(f.hdr[:])
		if n > MaxMessage {
			return 0, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, n)
		}
		if n == 1 && f.list != nil {
			if b, err := f.r.Peek(1); err == nil && b[0] == msgRequestIdentities {
				if reply := f.list(); reply != nil {
					f.r.Discard(1)
					if err := f.writeMessage(reply); err != nil {
						return 0, err
					}
					continue
				}
			}
		}
		f.hdrLeft, f.body = 4, int(n)
	}
	if f.hdrLeft > 0 {
		n := copy(p, f.hdr[4-f.hdrLeft:])
		f.hdrLeft -= n
		return n, nil
	}
	if len(p) > f.body {
		p = p[:f.body]
	}
	n, err := f.r.Read(p)
	f.body -= n
	return n, err
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
	_, err := f.c.Write(f.wbuf)
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
	_, err := f.c.Write(f.wbuf)
	f.wbuf = f.wbuf[:0]
	return err
}
