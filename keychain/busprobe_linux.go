package keychain

import (
	"slices"

	"github.com/godbus/dbus"
)

// busNameReachable reports whether a service answers on the session bus
// under name, or can be started by D-Bus activation. keyring only checks
// that a bus exists; a bus without a secrets service (a plain
// dbus-run-session on a server) would make every operation fail later.
func busNameReachable(name string) bool {
	conn, err := dbus.SessionBus()
	if err != nil {
		return false
	}
	obj := conn.BusObject()
	var owned bool
	if err := obj.Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&owned); err == nil && owned {
		return true
	}
	var activatable []string
	if err := obj.Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&activatable); err == nil {
		return slices.Contains(activatable, name)
	}
	return false
}
