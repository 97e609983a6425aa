//go:build unix

package lock

import "syscall"

// syscallNoFollow keeps zeroFile from writing through a symlink swapped in
// after the Lstat.
const syscallNoFollow = syscall.O_NOFOLLOW
