package pin

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// An OpenSSH client of version 8.9 or later sends session-bind on its
// agent connection before it authenticates, and binds every agent
// connection it forwards (ssh -A) with is_forwarding. A connection whose
// peer process is such an ssh and that sent no bind is therefore not the
// client's own use of the agent: it is a socket forwarded some other way
// (ssh -R to the agent's socket, a multiplexed channel), and whoever asks
// is on the far side. Pinned keys do not sign there. Every other unbound
// peer (ssh-add, ssh-keygen -Y sign for git, OpenSSH before 8.9 configured
// through `sesame ssh-config`, other SSH libraries) cannot be told apart
// from local use, and is served as ssh-agent would.

// bindingSSH is the first OpenSSH release that sends session-bind.
var bindingSSH = [2]int{8, 9}

// OpenSSHBinds reports whether process pid runs an OpenSSH ssh client
// that binds its agent connections (8.9 or later). It reads the version
// from the process's executable (/proc/PID/exe, readable for the user's
// own processes), cached by the file's identity; false when pid is not
// ssh or its version cannot be told.
func OpenSSHBinds(pid int) bool {
	if pid <= 0 {
		return false
	}
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	target, err := os.Readlink(exe)
	if err != nil || filepath.Base(strings.TrimSuffix(target, " (deleted)")) != "ssh" {
		return false
	}
	f, err := os.Open(exe)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	id := exeID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
	}
	exeVersions.mu.Lock()
	v, ok := exeVersions.m[id]
	exeVersions.mu.Unlock()
	if !ok {
		v = opensshVersion(io.LimitReader(f, maxExe))
		exeVersions.mu.Lock()
		if len(exeVersions.m) >= 64 {
			clear(exeVersions.m)
		}
		exeVersions.m[id] = v
		exeVersions.mu.Unlock()
	}
	return releaseBinds(v)
}

// releaseBinds reports whether OpenSSH release v sends session-bind.
func releaseBinds(v [2]int) bool {
	return v[0] > bindingSSH[0] || v[0] == bindingSSH[0] && v[1] >= bindingSSH[1]
}

const maxExe = 64 << 20

type exeID struct {
	dev, ino    uint64
	size, mtime int64
}

var exeVersions = struct {
	mu sync.Mutex
	m  map[exeID][2]int
}{m: map[exeID][2]int{}}

// opensshVersion finds the release an OpenSSH binary was built as: the
// highest "OpenSSH_X.Y" in it that is not one of the version patterns
// ssh keeps for compatibility with old peers ("OpenSSH_7.4*",
// "OpenSSH_6.6.1*"). Zero when there is none.
func opensshVersion(r io.Reader) [2]int {
	data, err := io.ReadAll(r)
	if err != nil {
		return [2]int{}
	}
	const marker = "OpenSSH_"
	var best [2]int
	for rest := data; ; {
		i := bytes.Index(rest, []byte(marker))
		if i < 0 {
			break
		}
		rest = rest[i+len(marker):]
		major, n1 := leadingInt(rest)
		if n1 == 0 || n1 >= len(rest) || rest[n1] != '.' {
			continue
		}
		minor, n2 := leadingInt(rest[n1+1:])
		end := n1 + 1 + n2
		if n2 == 0 || end < len(rest) && (rest[end] == '*' || rest[end] == '.') {
			continue
		}
		if v := [2]int{major, minor}; v[0] > best[0] || v[0] == best[0] && v[1] > best[1] {
			best = v
		}
	}
	return best
}

// leadingInt parses the decimal digits at the start of b (at most 4).
func leadingInt(b []byte) (v, n int) {
	for n < len(b) && n < 4 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int(b[n]-'0')
		n++
	}
	return v, n
}
