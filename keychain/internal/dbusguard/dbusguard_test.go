package dbusguard

import "testing"

func TestDecide(t *testing.T) {
	none := func(string) bool { return false }
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	if got := decide(env(nil), none, 1000); got != Disabled {
		t.Errorf("no bus anywhere: %q", got)
	}
	xdg := func(p string) bool { return p == "/tmp/xdg/bus" }
	if got := decide(env(map[string]string{"XDG_RUNTIME_DIR": "/tmp/xdg"}), xdg, 1000); got != "unix:path=/tmp/xdg/bus" {
		t.Errorf("bus in XDG_RUNTIME_DIR: %q", got)
	}
	run := func(p string) bool { return p == "/run/user/1000/bus" }
	if got := decide(env(nil), run, 1000); got != "unix:path=/run/user/1000/bus" {
		t.Errorf("bus in /run/user: %q", got)
	}
	for n, want := range map[int]string{0: "0", 7: "7", 1000: "1000", -3: "-3"} {
		if got := itoa(n); got != want {
			t.Errorf("itoa(%d) = %q", n, got)
		}
	}
}
