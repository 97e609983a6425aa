package testbed

import (
	"os"
	"path/filepath"
	"strings"
)

// SoftHSM makes a SoftHSM2 token (label "sesame", user PIN 1234) holding
// one RSA key, in a directory of the test's. It returns the PKCS#11
// module, the configuration file every process that uses the token needs
// in SOFTHSM2_CONF, and the key's public line (ssh-keygen -D). Missing
// module: a failure under CI, a skip elsewhere.
func SoftHSM(t T) (provider, conf, pubLine string) {
	t.Helper()
	util := Path(t, "softhsm2-util")
	for _, p := range []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"} {
		if _, err := os.Stat(p); err == nil {
			provider = p
			break
		}
	}
	if provider == "" {
		Missing(t, "libsofthsm2.so not found (scripts/install-deps.sh installs softhsm2)")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.Mkdir(tokens, 0o700)
	conf = filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	env := []string{"SOFTHSM2_CONF=" + conf}
	run(t, env, "", util, "--init-token", "--free", "--label", "sesame", "--pin", "1234", "--so-pin", "12345678")
	key := filepath.Join(dir, "key.pem")
	run(t, env, "", Path(t, "openssl"), "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
	run(t, env, "", util, "--import", key, "--token", "sesame", "--label", "sesame-key", "--id", "01", "--pin", "1234")
	pubLine = strings.TrimSpace(run(t, env, "", Path(t, "ssh-keygen"), "-D", provider))
	if pubLine == "" || strings.Count(pubLine, "\n") != 0 {
		t.Fatalf("ssh-keygen -D: want one key, got %q", pubLine)
	}
	return provider, conf, pubLine
}
