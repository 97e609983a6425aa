package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// signalGrace is how long a command may take to wind down after SIGINT or
// SIGTERM before the process exits anyway.
const signalGrace = 700 * time.Millisecond

// signalContext returns a context that SIGINT, SIGTERM or SIGHUP cancel. Work that
// watches the context ends cleanly; work that cannot (a KDC exchange the
// Kerberos library does not let us cancel) is cut short: if the command
// has not returned signalGrace after the signal, the process exits with
// 128 + the signal's number, as a shell reports a killed command. stop
// undoes the trap.
func signalContext(parent context.Context) (context.Context, func()) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel()
			t := time.NewTimer(signalGrace)
			select {
			case <-t.C:
				code := 128 + 15
				if n, ok := s.(syscall.Signal); ok {
					code = 128 + int(n)
				}
				os.Exit(code)
			case <-done:
				t.Stop()
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
