package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of the signals that trigger a lock.
const (
	login1Name    = "org.freedesktop.login1"
	login1Path    = "/org/freedesktop/login1"
	login1Manager = "org.freedesktop.login1.Manager"
	login1Session = "org.freedesktop.login1.Session"
	// Screen savers announce activation with ActiveChanged(true): KDE,
	// XFCE, Cinnamon, MATE and others on the freedesktop name, GNOME on
	// its own.
	fdoScreenSaver   = "org.freedesktop.ScreenSaver"
	gnomeScreenSaver = "org.gnome.ScreenSaver"
)

func systemBusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return "unix:path=/var/run/dbus/system_bus_socket"
}

// sessionBusAddress never starts a bus (no autolaunch, no dbus-launch): a
// headless login node without a session bus simply has no screen lock.
func sessionBusAddress() string {
	switch a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); {
	case a == "", a == "autolaunch:", strings.HasPrefix(a, "disabled:"):
	default:
		return a
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		p := filepath.Join(d, "bus")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix:path=" + p
		}
	}
	return ""
}

func connect(ctx context.Context, which, addr string) (*dbus.Conn, error) {
	if addr == "" {
		return nil, fmt.Errorf("%s bus: %w", which, ErrUnavailable)
	}
	c, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s bus: %w (%v)", which, ErrUnavailable, err)
	}
	return c, nil
}

func hasOwner(c *dbus.Conn, name string) bool {
	var ok bool
	err := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&ok)
	return err == nil && ok
}

// autoLock is what a trigger does: lock under the stored passphrase and
// report what stops it, except that it was already locked.
func (l *Locker) autoLock(reason Reason) {
	if err := l.LockNow(reason); err != nil && !errors.Is(err, ErrLocked) && !errors.Is(err, ErrClosed) {
		l.report(fmt.Errorf("lock on %s: %w", reason, err))
	}
}

// WatchSuspend locks (reason suspend) when systemd-logind announces
// PrepareForSleep(true) on the system bus. It takes a logind "delay" sleep
// inhibitor, so the machine waits for the lock to finish (up to logind's
// InhibitDelayMaxSec) before sleeping, and takes it again on resume. Only
// signals sent by logind itself are heeded.
//
// It returns once subscribed and watches until ctx is done. Without a
// system bus or logind it returns an error wrapping ErrUnavailable, which
// the caller should log at debug level and otherwise ignore.
func (l *Locker) WatchSuspend(ctx context.Context) error {
	c, err := connect(ctx, "system", systemBusAddress())
	if err != nil {
		return err
	}
	if !hasOwner(c, login1Name) {
		c.Close()
		return fmt.Errorf("systemd-logind: %w", ErrUnavailable)
	}
	if err := c.AddMatchSignal(
		dbus.WithMatchSender(login1Name),
		dbus.WithMatchObjectPath(login1Path),
		dbus.WithMatchInterface(login1Manager),
		dbus.WithMatchMember("PrepareForSleep"),
	); err != nil {
		c.Close()
		return fmt.Errorf("systemd-logind: %w", err)
	}
	ch := make(chan *dbus.Signal, 8)
	c.Signal(ch)
	owner := nameOwner(c, login1Name)
	inhibit := func() int {
		var fd dbus.UnixFD
		err := c.Object(login1Name, login1Path).Call(login1Manager+".Inhibit", 0,
			"sleep", "sesame", "lock the agent's keys before sleeping", "delay").Store(&fd)
		if err != nil {
			return -1 // not allowed, or an old logind: lock anyway, just later
		}
		return int(fd)
	}
	fd := inhibit()
	go func() {
		defer c.Close()
		defer func() {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-ch:
				if !ok {
					return
				}
				if s.Name != login1Manager+".PrepareForSleep" || len(s.Body) != 1 || (owner != "" && s.Sender != owner) {
					continue
				}
				if sleeping, _ := s.Body[0].(bool); sleeping {
					l.autoLock(ReasonSuspend)
					if fd >= 0 {
						syscall.Close(fd) // locked: sleep may proceed
						fd = -1
					}
				} else if fd < 0 {
					fd = inhibit()
				}
			}
		}
	}()
	return nil
}

func nameOwner(c *dbus.Conn, name string) string {
	var owner string
	if err := c.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner); err != nil {
		return ""
	}
	return owner
}

// WatchScreenLock locks (reason screen-lock) when the screen locks: a
// screen saver's ActiveChanged(true) on the session bus
// (org.freedesktop.ScreenSaver, org.gnome.ScreenSaver), or logind's Lock
// signal for this process's session on the system bus (sent by
// `loginctl lock-session` and by desktops that lock through logind).
//
// It returns once subscribed to at least one of them and watches until ctx
// is done. When neither is there it returns an error wrapping
// ErrUnavailable. It never starts a session bus.
func (l *Locker) WatchScreenLock(ctx context.Context) error {
	var errs []error
	watching := false
	if c, err := connect(ctx, "session", sessionBusAddress()); err != nil {
		errs = append(errs, err)
	} else {
		err := c.AddMatchSignal(dbus.WithMatchInterface(fdoScreenSaver), dbus.WithMatchMember("ActiveChanged"))
		if err == nil {
			err = c.AddMatchSignal(dbus.WithMatchInterface(gnomeScreenSaver), dbus.WithMatchMember("ActiveChanged"))
		}
		if err != nil {
			c.Close()
			errs = append(errs, fmt.Errorf("session bus: %w", err))
		} else {
			l.watchSignals(ctx, c, func(s *dbus.Signal) bool {
				if s.Name != fdoScreenSaver+".ActiveChanged" && s.Name != gnomeScreenSaver+".ActiveChanged" {
					return false
				}
				active, _ := firstBool(s)
				return active
			})
			watching = true
		}
	}
	if c, err := connect(ctx, "system", systemBusAddress()); err != nil {
		errs = append(errs, err)
	} else if session, err := ownSession(c); err != nil {
		c.Close()
		errs = append(errs, err)
	} else if err := c.AddMatchSignal(
		dbus.WithMatchSender(login1Name),
		dbus.WithMatchObjectPath(session),
		dbus.WithMatchInterface(login1Session),
		dbus.WithMatchMember("Lock"),
	); err != nil {
		c.Close()
		errs = append(errs, fmt.Errorf("systemd-logind: %w", err))
	} else {
		owner := nameOwner(c, login1Name)
		l.watchSignals(ctx, c, func(s *dbus.Signal) bool {
			return s.Name == login1Session+".Lock" && s.Path == session && (owner == "" || s.Sender == owner)
		})
		watching = true
	}
	if !watching {
		return fmt.Errorf("screen lock: %w", errors.Join(errs...))
	}
	return nil
}

// ownSession finds this process's logind session object.
func ownSession(c *dbus.Conn) (dbus.ObjectPath, error) {
	if !hasOwner(c, login1Name) {
		return "", fmt.Errorf("systemd-logind: %w", ErrUnavailable)
	}
	m := c.Object(login1Name, login1Path)
	var p dbus.ObjectPath
	err := m.Call(login1Manager+".GetSessionByPID", 0, uint32(os.Getpid())).Store(&p)
	if err != nil {
		if id := os.Getenv("XDG_SESSION_ID"); id != "" {
			err = m.Call(login1Manager+".GetSession", 0, id).Store(&p)
		}
	}
	if err != nil {
		return "", fmt.Errorf("no logind session: %w", ErrUnavailable)
	}
	return p, nil
}

func (l *Locker) watchSignals(ctx context.Context, c *dbus.Conn, fires func(*dbus.Signal) bool) {
	ch := make(chan *dbus.Signal, 8)
	c.Signal(ch)
	go func() {
		defer c.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-ch:
				if !ok {
					return
				}
				if fires(s) {
					l.autoLock(ReasonScreenLock)
				}
			}
		}
	}()
}

func firstBool(s *dbus.Signal) (bool, bool) {
	if len(s.Body) != 1 {
		return false, false
	}
	b, ok := s.Body[0].(bool)
	return b, ok
}
