package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func FuzzPinsFile(f *testing.F) {
	f.Add([]byte("alice@login.example.org " + fpA + " # c\n*.x,!y.x " + fpB + "\nhostkey " + fpA + " " + fpB + "\n"))
	f.Add([]byte("[h]:2222 " + fpA + "\n\n# only comment\n"))
	f.Add([]byte("!x " + fpA))
	f.Add([]byte("a@@b " + fpA))
	f.Fuzz(func(t *testing.T, data []byte) {
		pins, err := ParsePins(data, "pins")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pins line ") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		// Every accepted pin formats to a line that parses to the same pin.
		for _, p := range pins {
			q, ok, err := parsePinLine(p.String())
			if err != nil || !ok || q.Target() != p.Target() || q.Key != p.Key {
				t.Fatalf("round trip %q: %+v %v", p.String(), q, err)
			}
			p.Hosts.Match(Name{Host: "a.b", Port: 22})
		}
		newPinSet(pins).match(fpA, []Name{{Host: "login.example.org", Port: 22}})
	})
}

func FuzzUserauthRequest(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	k := s.PublicKey()
	sid := []byte("0123456789abcdef0123456789abcdef")
	f.Add(userauth(sid, "alice", k))
	f.Add(hostbound(sid, "bob", k, k))
	f.Add([]byte("SSHSIG"))
	f.Add([]byte{0, 0, 0, 1, 1, 50})
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUserauthRequest(data)
		if err != nil {
			return
		}
		// What parses must re-marshal to the same bytes: nothing skipped.
		var again []byte
		if u.Method == MethodHostbound {
			again = ssh.Marshal(hostboundMsg{u.SessionID, 50, u.User, u.Service, u.Method, true, u.Algorithm, u.Key, u.HostKey})
		} else {
			again = ssh.Marshal(userauthMsg{u.SessionID, 50, u.User, u.Service, u.Method, true, u.Algorithm, u.Key})
		}
		if string(again) != string(data) {
			t.Fatalf("parse/marshal mismatch")
		}
	})
}

func FuzzKnownHosts(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	k := s.PublicKey()
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	f.Add([]byte("a.example.org,10.0.0.1 " + line + "\n"))
	f.Add([]byte(knownhosts.HashHostname("b.example.org") + " " + line + "\n"))
	f.Add([]byte("@cert-authority *.x " + line + "\n@revoked * " + line + "\n"))
	f.Add([]byte("[h]:2222,!*.bad " + line + " comment\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kh := ParseKnownHosts(data, "kh")
		names := kh.Names(k, []Name{{Host: "a.example.org", Port: 22}, {Host: "b.example.org", Port: 22}})
		// Every name found must be confirmed by the forward lookup.
		for _, n := range names {
			if !kh.HasKey(n, k) {
				t.Fatalf("name %v not confirmed", n)
			}
		}
		kh.Check(Name{Host: "a.example.org", Port: 22}, k)
	})
}
