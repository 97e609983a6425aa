package krb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/statefile"
)

// A renewal state file that does not parse is set aside with one warning,
// and the next save writes a fresh one.
func TestKeeperStateDamagedIsSetAside(t *testing.T) {
	t.Setenv("SESAME_HOME", t.TempDir())
	var warnings []string
	old := statefile.Warn
	statefile.Warn = func(msg string) { warnings = append(warnings, msg) }
	t.Cleanup(func() { statefile.Warn = old })

	const cache = "FILE:/tmp/krb5cc_test"
	p := KeeperStatePath(cache)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(`{"cache": "FILE:/tmp/krb5cc_test", "running": tr`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := LoadKeeperState(cache); ok {
		t.Fatal("damaged state loaded")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "renewal state file "+p+" is damaged (not valid JSON); moved it to "+p+".damaged-") {
		t.Fatalf("warnings: %q", warnings)
	}
	aside, _ := filepath.Glob(p + ".damaged-*")
	if _, err := os.Stat(p); !os.IsNotExist(err) || len(aside) != 1 {
		t.Fatalf("state file not set aside: %v, %v", err, aside)
	}
	if err := SaveKeeperState(KeeperState{Cache: cache, Stopped: time.Now(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if s, ok := LoadKeeperState(cache); !ok || s.Reason != "test" || len(warnings) != 1 {
		t.Errorf("after a fresh save: %+v %v, warnings %q", s, ok, warnings)
	}
}
