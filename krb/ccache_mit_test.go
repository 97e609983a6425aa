package krb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
	"github.com/sesame-ssh/sesame/internal/testbed"
)

// ccMITRealm is a running MIT KDC with one user, alice, and host/localhost.
type ccMITRealm struct {
	t   *testing.T
	kdc *testbed.KDC
	dir string
}

const ccAlicePassword = "alice-pw-for-tests"

func newCCMITRealm(t *testing.T) *ccMITRealm {
	t.Helper()
	testbed.Need(t, "kinit", "klist", "kvno")
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	kdc.AddPrincipal("alice", ccAlicePassword)
	kdc.AddPrincipal("host/localhost", "")
	return &ccMITRealm{t: t, kdc: kdc, dir: t.TempDir()}
}

// run runs an MIT client tool against the realm with the given cache and
// extra environment, returning its combined output and error.
func (m *ccMITRealm) run(ccname, stdin string, env []string, name string, args ...string) (string, error) {
	m.t.Helper()
	cmd := exec.Command(testbed.Path(m.t, name), args...)
	cmd.Env = append(append(append(os.Environ(), m.kdc.Env()...), "KRB5CCNAME="+ccname, "LC_ALL=C", "TZ=UTC"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (m *ccMITRealm) must(ccname, stdin string, env []string, name string, args ...string) string {
	m.t.Helper()
	out, err := m.run(ccname, stdin, env, name, args...)
	if err != nil {
		m.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func (m *ccMITRealm) kinit(ccname string, env []string, args ...string) {
	m.t.Helper()
	m.must(ccname, ccAlicePassword+"\n", env, "kinit", append(args, "alice")...)
}

// A cache written by MIT kinit parses, has the TGT with the flags asked
// for, and marshals back to the very same bytes; MIT accepts the rewrite.
func TestMITCacheInterop(t *testing.T) {
	m := newCCMITRealm(t)
	mitPath := filepath.Join(m.dir, "mit")
	m.kinit("FILE:"+mitPath, nil, "-f", "-r", "3d")
	// A service ticket too, so the cache holds more than one entry.
	m.must("FILE:"+mitPath, "", nil, "kvno", "host/localhost")

	raw, err := os.ReadFile(mitPath)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := ParseCCache(raw)
	if err != nil {
		t.Fatalf("parse MIT cache: %v", err)
	}
	if cc.Version != 4 || cc.DefaultPrincipal.String() != "alice@"+testbed.Realm {
		t.Fatalf("version %d principal %s", cc.Version, cc.DefaultPrincipal)
	}
	tgt, ok := cc.TGT()
	if !ok {
		t.Fatalf("no TGT among %d entries", len(cc.Credentials))
	}
	if fl := tgt.FlagString(); !strings.Contains(fl, "F") || !strings.Contains(fl, "R") || !strings.Contains(fl, "I") {
		t.Errorf("TGT flags %q, want F, R and I", fl)
	}
	if d := time.Until(tgt.RenewTill); d < 71*time.Hour || d > 73*time.Hour {
		t.Errorf("renew till %v away, want about 3 days", d)
	}
	var svc *Credential
	for _, c := range cc.Tickets() {
		if c.Server.NameString() == "host/localhost" {
			svc = c
		}
	}
	if svc == nil {
		t.Fatal("service ticket for host/localhost not found")
	}
	if tkt, err := tgt.Gokrb5Ticket(); err != nil || tkt.Realm != testbed.Realm || tkt.SName.PrincipalNameString() != "krbtgt/"+testbed.Realm {
		t.Errorf("decode TGT: %v %+v", err, tkt.SName)
	}
	if got := cc.Marshal(); !bytes.Equal(got, raw) {
		t.Errorf("marshal of an MIT cache is not byte-identical (%d vs %d bytes)", len(got), len(raw))
	}
	// Keep one MIT-written cache as a fuzz seed (from a throwaway realm).
	if os.Getenv("SESAME_UPDATE_TESTDATA") != "" {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile("testdata/mit-kinit-kvno.ccache", raw, 0o644)
	}

	// Rewritten by us: MIT klist lists it, kvno uses its TGT, kinit -R renews it.
	ours := filepath.Join(m.dir, "ours")
	if err := WriteCCache(ours, cc); err != nil {
		t.Fatal(err)
	}
	out := m.must("FILE:"+ours, "", nil, "klist", "-f")
	for _, want := range []string{"Default principal: alice@" + testbed.Realm, "krbtgt/" + testbed.Realm + "@" + testbed.Realm, "host/localhost@", "Flags: F"} {
		if !strings.Contains(out, want) {
			t.Errorf("klist of rewritten cache lacks %q:\n%s", want, out)
		}
	}
	m.must("FILE:"+ours, "", nil, "kvno", "host/localhost")
	m.must("FILE:"+ours, "", nil, "kinit", "-R")
	if _, err := m.run("FILE:"+ours, "", nil, "klist", "-s"); err != nil {
		t.Errorf("klist -s after MIT renewal of our cache: %v", err)
	}
}

// Changes made through the API show up in MIT klist.
func TestMITSeesOurChanges(t *testing.T) {
	m := newCCMITRealm(t)
	p := filepath.Join(m.dir, "cc")
	m.kinit("FILE:"+p, nil, "-f")
	m.must("FILE:"+p, "", nil, "kvno", "host/localhost")
	cc, err := ReadCCache(p)
	if err != nil {
		t.Fatal(err)
	}

	// Drop the service ticket and the forwardable flag; record an offset.
	var keep []Credential
	for _, c := range cc.Credentials {
		if c.Server.NameString() != "host/localhost" {
			keep = append(keep, c)
		}
	}
	cc.Credentials = keep
	tgt, _ := cc.TGT()
	tgt.Flags &^= TktFlagForwardable
	cc.SetKDCOffset(42 * time.Second)
	if err := WriteCCache(p, cc); err != nil {
		t.Fatal(err)
	}
	out := m.must("FILE:"+p, "", nil, "klist", "-f")
	if strings.Contains(out, "host/localhost") {
		t.Errorf("klist still lists the removed service ticket:\n%s", out)
	}
	if strings.Contains(out, "Flags: F") || !strings.Contains(out, "Flags: ") {
		t.Errorf("klist should show the TGT without F:\n%s", out)
	}
	back, err := ReadCCache(p)
	if err != nil || back.KDCOffset != 42*time.Second {
		t.Errorf("offset not kept: %v %v", back.KDCOffset, err)
	}

	// An expired end time makes MIT's klist -s fail, a later one succeed.
	tgt.EndTime = time.Now().Add(-time.Minute)
	tgt.StartTime = time.Now().Add(-time.Hour)
	cc.SetKDCOffset(0)
	WriteCCache(p, cc)
	if _, err := m.run("FILE:"+p, "", nil, "klist", "-s"); err == nil {
		t.Error("klist -s accepted an expired TGT")
	}
	tgt.EndTime = time.Now().Add(time.Hour)
	WriteCCache(p, cc)
	if _, err := m.run("FILE:"+p, "", nil, "klist", "-s"); err != nil {
		t.Error("klist -s rejected a current TGT")
	}

	// After DestroyCCache, MIT sees no cache.
	if err := DestroyCCache(p); err != nil {
		t.Fatal(err)
	}
	if _, err := m.run("FILE:"+p, "", nil, "klist", "-s"); err == nil {
		t.Error("klist -s found a destroyed cache")
	}
}

// MIT writes version 3 when told to (ccache_type = 3, here through a
// second file in the KRB5_CONFIG list); we read it and write it back
// identically, and MIT reads our v4 rewrite.
func TestMITVersion3Cache(t *testing.T) {
	m := newCCMITRealm(t)
	extra := filepath.Join(m.dir, "v3.conf")
	os.WriteFile(extra, []byte("[libdefaults]\n\tccache_type = 3\n"), 0o644)
	env := []string{"KRB5_CONFIG=" + extra + ":" + m.kdc.Conf}
	p := filepath.Join(m.dir, "v3")
	m.kinit("FILE:"+p, env)
	raw, _ := os.ReadFile(p)
	cc, err := ParseCCache(raw)
	if err != nil || cc.Version != 3 {
		t.Fatalf("parse v3: version %v, %v", cc, err)
	}
	if _, ok := cc.TGT(); !ok {
		t.Fatal("no TGT in v3 cache")
	}
	if !bytes.Equal(cc.Marshal(), raw) {
		t.Error("v3 cache not reproduced byte for byte")
	}
	cc.Version = 4
	v4 := filepath.Join(m.dir, "v4")
	WriteCCache(v4, cc)
	if b, _ := os.ReadFile(v4); b[1] != 4 {
		t.Fatalf("wrote version %d", b[1])
	}
	out := m.must("FILE:"+v4, "", nil, "klist")
	if !strings.Contains(out, "krbtgt/"+testbed.Realm) {
		t.Errorf("klist of v4 rewrite:\n%s", out)
	}
}

// A DIR collection made by MIT kinit resolves to the same file MIT uses,
// and our name for it is what MIT klist prints.
func TestMITDirCollection(t *testing.T) {
	m := newCCMITRealm(t)
	dir := filepath.Join(m.dir, "coll")
	m.kinit("DIR:"+dir, nil)
	out := m.must("DIR:"+dir, "", nil, "klist")
	n, err := ParseCacheName("DIR:"+dir, SourceFlag)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Ticket cache: "+n.String()+"\n") {
		t.Errorf("our name %q, MIT klist says:\n%s", n.String(), out)
	}
	if _, err := ReadCCache(n.Path()); err != nil {
		t.Errorf("read MIT's collection member: %v", err)
	}

	// A new member made the primary by us is what MIT then uses.
	sub, err := n.NewSubsidiary()
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := ReadCCache(n.Path())
	if err := WriteCCache(sub.Path(), cc); err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPrimary(); err != nil {
		t.Fatal(err)
	}
	out = m.must("DIR:"+dir, "", nil, "klist")
	if !strings.Contains(out, "Ticket cache: DIR::"+sub.Path()+"\n") {
		t.Errorf("MIT does not follow our primary %s:\n%s", sub.Path(), out)
	}
	members, err := n.Collection()
	if err != nil || len(members) != 2 {
		t.Errorf("collection: %v %v", members, err)
	}
}

// klist -e's enctype names match ours for both the session key and the
// ticket.
func TestMITEnctypeNames(t *testing.T) {
	m := newCCMITRealm(t)
	p := filepath.Join(m.dir, "cc")
	m.kinit("FILE:"+p, nil)
	out := m.must("FILE:"+p, "", nil, "klist", "-e")
	cc, err := ReadCCache(p)
	if err != nil {
		t.Fatal(err)
	}
	tgt, _ := cc.TGT()
	tn, err := tgt.TicketEncTypeName()
	if err != nil {
		t.Fatal(err)
	}
	want := "Etype (skey, tkt): " + tgt.Key.EncTypeName() + ", " + tn
	if !strings.Contains(out, want) {
		t.Errorf("klist -e lacks %q:\n%s", want, out)
	}
}

// The gokrb5 configuration built from the test realm's krb5.conf (read
// through KRB5_CONFIG) lets gokrb5 log in, and the TGT it obtains, stored
// with CredentialFromKDCRep, is accepted by MIT klist and kvno.
func TestGokrb5ConfigLogsInAndStoresForMIT(t *testing.T) {
	m := newCCMITRealm(t)
	t.Setenv("KRB5_CONFIG", m.kdc.Conf)
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultRealm != testbed.Realm || len(cfg.KDCs(testbed.Realm)) != 1 || cfg.UDPPreferenceLimit != 1 {
		t.Fatalf("test realm config: %+v", cfg)
	}
	g := cfg.Gokrb5()
	cl := client.NewWithPassword("alice", testbed.Realm, ccAlicePassword, g, client.DisablePAFXFAST(true))
	asReq, err := messages.NewASReqForTGT(testbed.Realm, g, types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	asRep, err := cl.ASExchange(testbed.Realm, asReq, 0)
	if err != nil {
		t.Fatalf("AS exchange through the converted config: %v", err)
	}
	cred, err := CredentialFromKDCRep(asRep.CRealm, asRep.CName, asRep.Ticket, asRep.DecryptedEncPart)
	if err != nil {
		t.Fatal(err)
	}
	cc := &CCache{DefaultPrincipal: cred.Client}
	cc.Upsert(cred)
	p := filepath.Join(m.dir, "gokrb5")
	if err := WriteCCache(p, cc); err != nil {
		t.Fatal(err)
	}
	out := m.must("FILE:"+p, "", nil, "klist", "-f")
	if !strings.Contains(out, "Default principal: alice@"+testbed.Realm) || !strings.Contains(out, "krbtgt/"+testbed.Realm) {
		t.Errorf("klist:\n%s", out)
	}
	if !strings.Contains(out, "Flags: "+cred.FlagString()+"\n") {
		t.Errorf("klist flags differ from ours (%s):\n%s", cred.FlagString(), out)
	}
	m.must("FILE:"+p, "", nil, "kvno", "host/localhost")
}
