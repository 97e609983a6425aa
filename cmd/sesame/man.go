//go:build mangen

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Manual pages are generated from the command tree (cobra's doc
// generator): NAME, SYNOPSIS, DESCRIPTION and the flag tables come from the
// commands themselves, so a page cannot fall behind a flag. What the
// command tree does not say — the exit statuses, the environment and the
// files, the sections MIT's and OpenSSH's pages have — comes from the table
// below, keyed by the command's path. `make man` writes the pages; the
// packages ship them. This file is built with -tags mangen only (make
// man), so the released binary carries neither the generator nor the
// hidden gen-man command. The pages are not committed: a generated copy
// in git would go stale with every new flag; instead a test checks that
// every flag of --help is on its page (man_test.go).

// manSection is one extra section of a page: a title and paragraphs in
// markdown, which cobra's generator turns into roff.
type manSection struct{ title, body string }

// Shared pieces of the table.
const (
	manExitKrb = "0 on success, 1 when the command fails, 2 for a bad command line (as MIT's tools)."
	manEnvKrb  = "`KRB5CCNAME`\n: the credentials cache (as MIT), when -c is not given.\n\n" +
		"`KRB5_CONFIG`\n: the krb5.conf files to read (as MIT; default /etc/krb5.conf).\n\n"
	manEnvAgent = "`SSH_AUTH_SOCK`\n: the agent's socket, as ssh-add and ssh use it.\n\n"
	manEnvAll   = "`SESAME_HOME`\n: keep configuration, state and sockets under this directory (tests, sandboxes).\n\n" +
		"`SESAME_DEBUG`\n: when set, the same as --debug.\n"
	manFilesKrb = "*/etc/krb5.conf*\n: Kerberos configuration (default_realm, default_ccache_name, the KDCs).\n\n" +
		"*/tmp/krb5cc_UID*\n: the default credentials cache, unless KRB5CCNAME or default_ccache_name say otherwise.\n"
	manFilesAgent = "*$XDG_RUNTIME_DIR/sesame/agent.sock*\n: the shared agent's socket (--shared); agents started with -s use agent.XXXXXXXX next to it.\n\n" +
		"*~/.config/sesame/pins*\n: declared pins: which key goes to which host.\n\n" +
		"*~/.local/state/sesame/*\n: the vault of stored keys, learned pins, the keys tried per server.\n"
	manExitAgentCtl = "0 on success, 1 when the command fails, 2 when no agent answers (as ssh-add)."
)

// manExtra holds the sections each page gets after its flags, by command
// path. A command without an entry gets the root's environment only.
var manExtra = map[string][]manSection{
	"sesame": {
		{"EXIT STATUS", "Each command exits as the tool it replaces; see its page. Errors are one line, *sesame: ...*, often followed by *sesame: hint: ...* saying what to do."},
		{"ENVIRONMENT", manEnvKrb + manEnvAgent + manEnvAll},
		{"FILES", manFilesKrb + "\n" + manFilesAgent},
	},
	"sesame kinit": {
		{"EXIT STATUS", manExitKrb},
		{"ENVIRONMENT", manEnvKrb + "`KRB5_CLIENT_KTNAME`, `KRB5_KTNAME`\n: the keytab of -k when -t is not given.\n\n" + manEnvAll},
		{"FILES", manFilesKrb},
	},
	"sesame klist": {
		{"EXIT STATUS", "0 on success; 1 when there is no cache, with -s when it holds no current ticket, or for a bad command line (as MIT klist); 3 for -4 (Kerberos 4)."},
		{"ENVIRONMENT", manEnvKrb + "`KRB5_KTNAME`\n: the keytab of -k when none is named.\n\n" + manEnvAll},
		{"FILES", manFilesKrb},
	},
	"sesame kdestroy": {
		{"EXIT STATUS", "0 on success, also when there was no cache to destroy (as MIT kdestroy); 1 when it fails; 2 for a bad command line."},
		{"ENVIRONMENT", manEnvKrb + manEnvAll},
		{"FILES", manFilesKrb},
	},
	"sesame renew": {
		{"EXIT STATUS", "With a command, the command's status. Otherwise 0 when stopped by a signal, 1 when it fails or for a bad command line, 3 when renewal stopped for good (the KDC rejected the stored password or keytab key, or the ticket expired with no way to get a new one); restarting would not help."},
		{"ENVIRONMENT", manEnvKrb + "`KRB5_CLIENT_KTNAME`, `KRB5_KTNAME`\n: the keytab of -k when -t is not given.\n\n" + manEnvAll},
		{"FILES", manFilesKrb + "\n*~/.local/state/sesame/*\n: the renewal state that sesame klist reports.\n\n" +
			"*/usr/lib/systemd/user/sesame-renew.service*\n: the user unit: systemctl --user enable --now sesame-renew\n"},
	},
	"sesame agent": {
		{"EXIT STATUS", "0 on success; 1 when the agent cannot start or for a bad command line (as ssh-agent). With a command, the command's status."},
		{"ENVIRONMENT", manEnvAgent + "`SSH_AGENT_PID`\n: the agent that -k stops.\n\n" +
			"`SSH_ASKPASS`, `SSH_ASKPASS_REQUIRE`\n: the program asked for confirmations and passphrases without a terminal (as ssh-add).\n\n" +
			"`SESAME_BACKEND`\n: the keychain backend of --backend.\n\n" +
			"`SESAME_PASSPHRASE_FILE`\n: a file holding the vault passphrase, for unattended starts.\n\n" +
			"`KRB5CCNAME`\n: the Kerberos cache the agent keeps alive (unless --no-renew).\n\n" +
			"`TMPDIR`\n: where -T puts the socket.\n\n" + manEnvAll},
		{"FILES", manFilesAgent + "\n*/usr/lib/systemd/user/sesame-agent.socket*, *sesame-agent.service*\n: the user units: systemctl --user enable --now sesame-agent.socket\n"},
	},
}

// Commands of the agent that talk to a running one share its exit rule.
func init() {
	for _, name := range []string{"lock", "unlock", "status", "add", "remove", "keys"} {
		exit := manExitAgentCtl
		if name == "add" || name == "remove" || name == "keys" {
			exit = "0 on success, 1 when the command fails or for a bad command line."
		}
		manExtra["sesame "+name] = []manSection{
			{"EXIT STATUS", exit},
			{"ENVIRONMENT", manEnvAgent + "`SESAME_BACKEND`\n: the keychain backend (default: automatic).\n\n" + manEnvAll},
			{"FILES", manFilesAgent},
		}
	}
}

// writeManPages writes sesame.1 and one page per command (sesame-kinit.1,
// …) into dir. date is the pages' date: the commit's, for reproducible
// packages.
func writeManPages(root *cobra.Command, dir string, date time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	// cobra adds -v/--version only when the command line runs.
	root.InitDefaultVersionFlag()
	header := &doc.GenManHeader{Section: "1", Source: "sesame " + version, Manual: "sesame manual", Date: &date}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != root || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		var page bytes.Buffer
		h := *header
		if err := doc.GenMan(c, &h, &page); err != nil {
			return err
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		return os.WriteFile(filepath.Join(dir, name), withSections(page.Bytes(), manSectionsOf(c)), 0o644)
	}
	return walk(root)
}

// manSectionsOf is the table's entry for c, or the environment every
// command shares.
func manSectionsOf(c *cobra.Command) []manSection {
	if s, ok := manExtra[c.CommandPath()]; ok {
		return s
	}
	return []manSection{{"ENVIRONMENT", manEnvAll}}
}

// withSections puts the extra sections into a generated page where MIT's
// and OpenSSH's pages have them: after the options, before SEE ALSO.
func withSections(page []byte, extra []manSection) []byte {
	var md strings.Builder
	md.WriteString("% x\n\n") // md2man takes the first title as .TH: a throwaway
	for _, s := range extra {
		fmt.Fprintf(&md, "# %s\n%s\n\n", s.title, s.body)
	}
	roff := md2man.Render([]byte(md.String()))
	if i := bytes.Index(roff, []byte(".SH ")); i >= 0 {
		roff = roff[i:]
	}
	at := bytes.Index(page, []byte("\n.SH SEE ALSO"))
	if at < 0 {
		return append(page, roff...)
	}
	out := append(append([]byte{}, page[:at+1]...), roff...)
	return append(out, page[at+1:]...)
}

// `sesame gen-man DIR` writes the manual pages (make man).
func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the manual pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			date := time.Now()
			// SOURCE_DATE_EPOCH (reproducible-builds.org): the commit's
			// time, so the same tree gives the same pages.
			if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
				date = time.Unix(s, 0).UTC()
			}
			return writeManPages(rootCmd, args[0], date)
		},
	})
}
