package testbed

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// sssdKCMPaths are where Debian and Fedora install the KCM responder.
var sssdKCMPaths = []string{"/usr/libexec/sssd/sssd_kcm", "/usr/lib/sssd/sssd_kcm"}

// KCM is a running sssd_kcm (package sssd-kcm) with its own socket and
// database. sssd compiles its database and config paths in
// (/var/lib/sss/...), so the daemon runs in a private mount namespace
// where a temporary directory is bind-mounted over /var/lib/sss: the
// host's sssd state is never touched. Needs root (for the namespace).
type KCM struct {
	t      T
	Dir    string
	Socket string
	Log    string
	cmd    *exec.Cmd
}

// NewKCM starts sssd_kcm and stops it when the test ends. MIT tools and
// sesame reach it through krb5.conf's kcm_socket (see KCM.Krb5Conf).
func NewKCM(t T) *KCM {
	t.Helper()
	NeedRoot(t)
	paths := Need(t, "sssd", "unshare", "mount")
	daemon := ""
	for _, p := range sssdKCMPaths {
		if _, err := os.Stat(p); err == nil {
			daemon = p
		}
	}
	if daemon == "" {
		Missing(t, "sssd_kcm not found (install sssd-kcm with scripts/install-deps.sh)")
	}
	dir := t.TempDir()
	k := &KCM{t: t, Dir: dir, Socket: filepath.Join(dir, "kcm.sock"), Log: filepath.Join(dir, "sssd_kcm.log")}
	for _, d := range []string{"db", "secrets", "pipes/private", "mc", "pubconf", "gpo_cache", "deskprofile"} {
		if err := os.MkdirAll(filepath.Join(dir, "sss", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "sssd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[sssd]\nservices = kcm\n\n[kcm]\nsocket_path = %s\n", k.Socket)), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount --bind "$1/sss" /var/lib/sss
"$2" --genconf-section=kcm -c "$1/sssd.conf"
exec "$3" --uid 0 --gid 0 --logger=stderr --debug-level=2`
	cmd := exec.Command(paths[1], "-m", "--propagation", "private", "sh", "-c", script, "sh", dir, paths[0], daemon)
	out, err := os.OpenFile(k.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sssd_kcm: %v", err)
	}
	k.cmd = cmd
	t.Cleanup(k.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("unix", k.Socket)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(k.Log)
			t.Fatalf("sssd_kcm did not come up on %s: %v\n%s", k.Socket, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return k
}

// Krb5Conf is the [libdefaults] line that points MIT tools at this daemon
// (for KDCOptions.ExtraKrb5Client).
func (k *KCM) Krb5Conf() string { return "\tkcm_socket = " + k.Socket + "\n" }

// Stop kills the daemon (idempotent).
func (k *KCM) Stop() {
	stopGroup(k.cmd)
	k.cmd = nil
}
