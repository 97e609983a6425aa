package krb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configEntries lists the config entries of a cache as key=value with the
// server's name type, in a stable order.
func configEntries(cc *CCache) []string {
	var out []string
	for _, c := range cc.Credentials {
		if c.IsConfigEntry() {
			out = append(out, fmt.Sprintf("%s=%s (name type %d, %d components)", c.ConfigKey(), c.Ticket, c.Server.NameType, len(c.Server.Components)))
		}
	}
	return out
}

// A login writes the config entries MIT kinit writes on the same KDC, with
// MIT's name type: fast_avail when the reply shows the KDC supports FAST
// (RFC 6806 section 11: PA-FX-FAST in the encrypted padata, under a
// verified PA-REQ-ENC-PA-REP), also for a principal that needs no
// pre-authentication, and pa_type when one was used. MIT kinit is the
// control on each account.
func TestLoginConfigEntriesMatchMIT(t *testing.T) {
	m := newCCMITRealm(t) // alice: no pre-authentication
	m.kdc.AddPrincipal("bob", ccAlicePassword)
	m.kdc.Kadmin("modprinc +requires_preauth bob")
	cfg, err := LoadConfigFiles(m.kdc.Conf)
	if err != nil {
		t.Fatal(err)
	}
	cl := NewClient(cfg.Gokrb5())
	for _, user := range []string{"alice", "bob"} {
		t.Run(user, func(t *testing.T) {
			p := filepath.Join(m.dir, "mit-"+user)
			m.must("FILE:"+p, ccAlicePassword+"\n", nil, "kinit", user)
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			mit, err := ParseCCache(raw)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := cl.Login(context.Background(), LoginOptions{Principal: user, Password: []byte(ccAlicePassword)})
			if err != nil {
				t.Fatal(err)
			}
			want, got := configEntries(mit), configEntries(ours)
			if !strings.Contains(strings.Join(want, " "), "fast_avail=yes") {
				t.Fatalf("MIT kinit wrote no fast_avail (the control): %v", want)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("config entries differ\n MIT:    %v\n sesame: %v", want, got)
			}
		})
	}
	// A cache-wide entry set through the API has MIT's name type too.
	alice, err := ParsePrincipal("alice", m.kdc.Realm)
	if err != nil {
		t.Fatal(err)
	}
	cc := &CCache{DefaultPrincipal: alice}
	cc.SetConfigValue("refresh_time", []byte("1"))
	if nt := cc.Credentials[0].Server.NameType; nt != 1 {
		t.Errorf("SetConfigValue: name type %d, MIT writes 1 (KRB5_NT_PRINCIPAL)", nt)
	}
}
