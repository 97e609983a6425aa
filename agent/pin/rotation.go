package pin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sesame-ssh/sesame/internal/paths"
)

// RotationFileName is the name of the rotation state file in paths.State().
const RotationFileName = "rotation.json"

// DefaultRotationFile is where the rotation state lives.
func DefaultRotationFile() string { return filepath.Join(paths.State(), RotationFileName) }

// RotationTTL is how long a rotation state lasts after its last change: a
// server that took no key is tried again, one round, after a week.
const RotationTTL = 7 * 24 * time.Hour

const maxRotationFile = 16 << 20

// Rotation is what the agent remembers about an unpinned server that has
// not accepted any key yet (for one user, "" when the user was not
// known): the keys it was offered on logins that ended without a
// signature. The next login offers keys not yet tried; once every key was
// tried, Exhausted is set and no key is offered until the state expires,
// is removed (sesame unpin) or a pin applies.
type Rotation struct {
	HostKey   string    `json:"host_key"`
	User      string    `json:"user"`
	Names     []string  `json:"names,omitempty"`
	Tried     []string  `json:"tried"`
	Exhausted bool      `json:"exhausted,omitempty"`
	Updated   time.Time `json:"updated"`
	// Next are the keys the next login would be offered (reports only).
	Next []string `json:"next,omitempty"`
	// Loaded counts the keys the agent holds that the server may be
	// offered (reports only).
	Loaded int `json:"loaded,omitempty"`
}

// Target is "user@name" (or the host key) for `sesame pin` and `unpin`.
func (r *Rotation) Target() string {
	host := "hostkey " + r.HostKey
	if len(r.Names) > 0 {
		host = r.Names[0]
	}
	if r.User == "" {
		return host
	}
	if len(r.Names) == 0 {
		return "hostkey " + r.User + "@" + r.HostKey
	}
	return r.User + "@" + host
}

type rotKey struct{ hostKey, user string }

type rotationFile struct {
	Version int        `json:"version"`
	Servers []Rotation `json:"servers"`
}

// RotationFormatError says why the rotation state file does not parse.
type RotationFormatError struct {
	File   string
	Reason string
}

func (e *RotationFormatError) Error() string {
	return fmt.Sprintf("key rotation state file %s: %s", e.File, e.Reason)
}

func (e *RotationFormatError) formatReason() string { return e.Reason }

// ParseRotation parses the rotation state file.
func ParseRotation(data []byte, file string) ([]Rotation, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var rf rotationFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, &RotationFormatError{file, "not valid JSON"}
	}
	if rf.Version != 1 {
		return nil, &RotationFormatError{file, fmt.Sprintf("unknown version %d", rf.Version)}
	}
	for i, r := range rf.Servers {
		if ValidFingerprint(r.HostKey) != nil {
			return nil, &RotationFormatError{file, fmt.Sprintf("entry %d: bad host key fingerprint", i+1)}
		}
		for _, k := range r.Tried {
			if ValidFingerprint(k) != nil {
				return nil, &RotationFormatError{file, fmt.Sprintf("entry %d: bad key fingerprint", i+1)}
			}
		}
	}
	return rf.Servers, nil
}

// ReadRotation reads the rotation state file; a missing file has none, and
// so has a damaged one, which is set aside with a warning.
func ReadRotation(path string) ([]Rotation, error) {
	return readStateFile(path, maxRotationFile, "key rotation state file", ParseRotation)
}

func marshalRotation(rs []Rotation) []byte {
	out := make([]Rotation, 0, len(rs))
	for _, r := range rs {
		r.Next, r.Loaded = nil, 0
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Updated.After(out[j].Updated) })
	b, _ := json.MarshalIndent(rotationFile{Version: 1, Servers: out}, "", "  ")
	return append(b, '\n')
}

// UpdateRotation changes the rotation state file under its lock.
func UpdateRotation(path string, change func([]Rotation) []Rotation) error {
	return updateStateFile(path, ReadRotation, marshalRotation, change)
}

// loadRotationLocked reads the rotation file into p.rot. A damaged file
// has been set aside by ReadRotation with one warning; one that cannot be
// read at all gives a warning here; either way the state starts empty.
func (p *Policy) loadRotationLocked() {
	rs, err := ReadRotation(p.opt.RotationFile)
	if err != nil {
		p.log.Warn("rotation state not read; starting afresh", "err", err)
		rs = nil
	}
	p.rotSig = statSig(p.opt.RotationFile)
	p.rot = map[rotKey]*Rotation{}
	now := p.opt.Now()
	for i := range rs {
		r := rs[i]
		if now.Sub(r.Updated) > RotationTTL {
			continue
		}
		p.rot[rotKey{r.HostKey, r.User}] = &r
	}
}

// rotationLocked returns the live rotation state for k, dropping an
// expired one.
func (p *Policy) rotationLocked(k rotKey) *Rotation {
	r := p.rot[k]
	if r != nil && p.opt.Now().Sub(r.Updated) > RotationTTL {
		delete(p.rot, k)
		return nil
	}
	return r
}

// saveRotation writes the rotation state (a snapshot taken under p.mu).
func (p *Policy) saveRotation() {
	p.rotWriteMu.Lock()
	defer p.rotWriteMu.Unlock()
	p.mu.Lock()
	snap := make([]Rotation, 0, len(p.rot))
	for _, r := range p.rot {
		c := *r
		c.Tried = append([]string(nil), r.Tried...)
		snap = append(snap, c)
	}
	p.mu.Unlock()
	err := UpdateRotation(p.opt.RotationFile, func([]Rotation) []Rotation { return snap })
	p.mu.Lock()
	p.rotSig = statSig(p.opt.RotationFile)
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("rotation state not written", "err", err)
	}
}

// ForgetRotation removes the rotation state of servers matching target
// (as for Unpin) from the file at path; the running agent reloads it.
func ForgetRotation(path string, t Pin) ([]Rotation, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	var removed []Rotation
	err := UpdateRotation(path, func(rs []Rotation) []Rotation {
		keep := rs[:0]
		for _, r := range rs {
			l := Learned{HostKey: r.HostKey, User: r.User, Names: r.Names}
			if learnedMatches(l, t) {
				removed = append(removed, r)
				continue
			}
			keep = append(keep, r)
		}
		return keep
	})
	return removed, err
}
