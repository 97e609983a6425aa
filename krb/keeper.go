package krb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sesame-ssh/sesame/internal/atomicfile"
	"github.com/sesame-ssh/sesame/internal/paths"
	"github.com/sesame-ssh/sesame/internal/statefile"
)

// The keeper keeps one credentials cache's TGT alive: it renews the ticket
// before it expires, re-acquires a fresh one from a keytab or a stored
// password when it can no longer be renewed, and stops for good — recording
// why — when the KDC rejects the principal or the secret. It sleeps on a
// timer between actions; it never polls the KDC.
//
// When to renew: at half of the remaining lifetime (RenewFraction). That
// point survives a KDC outage as long as half the ticket's life (5 h for a
// 10 h ticket) with retries in between, and costs about two KDC requests per
// lifetime. Renewing later saves nothing worth having; renewing much earlier
// multiplies KDC traffic for long-running renewers across a cluster.

// RenewFraction is the fraction of a ticket's lifetime after which the
// keeper renews it.
const RenewFraction = 0.5

// Action is what the keeper decides to do next.
type Action int

const (
	// ActWait means nothing is due: sleep until the returned time.
	ActWait Action = iota
	// ActRenew means renew the TGT (TGS exchange with the RENEW option).
	ActRenew
	// ActAcquire means get a fresh TGT (AS exchange from a keytab or
	// stored password), because renewal cannot extend it far enough.
	ActAcquire
	// ActExpired means the ticket is gone and nothing can bring it back.
	ActExpired
)

func (a Action) String() string {
	switch a {
	case ActWait:
		return "wait"
	case ActRenew:
		return "renew"
	case ActAcquire:
		return "acquire"
	case ActExpired:
		return "expired"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Plan decides the keeper's next step for a TGT at time now. canAcquire
// says whether a fresh ticket can be obtained without the user (keytab or
// stored password). It returns the action and, for ActWait, when to wake.
func Plan(now time.Time, tgt *Credential, canAcquire bool) (Action, time.Time) {
	start := tgt.StartTime
	if start.IsZero() {
		start = tgt.AuthTime
	}
	end := tgt.EndTime
	if !now.Before(end) {
		// An expired TGT cannot be renewed; only a new AS exchange helps.
		if canAcquire {
			return ActAcquire, now
		}
		return ActExpired, now
	}
	life := end.Sub(start)
	if life <= 0 {
		life = end.Sub(now)
	}
	due := end.Add(-time.Duration(float64(life) * (1 - RenewFraction)))

	renewable := tgt.Flags&TktFlagRenewable != 0 && tgt.RenewTill.After(end)
	// Renewal is worthwhile only if it extends the ticket by a useful
	// amount: at least a quarter of its lifetime beyond the current end.
	worthRenewing := renewable && tgt.RenewTill.Sub(end) >= life/4
	if !worthRenewing {
		if canAcquire {
			// Re-acquire at the same point we would have renewed,
			// so an outage has the same margin.
			if now.Before(due) {
				return ActWait, due
			}
			return ActAcquire, now
		}
		if renewable {
			// A last short renewal up to renew_till is still better
			// than letting it lapse earlier.
			if now.Before(due) {
				return ActWait, due
			}
			return ActRenew, now
		}
		// Nothing to do until it expires; wake at the end to report it.
		return ActWait, end
	}
	if now.Before(due) {
		return ActWait, due
	}
	return ActRenew, now
}

// Backoff is the retry delay after the n-th consecutive transient failure
// (KDC unreachable, timeout): 15 s doubling to 10 min, but never past the
// point where the ticket expires, so a KDC that comes back is used while
// the ticket is still renewable.
func Backoff(n int, now, end time.Time) time.Duration {
	d := 15 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	if d > 10*time.Minute {
		d = 10 * time.Minute
	}
	// Leave room for one more attempt before the end.
	if left := end.Sub(now) / 2; left > time.Second && d > left {
		d = left
	}
	if d < time.Second {
		d = time.Second
	}
	return d
}

// maxSleep bounds a single sleep so that a suspended laptop or a stepped
// wall clock is noticed within minutes: Go timers follow the monotonic
// clock, which stops during suspend while ticket times are wall-clock.
const maxSleep = 10 * time.Minute

// ErrRejected marks a failure the KDC will keep giving (wrong password,
// revoked or expired principal, keytab without the principal). The keeper
// never retries it.
var ErrRejected = errors.New("rejected by the KDC")

// Rejected says whether err is final: the KDC refused the secret or the
// principal, or the ticket can no longer be renewed. Retrying such an error
// would at best loop and at worst lock the account. Unreachable KDCs, clock
// skew and local I/O errors are not final.
func Rejected(err error) bool {
	for _, final := range []error{ErrRejected, ErrWrongPassword, ErrPrincipalUnknown, ErrKeytab,
		ErrPasswordExpired, ErrAccountLocked, ErrNotRenewable, ErrTicketExpired, ErrNoTGT} {
		if errors.Is(err, final) {
			return true
		}
	}
	var ke *KDCError
	return errors.As(err, &ke) && !errors.Is(err, ErrClockSkew)
}

// KeeperState is what the keeper reports about itself; it is persisted so
// that klist, doctor and status can show why renewal stopped.
type KeeperState struct {
	Cache     string    `json:"cache"`
	Principal string    `json:"principal,omitempty"`
	Running   bool      `json:"running"`
	PID       int       `json:"pid,omitempty"` // the process that keeps it`
	LastRenew time.Time `json:"last_renew,omitempty"`
	NextCheck time.Time `json:"next_check,omitempty"`
	Stopped   time.Time `json:"stopped,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Failures  int       `json:"failures,omitempty"`
}

// Keeper keeps the TGT of one cache alive. Load, Store and Renew are
// required; Acquire is optional (nil: renewal only, like krenew).
type Keeper struct {
	Cache string // the cache's name, for reports
	// Load reads the cache as it is now on disk.
	Load func() (*CCache, error)
	// Store writes the cache atomically.
	Store func(*CCache) error
	// Renew returns cc with its TGT renewed (Client.Renew).
	Renew func(ctx context.Context, cc *CCache) (*CCache, error)
	// Acquire gets a fresh TGT for the principal (keytab or stored
	// password) in a new cache. It must make exactly one attempt with a
	// secret, and wrap ErrRejected (or a krb sentinel that Rejected
	// recognises) when the KDC refuses it.
	Acquire func(ctx context.Context, p Principal) (*CCache, error)
	// Report is called whenever the state changes (persist it, notify).
	Report func(KeeperState)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives debug logs; nil means slog.Default().
	Log *slog.Logger

	state KeeperState
}

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keeper) report() {
	if k.Report != nil {
		k.Report(k.state)
	}
}

func (k *Keeper) stop(reason string) error {
	k.state.Running = false
	k.state.Stopped = k.now()
	k.state.Reason = reason
	k.state.NextCheck = time.Time{}
	k.report()
	return fmt.Errorf("ticket renewal stopped: %s", reason)
}

// Run keeps the ticket alive until ctx is cancelled (returns nil) or
// renewal can no longer succeed (returns an error saying why).
func (k *Keeper) Run(ctx context.Context) error {
	log := k.Log
	if log == nil {
		log = slog.Default()
	}
	k.state = KeeperState{Cache: k.Cache, Running: true, PID: os.Getpid()}
	failures := 0
	for {
		cc, err := k.Load()
		if errors.Is(err, ErrNoCache) {
			// Removed (kdestroy, or a lock that stashed it): nothing
			// to keep, and nothing went wrong worth recording.
			k.state.Running = false
			return err
		}
		if err != nil {
			return k.stop(fmt.Sprintf("cannot read the cache: %v", err))
		}
		tgt, ok := cc.TGT()
		if !ok {
			return k.stop("the cache holds no ticket-granting ticket")
		}
		k.state.Principal = cc.DefaultPrincipal.String()
		// Ticket times are the KDC's clock; apply the recorded offset.
		now := k.now()
		if cc.HasKDCOffset {
			now = now.Add(cc.KDCOffset)
		}
		act, at := Plan(now, tgt, k.Acquire != nil)
		log.Debug("keeper plan", "cache", k.Cache, "action", act, "at", at, "end", tgt.EndTime, "renew_till", tgt.RenewTill)

		var got *CCache
		switch act {
		case ActExpired:
			return k.stop("the ticket expired and there is no keytab or stored password to get a new one")
		case ActWait:
			if failures == 0 {
				k.state.NextCheck = at
				k.report()
			}
			if err := k.sleep(ctx, at.Sub(now)); err != nil {
				return nil
			}
			continue
		case ActRenew:
			got, err = k.Renew(ctx, cc)
		case ActAcquire:
			got, err = k.Acquire(ctx, cc.DefaultPrincipal)
		}
		var fresh *Credential
		if err == nil {
			var ok bool
			if fresh, ok = got.TGT(); !ok {
				err = fmt.Errorf("the KDC reply held no ticket-granting ticket")
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if Rejected(err) {
				return k.stop(fmt.Sprintf("%s failed: %v", act, err))
			}
			failures++
			k.state.Failures = failures
			wait := Backoff(failures, now, tgt.EndTime)
			k.state.NextCheck = now.Add(wait)
			k.state.Reason = fmt.Sprintf("%s failed, retrying: %v", act, err)
			k.report()
			log.Debug("keeper retry", "cache", k.Cache, "err", err, "in", wait)
			if err := k.sleep(ctx, wait); err != nil {
				return nil
			}
			continue
		}
		// Re-read just before writing: if the user ran kinit meanwhile
		// (a different principal, or a TGT newer than ours), keep theirs.
		cur, err := k.Load()
		if err == nil {
			if t, ok := cur.TGT(); ok && (!cur.DefaultPrincipal.Equal(cc.DefaultPrincipal) || t.AuthTime.After(tgt.AuthTime) || t.EndTime.After(fresh.EndTime)) {
				log.Debug("keeper: cache was replaced, adopting it", "cache", k.Cache)
				failures = 0
				continue
			}
			cc = cur
		}
		cc.Upsert(*fresh)
		if got.HasKDCOffset {
			cc.SetKDCOffset(got.KDCOffset)
		}
		if err := k.Store(cc); err != nil {
			// A full disk or a vanished directory: the ticket is
			// still valid in memory; retry like a KDC outage.
			failures++
			k.state.Reason = fmt.Sprintf("cannot write the cache: %v", err)
			k.report()
			if err := k.sleep(ctx, Backoff(failures, now, fresh.EndTime)); err != nil {
				return nil
			}
			continue
		}
		failures = 0
		k.state.Failures = 0
		k.state.Reason = ""
		k.state.LastRenew = k.now()
		k.report()
	}
}

// sleep waits for d (bounded by maxSleep) or until ctx ends.
func (k *Keeper) sleep(ctx context.Context, d time.Duration) error {
	if d > maxSleep {
		d = maxSleep
	}
	if d < 0 {
		d = 0
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// KeeperStatePath is where the state of the keeper of cache (its name as
// CacheName.String gives it) is recorded, under the state directory.
func KeeperStatePath(cache string) string {
	sum := sha256.Sum256([]byte(cache))
	return filepath.Join(paths.State(), "renew", hex.EncodeToString(sum[:8])+".json")
}

// SaveKeeperState records s atomically (mode 0600 in a 0700 directory).
func SaveKeeperState(s KeeperState) error {
	p := KeeperStatePath(s.Cache)
	if err := paths.EnsureDir(filepath.Dir(p)); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(p, append(b, '\n'), 0o600)
}

// LoadKeeperState returns the recorded state of the keeper of cache.
// A file that does not parse is set aside with a warning (the renewer
// writes a new one at its next step).
func LoadKeeperState(cache string) (KeeperState, bool) {
	var s KeeperState
	p := KeeperStatePath(cache)
	b, err := os.ReadFile(p)
	if err != nil {
		return s, false
	}
	if err := json.Unmarshal(b, &s); err != nil {
		statefile.SetAside(p, "renewal state file", "not valid JSON")
		return KeeperState{}, false
	}
	if s.Cache != cache {
		return s, false
	}
	return s, true
}

// ClearKeeperState forgets the recorded state (after a new kinit, the
// reason an earlier keeper stopped no longer applies).
func ClearKeeperState(cache string) { os.Remove(KeeperStatePath(cache)) }

// StoppedNote is one line saying when and why renewal of cache stopped,
// or "" when it did not.
func StoppedNote(cache string) string {
	s, ok := LoadKeeperState(cache)
	if !ok || s.Running || s.Stopped.IsZero() {
		return ""
	}
	return fmt.Sprintf("Renewal stopped %s: %s", s.Stopped.Local().Format("01/02/06 15:04:05"), s.Reason)
}
