package keychain

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"syscall"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
)

// The sums file (vault.age.sums, next to the vault's name) lists the
// SHA-256 of the vault file sesame last wrote or opened on this machine:
// nothing secret, a hash of ciphertext. It lets a passphrase that does not
// open the vault be told apart from a vault that is not the one sesame
// left (a damaged header, a file replaced from elsewhere): scrypt cannot
// tell them apart, and blaming the passphrase for damage sends the user
// guessing at a passphrase that was right.

const maxSumsFileSize = 4 << 10

func (v *vault) sumsPath() string { return v.path + ".sums" }

// knownSums reads the sums file; ok is false when there is none (a vault
// from before the file existed, or a read-only directory), in which case
// nothing can be said.
func (v *vault) knownSums() (map[[32]byte]bool, bool) {
	f, err := os.OpenFile(v.sumsPath(), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSumsFileSize))
	if err != nil {
		return nil, false
	}
	known := map[[32]byte]bool{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		var sum [32]byte
		if n, err := hex.Decode(sum[:], bytes.TrimSpace(line)); err == nil && n == len(sum) {
			known[sum] = true
		}
	}
	return known, len(known) > 0
}

// recordSums replaces the sums file with sums (zero sums are skipped).
// Failure only loses the distinction knownSums draws.
func (v *vault) recordSums(sums ...[32]byte) {
	var b bytes.Buffer
	for _, s := range sums {
		if s != ([32]byte{}) {
			b.WriteString(hex.EncodeToString(s[:]))
			b.WriteByte('\n')
		}
	}
	if b.Len() == 0 {
		return
	}
	if known, ok := v.knownSums(); ok && len(sums) == 1 && len(known) == 1 && known[sums[0]] {
		return
	}
	atomicfile.WriteUnsynced(v.sumsPath(), b.Bytes(), 0o600)
}
