package agent

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Harden makes the process non-dumpable (no ptrace by other processes of
// the user, no /proc/PID/mem for them) and disables core files, so that
// loaded keys cannot be read out of a crash dump. ssh-agent does the same.
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_CORE): %w", err)
	}
	return nil
}

// peerCred returns the uid and pid of the process at the other end of a
// unix socket (SO_PEERCRED).
func peerCred(c net.Conn) (uid, pid int, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, 0, fmt.Errorf("not a unix socket: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return int(cred.Uid), int(cred.Pid), nil
}

// withUmask runs f with the process umask set to mask. The umask is
// process-wide; bind is the only file creation the agent does meanwhile.
func withUmask(mask int, f func() error) error {
	old := unix.Umask(mask)
	defer unix.Umask(old)
	return f()
}
