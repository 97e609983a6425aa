package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/keychain"
)

func init() {
	var kf keychainFlags
	cmd := &cobra.Command{
		Use:   "remove [--backend B] KEY",
		Short: "Remove a key from the keychain and from the running agent",
		Long: `Remove a key from the keychain and from the agent at SSH_AUTH_SOCK.

KEY is a public key file, a SHA256: fingerprint, or a comment (which must
name exactly one stored key).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(cmd, &kf, args[0])
		},
	}
	kf.register(cmd)
	rootCmd.AddCommand(cmd)
}

func runRemove(cmd *cobra.Command, kf *keychainFlags, selector string) error {
	kc, err := kf.open(cmd)
	if err != nil {
		return err
	}
	defer kc.Close()
	stderr := cmd.ErrOrStderr()
	info, err := kc.RemoveKey(selector)
	fp := info.Fingerprint
	stored := err == nil
	if errors.Is(err, keychain.ErrNotFound) {
		// Not stored: it may still be loaded in the agent (added by ssh-add).
		if f, ferr := keychain.SelectorFingerprint(selector); ferr == nil && f != "" {
			fp = f
		}
	} else if err != nil {
		return err
	}
	if stored {
		fmt.Fprintf(stderr, "Key removed from %s: %s (%s)\n", kc.Describe(), info.Fingerprint, info.Comment)
	}
	ag, conn, agentErr := dialAgent()
	if ag != nil {
		defer conn.Close()
		ids, lerr := ag.List()
		if lerr != nil {
			agentErr = fmt.Errorf("agent: %w", lerr)
		}
		for _, id := range ids {
			pub, perr := ssh.ParsePublicKey(id.Blob)
			if perr != nil {
				continue
			}
			if (fp != "" && agent.KeyFingerprint(pub) == fp) || (fp == "" && !stored && id.Comment == selector) {
				if rerr := ag.Remove(pub); rerr != nil {
					agentErr = fmt.Errorf("agent refused to remove %s: %w", agent.KeyFingerprint(pub), rerr)
					continue
				}
				fmt.Fprintf(stderr, "Key removed from the agent: %s %s (%s)\n", agent.KeyFingerprint(pub), pub.Type(), id.Comment)
				stored = true // something was removed
			}
		}
	}
	if !stored {
		if agentErr != nil {
			return fmt.Errorf("%w (and %v)", err, agentErr)
		}
		return err
	}
	if agentErr != nil {
		fmt.Fprintf(stderr, "sesame: warning: %v\n", agentErr)
	}
	return nil
}
