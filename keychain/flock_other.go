//go:build !unix

package keychain

import "os"

// Without flock the vault is not protected against concurrent writers;
// sesame targets Unix, this only keeps the package building elsewhere.
func flock(*os.File, bool) error { return nil }

func funlock(*os.File) {}
