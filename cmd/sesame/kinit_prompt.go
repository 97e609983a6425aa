package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sesame-ssh/sesame/krb"
)

// secretAsker answers the login's prompts (krb.LoginOptions.Prompt) once
// the KDC has said what it needs: a password or a one-time password,
// from the terminal without echo, or from the single line of
// --password-stdin, which answers whichever prompt comes. The terminal
// is opened before anything is sent, so that a login that could not ask
// fails before it reaches the KDC.
type secretAsker struct {
	fromStdin bool
	stdin     io.Reader
	used      bool
	tty       *os.File
	// password is what the user gave for a password prompt (nil after an
	// OTP login), for --remember and for clearing a recorded rejection.
	password []byte
	kinds    []krb.SecretKind
}

func newSecretAsker(fromStdin bool, stdin io.Reader) (*secretAsker, error) {
	a := &secretAsker{fromStdin: fromStdin, stdin: stdin}
	if fromStdin {
		return a, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, &hintedError{errors.New("cannot prompt for the password: no terminal"), "pipe it in with --password-stdin, or use a keytab with -k"}
	}
	a.tty = tty
	return a, nil
}

func (a *secretAsker) close() {
	if a.tty != nil {
		a.tty.Close()
	}
	clear(a.password)
}

func secretName(k krb.SecretKind) string {
	switch k {
	case krb.SecretOTP:
		return "token value"
	case krb.SecretOTPPIN:
		return "token PIN"
	}
	return "password"
}

func (a *secretAsker) prompt(sp krb.SecretPrompt) ([]byte, error) {
	var v []byte
	var err error
	if a.fromStdin {
		if a.used {
			// Never reuse the line for a second secret: a token sent as a
			// password is a failed attempt on the account.
			return nil, fmt.Errorf("the kdc asks for a %s as well, and --password-stdin gives one line only", secretName(sp.Kind))
		}
		a.used = true
		v, err = readPassword("", true, a.stdin)
		if err != nil && sp.Kind != krb.SecretPassword {
			err = errors.New(strings.Replace(err.Error(), "password", secretName(sp.Kind), 1))
		}
	} else {
		if sp.Banner != "" {
			fmt.Fprintln(a.tty, sp.Banner)
		}
		v, err = readNoEcho(a.tty, sp.Text)
	}
	if err != nil {
		return nil, err
	}
	a.kinds = append(a.kinds, sp.Kind)
	if sp.Kind == krb.SecretPassword {
		a.password = v
	}
	return v, nil
}

// twoFactorStatus is the note about the default cache's ticket when it
// is a two-factor one (sesame status), or "".
func twoFactorStatus() string {
	cfg, name, err := loadCache("")
	if err != nil || cfg == nil {
		return ""
	}
	cc, err := name.Read()
	if err != nil {
		return ""
	}
	return krb.TwoFactorNote(cc)
}
