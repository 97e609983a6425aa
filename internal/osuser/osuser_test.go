package osuser

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNameOfCurrentUser(t *testing.T) {
	name, err := Name(os.Getuid())
	if err != nil {
		t.Fatal(err)
	}
	if name == "" {
		t.Fatal("empty name")
	}
}

// A uid that /etc/passwd does not know is looked up through NSS.
func TestNameFallsBackToNSS(t *testing.T) {
	const uid = 1999999937 // in no /etc/passwd
	var asked string
	old := getent
	t.Cleanup(func() { getent = old })
	getent = func(_ context.Context, id string) ([]byte, error) {
		asked = id
		return []byte("jdoe:*:1999999937:100:J. Doe:/home/jdoe:/bin/bash\n"), nil
	}
	name, err := Name(uid)
	if err != nil || name != "jdoe" {
		t.Fatalf("Name = %q, %v", name, err)
	}
	if asked != "1999999937" {
		t.Fatalf("getent asked for %q", asked)
	}

	// NSS answering for another uid, or not at all: a clear error.
	for _, reply := range []func(context.Context, string) ([]byte, error){
		func(context.Context, string) ([]byte, error) { return []byte("root:x:0:0::/root:/bin/sh\n"), nil },
		func(context.Context, string) ([]byte, error) { return nil, errors.New("exit status 2") },
		func(context.Context, string) ([]byte, error) { return []byte("garbage"), nil },
	} {
		getent = reply
		if name, err := Name(uid); err == nil || !strings.Contains(err.Error(), "1999999937") {
			t.Fatalf("Name = %q, %v; want an error naming the uid", name, err)
		}
	}
}

// The real getent, when the system has it, agrees with os/user on root.
func TestRealGetent(t *testing.T) {
	out, err := getent(context.Background(), "0")
	if err != nil {
		t.Fatalf("getent (libc-bin, essential on Debian): %v", err)
	}
	if name, ok := parsePasswd(out, "0"); !ok || name != "root" {
		t.Fatalf("getent passwd 0: %q", out)
	}
}
