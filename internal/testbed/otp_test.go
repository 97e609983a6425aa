package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The two-factor realm itself, with MIT's kinit -T: each account logs in
// the way MIT's client does, and each token login costs exactly one
// RADIUS request.
func TestOTPRealmMIT(t *testing.T) {
	r := NewOTPRealm(t, KDCOptions{})
	kinit := func(secret string, args ...string) (string, string, error) {
		cc := "FILE:" + filepath.Join(t.TempDir(), "cc")
		cmd := exec.Command(Path(t, "kinit"), append([]string{"-c", cc}, args...)...)
		cmd.Env = append(append(os.Environ(), r.Env()...), "KRB5CCNAME="+cc)
		cmd.Stdin = strings.NewReader(secret + "\n")
		out, err := cmd.CombinedOutput()
		return cc, string(out), err
	}
	klistC := func(cc string) string {
		return run(t, r.Env(), "", Path(t, "klist"), "-C", "-c", cc)
	}
	for _, c := range []struct{ user, secret string }{
		{OTPUser, OTPToken}, {OTPPasswordUser, OTPPasswordUserToken}, {TOTPUser, TOTPCode(t)},
	} {
		before := r.Radius.Requests(c.user)
		cc, out, err := kinit(c.secret, "-T", r.Armor, c.user)
		if err != nil || !strings.Contains(out, "Enter OTP Token Value") {
			t.Fatalf("%s: MIT kinit -T: %v\n%s\nradius:\n%s", c.user, err, out, readFile(r.Radius.Log))
		}
		if l := klistC(cc); !strings.Contains(l, ") = 141") {
			t.Errorf("%s: klist -C:\n%s", c.user, l)
		}
		if n := r.Radius.Requests(c.user) - before; n != 1 {
			t.Errorf("%s: %d radius requests", c.user, n)
		}
	}
	before := r.Radius.Requests(OTPUser)
	if _, out, err := kinit("999999", "-T", r.Armor, OTPUser); err == nil {
		t.Errorf("wrong token accepted: %s", out)
	}
	if n := r.Radius.Requests(OTPUser) - before; n != 1 {
		t.Errorf("wrong token: %d radius requests", n)
	}
	if _, out, err := kinit(OTPPassword, PasswordOnlyUser); err != nil {
		t.Errorf("password-only account: %v %s", err, out)
	}
	if _, out, err := kinit(OTPPassword, OTPPasswordUser); err != nil {
		t.Errorf("password+otp account without armor: %v %s", err, out)
	}
	if _, out, err := kinit("111111", "-T", r.Armor, OTPSilentUser); err == nil {
		t.Errorf("silent radius: login succeeded: %s", out)
	} else {
		t.Logf("silent radius: %s", out)
	}
	if r.Radius.Requests(OTPSilentUser) == 0 {
		t.Errorf("silent radius: no request reached it")
	}
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }
