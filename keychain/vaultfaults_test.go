package keychain

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Writers killed with SIGKILL at random moments never lose or damage the
// vault: after each kill it opens, every entry written before the writer
// started is there, and the writer's own entries are a prefix of what it
// wrote (each write is the old vault or the new one, never a mix).
func TestVaultRandomKills(t *testing.T) {
	if os.Getenv("SESAME_TEST_VAULT_WRITER") != "" {
		return
	}
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte("pw\n"), 0o600)
	if err := openVault(t, dir, "pw").Set("seed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	want := map[string]bool{"seed": true}
	for r := 0; r < rounds; r++ {
		cmd := vaultWriter(dir, pf, r, 100000)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(150)+30) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		names, err := openVault(t, dir, "pw").List()
		if err != nil {
			t.Fatalf("round %d: the vault does not open after a kill: %v", r, err)
		}
		got := map[string]bool{}
		for _, n := range names {
			got[n] = true
		}
		for n := range want {
			if !got[n] {
				t.Fatalf("round %d: entry %q lost", r, n)
			}
		}
		k := 0
		for got[fmt.Sprintf("p%d/%d", r, k)] {
			want[fmt.Sprintf("p%d/%d", r, k)] = true
			k++
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: entries not a prefix of the writes: %d listed, %d expected", r, len(got), len(want))
		}
	}
}

// Whatever bytes sit in the vault file, opening it gives a damaged-vault or
// wrong-passphrase error (or the entries, for a valid vault), never a
// panic or an unbounded allocation.
func FuzzVaultFile(f *testing.F) {
	saved := maxWorkFactor
	maxWorkFactor = testWorkFactor + 2
	f.Cleanup(func() { maxWorkFactor = saved })
	seedDir := f.TempDir()
	kc, err := Open(Options{Backend: BackendVault, VaultDir: seedDir, WorkFactor: testWorkFactor,
		Passphrase: StaticPassphrase([]byte("pw"))})
	if err != nil {
		f.Fatal(err)
	}
	kc.Set("k", []byte("v"))
	kc.Close()
	good, _ := os.ReadFile(vaultFile(seedDir))
	f.Add(good)
	lines := strings.SplitN(string(good), "\n", 4)
	f.Add([]byte(lines[0] + "\n" + strings.Replace(lines[1], " 10", " 99", 1) + "\n" + lines[2] + "\n" + lines[3]))
	f.Add([]byte(lines[0] + "\n-> scrypt\n" + lines[2] + "\n" + lines[3]))
	f.Add([]byte(lines[0] + "\n" + lines[1] + "\n--- AAAA\n"))
	f.Add(good[:len(good)/2])
	f.Add([]byte("age-encryption.org/v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := &vault{path: "fuzz.vault", passphrase: []byte("pw")}
		_, err := v.decrypt(data)
		if err != nil && !errors.Is(err, ErrCorruptVault) && !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err == nil && !bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")) {
			t.Fatalf("opened a file that is not an age file")
		}
	})
}
