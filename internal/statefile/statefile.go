// Package statefile sets aside a state file that sesame wrote but can no
// longer parse (learned pins, the renewer's state, key rotation state):
// the file is renamed next to itself with a timestamp, one warning says
// where it went, and the caller goes on as if there were none. The file is
// kept rather than deleted so that nothing is lost that a person may want
// to look at; it is not overwritten by the next write either. Files that
// hold secrets (the vault) must never go through here: a vault that does
// not open is an error for the user to resolve.
//
// It imports nothing of the project's.
package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"
)

// Warn reports a file set aside, in one line without a prefix. Commands
// point it at standard error ("sesame: warning: …"); the default logs it.
var Warn = func(msg string) { slog.Warn(msg) }

// now is the clock for the timestamp, replaced by tests.
var now = time.Now

// SetAside renames the damaged file at path to
// PATH.damaged-YYYYMMDDTHHMMSSZ (with -1, -2… when that exists), reports it
// once through Warn naming what the file is, why it was set aside and
// where it is now, and returns the new name. A file that is gone already
// (another process set it aside first) gives "" and no error or warning.
func SetAside(path, what, reason string) (string, error) {
	stamp := now().UTC().Format("20060102T150405Z")
	dest := path + ".damaged-" + stamp
	for i := 1; ; i++ {
		if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dest = fmt.Sprintf("%s.damaged-%s-%d", path, stamp, i)
	}
	if err := os.Rename(path, dest); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("%s %s is damaged (%s) and could not be moved aside: %w", what, path, reason, err)
	}
	Warn(fmt.Sprintf("%s %s is damaged (%s); moved it to %s and went on without it", what, path, reason, dest))
	return dest, nil
}
