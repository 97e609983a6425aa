package statefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSetAside(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "learned-pins.json")
	var warnings []string
	Warn = func(msg string) { warnings = append(warnings, msg) }
	now = func() time.Time { return time.Date(2026, 11, 29, 1, 2, 3, 0, time.UTC) }
	t.Cleanup(func() { now = time.Now })

	for i, want := range []string{p + ".damaged-20261129T010203Z", p + ".damaged-20261129T010203Z-1"} {
		if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := SetAside(p, "learned pins file", "not valid JSON")
		if err != nil || got != want {
			t.Fatalf("SetAside #%d = %q, %v; want %q", i, got, err, want)
		}
		if b, _ := os.ReadFile(got); string(b) != "garbage" {
			t.Errorf("set-aside file holds %q", b)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("original still there: %v", err)
		}
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "learned pins file "+p+" is damaged (not valid JSON); moved it to "+p+".damaged-20261129T010203Z") {
		t.Errorf("warnings: %q", warnings)
	}
	// Gone already: nothing to do, nothing to say.
	if got, err := SetAside(p, "learned pins file", "x"); got != "" || err != nil || len(warnings) != 2 {
		t.Errorf("SetAside of a missing file = %q, %v, %d warnings", got, err, len(warnings))
	}
}
