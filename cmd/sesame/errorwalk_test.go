package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// errorWalk is every command and flag given wrong input — missing and
// extra arguments, bad values, missing files, directories where a file is
// expected, files of the wrong kind, hostile names — with the first line
// it must print on standard error and the exit status of the tool it
// replaces (MIT kinit/kdestroy: 2 for a bad command line; MIT klist,
// ssh-add, ssh-agent, krenew: 1; ssh-add when no agent answers: 2;
// sesame's own commands: 2 for a bad command line, 1 for a failure).
//
// In arguments, environment and expected text, $D is a directory holding:
// junk (a text file), adir/ (a directory), empty (an empty file), and
// nothing named nope. Rows with kdc run against a real KDC (the realm's
// user alice, password on standard input). An expected line ending in
// "…" is a prefix (the rest holds a timestamp). file, when set, is
// written first: "PATH=CONTENT" ($H is the SESAME_HOME).
var errorWalk = []struct {
	args   string // split on spaces
	env    string // extra VAR=value, split on spaces
	kdc    bool
	file   string
	stdin  string
	stderr string // first line of standard error
	code   int
}{
	// sesame itself
	{args: "bogus", stderr: `sesame: unknown command "bogus"`, code: 2},
	{args: "--bogus", stderr: `sesame: unknown flag --bogus`, code: 2},
	{args: "version extra", stderr: `sesame: version: unexpected argument "extra"`, code: 2},
	{args: "completion", stderr: `sesame: completion: name a shell: bash, zsh, fish or powershell`, code: 2},
	{args: "completion bogus", stderr: `sesame: completion: unknown shell "bogus": name bash, zsh, fish or powershell`, code: 2},
	{args: "help bogus", stderr: `sesame: help: unknown command "bogus"`, code: 2},

	// kinit (MIT: usage errors exit 2)
	{args: "kinit --bogus", stderr: `sesame: kinit: unknown flag --bogus`, code: 2},
	{args: "kinit -x", stderr: `sesame: kinit: unknown flag -x`, code: 2},
	{args: "kinit alice bob", stderr: `sesame: kinit: unexpected argument "bob"`, code: 2},
	{args: "kinit -l abc alice", stderr: `sesame: kinit: bad value "abc" for -l: want a duration such as 10h, 7d, 90m or 30s`, code: 2},
	{args: "kinit -l -5h alice", stderr: `sesame: kinit: bad value "-5h" for -l: want a duration such as 10h, 7d, 90m or 30s`, code: 2},
	{args: "kinit -r 7x alice", stderr: `sesame: kinit: bad value "7x" for -r: want a duration such as 10h, 7d, 90m or 30s`, code: 2},
	{args: "kinit -f -F alice", stderr: `sesame: kinit: -f and -F contradict each other`, code: 2},
	{args: "kinit -c", stderr: `sesame: kinit: -c/--cache needs a value`, code: 2},
	{args: "kinit --password-stdin=maybe alice", stderr: `sesame: kinit: bad value "maybe" for --password-stdin: want true or false`, code: 2},
	{args: "kinit -k -t $D/nope alice", stderr: `sesame: keytab $D/nope does not exist`, code: 1},
	{args: "kinit -k -t $D/adir alice", stderr: `sesame: keytab $D/adir is a directory, not a file`, code: 1},
	{args: "kinit -k -t $D/junk alice", stderr: `sesame: keytab $D/junk is not a keytab file (or is damaged)`, code: 1},
	{args: "kinit -k -t /dev/zero alice", stderr: `sesame: keytab /dev/zero is not a regular file`, code: 1},
	{args: "kinit -R -c $D/nope", stderr: `sesame: no credentials cache found (filename: $D/nope)`, code: 1},
	{args: "kinit -R -c $D/junk", stderr: `sesame: $D/junk is not a credentials cache: it does not start with a cache header (first byte 0x67)`, code: 1},
	{args: "kinit -R -c $D/adir", stderr: `sesame: credentials cache $D/adir is a directory, not a cache file`, code: 1},
	{args: "kinit --password-stdin al/ice@@X", stderr: `sesame: principal "al/ice@@X" has more than one unescaped @`, code: 1},
	{args: "kinit --password-stdin -c $D/nodir/cc alice", kdc: true, stdin: krbTestPassword + "\n",
		stderr: `sesame: credentials cache $D/nodir/cc cannot be written: directory $D/nodir does not exist`, code: 1},
	{args: "kinit --password-stdin -c $D/adir alice", kdc: true, stdin: krbTestPassword + "\n",
		stderr: `sesame: credentials cache $D/adir is a directory, not a cache file`, code: 1},

	// klist (MIT: 1)
	{args: "klist --bogus", stderr: `sesame: klist: unknown flag --bogus`, code: 1},
	{args: "klist -c $D/nope", stderr: `sesame: no credentials cache found (filename: $D/nope)`, code: 1},
	{args: "klist -c $D/adir", stderr: `sesame: credentials cache $D/adir is a directory, not a cache file`, code: 1},
	{args: "klist -c $D/junk", stderr: `sesame: $D/junk is not a credentials cache: it does not start with a cache header (first byte 0x67)`, code: 1},
	{args: "klist -c $D/empty", stderr: `sesame: $D/empty is not a credentials cache: file is too short to be a credentials cache (0 bytes)`, code: 1},
	{args: "klist", env: "KRB5CCNAME=$D/adir", stderr: `sesame: credentials cache $D/adir is a directory, not a cache file`, code: 1},
	{args: "klist", env: "KRB5CCNAME=BOGUS:x", stderr: `sesame: credentials cache "BOGUS:x" (from KRB5CCNAME): unknown cache type BOGUS`, code: 1},
	{args: "klist -s -c $D/junk", stderr: ``, code: 1},

	{args: "klist -k $D/junk", stderr: `sesame: keytab $D/junk is not a keytab file (or is damaged)`, code: 1},
	{args: "klist -k $D/adir", stderr: `sesame: keytab $D/adir is a directory, not a file`, code: 1},
	{args: "klist -k -f", stderr: `sesame: klist: -f, -s, -a, -A and -l apply to caches, not to keytabs (-k)`, code: 1},
	{args: "klist -t", stderr: `sesame: klist: -t and -K apply to keytabs: give -k too`, code: 1},
	{args: "klist -c $D/nope $D/junk", stderr: `sesame: klist: unexpected argument "$D/junk"`, code: 1},
	{args: "klist -4", stderr: `sesame: Kerberos 4 is no longer supported`, code: 3},

	// kdestroy (MIT: a missing cache is reported and is no failure)
	{args: "kdestroy extra", stderr: `sesame: kdestroy: unexpected argument "extra"`, code: 2},
	{args: "kdestroy -A -p alice", stderr: `sesame: kdestroy: -A and -p cannot be used together`, code: 2},
	{args: "kdestroy -c $D/nope", stderr: `sesame: no credentials cache found while destroying cache (filename: $D/nope)`, code: 0},
	{args: "kdestroy -c $D/adir", stderr: `sesame: credentials cache $D/adir is a directory, not a cache file`, code: 1},

	// renew (krenew: 1)
	{args: "renew --bogus", stderr: `sesame: renew: unknown flag --bogus`, code: 1},
	{args: "renew -c $D/nope", stderr: `sesame: no credentials cache found (filename: $D/nope)`, code: 1},
	{args: "renew -c $D/adir", stderr: `sesame: credentials cache $D/adir is a directory, not a cache file`, code: 1},

	// doctor
	{args: "doctor -p abc host", stderr: `sesame: doctor: bad value "abc" for -p/--port: want a whole number`, code: 2},
	{args: "doctor -p 99999 host", stderr: `sesame: doctor: bad value 99999 for -p/--port: want a port from 1 to 65535`, code: 2},
	{args: "doctor -p 99999999999999999999 host", stderr: `sesame: doctor: bad value "99999999999999999999" for -p/--port: number out of range`, code: 2},
	{args: "doctor -F $D/nope host", stderr: `sesame: ssh config $D/nope does not exist`, code: 1},
	{args: "doctor -F $D/adir host", stderr: `sesame: ssh config $D/adir is a directory, not a file`, code: 1},
	{args: "doctor a b", stderr: `sesame: doctor: unexpected argument "b"`, code: 2},

	// pins
	{args: "pin", stderr: `sesame: pin: missing argument: [user@]HOST KEY`, code: 2},
	{args: "pin host", stderr: `sesame: pin: missing argument: [user@]HOST KEY`, code: 2},
	{args: "pin host SHA256:bogus", stderr: `sesame: "SHA256:bogus" is not a valid SHA256: fingerprint`, code: 1},
	{args: "pin ho\tst SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", stderr: `sesame: bad character in host pattern "ho\tst"`, code: 1},
	// A damaged state file is set aside with one warning; the command goes on.
	{args: "pins", file: "$H/state/learned-pins.json={\"version\": 1, \"pins\": [", stderr: `sesame: warning: learned pins file $H/state/learned-pins.json is damaged (not valid JSON); moved it to $H/state/learned-pins.json.damaged-…`, code: 0},
	{args: "pins", file: "$H/state/learned-pins.json={\"version\": 7}", stderr: `sesame: warning: learned pins file $H/state/learned-pins.json is damaged (unknown version 7); moved it to $H/state/learned-pins.json.damaged-…`, code: 0},
	{args: "pins", env: "SESAME_HOME=$D/junk", stderr: `sesame: $D/junk/config/pins does not exist (a part of the path is not a directory)`, code: 1},
	// Hostile names: refused before they reach a file, and shown escaped.
	{args: "pin ho\nst SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", stderr: `sesame: bad character in host pattern "ho\nst"`, code: 1},
	{args: "pin al\x1bice@host SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", stderr: `sesame: bad user "al\x1bice"`, code: 1},
	{args: "unpin h\a", stderr: `sesame: bad character in host pattern "h\a"`, code: 1},
	{args: "klist -c $D/a\x1b[31mb", stderr: `sesame: no credentials cache found (filename: $D/a\x1b[31mb)`, code: 1},
	{args: "kinit -k -t $D/a\nb alice", stderr: `sesame: keytab $D/a\nb does not exist`, code: 1},
	{args: "pins extra", stderr: `sesame: pins: unexpected argument "extra"`, code: 2},
	{args: "unpin", stderr: `sesame: unpin: missing argument: [user@]HOST [KEY]`, code: 2},
	{args: "unpin nohost", stderr: `sesame: no pin for nohost`, code: 1},
	{args: "ssh-config extra", stderr: `sesame: ssh-config: unexpected argument "extra"`, code: 2},

	// keychain (ssh-add: 1; 2 when no agent answers)
	{args: "add", stderr: `sesame: add: missing argument: FILE…`, code: 1},
	{args: "add $D/nope", stderr: `sesame: key file $D/nope does not exist`, code: 1},
	{args: "add $D/adir", stderr: `sesame: key file $D/adir is a directory, not a file`, code: 1},
	{args: "add -t abc $D/junk", stderr: `sesame: invalid lifetime "abc" (use seconds, or e.g. 90m, 10h, 7d)`, code: 1},
	{args: "add $D/junk", stderr: `sesame: $D/junk: not a private key`, code: 1},
	{args: "keys extra", stderr: `sesame: keys: unexpected argument "extra"`, code: 1},
	{args: "keys --backend bogus", stderr: `sesame: unknown keychain backend "bogus"`, code: 1},
	{args: "keys --passphrase-file $D/adir", stderr: `sesame: passphrase file $D/adir is a directory, not a file`, code: 1},
	{args: "keys --passphrase-file $D/nope", stderr: `sesame: passphrase file $D/nope does not exist`, code: 1},
	{args: "remove", stderr: `sesame: remove: missing argument: KEY`, code: 1},
	{args: "unlock --passphrase-file $D/junk --passphrase-stdin", stderr: `sesame: unlock: --passphrase-file and --passphrase-stdin exclude each other`, code: 1},
	{args: "lock --passphrase-file $D/adir", env: "SSH_AUTH_SOCK=$D/nope", stderr: `sesame: cannot reach the agent at $D/nope (SSH_AUTH_SOCK): no such file or directory`, code: 2},
	{args: "lock extra", stderr: `sesame: lock: unexpected argument "extra"`, code: 1},
	{args: "lock", stderr: `sesame: SSH_AUTH_SOCK is not set: no agent to talk to`, code: 2},
	{args: "unlock", stderr: `sesame: SSH_AUTH_SOCK is not set: no agent to talk to`, code: 2},
	{args: "status", env: "SSH_AUTH_SOCK=$D/nope", stderr: `sesame: cannot reach the agent at $D/nope (SSH_AUTH_SOCK): no such file or directory`, code: 2},

	// agent (ssh-agent: 1)
	{args: "agent --bogus", stderr: `sesame: agent: unknown flag --bogus`, code: 1},
	{args: "agent --max-offer x", stderr: `sesame: agent: bad value "x" for --max-offer: want a whole number`, code: 1},
	{args: "agent --lock-after x", stderr: `sesame: agent: bad value "x" for --lock-after: want a duration such as 90s, 15m or 10h`, code: 1},
	{args: "agent -D -a $D/junk", stderr: `sesame: cannot listen on $D/junk: it exists and is not a socket`, code: 1},
	{args: "agent -D -a $D/nodir/s.sock", stderr: `sesame: cannot listen on $D/nodir/s.sock: directory $D/nodir does not exist`, code: 1},
	{args: "agent -D -O bogus", stderr: `sesame: unknown -O option "bogus"`, code: 1},
	{args: "agent -D -E sha3", stderr: `sesame: invalid hash algorithm "sha3"`, code: 1},
}

// TestErrorWalk runs the built binary on every row of errorWalk.
func TestErrorWalk(t *testing.T) {
	bin := sesameBin(t)
	d := t.TempDir()
	for name, data := range map[string]string{"junk": "garbage\n", "empty": ""} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(d, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(d, "krb5.conf")
	if err := os.WriteFile(conf, []byte("[libdefaults]\n default_realm = EXAMPLE.ORG\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"KRB5_CONFIG=" + conf, "KRB5CCNAME=FILE:" + filepath.Join(d, "cc"),
		"SESAME_HOME=" + filepath.Join(d, "home"), "SESAME_BACKEND=vault", "TZ=UTC", "LC_ALL=C"}
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "SSH_AUTH_SOCK", "SSH_AGENT_PID", "SESAME_AGENT_PID", "KRB5CCNAME", "KRB5_CONFIG",
			"KRB5_KTNAME", "KRB5_CLIENT_KTNAME", "SESAME_HOME", "SESAME_BACKEND", "SESAME_PASSPHRASE_FILE",
			"XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS":
			continue
		}
		base = append(base, kv)
	}
	var kdcEnv []string
	home := filepath.Join(d, "home")
	expand := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "$H", home), "$D", d) }
	outer := t
	for _, row := range errorWalk {
		t.Run(row.args, func(t *testing.T) {
			env := append([]string(nil), base...)
			if row.kdc {
				// Skips this row only (fails under CI) when no KDC can run;
				// the KDC itself lives as long as the whole walk.
				testbed.Need(t, "krb5kdc", "kdb5_util", "kadmin.local")
				if kdcEnv == nil {
					kdc := testbed.NewKDC(outer, testbed.KDCOptions{})
					kdc.AddPrincipal("alice", krbTestPassword)
					kdcEnv = kdc.Env()
				}
				env = append(env, kdcEnv...)
			}
			if row.file != "" {
				path, content, _ := strings.Cut(expand(row.file), "=")
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if row.env != "" {
				env = append(env, strings.Fields(expand(row.env))...)
			}
			var args []string
			for _, a := range strings.Split(row.args, " ") {
				args = append(args, expand(a))
			}
			_, stderr, code := runNoTTY(t, env, row.stdin, bin, args...)
			first, _, _ := strings.Cut(stderr, "\n")
			want := expand(row.stderr)
			match := first == want
			if prefix, ok := strings.CutSuffix(want, "…"); ok {
				match = strings.HasPrefix(first, prefix)
			}
			if !match || code != row.code {
				t.Errorf("sesame %s\n got: %q (exit %d)\nwant: %q (exit %d)\nstderr:\n%s", row.args, first, code, want, row.code, stderr)
			}
			for _, bad := range []string{"strconv.", ".tmp-", "json:", "invalid character", "arg(s)", "goroutine "} {
				if strings.Contains(stderr, bad) {
					t.Errorf("sesame %s: stderr shows Go internals (%q):\n%s", row.args, bad, stderr)
				}
			}
		})
	}
}
