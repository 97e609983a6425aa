package fileerr

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	_, errMissing := os.ReadFile(filepath.Join(dir, "nope"))
	_, errDir := os.ReadFile(dir)
	_, errTemp := os.CreateTemp(filepath.Join(dir, "no", "such"), ".cc.tmp-*")
	for _, c := range []struct {
		err  error
		want string
	}{
		{errMissing, "keytab /k does not exist"},
		{errDir, "keytab /k is a directory, not a file"},
		{errTemp, "keytab /k does not exist"},
		{errors.New("bad magic"), "keytab /k: bad magic"},
	} {
		got := Describe("keytab", "/k", c.err)
		if got.Error() != c.want {
			t.Errorf("Describe(%v) = %q, want %q", c.err, got, c.want)
		}
		if strings.Contains(got.Error(), ".tmp-") {
			t.Errorf("temporary name leaks: %q", got)
		}
	}
	if !errors.Is(Describe("f", "/x", errMissing), fs.ErrNotExist) {
		t.Error("Describe hides fs.ErrNotExist")
	}
}
