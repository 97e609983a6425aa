package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// syncBuffer collects a process's output while it runs; the test may read
// it while the process still writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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
