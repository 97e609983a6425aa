package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// logind stands in for systemd-logind, which needs systemd as PID 1: it
// owns the name, hands out sleep inhibitors, knows one session, and emits
// the signals. Everything between it and the Locker is a real bus.
type logind struct {
	conn       *dbus.Conn
	mu         sync.Mutex
	inhibitors int
	readEnds   []*os.File
	sent       []int // our copies of the write ends handed out
}

const testSession = dbus.ObjectPath("/org/freedesktop/login1/session/_31")

func (f *logind) Inhibit(what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, dbus.MakeFailedError(err)
	}
	f.mu.Lock()
	f.inhibitors++
	f.readEnds = append(f.readEnds, r)
	f.mu.Unlock()
	// The bus library sends a copy and leaves ours open; the test closes
	// ours once the reply is surely out (closeSent), after which the read
	// end sees EOF exactly when the Locker releases its copy.
	fd, _ := syscall.Dup(int(w.Fd()))
	w.Close()
	f.mu.Lock()
	f.sent = append(f.sent, fd)
	f.mu.Unlock()
	return dbus.UnixFD(fd), nil
}

func (f *logind) GetSessionByPID(pid uint32) (dbus.ObjectPath, *dbus.Error) {
	return testSession, nil
}

func startLogind(t *testing.T, addr string) *logind {
	t.Helper()
	c, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f := &logind{conn: c}
	if err := c.Export(f, login1Path, login1Manager); err != nil {
		t.Fatal(err)
	}
	if r, err := c.RequestName(login1Name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", r, err)
	}
	return f
}

func (f *logind) closeSent() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fd := range f.sent {
		syscall.Close(fd)
	}
	f.sent = nil
}

func (f *logind) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inhibitors
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type slowHolder struct{ d time.Duration }

func (h slowHolder) Seal(*Vault) error              { time.Sleep(h.d); return nil }
func (h slowHolder) Unseal(map[string][]byte) error { return nil }

func TestWatchUnavailable(t *testing.T) {
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "none"))
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "disabled:")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	l := New(Options{KDF: cheap})
	if err := l.WatchSuspend(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("suspend without a bus: %v", err)
	}
	if err := l.WatchScreenLock(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("screen lock without a bus: %v", err)
	}
	// A bus without logind or screen saver: still unavailable for suspend.
	addr := testbed.NewBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	if err := l.WatchSuspend(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("suspend without logind: %v", err)
	}
}

func TestWatchSuspend(t *testing.T) {
	addr := testbed.NewBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	f := startLogind(t, addr)
	l := New(Options{KDF: cheap})
	// A holder slow to seal, so that releasing the inhibitor before the
	// lock is complete would be seen.
	l.AddHolder(slowHolder{300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.WatchSuspend(ctx); err != nil {
		t.Fatal(err)
	}
	if f.count() != 1 {
		t.Fatalf("%d inhibitors taken, want 1", f.count())
	}
	// A PrepareForSleep from someone other than logind is ignored.
	other, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l.SetPassphrase([]byte("pw"))
	other.Emit(login1Path, login1Manager+".PrepareForSleep", true)
	time.Sleep(200 * time.Millisecond)
	if l.Locked() {
		t.Fatal("locked on a forged PrepareForSleep")
	}

	// The inhibitor is released only once locked. WatchSuspend returned
	// after the Inhibit reply, so the descriptor has been sent.
	f.closeSent()
	f.mu.Lock()
	r := f.readEnds[0]
	f.mu.Unlock()
	released := make(chan bool, 1)
	go func() {
		var b [1]byte
		r.Read(b[:]) // EOF when every write end is closed
		released <- l.Locked()
	}()
	if err := f.conn.Emit(login1Path, login1Manager+".PrepareForSleep", true); err != nil {
		t.Fatal(err)
	}
	select {
	case locked := <-released:
		if !locked {
			t.Fatal("sleep inhibitor released before the lock")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sleep inhibitor never released")
	}
	if st := l.Status(); !st.Locked || st.Reason != ReasonSuspend {
		t.Fatalf("status %+v", st)
	}
	// On resume a new inhibitor is taken.
	f.conn.Emit(login1Path, login1Manager+".PrepareForSleep", false)
	waitFor(t, "a new inhibitor", func() bool { return f.count() == 2 })
}

func TestWatchScreenLock(t *testing.T) {
	addr := testbed.NewBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	f := startLogind(t, addr)
	var reported []error
	var mu sync.Mutex
	l := New(Options{KDF: cheap, OnError: func(e error) { mu.Lock(); reported = append(reported, e); mu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.WatchScreenLock(ctx); err != nil {
		t.Fatal(err)
	}
	// No passphrase yet: reported, not locked.
	f.conn.Emit("/ScreenSaver", fdoScreenSaver+".ActiveChanged", true)
	waitFor(t, "a report", func() bool { mu.Lock(); defer mu.Unlock(); return len(reported) == 1 })
	if !errors.Is(reported[0], ErrNoPassphrase) || l.Locked() {
		t.Fatalf("reported %v, locked %v", reported, l.Locked())
	}
	l.SetPassphrase([]byte("pw"))
	for _, tc := range []struct {
		name string
		emit func() error
	}{
		{"freedesktop screen saver", func() error {
			return f.conn.Emit("/org/freedesktop/ScreenSaver", fdoScreenSaver+".ActiveChanged", true)
		}},
		{"gnome screen saver", func() error {
			return f.conn.Emit("/org/gnome/ScreenSaver", gnomeScreenSaver+".ActiveChanged", true)
		}},
		{"logind session lock", func() error {
			return f.conn.Emit(testSession, login1Session+".Lock")
		}},
	} {
		// Deactivation and another session's lock do nothing.
		f.conn.Emit("/ScreenSaver", fdoScreenSaver+".ActiveChanged", false)
		f.conn.Emit("/org/freedesktop/login1/session/_32", login1Session+".Lock")
		time.Sleep(100 * time.Millisecond)
		if l.Locked() {
			t.Fatalf("%s: locked by an unrelated signal", tc.name)
		}
		if err := tc.emit(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tc.name, l.Locked)
		if r := l.Status().Reason; r != ReasonScreenLock {
			t.Fatalf("%s: reason %q", tc.name, r)
		}
		if err := l.Unlock(context.Background(), []byte("pw")); err != nil {
			t.Fatal(err)
		}
	}
	// After ctx is done, signals are no longer heeded.
	cancel()
	time.Sleep(200 * time.Millisecond)
	f.conn.Emit("/ScreenSaver", fdoScreenSaver+".ActiveChanged", true)
	time.Sleep(200 * time.Millisecond)
	if l.Locked() {
		t.Fatal("locked after the watch was cancelled")
	}
}
