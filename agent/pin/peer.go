package pin

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Hashed known_hosts entries (HashKnownHosts yes, Debian's default) hide
// host names: they can be tested against a candidate name but not read.
// Literal pins supply candidates; wildcard pins cannot. The ssh process on
// the other end of the agent socket names its destination on its command
// line, so that name is one more candidate. It is only ever a candidate:
// a name counts only when known_hosts confirms it for the bound host key,
// so a lying command line gains nothing.

// sshOptsWithArg are the ssh(1) options that take an argument.
const sshOptsWithArg = "BbcDEeFIiJLlmOoPpQRSWw"

// PeerNames returns the destination named on the command line of process
// pid when it is ssh, or nil.
func PeerNames(pid int) []Name {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	argv := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
	return SSHDestination(argv)
}

// SSHDestination finds the destination in an ssh command line: the first
// argument that is not an option, as "host", "user@host" or
// "ssh://[user@]host[:port]", with the port from -p or -o Port=. It
// returns the name at that port (22 by default); nil when argv is not ssh.
func SSHDestination(argv []string) []Name {
	if len(argv) == 0 || filepath.Base(argv[0]) != "ssh" {
		return nil
	}
	port := 0
	dest := ""
	for i := 1; i < len(argv) && dest == ""; i++ {
		a := argv[i]
		if a == "--" {
			if i+1 < len(argv) {
				dest = argv[i+1]
			}
			break
		}
		if len(a) < 2 || a[0] != '-' {
			dest = a
			break
		}
		// A cluster of flags; the first one taking an argument ends it.
		for j := 1; j < len(a); j++ {
			if !strings.ContainsRune(sshOptsWithArg, rune(a[j])) {
				continue
			}
			val := a[j+1:]
			if val == "" && i+1 < len(argv) {
				i++
				val = argv[i]
			}
			switch a[j] {
			case 'p':
				if p, err := parsePort(val); err == nil {
					port = p
				}
			case 'o':
				k, v, ok := strings.Cut(val, "=")
				if !ok {
					k, v, _ = strings.Cut(val, " ")
				}
				if strings.EqualFold(strings.TrimSpace(k), "port") {
					if p, err := parsePort(strings.TrimSpace(v)); err == nil {
						port = p
					}
				}
			}
			break
		}
	}
	if dest == "" {
		return nil
	}
	if rest, ok := strings.CutPrefix(dest, "ssh://"); ok {
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			rest = rest[i+1:]
		}
		host, p, err := splitHostPort(rest)
		if err != nil {
			return nil
		}
		dest = host
		if p != 0 && port == 0 {
			port = p
		}
	} else if i := strings.LastIndexByte(dest, '@'); i >= 0 {
		dest = dest[i+1:]
	}
	if port == 0 {
		port = 22
	}
	if dest == "" || strings.ContainsAny(dest, "[]/ *?!,") {
		return nil
	}
	return []Name{{Host: strings.ToLower(dest), Port: port}}
}
