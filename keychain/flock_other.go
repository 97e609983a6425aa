//go:build !unix

package keychain

import (
	"os"
	"time"
)

// Without flock the vault is not protected against concurrent writers;
// sesame targets Unix, this only keeps the package building elsewhere.
func funlock(*os.File) {}

func flockWait(*os.File, bool, time.Duration) error { return nil }
