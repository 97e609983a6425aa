package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// TestFASTArmorMIT logs in with FAST armor (kinit -T, RFC 6113) against a
// real MIT KDC, with MIT kinit -T as the control on the same KDC and the
// same armor cache. MIT's KDC offers encrypted challenge only inside FAST
// and encrypted timestamp only outside it, so a pa_type of 138 in the
// cache and the KDC's "encrypted_challenge" log lines show that the
// exchange really was armored.
func TestFASTArmorMIT(t *testing.T) {
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	for _, p := range []string{"alice", "bob"} {
		kdc.AddPrincipal(p, krbTestPassword)
	}
	kdc.Kadmin("modprinc +requires_preauth alice")
	kdc.AddPrincipal("host/localhost", "")
	hostKT := kdc.Keytab("host/localhost")
	r := &kdcRow{name: "mit", realm: kdc.Realm, conf: kdc.Conf, dir: kdc.Dir}

	// The armor cache comes from a keytab login of the host, by sesame.
	armor := r.kinit(t, false, "", "", "-k", "-t", hostKT, "host/localhost")
	if !armor.ok {
		t.Fatalf("armor login: %s", armor.out)
	}

	t.Run("password", func(t *testing.T) {
		mit := r.kinit(t, true, "", krbTestPassword, "-T", armor.cache, "alice")
		if !mit.ok {
			t.Fatalf("control: MIT kinit -T failed: %s", mit.out)
		}
		ses := r.kinit(t, false, "", krbTestPassword, "-T", armor.cache, "alice")
		same(t, "-T", mit, ses, false)
		if a, b := configLines(t, mit), configLines(t, ses); a != b || !strings.Contains(b, "pa_type") || !strings.Contains(b, "138") {
			t.Errorf("config entries: MIT\n%s\nsesame\n%s", a, b)
		}
		if !strings.Contains(configLines(t, ses), "fast_avail") {
			t.Errorf("no fast_avail entry:\n%s", configLines(t, ses))
		}
		runOut(t, ses.env, testbed.Path(t, "kvno"), "host/localhost")
	})

	t.Run("no pre-authentication required", func(t *testing.T) {
		// bob needs no pre-authentication: the reply key is the
		// client key strengthened with the KDC's strengthen key.
		mit := r.kinit(t, true, "", krbTestPassword, "-T", armor.cache, "bob")
		ses := r.kinit(t, false, "", krbTestPassword, "-T", armor.cache, "bob")
		if !mit.ok {
			t.Fatalf("control failed: %s", mit.out)
		}
		same(t, "-T bob", mit, ses, false)
	})

	t.Run("keytab", func(t *testing.T) {
		kdc.AddPrincipal("svc", "")
		kt := kdc.Keytab("svc")
		mit := r.kinit(t, true, "", "", "-k", "-t", kt, "-T", armor.cache, "svc")
		ses := r.kinit(t, false, "", "", "-k", "-t", kt, "-T", armor.cache, "svc")
		if !mit.ok {
			t.Fatalf("control failed: %s", mit.out)
		}
		same(t, "-T -k", mit, ses, false)
	})

	t.Run("wrong password counted once", func(t *testing.T) {
		// The KDC's failure line names the encrypted challenge, which it
		// takes only inside FAST.
		failed := func() int {
			return kdc.LogCount("PREAUTH_FAILED: alice@" + kdc.Realm + " for krbtgt/" + kdc.Realm + "@" + kdc.Realm + ", Incorrect password in encrypted challenge")
		}
		before := failed()
		mit := r.kinit(t, true, "", "wrong-"+krbTestPassword, "-T", armor.cache, "alice")
		afterMIT := failed()
		ses := r.kinit(t, false, "", "wrong-"+krbTestPassword, "-T", armor.cache, "alice")
		afterSes := failed()
		same(t, "-T wrong password", mit, ses, false)
		if afterMIT-before != 1 {
			t.Errorf("control: MIT kinit -T cost %d failures", afterMIT-before)
		}
		if afterSes-afterMIT != 1 {
			t.Errorf("sesame cost %d failures in the KDC's log, want exactly 1", afterSes-afterMIT)
		}
		if !strings.Contains(ses.out, "password incorrect") || msgLines(ses.out) != 2 {
			t.Errorf("sesame's message:\n%s", ses.out)
		}
	})

	t.Run("bad armor", func(t *testing.T) {
		dir := t.TempDir()
		garbage := filepath.Join(dir, "garbage")
		os.WriteFile(garbage, []byte("not a cache"), 0o600)
		// A cache that holds no TGT of the realm: only a service ticket.
		svc := r.kinit(t, false, "", krbTestPassword, "-S", "kadmin/changepw", "alice")
		if !svc.ok {
			t.Fatalf("-S login: %s", svc.out)
		}
		svcOnly := svc.cache
		for name, cache := range map[string]string{
			"missing": filepath.Join(dir, "nothing"),
			"garbage": garbage,
			"empty":   svcOnly,
			"dir":     "DIR:" + filepath.Join(dir, "nodir"),
			"member":  "DIR::" + filepath.Join(dir, "nodir", "tkt"),
		} {
			before := kdc.LogCount("AS_REQ")
			ses := r.kinit(t, false, "", krbTestPassword, "-T", cache, "alice")
			t.Logf("%s armor cache:\n%s", name, ses.out)
			if ses.ok || !strings.HasPrefix(ses.out, "sesame: ") || msgLines(ses.out) > 2 || !strings.Contains(ses.out, "armor") {
				t.Errorf("%s armor cache: ok=%v\n%s", name, ses.ok, ses.out)
			}
			if n := kdc.LogCount("AS_REQ"); n != before {
				t.Errorf("%s armor cache: %d requests reached the kdc", name, n-before)
			}
		}
		// Reading an armor cache creates nothing.
		if _, err := os.Stat(filepath.Join(dir, "nodir")); err == nil {
			t.Error("a DIR: armor name created its directory")
		}
	})

	t.Run("-T with -R or --remember", func(t *testing.T) {
		for _, args := range [][]string{{"-R", "-T", armor.cache}, {"--remember", "-T", armor.cache, "alice"}} {
			ses := r.kinit(t, false, "", krbTestPassword, args...)
			if ses.ok || !strings.Contains(ses.out, "-T") {
				t.Errorf("%v: ok=%v %s", args, ses.ok, ses.out)
			}
		}
	})
}

// msgLines counts the lines of a message (a "sesame: hint:" line included).
func msgLines(s string) int { return len(strings.Split(strings.TrimSpace(s), "\n")) }
