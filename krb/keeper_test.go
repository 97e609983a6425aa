package krb

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func tgtCred(start, end, renewTill time.Time, renewable bool) *Credential {
	c := &Credential{
		Client:    Principal{NameType: 1, Realm: "EX.ORG", Components: []string{"alice"}},
		Server:    Principal{NameType: 2, Realm: "EX.ORG", Components: []string{"krbtgt", "EX.ORG"}},
		AuthTime:  start,
		StartTime: start,
		EndTime:   end,
		RenewTill: renewTill,
	}
	if renewable {
		c.Flags |= TktFlagRenewable
	}
	return c
}

func TestPlan(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name       string
		now        time.Time
		tgt        *Credential
		canAcquire bool
		act        Action
		at         time.Time
	}{
		{"fresh renewable waits for half-life", t0.Add(time.Minute), tgtCred(t0, t0.Add(10*h), t0.Add(7*24*h), true), false, ActWait, t0.Add(5 * h)},
		{"past half-life renews", t0.Add(6 * h), tgtCred(t0, t0.Add(10*h), t0.Add(7*24*h), true), false, ActRenew, t0.Add(6 * h)},
		{"expired without secret is final", t0.Add(11 * h), tgtCred(t0, t0.Add(10*h), t0.Add(7*24*h), true), false, ActExpired, t0.Add(11 * h)},
		{"expired with keytab re-acquires", t0.Add(11 * h), tgtCred(t0, t0.Add(10*h), t0.Add(7*24*h), true), true, ActAcquire, t0.Add(11 * h)},
		{"not renewable, no secret: wake at end", t0.Add(h), tgtCred(t0, t0.Add(10*h), time.Time{}, false), false, ActWait, t0.Add(10 * h)},
		{"not renewable, keytab: acquire at half-life", t0.Add(h), tgtCred(t0, t0.Add(10*h), time.Time{}, false), true, ActWait, t0.Add(5 * h)},
		{"renew-till near, keytab: acquire", t0.Add(6 * h), tgtCred(t0, t0.Add(10*h), t0.Add(11*h), true), true, ActAcquire, t0.Add(6 * h)},
		{"renew-till near, no secret: last renewal", t0.Add(6 * h), tgtCred(t0, t0.Add(10*h), t0.Add(11*h), true), false, ActRenew, t0.Add(6 * h)},
		// Samba refuses a TGT ~120 s before its end: short tickets are
		// renewed KDCRefusalMargin before it, very short ones after a quarter.
		{"four-minute ticket renews 150s before its end", t0.Add(10 * time.Second), tgtCred(t0, t0.Add(4*time.Minute), t0.Add(h), true), false, ActWait, t0.Add(90 * time.Second)},
		{"one-minute ticket renews after a quarter", t0.Add(10 * time.Second), tgtCred(t0, t0.Add(time.Minute), t0.Add(h), true), false, ActWait, t0.Add(15 * time.Second)},
	}
	for _, c := range cases {
		act, at := Plan(c.now, c.tgt, c.canAcquire)
		if act != c.act || !at.Equal(c.at) {
			t.Errorf("%s: got %v at %v, want %v at %v", c.name, act, at.Sub(t0), c.act, c.at.Sub(t0))
		}
	}
}

func TestBackoffNeverPastEnd(t *testing.T) {
	end := t0.Add(2 * time.Minute)
	for n := 1; n < 20; n++ {
		d := Backoff(n, t0, end)
		if t0.Add(d).After(end) {
			t.Fatalf("backoff %d = %v goes past the ticket end", n, d)
		}
	}
	if d := Backoff(1, t0, t0.Add(10*time.Hour)); d != 15*time.Second {
		t.Fatalf("first backoff %v, want 15s", d)
	}
	if d := Backoff(30, t0, t0.Add(100*time.Hour)); d != 10*time.Minute {
		t.Fatalf("backoff cap %v, want 10m", d)
	}
}

// memCache is an in-memory stand-in for the cache file so the keeper's
// decisions can be checked without a KDC; the end-to-end behaviour against
// a real KDC is in the renew command's tests.
type memCache struct {
	mu sync.Mutex
	cc *CCache
}

func (m *memCache) load() (*CCache, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.cc.Marshal()
	return ParseCCache(b)
}

func (m *memCache) store(cc *CCache) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cc = cc
	return nil
}

func TestKeeperStopsOnRejectionWithoutRetry(t *testing.T) {
	now := t0.Add(11 * time.Hour) // expired: must re-acquire
	tgt := tgtCred(t0, t0.Add(10*time.Hour), t0.Add(7*24*time.Hour), true)
	mc := &memCache{cc: &CCache{DefaultPrincipal: tgt.Client, Credentials: []Credential{*tgt}}}
	attempts := 0
	var last KeeperState
	k := &Keeper{
		Cache: "MEM:test", Load: mc.load, Store: mc.store,
		Renew: func(context.Context, *CCache) (*CCache, error) {
			t.Fatal("renew called on an expired ticket")
			return nil, nil
		},
		Acquire: func(context.Context, Principal) (*CCache, error) {
			attempts++
			return nil, errors.Join(ErrRejected, errors.New("password incorrect"))
		},
		Report: func(s KeeperState) { last = s },
		Now:    func() time.Time { return now },
	}
	err := k.Run(context.Background())
	if err == nil {
		t.Fatal("keeper returned nil after a rejected secret")
	}
	if attempts != 1 {
		t.Fatalf("secret tried %d times, want exactly 1", attempts)
	}
	if last.Running || last.Reason == "" || last.Stopped.IsZero() {
		t.Fatalf("state does not say why renewal stopped: %+v", last)
	}
}

func TestKeeperDoesNotClobberNewerTicket(t *testing.T) {
	now := t0.Add(6 * time.Hour)
	old := tgtCred(t0, t0.Add(10*time.Hour), t0.Add(7*24*time.Hour), true)
	mc := &memCache{cc: &CCache{DefaultPrincipal: old.Client, Credentials: []Credential{*old}}}
	// While the renewal is in flight the user runs kinit: a ticket with a
	// later auth time replaces the cache.
	newer := tgtCred(now, now.Add(10*time.Hour), now.Add(7*24*time.Hour), true)
	newer.Ticket = []byte("user's fresh ticket")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := &Keeper{
		Cache: "MEM:test", Load: mc.load, Store: mc.store,
		Renew: func(context.Context, *CCache) (*CCache, error) {
			mc.store(&CCache{DefaultPrincipal: newer.Client, Credentials: []Credential{*newer}})
			r := *old
			r.EndTime = now.Add(10 * time.Hour)
			r.Ticket = []byte("renewed old ticket")
			return &CCache{DefaultPrincipal: old.Client, Credentials: []Credential{r}}, nil
		},
		Report: func(s KeeperState) {
			if !s.NextCheck.IsZero() {
				cancel() // the keeper went back to waiting
			}
		},
		Now: func() time.Time { return now },
	}
	k.Run(ctx)
	cc, _ := mc.load()
	tgt, _ := cc.TGT()
	if string(tgt.Ticket) != "user's fresh ticket" {
		t.Fatalf("keeper overwrote the user's new ticket with %q", tgt.Ticket)
	}
}

// Issue 16: a renewed ticket the disk does not take (full disk) is kept in
// memory and written as soon as writing works again — also after the
// ticket on disk has expired — without asking the KDC again; the retries
// follow the ticket on disk.
func TestKeeperKeepsRenewedTicketUntilDiskTakesIt(t *testing.T) {
	now := t0.Add(6 * time.Minute)
	old := tgtCred(t0, t0.Add(10*time.Minute), t0.Add(7*24*time.Hour), true)
	old.Ticket = []byte("old")
	mc := &memCache{cc: &CCache{DefaultPrincipal: old.Client, Credentials: []Credential{*old}}}
	renewals, renewalsAtWrite := 0, 0
	full := true
	var reasons []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := &Keeper{
		Cache: "MEM:test", Load: mc.load,
		Update: func(_ context.Context, m func(*CCache) (*CCache, error)) error {
			if full {
				return &os.PathError{Op: "write", Path: "cache", Err: syscall.ENOSPC}
			}
			cur, _ := mc.load()
			next, err := m(cur)
			if err != nil {
				return err
			}
			return mc.store(next)
		},
		Renew: func(context.Context, *CCache) (*CCache, error) {
			renewals++
			r := *old
			r.EndTime = now.Add(10 * time.Minute)
			r.Ticket = []byte("renewed")
			return &CCache{DefaultPrincipal: old.Client, Credentials: []Credential{r}}, nil
		},
		Report: func(s KeeperState) {
			if s.Reason != "" {
				reasons = append(reasons, s.Reason)
			}
			if s.LastRenew.After(t0) && renewalsAtWrite == 0 {
				renewalsAtWrite = renewals
				cancel()
			}
		},
		Now: func() time.Time { return now },
	}
	k.sleepHook = func(d time.Duration) {
		if full && now.Add(d).After(old.EndTime.Add(time.Minute)) {
			t.Errorf("write retry after %v is past the end of the ticket on disk", d)
		}
		now = now.Add(d)
		// The disk frees up only after the ticket on disk expired.
		if now.After(old.EndTime.Add(30 * time.Second)) {
			full = false
		}
	}
	k.Run(ctx)
	cc, _ := mc.load()
	tgt, _ := cc.TGT()
	if string(tgt.Ticket) != "renewed" {
		t.Fatalf("cache holds %q, want the renewed ticket kept in memory", tgt.Ticket)
	}
	if renewalsAtWrite != 1 {
		t.Fatalf("%d renewals at the KDC, want 1 (the ticket in memory is written)", renewalsAtWrite)
	}
	if len(reasons) == 0 || !strings.Contains(reasons[0], "disk is full") {
		t.Fatalf("the write failure is not named: %q", reasons)
	}
}

// A renewal the KDC refuses for good while the ticket is still valid
// (Samba refuses a TGT in its last two minutes) falls back to one fresh
// acquisition when a keytab or stored password is there, instead of
// stopping and letting the ticket lapse.
func TestKeeperAcquiresWhenRenewalRefused(t *testing.T) {
	now := t0.Add(6 * time.Hour)
	old := tgtCred(t0, t0.Add(10*time.Hour), t0.Add(7*24*time.Hour), true)
	mc := &memCache{cc: &CCache{DefaultPrincipal: old.Client, Credentials: []Credential{*old}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	renewals, acquisitions := 0, 0
	k := &Keeper{
		Cache: "MEM:test", Load: mc.load, Store: mc.store,
		Renew: func(context.Context, *CCache) (*CCache, error) {
			renewals++
			return nil, errors.Join(ErrRejected, errors.New("ticket expired"))
		},
		Acquire: func(context.Context, Principal) (*CCache, error) {
			acquisitions++
			fresh := tgtCred(now, now.Add(10*time.Hour), now.Add(7*24*time.Hour), true)
			fresh.Ticket = []byte("fresh ticket")
			return &CCache{DefaultPrincipal: fresh.Client, Credentials: []Credential{*fresh}}, nil
		},
		Report: func(s KeeperState) {
			if !s.NextCheck.IsZero() && !s.LastRenew.IsZero() {
				cancel() // written, and waiting for the next renewal
			}
		},
		Now: func() time.Time { return now },
	}
	if err := k.Run(ctx); err != nil {
		t.Fatalf("keeper stopped: %v", err)
	}
	if renewals != 1 || acquisitions != 1 {
		t.Fatalf("renewals %d, acquisitions %d; want 1 and 1", renewals, acquisitions)
	}
	cc, _ := mc.load()
	if tgt, _ := cc.TGT(); string(tgt.Ticket) != "fresh ticket" {
		t.Fatalf("cache holds %q, want the freshly acquired ticket", tgt.Ticket)
	}
}
