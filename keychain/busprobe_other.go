//go:build !linux

package keychain

// busNameReachable: Secret Service and KWallet are only used on Linux.
func busNameReachable(string) bool { return false }
