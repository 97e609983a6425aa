package pin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Name is one identity of a server: a host name or address, and a port.
type Name struct {
	Host string // lower case
	Port int
}

// String gives the name the way known_hosts and ssh write it: the bare
// host for port 22, [host]:port otherwise.
func (n Name) String() string {
	if n.Port == 22 || n.Port == 0 {
		return n.Host
	}
	return "[" + n.Host + "]:" + strconv.Itoa(n.Port)
}

// ParseName reads "host", "[host]:port" or "host:port" (a convenience for
// the command line) into a Name with port 22 by default.
func ParseName(s string) (Name, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return Name{}, err
	}
	if strings.ContainsAny(host, "*?!,") {
		return Name{}, fmt.Errorf("%q is a pattern, not a host name", s)
	}
	if port == 0 {
		port = 22
	}
	return Name{Host: strings.ToLower(host), Port: port}, nil
}

// splitHostPort splits "[host]:port" and returns port 0 when none is given.
func splitHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty host")
	}
	if s[0] != '[' {
		if i := strings.LastIndexByte(s, ':'); i > 0 && strings.Count(s, ":") == 1 {
			p, err := parsePort(s[i+1:])
			if err != nil {
				return "", 0, err
			}
			return s[:i], p, nil
		}
		return s, 0, nil
	}
	end := strings.Index(s, "]")
	if end < 0 {
		return "", 0, fmt.Errorf("%q: missing ]", s)
	}
	host := s[1:end]
	rest := s[end+1:]
	if host == "" {
		return "", 0, fmt.Errorf("%q: empty host", s)
	}
	if rest == "" {
		return host, 0, nil
	}
	if rest[0] != ':' {
		return "", 0, fmt.Errorf("%q: expected :port after ]", s)
	}
	p, err := parsePort(rest[1:])
	if err != nil {
		return "", 0, err
	}
	return host, p, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || s[0] == '+' {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

// hostPattern is one element of an ssh_config-style pattern list.
type hostPattern struct {
	neg  bool
	host string // lower case, may hold * and ?
	port int    // 0: any port, as ssh_config's Host does
}

// Patterns is an ssh_config-style host pattern list: comma-separated
// patterns with * and ?, a leading ! negates, and [pattern]:port limits a
// pattern to one port. A name matches when some positive pattern matches
// and no negated one does.
type Patterns struct {
	elems []hostPattern
	text  string
}

// ParsePatterns parses a comma-separated pattern list.
func ParsePatterns(s string) (Patterns, error) {
	if s == "" {
		return Patterns{}, errors.New("empty host pattern")
	}
	p := Patterns{text: s}
	pos := 0
	for _, part := range strings.Split(s, ",") {
		var e hostPattern
		if strings.HasPrefix(part, "!") {
			e.neg = true
			part = part[1:]
		}
		if part == "" {
			return Patterns{}, fmt.Errorf("empty element in host pattern %q", s)
		}
		if strings.ContainsAny(part, " \t@!#\"'") || hasControl(part) {
			return Patterns{}, fmt.Errorf("bad character in host pattern %q", part)
		}
		host, port, err := splitHostPort(part)
		if err != nil {
			return Patterns{}, err
		}
		if strings.ContainsAny(host, "[]") {
			return Patterns{}, fmt.Errorf("bad brackets in host pattern %q", part)
		}
		e.host, e.port = strings.ToLower(host), port
		if !e.neg {
			pos++
		}
		p.elems = append(p.elems, e)
	}
	if pos == 0 {
		return Patterns{}, fmt.Errorf("host pattern %q has only negations and matches nothing", s)
	}
	return p, nil
}

// String returns the pattern list as written.
func (p Patterns) String() string { return p.text }

// Match reports whether the name matches the list.
func (p Patterns) Match(n Name) bool {
	host := strings.ToLower(n.Host)
	matched := false
	for _, e := range p.elems {
		if e.port != 0 && e.port != n.Port {
			continue
		}
		if !wildMatch(e.host, host) {
			continue
		}
		if e.neg {
			return false
		}
		matched = true
	}
	return matched
}

// literals returns the names of positive elements without wildcards: the
// only hosts the list can match when there are no wildcards, and the
// candidates to test against hashed known_hosts entries.
func (p Patterns) literals() []Name {
	var out []Name
	for _, e := range p.elems {
		if e.neg || strings.ContainsAny(e.host, "*?") {
			continue
		}
		out = append(out, Name{Host: e.host, Port: e.port})
	}
	return out
}

// hasWildcard reports whether any positive element holds * or ?.
func (p Patterns) hasWildcard() bool {
	for _, e := range p.elems {
		if !e.neg && strings.ContainsAny(e.host, "*?") {
			return true
		}
	}
	return false
}

// wildMatch matches s against pattern with * (any run) and ? (one byte),
// in linear time with a single backtrack point, so hostile patterns from a
// known_hosts file cannot make matching blow up.
func wildMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// hasControl reports a control character (a newline would start a new line
// of the pins file; an escape sequence would reach the terminal).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
