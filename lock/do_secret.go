//go:build goexperiment.runtimesecret

package lock

import "runtime/secret"

// SecretMode reports whether Do erases memory (the program was built with
// GOEXPERIMENT=runtimesecret) or merely calls f.
const SecretMode = true

// Do calls f under runtime/secret: registers and stack used by f are erased
// before Do returns, and every heap allocation made by f is zeroed as soon
// as the garbage collector finds it unreachable. Values f leaves reachable
// (a parsed key stored in the keyring) are not touched until dropped. It
// does not cover goroutines started by f, nor globals f writes.
// On platforms runtime/secret does not support it just calls f.
func Do(f func()) { secret.Do(f) }
