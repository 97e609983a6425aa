package pin

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Methods whose requests the agent signs during publickey authentication.
const (
	MethodPublickey = "publickey"
	// MethodHostbound is OpenSSH's extension that also signs the server's
	// host key, so a signature cannot be replayed to another server.
	MethodHostbound = "publickey-hostbound-v00@openssh.com"
)

// msgUserauthRequest is SSH_MSG_USERAUTH_REQUEST (RFC 4252 §5).
const msgUserauthRequest = 50

// maxSessionID bounds the session identifier: it is a hash output, at most
// SHA-512 today; OpenSSH's agent refuses longer ones as well.
const maxSessionID = 128

// UserauthRequest is the data a client asks the agent to sign for
// publickey authentication (RFC 4252 §7):
//
//	string    session identifier
//	byte      SSH_MSG_USERAUTH_REQUEST
//	string    user name
//	string    service name
//	string    "publickey" | "publickey-hostbound-v00@openssh.com"
//	boolean   TRUE
//	string    public key algorithm name
//	string    public key blob
//	[string   server host key blob, hostbound only]
type UserauthRequest struct {
	SessionID []byte
	User      string
	Service   string
	Method    string
	Algorithm string
	Key       []byte // wire form of the key that signs
	HostKey   []byte // wire form of the server's host key (hostbound only)
}

// ErrNotUserauth says the data is not a publickey userauth request (an
// SSHSIG file signature, for example).
var ErrNotUserauth = errors.New("not a publickey userauth request")

// ParseUserauthRequest parses data to be signed as a userauth request.
// Anything else, including trailing bytes, gives an error wrapping
// ErrNotUserauth.
func ParseUserauthRequest(data []byte) (*UserauthRequest, error) {
	r := wireReader{b: data}
	var u UserauthRequest
	u.SessionID = r.bytes()
	if r.err == nil && (len(u.SessionID) == 0 || len(u.SessionID) > maxSessionID) {
		return nil, fmt.Errorf("%w: session id of %d bytes", ErrNotUserauth, len(u.SessionID))
	}
	if b := r.byte(); r.err == nil && b != msgUserauthRequest {
		return nil, fmt.Errorf("%w: message type %d", ErrNotUserauth, b)
	}
	u.User = string(r.bytes())
	u.Service = string(r.bytes())
	u.Method = string(r.bytes())
	if r.err == nil && u.Method != MethodPublickey && u.Method != MethodHostbound {
		return nil, fmt.Errorf("%w: method %q", ErrNotUserauth, u.Method)
	}
	if b := r.byte(); r.err == nil && b != 1 {
		return nil, fmt.Errorf("%w: not a signature request", ErrNotUserauth)
	}
	u.Algorithm = string(r.bytes())
	u.Key = r.bytes()
	if u.Method == MethodHostbound {
		u.HostKey = r.bytes()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotUserauth, r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrNotUserauth, len(r.b))
	}
	return &u, nil
}

// wireReader reads SSH wire types and remembers the first error.
type wireReader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *wireReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wireReader) bytes() []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < 4 {
		r.err = errShort
		return nil
	}
	n := binary.BigEndian.Uint32(r.b)
	if uint64(n) > uint64(len(r.b)-4) {
		r.err = errShort
		return nil
	}
	s := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return s
}
