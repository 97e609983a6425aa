package lock

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Guard is the one back-off and failure count that every passphrase check
// of a program goes through: unlocking a Locker, opening a key store with
// a passphrase a client sent, anything else that tells a guesser whether a
// guess was right. Counting them apart would let a guesser alternate
// between them and get each one's free tries.
//
// The delay after the n-th consecutive wrong passphrase is
// Base × 2^(n−1), capped at Max (100 ms, 200 ms, 400 ms, …, 10 s from the
// 8th on, with the defaults). A typo costs a tenth of a second; a guesser
// reaches the cap after 7 tries and then gets 360 tries an hour, where
// OpenSSH's linear 0.1 s × n needs 100 failures (and about eight minutes of
// free guessing) to get there. The delay is global, not per connection,
// and only a successful check resets it.
type Guard struct {
	base, max time.Duration

	// attempt admits one check at a time, so parallel guessing gains
	// nothing and at most one slow KDF runs for guessers.
	attempt chan struct{}

	mu        sync.Mutex
	failures  int
	notBefore time.Time
}

// NewGuard returns a Guard with the given delays (zero: 100 ms and 10 s).
func NewGuard(base, max time.Duration) *Guard {
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if max <= 0 {
		max = 10 * time.Second
	}
	return &Guard{base: base, max: max, attempt: make(chan struct{}, 1)}
}

// Attempt runs check as one passphrase attempt: after the attempts before
// it and the penalty of their failures. A check whose error wraps
// ErrBadPassphrase is a failure, and its caller serves the new penalty
// before Attempt returns, still holding the attempt slot, so that one
// connection guessing in a loop is slowed as much as many are. A nil
// error resets the count; any other error leaves it as it is. A caller may
// give up waiting through ctx (ctx.Err() is returned, check not run); a
// penalty once started still applies to the next attempt.
func (g *Guard) Attempt(ctx context.Context, check func() error) error {
	select {
	case g.attempt <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.attempt }()
	g.mu.Lock()
	until := g.notBefore
	g.mu.Unlock()
	if d := time.Until(until); d > 0 {
		if err := sleepCtx(ctx, d); err != nil {
			return err
		}
	}
	err := check()
	switch {
	case err == nil:
		g.record(false)
	case errors.Is(err, ErrBadPassphrase):
		sleepCtx(ctx, g.record(true))
	}
	return err
}

// Failures is the number of wrong passphrases since the last success.
func (g *Guard) Failures() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failures
}

// record counts a failure (returning its penalty) or a success.
func (g *Guard) record(failed bool) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var d time.Duration
	if failed {
		g.failures++
		d = g.delay(g.failures)
		g.notBefore = time.Now().Add(d)
	} else {
		g.failures = 0
		g.notBefore = time.Time{}
	}
	return d
}

func (g *Guard) delay(n int) time.Duration {
	d := g.base
	for i := 1; i < n && d < g.max; i++ {
		d *= 2
	}
	return min(d, g.max)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
