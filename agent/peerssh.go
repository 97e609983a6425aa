package agent

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

// An OpenSSH client of version 8.9 or later sends session-bind on its
// agent connection before it authenticates, and binds every agent
// connection it forwards (ssh -A) with is_forwarding. A connection whose
// peer process is such an ssh and that sent no bind is therefore not the
// client's own use of the agent: it is a socket forwarded some other way
// (ssh -R to the agent's socket, a multiplexed channel), and whoever asks
// is on the far side. Every other unbound peer (ssh-add, ssh-keygen -Y
// sign for git, OpenSSH before 8.9 configured through `sesame ssh-config`,
// other SSH libraries) cannot be told apart from local use.

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
