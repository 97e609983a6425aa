package agent

import (
	"runtime"
	"testing"
	"time"
)

// After a burst of garbage, an idle moment gives the memory back: the
// heap's released bytes grow without anybody calling the GC.
func TestIdleTrimReleasesMemory(t *testing.T) {
	var m memTrimmer
	m.after = 50 * time.Millisecond
	var garbage [][]byte
	for i := 0; i < 64; i++ {
		garbage = append(garbage, make([]byte, 1<<20))
	}
	garbage = nil
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	m.touch()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		if now.HeapReleased > before.HeapReleased+32<<20 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle trim released %d bytes, want at least 32 MiB", now.HeapReleased-before.HeapReleased)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
