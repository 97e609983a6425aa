package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/internal/doctor"
)

func init() {
	var (
		asJSON    bool
		port      int
		sshConfig string
	)
	cmd := &cobra.Command{
		Use:   "doctor [-p PORT] [-F SSH_CONFIG] [--json] [[user@]HOST]",
		Short: "Explain what would happen on `ssh HOST`: Kerberos ticket, agent, which keys and why",
		Long: `Explain what would happen on "ssh HOST": whether ssh would use your Kerberos
ticket (the default cache, the host's realm, GSSAPIAuthentication), which
agent answers at SSH_AUTH_SOCK, which of its keys sesame would offer to HOST
and why (declared or learned pins, or at most max-offer keys), and what to
change, one line per suggestion. HOST may be "[host]:port" or "host:port".

Without HOST, check the general health: ticket, agent, pins file, keychain.
ssh's own view of HOST comes from "ssh -G" (with -F and -p as for ssh).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("port") && (port < 1 || port > 65535) {
				return newUsageError(cmd, "bad value %d for -p/--port: want a port from 1 to 65535", port)
			}
			if sshConfig != "" && sshConfig != "none" { // ssh -F none: no file at all
				if err := checkReadableFile("ssh config", sshConfig); err != nil {
					return err
				}
			}
			opt := doctor.Options{Port: port, SSHConfig: sshConfig}
			if len(args) == 1 {
				opt.Host = args[0]
			}
			return runDoctor(cmd, opt, asJSON)
		},
	}
	jsonFlag(cmd.Flags(), &asJSON)
	cmd.Flags().IntVarP(&port, "port", "p", 0, "port to connect to, as ssh -p")
	cmd.Flags().StringVarP(&sshConfig, "ssh-config", "F", "", "ssh client configuration file, as ssh -F")
	rootCmd.AddCommand(cmd)
}

func runDoctor(cmd *cobra.Command, opt doctor.Options, asJSON bool) error {
	r, err := doctor.Check(cmd.Context(), opt)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printDoctor(out, r)
	return nil
}

func doctorTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

// printDoctor writes the report for a person: one short section per part,
// then what to change.
func printDoctor(w io.Writer, r *doctor.Report) {
	sec := func(title string) { fmt.Fprintf(w, "\n%s\n", title) }
	line := func(format string, args ...any) { fmt.Fprintf(w, "  "+format+"\n", args...) }
	if r.Host != "" {
		fmt.Fprintf(w, "What happens on ssh %s\n", r.Host)
	} else {
		fmt.Fprintln(w, "sesame health check")
	}

	if s := r.SSH; s != nil {
		sec("ssh client")
		if s.Error != "" {
			line("ssh -G failed: %s", s.Error)
		} else {
			ver := s.Version
			if ver == "" {
				ver = "ssh"
			}
			bind := "tells the agent which host it connects to (session-bind)"
			if !s.SessionBind {
				bind = "does NOT tell the agent which host it connects to"
			}
			line("%s %s", firstWord(ver), bind)
			line("connects as %s to %s port %d", s.User, s.Hostname, s.Port)
			gss := "GSSAPIAuthentication yes: a Kerberos ticket is tried first"
			if !s.GSSAPI {
				gss = "GSSAPIAuthentication no: Kerberos is not tried"
			}
			line("%s", gss)
			if len(s.ServerMethods) > 0 {
				line("the server offers %s", strings.Join(s.ServerMethods, ", "))
			}
		}
	}

	k := r.Kerberos
	sec("Kerberos")
	switch {
	case k.Principal == "" && k.CacheError != "":
		line("no ticket: %s", k.CacheError)
	case k.Principal == "":
		line("no ticket")
	default:
		line("%s in %s", k.Principal, k.Cache)
		if k.TGTExpires.IsZero() {
			line("no ticket-granting ticket in the cache")
		} else if k.TGTValid {
			line("ticket valid until %s", doctorTime(k.TGTExpires))
		} else {
			line("ticket EXPIRED at %s", doctorTime(k.TGTExpires))
		}
		if !k.RenewUntil.IsZero() {
			line("renewable until %s", doctorTime(k.RenewUntil))
		}
		if k.Preauth != nil {
			line("the KDC asks %s for %s", k.Principal, k.Preauth)
		} else if k.PreauthError != "" {
			line("cannot tell what the KDC asks of %s: %s", k.Principal, k.PreauthError)
		}
		if k.TwoFactorNote != "" {
			line("%s", k.TwoFactorNote)
		}
		if rn := k.Renewal; rn != nil {
			switch {
			case rn.Running && rn.PID > 0 && syscall.Kill(rn.PID, 0) == nil && !rn.NextCheck.IsZero():
				line("kept alive by sesame (pid %d); next check %s", rn.PID, doctorTime(rn.NextCheck))
			case !rn.Running && !rn.Stopped.IsZero():
				line("background renewal STOPPED at %s: %s", doctorTime(rn.Stopped), rn.Reason)
			}
		}
	}
	if r.Host != "" {
		switch {
		case k.HostRealm == "":
			line("realm of %s: unknown (no [domain_realm] match, no default_realm)", hostOf(r))
		case k.RealmSource == "domain_realm":
			line("realm of %s: %s (from [domain_realm])", hostOf(r), k.HostRealm)
		default:
			line("realm of %s: %s (the default realm; no [domain_realm] match)", hostOf(r), k.HostRealm)
		}
		if k.ServiceValid {
			line("a service ticket for host/%s is already in the cache", hostOf(r))
		}
		if k.WouldUse {
			line("=> ssh would log in with the Kerberos ticket (GSSAPI)")
		} else {
			line("=> ssh would not use Kerberos")
		}
	}

	a := r.Agent
	sec("Agent")
	switch {
	case a.Socket == "":
		line("SSH_AUTH_SOCK is not set")
	case !a.Reachable:
		line("%s: not reachable (%s)", a.Socket, a.Error)
	default:
		who := "another agent"
		if a.Sesame {
			who = "sesame"
		}
		if a.PID > 0 {
			who += fmt.Sprintf(" (pid %d, %s)", a.PID, programName(a.Program))
		}
		line("%s: %s", a.Socket, who)
		switch {
		case len(a.Keys) == 0:
			line("no keys listed (empty, or locked)")
		default:
			line("%d keys loaded; a server without pins is offered at most %d", len(a.Keys), a.MaxOffer)
		}
		for _, k := range a.Keys {
			if k.Kind != "" && k.Kind != "software" {
				line("%s %s: %s key, held by the backend ssh-agent", k.Fingerprint, k.Comment, k.Kind)
			}
			if len(k.Destinations) > 0 {
				line("%s %s: only for %s (ssh-add -h), besides its pins", k.Fingerprint, k.Comment, strings.Join(k.Destinations, ", "))
			}
		}
		if a.Error != "" {
			line("%s", a.Error)
		}
	}

	p := r.Pins
	sec("Pins")
	line("%s: %d declared, %d learned", p.File, p.Declared, p.Learned)
	if p.Error != "" {
		line("ERROR: %s", p.Error)
	}

	if kc := r.Keychain; kc != nil {
		sec("Keychain")
		switch {
		case kc.Error != "":
			line("cannot open: %s", kc.Error)
		case kc.Backend == "vault" && !kc.VaultExists:
			line("vault %s (not created yet: sesame add creates it)", kc.Detail)
		case kc.Backend == "vault":
			line("vault %s", kc.Detail)
		default:
			line("%s %s", kc.Backend, kc.Detail)
		}
	}

	if r.Host != "" {
		if a.Reachable && !a.Sesame {
			sec(fmt.Sprintf("Keys sesame's agent would offer to %s (the agent running now offers all %d, in order)", r.Host, len(a.Keys)))
		} else {
			sec("Keys the agent would offer to " + r.Host)
		}
		for _, o := range r.Offer {
			switch {
			case o.HostKey == "" && !o.CA:
				line("host key unknown (not in known_hosts)")
			case o.CA:
				line("host certificate authority %s (%s)", o.HostKey, o.Source)
			default:
				line("host key %s (%s)", o.HostKey, o.Source)
			}
			if len(o.Names) > 0 {
				line("  known as %s", strings.Join(o.Names, ", "))
			}
			for _, d := range o.Declared {
				line("  declared pin: %s", d)
			}
			for _, l := range o.Learned {
				line("  learned pin: %s", l)
			}
			line("  %s", o.Reason)
			if o.Rotation != nil {
				printRotation(w, "    ", *o.Rotation)
			}
			if len(o.Offered) == 0 && !o.CA {
				line("  => no key is offered")
			}
			for i, k := range o.Offered {
				line("  %d. %s %s", i+1, k.Fingerprint, k.Comment)
			}
		}
	}

	sec("What to change")
	if len(r.Suggestions) == 0 {
		line("nothing: all good")
	}
	for _, s := range r.Suggestions {
		line("- %s", s)
	}
}

func hostOf(r *doctor.Report) string {
	if r.SSH != nil && r.SSH.Hostname != "" {
		return r.SSH.Hostname
	}
	return r.Host
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return strings.TrimSuffix(f[0], ",")
	}
	return s
}

func programName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	if p == "" {
		return "unknown program"
	}
	return p
}
