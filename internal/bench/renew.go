//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

func init() { register("renew", benchRenew) }

// benchRenew measures what an idle renewer costs: CPU time and RSS of
// `sesame renew` and kstart's `krenew -K 10` over an idle minute (set
// SESAME_BENCH_IDLE to change it), each keeping a 10-hour ticket that
// needs no renewal during the window. Target for sesame: under 10 ms of CPU
// per idle minute. It prints its own lines, since the result is CPU time,
// not the wall time of one command.
func benchRenew(e *env) ([]result, error) {
	idle := time.Minute
	if s := os.Getenv("SESAME_BENCH_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("SESAME_BENCH_IDLE: %w", err)
		}
		idle = d
	}
	kdc := testbed.NewKDC(e.TB, testbed.KDCOptions{})
	kdc.AddPrincipal("alice", benchPassword)
	krenew, err := exec.LookPath("krenew")
	if err != nil {
		return nil, fmt.Errorf("krenew (kstart) not installed: %w", err)
	}
	start := func(name string, args ...string) (*exec.Cmd, error) {
		cache := filepath.Join(e.TB.TempDir(), "cc")
		env := append(os.Environ(), kdc.Env()...)
		env = append(env, "KRB5CCNAME=FILE:"+cache)
		k := exec.Command(e.Sesame, "kinit", "--password-stdin", "-l", "10h", "-r", "7d", "alice")
		k.Env = env
		k.Stdin = strings.NewReader(benchPassword + "\n")
		if out, err := k.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("kinit: %v\n%s", err, out)
		}
		c := exec.Command(name, args...)
		c.Env = env
		if err := c.Start(); err != nil {
			return nil, err
		}
		e.TB.Cleanup(func() { c.Process.Signal(syscall.SIGTERM); c.Wait() })
		return c, nil
	}
	s, err := start(e.Sesame, "renew")
	if err != nil {
		return nil, err
	}
	k, err := start(krenew, "-K", "10")
	if err != nil {
		return nil, err
	}
	// Let both finish starting up, then measure only the idle window.
	time.Sleep(2 * time.Second)
	s0, k0 := cpuTime(s.Process.Pid), cpuTime(k.Process.Pid)
	fmt.Printf("%-28s idling for %v...\n", "renew (idle)", idle)
	time.Sleep(idle)
	sc, kc := cpuTime(s.Process.Pid)-s0, cpuTime(k.Process.Pid)-k0
	perMin := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(time.Minute) / float64(idle))
	}
	verdict := "met"
	if perMin(sc) >= 10*time.Millisecond {
		verdict = "NOT met"
	}
	fmt.Printf("%-28s sesame CPU %v/min, RSS %d KiB   krenew CPU %v/min, RSS %d KiB   target < 10ms/min: %s\n",
		"renew (idle)", perMin(sc), rssKB(s.Process.Pid), perMin(kc), rssKB(k.Process.Pid), verdict)
	fmt.Printf("%-28s (CPU used before the idle window, for scale: sesame %v, krenew %v)\n", "", s0.Round(time.Microsecond), k0.Round(time.Microsecond))
	return nil, nil
}

// cpuTime is the CPU time all threads of pid have used, from
// /proc/PID/task/*/schedstat (nanoseconds, finer than the 10 ms ticks of
// /proc/PID/stat). Threads that exited are not counted; an idle Go
// program keeps its threads.
func cpuTime(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}
