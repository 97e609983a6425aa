package keychain

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// sshKeygen makes a key file with the real ssh-keygen.
func sshKeygen(t *testing.T, typ, passphrase, comment string) string {
	t.Helper()
	bin := testbed.Path(t, "ssh-keygen")
	f := filepath.Join(t.TempDir(), "id_"+typ)
	out, err := exec.Command(bin, "-q", "-t", typ, "-N", passphrase, "-C", comment, "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return f
}

func fingerprintOf(t *testing.T, pubFile string) string {
	t.Helper()
	data, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(pub)
}

func TestReadPrivateKeyFile(t *testing.T) {
	enc := sshKeygen(t, "ed25519", "key pass", "enc@test")
	asked := 0
	ask := func(pw string) func(string) ([]byte, error) {
		return func(path string) ([]byte, error) {
			asked++
			if path != enc {
				t.Errorf("asked for %q", path)
			}
			return []byte(pw), nil
		}
	}
	raw, comment, err := ReadPrivateKeyFile(enc, ask("key pass"))
	if err != nil || comment != "enc@test" || asked != 1 {
		t.Fatalf("encrypted key: %v, comment %q, asked %d", err, comment, asked)
	}
	if _, err := ssh.NewSignerFromKey(raw); err != nil {
		t.Fatal(err)
	}
	asked = 0
	if _, _, err := ReadPrivateKeyFile(enc, ask("nope")); !errors.Is(err, ErrWrongKeyPassphrase) || asked != 1 {
		t.Fatalf("wrong key passphrase: %v (asked %d times)", err, asked)
	}
	if !strings.Contains(func() string { _, _, err := ReadPrivateKeyFile(enc, ask("nope")); return err.Error() }(), enc) {
		t.Error("error does not name the file")
	}
	notKey := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notKey, []byte("hello\n"), 0o600)
	if _, _, err := ReadPrivateKeyFile(notKey, nil); !errors.Is(err, ErrNotAKey) || !strings.Contains(err.Error(), notKey) {
		t.Fatalf("not a key: %v", err)
	}
	if _, _, err := ReadPrivateKeyFile(enc+".pub", nil); !errors.Is(err, ErrNotAKey) {
		t.Fatalf("public key given: %v", err)
	}
	if _, _, err := ReadPrivateKeyFile(filepath.Join(t.TempDir(), "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	// Without FILE.pub the comment is the file name, as ssh-add shows it.
	plain := sshKeygen(t, "ecdsa", "", "c")
	os.Remove(plain + ".pub")
	if _, comment, err := ReadPrivateKeyFile(plain, nil); err != nil || comment != plain {
		t.Fatalf("no .pub: %q, %v", comment, err)
	}
}

func TestKeysInVault(t *testing.T) {
	dir := t.TempDir()
	kc := openVault(t, dir, "pw")
	files := map[string]string{}
	for _, typ := range []string{"ed25519", "rsa", "ecdsa"} {
		f := sshKeygen(t, typ, "", "shared comment")
		if typ == "ed25519" {
			f = sshKeygen(t, typ, "", "ed@test")
		}
		files[typ] = f
		raw, comment, err := ReadPrivateKeyFile(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := kc.AddKey(raw, comment)
		if err != nil {
			t.Fatalf("AddKey %s: %v", typ, err)
		}
		if info.Fingerprint != fingerprintOf(t, f+".pub") {
			t.Fatalf("fingerprint %s, ssh-keygen says %s", info.Fingerprint, fingerprintOf(t, f+".pub"))
		}
	}
	keys, err := openVault(t, dir, "pw").Keys()
	if err != nil || len(keys) != 3 {
		t.Fatalf("Keys = %d, %v", len(keys), err)
	}
	for _, k := range keys {
		if k.Added.IsZero() || k.Bits == 0 || k.Type == "" {
			t.Errorf("incomplete KeyInfo %+v", k)
		}
	}
	loaded, err := openVault(t, dir, "pw").LoadKeys()
	if err != nil || len(loaded) != 3 {
		t.Fatalf("LoadKeys = %d, %v", len(loaded), err)
	}
	for _, ak := range loaded {
		if _, err := ssh.NewSignerFromKey(ak.PrivateKey); err != nil || ak.Comment == "" {
			t.Fatalf("loaded key unusable: %v %q", err, ak.Comment)
		}
	}
	// Selectors.
	if _, err := kc.RemoveKey("shared comment"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("ambiguous comment: %v", err)
	}
	if _, err := kc.RemoveKey("no such comment"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown comment: %v", err)
	}
	if k, err := kc.RemoveKey("ed@test"); err != nil || k.Fingerprint != fingerprintOf(t, files["ed25519"]+".pub") {
		t.Fatalf("by comment: %+v, %v", k, err)
	}
	if _, err := kc.RemoveKey(files["rsa"] + ".pub"); err != nil {
		t.Fatalf("by public key file: %v", err)
	}
	if _, err := kc.RemoveKey(fingerprintOf(t, files["ecdsa"]+".pub")); err != nil {
		t.Fatalf("by fingerprint: %v", err)
	}
	if keys, err := kc.Keys(); err != nil || len(keys) != 0 {
		t.Fatalf("after removing all: %d, %v", len(keys), err)
	}
}

func TestKrbPassword(t *testing.T) {
	kc := openVault(t, t.TempDir(), "pw")
	if err := kc.SetKrbPassword("alice@EXAMPLE.ORG", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := kc.SetKrbPassword("host/x.example.org@EXAMPLE.ORG", []byte("other")); err != nil {
		t.Fatal(err)
	}
	if p, err := kc.KrbPassword("alice@EXAMPLE.ORG"); err != nil || string(p) != "s3cret" {
		t.Fatalf("KrbPassword = %q, %v", p, err)
	}
	if ps, _ := kc.KrbPrincipals(); strings.Join(ps, ",") != "alice@EXAMPLE.ORG,host/x.example.org@EXAMPLE.ORG" {
		t.Fatalf("KrbPrincipals = %q", ps)
	}
	if err := kc.RemoveKrbPassword("alice@EXAMPLE.ORG"); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.KrbPassword("alice@EXAMPLE.ORG"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if err := kc.SetKrbPassword("bob@R", nil); err == nil {
		t.Fatal("empty password stored")
	}
}

// startSSHAgent runs OpenSSH's ssh-agent in the foreground on a fresh
// socket and stops it when the test ends (or earlier, with the returned
// function).
func startSSHAgent(t *testing.T) (sock string, stop func()) {
	t.Helper()
	bin := testbed.Path(t, "ssh-agent")
	sock = filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(bin, "-D", "-a", sock)
	// Killed with the test binary even if the test never gets to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, stop
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("ssh-agent did not create its socket")
	return "", nil
}

// Keys survive an agent restart: stored once, loaded into a fresh ssh-agent
// by LoadKeys, and listed there by the real ssh-add.
func TestLoadKeysIntoFreshAgent(t *testing.T) {
	dir := t.TempDir()
	f := sshKeygen(t, "ed25519", "kp", "survivor@test")
	raw, comment, err := ReadPrivateKeyFile(f, func(string) ([]byte, error) { return []byte("kp"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openVault(t, dir, "vault pw").AddKey(raw, comment); err != nil {
		t.Fatal(err)
	}
	fp := fingerprintOf(t, f+".pub")
	for round := 0; round < 2; round++ {
		sock, stop := startSSHAgent(t)
		keys, err := LoadKeys(Options{Backend: BackendVault, VaultDir: dir, Passphrase: StaticPassphrase([]byte("vault pw"))})
		if err != nil || len(keys) != 1 {
			t.Fatalf("round %d: LoadKeys = %d keys, %v", round, len(keys), err)
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		if err := agent.NewClient(conn).Add(keys[0]); err != nil {
			t.Fatalf("round %d: add to ssh-agent: %v", round, err)
		}
		conn.Close()
		cmd := exec.Command(testbed.Path(t, "ssh-add"), "-l")
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), fp) || !strings.Contains(string(out), "survivor@test") {
			t.Fatalf("round %d: ssh-add -l: %v\n%s", round, err, out)
		}
		stop()
	}
	// A vault that does not exist yet: no keys, no error, no passphrase asked.
	keys, err := LoadKeys(Options{Backend: BackendVault, VaultDir: t.TempDir(),
		Passphrase: func(bool) ([]byte, error) { t.Fatal("passphrase asked"); return nil, nil }})
	if err != nil || len(keys) != 0 {
		t.Fatalf("empty vault: %v, %v", keys, err)
	}
}

// A certificate next to the key (FILE-cert.pub, made by ssh-keygen -s) is
// stored with it and loaded as a second identity, as ssh-add does.
func TestCertificateStoredAndLoaded(t *testing.T) {
	ca := sshKeygen(t, "ed25519", "", "ca")
	key := sshKeygen(t, "ed25519", "", "user@test")
	out, err := exec.Command(testbed.Path(t, "ssh-keygen"), "-q", "-s", ca, "-I", "user-id", "-n", "user", key+".pub").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
	}
	raw, comment, err := ReadPrivateKeyFile(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ReadCertificateFile(key, raw)
	if err != nil || cert == nil || cert.KeyId != "user-id" {
		t.Fatalf("ReadCertificateFile = %v, %v", cert, err)
	}
	other, _, _ := ReadPrivateKeyFile(ca, nil)
	if _, err := ReadCertificateFile(key, other); err == nil {
		t.Fatal("certificate accepted for another key")
	}
	if c, err := ReadCertificateFile(ca, other); c != nil || err != nil {
		t.Fatalf("no certificate file: %v, %v", c, err)
	}
	dir := t.TempDir()
	if _, err := openVault(t, dir, "pw").AddKeyCert(raw, cert, comment); err != nil {
		t.Fatal(err)
	}
	keys, err := openVault(t, dir, "pw").Keys()
	if err != nil || len(keys) != 1 || keys[0].Certificate == nil || keys[0].Certificate.KeyId != "user-id" {
		t.Fatalf("Keys = %+v, %v", keys, err)
	}
	loaded, err := openVault(t, dir, "pw").LoadKeys()
	if err != nil || len(loaded) != 2 || loaded[0].Certificate != nil || loaded[1].Certificate == nil {
		t.Fatalf("LoadKeys = %+v, %v", loaded, err)
	}
	sock, _ := startSSHAgent(t)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One client per connection: x/crypto's client reads replies in a
	// goroutine of its own, and a second client would steal them.
	ag := agent.NewClient(conn)
	for _, ak := range loaded {
		if err := ag.Add(ak); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(testbed.Path(t, "ssh-add"), "-l")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	list, _ := cmd.CombinedOutput()
	if !strings.Contains(string(list), "(ED25519-CERT)") || !strings.Contains(string(list), "(ED25519)") {
		t.Fatalf("ssh-add -l:\n%s", list)
	}
}
