package main

import (
	"os"

	"github.com/sesame-ssh/sesame/internal/fileerr"
)

// checkReadableFile fails with one line naming the file by its role when
// path is missing, a directory, or unreadable: checked before the work
// starts, so that the error is about the file the user named and not about
// a program it is passed to.
func checkReadableFile(what, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fileerr.Describe(what, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileerr.Describe(what, path, err)
	}
	if st.IsDir() {
		return &fileerr.Error{What: what, Path: path, Msg: "is a directory, not a file"}
	}
	return nil
}
