package krb

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func cfgTestWriteFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaultsAndValues(t *testing.T) {
	c, err := ParseConfig("t.conf", []byte(`
this line before any section is ignored, as MIT does
[libdefaults]
	default_realm = EXAMPLE.ORG
	ticket_lifetime = 10h
	renew_lifetime = 7d
	forwardable = yes
	udp_preference_limit = 1
	clockskew = 120
	default_ccache_name = FILE:/tmp/cc_%{uid}
	# comment
	; another comment
	dns_canonicalize_hostname = fallback
	EXAMPLE.ORG = {
		proxiable = true
	}
[realms]
	EXAMPLE.ORG = {
		kdc = kdc1.example.org
		kdc = tcp/kdc2.example.org:8888
		admin_server = kdc1.example.org
	}
	Other.Realm =
	{
		kdc = [2001:db8::1]:88
	}
[domain_realm]
	.Example.ORG = EXAMPLE.ORG
	host.other = Other.Realm
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRealm != "EXAMPLE.ORG" || c.TicketLifetime != 10*time.Hour || c.RenewLifetime != 7*24*time.Hour {
		t.Errorf("realm/lifetimes: %q %v %v", c.DefaultRealm, c.TicketLifetime, c.RenewLifetime)
	}
	if !c.Forwardable || !c.Proxiable || c.UDPPreferenceLimit != 1 || c.Clockskew != 120*time.Second {
		t.Errorf("flags: fwd %v prox %v udp %d skew %v", c.Forwardable, c.Proxiable, c.UDPPreferenceLimit, c.Clockskew)
	}
	// MIT's defaults where gokrb5 differs.
	if !c.DNSLookupKDC || c.DNSLookupRealm || !c.RDNS || !c.KDCTimeSync {
		t.Errorf("defaults: dns_lookup_kdc %v dns_lookup_realm %v rdns %v", c.DNSLookupKDC, c.DNSLookupRealm, c.RDNS)
	}
	if c.DNSCanonicalizeHostname != "fallback" || c.DefaultCCacheName != "FILE:/tmp/cc_%{uid}" {
		t.Errorf("canon %q ccname %q", c.DNSCanonicalizeHostname, c.DefaultCCacheName)
	}
	if got := strings.Join(c.KDCs("EXAMPLE.ORG"), ","); got != "kdc1.example.org,tcp/kdc2.example.org:8888" {
		t.Errorf("kdcs %q", got)
	}
	if got := c.KDCs("example.org"); len(got) != 2 {
		t.Errorf("case-insensitive realm lookup: %v", got)
	}
	if c.RealmOfHost("a.b.example.org") != "EXAMPLE.ORG" || c.RealmOfHost("HOST.other") != "Other.Realm" || c.RealmOfHost("x.y") != "" {
		t.Errorf("domain_realm lookups wrong: %v", c.DomainRealm)
	}

	g := c.Gokrb5("example.org")
	if !g.LibDefaults.DNSLookupKDC || g.LibDefaults.UDPPreferenceLimit != 1 || g.LibDefaults.DefaultRealm != "EXAMPLE.ORG" {
		t.Errorf("gokrb5 libdefaults: %+v", g.LibDefaults)
	}
	n, kdcs, err := g.GetKDCs("example.org", true)
	if err != nil || n != 2 {
		t.Fatalf("gokrb5 GetKDCs via alias: %d %v %v", n, kdcs, err)
	}
	got := map[string]bool{}
	for _, k := range kdcs {
		got[k] = true
	}
	if !got["kdc1.example.org:88"] || !got["kdc2.example.org:8888"] {
		t.Errorf("gokrb5 kdcs %v", kdcs)
	}
	if _, kdcs, _ := g.GetKDCs("Other.Realm", true); kdcs[1] != "[2001:db8::1]:88" {
		t.Errorf("ipv6 kdc %v", kdcs)
	}
}

func TestConfigEmptyIsMITDefaults(t *testing.T) {
	c, err := LoadConfigFiles(filepath.Join(t.TempDir(), "missing.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if c.TicketLifetime != 24*time.Hour || c.UDPPreferenceLimit != 1465 || !c.DNSLookupKDC || c.Forwardable ||
		c.DefaultKeytabName != "FILE:/etc/krb5.keytab" || c.DNSCanonicalizeHostname != "true" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigPathListPrecedence(t *testing.T) {
	dir := t.TempDir()
	a := cfgTestWriteFile(t, filepath.Join(dir, "a.conf"), "[libdefaults]\n default_realm = A.ORG\n[realms]\n A.ORG = {\n  kdc = a1\n }\n")
	b := cfgTestWriteFile(t, filepath.Join(dir, "b.conf"), "[libdefaults]\n default_realm = B.ORG\n forwardable = true\n[realms]\n A.ORG = {\n  kdc = a2\n }\n")
	t.Setenv("KRB5_CONFIG", a+":"+filepath.Join(dir, "nope.conf")+":"+b)
	if got := ConfigPaths(); len(got) != 3 {
		t.Fatalf("paths %v", got)
	}
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRealm != "A.ORG" || !c.Forwardable {
		t.Errorf("first file wins for single values, later files fill gaps: %q %v", c.DefaultRealm, c.Forwardable)
	}
	if got := strings.Join(c.KDCs("A.ORG"), ","); got != "a1,a2" {
		t.Errorf("kdc lists concatenate across files: %q", got)
	}
	if len(c.Files) != 2 {
		t.Errorf("files read: %v", c.Files)
	}
}

func TestConfigFinalSection(t *testing.T) {
	dir := t.TempDir()
	a := cfgTestWriteFile(t, filepath.Join(dir, "a.conf"), "[realms]*\n A.ORG = {\n  kdc = a1\n }\n")
	b := cfgTestWriteFile(t, filepath.Join(dir, "b.conf"), "[realms]\n A.ORG = {\n  kdc = a2\n }\n")
	c, err := LoadConfigFiles(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.KDCs("A.ORG"), ","); got != "a1" {
		t.Errorf("final section must hide later files: %q", got)
	}
}

func TestConfigIncludes(t *testing.T) {
	dir := t.TempDir()
	inc := cfgTestWriteFile(t, filepath.Join(dir, "extra", "one"), "[libdefaults]\n forwardable = true\n")
	d := filepath.Join(dir, "conf.d")
	cfgTestWriteFile(t, filepath.Join(d, "10-realm.conf"), "[realms]\n SSSD.ORG = {\n  kdc = k1\n }\n")
	cfgTestWriteFile(t, filepath.Join(d, "20_more"), "[realms]\n SSSD.ORG = {\n  kdc = k2\n }\n")
	// Names MIT skips: editor backups, package leftovers, dot files.
	cfgTestWriteFile(t, filepath.Join(d, "30-bad.conf~"), "garbage without equals\n")
	cfgTestWriteFile(t, filepath.Join(d, "40.rpmsave"), "garbage without equals\n")
	cfgTestWriteFile(t, filepath.Join(d, ".hidden.conf"), "garbage without equals\n")
	// A subdirectory with an acceptable name reads as empty, as in MIT.
	os.Mkdir(filepath.Join(d, "subdir"), 0o700)
	main := cfgTestWriteFile(t, filepath.Join(dir, "krb5.conf"),
		"include "+inc+"\nincludedir "+d+"\n[libdefaults]\n default_realm = SSSD.ORG\n")
	c, err := LoadConfigFiles(main)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Forwardable || c.DefaultRealm != "SSSD.ORG" {
		t.Errorf("include not merged: %+v", c)
	}
	if got := strings.Join(c.KDCs("SSSD.ORG"), ","); got != "k1,k2" {
		t.Errorf("includedir order/merge: %q (files %v)", got, c.Files)
	}
	if len(c.Files) != 4 {
		t.Errorf("files read: %v", c.Files)
	}
}

func TestConfigPathListDirectoryAndHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfgTestWriteFile(t, filepath.Join(home, "k.conf"), "[libdefaults]\n default_realm = HOME.ORG\n")
	d := filepath.Join(t.TempDir(), "krb5.conf.d")
	cfgTestWriteFile(t, filepath.Join(d, "a.conf"), "[libdefaults]\n forwardable = true\n")
	cfgTestWriteFile(t, filepath.Join(d, "b.conf~"), "broken line\n")
	c, err := LoadConfigFiles("~/k.conf", d)
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultRealm != "HOME.ORG" || !c.Forwardable {
		t.Errorf("home file / directory entry not read: %q %v (files %v)", c.DefaultRealm, c.Forwardable, c.Files)
	}
}

func TestIncludeDirName(t *testing.T) {
	for name, want := range map[string]bool{
		"a.conf": true, "abc_DEF-1": true, "x.conf~": false, ".a.conf": false,
		"foo.rpmsave": false, "foo.bak": false, "": false, "a b": false, "krb5.conf.d": false,
	} {
		if got := IncludeDirName(name); got != want {
			t.Errorf("IncludeDirName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := cfgTestWriteFile(t, filepath.Join(dir, "bad.conf"), "[libdefaults]\n ok = 1\n this has no equals\n")
	cases := []struct {
		name, text, want string
		line             int
	}{
		{"no equals", "[libdefaults]\n  default_realm\n", "expected", 2},
		{"space in tag", "[libdefaults]\n a b = c\n", "space inside", 2},
		{"stray brace", "[libdefaults]\n }\n", `"}" without`, 2},
		{"section in block", "[realms]\n R = {\n[libdefaults]\n", "inside a { }", 3},
		{"unterminated section", "[realms\n", `without "]"`, 1},
		{"missing brace", "[realms]\n R =\n  kdc = x\n", `expected "{"`, 3},
		{"trailing text", "[realms] x\n", "text after", 1},
		{"empty tag", "[realms]\n = x\n", "empty name", 2},
		{"included file", "[libdefaults]\ninclude " + bad + "\n", "expected", 3},
		{"missing include", "include " + filepath.Join(dir, "nope") + "\n", "cannot include", 1},
		{"missing includedir", "includedir " + filepath.Join(dir, "nope") + "\n", "cannot include directory", 1},
		{"include loop", "include " + filepath.Join(dir, "loop.conf") + "\n", "nested too deeply", 1},
	}
	cfgTestWriteFile(t, filepath.Join(dir, "loop.conf"), "include "+filepath.Join(dir, "loop.conf")+"\n")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("main.conf", []byte(tc.text))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want ConfigError, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) || ce.Line != tc.line {
				t.Errorf("got %q (line %d), want %q at line %d", err, ce.Line, tc.want, tc.line)
			}
			if tc.name == "included file" && ce.File != bad {
				t.Errorf("error should name the included file, got %q", ce.File)
			}
			if !strings.Contains(err.Error(), ce.File+":"+strconv.Itoa(ce.Line)) && ce.Line > 0 {
				t.Errorf("message lacks file:line: %q", err)
			}
		})
	}
}

func TestConfigQuotedAndFinalRelations(t *testing.T) {
	c, err := ParseConfig("q.conf", []byte("[appdefaults]\n a = \"x\\ty\\\"z\" trailing\n b* = first\n b = second\n c = {  \n d = 1\n }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get("appdefaults", "a"); v != "x\ty\"z" {
		t.Errorf("quoted value %q", v)
	}
	if v := c.GetAll("appdefaults", "b"); len(v) != 1 || v[0] != "first" {
		t.Errorf("final relation: %q", v)
	}
	if v, _ := c.Get("appdefaults", "c", "d"); v != "1" {
		t.Errorf("subsection value %q", v)
	}
}

func TestParseDeltat(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"10h": 10 * time.Hour, "7d": 7 * 24 * time.Hour, "90m": 90 * time.Minute, "30s": 30 * time.Second,
		"1d2h30m": 26*time.Hour + 30*time.Minute, "1d 2h": 26 * time.Hour, "3600": time.Hour,
		"1:30": 90 * time.Minute, "1:00:05": time.Hour + 5*time.Second, "1d 1:00:00": 25 * time.Hour,
	} {
		got, err := ParseDeltat(in)
		if err != nil || got != want {
			t.Errorf("ParseDeltat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "10x", "-5", "1h1d", "1:99", "1h2h", "99999999999999h"} {
		if _, err := ParseDeltat(in); err == nil {
			t.Errorf("ParseDeltat(%q) should fail", in)
		}
	}
}

func TestExpandPath(t *testing.T) {
	ccfgUserLookup = func(int) (string, error) { return "alice", nil }
	t.Cleanup(func() { ccfgUserLookup = cfgLookupUsername })
	t.Setenv("TMPDIR", "/scratch")
	uid := strconv.Itoa(os.Getuid())
	got, err := ExpandPath("%{TEMP}/krb5cc_%{uid}_%{euid}_%{USERID}_%{username}%{null}")
	want := "/scratch/krb5cc_" + uid + "_" + strconv.Itoa(os.Geteuid()) + "_" + uid + "_alice"
	if err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"%{nope}", "/tmp/%{uid"} {
		if _, err := ExpandPath(bad); err == nil {
			t.Errorf("ExpandPath(%q) should fail", bad)
		}
	}
}

func TestKeytabNames(t *testing.T) {
	c, _ := ParseConfig("k.conf", []byte("[libdefaults]\n default_client_keytab_name = FILE:/k/%{uid}.kt\n"))
	t.Setenv("KRB5_KTNAME", "")
	t.Setenv("KRB5_CLIENT_KTNAME", "")
	if kt, _ := c.KeytabName(); kt != "FILE:/etc/krb5.keytab" {
		t.Errorf("keytab %q", kt)
	}
	if kt, _ := c.ClientKeytabName(); kt != "FILE:/k/"+strconv.Itoa(os.Getuid())+".kt" {
		t.Errorf("client keytab %q", kt)
	}
	t.Setenv("KRB5_CLIENT_KTNAME", "FILE:/env.kt")
	if kt, _ := c.ClientKeytabName(); kt != "FILE:/env.kt" {
		t.Errorf("env client keytab %q", kt)
	}
}

// FuzzConfig: the krb5.conf parser must never panic, and an accepted file
// must give a usable gokrb5 configuration. Includes are answered with
// "does not exist" so the fuzzer never reads the real filesystem.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("[libdefaults]\n default_realm = A\n[realms]\n A = {\n kdc = h:88\n }\n"))
	f.Add([]byte("[a]*\n b* = \"q\\\n c =\n {\n d = e\n }*\n"))
	f.Add([]byte("include /x\n[x]\n}\n"))
	f.Add([]byte("[libdefaults]\n ticket_lifetime = 1d 2:00:00\n udp_preference_limit = 99999\n"))
	notExist := func(string) ([]byte, error) { return nil, os.ErrNotExist }
	noDir := func(string) ([]os.DirEntry, error) { return nil, os.ErrNotExist }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfigWith("fuzz.conf", data, notExist, noDir)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error of unexpected type %T: %v", err, err)
			}
			return
		}
		g := c.Gokrb5("a", "A")
		if g == nil {
			t.Fatal("nil gokrb5 config")
		}
		for _, r := range g.Realms {
			for _, k := range r.KDC {
				if _, _, err := net.SplitHostPort(k); err != nil {
					t.Fatalf("gokrb5 KDC entry %q is not host:port: %v", k, err)
				}
			}
		}
		for name := range c.Realms {
			if _, ok := c.Realm(name); !ok {
				t.Fatalf("realm %q listed but not found", name)
			}
		}
	})
}

func TestGokrb5Enctypes(t *testing.T) {
	c, err := ParseConfig("e.conf", []byte("[libdefaults]\n permitted_enctypes = aes -aes128-cts-hmac-sha256-128 camellia256-cts-cmac\n default_tkt_enctypes = DEFAULT -des3-cbc-sha1\n default_tgs_enctypes = des-cbc-crc aes256-cts\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Gokrb5().LibDefaults
	if got := strings.Join(l.PermittedEnctypes, " "); got != "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 aes256-cts-hmac-sha384-192 camellia256-cts-cmac" {
		t.Errorf("permitted %q", got)
	}
	// gokrb5 implements no camellia, so only the three AES types get ids.
	if len(l.PermittedEnctypeIDs) != 3 || l.PermittedEnctypeIDs[0] != 18 {
		t.Errorf("permitted ids %v", l.PermittedEnctypeIDs)
	}
	for _, n := range l.DefaultTktEnctypes {
		if n == "des3-cbc-sha1" {
			t.Errorf("DEFAULT -des3 kept des3: %v", l.DefaultTktEnctypes)
		}
	}
	// Single DES is weak and dropped unless allow_weak_crypto.
	if ids := l.DefaultTGSEnctypeIDs; len(ids) != 1 || ids[0] != 18 {
		t.Errorf("tgs ids %v", ids)
	}
}

func TestUsernameToken(t *testing.T) {
	got, err := ExpandPath("%{username}")
	if err != nil || got == "" {
		t.Fatalf("username: %q %v", got, err)
	}
	if _, err := cfgLookupUsername(1 << 30); err == nil {
		t.Error("lookup of a uid nobody has should fail")
	}
}
