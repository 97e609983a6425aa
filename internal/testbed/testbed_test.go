package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The test bed itself: MIT kinit gets a ticket from the KDC, and ssh logs
// in to sshd with GSSAPI from that ticket. If this fails, every higher test
// would fail for reasons unrelated to sesame.
func TestMITKinitAndGSSAPILogin(t *testing.T) {
	kdc := NewKDC(t, KDCOptions{})
	sshd := NewSSHD(t, SSHDOptions{KDC: kdc})
	kdc.AddPrincipal(sshd.User, "pw-for-tests")
	cc := "FILE:" + filepath.Join(t.TempDir(), "cc")
	env := append(os.Environ(), kdc.Env()...)
	env = append(env, "KRB5CCNAME="+cc)

	kinit := exec.Command(Path(t, "kinit"), sshd.User)
	kinit.Env = env
	kinit.Stdin = strings.NewReader("pw-for-tests\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	ssh := exec.Command(Path(t, "ssh"), append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no"), "echo", "hello-from-sshd")...)
	ssh.Env = env
	out, err := ssh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello-from-sshd") {
		b, _ := os.ReadFile(sshd.Log)
		t.Fatalf("ssh: %v\n%s\nsshd log:\n%s", err, out, b)
	}
}

// mitKinit runs MIT kinit with args and password against the realm that
// env's KRB5_CONFIG names, into a fresh cache, and returns klist -f's output.
func mitKinit(t *testing.T, env []string, password string, args ...string) string {
	t.Helper()
	env = append(append(os.Environ(), env...), "KRB5CCNAME=FILE:"+filepath.Join(t.TempDir(), "cc"))
	kinit := exec.Command(Path(t, "kinit"), args...)
	kinit.Env = env
	kinit.Stdin = strings.NewReader(password + "\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit %v: %v\n%s", args, err, out)
	}
	klist := exec.Command(Path(t, "klist"), "-f")
	klist.Env = env
	out, err := klist.CombinedOutput()
	if err != nil {
		t.Fatalf("klist: %v\n%s", err, out)
	}
	return string(out)
}

// The Heimdal KDC runs from its unpacked packages and answers MIT kinit.
func TestHeimdalKDC(t *testing.T) {
	h := NewHeimdal(t)
	h.AddPrincipal("bob", "Heimdal-pw-1")
	out := mitKinit(t, h.Env(), "Heimdal-pw-1", "bob")
	if !strings.Contains(out, "krbtgt/"+h.Realm+"@"+h.Realm) {
		t.Fatalf("no TGT:\n%s", out)
	}
	if h.LogCount("AS-REQ bob@"+h.Realm) == 0 {
		t.Errorf("the KDC log shows no AS-REQ")
	}
}

// The Samba AD DC's KDC answers MIT kinit for its template users, and
// counts a wrong password in badPwdCount.
func TestADDCKDC(t *testing.T) {
	a := NewADDC(t)
	out := mitKinit(t, a.Env(), ADPassword, ADUser)
	if !strings.Contains(out, "krbtgt/"+a.Realm+"@"+a.Realm) {
		t.Fatalf("no TGT:\n%s", out)
	}
	if n := a.BadPwdCount(ADUser); n != 0 {
		t.Errorf("badPwdCount %d before any failure", n)
	}
	kinit := exec.Command(Path(t, "kinit"), ADUser)
	kinit.Env = append(append(os.Environ(), a.Env()...), "KRB5CCNAME=FILE:"+filepath.Join(t.TempDir(), "cc"))
	kinit.Stdin = strings.NewReader("wrong\n")
	if err := kinit.Run(); err == nil {
		t.Fatal("wrong password accepted")
	}
	if n := a.BadPwdCount(ADUser); n != 1 {
		t.Errorf("badPwdCount %d after one failure", n)
	}
}
