package main

import (
	"fmt"
	"io"
	"os"

	"github.com/jcmturner/gokrb5/v8/keytab"

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

// maxKeytab bounds what is read of a keytab: real ones hold a few keys per
// principal, a few KiB.
const maxKeytab = 16 << 20

// readKeytab reads and parses the keytab file at path for kinit -k and
// klist -k. Only a regular file is read (not a FIFO or /dev/zero), at most
// maxKeytab bytes, and gokrb5's parser, which does not check every length
// field, runs under recover: a hostile file is an error, never a crash.
func readKeytab(path string) (*keytab.Keytab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileerr.Describe("keytab", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fileerr.Describe("keytab", path, err)
	}
	if st.IsDir() {
		return nil, &fileerr.Error{What: "keytab", Path: path, Msg: "is a directory, not a file"}
	}
	if !st.Mode().IsRegular() {
		return nil, &fileerr.Error{What: "keytab", Path: path, Msg: "is not a regular file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeytab+1))
	if err != nil {
		return nil, fileerr.Describe("keytab", path, err)
	}
	if len(data) > maxKeytab {
		return nil, &fileerr.Error{What: "keytab", Path: path, Msg: fmt.Sprintf("is larger than %d MiB: not a keytab", maxKeytab>>20)}
	}
	kt, err := parseKeytab(data)
	if err != nil {
		return nil, &hintedError{fmt.Errorf("keytab %s is not a keytab file (or is damaged)", path),
			"create one with ktutil or kadmin ktadd, or name another"}
	}
	return kt, nil
}

// parseKeytab is gokrb5's parser made safe against its panics.
func parseKeytab(data []byte) (kt *keytab.Keytab, err error) {
	defer func() {
		if r := recover(); r != nil {
			kt, err = nil, fmt.Errorf("malformed keytab")
		}
	}()
	kt = keytab.New()
	if err := kt.Unmarshal(data); err != nil {
		return nil, err
	}
	return kt, nil
}
