package lock

import (
	"context"
	"time"
)

// The delay after the n-th consecutive wrong passphrase is
// BackoffBase × 2^(n−1), capped at BackoffMax (100 ms, 200 ms, 400 ms, …,
// 10 s from the 8th on, with the defaults). A typo costs a tenth of a
// second; a guesser reaches the cap after 7 tries and then gets 360 tries
// an hour, where OpenSSH's linear 0.1 s × n needs 100 failures (and about
// eight minutes of free guessing) to get there. The delay is global to the
// Locker, not per connection, and a success resets it.
func (l *Locker) delay(n int) time.Duration {
	d := l.opts.BackoffBase
	for i := 1; i < n && d < l.opts.BackoffMax; i++ {
		d *= 2
	}
	return min(d, l.opts.BackoffMax)
}

// fail records a wrong passphrase and returns the penalty. l.mu must be
// held (it updates the status).
func (l *Locker) fail() time.Duration {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	l.failures++
	d := l.delay(l.failures)
	l.notBefore = time.Now().Add(d)
	n := l.failures
	l.setStatus(func(s *Status) { s.Failures = n })
	return d
}

func (l *Locker) succeed() {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	l.failures = 0
	l.notBefore = time.Time{}
}

// waitBackoff waits until the penalty of the last failure has passed.
func (l *Locker) waitBackoff(ctx context.Context) error {
	l.bmu.Lock()
	until := l.notBefore
	l.bmu.Unlock()
	if d := time.Until(until); d > 0 {
		return sleepCtx(ctx, d)
	}
	return nil
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
