package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/keychain"
	"github.com/sesame-ssh/sesame/lock"
)

func init() {
	var lp passphraseFlags
	lockCmd := &cobra.Command{
		Use:   "lock [--passphrase-stdin | --passphrase-file FILE]",
		Short: "Lock the running agent (like ssh-add -x)",
		Long: `Lock the agent at $SSH_AUTH_SOCK under a passphrase. While locked it lists
no keys and signs nothing; sesame's agent seals the private keys so that
none is left in its memory. The passphrase is read from the terminal
(twice, without echo), from standard input with --passphrase-stdin, from
FILE with --passphrase-file, or from the file named by
$SESAME_PASSPHRASE_FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLock(cmd, lp, true)
		},
	}
	lp.register(lockCmd, "the lock passphrase")

	var up passphraseFlags
	unlockCmd := &cobra.Command{
		Use:   "unlock [--passphrase-stdin | --passphrase-file FILE]",
		Short: "Unlock the running agent (like ssh-add -X) and load stored keys",
		Long: `Unlock the agent at $SSH_AUTH_SOCK: the sealed keys come back, and stored
keys are loaded from the keychain, opening the vault with the same
passphrase when it needs one. When the agent started without the vault
passphrase, unlock loads the stored keys even though it is not locked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLock(cmd, up, false)
		},
	}
	up.register(unlockCmd, "the passphrase")

	var asJSON bool
	statusCmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show whether the agent is locked, since when and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := withAgent(agentStatus)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			if note := twoFactorStatus(); note != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "kerberos:         %s\n", note)
			}
			return nil
		},
	}
	jsonFlag(statusCmd.Flags(), &asJSON)
	rootCmd.AddCommand(lockCmd, unlockCmd, statusCmd)
}

// withAgent connects to $SSH_AUTH_SOCK and runs f on it.
func withAgent[T any](f func(xagent.ExtendedAgent) (T, error)) (T, error) {
	var zero T
	ag, closer, err := dialAgent()
	if err != nil {
		return zero, err
	}
	if ag == nil {
		return zero, &agentError{errors.New("SSH_AUTH_SOCK is not set: no agent to talk to")}
	}
	defer closer.Close()
	return f(ag)
}

// errNotSesame: the agent does not answer status@sesame.
var errNotSesame = errors.New("the agent at SSH_AUTH_SOCK is not a sesame agent (no status@sesame)")

// agentStatus asks the agent for its status through the private extension.
func agentStatus(ag xagent.ExtendedAgent) (agent.Status, error) {
	var st agent.Status
	reply, err := ag.Extension(agent.ExtStatus, nil)
	if err != nil {
		return st, errNotSesame
	}
	// The reply is SSH_AGENT_SUCCESS followed by JSON.
	if len(reply) < 1 || reply[0] != 6 {
		return st, errNotSesame
	}
	if err := json.Unmarshal(reply[1:], &st); err != nil {
		return st, fmt.Errorf("agent status: %w", err)
	}
	return st, nil
}

func runLock(cmd *cobra.Command, pf passphraseFlags, locking bool) error {
	_, err := withAgent(func(ag xagent.ExtendedAgent) (struct{}, error) {
		return struct{}{}, lockOrUnlock(cmd, ag, pf, locking)
	})
	return err
}

// lockOrUnlock checks the state first, so that the user learns why
// nothing happened (the protocol's failure reply says nothing), then
// sends SSH_AGENTC_LOCK or SSH_AGENTC_UNLOCK.
func lockOrUnlock(cmd *cobra.Command, ag xagent.ExtendedAgent, pf passphraseFlags, locking bool) error {
	st, err := agentStatus(ag)
	sesameAgent := err == nil
	if sesameAgent {
		if locking && st.Locked {
			return errors.New("agent is already locked")
		}
		if !locking && !st.Locked && !st.StoredKeysPending {
			return errors.New("agent is not locked")
		}
	}
	pass, err := lockPassphrase(cmd, pf, locking)
	if err != nil {
		return err
	}
	defer clear(pass)
	stderr := cmd.ErrOrStderr()
	if locking {
		if err := ag.Lock(pass); err != nil {
			return errors.New("the agent refused to lock")
		}
		fmt.Fprintln(stderr, "Agent locked.")
		return nil
	}
	if err := ag.Unlock(pass); err != nil {
		if !agentRefused(err) {
			// The connection broke: the agent went away (or was
			// restarted) while checking; the passphrase was not judged.
			return &hintedError{fmt.Errorf("the agent went away during the unlock (%v); nothing was unlocked or loaded", err),
				"start the agent again (sesame agent) and run the command once more"}
		}
		if sesameAgent && !st.Locked {
			return &hintedError{errors.New("wrong passphrase: the stored keys were not loaded"),
				"give the vault passphrase"}
		}
		if !sesameAgent {
			return errors.New("the agent refused to unlock (wrong passphrase, or not locked)")
		}
		return errors.New("wrong passphrase: the agent stays locked")
	}
	if !sesameAgent {
		fmt.Fprintln(stderr, "Agent unlocked.")
		return nil
	}
	after, err := agentStatus(ag)
	if err != nil {
		return err
	}
	switch {
	case st.Locked:
		fmt.Fprintf(stderr, "Agent unlocked: %d keys.\n", after.Keys)
	default:
		fmt.Fprintf(stderr, "Stored keys loaded: %d keys.\n", after.Keys)
	}
	return nil
}

// lockPassphrase reads the lock passphrase: standard input with
// --passphrase-stdin, FILE with --passphrase-file, else the file named by
// $SESAME_PASSPHRASE_FILE, else the terminal without echo (twice when
// locking, as ssh-add -x asks).
func lockPassphrase(cmd *cobra.Command, pf passphraseFlags, locking bool) ([]byte, error) {
	var p []byte
	var err error
	switch {
	case pf.stdin:
		p, err = keychain.PassphraseFromReader(cmd.InOrStdin(), "standard input")(false)
	case pf.file != "":
		if err := checkReadableFile("passphrase file", pf.file); err != nil {
			return nil, err
		}
		p, err = keychain.PassphraseFromFile(pf.file)(false)
	case keychain.PassphraseFromEnv() != nil:
		p, err = keychain.PassphraseFromEnv()(false)
	default:
		p, err = ttyLockPassphrase(locking)
	}
	if err != nil {
		clear(p)
		if errors.Is(err, keychain.ErrEmptyPassphrase) {
			return nil, lock.ErrEmptyPassphrase
		}
		return nil, err
	}
	if len(p) == 0 {
		return nil, lock.ErrEmptyPassphrase
	}
	if len(p) > lock.MaxPassphrase {
		clear(p)
		return nil, lock.ErrPassphraseTooLong
	}
	return p, nil
}

func ttyLockPassphrase(locking bool) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, &hintedError{errors.New("no terminal to ask for the passphrase"),
			"give it with --passphrase-stdin or SESAME_PASSPHRASE_FILE=FILE"}
	}
	defer tty.Close()
	if !locking {
		return readTTYSecret(tty, "Enter lock password: ")
	}
	p, err := readTTYSecret(tty, "Enter lock password: ")
	if err != nil || len(p) == 0 {
		return p, err
	}
	again, err := readTTYSecret(tty, "Again: ")
	if err != nil {
		clear(p)
		return nil, err
	}
	defer clear(again)
	if !bytes.Equal(p, again) {
		clear(p)
		return nil, errors.New("passwords do not match")
	}
	return p, nil
}

// printStatus writes the status for people.
func printStatus(w io.Writer, st agent.Status, now time.Time) {
	state := "unlocked"
	if st.Locked {
		state = "locked"
	}
	line := state
	if !st.Since.IsZero() {
		line += fmt.Sprintf(" since %s (%s ago)", st.Since.Local().Format("2006-01-02 15:04:05 MST"),
			now.Sub(st.Since).Round(time.Second))
	}
	if st.Locked && st.Reason != "" {
		line += ", by " + st.Reason
	}
	fmt.Fprintf(w, "state:            %s\n", line)
	if st.Locked {
		if st.Sealing {
			fmt.Fprintf(w, "keys:             %d (sealed)\n", st.Keys)
		} else {
			fmt.Fprintf(w, "keys:             %d (hidden)\n", st.Keys)
		}
		if st.Failures > 0 {
			fmt.Fprintf(w, "wrong passphrases: %d\n", st.Failures)
		}
	} else {
		fmt.Fprintf(w, "keys:             %d%s\n", st.Keys, keyKinds(st.Kinds))
	}
	switch {
	case st.LockAfter <= 0:
		fmt.Fprintf(w, "lock after:       never (no --lock-after)\n")
	case st.Armed:
		fmt.Fprintf(w, "lock after:       %s without use\n", time.Duration(st.LockAfter))
	default:
		fmt.Fprintf(w, "lock after:       %s without use, once a lock passphrase is set (sesame lock, or sesame unlock of the vault)\n", time.Duration(st.LockAfter))
	}
	if st.KerberosOnLock != "" {
		fmt.Fprintf(w, "kerberos on lock: %s\n", st.KerberosOnLock)
	}
	if st.Backend != "" {
		fmt.Fprintf(w, "backend:          %s\n", st.Backend)
	}
	switch {
	case st.StoredKeysPending && st.StoredKeysError != "":
		fmt.Fprintf(w, "stored keys:      not loaded at start: %s; mend that, then run `sesame unlock` with the vault passphrase\n", st.StoredKeysError)
	case st.StoredKeysPending:
		fmt.Fprintf(w, "stored keys:      not loaded: the vault needs its passphrase; run `sesame unlock`\n")
	}
}

// keyKinds says how many of the keys the backend ssh-agent holds, by
// kind: " (2 sk, 1 pkcs11)", or "" when it holds none.
func keyKinds(kinds map[string]string) string {
	n := map[string]int{}
	for _, k := range kinds {
		n[k]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// agentRefused tells the agent's failure reply to a request apart from a
// broken connection: x/crypto's client reports the reply as "agent:
// failure" and the rest as I/O errors.
func agentRefused(err error) bool {
	return err != nil && err.Error() == "agent: failure"
}
