// Package pin decides which SSH keys each server is offered and may have
// signatures from: the per-host pin policy behind sesame's agent. Policy
// implements agent.Policy.
//
// # Identifying the server
//
// A bound connection (session-bind@openssh.com) carries the host key of
// each server in the chain; the last bind is the destination. The host key
// maps to names through known_hosts, forward only: unhashed entries list
// their names, hashed entries (|1|salt|hmac) and wildcard entries are
// tested with candidate names (the literal names of the pins, and the
// destination on the client's ssh command line). @cert-authority entries
// give a host certificate the names among its principals that the entry's
// patterns cover; a key or CA marked @revoked has no names, and nothing is
// offered or signed for it. A name that known_hosts lists with another key
// is never given to this one.
//
// # Pins
//
// Declared pins are lines of a file the user edits (DefaultPinsFile):
//
//	# comment
//	alice@login.cluster.example.org  SHA256:…   # a comment
//	*.cluster.example.org,!gw.cluster.example.org  SHA256:…
//	[git.example.org]:2222  SHA256:…
//	hostkey SHA256:<host key>  SHA256:…
//
// Host patterns are ssh_config's: * and ?, !negation, comma lists; a
// pattern without a port matches every port, [pattern]:port one port. The
// user part is optional and matched against the user in the sign request.
// Learned pins are written by the policy to a JSON state file
// (DefaultLearnedFile) when a server accepts a key: (host key, names, user)
// → key, with first and last use and a count.
//
// A key is named by its plain public key (agent.PlainKey): a certificate
// is judged, pinned, refused and learned as the key it certifies, and a
// userauth request may name a certificate of the key asked to sign (a
// client with CertificateFile and the key in the agent).
//
// # Rules
//
// Unbound connections (ssh-add -l, ssh-keygen -Y sign, clients without
// session-bind) see every key and may sign anything, as with ssh-agent,
// with one exception: when the peer process is an OpenSSH ssh of 8.9 or
// later (agent.OpenSSHBinds), which binds every agent connection of its own
// (is_forwarding on those it forwards), an unbound connection is a socket
// it relays for the far side (ssh -R to the agent's socket), and pinned
// keys do not sign there. Other peers cannot be told apart from local use;
// a server reached through a client that cannot bind (OpenSSH before 8.9,
// PuTTY, other SSH libraries) gets the agent's keys if the agent is
// forwarded to it, so do not forward the agent with such clients. On a
// bound connection:
//
//   - A host with declared pins is offered only its pinned keys; a key with
//     declared pins is offered and signs only for hosts it is pinned to.
//   - A host with learned pins is offered only its learned keys (when
//     loaded). Learned pins never refuse a signature: one key for many
//     servers is common.
//   - Any other host is offered at most MaxOffer keys (DefaultMaxOffer),
//     keys without pins first, then keys that worked elsewhere, most
//     recently successful first.
//   - A signature must be for a publickey userauth request (RFC 4252 §7)
//     whose session id is the last bind's, for the key asked, and (for
//     publickey-hostbound-v00@openssh.com) naming the bound host key. As
//     in OpenSSH, every earlier bind must be a forwarding one, the last
//     must not be, and the key must be permitted at every hop: a key
//     pinned only to the destination cannot be used through a forwarded
//     agent on a hop it is not pinned to. Through a forwarded agent (more
//     than one bind) a pinned key signs only a hostbound request, which
//     names the server, as OpenSSH requires of destination-constrained keys.
//   - Other data (an SSHSIG file signature) is signed on a bound
//     connection only by keys without declared pins.
//
// The files are checked with a stat on each listing, and the pins file on
// each signature too (learned pins and known_hosts at most once a second
// there), so `sesame pin` and hand edits take effect at once;
// a pins file that fails to parse leaves the previous pins in force.
package pin
