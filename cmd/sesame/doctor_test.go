package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/doctor"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// sesame doctor against the test bed: what it says about the ticket, the
// agent and the keys matches what ssh then does.
func TestDoctorTestbed(t *testing.T) {
	w := newE2EWorld(t)
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	s := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: kdc, MaxAuthTries: 3})
	kh, _ := os.ReadFile(s.KnownHosts)
	os.WriteFile(w.knownHosts, kh, 0o600)
	kdc.AddPrincipal(s.User, "pw-for-tests")
	cc := filepath.Join(w.home, "krb5cc")
	w.env = append(w.env, kdc.Env()...)
	w.env = append(w.env, "KRB5CCNAME=FILE:"+cc)
	for _, n := range []string{"k1", "k2", "k3"} {
		w.key(n)
	}
	w.authorize(s, "k3")
	a := w.sesameAgent([]string{"k1", "k2", "k3"}, "--max-offer=1")
	w.mustRun(nil, "sesame", "pin", hostPort(s), w.keys["k3"]+".pub")

	cfgNo := filepath.Join(w.home, "ssh_config_no")
	cfgYes := filepath.Join(w.home, "ssh_config_yes")
	common := fmt.Sprintf("UserKnownHostsFile %s\nGlobalKnownHostsFile /dev/null\nBatchMode yes\nUser %s\nIdentityFile /dev/null\n", w.knownHosts, s.User)
	os.WriteFile(cfgNo, []byte("Host *\n"+common+"GSSAPIAuthentication no\n"), 0o600)
	os.WriteFile(cfgYes, []byte("Host *\n"+common+"GSSAPIAuthentication yes\n"), 0o600)
	port := fmt.Sprint(s.Port)

	// No ticket yet; keys and pins explained.
	out := w.mustRun(a.env, "sesame", "doctor", "-F", cfgNo, "-p", port, "localhost")
	for _, want := range []string{
		"What happens on ssh [localhost]:" + port,
		"no ticket",
		"get a Kerberos ticket: sesame kinit",
		a.sock + ": sesame (pid",
		"3 keys loaded; a server without pins is offered at most 1",
		"declared pins apply: only their keys are offered",
		"1. " + w.fingerprint("k3") + " k3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor without a ticket: missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, w.fingerprint("k1")) {
		t.Errorf("doctor says an unpinned key is offered to a pinned host:\n%s", out)
	}

	// sesame ssh-config: no ticket, no GSSAPI line.
	conf := w.mustRun(a.env, "sesame", "ssh-config")
	if !strings.Contains(conf, "Host localhost\n") || strings.Contains(conf, "GSSAPIAuthentication") {
		t.Errorf("ssh-config without a ticket:\n%s", conf)
	}

	kinit := exec.Command(testbed.Path(t, "kinit"), "-r", "2d", s.User)
	kinit.Env = w.env
	kinit.Stdin = strings.NewReader("pw-for-tests\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	conf = w.mustRun(a.env, "sesame", "ssh-config")
	if !strings.Contains(conf, "Host localhost\n    IdentityFile ") || !strings.Contains(conf, "    GSSAPIAuthentication yes\n") {
		t.Errorf("ssh-config with a ticket for the host's realm:\n%s", conf)
	}

	// A ticket, but ssh's config does not use it.
	out = w.mustRun(a.env, "sesame", "doctor", "-F", cfgNo, "-p", port, "localhost")
	for _, want := range []string{
		s.User + "@" + kdc.Realm + " in FILE:" + cc,
		"ticket valid until",
		"renewable until",
		"realm of localhost: " + kdc.Realm + " (from [domain_realm])",
		"GSSAPIAuthentication no: Kerberos is not tried",
		"=> ssh would not use Kerberos",
		`add "GSSAPIAuthentication yes" under "Host localhost" in ~/.ssh/config`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor with GSSAPI off: missing %q in:\n%s", want, out)
		}
	}

	// With GSSAPI on, doctor says Kerberos will be used, and it is.
	out = w.mustRun(a.env, "sesame", "doctor", "-F", cfgYes, "-p", port, "localhost")
	if !strings.Contains(out, "=> ssh would log in with the Kerberos ticket (GSSAPI)") {
		t.Errorf("doctor with GSSAPI on:\n%s", out)
	}
	login, err := w.run(a.env, "ssh", "-F", cfgYes, "-p", port, "-o", "PubkeyAuthentication=no", "localhost", "echo", "gssapi-login")
	if err != nil || !strings.Contains(login, "gssapi-login") {
		t.Fatalf("GSSAPI login that doctor promised: %v\n%s", err, login)
	}

	// JSON carries the same findings.
	js := w.mustRun(a.env, "sesame", "doctor", "--json", "-F", cfgYes, "-p", port, "localhost")
	var r doctor.Report
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, js)
	}
	if !r.Kerberos.WouldUse || r.Kerberos.HostRealm != kdc.Realm || !r.Agent.Sesame || r.Agent.MaxOffer != 1 ||
		len(r.Offer) != 1 || len(r.Offer[0].Offered) != 1 || r.Offer[0].Offered[0].Fingerprint != w.fingerprint("k3") {
		t.Errorf("doctor --json:\n%s", js)
	}

	// An unpinned host that known_hosts does not list, and OpenSSH's agent.
	oa := w.opensshAgent([]string{"k1", "k2", "k3"})
	out = w.mustRun(oa.env, "sesame", "doctor", "-F", cfgYes, "-p", "2", "elsewhere.example.org")
	for _, want := range []string{
		"another agent (pid",
		"ssh-agent), which offers every key to every server",
		"is not in known_hosts",
		"no pin and the agent holds 3 keys, of which it offers 2",
		"1. " + w.fingerprint("k1") + " k1",
		"2. " + w.fingerprint("k2") + " k2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor with ssh-agent: missing %q in:\n%s", want, out)
		}
	}

	if strings.Contains(out, w.fingerprint("k3")+" k3") {
		t.Errorf("doctor offers a key pinned elsewhere to an unknown host:\n%s", out)
	}

	// General health: a broken pins line is reported with its number.
	pins := filepath.Join(w.home, "sesame", "config", "pins")
	b, _ := os.ReadFile(pins)
	os.WriteFile(pins, append(b, "oops\n"...), 0o600)
	badLine := fmt.Sprintf("line %d", strings.Count(string(b), "\n")+1)
	out = w.mustRun(a.env, "sesame", "doctor")
	if !strings.Contains(out, "sesame health check") || !strings.Contains(out, badLine) || !strings.Contains(out, "fix the pins file") {
		t.Errorf("doctor without a host, bad pins line:\n%s", out)
	}
}
