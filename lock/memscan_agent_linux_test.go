package lock

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// testAgent is the least agent.Agent over the test keyring: enough for
// x/crypto's ServeAgent to parse added keys and sign with them, so that
// the memory test covers the parsing that happens inside ServeAgent.
type testAgent struct{ r *keyring }

var errUnsupported = errors.New("unsupported")

func (a testAgent) List() ([]*agent.Key, error) {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	var out []*agent.Key
	for id, s := range a.r.signers {
		pk := s.PublicKey()
		out = append(out, &agent.Key{Format: pk.Type(), Blob: pk.Marshal(), Comment: id})
	}
	return out, nil
}

func (a testAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for _, s := range a.r.signers {
		if bytes.Equal(s.PublicKey().Marshal(), key.Marshal()) {
			return s.Sign(rand.Reader, data)
		}
	}
	return nil, errors.New("no such key")
}

func (a testAgent) Add(k agent.AddedKey) error {
	s, err := ssh.NewSignerFromKey(k.PrivateKey)
	if err != nil {
		return err
	}
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	a.r.keys[k.Comment], a.r.signers[k.Comment] = k.PrivateKey, s
	return nil
}

func (testAgent) Remove(ssh.PublicKey) error     { return errUnsupported }
func (testAgent) RemoveAll() error               { return errUnsupported }
func (testAgent) Lock([]byte) error              { return errUnsupported }
func (testAgent) Unlock([]byte) error            { return errUnsupported }
func (testAgent) Signers() ([]ssh.Signer, error) { return nil, errUnsupported }
func (testAgent) SignWithFlags(ssh.PublicKey, []byte, agent.SignatureFlags) (*ssh.Signature, error) {
	return nil, errUnsupported
}

// serveEachInDo serves one agent connection, each request inside its own
// Do: the request is read, parsed and answered by x/crypto's ServeAgent
// within Do, so its stack is erased after every request rather than when
// the connection ends (an ssh session keeps its agent connection open).
func serveEachInDo(a agent.Agent, conn io.ReadWriter) {
	for done := false; !done; {
		Do(func() {
			var hdr [4]byte
			if _, err := io.ReadFull(conn, hdr[:]); err != nil {
				done = true
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n == 0 || n > 256<<10 {
				done = true
				return
			}
			msg := make([]byte, 4+n)
			copy(msg, hdr[:])
			if _, err := io.ReadFull(conn, msg[4:]); err != nil {
				done = true
				return
			}
			one := struct {
				io.Reader
				io.Writer
			}{bytes.NewReader(msg), conn}
			agent.ServeAgent(a, one) // returns at the end of the one request
		})
	}
}

// TestLockedMemoryAfterServeAgent loads keys over the agent protocol, as
// ssh-add does, into x/crypto's ServeAgent run one request per Do, signs
// over the still-open connection, locks, and scans.
func TestLockedMemoryAfterServeAgent(t *testing.T) {
	dir := genKeys(t)
	r := &keyring{keys: map[string]any{}, signers: map[string]ssh.Signer{}}
	cli, srv := net.Pipe()
	defer cli.Close()
	go serveEachInDo(testAgent{r}, srv)
	client := agent.NewClient(cli)

	for _, typ := range keyTypes {
		var err error
		Do(func() {
			data, e := os.ReadFile(filepath.Join(dir, typ))
			if e != nil {
				err = e
				return
			}
			defer clear(data)
			k, e := ssh.ParseRawPrivateKey(data)
			if e != nil {
				err = e
				return
			}
			err = client.Add(agent.AddedKey{PrivateKey: k, Comment: typ})
			Wipe(k)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var needles []needle
	Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, typ := range keyTypes {
			needles = append(needles, keyNeedles(r.keys[typ])...)
		}
	})
	sign := func() {
		keys, err := client.List()
		if err != nil || len(keys) != 3 {
			t.Fatalf("list: %d keys, %v", len(keys), err)
		}
		for _, k := range keys {
			data := []byte("session id and user")
			sig, err := client.Sign(k, data)
			if err != nil {
				t.Fatalf("sign %s: %v", k.Comment, err)
			}
			if err := k.Verify(data, sig); err != nil {
				t.Fatalf("verify %s: %v", k.Comment, err)
			}
		}
	}
	checkLockedMemory(t, r, needles, sign)
}
