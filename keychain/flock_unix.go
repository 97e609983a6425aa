//go:build unix

package keychain

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func funlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// flockWait is flock with a bounded wait: it polls a non-blocking lock,
// so that a stuck holder makes an error instead of a hang.
func flockWait(f *os.File, exclusive bool, wait time.Duration) error {
	how := syscall.LOCK_SH | syscall.LOCK_NB
	if exclusive {
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
	deadline := time.Now().Add(wait)
	delay := 5 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case err == syscall.EINTR:
			continue
		case err != syscall.EWOULDBLOCK:
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("another sesame process has held the vault's lock for over %s; find it with `fuser -v %s` and end it", wait, f.Name())
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}
