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

	"github.com/sesame-ssh/sesame/agent"
	"github.com/sesame-ssh/sesame/agent/pin"
)

func init() {
	var twoFactor bool
	pinCmd := &cobra.Command{
		Use:   "pin [--2fa] [user@]HOST KEY",
		Short: "Offer only KEY to HOST (a public key file, a SHA256: fingerprint, or a key comment)",
		Long: `Pin a key to a host: the agent then offers that host only its pinned keys,
and refuses to sign for other hosts with the key.

HOST is an ssh_config-style pattern list: *, ?, !negation, comma-separated;
a pattern without a port matches every port, [host]:port one port.
"hostkey SHA256:..." pins by the server's host key fingerprint.
KEY is a public key file, a SHA256: fingerprint, or the comment of a key in
the agent or in ~/.ssh/*.pub. The running agent picks the change up at once.

--2fa marks a server that asks for a one-time code on every connection:
sesame ssh-config then gives it a shared connection (ControlMaster auto,
a ControlPath in sesame's runtime directory, ControlPersist), so that one
code serves a working day's logins. With --2fa, KEY may be left out.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if twoFactor {
				return cobra.RangeArgs(1, 2)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			key := ""
			if len(args) == 2 {
				key = args[1]
			}
			return runPin(cmd.OutOrStdout(), pin.DefaultFiles(), pin.DefaultKeySource(), args[0], key, twoFactor)
		},
	}
	pinCmd.Flags().BoolVar(&twoFactor, "2fa", false, "the server asks for a one-time code: share one connection (see sesame ssh-config)")
	rootCmd.AddCommand(pinCmd)
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
		Short: "Remove the pins of HOST (only those of KEY when given), declared and learned, and the keys tried on it",
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

func runPin(out io.Writer, files pin.Files, src pin.KeySource, target, keyArg string, twoFactor bool) error {
	var k pin.Key
	if keyArg != "" {
		var err error
		if k, err = pin.ResolveKey(keyArg, src); err != nil {
			return err
		}
	}
	p, changed, err := pin.PinKey(files, target, k, twoFactor)
	if err != nil {
		return err
	}
	desc := k.Fingerprint
	if k.Comment != "" {
		desc += " (" + k.Comment + ")"
	}
	if desc == "" {
		desc = "the 2fa flag"
	} else if twoFactor {
		desc += " with the 2fa flag"
	}
	if !changed {
		fmt.Fprintf(out, "%s was already pinned to %s\n", desc, p.Target())
		return nil
	}
	fmt.Fprintf(out, "pinned %s to %s\n", desc, p.Target())
	return nil
}

// pinsState is what `sesame pins` shows: the declared pins from the file;
// learned pins and the rotation state from the running agent, which knows
// what it has not written yet, else from the files.
type pinsState struct {
	declared []pin.Pin
	learned  []pin.Learned
	rotation []pin.Rotation
	source   string // where learned pins and rotation came from
}

func readPinsState(files pin.Files) (pinsState, error) {
	var st pinsState
	var err error
	st.declared, st.learned, err = pin.List(files)
	if err != nil {
		return st, err
	}
	if rep, ok := agentPinsReport(); ok {
		st.learned, st.rotation, st.source = rep.Learned, rep.Rotation, "the running agent"
		return st, nil
	}
	st.source = files.RotationFile()
	st.rotation, err = pin.ReadRotation(files.RotationFile())
	return st, err
}

func runPins(out io.Writer, files pin.Files) error {
	st, err := readPinsState(files)
	if err != nil {
		return err
	}
	declared, learned, rotation, source := st.declared, st.learned, st.rotation, st.source
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
		key := p.Key
		if key == "" {
			key = "(no key)"
		}
		if p.TwoFactor {
			key += " 2fa"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Target(), key, used, p.Comment)
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
	tw.Flush()
	if len(rotation) > 0 {
		fmt.Fprintf(out, "looking for the key (servers without pins that accepted no key offered yet; from %s):\n", source)
		for _, r := range rotation {
			printRotation(out, "  ", r)
		}
	}
	return nil
}

// printRotation says where the search for one server's key stands and the
// commands that end it.
func printRotation(out io.Writer, indent string, r pin.Rotation) {
	target := pin.ShellWord(r.Target())
	if r.Exhausted {
		fmt.Fprintf(out, "%s%s: accepted none of the %d keys offered; no key is offered to it any more (it may take only passwords or one-time codes)\n", indent, r.Target(), len(r.Tried))
		fmt.Fprintf(out, "%s  if it takes a key: sesame pin %s KEY\n", indent, target)
		fmt.Fprintf(out, "%s  to try every key again: sesame unpin %s\n", indent, target)
		return
	}
	fmt.Fprintf(out, "%s%s: %d keys offered without success (last %s); the next login offers the next keys not yet tried\n",
		indent, r.Target(), len(r.Tried), r.Updated.Local().Format(time.DateTime))
	if len(r.Next) > 0 {
		fmt.Fprintf(out, "%s  next: %s\n", indent, strings.Join(r.Next, " "))
	}
	fmt.Fprintf(out, "%s  to end it: sesame pin %s KEY (the key this server accepts)\n", indent, target)
}

// agentPinsReport asks the agent at SSH_AUTH_SOCK for what its pin policy
// knows now; false when no sesame agent with a pin policy answers.
func agentPinsReport() (pin.Report, bool) {
	var rep pin.Report
	ag, closer, err := dialAgent()
	if err != nil || ag == nil {
		return rep, false
	}
	defer closer.Close()
	reply, err := ag.Extension(agent.ExtPins, nil)
	if err != nil || len(reply) < 1 || reply[0] != 6 {
		return rep, false
	}
	if json.Unmarshal(reply[1:], &rep) != nil {
		return rep, false
	}
	return rep, true
}

// pinsJSON is `sesame pins --json`: the same lists for scripts.
type pinsJSON struct {
	DeclaredFile string         `json:"declared_file"`
	LearnedFile  string         `json:"learned_file"`
	Declared     []declaredJSON `json:"declared"`
	Learned      []pin.Learned  `json:"learned"`
	// Rotation is the search for the key of servers without pins.
	Rotation []pin.Rotation `json:"rotation"`
	// Source says where learned pins and rotation come from: the running
	// agent, or the state file.
	Source string `json:"source"`
}

type declaredJSON struct {
	Target    string     `json:"target"`
	Key       string     `json:"key"`
	TwoFactor bool       `json:"2fa,omitempty"`
	Comment   string     `json:"comment,omitempty"`
	Line      int        `json:"line"`
	LastUsed  *time.Time `json:"last_used,omitempty"`
	Uses      int        `json:"uses"`
}

func runPinsJSON(out io.Writer, files pin.Files) error {
	st, err := readPinsState(files)
	if err != nil {
		return err
	}
	r := pinsJSON{DeclaredFile: files.Pins, LearnedFile: files.Learned, Declared: []declaredJSON{}, Learned: st.learned,
		Rotation: st.rotation, Source: st.source}
	if r.Learned == nil {
		r.Learned = []pin.Learned{}
	}
	if r.Rotation == nil {
		r.Rotation = []pin.Rotation{}
	}
	for _, p := range st.declared {
		d := declaredJSON{Target: p.Target(), Key: p.Key, TwoFactor: p.TwoFactor, Comment: p.Comment, Line: p.Line}
		if last, n := pin.LastUse(p, st.learned); n > 0 {
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
		if l.Key == "" {
			fmt.Fprintf(out, "forgot the keys tried on %s@%s\n", l.User, joinNames(l.Names))
			continue
		}
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
