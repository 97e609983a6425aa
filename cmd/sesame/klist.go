package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/spf13/cobra"

	"github.com/sesame-ssh/sesame/krb"
)

// klistParams are MIT klist's flags, plus --json.
type klistParams struct {
	ccache      string // -c's value; klistCacheMode when -c came without one
	name        string // the cache (or with -k keytab) named as argument
	flags       bool   // -f
	etypes      bool   // -e
	silent      bool   // -s
	json        bool
	configEntry bool // -C
	list        bool // -l
	all         bool // -A
	keytab      bool // -k
	client      bool // -i
	times       bool // -t
	keys        bool // -K
	addresses   bool // -a
	noResolve   bool // -n
	adTypes     bool // -d
	version     bool // -V
	krb4        bool // -4
}

// klistCacheMode is -c given without a value: as in MIT klist, where -c
// only says "credentials cache" and the name is the argument.
const klistCacheMode = "\x00cache"

func init() {
	var p klistParams
	cmd := &cobra.Command{
		Use:   "klist [-e] [-V] [[-c] [-l] [-A] [-d] [-f] [-s] [-a [-n]]] [-k [-i] [-t] [-K]] [-C] [--json] [name]",
		Short: "List the tickets in the credentials cache, or the keys of a keytab (like MIT klist)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				p.name = args[0]
			}
			if err := p.check(cmd); err != nil {
				return err
			}
			if p.version {
				// MIT's line, which scripts grep for; the version is
				// sesame's.
				fmt.Fprintf(cmd.OutOrStdout(), "Kerberos 5 version %s (sesame)\n", version)
				return nil
			}
			return runKlist(cmd.OutOrStdout(), p, time.Now())
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	cacheFlag(f, &p.ccache)
	f.Lookup("cache").NoOptDefVal = klistCacheMode
	f.BoolVarP(&p.flags, "flags", "f", false, "show ticket flags")
	f.BoolVarP(&p.etypes, "etypes", "e", false, "show the encryption types of session key and ticket (with -k, of each key)")
	f.BoolVarP(&p.silent, "silent", "s", false, "print nothing; exit 0 only if the cache holds a current ticket")
	f.BoolVarP(&p.list, "list", "l", false, "list the caches of the collection")
	f.BoolVarP(&p.all, "all", "A", false, "show every cache of the collection")
	f.BoolVarP(&p.addresses, "addresses", "a", false, "show the ticket addresses")
	f.BoolVarP(&p.noResolve, "numeric", "n", false, "with -a, show addresses as numbers")
	f.BoolVarP(&p.adTypes, "adtypes", "d", false, "show the types of the authorization data")
	f.BoolVarP(&p.configEntry, "config", "C", false, "show the cache's configuration entries too")
	f.BoolVarP(&p.keytab, "keytab", "k", false, "list the keys of a keytab (the argument, else the default keytab)")
	f.BoolVarP(&p.client, "client-keytab", "i", false, "with -k and no name, the default client keytab")
	f.BoolVarP(&p.times, "timestamps", "t", false, "with -k, show the time each key was stored")
	f.BoolVarP(&p.keys, "keys", "K", false, "with -k, show the keys themselves")
	f.BoolVarP(&p.version, "version", "V", false, "print the version and exit")
	f.BoolVarP(&p.krb4, "krb4", "4", false, "Kerberos 4 (refused, as MIT klist does)")
	var krb5 bool
	f.BoolVarP(&krb5, "krb5", "5", false, "Kerberos 5 (the only one; accepted for MIT's scripts)")
	for _, n := range []string{"krb4", "krb5"} {
		f.Lookup(n).Hidden = true
	}
	jsonFlag(f, &p.json)
	rootCmd.AddCommand(cmd)
}

// check refuses the combinations MIT klist refuses (its usage(), exit 1).
func (p *klistParams) check(cmd *cobra.Command) error {
	if p.krb4 {
		fmt.Fprintln(cmd.ErrOrStderr(), "sesame: Kerberos 4 is no longer supported")
		return exitError{3}
	}
	if p.ccache != "" && p.ccache != klistCacheMode {
		if p.name != "" {
			return newUsageError(cmd, "the cache is named twice: -c %s and %s", p.ccache, p.name)
		}
		p.name = p.ccache
	}
	cacheMode := p.ccache != ""
	switch {
	case cacheMode && p.keytab:
		return newUsageError(cmd, "-c (credentials cache) and -k (keytab) exclude each other")
	case p.noResolve && !p.addresses:
		return newUsageError(cmd, "-n applies to addresses: give -a too")
	case !p.keytab && (p.times || p.keys):
		return newUsageError(cmd, "-t and -K apply to keytabs: give -k too")
	case !p.keytab && p.all && p.list:
		return newUsageError(cmd, "-A and -l exclude each other")
	case !p.keytab && p.silent && p.list:
		return newUsageError(cmd, "-s and -l exclude each other")
	case p.keytab && (p.flags || p.silent || p.addresses || p.all || p.list):
		return newUsageError(cmd, "-f, -s, -a, -A and -l apply to caches, not to keytabs (-k)")
	case p.json && (p.keytab || p.list || p.all):
		return newUsageError(cmd, "--json lists one cache: it does not go with -k, -l or -A")
	}
	return nil
}

// klistTime is the C-locale "%x %X" format MIT klist falls back to.
const klistTime = "01/02/06 15:04:05"

func runKlist(w io.Writer, p klistParams, now time.Time) error {
	if p.keytab {
		return klistKeytab(w, p)
	}
	name, err := resolveCache(p.name)
	if p.list || p.all {
		if err != nil {
			if p.silent {
				return exitError{1}
			}
			return err
		}
		return klistCollection(w, name, p, now)
	}
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

// klistCollection is klist -l (one line per cache of the collection) and
// -A (every cache in full). As MIT's, it exits 0 when at least one cache
// could be shown (with -s: is current), else 1.
func klistCollection(w io.Writer, name krb.CacheName, p klistParams, now time.Time) error {
	members, err := name.Collection()
	if err != nil {
		return err
	}
	var b strings.Builder
	if p.list {
		fmt.Fprintf(&b, "%-30s %s\n", "Principal name", "Cache name")
		fmt.Fprintf(&b, "%-30s %s\n", "--------------", "----------")
	}
	ok := false
	first := true
	for _, m := range collectionOrder(name, members) {
		cc, err := m.Read()
		if err != nil || len(cc.DefaultPrincipal.Components) == 0 {
			continue // MIT skips caches it cannot read (uninitialized)
		}
		switch {
		case p.list:
			line := fmt.Sprintf("%-30.30s %s", cc.DefaultPrincipal.String(), m)
			if !hasCurrentTicket(cc, now) {
				line += " (Expired)"
			}
			b.WriteString(line + "\n")
			ok = true
		case p.silent:
			if hasCurrentTicket(cc, now) {
				ok = true
			}
		default:
			if !first {
				b.WriteByte('\n')
			}
			first = false
			var one strings.Builder
			if err := klistText(&one, m, cc, p); err != nil {
				return err
			}
			b.WriteString(one.String())
			ok = true
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if !ok {
		return exitError{1}
	}
	return nil
}

// collectionOrder puts the collection's current cache first, as MIT's
// collection cursor does, then the others in name order. A FILE cache is
// its own collection of one.
func collectionOrder(name krb.CacheName, members []krb.CacheName) []krb.CacheName {
	out := make([]krb.CacheName, 0, len(members))
	for _, m := range members {
		if m.String() == name.String() {
			out = append(out, m)
		}
	}
	for _, m := range members {
		if m.String() != name.String() {
			out = append(out, m)
		}
	}
	return out
}

// klistKeytab is klist -k: the keytab's entries as MIT prints them.
func klistKeytab(w io.Writer, p klistParams) error {
	ktname := p.name
	if ktname == "" {
		cfg, err := krb.LoadConfig()
		if err != nil {
			return err
		}
		if p.client {
			ktname, err = cfg.ClientKeytabName()
		} else {
			ktname, err = cfg.KeytabName()
		}
		if err != nil {
			return err
		}
	}
	path, full := ktname, "FILE:"+ktname
	if i := strings.IndexByte(ktname, ':'); i > 0 && !strings.Contains(ktname[:i], "/") {
		switch strings.ToUpper(ktname[:i]) {
		case "FILE", "WRFILE":
			path, full = ktname[i+1:], ktname
		default:
			return &hintedError{fmt.Errorf("keytab %s: type %s is not supported, only FILE", ktname, ktname[:i]),
				"name a keytab file, e.g. FILE:/etc/krb5.keytab"}
		}
	}
	if _, err := fmt.Fprintf(w, "Keytab name: %s\n", full); err != nil {
		return err
	}
	kt, err := readKeytab(path)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, keytabListing(kt, p))
	return err
}

// keytabListing renders the keytab as MIT klist -k does.
func keytabListing(kt *keytab.Keytab, p klistParams) string {
	var b strings.Builder
	width := len(klistTime)
	if p.times {
		b.WriteString("KVNO Timestamp" + strings.Repeat(" ", width-len("Timestamp")+1) + "Principal\n")
		b.WriteString("---- " + strings.Repeat("-", width) + " " + strings.Repeat("-", 78-width-len("KVNO")-1) + "\n")
	} else {
		b.WriteString("KVNO Principal\n")
		b.WriteString("---- " + strings.Repeat("-", 74) + "\n")
	}
	for _, e := range kt.Entries {
		princ := krb.Principal{NameType: e.Principal.NameType, Realm: e.Principal.Realm, Components: e.Principal.Components}
		fmt.Fprintf(&b, "%4d ", e.KVNO)
		if p.times {
			b.WriteString(fmtTime(e.Timestamp) + " ")
		}
		b.WriteString(princ.String())
		if p.etypes {
			fmt.Fprintf(&b, " (%s) ", krb.EncTypeKlistName(e.Key.KeyType))
		}
		if p.keys {
			fmt.Fprintf(&b, " (0x%x)", e.Key.KeyValue)
		}
		b.WriteByte('\n')
	}
	return b.String()
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

// hasCurrentTicket is MIT klist's check_ccache (-s, and "(Expired)" in
// -l): when the cache holds a TGT of the default principal's realm, that
// TGT must still be valid; otherwise any ticket that is not a config entry.
func hasCurrentTicket(cc *krb.CCache, now time.Time) bool {
	if len(cc.DefaultPrincipal.Components) == 0 {
		return false
	}
	realm := cc.DefaultPrincipal.Realm
	foundTGT, currentTGT, currentOther := false, false, false
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		s := c.Server
		switch {
		case len(s.Components) == 2 && s.Components[0] == "krbtgt" && s.Components[1] == realm && s.Realm == realm:
			foundTGT = true
			if c.EndTime.After(now) {
				currentTGT = true
			}
		case !c.IsConfigEntry() && c.EndTime.After(now):
			currentOther = true
		}
	}
	if foundTGT {
		return currentTGT
	}
	return currentOther
}

func klistText(w io.Writer, name krb.CacheName, cc *krb.CCache, p klistParams) error {
	var b strings.Builder
	def := cc.DefaultPrincipal.String()
	fmt.Fprintf(&b, "Ticket cache: %s\nDefault principal: %s\n\n", name, def)
	width := len(klistTime)
	fmt.Fprintf(&b, "%-*s  %-*s  %s\n", width, "Valid starting", width, "Expires", "Service principal")
	for i := range cc.Credentials {
		c := &cc.Credentials[i]
		if c.IsConfigEntry() && !p.configEntry {
			continue
		}
		writeCredential(&b, c, def, p)
	}
	// Not in MIT's output: why background renewal gave up, when it did.
	if note := krb.StoppedNote(name.String()); note != "" {
		fmt.Fprintf(&b, "\n%s\n", note)
	}
	if note := krb.TwoFactorNote(cc); note != "" {
		fmt.Fprintf(&b, "\n%s\n", note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCredential prints one ticket in MIT klist's layout (show_credential):
// extra fields after the first line share lines, separated by ", ".
func writeCredential(b *strings.Builder, c *krb.Credential, def string, p klistParams) {
	isConfig := c.IsConfigEntry()
	col := 0
	if isConfig {
		col = writeConfigName(b, c)
	} else {
		start := c.StartTime
		if start.IsZero() {
			start = c.AuthTime
		}
		fmt.Fprintf(b, "%s  %s  %s\n", fmtTime(start), fmtTime(c.EndTime), c.Server)
	}
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
	if isConfig {
		writeConfigData(b, col, c.Ticket)
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
	tkt, tktErr := c.Gokrb5Ticket()
	if isConfig {
		tktErr = errConfigEntry // MIT does not decode a config entry's value
	}
	if p.etypes && tktErr == nil {
		sep()
		fmt.Fprintf(b, "Etype (skey, tkt): %s, %s ", krb.EncTypeKlistName(c.Key.EncType), krb.EncTypeKlistName(tkt.EncPart.EType))
		extra++
	}
	// MIT's cache reader always gives a (possibly empty) authdata list,
	// so MIT klist -d prints "AD types: " for every ticket.
	if p.adTypes {
		sep()
		b.WriteString("AD types: ")
		for i, a := range c.AuthData {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%d", a.Type)
		}
		extra++
	}
	if extra > 0 {
		b.WriteByte('\n')
	}
	if p.addresses {
		b.WriteString("\tAddresses: ")
		if len(c.Addresses) == 0 {
			b.WriteString("(none)")
		}
		for i, a := range c.Addresses {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(klistAddress(a, p.noResolve))
		}
		b.WriteByte('\n')
	}
	// The server the ticket was issued to, when the entry is cached under
	// another name (a referral), as MIT klist shows it.
	if tktErr == nil {
		ts := krb.PrincipalFromGokrb5(tkt.SName, tkt.Realm)
		if ts.String() != c.Server.String() {
			b.WriteString("\tTicket server: " + ts.String() + "\n")
		}
	}
}

// klistAddress prints a ticket address as MIT klist's one_addr does: the
// host name (or with -n the number) of an IPv4 or IPv6 address.
func klistAddress(a krb.Address, numeric bool) string {
	var ip net.IP
	switch {
	case a.Type == 2 && len(a.Data) == 4, a.Type == 24 && len(a.Data) == 16:
		ip = net.IP(a.Data)
	case a.Type == 2 || a.Type == 24:
		return fmt.Sprintf("broken address (type %d length %d)", a.Type, len(a.Data))
	default:
		return fmt.Sprintf("unknown addrtype %d", a.Type)
	}
	if !numeric {
		if names, err := net.LookupAddr(ip.String()); err == nil && len(names) > 0 {
			return strings.TrimSuffix(names[0], ".")
		}
	}
	return ip.String()
}

// errConfigEntry: a config entry holds a value, not a ticket.
var errConfigEntry = errors.New("config entry")

// writeConfigName starts a config entry's line as MIT klist -C does,
// "config: key(principal) = ", and returns the column it ends at.
func writeConfigName(b *strings.Builder, c *krb.Credential) int {
	comps := c.Server.Components
	b.WriteString("config: ")
	col := 8
	for i := 1; i < len(comps); i++ {
		s := comps[i]
		if i > 1 {
			s = "(" + s + ")"
		}
		b.WriteString(s)
		col += len(s)
	}
	b.WriteString(" = ")
	return col + 3
}

// writeConfigData prints a config value as MIT's print_config_data: bytes
// other than printable ASCII (the space too) in octal, wrapped after
// column 72 and indented by 8.
func writeConfigData(b *strings.Builder, col int, v []byte) {
	for _, ch := range v {
		for ; col < 8; col++ {
			b.WriteByte(' ')
		}
		if ch > 0x20 && ch < 0x7f {
			b.WriteByte(ch)
			col++
		} else {
			n, _ := fmt.Fprintf(b, "\\%03o", ch)
			col += n
		}
		if col > 72 {
			b.WriteByte('\n')
			col = 0
		}
	}
	if col > 0 {
		b.WriteByte('\n')
	}
}

// printable renders a config value for JSON: printable ASCII as is, other
// bytes in octal.
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
