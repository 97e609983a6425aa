package agent

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/sshwire"
)

// ExtRestrictDestination is the key constraint of `ssh-add -h`: the key may
// be used only to authenticate to the listed hosts, and only through the
// listed forwarding paths (OpenSSH PROTOCOL.agent, section 2).
const ExtRestrictDestination = "restrict-destination-v00@openssh.com"

// MaxDestConstraints bounds the constraints on one key, as in OpenSSH
// (AGENT_MAX_DEST_CONSTRAINTS).
const MaxDestConstraints = 1024

// ErrDestination is wrapped by every refusal a destination constraint
// makes, and by a malformed constraint.
var ErrDestination = errors.New("destination constraint")

// DestConstraint is one rule of a destination-constrained key: from the
// host From (the origin, this machine, when From.Host is empty) the key
// may be used to reach To.
type DestConstraint struct {
	From, To DestHop
}

// DestHop names a host by name and by the keys it may present: plain host
// keys, or certification authorities whose host certificates name Host.
type DestHop struct {
	User string // only in To: a pattern for the user name; empty: any
	Host string
	Keys []DestKey
}

// DestKey is one key of a hop.
type DestKey struct {
	Key  ssh.PublicKey
	IsCA bool
}

// String is the rule as ssh-add -h spells it: [from>][user@]host.
func (c DestConstraint) String() string {
	var b strings.Builder
	if c.From.Host != "" {
		b.WriteString(c.From.Host + ">")
	}
	if c.To.User != "" {
		b.WriteString(c.To.User + "@")
	}
	b.WriteString(c.To.Host)
	return b.String()
}

// parseConstraintExtensions reads the constraint extensions of an added
// key. Destination constraints are kept; any other extension (a FIDO
// provider, sk-provider@openssh.com, for security keys the agent does not
// hold) is refused rather than ignored: accepting a key while dropping a
// restriction the user asked for would be worse than failing.
func parseConstraintExtensions(exts []xagent.ConstraintExtension) ([]DestConstraint, error) {
	var dest []DestConstraint
	seen := false
	for _, x := range exts {
		if x.ExtensionName != ExtRestrictDestination {
			return nil, fmt.Errorf("%w: %s", ErrUnsupported, x.ExtensionName)
		}
		if seen {
			return nil, fmt.Errorf("%w: given twice", ErrDestination)
		}
		seen = true
		cs, err := parseDestConstraints(x.ExtensionDetails)
		if err != nil {
			return nil, err
		}
		dest = cs
	}
	return dest, nil
}

// parseDestConstraints reads the contents of a restrict-destination
// constraint (x/crypto hands over the string after the name): a sequence
// of string-wrapped constraints, each a "from" and a "to" hop and an empty
// reserved string. Consistency as in OpenSSH: "from" has no user, and has a
// host name exactly when it has keys; "to" has both.
func parseDestConstraints(details []byte) ([]DestConstraint, error) {
	r := sshwire.Reader{B: details}
	var out []DestConstraint
	for len(r.B) > 0 && r.Err == nil {
		if len(out) >= MaxDestConstraints {
			return nil, fmt.Errorf("%w: more than %d", ErrDestination, MaxDestConstraints)
		}
		cr := sshwire.Reader{B: r.String()}
		from, to, reserved := cr.String(), cr.String(), cr.String()
		if r.Err != nil || cr.Err != nil || len(cr.B) != 0 {
			return nil, fmt.Errorf("%w: malformed", ErrDestination)
		}
		if len(reserved) != 0 {
			return nil, fmt.Errorf("%w: unsupported extensions", ErrDestination)
		}
		var c DestConstraint
		var err error
		if c.From, err = parseDestHop(from); err != nil {
			return nil, err
		}
		if c.To, err = parseDestHop(to); err != nil {
			return nil, err
		}
		if c.From.User != "" || (c.From.Host == "") != (len(c.From.Keys) == 0) {
			return nil, fmt.Errorf("%w: inconsistent \"from\" hop", ErrDestination)
		}
		if c.To.Host == "" || len(c.To.Keys) == 0 {
			return nil, fmt.Errorf("%w: incomplete \"to\" hop", ErrDestination)
		}
		out = append(out, c)
	}
	if r.Err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrDestination)
	}
	return out, nil
}

// parseDestHop reads string user, string host, string reserved (empty),
// then keyspecs (string key blob, bool is_ca) to the end.
func parseDestHop(b []byte) (DestHop, error) {
	r := sshwire.Reader{B: b}
	h := DestHop{User: string(r.String()), Host: string(r.String())}
	if reserved := r.String(); r.Err == nil && len(reserved) != 0 {
		return h, fmt.Errorf("%w: unsupported hop extensions", ErrDestination)
	}
	for len(r.B) > 0 && r.Err == nil {
		blob := r.String()
		isCA := r.Byte()
		if r.Err != nil {
			break
		}
		k, err := ParseHostKey(blob)
		if err != nil {
			return h, fmt.Errorf("%w: hop key: %w", ErrDestination, err)
		}
		h.Keys = append(h.Keys, DestKey{Key: k, IsCA: isCA != 0})
	}
	if r.Err != nil {
		return h, fmt.Errorf("%w: malformed hop", ErrDestination)
	}
	return h, nil
}

// matchHop reports whether key, a host key seen in a session-bind, is one
// of the hop's: an equal plain key, or a host certificate signed by one of
// its CAs that is valid now and names the hop's host.
func matchHop(key ssh.PublicKey, h *DestHop) bool {
	cert, isCert := key.(*ssh.Certificate)
	blob := key.Marshal()
	for _, k := range h.Keys {
		if !isCert {
			if !k.IsCA && bytes.Equal(blob, k.Key.Marshal()) {
				return true
			}
			continue
		}
		if !k.IsCA || !bytes.Equal(cert.SignatureKey.Marshal(), k.Key.Marshal()) {
			continue
		}
		if hostCertNames(cert, h.Host) {
			return true
		}
	}
	return false
}

// hostCertNames checks a host certificate for host: its type, validity
// period, signature, and a principal equal to host (OpenSSH requires one
// here: a certificate without principals names no host).
func hostCertNames(cert *ssh.Certificate, host string) bool {
	if cert.CertType != ssh.HostCert || host == "" || len(cert.ValidPrincipals) == 0 {
		return false
	}
	checker := ssh.CertChecker{Clock: time.Now}
	return checker.CheckCert(host, cert) == nil
}

// permittedByDest is OpenSSH's permitted_by_dest_constraints: some
// constraint leads from from (nil: the origin) to to (nil: anywhere), for
// user (nil: not known yet).
func permittedByDest(from, to ssh.PublicKey, cs []DestConstraint, user *string) bool {
	for i := range cs {
		c := &cs[i]
		if from == nil {
			if c.From.Host != "" || len(c.From.Keys) != 0 {
				continue
			}
		} else if !matchHop(from, &c.From) {
			continue
		}
		if to != nil && !matchHop(to, &c.To) {
			continue
		}
		if c.To.User != "" && user != nil && !matchWildcard(*user, c.To.User) {
			continue
		}
		return true
	}
	return false
}

// destPermitted is OpenSSH's identity_permitted: every hop recorded on the
// connection must be allowed by some constraint, from the previous hop's
// host key (the origin for the first). user is the user of a sign request,
// nil for listing, adding and removing. A connection without binds is
// local use and sees the key; signing there is refused by checkDestSign.
func destPermitted(cs []DestConstraint, binds []Bind, user *string) error {
	if len(cs) == 0 || len(binds) == 0 {
		return nil
	}
	var from ssh.PublicKey
	for i := range binds {
		b := &binds[i]
		var testUser *string
		if i == len(binds)-1 {
			// The user is known only at the last hop.
			testUser = user
			if b.Forwarding && user != nil {
				return fmt.Errorf("%w: signing on a forwarding hop", ErrDestination)
			}
		} else if !b.Forwarding {
			return fmt.Errorf("%w: forwarding through a hop bound for authentication", ErrDestination)
		}
		if !permittedByDest(from, b.HostKey, cs, testUser) {
			return fmt.Errorf("%w: not permitted for hop %d (%s)", ErrDestination, i+1, ssh.FingerprintSHA256(b.HostKey))
		}
		from = b.HostKey
	}
	// Listed on a host the agent was forwarded to: only if the key may be
	// used from there on, so a key allowed *to* a host but not *beyond*
	// it stays hidden from that host.
	last := &binds[len(binds)-1]
	if last.Forwarding && user == nil && !permittedByDest(last.HostKey, nil, cs, nil) {
		return fmt.Errorf("%w: not permitted beyond %s", ErrDestination, ssh.FingerprintSHA256(last.HostKey))
	}
	return nil
}

// checkDestSign decides a sign request for a destination-constrained key,
// as OpenSSH's process_sign_request2: only a publickey userauth request
// for this key, on a bound connection, for the session of the last bind,
// naming (when hostbound, and always past the first hop) the last bound
// host key, with every hop and the user permitted.
func checkDestSign(cs []DestConstraint, binds []Bind, keyBlob, data []byte) error {
	if len(binds) == 0 {
		return fmt.Errorf("%w: a destination-constrained key signs only on a bound connection", ErrDestination)
	}
	req, err := ParseUserauthRequest(data)
	if err != nil || req.Service != "ssh-connection" || !req.NamesKey(keyBlob) {
		return fmt.Errorf("%w: a destination-constrained key signs only authentication requests", ErrDestination)
	}
	if err := destPermitted(cs, binds, &req.User); err != nil {
		return err
	}
	last := &binds[len(binds)-1]
	if subtle.ConstantTimeCompare(req.SessionID, last.SessionID) != 1 {
		return fmt.Errorf("%w: the request is for another session than the last bound one", ErrDestination)
	}
	if len(binds) > 1 && req.HostKey == nil {
		return fmt.Errorf("%w: no host key in a request through a forwarded agent", ErrDestination)
	}
	if req.HostKey != nil && !bytes.Equal(req.HostKey, last.HostKey.Marshal()) {
		return fmt.Errorf("%w: the request names another host key than the last bound one", ErrDestination)
	}
	return nil
}

// matchWildcard matches s against an OpenSSH pattern of * (any run) and ?
// (any one character), the whole string.
func matchWildcard(s, pattern string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 0 && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if matchWildcard(s[i:], pattern) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
		}
		s, pattern = s[1:], pattern[1:]
	}
	return s == ""
}
