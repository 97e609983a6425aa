package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xagent "golang.org/x/crypto/ssh/agent"

	"github.com/sesame-ssh/sesame/lock"
)

// A lock that seals the keys while a signature is being computed must not
// change the key bytes under it: a signature made from a half-wiped
// Ed25519 key, next to a good one of the same message (same nonce R,
// different public half), gives the private scalar away. The hook holds a
// signature at the moment it is about to read the key while another
// client locks; the lock must wait for it, and the signature must verify.
func TestLockWaitsForSignatureInFlight(t *testing.T) {
	srv, _ := sealingServer(t, lock.Options{}, Options{})
	ed := mustEd25519(t)
	if err := srv.AddKey(xagent.AddedKey{PrivateKey: ed, Comment: "ed"}); err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(ed.Public())
	srv.keys.mu.RLock()
	kept := ed25519Key(srv.keys.order[0].priv) // the keyring's own copy
	srv.keys.mu.RUnlock()

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testHookSign = func() {
		once.Do(func() {
			close(held)
			<-release
		})
	}
	t.Cleanup(func() { testHookSign = nil })

	data := []byte("the same message")
	type result struct {
		sig *ssh.Signature
		err error
	}
	signed := make(chan result, 1)
	ag := pipeAgent(t, srv)
	go func() {
		sig, err := ag.Sign(pub, data)
		signed <- result{sig, err}
	}()
	<-held

	locked := make(chan error, 1)
	go func() { locked <- srv.Lock([]byte("pw")) }()
	select {
	case err := <-locked:
		t.Errorf("lock finished (%v) while a signature with the key was in flight", err)
	case <-time.After(time.Second):
	}
	close(release)
	r := <-signed
	if r.err != nil {
		t.Fatalf("sign: %v", r.err)
	}
	if err := pub.Verify(data, r.sig); err != nil {
		t.Fatalf("signature made during a lock does not verify: %v", err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("lock: %v", err)
	}
	if !bytes.Equal(kept, make([]byte, len(kept))) {
		t.Error("the key was not wiped by the lock")
	}
	// After the lock, nothing signs.
	if _, err := pipeAgent(t, srv).Sign(pub, data); err == nil {
		t.Error("signed while locked")
	}
}

// Signers of every key type race a lock/unlock loop; every signature that
// comes back must verify with its key. Run under -race.
func TestSignLockStress(t *testing.T) {
	srv, _ := sealingServer(t, lock.Options{}, Options{})
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var pubs []ssh.PublicKey
	for _, k := range []any{mustEd25519(t), rk, ek} {
		if err := srv.AddKey(xagent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, s.PublicKey())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var good, bad, refused atomic.Int64
	for i := 0; i < 4; i++ {
		ag := pipeAgent(t, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte("fixed message")
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				pub := pubs[(i+n)%len(pubs)]
				sig, err := ag.Sign(pub, data)
				if err != nil {
					refused.Add(1)
					time.Sleep(100 * time.Microsecond)
					continue
				}
				if pub.Verify(data, sig) != nil {
					bad.Add(1)
				} else {
					good.Add(1)
				}
			}
		}()
	}
	locker := pipeAgent(t, srv)
	deadline := time.Now().Add(2 * time.Second)
	rounds := 0
	for time.Now().Before(deadline) {
		if err := locker.Lock([]byte("pw")); err != nil {
			t.Fatal(err)
		}
		if err := locker.Unlock([]byte("pw")); err != nil {
			t.Fatal(err)
		}
		rounds++
		// Let some signatures through between rounds.
		for n := good.Load(); good.Load() == n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d lock rounds, %d good signatures, %d refused while locked", rounds, good.Load(), refused.Load())
	if bad.Load() != 0 {
		t.Fatalf("%d signatures did not verify", bad.Load())
	}
	if good.Load() == 0 {
		t.Fatal("no signature made")
	}
}
