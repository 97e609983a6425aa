package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"

	"github.com/sesame-ssh/sesame/internal/fileerr"
	"github.com/sesame-ssh/sesame/keychain"
)

// passphraseFlags are where a command reads a passphrase from when no
// terminal is asked: --passphrase-stdin or --passphrase-file, the same
// spelling on every command that takes one (add, keys, remove, lock,
// unlock). Never argv or an environment variable's contents.
type passphraseFlags struct {
	file  string
	stdin bool
}

func (p *passphraseFlags) register(cmd *cobra.Command, what string) {
	fl := cmd.Flags()
	fl.StringVar(&p.file, "passphrase-file", "", "read "+what+" from the first line of `FILE`")
	fl.BoolVar(&p.stdin, "passphrase-stdin", false, "read "+what+" from the first line of standard input")
	cmd.MarkFlagsMutuallyExclusive("passphrase-file", "passphrase-stdin")
}

// keychainFlags are the flags shared by add, keys and remove: which backend,
// and where the vault passphrase comes from when no terminal can be asked.
type keychainFlags struct {
	backend string
	pass    passphraseFlags
}

func (f *keychainFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.backend, "backend", "", "keychain backend: "+strings.Join(keychain.Backends(), ", ")+" (default: $"+keychain.EnvBackend+", else automatic)")
	f.pass.register(cmd, "the vault passphrase")
}

// open opens the keychain. The vault passphrase comes from, in order:
// --passphrase-stdin, --passphrase-file, $SESAME_PASSPHRASE_FILE, and
// else a prompt on /dev/tty without echo. Never from argv or an
// environment variable's contents.
func (f *keychainFlags) open(cmd *cobra.Command) (*keychain.Keychain, error) {
	var src keychain.PassphraseFunc
	switch {
	case f.pass.stdin:
		src = keychain.PassphraseFromReader(cmd.InOrStdin(), "standard input")
	case f.pass.file != "":
		if err := checkReadableFile("passphrase file", f.pass.file); err != nil {
			return nil, err
		}
		src = keychain.PassphraseFromFile(f.pass.file)
	default:
		if src = keychain.PassphraseFromEnv(); src == nil {
			src = ttyVaultPassphrase
		}
	}
	kc, err := keychain.Open(keychain.Options{Backend: f.backend, Passphrase: src})
	if err != nil {
		return nil, err
	}
	return kc, nil
}

// ttyVaultPassphrase prompts on the controlling terminal, twice for a new
// vault.
func ttyVaultPassphrase(create bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, &hintedError{fmt.Errorf("%w: no terminal to ask", keychain.ErrNoPassphrase),
			"give it with --passphrase-file FILE, --passphrase-stdin or SESAME_PASSPHRASE_FILE=FILE"}
	}
	defer tty.Close()
	if !create {
		return readTTYSecret(tty, "Enter vault passphrase: ")
	}
	fmt.Fprintln(tty, "Creating a new keychain vault; choose a passphrase to encrypt it.")
	p, err := readTTYSecret(tty, "New vault passphrase: ")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, keychain.ErrEmptyPassphrase
	}
	again, err := readTTYSecret(tty, "Repeat vault passphrase: ")
	if err != nil {
		return nil, err
	}
	defer clear(again)
	if !bytes.Equal(p, again) {
		clear(p)
		return nil, errors.New("passphrases do not match")
	}
	return p, nil
}

func readTTYSecret(tty *os.File, prompt string) ([]byte, error) {
	fmt.Fprint(tty, prompt)
	p, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return p, nil
}

// askKeyPassphrase asks for the passphrase of an encrypted key file the way
// ssh-add does: through $SSH_ASKPASS when SSH_ASKPASS_REQUIRE is "force"
// (or "prefer" with SSH_ASKPASS set), else on the terminal, else through
// $SSH_ASKPASS when set.
func askKeyPassphrase(path string) ([]byte, error) {
	prompt := "Enter passphrase for " + path + ": "
	askpass := os.Getenv("SSH_ASKPASS")
	req := os.Getenv("SSH_ASKPASS_REQUIRE")
	if req == "force" || (req == "prefer" && askpass != "") {
		return runAskpass(askpass, prompt)
	}
	if req != "never" {
		if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
			defer tty.Close()
			return readTTYSecret(tty, prompt)
		}
	}
	if askpass != "" && req != "never" {
		return runAskpass(askpass, prompt)
	}
	return nil, &hintedError{fmt.Errorf("%s: key is encrypted and there is no terminal to ask for its passphrase", path),
		"set SSH_ASKPASS (and SSH_ASKPASS_REQUIRE=force) to a program that prints it"}
}

func runAskpass(program, prompt string) ([]byte, error) {
	if program == "" {
		return nil, errors.New("SSH_ASKPASS_REQUIRE=force but SSH_ASKPASS is not set")
	}
	cmd := exec.Command(program, prompt)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		clear(out)
		return nil, fmt.Errorf("askpass %s: %w", program, err)
	}
	p := bytes.TrimRight(out, "\r\n")
	return p, nil
}

// dialAgent connects to the agent at $SSH_AUTH_SOCK with the standard
// protocol. It returns nil, nil, nil when no agent is configured.
func dialAgent() (agent.ExtendedAgent, io.Closer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, nil
	}
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, nil, &agentError{fmt.Errorf("cannot reach the agent at %s (SSH_AUTH_SOCK): %w", sock, fileerr.Strip(err))}
	}
	return agent.NewClient(conn), conn, nil
}

// agentError: no agent could be reached. Commands that replace ssh-add
// exit 2 then, as ssh-add does.
type agentError struct{ err error }

func (e *agentError) Error() string { return e.err.Error() }
func (e *agentError) Unwrap() error { return e.err }
func (e *agentError) ExitCode() int { return 2 }
func (e *agentError) Hint() string  { return `start one with eval "$(sesame agent --shared -s)"` }

// parseKeyLifetime reads ssh-add's -t argument: plain seconds, or a
// duration such as 90m, 10h or 7d.
func parseKeyLifetime(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	mult := time.Duration(1)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		s, mult = d+"h", 24
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid lifetime %q (use seconds, or e.g. 90m, 10h, 7d)", s)
	}
	secs := (d * mult).Seconds()
	if secs < 1 || secs > float64(^uint32(0)) {
		return 0, fmt.Errorf("lifetime %q out of range", s)
	}
	return uint32(secs), nil
}
