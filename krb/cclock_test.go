package krb

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// Issue 16: a kinit as another principal (and its service ticket) landing
// inside the keeper's write window survives; the keeper follows it.
func TestKeeperKeepsCacheReplacedInWriteWindow(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	kdc.AddPrincipal("bob", testPassword)
	kdc.AddPrincipal("host/localhost", "")
	path := filepath.Join(t.TempDir(), "krb5cc")
	cc, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword), Lifetime: time.Hour, RenewLife: 10 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCCache(path, cc); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), kdc.Env()...)
	env = append(env, "KRB5CCNAME=FILE:"+path)
	mit := func(name string, args ...string) {
		c := exec.Command(testbed.Path(t, name), args...)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	hooked := false
	testHookBeforeWrite = func(string) {
		if !hooked {
			hooked = true
			// A kinit as bob replaces the cache by a rename, as MIT's
			// and sesame's kinit do (MIT kinit itself would wait for
			// the lock held here, reading the cache's config first);
			// kvno then stores a service ticket in the new file.
			bc, err := cl.Login(context.Background(), LoginOptions{Principal: "bob", Password: []byte(testPassword), Lifetime: time.Hour})
			if err != nil {
				t.Error(err)
				return
			}
			if err := WriteCCache(path, bc); err != nil {
				t.Error(err)
			}
			mit("kvno", "host/localhost")
		}
	}
	defer func() { testHookBeforeWrite = nil }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Half the lifetime has passed: the keeper renews at once.
	now := func() time.Time { return time.Now().Add(40 * time.Minute) }
	k := &Keeper{
		Cache: "FILE:" + path,
		Load:  func() (*CCache, error) { return ReadCCache(path) },
		Update: func(ctx context.Context, m func(*CCache) (*CCache, error)) error {
			return UpdateCCache(ctx, path, m)
		},
		Renew: func(ctx context.Context, cc *CCache) (*CCache, error) { return cl.Renew(ctx, cc) },
		Report: func(s KeeperState) {
			if hooked && !s.NextCheck.IsZero() {
				cancel() // back to waiting, on whatever ticket it follows
			}
		},
		Now: now,
	}
	k.Run(ctx)
	if !hooked {
		t.Fatal("the keeper never reached its write window")
	}
	got, err := ReadCCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.DefaultPrincipal.String(); p != "bob@"+kdc.Realm {
		t.Fatalf("default principal %s after the keeper's write, want bob's", p)
	}
	var svc bool
	for _, c := range got.Tickets() {
		svc = svc || c.Server.String() == "host/localhost@"+kdc.Realm
	}
	if tgt, ok := got.TGT(); !ok || !tgt.Client.Equal(got.DefaultPrincipal) || !svc {
		t.Fatalf("bob's TGT or service ticket lost: %+v", got.Tickets())
	}
}
