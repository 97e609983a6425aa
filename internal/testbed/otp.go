package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// The two-factor realm: an MIT KDC whose otp plugin (krb5-otp) asks a
// private FreeRADIUS for the token values, as FreeIPA's KDC asks its
// ipa-otpd. The accounts:
const (
	// OTPUser has only a token (addprinc -nokey), fixed at OTPToken.
	OTPUser  = "alice"
	OTPToken = "123456"
	// OTPPasswordUser has a password (OTPPassword) and a token
	// (OTPPasswordUserToken): under FAST the KDC offers both, and
	// clients take OTP.
	OTPPasswordUser      = "carol"
	OTPPassword          = "carol-password-1"
	OTPPasswordUserToken = "654321"
	// PasswordOnlyUser has a password (OTPPassword) and no token.
	PasswordOnlyUser = "dave"
	// OTPSilentUser has a token whose RADIUS server never answers.
	OTPSilentUser = "silent"
	// TOTPUser's codes come from TOTPCode (RFC 6238, oathtool).
	TOTPUser = "tina"
	// TOTPSecret is TOTPUser's base32 secret.
	TOTPSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	// OTPHost is the host principal whose keytab makes armor caches.
	OTPHost = "host/localhost"
)

// OTPRealm is a running two-factor realm.
type OTPRealm struct {
	*KDC
	Radius *Radius
	// HostKeytab holds the keys of OTPHost.
	HostKeytab string
	// Armor is a cache with OTPHost's TGT, made by MIT kinit -k, for
	// kinit -T.
	Armor string
}

// OTPAccount is another token-only account for NewOTPRealm, e.g. one
// named after the sshd test user.
type OTPAccount struct{ Name, Token string }

// NewOTPRealm starts FreeRADIUS and an MIT KDC with the otp plugin
// pointing at it, and creates the accounts above and extra. opt tunes
// the KDC (ExtraKDCConf is taken).
func NewOTPRealm(t T, opt KDCOptions, extra ...OTPAccount) *OTPRealm {
	t.Helper()
	Need(t, "kinit", "oathtool")
	if _, err := os.Stat(otpPlugin()); err != nil {
		Missing(t, "the MIT KDC's otp plugin is not installed (package krb5-otp)")
	}
	rad := NewRadius(t, extra...)
	opt.ExtraKDCConf = fmt.Sprintf(`
[otp]
	DEFAULT = {
		server = 127.0.0.1:%d
		secret = %s
		timeout = 3
		retries = 1
		strip_realm = true
	}
`, rad.Port, rad.SecretFile)
	k := NewKDC(t, opt)
	r := &OTPRealm{KDC: k, Radius: rad}
	otp := func(name string) {
		// The JSON goes as one argument: kadmin's -q would strip its
		// double quotes, and the KDC could not decode it.
		run(t, k.Env(), "", k.kadmin, "-r", k.Realm, "set_string", name, "otp", `[{"indicators": ["otp"]}]`)
	}
	users := []string{OTPUser, OTPSilentUser, TOTPUser}
	for _, a := range extra {
		users = append(users, a.Name)
	}
	for _, u := range users {
		k.Kadmin("addprinc -nokey +requires_preauth " + u)
		otp(u)
	}
	k.Kadmin(fmt.Sprintf("addprinc -pw %s +requires_preauth %s", OTPPassword, OTPPasswordUser))
	otp(OTPPasswordUser)
	k.Kadmin(fmt.Sprintf("addprinc -pw %s +requires_preauth %s", OTPPassword, PasswordOnlyUser))
	k.AddPrincipal(OTPHost, "")
	r.HostKeytab = k.Keytab(OTPHost)
	r.Armor = filepath.Join(k.Dir, "armor.cc")
	run(t, k.Env(), "", Path(t, "kinit"), "-k", "-t", r.HostKeytab, "-c", "FILE:"+r.Armor, OTPHost)
	return r
}

// otpPlugin is where Debian's krb5-otp puts the KDC's otp module.
func otpPlugin() string {
	if m, _ := filepath.Glob("/usr/lib/*/krb5/plugins/preauth/otp.so"); len(m) > 0 {
		return m[0]
	}
	return "/usr/lib/x86_64-linux-gnu/krb5/plugins/preauth/otp.so"
}

// TOTPCode is TOTPUser's current code, from oathtool.
func TOTPCode(t T) string {
	t.Helper()
	return strings.TrimSpace(run(t, nil, "", Path(t, "oathtool"), "--totp", "-b", TOTPSecret))
}

// Radius is a private FreeRADIUS (freeradius -X) on a free loopback
// port, whose debug output goes to Log.
type Radius struct {
	t          T
	Dir        string
	Port       int
	SecretFile string // first line: the shared secret with the KDC
	Log        string
	cmd        *exec.Cmd
}

// NewRadius starts FreeRADIUS with the users of the two-factor realm and
// stops it when the test ends. The configuration is written from
// scratch (the stock one enables eap, which needs certificates Debian
// does not make).
func NewRadius(t T, extra ...OTPAccount) *Radius {
	t.Helper()
	bin := Path(t, "freeradius")
	if _, err := os.Stat("/usr/share/freeradius/dictionary"); err != nil {
		Missing(t, "FreeRADIUS dictionaries missing (package freeradius-common)")
	}
	dir := t.TempDir()
	r := &Radius{t: t, Dir: dir, Port: FreePort(t), SecretFile: filepath.Join(dir, "kdc-secret"), Log: filepath.Join(dir, "radius.log")}
	for _, d := range []string{"log", "run"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	secret := "radius-secret-for-tests"
	users := fmt.Sprintf("%s\tCleartext-Password := %q\n%s\tCleartext-Password := %q\n%s\tTOTP-Secret := %q\n",
		OTPUser, OTPToken, OTPPasswordUser, OTPPasswordUserToken, TOTPUser, TOTPSecret)
	for _, a := range extra {
		users += fmt.Sprintf("%s\tCleartext-Password := %q\n", a.Name, a.Token)
	}
	files := map[string]string{
		"kdc-secret":   secret + "\n",
		"dictionary":   "$INCLUDE /usr/share/freeradius/dictionary\n",
		"users":        users,
		"radiusd.conf": fmt.Sprintf(radiusConf, dir, r.Port, secret, OTPSilentUser),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-X", "-d", dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start freeradius: %v", err)
	}
	r.cmd = cmd
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(r.Log)
		if strings.Contains(string(b), "Ready to process requests") {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("freeradius did not come up:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// Stop ends FreeRADIUS (idempotent).
func (r *Radius) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

var radiusRequest = regexp.MustCompile(`\((\d+)\) Received Access-Request Id (\d+) [^\n]*\n(?:\(\d+\)\s+[^\n]*\n)*?\(\d+\)\s+User-Name = "([^"]*)"`)

// Requests counts the Access-Requests FreeRADIUS received for user, as
// its -X log shows them ("Received Access-Request", then the
// attributes). A retransmission of the same packet counts too.
func (r *Radius) Requests(user string) int {
	r.t.Helper()
	b, err := os.ReadFile(r.Log)
	if err != nil {
		r.t.Fatalf("read the radius log: %v", err)
	}
	n := 0
	for _, m := range radiusRequest.FindAllStringSubmatch(string(b), -1) {
		if m[3] == user {
			n++
		}
	}
	return n
}

// radiusConf is a minimal radiusd.conf: %[1]s the directory, %[2]d the
// port, %[3]s the KDC's secret, %[4]s the user that gets no answer.
// Users with a TOTP-Secret (users file) are checked by rlm_totp, the
// others by PAP against their Cleartext-Password.
const radiusConf = `prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = %[1]s/log
raddbdir = %[1]s
radacctdir = %[1]s/log
name = freeradius
confdir = ${raddbdir}
modconfdir = ${confdir}
run_dir = %[1]s/run
db_dir = %[1]s
libdir = /usr/lib/freeradius
pidfile = ${run_dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
	destination = stderr
	auth = yes
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 1
	status_server = no
}
thread pool {
	start_servers = 1
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 2
}
client kdc {
	ipaddr = 127.0.0.1
	secret = %[3]s
	require_message_authenticator = no
}
modules {
	always handled {
		rcode = handled
	}
	pap {
	}
	files {
		filename = ${confdir}/users
	}
	totp {
	}
	expr {
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = %[2]d
	}
	authorize {
		if (&User-Name == "%[4]s") {
			update control {
				&Response-Packet-Type := Do-Not-Respond
			}
			handled
		}
		files
		if (&control:TOTP-Secret) {
			update request {
				&TOTP-Password := &User-Password
			}
			update control {
				&Auth-Type := totp
			}
		}
		else {
			pap
		}
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
		Auth-Type totp {
			totp
		}
	}
}
`
