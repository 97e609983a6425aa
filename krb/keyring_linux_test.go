package krb

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
	"golang.org/x/sys/unix"
)

// krTestCollection names a fresh KEYRING:user collection and removes it
// when the test ends.
func krTestCollection(t *testing.T) string {
	t.Helper()
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		testbed.Missing(t, fmt.Sprintf("kernel keyrings are not available: %v", err))
	}
	name := fmt.Sprintf("sesame-test-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, krKeyring, krCollectionPrefix+name, 0); err == nil {
			unix.KeyctlInt(unix.KEYCTL_CLEAR, id, 0, 0, 0)
			unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
			unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_PROCESS_KEYRING, 0, 0)
		}
	})
	return "user:" + name
}

// MIT kinit into a keyring collection, sesame reads it; sesame writes,
// MIT klist and kvno use it; a renewal replaces the TGT in place; the
// collection listing matches klist -l; destroy empties it.
func TestKeyringWithMIT(t *testing.T) {
	m := newCCMITRealm(t)
	coll := krTestCollection(t)
	m.kinit("KEYRING:"+coll, nil, "-r", "2d")

	// RHEL and older Fedora ship default_ccache_name = KEYRING:….
	t.Setenv("KRB5CCNAME", "")
	conf, _ := ParseConfig("k.conf", []byte("[libdefaults]\n default_ccache_name = KEYRING:"+coll+"\n"))
	n, err := ResolveCacheName("", conf)
	if err != nil || n.Type != "KEYRING" || n.Source != SourceConfig || !n.IsCollection() {
		t.Fatalf("default_ccache_name: %+v %v", n, err)
	}
	c := n.Cache().(*KeyringCache)
	if c.Name() != "KEYRING:"+coll+":"+strings.TrimPrefix(coll, "user:") {
		t.Errorf("name %s", c.Name())
	}
	cc, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if cc.DefaultPrincipal.String() != "alice@"+testbed.Realm {
		t.Fatalf("principal %s", cc.DefaultPrincipal)
	}
	if _, ok := cc.TGT(); !ok {
		t.Fatal("no TGT in MIT's keyring cache")
	}
	if !strings.Contains(m.must("KEYRING:"+coll, "", nil, "klist"), "Ticket cache: "+c.Name()) {
		t.Error("MIT names the cache differently")
	}

	// sesame writes a ticket obtained elsewhere; MIT uses it.
	file := filepath.Join(m.dir, "cc")
	m.kinit("FILE:"+file, nil, "-r", "2d")
	fresh, err := ReadCCache(file)
	if err != nil {
		t.Fatal(err)
	}
	fresh.SetConfigValue("refresh_time", []byte("999"))
	fresh.SetKDCOffset(-3 * time.Second)
	if err := c.Replace(fresh); err != nil {
		t.Fatal(err)
	}
	m.must("KEYRING:"+coll, "", nil, "kvno", "host/localhost")
	back, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := back.ConfigValue("refresh_time"); !ok || string(v) != "999" {
		t.Errorf("refresh_time %q %v", v, ok)
	}
	if !back.HasKDCOffset || back.KDCOffset != -3*time.Second {
		t.Errorf("offset %v %v", back.HasKDCOffset, back.KDCOffset)
	}
	if len(back.Tickets()) != 2 {
		t.Fatalf("after kvno: %d tickets", len(back.Tickets()))
	}
	tgt, _ := fresh.TGT()
	for _, cr := range back.Tickets() {
		if cr.Server.IsTGT(testbed.Realm) && !bytes.Equal(cr.Ticket, tgt.Ticket) {
			t.Error("the keyring holds another TGT than the one written")
		}
	}

	// Renewal: new TGT, service ticket kept, one TGT.
	m.kinit("FILE:"+file, nil, "-r", "2d")
	second, _ := ReadCCache(file)
	newTGT, _ := second.TGT()
	back.Upsert(*newTGT)
	if err := c.Replace(back); err != nil {
		t.Fatal(err)
	}
	after, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Tickets()) != 2 {
		t.Fatalf("after renewal %d tickets", len(after.Tickets()))
	}
	m.must("KEYRING:"+coll, "", nil, "kvno", "host/localhost")
	out := m.must("KEYRING:"+coll, "", nil, "klist")
	if !strings.Contains(out, "host/localhost@") || strings.Count(out, "krbtgt/") != 1 {
		t.Fatalf("MIT klist after renewal:\n%s", out)
	}

	// A second cache in the collection, made primary.
	sub, err := c.NewSubsidiary()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Replace(second); err != nil {
		t.Fatal(err)
	}
	list, err := c.List()
	if err != nil || len(list) != 2 || list[0].Name() != c.Name() || list[1].Name() != sub.Name() {
		t.Fatalf("list %v %v", list, err)
	}
	if err := sub.SetPrimary(); err != nil {
		t.Fatal(err)
	}
	lout := m.must("KEYRING:"+coll, "", nil, "klist", "-l")
	if !strings.Contains(lout, sub.Name()) || !strings.Contains(lout, c.Name()) {
		t.Fatalf("klist -l:\n%s", lout)
	}
	if out := m.must("KEYRING:"+coll, "", nil, "klist"); !strings.Contains(out, "Ticket cache: "+sub.Name()) {
		t.Fatalf("MIT does not follow the new primary:\n%s", out)
	}

	for _, k := range list {
		if err := k.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Read(); !errors.Is(err, ErrNoCache) {
		t.Fatalf("read after destroy: %v", err)
	}
	if out, err := m.run("KEYRING:"+coll, "", nil, "klist", "-s"); err == nil {
		t.Fatalf("klist -s after destroy:\n%s", out)
	}
	if l, _ := c.List(); len(l) != 0 {
		t.Fatalf("collection after destroy: %v", l)
	}
}

// The persistent keyring (RHEL's KEYRING:persistent:%{uid}) works both
// ways with MIT, with a subsidiary of our own so the uid's primary stays.
func TestKeyringPersistentWithMIT(t *testing.T) {
	m := newCCMITRealm(t)
	krTestCollection(t) // skips or fails without keyrings
	name := fmt.Sprintf("persistent:%d:sesame-%d", unix.Geteuid(), time.Now().UnixNano())
	c, err := ResolveKeyring(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	m.kinit("KEYRING:"+name, nil)
	cc, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cc.TGT(); !ok {
		t.Fatal("no TGT")
	}
	if err := c.Replace(cc); err != nil {
		t.Fatal(err)
	}
	m.must("KEYRING:"+name, "", nil, "kvno", "host/localhost")
}

// Garbage in a credential key is a format error naming the key; a
// primary that names a cache that is gone reads as "no cache"; writes to
// process keyrings are refused with a reason.
func TestKeyringBadInput(t *testing.T) {
	// cacheID and krSetPrimary below are the unexported, same-thread
	// calls: keep this goroutine on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	coll := krTestCollection(t)
	c, err := ResolveKeyring(coll)
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{NameType: 1, Realm: "R", Components: []string{"a"}}
	cc := &CCache{DefaultPrincipal: p}
	cc.Credentials = append(cc.Credentials, Credential{Client: p, Server: TGTPrincipal("R"), Ticket: []byte{1}, EndTime: time.Now().Add(time.Hour)})
	if err := c.Replace(cc); err != nil {
		t.Fatal(err)
	}
	ring, err := c.cacheID()
	if err != nil || ring == 0 {
		t.Fatal(ring, err)
	}
	if _, err := unix.AddKey(krUser, "junk@R", []byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, ring); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read()
	var fe *CCacheFormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "junk@R") {
		t.Fatalf("garbage key: %v", err)
	}

	if err := krSetPrimary(c.collection, "gone"); err != nil {
		t.Fatal(err)
	}
	d, err := ResolveKeyring(coll)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(); !errors.Is(err, ErrNoCache) {
		t.Fatalf("primary naming a missing cache: %v", err)
	}
	if l, err := d.List(); err != nil || len(l) != 1 || l[0].Subsidiary == "gone" {
		t.Fatalf("list with a dangling primary: %v %v", l, err)
	}

	pc, err := ResolveKeyring("process:sesame")
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Replace(cc); err == nil || !strings.Contains(err.Error(), "only as long as one process") {
		t.Fatalf("process keyring write: %v", err)
	}
	if _, err := ResolveKeyring("nowhere:x"); err == nil || !strings.Contains(err.Error(), "anchor") {
		t.Fatalf("bad anchor: %v", err)
	}
}

// FuzzKeyringPrimary: the primary key's payload never panics the parser.
func FuzzKeyringPrimary(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 3, 't', 'k', 't'})
	f.Add([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if name, err := krParsePrimary(b); err == nil && name == "" {
			t.Fatal("empty name accepted")
		}
	})
}
