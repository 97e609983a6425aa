package lock

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// idleState is the idle auto-lock: one timer, no polling. Touch only stores
// a timestamp; when the timer fires it compares with the last use and
// either locks or re-arms for the remainder, so a busy agent costs one
// wake-up per idle period.
//
// What counts as use is the caller's choice; the agent should Touch on
// signing and on adding keys, not on listing identities, so that a prompt
// or a monitoring loop running `ssh-add -l` does not keep keys unlocked.
// Idle never locks while a Hold is outstanding (a signature waiting for
// confirmation, a request being served), while locked, or during an unlock
// attempt (the state is locked then). The clock is the monotonic one,
// which on Linux stops while the machine sleeps: time suspended does not
// count as idle, because suspend has its own trigger (WatchSuspend).
type idleState struct {
	mu      sync.Mutex
	d       time.Duration
	timer   *time.Timer
	lastUse atomic.Int64 // time.Since(epoch) at the last Touch
	holds   atomic.Int32
}

// Touch records a use, postponing the idle lock. It never blocks.
func (l *Locker) Touch() {
	l.idle.lastUse.Store(int64(time.Since(l.epoch)))
}

// Hold keeps the idle timer from locking until release is called (release
// also counts as a use). Use it around work that may take longer than the
// idle period, such as a signature waiting for the user's confirmation.
// Explicit and suspend locks are not held back.
func (l *Locker) Hold() (release func()) {
	l.idle.holds.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			l.Touch()
			l.idle.holds.Add(-1)
		})
	}
}

// SetIdle changes the idle period (zero disables) and restarts the count.
func (l *Locker) SetIdle(d time.Duration) {
	l.idle.mu.Lock()
	l.idle.d = max(d, 0)
	l.idle.mu.Unlock()
	l.idleStop()
	l.idleArm()
}

// idleArm starts the timer for a full period from now, when enabled and
// unlocked.
func (l *Locker) idleArm() {
	l.Touch()
	l.idle.mu.Lock()
	defer l.idle.mu.Unlock()
	if l.idle.d == 0 || l.Locked() {
		return
	}
	if l.idle.timer == nil {
		l.idle.timer = time.AfterFunc(l.idle.d, l.idleFire)
	} else {
		l.idle.timer.Reset(l.idle.d)
	}
}

func (l *Locker) idleStop() {
	l.idle.mu.Lock()
	defer l.idle.mu.Unlock()
	if l.idle.timer != nil {
		l.idle.timer.Stop()
	}
}

func (l *Locker) idleFire() {
	l.idle.mu.Lock()
	d := l.idle.d
	if d == 0 || l.Locked() {
		l.idle.mu.Unlock()
		return // re-armed by the next unlock
	}
	if l.idle.holds.Load() > 0 {
		l.idle.timer.Reset(d)
		l.idle.mu.Unlock()
		return
	}
	since := time.Since(l.epoch) - time.Duration(l.idle.lastUse.Load())
	if since < d {
		l.idle.timer.Reset(d - since)
		l.idle.mu.Unlock()
		return
	}
	l.idle.mu.Unlock()
	err := l.LockNow(ReasonIdle)
	switch {
	case err == nil, errors.Is(err, ErrLocked), errors.Is(err, ErrClosed):
	default:
		// No passphrase yet: say so, and try again a period later.
		l.report(err)
		l.idleArm()
	}
}
