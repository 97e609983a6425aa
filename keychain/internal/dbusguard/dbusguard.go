// Package dbusguard keeps github.com/99designs/keyring from starting an
// orphan dbus-launch on a machine without a session bus.
//
// keyring's init functions call godbus's dbus.SessionBus(). When
// DBUS_SESSION_BUS_ADDRESS is unset (or "autolaunch:") and godbus finds no
// socket at /run/user/UID/bus, it runs dbus-launch, which leaves a
// dbus-daemon behind on a headless login node, one per sesame invocation.
// The init below runs before keyring's and settles the address first: the
// real bus socket when one exists where godbus would not look for it
// ($XDG_RUNTIME_DIR/bus), otherwise "disabled:", an address godbus cannot
// dial, so the Secret Service and KWallet backends are simply absent.
//
// Ordering: since Go 1.21, packages are initialised in import-path order
// among those whose imports are already initialised. This package imports
// only syscall, so it is ready before "os" is initialised; "os" (and so
// keyring, which needs it) sorts after this package's path and cannot be
// initialised while this package is still waiting. The keychain package
// imports this one for its side effect, which puts it in every binary that
// links keyring through keychain.
package dbusguard

import "syscall"

const envName = "DBUS_SESSION_BUS_ADDRESS"

// Disabled is the address set when no session bus exists.
const Disabled = "disabled:"

// Applied reports what the guard did at start-up: "" when the environment
// already named a bus, "disabled:" or the discovered unix:path address
// otherwise. Tests and `--debug` read it.
var Applied string

func init() {
	if addr, ok := syscall.Getenv(envName); ok && addr != "" && addr != "autolaunch:" {
		return
	}
	Applied = decide(syscall.Getenv, exists, syscall.Getuid())
	syscall.Setenv(envName, Applied)
}

// decide returns the address to use when the environment names none.
func decide(getenv func(string) (string, bool), exists func(string) bool, uid int) string {
	// godbus itself looks at /run/user/UID/bus and /run/user/UID/dbus-session;
	// if either exists it connects without dbus-launch, so leave it be by
	// pointing at the socket explicitly.
	run := "/run/user/" + itoa(uid)
	if exists(run + "/bus") {
		return "unix:path=" + run + "/bus"
	}
	if dir, ok := getenv("XDG_RUNTIME_DIR"); ok && dir != "" && exists(dir+"/bus") {
		return "unix:path=" + dir + "/bus"
	}
	return Disabled
}

// itoa avoids strconv, whose import path sorts after this package and
// would delay this init past keyring's (see the package comment).
func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
