// Command noguard imports keyring without sesame's dbus guard. The dbus
// guard test runs it as a control, to show that its fake dbus-launch does
// get started when nothing prevents it.
package main

import (
	"fmt"

	"github.com/99designs/keyring"
)

func main() { fmt.Println(keyring.AvailableBackends()) }
