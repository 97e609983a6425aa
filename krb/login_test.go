package krb

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

const testPassword = "Correct-horse-7"

// exchangeRealm starts a KDC with one user and returns a Client for it.
func exchangeRealm(t *testing.T, opt testbed.KDCOptions) (*testbed.KDC, *Client) {
	t.Helper()
	kdc := testbed.NewKDC(t, opt)
	kdc.AddPrincipal("alice", testPassword)
	// Realms that care about lockouts require pre-authentication; without
	// it a wrong password is only noticed by the client.
	kdc.Kadmin("modprinc +requires_preauth alice")
	cfg, err := LoadConfigFiles(kdc.Conf)
	if err != nil {
		t.Fatalf("load %s: %v", kdc.Conf, err)
	}
	return kdc, NewClient(cfg.Gokrb5())
}

func TestLoginPasswordRenewable(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	opt := LoginOptions{Principal: "alice", Password: []byte(testPassword), Lifetime: 2 * time.Hour, RenewLife: 72 * time.Hour, Forwardable: true}
	cc, err := cl.Login(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.DefaultPrincipal.String(); got != "alice@"+kdc.Realm {
		t.Errorf("default principal %q", got)
	}
	if len(cc.Tickets()) != 1 {
		t.Fatalf("%d tickets", len(cc.Tickets()))
	}
	// The config entries MIT's kinit writes for the TGT, before it.
	tgtName := "krbtgt/" + kdc.Realm + "@" + kdc.Realm
	if len(cc.Credentials) != 3 || cc.Credentials[0].Server.String() != `krb5_ccache_conf_data/fast_avail/krbtgt\/`+kdc.Realm+`\@`+kdc.Realm+"@X-CACHECONF:" ||
		string(cc.Credentials[0].Ticket) != "yes" || cc.Credentials[1].ConfigKey() != "pa_type" || string(cc.Credentials[1].Ticket) != "2" {
		t.Fatalf("config entries for %s: %+v", tgtName, cc.Credentials)
	}
	cc.Credentials = cc.Credentials[2:]
	tgt := cc.Credentials[0]
	if tgt.Server.String() != "krbtgt/"+kdc.Realm+"@"+kdc.Realm {
		t.Errorf("server %s", tgt.Server)
	}
	if tgt.Flags&TktFlagForwardable == 0 || tgt.Flags&TktFlagRenewable == 0 || tgt.Flags&TktFlagInitial == 0 {
		t.Errorf("flags %#x lack F, R or I", tgt.Flags)
	}
	if tgt.Flags&TktFlagProxiable != 0 {
		t.Errorf("flags %#x: proxiable not asked for", tgt.Flags)
	}
	if d := tgt.EndTime.Sub(tgt.StartTime); d < 119*time.Minute || d > 2*time.Hour {
		t.Errorf("lifetime %v, want 2h", d)
	}
	// Not gokrb5's forced 48h: the realm allows 7d, we asked for 3d.
	if d := tgt.RenewTill.Sub(tgt.StartTime); d < 71*time.Hour || d > 72*time.Hour {
		t.Errorf("renewable life %v, want 72h", d)
	}
	if len(tgt.Ticket) == 0 || tgt.Ticket[0] != 0x61 {
		t.Errorf("ticket is not a DER Ticket")
	}
	if !cc.HasKDCOffset {
		t.Errorf("no KDC offset recorded")
	}

	// Add a service-like entry and a config entry: renewal must keep them.
	extra := tgt
	extra.Server = Principal{NameType: 2, Realm: kdc.Realm, Components: []string{"host", "example"}}
	conf := Credential{Client: tgt.Client, Server: Principal{Realm: "X-CACHECONF:", Components: []string{"krb5_ccache_conf_data", "pa_type"}}, Ticket: []byte("2")}
	cc.Credentials = append(cc.Credentials, extra, conf)
	time.Sleep(1100 * time.Millisecond) // authtime has whole seconds
	rc, err := cl.Renew(context.Background(), cc)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Credentials) != 3 || rc.Credentials[1].Server.String() != "host/example@"+kdc.Realm || string(rc.Credentials[2].Ticket) != "2" {
		t.Fatalf("renewal lost entries: %+v", rc.Credentials)
	}
	nt := rc.Credentials[0]
	if !nt.StartTime.After(tgt.StartTime) {
		t.Errorf("renewed start %v not after %v", nt.StartTime, tgt.StartTime)
	}
	if !nt.RenewTill.Equal(tgt.RenewTill) {
		t.Errorf("renew-till changed from %v to %v", tgt.RenewTill, nt.RenewTill)
	}
	if nt.Flags&TktFlagForwardable == 0 || nt.Flags&TktFlagRenewable == 0 {
		t.Errorf("renewed flags %#x", nt.Flags)
	}
	if string(nt.Ticket) == string(tgt.Ticket) {
		t.Errorf("ticket not replaced")
	}
	if cc.Credentials[0].StartTime != tgt.StartTime {
		t.Errorf("Renew modified its input")
	}
}

func TestLoginWrongPasswordOnce(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	before := kdc.LogCount("PREAUTH_FAILED")
	_, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte("wrong")})
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("err = %v, want ErrWrongPassword", err)
	}
	if h := err.(interface{ Hint() string }).Hint(); h == "" {
		t.Errorf("no hint")
	}
	if n := kdc.LogCount("PREAUTH_FAILED") - before; n != 1 {
		b, _ := os.ReadFile(kdc.Log)
		t.Errorf("%d PREAUTH_FAILED lines in the KDC log, want exactly 1\n%s", n, b)
	}
}

func TestLoginUnknownPrincipal(t *testing.T) {
	_, cl := exchangeRealm(t, testbed.KDCOptions{})
	_, err := cl.Login(context.Background(), LoginOptions{Principal: "nobody", Password: []byte("x")})
	if !errors.Is(err, ErrPrincipalUnknown) || !strings.Contains(err.Error(), "nobody@") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoginUnreachable(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	kdc.Stop()
	_, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)})
	if !errors.Is(err, ErrKDCUnreachable) || !strings.Contains(err.Error(), kdc.Addr()) {
		t.Fatalf("err = %v, want unreachable naming %s", err, kdc.Addr())
	}
}

// A client clock one hour ahead: the KDC answers KRB_AP_ERR_SKEW, the
// login corrects the offset once and succeeds, and the KDC sees no failed
// password.
func TestLoginClockSkew(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	cl.Clock = func() time.Time { return time.Now().Add(time.Hour) }
	cc, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword), Lifetime: time.Hour, RenewLife: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !cc.HasKDCOffset || cc.KDCOffset > -59*time.Minute || cc.KDCOffset < -61*time.Minute {
		t.Errorf("offset %v, want about -1h", cc.KDCOffset)
	}
	// MIT logs the skew rejection with status PREAUTH_FAILED but does not
	// count it for lockout (only PREAUTH_FAILED/BAD_INTEGRITY codes count).
	skewLine := kdc.Realm + ", Clock skew too great"
	if n := kdc.LogCount(skewLine); n != 1 {
		b, _ := os.ReadFile(kdc.Log)
		t.Errorf("%d skew rejections at the KDC, want 1\n%s", n, b)
	}
	if n := kdc.LogCount("PREAUTH_FAILED") - kdc.LogCount(skewLine); n != 0 {
		t.Errorf("%d failed pre-authentications besides the skew", n)
	}
	if n := kdc.LogCount("Decrypt integrity check failed"); n != 0 {
		t.Errorf("%d failed decryptions at the KDC", n)
	}
	// Times in the ticket are the KDC's, so about now.
	if d := time.Until(cc.Tickets()[0].EndTime); d < 55*time.Minute || d > 61*time.Minute {
		t.Errorf("ticket ends in %v, want about 1h", d)
	}
	// The offset survives the cache file, where MIT tools read it too.
	path := filepath.Join(t.TempDir(), "cc")
	if err := WriteCCache(path, cc); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if !back.HasKDCOffset || back.KDCOffset != cc.KDCOffset {
		t.Errorf("offset read back %v (%v), wrote %v", back.KDCOffset, back.HasKDCOffset, cc.KDCOffset)
	}
	klist := exec.Command(testbed.Path(t, "klist"), "-c", path)
	if out, err := klist.CombinedOutput(); err != nil || !strings.Contains(string(out), "krbtgt/") {
		t.Errorf("MIT klist of the skew-corrected cache: %v\n%s", err, out)
	}
	// Renewal with the stored offset needs no second skew error.
	rc, err := cl.Renew(context.Background(), cc)
	if err != nil {
		t.Fatal(err)
	}
	if n := kdc.LogCount("Clock skew too great"); n != 2 {
		t.Errorf("%d skew lines at the KDC after renewal, want the 2 of the login", n)
	}
	// A stale offset in the header (here 20 minutes wrong) is corrected by one
	// skew error on renewal, and the corrected offset is recorded.
	rc.KDCOffset += 20 * time.Minute
	rc2, err := cl.Renew(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	if rc2.KDCOffset > -59*time.Minute || rc2.KDCOffset < -61*time.Minute {
		t.Errorf("offset after renewal with skew %v, want about -1h", rc2.KDCOffset)
	}

	// A wrong password with a skewed clock still fails once, without retry.
	cl2 := NewClient(cl.Config)
	cl2.Clock = cl.Clock
	before := kdc.LogCount("PREAUTH_FAILED")
	_, err = cl2.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte("wrong")})
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("err = %v", err)
	}
	if n := kdc.LogCount("PREAUTH_FAILED") - before; n != 1 {
		t.Errorf("%d PREAUTH_FAILED lines for one wrong password with skew, want 1", n)
	}
}

func TestLoginKeytab(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	kdc.AddPrincipal("svc/client", "")
	kt, err := keytab.Load(kdc.Keytab("svc/client"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cl.Login(context.Background(), LoginOptions{Principal: "svc/client", Keytab: kt, Lifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tgt := *cc.Tickets()[0]
	if d := tgt.EndTime.Sub(tgt.StartTime); d != 5*time.Minute {
		t.Errorf("lifetime %v, want 5m", d)
	}
	if cc.DefaultPrincipal.String() != "svc/client@"+kdc.Realm {
		t.Errorf("principal %s", cc.DefaultPrincipal)
	}
	// Not renewable: renewal is refused before anything is sent.
	_, err = cl.Renew(context.Background(), cc)
	if !errors.Is(err, ErrNotRenewable) {
		t.Errorf("renew of non-renewable: %v", err)
	}
	// A keytab without the principal's key fails clearly.
	_, err = cl.Login(context.Background(), LoginOptions{Principal: "alice", Keytab: kt})
	if !errors.Is(err, ErrKeytab) {
		t.Errorf("err = %v, want ErrKeytab", err)
	}
}

func TestRenewExpiredRefused(t *testing.T) {
	cc := &CCache{DefaultPrincipal: Principal{NameType: 1, Realm: "R", Components: []string{"a"}}}
	cc.Credentials = []Credential{{
		Client: cc.DefaultPrincipal, Server: Principal{NameType: 2, Realm: "R", Components: []string{"krbtgt", "R"}},
		StartTime: time.Now().Add(-2 * time.Hour), EndTime: time.Now().Add(-time.Hour), RenewTill: time.Now().Add(time.Hour),
		Flags: TktFlagRenewable,
	}}
	if err := CheckRenewable(cc, time.Now()); !errors.Is(err, ErrTicketExpired) {
		t.Errorf("expired: %v", err)
	}
	cc.Credentials[0].EndTime = time.Now().Add(time.Hour)
	if err := CheckRenewable(cc, time.Now()); err != nil {
		t.Errorf("valid: %v", err)
	}
	cc.Credentials[0].Flags = 0
	if err := CheckRenewable(cc, time.Now()); !errors.Is(err, ErrNotRenewable) {
		t.Errorf("not renewable: %v", err)
	}
	cc.Credentials = nil
	if err := CheckRenewable(cc, time.Now()); !errors.Is(err, ErrNoTGT) {
		t.Errorf("empty: %v", err)
	}
}

// A clock that keeps running away cannot be corrected: one retry, then a
// clear error. With kdc_timesync off there is no retry at all.
func TestLoginClockSkewBeyondRecovery(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	var calls int64
	cl.Clock = func() time.Time {
		calls++
		return time.Now().Add(time.Duration(calls) * time.Hour)
	}
	skewLine := kdc.Realm + ", Clock skew too great"
	_, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)})
	if !errors.Is(err, ErrClockSkew) {
		t.Fatalf("err = %v, want ErrClockSkew", err)
	}
	if n := kdc.LogCount(skewLine); n != 2 {
		t.Errorf("%d skew rejections, want 2 (one retry)", n)
	}
	cl.Clock = func() time.Time { return time.Now().Add(time.Hour) }
	cl.Config.LibDefaults.KDCTimeSync = 0
	_, err = cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)})
	if !errors.Is(err, ErrClockSkew) || !strings.Contains(err.Error(), "clock skew") {
		t.Fatalf("err = %v, want ErrClockSkew", err)
	}
	if n := kdc.LogCount(skewLine); n != 3 {
		t.Errorf("%d skew rejections, want 3 (no retry without kdc_timesync)", n)
	}
	if n := kdc.LogCount("Decrypt integrity check failed"); n != 0 {
		t.Errorf("%d failed decryptions", n)
	}
}
