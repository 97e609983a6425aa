package pin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/sshwire"
)

// PeerConfig is what the ssh process at the other end of a connection
// will do, from its command line and `ssh -G` with the same arguments.
// It decides which keys are listed, never whether a key may sign: the
// user and key of a signature come from the signed request itself.
type PeerConfig struct {
	User string
	// IdentitiesOnly: ssh uses only the keys of Keys, whatever else the
	// agent lists.
	IdentitiesOnly bool
	// Keys are the fingerprints of the keys of the IdentityFile and
	// CertificateFile entries that could be read, in ssh's order (for a
	// certificate, the fingerprint of its key).
	Keys []string
	// Explicit: the identity files were configured, not ssh's defaults.
	Explicit bool
	// GSSAPIFirst: ssh tries Kerberos (gssapi-with-mic) before keys, so a
	// login may succeed without any key being offered to the server.
	GSSAPIFirst bool
}

// ProbeTimeout bounds one `ssh -G` probe.
const ProbeTimeout = 2 * time.Second

// ProbeSSH inspects process pid: when it is ssh, it runs `ssh -G` with the
// same arguments (see ProbePeer) and returns what it learned; nil when pid
// is not ssh or anything fails.
func ProbeSSH(pid int) *PeerConfig {
	argv := peerArgv(pid)
	cmd, ok := ParseSSHCommand(argv)
	if !ok {
		return nil
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	c, err := ProbePeer(ctx, "", cmd, cwd)
	if err != nil {
		return nil
	}
	return c
}

// Markers in `ssh -G`'s error output that say a Match exec was met: the
// probe's shell cannot run it, so the configuration printed is not the one
// the client has.
var matchExecMarkers = []string{"is not executable", "Unable to execute", "exited abnormally"}

// ErrProbe says `ssh -G` gave no configuration that can be trusted.
var ErrProbe = errors.New("ssh -G gave no usable configuration")

// ProbePeer runs `ssh -G` (sshPath, or ssh from PATH) with the arguments
// of cmd in directory cwd and reads the configuration it prints.
//
// Safety: the agent's own ssh is run, never the peer's executable; each
// argument is passed as data, never through a shell; options that write
// (-E log file) or do anything but print are dropped (ProbeArgs). `ssh -G`
// does not run ProxyCommand, LocalCommand or KnownHostsCommand; the one
// thing it would execute is a `Match exec` command from a config file,
// and SHELL is set to /dev/null, which is not executable, so such a
// command never runs (OpenSSH 9 stops with "is not executable", older ones
// report "Unable to execute"); either way the result is discarded. The
// child has no terminal (new session), /dev/null as input, and is killed
// when ctx ends.
func ProbePeer(ctx context.Context, sshPath string, cmd SSHCommand, cwd string) (*PeerConfig, error) {
	if sshPath == "" {
		p, err := exec.LookPath("ssh")
		if err != nil {
			return nil, err
		}
		sshPath = p
	}
	c := exec.CommandContext(ctx, sshPath, cmd.ProbeArgs()...)
	c.Dir = cwd
	c.Env = append(probeEnv(), "SHELL=/dev/null")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.WaitDelay = 100 * time.Millisecond
	var out, errOut limitedBuffer
	out.max, errOut.max = 256<<10, 16<<10
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		return nil, ErrProbe
	}
	for _, m := range matchExecMarkers {
		if strings.Contains(errOut.String(), m) {
			return nil, ErrProbe
		}
	}
	if out.full {
		return nil, ErrProbe
	}
	return parseProbe(out.Bytes(), cwd)
}

// probeEnv is the agent's environment without SHELL.
func probeEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SHELL=") {
			env = append(env, e)
		}
	}
	return env
}

// limitedBuffer keeps at most max bytes and notes that more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	full bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.full = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// maxIdentityFiles bounds how many identity files a probe reads.
const maxIdentityFiles = 64

// parseProbe reads `ssh -G` output and the public keys of its identity
// and certificate files (relative paths from cwd, the peer's directory).
func parseProbe(out []byte, cwd string) (*PeerConfig, error) {
	c := &PeerConfig{}
	var ids, certs []string
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		k = strings.ToLower(k)
		switch k {
		case "identityfile":
			ids = append(ids, v)
		case "certificatefile":
			certs = append(certs, v)
		default:
			vals[k] = v
		}
	}
	if sc.Err() != nil || vals["user"] == "" {
		return nil, ErrProbe
	}
	c.User = vals["user"]
	c.IdentitiesOnly = vals["identitiesonly"] == "yes"
	if vals["gssapiauthentication"] == "yes" {
		order := vals["preferredauthentications"]
		g, k := strings.Index(order, "gssapi-with-mic"), strings.Index(order, "publickey")
		c.GSSAPIFirst = order == "" || g >= 0 && (k < 0 || g < k)
	}
	c.Explicit = len(certs) > 0 || !defaultIdentities(ids)
	if len(ids)+len(certs) > maxIdentityFiles {
		return nil, ErrProbe
	}
	exp := expander{home: homeDir(), user: vals["user"], host: vals["hostname"], port: vals["port"], local: os.Getenv("USER")}
	seen := map[string]bool{}
	add := func(k ssh.PublicKey) {
		if cert, ok := k.(*ssh.Certificate); ok {
			k = cert.Key
		}
		f := ssh.FingerprintSHA256(k)
		if !seen[f] {
			seen[f] = true
			c.Keys = append(c.Keys, f)
		}
	}
	for _, f := range ids {
		path, ok := exp.path(f, cwd)
		if !ok {
			continue
		}
		if k := readPublicOf(path); k != nil {
			add(k)
		}
	}
	for _, f := range certs {
		path, ok := exp.path(f, cwd)
		if !ok {
			continue
		}
		if k := readPublic(path); k != nil {
			add(k)
		}
	}
	return c, nil
}

// defaultIdentities reports whether ids are ssh's default identity files
// (what `ssh -G` prints when none is configured).
func defaultIdentities(ids []string) bool {
	for _, f := range ids {
		if !strings.HasPrefix(f, "~/.ssh/id_") || strings.ContainsAny(f[len("~/.ssh/id_"):], "/.") {
			return false
		}
	}
	return true
}

func homeDir() string {
	h, _ := os.UserHomeDir()
	return h
}

// expander expands what ssh expands in IdentityFile and CertificateFile:
// ~, ${VAR} and the % tokens that do not need a connection.
type expander struct{ home, user, host, port, local string }

func (e expander) path(s, cwd string) (string, bool) {
	if s == "" || strings.EqualFold(s, "none") {
		return "", false
	}
	if s == "~" || strings.HasPrefix(s, "~/") {
		s = e.home + s[1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%' && i+1 < len(s):
			i++
			switch s[i] {
			case '%':
				b.WriteByte('%')
			case 'd':
				b.WriteString(e.home)
			case 'r':
				b.WriteString(e.user)
			case 'h':
				b.WriteString(e.host)
			case 'p':
				b.WriteString(e.port)
			case 'u':
				b.WriteString(e.local)
			default:
				return "", false // a token that needs the connection
			}
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", false
			}
			v, ok := os.LookupEnv(s[i+2 : i+end])
			if !ok {
				return "", false
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	p := b.String()
	if !filepath.IsAbs(p) {
		p = filepath.Join(cwd, p)
	}
	return p, true
}

// maxKeyFile bounds a key file read by a probe.
const maxKeyFile = 64 << 10

// readRegular reads a regular file of at most maxKeyFile bytes; FIFOs and
// devices are never opened for reading, so a probe cannot block on one.
func readRegular(path string) []byte {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxKeyFile {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil
	}
	return b
}

// readPublic reads a public key (or certificate) file.
func readPublic(path string) ssh.PublicKey {
	b := readRegular(path)
	if b == nil {
		return nil
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	return k
}

// readPublicOf finds the public key of an identity file as ssh does: the
// file itself when it is a public key, else FILE.pub, else the public key
// in the clear header of an OpenSSH private key file (never decrypted).
func readPublicOf(path string) ssh.PublicKey {
	if k := readPublic(path); k != nil {
		return k
	}
	if k := readPublic(path + ".pub"); k != nil {
		return k
	}
	b := readRegular(path)
	if b == nil {
		return nil
	}
	defer clear(b)
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "OPENSSH PRIVATE KEY" {
		return nil
	}
	defer clear(blk.Bytes)
	return openSSHPublicKey(blk.Bytes)
}

// openSSHPublicKey reads the first public key of an "openssh-key-v1"
// private key container (PROTOCOL.key): magic, cipher name, kdf name, kdf
// options, number of keys, then the public keys in the clear.
func openSSHPublicKey(b []byte) ssh.PublicKey {
	const magic = "openssh-key-v1\x00"
	rest, ok := bytes.CutPrefix(b, []byte(magic))
	if !ok {
		return nil
	}
	r := sshwire.Reader{B: rest}
	r.String()
	r.String()
	r.String()
	n := r.Uint32()
	pub := r.String()
	if r.Err != nil || n < 1 {
		return nil
	}
	k, err := ssh.ParsePublicKey(bytes.Clone(pub))
	if err != nil {
		return nil
	}
	return k
}
