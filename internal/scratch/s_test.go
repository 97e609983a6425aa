package scratch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func TestShow(t *testing.T) {
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	kdc.AddPrincipal("alice", "pw")
	kdc.AddPrincipal("host/localhost", "")
	cc := filepath.Join(t.TempDir(), "cc")
	env := append(os.Environ(), kdc.Env()...)
	env = append(env, "KRB5CCNAME=FILE:"+cc)
	sh := func(stdin string, name string, args ...string) {
		c := exec.Command(name, args...)
		c.Env = env
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		fmt.Printf("$ %s %v (err=%v)\n%s\n", name, args, err, out)
	}
	sh("", "klist")
	sh("", "klist", "-s")
	sh("pw\n", "kinit", "-f", "-r", "3d", "alice")
	sh("", "kvno", "host/localhost")
	sh("", "klist", "-f", "-e")
	sh("", "klist", "-C")
	sh("", "klist", "-A")
	sh("", "od", "-A", "d", "-t", "x1", "-N", "64", cc)
	sh("", "kinit", "-R")
	sh("", "klist")
	os.WriteFile(cc, []byte("garbage"), 0600)
	sh("", "klist", "-s")
	sh("", "klist")
}
