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

func init() { register("kinit", benchKinit) }

const benchPassword = "Bench-password-1"

// benchKinit times `sesame kinit` and MIT `kinit` against the same
// loopback KDC, with a password and with a keytab. The two sides
// alternate, so that drift in the machine's load hits both alike; each run
// is a fresh process writing a fresh cache, as a user would run it.
func benchKinit(e *env) ([]result, error) {
	kdc := testbed.NewKDC(e.TB, testbed.KDCOptions{})
	kdc.AddPrincipal("alice", benchPassword)
	kdc.Kadmin("modprinc +requires_preauth alice")
	kdc.AddPrincipal("svc/bench", "")
	kt := kdc.Keytab("svc/bench")
	mitKinit := testbed.Path(e.TB, "kinit")
	// Both a disk-backed directory and tmpfs are measured, so that the
	// ratio does not depend on where /tmp happens to live.
	dirs := []struct{ label, dir string }{{"", e.TB.TempDir()}}
	if shm, err := os.MkdirTemp("/dev/shm", "sesame-bench-"); err == nil {
		e.TB.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, struct{ label, dir string }{", tmpfs", shm})
	}
	var results []result
	for _, d := range dirs {
		r, err := kinitTasks(e, kdc, mitKinit, kt, d.label, filepath.Join(d.dir, "cc"))
		if err != nil {
			return nil, err
		}
		results = append(results, r...)
	}
	return results, nil
}

func kinitTasks(e *env, kdc *testbed.KDC, mitKinit, kt, label, cache string) ([]result, error) {
	base := append(os.Environ(), kdc.Env()...)
	base = append(base, "KRB5CCNAME=FILE:"+cache)

	run := func(stdin string, name string, args ...string) (time.Duration, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = base
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		os.Remove(cache)
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
		}
		if _, err := os.Stat(cache); err != nil {
			return 0, fmt.Errorf("%s wrote no cache", filepath.Base(name))
		}
		return d, nil
	}
	tasks := []struct {
		name   string
		stdin  string
		sesame []string
		mit    []string
	}{
		{"kinit (password)", benchPassword + "\n", []string{"kinit", "--password-stdin", "alice"}, []string{"alice"}},
		{"kinit -k (keytab)", "", []string{"kinit", "-k", "-t", kt, "svc/bench"}, []string{"-k", "-t", kt, "svc/bench"}},
	}
	var results []result
	for _, tk := range tasks {
		r := result{Task: tk.name + label, PeerName: "MIT", Target: 1.2}
		// One unmeasured round each warms the page cache and the KDC.
		if _, err := run(tk.stdin, e.Sesame, tk.sesame...); err != nil {
			return nil, err
		}
		if _, err := run(tk.stdin, mitKinit, tk.mit...); err != nil {
			return nil, err
		}
		for i := 0; i < e.N; i++ {
			d, err := run(tk.stdin, e.Sesame, tk.sesame...)
			if err != nil {
				return nil, err
			}
			r.Sesame = append(r.Sesame, d)
			d, err = run(tk.stdin, mitKinit, tk.mit...)
			if err != nil {
				return nil, err
			}
			r.Peer = append(r.Peer, d)
		}
		r.Note = "(sesame's share is mostly process start-up: a static Go binary starts ~1 ms slower than MIT kinit)"
		results = append(results, r)
	}
	return results, nil
}
