// Package agent is sesame's SSH agent server: the socket, per-connection
// state, session-bind, and the hooks through which the per-host pin policy
// and the lock decide what each connection may see and sign.
package agent

import "golang.org/x/crypto/ssh"

// Bind is one verified session-bind@openssh.com on a connection: the host
// key of a server the client is talking to and that session's id.
type Bind struct {
	HostKey    ssh.PublicKey
	SessionID  []byte
	Forwarding bool // is_forwarding: this hop forwards the agent onward
}

// ConnInfo is what the policy knows about one agent connection.
type ConnInfo struct {
	UID, PID int
	// Binds in the order received: the last is the destination the client
	// is authenticating to, earlier ones are hops through which the agent
	// was forwarded. Empty for ssh-add and clients without session-bind.
	Binds []Bind
}

// Destination is the last bind, or nil when the connection is unbound.
func (c *ConnInfo) Destination() *Bind {
	if len(c.Binds) == 0 {
		return nil
	}
	return &c.Binds[len(c.Binds)-1]
}

// PlainKey is the key a public key identity stands for: the certified key
// of a certificate, the key itself otherwise. It is the one notion of
// "which key" for pins, learning, lifetimes and confirmation: a
// certificate inherits all of them from its key, so that loading a key's
// certificate (ssh-add loads -cert.pub beside the key) is no way round
// what holds for the key. OpenSSH's fingerprints of a certificate are its
// key's too.
func PlainKey(k ssh.PublicKey) ssh.PublicKey {
	if c, ok := k.(*ssh.Certificate); ok {
		return c.Key
	}
	return k
}

// KeyFingerprint is the SHA256 fingerprint of PlainKey(k), as ssh-add -l
// shows it for a key and for its certificate alike.
func KeyFingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(PlainKey(k)) }

// Identity is a loaded key as the policy sees it (never the private half).
type Identity struct {
	Key     ssh.PublicKey
	Comment string
	// Destinations are the key's destination constraints (ssh-add -h),
	// already applied to the connection: the key is listed only where
	// they allow it.
	Destinations []DestConstraint
}

// Policy decides, per connection, which identities are offered and which
// signatures are allowed. A nil Policy offers and signs everything, like
// ssh-agent. The keys it is given are identities as listed, certificates
// included; it must judge each by PlainKey.
type Policy interface {
	// Offer returns the identities to list on this connection, in order.
	Offer(c *ConnInfo, ids []Identity) []Identity
	// CheckSign returns nil when key may sign data on this connection, or
	// an error saying why not.
	CheckSign(c *ConnInfo, key ssh.PublicKey, data []byte) error
	// Signed is told about every successful signature (to learn pins).
	Signed(c *ConnInfo, key ssh.PublicKey, data []byte)
}

// AllWhenUnbound is implemented by a Policy whose Offer returns every
// identity, in order, on a connection without binds (ssh-add, older
// clients). The agent then answers those listings from a prepared reply
// instead of asking the policy and marshalling every key again.
type AllWhenUnbound interface {
	OffersAllWhenUnbound() bool
}

// ConnObserver is implemented by a Policy that keeps state per connection.
// ConnClosed is called once when a connection ends: ssh closes its agent
// connection when user authentication is over, so a bound connection
// that ends without a signature is a login no listed key got through.
type ConnObserver interface {
	ConnClosed(c *ConnInfo)
}

// Reporter is implemented by a Policy that can describe what it knows
// now; the agent answers ExtPins with Report's JSON.
type Reporter interface {
	Report() ([]byte, error)
}

// ExtPins is sesame's private extension that returns the policy's report
// (`sesame pins` asks the running agent). Like ExtStatus it goes only to
// the agent's own user and root.
const ExtPins = "pins@sesame"
