package lock

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// mask is XORed into every needle the scanner looks for, so that the test
// itself never holds a secret in the clear: it compares masked needles
// against a masked copy of memory.
const mask = 0x5a

// needle is a secret byte string as it may sit in memory, masked.
type needle struct {
	secret string // which secret (several orientations share one)
	form   string
	masked []byte
}

func maskedCopy(b []byte) []byte {
	m := make([]byte, len(b))
	for i := range b {
		m[i] = b[i] ^ mask
	}
	return m
}

// window takes 32 bytes from the middle of b: long enough to be unique,
// and clear of the leading zero padding that differs between encodings.
func window(b []byte) []byte {
	if len(b) <= 32 {
		return b
	}
	i := (len(b) - 32) / 2
	return b[i : i+32]
}

// intNeedles gives x's bytes big-endian (DER, SSH wire, FIPS byte
// slices) and reversed, which is how big.Int and bigmod words lie in
// little-endian memory.
func intNeedles(name string, x *big.Int) []needle {
	be := x.Bytes()
	w := window(be)
	le := make([]byte, len(w))
	for i := range w {
		le[len(w)-1-i] = w[i]
	}
	n := []needle{{name, "big-endian", maskedCopy(w)}, {name, "little-endian", maskedCopy(le)}}
	clear(be)
	clear(le)
	return n
}

func keyNeedles(key any) []needle {
	switch k := key.(type) {
	case *ed25519.PrivateKey:
		seed := k.Seed()
		defer clear(seed)
		return []needle{{"ed25519 seed", "raw", maskedCopy(seed)}}
	case *rsa.PrivateKey:
		n := intNeedles("rsa d", k.D)
		n = append(n, intNeedles("rsa p", k.Primes[0])...)
		return append(n, intNeedles("rsa q", k.Primes[1])...)
	case *ecdsa.PrivateKey:
		return intNeedles("ecdsa d", k.D)
	}
	panic(fmt.Sprintf("no needles for %T", key))
}

// scanner reads this process's readable mappings through /proc/self/mem
// into a buffer mapped outside the Go heap, which it skips and clears.
type scanner struct {
	buf []byte
	lo  uintptr
}

func newScanner(t *testing.T) *scanner {
	buf, err := syscall.Mmap(-1, 0, 1<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(buf) })
	return &scanner{buf: buf, lo: uintptr(unsafePointer(buf))}
}

// find returns the needles present anywhere in readable memory.
func (s *scanner) find(t *testing.T, needles []needle) map[string][]string {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	found := map[string][]string{}
	seen := map[int]bool{}
	const overlap = 64
	var scanned int64
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		if len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vsyscall]" || f[5] == "[vvar_vclock]") {
			continue
		}
		a, b, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(a, 16, 64)
		end, _ := strconv.ParseUint(b, 16, 64)
		if uintptr(start) <= s.lo && s.lo < uintptr(end) {
			continue // our own buffer
		}
		for off := start; off < end; {
			n := min(uint64(len(s.buf)), end-off)
			got, err := syscall.Pread(int(mem.Fd()), s.buf[:n], int64(off))
			if err != nil || got <= 0 {
				break
			}
			chunk := s.buf[:got]
			for i := range chunk {
				chunk[i] ^= mask
			}
			for i, nd := range needles {
				if !seen[i] && bytes.Contains(chunk, nd.masked) {
					seen[i] = true
					found[nd.secret] = append(found[nd.secret], nd.form)
				}
			}
			clear(chunk)
			scanned += int64(got)
			if uint64(got) < n || off+uint64(got) >= end {
				break
			}
			off += uint64(got) - overlap
		}
	}
	t.Logf("scanned %d MiB", scanned>>20)
	return found
}

// keyring holds parsed keys the way the agent does, as a Holder.
type keyring struct {
	mu      sync.Mutex
	keys    map[string]any
	signers map[string]ssh.Signer
}

func (r *keyring) Seal(v *Vault) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, k := range r.keys {
		blk, err := ssh.MarshalPrivateKey(k, id)
		if err != nil {
			return err
		}
		data := pem.EncodeToMemory(blk)
		clear(blk.Bytes)
		if err := v.Put(id, data); err != nil {
			return err
		}
		if err := Wipe(k); err != nil {
			return err
		}
	}
	clear(r.keys)
	clear(r.signers)
	return nil
}

func (r *keyring) Unseal(m map[string][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, data := range m {
		if err := r.addLocked(id, data); err != nil {
			return err
		}
	}
	return nil
}

func (r *keyring) addLocked(id string, pemData []byte) error {
	k, err := ssh.ParseRawPrivateKey(pemData)
	if err != nil {
		return err
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		return err
	}
	r.keys[id], r.signers[id] = k, s
	return nil
}

func (r *keyring) signAll(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.signers) != 3 {
		t.Fatalf("%d signers", len(r.signers))
	}
	for id, s := range r.signers {
		for i := range 3 {
			data := []byte("session " + strconv.Itoa(i))
			var sig *ssh.Signature
			var err error
			Do(func() { sig, err = s.Sign(rand.Reader, data) })
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if err := s.PublicKey().Verify(data, sig); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	}
}

func settle() {
	runtime.GC()
	time.Sleep(20 * time.Millisecond) // let the FIPS-cache cleanups run
	runtime.GC()
	debug.FreeOSMemory()
}

// genKeys makes an ed25519, an RSA and an ECDSA key with ssh-keygen, as a
// user would, in OpenSSH format without passphrase.
func genKeys(t *testing.T) string {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen not found")
		}
		t.Skip("ssh-keygen not found")
	}
	dir := t.TempDir()
	for _, k := range []struct{ typ, bits string }{{"ed25519", ""}, {"rsa", "3072"}, {"ecdsa", "256"}} {
		args := []string{"-q", "-t", k.typ, "-N", "", "-C", k.typ, "-f", filepath.Join(dir, k.typ)}
		if k.bits != "" {
			args = append(args, "-b", k.bits)
		}
		if out, err := exec.Command(keygen, args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	return dir
}

var keyTypes = []string{"ed25519", "rsa", "ecdsa"}

// TestLockedMemoryHoldsNoKeys loads keys as the agent would (read and
// parsed inside Do, signing inside Do), locks, and searches the whole
// process memory for their secret bytes. It needs the build to set
// GOEXPERIMENT=runtimesecret; without it the leftovers are reported and the
// test skips, or fails when CI is set.
func TestLockedMemoryHoldsNoKeys(t *testing.T) {
	dir := genKeys(t)
	r := &keyring{keys: map[string]any{}, signers: map[string]ssh.Signer{}}
	var needles []needle
	for _, typ := range keyTypes {
		var err error
		Do(func() {
			data, e := os.ReadFile(filepath.Join(dir, typ))
			if e != nil {
				err = e
				return
			}
			defer clear(data)
			r.mu.Lock()
			defer r.mu.Unlock()
			if err = r.addLocked(typ, data); err == nil {
				needles = append(needles, keyNeedles(r.keys[typ])...)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	checkLockedMemory(t, r, needles, func() { r.signAll(t) })
}

// checkLockedMemory: the keys are found while unlocked (the scan works),
// not found after each of two locks, and usable after each unlock.
func checkLockedMemory(t *testing.T, r *keyring, needles []needle, sign func()) {
	t.Helper()
	sign()
	l := New(Options{KDF: cheap})
	defer l.Close()
	l.AddHolder(r)
	sc := newScanner(t)
	secrets := []string{"ed25519 seed", "rsa d", "rsa p", "rsa q", "ecdsa d"}

	// Control: unlocked, every secret is found, so the scanner works.
	found := sc.find(t, needles)
	for _, s := range secrets {
		if len(found[s]) == 0 {
			t.Fatalf("control: %s not found in memory while unlocked: the scan is blind", s)
		}
	}
	t.Logf("unlocked: found %v", found)

	for round := 1; round <= 2; round++ {
		if err := l.Lock([]byte("pw")); err != nil {
			t.Fatal(err)
		}
		settle()
		found = sc.find(t, needles)
		if len(found) != 0 {
			if !SecretMode && os.Getenv("CI") == "" {
				// Without runtime/secret the parser's and the signer's
				// temporaries stay in freed memory: expected, and the
				// reason the build sets the experiment.
				t.Skipf("built without GOEXPERIMENT=runtimesecret: locked memory still holds %v", found)
			}
			t.Errorf("round %d (secret mode %v): locked process memory still holds %v", round, SecretMode, found)
		}
		if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
			t.Fatal(err)
		}
		sign()
		if found := sc.find(t, needles); len(found) != len(secrets) {
			t.Fatalf("round %d: after unlock found only %v", round, found)
		}
	}
}
