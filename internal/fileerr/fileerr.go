// Package fileerr turns an error about a file into one line a user can act
// on: it names the file by the role it plays ("keytab", "passphrase file")
// and its path, and says what is wrong in words ("does not exist", "is a
// directory"), without Go's "open …:" prefixes or temporary file names.
// It imports nothing of the project's.
package fileerr

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// Error is a file problem: the role and path of the file, and what is
// wrong. It unwraps to the system error, so errors.Is(err,
// fs.ErrNotExist) and the like still work.
type Error struct {
	What string // role of the file: "keytab", "ssh config"
	Path string
	Msg  string // what is wrong, in words ("does not exist")
	Err  error
}

func (e *Error) Error() string {
	name := e.Path
	if e.What != "" {
		name = e.What + " " + e.Path
	}
	if e.Msg == "" {
		return fmt.Sprintf("%s: %v", name, Strip(e.Err))
	}
	return name + " " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Describe returns err as an *Error about the file at path. An error that
// is not about the file system is returned as "WHAT PATH: err", with any
// *fs.PathError wrapper (which would name the path a second time, or a
// temporary file) removed.
func Describe(what, path string, err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return err
	}
	return &Error{What: what, Path: path, Msg: Reason(err), Err: err}
}

// Reason says in words what a file system error means, or "" when it is
// not one Reason knows.
func Reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	case errors.Is(err, syscall.ENOTDIR):
		return "does not exist (a part of the path is not a directory)"
	case errors.Is(err, syscall.EISDIR):
		return "is a directory, not a file"
	case errors.Is(err, fs.ErrPermission):
		return "cannot be read or written: permission denied"
	case errors.Is(err, syscall.ELOOP):
		return "is a symbolic link loop"
	case errors.Is(err, syscall.ENOSPC):
		return "cannot be written: no space left on the device"
	case errors.Is(err, syscall.EROFS):
		return "cannot be written: read-only file system"
	}
	return ""
}

// Strip returns the system error inside err (dropping the *fs.PathError
// that names the path, or a temporary file, once more), or err itself.
func Strip(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
