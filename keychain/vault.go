package keychain

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/paths"
)

// VaultFileName is the vault's file name inside paths.State().
const VaultFileName = "vault.age"

// DefaultWorkFactor is the scrypt cost (N = 2^18, r = 8, p = 1, so 256 MiB
// of memory) used to derive the vault key from the passphrase. It is age's
// own default: about one second on a laptop, more on a busy login node.
// The vault file sits in a home directory that backups, admins and, after
// a mistake, other users can read, so an offline guess must be expensive;
// sesame derives the key only when a command or the agent opens the vault,
// where a second is acceptable. Memory-hard scrypt also blunts GPU guessing.
const DefaultWorkFactor = 18

// maxWorkFactor bounds the cost a vault file may demand when it is opened
// (age's default would accept 2^22, i.e. 4 GiB and many seconds): a planted
// or damaged header must not be able to exhaust the machine. (A variable
// only so that the fuzz test can lower it.)
var maxWorkFactor = 20

// vault is the file backend: every entry in one age file encrypted to an
// scrypt recipient. Each change is a read-modify-write of the whole file
// under an exclusive flock on a separate lock file (the vault itself is
// replaced by rename, so a lock on it would lock the old inode), and the
// write is atomic.
type vault struct {
	path       string
	pass       PassphraseFunc
	workFactor int

	mu         sync.Mutex // guards the fields below; held across file access
	passphrase []byte     // set once a decryption or creation succeeded
	cacheSum   [32]byte   // SHA-256 of the ciphertext cache was read from/written to
	cache      map[string][]byte
}

var _ Store = (*vault)(nil)

func newVault(dir string, pass PassphraseFunc, workFactor int) *vault {
	if dir == "" {
		dir = paths.State()
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	return &vault{path: filepath.Join(dir, VaultFileName), pass: pass, workFactor: workFactor}
}

// Path is the vault file.
func (v *vault) Path() string { return v.path }

func (v *vault) Get(name string) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []byte
	if err := v.askBeforeLock(false); err != nil {
		return nil, err
	}
	err := v.withLock(false, func() error {
		m, _, err := v.loadLocked()
		if err != nil {
			return err
		}
		s, ok := m[name]
		if !ok {
			return fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		out = append([]byte(nil), s...)
		return nil
	})
	return out, err
}

func (v *vault) List() ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var names []string
	if err := v.askBeforeLock(false); err != nil {
		return nil, err
	}
	err := v.withLock(false, func() error {
		m, _, err := v.loadLocked()
		if err != nil {
			return err
		}
		for n := range m {
			names = append(names, n)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

func (v *vault) Set(name string, secret []byte) error {
	if err := validName(name); err != nil {
		return err
	}
	if len(secret) > maxSecretLen {
		return fmt.Errorf("secret for %q is larger than %d bytes", name, maxSecretLen)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.askBeforeLock(true); err != nil {
		return err
	}
	return v.withLock(true, func() error {
		m, exists, err := v.loadLocked()
		if err != nil {
			return err
		}
		next := cloneEntries(m)
		next[name] = append([]byte(nil), secret...)
		return v.storeLocked(next, exists)
	})
}

func (v *vault) Remove(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.askBeforeLock(false); err != nil {
		return err
	}
	return v.withLock(true, func() error {
		m, exists, err := v.loadLocked()
		if err != nil {
			return err
		}
		if _, ok := m[name]; !ok {
			return fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		next := cloneEntries(m)
		wipe(next[name])
		delete(next, name)
		return v.storeLocked(next, exists)
	})
}

// Close forgets the passphrase and the decrypted entries held in memory.
func (v *vault) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	wipe(v.passphrase)
	v.passphrase = nil
	v.dropCacheLocked()
	return nil
}

func (v *vault) dropCacheLocked() {
	for _, s := range v.cache {
		wipe(s)
	}
	v.cache = nil
	v.cacheSum = [32]byte{}
}

// withLock runs fn holding the lock file: shared for reads, exclusive for
// read-modify-write, so that concurrent writers (two `sesame add`, the
// agent and a command) never lose each other's entries. The lock is held
// only for file access and the key derivation, never across a prompt
// (askBeforeLock), and waiting for it is bounded.
func (v *vault) withLock(exclusive bool, fn func() error) error {
	dir := filepath.Dir(v.path)
	if !exclusive {
		// Reading a vault that does not exist needs no directory.
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fn()
		}
	}
	if err := paths.EnsureDir(dir); err != nil {
		return err
	}
	f, err := openVaultLock(v.path+".lock", exclusive)
	if err != nil {
		return err
	}
	if f == nil {
		// A read-only file system: nobody can write the vault, so a
		// reader needs no lock.
		return fn()
	}
	defer f.Close()
	if err := flockWait(f, exclusive, vaultLockWait); err != nil {
		return fmt.Errorf("lock vault %s: %w", v.path, err)
	}
	defer funlock(f)
	// Temporary vaults of a writer killed before its rename hold every
	// key: zero and remove those old enough to be nobody's work.
	if target, err := vaultTarget(v.path); err == nil {
		atomicfile.RemoveStaleTemps(target)
	}
	return fn()
}

// vaultLockWait bounds the wait for another sesame's vault lock. A holder
// only reads, derives a key and writes (seconds), so a longer wait means a
// stuck process, which the error names.
const vaultLockWait = 2 * time.Minute

// openVaultLock opens (creating it when allowed) the lock file, without
// following a link or blocking on a FIFO. On a read-only file system a
// reader gets nil and no error.
func openVaultLock(path string, exclusive bool) (*os.File, error) {
	const flags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|flags, 0o600)
	if err != nil && !exclusive && (errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES)) {
		// flock works on a descriptor opened for reading, too.
		f, err = os.OpenFile(path, os.O_RDONLY|flags, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	if err != nil {
		if errors.Is(err, syscall.EROFS) {
			return nil, withHint(fmt.Errorf("vault %s cannot be changed: the file system is read-only", filepath.Dir(path)),
				"listing still works; change the vault where its file system is writable")
		}
		return nil, fmt.Errorf("lock vault: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("lock vault: %w", err)
		}
		return nil, notRegularError(path, fi.Mode())
	}
	return f, nil
}

// askBeforeLock obtains the passphrase, when a prompt may be needed, before
// the vault's lock is taken, so that a user slow to answer never holds up
// other sesame processes (the agent among them).
// A write to a missing vault asks for the new vault's passphrase (twice);
// a read or remove of a missing vault asks nothing.
func (v *vault) askBeforeLock(writing bool) error {
	if v.passphrase != nil || v.pass == nil {
		return nil
	}
	target, err := vaultTarget(v.path)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		if !writing {
			return nil
		}
		return v.askLocked(true)
	}
	return v.askLocked(false)
}

// loadLocked reads and decrypts the vault. A missing file is an empty
// vault. The decrypted entries are kept and reused while the file's bytes
// are unchanged, so that a write costs one scrypt derivation, not two.
func (v *vault) loadLocked() (entries map[string][]byte, exists bool, err error) {
	target, err := vaultTarget(v.path)
	if err != nil {
		return nil, true, err
	}
	data, exists, err := readVaultFile(target)
	if err != nil {
		return nil, exists, err
	}
	if !exists {
		v.dropCacheLocked()
		return map[string][]byte{}, false, nil
	}
	sum := sha256.Sum256(data)
	if v.cache != nil && sum == v.cacheSum {
		return v.cache, true, nil
	}
	v.dropCacheLocked()
	if err := v.askLocked(false); err != nil {
		return nil, true, err
	}
	m, err := v.decrypt(data)
	if errors.Is(err, ErrWrongPassphrase) {
		// Forget it so that the next operation asks again.
		wipe(v.passphrase)
		v.passphrase = nil
		if known, ok := v.knownSums(); ok && !known[sum] {
			// Not the file sesame last wrote or opened here: the
			// passphrase cannot be blamed with any confidence.
			return nil, true, withHint(fmt.Errorf("%s: %w (the passphrase does not open it, and it is not the vault sesame last wrote or opened here: damaged, or replaced by a vault with another passphrase)", v.path, ErrCorruptVault),
				"sesame will not write to it; restore it from a backup, or open it with the passphrase of the machine it came from")
		}
	}
	if err != nil {
		return nil, true, err
	}
	v.cache, v.cacheSum = m, sum
	v.recordSums(sum)
	return m, true, nil
}

// storeLocked encrypts entries and replaces the vault file atomically.
func (v *vault) storeLocked(entries map[string][]byte, exists bool) error {
	if err := v.askLocked(!exists); err != nil {
		return err
	}
	plain, err := encodeVault(entries)
	if err != nil {
		return err
	}
	defer wipe(plain)
	if err := v.storeLockedRaw(plain); err != nil {
		return err
	}
	v.cache = entries
	return nil
}

// storeLockedRaw encrypts plain and writes it over the vault file.
func (v *vault) storeLockedRaw(plain []byte) error {
	// age takes the passphrase as a string, a copy that cannot be wiped;
	// it lives until the garbage collector reuses the memory.
	r, err := age.NewScryptRecipient(string(v.passphrase))
	if err != nil {
		return err
	}
	r.SetWorkFactor(v.workFactor)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return fmt.Errorf("encrypt vault: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("encrypt vault: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt vault: %w", err)
	}
	target, err := vaultTarget(v.path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	// Both the old and the new file count as sesame's while the rename
	// may or may not have happened.
	v.recordSums(v.cacheSum, sum)
	if err := atomicfile.Write(target, buf.Bytes(), 0o600); err != nil {
		return err
	}
	v.dropCacheLocked()
	v.cacheSum = sum
	v.recordSums(sum)
	return nil
}

// askLocked obtains the passphrase once. create says the vault does not
// exist yet: the source should then ask twice, and an empty answer is
// refused (as OpenSSH refuses an empty lock passphrase).
func (v *vault) askLocked(create bool) error {
	if v.passphrase != nil {
		return nil
	}
	if v.pass == nil {
		return withHint(fmt.Errorf("%s: %w", v.path, ErrNoPassphrase),
			"give it with --passphrase-file, --passphrase-stdin or SESAME_PASSPHRASE_FILE")
	}
	p, err := v.pass(create)
	if err != nil {
		return err
	}
	if len(p) == 0 {
		wipe(p)
		if create {
			return fmt.Errorf("new vault: %w", ErrEmptyPassphrase)
		}
		return fmt.Errorf("%s: %w", v.path, ErrWrongPassphrase)
	}
	v.passphrase = p
	return nil
}

// decrypt opens the age file and parses its contents. Every failure other
// than a passphrase mismatch is reported as a damaged vault.
func (v *vault) decrypt(data []byte) (map[string][]byte, error) {
	id, err := age.NewScryptIdentity(string(v.passphrase))
	if err != nil {
		return nil, err
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) && len(nm.StanzaTypes) == 1 && nm.StanzaTypes[0] == "scrypt" {
			return nil, withHint(fmt.Errorf("%s: %w", v.path, ErrWrongPassphrase),
				"the vault is unchanged; try again with the passphrase it was created with")
		}
		return nil, v.corrupt(err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxVaultSize+1))
	defer wipe(plain)
	if err != nil {
		return nil, v.corrupt(err)
	}
	if len(plain) > maxVaultSize {
		return nil, v.corrupt(errors.New("contents too large"))
	}
	m, err := decodeVault(plain)
	if err != nil {
		return nil, v.corrupt(err)
	}
	return m, nil
}

// maxVaultSize bounds the decrypted contents read into memory.
const maxVaultSize = 64 << 20

func (v *vault) corrupt(cause error) error {
	return withHint(fmt.Errorf("%s: %w (%v)", v.path, ErrCorruptVault, cause),
		"sesame will not write to it; restore it from a backup, or move it aside to start an empty vault")
}

// cloneEntries deep-copies entries: the cache is wiped when replaced, so a
// new map must not share its secrets.
func cloneEntries(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m)+1)
	for k, s := range m {
		out[k] = append([]byte(nil), s...)
	}
	return out
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
