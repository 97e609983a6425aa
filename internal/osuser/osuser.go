// Package osuser maps a uid to its user name the way the C library does,
// without cgo.
//
// sesame is built without cgo on Linux: a static binary starts about a
// millisecond faster, which is most of what separates a Go kinit from MIT's.
// Without cgo, os/user reads only /etc/passwd, while cluster accounts
// usually come from LDAP or SSSD through NSS. So when /etc/passwd does not
// know the uid, this package asks NSS through getent(1), which is in every
// glibc and musl system.
package osuser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"time"
)

// getent is the NSS lookup used when os/user fails; tests replace it.
var getent = func(ctx context.Context, uid string) ([]byte, error) {
	return exec.CommandContext(ctx, "getent", "passwd", uid).Output()
}

// Name returns the login name of uid: os/user first, then NSS.
func Name(uid int) (string, error) {
	id := strconv.Itoa(uid)
	u, err := user.LookupId(id)
	if err == nil {
		return u.Username, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, gerr := getent(ctx, id)
	if gerr == nil {
		if name, ok := parsePasswd(out, id); ok {
			return name, nil
		}
	}
	var unknown user.UnknownUserIdError
	if errors.As(err, &unknown) {
		return "", fmt.Errorf("no user has uid %d (neither /etc/passwd nor NSS through getent knows it)", uid)
	}
	return "", fmt.Errorf("cannot find the user name of uid %d: %w", uid, err)
}

// parsePasswd takes the first line of passwd(5) output and returns its
// name if its uid field is id.
func parsePasswd(out []byte, id string) (string, bool) {
	line, _, _ := bytes.Cut(out, []byte("\n"))
	f := bytes.Split(line, []byte(":"))
	if len(f) < 3 || len(f[0]) == 0 || string(f[2]) != id {
		return "", false
	}
	return string(f[0]), true
}
