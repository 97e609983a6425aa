package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/keychain"
)

func init() {
	var (
		kf       keychainFlags
		lifetime string
		confirm  bool
	)
	cmd := &cobra.Command{
		Use:   "add [--backend B] [-t LIFE] [-c] FILE…",
		Short: "Store private keys in the keychain and load them into the running agent",
		Long: `Store private keys in the keychain and load them into the running agent.

Each FILE is a private key (OpenSSH, PEM or PKCS#8). An encrypted key's
passphrase is asked once, on the terminal or through SSH_ASKPASS. The key is
kept in the keychain without that passphrase (the keychain is the
encryption), so the agent can load it again after a restart. When
SSH_AUTH_SOCK is set the key is also added to that agent, with -t and -c
passed on as ssh-add would. A certificate in FILE-cert.pub is stored and
loaded with its key.

Nothing is stored unless every FILE could be read.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opt agent.AddedKey
			if lifetime != "" {
				secs, err := parseKeyLifetime(lifetime)
				if err != nil {
					return err
				}
				opt.LifetimeSecs = secs
			}
			opt.ConfirmBeforeUse = confirm
			return runAdd(cmd, &kf, args, opt)
		},
	}
	kf.register(cmd)
	cmd.Flags().StringVarP(&lifetime, "lifetime", "t", "", "agent: forget the key after `LIFE` (seconds, or 90m, 10h, 7d); the keychain copy stays")
	cmd.Flags().BoolVarP(&confirm, "confirm", "c", false, "agent: confirm each use of the key")
	rootCmd.AddCommand(cmd)
}

// runAdd reads every key first (so that a bad file or passphrase stores
// nothing), then stores them, then hands them to the agent.
func runAdd(cmd *cobra.Command, kf *keychainFlags, files []string, opt agent.AddedKey) error {
	type parsed struct {
		file, comment string
		raw           any
		cert          *ssh.Certificate
	}
	var keys []parsed
	for _, f := range files {
		if err := checkReadableFile("key file", f); err != nil {
			return err
		}
		raw, comment, err := keychain.ReadPrivateKeyFile(f, askKeyPassphrase)
		if err != nil {
			return err
		}
		cert, err := keychain.ReadCertificateFile(f, raw)
		if err != nil {
			return err
		}
		keys = append(keys, parsed{f, comment, raw, cert})
	}
	kc, err := kf.open(cmd)
	if err != nil {
		return err
	}
	defer kc.Close()
	for _, k := range keys {
		if _, err := kc.AddKeyCert(k.raw, k.cert, k.comment); err != nil {
			return fmt.Errorf("store %s: %w", k.file, err)
		}
	}
	stderr := cmd.ErrOrStderr()
	ag, conn, agentErr := dialAgent()
	if conn != nil {
		defer conn.Close()
	}
	for _, k := range keys {
		where := ""
		if ag != nil {
			ak := opt
			ak.PrivateKey, ak.Comment = k.raw, k.comment
			if err := ag.Add(ak); err != nil {
				agentErr = fmt.Errorf("agent refused %s: %w", k.file, err)
			} else {
				where = "; added to the agent"
				if k.cert != nil {
					ak.Certificate = k.cert
					if err := ag.Add(ak); err != nil {
						agentErr = fmt.Errorf("agent refused the certificate of %s: %w", k.file, err)
					} else {
						where += " with its certificate"
					}
				}
			}
		}
		fmt.Fprintf(stderr, "Key stored: %s (%s) in %s%s\n", k.file, k.comment, kc.Describe(), where)
	}
	if agentErr != nil {
		// The keys are safe in the keychain; the agent will load them when
		// it starts, so this is worth a warning, not a failure.
		fmt.Fprintf(stderr, "sesame: warning: %v\n", agentErr)
	}
	return nil
}
