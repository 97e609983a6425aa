package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// A command line that cannot be run (an unknown flag or command, a wrong
// number of arguments, a value that does not parse) is reported in one
// line naming the flag or argument, with the command's usage as the hint,
// and exits with the status of the tool the command replaces.

// usageExit is the exit status of a usage error, per command: MIT kinit
// and kdestroy exit 2; MIT klist, OpenSSH ssh-add and ssh-agent, and
// kstart's krenew exit 1. sesame's own commands exit 2, as most Unix
// tools do for a command line they cannot run.
var usageExit = map[string]int{
	"klist":  1,
	"agent":  1,
	"add":    1,
	"keys":   1,
	"remove": 1,
	"lock":   1,
	"unlock": 1,
	"renew":  1,
}

// usageError is a command line the command cannot run.
type usageError struct {
	cmd *cobra.Command
	msg string
}

func (e *usageError) Error() string { return e.msg }

// Hint shows the command's usage line.
func (e *usageError) Hint() string {
	if e.cmd == nil || e.cmd == rootCmd {
		return "sesame --help lists the commands"
	}
	return "usage: " + e.cmd.UseLine()
}

// ExitCode follows the tool the command replaces.
func (e *usageError) ExitCode() int {
	top := e.cmd
	for top != nil && top.HasParent() && top.Parent() != rootCmd {
		top = top.Parent()
	}
	if top != nil {
		if code, ok := usageExit[top.Name()]; ok {
			return code
		}
	}
	return 2
}

// exitCoder is an error that carries its own exit status (a usage error,
// an agent that cannot be reached).
type exitCoder interface{ ExitCode() int }

// cmdName is "kinit" for sesame kinit, "" for sesame itself.
func cmdName(cmd *cobra.Command) string {
	if cmd == nil || cmd == rootCmd {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), rootCmd.Name()+" ")
}

func newUsageError(cmd *cobra.Command, format string, args ...any) *usageError {
	msg := fmt.Sprintf(format, args...)
	if n := cmdName(cmd); n != "" {
		msg = n + ": " + msg
	}
	return &usageError{cmd: cmd, msg: msg}
}

// flagUsageError rewrites pflag's errors, which quote Go's parsers
// (strconv.ParseInt: parsing "abc": invalid syntax), into one line that
// names the flag and says what it wants.
func flagUsageError(cmd *cobra.Command, err error) error {
	var inv *pflag.InvalidValueError
	var req *pflag.ValueRequiredError
	var nx *pflag.NotExistError
	switch {
	case errors.As(err, &inv):
		f := inv.GetFlag()
		return newUsageError(cmd, "bad value %q for %s: %s", inv.GetValue(), flagName(f), wantOf(f, inv.Unwrap()))
	case errors.As(err, &req):
		return newUsageError(cmd, "%s needs a value", flagName(req.GetFlag()))
	case errors.As(err, &nx):
		if s := nx.GetSpecifiedShortnames(); s != "" {
			return newUsageError(cmd, "unknown flag -%s", nx.GetSpecifiedName())
		}
		return newUsageError(cmd, "unknown flag --%s", nx.GetSpecifiedName())
	}
	return newUsageError(cmd, "%s", err.Error())
}

// flagName is "-p/--port", or "--json" for a flag without a short form.
func flagName(f *pflag.Flag) string {
	if f == nil {
		return "flag"
	}
	if f.Shorthand != "" {
		return "-" + f.Shorthand + "/--" + f.Name
	}
	return "--" + f.Name
}

// wantOf says what a flag of this type accepts.
func wantOf(f *pflag.Flag, cause error) string {
	var ne *strconv.NumError
	if errors.As(cause, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		return "number out of range"
	}
	if f == nil {
		return "not valid here"
	}
	switch f.Value.Type() {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "want a whole number"
	case "float32", "float64":
		return "want a number"
	case "bool":
		return "want true or false"
	case "duration":
		return "want a duration such as 90s, 15m or 10h"
	}
	if cause != nil {
		// A flag of our own type says itself what is wrong.
		return cause.Error()
	}
	return "not valid here"
}

// argsUsage wraps a command's argument check so that its error names the
// command and shows its usage (cobra's says "accepts at most 1 arg(s),
// received 2").
func argsUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if check == nil || check(cmd, args) == nil {
			return nil
		}
		min, max := argCounts(cmd, check)
		switch {
		case max == 0:
			return newUsageError(cmd, "unexpected argument %q", args[0])
		case len(args) > max && max >= 0:
			return newUsageError(cmd, "unexpected argument %q", args[max])
		case len(args) < min:
			return newUsageError(cmd, "missing argument: %s", missingArgs(cmd))
		}
		return newUsageError(cmd, "wrong arguments")
	}
}

// argCounts probes check with growing argument lists: the smallest and
// largest number of arguments it accepts (max -1: no limit).
func argCounts(cmd *cobra.Command, check cobra.PositionalArgs) (min, max int) {
	min, max = -1, -1
	probe := []string{}
	for n := 0; n <= 8; n++ {
		if check(cmd, probe) == nil {
			if min < 0 {
				min = n
			}
			max = n
		}
		probe = append(probe, "x")
	}
	if max == 8 {
		max = -1
	}
	if min < 0 {
		min = 0
	}
	return min, max
}

// missingArgs is the argument part of the usage line ("[user@]HOST KEY"),
// without the optional flags written there ("[-t LIFE]").
func missingArgs(cmd *cobra.Command) string {
	_, rest, ok := strings.Cut(cmd.Use, " ")
	if !ok {
		return "see the usage"
	}
	rest = optionalFlags.ReplaceAllString(rest, "")
	var words []string
	for _, w := range strings.Fields(rest) {
		if !strings.HasPrefix(w, "-") && w != "[flags]" {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

var optionalFlags = regexp.MustCompile(`\[-[^\]]*\]`)

// wireUsage applies the rules above to every command: flag errors, argument
// checks, unknown subcommands, --version, and a completion command that
// refuses an unknown shell.
func wireUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(flagUsageError)
	root.Version = version
	root.SetVersionTemplate("sesame {{.Version}}\n")
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.Parent() == root && c.Name() == "completion":
			// Without a shell, or with an unknown one, cobra prints its
			// help and exits 0: a script would not notice.
			c.Args = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return newUsageError(cmd, "unknown shell %q: name bash, zsh, fish or powershell", args[0])
				}
				return nil
			}
			c.RunE = func(cmd *cobra.Command, args []string) error {
				return newUsageError(cmd, "name a shell: bash, zsh, fish or powershell")
			}
		case c.Parent() == root && c.Name() == "help":
			show := c.Run
			c.Run = nil
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					if _, _, err := root.Find(args); err != nil {
						return newUsageError(cmd, "unknown command %q", args[0])
					}
				}
				show(cmd, args)
				return nil
			}
		case c.Args != nil:
			c.Args = argsUsage(c.Args)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// subcommand is the command named name, for errors raised below RunE.
func subcommand(name string) *cobra.Command {
	for _, c := range rootCmd.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return rootCmd
}

// cacheFlag is -c/--cache, the same for every Kerberos command.
func cacheFlag(f *pflag.FlagSet, p *string) {
	f.StringVarP(p, "cache", "c", "", "credentials cache: FILE:path, DIR:dir, KCM:[NAME], KEYRING:… or a path (default: KRB5CCNAME, else default_ccache_name)")
}

// jsonFlag is --json, the same for every command that prints for scripts.
func jsonFlag(f *pflag.FlagSet, p *bool) {
	f.BoolVar(p, "json", false, "print JSON for scripts")
}
