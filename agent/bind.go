package agent

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Limits on session-bind@openssh.com, as in OpenSSH's ssh-agent: a
// connection records at most this many binds, and a session id (a hash
// output) is never longer than this.
const (
	MaxBinds        = 16
	MaxSessionIDLen = 128
)

// ExtSessionBind is the name of OpenSSH's session-bind extension.
const ExtSessionBind = "session-bind@openssh.com"

// ErrBind is wrapped by every rejected session-bind.
var ErrBind = errors.New("session-bind rejected")

// sessionBindMsg is the extension's contents (PROTOCOL.agent, section 1):
// string hostkey, string session_id, string signature, bool is_forwarding.
type sessionBindMsg struct {
	HostKey    []byte
	SessionID  []byte
	Signature  []byte
	Forwarding bool
}

// parseSessionBind decodes and verifies a session-bind: the signature must
// be the host key's over the session id.
func parseSessionBind(contents []byte) (Bind, error) {
	var m sessionBindMsg
	if err := ssh.Unmarshal(contents, &m); err != nil {
		return Bind{}, fmt.Errorf("%w: malformed: %w", ErrBind, err)
	}
	if len(m.SessionID) == 0 || len(m.SessionID) > MaxSessionIDLen {
		return Bind{}, fmt.Errorf("%w: session id of %d bytes", ErrBind, len(m.SessionID))
	}
	key, err := ParseHostKey(m.HostKey)
	if err != nil {
		return Bind{}, fmt.Errorf("%w: %w", ErrBind, err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(m.Signature, sig); err != nil {
		return Bind{}, fmt.Errorf("%w: signature: %w", ErrBind, err)
	}
	if err := key.Verify(m.SessionID, sig); err != nil {
		return Bind{}, fmt.Errorf("%w: signature does not verify: %w", ErrBind, err)
	}
	return Bind{HostKey: key, SessionID: bytes.Clone(m.SessionID), Forwarding: m.Forwarding}, nil
}

// addBind appends b to the connection's chain under OpenSSH's rules: once
// a connection is bound for authentication (not forwarding) nothing more
// may be bound; the same (session id, key) again is accepted and ignored;
// a known session id with another key is refused; at most MaxBinds.
func addBind(c *ConnInfo, b Bind) (added bool, err error) {
	hostBlob := b.HostKey.Marshal()
	for _, o := range c.Binds {
		if !o.Forwarding {
			return false, fmt.Errorf("%w: connection already bound for authentication", ErrBind)
		}
		if bytes.Equal(o.SessionID, b.SessionID) {
			if bytes.Equal(o.HostKey.Marshal(), hostBlob) {
				return false, nil
			}
			return false, fmt.Errorf("%w: session id already bound to another host key", ErrBind)
		}
	}
	if len(c.Binds) >= MaxBinds {
		return false, fmt.Errorf("%w: more than %d binds", ErrBind, MaxBinds)
	}
	c.Binds = append(c.Binds, b)
	return true, nil
}
