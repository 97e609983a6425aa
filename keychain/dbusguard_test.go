package keychain

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/keychain/internal/dbusguard"
)

// headlessEnv is the environment of a login node without a session bus:
// no DBUS_SESSION_BUS_ADDRESS, an empty runtime dir, and on PATH a fake
// dbus-launch that records every start in the returned marker file.
func headlessEnv(t *testing.T) (env []string, marker string) {
	t.Helper()
	if _, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid())); err == nil {
		t.Skip("this machine has a session bus at /run/user/UID/bus; cannot simulate a headless one")
	}
	bin := t.TempDir()
	marker = filepath.Join(t.TempDir(), "dbus-launch-started")
	script := "#!/bin/sh\necho started >> '" + marker + "'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "dbus-launch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") ||
			strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, EnvBackend+"=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "XDG_RUNTIME_DIR="+t.TempDir())
	return env, marker
}

// TestNoDBusLaunchWithoutSessionBus runs a binary that links keychain (this
// test binary, re-executed) on a simulated headless machine and checks that
// dbus-launch was never started, and that the vault was chosen.
func TestNoDBusLaunchWithoutSessionBus(t *testing.T) {
	env, marker := headlessEnv(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDBusGuardChild$", "-test.v")
	cmd.Env = append(env, "SESAME_TEST_DBUS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("dbus-launch was started by a binary linking keychain\n%s", out)
	}
	if !strings.Contains(string(out), "guard=disabled: backend=vault") {
		t.Fatalf("child output: %s", out)
	}
}

// TestDBusLaunchControl shows the fake dbus-launch is noticed: a program
// importing keyring without the guard starts it. Without this control the
// test above could pass for the wrong reason.
func TestDBusLaunchControl(t *testing.T) {
	env, marker := headlessEnv(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH; control program cannot be built")
	}
	exe := filepath.Join(t.TempDir(), "noguard")
	build := exec.Command(goBin, "build", "-o", exe, "./testdata/noguard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build control: %v\n%s", err, out)
	}
	cmd := exec.Command(exe)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("control: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("keyring without the guard did not try dbus-launch (output %q): the headless test proves nothing", out)
	}
}

// TestDBusGuardChild is the re-executed half of the test above.
func TestDBusGuardChild(t *testing.T) {
	if os.Getenv("SESAME_TEST_DBUS_CHILD") == "" {
		t.Skip("helper process")
	}
	kc, err := Open(Options{VaultDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("guard=%s backend=%s\n", dbusguard.Applied, kc.Backend())
}
