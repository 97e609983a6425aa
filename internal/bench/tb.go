//go:build linux

package main

import (
	"fmt"
	"os"
	"testing"
)

// tb is just enough of testing.TB for internal/testbed outside a test:
// Fatal stops the comparison (through a panic that guard recovers), Skip
// does the same with a note, and cleanups run when the comparison ends.
type tb struct {
	testing.TB // never called: only satisfies the interface's private method
	name       string
	cleanups   []func()
	failed     bool
}

type tbStop struct{ msg string }

func newTB(name string) *tb { return &tb{name: name} }

func (t *tb) Helper()          {}
func (t *tb) Name() string     { return t.name }
func (t *tb) Failed() bool     { return t.failed }
func (t *tb) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *tb) Log(a ...any)     { fmt.Fprintln(os.Stderr, a...) }
func (t *tb) Logf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
}
func (t *tb) Error(a ...any) { t.failed = true; t.Log(a...) }
func (t *tb) Errorf(f string, a ...any) {
	t.failed = true
	t.Logf(f, a...)
}
func (t *tb) Fatal(a ...any)            { t.failed = true; panic(tbStop{fmt.Sprint(a...)}) }
func (t *tb) Fatalf(f string, a ...any) { t.failed = true; panic(tbStop{fmt.Sprintf(f, a...)}) }
func (t *tb) FailNow()                  { t.failed = true; panic(tbStop{"failed"}) }
func (t *tb) Fail()                     { t.failed = true }
func (t *tb) Skip(a ...any)             { panic(tbStop{"skipped: " + fmt.Sprint(a...)}) }
func (t *tb) Skipf(f string, a ...any)  { panic(tbStop{"skipped: " + fmt.Sprintf(f, a...)}) }
func (t *tb) SkipNow()                  { panic(tbStop{"skipped"}) }
func (t *tb) Skipped() bool             { return false }
func (t *tb) Setenv(k, v string)        { os.Setenv(k, v) }

// TempDir makes a directory that is removed when the comparison ends.
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "sesame-bench-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// guard runs f, turning a Fatal or Skip from the test bed into an error.
func (t *tb) guard(f func() ([]result, error)) (res []result, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, ok := r.(tbStop)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", s.msg)
		}
	}()
	return f()
}

// cleanup runs the registered cleanups, last first.
func (t *tb) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
