// Package paths says where sesame keeps its files: configuration, state and
// runtime sockets. Everything lives under $SESAME_HOME when it is set (tests
// rely on that), otherwise under the XDG base directories.
package paths

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Config is the directory for user-edited files (pins, settings).
func Config() string {
	if h := os.Getenv("SESAME_HOME"); h != "" {
		return filepath.Join(h, "config")
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "sesame")
	}
	return filepath.Join(homeDir(), ".config", "sesame")
}

// State is the directory for files sesame writes itself (vault, learned pins,
// renewal state).
func State() string {
	if h := os.Getenv("SESAME_HOME"); h != "" {
		return filepath.Join(h, "state")
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "sesame")
	}
	return filepath.Join(homeDir(), ".local", "state", "sesame")
}

// Runtime is the directory for the agent socket and pid file.
func Runtime() string {
	if h := os.Getenv("SESAME_HOME"); h != "" {
		return filepath.Join(h, "run")
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "sesame")
	}
	// No per-user runtime dir (a plain su or cron): fall back to a private
	// directory in /tmp whose ownership and mode EnsureDir checks.
	return filepath.Join(os.TempDir(), "sesame-"+strconv.Itoa(os.Getuid()))
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	return "/"
}

// EnsureDir creates dir (and parents) with mode 0700 and checks that the
// final directory is owned by us and not accessible to anyone else. A
// directory with a wider mode that we own is tightened; one owned by somebody
// else is refused, since another user could then swap files under us.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := ownDir(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("tighten %s to 0700: %w", dir, err)
		}
	}
	return nil
}

// PrivateDir makes sure dir exists as a private directory of ours: it
// creates dir itself (mode 0700) when missing, but never its parents, and
// an existing dir must be a directory we own that nobody else can enter.
// Nothing that exists is changed: a wider mode is an error to fix by hand,
// not something to tighten behind the user's back.
func PrivateDir(dir string) error {
	parent := filepath.Dir(dir)
	if fi, err := os.Stat(parent); err != nil {
		return fmt.Errorf("%s does not exist (it is not created for you)", parent)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", parent)
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		return nil
	} else if !os.IsExist(err) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := ownDir(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o; it must be private (chmod 0700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// ownDir checks that dir is a directory (not a link to one) that we own.
func ownDir(dir string) (os.FileInfo, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Getuid() {
		return nil, fmt.Errorf("%s is owned by uid %d, not by us (uid %d)", dir, uid, os.Getuid())
	}
	return fi, nil
}

// OwnerUID returns the uid that owns the file, where the system says.
func OwnerUID(fi os.FileInfo) (int, bool) { return ownerUID(fi) }
