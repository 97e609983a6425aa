package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Flags spelled the same on every command: --version on sesame itself,
// --json on pins as on klist, keys, status and doctor.
func TestVersionAndPinsJSON(t *testing.T) {
	bin := sesameBin(t)
	home := t.TempDir()
	env := append(os.Environ(), "SESAME_HOME="+home)

	stdout, stderr, code := runNoTTY(t, env, "", bin, "--version")
	vout, _, _ := runNoTTY(t, env, "", bin, "version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "sesame ") || stdout != vout {
		t.Errorf("sesame --version: exit %d, stdout %q, stderr %q; sesame version: %q", code, stdout, stderr, vout)
	}

	fp := "SHA256:" + strings.Repeat("A", 43)
	if _, stderr, code := runNoTTY(t, env, "", bin, "pin", "alice@login.example.org", fp); code != 0 {
		t.Fatalf("pin: exit %d: %s", code, stderr)
	}
	stdout, stderr, code = runNoTTY(t, env, "", bin, "pins", "--json")
	if code != 0 {
		t.Fatalf("pins --json: exit %d: %s", code, stderr)
	}
	var got struct {
		DeclaredFile string `json:"declared_file"`
		Declared     []struct {
			Target, Key string
			Line        int
		} `json:"declared"`
		Learned []json.RawMessage `json:"learned"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("pins --json is not JSON: %v\n%s", err, stdout)
	}
	if len(got.Declared) != 1 || got.Declared[0].Target != "alice@login.example.org" || got.Declared[0].Key != fp ||
		got.Learned == nil || !strings.HasPrefix(got.DeclaredFile, filepath.Clean(home)) {
		t.Errorf("pins --json: %+v\n%s", got, stdout)
	}
}
