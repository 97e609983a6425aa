package agent

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"math/big"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/internal/sshwire"
)

// Host keys in session-bind@openssh.com and in destination constraints are
// read as OpenSSH's sshkey_from_blob reads them, not as x/crypto does. The
// two disagree on RSA: x/crypto refuses a public exponent above 2^24
// ("exponent too large"), OpenSSH takes any, and a host whose key sesame
// could not read would drop out of the chain of binds while ssh-agent
// keeps it. The other way round, x/crypto takes RSA moduli below OpenSSH's
// minimum and certificates whose CA signature does not verify; OpenSSH
// refuses both when it reads the key.

// Limits of OpenSSH's RSA (SSH_RSA_MINIMUM_MODULUS_SIZE,
// OPENSSL_RSA_MAX_MODULUS_BITS) and OpenSSL's checks on a public key when
// verifying: past 3072 bits of modulus the exponent has at most 64 bits.
const (
	rsaMinBits         = 1024
	rsaMaxBits         = 16384
	rsaSmallModulus    = 3072
	rsaMaxPubExpBits   = 64
	maxHostCertStrings = 64 // bound on a certificate's fields walked by hand
)

// errHostKey is wrapped by every host key refused.
var errHostKey = errors.New("host key")

// ParseHostKey reads a public key blob as OpenSSH accepts it for a host:
// every plain key type and certificate x/crypto knows, RSA with any odd
// public exponent of at least 3, and only RSA moduli of 1024 to 16384
// bits; a certificate's CA signature must verify.
func ParseHostKey(blob []byte) (ssh.PublicKey, error) {
	return parseHostKeyDepth(blob, true)
}

func parseHostKeyDepth(blob []byte, certOK bool) (ssh.PublicKey, error) {
	r := sshwire.Reader{B: blob}
	typ := string(r.String())
	if r.Err != nil {
		return nil, fmt.Errorf("%w: %w", errHostKey, r.Err)
	}
	if _, ok := certPlainType[typ]; ok {
		if !certOK {
			return nil, fmt.Errorf("%w: a certificate signed by a certificate", errHostKey)
		}
		return parseHostCert(blob)
	}
	if typ == ssh.KeyAlgoRSA {
		return parseRSAHostKey(blob)
	}
	k, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHostKey, err)
	}
	return k, nil
}

// certPlainType maps a certificate type to its key's type, and how many
// strings (mpints included) the key's fields take in the certificate, as
// in PROTOCOL.certkeys.
var certPlainType = map[string]struct {
	plain  string
	fields int
}{
	ssh.CertAlgoRSAv01:         {ssh.KeyAlgoRSA, 2},
	ssh.InsecureCertAlgoDSAv01: {ssh.InsecureKeyAlgoDSA, 4},
	ssh.CertAlgoECDSA256v01:    {ssh.KeyAlgoECDSA256, 2},
	ssh.CertAlgoECDSA384v01:    {ssh.KeyAlgoECDSA384, 2},
	ssh.CertAlgoECDSA521v01:    {ssh.KeyAlgoECDSA521, 2},
	ssh.CertAlgoED25519v01:     {ssh.KeyAlgoED25519, 1},
	ssh.CertAlgoSKECDSA256v01:  {ssh.KeyAlgoSKECDSA256, 3},
	ssh.CertAlgoSKED25519v01:   {ssh.KeyAlgoSKED25519, 2},
}

// parseRSAHostKey reads "ssh-rsa" e n. A key x/crypto can hold is its
// own type (what the rest of sesame expects); one with a larger exponent
// is a bigRSAKey.
func parseRSAHostKey(blob []byte) (ssh.PublicKey, error) {
	var w struct {
		Name string
		E, N *big.Int
	}
	if err := ssh.Unmarshal(blob, &w); err != nil {
		return nil, fmt.Errorf("%w: rsa: %w", errHostKey, err)
	}
	if err := checkRSA(w.E, w.N); err != nil {
		return nil, err
	}
	// One spelling per key: sesame compares host keys by their blobs.
	if !bytes.Equal(ssh.Marshal(&w), blob) {
		return nil, fmt.Errorf("%w: rsa: not in canonical form", errHostKey)
	}
	if w.E.BitLen() <= 24 {
		k, err := ssh.ParsePublicKey(blob)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errHostKey, err)
		}
		return k, nil
	}
	return &bigRSAKey{e: w.E, n: w.N}, nil
}

// checkRSA applies OpenSSH's limits on an RSA public key.
func checkRSA(e, n *big.Int) error {
	switch {
	case n.Sign() <= 0 || e.Sign() <= 0:
		return fmt.Errorf("%w: rsa: negative or zero component", errHostKey)
	case n.BitLen() < rsaMinBits:
		return fmt.Errorf("%w: rsa: modulus of %d bits is below %d", errHostKey, n.BitLen(), rsaMinBits)
	case n.BitLen() > rsaMaxBits:
		return fmt.Errorf("%w: rsa: modulus of %d bits is above %d", errHostKey, n.BitLen(), rsaMaxBits)
	case e.Bit(0) == 0 || e.Cmp(big.NewInt(3)) < 0:
		return fmt.Errorf("%w: rsa: exponent not odd or below 3", errHostKey)
	case e.Cmp(n) >= 0:
		return fmt.Errorf("%w: rsa: exponent not below the modulus", errHostKey)
	case n.BitLen() > rsaSmallModulus && e.BitLen() > rsaMaxPubExpBits:
		return fmt.Errorf("%w: rsa: exponent of %d bits with a modulus above %d bits", errHostKey, e.BitLen(), rsaSmallModulus)
	}
	return nil
}

// bigRSAKey is an RSA public key whose exponent x/crypto and crypto/rsa
// refuse. Its signatures are checked here with math/big: the key is
// public and so is everything the check handles.
type bigRSAKey struct{ e, n *big.Int }

var _ ssh.PublicKey = (*bigRSAKey)(nil)

func (k *bigRSAKey) Type() string { return ssh.KeyAlgoRSA }

func (k *bigRSAKey) Marshal() []byte {
	return ssh.Marshal(&struct {
		Name string
		E, N *big.Int
	}{ssh.KeyAlgoRSA, k.e, k.n})
}

// DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017, section 9.2, note 1).
var (
	digestInfoSHA1   = []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
	digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	digestInfoSHA512 = []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}
)

// Verify checks an ssh-rsa (SHA-1), rsa-sha2-256 or rsa-sha2-512
// signature as OpenSSH's ssh_rsa_verify: a signature shorter than the
// modulus is padded on the left with zeros (OpenSSH accepts those), a
// longer one is refused, and the decrypted block must be exactly the
// PKCS #1 v1.5 encoding of the digest.
func (k *bigRSAKey) Verify(data []byte, sig *ssh.Signature) error {
	return verifyBigRSA(k.e, k.n, data, sig)
}

func verifyBigRSA(e, n *big.Int, data []byte, sig *ssh.Signature) error {
	var h hash.Hash
	var prefix []byte
	switch sig.Format {
	case ssh.KeyAlgoRSA:
		h, prefix = sha1.New(), digestInfoSHA1
	case ssh.KeyAlgoRSASHA256:
		h, prefix = sha256.New(), digestInfoSHA256
	case ssh.KeyAlgoRSASHA512:
		h, prefix = sha512.New(), digestInfoSHA512
	default:
		return fmt.Errorf("ssh: signature type %s for key type %s", sig.Format, ssh.KeyAlgoRSA)
	}
	if len(sig.Rest) != 0 {
		return errors.New("ssh: rsa signature with trailing data")
	}
	if err := checkRSA(e, n); err != nil {
		return err
	}
	h.Write(data)
	digest := h.Sum(nil)
	modLen := (n.BitLen() + 7) / 8
	if len(sig.Blob) == 0 || len(sig.Blob) > modLen {
		return errors.New("ssh: rsa signature of the wrong length")
	}
	s := new(big.Int).SetBytes(sig.Blob)
	if s.Cmp(n) >= 0 {
		return errors.New("ssh: rsa signature out of range")
	}
	em := new(big.Int).Exp(s, e, n).FillBytes(make([]byte, modLen))
	want := make([]byte, modLen)
	tLen := len(prefix) + len(digest)
	if modLen < tLen+11 {
		return errors.New("ssh: rsa modulus too short for the digest")
	}
	want[1] = 0x01
	for i := 2; i < modLen-tLen-1; i++ {
		want[i] = 0xff
	}
	copy(want[modLen-tLen:], prefix)
	copy(want[modLen-len(digest):], digest)
	if subtle.ConstantTimeCompare(em, want) != 1 {
		return errors.New("ssh: rsa signature does not verify")
	}
	return nil
}

// parseHostCert reads a certificate (PROTOCOL.certkeys) by hand, so that
// its key and its CA's key are read by parseHostKey, and checks the CA's
// signature over it, as OpenSSH's cert_parse does when it reads one. The
// result is an *ssh.Certificate like x/crypto's, whose Marshal gives the
// blob back (one refused otherwise: sesame compares keys by their blobs).
func parseHostCert(blob []byte) (ssh.PublicKey, error) {
	r := sshwire.Reader{B: blob}
	typ := string(r.String())
	nonce := r.String()
	info := certPlainType[typ]
	plain := appendString(nil, []byte(info.plain))
	for range info.fields {
		start := r.B
		r.String()
		if r.Err != nil {
			break
		}
		plain = append(plain, start[:len(start)-len(r.B)]...)
	}
	if r.Err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", errHostKey, r.Err)
	}
	key, err := parseHostKeyDepth(plain, false)
	if err != nil {
		return nil, err
	}
	var g struct {
		Serial          uint64
		CertType        uint32
		KeyId           string
		ValidPrincipals []byte
		ValidAfter      uint64
		ValidBefore     uint64
		CriticalOptions []byte
		Extensions      []byte
		Reserved        []byte
		SignatureKey    []byte
		Signature       []byte
	}
	if err := ssh.Unmarshal(r.B, &g); err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", errHostKey, err)
	}
	c := &ssh.Certificate{
		Nonce: bytes.Clone(nonce), Key: key, Serial: g.Serial, CertType: g.CertType,
		KeyId: g.KeyId, ValidAfter: g.ValidAfter, ValidBefore: g.ValidBefore,
		Reserved: bytes.Clone(g.Reserved),
	}
	for p := (sshwire.Reader{B: g.ValidPrincipals}); len(p.B) > 0; {
		s := p.String()
		if p.Err != nil {
			return nil, fmt.Errorf("%w: certificate principals: %w", errHostKey, p.Err)
		}
		c.ValidPrincipals = append(c.ValidPrincipals, string(s))
	}
	if c.CriticalOptions, err = parseCertTuples(g.CriticalOptions); err != nil {
		return nil, err
	}
	if c.Extensions, err = parseCertTuples(g.Extensions); err != nil {
		return nil, err
	}
	if c.SignatureKey, err = parseHostKeyDepth(g.SignatureKey, false); err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(g.Signature, sig); err != nil {
		return nil, fmt.Errorf("%w: certificate signature: %w", errHostKey, err)
	}
	c.Signature = sig
	signed := blob[:len(blob)-4-len(g.Signature)]
	if err := c.SignatureKey.Verify(signed, sig); err != nil {
		return nil, fmt.Errorf("%w: certificate signature: %w", errHostKey, err)
	}
	if !bytes.Equal(c.Marshal(), blob) {
		return nil, fmt.Errorf("%w: certificate not in canonical form", errHostKey)
	}
	return c, nil
}

// parseCertTuples reads a certificate's critical options or extensions:
// names in strictly increasing order, each value empty or one string.
func parseCertTuples(b []byte) (map[string]string, error) {
	out := map[string]string{}
	r := sshwire.Reader{B: b}
	last, first := "", true
	for len(r.B) > 0 {
		name, val := string(r.String()), r.String()
		if r.Err != nil {
			return nil, fmt.Errorf("%w: certificate options: %w", errHostKey, r.Err)
		}
		if !first && name <= last {
			return nil, fmt.Errorf("%w: certificate options not in order", errHostKey)
		}
		last, first = name, false
		if len(val) > 0 {
			vr := sshwire.Reader{B: val}
			inner := vr.String()
			if vr.Err != nil || len(vr.B) != 0 {
				return nil, fmt.Errorf("%w: certificate option %q malformed", errHostKey, name)
			}
			out[name] = string(inner)
		} else {
			out[name] = ""
		}
	}
	return out, nil
}
