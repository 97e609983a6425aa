package testbed

import (
	"os"
	"path/filepath"
)

// SKDummy returns the path of OpenSSH's sk-dummy FIDO provider (a software
// authenticator built with OpenSSH's regress binaries), for SSH_SK_PROVIDER.
// scripts/openssh-regress.sh builds it into its cache; the test finds it
// through SESAME_SK_DUMMY (what `scripts/openssh-regress.sh
// --print-sk-dummy` prints), else in the cache the script uses for this
// user, SESAME_REGRESS_CACHE, or the one of the user it runs the suite as
// when started by root. Missing: a failure under CI, a skip elsewhere.
func SKDummy(t T) string {
	t.Helper()
	if p := os.Getenv("SESAME_SK_DUMMY"); p != "" {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatalf("SESAME_SK_DUMMY: %v", err)
		}
		return r
	}
	var caches []string
	if c := os.Getenv("SESAME_REGRESS_CACHE"); c != "" {
		caches = append(caches, c)
	}
	if c := os.Getenv("XDG_CACHE_HOME"); c != "" {
		caches = append(caches, filepath.Join(c, "sesame-openssh-regress"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		caches = append(caches, filepath.Join(h, ".cache", "sesame-openssh-regress"))
	}
	caches = append(caches, "/var/lib/sesame-regress/.cache/sesame-openssh-regress")
	for _, c := range caches {
		p := filepath.Join(c, "current", "src", "regress", "misc", "sk-dummy", "sk-dummy.so")
		// ssh-agent matches a provider's real path against -P.
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
	}
	Missing(t, "OpenSSH's sk-dummy.so not built (run scripts/openssh-regress.sh --print-sk-dummy, or set SESAME_SK_DUMMY)")
	return ""
}

// NewSKKey makes a FIDO key of type typ ("ed25519-sk" or "ecdsa-sk") on
// the sk-dummy authenticator, without a passphrase, and returns the path of
// its private key file (the key handle; the public key is beside it).
func NewSKKey(t T, skDummy, dir, typ string) string {
	t.Helper()
	f := filepath.Join(dir, typ)
	run(t, []string{"SSH_SK_PROVIDER=" + skDummy}, "", Path(t, "ssh-keygen"), "-q", "-t", typ, "-N", "", "-C", typ, "-f", f)
	return f
}
