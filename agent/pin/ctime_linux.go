package pin

import "syscall"

// ctimeNanos is the inode change time: a rename over the file or a chmod
// changes it even when size and mtime stay the same.
func ctimeNanos(st *syscall.Stat_t) int64 { return st.Ctim.Sec*1e9 + st.Ctim.Nsec }
