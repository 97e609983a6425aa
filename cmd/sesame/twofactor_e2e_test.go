package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// Two-factor servers: doctor sees keyboard-interactive and suggests
// `sesame pin --2fa`; the ssh-config block it then gets is accepted by
// ssh -G, and a second connection rides on the first one's master (the
// server authenticates once).
func TestE2E2FA(t *testing.T) {
	w := newE2EWorld(t)
	s := w.serverWith(testbed.SSHDOptions{MaxAuthTries: 3, KbdInteractive: true})
	w.key("k1")
	w.authorize(s, "k1")
	a := w.sesameAgent([]string{"k1"})
	cfgBase := fmt.Sprintf("Host *\n    UserKnownHostsFile %s\n    GlobalKnownHostsFile /dev/null\n    BatchMode yes\n    User %s\n    GSSAPIAuthentication no\n", w.knownHosts, s.User)
	base := filepath.Join(w.home, "ssh_base")
	os.WriteFile(base, []byte(cfgBase), 0o600)
	port := fmt.Sprint(s.Port)
	target := fmt.Sprintf("%s@[localhost]:%d", s.User, s.Port)

	out := w.mustRun(a.env, "sesame", "doctor", "-F", base, "-p", port, "localhost")
	for _, want := range []string{"the server offers publickey,keyboard-interactive", "sesame pin --2fa '" + target + "'"} {
		if !strings.Contains(strings.ReplaceAll(out, ", ", ","), want) {
			t.Errorf("doctor: missing %q in:\n%s", want, out)
		}
	}
	out = w.mustRun(a.env, "sesame", "pin", "--2fa", fmt.Sprintf("[localhost]:%d", s.Port), w.keys["k1"]+".pub")
	if !strings.Contains(out, "with the 2fa flag") {
		t.Errorf("pin --2fa: %s", out)
	}
	out = w.mustRun(a.env, "sesame", "doctor", "-F", base, "-p", port, "localhost")
	if strings.Contains(out, "--2fa") {
		t.Errorf("doctor still suggests --2fa after the pin:\n%s", out)
	}

	conf := w.mustRun(a.env, "sesame", "ssh-config")
	runDir := filepath.Join(w.home, "sesame", "run")
	for _, want := range []string{"    ControlMaster auto\n", "    ControlPath " + runDir + "/cm-%C\n", "    ControlPersist 8h\n", "    IdentitiesOnly yes\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("ssh-config: missing %q in:\n%s", want, conf)
		}
	}
	cf := filepath.Join(w.home, "ssh_config")
	os.WriteFile(cf, []byte(conf+"\n"+cfgBase), 0o600)
	g := w.mustRun(nil, "ssh", "-G", "-F", cf, "-p", port, "localhost")
	for _, want := range []string{"controlmaster auto\n", "controlpath " + runDir + "/cm-", "controlpersist 28800\n"} {
		if !strings.Contains(g, want) {
			t.Errorf("ssh -G: missing %q in:\n%s", want, g)
		}
	}
	ssh := func(cmd ...string) string {
		return w.mustRun(a.env, "ssh", append([]string{"-F", cf, "-p", port, "localhost"}, cmd...)...)
	}
	t.Cleanup(func() { w.run(a.env, "ssh", "-F", cf, "-p", port, "-O", "exit", "localhost") })
	if out := ssh("echo", "first"); !strings.Contains(out, "first") {
		t.Fatalf("first: %s", out)
	}
	if out := ssh("echo", "second"); !strings.Contains(out, "second") {
		t.Fatalf("second: %s", out)
	}
	if n := s.Accepted(s.User); n != 1 {
		t.Errorf("the server authenticated %d times, want 1 (the second session shares the first's connection)", n)
	}
}
