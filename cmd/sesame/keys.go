package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent"
)

func init() {
	var (
		kf     keychainFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keys [--backend B] [--json]",
		Short: "List the keys stored in the keychain and whether the agent has them loaded",
		Long: `List the keys stored in the keychain: fingerprint, type, size, comment,
when it was added, and whether the agent at SSH_AUTH_SOCK has it loaded
("yes"/"no"; "-" when no agent is reachable).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeys(cmd, &kf, asJSON)
		},
	}
	kf.register(cmd)
	jsonFlag(cmd.Flags(), &asJSON)
	rootCmd.AddCommand(cmd)
}

// keyListing is one line of `sesame keys`, also its JSON form.
type keyListing struct {
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	Bits        int       `json:"bits"`
	Comment     string    `json:"comment"`
	Added       time.Time `json:"added"`
	Certificate bool      `json:"certificate"`
	Loaded      *bool     `json:"loaded"` // null when no agent is reachable
}

func runKeys(cmd *cobra.Command, kf *keychainFlags, asJSON bool) error {
	kc, err := kf.open(cmd)
	if err != nil {
		return err
	}
	defer kc.Close()
	keys, err := kc.Keys()
	if err != nil && keys == nil {
		return err
	}
	damaged := err
	loaded, agentErr := agentFingerprints()
	var out []keyListing
	for _, k := range keys {
		l := keyListing{Fingerprint: k.Fingerprint, Type: k.Type, Bits: k.Bits, Comment: k.Comment, Added: k.Added,
			Certificate: k.Certificate != nil}
		if loaded != nil {
			b := loaded[k.Fingerprint]
			l.Loaded = &b
		}
		out = append(out, l)
	}
	w := cmd.OutOrStdout()
	if asJSON {
		if out == nil {
			out = []keyListing{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else if len(out) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "no keys stored in %s\n", kc.Describe())
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FINGERPRINT\tTYPE\tBITS\tCOMMENT\tADDED\tAGENT")
		for _, l := range out {
			ag := "-"
			if l.Loaded != nil {
				ag = map[bool]string{true: "yes", false: "no"}[*l.Loaded]
			}
			typ := l.Type
			if l.Certificate {
				typ += "+cert"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", l.Fingerprint, typ, l.Bits, l.Comment,
				l.Added.Local().Format("2006-01-02 15:04"), ag)
		}
		tw.Flush()
	}
	if agentErr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "sesame: warning: %v\n", agentErr)
	}
	return damaged
}

// agentFingerprints returns the fingerprints the agent has loaded, or nil
// when no agent is configured or reachable.
func agentFingerprints() (map[string]bool, error) {
	ag, conn, err := dialAgent()
	if ag == nil {
		return nil, err
	}
	defer conn.Close()
	ids, err := ag.List()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		pub, err := ssh.ParsePublicKey(id.Blob)
		if err != nil {
			continue
		}
		m[agent.KeyFingerprint(pub)] = true
	}
	return m, nil
}
