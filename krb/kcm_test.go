package krb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// newKCMRealm starts a private sssd_kcm and an MIT KDC whose krb5.conf
// points MIT tools at that daemon.
func newKCMRealm(t *testing.T) (*ccMITRealm, *testbed.KCM) {
	t.Helper()
	testbed.Need(t, "kinit", "klist", "kvno", "kdestroy")
	kcm := testbed.NewKCM(t)
	kdc := testbed.NewKDC(t, testbed.KDCOptions{ExtraKrb5Client: kcm.Krb5Conf()})
	kdc.AddPrincipal("alice", ccAlicePassword)
	kdc.AddPrincipal("bob", ccAlicePassword)
	kdc.AddPrincipal("host/localhost", "")
	return &ccMITRealm{t: t, kdc: kdc, dir: t.TempDir()}, kcm
}

// MIT kinit into KCM:, then sesame reads the same cache through the
// daemon: principal, TGT, config entries, KDC offset.
func TestKCMReadsMITCache(t *testing.T) {
	m, kcm := newKCMRealm(t)
	m.kinit("KCM:", nil, "-r", "2d")
	// Fedora and RHEL ship default_ccache_name = KCM:; the socket comes
	// from kcm_socket.
	t.Setenv("KRB5CCNAME", "")
	conf, _ := ParseConfig("k.conf", []byte("[libdefaults]\n default_ccache_name = KCM:\n kcm_socket = "+kcm.Socket+"\n"))
	n, err := ResolveCacheName("", conf)
	if err != nil || n.Type != "KCM" || !n.IsCollection() || n.String() != "KCM:0" {
		t.Fatalf("default_ccache_name: %+v %v", n, err)
	}
	c := n.Cache().(*KCMCache)
	if c.Residual != "0" {
		t.Errorf("default cache of uid 0 is %q, want 0", c.Residual)
	}
	cc, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.DefaultPrincipal.String(); got != "alice@"+testbed.Realm {
		t.Fatalf("principal %s", got)
	}
	tgt, ok := cc.TGT()
	if !ok || tgt.Flags&TktFlagRenewable == 0 || len(tgt.Ticket) == 0 {
		t.Fatalf("no renewable TGT in %+v", cc.Credentials)
	}
	out := m.must("KCM:", "", nil, "klist")
	if !strings.Contains(out, "Ticket cache: KCM:0\n") || !strings.Contains(out, "krbtgt/"+testbed.Realm) {
		t.Fatalf("MIT klist:\n%s", out)
	}
}

// What sesame stores in a KCM cache is what MIT klist and kvno use; a
// second write with the same principal (a renewal) replaces the TGT in
// place without duplicates; Destroy removes the cache.
func TestKCMWriteForMIT(t *testing.T) {
	m, kcm := newKCMRealm(t)
	file := "FILE:" + filepath.Join(m.dir, "cc")
	m.kinit(file, nil, "-r", "2d")
	first, err := ReadCCache(strings.TrimPrefix(file, "FILE:"))
	if err != nil {
		t.Fatal(err)
	}
	first.SetConfigValue("refresh_time", []byte("12345"))
	first.SetKDCOffset(7 * time.Second)

	c, err := ResolveKCM(kcm.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Replace(first); err != nil {
		t.Fatal(err)
	}
	out := m.must("KCM:", "", nil, "klist")
	if !strings.Contains(out, "Default principal: alice@"+testbed.Realm) || !strings.Contains(out, "krbtgt/"+testbed.Realm) {
		t.Fatalf("MIT klist of our KCM cache:\n%s", out)
	}
	m.must("KCM:", "", nil, "kvno", "host/localhost")
	back, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := back.ConfigValue("refresh_time"); !ok || string(v) != "12345" {
		t.Errorf("refresh_time = %q, %v", v, ok)
	}
	if !back.HasKDCOffset || back.KDCOffset != 7*time.Second {
		t.Errorf("KDC offset %v %v, want 7s", back.HasKDCOffset, back.KDCOffset)
	}
	if n := len(back.Tickets()); n != 2 {
		t.Errorf("after kvno the cache has %d tickets, want TGT and host/localhost", n)
	}

	// A renewal: a new TGT for the same principal, service ticket kept.
	m.kinit(file, nil, "-r", "2d")
	second, err := ReadCCache(strings.TrimPrefix(file, "FILE:"))
	if err != nil {
		t.Fatal(err)
	}
	renewed := back
	newTGT, _ := second.TGT()
	renewed.Upsert(*newTGT)
	if err := c.Replace(renewed); err != nil {
		t.Fatal(err)
	}
	after, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	var tgts int
	for _, cr := range after.Tickets() {
		if cr.Server.IsTGT(testbed.Realm) {
			tgts++
			if !bytes.Equal(cr.Ticket, newTGT.Ticket) {
				t.Error("the TGT in KCM is not the renewed one")
			}
		}
	}
	if tgts != 1 || len(after.Tickets()) != 2 {
		t.Errorf("after renewal: %d TGTs, %d tickets; want 1 and 2", tgts, len(after.Tickets()))
	}
	m.must("KCM:", "", nil, "kvno", "host/localhost")

	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(); !errors.Is(err, ErrNoCache) {
		t.Fatalf("read after destroy: %v, want ErrNoCache", err)
	}
	if out, err := m.run("KCM:", "", nil, "klist", "-s"); err == nil {
		t.Fatalf("MIT klist -s succeeds after destroy:\n%s", out)
	}
}

// A cache re-initialised for another principal holds only the new one's
// tickets; new subsidiaries, the default cache and the collection
// listing agree with MIT's klist -l.
func TestKCMCollection(t *testing.T) {
	m, kcm := newKCMRealm(t)
	m.kinit("KCM:", nil)
	fileB := filepath.Join(m.dir, "bob")
	m.must("FILE:"+fileB, ccAlicePassword+"\n", nil, "kinit", "bob")
	bob, err := ReadCCache(fileB)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := KCMNewSubsidiary(kcm.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sub.Residual, "0:") {
		t.Errorf("new cache name %q", sub.Residual)
	}
	if err := sub.Replace(bob); err != nil {
		t.Fatal(err)
	}
	list, err := KCMCollection(kcm.Socket)
	if err != nil {
		t.Fatal(err)
	}
	// sssd makes the first cache initialised after its built-in default
	// the default; whichever it is comes first.
	def, err := ResolveKCM(kcm.Socket, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Residual != def.Residual || list[0].Residual == list[1].Residual {
		t.Fatalf("collection %v, default %s", list, def)
	}
	if err := sub.SetPrimary(); err != nil {
		t.Fatal(err)
	}
	out := m.must("KCM:", "", nil, "klist")
	if !strings.Contains(out, "Default principal: bob@") {
		t.Fatalf("after SetPrimary MIT klist shows:\n%s", out)
	}
	list, err = KCMCollection(kcm.Socket)
	if err != nil || len(list) != 2 || list[0].Residual != sub.Residual {
		t.Fatalf("collection after switch %v %v", list, err)
	}
	// Overwrite alice's cache with bob's tickets: nothing of alice stays.
	alice := &KCMCache{Socket: kcm.Socket, Residual: "0"}
	if err := alice.Replace(bob); err != nil {
		t.Fatal(err)
	}
	cc, err := alice.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range cc.Credentials {
		if strings.HasPrefix(cr.Client.String(), "alice") {
			t.Fatalf("alice's entry survived a replace: %s", cr.Server)
		}
	}
	lout := m.must("KCM:", "", nil, "klist", "-l")
	if strings.Count(lout, "bob@"+testbed.Realm) != 2 {
		t.Errorf("MIT klist -l:\n%s", lout)
	}
}

// No daemon: one error naming the socket, with a hint to start sssd-kcm.
func TestKCMUnavailable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none")
	_, err := ResolveKCM(sock, "")
	var ue *KCMUnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), sock) || !strings.Contains(ue.Hint(), "sssd-kcm") {
		t.Fatalf("err = %v", err)
	}
	if _, err := (&KCMCache{Socket: "-", Residual: "0"}).Read(); !errors.As(err, &ue) {
		t.Fatalf("kcm_socket = - gives %v", err)
	}
}

// kcmFakeDaemon answers every request with reply (raw bytes after the
// request is read); nil reply means never answer.
func kcmFakeDaemon(t *testing.T, reply []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "kcm")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var n [4]byte
				for {
					if _, err := c.Read(n[:]); err != nil {
						return
					}
					buf := make([]byte, binary.BigEndian.Uint32(n[:]))
					if _, err := c.Read(buf); err != nil {
						return
					}
					if reply == nil {
						time.Sleep(10 * time.Second)
						return
					}
					c.Write(reply)
				}
			}()
		}
	}()
	return sock
}

func kcmFrame(payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, 0)
	return append(b, payload...)
}

// A hung daemon costs the timeout, not forever; malformed or hostile
// replies are errors, never panics or huge allocations; a refusal for
// another user's cache says so.
func TestKCMBadDaemon(t *testing.T) {
	old := kcmTimeout
	kcmTimeout = 300 * time.Millisecond
	defer func() { kcmTimeout = old }()

	start := time.Now()
	_, err := ResolveKCM(kcmFakeDaemon(t, nil), "")
	if err == nil || !strings.Contains(err.Error(), "did not answer") || time.Since(start) > 5*time.Second {
		t.Fatalf("hung daemon: %v after %v", err, time.Since(start))
	}

	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	huge = binary.BigEndian.AppendUint32(huge, 0)
	_, err = ResolveKCM(kcmFakeDaemon(t, huge), "")
	var pe *KCMProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("2 GiB reply: %v", err)
	}

	// Status 0 but no terminated name.
	_, err = ResolveKCM(kcmFakeDaemon(t, kcmFrame([]byte{0, 0, 0, 0, 'x'})), "")
	if !errors.As(err, &pe) {
		t.Fatalf("unterminated name: %v", err)
	}

	code := kcmErrFCCPerm
	perm := binary.BigEndian.AppendUint32(nil, uint32(code))
	_, err = (&KCMCache{Socket: kcmFakeDaemon(t, kcmFrame(perm)), Residual: "1000"}).Read()
	if err == nil || !strings.Contains(err.Error(), "another user") || !strings.Contains(err.Error(), "KCM:1000") {
		t.Fatalf("permission denied: %v", err)
	}

	// A principal whose component count promises more than is there.
	bad := binary.BigEndian.AppendUint32(nil, 0)
	bad = append(bad, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff)
	_, err = (&KCMCache{Socket: kcmFakeDaemon(t, kcmFrame(bad)), Residual: "0"}).Read()
	if !errors.As(err, &pe) {
		t.Fatalf("hostile principal: %v", err)
	}
}

// FuzzKCMReply feeds arbitrary bytes to the framing reader and every
// result parser: errors are fine, panics and runaway allocations not.
func FuzzKCMReply(f *testing.F) {
	w := &ccWriter{}
	w.u32(0)
	w.u32(1)
	pos := len(w.b)
	w.u32(0)
	w.credential(&Credential{
		Client: Principal{NameType: 1, Realm: "R", Components: []string{"a"}},
		Server: TGTPrincipal("R"), Ticket: []byte{1, 2, 3},
	}, 4)
	binary.BigEndian.PutUint32(w.b[pos:], uint32(len(w.b)-pos-4))
	f.Add(kcmFrame(w.b))
	f.Add(kcmFrame([]byte{0, 0, 0, 0, '0', 0}))
	f.Add(kcmFrame(make([]byte, 4+32)))
	f.Add([]byte{0, 0, 0, 4, 0x96, 0xc7, 0x3a, 0xc3})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := kcmReadReply(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		kcmParseName(body, "fuzz")
		kcmParseUUIDs(body, "fuzz")
		kcmParsePrincipal(body, "fuzz")
		kcmParseCred(body, "fuzz")
		kcmParseCredList(body, "fuzz")
		kcmParseOffset(body, "fuzz")
	})
}
