package agent

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/sshwire"
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
	r := sshwire.Reader{B: data}
	var u UserauthRequest
	u.SessionID = r.String()
	if r.Err == nil && (len(u.SessionID) == 0 || len(u.SessionID) > maxSessionID) {
		return nil, fmt.Errorf("%w: session id of %d bytes", ErrNotUserauth, len(u.SessionID))
	}
	if b := r.Byte(); r.Err == nil && b != msgUserauthRequest {
		return nil, fmt.Errorf("%w: message type %d", ErrNotUserauth, b)
	}
	u.User = string(r.String())
	u.Service = string(r.String())
	u.Method = string(r.String())
	if r.Err == nil && u.Method != MethodPublickey && u.Method != MethodHostbound {
		return nil, fmt.Errorf("%w: method %q", ErrNotUserauth, u.Method)
	}
	if b := r.Byte(); r.Err == nil && b != 1 {
		return nil, fmt.Errorf("%w: not a signature request", ErrNotUserauth)
	}
	u.Algorithm = string(r.String())
	u.Key = r.String()
	if u.Method == MethodHostbound {
		u.HostKey = r.String()
	}
	if r.Err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotUserauth, r.Err)
	}
	if len(r.B) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrNotUserauth, len(r.B))
	}
	return &u, nil
}

// IsCertificateOf reports whether certBlob is a certificate of the plain
// key keyBlob. ssh authenticates with a certificate from a file
// (CertificateFile) and asks the agent, which holds only the plain key, to
// sign with that key: the request then names the certificate.
func IsCertificateOf(certBlob, keyBlob []byte) bool {
	pub, err := ssh.ParsePublicKey(certBlob)
	if err != nil {
		return false
	}
	cert, ok := pub.(*ssh.Certificate)
	return ok && bytes.Equal(cert.Key.Marshal(), keyBlob)
}

// NamesKey reports whether the request names the key keyBlob: that key,
// or a certificate of it.
func (u *UserauthRequest) NamesKey(keyBlob []byte) bool {
	return bytes.Equal(u.Key, keyBlob) || IsCertificateOf(u.Key, keyBlob)
}
