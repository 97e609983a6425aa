package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/krb"
)

// klistParams are the flags of `sesame klist`.
type klistParams struct {
	ccache      string
	flags       bool
	etypes      bool
	silent      bool
	json        bool
	configEntry bool
}

func init() {
	var p klistParams
	cmd := &cobra.Command{
		Use:   "klist",
		Short: "List the tickets in the credentials cache (like MIT klist)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKlist(cmd.OutOrStdout(), p, time.Now())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&p.ccache, "cache", "c", "", "credentials cache (FILE:path, DIR:dir or a path)")
	f.BoolVarP(&p.flags, "flags", "f", false, "show ticket flags")
	f.BoolVarP(&p.etypes, "etypes", "e", false, "show the encryption types of session key and ticket")
	f.BoolVarP(&p.silent, "silent", "s", false, "print nothing; exit 0 only if the cache holds a current ticket")
	f.BoolVar(&p.json, "json", false, "print the cache as JSON")
	f.BoolVarP(&p.configEntry, "config", "C", false, "show the cache's configuration entries too")
	rootCmd.AddCommand(cmd)
}

// klistTime is the C-locale "%x %X" format MIT klist falls back to.
const klistTime = "01/02/06 15:04:05"

func runKlist(w io.Writer, p klistParams, now time.Time) error {
	name, err := resolveCache(p.ccache)
	if p.silent {
		// Like MIT klist -s: no output in any case, only the status.
		if err != nil {
			return exitError{1}
		}
		cc, err := name.Read()
		if err != nil || !hasCurrentTicket(cc, now) {
			return exitError{1}
		}
		return nil
	}
	if err != nil {
		return err
	}
	cc, err := name.Read()
	if err != nil {
		return err
	}
	if p.json {
		return klistJSON(w, name, cc, now, p.configEntry)
	}
	return klistText(w, name, cc, p)
}

// loadCache loads krb5.conf and resolves the cache named by flag (-c), or
// else KRB5CCNAME, default_ccache_name or MIT's default.
func loadCache(flag string) (*krb.Config, krb.CacheName, error) {
	cfg, err := krb.LoadConfig()
	if err != nil {
		return nil, krb.CacheName{}, err
	}
	name, err := krb.ResolveCacheName(flag, cfg)
	return cfg, name, err
}

// resolveCache finds the cache named by flag, KRB5CCNAME or krb5.conf. A
// broken krb5.conf is an error only when the name depends on it.
func resolveCache(flag string) (krb.CacheName, error) {
	cfg, err := krb.LoadConfig()
	if err != nil {
		if flag == "" && os.Getenv("KRB5CCNAME") == "" {
			return krb.CacheName{}, err
		}
		cfg = nil
	}
	return krb.ResolveCacheName(flag, cfg)
}

// hasCurrentTicket is MIT klist -s's test (check_ccache): a TGT of the
// default principal's realm, or any ticket, whose end time is still ahead
// on the local clock.
func hasCurrentTicket(cc *krb.CCache, now time.Time) bool {
	if len(cc.DefaultPrincipal.Components) == 0 {
		return false
	}
	for _, c := range cc.Tickets() {
		if c.EndTime.After(now) {
			return true
		}
	}
	return false
}

func klistText(w io.Writer, name krb.CacheName, cc *krb.CCache, p klistParams) error {
	var b strings.Builder
	def := cc.DefaultPrincipal.String()
	fmt.Fprintf(&b, "Ticket cache: %s\nDefault principal: %s\n\n", name, def)
	width := len(klistTime)
	fmt.Fprintf(&b, "%-*s  %-*s  %s\n", width, "Valid starting", width, "Expires", "Service principal")
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.IsConfigEntry() {
			if p.configEntry {
				writeConfigEntry(&b, c)
			}
			continue
		}
		writeCredential(&b, c, def, p)
	}
	// Not in MIT's output: why background renewal gave up, when it did.
	if note := krb.StoppedNote(name.String()); note != "" {
		fmt.Fprintf(&b, "\n%s\n", note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCredential prints one ticket in MIT klist's layout (show_credential):
// extra fields after the first line share lines, separated by ", ".
func writeCredential(b *strings.Builder, c *krb.Credential, def string, p klistParams) {
	start := c.StartTime
	if start.IsZero() {
		start = c.AuthTime
	}
	fmt.Fprintf(b, "%s  %s  %s\n", fmtTime(start), fmtTime(c.EndTime), c.Server)
	extra := 0
	sep := func() {
		if extra == 0 {
			b.WriteByte('\t')
		} else {
			b.WriteString(", ")
		}
	}
	if cl := c.Client.String(); cl != def {
		b.WriteString("\tfor client " + cl)
		extra++
	}
	if !c.RenewTill.IsZero() {
		sep()
		b.WriteString("renew until " + fmtTime(c.RenewTill))
		extra += 2
	}
	if extra > 3 {
		b.WriteByte('\n')
		extra = 0
	}
	if p.flags {
		if fl := c.FlagString(); fl != "" {
			sep()
			b.WriteString("Flags: " + fl)
			extra++
		}
	}
	if extra > 2 {
		b.WriteByte('\n')
		extra = 0
	}
	if p.etypes {
		if te, err := c.TicketEncTypeName(); err == nil {
			sep()
			fmt.Fprintf(b, "Etype (skey, tkt): %s, %s ", c.Key.EncTypeName(), te)
			extra++
		}
	}
	if extra > 0 {
		b.WriteByte('\n')
	}
}

// writeConfigEntry prints a config entry as MIT klist -C does:
// "config: key(principal) = value", non-printable bytes in octal.
func writeConfigEntry(b *strings.Builder, c *krb.Credential) {
	comps := c.Server.Components
	b.WriteString("config: " + c.ConfigKey())
	if len(comps) > 2 {
		b.WriteString("(" + strings.Join(comps[2:], "/") + ")")
	}
	b.WriteString(" = ")
	b.WriteString(printable(c.Ticket))
	b.WriteByte('\n')
}

func printable(v []byte) string {
	var b strings.Builder
	for _, ch := range v {
		if ch >= 0x20 && ch < 0x7f {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "\\%03o", ch)
		}
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return strings.Repeat(" ", len(klistTime))
	}
	return t.Local().Format(klistTime)
}

// klistJSON is the machine-readable listing. Times are RFC 3339; absent
// times are omitted.
type klistJSONCache struct {
	Cache            string            `json:"cache"`
	DefaultPrincipal string            `json:"default_principal"`
	KDCOffsetSeconds *float64          `json:"kdc_offset_seconds,omitempty"`
	Tickets          []klistJSONTicket `json:"tickets"`
	Config           []klistJSONConfig `json:"config,omitempty"`
	Renewal          *krb.KeeperState  `json:"renewal,omitempty"`
}

type klistJSONTicket struct {
	Client       string     `json:"client"`
	Server       string     `json:"server"`
	AuthTime     *time.Time `json:"auth_time,omitempty"`
	StartTime    *time.Time `json:"start_time,omitempty"`
	EndTime      *time.Time `json:"end_time,omitempty"`
	RenewTill    *time.Time `json:"renew_till,omitempty"`
	Flags        string     `json:"flags"`
	SessionEtype string     `json:"session_etype"`
	TicketEtype  string     `json:"ticket_etype,omitempty"`
	Expired      bool       `json:"expired"`
}

type klistJSONConfig struct {
	Key       string `json:"key"`
	Principal string `json:"principal,omitempty"`
	Value     string `json:"value"`
}

func klistJSON(w io.Writer, name krb.CacheName, cc *krb.CCache, now time.Time, withConfig bool) error {
	out := klistJSONCache{Cache: name.String(), DefaultPrincipal: cc.DefaultPrincipal.String(), Tickets: []klistJSONTicket{}}
	if s, ok := krb.LoadKeeperState(name.String()); ok {
		out.Renewal = &s
	}
	if cc.HasKDCOffset {
		s := cc.KDCOffset.Seconds()
		out.KDCOffsetSeconds = &s
	}
	tp := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.Local()
		return &t
	}
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.IsConfigEntry() {
			if withConfig {
				e := klistJSONConfig{Key: c.ConfigKey(), Value: printable(c.Ticket)}
				if len(c.Server.Components) > 2 {
					e.Principal = strings.Join(c.Server.Components[2:], "/")
				}
				out.Config = append(out.Config, e)
			}
			continue
		}
		t := klistJSONTicket{
			Client: c.Client.String(), Server: c.Server.String(),
			AuthTime: tp(c.AuthTime), StartTime: tp(c.StartTime), EndTime: tp(c.EndTime), RenewTill: tp(c.RenewTill),
			Flags: c.FlagString(), SessionEtype: c.Key.EncTypeName(),
			Expired: !c.EndTime.After(now),
		}
		if te, err := c.TicketEncTypeName(); err == nil {
			t.TicketEtype = te
		}
		out.Tickets = append(out.Tickets, t)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
