package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Realm is the realm every test KDC serves.
const Realm = "SESAME.TEST"

// KDC is a running MIT krb5kdc with its own database, config and log.
type KDC struct {
	t       T
	Dir     string
	Port    int
	Realm   string
	Conf    string // krb5.conf for clients (KRB5_CONFIG)
	KDCConf string // kdc.conf (KRB5_KDC_PROFILE)
	Log     string // the KDC's log file
	cmd     *exec.Cmd
	kdcPath string
	kadmin  string
}

// KDCOptions tune the realm. Zero values pick test-friendly defaults.
type KDCOptions struct {
	MaxLife         string // realm max_life, e.g. "10h"
	MaxRenewable    string // realm max_renewable_life, e.g. "7d"
	ClockSkew       string // realm clockskew in seconds, e.g. "300"
	ExtraKrb5Client string // appended to [libdefaults] of the client krb5.conf
	ExtraKDCConf    string // appended to kdc.conf (whole sections, e.g. [otp])
}

// NewKDC creates a realm, starts krb5kdc on a free port, and stops it when
// the test ends.
func NewKDC(t T, opt KDCOptions) *KDC {
	t.Helper()
	paths := Need(t, "krb5kdc", "kdb5_util", "kadmin.local")
	if opt.MaxLife == "" {
		opt.MaxLife = "10h"
	}
	if opt.MaxRenewable == "" {
		opt.MaxRenewable = "7d"
	}
	if opt.ClockSkew == "" {
		opt.ClockSkew = "300"
	}
	dir := t.TempDir()
	k := &KDC{
		t: t, Dir: dir, Port: FreePort(t), Realm: Realm,
		Conf: filepath.Join(dir, "krb5.conf"), KDCConf: filepath.Join(dir, "kdc.conf"),
		Log: filepath.Join(dir, "kdc.log"), kdcPath: paths[0], kadmin: paths[2],
	}
	krb5conf := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	dns_canonicalize_hostname = false
	rdns = false
	udp_preference_limit = 1
	ignore_acceptor_hostname = true
	forwardable = true
%[4]s
[realms]
	%[1]s = {
		kdc = 127.0.0.1:%[2]d
		admin_server = 127.0.0.1:%[3]d
	}

[domain_realm]
	localhost = %[1]s
	127.0.0.1 = %[1]s
`, k.Realm, k.Port, FreePort(t), opt.ExtraKrb5Client)
	kdcconf := fmt.Sprintf(`[kdcdefaults]
	kdc_ports = %[2]d
	kdc_tcp_ports = %[2]d

[realms]
	%[1]s = {
		database_name = %[3]s/principal
		key_stash_file = %[3]s/stash
		acl_file = %[3]s/kadm5.acl
		max_life = %[4]s
		max_renewable_life = %[5]s
		clockskew = %[6]s
		supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
	}

[logging]
	kdc = FILE:%[7]s
`, k.Realm, k.Port, dir, opt.MaxLife, opt.MaxRenewable, opt.ClockSkew, k.Log) + opt.ExtraKDCConf
	if err := os.WriteFile(k.Conf, []byte(krb5conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.KDCConf, []byte(kdcconf), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "kadm5.acl"), nil, 0o644)
	run(t, k.Env(), "", paths[1], "create", "-s", "-r", k.Realm, "-P", "master-password-for-tests")
	// krbtgt's own max renewable life caps every TGT's renew-till.
	k.Kadmin(fmt.Sprintf("modprinc -maxlife %s -maxrenewlife %s krbtgt/%s@%s", opt.MaxLife, opt.MaxRenewable, k.Realm, k.Realm))
	k.Start()
	t.Cleanup(k.Stop)
	return k
}

// Env is the environment that points MIT tools and sesame at this realm.
func (k *KDC) Env() []string {
	return []string{
		"KRB5_CONFIG=" + k.Conf,
		"KRB5_KDC_PROFILE=" + k.KDCConf,
	}
}

// Kadmin runs one kadmin.local query and returns its output.
func (k *KDC) Kadmin(query string) string {
	k.t.Helper()
	return run(k.t, k.Env(), "", k.kadmin, "-r", k.Realm, "-q", query)
}

// AddPrincipal creates name with password (or a random key when password
// is empty), allowing renewable tickets up to the realm maximum.
func (k *KDC) AddPrincipal(name, password string) {
	k.t.Helper()
	if password == "" {
		k.Kadmin("addprinc -randkey " + name)
	} else {
		k.Kadmin(fmt.Sprintf("addprinc -pw %s %s", password, name))
	}
}

// Keytab writes keys for the principals into a new keytab file and returns
// its path. Note that ktadd re-randomises keys of randkey principals.
func (k *KDC) Keytab(princs ...string) string {
	k.t.Helper()
	kt := filepath.Join(k.Dir, fmt.Sprintf("kt-%d.keytab", time.Now().UnixNano()))
	k.Kadmin(fmt.Sprintf("ktadd -k %s %s", kt, strings.Join(princs, " ")))
	return kt
}

// Start runs krb5kdc in the foreground (-n) and waits until it answers.
func (k *KDC) Start() {
	k.t.Helper()
	cmd := exec.Command(k.kdcPath, "-n", "-r", k.Realm)
	cmd.Env = append(os.Environ(), k.Env()...)
	out, _ := os.OpenFile(filepath.Join(k.Dir, "kdc.stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		k.t.Fatalf("start krb5kdc: %v", err)
	}
	k.cmd = cmd
	if err := WaitTCP(fmt.Sprintf("127.0.0.1:%d", k.Port), 10*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(k.Dir, "kdc.stderr"))
		k.t.Fatalf("krb5kdc did not come up: %v\n%s", err, b)
	}
}

// Stop kills the KDC (idempotent); Start brings it back with the same
// database, which is how outage tests work.
func (k *KDC) Stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	k.cmd.Process.Signal(syscall.SIGCONT) // a paused KDC must see the SIGTERM
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
	k.cmd = nil
}

// Addr is host:port of the KDC.
func (k *KDC) Addr() string { return fmt.Sprintf("127.0.0.1:%d", k.Port) }

// LogCount counts KDC log lines containing substr, e.g.
// "PREAUTH_FAILED" for failed pre-authentications.
func (k *KDC) LogCount(substr string) int {
	k.t.Helper()
	return CountLines(k.t, k.Log, substr)
}

// FailedAttempts is the KDC's count of failed authentications of princ
// ("Failed password attempts" of kadmin getprinc), which a lockout policy
// (kadmin addpol -maxfailure) compares against its limit.
func (k *KDC) FailedAttempts(princ string) int {
	k.t.Helper()
	out := k.Kadmin("getprinc " + princ)
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Failed password attempts:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				k.t.Fatalf("getprinc %s: bad failure count %q", princ, v)
			}
			return n
		}
	}
	k.t.Fatalf("getprinc %s shows no failure count:\n%s", princ, out)
	return 0
}

// Pause stops the KDC process (SIGSTOP) so that requests hang until
// Resume: a KDC that is slow to answer.
func (k *KDC) Pause() {
	if k.cmd != nil && k.cmd.Process != nil {
		k.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume lets a paused KDC go on (SIGCONT).
func (k *KDC) Resume() {
	if k.cmd != nil && k.cmd.Process != nil {
		k.cmd.Process.Signal(syscall.SIGCONT)
	}
}
