package lock

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"math/big"
)

// Wipe zeroes the private parts of a key in place and drops the library's
// cached copies it can reach. It understands ed25519.PrivateKey (value or
// pointer), *rsa.PrivateKey, *ecdsa.PrivateKey, []byte and *[]byte (raw or
// PEM buffers); anything else is an error and nothing is touched. Public
// parts (N, E, X, Y) are left alone, so a public key derived from the
// private one stays valid. The key must not be used afterwards.
//
// What Wipe cannot reach, and how it is covered:
//   - crypto/rsa keeps a second copy of d, p, q, dP, dQ and qInv in an
//     internal FIPS key behind PrivateKey.Precomputed. Wipe drops that
//     reference (Precomputed is reset), so the copy becomes garbage; if it
//     was created inside Do (parse and sign inside Do), the runtime zeroes
//     it when it is freed.
//   - crypto/ed25519 and crypto/ecdsa cache the expanded FIPS private key
//     in a weak map keyed by the caller's key; the entry goes once the key
//     is unreachable (a cleanup after one GC, freed at the next). Same
//     cover: created inside Do, zeroed when freed.
//   - Temporaries of parsing (decoded PEM, the wire message) and of
//     signing (nonces, scalar products) are likewise only erased when they
//     were allocated inside Do.
//
// Without GOEXPERIMENT=runtimesecret those copies stay in freed memory until
// the allocator reuses it or the scavenger returns the pages to the OS.
func Wipe(key any) error {
	switch k := key.(type) {
	case nil:
		return nil
	case ed25519.PrivateKey:
		clear(k)
	case *ed25519.PrivateKey:
		if k != nil {
			clear(*k)
			*k = nil
		}
	case *rsa.PrivateKey:
		if k != nil {
			wipeRSA(k)
		}
	case *ecdsa.PrivateKey:
		if k != nil {
			wipeInt(k.D)
		}
	case []byte:
		clear(k)
	case *[]byte:
		if k != nil {
			clear(*k)
			*k = nil
		}
	default:
		return fmt.Errorf("lock: cannot wipe a %T", key)
	}
	return nil
}

func wipeRSA(k *rsa.PrivateKey) {
	wipeInt(k.D)
	for _, p := range k.Primes {
		wipeInt(p)
	}
	pc := &k.Precomputed
	wipeInt(pc.Dp)
	wipeInt(pc.Dq)
	wipeInt(pc.Qinv)
	for i := range pc.CRTValues {
		wipeInt(pc.CRTValues[i].Exp)
		wipeInt(pc.CRTValues[i].Coeff)
		wipeInt(pc.CRTValues[i].R)
	}
	// Dropping the whole struct also drops the unexported FIPS key copy.
	k.Precomputed = rsa.PrecomputedValues{}
}

// wipeInt zeroes x's words, including spare capacity: big.Int reuses its
// backing array, so words past len can hold earlier intermediate values.
func wipeInt(x *big.Int) {
	if x == nil {
		return
	}
	w := x.Bits()
	clear(w[:cap(w)])
	x.SetInt64(0)
}
