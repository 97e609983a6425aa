package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The demo is the README's showcase: run it end to end against a fresh
// build so that it cannot silently rot.
func TestDemo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sesame")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sesame").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	t.Cleanup(func() { t.Log("demo output:\n" + out.String()) })
	run(t, &out, bin, false)
	text := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`logged in with a Kerberos ticket`),
		regexp.MustCompile(`Too many authentication failures`),
		regexp.MustCompile(`=> sshd log: [1-9]\d* "Failed publickey" lines; thrown out`),
		regexp.MustCompile(`logged in with the pinned key\n    => sshd log: 0 "Failed publickey"`),
		regexp.MustCompile(`first login\n    => sshd log: [01] "Failed publickey"`),
		regexp.MustCompile(`second login\n    => sshd log: 0 "Failed publickey"`),
		regexp.MustCompile(`declared pins apply: only their keys are offered`),
		regexp.MustCompile(`Done\.`),
	} {
		if !want.MatchString(text) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(text, "/tmp/") && strings.Contains(text, "id_6") && strings.Contains(text, "/id_6") {
		t.Errorf("demo output shows temporary paths for the keys")
	}
}
