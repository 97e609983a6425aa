package keychain

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// storeContract is the behaviour every backend must share.
func storeContract(t *testing.T, s Store) {
	t.Helper()
	names := []string{"ssh-key/SHA256:ab+/cd=", "krb-password/host/x.example.org@EXAMPLE.ORG", "plain"}
	for i, n := range names {
		if err := s.Set(n, []byte{byte(i), 0, 'x'}); err != nil {
			t.Fatalf("Set %q: %v", n, err)
		}
	}
	if err := s.Set("plain", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.Contains("\x00"+strings.Join(got, "\x00")+"\x00", "\x00"+n+"\x00") {
			t.Fatalf("List = %q, missing %q", got, n)
		}
	}
	if v, err := s.Get(names[1]); err != nil || !bytes.Equal(v, []byte{1, 0, 'x'}) {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, err := s.Get("plain"); err != nil || string(v) != "replaced" {
		t.Fatalf("Get after replace = %q, %v", v, err)
	}
	if _, err := s.Get("absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get absent: %v", err)
	}
	for _, n := range names {
		if err := s.Remove(n); err != nil {
			t.Fatalf("Remove %q: %v", n, err)
		}
	}
	if err := s.Remove("plain"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove absent: %v", err)
	}
	if got, err := s.List(); err != nil || len(got) != 0 {
		t.Fatalf("List after removing all = %q, %v", got, err)
	}
}

func TestStoreContractVault(t *testing.T) {
	storeContract(t, openVault(t, t.TempDir(), "pw"))
}

// The kernel keyring, process scope so that nothing outlives the test.
func TestStoreContractKeyctl(t *testing.T) {
	kc, err := Open(Options{Backend: "keyctl:process"})
	if err != nil {
		t.Skipf("keyctl not usable here (%v): seccomp or kernel without keys", err)
	}
	if kc.Backend() != BackendKeyctl || kc.Describe() != "keyctl scope process" {
		t.Fatalf("backend %q", kc.Describe())
	}
	storeContract(t, kc)
	if _, err := Open(Options{Backend: "keyctl:galaxy"}); err == nil {
		t.Fatal("bad keyctl scope accepted")
	}
}

func TestForcedBackendErrors(t *testing.T) {
	t.Setenv(EnvBackend, "")
	for _, b := range []string{"floppy", "vault:x", "secret-service:x"} {
		if _, err := Open(Options{Backend: b}); err == nil || !strings.Contains(err.Error(), "unknown keychain backend") {
			t.Errorf("Open(%q): %v", b, err)
		}
	}
	if _, err := Open(Options{Backend: BackendKeychain}); !errors.Is(err, ErrBackendUnavailable) {
		t.Errorf("macOS keychain on linux: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Open(Options{Backend: BackendPass}); !errors.Is(err, ErrBackendUnavailable) {
		t.Errorf("pass without the program: %v", err)
	}
	t.Setenv(EnvBackend, "vault")
	if kc, err := Open(Options{VaultDir: t.TempDir()}); err != nil || kc.Backend() != BackendVault {
		t.Errorf("SESAME_BACKEND=vault: %v", err)
	}
}

// Secret Service through a real gnome-keyring-daemon on a private session
// bus (scripts/install-deps.sh installs it; under CI its absence fails).
func TestStoreContractSecretService(t *testing.T) {
	if os.Getenv("SESAME_TEST_SECRET_SERVICE_CHILD") != "" {
		secretServiceChild(t)
		return
	}
	daemon := testbed.Path(t, "gnome-keyring-daemon")
	dir := t.TempDir()
	busAddr := testbed.NewBus(t)
	env := append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+busAddr, "HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_RUNTIME_DIR="+dir)
	kr := exec.Command(daemon, "--foreground", "--unlock", "--components=secrets")
	kr.Env = env
	kr.Stdin = strings.NewReader("login password")
	kr.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := kr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kr.Process.Kill(); kr.Wait() })
	// --unlock creates the login collection; wait until it is on disk.
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(dir, "data", "keyrings", "login.keyring")); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	// keyring decides at init whether a bus exists, so run the contract in
	// a child process that starts with the bus in its environment.
	var out []byte
	var err error
	for i := 0; i < 40; i++ {
		child := exec.Command(os.Args[0], "-test.run=^TestStoreContractSecretService$", "-test.v")
		child.Env = append(env, "SESAME_TEST_SECRET_SERVICE_CHILD=1")
		out, err = child.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "not running on the session bus") {
			break
		}
		time.Sleep(100 * time.Millisecond) // the daemon is still claiming its name
	}
	if err != nil {
		t.Fatalf("secret service child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "auto=secret-service") {
		t.Fatalf("automatic choice did not pick the running Secret Service:\n%s", out)
	}
}

func secretServiceChild(t *testing.T) {
	kc, err := Open(Options{Backend: BackendSecretService})
	if err != nil {
		t.Fatal(err)
	}
	storeContract(t, kc)
	auto, err := Open(Options{Backend: BackendAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("auto=%s", auto.Backend())
}
