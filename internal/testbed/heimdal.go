package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// HeimdalRealm is the realm the Heimdal KDC serves.
const HeimdalRealm = "HEIMDAL.TEST"

// Heimdal is a running Heimdal KDC. Heimdal's Debian packages conflict
// with MIT's, so scripts/fetch-heimdal.sh unpacks them under a cache
// directory and the KDC and kadmin run from there with LD_LIBRARY_PATH;
// nothing is installed system-wide.
type Heimdal struct {
	t       T
	Dir     string
	Port    int
	Realm   string
	Conf    string // krb5.conf for clients (KRB5_CONFIG)
	KDCConf string // the KDC's own configuration
	Log     string // the KDC's log: one line per request, with its options
	root    string
	cmd     *exec.Cmd
}

// HeimdalRoot is where scripts/fetch-heimdal.sh unpacked Heimdal:
// $SESAME_HEIMDAL_ROOT, else the user cache directory.
func HeimdalRoot(t T) string {
	t.Helper()
	root := os.Getenv("SESAME_HEIMDAL_ROOT")
	if root == "" {
		if c, err := os.UserCacheDir(); err == nil {
			root = filepath.Join(c, "sesame-testbed", "heimdal")
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/lib/heimdal-servers/kdc")); err != nil {
		Missing(t, "Heimdal KDC not unpacked (run scripts/fetch-heimdal.sh)")
	}
	return root
}

// NewHeimdal creates a Heimdal realm with an sqlite database under a temp
// dir, starts its KDC on a free port, and stops it when the test ends.
func NewHeimdal(t T) *Heimdal {
	t.Helper()
	root := HeimdalRoot(t)
	dir := t.TempDir()
	h := &Heimdal{t: t, Dir: dir, Port: FreePort(t), Realm: HeimdalRealm, root: root,
		Conf: filepath.Join(dir, "krb5.conf"), KDCConf: filepath.Join(dir, "kdc.conf"), Log: filepath.Join(dir, "kdc.log")}
	kdcconf := fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
[realms]
	%[1]s = {
		kdc = 127.0.0.1:%[2]d
	}
[kdc]
	database = {
		dbname = sqlite:%[3]s/heimdal.db
		realm = %[1]s
		mkey_file = %[3]s/m-key
		log_file = %[3]s/iprop.log
	}
	enable-pkinit = false
[kadmin]
	default_keys = aes256-cts-hmac-sha1-96:pw-salt aes128-cts-hmac-sha1-96:pw-salt arcfour-hmac-md5:pw-salt
[logging]
	kdc = FILE:%[4]s
`, h.Realm, h.Port, dir, h.Log)
	writeFile(t, h.KDCConf, kdcconf)
	writeFile(t, h.Conf, ClientKrb5Conf(h.Realm, h.Addr(), ""))
	run(t, h.env(), "", filepath.Join(root, "usr/sbin/kstash"), "--random-key", "--key-file="+filepath.Join(dir, "m-key"))
	h.Kadmin("init", "--realm-max-ticket-life=10h", "--realm-max-renewable-life=7d", h.Realm)
	h.Start()
	t.Cleanup(h.Stop)
	return h
}

func (h *Heimdal) env() []string {
	// The libraries sit in usr/lib/<multiarch triplet>.
	libs, _ := filepath.Glob(filepath.Join(h.root, "usr/lib/*-linux-gnu*"))
	return []string{"KRB5_CONFIG=" + h.KDCConf, "LD_LIBRARY_PATH=" + strings.Join(libs, ":")}
}

// Env points clients (MIT tools, sesame) at this realm.
func (h *Heimdal) Env() []string { return []string{"KRB5_CONFIG=" + h.Conf} }

// Addr is host:port of the KDC.
func (h *Heimdal) Addr() string { return fmt.Sprintf("127.0.0.1:%d", h.Port) }

// Kadmin runs one local kadmin command and returns its output.
func (h *Heimdal) Kadmin(args ...string) string {
	h.t.Helper()
	return run(h.t, h.env(), "", filepath.Join(h.root, "usr/bin/kadmin.heimdal"), append([]string{"-c", h.KDCConf, "-l"}, args...)...)
}

// AddPrincipal creates name with password (a random key when empty),
// renewable up to the realm maximum, pre-authentication required.
func (h *Heimdal) AddPrincipal(name, password string) {
	h.t.Helper()
	args := []string{"add", "--max-ticket-life=10h", "--max-renewable-life=7d", "--expiration-time=never",
		"--pw-expiration-time=never", "--attributes=requires-pre-auth", "--policy=default"}
	if password == "" {
		args = append(args, "--random-key")
	} else {
		args = append(args, "--password="+password)
	}
	h.Kadmin(append(args, name)...)
}

// Keytab extracts the keys of princ into a new keytab and returns its path.
func (h *Heimdal) Keytab(princ string) string {
	h.t.Helper()
	kt := filepath.Join(h.Dir, fmt.Sprintf("kt-%d.keytab", time.Now().UnixNano()))
	h.Kadmin("ext_keytab", "-k", kt, princ)
	return kt
}

// LogCount counts KDC log lines containing substr.
func (h *Heimdal) LogCount(substr string) int {
	h.t.Helper()
	return CountLines(h.t, h.Log, substr)
}

// Start runs the KDC and waits until it answers.
func (h *Heimdal) Start() {
	h.t.Helper()
	h.cmd = startDaemon(h.t, "heimdal kdc", filepath.Join(h.Dir, "kdc.stderr"), h.env(), h.Addr(), 10*time.Second,
		filepath.Join(h.root, "usr/lib/heimdal-servers/kdc"), "-c", h.KDCConf, "--addresses=127.0.0.1", fmt.Sprintf("--ports=%d", h.Port))
}

// startDaemon runs a server in its own process group with its output
// in logfile, and waits until it accepts TCP connections on addr.
func startDaemon(t T, what, logfile string, env []string, addr string, wait time.Duration, path string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := os.OpenFile(logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	if err := WaitTCP(addr, wait); err != nil {
		stopGroup(cmd)
		b, _ := os.ReadFile(logfile)
		t.Fatalf("%s did not come up: %v\n%s", what, err, b)
	}
	return cmd
}

// Stop ends the KDC and its worker processes (idempotent).
func (h *Heimdal) Stop() {
	stopGroup(h.cmd)
	h.cmd = nil
}

// stopGroup sends SIGTERM to the process group of a server started with
// daemonAttr, waits up to 5 s, then kills the group.
func stopGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	pid := cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
	// Workers that outlive their parent would keep writing into a
	// directory the test is about to remove.
	syscall.Kill(-pid, syscall.SIGKILL)
}

// ClientKrb5Conf is a krb5.conf for clients of one realm whose KDC is at
// addr, with the test bed's settings (no DNS, TCP, no reverse lookups);
// extra is appended to [libdefaults].
func ClientKrb5Conf(realm, addr, extra string) string {
	return fmt.Sprintf(`[libdefaults]
	default_realm = %[1]s
	dns_lookup_kdc = false
	dns_lookup_realm = false
	dns_canonicalize_hostname = false
	rdns = false
	udp_preference_limit = 1
	ignore_acceptor_hostname = true
	forwardable = true
%[3]s
[realms]
	%[1]s = {
		kdc = %[2]s
	}

[domain_realm]
	localhost = %[1]s
	127.0.0.1 = %[1]s
`, realm, addr, strings.TrimSpace(extra))
}

func writeFile(t T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
