package keychain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"unicode"
	"unicode/utf8"
)

// The vault's inner format, what the age layer decrypts to:
//
//	magic   "SESAMEV1"
//	count   uint32, big-endian
//	count × { nameLen uint16, name, secretLen uint32, secret }
//
// Entries are sorted by name, strictly (so names are unique), and nothing
// may follow the last one. Being canonical, decode(encode(m)) == m and
// encode(decode(b)) == b, which the fuzz test checks. The format is binary
// rather than JSON so that secrets are stored as given (no base64 copies
// in memory) and the parser stays small enough to check by eye.
const vaultMagic = "SESAMEV1"

// Limits keep a hostile or damaged file from making the decoder allocate
// without bound; a real vault is a few kilobytes.
const (
	maxNameLen   = 1024
	maxSecretLen = 1 << 20
	maxEntries   = 1 << 16
)

var errVaultFormat = errors.New("vault contents malformed")

// validName checks an entry name: non-empty, bounded, UTF-8, no control
// characters (names show up in listings and error messages).
func validName(name string) error {
	if name == "" {
		return errors.New("empty entry name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("entry name longer than %d bytes", maxNameLen)
	}
	if !utf8.ValidString(name) {
		return errors.New("entry name is not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errors.New("entry name contains a control character")
		}
	}
	return nil
}

// encodeVault serialises entries in the canonical order.
func encodeVault(entries map[string][]byte) ([]byte, error) {
	names := make([]string, 0, len(entries))
	size := len(vaultMagic) + 4
	for n, s := range entries {
		if err := validName(n); err != nil {
			return nil, err
		}
		if len(s) > maxSecretLen {
			return nil, fmt.Errorf("secret %q larger than %d bytes", n, maxSecretLen)
		}
		names = append(names, n)
		size += 2 + len(n) + 4 + len(s)
	}
	if len(names) > maxEntries {
		return nil, fmt.Errorf("more than %d entries", maxEntries)
	}
	sort.Strings(names)
	out := make([]byte, 0, size)
	out = append(out, vaultMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(names)))
	for _, n := range names {
		out = binary.BigEndian.AppendUint16(out, uint16(len(n)))
		out = append(out, n...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(entries[n])))
		out = append(out, entries[n]...)
	}
	return out, nil
}

// decodeVault parses the inner format, checking every length against the
// bytes that remain. Secrets are copied out, so b may be wiped afterwards.
func decodeVault(b []byte) (map[string][]byte, error) {
	if len(b) < len(vaultMagic)+4 || string(b[:len(vaultMagic)]) != vaultMagic {
		return nil, fmt.Errorf("%w: bad header", errVaultFormat)
	}
	b = b[len(vaultMagic):]
	count := binary.BigEndian.Uint32(b)
	b = b[4:]
	// Each entry takes at least 2+1+4 bytes: a count the data cannot hold
	// is rejected before anything is allocated for it.
	if count > maxEntries || uint64(count)*7 > uint64(len(b)) {
		return nil, fmt.Errorf("%w: entry count %d does not fit", errVaultFormat, count)
	}
	entries := make(map[string][]byte, count)
	prev := ""
	for i := uint32(0); i < count; i++ {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: truncated entry %d", errVaultFormat, i)
		}
		nl := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if nl > len(b) {
			return nil, fmt.Errorf("%w: truncated name in entry %d", errVaultFormat, i)
		}
		name := string(b[:nl])
		b = b[nl:]
		if err := validName(name); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", errVaultFormat, i, err)
		}
		if i > 0 && name <= prev {
			return nil, fmt.Errorf("%w: entries out of order at %d", errVaultFormat, i)
		}
		prev = name
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated entry %d", errVaultFormat, i)
		}
		sl := binary.BigEndian.Uint32(b)
		b = b[4:]
		if sl > maxSecretLen || uint64(sl) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: bad secret length in entry %d", errVaultFormat, i)
		}
		entries[name] = append([]byte(nil), b[:sl]...)
		b = b[sl:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errVaultFormat, len(b))
	}
	return entries, nil
}
