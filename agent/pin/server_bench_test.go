package pin

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sesame-ssh/sesame/agent"
)

// The performance targets, measured through the agent server on a
// unix socket (framing, session-bind verification, the policy, signing):
// listing on a bound connection with 1,000 keys and 10,000 pins under 1 ms
// at the median; a signature with pin checks within 10% of one without.

// serverBench is an agent serving 1,000 keys with the pin policy over
// 10,000 declared pins (900 keys pinned, 100 free) and 2,000 known_hosts
// entries, half of them hashed.
type serverBench struct {
	sock   string
	pubs   []ssh.PublicKey
	hosts  []ssh.Signer // hosts[i] is host-i.example.org
	policy *Policy
}

// newServerBench starts the agent; probe, when given, stands in for the
// ssh -G inspection of the client (which is the benchmark itself).
func newServerBench(b *testing.B, withPolicy bool, probe ...func(int) *PeerConfig) *serverBench {
	b.Helper()
	w := &serverBench{sock: filepath.Join(b.TempDir(), "agent.sock")}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var keys []xagent.AddedKey
	for i := 0; i < 1000; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		pub, _ := ssh.NewPublicKey(priv.Public())
		w.pubs = append(w.pubs, pub)
		keys = append(keys, xagent.AddedKey{PrivateKey: priv, Comment: fmt.Sprint("k", i)})
	}
	var kh, pins strings.Builder
	for i := 0; i < 2000; i++ {
		s := newSigner(b)
		w.hosts = append(w.hosts, s)
		name := fmt.Sprintf("host-%d.example.org", i)
		if i%2 == 1 {
			name = knownhosts.HashHostname(name)
		}
		kh.WriteString(authLine("", name, s.PublicKey()))
	}
	for i := 0; i < 9000; i++ {
		fmt.Fprintf(&pins, "user%d@host-%d.example.org %s\n", i%7, i, fp(w.pubs[i%900]))
	}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&pins, "*.dom-%d.example.org,!gw.dom-%d.example.org %s\n", i, i, fp(w.pubs[(i*7)%900]))
	}
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "kh"), []byte(kh.String()), 0o600)
	os.WriteFile(filepath.Join(dir, "pins"), []byte(pins.String()), 0o600)
	opts := agent.Options{Socket: w.sock, Logger: quiet}
	if withPolicy {
		w.policy = New(Options{PinsFile: filepath.Join(dir, "pins"), LearnedFile: filepath.Join(dir, "learned"),
			KnownHostsFiles: []string{filepath.Join(dir, "kh")}, Logger: quiet})
		if len(probe) > 0 {
			w.policy.opt.Probe = probe[0]
		}
		if err := w.policy.Err(); err != nil {
			b.Fatal(err)
		}
		if n := len(w.policy.Declared()); n != 10000 {
			b.Fatalf("%d pins", n)
		}
		opts.Policy = w.policy
	}
	srv := agent.New(opts)
	for _, k := range keys {
		if err := srv.AddKey(k); err != nil {
			b.Fatal(err)
		}
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(b.Context()) }()
	b.Cleanup(func() {
		srv.Close()
		wg.Wait()
		if w.policy != nil {
			w.policy.Close()
		}
	})
	return w
}

// boundClient connects and sends a genuine session-bind for host, as ssh
// does before it lists keys. It returns the client and the session id.
func (w *serverBench) boundClient(b *testing.B, host ssh.Signer) (xagent.ExtendedAgent, []byte) {
	b.Helper()
	c, err := net.Dial("unix", w.sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ag := xagent.NewClient(c)
	sid := make([]byte, 32)
	rand.Read(sid)
	sig, err := host.Sign(rand.Reader, sid)
	if err != nil {
		b.Fatal(err)
	}
	msg := ssh.Marshal(struct {
		HostKey   []byte
		SessionID []byte
		Signature []byte
		Forward   bool
	}{host.PublicKey().Marshal(), sid, ssh.Marshal(sig), false})
	if _, err := ag.Extension(agent.ExtSessionBind, msg); err != nil {
		b.Fatalf("session-bind: %v", err)
	}
	return ag, sid
}

// timed runs op b.N times and reports the median and 99th percentile.
func timed(b *testing.B, op func()) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		op()
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkServerListBound: REQUEST_IDENTITIES on a bound connection.
// pinned-host: a host with a declared pin (hashed known_hosts entry), one
// key listed; unpinned-host: a host key known_hosts does not list, at most
// MaxOffer of the 100 free keys; no-policy: every key, as ssh-agent.
func BenchmarkServerListBound(b *testing.B) {
	b.Run("pinned-host", func(b *testing.B) {
		w := newServerBench(b, true)
		ag, _ := w.boundClient(b, w.hosts[1235])
		timed(b, func() {
			keys, err := ag.List()
			if err != nil || len(keys) != 1 {
				b.Fatalf("list: %d keys, %v", len(keys), err)
			}
		})
	})
	b.Run("unpinned-host", func(b *testing.B) {
		w := newServerBench(b, true)
		ag, _ := w.boundClient(b, newSigner(b))
		timed(b, func() {
			keys, err := ag.List()
			if err != nil || len(keys) != DefaultMaxOffer {
				b.Fatalf("list: %d keys, %v", len(keys), err)
			}
		})
	})
	// The client is ssh (its inspection cached for the connection): the
	// user selects the account's pins, or IdentitiesOnly lists its keys.
	for _, c := range []struct {
		name string
		peer func(w *serverBench) *PeerConfig
	}{
		{"pinned-host-ssh-peer", func(*serverBench) *PeerConfig { return &PeerConfig{User: "user3"} }},
		{"identities-only-ssh-peer", func(w *serverBench) *PeerConfig {
			return &PeerConfig{User: "user4", IdentitiesOnly: true, Explicit: true, Keys: []string{fp(w.pubs[950])}}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var probes atomic.Int32
			var w *serverBench
			w = newServerBench(b, true, func(int) *PeerConfig { probes.Add(1); return c.peer(w) })
			ag, _ := w.boundClient(b, w.hosts[1235])
			timed(b, func() {
				keys, err := ag.List()
				if err != nil || len(keys) != 1 {
					b.Fatalf("list: %d keys, %v", len(keys), err)
				}
			})
			if n := probes.Load(); n != 1 {
				b.Errorf("the client was inspected %d times", n)
			}
		})
	}
	b.Run("no-policy", func(b *testing.B) {
		w := newServerBench(b, false)
		ag, _ := w.boundClient(b, w.hosts[1235])
		timed(b, func() {
			keys, err := ag.List()
			if err != nil || len(keys) != 1000 {
				b.Fatalf("list: %d keys, %v", len(keys), err)
			}
		})
	})
}

// BenchmarkServerSign: a publickey-hostbound userauth signature on a bound
// connection with the key pinned to the host, with and without the policy
// (with it: userauth parsing, session and host key checks, the pins of
// every hop, and learning the pin).
func BenchmarkServerSign(b *testing.B) {
	for _, withPolicy := range []bool{false, true} {
		name := "without-policy"
		if withPolicy {
			name = "with-policy"
		}
		b.Run(name, func(b *testing.B) {
			w := newServerBench(b, withPolicy)
			host := w.hosts[1235]
			key := w.pubs[1235%900]
			ag, sid := w.boundClient(b, host)
			data := hostbound(sid, "user3", key, host.PublicKey())
			timed(b, func() {
				if _, err := ag.SignWithFlags(key, data, 0); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkPolicySignShare is all the policy adds to a signature, without
// the socket and the signing itself (whose noise on a shared machine is
// larger than the difference): CheckSign before, Signed (learning) after.
func BenchmarkPolicySignShare(b *testing.B) {
	w := newServerBench(b, true)
	host := w.hosts[1235]
	key := w.pubs[1235%900]
	c := &agent.ConnInfo{Binds: []agent.Bind{{HostKey: host.PublicKey(), SessionID: []byte("0123456789abcdef0123456789abcdef")}}}
	data := hostbound(c.Binds[0].SessionID, "user3", key, host.PublicKey())
	for b.Loop() {
		if err := w.policy.CheckSign(c, key, data); err != nil {
			b.Fatal(err)
		}
		w.policy.Signed(c, key, data)
	}
}
