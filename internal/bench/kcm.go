//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func init() { register("kcm", benchKCM) }

// benchKCM times `sesame kinit` and MIT `kinit` into the same KCM cache
// (a private sssd_kcm, as on Fedora and RHEL where default_ccache_name is
// KCM:), alternating the two sides. Every run replaces the ticket of the
// same principal in the default cache, which is what a user's daily kinit
// does; the daemon's database writes are part of both sides.
func benchKCM(e *env) ([]result, error) {
	kcm := testbed.NewKCM(e.TB)
	kdc := testbed.NewKDC(e.TB, testbed.KDCOptions{ExtraKrb5Client: "\tdefault_ccache_name = KCM:\n" + kcm.Krb5Conf()})
	kdc.AddPrincipal("alice", benchPassword)
	kdc.Kadmin("modprinc +requires_preauth alice")
	mitKinit := testbed.Path(e.TB, "kinit")
	klist := testbed.Path(e.TB, "klist")
	var base []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "KRB5CCNAME=") {
			base = append(base, v)
		}
	}
	base = append(base, kdc.Env()...)
	base = append(base, "SESAME_HOME="+filepath.Join(e.TB.TempDir(), "sesame"))

	run := func(name string, args ...string) (time.Duration, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = base
		cmd.Stdin = strings.NewReader(benchPassword + "\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
		}
		return d, nil
	}
	sesame := []string{"kinit", "--password-stdin", "alice"}
	r := result{Task: "kinit into KCM (sssd-kcm)", PeerName: "MIT", Target: 1.2}
	for i := 0; i < 2; i++ { // warm up both sides and the daemon
		if _, err := run(e.Sesame, sesame...); err != nil {
			return nil, err
		}
		if _, err := run(mitKinit, "alice"); err != nil {
			return nil, err
		}
	}
	for i := 0; i < e.N; i++ {
		d, err := run(e.Sesame, sesame...)
		if err != nil {
			return nil, err
		}
		r.Sesame = append(r.Sesame, d)
		if d, err = run(mitKinit, "alice"); err != nil {
			return nil, err
		}
		r.Peer = append(r.Peer, d)
	}
	// Both sides must have written a ticket MIT can use.
	if _, err := run(klist, "-s"); err != nil {
		return nil, err
	}
	r.Note = "(sesame's share is process start-up and the extra reads of a cache replaced in place)"
	return []result{r}, nil
}
