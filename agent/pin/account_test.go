package pin

import (
	"os"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// secondUser is an account that exists on Debian and has a usable (not
// locked) password field; its login shell refuses sessions, so its logins
// are counted in sshd's log, not by ssh's exit status.
const secondUser = "daemon"

// sshArgsAs is sshd.SSHArgs logging in as user.
func sshArgsAs(sshd *testbed.SSHD, user string, cmd ...string) []string {
	args := sshd.SSHArgs("IdentityFile=/dev/null")
	for i := range args {
		if args[i] == "-l" {
			args[i+1] = user
		}
	}
	return append(args, cmd...)
}

// Pins per account: after the first account's key was learned, a second
// account on the same server, with its own key, logs in on its first
// try; then each account is offered only its own key.
func TestSecondAccountFirstLogin(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3, PerUserKeys: true})
	b := newAgentBed(t, 2, []string{sshd.KnownHosts}, Options{MaxOffer: 2})
	sshd.AuthorizeUser(sshd.User, b.lines[0])
	sshd.AuthorizeUser(secondUser, b.lines[1])

	if out, err := b.ssh(sshArgsAs(sshd, sshd.User, "true")...); err != nil {
		t.Fatalf("first account: %v\n%s", err, out)
	}
	if err := b.p.Flush(); err != nil {
		t.Fatal(err)
	}
	if l := b.p.Learned(); len(l) != 1 || l[0].User != sshd.User || l[0].Key != fp(b.keys[0]) {
		t.Fatalf("learned: %+v", l)
	}
	out, _ := b.ssh(sshArgsAs(sshd, secondUser, "true")...)
	if sshd.Accepted(secondUser) != 1 {
		b, _ := os.ReadFile(sshd.Log)
		t.Fatalf("second account did not log in on its first try:\n%s\nsshd log:\n%s", out, b)
	}
	// The first account's key comes last for the second account.
	failed := sshd.FailedPublickey()
	if failed != 0 {
		t.Errorf("%d rejected keys, want none", failed)
	}
	// Now each account has its learned key: nothing is rejected.
	if out, err := b.ssh(sshArgsAs(sshd, sshd.User, "true")...); err != nil {
		t.Fatalf("first account again: %v\n%s", err, out)
	}
	b.ssh(sshArgsAs(sshd, secondUser, "true")...)
	if sshd.Accepted(secondUser) != 2 || sshd.FailedPublickey() != failed {
		t.Errorf("second round: %d logins of %s, %d new rejected keys", sshd.Accepted(secondUser), secondUser, sshd.FailedPublickey()-failed)
	}
}

// Declared pins are per account too: a pin for one user does not hide a
// second account's key, while the pinned key stays refused for it.
func TestDeclaredPinPerAccount(t *testing.T) {
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3, PerUserKeys: true})
	b := newAgentBed(t, 3, []string{sshd.KnownHosts}, Options{MaxOffer: 2, NoLearn: true})
	sshd.AuthorizeUser(sshd.User, b.lines[2])
	sshd.AuthorizeUser(secondUser, b.lines[0])
	sshd.AuthorizeUser(secondUser, b.lines[2])
	b.setPins(sshd.User + "@" + hostName(sshd) + " " + fp(b.keys[2]) + "\n")
	if out, err := b.ssh(sshArgsAs(sshd, sshd.User, "true")...); err != nil {
		t.Fatalf("pinned account: %v\n%s", err, out)
	}
	b.ssh(sshArgsAs(sshd, secondUser, "true")...)
	if sshd.Accepted(secondUser) != 1 {
		t.Fatalf("second account did not log in")
	}
	if n := sshd.FailedPublickey(); n != 0 {
		t.Errorf("%d rejected keys", n)
	}
	for _, line := range strings.Split(string(mustRead(t, sshd.Log)), "\n") {
		if strings.Contains(line, "Accepted publickey for "+secondUser+" ") && !strings.Contains(line, fp(b.keys[0])) {
			t.Errorf("the second account logged in with another key than its own: %s", line)
		}
	}
}
