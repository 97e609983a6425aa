// Command sesame makes SSH logins with Kerberos or keys painless and safe:
// MIT-compatible kinit/klist/kdestroy, an SSH agent that offers each server
// only its own key, and a lockable encrypted key store.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/internal/statefile"
)

// rootCmd is the top of the command tree. Each subcommand lives in its own
// file and registers itself from an init function, so that commands can be
// added without touching this file.
var rootCmd = &cobra.Command{
	Use:           "sesame",
	Short:         "Kerberos tickets and per-host SSH keys, without lockouts",
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRun: func(cmd *cobra.Command, args []string) {
		setupLogging(cmd.ErrOrStderr())
	},
}

var debugFlag bool

func init() {
	rootCmd.PersistentFlags().BoolVar(&debugFlag, "debug", false, "log what sesame and its libraries do, to standard error")
}

// setupLogging is quiet by default; --debug or SESAME_DEBUG=1 switch on
// structured logs. Secrets are never passed to the logger.
func setupLogging(w io.Writer) {
	// A damaged state file set aside is worth one plain line, not a log
	// record.
	statefile.Warn = func(msg string) { fmt.Fprintf(w, "sesame: warning: %s\n", msg) }
	level := slog.LevelWarn
	if debugFlag || os.Getenv("SESAME_DEBUG") != "" {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}

// exitError carries an exit status without a message (klist -s, a command
// run under `sesame renew --`).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// hinter is implemented by library errors that know what the user can do.
type hinter interface{ Hint() string }

// hintedError is an error with a `sesame: hint:` line.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }
func (e *hintedError) Hint() string  { return e.hint }

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run executes the command line and turns any error into one line on
// stderr, plus a hint line where the error offers one.
func run(args []string, stderr io.Writer) int {
	wireOnce.Do(func() { wireUsage(rootCmd) })
	rootCmd.SetArgs(args)
	cmd, err := rootCmd.ExecuteC()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// cobra finds unknown commands and checks flag groups before any
	// check of ours runs.
	if cmd == rootCmd && strings.HasPrefix(err.Error(), "unknown command ") && len(args) > 0 {
		err = newUsageError(rootCmd, "unknown command %q", firstCommandWord(args))
	}
	if m := exclusiveFlags.FindStringSubmatch(err.Error()); m != nil {
		err = newUsageError(cmd, "--%s exclude each other", strings.Join(strings.Fields(m[1]), " and --"))
	}
	fmt.Fprintf(stderr, "sesame: %s\n", oneLine(err.Error()))
	var h hinter
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(stderr, "sesame: hint: %s\n", oneLine(h.Hint()))
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

var wireOnce sync.Once

// exclusiveFlags matches cobra's error for mutually exclusive flags.
var exclusiveFlags = regexp.MustCompile(`^if any flags in the group \[[^\]]*\] are set none of the others can be; \[([^\]]*)\] were all set$`)

// oneLine keeps an error on one line and the terminal safe from what a
// hostile name may carry: control characters (a newline, an escape
// sequence) are shown escaped, as \n or \x1b.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }

// firstCommandWord is the first argument that is not a flag: the unknown command.
func firstCommandWord(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return args[0]
}
