package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ADRealm, ADDomain and ADDNSDomain name the Samba AD domain.
const (
	ADRealm     = "SAMBA.TEST"
	ADDomain    = "SAMBA"
	ADDNSDomain = "samba.test"
	// ADPassword is the password of every user of the AD domain.
	ADPassword = "Sesame-AD-pw-1"
	// ADLockoutThreshold is the domain's account lockout threshold.
	ADLockoutThreshold = 3
)

// The users of the AD domain's template.
const (
	ADUser = "alice"
	// ADAlias is another spelling of ADUser: AD matches account names
	// without regard to case and, asked to canonicalize, names the
	// account as stored.
	ADAlias      = "ALICE"
	ADUPNUser    = "carol" // sAMAccountName whose UPN is ADUPN
	ADUPN        = "carol.smith@corp.example"
	ADMustChange = "mallory" // must change the password at next login
	ADRC4User    = "rc4user" // msDS-SupportedEncryptionTypes = RC4 only
	ADLockUser   = "lockme"  // for lockout tests
	// ADHostAccount holds the SPN host/localhost (Keytab("host/localhost")).
	ADHostAccount = "sshhost"
)

// ADDC is a running Samba Active Directory domain controller whose KDC
// listens on 127.0.0.1 on a free port. Provisioning takes about ten
// seconds, so a provisioned domain is kept as a template under the user
// cache directory and copied for each test; only smb.conf names paths.
type ADDC struct {
	t       T
	Dir     string
	Port    int
	Realm   string
	Conf    string // krb5.conf for clients (KRB5_CONFIG)
	SMBConf string
	cmd     *exec.Cmd
	samba   string
	tool    string
}

// NewADDC copies the domain template (provisioning it on first use),
// starts Samba with only its KDC service, and stops it when the test ends.
func NewADDC(t T) *ADDC {
	t.Helper()
	paths := Need(t, "samba", "samba-tool")
	if os.Getuid() != 0 {
		Missing(t, "samba must run as root")
	}
	tpl := adTemplate(t, paths[1])
	dir := filepath.Join(t.TempDir(), "dc")
	run(t, nil, "", "cp", "-a", tpl, dir)
	a := &ADDC{t: t, Dir: dir, Port: FreePort(t), Realm: ADRealm, samba: paths[0], tool: paths[1],
		Conf: filepath.Join(dir, "krb5.conf"), SMBConf: filepath.Join(dir, "etc", "smb.conf")}
	b, err := os.ReadFile(a.SMBConf)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(b), tpl, dir)
	conf = strings.Replace(conf, "[global]\n", fmt.Sprintf("[global]\n\tkrb5 port = %d\n\tkpasswd port = %d\n", a.Port, FreePort(t)), 1)
	writeFile(t, a.SMBConf, conf)
	writeFile(t, a.Conf, ClientKrb5Conf(a.Realm, a.Addr(), ""))
	a.Start()
	t.Cleanup(a.Stop)
	return a
}

// adTemplate returns the provisioned template directory, creating it
// once per Samba version (provisioned aside, then renamed into place).
func adTemplate(t T, tool string) string {
	t.Helper()
	ver := strings.TrimSpace(run(t, nil, "", tool, "--version"))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "sesame-testbed")
	tpl := filepath.Join(base, "samba-"+regexp.MustCompile(`[^A-Za-z0-9.+-]`).ReplaceAllString(ver, "_")+"-v2")
	if _, err := os.Stat(filepath.Join(tpl, "etc", "smb.conf")); err == nil {
		return tpl
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(base, "samba-provision-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	run(t, nil, "", tool, "domain", "provision", "--realm="+ADRealm, "--domain="+ADDomain,
		"--server-role=dc", "--dns-backend=NONE", "--use-rfc2307", "--adminpass="+ADPassword,
		"--targetdir="+tmp, "--option=interfaces=lo", "--option=bind interfaces only=yes")
	smb := filepath.Join(tmp, "etc", "smb.conf")
	b, err := os.ReadFile(smb)
	if err != nil {
		t.Fatal(err)
	}
	conf := regexp.MustCompile(`(?m)^\s*server services = .*$`).ReplaceAllString(string(b),
		"\tserver services = kdc\n\tprefork children = 1\n\tpid directory = "+tmp+"/pid\n\tlog level = 3")
	conf = regexp.MustCompile(`(?m)^\s*log file = .*$`).ReplaceAllString(conf, "\tlog file = "+tmp+"/log.%m")
	writeFile(t, smb, conf)
	os.Mkdir(filepath.Join(tmp, "pid"), 0o700)
	a := &ADDC{t: t, Dir: tmp, SMBConf: smb, tool: tool}
	a.Tool("domain", "passwordsettings", "set", fmt.Sprintf("--account-lockout-threshold=%d", ADLockoutThreshold),
		"--account-lockout-duration=30", "--reset-account-lockout-after=30", "--min-pwd-age=0")
	for _, u := range []string{ADUser, ADUPNUser, ADRC4User, ADLockUser} {
		a.Tool("user", "create", u, ADPassword)
	}
	a.Tool("user", "create", ADMustChange, ADPassword, "--must-change-at-next-login")
	// The account behind host/localhost, for sshd's keytab.
	a.Tool("user", "create", ADHostAccount, ADPassword)
	a.Tool("spn", "add", "host/localhost", ADHostAccount)
	a.Modify(fmt.Sprintf("dn: CN=%s,CN=Users,%s\nchangetype: modify\nreplace: userPrincipalName\nuserPrincipalName: %s\n", ADUPNUser, adBaseDN, ADUPN))
	a.Modify(fmt.Sprintf("dn: CN=%s,CN=Users,%s\nchangetype: modify\nreplace: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: 4\n", ADRC4User, adBaseDN))
	// Name the template's own place in smb.conf; copies replace it.
	b, err = os.ReadFile(smb)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, smb, strings.ReplaceAll(string(b), tmp, tpl))
	if err := os.Rename(tmp, tpl); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(filepath.Join(tpl, "etc", "smb.conf")); serr != nil {
			t.Fatalf("store samba template: %v", err)
		}
	}
	return tpl
}

const adBaseDN = "DC=samba,DC=test"

func (a *ADDC) samDB() string { return filepath.Join(a.Dir, "private", "sam.ldb") }

// Tool runs samba-tool on the domain's database and returns its output.
func (a *ADDC) Tool(args ...string) string {
	a.t.Helper()
	return run(a.t, nil, "", a.tool, append(args, "-H", a.samDB(), "-s", a.SMBConf)...)
}

// Modify applies an LDIF change to the domain's database (samba-tool has
// no command for some attributes, and ldb-tools is not installed).
func (a *ADDC) Modify(ldif string) {
	a.t.Helper()
	const script = `import sys
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
db.modify_ldif(sys.stdin.read())
`
	run(a.t, nil, ldif, toolPython(a.t, a.tool), "-c", script, a.SMBConf, a.samDB())
}

// toolPython is the interpreter samba-tool runs with (its #! line), which
// is the one that has Samba's Python modules.
func toolPython(t T, tool string) string {
	t.Helper()
	b, err := os.ReadFile(tool)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if f := strings.Fields(strings.TrimPrefix(line, "#!")); len(f) > 0 && strings.HasPrefix(line, "#!") {
		return f[0]
	}
	return "/usr/bin/python3"
}

// BadPwdCount is the user's badPwdCount attribute: the domain's own count
// of failed logins.
func (a *ADDC) BadPwdCount(user string) int {
	a.t.Helper()
	out := a.Tool("user", "show", user, "--attributes=badPwdCount")
	m := regexp.MustCompile(`(?m)^badPwdCount: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Keytab exports the keys of principal into a new keytab.
func (a *ADDC) Keytab(principal string) string {
	a.t.Helper()
	kt := filepath.Join(a.Dir, fmt.Sprintf("kt-%d.keytab", time.Now().UnixNano()))
	// exportkeytab takes no -H: it finds the database through smb.conf.
	run(a.t, nil, "", a.tool, "domain", "exportkeytab", kt, "--principal="+principal, "-s", a.SMBConf)
	return kt
}

// AddUser creates a user with password.
func (a *ADDC) AddUser(name, password string) {
	a.t.Helper()
	a.Tool("user", "create", name, password)
}

// Env points clients (MIT tools, sesame) at this domain.
func (a *ADDC) Env() []string { return []string{"KRB5_CONFIG=" + a.Conf} }

// Addr is host:port of the KDC.
func (a *ADDC) Addr() string { return fmt.Sprintf("127.0.0.1:%d", a.Port) }

// Start runs samba in the foreground and waits until its KDC answers.
func (a *ADDC) Start() {
	a.t.Helper()
	a.cmd = startDaemon(a.t, "samba", filepath.Join(a.Dir, "samba.out"), nil, a.Addr(), 30*time.Second, a.samba, "-i", "-s", a.SMBConf)
}

// Stop ends samba and its worker processes (idempotent).
func (a *ADDC) Stop() {
	stopGroup(a.cmd)
	a.cmd = nil
}
