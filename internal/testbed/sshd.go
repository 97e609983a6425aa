package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// SSHD is a running OpenSSH server on 127.0.0.1 with its own config, host
// key, authorized_keys file and log. Logins are as the current user (root
// in CI), so nothing under /etc or any home directory is touched.
type SSHD struct {
	t              T
	Dir            string
	Port           int
	Config         string
	Log            string
	HostKey        string // private host key file; HostKey+".pub" is the public half
	AuthorizedKeys string // the file sshd reads keys from for every user
	KnownHosts     string // a known_hosts file that trusts this server as "localhost"
	User           string
	cmd            *exec.Cmd
}

// SSHDOptions tune the server.
type SSHDOptions struct {
	KDC *KDC // enables GSSAPI with a host/localhost keytab from this KDC
	// Keytab and KrbEnv enable GSSAPI with a host/localhost keytab from
	// another KDC (Heimdal, AD); KrbEnv points at its krb5.conf.
	Keytab       string
	KrbEnv       []string
	MaxAuthTries int    // default 6
	Extra        string // appended to sshd_config
	// PerUserKeys also reads AuthorizedKeys+"."+user for each user (see
	// AuthorizeUser), through an AuthorizedKeysCommand run as root, so
	// that other accounts need no access to the test's directory.
	PerUserKeys bool
	// KbdInteractive offers keyboard-interactive, as login nodes asking
	// for a one-time code do (without PAM it cannot succeed).
	KbdInteractive bool
	// RSAHostKeyExponent, when set (decimal), gives the server a 2048-bit
	// RSA host key with this public exponent instead of an ed25519 one,
	// made by openssl (OpenSSH takes any exponent; x/crypto refuses those
	// above 2^24).
	RSAHostKeyExponent string
}

// NewSSHD starts sshd and stops it when the test ends.
func NewSSHD(t T, opt SSHDOptions) *SSHD {
	t.Helper()
	NeedRoot(t)
	paths := Need(t, "sshd", "ssh-keygen", "ssh")
	if opt.MaxAuthTries == 0 {
		opt.MaxAuthTries = 6
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd: %v", err)
	}
	dir := t.TempDir()
	s := &SSHD{
		t: t, Dir: dir, Port: FreePort(t),
		Config: filepath.Join(dir, "sshd_config"), Log: filepath.Join(dir, "sshd.log"),
		HostKey: filepath.Join(dir, "host_ed25519"), AuthorizedKeys: filepath.Join(dir, "authorized_keys"),
		KnownHosts: filepath.Join(dir, "known_hosts"), User: currentUser(),
	}
	if opt.RSAHostKeyExponent == "" {
		run(t, nil, "", paths[1], "-q", "-t", "ed25519", "-N", "", "-f", s.HostKey)
	} else {
		// sshd reads a PEM private key; ssh-keygen -y gives the public half.
		s.HostKey = filepath.Join(dir, "host_rsa")
		run(t, nil, "", Path(t, "openssl"), "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
			"-pkeyopt", "rsa_keygen_pubexp:"+opt.RSAHostKeyExponent, "-out", s.HostKey)
		os.Chmod(s.HostKey, 0o600)
		pub := run(t, nil, "", paths[1], "-y", "-f", s.HostKey)
		if err := os.WriteFile(s.HostKey+".pub", []byte(pub), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(s.AuthorizedKeys, nil, 0o600)
	pub, err := os.ReadFile(s.HostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(pub))
	kh := fmt.Sprintf("[localhost]:%d %s %s\n[127.0.0.1]:%d %s %s\n", s.Port, fields[0], fields[1], s.Port, fields[0], fields[1])
	os.WriteFile(s.KnownHosts, []byte(kh), 0o600)

	gss := "GSSAPIAuthentication no"
	var env []string
	if opt.KDC != nil {
		opt.KDC.AddPrincipal("host/localhost", "")
		kt := opt.KDC.Keytab("host/localhost")
		gss = "GSSAPIAuthentication yes\nGSSAPIStrictAcceptorCheck no\nGSSAPICleanupCredentials yes"
		env = append(opt.KDC.Env(), "KRB5_KTNAME=FILE:"+kt)
	} else if opt.Keytab != "" {
		gss = "GSSAPIAuthentication yes\nGSSAPIStrictAcceptorCheck no\nGSSAPICleanupCredentials yes"
		env = append(append([]string(nil), opt.KrbEnv...), "KRB5_KTNAME=FILE:"+opt.Keytab)
	}
	kbd := "no"
	if opt.KbdInteractive {
		kbd = "yes"
	}
	extra := opt.Extra
	if opt.PerUserKeys {
		extra = fmt.Sprintf("AuthorizedKeysCommand %s %s.%%u\nAuthorizedKeysCommandUser root\n", Path(t, "cat"), s.AuthorizedKeys) + extra
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication %s
PubkeyAuthentication yes
AuthorizedKeysFile %s
MaxAuthTries %d
LogLevel VERBOSE
AllowAgentForwarding yes
%s
%s
`, s.Port, s.HostKey, kbd, s.AuthorizedKeys, opt.MaxAuthTries, gss, extra)
	if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paths[0], "-D", "-f", s.Config, "-E", s.Log)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	s.cmd = cmd
	t.Cleanup(s.Stop)
	if err := WaitTCP(fmt.Sprintf("127.0.0.1:%d", s.Port), 10*time.Second); err != nil {
		b, _ := os.ReadFile(s.Log)
		t.Fatalf("sshd did not come up: %v\n%s", err, b)
	}
	return s
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" && os.Getuid() != 0 {
		return u
	}
	if os.Getuid() == 0 {
		return "root"
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return "root"
	}
	return strings.TrimSpace(string(out))
}

// Stop kills the server (idempotent).
func (s *SSHD) Stop() {
	stopGroup(s.cmd)
	s.cmd = nil
}

// Authorize appends a public key line (the content of a .pub file).
func (s *SSHD) Authorize(pubLine string) {
	s.t.Helper()
	f, err := os.OpenFile(s.AuthorizedKeys, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, strings.TrimSpace(pubLine))
}

// AuthorizeUser appends a public key line for one user only (the server
// must have been started with PerUserKeys).
func (s *SSHD) AuthorizeUser(user, pubLine string) {
	s.t.Helper()
	f, err := os.OpenFile(s.AuthorizedKeys+"."+user, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, strings.TrimSpace(pubLine))
}

// Accepted counts the logins of user the server accepted.
func (s *SSHD) Accepted(user string) int {
	return CountLines(s.t, s.Log, "Accepted publickey for "+user+" ")
}

// FailedPublickey counts "Failed publickey" lines in the log: each is a key
// offered to this server that it rejected.
func (s *SSHD) FailedPublickey() int { return CountLines(s.t, s.Log, "Failed publickey") }

// SSHArgs are the client arguments that reach this server as localhost with
// only the given options, isolated from the user's ~/.ssh/config. Append the
// remote command after them.
func (s *SSHD) SSHArgs(opts ...string) []string {
	args := []string{"-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + s.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10",
		"-p", fmt.Sprint(s.Port),
		"-l", s.User,
	}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	return append(args, "localhost")
}
