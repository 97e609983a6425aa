package pin

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/fileerr"
	"github.com/sesame-ssh/sesame/internal/paths"
)

// PinsFileName is the name of the declared pins file in paths.Config().
const PinsFileName = "pins"

// DefaultPinsFile is where declared pins live: $SESAME_HOME/config/pins or
// the XDG config directory.
func DefaultPinsFile() string { return filepath.Join(paths.Config(), PinsFileName) }

// maxPinsFile bounds the pins file we read; a file this large is a mistake.
const maxPinsFile = 16 << 20

// Pin is one declared pin: a line of the pins file.
//
//	[user@]PATTERNS  SHA256:keyfp  [2fa]  [# comment]
//	[user@]PATTERNS  2fa  [# comment]
//	hostkey [user@]SHA256:hostkeyfp  SHA256:keyfp  [2fa]  [# comment]
//
// The 2fa flag marks a server that asks for a one-time code on every
// connection: `sesame ssh-config` gives it a shared connection
// (ControlMaster), so one code serves many logins. A 2fa line without a
// key pins no key.
type Pin struct {
	User      string   // user pattern; empty matches every user
	Hosts     Patterns // host patterns; empty for a host key pin
	HostKey   string   // SHA256 fingerprint of the server's host key, for a host key pin
	Key       string   // SHA256 fingerprint of the pinned client key; empty on a 2fa-only line
	TwoFactor bool     // the 2fa flag
	Comment   string
	Line      int // line number in the file, from 1
}

// flag2FA is the pins file word for TwoFactor.
const flag2FA = "2fa"

// Target is the host part as written: "[user@]PATTERNS" or
// "hostkey [user@]SHA256:…".
func (p *Pin) Target() string {
	u := ""
	if p.User != "" {
		u = p.User + "@"
	}
	if p.HostKey != "" {
		return "hostkey " + u + p.HostKey
	}
	return u + p.Hosts.String()
}

// String formats the pin as a pins file line.
func (p *Pin) String() string {
	s := p.Target()
	if p.Key != "" {
		s += "  " + p.Key
	}
	if p.TwoFactor {
		s += "  " + flag2FA
	}
	if p.Comment != "" {
		s += "  # " + p.Comment
	}
	return s
}

// matchUser reports whether the pin applies to user; "" (unknown, when
// listing keys) matches every pin.
func (p *Pin) matchUser(user string) bool {
	return p.User == "" || user == "" || wildMatch(p.User, user)
}

// ParseError is a bad line in a pins file.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s line %d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Hint tells the user how to recover.
func (e *ParseError) Hint() string {
	return "fix or delete that line; until then the agent keeps the pins it had"
}

// ValidFingerprint checks that s is an OpenSSH SHA256 fingerprint.
func ValidFingerprint(s string) error {
	rest, ok := strings.CutPrefix(s, "SHA256:")
	if !ok {
		return fmt.Errorf("%q is not a SHA256: fingerprint", s)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%q is not a valid SHA256: fingerprint", s)
	}
	return nil
}

// ParsePins parses pins file content; file names the file in errors.
func ParsePins(data []byte, file string) ([]Pin, error) {
	var pins []Pin
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		p, ok, err := parsePinLine(sc.Text())
		if err != nil {
			return nil, &ParseError{File: file, Line: n, Err: err}
		}
		if ok {
			p.Line = n
			pins = append(pins, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: file, Line: n + 1, Err: err}
	}
	return pins, nil
}

// parsePinLine parses one line; ok is false for blank and comment lines.
func parsePinLine(line string) (Pin, bool, error) {
	var p Pin
	body, comment := splitComment(line)
	p.Comment = comment
	f := strings.Fields(body)
	if len(f) == 0 {
		return p, false, nil
	}
	if n := len(f); n >= 2 && f[n-1] == flag2FA {
		p.TwoFactor = true
		f = f[:n-1]
		if f[0] != "hostkey" && len(f) == 1 {
			f = append(f, "") // [user@]PATTERNS 2fa: no key
		}
	}
	if f[0] == "hostkey" {
		if len(f) != 3 {
			return p, false, errors.New(`expected "hostkey [user@]SHA256:HOSTKEY SHA256:KEY"`)
		}
		user, fp := splitUser(f[1])
		if err := ValidFingerprint(fp); err != nil {
			return p, false, fmt.Errorf("host key: %w", err)
		}
		p.User, p.HostKey = user, fp
		f = f[1:]
	} else {
		if len(f) != 2 {
			return p, false, errors.New(`expected "[user@]HOST SHA256:KEY"`)
		}
		user, hosts := splitUser(f[0])
		pats, err := ParsePatterns(hosts)
		if err != nil {
			return p, false, err
		}
		p.User, p.Hosts = user, pats
	}
	if p.User != "" && (strings.ContainsAny(p.User, ",!@[]") || hasControl(p.User)) {
		return p, false, fmt.Errorf("bad user %q", p.User)
	}
	if f[1] == "" && p.TwoFactor {
		return p, true, nil
	}
	if err := ValidFingerprint(f[1]); err != nil {
		return p, false, err
	}
	p.Key = f[1]
	return p, true, nil
}

// splitUser splits "user@rest" at the last @ (host patterns and
// fingerprints never hold one); "@host" has no user.
func splitUser(s string) (user, rest string) {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// splitComment cuts a # comment that starts the line or follows a blank.
func splitComment(line string) (body, comment string) {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i], strings.TrimSpace(line[i+1:])
		}
	}
	return line, ""
}

// ParseTarget parses the "[user@]HOST" argument of `sesame pin`/`unpin`,
// also accepting "hostkey SHA256:…" and a bare "SHA256:…" host key.
func ParseTarget(s string) (Pin, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "hostkey "); ok {
		s = strings.TrimSpace(rest)
	}
	user, host := splitUser(s)
	var p Pin
	p.User = user
	if strings.HasPrefix(host, "SHA256:") {
		if err := ValidFingerprint(host); err != nil {
			return p, err
		}
		p.HostKey = host
		return p, nil
	}
	pats, err := ParsePatterns(host)
	if err != nil {
		return p, err
	}
	p.Hosts = pats
	if strings.ContainsAny(user, ",!@[] \t#") || hasControl(user) {
		return p, fmt.Errorf("bad user %q", user)
	}
	return p, nil
}

// readPinsFile reads and parses the pins file; a missing file is no pins.
func readPinsFile(path string) ([]byte, []Pin, error) {
	data, err := readBounded(path, maxPinsFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	pins, err := ParsePins(data, path)
	return data, pins, err
}

// parsePinsLenient returns the pins of the lines that parse.
func parsePinsLenient(data []byte) []Pin {
	var pins []Pin
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if p, ok, err := parsePinLine(sc.Text()); err == nil && ok {
			p.Line = n
			pins = append(pins, p)
		}
	}
	return pins
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileerr.Describe("", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileerr.Describe("", path, err)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO or a device would block or never end.
		return nil, &fileerr.Error{Path: path, Msg: "is not a regular file"}
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		return nil, fileerr.Describe("", path, err)
	}
	if int64(buf.Len()) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return buf.Bytes(), nil
}

// AddPin appends a pin line to the pins file at path, unless the same
// target and key are already pinned. The whole file must parse first, so
// that a pin is never added behind a broken line. It reports whether the
// file changed.
func AddPin(path string, p Pin) (bool, error) {
	data, pins, err := readPinsFile(path)
	if err != nil {
		return false, err
	}
	for _, q := range pins {
		if q.Target() == p.Target() && q.Key == p.Key {
			if !p.TwoFactor || q.TwoFactor {
				return false, nil
			}
			// The same pin, now with the 2fa flag: the line is replaced.
			if _, err := RemovePins(path, q, q.Key); err != nil {
				return false, err
			}
			if data, _, err = readPinsFile(path); err != nil {
				return false, err
			}
			break
		}
	}
	line := p.String()
	if _, _, err := parsePinLine(line); err != nil {
		return false, err
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	if len(data) == 0 {
		data = []byte("# sesame pins: [user@]HOST-PATTERNS KEY-FINGERPRINT [2fa], or hostkey [user@]HOSTKEY-FINGERPRINT KEY-FINGERPRINT [2fa]\n")
	}
	data = append(data, line...)
	data = append(data, '\n')
	if err := paths.EnsureDir(filepath.Dir(path)); err != nil {
		return false, err
	}
	return true, atomicfile.Write(path, data, 0o600)
}

// RemovePins deletes the lines whose target equals target's (and whose key
// is key, when key is not empty), keeping every other line and comment. It
// returns the removed pins.
func RemovePins(path string, target Pin, key string) ([]Pin, error) {
	data, pins, err := readPinsFile(path)
	if err != nil {
		return nil, err
	}
	drop := map[int]bool{}
	var removed []Pin
	for _, q := range pins {
		if sameTarget(q, target) && (key == "" || q.Key == key) {
			drop[q.Line] = true
			removed = append(removed, q)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if !drop[n] {
			out.WriteString(sc.Text())
			out.WriteByte('\n')
		}
	}
	return removed, atomicfile.Write(path, out.Bytes(), 0o600)
}

// sameTarget compares targets case-insensitively on host patterns.
func sameTarget(a, b Pin) bool {
	return a.User == b.User && a.HostKey == b.HostKey &&
		strings.EqualFold(a.Hosts.String(), b.Hosts.String())
}
