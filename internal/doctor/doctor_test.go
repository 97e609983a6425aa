package doctor

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sesame-ssh/sesame/agent/pin"
)

func TestParseQuery(t *testing.T) {
	reply := append([]byte{6}, ssh.Marshal(struct{ A, B string }{"query", "session-bind@openssh.com"})...)
	if got := parseQuery(reply); !slices.Equal(got, []string{"query", "session-bind@openssh.com"}) {
		t.Errorf("parseQuery: %q", got)
	}
	// A truncated name is dropped, not read past the end.
	if got := parseQuery(reply[:len(reply)-3]); !slices.Equal(got, []string{"query"}) {
		t.Errorf("truncated: %q", got)
	}
}

// The query reply comes from whatever answers at SSH_AUTH_SOCK.
func FuzzParseQuery(f *testing.F) {
	f.Add(append([]byte{6}, ssh.Marshal(struct{ A string }{"query"})...))
	f.Add([]byte{6, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range parseQuery(b) {
			if len(s) > len(b) {
				t.Fatalf("name longer than the reply")
			}
		}
	})
}

func TestGSSAPICoversWithoutTicket(t *testing.T) {
	t.Setenv("KRB5CCNAME", "FILE:"+t.TempDir()+"/none")
	if GSSAPICovers()([]string{"login.example.org"}) {
		t.Error("GSSAPI without a ticket")
	}
}

// A krb5.conf naming KCM: with no daemon on its socket: doctor says what
// is missing and how to start it, and does not suggest a kinit that
// could not store its ticket.
func TestKerberosKCMUnavailable(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	os.WriteFile(conf, []byte("[libdefaults]\n default_realm = X\n default_ccache_name = KCM:\n kcm_socket = "+filepath.Join(dir, "none")+"\n"), 0o600)
	t.Setenv("KRB5_CONFIG", conf)
	t.Setenv("KRB5CCNAME", "")
	r := &Report{Suggestions: []string{}}
	checkKerberos(context.Background(), r, Options{Now: time.Now}, pin.Name{})
	if !strings.Contains(r.Kerberos.CacheError, "sssd-kcm") {
		t.Errorf("cache error %q", r.Kerberos.CacheError)
	}
	joined := strings.Join(r.Suggestions, "\n")
	if !strings.Contains(joined, "systemctl start sssd-kcm.socket") || strings.Contains(joined, "sesame kinit") {
		t.Errorf("suggestions:\n%s", joined)
	}
}
