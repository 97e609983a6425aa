package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// otpRow is the two-factor realm as a kdcRow, for r.kinit.
func otpRow(t *testing.T, extra ...testbed.OTPAccount) (*testbed.OTPRealm, *kdcRow) {
	sesameBin(t)
	realm := testbed.NewOTPRealm(t, testbed.KDCOptions{}, extra...)
	return realm, &kdcRow{name: "otp", realm: realm.Realm, conf: realm.Conf, dir: realm.Dir}
}

// paType is the pa_type config entry of a cache (MIT klist -C).
func paType(t *testing.T, res try) string {
	t.Helper()
	for _, l := range strings.Split(configLines(t, res), "\n") {
		if strings.Contains(l, "pa_type(") {
			return l[strings.LastIndex(l, "= ")+2:]
		}
	}
	return ""
}

// TestOTPLoginMIT logs in to OTP accounts (RFC 6560 inside FAST) of an
// MIT KDC whose otp plugin asks FreeRADIUS, with MIT kinit -T on the same
// armor as the control in every row: the ticket says pa_type 141, MIT's
// kvno and kinit -R use it, and each login costs FreeRADIUS exactly one
// request, also when the token is wrong.
func TestOTPLoginMIT(t *testing.T) {
	realm, r := otpRow(t)
	armor := realm.Armor
	radius := realm.Radius

	// login runs MIT's kinit then sesame's with secret on stdin and
	// checks both against want (ok or not), one RADIUS request each.
	login := func(t *testing.T, user, secret string, wantOK bool, args ...string) (mit, ses try) {
		t.Helper()
		args = append(args, user)
		before := radius.Requests(user)
		mit = r.kinit(t, true, "", secret, args...)
		afterMIT := radius.Requests(user)
		ses = r.kinit(t, false, "", secret, args...)
		afterSes := radius.Requests(user)
		if mit.ok != wantOK {
			t.Fatalf("control: MIT kinit %v: ok=%v\n%s", args, mit.ok, mit.out)
		}
		if ses.ok != wantOK {
			t.Errorf("sesame kinit %v: ok=%v\n%s", args, ses.ok, ses.out)
		}
		if afterSes-afterMIT != afterMIT-before {
			t.Errorf("%v: MIT caused %d radius requests, sesame %d", args, afterMIT-before, afterSes-afterMIT)
		}
		return mit, ses
	}

	t.Run("token on stdin", func(t *testing.T) {
		mit, ses := login(t, testbed.OTPUser, testbed.OTPToken, true, "-T", armor)
		same(t, "otp", mit, ses, false)
		t.Logf("sesame: %q", ses.out)
		if a, b := paType(t, mit), paType(t, ses); a != "141" || b != "141" {
			t.Errorf("pa_type: MIT %q, sesame %q", a, b)
		}
		if a, b := configLines(t, mit), configLines(t, ses); a != b {
			t.Errorf("config entries: MIT\n%s\nsesame\n%s", a, b)
		}
		if !strings.Contains(mit.out, "Enter OTP Token Value") {
			t.Errorf("control: MIT's prompt: %q", mit.out)
		}
		runOut(t, ses.env, testbed.Path(t, "kvno"), testbed.OTPHost)
		// MIT's kinit -R renews the ticket sesame got.
		runOut(t, ses.env, testbed.Path(t, "kinit"), "-R")
		runOut(t, ses.env, testbed.Path(t, "kvno"), testbed.OTPHost)
	})

	t.Run("wrong token", func(t *testing.T) {
		failures := func() int { return realm.LogCount("PREAUTH_FAILED: " + testbed.OTPUser + "@") }
		f0 := failures()
		mit, ses := login(t, testbed.OTPUser, "999999", false, "-T", armor)
		t.Logf("MIT: %s\nsesame: %s", mit.out, ses.out)
		if n := failures() - f0; n != 2 {
			t.Errorf("the KDC logged %d failed pre-authentications for the two logins, want 2", n)
		}
		if msgLines(ses.out) > 2 || !strings.HasPrefix(ses.out, "sesame: ") || !strings.Contains(ses.out, "one-time password") ||
			strings.Contains(strings.ToLower(ses.out), "password incorrect") {
			t.Errorf("sesame's message:\n%s", ses.out)
		}
	})

	t.Run("TOTP code", func(t *testing.T) {
		// rlm_totp takes a code twice (no replay protection), so MIT and
		// sesame can use the same one.
		code := testbed.TOTPCode(t)
		mit, ses := login(t, testbed.TOTPUser, code, true, "-T", armor)
		same(t, "totp", mit, ses, false)
		if p := paType(t, ses); p != "141" {
			t.Errorf("pa_type %q", p)
		}
	})

	t.Run("password and OTP account", func(t *testing.T) {
		// Under armor the KDC offers OTP and the password; both clients
		// take OTP. Without armor the password is all there is.
		mit, ses := login(t, testbed.OTPPasswordUser, testbed.OTPPasswordUserToken, true, "-T", armor)
		same(t, "password+otp under armor", mit, ses, false)
		if a, b := paType(t, mit), paType(t, ses); a != "141" || b != "141" {
			t.Errorf("pa_type under armor: MIT %q, sesame %q", a, b)
		}
		mit, ses = login(t, testbed.OTPPasswordUser, testbed.OTPPassword, true)
		same(t, "password+otp without armor", mit, ses, false)
	})

	t.Run("password-only account", func(t *testing.T) {
		mit, ses := login(t, testbed.PasswordOnlyUser, testbed.OTPPassword, true, "-T", armor)
		same(t, "password under armor", mit, ses, false)
		if a, b := paType(t, mit), paType(t, ses); a != b || b != "138" {
			t.Errorf("pa_type: MIT %q, sesame %q", a, b)
		}
		mit, ses = login(t, testbed.PasswordOnlyUser, testbed.OTPPassword, true)
		same(t, "password", mit, ses, false)
	})

	t.Run("no armor", func(t *testing.T) {
		// The token never goes out as a password: sesame says the
		// account needs armor before it asks for anything.
		f0 := realm.LogCount("PREAUTH_FAILED")
		mit, ses := login(t, testbed.OTPUser, testbed.OTPToken, false)
		t.Logf("MIT: %s\nsesame: %s", mit.out, ses.out)
		if msgLines(ses.out) > 2 || !strings.Contains(ses.out, "-T") || strings.Contains(ses.out, "password incorrect") {
			t.Errorf("sesame's message:\n%s", ses.out)
		}
		if n := realm.LogCount("PREAUTH_FAILED") - f0; n > 1 {
			t.Errorf("%d failed pre-authentications logged", n)
		}
		if radius.Requests(testbed.OTPUser) != 0 && strings.Contains(realm.Kadmin("getprinc "+testbed.OTPUser), "Failed password attempts: 1") {
			t.Errorf("sesame's attempt counted as a failure")
		}
	})

	t.Run("silent OTP server", func(t *testing.T) {
		// The KDC's RADIUS server never answers: one line, well within
		// 20 s (the bound of this command), and the token sent once.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, env := r.env(t, r.conf)
		before := radius.Requests(testbed.OTPSilentUser)
		cmd := exec.CommandContext(ctx, sesameBin(t), "kinit", "--password-stdin", "-T", armor, testbed.OTPSilentUser)
		cmd.Env, cmd.Stdin = env, strings.NewReader("111111\n")
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("sesame kinit still waiting after 20 s: %s", out)
		}
		if err == nil || msgLines(string(out)) > 2 || !strings.Contains(string(out), "one-time password") {
			t.Errorf("silent radius: %v\n%s", err, out)
		}
		t.Logf("silent radius: %s", out)
		mitStart := radius.Requests(testbed.OTPSilentUser)
		mit := r.kinit(t, true, "", "111111", "-T", armor, testbed.OTPSilentUser)
		if mit.ok {
			t.Fatalf("control: MIT kinit -T succeeded")
		}
		if a, b := radius.Requests(testbed.OTPSilentUser)-mitStart, mitStart-before; a != b {
			t.Errorf("radius saw %d packets for MIT's login, %d for sesame's", a, b)
		}
	})
}

// The token prompt at a real terminal (util-linux script(1)): MIT's
// wording, no echo, the ticket.
func TestOTPLoginTerminal(t *testing.T) {
	realm, r := otpRow(t)
	script := testbed.Path(t, "script")
	for _, mit := range []bool{true, false} {
		_, env := r.env(t, r.conf)
		line := sesameBin(t) + " kinit -T " + realm.Armor + " " + testbed.OTPUser
		if mit {
			line = testbed.Path(t, "kinit") + " -T " + realm.Armor + " " + testbed.OTPUser
		}
		cmd := exec.Command(script, "-qec", line, "/dev/null")
		cmd.Env = env
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
		for !strings.Contains(out.String(), "Enter OTP Token Value") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		stdin.Write([]byte(testbed.OTPToken + "\n"))
		stdin.Close()
		err = cmd.Wait()
		if err != nil {
			t.Fatalf("mit=%v: kinit on a terminal: %v\n%s", mit, err, out.String())
		}
		if !strings.Contains(out.String(), "Enter OTP Token Value: ") || strings.Contains(out.String(), "Password for") {
			t.Errorf("mit=%v: prompt: %q", mit, out.String())
		}
		if strings.Contains(out.String(), testbed.OTPToken) {
			t.Errorf("mit=%v: token echoed: %q", mit, out.String())
		}
		runOut(t, env, testbed.Path(t, "kvno"), testbed.OTPHost)
	}
}

// An OTP ticket logs in to sshd with GSSAPI.
func TestOTPTicketSSH(t *testing.T) {
	testbed.NeedRoot(t)
	user := "root"
	if u := os.Getenv("USER"); u != "" && os.Getuid() != 0 {
		user = u
	}
	realm, r := otpRow(t, testbed.OTPAccount{Name: user, Token: "424242"})
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: realm.KDC})
	if sshd.User != user {
		t.Fatalf("sshd user %s, token account %s", sshd.User, user)
	}
	ses := r.kinit(t, false, "", "424242", "-T", realm.Armor, user)
	if !ses.ok {
		t.Fatalf("sesame kinit: %s", ses.out)
	}
	out := runOut(t, ses.env, testbed.Path(t, "ssh"), append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no"), "echo", "gssapi-ok")...)
	if !strings.Contains(out, "gssapi-ok") {
		t.Errorf("ssh: %s", out)
	}
}
