package lock

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// MaxPassphrase is the longest lock passphrase accepted, in bytes. Anything
// longer is refused before hashing: no one types 64 KiB, and argon2id's
// first pass over the input must not become a way to burn CPU or memory.
const MaxPassphrase = 64 << 10

// KDF holds the argon2id cost parameters.
type KDF struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDF costs roughly 100–200 ms and 64 MiB on a 2-core machine: it
// is the second recommended setting of RFC 9106 (t=3, 64 MiB) with two lanes
// to match two cores. An unlock is a rare, interactive event, so a fifth of
// a second is unnoticed by a person but caps an attacker who has the
// verifier at a handful of guesses per second per core, and the memory
// makes GPU guessing expensive. More memory would push a shared 2-core box
// into swapping when several attempts overlap; attempts are serialised, so
// at most one argon2id runs per Locker at a time.
var DefaultKDF = KDF{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

const (
	saltLen     = 16
	tagLen      = 32
	infoVerify  = "sesame lock verifier v1"
	infoX25519  = "sesame lock x25519 v1"
	infoSealKey = "sesame lock seal v1"
)

func checkPassphrase(pass []byte) error {
	if len(pass) == 0 {
		return ErrEmptyPassphrase
	}
	if len(pass) > MaxPassphrase {
		return ErrPassphraseTooLong
	}
	return nil
}

// Verifier is a lock passphrase reduced to what is needed to recognise it
// and to seal secrets under it: a random salt, the argon2id parameters, a
// verification tag and an X25519 public key. It holds nothing from which
// the passphrase or the unsealing key follows without redoing argon2id.
type Verifier struct {
	kdf  KDF
	salt []byte
	tag  []byte
	pub  *ecdh.PublicKey
}

// NewVerifier hashes pass with a fresh salt. Empty and over-long
// passphrases are refused. The caller should zero pass afterwards.
func NewVerifier(pass []byte, kdf KDF) (*Verifier, error) {
	if err := checkPassphrase(pass); err != nil {
		return nil, err
	}
	if kdf == (KDF{}) {
		kdf = DefaultKDF
	}
	if kdf.Time == 0 || kdf.MemoryKiB < 8 || kdf.Threads == 0 {
		return nil, fmt.Errorf("lock: invalid argon2id parameters %+v", kdf)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	v := &Verifier{kdf: kdf, salt: salt}
	var err error
	Do(func() {
		var priv *ecdh.PrivateKey
		v.tag, priv, err = v.derive(pass)
		if err == nil {
			v.pub = priv.PublicKey()
		}
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// derive runs argon2id and splits its output with HKDF into the
// verification tag and the X25519 private key. Call it inside Do: the
// argon2id work area (tens of MiB) holds values from which the key follows.
func (v *Verifier) derive(pass []byte) (tag []byte, priv *ecdh.PrivateKey, err error) {
	okm := argon2.IDKey(pass, v.salt, v.kdf.Time, v.kdf.MemoryKiB, v.kdf.Threads, 32)
	defer clear(okm)
	tag, err = hkdf.Expand(sha256.New, okm, infoVerify, tagLen)
	if err != nil {
		return nil, nil, err
	}
	scalar, err := hkdf.Expand(sha256.New, okm, infoX25519, 32)
	if err != nil {
		return nil, nil, err
	}
	defer clear(scalar)
	priv, err = ecdh.X25519().NewPrivateKey(scalar)
	return tag, priv, err
}

// Check reports whether pass is the passphrase: nil, or ErrBadPassphrase
// (or the error for an empty or over-long one). The tag comparison is
// constant-time.
func (v *Verifier) Check(pass []byte) error {
	var err error
	Do(func() { _, err = v.open(pass) })
	return err
}

// open checks pass and returns the X25519 private key that opens vaults
// sealed to this verifier. Call it inside Do.
func (v *Verifier) open(pass []byte) (*ecdh.PrivateKey, error) {
	if err := checkPassphrase(pass); err != nil {
		return nil, err
	}
	tag, priv, err := v.derive(pass)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(tag, v.tag) != 1 {
		return nil, ErrBadPassphrase
	}
	return priv, nil
}
