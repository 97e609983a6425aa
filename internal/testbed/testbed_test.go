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
