package krb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ccSample() *CCache {
	client := Principal{NameType: 1, Realm: "EXAMPLE.ORG", Components: []string{"alice"}}
	t0 := time.Unix(1_700_000_000, 0)
	cc := &CCache{
		Version:          4,
		DefaultPrincipal: client,
		OtherHeader:      []HeaderField{{Tag: 7, Value: []byte("xyz")}},
		Credentials: []Credential{
			{
				Client: client, Server: TGTPrincipal("EXAMPLE.ORG"),
				Key:      KeyBlock{EncType: 18, Value: bytes.Repeat([]byte{0xaa}, 32)},
				AuthTime: t0, StartTime: t0, EndTime: t0.Add(10 * time.Hour), RenewTill: t0.Add(7 * 24 * time.Hour),
				Flags:     TktFlagForwardable | TktFlagRenewable | TktFlagInitial | TktFlagPreAuth,
				Addresses: []Address{{Type: 2, Data: []byte{127, 0, 0, 1}}},
				AuthData:  []AuthData{{Type: -1, Data: []byte("ad")}},
				Ticket:    []byte("ticket-der"),
			},
			{
				Client: client, Server: Principal{NameType: 3, Realm: "EXAMPLE.ORG", Components: []string{"host", "h.example.org"}},
				Key:      KeyBlock{EncType: 17, Value: []byte("k16-bytes-key---")},
				AuthTime: t0, EndTime: t0.Add(time.Hour),
				IsSKey: true, Ticket: []byte("svc"), SecondTicket: []byte("second"),
			},
		},
	}
	cc.SetKDCOffset(-3*time.Second - 250*time.Millisecond)
	cc.SetConfigValue("pa_type", []byte("2"))
	return cc
}

func TestCCacheRoundTrip(t *testing.T) {
	for _, version := range []int{3, 4} {
		cc := ccSample()
		cc.Version = version
		if version == 3 {
			cc.HasKDCOffset, cc.KDCOffset, cc.OtherHeader = false, 0, nil
		}
		b := cc.Marshal()
		if b[1] != byte(version) {
			t.Fatalf("v%d: wrote version byte %d", version, b[1])
		}
		got, err := ParseCCache(b)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		if !reflect.DeepEqual(got, cc) {
			t.Errorf("v%d round trip differs:\n got %+v\nwant %+v", version, got, cc)
		}
		if !bytes.Equal(got.Marshal(), b) {
			t.Errorf("v%d: second marshal differs", version)
		}
	}
}

func TestCCacheAccessors(t *testing.T) {
	cc := ccSample()
	tgt, ok := cc.TGT()
	if !ok || tgt.Server.String() != "krbtgt/EXAMPLE.ORG@EXAMPLE.ORG" {
		t.Fatalf("TGT: %v %v", tgt, ok)
	}
	if got := tgt.FlagString(); got != "FRIA" {
		t.Errorf("flags %q", got)
	}
	// Realm case differences, as with Active Directory.
	cc.DefaultPrincipal.Realm = "example.org"
	if _, ok := cc.TGT(); !ok {
		t.Error("TGT lookup must ignore realm case")
	}
	if n := len(cc.Tickets()); n != 2 {
		t.Errorf("tickets without config entries: %d", n)
	}
	if v, ok := cc.ConfigValue("pa_type"); !ok || string(v) != "2" || !cc.Credentials[2].IsConfigEntry() || cc.Credentials[2].ConfigKey() != "pa_type" {
		t.Errorf("config entry: %q %v", v, ok)
	}
	// Upsert replaces the TGT in place and keeps the service ticket.
	newTGT := *tgt
	newTGT.EndTime = newTGT.EndTime.Add(time.Hour)
	cc.Upsert(newTGT)
	if len(cc.Credentials) != 3 || !cc.Credentials[0].EndTime.Equal(newTGT.EndTime) || cc.Credentials[1].Server.Components[0] != "host" {
		t.Errorf("upsert: %+v", cc.Credentials)
	}
	cc.SetConfigValue("pa_type", []byte("138"))
	if v, _ := cc.ConfigValue("pa_type"); string(v) != "138" || len(cc.Credentials) != 3 {
		t.Errorf("config upsert: %q, %d entries", v, len(cc.Credentials))
	}
	if !cc.Credentials[0].Valid(time.Unix(1_700_000_100, 0)) || cc.Credentials[0].Valid(time.Unix(1_800_000_000, 0)) {
		t.Error("Valid")
	}
}

func TestFlagString(t *testing.T) {
	all := uint32(0)
	for _, f := range ccFlagOrder {
		all |= f.flag
	}
	if got := FlagString(all); got != "FfPpDdiRIHATOa" {
		t.Errorf("all flags: %q", got)
	}
	if FlagString(0) != "" || FlagString(TktFlagEncPARep) != "" {
		t.Error("no letters expected")
	}
}

func TestPrincipalStrings(t *testing.T) {
	for _, s := range []string{"alice@EXAMPLE.ORG", "host/h.example.org@EXAMPLE.ORG", `we\/ird\@name@R`, `a\\b@R`} {
		p, err := ParsePrincipal(s, "DEF")
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if p.String() != s {
			t.Errorf("round trip %q -> %q", s, p.String())
		}
	}
	p, err := ParsePrincipal("bob", "DEF.REALM")
	if err != nil || p.String() != "bob@DEF.REALM" || p.NameType != 1 {
		t.Errorf("default realm: %v %v", p, err)
	}
	if p, _ := ParsePrincipal("krbtgt/R@R", ""); !p.IsTGT("r") || p.NameType != 2 {
		t.Errorf("krbtgt: %+v", p)
	}
	for _, bad := range []string{"", "a@", "a//b@R", "a@R@S", `a\`, "nodefault"} {
		if _, err := ParsePrincipal(bad, ""); err == nil {
			t.Errorf("ParsePrincipal(%q) should fail", bad)
		}
	}
	a, _ := ParsePrincipal("u@AD.EXAMPLE", "")
	b, _ := ParsePrincipal("u@ad.example", "")
	if !a.Equal(b) || a.Equal(TGTPrincipal("AD.EXAMPLE")) {
		t.Error("Equal")
	}
	g := a.Gokrb5()
	if back := PrincipalFromGokrb5(g, a.Realm); !reflect.DeepEqual(back, a) {
		t.Errorf("gokrb5 round trip %+v", back)
	}
	if f := FlagsFromGokrb5(FlagsGokrb5(TktFlagForwardable | TktFlagAnonymous)); f != TktFlagForwardable|TktFlagAnonymous {
		t.Errorf("flags via gokrb5: %#x", f)
	}
}

// Every malformed input is an error of type *CCacheFormatError, never a
// panic, and never a huge allocation.
func TestParseCCacheHostile(t *testing.T) {
	good := ccSample().Marshal()
	hugeCount := append([]byte{5, 4, 0, 0}, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff)
	hugeLen := append([]byte{5, 4, 0, 0}, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0)
	cases := map[string][]byte{
		"empty":               {},
		"one byte":            {5},
		"bad magic":           {4, 4, 0, 0},
		"version 1":           {5, 1, 0, 0},
		"version 2":           {5, 2, 0, 0},
		"version 9":           {5, 9},
		"header len too big":  {5, 4, 0, 10, 0, 1},
		"header field short":  {5, 4, 0, 2, 0, 1},
		"header field len":    {5, 4, 0, 4, 0, 7, 0, 9},
		"offset field len":    {5, 4, 0, 6, 0, 1, 0, 2, 0, 0},
		"no principal":        {5, 4, 0, 0},
		"huge component cnt":  hugeCount,
		"huge realm length":   hugeLen,
		"truncated mid cred":  good[:len(good)-3],
		"truncated in header": good[:5],
		"trailing garbage":    append(append([]byte(nil), good...), 1, 2, 3),
		"v3 truncated key":    {5, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11},
	}
	// Every prefix that does not end exactly between two entries.
	boundary := map[int]bool{}
	part := ccSample()
	for n := 0; n <= len(part.Credentials); n++ {
		p := *part
		p.Credentials = part.Credentials[:n]
		boundary[len(p.Marshal())] = true
	}
	for i := 0; i < len(good); i++ {
		if !boundary[i] {
			cases["prefix "+strconv.Itoa(i)] = good[:i]
		}
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			cc, err := ParseCCache(in)
			var fe *CCacheFormatError
			if !errors.As(err, &fe) {
				t.Fatalf("want *CCacheFormatError, got cc=%v err=%v", cc != nil, err)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] || strings.Contains(msg, "\n") {
				t.Errorf("error should be one lowercase line: %q", msg)
			}
		})
	}
	_, err := ParseCCache([]byte{5, 2, 0, 0})
	if err == nil || !strings.Contains(err.Error(), "version 2 is not supported") {
		t.Errorf("v2 message: %v", err)
	}
}

func TestParseCCacheSkipsUnknownHeaderTags(t *testing.T) {
	var b []byte
	b = append(b, 5, 4)
	hdr := []byte{0, 9, 0, 2, 'h', 'i', 0, 1, 0, 8, 0, 0, 0, 5, 0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(hdr)))
	b = append(b, hdr...)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'R', 0, 0, 0, 1, 'u')
	cc, err := ParseCCache(b)
	if err != nil {
		t.Fatal(err)
	}
	if !cc.HasKDCOffset || cc.KDCOffset != 5*time.Second || len(cc.OtherHeader) != 1 || string(cc.OtherHeader[0].Value) != "hi" {
		t.Errorf("header: %+v", cc)
	}
	if cc.DefaultPrincipal.String() != "u@R" || len(cc.Credentials) != 0 {
		t.Errorf("principal: %+v", cc.DefaultPrincipal)
	}
}

func TestWriteReadDestroy(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cc")
	cc := ccSample()
	if err := WriteCCache(p, cc); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	got, err := ReadCCache(p)
	if err != nil || !reflect.DeepEqual(got, cc) {
		t.Fatalf("read back: %v", err)
	}

	// An unwritable location leaves the old cache intact.
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o700)
	if err := WriteCCache(filepath.Join(ro, "missing-dir", "cc"), cc); err == nil {
		t.Error("write into a missing directory should fail")
	}

	// A planted symlink is refused and its target untouched.
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(victim, link)
	if err := WriteCCache(link, cc); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink write: %v", err)
	}
	if err := DestroyCCache(link); err != nil {
		t.Errorf("destroy symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("destroy wrote through a symlink: %q", b)
	}

	// Destroy zeroes then unlinks: an open descriptor sees zeros.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := DestroyCCache(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cache still there: %v", err)
	}
	b := make([]byte, 64)
	n, _ := f.Read(b)
	if n == 0 || !bytes.Equal(b[:n], make([]byte, n)) {
		t.Errorf("content not zeroed before unlink: % x", b[:n])
	}

	_, err = ReadCCache(p)
	if !errors.Is(err, ErrNoCache) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing cache: %v", err)
	}
	if err := DestroyCCache(p); !errors.Is(err, ErrNoCache) {
		t.Errorf("destroy missing: %v", err)
	}
	if _, err := ReadCCache(filepath.Join(victim, "cc")); !errors.Is(err, ErrNoCache) {
		t.Errorf("path through a file: %v", err)
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a cache at all"), 0o600)
	_, err = ReadCCache(garbage)
	var fe *CCacheFormatError
	if !errors.As(err, &fe) || fe.Path != garbage || !strings.Contains(err.Error(), garbage) {
		t.Errorf("garbage: %v", err)
	}
}

// FuzzParseCCache: no input panics, and whatever parses marshals to bytes
// that parse to the same cache and marshal identically (Marshal∘Parse is
// stable).
func FuzzParseCCache(f *testing.F) {
	f.Add(ccSample().Marshal())
	v3 := ccSample()
	v3.Version, v3.HasKDCOffset, v3.OtherHeader = 3, false, nil
	f.Add(v3.Marshal())
	f.Add([]byte{5, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	if seeds, err := filepath.Glob("testdata/*.ccache"); err == nil {
		for _, s := range seeds {
			if b, err := os.ReadFile(s); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cc, err := ParseCCache(data)
		if err != nil {
			var fe *CCacheFormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		b1 := cc.Marshal()
		cc2, err := ParseCCache(b1)
		if err != nil {
			t.Fatalf("re-parse of marshalled cache: %v", err)
		}
		if !reflect.DeepEqual(cc, cc2) {
			t.Fatalf("parse∘marshal changed the cache:\n%+v\n%+v", cc, cc2)
		}
		if b2 := cc2.Marshal(); !bytes.Equal(b1, b2) {
			t.Fatal("marshal not stable")
		}
		cc.TGT()
		for i := range cc.Credentials {
			cc.Credentials[i].Gokrb5Ticket()
			_ = cc.Credentials[i].Server.String()
		}
	})
}

func TestKDCOffsetExtremesRoundTrip(t *testing.T) {
	for _, pair := range [][2]int32{{math.MaxInt32, math.MaxInt32}, {math.MinInt32, math.MinInt32}, {5, -300000}, {-7, 0}} {
		var b []byte
		b = append(b, 5, 4, 0, 12, 0, 1, 0, 8)
		b = binary.BigEndian.AppendUint32(b, uint32(pair[0]))
		b = binary.BigEndian.AppendUint32(b, uint32(pair[1]))
		b = append(b, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 'R', 0, 0, 0, 1, 'u')
		cc, err := ParseCCache(b)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Duration(pair[0])*time.Second + time.Duration(pair[1])*time.Microsecond
		again, err := ParseCCache(cc.Marshal())
		if err != nil || cc.KDCOffset != want || again.KDCOffset != want {
			t.Errorf("%v: got %v then %v, want %v (%v)", pair, cc.KDCOffset, again.KDCOffset, want, err)
		}
	}
}

func TestErrorsReadForUsers(t *testing.T) {
	_, err := ReadCCache("/nonexistent-dir/krb5cc_x")
	if err == nil || err.Error() != "no credentials cache found (filename: /nonexistent-dir/krb5cc_x)" {
		t.Errorf("message %q", err)
	}
	var h interface{ Hint() string }
	if !errors.As(err, &h) || !strings.Contains(h.Hint(), "kinit") {
		t.Errorf("hint missing: %v", err)
	}
	_, err = ParseCCache([]byte{5, 2, 0, 0})
	if !errors.As(err, &h) || !strings.Contains(h.Hint(), "kdestroy") {
		t.Errorf("format error hint: %v", err)
	}
	k := KeyBlock{EncType: 18, Value: []byte{1, 2}}
	if g := k.Gokrb5(); g.KeyType != 18 || len(g.KeyValue) != 2 || k.EncTypeName() != "aes256-cts-hmac-sha1-96" || (KeyBlock{EncType: 99}).EncTypeName() != "etype 99" {
		t.Errorf("keyblock helpers: %+v", g)
	}
}
