package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sesame klist prints byte for byte what MIT klist prints, for every flag
// both take, on caches written by sesame kinit and by MIT kinit (each with
// a service ticket from MIT kvno), on a DIR collection holding one of each,
// and on a keytab. Times are printed in the C locale's format: TZ and
// LC_ALL are fixed so that MIT prints the same.
func TestKlistMatchesMIT(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.env = append(e.env, "LC_ALL=C", "LANG=C")
	e.kdc.AddPrincipal("bob", krbTestPassword)
	e.kdc.AddPrincipal("host/localhost", "")
	keytab := e.kdc.Keytab("host/localhost")
	dir := t.TempDir()
	sesameCache := filepath.Join(dir, "sesame-cc")
	mitCache := filepath.Join(dir, "mit-cc")
	coll := filepath.Join(dir, "coll")

	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-f", "-r", "2d", "-c", sesameCache, "alice"), "sesame kinit")
	e.must(e.mit(krbTestPassword+"\n", "kinit", "-f", "-r", "2d", "-c", mitCache, "bob"), "MIT kinit")
	for _, cc := range []string{sesameCache, mitCache} {
		e.must(e.mit("", "kvno", "-c", cc, "host/localhost"), "MIT kvno")
	}
	// A collection: sesame's cache is the primary, MIT's the other member.
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", "DIR:"+coll, "alice"), "sesame kinit DIR")
	e.must(e.mit(krbTestPassword+"\n", "kinit", "-c", "DIR::"+filepath.Join(coll, "tktmit"), "bob"), "MIT kinit DIR member")
	e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", "DIR:"+coll, "alice"), "sesame kinit DIR primary again")

	missing := filepath.Join(dir, "nope")

	type run struct {
		args []string
		env  []string
	}
	var runs []run
	for _, cc := range []string{sesameCache, mitCache, "FILE:" + mitCache, "DIR:" + coll} {
		for _, flags := range [][]string{nil, {"-f"}, {"-e"}, {"-fe"}, {"-C"}, {"-a"}, {"-a", "-n"}, {"-d"}, {"-f", "-e", "-a", "-n", "-C", "-d"}, {"-l"}, {"-A"}, {"-A", "-f"}, {"-s"}, {"-l", "-e"}} {
			runs = append(runs,
				run{args: append(append([]string{}, flags...), cc)},                        // cache as argument
				run{args: append(append([]string{"-c"}, flags...), cc)},                    // -c then the name
				run{args: append([]string{}, flags...), env: []string{"KRB5CCNAME=" + cc}}, // the default cache
			)
		}
	}
	for _, flags := range [][]string{{"-k"}, {"-k", "-t"}, {"-k", "-K"}, {"-k", "-e"}, {"-k", "-t", "-K", "-e"}, {"-kte"}} {
		runs = append(runs, run{args: append(append([]string{}, flags...), keytab)}, run{args: append(append([]string{}, flags...), "FILE:"+keytab)},
			run{args: flags, env: []string{"KRB5_KTNAME=FILE:" + keytab}})
	}
	runs = append(runs, run{args: []string{"-k", "-i"}, env: []string{"KRB5_CLIENT_KTNAME=" + keytab}},
		run{args: []string{missing}}, run{args: []string{"-l", missing}}, run{args: []string{"-s", missing}}, run{args: []string{"-A", missing}},
		run{args: []string{"-k", missing}},
		// MIT's usage errors: both refuse them (status 1, usage on stderr).
		run{args: []string{"-t"}}, run{args: []string{"-n"}}, run{args: []string{"-k", "-f"}}, run{args: []string{"-l", "-A"}},
		run{args: []string{"-c", "-k"}}, run{args: []string{"-s", "-l"}}, run{args: []string{"a", "b"}})

	base := e.env
	for _, r := range runs {
		e.env = append(append([]string{}, base...), r.env...)
		want := e.mit("", "klist", r.args...)
		got := e.sesame("", append([]string{"klist"}, r.args...)...)
		if got.out != want.out || got.code != want.code {
			t.Errorf("klist %s (%s): differs\n--- MIT (exit %d)\n%s%s--- sesame (exit %d)\n%s%s", strings.Join(r.args, " "), strings.Join(r.env, " "),
				want.code, want.out, want.err, got.code, got.out, got.err)
		}
		if (want.err == "") != (got.err == "") {
			t.Errorf("klist %s (%s): MIT stderr %q, sesame stderr %q", strings.Join(r.args, " "), strings.Join(r.env, " "), want.err, got.err)
		}
	}
	e.env = base

	// -V: MIT's one line, "Kerberos 5 version 1.20.1", which scripts grep;
	// sesame's names its own version in the same form, and exits 0 too.
	versionLine := regexp.MustCompile(`^Kerberos 5 version [^ \n]+( \(sesame\))?\n$`)
	if r := e.mit("", "klist", "-V"); r.code != 0 || !versionLine.MatchString(r.out) {
		t.Errorf("MIT klist -V: exit %d, %q", r.code, r.out)
	}
	if r := e.sesame("", "klist", "-V"); r.code != 0 || !versionLine.MatchString(r.out) || r.err != "" {
		t.Errorf("klist -V: exit %d, %q %q", r.code, r.out, r.err)
	}
	// -4: refused with status 3, as MIT.
	if r := e.sesame("", "klist", "-4"); r.code != 3 || !strings.Contains(r.err, "Kerberos 4 is no longer supported") {
		t.Errorf("klist -4: exit %d, %q", r.code, r.err)
	}
	if _, err := os.Stat(coll); err != nil {
		t.Fatal(err)
	}
}

// sesame kdestroy exits as MIT kdestroy does and leaves the same caches:
// a missing cache is reported and is no failure, -p picks the collection's
// cache of a principal, -A empties the collection, and the usage errors
// exit 2.
func TestKdestroyMatchesMIT(t *testing.T) {
	e := newKrbEnv(t, "alice")
	e.kdc.AddPrincipal("bob", krbTestPassword)
	missing := filepath.Join(t.TempDir(), "nope")
	for _, args := range [][]string{{"-c", missing}, {"-q", "-c", missing}, {"-A", "-c", missing}, {"-p", "alice", "-c", missing},
		{"extra"}, {"-A", "-p", "alice"}} {
		want := e.mit("", "kdestroy", args...)
		got := e.sesame("", append([]string{"kdestroy"}, args...)...)
		if got.code != want.code || got.out != want.out || (want.err == "") != (got.err == "") {
			t.Errorf("kdestroy %v: MIT exit %d %q %q, sesame exit %d %q %q", args, want.code, want.out, want.err, got.code, got.out, got.err)
		}
	}

	// The same collection destroyed step by step by each: the same files
	// are left, and the same "other caches" warning is given.
	for _, tool := range []string{"mit", "sesame"} {
		coll := filepath.Join(t.TempDir(), "coll")
		e.must(e.mit(krbTestPassword+"\n", "kinit", "-c", "DIR::"+filepath.Join(coll, "tktbob"), "bob"), "MIT kinit bob")
		e.must(e.sesame(krbTestPassword+"\n", "kinit", "--password-stdin", "-c", "DIR:"+coll, "alice"), "sesame kinit alice")
		run := func(args ...string) result {
			if tool == "mit" {
				return e.mit("", "kdestroy", args...)
			}
			return e.sesame("", append([]string{"kdestroy"}, args...)...)
		}
		r := run("-p", "bob@"+e.kdc.Realm, "-c", "DIR:"+coll)
		if r.code != 0 {
			t.Fatalf("%s kdestroy -p bob: exit %d %s", tool, r.code, r.err)
		}
		left, _ := filepath.Glob(filepath.Join(coll, "tkt*"))
		if len(left) != 1 || filepath.Base(left[0]) == "tktbob" {
			t.Errorf("%s kdestroy -p bob left %v", tool, left)
		}
		e.must(e.mit(krbTestPassword+"\n", "kinit", "-c", "DIR::"+filepath.Join(coll, "tktbob"), "bob"), "MIT kinit bob again")
		r = run("-c", "DIR:"+coll)
		if r.code != 0 || !strings.Contains(r.err, "Other credential caches present, use -A to destroy all") {
			t.Errorf("%s kdestroy of the primary with another cache left: exit %d %q", tool, r.code, r.err)
		}
		if r = run("-A", "-c", "DIR:"+coll); r.code != 0 {
			t.Errorf("%s kdestroy -A: exit %d %s", tool, r.code, r.err)
		}
		if left, _ := filepath.Glob(filepath.Join(coll, "tkt*")); len(left) != 0 {
			t.Errorf("%s kdestroy -A left %v", tool, left)
		}
	}
}
