package keychain

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// testWorkFactor keeps scrypt cheap in tests; the format is the same.
const testWorkFactor = 10

func openVault(t *testing.T, dir, pass string) *Keychain {
	t.Helper()
	kc, err := Open(Options{Backend: BackendVault, VaultDir: dir, WorkFactor: testWorkFactor,
		Passphrase: StaticPassphrase([]byte(pass))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	return kc
}

func vaultFile(dir string) string { return filepath.Join(dir, VaultFileName) }

func TestVaultRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kc := openVault(t, dir, "correct horse")
	if kc.Backend() != BackendVault || !strings.Contains(kc.Describe(), vaultFile(dir)) {
		t.Fatalf("backend %q / %q", kc.Backend(), kc.Describe())
	}
	// Reading a vault that does not exist: empty, no passphrase, no file.
	if names, err := kc.List(); err != nil || len(names) != 0 {
		t.Fatalf("List on no vault = %v, %v", names, err)
	}
	if _, err := kc.Get("x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on no vault: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading created %s", dir)
	}
	if kc.NeedsPassphrase() {
		t.Fatal("NeedsPassphrase with no vault")
	}
	want := map[string][]byte{
		"a":                                   []byte("1"),
		"krb-password/alice@EXAMPLE.ORG":      []byte("pw\x00with nul"),
		"ssh-key/SHA256:ab+/cd":               bytes.Repeat([]byte{0xff}, 5000),
		"krb-password/host/x.example@EXAMPLE": {},
	}
	for n, s := range want {
		if err := kc.Set(n, s); err != nil {
			t.Fatalf("Set %q: %v", n, err)
		}
	}
	// A fresh instance (as another process would) reads the file.
	kc2 := openVault(t, dir, "correct horse")
	if !kc2.NeedsPassphrase() {
		t.Fatal("NeedsPassphrase false for an unopened vault")
	}
	for n, s := range want {
		got, err := kc2.Get(n)
		if err != nil || !bytes.Equal(got, s) {
			t.Fatalf("Get %q = %q, %v", n, got, err)
		}
	}
	if kc2.NeedsPassphrase() {
		t.Fatal("NeedsPassphrase true after opening")
	}
	names, _ := kc2.List()
	if len(names) != len(want) || !sort.StringsAreSorted(names) {
		t.Fatalf("List = %q", names)
	}
	if err := kc2.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if err := kc2.Remove("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
	if _, err := kc.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed entry still there for the first instance: %v", err)
	}
	if err := kc.Set("bad\nname", nil); err == nil {
		t.Fatal("control character in a name accepted")
	}
}

func TestVaultFileModesAndNoTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kc := openVault(t, dir, "pw")
	for i := 0; i < 5; i++ {
		if err := kc.Set(fmt.Sprint("k", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
	if strings.Join(got, ",") != VaultFileName+","+VaultFileName+".lock,"+VaultFileName+".sums" {
		t.Fatalf("files in state dir: %q (temporary files left behind?)", got)
	}
	data, _ := os.ReadFile(vaultFile(dir))
	if !bytes.HasPrefix(data, []byte("age-encryption.org/v1\n-> scrypt ")) {
		t.Fatalf("vault is not an age scrypt file: %q", data[:40])
	}
	if bytes.Contains(data, []byte("SESAMEV1")) {
		t.Fatal("vault contents in the clear")
	}
}

func TestVaultWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	good := openVault(t, dir, "right")
	if err := good.Set("k", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(vaultFile(dir))
	bad := openVault(t, dir, "wrong")
	if _, err := bad.Get("k"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Get with wrong passphrase: %v", err)
	}
	if err := bad.Set("k2", []byte("x")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Set with wrong passphrase: %v", err)
	}
	if err := bad.Remove("k"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Remove with wrong passphrase: %v", err)
	}
	var h interface{ Hint() string }
	if _, err := bad.List(); !errors.As(err, &h) || h.Hint() == "" || strings.Contains(err.Error(), "wrong\"") {
		t.Fatalf("error without hint: %v", err)
	}
	after, _ := os.ReadFile(vaultFile(dir))
	if !bytes.Equal(before, after) {
		t.Fatal("vault changed after wrong passphrases")
	}
	if got, err := openVault(t, dir, "right").Get("k"); err != nil || string(got) != "secret" {
		t.Fatalf("right passphrase after wrong ones: %q, %v", got, err)
	}
}

func TestVaultCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := openVault(t, dir, "pw").Set("k", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(vaultFile(dir))
	cases := map[string][]byte{
		"garbage":   []byte("this is not a vault\n"),
		"empty":     {},
		"truncated": good[:len(good)-10],
		"flipped":   append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(vaultFile(dir), data, 0o600); err != nil {
				t.Fatal(err)
			}
			kc := openVault(t, dir, "pw")
			if _, err := kc.List(); !errors.Is(err, ErrCorruptVault) {
				t.Fatalf("List: %v", err)
			}
			if err := kc.Set("new", []byte("x")); !errors.Is(err, ErrCorruptVault) {
				t.Fatalf("Set on a corrupt vault: %v", err)
			}
			if err := kc.Remove("k"); !errors.Is(err, ErrCorruptVault) {
				t.Fatalf("Remove on a corrupt vault: %v", err)
			}
			after, _ := os.ReadFile(vaultFile(dir))
			if !bytes.Equal(after, data) {
				t.Fatal("corrupt vault was overwritten")
			}
		})
	}
}

// A vault whose plaintext is not our format (encrypted by age with the
// right passphrase, but by something else) is corrupt, not "wrong passphrase".
func TestVaultForeignPlaintext(t *testing.T) {
	dir := t.TempDir()
	v := newVault(dir, StaticPassphrase([]byte("pw")), testWorkFactor)
	v.askLocked(true)
	// Encrypt something that is not SESAMEV1 via the same code path.
	if err := v.storeLockedRaw([]byte("not a vault")); err != nil {
		t.Fatal(err)
	}
	if _, err := openVault(t, dir, "pw").List(); !errors.Is(err, ErrCorruptVault) {
		t.Fatalf("List: %v", err)
	}
}

func TestVaultNewPassphrase(t *testing.T) {
	dir := t.TempDir()
	var creates []bool
	src := func(create bool) ([]byte, error) {
		creates = append(creates, create)
		return []byte{}, nil
	}
	kc, _ := Open(Options{Backend: BackendVault, VaultDir: dir, WorkFactor: testWorkFactor, Passphrase: src})
	if err := kc.Set("k", []byte("v")); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty passphrase for a new vault: %v", err)
	}
	if len(creates) != 1 || !creates[0] {
		t.Fatalf("passphrase source not told the vault is new: %v", creates)
	}
	if _, err := os.Stat(vaultFile(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("vault created with an empty passphrase")
	}
	kc, _ = Open(Options{Backend: BackendVault, VaultDir: dir})
	if err := kc.Set("k", []byte("v")); !errors.Is(err, ErrNoPassphrase) {
		t.Fatalf("no passphrase source: %v", err)
	}
}

// Concurrent writers, each with its own Keychain as separate processes
// would have, lose no entry: the flock serialises read-modify-write.
func TestVaultConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	if err := openVault(t, dir, "pw").Set("seed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		kc := openVault(t, dir, "pw")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := kc.Set(fmt.Sprintf("w%d/%d", w, i), []byte("v")); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	names, err := openVault(t, dir, "pw").List()
	if err != nil || len(names) != writers*each+1 {
		t.Fatalf("after concurrent writes: %d names (%v), want %d", len(names), err, writers*each+1)
	}
}

// The same across processes: the test binary re-executes itself.
func TestVaultConcurrentProcesses(t *testing.T) {
	if os.Getenv("SESAME_TEST_VAULT_WRITER") != "" {
		return
	}
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("pw\n"), 0o600)
	if err := openVault(t, dir, "pw").Set("seed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	const procs, each = 4, 3
	var cmds []*exec.Cmd
	for p := 0; p < procs; p++ {
		cmd := vaultWriter(dir, pf, p, each)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	names, err := openVault(t, dir, "pw").List()
	if err != nil || len(names) != procs*each+1 {
		t.Fatalf("after concurrent processes: %q (%v), want %d names", names, err, procs*each+1)
	}
}

// vaultWriter is a child process (TestVaultWriterProcess) that adds each
// entries p<id>/0, p<id>/1, … to the vault in dir, with the passphrase in
// file pf.
func vaultWriter(dir, pf string, id, each int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestVaultWriterProcess$")
	cmd.Env = append(os.Environ(), fmt.Sprint("SESAME_TEST_VAULT_WRITER=", id),
		"SESAME_TEST_VAULT_DIR="+dir, EnvPassphraseFile+"="+pf, fmt.Sprint("SESAME_TEST_VAULT_EACH=", each))
	return cmd
}

// TestVaultWriterProcess is the child of TestVaultConcurrentProcesses and
// TestVaultRandomKills.
func TestVaultWriterProcess(t *testing.T) {
	id := os.Getenv("SESAME_TEST_VAULT_WRITER")
	if id == "" {
		t.Skip("helper process")
	}
	var each int
	fmt.Sscan(os.Getenv("SESAME_TEST_VAULT_EACH"), &each)
	kc, err := Open(Options{Backend: BackendVault, VaultDir: os.Getenv("SESAME_TEST_VAULT_DIR"),
		WorkFactor: testWorkFactor, Passphrase: PassphraseFromEnv()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < each; i++ {
		if err := kc.Set(fmt.Sprintf("p%s/%d", id, i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPassphraseSources(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "pf")
	os.WriteFile(pf, []byte("first line\r\nsecond\n"), 0o600)
	p, err := PassphraseFromFile(pf)(false)
	if err != nil || string(p) != "first line" {
		t.Fatalf("file: %q, %v", p, err)
	}
	os.WriteFile(pf, []byte("\nsecond\n"), 0o600)
	if _, err := PassphraseFromFile(pf)(true); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("empty first line: %v", err)
	}
	if _, err := PassphraseFromFile(pf + ".missing")(true); err == nil {
		t.Fatal("missing file accepted")
	}
	r := strings.NewReader("from stdin\nrest")
	src := PassphraseFromReader(r, "standard input")
	for i := 0; i < 2; i++ {
		if p, err := src(false); err != nil || string(p) != "from stdin" {
			t.Fatalf("reader call %d: %q, %v", i, p, err)
		}
	}
	if rest := r.Len(); rest != len("rest") {
		t.Fatalf("reader consumed past the line: %d left", rest)
	}
	t.Setenv(EnvPassphraseFile, "")
	if PassphraseFromEnv() != nil {
		t.Fatal("source from an unset variable")
	}
}
