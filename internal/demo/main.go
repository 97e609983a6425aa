// Command demo is `make demo`: on a machine with the test packages installed
// (scripts/install-deps.sh) and as root, it starts a throwaway MIT KDC and
// sshd on loopback and shows, step by step, what sesame is for:
//
//  1. a GSSAPI login from a ticket that `sesame kinit` wrote;
//  2. a lockout with plain ssh-agent: six keys, MaxAuthTries 3, the right key
//     is the sixth, "Too many authentication failures";
//  3. the same login through sesame's agent with the key pinned to the
//     host: one key offered, zero failures in the server's log;
//  4. a server nobody pinned: at most two keys tried, and the one that
//     worked is learned;
//  5. `sesame doctor` explaining it all.
//
// Everything runs in a temporary directory that is removed at the end.
package main

import (
	"bytes"
	"fmt"
	"io"
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
		sesame, err := filepath.Abs("bin/sesame")
		if err != nil {
			p.Fatal(err)
		}
		if _, err := os.Stat(sesame); err != nil {
			p.Fatalf("%s missing: run make build first", sesame)
		}
		color := false
		if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			color = os.Getenv("NO_COLOR") == ""
		}
		run(p, os.Stdout, sesame, color)
	}()
	p.Close()
	os.Exit(code)
}

// demo is one run: where it prints, the programs it drives, the
// environment every command gets.
type demo struct {
	t      testbed.T
	out    io.Writer
	color  bool
	work   string // the temporary directory; commands run in it
	env    []string
	sesame string
}

func (d *demo) step(format string, args ...any) {
	title := fmt.Sprintf(format, args...)
	if d.color {
		fmt.Fprintf(d.out, "\n\033[1m==> %s\033[0m\n", title)
	} else {
		fmt.Fprintf(d.out, "\n==> %s\n", title)
	}
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "    "+format+"\n", args...)
}

// cmd runs a program in the work directory and shows it as a user would
// type it: display is the command line to print ("" prints name and args).
// It returns the combined output and whether it succeeded.
func (d *demo) cmd(env []string, stdin, display, name string, args ...string) (string, error) {
	if display == "" {
		display = strings.Join(append([]string{filepath.Base(name)}, args...), " ")
	}
	fmt.Fprintf(d.out, "$ %s\n", display)
	c := exec.Command(name, args...)
	c.Env = env
	c.Dir = d.work
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	c.Stdout = &out
	c.Stderr = &out
	err := c.Run()
	text := strings.ReplaceAll(out.String(), d.work+"/", "")
	text = strings.Trim(text, "\n")
	if text == "" {
		return out.String(), err
	}
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			fmt.Fprintln(d.out)
		} else {
			fmt.Fprintln(d.out, "    "+l)
		}
	}
	return out.String(), err
}

// must runs cmd and stops the demo if it fails.
func (d *demo) must(env []string, stdin, display, name string, args ...string) string {
	out, err := d.cmd(env, stdin, display, name, args...)
	if err != nil {
		d.t.Fatalf("step failed: %s: %v", filepath.Base(name), err)
	}
	return out
}

// quiet runs a preparation command without showing it.
func (d *demo) quiet(env []string, name string, args ...string) {
	c := exec.Command(name, args...)
	c.Env = env
	c.Dir = d.work
	if out, err := c.CombinedOutput(); err != nil {
		d.t.Fatalf("%s: %v: %s", filepath.Base(name), err, out)
	}
}

// hasCommand reports whether this sesame build has the subcommand.
// startAgent starts an agent in the foreground and waits for its socket.
func (d *demo) startAgent(env []string, sock, name string, args ...string) {
	c := exec.Command(name, args...)
	c.Env = env
	c.Dir = d.work
	if err := c.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Process.Signal(syscall.SIGTERM); c.Wait() })
	for i := 0; i < 200; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("no agent socket at %s", sock)
}

// run is the whole demo, printed to out, driving the sesame binary at
// sesame. The test bed's T stops it at the first failure.
func run(t testbed.T, out io.Writer, sesame string, color bool) {
	d := &demo{t: t, out: out, color: color, sesame: sesame, work: t.TempDir()}
	bins := testbed.Need(t, "ssh", "ssh-keygen", "ssh-agent", "ssh-add")
	ssh, keygen, sshAgent, sshAdd := bins[0], bins[1], bins[2], bins[3]

	d.step("Start a throwaway MIT KDC and an sshd (MaxAuthTries 3) on 127.0.0.1")
	kdc := testbed.NewKDC(t, testbed.KDCOptions{})
	sshd := testbed.NewSSHD(t, testbed.SSHDOptions{KDC: kdc, MaxAuthTries: 3})
	kdc.AddPrincipal(sshd.User, "demo-password")
	d.say("KDC %s (realm %s), sshd 127.0.0.1:%d, login user %s", kdc.Addr(), kdc.Realm, sshd.Port, sshd.User)
	d.say("(commands below also get -F /dev/null and this sshd's known_hosts, keeping your ~/.ssh out of it)")

	// A home of its own: the agent identifies servers through
	// ~/.ssh/known_hosts, and nothing of the user's is touched.
	home := filepath.Join(d.work, "home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	kh, err := os.ReadFile(sshd.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), kh, 0o600); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(d.work, "vault-passphrase")
	if err := os.WriteFile(passFile, []byte("demo vault passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.env = append(os.Environ(), kdc.Env()...)
	d.env = append(d.env,
		"HOME="+home,
		"KRB5CCNAME=FILE:"+filepath.Join(d.work, "krb5cc"),
		"SESAME_HOME="+filepath.Join(d.work, "sesame"),
		"SESAME_BACKEND=vault",
		"SESAME_PASSPHRASE_FILE="+passFile,
		"SSH_AUTH_SOCK=", "SSH_AGENT_PID=",
	)
	sshTo := func(port int, host string, opts []string, remote ...string) (string, []string) {
		args := sshd.SSHArgs(opts...)
		args[len(args)-1] = host
		for i, a := range args {
			if a == "-p" {
				args[i+1] = fmt.Sprint(port)
			}
		}
		display := "ssh"
		for _, o := range opts {
			if o != "GSSAPIAuthentication=no" {
				display += " -o " + o
			}
		}
		display += fmt.Sprintf(" -p %d %s@%s %s", port, sshd.User, host, strings.Join(remote, " "))
		return display, append(args, remote...)
	}

	d.step("1. Kerberos: a ticket, then ssh with GSSAPI: no key, no password prompt")
	kinit := []string{d.sesame, "kinit", "--password-stdin", "-f", "-r", "3d", sshd.User}
	klist := []string{d.sesame, "klist", "-f"}
	d.must(d.env, "demo-password\n", "", kinit[0], kinit[1:]...)
	d.must(d.env, "", "", klist[0], klist[1:]...)
	disp, args := sshTo(sshd.Port, "localhost", []string{"GSSAPIAuthentication=yes", "PubkeyAuthentication=no"}, "echo", "logged in with a Kerberos ticket")
	d.must(d.env, "", disp, ssh, args...)

	d.step("2. Six keys in OpenSSH's ssh-agent; the server accepts only the sixth")
	keys := make([]string, 6)
	for i := range keys {
		keys[i] = fmt.Sprintf("id_%d", i+1)
		d.quiet(d.env, keygen, "-q", "-t", "ed25519", "-N", "", "-C", fmt.Sprintf("key-%d", i+1), "-f", keys[i])
	}
	pub, err := os.ReadFile(filepath.Join(d.work, keys[5]+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	sshd.Authorize(string(pub))
	d.say("ssh-keygen made id_1 … id_6; the server's authorized_keys has id_6.pub only")
	osock := filepath.Join(d.work, "ssh-agent.sock")
	oenv := append(append([]string{}, d.env...), "SSH_AUTH_SOCK="+osock)
	d.startAgent(d.env, osock, sshAgent, "-D", "-a", osock)
	for _, k := range keys {
		d.quiet(oenv, sshAdd, "-q", k)
	}
	d.must(oenv, "", "", sshAdd, "-l")
	before := sshd.FailedPublickey()
	disp, args = sshTo(sshd.Port, "localhost", []string{"GSSAPIAuthentication=no"}, "true")
	out2, err := d.cmd(oenv, "", disp, ssh, args...)
	if err == nil || !strings.Contains(out2, "Too many authentication failures") {
		t.Fatalf("expected a lockout through ssh-agent, got err=%v", err)
	}
	d.say("=> sshd log: %d \"Failed publickey\" lines; thrown out before the right key was tried", sshd.FailedPublickey()-before)

	d.step("3. The same six keys in sesame's agent, the sixth pinned to this host")
	ssock := filepath.Join(d.work, "sesame-agent.sock")
	senv := append(append([]string{}, d.env...), "SSH_AUTH_SOCK="+ssock)
	d.startAgent(senv, ssock, d.sesame, "agent", "-D", "-a", ssock)
	d.say("sesame agent -D -a sesame-agent.sock   # usually: eval \"$(sesame agent --shared -s)\"")
	d.must(senv, "", "", d.sesame, append([]string{"add"}, keys...)...)
	d.must(senv, "", "", d.sesame, "pin", "localhost", keys[5]+".pub")
	before = sshd.FailedPublickey()
	disp, args = sshTo(sshd.Port, "localhost", []string{"GSSAPIAuthentication=no"}, "echo", "logged in with the pinned key")
	d.must(senv, "", disp, ssh, args...)
	d.say("=> sshd log: %d \"Failed publickey\" lines; the server saw only the right key", sshd.FailedPublickey()-before)

	d.step("4. A server nobody pinned: at most 2 keys are tried, and the one that works is learned")
	sshd2 := testbed.NewSSHD(t, testbed.SSHDOptions{MaxAuthTries: 3})
	kh2, err := os.ReadFile(sshd2.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(home, ".ssh", "known_hosts"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// Only its address: "localhost" is pinned above, and this is
	// another machine as far as the demo is concerned.
	for _, line := range strings.SplitAfter(string(kh2), "\n") {
		if strings.HasPrefix(line, "[127.0.0.1]:") {
			f.WriteString(line)
		}
	}
	f.Close()
	pub2, err := os.ReadFile(filepath.Join(d.work, keys[1]+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	sshd2.Authorize(string(pub2))
	d.say("a second sshd on 127.0.0.1:%d accepts id_2", sshd2.Port)
	args2 := func(remote ...string) (string, []string) {
		disp, a := sshTo(sshd2.Port, "127.0.0.1", []string{"GSSAPIAuthentication=no"}, remote...)
		for i := range a {
			if strings.HasPrefix(a[i], "UserKnownHostsFile=") {
				a[i] = "UserKnownHostsFile=" + sshd2.KnownHosts
			}
		}
		return disp, a
	}
	for i, msg := range []string{"first login", "second login"} {
		before := sshd2.FailedPublickey()
		disp, a := args2("echo", msg)
		d.must(senv, "", disp, ssh, a...)
		why := "id_1 was tried first, then id_2"
		if i == 1 {
			why = "only the learned key was offered"
		}
		d.say("=> sshd log: %d \"Failed publickey\" lines; %s", sshd2.FailedPublickey()-before, why)
	}
	d.must(senv, "", "", d.sesame, "pins")

	d.step("5. sesame doctor explains what ssh to a host would do")
	d.must(senv, "", fmt.Sprintf("sesame doctor -p %d localhost", sshd.Port), d.sesame, "doctor", "-F", "/dev/null", "-p", fmt.Sprint(sshd.Port), "localhost")

	fmt.Fprintln(d.out, "\nDone. Everything ran in a temporary directory, which is being removed.")
}
