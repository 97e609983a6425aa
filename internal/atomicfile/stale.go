//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// StaleAge is how old a temporary file of Write must be before RemoveStale
// takes it: a younger one may belong to a writer still at work.
const StaleAge = 30 * time.Second

// TempPrefix is the name prefix of Write's temporary files for path
// (".NAME.tmp-"); a writer killed between writing and renaming leaves one
// behind, complete and holding whatever path was to hold.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// RemoveStale zeroes and removes the files in dir whose names match and
// that are regular files owned by the caller's uid, modified at least
// minAge ago. Links, other users' files and anything else are left alone.
// Failures are ignored: a read-only directory keeps its leftovers.
func RemoveStale(dir string, match func(name string) bool, minAge time.Duration) {
	ents, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !match(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < minAge {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		Zero(p)
		os.Remove(p)
	}
}

// RemoveStaleTemps is RemoveStale for Write's temporary files of path
// older than StaleAge.
func RemoveStaleTemps(path string) {
	prefix := TempPrefix(path)
	RemoveStale(filepath.Dir(path), func(n string) bool { return strings.HasPrefix(n, prefix) }, StaleAge)
}
