package krb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// A renewal asks for the flags the ticket has, as MIT's kinit -R does:
// Heimdal and AD drop forwardable and proxiable otherwise.
func TestRenewOptionsKeepTicketFlags(t *testing.T) {
	has := func(o []int, f int) bool {
		for _, x := range o {
			if x == f {
				return true
			}
		}
		return false
	}
	set := func(flags uint32) []int {
		b := renewOptions(flags)
		var out []int
		for i := 0; i < 32; i++ {
			if types.IsFlagSet(&b, i) {
				out = append(out, i)
			}
		}
		return out
	}
	got := set(TktFlagForwardable | TktFlagProxiable | TktFlagRenewable | TktFlagInitial)
	for _, f := range []int{flags.Renew, flags.Renewable, flags.Forwardable, flags.Proxiable} {
		if !has(got, f) {
			t.Errorf("renewal of an FPR ticket lacks option %d: %v", f, got)
		}
	}
	got = set(TktFlagRenewable)
	if has(got, flags.Forwardable) || has(got, flags.Proxiable) || !has(got, flags.Renew) {
		t.Errorf("renewal of a plain renewable ticket: options %v", got)
	}
}

// Against the real KDC: a forwardable, proxiable ticket stays so after
// renewal, and the renewal request carried the options.
func TestRenewKeepsForwardableProxiable(t *testing.T) {
	_, cl := exchangeRealm(t, testbed.KDCOptions{})
	cc, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword),
		Lifetime: time.Hour, RenewLife: 24 * time.Hour, Forwardable: true, Proxiable: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	rc, err := cl.Renew(context.Background(), cc)
	if err != nil {
		t.Fatal(err)
	}
	tgt, _ := rc.TGT()
	if tgt.Flags&TktFlagForwardable == 0 || tgt.Flags&TktFlagProxiable == 0 {
		t.Errorf("renewed flags %#x lack F or P", tgt.Flags)
	}
}

func fakeASRep(crealm string, cname []string, srealm string, nonce int) (rawKDCRep, messages.EncKDCRepPart) {
	rep := rawKDCRep{PVNO: 5, MsgType: msgtype.KRB_AS_REP, CRealm: crealm,
		CName: types.PrincipalName{NameType: nametype.KRB_NT_PRINCIPAL, NameString: cname}}
	part := messages.EncKDCRepPart{Nonce: nonce, SRealm: srealm, EndTime: time.Now().Add(time.Hour),
		SName: types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", srealm}}}
	return rep, part
}

// RFC 6806: a reply naming another client (an alias resolved, the realm's
// case changed) is accepted only when canonicalization was requested.
func TestCheckASRepCanonicalization(t *testing.T) {
	client := Principal{NameType: 1, Realm: "SAMBA.TEST", Components: []string{"alicealias"}}
	req := messages.ASReq{KDCReqFields: messages.KDCReqFields{ReqBody: messages.KDCReqBody{Nonce: 7, CName: client.Gokrb5()}}}
	cases := []struct {
		name   string
		crealm string
		cname  string
		srealm string
		canon  bool
		ok     bool
	}{
		{"exact", "SAMBA.TEST", "alicealias", "SAMBA.TEST", false, true},
		{"alias resolved without canonicalize", "SAMBA.TEST", "alice", "SAMBA.TEST", false, false},
		{"alias resolved with canonicalize", "SAMBA.TEST", "alice", "SAMBA.TEST", true, true},
		{"name case without canonicalize", "SAMBA.TEST", "AliceAlias", "SAMBA.TEST", false, false},
		{"realm case without canonicalize", "samba.test", "alicealias", "samba.test", false, false},
		{"realm case with canonicalize", "samba.test", "alice", "samba.test", true, true},
		{"other realm even with canonicalize", "OTHER.TEST", "alice", "OTHER.TEST", true, false},
		{"tgt of another realm", "SAMBA.TEST", "alicealias", "OTHER.TEST", true, false},
	}
	for _, c := range cases {
		rep, part := fakeASRep(c.crealm, []string{c.cname}, c.srealm, 7)
		err := checkASRep(rep, part, req, client, TGTPrincipal(client.Realm), c.canon)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	rep, part := fakeASRep("SAMBA.TEST", []string{"alicealias"}, "SAMBA.TEST", 8)
	if err := checkASRep(rep, part, req, client, TGTPrincipal(client.Realm), true); err == nil {
		t.Errorf("nonce mismatch accepted")
	}
}

// MIT kinit -E: "a@b" is one enterprise name in default_realm; a second
// "@" gives the realm.
func TestParseLoginPrincipalEnterprise(t *testing.T) {
	for _, c := range []struct{ in, name, realm string }{
		{"carol.smith@corp.example", "carol.smith@corp.example", "DEF.TEST"},
		{"carol.smith@corp.example@SAMBA.TEST", "carol.smith@corp.example", "SAMBA.TEST"},
		{"alice", "alice", "DEF.TEST"},
	} {
		p, err := ParseLoginPrincipal(c.in, "DEF.TEST", true)
		if err != nil || p.NameType != nametype.KRB_NT_ENTERPRISE || len(p.Components) != 1 || p.Components[0] != c.name || p.Realm != c.realm {
			t.Errorf("%q: %+v %v", c.in, p, err)
		}
	}
	if _, err := ParseLoginPrincipal("carol@corp.example@", "DEF.TEST", true); err == nil {
		t.Errorf("empty enterprise name accepted")
	}
}

// Enterprise and lower-case realm logins against the MIT KDC. MIT kinit
// refuses alice@sesame.test ("cannot find KDC"); sesame asks for the
// configured realm and stores names every tool can use.
func TestLoginEnterpriseAndRealmCase(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	want := "alice@" + kdc.Realm
	for _, opt := range []LoginOptions{
		{Principal: "alice", Enterprise: true},
		{Principal: "alice@" + strings.ToLower(kdc.Realm)},
		{Principal: "alice@" + strings.ToLower(kdc.Realm), Canonicalize: true},
	} {
		opt.Password = []byte(testPassword)
		cc, err := cl.Login(context.Background(), opt)
		if err != nil {
			t.Errorf("%+v: %v", opt, err)
			continue
		}
		tgt, ok := cc.TGT()
		if cc.DefaultPrincipal.String() != want || !ok || tgt.Server.String() != "krbtgt/"+kdc.Realm+"@"+kdc.Realm {
			t.Errorf("%s (enterprise %v): cache of %s, tgt %v", opt.Principal, opt.Enterprise, cc.DefaultPrincipal, tgt)
		}
	}
}

func TestKDCErrorText(t *testing.T) {
	e := &KDCError{Code: errorcode.KDC_ERR_ETYPE_NOSUPP, KDC: "127.0.0.1:88"}
	if got, want := e.Error(), "kdc 127.0.0.1:88 answered KDC_ERR_ETYPE_NOSUPP (kdc has no support for encryption type, error 14)"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := (&KDCError{Code: 999, KDC: "k"}).Error(); got != "kdc k answered error 999" {
		t.Errorf("unknown code: %q", got)
	}
}

func FuzzParseLoginPrincipal(f *testing.F) {
	for _, s := range []string{"alice", "carol.smith@corp.example", "a@b@C.TEST", "@", "a\\@b@R", "x@"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, enterprise bool) {
		p, err := ParseLoginPrincipal(s, "DEF.TEST", enterprise)
		if err != nil {
			return
		}
		if p.Realm == "" || len(p.Components) == 0 {
			t.Fatalf("%q: %+v", s, p)
		}
		if enterprise && (len(p.Components) != 1 || p.NameType != nametype.KRB_NT_ENTERPRISE) {
			t.Fatalf("%q: enterprise name %+v", s, p)
		}
	})
}
