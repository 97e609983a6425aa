//go:build linux

// Command bench runs sesame side by side with the tools it replaces (MIT
// kinit, OpenSSH ssh-agent, …) against real servers on loopback and prints
// wall times and ratios. `make bench` runs it.
//
// Each comparison lives in its own file and registers itself with
// register from an init function; main runs them in name order.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// env is what every comparison gets: the sesame binary, the iteration
// count and a place for temporary files.
type env struct {
	Sesame string // path of the sesame binary under test
	N      int    // iterations per side
	TB     *tb    // for the test bed (internal/testbed takes a testing.TB)
}

// comparison is one side-by-side measurement.
type comparison struct {
	name string
	run  func(e *env) ([]result, error)
}

// result is one line of the report: two timings of the same task.
type result struct {
	Task     string
	Sesame   []time.Duration
	Peer     []time.Duration
	PeerName string
	Target   float64 // maximum acceptable ratio sesame/peer; 0 for none
	Note     string  // printed under the line when the target is missed
}

var comparisons []comparison

// register adds a comparison; call it from an init function.
func register(name string, run func(e *env) ([]result, error)) {
	comparisons = append(comparisons, comparison{name, run})
}

func main() {
	// 60 a side: on a shared two-core machine a median of 20 kinit runs moved
	// the ratio by 0.2 from one run to the next.
	n := flag.Int("n", 60, "iterations per side")
	only := flag.String("only", "", "run only the comparison with this name")
	bin := flag.String("sesame", "bin/sesame", "sesame binary (built with `go build` when missing)")
	flag.Parse()

	path, cleanup, err := sesameBinary(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer cleanup()

	sort.Slice(comparisons, func(i, j int) bool { return comparisons[i].name < comparisons[j].name })
	failed := false
	for _, c := range comparisons {
		if *only != "" && c.name != *only {
			continue
		}
		t := newTB(c.name)
		e := &env{Sesame: path, N: *n, TB: t}
		results, err := t.guard(func() ([]result, error) { return c.run(e) })
		t.cleanup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", c.name, err)
			failed = true
			continue
		}
		for _, r := range results {
			report(os.Stdout, r)
		}
	}
	// The agent comparison prints its own table (throughput, latency and
	// memory rather than wall times of one command).
	if *only == "" || *only == "agent" {
		if err := benchAgent(); err != nil {
			fmt.Fprintln(os.Stderr, "bench agent:", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// sesameBinary returns the binary to measure, building it when the given
// path does not exist.
func sesameBinary(path string) (string, func(), error) {
	if abs, err := filepath.Abs(path); err == nil {
		if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() {
			return abs, func() {}, nil
		}
	}
	dir, err := os.MkdirTemp("", "sesame-bench-")
	if err != nil {
		return "", nil, err
	}
	out := filepath.Join(dir, "sesame")
	if b, err := exec.Command("go", "build", "-o", out, "./cmd/sesame").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build sesame: %v\n%s", err, b)
	}
	return out, func() { os.RemoveAll(dir) }, nil
}
