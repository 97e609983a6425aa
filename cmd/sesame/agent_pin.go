package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/agent/pin"
)

// agentPinFlags are the pin policy's settings of `sesame agent`.
type agentPinFlags struct {
	maxOffer int
	noPins   bool
	noLearn  bool
}

// agentPins is the policy the agent serves with, kept so that learned pins
// still pending are written when the agent stops.
var agentPins *pin.Policy

func init() {
	var f agentPinFlags
	fl := agentCmd.Flags()
	fl.IntVar(&f.maxOffer, "max-offer", pin.DefaultMaxOffer, "keys offered at most to a server without pins (stays under sshd's MaxAuthTries)")
	fl.BoolVar(&f.noLearn, "no-learn", false, "do not learn pins from the servers that accept a key")
	fl.BoolVar(&f.noPins, "no-pins", false, "offer every key to every server, like ssh-agent")

	agentPolicy = func() (agent.Policy, error) {
		if f.noPins {
			return nil, nil
		}
		if f.maxOffer < 1 {
			return nil, fmt.Errorf("--max-offer %d: must be at least 1", f.maxOffer)
		}
		p := pin.New(pin.Options{MaxOffer: f.maxOffer, NoLearn: f.noLearn, Logger: slog.Default(), Notify: desktopNotifier()})
		agentPins = p
		return p, nil
	}

	// A pins file with a bad line must not keep the agent from starting:
	// the policy starts with the lines that parse. The background agent
	// has no terminal to warn on, so the starting process says it.
	prevPre := agentCmd.PreRunE
	agentCmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if prevPre != nil {
			if err := prevPre(cmd, args); err != nil {
				return err
			}
		}
		if agentStartsInBackground(cmd) && !f.noPins {
			warnPinsFile(cmd)
		}
		return nil
	}
	prevPost := agentCmd.PostRunE
	agentCmd.PostRunE = func(cmd *cobra.Command, args []string) error {
		var err error
		if agentPins != nil {
			if cerr := agentPins.Close(); cerr != nil {
				err = fmt.Errorf("write learned pins: %w", cerr)
			}
			agentPins = nil
		}
		if prevPost != nil {
			err = errors.Join(err, prevPost(cmd, args))
		}
		return err
	}
}

// agentStartsInBackground reports whether this `sesame agent` is the
// process that starts a background agent (and so owns the terminal).
func agentStartsInBackground(cmd *cobra.Command) bool {
	if os.Getenv(envAgentChild) != "" {
		return false
	}
	for _, name := range []string{"foreground", "debug-foreground", "kill"} {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Value.String() == "true" {
			return false
		}
	}
	return true
}

// warnPinsFile prints the pins file's first bad line, if any, to standard
// error (standard output is for the shell lines).
func warnPinsFile(cmd *cobra.Command) {
	path := pin.DefaultPinsFile()
	data, err := os.ReadFile(path)
	if err != nil {
		return // missing: no pins; unreadable: the agent will say
	}
	if _, err := pin.ParsePins(data, path); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "sesame: warning: %v; the agent uses the other lines\n", err)
	}
}

// desktopNotifier returns a function that shows a desktop notification
// through notify-send, or nil where there is no desktop (no display, or no
// notify-send): there the user finds the same in sesame pins and doctor.
func desktopNotifier() func(summary, body string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return nil
	}
	path, err := exec.LookPath("notify-send")
	if err != nil {
		return nil
	}
	return func(summary, body string) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := exec.CommandContext(ctx, path, "--app-name=sesame", "--", summary, body).Run(); err != nil {
				slog.Debug("notify-send", "err", err)
			}
		}()
	}
}
