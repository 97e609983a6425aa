package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent/pin"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "pin [user@]HOST KEY",
		Short: "Offer only KEY to HOST (a public key file, a SHA256: fingerprint, or a key comment)",
		Long: `Pin a key to a host: the agent then offers that host only its pinned keys,
and refuses to sign for other hosts with the key.

HOST is an ssh_config-style pattern list: *, ?, !negation, comma-separated;
a pattern without a port matches every port, [host]:port one port.
"hostkey SHA256:..." pins by the server's host key fingerprint.
KEY is a public key file, a SHA256: fingerprint, or the comment of a key in
the agent or in ~/.ssh/*.pub. The running agent picks the change up at once.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPin(cmd.OutOrStdout(), pin.DefaultFiles(), pin.DefaultKeySource(), args[0], args[1])
		},
	})
	var pinsJSON bool
	pinsCmd := &cobra.Command{
		Use:   "pins [--json]",
		Short: "List declared and learned pins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if pinsJSON {
				return runPinsJSON(cmd.OutOrStdout(), pin.DefaultFiles())
			}
			if err := runPins(cmd.OutOrStdout(), pin.DefaultFiles()); err != nil {
				return err
			}
			return printAgentDestinations(cmd.OutOrStdout())
		},
	}
	jsonFlag(pinsCmd.Flags(), &pinsJSON)
	rootCmd.AddCommand(pinsCmd)
	rootCmd.AddCommand(&cobra.Command{
		Use:   "unpin [user@]HOST [KEY]",
		Short: "Remove the pins of HOST (only those of KEY when given), declared and learned",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := ""
			if len(args) == 2 {
				key = args[1]
			}
			return runUnpin(cmd.OutOrStdout(), pin.DefaultFiles(), pin.DefaultKeySource(), args[0], key)
		},
	})
}

func runPin(out io.Writer, files pin.Files, src pin.KeySource, target, keyArg string) error {
	k, err := pin.ResolveKey(keyArg, src)
	if err != nil {
		return err
	}
	p, changed, err := pin.PinKey(files, target, k)
	if err != nil {
		return err
	}
	desc := k.Fingerprint
	if k.Comment != "" {
		desc += " (" + k.Comment + ")"
	}
	if !changed {
		fmt.Fprintf(out, "%s was already pinned to %s\n", desc, p.Target())
		return nil
	}
	fmt.Fprintf(out, "pinned %s to %s\n", desc, p.Target())
	return nil
}

func runPins(out io.Writer, files pin.Files) error {
	declared, learned, err := pin.List(files)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "declared (%s):\n", files.Pins)
	if len(declared) == 0 {
		fmt.Fprintln(tw, "  none")
	}
	for _, p := range declared {
		used := "never used"
		if last, n := pin.LastUse(p, learned); n > 0 {
			used = fmt.Sprintf("last used %s\t%d×", last.Local().Format(time.DateTime), n)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Target(), p.Key, used, p.Comment)
	}
	tw.Flush()
	fmt.Fprintf(tw, "learned (%s):\n", files.Learned)
	if len(learned) == 0 {
		fmt.Fprintln(tw, "  none")
	}
	for _, l := range learned {
		host := "hostkey " + l.HostKey
		if len(l.Names) > 0 {
			host = joinNames(l.Names)
		}
		fmt.Fprintf(tw, "  %s@%s\t%s\tlast used %s\t%d×\thost key %s\n", l.User, host, l.Key,
			l.LastUsed.Local().Format(time.DateTime), l.Count, l.HostKey)
	}
	return tw.Flush()
}

// pinsJSON is `sesame pins --json`: the same lists for scripts.
type pinsJSON struct {
	DeclaredFile string         `json:"declared_file"`
	LearnedFile  string         `json:"learned_file"`
	Declared     []declaredJSON `json:"declared"`
	Learned      []pin.Learned  `json:"learned"`
}

type declaredJSON struct {
	Target   string     `json:"target"`
	Key      string     `json:"key"`
	Comment  string     `json:"comment,omitempty"`
	Line     int        `json:"line"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Uses     int        `json:"uses"`
}

func runPinsJSON(out io.Writer, files pin.Files) error {
	declared, learned, err := pin.List(files)
	if err != nil {
		return err
	}
	r := pinsJSON{DeclaredFile: files.Pins, LearnedFile: files.Learned, Declared: []declaredJSON{}, Learned: learned}
	if r.Learned == nil {
		r.Learned = []pin.Learned{}
	}
	for _, p := range declared {
		d := declaredJSON{Target: p.Target(), Key: p.Key, Comment: p.Comment, Line: p.Line}
		if last, n := pin.LastUse(p, learned); n > 0 {
			d.LastUsed, d.Uses = &last, n
		}
		r.Declared = append(r.Declared, d)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ","
		}
		s += n
	}
	return s
}

func runUnpin(out io.Writer, files pin.Files, src pin.KeySource, target, keyArg string) error {
	declared, learned, err := pin.Unpin(files, target, keyArg, src)
	if err != nil {
		return err
	}
	for _, p := range declared {
		fmt.Fprintf(out, "unpinned %s from %s\n", p.Key, p.Target())
	}
	for _, l := range learned {
		fmt.Fprintf(out, "forgot learned %s for %s@%s\n", l.Key, l.User, joinNames(l.Names))
	}
	return nil
}

// printAgentDestinations lists the destination constraints (ssh-add -h) of
// the keys in the agent at SSH_AUTH_SOCK, which apply besides the pins.
func printAgentDestinations(out io.Writer) error {
	ag, closer, err := dialAgent()
	if err != nil || ag == nil {
		return nil // no agent: the pins files are all there is
	}
	defer closer.Close()
	st, err := agentStatus(ag)
	if err != nil || len(st.Destinations) == 0 {
		return nil
	}
	keys, _ := ag.List()
	comment := map[string]string{}
	for _, k := range keys {
		if pub, err := ssh.ParsePublicKey(k.Blob); err == nil {
			comment[ssh.FingerprintSHA256(pub)] = k.Comment
		}
	}
	fps := make([]string, 0, len(st.Destinations))
	for fp := range st.Destinations {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "destination constraints in the agent (ssh-add -h; they apply besides the pins):")
	for _, fp := range fps {
		fmt.Fprintf(tw, "  %s\t%s\tonly %s\n", fp, comment[fp], strings.Join(st.Destinations[fp], ", "))
	}
	return tw.Flush()
}
