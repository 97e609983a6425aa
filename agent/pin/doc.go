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
//   - When the client is ssh and ssh will use only the keys it names
//     (IdentitiesOnly with IdentityFile or CertificateFile, on its command
//     line or in its config), those keys are listed, and nothing else: the
//     client's explicit choice wins, and ssh limits its attempts itself.
//     Keys it names without IdentitiesOnly are listed first.
//   - A host with declared pins for the user is offered only its pinned
//     keys; a key with declared pins is offered and signs only for the
//     hosts (and users) it is pinned to.
//   - A host with learned pins for the user is offered only its learned
//     keys (when loaded). Learned pins never refuse a signature: one key
//     for many servers is common.
//   - Any other host is offered at most MaxOffer keys (DefaultMaxOffer):
//     keys that worked elsewhere, most recently successful first, then the
//     others in the agent's order, and last the keys other accounts use on
//     this server, skipping the keys the rotation says this server already
//     refused (below).
//
// Pins are per account: the user is known at listing time when the client
// is ssh (below); otherwise every user's pins of the host apply, as the
// user appears only in the sign request.
//
// # The client process
//
// The agent knows the pid of its peer (SO_PEERCRED). When that is ssh and
// the connection is bound for its own authentication, the policy reads its
// command line and runs `ssh -G` with the same arguments, once per ssh
// process and with a short deadline, to learn the remote user and the
// effective IdentityFile, CertificateFile and IdentitiesOnly (ProbePeer
// says how nothing the peer asks for is executed). What it learns decides
// only which keys are listed; the signature's user and key always come
// from the signed request. Without it the policy behaves as if the user
// were unknown.
//
// # Finding the right key
//
// An unpinned server that ends a connection without any signature
// accepted none of the keys it was offered. The policy remembers them per
// (host key, user), in memory and in a state file (RotationFileName): the
// next login offers the next keys not yet tried, still at most MaxOffer,
// so n keys find the right one within ⌈n / MaxOffer⌉ logins and no login
// costs more than MaxOffer failures. A key accepted is learned and ends
// the rotation. A server that accepted none after a full round (one that
// takes passwords or one-time codes only) is offered no key until the
// state expires (RotationTTL) or `sesame unpin` clears it. ssh lists keys
// before it tries any method: when it tries Kerberos first, the keys count
// as tried only if ssh exits within a moment of closing the connection (a
// failed login), not when it goes on (logged in with a ticket).
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
