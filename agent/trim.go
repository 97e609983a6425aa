package agent

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// memTrimmer gives memory back to the system once the agent has been idle
// for a moment. A burst of signatures grows the heap; Go's background
// scavenger would return it only slowly, and an agent spends nearly all its
// life idle, where its resident size is what users see (and compare with
// ssh-agent's).
type memTrimmer struct {
	after time.Duration
	last  atomic.Int64 // unix nanos of the last request
	mu    sync.Mutex
	armed bool
}

const idleTrimAfter = 2 * time.Second

// touch records activity and arms the trim if it is not armed yet. It is
// called once per request: one atomic store, and a lock only when arming.
func (m *memTrimmer) touch() {
	if m.after <= 0 {
		return
	}
	m.last.Store(time.Now().UnixNano())
	m.mu.Lock()
	if !m.armed {
		m.armed = true
		time.AfterFunc(m.after, m.fire)
	}
	m.mu.Unlock()
}

func (m *memTrimmer) fire() {
	idle := time.Since(time.Unix(0, m.last.Load()))
	if idle < m.after {
		time.AfterFunc(m.after-idle, m.fire)
		return
	}
	m.mu.Lock()
	m.armed = false
	m.mu.Unlock()
	debug.FreeOSMemory()
}
