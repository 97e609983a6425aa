package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/agent/pin"
	"github.com/sesame-ssh/sesame/internal/doctor"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "ssh-config",
		Short: "Print ssh_config Host blocks for the declared pins (for clients without session-bind)",
		Long: `Print ssh_config blocks that make ssh offer each pinned host only its pinned
keys, for clients that cannot tell the agent which host they connect to
(OpenSSH before 8.9, other SSH libraries). Each block names the exported
public key as IdentityFile, with IdentitiesOnly yes. Append the output to
~/.ssh/config, or save it and Include it. Hosts in a Kerberos realm you hold
a valid ticket for (krb5.conf [domain_realm], else the default realm) also
get GSSAPIAuthentication yes.

OpenSSH 8.9 and later need none of this: they tell the agent which host
they connect to, and the agent applies the pins itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSSHConfig(cmd.OutOrStdout(), pin.DefaultFiles(), pin.DefaultKeySource())
		},
	})
}

func runSSHConfig(out io.Writer, files pin.Files, src pin.KeySource) error {
	s, err := pin.SSHConfig(files, src, pin.SSHConfigOptions{GSSAPI: doctor.GSSAPICovers()})
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(out, s)
	return err
}
