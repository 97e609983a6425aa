package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/sshwire"
	"github.com/sesame-ssh/sesame/lock"
)

// ExtQuery is the extension that lists the supported extensions
// (draft-ietf-sshm-ssh-agent, "query"). The answer is
// SSH_AGENT_EXTENSION_RESPONSE, the string "query", then one string per
// extension: what `ssh-add -Q` of OpenSSH 10 reads.
const ExtQuery = "query"

// supportedExtensions answers the query extension: the public ones for
// every client, sesame's own (privateExtensions) for local ones only.
var supportedExtensions = []string{ExtQuery, ExtSessionBind, ExtStatus, ExtPins}

// privateExtensions are sesame's own extensions. They tell what the agent
// holds and where (key fingerprints, host names of ssh-add -h keys, the
// vault path, every learned pin): they answer only a client that is local
// as far as the agent can tell (conn.local); any other gets the failure
// ssh-agent gives for an extension it does not know.
var privateExtensions = map[string]bool{ExtStatus: true, ExtPins: true}

// Reply codes from the agent protocol that extensions answer with directly.
const (
	replyFailure           = 5
	replySuccess           = 6
	replyExtensionResponse = 29
)

// conn is the agent as one client connection sees it. ServeAgent never
// shows the agent its connection, so each accepted connection gets its own
// conn carrying the peer's credentials and session binds. ServeAgent
// handles one request at a time, so its fields need no lock.
type conn struct {
	s             *Server
	info          ConnInfo
	bindAttempted bool
	// tainted: a session-bind failed on this connection, or was refused
	// while locked. The chain of binds it holds is then not the chain the
	// client went through (a hop the agent could not read would drop out
	// of it, and the next hop would pass for the first), so nothing is
	// listed, signed, bound or passed on afterwards (see errTainted).
	tainted bool
	log     *slog.Logger
	slot    *slot // nil for ServeConn
	be      backendConn
}

var _ xagent.ExtendedAgent = (*conn)(nil)

// closed tells the policy that the connection ended.
func (c *conn) closed() {
	if o, ok := c.s.opts.Policy.(ConnObserver); ok {
		o.ConnClosed(&c.info)
	}
}

// List answers REQUEST_IDENTITIES: every live key, filtered by the policy.
func (c *conn) List() ([]*xagent.Key, error) {
	if c.tainted {
		return nil, nil
	}
	ids := c.s.keys.identitiesFor(c.info.Binds)
	for _, k := range c.backendIdentities() {
		if pub, err := ssh.ParsePublicKey(k.Blob); err == nil && !c.s.keys.has(k.Blob) {
			ids = append(ids, Identity{Key: pub, Comment: k.Comment})
		}
	}
	if c.s.opts.Policy != nil && len(ids) > 0 {
		ids = c.s.opts.Policy.Offer(&c.info, ids)
	}
	ids = fitIdentities(ids)
	out := make([]*xagent.Key, len(ids))
	for i, id := range ids {
		out[i] = &xagent.Key{Format: id.Key.Type(), Blob: id.Key.Marshal(), Comment: id.Comment}
	}
	return out, nil
}

// fastList returns the prepared identities answer when no policy has to
// filter it, else nil.
func (c *conn) fastList() []byte {
	if c.tainted {
		return nil
	}
	if len(c.info.Binds) > 0 && c.s.keys.hasConstrained() || c.s.backend.running() {
		return nil // destination constraints decide per connection
	}
	if p := c.s.opts.Policy; p != nil {
		all, ok := p.(AllWhenUnbound)
		if !ok || !all.OffersAllWhenUnbound() || len(c.info.Binds) > 0 {
			return nil
		}
	}
	b, ok := c.s.keys.identitiesAnswer()
	if !ok {
		return nil
	}
	return b
}

// quickAnswer answers listing and signing for frameConn (see its quick
// field), or returns nil to leave a request to ServeAgent.
func (c *conn) quickAnswer(msg []byte) []byte {
	switch {
	case len(msg) == 1 && msg[0] == msgRequestIdentities:
		return c.fastList()
	case msg[0] == msgSignRequest:
		return c.quickSign(msg[1:])
	}
	return nil
}

// quickSign answers SIGN_REQUEST (string key blob, string data, uint32
// flags) as ServeAgent would: a signature, or a failure for a malformed
// request or a refused one. The policy may keep data, so it gets a copy.
func (c *conn) quickSign(req []byte) []byte {
	r := sshwire.Reader{B: req}
	blob, data, flags := r.String(), r.String(), xagent.SignatureFlags(r.Uint32())
	if r.Err != nil || len(r.B) != 0 {
		return []byte{msgFailure}
	}
	sig, err := c.signBlob(blob, bytes.Clone(data), flags)
	if err != nil {
		c.log.Debug("sign refused", "err", err)
		return []byte{msgFailure}
	}
	sb := ssh.Marshal(sig)
	out := make([]byte, 0, 5+len(sb))
	out = append(out, msgSignResponse)
	out = binary.BigEndian.AppendUint32(out, uint32(len(sb)))
	return append(out, sb...)
}

// Sign is SignWithFlags without flags.
func (c *conn) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return c.SignWithFlags(key, data, 0)
}

// SignWithFlags answers SIGN_REQUEST. A connection whose session-bind
// failed signs nothing, as in OpenSSH: the client may be talking to a
// server other than the one it claims.
func (c *conn) SignWithFlags(key ssh.PublicKey, data []byte, flags xagent.SignatureFlags) (*ssh.Signature, error) {
	return c.signBlob(key.Marshal(), data, flags)
}

// signBlob signs with the key whose public blob is given.
func (c *conn) signBlob(blob, data []byte, flags xagent.SignatureFlags) (*ssh.Signature, error) {
	if c.tainted || c.bindAttempted && len(c.info.Binds) == 0 {
		return nil, fmt.Errorf("%w: session-bind failed on this connection", ErrRefused)
	}
	e, confirm, err := c.s.keys.lookup(blob)
	if errors.Is(err, ErrKeyNotFound) {
		return c.backendSign(blob, data, flags)
	}
	if err != nil {
		return nil, err
	}
	// A certificate is bound by its key's constraints as well as its own.
	var inherited []DestConstraint
	if e.cert != nil {
		inherited = c.s.keys.keyDest(e)
	}
	for _, cs := range [][]DestConstraint{e.dest, inherited} {
		if len(cs) == 0 {
			continue
		}
		if err := checkDestSign(cs, c.info.Binds, blob, data); err != nil {
			c.log.Debug("destination constraint refused signature", "key", KeyFingerprint(e.pub), "err", err)
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	if p := c.s.opts.Policy; p != nil {
		if err := p.CheckSign(&c.info, e.pub, data); err != nil {
			c.log.Debug("policy refused signature", "key", KeyFingerprint(e.pub), "err", err)
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	if confirm {
		// The user may take longer to answer than the idle period.
		if c.s.sealer != nil {
			defer c.s.sealer.l.Hold()()
		}
		if err := c.s.confirm(e); err != nil {
			c.log.Debug("confirmation refused", "key", KeyFingerprint(e.pub), "err", err)
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	// The private key is used here: its temporaries are erased on return
	// (runtime/secret). The request and the answer hold nothing secret.
	var sig *ssh.Signature
	lock.Do(func() { sig, err = sign(e, data, flags) })
	if err != nil {
		return nil, err
	}
	if c.s.sealer != nil {
		c.s.sealer.l.Touch()
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("signed", "key", KeyFingerprint(e.pub), "comment", e.comment)
	}
	if p := c.s.opts.Policy; p != nil {
		p.Signed(&c.info, e.pub, data)
	}
	return sig, nil
}

// Add answers ADD_IDENTITY and ADD_ID_CONSTRAINED, with destination
// constraints (ssh-add -h); other constraint extensions are refused (see
// parseConstraintExtensions).
func (c *conn) Add(key xagent.AddedKey) error {
	if c.tainted {
		return errTainted
	}
	if err := c.visibleEntry(key); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	life := time.Duration(key.LifetimeSecs) * time.Second
	if life == 0 {
		life = c.s.opts.DefaultLifetime
	}
	if err := c.s.keys.add(key, life); err != nil {
		return err
	}
	if c.s.sealer != nil {
		c.s.sealer.l.Touch()
	}
	c.log.Debug("key added", "comment", key.Comment, "lifetime", life, "confirm", key.ConfirmBeforeUse)
	return nil
}

// Remove answers REMOVE_IDENTITY. A key this connection may not see under
// its destination constraints cannot be removed through it either.
func (c *conn) Remove(key ssh.PublicKey) error {
	if c.tainted {
		return errTainted
	}
	blob := key.Marshal()
	if e, _, err := c.s.keys.lookup(blob); err == nil && destPermitted(e.dest, c.info.Binds, nil) != nil {
		return ErrKeyNotFound
	}
	err := c.s.keys.remove(blob)
	if errors.Is(err, ErrKeyNotFound) {
		return c.backendRemove(blob)
	}
	return err
}

// errNotVisible: the key is loaded but hidden from this connection.
var errNotVisible = errors.New("key not visible on this connection")

// visibleEntry tells whether a key being added replaces one that this
// connection may not see (OpenSSH: "identity not visible, do not update").
func (c *conn) visibleEntry(key xagent.AddedKey) error {
	if len(c.info.Binds) == 0 {
		return nil
	}
	pub, err := addedPublicKey(key)
	if err != nil {
		return nil // newEntry will say what is wrong
	}
	if e, _, err := c.s.keys.lookup(pub.Marshal()); err == nil && destPermitted(e.dest, c.info.Binds, nil) != nil {
		return errNotVisible
	}
	return nil
}

// RemoveAll answers REMOVE_ALL_IDENTITIES.
func (c *conn) RemoveAll() error {
	if err := c.s.keys.removeAll(); err != nil {
		return err
	}
	c.s.backendRemoveAll()
	return nil
}

// Lock answers SSH_AGENTC_LOCK. Only a local client's lock may arm the
// automatic locks (see lock.Locker.Lock): a server the agent is forwarded
// to could otherwise lock and unlock with a passphrase of its choosing and
// know the one the next idle lock seals under.
func (c *conn) Lock(passphrase []byte) error { return c.s.lock(passphrase, c.local()) }

// local reports whether the client is on this machine as far as the agent
// can tell: no session-bind attempted (a forwarded agent connection from
// OpenSSH 8.9 or later carries one) and not a socket relayed by an ssh
// that binds its own connections (OpenSSHBinds). Clients that cannot bind
// cannot be told apart from local ones.
func (c *conn) local() bool {
	return !c.tainted && !c.bindAttempted && len(c.info.Binds) == 0 && !OpenSSHBinds(c.info.PID)
}

// errTainted refuses a request on a connection whose session-bind failed.
var errTainted = fmt.Errorf("%w: session-bind failed on this connection", ErrRefused)

// mayAddProvider is ssh-agent's rule for loading a PKCS#11 provider
// (SSH_AGENTC_ADD_SMARTCARD_KEY) or naming a FIDO middleware
// (sk-provider@openssh.com): only for a local client, unless the agent
// runs with -O allow-remote-pkcs11. "Local" is conn.local, which is
// stricter than ssh-agent's (no bind attempted): a socket relayed by an
// ssh that binds its own connections is not local either. The backend
// ssh-agent applies its own rule on the binds it is given; this one holds
// whatever it is given.
func (c *conn) mayAddProvider() bool {
	return c.local() || c.s.allowRemoteProviders()
}

// Unlock answers SSH_AGENTC_UNLOCK.
func (c *conn) Unlock(passphrase []byte) error { return c.s.Unlock(passphrase) }

// Signers is part of the Agent interface for in-process use; the server
// never calls it, and private keys are not handed out.
func (c *conn) Signers() ([]ssh.Signer, error) {
	return nil, errors.New("signers are not exported")
}

// Extension answers SSH_AGENTC_EXTENSION. A reply that starts with a
// protocol code is sent as it is (ServeAgent passes it through), which lets
// a rejected bind be answered with SSH_AGENT_FAILURE as OpenSSH does.
func (c *conn) Extension(name string, contents []byte) ([]byte, error) {
	// While locked every request but unlock fails, as in ssh-agent,
	// session-bind included (a connection whose bind failed signs
	// nothing afterwards; ssh opens a new one for each login). The status
	// is the exception for local clients only: `sesame status`, lock and
	// unlock need it when locked; a forwarded peer learns nothing.
	if privateExtensions[name] && !c.local() {
		return nil, xagent.ErrExtensionUnsupported
	}
	if c.s.Locked() && (name != ExtStatus || !c.local()) {
		if name == ExtSessionBind {
			c.bindAttempted, c.tainted = true, true
		}
		return nil, ErrLocked
	}
	switch name {
	case ExtStatus:
		return c.s.statusReply()
	case ExtPins:
		r, ok := c.s.opts.Policy.(Reporter)
		if !ok {
			return nil, xagent.ErrExtensionUnsupported
		}
		b, err := r.Report()
		if err != nil {
			return nil, err
		}
		return append([]byte{replySuccess}, b...), nil
	case ExtQuery:
		reply := append([]byte{replyExtensionResponse}, ssh.Marshal(struct{ S string }{ExtQuery})...)
		local := c.local()
		for _, n := range supportedExtensions {
			if privateExtensions[n] && !local {
				continue
			}
			reply = append(reply, ssh.Marshal(struct{ S string }{n})...)
		}
		return reply, nil
	case ExtSessionBind:
		c.bindAttempted = true
		if c.tainted {
			c.log.Debug("session-bind rejected", "err", errTainted)
			return []byte{replyFailure}, nil
		}
		added := false
		b, err := parseSessionBind(contents)
		if err == nil {
			added, err = addBind(&c.info, b)
		}
		if err != nil {
			c.tainted = true
			c.be.close()
			c.log.Debug("session-bind rejected", "err", err)
			return []byte{replyFailure}, nil
		}
		if added {
			// A repeated bind is accepted and not stored again, here as
			// in the backend's replay.
			c.be.bind(contents)
		}
		c.log.Debug("session-bind", "hostkey", ssh.FingerprintSHA256(b.HostKey),
			"forwarding", b.Forwarding, "binds", len(c.info.Binds))
		if hook := c.s.opts.OnBind; hook != nil && added {
			hook(&c.info, b)
		}
		return nil, nil
	}
	return nil, xagent.ErrExtensionUnsupported
}
