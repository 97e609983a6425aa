package pin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The 2fa flag: on a pin line or alone; it pins no key by itself, pin
// --2fa adds it to an existing line, and ssh-config gives the host a
// shared connection in the control directory.
func TestTwoFactorPins(t *testing.T) {
	hA := newSigner(t).PublicKey()
	w := newWorld(t, authLine("", "otp.example.org", hA)+authLine("", "gw.example.org", hA))
	k0, k1 := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	pins, err := ParsePins([]byte("otp.example.org 2fa # codes\nbob@gw.example.org "+fp(k1)+" 2fa\n"), "p")
	if err != nil || len(pins) != 2 || !pins[0].TwoFactor || pins[0].Key != "" || !pins[1].TwoFactor || pins[1].Key != fp(k1) {
		t.Fatalf("parse: %+v %v", pins, err)
	}
	if pins[0].String() != "otp.example.org  2fa  # codes" {
		t.Errorf("format: %q", pins[0].String())
	}
	if _, err := ParsePins([]byte("h 2fa extra\n"), "p"); err == nil {
		t.Error("h 2fa extra parsed")
	}
	// A 2fa line alone pins nothing: the host is still unpinned.
	w.setPins("otp.example.org 2fa\n")
	if got := fps(w.p.Offer(bound(hA), ids(k0, k1))); got != "key0,key1" {
		t.Errorf("offer with a 2fa line only: %s", got)
	}
	if !w.p.TwoFactor("otp.example.org", "alice") || w.p.TwoFactor("other.example.org", "") {
		t.Error("TwoFactor")
	}

	dir := t.TempDir()
	f := Files{Pins: filepath.Join(dir, "pins"), Learned: filepath.Join(dir, "l"), KeysDir: filepath.Join(dir, "keys")}
	k := Key{Fingerprint: fp(k1), Public: k1, Comment: "k1"}
	if _, _, err := PinKey(f, "gw.example.org", k, false); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := PinKey(f, "gw.example.org", k, true); err != nil || !changed {
		t.Fatalf("add the flag: %v %v", changed, err)
	}
	if _, _, err := PinKey(f, "otp.example.org", Key{}, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := PinKey(f, "x.example.org", Key{}, false); err == nil {
		t.Error("a pin without key or flag")
	}
	got, _ := os.ReadFile(f.Pins)
	if strings.Count(string(got), "gw.example.org") != 1 || !strings.Contains(string(got), "gw.example.org  "+fp(k1)+"  2fa") {
		t.Errorf("pins file:\n%s", got)
	}
	ctl := filepath.Join(dir, "run")
	conf, err := SSHConfig(f, KeySource{PubFiles: []string{}}, SSHConfigOptions{ControlDir: ctl})
	if err != nil {
		t.Fatal(err)
	}
	want := "Host otp.example.org\n    ControlMaster auto\n    ControlPath " + ctl + "/cm-%C\n    ControlPersist 8h\n"
	if !strings.Contains(conf, want) || strings.Count(conf, "ControlMaster auto") != 2 || strings.Count(conf, "IdentitiesOnly yes") != 1 {
		t.Errorf("ssh-config:\n%s", conf)
	}
	if fi, err := os.Stat(ctl); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("control directory: %v %v", fi, err)
	}
}
