package pin

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/internal/statefile"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// Finding the right key without a lockout: six keys, a new server with
// MaxAuthTries 3 that accepts the fifth. Logins 1 and 2 fail with at most
// two rejected keys each, login 3 gets in, login 4 offers only that key.
func TestRotationFindsTheKey(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	var mu sync.Mutex
	var notes []string
	notify := func(summary, body string) { mu.Lock(); notes = append(notes, body); mu.Unlock() }
	b := newAgentBed(t, 6, []string{sshd.KnownHosts}, Options{MaxOffer: 2, Notify: notify})
	sshd.Authorize(b.lines[4])
	args := append(sshd.SSHArgs("IdentityFile=/dev/null"), "echo", "in")
	failed := 0
	for login := 1; login <= 4; login++ {
		out, err := b.ssh(args...)
		n := sshd.FailedPublickey() - failed
		failed += n
		switch {
		case login <= 2 && err == nil:
			t.Fatalf("login %d got in: %s", login, out)
		case login <= 2 && n > 2:
			t.Errorf("login %d: %d rejected keys", login, n)
		case login >= 3 && (err != nil || !strings.Contains(out, "in")):
			t.Fatalf("login %d: %v\n%s\nrotation: %+v", login, err, out, b.p.Rotations())
		case login == 4 && n != 0:
			t.Errorf("login 4: %d rejected keys", n)
		}
		if login == 2 {
			// The agent sees the connection end a moment after ssh does.
			for i := 0; i < 100 && tried(b.p) < 4; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			b.p.Flush()
			r := b.p.Rotations()
			if len(r) != 1 || len(r[0].Tried) != 4 || r[0].User != sshd.User {
				t.Errorf("rotation after two logins: %+v", r)
			}
			onDisk, err := ReadRotation(filepath.Join(b.Dir, RotationFileName))
			if err != nil || len(onDisk) != 1 || len(onDisk[0].Tried) != 4 {
				t.Errorf("rotation file: %+v %v", onDisk, err)
			}
		}
	}
	if r := b.p.Rotations(); len(r) != 0 {
		t.Errorf("rotation kept after the key was found: %+v", r)
	}
	// Keys were kept back from the failed logins: one notification (at
	// most one per server and user in a while) with the command.
	mu.Lock()
	if len(notes) != 1 || !strings.Contains(notes[0], fmt.Sprintf("sesame pin '%s@[localhost]:%d' KEY", sshd.User, sshd.Port)) {
		t.Errorf("notifications: %q", notes)
	}
	mu.Unlock()
	hk := hostKeyOf(t, sshd)
	got := b.p.OfferAs(&agent.ConnInfo{Binds: []agent.Bind{{HostKey: hk}}}, sshd.User, b.ids())
	if fps(got) != "k5" {
		t.Errorf("after the key was found, offered %s", fps(got))
	}
}

// A server that takes no key at all stops being offered keys after one
// full round, and Explain (doctor) says so.
func TestRotationExhausted(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	b := newAgentBed(t, 3, []string{sshd.KnownHosts}, Options{MaxOffer: 2})
	args := append(sshd.SSHArgs("IdentityFile=/dev/null"), "true")
	for login := 1; login <= 3; login++ {
		before := sshd.FailedPublickey()
		if _, err := b.ssh(args...); err == nil {
			t.Fatal("logged in without an authorized key")
		}
		n := sshd.FailedPublickey() - before
		if want := []int{2, 1, 0}[login-1]; n != want {
			t.Errorf("login %d: %d rejected keys, want %d", login, n, want)
		}
	}
	reps, err := b.p.Explain(hostName(sshd), sshd.User, b.ids())
	if err != nil || len(reps) != 1 || reps[0].Rotation == nil || !reps[0].Rotation.Exhausted ||
		len(reps[0].Offered) != 0 || !strings.Contains(reps[0].Reason, "accepted none of the 3 keys") {
		t.Fatalf("explain: %+v %v", reps, err)
	}
}

// A corrupt rotation file: one warning, the file set aside, a fresh start.
func TestRotationCorruptFile(t *testing.T) {
	dir := t.TempDir()
	rf := filepath.Join(dir, RotationFileName)
	os.WriteFile(rf, []byte(`{"version":1,"servers":[{"host_key":"nope"`), 0o600)
	var warnings []string
	old := statefile.Warn
	statefile.Warn = func(msg string) { warnings = append(warnings, msg) }
	t.Cleanup(func() { statefile.Warn = old })
	var logs bytes.Buffer
	p := New(Options{PinsFile: filepath.Join(dir, "pins"), LearnedFile: filepath.Join(dir, "learned.json"),
		KnownHostsFiles: []string{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer p.Close()
	if r := p.Rotations(); len(r) != 0 {
		t.Errorf("rotation from a corrupt file: %+v", r)
	}
	p.Rotations()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "key rotation state file "+rf+" is damaged (not valid JSON)") || logs.Len() != 0 {
		t.Errorf("warnings: %q, log:\n%s", warnings, logs.String())
	}
	if m, _ := filepath.Glob(rf + ".damaged-*"); len(m) != 1 {
		t.Errorf("not set aside: %v", m)
	}
	for _, bad := range []string{"null", "[]", `{"version":2}`, `{"version":1,"servers":[{"host_key":"SHA256:x"}]}`} {
		if _, err := ParseRotation([]byte(bad), "f"); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func (b *agentBed) ids() []agent.Identity {
	var out []agent.Identity
	for i, k := range b.keys {
		out = append(out, agent.Identity{Key: k, Comment: fmt.Sprint("k", i+1)})
	}
	return out
}

// hostKeyOf reads the public host key of sshd.
func hostKeyOf(t *testing.T, sshd *testbed.SSHD) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey(mustRead(t, sshd.HostKey+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tried(p *Policy) int {
	n := 0
	for _, r := range p.Rotations() {
		n += len(r.Tried)
	}
	return n
}

// ssh tries Kerberos before keys (GSSAPIAuthentication yes): a login that
// gets in with a ticket offered no key, and must not count the listed keys
// as tried. Without a ticket the same login fails, and they count.
func TestRotationNotAfterKerberos(t *testing.T) {
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: kdc, MaxAuthTries: 3})
	kdc.AddPrincipal(sshd.User, "pw-for-tests")
	b := newAgentBed(t, 3, []string{sshd.KnownHosts}, Options{MaxOffer: 2})
	cc := filepath.Join(t.TempDir(), "cc")
	b.env = append(kdc.Env(), "KRB5CCNAME=FILE:"+cc)
	kinit := exec.Command(testbed.Path(t, "kinit"), sshd.User)
	kinit.Env = append(os.Environ(), b.env...)
	kinit.Stdin = strings.NewReader("pw-for-tests\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	args := sshd.SSHArgs("IdentityFile=/dev/null", "GSSAPIAuthentication=yes")
	if out, err := b.ssh(append(args, "sleep", "3")...); err != nil {
		t.Fatalf("Kerberos login: %v\n%s", err, out)
	}
	b.p.Flush()
	if r := b.p.Rotations(); len(r) != 0 {
		t.Errorf("keys counted as tried after a Kerberos login: %+v", r)
	}
	os.Remove(cc)
	if _, err := b.ssh(append(args, "true")...); err == nil {
		t.Fatal("logged in without a ticket or an authorized key")
	}
	time.Sleep(gssapiGrace)
	b.p.Flush()
	if n := tried(b.p); n != 2 {
		t.Errorf("%d keys counted as tried after a failed login, want 2", n)
	}
}
