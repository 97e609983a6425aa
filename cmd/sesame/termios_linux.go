package main

import "golang.org/x/sys/unix"

// The ioctls that read and set terminal attributes (for a prompt without
// echo) have different names on Linux and the BSDs.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)
