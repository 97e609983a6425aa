package pin

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sesame-ssh/sesame/agent"
)

// On a connection without session-bind a pinned key signs for local tools
// and clients that cannot bind, but not when the peer is an ssh that binds
// its own connections: that one relays a forwarded socket.
func TestPolicyUnboundRelay(t *testing.T) {
	dir := t.TempDir()
	const binder, local = 100, 200
	p := New(Options{PinsFile: filepath.Join(dir, "pins"), LearnedFile: filepath.Join(dir, "learned"),
		KnownHostsFiles: []string{filepath.Join(dir, "kh")},
		PeerBinds:       func(pid int) bool { return pid == binder },
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { p.Close() })
	pinned, free := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	os.WriteFile(filepath.Join(dir, "pins"), []byte("login.example.org "+fp(pinned)+"\n"), 0o600)
	p.mu.Lock()
	p.refreshLocked()
	p.mu.Unlock()
	data := []byte("SSHSIG file signature, or anything")
	cases := []struct {
		pid  int
		key  string
		sign bool
	}{
		{binder, "pinned", false},
		{binder, "free", true},
		{local, "pinned", true},
		{0, "pinned", true},
	}
	for _, c := range cases {
		k := pinned
		if c.key == "free" {
			k = free
		}
		err := p.CheckSign(&agent.ConnInfo{PID: c.pid}, k, data)
		if (err == nil) != c.sign {
			t.Errorf("pid %d, %s key: %v, want signed %v", c.pid, c.key, err, c.sign)
		}
	}
}
