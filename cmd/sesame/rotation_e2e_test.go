package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Say what happened: after a login in which no offered key was accepted,
// `sesame pins` (asking the running agent) and `sesame doctor HOST` show
// the search for the key and the exact command that ends it; the next
// login offers the next keys and, once one is accepted, the search is
// over. A server that takes no key is offered none after one round, and
// doctor says so.
func TestE2ERotationReported(t *testing.T) {
	w := newE2EWorld(t)
	s := w.server(3)
	s2 := w.server(3)
	names := []string{"k1", "k2", "k3"}
	for _, n := range names {
		w.key(n)
	}
	w.authorize(s, "k3")
	a := w.sesameAgent(names, "--max-offer=2")
	target := fmt.Sprintf("%s@[localhost]:%d", s.User, s.Port)
	cmdEnd := fmt.Sprintf("sesame pin '%s' KEY", target)

	if out, err := w.ssh(a, s, nil, "true"); err == nil {
		t.Fatalf("first login got in with k1 or k2: %s", out)
	}
	out := waitFor(t, func() string { return w.mustRun(a.env, "sesame", "pins") }, "2 keys offered without success")
	for _, want := range []string{"from the running agent", target, cmdEnd} {
		if !strings.Contains(out, want) {
			t.Errorf("sesame pins: missing %q in:\n%s", want, out)
		}
	}
	// doctor reads the state file, which the agent writes right after.
	waitFor(t, func() string {
		b, _ := os.ReadFile(filepath.Join(w.home, "sesame", "state", "rotation.json"))
		return string(b)
	}, w.fingerprint("k2"))
	cfg := filepath.Join(w.home, "ssh_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf("Host *\nUserKnownHostsFile %s\nGlobalKnownHostsFile /dev/null\nBatchMode yes\nUser %s\nIdentityFile /dev/null\nGSSAPIAuthentication no\n", w.knownHosts, s.User)), 0o600)
	out = w.mustRun(a.env, "sesame", "doctor", "-F", cfg, "-p", fmt.Sprint(s.Port), "localhost")
	for _, want := range []string{"the server accepted none of the 2 keys offered so far", "next: " + w.fingerprint("k3"), cmdEnd} {
		if !strings.Contains(out, want) {
			t.Errorf("sesame doctor: missing %q in:\n%s", want, out)
		}
	}

	if n := w.login(a, s); n != 0 {
		t.Errorf("second login: %d rejected keys, want 0 (k3 alone)", n)
	}
	out = waitFor(t, func() string { return w.mustRun(a.env, "sesame", "pins") }, w.fingerprint("k3")+"  last used")
	if strings.Contains(out, "looking for the key") {
		t.Errorf("search still shown after the key was found:\n%s", out)
	}

	// A server that takes no key: one round, then nothing.
	for i := 0; i < 3; i++ {
		w.ssh(a, s2, nil, "true")
	}
	if n := s2.FailedPublickey(); n != 3 {
		t.Errorf("%d keys offered to a server that takes none, want 3 (one round)", n)
	}
	out = w.mustRun(a.env, "sesame", "doctor", "-F", cfg, "-p", fmt.Sprint(s2.Port), "localhost")
	target2 := fmt.Sprintf("%s@[localhost]:%d", s.User, s2.Port)
	for _, want := range []string{"accepted none of the 3 keys", "no key is offered any more", fmt.Sprintf("sesame unpin '%s'", target2)} {
		if !strings.Contains(out, want) {
			t.Errorf("sesame doctor for a server without keys: missing %q in:\n%s", want, out)
		}
	}
	out = w.mustRun(a.env, "sesame", "unpin", fmt.Sprintf("[localhost]:%d", s2.Port))
	if !strings.Contains(out, "forgot the keys tried on "+target2) {
		t.Errorf("unpin: %s", out)
	}
	out = waitFor(t, func() string { return w.mustRun(a.env, "sesame", "pins") }, "")
	if strings.Contains(out, target2) {
		t.Errorf("rotation kept after unpin:\n%s", out)
	}
}

// waitFor calls f until its output contains want (the agent sees a
// connection end a moment after ssh exits), for at most a few seconds.
func waitFor(t *testing.T, f func() string, want string) string {
	t.Helper()
	var out string
	for i := 0; i < 50; i++ {
		if out = f(); strings.Contains(out, want) {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("never saw %q in:\n%s", want, out)
	return out
}
