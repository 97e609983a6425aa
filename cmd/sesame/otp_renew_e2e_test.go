package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
	"github.com/sesame-ssh/sesame/krb"
)

// A two-factor ticket is renewed as usual, but past its renewable life
// the renewer never sends the stored password (the account has one: a
// password+OTP account); it warns ahead of the end, stops with exit
// status 3 when the ticket ends, and klist, doctor and status-style
// notes say so. doctor tells which pre-authentication the KDC asks.
func TestOTPTicketRenewal(t *testing.T) {
	realm, r := otpRow(t)
	_, env := r.env(t, r.conf)
	pass := filepath.Join(t.TempDir(), "vault-pass")
	os.WriteFile(pass, []byte("vault passphrase for tests\n"), 0o600)
	env = append(env, "SESAME_PASSPHRASE_FILE="+pass, "SESAME_BACKEND=vault")
	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(sesameBin(t), args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	user := testbed.OTPPasswordUser
	// The password is in the keychain (a password login without armor).
	if out, code := run(testbed.OTPPassword+"\n", "kinit", "--password-stdin", "--remember", user); code != 0 {
		t.Fatalf("kinit --remember: %s", out)
	}
	if out, _ := run("", "doctor"); !strings.Contains(out, "the KDC asks "+user+"@"+realm.Realm+" for a one-time password (OTP) or the password") {
		t.Errorf("doctor with a password ticket (armor for the probe):\n%s", out)
	}
	// Then the token login, with a short renewable life.
	if out, code := run(testbed.OTPPasswordUserToken+"\n", "kinit", "--password-stdin", "-T", realm.Armor, "-l", "8s", "-r", "16s", user); code != 0 {
		t.Fatalf("kinit -T: %s", out)
	}
	for _, c := range [][]string{{"klist"}, {"doctor"}} {
		if out, _ := run("", c...); !strings.Contains(out, "Two-factor (OTP) ticket") {
			t.Errorf("%s has no two-factor line:\n%s", c[0], out)
		}
	}
	asReqs := func() int { return realm.LogCount("AS_REQ") }
	renewals := func() int { return realm.LogCount("TGS_REQ") }
	as0, tgs0, rad0 := asReqs(), renewals(), realm.Radius.Requests(user)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sesameBin(t), "renew")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("sesame renew still running a minute after the ticket ended:\n%s", out)
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitRenewStopped {
		t.Errorf("sesame renew: %v, want exit status %d\n%s", err, exitRenewStopped, out)
	}
	t.Logf("sesame renew:\n%s", out)
	if !strings.Contains(string(out), "ends at") || !strings.Contains(string(out), "two-factor ticket of "+user) {
		t.Errorf("no warning ahead of the end, or no final line:\n%s", out)
	}
	if n := renewals() - tgs0; n == 0 {
		t.Errorf("the ticket was never renewed")
	}
	if n := asReqs() - as0; n != 0 {
		t.Errorf("the renewer sent %d AS-REQs (the stored password)", n)
	}
	if n := realm.Radius.Requests(user) - rad0; n != 0 {
		t.Errorf("the renewer caused %d radius requests", n)
	}
	ks, _ := run("", "klist", "--json")
	var j struct {
		Renewal *krb.KeeperState `json:"renewal"`
	}
	if err := json.Unmarshal([]byte(ks), &j); err != nil || j.Renewal == nil || !j.Renewal.TwoFactor || j.Renewal.Warning == "" {
		t.Errorf("klist --json: %v\n%s", err, ks)
	}
}

// A ticket from an armored (OTP) login is renewed inside FAST, by sesame
// kinit -R; MIT's kvno uses the renewed ticket, and MIT's kinit -R (the
// control) renews it again.
func TestOTPRenewInsideFAST(t *testing.T) {
	realm, r := otpRow(t)
	ses := r.kinit(t, false, "", testbed.OTPToken, "-T", realm.Armor, testbed.OTPUser)
	if !ses.ok {
		t.Fatalf("kinit -T: %s", ses.out)
	}
	before := realm.LogCount("TGS_REQ")
	cmd := exec.Command(sesameBin(t), "kinit", "-R")
	cmd.Env = append(ses.env, "SESAME_DEBUG=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesame kinit -R: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "renewal inside FAST") {
		t.Errorf("the renewal was not armored:\n%s", out)
	}
	if realm.LogCount("TGS_REQ") == before {
		t.Errorf("no renewal reached the KDC")
	}
	runOut(t, ses.env, testbed.Path(t, "kvno"), testbed.OTPHost)
	// The control: MIT's kinit -R renews the ticket sesame renewed.
	runOut(t, ses.env, testbed.Path(t, "kinit"), "-R")
	runOut(t, ses.env, testbed.Path(t, "kvno"), testbed.OTPHost)
	// A password login outside FAST is renewed as before.
	plain := r.kinit(t, false, "", testbed.OTPPassword, testbed.PasswordOnlyUser)
	cmd = exec.Command(sesameBin(t), "kinit", "-R")
	cmd.Env = append(plain.env, "SESAME_DEBUG=1")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "renewal inside FAST") {
		t.Errorf("plain renewal: %v\n%s", err, out)
	}
}
