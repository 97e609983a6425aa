package pin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sesame-ssh/sesame/internal/paths"
)

// Files names the files the pin commands work on.
type Files struct {
	Pins    string // declared pins
	Learned string // learned pins
	KeysDir string // exported public keys
	// Rotation is the agent's rotation state (keys tried on unpinned
	// servers); empty: RotationFileName next to Learned.
	Rotation string
}

// RotationFile is f.Rotation or its default.
func (f Files) RotationFile() string {
	if f.Rotation != "" {
		return f.Rotation
	}
	return filepath.Join(filepath.Dir(f.Learned), RotationFileName)
}

// DefaultFiles are the files under paths.Config() and paths.State().
func DefaultFiles() Files {
	return Files{Pins: DefaultPinsFile(), Learned: DefaultLearnedFile(), KeysDir: KeysDir(), Rotation: DefaultRotationFile()}
}

// PinKey declares that target ("[user@]HOST-PATTERNS" or "hostkey
// SHA256:…") uses key k, and exports the public key for ssh_config when it
// is known. It reports whether the pins file changed; a running agent
// picks the change up at its next connection.
//
// With twoFactor the pin carries the 2fa flag (see Pin); k may then be
// the zero Key, for a 2fa line that pins no key.
func PinKey(f Files, target string, k Key, twoFactor bool) (Pin, bool, error) {
	p, err := ParseTarget(target)
	if err != nil {
		return Pin{}, false, err
	}
	if k.Fingerprint == "" && !twoFactor {
		return Pin{}, false, errors.New("no key to pin")
	}
	p.Key, p.TwoFactor = k.Fingerprint, twoFactor
	p.Comment = sanitizeComment(k.Comment)
	if k.Public != nil {
		if _, err := ExportKey(f.KeysDir, k); err != nil {
			return p, false, err
		}
	}
	changed, err := AddPin(f.Pins, p)
	if err == nil && p.Key != "" {
		// The key is chosen: no more searching for it.
		_, err = ForgetRotation(f.RotationFile(), p)
	}
	return p, changed, err
}

// sanitizeComment keeps a key comment on one pins file line.
func sanitizeComment(c string) string {
	return strings.Join(strings.Fields(c), " ")
}

// NoPinError says unpin found nothing to remove.
type NoPinError struct{ Target string }

func (e *NoPinError) Error() string { return fmt.Sprintf("no pin for %s", e.Target) }

// Hint points at the listing.
func (e *NoPinError) Hint() string { return "sesame pins lists the declared and learned pins" }

// Unpin removes declared pins whose target is written as target (for
// every user when target names none), the rotation state of the matching
// servers when no key is given (returned as learned pins without a key),
// and
// learned pins whose host matches it (a pattern, or a host key
// fingerprint), for the given key only when keyArg is not empty (a
// fingerprint, a .pub file, or a comment).
func Unpin(f Files, target, keyArg string, src KeySource) ([]Pin, []Learned, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, nil, err
	}
	keyFP, byComment := "", ""
	if keyArg != "" {
		if k, err := ResolveKey(keyArg, src); err == nil {
			keyFP = k.Fingerprint
		} else {
			byComment = keyArg
		}
	}
	declared, err := readDeclared(f.Pins)
	if err != nil {
		return nil, nil, err
	}
	var declRemoved []Pin
	for _, q := range declared {
		// Without a user, HOST means the host's pins for every user.
		if t.User == "" {
			q2 := q
			q2.User = ""
			if !sameTarget(q2, t) {
				continue
			}
		} else if !sameTarget(q, t) {
			continue
		}
		if keyArg == "" || q.Key == keyFP || (byComment != "" && q.Comment == byComment) {
			removed, err := RemovePins(f.Pins, q, q.Key)
			if err != nil {
				return nil, nil, err
			}
			declRemoved = append(declRemoved, removed...)
		}
	}
	var learnedRemoved []Learned
	if _, err := os.Stat(f.Learned); err == nil && (keyArg == "" || keyFP != "") {
		err := UpdateLearned(f.Learned, func(l []Learned) []Learned {
			keep := l[:0]
			for _, e := range l {
				if learnedMatches(e, t) && (keyFP == "" || e.Key == keyFP) {
					learnedRemoved = append(learnedRemoved, e)
					continue
				}
				keep = append(keep, e)
			}
			return keep
		})
		if err != nil {
			return declRemoved, nil, err
		}
	}
	if keyArg == "" {
		// The search for the host's key starts over too.
		rot, err := ForgetRotation(f.RotationFile(), t)
		if err != nil {
			return declRemoved, learnedRemoved, err
		}
		for _, r := range rot {
			learnedRemoved = append(learnedRemoved, Learned{HostKey: r.HostKey, Names: r.Names, User: r.User})
		}
	}
	if len(declRemoved) == 0 && len(learnedRemoved) == 0 {
		return nil, nil, &NoPinError{Target: target}
	}
	return declRemoved, learnedRemoved, nil
}

func readDeclared(path string) ([]Pin, error) {
	_, pins, err := readPinsFile(path)
	return pins, err
}

// learnedMatches reports whether a learned pin is for target's host.
func learnedMatches(l Learned, t Pin) bool {
	if t.User != "" && !wildMatch(t.User, l.User) {
		return false
	}
	if t.HostKey != "" {
		return l.HostKey == t.HostKey
	}
	for _, s := range l.Names {
		if n, err := ParseName(s); err == nil && t.Hosts.Match(n) {
			return true
		}
	}
	return false
}

// List returns the declared and learned pins.
func List(f Files) ([]Pin, []Learned, error) {
	declared, err := readDeclared(f.Pins)
	if err != nil {
		return nil, nil, err
	}
	learned, err := ReadLearned(f.Learned)
	return declared, learned, err
}

// SSHConfigOptions tune SSHConfig.
type SSHConfigOptions struct {
	// GSSAPI, when set, is asked for each block's host patterns whether
	// Kerberos tickets cover them (a krb5.conf [domain_realm] match with a
	// ticket for that realm); a true answer adds GSSAPIAuthentication yes.
	GSSAPI func(hostPatterns []string) bool
	// ControlDir is where blocks for 2fa pins put their ControlPath;
	// default paths.Runtime() (0700, created when needed).
	ControlDir string
}

// ControlPersist is how long a shared connection of a 2fa server stays
// open after its last session ends: a working day.
const ControlPersist = "8h"

// SSHConfig returns ssh_config Host (or Match) blocks for the declared
// pins, for clients that send no session-bind: each names the exported
// public key as IdentityFile, with IdentitiesOnly so that ssh offers
// nothing else. Keys whose public half is not known are exported from
// src first when found there.
func SSHConfig(f Files, src KeySource, opt SSHConfigOptions) (string, error) {
	declared, err := readDeclared(f.Pins)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Generated by sesame ssh-config from " + f.Pins + ".\n")
	b.WriteString("# For ssh clients that do not tell the agent which host they connect to.\n")
	type block struct {
		head      string
		patterns  []string
		notes     []string
		files     []string
		twoFactor bool
	}
	var order []string
	blocks := map[string]*block{}
	var known []Key
	for _, p := range declared {
		if p.HostKey != "" {
			fmt.Fprintf(&b, "# line %d: %s: a pin by host key cannot be written as ssh_config\n", p.Line, p.Target())
			continue
		}
		head, pats, notes := sshConfigHead(p)
		bl := blocks[head]
		if bl == nil {
			bl = &block{head: head, patterns: pats, notes: notes}
			blocks[head] = bl
			order = append(order, head)
		}
		bl.twoFactor = bl.twoFactor || p.TwoFactor
		if p.Key == "" {
			continue
		}
		path := filepath.Join(f.KeysDir, exportName(p.Key))
		if _, err := os.Stat(path); err != nil {
			if known == nil {
				known = src.candidates()
			}
			for _, k := range known {
				if k.Fingerprint == p.Key {
					path, err = ExportKey(f.KeysDir, k)
					break
				}
			}
			if err != nil {
				bl.notes = append(bl.notes, fmt.Sprintf("%s: public key not found; pin it again with its .pub file", p.Key))
				continue
			}
		}
		bl.files = append(bl.files, path)
	}
	for _, head := range order {
		bl := blocks[head]
		b.WriteString("\n")
		for _, n := range bl.notes {
			b.WriteString("# " + n + "\n")
		}
		if len(bl.files) == 0 && !bl.twoFactor {
			b.WriteString("# " + head + ": no usable key\n")
			continue
		}
		b.WriteString(head + "\n")
		if len(bl.files) > 0 {
			sort.Strings(bl.files)
			for _, f := range dedup(bl.files) {
				b.WriteString("    IdentityFile " + quoteConfig(f) + "\n")
			}
			b.WriteString("    IdentitiesOnly yes\n")
		}
		if bl.twoFactor {
			// One connection, one code: later sessions share it. The
			// socket lives in sesame's private runtime directory; %C is
			// a hash of the connection's parameters, short and safe.
			dir := opt.ControlDir
			if dir == "" {
				dir = paths.Runtime()
			}
			if err := paths.EnsureDir(dir); err != nil {
				return "", err
			}
			b.WriteString("    ControlMaster auto\n")
			b.WriteString("    ControlPath " + quoteConfig(strings.ReplaceAll(dir, "%", "%%")+"/cm-%C") + "\n")
			b.WriteString("    ControlPersist " + ControlPersist + "\n")
		}
		if opt.GSSAPI != nil && opt.GSSAPI(bl.patterns) {
			b.WriteString("    GSSAPIAuthentication yes\n")
		}
	}
	return b.String(), nil
}

// sshConfigHead turns a pin's target into a Host or Match line. ssh_config
// matches host names only, so a port limit is noted and dropped; a user
// part becomes Match ... user, which matches the remote user.
func sshConfigHead(p Pin) (string, []string, []string) {
	var pats, notes []string
	for _, e := range p.Hosts.elems {
		s := e.host
		if e.neg {
			s = "!" + s
		}
		if e.port != 0 {
			notes = append(notes, fmt.Sprintf("%s: ssh_config cannot match a port; this block applies to every port", p.Target()))
		}
		pats = append(pats, s)
	}
	if p.User != "" {
		return "Match host " + strings.Join(pats, ",") + " user " + p.User, pats, notes
	}
	return "Host " + strings.Join(pats, " "), pats, notes
}

func quoteConfig(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return `"` + s + `"`
	}
	return s
}

func dedup(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// LastUse says when a declared pin was last used, from the learned pins:
// the latest successful use of its key at a host it covers, and how many
// uses that is. Zero when never seen.
func LastUse(p Pin, learned []Learned) (time.Time, int) {
	var last time.Time
	count := 0
	for _, l := range learned {
		if l.Key != p.Key || (p.User != "" && !wildMatch(p.User, l.User)) {
			continue
		}
		covered := p.HostKey != "" && l.HostKey == p.HostKey
		if p.HostKey == "" {
			for _, s := range l.Names {
				if n, err := ParseName(s); err == nil && p.Hosts.Match(n) {
					covered = true
					break
				}
			}
		}
		if covered {
			count += l.Count
			if l.LastUsed.After(last) {
				last = l.LastUsed
			}
		}
	}
	return last, count
}
