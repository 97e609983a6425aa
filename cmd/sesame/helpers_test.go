package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// sesameBin builds the sesame command once per test process, for the
// tests that run it as a separate process (forking, signals, exit status,
// real ssh talking to it). TestMain removes it afterwards.
func sesameBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		// SESAME_BIN: run the tests against a sesame built elsewhere (the
		// packaged /usr/bin/sesame, scripts/install-test.sh).
		if p := os.Getenv("SESAME_BIN"); p != "" {
			binPath = p
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			binErr = fmt.Errorf("the go tool is needed to build sesame: %w", err)
			return
		}
		if binDir, err = os.MkdirTemp("", "sesame-test-bin-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "sesame")
		if out, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runNoTTY runs a program in a new session, so that it cannot open
// /dev/tty (prompts must come from stdin, a file or SSH_ASKPASS), and
// returns its output and exit status. A program that cannot start fails
// the test.
func runNoTTY(t testing.TB, env []string, stdin, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = env
	c.Stdin = strings.NewReader(stdin)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var o, se bytes.Buffer
	c.Stdout, c.Stderr = &o, &se
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), se.String(), code
}
