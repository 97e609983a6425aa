package krb

import (
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
)

// Gokrb5 returns a gokrb5 configuration equivalent to c, built field by
// field rather than by re-parsing text: gokrb5's own parser splits values
// on "=", strips "#" anywhere, ignores include/includedir and has
// different defaults. MIT's defaults are kept where gokrb5's differ
// (dns_lookup_kdc true, udp_preference_limit capped instead of rejected).
//
// gokrb5 looks realms up case-sensitively. Each name in realmSpellings
// (for example the realm of the principal the user typed) that matches a
// configured realm only case-insensitively gets a copy of that realm's
// entry under its own spelling, so the KDC list is found either way.
func (c *Config) Gokrb5(realmSpellings ...string) *config.Config {
	g := config.New()
	l := &g.LibDefaults
	l.DefaultRealm = c.DefaultRealm
	l.TicketLifetime = c.TicketLifetime
	l.RenewLifetime = c.RenewLifetime
	l.Forwardable = c.Forwardable
	l.Proxiable = c.Proxiable
	l.UDPPreferenceLimit = c.UDPPreferenceLimit
	l.Clockskew = c.Clockskew
	l.DNSLookupKDC = c.DNSLookupKDC
	l.DNSLookupRealm = c.DNSLookupRealm
	l.DNSCanonicalizeHostname = c.DNSCanonicalizeHostname == "true"
	l.RDNS = c.RDNS
	l.NoAddresses = c.NoAddresses
	l.KDCTimeSync = 0
	if c.KDCTimeSync {
		l.KDCTimeSync = 1
	}
	if kt, err := ExpandPath(c.DefaultKeytabName); err == nil {
		l.DefaultKeytabName = strings.TrimPrefix(kt, "FILE:")
	}
	if kt, err := ExpandPath(c.DefaultClientKeytabName); err == nil {
		l.DefaultClientKeytabName = strings.TrimPrefix(kt, "FILE:")
	}
	b := func(key string, dst *bool) {
		if v, ok := c.Libdefault(key); ok {
			*dst = ParseConfigBool(v)
		}
	}
	b("allow_weak_crypto", &l.AllowWeakCrypto)
	b("canonicalize", &l.Canonicalize)
	b("ignore_acceptor_hostname", &l.IgnoreAcceptorHostname)
	b("k5login_authoritative", &l.K5LoginAuthoritative)
	b("verify_ap_req_nofail", &l.VerifyAPReqNofail)
	if v, ok := c.Libdefault("k5login_directory"); ok {
		l.K5LoginDirectory = v
	}
	num := func(key string, dst *int) {
		if v, ok := c.Libdefault(key); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				*dst = n
			}
		}
	}
	num("ccache_type", &l.CCacheType)
	num("realm_try_domains", &l.RealmTryDomains)
	num("safe_checksum_type", &l.SafeChecksumType)
	if v, ok := c.Libdefault("kdc_default_options"); ok {
		v = strings.TrimPrefix(strings.TrimSpace(v), "0x")
		if bs, err := hex.DecodeString(v); err == nil {
			l.KDCDefaultOptions.Bytes = bs
			l.KDCDefaultOptions.BitLength = len(bs) * 8
		}
	}
	if v, ok := c.Libdefault("preferred_preauth_types"); ok {
		var ts []int
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if n, err := strconv.Atoi(f); err == nil {
				ts = append(ts, n)
			}
		}
		if len(ts) > 0 {
			l.PreferredPreauthTypes = ts
		}
	}
	if v, ok := c.Libdefault("extra_addresses"); ok {
		for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			if ip := net.ParseIP(a); ip != nil {
				l.ExtraAddresses = append(l.ExtraAddresses, ip)
			}
		}
	}
	enc := func(key string, names *[]string, ids *[]int32) {
		if v, ok := c.Libdefault(key); ok {
			*names = cfgExpandEnctypes(strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }), *names)
		}
		*ids = cfgEnctypeIDs(*names, l.AllowWeakCrypto)
	}
	enc("default_tgs_enctypes", &l.DefaultTGSEnctypes, &l.DefaultTGSEnctypeIDs)
	enc("default_tkt_enctypes", &l.DefaultTktEnctypes, &l.DefaultTktEnctypeIDs)
	enc("permitted_enctypes", &l.PermittedEnctypes, &l.PermittedEnctypeIDs)

	names := make([]string, 0, len(c.Realms))
	for _, n := range c.subsections("realms") {
		names = append(names, n)
	}
	for _, n := range names {
		g.Realms = append(g.Realms, cfgGokrb5Realm(n, c.Realms[n]))
	}
	for _, want := range realmSpellings {
		if _, exact := c.Realms[want]; exact || want == "" {
			continue
		}
		if r, ok := c.Realm(want); ok {
			g.Realms = append(g.Realms, cfgGokrb5Realm(want, r))
		}
	}
	for k, v := range c.DomainRealm {
		g.DomainRealm[k] = v
	}
	return g
}

func cfgGokrb5Realm(name string, r *RealmConfig) config.Realm {
	out := config.Realm{
		Realm:         name,
		DefaultDomain: r.DefaultDomain,
		AdminServer:   append([]string(nil), r.AdminServer...),
	}
	for _, k := range r.KDC {
		if hp, ok := cfgGokrb5HostPort(k, "88"); ok {
			out.KDC = append(out.KDC, hp)
		}
	}
	for _, k := range r.MasterKDC {
		if hp, ok := cfgGokrb5HostPort(k, "88"); ok {
			out.MasterKDC = append(out.MasterKDC, hp)
		}
	}
	for _, k := range r.KPasswdServer {
		if hp, ok := cfgGokrb5HostPort(k, "464"); ok {
			out.KPasswdServer = append(out.KPasswdServer, hp)
		}
	}
	if len(out.KPasswdServer) == 0 {
		for _, a := range r.AdminServer {
			if hp, ok := cfgGokrb5HostPort(a, "464"); ok {
				h, _, _ := net.SplitHostPort(hp)
				out.KPasswdServer = append(out.KPasswdServer, net.JoinHostPort(h, "464"))
			}
		}
	}
	return out
}

// cfgGokrb5HostPort turns an MIT server entry into the host:port gokrb5
// dials. MIT's "tcp/" and "udp/" prefixes are dropped (gokrb5 picks the
// transport from udp_preference_limit), and HTTPS proxies, which gokrb5
// cannot use, are left out.
func cfgGokrb5HostPort(entry, defPort string) (string, bool) {
	e := strings.TrimSpace(entry)
	if strings.HasPrefix(e, "http://") || strings.HasPrefix(e, "https://") || e == "" {
		return "", false
	}
	e = strings.TrimPrefix(strings.TrimPrefix(e, "tcp/"), "udp/")
	hp := e
	if _, _, err := net.SplitHostPort(e); err != nil {
		// A bare host, or a bare IPv6 address (with or without brackets).
		hp = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]"), defPort)
	}
	// Whatever still does not read as host:port cannot be dialled.
	h, p, err := net.SplitHostPort(hp)
	if err != nil || h == "" || p == "" || strings.ContainsFunc(hp, unicode.IsSpace) {
		return "", false
	}
	return net.JoinHostPort(h, p), true
}

// cfgExpandEnctypes resolves MIT's list syntax: "DEFAULT" (the previous
// list), family names ("aes", "aes-sha1", "aes-sha2", "camellia", "rc4",
// "des3"), and "-name" to remove an entry.
func cfgExpandEnctypes(items, def []string) []string {
	families := map[string][]string{
		"aes":      {"aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96", "aes256-cts-hmac-sha384-192", "aes128-cts-hmac-sha256-128"},
		"aes-sha1": {"aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"},
		"aes-sha2": {"aes256-cts-hmac-sha384-192", "aes128-cts-hmac-sha256-128"},
		"camellia": {"camellia256-cts-cmac", "camellia128-cts-cmac"},
		"rc4":      {"arcfour-hmac-md5"},
		"des3":     {"des3-cbc-sha1"},
	}
	var out []string
	has := func(n string) int {
		for i, o := range out {
			if o == n {
				return i
			}
		}
		return -1
	}
	for _, it := range items {
		remove := strings.HasPrefix(it, "-")
		it = strings.TrimPrefix(strings.TrimPrefix(it, "-"), "+")
		var names []string
		switch {
		case strings.EqualFold(it, "DEFAULT"):
			names = def
		case families[strings.ToLower(it)] != nil:
			names = families[strings.ToLower(it)]
		default:
			names = []string{it}
		}
		for _, n := range names {
			if i := has(n); remove && i >= 0 {
				out = append(out[:i], out[i+1:]...)
			} else if !remove && i < 0 {
				out = append(out, n)
			}
		}
	}
	return out
}

func cfgEnctypeIDs(names []string, allowWeak bool) []int32 {
	weak := map[string]bool{}
	for _, w := range strings.Fields(config.WeakETypeList) {
		weak[w] = true
	}
	var ids []int32
	for _, n := range names {
		if !allowWeak && weak[n] {
			continue
		}
		if id := etypeID.EtypeSupported(n); id != 0 {
			ids = append(ids, id)
		}
	}
	return ids
}
