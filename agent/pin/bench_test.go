package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sesame-ssh/sesame/agent"
)

// benchWorld: 1,000 loaded keys, 10,000 declared pins (9,000 by name,
// 1,000 wildcards), 2,000 known_hosts entries of which half are hashed.
type benchWorld struct {
	p      *Policy
	ids    []agent.Identity
	priv   []ed25519.PrivateKey
	hosts  []ssh.PublicKey // hosts[i] is host-i.example.org
	signer []ssh.Signer
}

func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	w := &benchWorld{}
	for i := 0; i < 1000; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := ssh.NewSignerFromKey(priv)
		w.signer = append(w.signer, s)
		w.ids = append(w.ids, agent.Identity{Key: s.PublicKey(), Comment: fmt.Sprint("k", i)})
	}
	var kh, pins strings.Builder
	for i := 0; i < 2000; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		s, _ := ssh.NewSignerFromKey(priv)
		w.hosts = append(w.hosts, s.PublicKey())
		name := fmt.Sprintf("host-%d.example.org", i)
		if i%2 == 1 {
			name = knownhosts.HashHostname(name)
		}
		kh.WriteString(authLine("", name, s.PublicKey()))
	}
	for i := 0; i < 9000; i++ {
		fmt.Fprintf(&pins, "user%d@host-%d.example.org %s\n", i%7, i, fp(w.ids[i%1000].Key))
	}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&pins, "*.dom-%d.example.org,!gw.dom-%d.example.org %s\n", i, i, fp(w.ids[(i*7)%1000].Key))
	}
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "kh"), []byte(kh.String()), 0o600)
	os.WriteFile(filepath.Join(dir, "pins"), []byte(pins.String()), 0o600)
	w.p = New(Options{PinsFile: filepath.Join(dir, "pins"), LearnedFile: filepath.Join(dir, "learned"),
		KnownHostsFiles: []string{filepath.Join(dir, "kh")}})
	if err := w.p.Err(); err != nil {
		b.Fatal(err)
	}
	return w
}

func BenchmarkOfferPinnedHost(b *testing.B) {
	w := newBenchWorld(b)
	c := bound(w.hosts[1234]) // a hashed known_hosts entry
	if got := w.p.Offer(c, w.ids); len(got) != 1 || got[0].Comment != "k234" {
		b.Fatalf("offer: %v", fps(got))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.p.Offer(c, w.ids)
	}
}

func BenchmarkOfferUnpinnedHost(b *testing.B) {
	w := newBenchWorld(b)
	c := bound(newSigner(b).PublicKey())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.p.Offer(c, w.ids)
	}
}

// BenchmarkOfferColdCache measures a host seen for the first time after
// the pins changed: known_hosts lookups of every pinned name included.
func BenchmarkOfferColdCache(b *testing.B) {
	w := newBenchWorld(b)
	c := bound(w.hosts[1234])
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.p.mu.Lock()
		w.p.hosts = map[string]*hostInfo{}
		w.p.mu.Unlock()
		w.p.Offer(c, w.ids)
	}
}

func BenchmarkSign(b *testing.B) {
	w := newBenchWorld(b)
	c := bound(w.hosts[1234])
	s := w.signer[234]
	data := hostbound(c.Binds[0].SessionID, "user2", s.PublicKey(), w.hosts[1234])
	if err := w.p.CheckSign(c, s.PublicKey(), data); err != nil {
		b.Fatal(err)
	}
	b.Run("without-policy", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			s.Sign(rand.Reader, data)
		}
	})
	b.Run("with-policy", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := w.p.CheckSign(c, s.PublicKey(), data); err != nil {
				b.Fatal(err)
			}
			s.Sign(rand.Reader, data)
		}
	})
}

// BenchmarkCheckSign is the policy's share of a signature on its own.
func BenchmarkCheckSign(b *testing.B) {
	w := newBenchWorld(b)
	c := bound(w.hosts[1234])
	s := w.signer[234]
	data := hostbound(c.Binds[0].SessionID, "user2", s.PublicKey(), w.hosts[1234])
	w.p.Offer(c, w.ids)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.p.CheckSign(c, s.PublicKey(), data); err != nil {
			b.Fatal(err)
		}
	}
}
