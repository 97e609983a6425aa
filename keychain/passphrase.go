package keychain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sesame-ssh/sesame/internal/fileerr"
)

// EnvPassphraseFile names the environment variable holding the path of a
// file whose first line is the vault passphrase. The variable carries a
// path, never the passphrase itself: environments leak into /proc and
// child processes.
const EnvPassphraseFile = "SESAME_PASSPHRASE_FILE"

// maxPassphrase bounds what is read from a file or stdin.
const maxPassphrase = 64 << 10

// PassphraseFromFile returns a source reading the first line of path each
// time it is called (without the line ending). An empty first line is an
// error wrapping ErrEmptyPassphrase.
func PassphraseFromFile(path string) PassphraseFunc {
	return func(bool) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fileerr.Describe("passphrase file", path, err)
		}
		defer f.Close()
		p, err := readLine(f)
		if err != nil {
			return nil, fileerr.Describe("passphrase file", path, err)
		}
		return p, nil
	}
}

// PassphraseFromReader returns a source that reads one line from r on its
// first call and answers later calls with the same passphrase (standard
// input can be read only once). It reads byte by byte so that nothing
// after the line is consumed.
func PassphraseFromReader(r io.Reader, what string) PassphraseFunc {
	var (
		once sync.Once
		p    []byte
		err  error
	)
	return func(bool) ([]byte, error) {
		once.Do(func() {
			p, err = readLine(r)
			if err != nil {
				err = fmt.Errorf("passphrase from %s: %w", what, err)
			}
		})
		if err != nil {
			return nil, err
		}
		return bytes.Clone(p), nil
	}
}

// StaticPassphrase returns a source that answers with a copy of p, for a
// caller that already holds the passphrase (the agent at unlock).
func StaticPassphrase(p []byte) PassphraseFunc {
	p = bytes.Clone(p)
	return func(bool) ([]byte, error) {
		if len(p) == 0 {
			return nil, ErrEmptyPassphrase
		}
		return bytes.Clone(p), nil
	}
}

// PassphraseFromEnv returns the source named by $SESAME_PASSPHRASE_FILE,
// or nil when it is unset.
func PassphraseFromEnv() PassphraseFunc {
	if path := os.Getenv(EnvPassphraseFile); path != "" {
		return PassphraseFromFile(path)
	}
	return nil
}

// readLine reads up to the first newline (dropping "\n" or "\r\n").
func readLine(r io.Reader) ([]byte, error) {
	var out []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(out) >= maxPassphrase {
				wipe(out)
				return nil, fmt.Errorf("longer than %d bytes", maxPassphrase)
			}
			out = append(out, b[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			wipe(out)
			return nil, err
		}
	}
	out = bytes.TrimSuffix(out, []byte("\r"))
	if len(out) == 0 {
		return nil, fmt.Errorf("first line is empty: %w", ErrEmptyPassphrase)
	}
	return out, nil
}
