// Command bench measures sesame side by side with the tools it replaces
// and prints the ratios. `make bench` runs it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := benchAgent(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: agent:", err)
		os.Exit(1)
	}
}
