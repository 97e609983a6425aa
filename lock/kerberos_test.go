package lock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func TestParseKerberosMode(t *testing.T) {
	for _, s := range []string{"keep", "destroy", "stash"} {
		if m, err := ParseKerberosMode(s); err != nil || string(m) != s {
			t.Errorf("%q: %v %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Stash", "delete"} {
		if _, err := ParseKerberosMode(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestDestroyOverwritesThenRemoves(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cc")
	os.WriteFile(p, []byte("ticket bytes"), 0o600)
	// A descriptor kept open shows what the file held after Destroy:
	// zeros, not the ticket.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Destroy(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
	b, _ := io.ReadAll(f)
	if !bytes.Equal(b, make([]byte, len("ticket bytes"))) {
		t.Fatalf("content not zeroed: %q", b)
	}
	// A file with another hard link is removed but not zeroed: the other
	// name's content is not only the cache's (someone else's file linked
	// to the cache's predictable name).
	mine := filepath.Join(dir, "mine")
	os.WriteFile(mine, []byte("not a ticket"), 0o600)
	if err := os.Link(mine, p); err != nil {
		t.Fatal(err)
	}
	if err := Destroy(p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(mine); string(b) != "not a ticket" {
		t.Fatalf("a hard-linked file was zeroed: %q", b)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("hard link still there: %v", err)
	}
	if err := Destroy(p); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	// A symlink is removed, its target left alone.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep me"), 0o600)
	os.Symlink(target, p)
	if err := Destroy(p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Fatalf("symlink target changed: %q", b)
	}
}

func TestKerberosStashWithoutKDC(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cc")
	valid := true
	var reported []error
	l := New(Options{KDF: cheap, OnError: func(e error) { reported = append(reported, e) }})
	k := &Kerberos{Mode: KerberosStash, Path: p, Valid: func([]byte) bool { return valid }}
	l.AddHolder(k)

	// Nothing to stash: lock and unlock still work.
	if err := l.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) || len(reported) != 0 {
		t.Fatalf("stat %v, reported %v", err, reported)
	}

	// A cache made while locked wins over the stash.
	os.WriteFile(p, []byte("old ticket"), 0o644)
	l.Lock([]byte("pw"))
	os.WriteFile(p, []byte("new ticket"), 0o600)
	l.Unlock(context.Background(), []byte("pw"))
	if b, _ := os.ReadFile(p); string(b) != "new ticket" {
		t.Fatalf("stash overwrote a newer cache: %q", b)
	}

	// An expired stash is dropped and reported.
	l.Lock([]byte("pw"))
	valid = false
	l.Unlock(context.Background(), []byte("pw"))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("expired stash written back")
	}
	if len(reported) != 1 || !errors.Is(reported[0], ErrStashExpired) {
		t.Fatalf("reported %v", reported)
	}
}

// A cache another user planted at the free name while locked is not
// kept in place of the stash.
func TestKerberosStashReplacesPlantedCache(t *testing.T) {
	testbed.NeedRoot(t) // to plant a file as another user
	dir := t.TempDir()
	p := filepath.Join(dir, "cc")
	var reported []error
	l := New(Options{KDF: cheap, OnError: func(e error) { reported = append(reported, e) }})
	l.AddHolder(&Kerberos{Mode: KerberosStash, Path: p})
	os.WriteFile(p, []byte("my ticket"), 0o600)
	if err := l.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("planted ticket"), 0o600)
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "my ticket" || len(reported) != 0 {
		t.Fatalf("after unlock the cache holds %q (reported %v)", b, reported)
	}
	fi, _ := os.Lstat(p)
	if !ownCache(fi) {
		t.Error("the restored cache is not the user's own file")
	}
}

// TestKerberosStashGSSAPI: with a real MIT KDC and sshd, a stashed ticket
// cache is gone while locked (klist -s fails, GSSAPI login fails) and back
// after unlock (mode 0600, login works).
func TestKerberosStashGSSAPI(t *testing.T) {
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	testbed.NeedRoot(t)
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: kdc})
	kdc.AddPrincipal(sshd.User, "pw-for-tests")
	path := filepath.Join(t.TempDir(), "cc")
	env := append(os.Environ(), kdc.Env()...)
	env = append(env, "KRB5CCNAME=FILE:"+path)
	run := func(name string, stdin string, args ...string) error {
		cmd := exec.Command(testbed.Path(t, name), args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("%s: %v: %s", name, err, out)
		}
		return err
	}
	login := func() error {
		return run("ssh", "", append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no", "PasswordAuthentication=no", "BatchMode=yes"), "true")...)
	}
	if err := run("kinit", "pw-for-tests\n", sshd.User); err != nil {
		t.Fatal(err)
	}
	if err := login(); err != nil {
		t.Fatal("GSSAPI login before lock failed")
	}
	orig, _ := os.ReadFile(path)

	// Valid asks MIT klist about a copy of the stashed bytes.
	valid := func(b []byte) bool {
		p := filepath.Join(t.TempDir(), "check")
		os.WriteFile(p, b, 0o600)
		defer Destroy(p)
		cmd := exec.Command(testbed.Path(t, "klist"), "-s", "-c", "FILE:"+p)
		cmd.Env = env
		return cmd.Run() == nil
	}
	l := New(Options{KDF: cheap, OnError: func(e error) { t.Errorf("reported: %v", e) }})
	l.AddHolder(&Kerberos{Mode: KerberosStash, Path: "FILE:" + path, Valid: valid})
	if err := l.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ticket cache still there while locked: %v", err)
	}
	if run("klist", "", "-s") == nil {
		t.Fatal("klist -s succeeds while locked")
	}
	if login() == nil {
		t.Fatal("GSSAPI login works while locked")
	}
	if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored cache: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, orig) {
		t.Fatal("restored cache differs")
	}
	if err := login(); err != nil {
		t.Fatal("GSSAPI login after unlock failed")
	}
}

// TestKerberosStashExpiredTGT: a TGT that expires while locked is not
// written back.
func TestKerberosStashExpiredTGT(t *testing.T) {
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	kdc.AddPrincipal("alice", "pw-for-tests")
	path := filepath.Join(t.TempDir(), "cc")
	env := append(os.Environ(), kdc.Env()...)
	env = append(env, "KRB5CCNAME=FILE:"+path)
	kinit := exec.Command(testbed.Path(t, "kinit"), "-l", "3s", "alice")
	kinit.Env, kinit.Stdin = env, strings.NewReader("pw-for-tests\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v %s", err, out)
	}
	valid := func(b []byte) bool {
		p := filepath.Join(t.TempDir(), "check")
		os.WriteFile(p, b, 0o600)
		defer Destroy(p)
		cmd := exec.Command(testbed.Path(t, "klist"), "-s", "-c", "FILE:"+p)
		cmd.Env = env
		return cmd.Run() == nil
	}
	if !valid(mustRead(t, path)) {
		t.Fatal("fresh TGT not valid")
	}
	var reported []error
	l := New(Options{KDF: cheap, OnError: func(e error) { reported = append(reported, e) }})
	l.AddHolder(&Kerberos{Mode: KerberosStash, Path: path, Valid: valid})
	l.Lock([]byte("pw"))
	time.Sleep(4 * time.Second)
	if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("expired TGT written back")
	}
	if len(reported) != 1 || !errors.Is(reported[0], ErrStashExpired) {
		t.Fatalf("reported %v", reported)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKerberosDestroyMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cc")
	os.WriteFile(p, []byte("tgt"), 0o600)
	l := New(Options{KDF: cheap})
	l.AddHolder(&Kerberos{Mode: KerberosDestroy, Path: p})
	l.Lock([]byte("pw"))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("destroy mode kept the cache")
	}
	l.Unlock(context.Background(), []byte("pw"))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("destroy mode brought the cache back")
	}
	// keep mode leaves it alone.
	os.WriteFile(p, []byte("tgt"), 0o600)
	l2 := New(Options{KDF: cheap})
	l2.AddHolder(&Kerberos{Mode: KerberosKeep, Path: p})
	l2.Lock([]byte("pw"))
	if b, _ := os.ReadFile(p); string(b) != "tgt" {
		t.Fatal("keep mode touched the cache")
	}
}
