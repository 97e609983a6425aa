package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"
)

// benchServer serves n ed25519 keys on a unix socket in this process.
func benchServer(b *testing.B, n int) (string, []ssh.PublicKey) {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "a.sock")
	srv := quietServer(Options{Socket: sock})
	var pubs []ssh.PublicKey
	for i := 0; i < n; i++ {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		if err := srv.AddKey(xagent.AddedKey{PrivateKey: k, Comment: fmt.Sprint("key-", i)}); err != nil {
			b.Fatal(err)
		}
		p, _ := ssh.NewPublicKey(k.Public())
		pubs = append(pubs, p)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(b.Context()) }()
	b.Cleanup(func() { srv.Close(); wg.Wait() })
	return sock, pubs
}

func BenchmarkSign(b *testing.B) {
	sock, pubs := benchServer(b, 100)
	data := make([]byte, 150)
	b.Run("1conn", func(b *testing.B) {
		c, ag := dial(b, sock)
		defer c.Close()
		for b.Loop() {
			if _, err := ag.Sign(pubs[99], data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("16conns", func(b *testing.B) {
		// 8 goroutines per GOMAXPROCS on this 2-core machine: 16 clients.
		b.SetParallelism(max(1, 16/runtimeProcs()))
		b.RunParallel(func(pb *testing.PB) {
			c, ag := dial(b, sock)
			defer c.Close()
			for pb.Next() {
				if _, err := ag.Sign(pubs[99], data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkList(b *testing.B) {
	sock, _ := benchServer(b, 100)
	c, ag := dial(b, sock)
	defer c.Close()
	for b.Loop() {
		keys, err := ag.List()
		if err != nil || len(keys) != 100 {
			b.Fatal(len(keys), err)
		}
	}
}

// BenchmarkServeSign measures the server side alone: one sign request
// decoded, signed and encoded, without a socket.
func BenchmarkServeSign(b *testing.B) {
	srv := quietServer(Options{})
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	srv.AddKey(xagent.AddedKey{PrivateKey: k})
	pub, _ := ssh.NewPublicKey(k.Public())
	ca := &conn{s: srv, log: srv.log}
	data := make([]byte, 150)
	for b.Loop() {
		if _, err := ca.Sign(pub, data); err != nil {
			b.Fatal(err)
		}
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkListRaw is BenchmarkList without the client's parsing of the
// 100 keys: one REQUEST_IDENTITIES frame out, the whole answer read back.
func BenchmarkListRaw(b *testing.B) {
	sock, _ := benchServer(b, 100)
	// A plain connection: an x/crypto client on it would read the replies
	// in its own goroutine and leave this loop waiting.
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte{0, 0, 0, 1, msgRequestIdentities}
	buf := make([]byte, 64*1024)
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			b.Fatal(err)
		}
		n := binary.BigEndian.Uint32(buf[:4])
		if _, err := io.ReadFull(c, buf[:n]); err != nil || buf[0] != msgIdentitiesAnswer {
			b.Fatal(err)
		}
	}
}
