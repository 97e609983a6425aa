package lock

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Vault holds secrets sealed to a Verifier's public key, keyed by id.
// Putting needs no passphrase; opening needs the passphrase (through the
// Locker's Unlock). Each secret gets its own ephemeral X25519 key, so no
// symmetric key outlives the Put that used it. A Vault is safe for
// concurrent use.
type Vault struct {
	pub   *ecdh.PublicKey
	mu    sync.Mutex
	items map[string]sealed
	order []string
}

type sealed struct {
	eph   []byte // ephemeral X25519 public key
	nonce []byte
	box   []byte // XChaCha20-Poly1305 ciphertext and tag
}

func newVault(pub *ecdh.PublicKey) *Vault {
	return &Vault{pub: pub, items: map[string]sealed{}}
}

// Put seals plaintext under id and then zeroes plaintext in place, so the
// caller's buffer no longer holds the secret when Put returns (even when
// sealing fails). A later Put with the same id replaces the earlier one.
func (v *Vault) Put(id string, plaintext []byte) error {
	defer clear(plaintext)
	var s sealed
	var err error
	Do(func() { s, err = sealTo(v.pub, id, plaintext) })
	if err != nil {
		return fmt.Errorf("seal %q: %w", id, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.items[id]; !ok {
		v.order = append(v.order, id)
	}
	v.items[id] = s
	return nil
}

// Len is the number of sealed secrets.
func (v *Vault) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.items)
}

// IDs lists the ids in the order they were first put.
func (v *Vault) IDs() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.order...)
}

func sealKey(shared, eph, pub []byte) ([]byte, error) {
	salt := make([]byte, 0, len(eph)+len(pub))
	salt = append(append(salt, eph...), pub...)
	return hkdf.Key(sha256.New, shared, salt, infoSealKey, chacha20poly1305.KeySize)
}

func sealTo(pub *ecdh.PublicKey, id string, plaintext []byte) (sealed, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return sealed{}, err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return sealed{}, err
	}
	defer clear(shared)
	ephPub := eph.PublicKey().Bytes()
	key, err := sealKey(shared, ephPub, pub.Bytes())
	if err != nil {
		return sealed{}, err
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return sealed{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	// Allocate the ciphertext with exactly the needed capacity: Seal would
	// otherwise grow a slice and leave the old backing array behind.
	box := aead.Seal(make([]byte, 0, len(plaintext)+aead.Overhead()), nonce, plaintext, []byte(id))
	return sealed{eph: ephPub, nonce: nonce, box: box}, nil
}

var errCorrupt = errors.New("sealed secret does not open")

// open decrypts every secret with priv. It is all or nothing: on error no
// plaintext is returned (and any already opened are zeroed). Call inside Do.
func (v *Vault) open(priv *ecdh.PrivateKey) (map[string][]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string][]byte, len(v.items))
	fail := func(id string, err error) (map[string][]byte, error) {
		for _, p := range out {
			clear(p)
		}
		return nil, fmt.Errorf("open %q: %w", id, err)
	}
	for _, id := range v.order {
		s := v.items[id]
		ephPub, err := ecdh.X25519().NewPublicKey(s.eph)
		if err != nil {
			return fail(id, err)
		}
		shared, err := priv.ECDH(ephPub)
		if err != nil {
			return fail(id, err)
		}
		key, err := sealKey(shared, s.eph, priv.PublicKey().Bytes())
		clear(shared)
		if err != nil {
			return fail(id, err)
		}
		aead, err := chacha20poly1305.NewX(key)
		clear(key)
		if err != nil {
			return fail(id, err)
		}
		p, err := aead.Open(make([]byte, 0, len(s.box)), s.nonce, s.box, []byte(id))
		if err != nil {
			return fail(id, errCorrupt)
		}
		out[id] = p
	}
	return out, nil
}
