package krb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
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

// KDCRefusalMargin is how long before a TGT's end some KDCs already refuse
// to renew it: Samba's AD DC rejects a TGT about 120 s before it expires.
// The keeper acts at least this long before the end when the ticket's
// lifetime allows it, so that a short ticket is not renewed too late.
const KDCRefusalMargin = 150 * time.Second

// renewLead is how long before the end of a ticket with the given lifetime
// the keeper renews it: RenewFraction of the lifetime, but at least
// KDCRefusalMargin, and never before a quarter of the lifetime has passed
// (so a very short ticket is not renewed in a loop).
func renewLead(life time.Duration) time.Duration {
	lead := time.Duration(float64(life) * (1 - RenewFraction))
	if lead < KDCRefusalMargin {
		lead = min(KDCRefusalMargin, life*3/4)
	}
	return lead
}

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
	due := end.Add(-renewLead(life))

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
	// TwoFactor: the ticket came from a one-time password; Ends is when
	// it ends for good, and Warning what the user was told ahead of it.
	TwoFactor bool      `json:"two_factor,omitempty"`
	Ends      time.Time `json:"ends,omitempty"`
	Warning   string    `json:"warning,omitempty"`
}

// Keeper keeps the TGT of one cache alive. Load, Store and Renew are
// required; Acquire is optional (nil: renewal only, like krenew).
type Keeper struct {
	Cache string // the cache's name, for reports
	// Load reads the cache as it is now on disk.
	Load func() (*CCache, error)
	// Store writes the cache atomically. Update, when set, is used
	// instead of Load and Store for writing.
	Store func(*CCache) error
	// Update is a locked read-modify-write of the cache (UpdateCCache):
	// modify gets the cache as it is on disk under the lock.
	Update func(ctx context.Context, modify func(cur *CCache) (*CCache, error)) error
	// Renew returns cc with its TGT renewed (Client.Renew).
	Renew func(ctx context.Context, cc *CCache) (*CCache, error)
	// Acquire gets a fresh TGT for the principal (keytab or stored
	// password) in a new cache. It must make exactly one attempt with a
	// secret, and wrap ErrRejected (or a krb sentinel that Rejected
	// recognises) when the KDC refuses it.
	Acquire func(ctx context.Context, p Principal) (*CCache, error)
	// Secret names the secret Acquire would send for p ("stored
	// password", "keytab key version 3") and returns its fingerprint
	// (PasswordFingerprint, KeytabFingerprint). With it, a secret the KDC
	// rejected is recorded and never sent again, by this or any other
	// process, until it changes. Nil: rejections are not recorded.
	Secret func(p Principal) (what, fingerprint string, err error)
	// SecretScope is the cache name rejections are recorded under; empty
	// means Cache. A keeper of a private copy of the user's cache (renew
	// -- COMMAND) records them under the user's cache.
	SecretScope string
	// Report is called whenever the state changes (persist it, notify).
	Report func(KeeperState)
	// Warn, when set, tells the user once that a two-factor ticket will
	// end soon and needs them (a desktop notification).
	Warn func(msg string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives debug logs; nil means slog.Default().
	Log *slog.Logger

	state     KeeperState
	sleepHook func(time.Duration)
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

// StopError is the error of a keeper that stopped for good: the KDC
// rejected the secret or the principal, the ticket expired with nothing to
// get a new one, or the cache cannot be written. Starting another keeper
// on the same cache does not help until the user acts.
type StopError struct {
	Reason string
	Err    error // the underlying cause, when there is one
}

func (e *StopError) Error() string { return "ticket renewal stopped: " + e.Reason }

// Unwrap returns the cause.
func (e *StopError) Unwrap() error { return e.Err }

func (k *Keeper) stop(reason string) error { return k.stopErr(reason, nil) }

func (k *Keeper) stopErr(reason string, cause error) error {
	k.state.Running = false
	k.state.Stopped = k.now()
	k.state.Reason = reason
	k.state.NextCheck = time.Time{}
	k.report()
	return &StopError{Reason: reason, Err: cause}
}

func (k *Keeper) secretScope() string {
	if k.SecretScope != "" {
		return k.SecretScope
	}
	return k.Cache
}

// secretRejected checks the secret Acquire would send for p against the
// recorded rejections. It returns the secret's name and fingerprint ("" if
// unknown) and, when that very secret was rejected before, why.
func (k *Keeper) secretRejected(p Principal) (what, fp string, rejected *Rejection) {
	if k.Secret == nil {
		return "", "", nil
	}
	what, fp, err := k.Secret(p)
	if err != nil || fp == "" {
		return what, "", nil
	}
	if r, ok := FindRejection(k.secretScope(), p.String(), fp); ok {
		return what, fp, &r
	}
	return what, fp, nil
}

// pendingWrite is a renewed or fresh TGT the keeper got from the KDC but
// could not write yet, and the cache TGT it replaces.
type pendingWrite struct {
	got   *CCache
	fresh *Credential
	base  Credential
}

// sameTicket reports whether a and b are the same ticket.
func sameTicket(a, b *Credential) bool {
	return bytes.Equal(a.Ticket, b.Ticket) && a.EndTime.Equal(b.EndTime) && a.Server.Equal(b.Server)
}

// maxWriteRetry bounds the wait between attempts to write a renewed ticket
// the disk did not take, so that it lands soon after writing works again.
const maxWriteRetry = 15 * time.Second

// Run keeps the ticket alive until ctx is cancelled (returns nil) or
// renewal can no longer succeed (returns an error saying why).
func (k *Keeper) Run(ctx context.Context) error {
	log := k.Log
	if log == nil {
		log = slog.Default()
	}
	k.state = KeeperState{Cache: k.Cache, Running: true, PID: os.Getpid()}
	failures := 0
	var pending *pendingWrite
	var writeErr error // the last failure to write the cache, if any
	for {
		cc, err := k.Load()
		if errors.Is(err, ErrNoCache) {
			// Removed (kdestroy, or a lock that stashed it): nothing
			// to keep, and nothing went wrong worth recording. It is
			// never brought back.
			k.state.Running = false
			return fmt.Errorf("%w; renewal stops and does not bring it back", err)
		}
		if err != nil {
			return k.stopErr(fmt.Sprintf("cannot read the cache: %v", err), err)
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
		// A ticket renewed earlier but not written (full disk) is not
		// thrown away while it is valid and the cache still holds the
		// ticket it replaces; otherwise the cache on disk rules.
		if pending != nil && (!pending.fresh.Valid(now) || !sameTicket(tgt, &pending.base)) {
			pending = nil
		}
		var got *CCache
		var fresh *Credential
		act := ActRenew
		// A two-factor ticket is never re-acquired with a stored secret.
		twoFactor := TwoFactor(cc)
		canAcquire := k.Acquire != nil && !twoFactor
		k.state.TwoFactor = twoFactor
		k.state.Ends = time.Time{}
		if twoFactor {
			k.state.Ends = FinalEnd(tgt)
		}
		if pending != nil {
			got, fresh = pending.got, pending.fresh
		} else {
			var at time.Time
			act, at = Plan(now, tgt, canAcquire)
			if twoFactor && act == ActWait {
				at = k.twoFactorWarning(now, at, tgt)
			}
			log.Debug("keeper plan", "cache", k.Cache, "action", act, "at", at, "end", tgt.EndTime, "renew_till", tgt.RenewTill)
			switch act {
			case ActExpired:
				if writeErr != nil {
					return k.stopErr(fmt.Sprintf("the ticket expired: the renewed ticket could not be written to the cache (%s)", describeWriteError(writeErr)), writeErr)
				}
				if twoFactor {
					return k.stop(fmt.Sprintf("the two-factor ticket of %s has ended; only you can get a new one: run sesame kinit with a new code", cc.DefaultPrincipal))
				}
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
				// A renewal the KDC refuses for good (Samba refuses a
				// TGT in its last two minutes; a KDC policy may end
				// renewal early) is not the end while a keytab or a
				// stored password can get a fresh ticket.
				if err != nil && Rejected(err) && canAcquire && ctx.Err() == nil {
					log.Debug("keeper: renewal refused, getting a fresh ticket", "cache", k.Cache, "err", err)
					act = ActAcquire
					var stop error
					if got, err, stop = k.acquire(ctx, cc.DefaultPrincipal, log); stop != nil {
						return stop
					}
				}
			case ActAcquire:
				var stop error
				if got, err, stop = k.acquire(ctx, cc.DefaultPrincipal, log); stop != nil {
					return stop
				}
			}
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
					return k.stopErr(fmt.Sprintf("%s failed: %v", act, err), err)
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
		}
		err = k.write(ctx, cc.DefaultPrincipal, tgt, fresh, got)
		switch {
		case errors.Is(err, ErrCacheChanged):
			// The user ran kinit (another principal, another ticket)
			// or another renewer got there first: keep theirs and
			// follow it.
			log.Debug("keeper: the cache was replaced meanwhile, following it", "cache", k.Cache)
			pending, writeErr, failures = nil, nil, 0
			continue
		case errors.Is(err, ErrNoCache):
			k.state.Running = false
			return fmt.Errorf("the cache was removed while its ticket was being renewed; it stays removed: %w", err)
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			writeErr = err
			if !transientWriteError(err) {
				return k.stopErr("cannot write the cache: "+describeWriteError(err), err)
			}
			// The ticket is valid in memory: keep it and write it as
			// soon as the disk takes it. The wait follows the ticket
			// on disk, which is the one that runs out.
			pending = &pendingWrite{got: got, fresh: fresh, base: *tgt}
			failures++
			wait := min(Backoff(failures, now, tgt.EndTime), maxWriteRetry)
			k.state.Failures = failures
			k.state.NextCheck = now.Add(wait)
			k.state.Reason = "cannot write the cache, retrying: " + describeWriteError(err)
			k.report()
			log.Debug("keeper write retry", "cache", k.Cache, "err", err, "in", wait)
			if err := k.sleep(ctx, wait); err != nil {
				return nil
			}
			continue
		}
		pending, writeErr, failures = nil, nil, 0
		k.state.Failures = 0
		k.state.Reason = ""
		k.state.LastRenew = k.now()
		k.report()
	}
}

// acquire gets a fresh TGT for p through Acquire, unless the secret it
// would send was rejected before (then stop is the keeper's final error and
// nothing is sent). A rejection of the secret now is recorded, so that no
// sesame process sends it again until it changes.
func (k *Keeper) acquire(ctx context.Context, p Principal, log *slog.Logger) (got *CCache, err, stop error) {
	what, fp, rej := k.secretRejected(p)
	if rej != nil {
		when := ""
		if !rej.When.IsZero() {
			when = " on " + rej.When.Local().Format("01/02/06 15:04:05")
		}
		return nil, nil, k.stopErr(fmt.Sprintf("the %s for %s was rejected by the KDC%s (%s); it is not sent again until it changes",
			what, rej.Principal, when, rej.Reason), ErrRejected)
	}
	got, err = k.Acquire(ctx, p)
	if err != nil && Rejected(err) && fp != "" && ctx.Err() == nil {
		r := Rejection{Cache: k.secretScope(), Principal: p.String(), Secret: what,
			Fingerprint: fp, When: k.now(), Reason: err.Error()}
		if rerr := RecordRejection(r); rerr != nil {
			log.Warn("cannot record the rejected secret", "err", rerr)
		}
	}
	return got, err, nil
}

// write stores fresh (from the KDC reply got) in the cache, provided the
// cache still holds principal's ticket base; otherwise ErrCacheChanged.
// Other entries (service tickets stored meanwhile) are kept.
func (k *Keeper) write(ctx context.Context, principal Principal, base, fresh *Credential, got *CCache) error {
	apply := func(cur *CCache) (*CCache, error) {
		t, ok := cur.TGT()
		if !ok || !cur.DefaultPrincipal.Equal(principal) || !sameTicket(t, base) {
			return nil, ErrCacheChanged
		}
		cur.Upsert(*fresh)
		if got.HasKDCOffset {
			cur.SetKDCOffset(got.KDCOffset)
		}
		return cur, nil
	}
	if k.Update != nil {
		return k.Update(ctx, apply)
	}
	cur, err := k.Load()
	if err != nil {
		return err
	}
	next, err := apply(cur)
	if err != nil {
		return err
	}
	return k.Store(next)
}

// transientWriteError says whether a failure to write the cache may go
// away by itself (a full disk, an I/O error); a permission problem, a
// read-only file system or a symbolic link will not.
func transientWriteError(err error) bool {
	for _, e := range []error{syscall.EACCES, syscall.EPERM, syscall.EROFS, syscall.ELOOP} {
		if errors.Is(err, e) {
			return false
		}
	}
	var fe *CCacheFormatError
	return !errors.As(err, &fe)
}

// describeWriteError names the cause of a failed write in words.
func describeWriteError(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full: " + err.Error()
	case errors.Is(err, syscall.EDQUOT):
		return "the disk quota is exhausted: " + err.Error()
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission denied: " + err.Error()
	case errors.Is(err, syscall.EROFS):
		return "the file system is read-only: " + err.Error()
	}
	return err.Error()
}

// sleep waits for d (bounded by maxSleep) or until ctx ends.
func (k *Keeper) sleep(ctx context.Context, d time.Duration) error {
	if d > maxSleep {
		d = maxSleep
	}
	if d < 0 {
		d = 0
	}
	if k.sleepHook != nil { // tests: a fake clock
		k.sleepHook(d)
		return ctx.Err()
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
func SaveKeeperState(s KeeperState) error { return saveStateJSON(KeeperStatePath(s.Cache), s) }

// saveStateJSON writes v as JSON to the state file p, atomically, mode
// 0600 in a 0700 directory.
func saveStateJSON(p string, v any) error {
	if err := paths.EnsureDir(filepath.Dir(p)); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
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

// twoFactorWarning tells the user, once, that a two-factor ticket ends
// soon (TwoFactorNotice before its final end), and returns when the
// keeper should next wake: at the notice time when that comes before at.
func (k *Keeper) twoFactorWarning(now, at time.Time, tgt *Credential) time.Time {
	end := FinalEnd(tgt)
	warnAt := end.Add(-TwoFactorNotice(tgt))
	if now.Before(warnAt) {
		k.state.Warning = ""
		if warnAt.Before(at) {
			return warnAt
		}
		return at
	}
	if k.state.Warning == "" {
		k.state.Warning = fmt.Sprintf("the two-factor ticket of %s ends at %s and cannot be renewed further; run sesame kinit with a new code before then",
			tgt.Client, end.Local().Format(time.DateTime))
		if k.Warn != nil {
			k.Warn(k.state.Warning)
		}
		k.report()
	}
	return at
}
