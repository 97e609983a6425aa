//go:build !goexperiment.runtimesecret

package lock

// SecretMode reports whether Do erases memory (the program was built with
// GOEXPERIMENT=runtimesecret) or merely calls f.
const SecretMode = false

// Do calls f. Built with GOEXPERIMENT=runtimesecret it runs f under
// runtime/secret.Do, which erases f's registers and stack on return and
// zeroes f's heap allocations when they are freed; without it, temporary
// copies made by parsers and crypto code stay in freed memory until reused.
func Do(f func()) { f() }
