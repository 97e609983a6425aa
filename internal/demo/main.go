// Command demo is `make demo`: on a machine with the test packages installed
// (scripts/install-deps.sh) and as root, it starts a throwaway MIT KDC and
// sshd on loopback and shows, step by step, what sesame is for:
//
//  1. a GSSAPI login from a ticket that `sesame kinit` wrote;
//  2. a lockout with plain ssh-agent: six keys, MaxAuthTries 3, the right key
//     is the sixth, "Too many authentication failures";
//  3. the same login through sesame's agent with the key pinned to the
//     host: one key offered, zero failures in the server's log.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func main() {
	p := testbed.Standalone()
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				if f, ok := r.(*testbed.Failure); ok {
					fmt.Fprintln(os.Stderr, "demo:", f.Msg)
					code = 1
					return
				}
				p.Close()
				panic(r)
			}
		}()
		code = demo(p)
	}()
	p.Close()
	os.Exit(code)
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...)
}

func show(env []string, stdin string, name string, args ...string) (string, error) {
	fmt.Printf("$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	cmd := exec.Command(name, args...)
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if l != "" {
			fmt.Println("    " + l)
		}
	}
	return out.String(), err
}

// must stops the demo at the first failed step.
func must(out string, err error) string {
	if err != nil {
		panic(&testbed.Failure{Msg: "step failed: " + err.Error()})
	}
	return out
}

func demo(p *testbed.Program) int {
	sesame, err := filepath.Abs("bin/sesame")
	if err != nil {
		p.Fatal(err)
	}
	if _, err := os.Stat(sesame); err != nil {
		p.Fatalf("%s missing: run make build first", sesame)
	}
	ssh := testbed.Path(p, "ssh")
	work := p.TempDir()

	step("Start a throwaway MIT KDC and an sshd (MaxAuthTries 3) on 127.0.0.1")
	kdc := testbed.NewKDC(p, testbed.KDCOptions{})
	sshd := testbed.NewSSHD(p, testbed.SSHDOptions{KDC: kdc, MaxAuthTries: 3})
	kdc.AddPrincipal(sshd.User, "demo-password")
	fmt.Printf("    KDC %s (realm %s), sshd 127.0.0.1:%d, login user %s\n", kdc.Addr(), kdc.Realm, sshd.Port, sshd.User)

	env := append(os.Environ(), kdc.Env()...)
	env = append(env,
		"KRB5CCNAME=FILE:"+filepath.Join(work, "krb5cc"),
		"SESAME_HOME="+filepath.Join(work, "sesame"),
		"SSH_AUTH_SOCK=",
	)

	step("1. Kerberos: sesame kinit, then ssh with GSSAPI — no key, no password prompt")
	must(show(env, "demo-password\n", sesame, "kinit", "--password-stdin", "-f", "-r", "3d", sshd.User))
	must(show(env, "", sesame, "klist", "-f"))
	must(show(env, "", ssh, append(sshd.SSHArgs("GSSAPIAuthentication=yes", "PubkeyAuthentication=no"), "echo", "logged in with a Kerberos ticket")...))

	step("2. Six keys in plain ssh-agent; the server accepts only the sixth")
	keys := make([]string, 6)
	for i := range keys {
		keys[i] = filepath.Join(work, fmt.Sprintf("id_%d", i+1))
		must(runQuiet(env, testbed.Path(p, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", fmt.Sprintf("key-%d", i+1), "-f", keys[i]))
	}
	pub, err := os.ReadFile(keys[5] + ".pub")
	if err != nil {
		p.Fatal(err)
	}
	sshd.Authorize(string(pub))
	osock := filepath.Join(work, "ssh-agent.sock")
	oagent := exec.Command(testbed.Path(p, "ssh-agent"), "-D", "-a", osock)
	oagent.Env = env
	if err := oagent.Start(); err != nil {
		p.Fatal(err)
	}
	p.Cleanup(func() { oagent.Process.Kill(); oagent.Wait() })
	waitSocket(p, osock)
	oenv := append(append([]string{}, env...), "SSH_AUTH_SOCK="+osock)
	for _, k := range keys {
		must(runQuiet(oenv, testbed.Path(p, "ssh-add"), "-q", k))
	}
	must(show(oenv, "", testbed.Path(p, "ssh-add"), "-l"))
	before := sshd.FailedPublickey()
	out, err := show(oenv, "", ssh, append(sshd.SSHArgs("GSSAPIAuthentication=no"), "true")...)
	if err == nil || !strings.Contains(out, "Too many authentication failures") {
		p.Fatalf("expected a lockout through ssh-agent, got err=%v", err)
	}
	fmt.Printf("    sshd log: %d \"Failed publickey\" lines — the user was thrown out before the right key\n", sshd.FailedPublickey()-before)

	step("3. The same six keys in sesame's agent, the sixth pinned to this host")
	ssock := filepath.Join(work, "sesame-agent.sock")
	sagent := exec.Command(sesame, "agent", "-D", "-a", ssock)
	passFile := filepath.Join(work, "vault-pass")
	os.WriteFile(passFile, []byte("demo vault passphrase\n"), 0o600)
	senv := append(append([]string{}, env...), "SSH_AUTH_SOCK="+ssock, "SESAME_PASSPHRASE_FILE="+passFile, "SESAME_BACKEND=vault")
	sagent.Env = senv
	if err := sagent.Start(); err != nil {
		p.Fatal(err)
	}
	p.Cleanup(func() { sagent.Process.Signal(syscall.SIGTERM); sagent.Wait() })
	waitSocket(p, ssock)
	must(show(senv, "", sesame, append([]string{"add"}, keyFiles(keys)...)...))
	must(show(senv, "", sesame, "pin", "localhost", keys[5]+".pub"))
	must(show(senv, "", sesame, "pins"))
	before = sshd.FailedPublickey()
	must(show(senv, "", ssh, append(sshd.SSHArgs("GSSAPIAuthentication=no"), "echo", "logged in with the pinned key")...))
	fmt.Printf("    sshd log: %d \"Failed publickey\" lines — only the right key was offered\n", sshd.FailedPublickey()-before)
	fmt.Println("\nDone. Everything ran in a temporary directory and is being removed.")
	return 0
}

func keyFiles(keys []string) []string { return append([]string{}, keys...) }

func runQuiet(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", filepath.Base(name), err, out)
	}
	return string(out), nil
}

func waitSocket(p *testbed.Program, path string) {
	for i := 0; i < 100; i++ {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Fatalf("no agent socket at %s", path)
}
