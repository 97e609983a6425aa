package pin

import (
	"bytes"
	"io"
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

// sshOptsAll are every option letter ssh(1) of OpenSSH 9 and 10 knows.
const sshOptsAll = sshOptsWithArg + "1246AaCfGgKkMNnqsTtVvXxYy"

// sshOptsDropped are options left out of the `ssh -G` probe: -E names a
// log file ssh would create, -y sends the log to syslog, -O/-M/-f/-N
// concern a connection the probe never makes, -V and -Q print something
// else than the configuration, and -v/-q would change the log level the
// probe sets (errors only, so that a Match exec failure is seen).
const sshOptsDropped = "EyOMfNVQvq"

// SSHCommand is an ssh command line taken apart as ssh(1) does: options,
// the destination, options after it, then the remote command.
type SSHCommand struct {
	Options [][2]string // option letter (as a string) and its argument ("" for a flag), in order
	Dest    string      // destination as written
	Command []string    // remote command words
}

// ParseSSHCommand parses argv of an ssh process. It reports false when
// argv is not ssh, names an option ssh does not know, or has no
// destination. Like ssh, it reads options before and right after the
// destination ("ssh host -i key"), unless "--" ended them.
func ParseSSHCommand(argv []string) (SSHCommand, bool) {
	var c SSHCommand
	if len(argv) == 0 || filepath.Base(argv[0]) != "ssh" {
		return c, false
	}
	terminated := false
	i := 1
	for i < len(argv) {
		a := argv[i]
		if !terminated && a == "--" {
			terminated = true
			i++
			continue
		}
		if terminated || len(a) < 2 || a[0] != '-' {
			if c.Dest != "" {
				c.Command = append([]string(nil), argv[i:]...)
				break
			}
			c.Dest = a
			i++
			continue
		}
		// A cluster of flags; the first one taking an argument ends it.
		for j := 1; j < len(a); j++ {
			o := a[j]
			if !strings.ContainsRune(sshOptsAll, rune(o)) {
				return c, false
			}
			if !strings.ContainsRune(sshOptsWithArg, rune(o)) {
				c.Options = append(c.Options, [2]string{string(o), ""})
				continue
			}
			val := a[j+1:]
			if val == "" {
				if i+1 >= len(argv) {
					return c, false
				}
				i++
				val = argv[i]
			}
			c.Options = append(c.Options, [2]string{string(o), val})
			break
		}
		i++
	}
	return c, c.Dest != ""
}

// ProbeArgs are the arguments for `ssh -G` that evaluate the same
// configuration as this command line, without the options that would
// write files or do anything but print the configuration. Every argument
// stays a separate word: nothing passes through a shell.
func (c SSHCommand) ProbeArgs() []string {
	args := []string{"-G", "-o", "LogLevel=ERROR"}
	for _, o := range c.Options {
		if strings.Contains(sshOptsDropped, o[0]) {
			continue
		}
		args = append(args, "-"+o[0])
		if o[1] != "" || strings.ContainsRune(sshOptsWithArg, rune(o[0][0])) {
			args = append(args, o[1])
		}
	}
	args = append(args, "--", c.Dest)
	return append(args, c.Command...)
}

// maxCmdline bounds the command line read from /proc: a longer one is
// not inspected at all.
const maxCmdline = 64 << 10

// peerArgv reads the command line of process pid, or nil.
func peerArgv(pid int) []string {
	if pid <= 0 {
		return nil
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline+1))
	if err != nil || len(b) == 0 || len(b) > maxCmdline {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

// SSHDestination finds the destination in an ssh command line: the first
// argument that is not an option, as "host", "user@host" or
// "ssh://[user@]host[:port]", with the port from -p or -o Port=. It
// returns the name at that port (22 by default); nil when argv is not ssh.
func SSHDestination(argv []string) []Name {
	c, ok := ParseSSHCommand(argv)
	if !ok {
		return nil
	}
	port := 0
	for _, o := range c.Options {
		switch o[0] {
		case "p":
			if p, err := parsePort(o[1]); err == nil {
				port = p
			}
		case "o":
			k, v, ok := strings.Cut(o[1], "=")
			if !ok {
				k, v, _ = strings.Cut(o[1], " ")
			}
			if strings.EqualFold(strings.TrimSpace(k), "port") {
				if p, err := parsePort(strings.TrimSpace(v)); err == nil {
					port = p
				}
			}
		}
	}
	dest := c.Dest
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
