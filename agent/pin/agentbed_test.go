package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// agentBed is sesame's agent server with the pin policy on a socket, n
// fresh ed25519 keys loaded (comments k1…kn) and their public halves in
// Dir as k1.pub…kn.pub: what real ssh talks to, peer inspection included.
type agentBed struct {
	t     *testing.T
	Dir   string
	sock  string
	p     *Policy
	pins  string
	files Files
	keys  []ssh.PublicKey
	lines []string
	env   []string // more environment for ssh
}

func newAgentBed(t *testing.T, n int, knownHosts []string, opt Options) *agentBed {
	t.Helper()
	dir := t.TempDir()
	b := &agentBed{t: t, Dir: dir, sock: filepath.Join(dir, "agent.sock"), pins: filepath.Join(dir, "pins")}
	b.files = Files{Pins: b.pins, Learned: filepath.Join(dir, "learned.json"), KeysDir: filepath.Join(dir, "keys")}
	opt.PinsFile, opt.LearnedFile, opt.KnownHostsFiles = b.pins, b.files.Learned, knownHosts
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b.p = New(opt)
	srv := agent.New(agent.Options{Socket: b.sock, Policy: b.p, Logger: opt.Logger})
	for i := 1; i <= n; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		if err := srv.AddKey(xagent.AddedKey{PrivateKey: priv, Comment: fmt.Sprint("k", i)}); err != nil {
			t.Fatal(err)
		}
		pub, _ := ssh.NewPublicKey(priv.Public())
		b.keys = append(b.keys, pub)
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + fmt.Sprintf(" k%d\n", i)
		b.lines = append(b.lines, line)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%d.pub", i)), []byte(line), 0o600)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(t.Context()) }()
	t.Cleanup(func() { srv.Close(); wg.Wait(); b.p.Close() })
	return b
}

// ssh runs real ssh with the agent, in the bed's directory.
func (b *agentBed) ssh(args ...string) (string, error) {
	cmd := exec.Command(testbed.Path(b.t, "ssh"), args...)
	cmd.Dir = b.Dir
	cmd.Env = append(append(os.Environ(), b.env...), "SSH_AUTH_SOCK="+b.sock)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (b *agentBed) setPins(text string) {
	if err := os.WriteFile(b.pins, []byte(text), 0o600); err != nil {
		b.t.Fatal(err)
	}
}
