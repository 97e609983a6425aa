package doctor

import (
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
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
