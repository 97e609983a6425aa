package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
	"github.com/sesame-ssh/sesame/krb"
)

// These tests run the built sesame binary next to MIT's kinit, klist,
// kvno, krenew and OpenSSH against a real KDC and sshd.

const krbTestPassword = "Sesame-test-pw-1"

// krbEnv is one realm, one user, one cache file, and the environment that
// points sesame and the MIT tools at them.
type krbEnv struct {
	t     *testing.T
	kdc   *testbed.KDC
	cache string // path of the FILE cache
	env   []string
	bin   string
}

func newKrbEnv(t *testing.T, user string) *krbEnv {
	t.Helper()
	bin := sesameBin(t)
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	kdc.AddPrincipal(user, krbTestPassword)
	// Realms that care about lockouts require pre-authentication.
	kdc.Kadmin("modprinc +requires_preauth " + user)
	dir := t.TempDir()
	e := &krbEnv{t: t, kdc: kdc, cache: filepath.Join(dir, "krb5cc"), bin: bin}
	e.env = append(os.Environ(), kdc.Env()...)
	e.env = append(e.env, "KRB5CCNAME=FILE:"+e.cache, "SESAME_HOME="+filepath.Join(dir, "sesame"), "TZ=UTC")
	return e
}

type result struct {
	out, err string
	code     int
}

// run executes name (a full path or a program on PATH) with stdin.
func (e *krbEnv) run(stdin, name string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = e.env
	cmd.Stdin = strings.NewReader(stdin)
	var o, er bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &er
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %s: %v", name, err)
	}
	return result{o.String(), er.String(), code}
}

func (e *krbEnv) sesame(stdin string, args ...string) result {
	e.t.Helper()
	return e.run(stdin, e.bin, args...)
}

func (e *krbEnv) mit(stdin, name string, args ...string) result {
	e.t.Helper()
	return e.run(stdin, testbed.Path(e.t, name), args...)
}

func (e *krbEnv) must(r result, what string) result {
	e.t.Helper()
	if r.code != 0 {
		e.t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, r.code, r.out, r.err)
	}
	return r
}

var klistLine = regexp.MustCompile(`(?m)^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)  (\d\d/\d\d/\d\d \d\d:\d\d:\d\d)  (\S+)\n(?:\trenew until (\d\d/\d\d/\d\d \d\d:\d\d:\d\d))?(?:, )?(?:\t?Flags: (\w+))?`)

// tgtTimes parses MIT klist -f output for the TGT line.
func tgtTimes(t *testing.T, out, realm string) (start, end, renew time.Time, flags string) {
	t.Helper()
	for _, m := range klistLine.FindAllStringSubmatch(out, -1) {
		if m[3] != "krbtgt/"+realm+"@"+realm {
			continue
		}
		p := func(s string) time.Time {
			if s == "" {
				return time.Time{}
			}
			v, err := time.ParseInLocation("01/02/06 15:04:05", s, time.UTC)
			if err != nil {
				t.Fatalf("parse %q: %v", s, err)
			}
			return v
		}
		return p(m[1]), p(m[2]), p(m[4]), m[5]
	}
	t.Fatalf("no TGT line in klist output:\n%s", out)
	return
}

// Issue test 1: sesame's cache is what MIT tools and OpenSSH expect.
func TestKinitPasswordMITToolsAndSSH(t *testing.T) {
	e := newKrbEnv(t, "alice")
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: e.kdc})
	user := sshd.User
	e.kdc.AddPrincipal(user, krbTestPassword)

	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-f", "-r", "3d", user), "sesame kinit")
	fi, err := os.Stat(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", fi.Mode().Perm())
	}

	r := e.must(e.mit("", "klist", "-f"), "MIT klist -f")
	start, _, renew, flags := tgtTimes(t, r.out, e.kdc.Realm)
	if !strings.Contains(flags, "F") || !strings.Contains(flags, "R") {
		t.Errorf("MIT klist flags %q lack F or R:\n%s", flags, r.out)
	}
	if d := renew.Sub(start); d < 71*time.Hour || d > 72*time.Hour {
		t.Errorf("renew until is %v after start, want about 3 days (not 48h):\n%s", d, r.out)
	}
	if !strings.Contains(r.out, "Default principal: "+user+"@"+e.kdc.Realm) {
		t.Errorf("MIT klist default principal:\n%s", r.out)
	}

	e.must(e.mit("", "kvno", "host/localhost"), "MIT kvno host/localhost")
	// sesame klist shows sesame's cache (with MIT's service ticket added)
	// exactly as MIT klist does.
	for _, args := range [][]string{nil, {"-f", "-e"}} {
		want := e.must(e.mit("", "klist", args...), "MIT klist").out
		got := e.must(e.sesame("", append([]string{"klist"}, args...)...), "sesame klist").out
		if got != want {
			t.Errorf("sesame klist %v differs from MIT klist:\n--- MIT\n%s--- sesame\n%s", args, want, got)
		}
	}

	ssh := testbed.Path(t, "ssh")
	r = e.run("", ssh, append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no"), "echo", "gssapi-ok")...)
	if r.code != 0 || !strings.Contains(r.out, "gssapi-ok") {
		b, _ := os.ReadFile(sshd.Log)
		t.Fatalf("ssh with GSSAPI: exit %d\n%s%s\nsshd log:\n%s", r.code, r.out, r.err, b)
	}
	// Delegation: the remote shell gets a forwarded TGT.
	r = e.run("", ssh, append(sshd.SSHArgs("GSSAPIAuthentication=yes", "GSSAPIDelegateCredentials=yes", "PubkeyAuthentication=no"), "klist")...)
	if r.code != 0 || !strings.Contains(r.out, "krbtgt/"+e.kdc.Realm+"@"+e.kdc.Realm) {
		t.Fatalf("remote klist after delegation: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

// Issue test 2, first half: a cache written by MIT kinit is listed by
// sesame klist exactly as MIT klist lists it, and renewed by sesame kinit -R.
func TestMITCacheListedAndRenewedBySesame(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.kdc.AddPrincipal("host/localhost", "")
	e.must(e.mit(krbTestPassword+"\n", "kinit", "-f", "-r", "2d", "alice"), "MIT kinit")
	e.must(e.mit("", "kvno", "host/localhost"), "MIT kvno")
	for _, args := range [][]string{nil, {"-f"}, {"-e"}, {"-f", "-e"}} {
		want := e.must(e.mit("", "klist", args...), "MIT klist").out
		got := e.must(e.sesame("", append([]string{"klist"}, args...)...), "sesame klist").out
		if got != want {
			t.Errorf("sesame klist %v differs from MIT klist:\n--- MIT\n%s--- sesame\n%s", args, want, got)
		}
	}
	// JSON lists the same tickets, config entries hidden.
	var js struct {
		DefaultPrincipal string `json:"default_principal"`
		Tickets          []struct {
			Server string `json:"server"`
			Flags  string `json:"flags"`
		} `json:"tickets"`
	}
	r := e.must(e.sesame("", "klist", "--json"), "sesame klist --json")
	if err := json.Unmarshal([]byte(r.out), &js); err != nil {
		t.Fatalf("klist --json: %v\n%s", err, r.out)
	}
	if js.DefaultPrincipal != "alice@"+e.kdc.Realm || len(js.Tickets) != 2 || js.Tickets[0].Server != "krbtgt/"+e.kdc.Realm+"@"+e.kdc.Realm {
		t.Errorf("klist --json: %+v", js)
	}

	before, _ := krb.ReadCCache(e.cache)
	oldTGT, _ := before.TGT()
	time.Sleep(1100 * time.Millisecond) // ticket times have whole seconds
	e.must(e.sesame("", "kinit", "-R"), "sesame kinit -R")
	after, err := krb.ReadCCache(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	newTGT, ok := after.TGT()
	if !ok || !newTGT.StartTime.After(oldTGT.StartTime) || !newTGT.RenewTill.Equal(oldTGT.RenewTill) {
		t.Fatalf("renewal: old %v–%v (renew %v), new %+v", oldTGT.StartTime, oldTGT.EndTime, oldTGT.RenewTill, newTGT)
	}
	// The service ticket and MIT's config entries survive the rewrite.
	if len(after.Credentials) != len(before.Credentials) {
		t.Errorf("renewal changed the number of entries from %d to %d", len(before.Credentials), len(after.Credentials))
	}
	// And MIT still uses the renewed cache.
	r = e.must(e.mit("", "klist", "-f"), "MIT klist after sesame renewal")
	if _, _, _, fl := tgtTimes(t, r.out, e.kdc.Realm); !strings.Contains(fl, "R") {
		t.Errorf("flags after renewal %q", fl)
	}
	e.kdc.AddPrincipal("HTTP/localhost", "")
	e.must(e.mit("", "kvno", "HTTP/localhost"), "MIT kvno with the renewed TGT")
}

// Issue test 2, second half: MIT kinit -R and krenew renew sesame's cache.
func TestSesameCacheRenewedByMIT(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-r", "3d", "alice"), "sesame kinit")
	before, err := krb.ReadCCache(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := before.TGT()
	time.Sleep(1100 * time.Millisecond)
	e.must(e.mit("", "kinit", "-R"), "MIT kinit -R")
	mid, err := krb.ReadCCache(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	renewed, _ := mid.TGT()
	if !renewed.StartTime.After(old.StartTime) || !renewed.RenewTill.Equal(old.RenewTill) {
		t.Errorf("MIT kinit -R: start %v → %v, renew-till %v → %v", old.StartTime, renewed.StartTime, old.RenewTill, renewed.RenewTill)
	}
	time.Sleep(1100 * time.Millisecond)
	// krenew without a command renews once and exits.
	e.must(e.run("", testbed.Path(t, "krenew")), "krenew")
	last, err := krb.ReadCCache(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := last.TGT()
	if !k.StartTime.After(renewed.StartTime) {
		t.Errorf("krenew did not renew: start %v → %v", renewed.StartTime, k.StartTime)
	}
	// And sesame renews what krenew wrote.
	time.Sleep(1100 * time.Millisecond)
	e.must(e.sesame("", "kinit", "-R"), "sesame kinit -R after krenew")

	// An expired TGT is refused before anything is sent. (The KDC would
	// refuse it too; here only the cache's copy of the times is moved.)
	cc, err := krb.ReadCCache(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cc.Credentials {
		cc.Credentials[i].EndTime = time.Now().Add(-time.Minute).Truncate(time.Second)
	}
	if err := krb.WriteCCache(e.cache, cc); err != nil {
		t.Fatal(err)
	}
	n := e.kdc.LogCount("TGS_REQ")
	r := e.sesame("", "kinit", "-R")
	if r.code != 1 || !strings.Contains(r.err, "expired") || !strings.Contains(r.err, "hint: ") {
		t.Errorf("kinit -R of an expired TGT: exit %d, %q", r.code, r.err)
	}
	if got := e.kdc.LogCount("TGS_REQ") - n; got != 0 {
		t.Errorf("%d TGS requests sent for an expired TGT", got)
	}
}

// Issue test 3: keytab login with a lifetime.
func TestKinitKeytabLifetime(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.kdc.AddPrincipal("svc/batch", "")
	e.kdc.Kadmin("modprinc +requires_preauth svc/batch")
	kt := e.kdc.Keytab("svc/batch")
	e.must(e.sesame("", "kinit", "-k", "-t", kt, "-l", "5m", "svc/batch"), "sesame kinit -k")
	r := e.must(e.mit("", "klist"), "MIT klist")
	start, end, _, _ := tgtTimes(t, r.out, e.kdc.Realm)
	if d := end.Sub(start); d != 5*time.Minute {
		t.Errorf("lifetime %v, want 5m:\n%s", d, r.out)
	}
	if !strings.Contains(r.out, "Default principal: svc/batch@"+e.kdc.Realm) {
		t.Errorf("principal:\n%s", r.out)
	}
	// The default keytab comes from KRB5_CLIENT_KTNAME.
	e.env = append(e.env, "KRB5_CLIENT_KTNAME=FILE:"+kt)
	e.must(e.sesame("", "kinit", "-k", "-l", "1h", "svc/batch"), "sesame kinit -k with KRB5_CLIENT_KTNAME")
	e.must(e.sesame("", "kinit", "-i", "-l", "1h", "svc/batch"), "sesame kinit -i with KRB5_CLIENT_KTNAME")
	// A non-renewable ticket: kinit -R fails with one clear line, cache intact.
	before, _ := os.ReadFile(e.cache)
	r = e.sesame("", "kinit", "-R")
	if r.code != 1 || !strings.Contains(r.err, "not renewable") || strings.Count(r.err, "\n") > 2 {
		t.Errorf("kinit -R of a non-renewable ticket: exit %d, stderr %q", r.code, r.err)
	}
	if after, _ := os.ReadFile(e.cache); !bytes.Equal(before, after) {
		t.Errorf("failed renewal changed the cache")
	}
}

// Issue test 4: klist -s exit codes match MIT's; kdestroy leaves nothing.
func TestKlistSilentAndKdestroy(t *testing.T) {
	e := newKrbEnv(t, "alice")
	check := func(state string) {
		t.Helper()
		m := e.mit("", "klist", "-s")
		s := e.sesame("", "klist", "-s")
		if m.code != s.code || s.out != "" || s.err != "" {
			t.Errorf("%s: MIT klist -s exit %d, sesame exit %d (stdout %q stderr %q)", state, m.code, s.code, s.out, s.err)
		}
	}
	check("missing")
	if m := e.mit("", "klist", "-s"); m.code == 0 {
		t.Fatalf("MIT klist -s succeeds without a cache")
	}
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "alice"), "sesame kinit")
	check("valid")
	if s := e.sesame("", "klist", "-s"); s.code != 0 {
		t.Errorf("valid cache: exit %d", s.code)
	}
	cc, err := krb.ReadCCache(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cc.Credentials {
		cc.Credentials[i].StartTime = time.Now().Add(-2 * time.Hour).Truncate(time.Second)
		cc.Credentials[i].EndTime = time.Now().Add(-time.Hour).Truncate(time.Second)
	}
	if err := krb.WriteCCache(e.cache, cc); err != nil {
		t.Fatal(err)
	}
	check("expired")
	if err := os.WriteFile(e.cache, []byte("\x05\x04garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("garbage")
	r := e.sesame("", "klist")
	if r.code != 1 || !strings.HasPrefix(r.err, "sesame: ") {
		t.Errorf("klist of garbage: exit %d, %q", r.code, r.err)
	}

	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "alice"), "sesame kinit")
	// Keep the file open to see what kdestroy leaves in it: zeros.
	f, err := os.Open(e.cache)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.must(e.sesame("", "kdestroy"), "sesame kdestroy")
	if _, err := os.Lstat(e.cache); !os.IsNotExist(err) {
		t.Errorf("cache still there after kdestroy: %v", err)
	}
	if b, err := io.ReadAll(f); err != nil || len(b) == 0 || len(bytes.Trim(b, "\x00")) != 0 {
		t.Errorf("kdestroy did not overwrite the cache with zeros (%d bytes, %v)", len(b), err)
	}
	check("destroyed")
	// As MIT kdestroy: reported, but no failure.
	if r := e.sesame("", "kdestroy"); r.code != 0 || !strings.Contains(r.err, "no credentials cache") {
		t.Errorf("kdestroy without cache: exit %d, %q", r.code, r.err)
	}

	// DIR collection: kinit writes the primary cache, kdestroy removes it.
	dir := filepath.Join(t.TempDir(), "cc")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", "DIR:"+dir, "alice"), "sesame kinit DIR")
	e.env = append(e.env, "KRB5CCNAME=DIR:"+dir)
	e.must(e.mit("", "klist", "-s"), "MIT klist -s on DIR cache")
	e.must(e.sesame("", "kdestroy", "-c", "DIR:"+dir), "sesame kdestroy DIR")
	if _, err := os.Stat(filepath.Join(dir, "tkt")); !os.IsNotExist(err) {
		t.Errorf("primary cache of DIR collection still there: %v", err)
	}
}

// Issue test 5 and bad input: a wrong password is sent once, fails with
// one line and a hint, and loses nothing.
func TestKinitWrongPasswordOnceNothingLost(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "alice"), "sesame kinit")
	before, _ := os.ReadFile(e.cache)
	n0 := e.kdc.LogCount("PREAUTH_FAILED")
	r := e.sesame("not-the-password\n", "kinit", "--password-stdin", "alice")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	lines := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "sesame: password incorrect for alice@") || !strings.HasPrefix(lines[1], "sesame: hint: ") {
		t.Errorf("stderr %q", r.err)
	}
	if n := e.kdc.LogCount("PREAUTH_FAILED") - n0; n != 1 {
		t.Errorf("%d failed pre-authentications at the KDC, want exactly 1", n)
	}
	if after, _ := os.ReadFile(e.cache); !bytes.Equal(before, after) {
		t.Errorf("a failed kinit changed the existing cache")
	}

	// Unknown principal.
	r = e.sesame("x\n", "kinit", "--password-stdin", "nobody")
	if r.code != 1 || !strings.Contains(r.err, "nobody@"+e.kdc.Realm+" not found") {
		t.Errorf("unknown principal: exit %d, %q", r.code, r.err)
	}
	// Unwritable location: one line, exit 1.
	r = e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", filepath.Join(e.cache, "sub", "cc"), "alice")
	if r.code != 1 || strings.Count(r.err, "\n") > 2 || !strings.HasPrefix(r.err, "sesame: ") {
		t.Errorf("unwritable cache: exit %d, %q", r.code, r.err)
	}
	// Bad durations and flags: a usage error, exit 2 as MIT kinit.
	for _, args := range [][]string{{"-l", "soon"}, {"-r", "-5h"}, {"-f", "-F"}} {
		r = e.sesame(krbTestPassword+"\n", append([]string{"kinit", "--password-stdin"}, append(args, "alice")...)...)
		if r.code != 2 || strings.Count(r.err, "\n") != 2 || !strings.Contains(r.err, "sesame: hint: usage: sesame kinit") {
			t.Errorf("kinit %v: exit %d, %q", args, r.code, r.err)
		}
	}
	if after, _ := os.ReadFile(e.cache); !bytes.Equal(before, after) {
		t.Errorf("failed commands changed the existing cache")
	}
	// No terminal and no --password-stdin: a clear error, nothing sent.
	n1 := e.kdc.LogCount("AS_REQ")
	cmd := exec.Command(e.bin, "kinit", "alice")
	cmd.Env = e.env
	cmd.SysProcAttr = noCTTY()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no terminal") {
		t.Errorf("kinit without a terminal: %v %q", err, out)
	}
	if n := e.kdc.LogCount("AS_REQ") - n1; n != 0 {
		t.Errorf("%d requests sent without a password", n)
	}
	// Unreachable KDC: the error names it.
	e.kdc.Stop()
	r = e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "alice")
	if r.code != 1 || !strings.Contains(r.err, e.kdc.Addr()) {
		t.Errorf("KDC down: exit %d, %q", r.code, r.err)
	}
}

// noCTTY starts a process in a new session, without a controlling
// terminal, so that /dev/tty cannot be opened.
func noCTTY() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// The password prompt goes to the terminal and the password is not echoed.
// util-linux script(1) provides the terminal.
func TestKinitPasswordFromTerminal(t *testing.T) {
	e := newKrbEnv(t, "alice")
	script := testbed.Path(t, "script")
	// script passes its standard input to the terminal it creates. Echo
	// is off before the prompt appears, so the password is sent after it.
	cmd := exec.Command(script, "-qec", e.bin+" kinit alice", "/dev/null")
	cmd.Env = e.env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out testbed.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Password for alice@") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stdin.Write([]byte(krbTestPassword + "\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kinit on a terminal: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Password for alice@"+e.kdc.Realm+": ") {
		t.Errorf("no prompt on the terminal: %q", out.String())
	}
	if strings.Contains(out.String(), krbTestPassword) {
		t.Errorf("password echoed: %q", out.String())
	}
	e.must(e.mit("", "klist", "-s"), "MIT klist -s after terminal kinit")
}

// A cache in a directory nobody may write to (immutable, which stops root
// too): kinit fails with one line and the old cache stays as it was.
func TestKinitUnwritableLocationKeepsOldCache(t *testing.T) {
	e := newKrbEnv(t, "alice")
	dir := t.TempDir()
	cache := filepath.Join(dir, "cc")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", cache, "alice"), "sesame kinit")
	before, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("chattr not available")
	}
	if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("file system cannot make %s immutable: %v %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command(chattr, "-i", dir).Run() })
	r := e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-r", "1d", "-c", cache, "alice")
	if r.code != 1 || strings.Count(r.err, "\n") > 2 || !strings.HasPrefix(r.err, "sesame: ") {
		t.Errorf("kinit into an immutable directory: exit %d, %q", r.code, r.err)
	}
	if after, err := os.ReadFile(cache); err != nil || !bytes.Equal(before, after) {
		t.Errorf("old cache changed or lost: %v", err)
	}
	e.must(e.mit("", "klist", "-s", "-c", cache), "MIT klist -s on the old cache")
}

// With a DIR collection as the default cache, kinit keeps one cache per
// principal and makes the one it writes the primary, as MIT kinit does.
func TestKinitDIRCollection(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.kdc.AddPrincipal("bob", krbTestPassword)
	dir := filepath.Join(t.TempDir(), "krb5cc")
	e.env = append(e.env, "KRB5CCNAME=DIR:"+dir)
	kinit := func(who string) {
		t.Helper()
		e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", who), "sesame kinit "+who)
		r := e.must(e.mit("", "klist"), "MIT klist")
		if !strings.Contains(r.out, "Default principal: "+who+"@") {
			t.Errorf("after kinit %s the primary cache is:\n%s", who, r.out)
		}
	}
	kinit("alice")
	kinit("bob")
	kinit("alice")
	r := e.must(e.mit("", "klist", "-l"), "MIT klist -l")
	if !strings.Contains(r.out, "alice@") || !strings.Contains(r.out, "bob@") || strings.Count(r.out, "DIR::") != 2 {
		t.Errorf("collection should hold one cache each for alice and bob:\n%s", r.out)
	}
	e.must(e.sesame("", "kdestroy"), "sesame kdestroy")
	if r := e.mit("", "klist", "-l"); strings.Contains(r.out, "alice@") || !strings.Contains(r.out, "bob@") {
		t.Errorf("kdestroy should remove only the primary (alice's) cache:\n%s%s", r.out, r.err)
	}
	e.must(e.sesame("", "kdestroy", "-A"), "sesame kdestroy -A")
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), "tkt") {
			t.Errorf("kdestroy -A left %s", ent.Name())
		}
	}
}

// Issue 16: a FIFO at the cache path (the default /tmp/krb5cc_UID is
// predictable) never hangs a command; kinit fails with a reason, as
// neither blocking nor writing through it is safe.
func TestKerberosFIFOAtCachePath(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "fifi")
	if err := syscall.Mkfifo(e.cache, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"kinit", "--password-stdin", "fifi"},
		{"kinit", "-R"},
		{"klist"},
		{"renew"},
	} {
		start := time.Now()
		r := e.sesame(krbTestPassword+"\n", args...)
		if r.code == 0 {
			t.Errorf("sesame %v succeeded on a FIFO", args)
		}
		if !strings.Contains(r.err, "regular file") {
			t.Errorf("sesame %v does not say why: %q", args, r.err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("sesame %v took %v", args, d)
		}
	}
	if fi, err := os.Lstat(e.cache); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced by something else: %v %v", fi, err)
	}
}

// Issue 16: SIGTERM ends a sesame command within a second (generously:
// three), whatever it waits on — here a KDC that does not answer.
func TestKerberosSIGTERMEndsCommands(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "sigrid")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "20s", "-r", "10m", "sigrid"), "kinit")
	e.kdc.Pause()
	defer e.kdc.Resume()
	for _, args := range [][]string{
		{"kinit", "--password-stdin", "sigrid"},
		{"kinit", "-R"},
		{"renew"},
	} {
		cmd := exec.Command(e.bin, args...)
		cmd.Env = e.env
		cmd.Stdin = strings.NewReader(krbTestPassword + "\n")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // now waiting for the paused KDC
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("sesame %v still running 3 s after SIGTERM", args)
		}
	}
}
