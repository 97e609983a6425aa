package agent

import (
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"strings"

	"golang.org/x/crypto/ssh"
)

// FingerprintHash is the digest key fingerprints are shown with in
// confirmation prompts and logs (ssh-agent -E). The zero value is SHA256,
// OpenSSH's default.
type FingerprintHash string

// ParseFingerprintHash reads an -E argument: the digests OpenSSH knows
// (md5, sha1, sha256, sha384, sha512), case-insensitively.
func ParseFingerprintHash(name string) (FingerprintHash, bool) {
	switch n := strings.ToLower(name); n {
	case "md5", "sha1", "sha256", "sha384", "sha512":
		return FingerprintHash(n), true
	}
	return "", false
}

// Fingerprint is key's fingerprint with this digest, in OpenSSH's format:
// "MD5:" and colon-separated hex for MD5, else the digest's name and
// unpadded base64.
func (h FingerprintHash) Fingerprint(key ssh.PublicKey) string {
	var d hash.Hash
	switch h {
	case "md5":
		return "MD5:" + strings.TrimPrefix(ssh.FingerprintLegacyMD5(key), "MD5:")
	case "sha1":
		d = sha1.New()
	case "sha384":
		d = sha512.New384()
	case "sha512":
		d = sha512.New()
	default:
		return ssh.FingerprintSHA256(key)
	}
	d.Write(key.Marshal())
	return strings.ToUpper(string(h[:3])) + string(h[3:]) + ":" + base64.RawStdEncoding.EncodeToString(d.Sum(nil))
}
