package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
	"github.com/sesame-ssh/sesame/krb"
)

// Issue 6: tickets that stay alive. These run against a real KDC with
// lifetimes of a minute or two, so each takes that long; they run in
// parallel with each other.

// startRenewer runs `sesame renew args…` in the background and returns a
// function that stops it and returns its output and exit code.
func (e *krbEnv) startRenewer(args ...string) (stop func() (string, int), done <-chan struct{}) {
	e.t.Helper()
	cmd := exec.Command(e.bin, append([]string{"renew", "--debug"}, args...)...)
	cmd.Env = e.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	ch := make(chan struct{})
	go func() { cmd.Wait(); close(ch) }()
	stopped := false
	stop = func() (string, int) {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-ch
			}
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}
	e.t.Cleanup(func() { stop() })
	return stop, ch
}

// tgt reads the cache's TGT directly.
func (e *krbEnv) tgt() *krb.Credential {
	e.t.Helper()
	cc, err := krb.ReadCCache(e.cache)
	if err != nil {
		e.t.Fatalf("read cache: %v", err)
	}
	tgt, ok := cc.TGT()
	if !ok {
		e.t.Fatal("no TGT in cache")
	}
	return tgt
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// Test 1: a one-minute renewable ticket stays valid past its original end
// while sesame renew runs, and a GSSAPI login works after that end.
func TestRenewKeepsShortTicketAlive(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "alice")
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: e.kdc})
	e.kdc.AddPrincipal(sshd.User, krbTestPassword)
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "1m", "-r", "10m", sshd.User), "kinit")
	orig := e.tgt().EndTime
	stop, _ := e.startRenewer()

	sleepUntil(orig.Add(5 * time.Second))
	if r := e.mit("", "klist", "-s"); r.code != 0 {
		out, _ := stop()
		t.Fatalf("ticket lapsed at its original end although sesame renew runs:\n%s", out)
	}
	if end := e.tgt().EndTime; !end.After(orig) {
		t.Fatalf("end time %v not extended past %v", end, orig)
	}
	r := e.run("", testbed.Path(t, "ssh"), append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no"), "echo", "still-in")...)
	if r.code != 0 || !strings.Contains(r.out, "still-in") {
		t.Fatalf("GSSAPI login after the original end time: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if out, code := stop(); code != 0 {
		t.Fatalf("sesame renew exited %d on SIGTERM:\n%s", code, out)
	}
}

// Test 2: past renew-till, a keytab gets a fresh ticket.
func TestRenewReacquiresFromKeytabPastRenewTill(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "svc")
	e.kdc.Kadmin("modprinc -requires_preauth svc")
	kt := e.kdc.Keytab("svc")
	e.must(e.sesame("", "kinit", "-k", "-t", kt, "-l", "20s", "-r", "30s", "svc"), "kinit -k")
	first := e.tgt()
	stop, _ := e.startRenewer("-k", "-t", kt)

	sleepUntil(first.RenewTill.Add(10 * time.Second))
	now := time.Now()
	got := e.tgt()
	if !got.AuthTime.After(first.AuthTime) {
		out, _ := stop()
		t.Fatalf("no fresh ticket after renew-till (auth time %v, first %v):\n%s", got.AuthTime, first.AuthTime, out)
	}
	if !got.EndTime.After(now) {
		t.Fatalf("ticket expired at %v", got.EndTime)
	}
	e.must(e.mit("", "klist", "-s"), "MIT klist -s after re-acquisition")
	stop()
}

// Test 3: a stored password that the KDC now rejects is tried exactly
// once; renewal stops and klist says why.
func TestRenewStoredPasswordRejectedOnce(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "bob")
	pass := filepath.Join(t.TempDir(), "vault-pass")
	os.WriteFile(pass, []byte("vault passphrase for tests\n"), 0o600)
	e.env = append(e.env, "SESAME_PASSPHRASE_FILE="+pass, "SESAME_BACKEND=vault")
	// Not renewable: the keeper must re-acquire at half-life.
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "--remember", "-l", "20s", "bob"), "kinit --remember")
	// The password changes (or the account's password expires) elsewhere.
	e.kdc.Kadmin("cpw -pw Another-pw-2 bob")
	before := e.kdc.LogCount("PREAUTH_FAILED")

	stop, done := e.startRenewer()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		out, _ := stop()
		t.Fatalf("sesame renew still running after a rejected password:\n%s", out)
	}
	out, code := stop()
	if code == 0 {
		t.Fatalf("sesame renew exited 0 after the KDC rejected the stored password:\n%s", out)
	}
	if n := e.kdc.LogCount("PREAUTH_FAILED") - before; n != 1 {
		b, _ := os.ReadFile(e.kdc.Log)
		t.Fatalf("%d pre-authentication failures at the KDC, want exactly 1\n%s", n, b)
	}
	r := e.sesame("", "klist", "--json")
	var j struct {
		Renewal *krb.KeeperState `json:"renewal"`
	}
	if err := json.Unmarshal([]byte(r.out), &j); err != nil || j.Renewal == nil || j.Renewal.Running || !strings.Contains(j.Renewal.Reason, "password") {
		t.Fatalf("klist --json does not say why renewal stopped: %v\n%s", err, r.out)
	}
	if r := e.sesame("", "klist"); !strings.Contains(r.out, "Renewal stopped") {
		t.Fatalf("klist does not say renewal stopped:\n%s", r.out)
	}
	if r := e.sesame("", "doctor"); !strings.Contains(r.out, "renewal STOPPED") {
		t.Fatalf("doctor does not say renewal stopped:\n%s%s", r.out, r.err)
	}
	// A new kinit clears the old reason.
	e.must(e.sesame("Another-pw-2\n", "kinit", "--password-stdin", "bob"), "kinit with the new password")
	if r := e.sesame("", "klist"); strings.Contains(r.out, "Renewal stopped") {
		t.Fatalf("stale renewal note after a new kinit:\n%s", r.out)
	}
}

// Test 4: the KDC is down for longer than a retry interval; renewal
// recovers once it is back, before the ticket ends.
func TestRenewRecoversAfterKDCOutage(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "carol")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "2m", "-r", "20m", "carol"), "kinit")
	first := e.tgt()
	// The keeper renews at half-life (60 s); be down from 50 s to 90 s.
	sleepUntil(first.StartTime.Add(50 * time.Second))
	e.kdc.Stop()
	stop, _ := e.startRenewer()
	sleepUntil(first.StartTime.Add(90 * time.Second))
	if got := e.tgt(); got.EndTime.After(first.EndTime) {
		t.Fatal("ticket renewed while the KDC was down?")
	}
	e.kdc.Start()
	sleepUntil(first.EndTime.Add(-5 * time.Second))
	got := e.tgt()
	if !got.EndTime.After(first.EndTime) {
		out, _ := stop()
		t.Fatalf("ticket not renewed after the KDC came back (end %v):\n%s", got.EndTime, out)
	}
	out, _ := stop()
	if !strings.Contains(out, "retry") {
		t.Errorf("no retry while the KDC was down? log:\n%s", out)
	}
}

// Test 5: sesame renew -- COMMAND keeps the command's own cache alive and
// returns its exit status.
func TestRenewAroundCommand(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "dave")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "1m", "-r", "10m", "dave"), "kinit")
	klist := testbed.Path(t, "klist")
	script := "sleep 75; " + klist + " -s || exit 99; echo cache=$KRB5CCNAME; exit 7"
	r := e.sesame("", "renew", "--", "sh", "-c", script)
	if r.code != 7 {
		t.Fatalf("exit %d, want the command's 7 (99 = ticket lapsed)\n%s%s", r.code, r.out, r.err)
	}
	// The command got a private cache, which is gone afterwards.
	private := strings.TrimPrefix(strings.TrimSpace(strings.SplitN(r.out, "cache=", 2)[1]), "FILE:")
	if private == e.cache {
		t.Fatal("the command used the user's cache, not a private copy")
	}
	if _, err := os.Stat(private); !os.IsNotExist(err) {
		t.Fatalf("private cache %s left behind", private)
	}
}

func TestRenewBadInput(t *testing.T) {
	e := newKrbEnv(t, "erin")
	if r := e.sesame("", "renew"); r.code == 0 || !strings.Contains(r.err, "sesame kinit") {
		t.Fatalf("renew without a cache: exit %d, %q", r.code, r.err)
	}
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "erin"), "kinit")
	if r := e.sesame("", "renew", "-k", "-t", "/nonexistent/keytab"); r.code == 0 || !strings.Contains(r.err, "keytab") {
		t.Fatalf("renew with a missing keytab: exit %d, %q", r.code, r.err)
	}
	if r := e.sesame("", "renew", "-b", "--", "true"); r.code == 0 {
		t.Fatal("-b with a command accepted")
	}
}

// A keytab that lacks the principal is a final failure: renewal stops at
// the first attempt and says why, instead of retrying in a loop.
func TestRenewKeytabWithoutPrincipalStops(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "frank")
	e.kdc.AddPrincipal("someone-else", "")
	kt := e.kdc.Keytab("someone-else")
	// Not renewable, so the keeper must re-acquire at half-life (10 s).
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "20s", "frank"), "kinit")
	stop, done := e.startRenewer("-k", "-t", kt)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		out, _ := stop()
		t.Fatalf("sesame renew still running with a keytab that lacks the principal:\n%s", out)
	}
	out, code := stop()
	if code == 0 || !strings.Contains(out, "keytab") {
		t.Fatalf("exit %d; want a failure that names the keytab:\n%s", code, out)
	}
	if n := strings.Count(out, "keeper plan"); n > 3 {
		t.Fatalf("the keeper planned %d times: it should stop at the first failure\n%s", n, out)
	}
	if r := e.sesame("", "klist"); !strings.Contains(r.out, "Renewal stopped") {
		t.Fatalf("klist does not say renewal stopped:\n%s", r.out)
	}
}

// lockoutPolicy puts princ under a lockout policy, so that the KDC counts
// failed authentications ("Failed password attempts").
func (e *krbEnv) lockoutPolicy(princ string) {
	e.kdc.Kadmin("addpol -maxfailure 10 -failurecountinterval 0 -lockoutduration 0 lockout")
	e.kdc.Kadmin("modprinc -policy lockout " + princ)
}

// renewUntilExit runs one `sesame renew args…` to its end and returns its
// output and exit status; it fails the test if it is still running after
// limit.
func (e *krbEnv) renewUntilExit(limit time.Duration, args ...string) (string, int) {
	e.t.Helper()
	stop, done := e.startRenewer(args...)
	select {
	case <-done:
	case <-time.After(limit):
		out, _ := stop()
		e.t.Fatalf("sesame renew still running after %v:\n%s", limit, out)
	}
	return stop()
}

// Issue 16: a stored password the KDC rejects costs exactly one failure,
// however many renewers start after it (one after another, as a login
// shell or a restarted unit would); a new kinit --remember clears it.
func TestRenewRejectedPasswordStaysRejectedAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "rita")
	e.lockoutPolicy("rita")
	pass := filepath.Join(t.TempDir(), "vault-pass")
	os.WriteFile(pass, []byte("vault passphrase for tests\n"), 0o600)
	e.env = append(e.env, "SESAME_PASSPHRASE_FILE="+pass, "SESAME_BACKEND=vault")
	// Not renewable: the keeper re-acquires at half-life (10 s).
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "--remember", "-l", "20s", "rita"), "kinit --remember")
	e.kdc.Kadmin("cpw -pw Another-pw-2 rita")
	if n := e.kdc.FailedAttempts("rita"); n != 0 {
		t.Fatalf("%d failures before the test", n)
	}
	for i := 1; i <= 4; i++ {
		out, code := e.renewUntilExit(90 * time.Second)
		if code != exitRenewStopped {
			t.Fatalf("renewer %d: exit %d, want %d (stopped for good):\n%s", i, code, exitRenewStopped, out)
		}
		if n := e.kdc.FailedAttempts("rita"); n != 1 {
			t.Fatalf("after renewer %d the KDC counts %d failed attempts, want 1:\n%s", i, n, out)
		}
		if i > 1 && !strings.Contains(out, "not sent again") {
			t.Fatalf("renewer %d does not say why it did not try:\n%s", i, out)
		}
	}
	// A plain kinit with the new password does not change the stored
	// one: the renewer still does not send it.
	e.must(e.sesame("Another-pw-2\n", "kinit", "--password-stdin", "-l", "20s", "rita"), "kinit, new password")
	c0 := e.kdc.FailedAttempts("rita") // a success may reset the count
	if out, code := e.renewUntilExit(90 * time.Second); code != exitRenewStopped || e.kdc.FailedAttempts("rita") != c0 {
		t.Fatalf("renewer after a plain kinit: exit %d, failures %d (was %d):\n%s", code, e.kdc.FailedAttempts("rita"), c0, out)
	}
	// A new kinit --remember with the new password: the renewer
	// re-acquires with it again.
	e.must(e.sesame("Another-pw-2\n", "kinit", "--password-stdin", "--remember", "-l", "20s", "rita"), "kinit --remember, new password")
	first := e.tgt()
	stop, _ := e.startRenewer()
	// The keeper re-acquires at half-life; a loaded machine may be slow
	// to open the vault and ask the KDC.
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && !e.tgt().AuthTime.After(first.AuthTime) {
		time.Sleep(time.Second)
	}
	out, _ := stop()
	if got := e.tgt(); !got.AuthTime.After(first.AuthTime) {
		t.Fatalf("no fresh ticket from the newly stored password:\n%s", out)
	}
	if n := e.kdc.FailedAttempts("rita"); n != 0 && n != 1 {
		t.Fatalf("KDC failure count %d after the new password", n)
	}
}

// The same for a keytab whose key changed on the KDC; a new keytab clears
// it.
func TestRenewRejectedKeytabStaysRejectedAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "kate")
	e.kdc.AddPrincipal("ksvc", "")
	e.kdc.Kadmin("modprinc +requires_preauth ksvc")
	e.lockoutPolicy("ksvc")
	kt := e.kdc.Keytab("ksvc")
	e.must(e.sesame("", "kinit", "-k", "-t", kt, "-l", "20s", "ksvc"), "kinit -k")
	e.kdc.Kadmin("cpw -randkey ksvc") // the key (and kvno) change on the KDC
	for i := 1; i <= 4; i++ {
		out, code := e.renewUntilExit(90*time.Second, "-k", "-t", kt)
		if code != exitRenewStopped {
			t.Fatalf("renewer %d: exit %d, want %d:\n%s", i, code, exitRenewStopped, out)
		}
		if n := e.kdc.FailedAttempts("ksvc"); n != 1 {
			t.Fatalf("after renewer %d the KDC counts %d failed attempts, want 1:\n%s", i, n, out)
		}
	}
	fresh := e.kdc.Keytab("ksvc") // new key, new kvno
	first := e.tgt()
	stop, _ := e.startRenewer("-k", "-t", fresh)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !e.tgt().AuthTime.After(first.AuthTime) {
		time.Sleep(time.Second)
	}
	out, _ := stop()
	if !e.tgt().AuthTime.After(first.AuthTime) {
		t.Fatalf("the new keytab was not used:\n%s", out)
	}
}

// Issue 16: kdestroy while a renewal is held up by a paused KDC; when the
// KDC answers, the cache stays gone and the renewer says why it stops.
func TestRenewDoesNotResurrectDestroyedCache(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "dora")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "20s", "-r", "10m", "dora"), "kinit")
	first := e.tgt()
	stop, done := e.startRenewer()
	// The keeper renews at half-life (10 s): pause the KDC just before.
	sleepUntil(first.StartTime.Add(8 * time.Second))
	e.kdc.Pause()
	sleepUntil(first.StartTime.Add(11 * time.Second))
	e.must(e.mit("", "kdestroy"), "MIT kdestroy")
	e.kdc.Resume()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	out, code := stop()
	if _, err := os.Lstat(e.cache); !os.IsNotExist(err) {
		t.Fatalf("the destroyed cache came back (%v):\n%s", err, out)
	}
	if code == 0 || !strings.Contains(out, "removed") && !strings.Contains(out, "no credentials cache") {
		t.Fatalf("renewer exit %d without saying the cache was removed:\n%s", code, out)
	}
}

// Issue 16: MIT kinit, sesame kinit, kvno and kinit -R in loops on one
// cache with the renewer running: the cache is never missing, empty,
// unreadable or rolled back; in a second phase without fresh logins, a
// service ticket once stored is never lost.
func TestRenewUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "lena")
	e.kdc.AddPrincipal("host/localhost", "")
	life := []string{"-l", "8s", "-r", "10m"}
	e.must(e.sesame(krbTestPassword+"\n", append([]string{"kinit", "--password-stdin"}, append(life, "lena")...)...), "kinit")
	stop, _ := e.startRenewer()
	defer stop()
	svc := "host/localhost@" + e.kdc.Realm

	run := func(deadline time.Time, stdin, bin string, args ...string) func() {
		doneCh := make(chan struct{})
		go func() {
			defer close(doneCh)
			for time.Now().Before(deadline) {
				c := exec.Command(bin, args...)
				c.Env = e.env
				c.Stdin = strings.NewReader(stdin)
				c.Run()
			}
		}()
		return func() { <-doneCh }
	}
	check := func(deadline time.Time, keepSvc bool) {
		var lastEnd time.Time
		sawSvc := false
		for n := 0; time.Now().Before(deadline); n++ {
			cc, err := krb.ReadCCache(e.cache)
			if err != nil {
				t.Fatalf("read %d: %v", n, err)
			}
			tgt, ok := cc.TGT()
			if !ok || cc.DefaultPrincipal.String() != "lena@"+e.kdc.Realm {
				t.Fatalf("read %d: no TGT of lena (principal %s, %d entries)", n, cc.DefaultPrincipal, len(cc.Credentials))
			}
			// Writers race by up to a KDC round trip; a rollback is an
			// old ticket written back, many seconds older.
			if tgt.EndTime.Before(lastEnd.Add(-3 * time.Second)) {
				t.Fatalf("read %d: TGT end went back from %v to %v", n, lastEnd, tgt.EndTime)
			}
			if tgt.EndTime.After(lastEnd) {
				lastEnd = tgt.EndTime
			}
			has := false
			for _, c := range cc.Tickets() {
				has = has || c.Server.String() == svc
			}
			if keepSvc && sawSvc && !has {
				t.Fatalf("read %d: the service ticket was lost", n)
			}
			sawSvc = sawSvc || has
			time.Sleep(20 * time.Millisecond)
		}
	}
	mitKinit, mitKvno := testbed.Path(t, "kinit"), testbed.Path(t, "kvno")
	// Phase 1: everything at once.
	deadline := time.Now().Add(30 * time.Second)
	waits := []func(){
		run(deadline, krbTestPassword+"\n", mitKinit, append(life, "lena")...),
		run(deadline, krbTestPassword+"\n", e.bin, append([]string{"kinit", "--password-stdin"}, append(life, "lena")...)...),
		run(deadline, "", mitKvno, "host/localhost"),
		run(deadline, "", mitKinit, "-R"),
		run(deadline, "", e.bin, "kinit", "-R"),
	}
	check(deadline, false)
	for _, w := range waits {
		w()
	}
	// Phase 2: only writers that keep what is in the cache.
	deadline = time.Now().Add(20 * time.Second)
	waits = []func(){
		run(deadline, "", mitKvno, "host/localhost"),
		run(deadline, "", e.bin, "kinit", "-R"),
	}
	check(deadline, true)
	for _, w := range waits {
		w()
	}
	if out, code := stop(); code != 0 {
		t.Fatalf("renewer exit %d:\n%s", code, out)
	}
}

// mountTmpfs mounts a small tmpfs of size (e.g. "256k") on a new temp dir
// and unmounts it when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	testbed.NeedRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		testbed.Missing(t, fmt.Sprintf("mount tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// Issue 16: a renewer that could not write the cache says so at start, in
// one line, and exits non-zero: a symbolic link at the cache's name, a
// read-only file system.
func TestRenewRefusesCacheItCannotReplace(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "uma")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "uma"), "kinit")
	real := e.cache + ".real"
	os.Rename(e.cache, real)
	os.Symlink(real, e.cache)
	r := e.sesame("", "renew")
	if r.code == 0 || !strings.Contains(r.err, "symbolic link") || strings.Count(strings.TrimSpace(r.err), "\n") > 1 {
		t.Fatalf("renew on a symlinked cache: exit %d, %q", r.code, r.err)
	}

	dir := mountTmpfs(t, "1m")
	cache := filepath.Join(dir, "krb5cc")
	env := append(e.env, "KRB5CCNAME=FILE:"+cache)
	ro := *e
	ro.env = env
	ro.must(ro.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "uma"), "kinit on tmpfs")
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	r = ro.sesame("", "renew")
	if r.code == 0 || !strings.Contains(r.err, "read-only") {
		t.Fatalf("renew on a read-only cache: exit %d, %q", r.code, r.err)
	}
}

// Issue 16: a full disk. A new kinit fails with a clear error and leaves
// the old cache as it was; the renewer keeps the ticket alive (its write
// goes into the space the cache already has) and works on once space
// returns.
func TestRenewOnFullDisk(t *testing.T) {
	t.Parallel()
	e := newKrbEnv(t, "vera")
	dir := mountTmpfs(t, "64k")
	e.cache = filepath.Join(dir, "krb5cc")
	e.env = append(e.env, "KRB5CCNAME=FILE:"+e.cache)
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "20s", "-r", "10m", "vera"), "kinit")
	before, _ := os.ReadFile(e.cache)
	first := e.tgt()
	// Fill the file system.
	filler, _ := os.Create(filepath.Join(dir, "filler"))
	buf := make([]byte, 4096)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()
	r := e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "20s", "-r", "10m", "vera")
	if r.code == 0 || !strings.Contains(r.err, "no space left") {
		t.Fatalf("kinit on a full disk: exit %d, %q", r.code, r.err)
	}
	if now, _ := os.ReadFile(e.cache); !bytes.Equal(now, before) {
		t.Fatal("a failed kinit changed the cache")
	}
	stop, _ := e.startRenewer()
	sleepUntil(first.EndTime.Add(3 * time.Second))
	if got := e.tgt(); !got.EndTime.After(first.EndTime) {
		out, _ := stop()
		t.Fatalf("ticket not renewed on a full disk:\n%s", out)
	}
	os.Remove(filepath.Join(dir, "filler"))
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "20s", "-r", "10m", "vera"), "kinit once space is back")
	if out, code := stop(); code != 0 {
		t.Fatalf("renewer exit %d:\n%s", code, out)
	}
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		if strings.Contains(en.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", en.Name())
		}
	}
}

// The shipped unit must not restart into a final stop: its
// RestartPreventExitStatus names the status sesame renew exits with then.
func TestRenewUnitDoesNotRestartAfterFinalStop(t *testing.T) {
	b, err := os.ReadFile("../../contrib/systemd/sesame-renew.service")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("RestartPreventExitStatus=%d", exitRenewStopped)
	if !strings.Contains(string(b), "\n"+want+"\n") {
		t.Fatalf("sesame-renew.service lacks %s", want)
	}
}
