package krb

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/sesame-ssh/sesame/internal/paths"
)

// A secret the KDC rejected stays rejected, across processes: the keeper
// records the rejection with a fingerprint of the secret, and every sesame
// process that would send the same secret for the same cache and principal
// (another `sesame renew`, the agent's keeper, a restarted systemd unit)
// reads the record and does not send it. A changed secret — a new
// `sesame kinit --remember`, a keytab with a new key or key version — has
// another fingerprint and is tried again. So a lockout policy sees exactly
// one failure per rejected secret, whatever runs.
//
// The fingerprint is an HMAC-SHA256 under a random key kept in the state
// directory (never the secret, never a plain hash of it: a password's
// plain hash could be brute-forced from the record).

// Rejection is the record of one rejected secret.
type Rejection struct {
	Cache       string    `json:"cache"`
	Principal   string    `json:"principal"`
	Secret      string    `json:"secret"` // what it was: "stored password", "keytab key version 3"
	Fingerprint string    `json:"fingerprint"`
	When        time.Time `json:"when"`
	Reason      string    `json:"reason"`
}

// fingerprintKeyPath holds the HMAC key of secret fingerprints.
func fingerprintKeyPath() string { return filepath.Join(paths.State(), "renew", "fingerprint.key") }

// fingerprintKey returns the per-user HMAC key, creating it (0600, O_EXCL)
// on first use. Two processes racing to create it agree on the winner's.
func fingerprintKey() ([]byte, error) {
	p := fingerprintKeyPath()
	if err := paths.EnsureDir(filepath.Dir(p)); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err == nil {
			key, err := io.ReadAll(io.LimitReader(f, 64))
			f.Close()
			if err != nil {
				return nil, err
			}
			if len(key) == 32 {
				return key, nil
			}
			return nil, fmt.Errorf("%s is damaged; remove it", p)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_, werr := f.Write(key)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(p)
			return nil, werr
		}
		return key, nil
	}
	return nil, fmt.Errorf("cannot create %s", p)
}

func fingerprint(parts ...[]byte) (string, error) {
	key, err := fingerprintKey()
	if err != nil {
		return "", fmt.Errorf("secret fingerprint: %w", err)
	}
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		// Length-prefixed so that no two part lists hash alike.
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		m.Write(p)
	}
	return hex.EncodeToString(m.Sum(nil)), nil
}

// PasswordFingerprint is the fingerprint of password for principal.
func PasswordFingerprint(principal string, password []byte) (string, error) {
	return fingerprint([]byte("password"), []byte(principal), password)
}

// KeytabFingerprint is the fingerprint of the keys kt holds for p: every
// entry's key version, encryption type and key. It changes when the keytab
// gets a new key or key version for p, not when other principals' keys
// change. It also returns the newest key version, to name the secret.
func KeytabFingerprint(kt *keytab.Keytab, p Principal) (string, uint32, error) {
	type ent struct {
		kvno  uint32
		etype int32
		key   []byte
	}
	var ents []ent
	var newest uint32
	for _, e := range kt.Entries {
		ep := Principal{Realm: e.Principal.Realm, Components: e.Principal.Components}
		if !ep.Equal(p) {
			continue
		}
		kvno := e.KVNO
		if kvno == 0 {
			kvno = uint32(e.KVNO8)
		}
		newest = max(newest, kvno)
		ents = append(ents, ent{kvno, e.Key.KeyType, e.Key.KeyValue})
	}
	sort.Slice(ents, func(i, j int) bool {
		if ents[i].kvno != ents[j].kvno {
			return ents[i].kvno < ents[j].kvno
		}
		return ents[i].etype < ents[j].etype
	})
	parts := [][]byte{[]byte("keytab"), []byte(p.String())}
	for _, e := range ents {
		parts = append(parts, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, e.kvno), uint32(e.etype)), e.key)
	}
	fp, err := fingerprint(parts...)
	return fp, newest, err
}

// rejectionPath is where the rejection for cache and principal is kept.
func rejectionPath(cache, principal string) string {
	sum := sha256.Sum256([]byte(cache + "\x00" + principal))
	return filepath.Join(paths.State(), "renew", hex.EncodeToString(sum[:8])+".rejected.json")
}

// RecordRejection remembers that the KDC rejected the secret with
// fingerprint r.Fingerprint for r.Cache and r.Principal.
func RecordRejection(r Rejection) error { return saveStateJSON(rejectionPath(r.Cache, r.Principal), r) }

// FindRejection returns the recorded rejection of the secret with
// fingerprint fp for cache and principal, if there is one. A record for a
// different secret does not count: that secret changed since.
//
// A record that cannot be read counts as a rejection of any secret: going
// on without it could cost the account another failure. A successful
// kinit for the principal and cache (ClearDamagedRejection) removes it.
func FindRejection(cache, principal, fp string) (Rejection, bool) {
	var r Rejection
	p := rejectionPath(cache, principal)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return r, false
	}
	if err != nil || json.Unmarshal(b, &r) != nil {
		return Rejection{Cache: cache, Principal: principal,
			Reason: fmt.Sprintf("its record %s cannot be read; a new sesame kinit clears it", p)}, true
	}
	if r.Cache != cache || r.Principal != principal || !hmac.Equal([]byte(r.Fingerprint), []byte(fp)) {
		return r, false
	}
	return r, true
}

// ClearDamagedRejection removes the rejection record for cache and
// principal if it cannot be read (FindRejection counts such a record as a
// rejection of any secret). A readable record stays: it names the secret
// it is about, and only that secret changing clears it.
func ClearDamagedRejection(cache, principal string) {
	p := rejectionPath(cache, principal)
	var r Rejection
	if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &r) != nil {
		os.Remove(p)
	}
}

// ClearRejectedSecret forgets every rejection of the secret with
// fingerprint fp for principal, whatever cache it was recorded for: the
// KDC has just accepted that secret (a successful kinit).
func ClearRejectedSecret(principal, fp string) {
	ents, err := os.ReadDir(filepath.Join(paths.State(), "renew"))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".rejected.json") {
			continue
		}
		p := filepath.Join(paths.State(), "renew", e.Name())
		var r Rejection
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &r) == nil &&
			r.Principal == principal && hmac.Equal([]byte(r.Fingerprint), []byte(fp)) {
			os.Remove(p)
		}
	}
}
