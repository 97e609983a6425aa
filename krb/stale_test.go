package krb

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 16: temporary files of ours left next to a cache by a killed
// writer hold full credentials; the next write removes them (when old
// enough not to belong to a writer at work), destroying the cache removes
// them all, and they are zeroed before they go.
func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "krb5cc")
	tgt := tgtCred(t0, t0.Add(time.Hour), t0.Add(2*time.Hour), true)
	cc := &CCache{DefaultPrincipal: tgt.Client, Credentials: []Credential{*tgt}}
	if err := WriteCCache(path, cc); err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte("key material "), 100)
	mk := func(name string, age time.Duration) *os.File {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, secret, 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		os.Chtimes(p, old, old)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(dir, name))
		return err == nil
	}
	stale := mk(".krb5cc.tmp-111", time.Hour)
	mk(".krb5cc.tmp-222", 0) // a writer at work
	mk(".other.tmp-333", time.Hour)
	if err := WriteCCache(path, cc); err != nil {
		t.Fatal(err)
	}
	if exists(".krb5cc.tmp-111") || !exists(".krb5cc.tmp-222") || !exists(".other.tmp-333") {
		t.Fatal("the write did not remove exactly the stale temporary file of this cache")
	}
	if b, _ := io.ReadAll(stale); bytes.Contains(b, []byte("key")) || len(b) != len(secret) {
		t.Fatalf("the stale temporary file was removed without being zeroed (%d bytes)", len(b))
	}
	if err := DestroyCCache(path); err != nil {
		t.Fatal(err)
	}
	if exists(".krb5cc.tmp-222") {
		t.Fatal("destroying the cache left a temporary file of it")
	}

	// A DIR collection: destroying its caches also clears the primary
	// file's and other caches' leftovers.
	mk(".primary.tmp-444", 0)
	mk(".tktGone.tmp-555", 0)
	member := filepath.Join(dir, "tktA")
	if err := WriteCCache(member, cc); err != nil {
		t.Fatal(err)
	}
	if err := DestroyCCache(member); err != nil {
		t.Fatal(err)
	}
	if exists(".primary.tmp-444") || exists(".tktGone.tmp-555") {
		t.Fatal("kdestroy of a DIR collection left temporary files")
	}
}

// UpdateCCache writes in place, so it refuses a file that is not only the
// cache: one with another hard link.
func TestUpdateRefusesHardLinkedCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "krb5cc")
	tgt := tgtCred(t0, t0.Add(time.Hour), t0.Add(2*time.Hour), true)
	if err := WriteCCache(path, &CCache{DefaultPrincipal: tgt.Client, Credentials: []Credential{*tgt}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := UpdateCCache(context.Background(), path, func(cur *CCache) (*CCache, error) {
		cur.Credentials = nil
		return cur, nil
	})
	if err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Fatalf("update of a hard-linked cache: %v", err)
	}
	if CheckReplaceable(path) == nil {
		t.Fatal("CheckReplaceable accepts a hard-linked cache")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the hard-linked file was changed")
	}
}

// A rejection record that cannot be read counts as a rejection (the secret
// is not sent on a guess); a record names its secret, so another secret
// is not blocked by it.
func TestRejectionRecords(t *testing.T) {
	t.Setenv("SESAME_HOME", t.TempDir())
	fp1, err := PasswordFingerprint("alice@EX.ORG", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	fp2, _ := PasswordFingerprint("alice@EX.ORG", []byte("two"))
	if fp1 == fp2 || strings.Contains(fp1, "one") {
		t.Fatal("fingerprints do not tell the secrets apart")
	}
	if _, ok := FindRejection("FILE:/c", "alice@EX.ORG", fp1); ok {
		t.Fatal("rejection found before any was recorded")
	}
	if err := RecordRejection(Rejection{Cache: "FILE:/c", Principal: "alice@EX.ORG", Fingerprint: fp1, When: time.Now(), Reason: "wrong password"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := FindRejection("FILE:/c", "alice@EX.ORG", fp1); !ok {
		t.Fatal("recorded rejection not found")
	}
	if _, ok := FindRejection("FILE:/c", "alice@EX.ORG", fp2); ok {
		t.Fatal("a changed secret is still blocked")
	}
	ClearDamagedRejection("FILE:/c", "alice@EX.ORG")
	if _, ok := FindRejection("FILE:/c", "alice@EX.ORG", fp1); !ok {
		t.Fatal("a readable record was cleared as damaged")
	}
	os.WriteFile(rejectionPath("FILE:/c", "alice@EX.ORG"), []byte("{garbage"), 0o600)
	if _, ok := FindRejection("FILE:/c", "alice@EX.ORG", fp2); !ok {
		t.Fatal("a damaged record does not count as a rejection")
	}
	ClearDamagedRejection("FILE:/c", "alice@EX.ORG")
	if _, ok := FindRejection("FILE:/c", "alice@EX.ORG", fp2); ok {
		t.Fatal("the damaged record was not cleared")
	}
	ClearRejectedSecret("alice@EX.ORG", fp1)
}
