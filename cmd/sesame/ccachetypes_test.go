//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// The same commands on the cache types of Fedora/RHEL/FreeIPA clients:
// KCM (a private sssd-kcm) and KEYRING (the kernel's keyrings), each set
// as krb5.conf's default_ccache_name with no KRB5CCNAME, so that sesame,
// MIT's tools and ssh all find the cache the way they would on such a
// machine.

type ccType struct {
	name    string
	kcm     bool
	ccname  string // default_ccache_name
	cleanup func()
}

func ccTypes(t *testing.T) []ccType {
	coll := fmt.Sprintf("sesame-e2e-%d", time.Now().UnixNano())
	return []ccType{
		{name: "KCM", kcm: true, ccname: "KCM:"},
		{name: "KEYRING", ccname: "KEYRING:user:" + coll, cleanup: func() {
			if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "keyring", "_krb_"+coll, 0); err == nil {
				unix.KeyctlInt(unix.KEYCTL_CLEAR, id, 0, 0, 0)
				unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
				unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_PROCESS_KEYRING, 0, 0)
			}
		}},
	}
}

// newTypedKrbEnv is newKrbEnv with the cache of type ct as the default.
func newTypedKrbEnv(t *testing.T, ct ccType, user string) *krbEnv {
	t.Helper()
	extra := "\tdefault_ccache_name = " + ct.ccname + "\n"
	if ct.kcm {
		extra += testbed.NewKCM(t).Krb5Conf()
	} else if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		testbed.Missing(t, fmt.Sprintf("kernel keyrings are not available: %v", err))
	}
	if ct.cleanup != nil {
		t.Cleanup(ct.cleanup)
	}
	bin := sesameBin(t)
	kdc := testbed.NewKDC(t, testbed.KDCOptions{ExtraKrb5Client: extra})
	kdc.AddPrincipal(user, krbTestPassword)
	kdc.Kadmin("modprinc +requires_preauth " + user)
	dir := t.TempDir()
	e := &krbEnv{t: t, kdc: kdc, bin: bin}
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "KRB5CCNAME=") {
			e.env = append(e.env, v)
		}
	}
	e.env = append(e.env, kdc.Env()...)
	e.env = append(e.env, "SESAME_HOME="+dir+"/sesame", "TZ=UTC")
	return e
}

// sesame kinit into the default KCM/KEYRING cache; MIT klist and kvno use
// it, sesame klist prints what MIT klist prints, ssh logs in with GSSAPI;
// sesame kinit -R extends it in place; MIT kinit's cache is read by
// sesame; kdestroy -A empties the collection.
func TestCacheTypesWithMITAndSSH(t *testing.T) {
	for _, ct := range ccTypes(t) {
		t.Run(ct.name, func(t *testing.T) {
			e := newTypedKrbEnv(t, ct, "alice")
			sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: e.kdc})
			user := sshd.User
			e.kdc.AddPrincipal(user, krbTestPassword)

			e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-f", "-r", "3d", user), "sesame kinit")
			r := e.must(e.mit("", "klist", "-f"), "MIT klist")
			if !strings.Contains(r.out, "Ticket cache: "+ct.name+":") || !strings.Contains(r.out, "Default principal: "+user+"@"+e.kdc.Realm) {
				t.Fatalf("MIT klist:\n%s", r.out)
			}
			start, _, renew, flags := tgtTimes(t, r.out, e.kdc.Realm)
			if !strings.Contains(flags, "R") || renew.Sub(start) < 71*time.Hour {
				t.Errorf("MIT sees flags %q, renew %v after start", flags, renew.Sub(start))
			}
			e.must(e.mit("", "kvno", "host/localhost"), "MIT kvno")
			for _, args := range [][]string{nil, {"-f", "-e"}} {
				want := e.must(e.mit("", "klist", args...), "MIT klist").out
				got := e.must(e.sesame("", append([]string{"klist"}, args...)...), "sesame klist").out
				if got != want {
					t.Errorf("sesame klist %v differs from MIT klist:\n--- MIT\n%s--- sesame\n%s", args, want, got)
				}
			}
			if r := e.sesame("", "klist", "-s"); r.code != 0 {
				t.Errorf("sesame klist -s: exit %d %s", r.code, r.err)
			}

			ssh := testbed.Path(t, "ssh")
			r = e.run("", ssh, append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no"), "echo", "gssapi-ok")...)
			if r.code != 0 || !strings.Contains(r.out, "gssapi-ok") {
				b, _ := os.ReadFile(sshd.Log)
				t.Fatalf("ssh with GSSAPI from %s: exit %d\n%s%s\nsshd log:\n%s", ct.name, r.code, r.out, r.err, b)
			}

			// Renewal in place: same cache name, later start, same renew-till,
			// the service ticket kept.
			name := cacheNameIn(t, e.must(e.mit("", "klist"), "MIT klist").out)
			time.Sleep(1100 * time.Millisecond)
			e.must(e.sesame("", "kinit", "-R"), "sesame kinit -R")
			r = e.must(e.mit("", "klist", "-f"), "MIT klist after renewal")
			s2, _, renew2, _ := tgtTimes(t, r.out, e.kdc.Realm)
			if !s2.After(start) || !renew2.Equal(renew) || !strings.Contains(r.out, "Ticket cache: "+name+"\n") || !strings.Contains(r.out, "host/localhost@") {
				t.Errorf("after kinit -R (start %v→%v, renew %v→%v):\n%s", start, s2, renew, renew2, r.out)
			}
			e.must(e.mit("", "kvno", "host/localhost"), "MIT kvno after renewal")

			// MIT kinit for another principal makes a new cache in the
			// collection; sesame klist shows the primary, klist -A both.
			e.kdc.AddPrincipal("bob", krbTestPassword)
			e.must(e.mit(krbTestPassword+"\n", "kinit", "bob"), "MIT kinit bob")
			if got := e.must(e.sesame("", "klist"), "sesame klist").out; !strings.Contains(got, "Default principal: bob@") {
				t.Errorf("sesame klist after MIT kinit bob:\n%s", got)
			}
			if got := e.must(e.mit("", "klist", "-l"), "MIT klist -l").out; strings.Count(got, e.kdc.Realm) != 2 {
				t.Fatalf("MIT klist -l before kdestroy -A:\n%s", got)
			}
			e.must(e.sesame("", "kdestroy", "-A"), "sesame kdestroy -A")
			if got := e.mit("", "klist", "-l").out; strings.Contains(got, e.kdc.Realm) {
				t.Errorf("MIT klist -l after kdestroy -A:\n%s", got)
			}
			if r := e.sesame("", "klist", "-s"); r.code == 0 {
				t.Error("sesame klist -s succeeds after kdestroy -A")
			}
		})
	}
}

// sesame kinit for a second principal into a collection goes to a new
// cache that becomes the primary, as MIT kinit does; -c with a
// subsidiary name writes there.
func TestCacheTypesKinitCollection(t *testing.T) {
	for _, ct := range ccTypes(t) {
		t.Run(ct.name, func(t *testing.T) {
			e := newTypedKrbEnv(t, ct, "alice")
			e.kdc.AddPrincipal("bob", krbTestPassword)
			e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "alice"), "sesame kinit alice")
			e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "bob"), "sesame kinit bob")
			l := e.must(e.mit("", "klist", "-l"), "MIT klist -l").out
			if !strings.Contains(l, "alice@") || !strings.Contains(l, "bob@") {
				t.Fatalf("MIT klist -l:\n%s", l)
			}
			if got := e.must(e.mit("", "klist"), "MIT klist").out; !strings.Contains(got, "Default principal: bob@") {
				t.Errorf("the new cache is not the primary:\n%s", got)
			}
			// Back to alice: her existing cache is reused and made primary.
			e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "alice"), "sesame kinit alice again")
			if got := e.must(e.mit("", "klist", "-l"), "MIT klist -l").out; strings.Count(got, "@"+e.kdc.Realm) != 2 {
				t.Errorf("a third cache appeared:\n%s", got)
			}
			if got := e.must(e.mit("", "klist"), "MIT klist").out; !strings.Contains(got, "Default principal: alice@") {
				t.Errorf("alice's cache is not the primary again:\n%s", got)
			}

			// -c with a subsidiary name that does not exist yet creates it;
			// MIT reads it by that name, and the primary stays alice's.
			sub := ct.ccname + ":sesame-sub"
			if ct.kcm {
				sub = "KCM:0:sesame-sub"
			}
			e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", sub, "bob"), "sesame kinit -c "+sub)
			got := e.must(e.mit("", "klist", "-c", sub), "MIT klist -c").out
			if !strings.Contains(got, "Default principal: bob@") || cacheNameIn(t, got) != sub {
				t.Errorf("MIT klist -c %s:\n%s", sub, got)
			}
			if got := e.must(e.mit("", "klist"), "MIT klist").out; !strings.Contains(got, "Default principal: alice@") {
				t.Errorf("kinit -c changed the primary:\n%s", got)
			}
		})
	}
}

// cacheNameIn returns the "Ticket cache:" of klist output.
func cacheNameIn(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "Ticket cache: ")
	if !ok {
		t.Fatalf("no cache name in klist output:\n%s", out)
	}
	name, _, _ := strings.Cut(rest, "\n")
	return name
}

// --kerberos-on-lock stash|destroy with a KCM or KEYRING default cache:
// while locked MIT klist finds no ticket; unlock restores a stashed one
// (and MIT kvno uses it), not a destroyed one.
func TestCacheTypesAgentLockStash(t *testing.T) {
	testbed.NeedRoot(t)
	for _, ct := range ccTypes(t) {
		for _, mode := range []string{"stash", "destroy"} {
			t.Run(ct.name+"/"+mode, func(t *testing.T) {
				k := newTypedKrbEnv(t, ct, "alice")
				k.kdc.AddPrincipal("host/localhost", "")
				e := newLockEnv(t)
				e.env = append(e.env, k.kdc.Env()...)
				k.must(k.mit(krbTestPassword+"\n", "kinit", "alice"), "MIT kinit")
				e.start(nil, "--kerberos-on-lock", mode)
				defer e.stop()
				if _, errOut, code := e.sesame("pw\n", nil, "lock", "--passphrase-stdin"); code != 0 {
					t.Fatalf("lock: %s", errOut)
				}
				if r := k.mit("", "klist", "-s"); r.code == 0 {
					t.Errorf("a ticket is still in the %s cache while locked:\n%s", ct.name, k.mit("", "klist").out)
				}
				if _, errOut, code := e.sesame("pw\n", nil, "unlock", "--passphrase-stdin"); code != 0 {
					t.Fatalf("unlock: %s", errOut)
				}
				r := k.mit("", "klist", "-s")
				if mode == "stash" {
					if r.code != 0 {
						t.Fatalf("stashed %s cache not restored", ct.name)
					}
					if got := k.must(k.mit("", "klist"), "MIT klist").out; !strings.Contains(got, "Default principal: alice@") {
						t.Errorf("restored cache:\n%s", got)
					}
					k.must(k.mit("", "kvno", "host/localhost"), "MIT kvno with the restored TGT")
				} else if r.code == 0 {
					t.Errorf("destroyed %s cache came back", ct.name)
				}
			})
		}
	}
}

// No sssd-kcm on the socket krb5.conf names: every command says so in
// one line with the way to start it, and kinit asks for no password.
func TestCacheTypesKCMUnreachable(t *testing.T) {
	bin := sesameBin(t)
	dir := t.TempDir()
	conf := dir + "/krb5.conf"
	os.WriteFile(conf, []byte("[libdefaults]\n default_realm = X.TEST\n default_ccache_name = KCM:\n kcm_socket = "+dir+"/none\n"), 0o600)
	e := &krbEnv{t: t, bin: bin}
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "KRB5CCNAME=") {
			e.env = append(e.env, v)
		}
	}
	e.env = append(e.env, "KRB5_CONFIG="+conf, "SESAME_HOME="+dir+"/sesame")
	for _, args := range [][]string{{"klist"}, {"kdestroy"}, {"kinit", "--password-stdin", "alice"}, {"kinit", "-R"}} {
		r := e.sesame("never-read\n", args...)
		lines := strings.Split(strings.TrimSpace(r.err), "\n")
		if r.code == 0 || len(lines) != 2 || !strings.Contains(lines[0], "no KCM daemon (sssd-kcm) is listening on "+dir+"/none") ||
			!strings.Contains(lines[1], "hint: start it with `systemctl start sssd-kcm.socket`") {
			t.Errorf("sesame %v: exit %d\n%s", args, r.code, r.err)
		}
	}
}

// sesame renew keeps a short ticket in a KCM or KEYRING default cache
// alive past its first end, in place (the same cache), and MIT uses the
// renewed TGT.
func TestCacheTypesRenewInPlace(t *testing.T) {
	for _, ct := range ccTypes(t) {
		t.Run(ct.name, func(t *testing.T) {
			t.Parallel()
			e := newTypedKrbEnv(t, ct, "alice")
			e.kdc.AddPrincipal("host/localhost", "")
			e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-l", "16s", "-r", "1h", "alice"), "sesame kinit")
			e.must(e.mit("", "kvno", "host/localhost"), "MIT kvno")
			before := e.must(e.mit("", "klist"), "MIT klist").out
			_, end, _, _ := tgtTimes(t, before, e.kdc.Realm)
			stop, _ := e.startRenewer()
			// Ticket times are whole seconds in UTC, as klist prints them.
			sleepUntil(end.Add(2 * time.Second))
			out, _ := stop()
			after := e.must(e.mit("", "klist"), "MIT klist after the first end").out
			_, end2, _, _ := tgtTimes(t, after, e.kdc.Realm)
			// (The service ticket ended with the first TGT; a keyring's
			// kernel timeout removes it then, as MIT sets it.)
			if !end2.After(end) || cacheNameIn(t, after) != cacheNameIn(t, before) {
				t.Fatalf("not renewed in place (end %v → %v):\n%s\nrenewer:\n%s", end, end2, after, out)
			}
			e.must(e.mit("", "kvno", "host/localhost"), "MIT kvno after renewal")
		})
	}
}
