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
// (draft-ietf-sshm-ssh-agent, "query").
const ExtQuery = "query"

// supportedExtensions answers the query extension.
var supportedExtensions = []string{ExtQuery, ExtSessionBind, ExtStatus}

// Reply codes from the agent protocol that extensions answer with directly.
const (
	replyFailure = 5
	replySuccess = 6
)

// conn is the agent as one client connection sees it. ServeAgent never
// shows the agent its connection, so each accepted connection gets its own
// conn carrying the peer's credentials and session binds. ServeAgent
// handles one request at a time, so its fields need no lock.
type conn struct {
	s             *Server
	info          ConnInfo
	bindAttempted bool
	log           *slog.Logger
	slot          *slot // nil for ServeConn
}

var _ xagent.ExtendedAgent = (*conn)(nil)

// List answers REQUEST_IDENTITIES: every live key, filtered by the policy.
func (c *conn) List() ([]*xagent.Key, error) {
	ids := c.s.keys.identities()
	if c.s.opts.Policy != nil && len(ids) > 0 {
		ids = c.s.opts.Policy.Offer(&c.info, ids)
	}
	out := make([]*xagent.Key, len(ids))
	for i, id := range ids {
		out[i] = &xagent.Key{Format: id.Key.Type(), Blob: id.Key.Marshal(), Comment: id.Comment}
	}
	return out, nil
}

// fastList returns the prepared identities answer when no policy has to
// filter it, else nil.
func (c *conn) fastList() []byte {
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
	if c.bindAttempted && len(c.info.Binds) == 0 {
		return nil, fmt.Errorf("%w: session-bind failed on this connection", ErrRefused)
	}
	e, confirm, err := c.s.keys.lookup(blob)
	if err != nil {
		return nil, err
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

// Add answers ADD_IDENTITY and ADD_ID_CONSTRAINED. Constraint extensions
// (destination restrictions of `ssh-add -h`, FIDO providers) are refused
// rather than ignored: accepting a key while dropping a restriction the
// user asked for would be worse than failing.
func (c *conn) Add(key xagent.AddedKey) error {
	if len(key.ConstraintExtensions) > 0 {
		return fmt.Errorf("%w: %s", ErrUnsupported, key.ConstraintExtensions[0].ExtensionName)
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

// Remove answers REMOVE_IDENTITY.
func (c *conn) Remove(key ssh.PublicKey) error {
	return c.s.keys.remove(key.Marshal())
}

// RemoveAll answers REMOVE_ALL_IDENTITIES.
func (c *conn) RemoveAll() error { return c.s.keys.removeAll() }

// Lock answers SSH_AGENTC_LOCK.
func (c *conn) Lock(passphrase []byte) error { return c.s.Lock(passphrase) }

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
	// While locked every request but unlock, session-bind and the status
	// fails, as in ssh-agent (which refuses session-bind too: binding
	// reveals nothing and keeps the next login's destination known).
	if name != ExtSessionBind && name != ExtStatus && c.s.Locked() {
		return nil, ErrLocked
	}
	switch name {
	case ExtStatus:
		return c.s.statusReply()
	case ExtQuery:
		reply := []byte{replySuccess}
		for _, n := range supportedExtensions {
			reply = append(reply, ssh.Marshal(struct{ S string }{n})...)
		}
		return reply, nil
	case ExtSessionBind:
		c.bindAttempted = true
		added := false
		b, err := parseSessionBind(contents)
		if err == nil {
			added, err = addBind(&c.info, b)
		}
		if err != nil {
			c.log.Debug("session-bind rejected", "err", err)
			return []byte{replyFailure}, nil
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
