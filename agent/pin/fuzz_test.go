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
	f.Add([]byte("login.example.org " + fpA + " 2fa\nbob@gw.example.org 2fa # otp\n2fa 2fa\n"))
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
			if err != nil || !ok || q.Target() != p.Target() || q.Key != p.Key || q.TwoFactor != p.TwoFactor {
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

// An ssh command line taken apart and put together for the probe: never a
// panic, the destination kept, and none of the dropped options passed on.
func FuzzSSHCommand(f *testing.F) {
	f.Add([]byte("ssh\x00-i\x00k.pub\x00-oIdentitiesOnly=yes\x00host\x00ls"))
	f.Add([]byte("ssh\x00-vE\x00log\x00-y\x00--\x00-h\x00-O\x00exit"))
	f.Add([]byte("/usr/bin/ssh\x00host\x00-p\x0022\x00-M"))
	f.Fuzz(func(t *testing.T, data []byte) {
		argv := strings.Split(string(data), "\x00")
		c, ok := ParseSSHCommand(argv)
		if !ok {
			return
		}
		args := c.ProbeArgs()
		again, ok := ParseSSHCommand(append([]string{"ssh"}, args...))
		if !ok || again.Dest != c.Dest || args[0] != "-G" {
			t.Fatalf("%q: probe args %q parse to %+v", argv, args, again)
		}
		for _, o := range again.Options {
			if strings.Contains(sshOptsDropped, o[0]) {
				t.Fatalf("%q: -%s passed to the probe: %q", argv, o[0], args)
			}
		}
		SSHDestination(argv)
	})
}

// ssh -G output: never a panic, and nothing read outside the files named.
func FuzzParseProbe(f *testing.F) {
	f.Add([]byte("user bob\nhostname h\nport 22\nidentitiesonly yes\nidentityfile ~/.ssh/id_ed25519\ncertificatefile %d/c-%r@%h:%p\n"))
	f.Add([]byte("user x\nidentityfile ${NOPE}/k\nidentityfile %C\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		parseProbe(data, dir)
	})
}
