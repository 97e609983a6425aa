package pin

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/paths"
)

// KeysDir is where pinned public keys are exported for ssh_config's
// IdentityFile: paths.Config()/keys.
func KeysDir() string { return filepath.Join(paths.Config(), "keys") }

// Key is a client key named on the command line.
type Key struct {
	Fingerprint string
	Public      ssh.PublicKey // nil when only the fingerprint is known
	Comment     string
}

// KeySource is where comments and fingerprints are looked up: the running
// agent's identities and public key files.
type KeySource struct {
	AgentSocket string   // SSH_AUTH_SOCK; empty: no agent
	PubFiles    []string // .pub files; nil: ~/.ssh/*.pub and KeysDir()/*.pub
}

// DefaultKeySource uses $SSH_AUTH_SOCK and the usual .pub files.
func DefaultKeySource() KeySource { return KeySource{AgentSocket: os.Getenv("SSH_AUTH_SOCK")} }

func (s KeySource) pubFiles() []string {
	if s.PubFiles != nil {
		return s.PubFiles
	}
	var files []string
	if h, err := os.UserHomeDir(); err == nil {
		m, _ := filepath.Glob(filepath.Join(h, ".ssh", "*.pub"))
		files = append(files, m...)
	}
	m, _ := filepath.Glob(filepath.Join(KeysDir(), "*.pub"))
	return append(files, m...)
}

// candidates lists every key the source knows; agent errors are ignored
// (no agent running is normal), file errors skip the file.
func (s KeySource) candidates() []Key {
	var out []Key
	if s.AgentSocket != "" {
		if c, err := net.Dial("unix", s.AgentSocket); err == nil {
			keys, _ := xagent.NewClient(c).List()
			c.Close()
			for _, k := range keys {
				pub, err := ssh.ParsePublicKey(k.Blob)
				if err == nil {
					out = append(out, Key{Fingerprint: agent.KeyFingerprint(pub), Public: pub, Comment: k.Comment})
				}
			}
		}
	}
	for _, f := range s.pubFiles() {
		if k, err := readPubFile(f); err == nil {
			out = append(out, k)
		}
	}
	return out
}

func readPubFile(path string) (Key, error) {
	data, err := readBounded(path, 1<<20)
	if err != nil {
		return Key{}, err
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return Key{}, fmt.Errorf("%s is not a public key file: %w", path, err)
	}
	return Key{Fingerprint: agent.KeyFingerprint(pub), Public: pub, Comment: comment}, nil
}

// NotFoundError says a key named on the command line was not found.
type NotFoundError struct{ Arg string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no key %q in the agent or in .pub files", e.Arg)
}

// Hint says how to name a key.
func (e *NotFoundError) Hint() string {
	return "give a public key file, a SHA256: fingerprint (ssh-add -l), or the comment of a loaded key"
}

// ResolveKey finds the key arg names: a public key file (or a private key
// file with a .pub next to it), a SHA256: fingerprint, or a comment of a
// key in the agent or in a .pub file. A fingerprint that is nowhere to be
// found still resolves, without the public half.
func ResolveKey(arg string, src KeySource) (Key, error) {
	if strings.HasPrefix(arg, "SHA256:") {
		if err := ValidFingerprint(arg); err != nil {
			return Key{}, err
		}
		for _, k := range src.candidates() {
			if k.Fingerprint == arg {
				return k, nil
			}
		}
		return Key{Fingerprint: arg}, nil
	}
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		k, err := readPubFile(arg)
		if err == nil {
			return k, nil
		}
		if k2, err2 := readPubFile(arg + ".pub"); err2 == nil {
			return k2, nil
		}
		return Key{}, err
	}
	var found []Key
	seen := map[string]bool{}
	for _, k := range src.candidates() {
		if k.Comment == arg && !seen[k.Fingerprint] {
			seen[k.Fingerprint] = true
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return Key{}, &NotFoundError{Arg: arg}
	case 1:
		return found[0], nil
	}
	var fps []string
	for _, k := range found {
		fps = append(fps, k.Fingerprint)
	}
	sort.Strings(fps)
	return Key{}, fmt.Errorf("comment %q names %d keys (%s): give the fingerprint", arg, len(found), strings.Join(fps, ", "))
}

// exportName is the file name of an exported public key.
func exportName(fp string) string {
	r := strings.NewReplacer(":", "_", "/", "_", "+", "-")
	return r.Replace(fp) + ".pub"
}

// ExportKey writes the public key to dir (0700) as SHA256_….pub, for use
// as ssh_config IdentityFile, and returns the path.
func ExportKey(dir string, k Key) (string, error) {
	if k.Public == nil {
		return "", errors.New("public key unknown")
	}
	if err := paths.EnsureDir(dir); err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Public)))
	if k.Comment != "" {
		line += " " + k.Comment
	}
	path := filepath.Join(dir, exportName(k.Fingerprint))
	return path, atomicfile.Write(path, []byte(line+"\n"), 0o600)
}
