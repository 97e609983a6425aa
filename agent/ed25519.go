package agent

import (
	"crypto/ed25519"

	"golang.org/x/crypto/ssh"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Ed25519 signatures are made with curve25519-voi (Oasis Protocol's Go port
// of curve25519-dalek) instead of crypto/ed25519: its base-point
// multiplication signs in about half the time here (15 µs against 29 µs),
// and signing is most of the work an agent does for each login. Ed25519 is
// deterministic, so both must give the same bytes for the same key and
// message; TestEd25519MatchesStdlib and FuzzEd25519MatchesStdlib check it.
// Key parsing, public keys and verification stay with the standard library.

// ed25519Key returns the Ed25519 private key behind an added key, or nil.
func ed25519Key(priv any) ed25519.PrivateKey {
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return k
	case *ed25519.PrivateKey:
		if k != nil {
			return *k
		}
	}
	return nil
}

// signEd25519 signs data as an ssh-ed25519 signature (RFC 8709). A
// certificate's signature has the same format as its key's.
func signEd25519(k ed25519.PrivateKey, data []byte) *ssh.Signature {
	return &ssh.Signature{Format: ssh.KeyAlgoED25519, Blob: voi.Sign(voi.PrivateKey(k), data)}
}
