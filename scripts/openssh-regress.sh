#!/usr/bin/env bash
# Runs OpenSSH's own agent regression tests (regress/ of the OpenSSH source)
# against `sesame agent`, the way they run against ssh-agent: the suite's
# TEST_SSH_SSHAGENT is a two-line wrapper around `sesame agent`, and every
# test gets a fresh SESAME_HOME. With --baseline the same tests run against
# the ssh-agent built from the same source, so that a failure that is the
# machine's and not sesame's shows up there too.
#
# The source is Debian's openssh source package, fetched through the package
# registry with a temporary deb-src list (nothing else from the network). It
# is built once per version in a cache directory outside the repository
# (regress binaries and the sk-dummy FIDO provider included), so a second run
# only runs the tests (a few minutes; the build takes a few more once).
#
# The tests run as an unprivileged user: as root, agent-getpeereid and
# agent-ptrace would skip. Run as root (CI, a fresh machine), the script
# creates the system user sesame-regress with passwordless sudo for the
# length of the run (the two tests use sudo to act as another user and as
# root; the rule is removed when the script ends) and runs everything as
# that user; run as another user it uses that user, and SUDO=sudo when
# `sudo -n` works without a password.
#
# Usage: scripts/openssh-regress.sh [--baseline] [--refresh] [--source DIR]
#          [--sesame BIN] [--keep] [--agent-flags FLAGS] [--with-sk] [TEST…]
#   --baseline   test the stock ssh-agent instead of sesame
#   --refresh    fetch the newest source package even if one is built
#   --source DIR an OpenSSH source tree (e.g. an openssh-portable checkout)
#                instead of Debian's package; built in the cache by its
#                OpenSSH version and git commit (or a digest of its files)
#   --sesame BIN the sesame binary (default: bin/sesame, built by make)
#   --keep       keep each test's logs and SESAME_HOME (path printed)
#   --agent-flags FLAGS  extra flags for sesame agent (e.g. --no-pins, to
#                tell a failure of the pin policy from one of the agent)
#   --without-sk hide the sk-dummy FIDO provider while sesame is tested,
#                so that the suite leaves out the security-key types (by
#                default it keeps them: sesame's agent holds sk keys through
#                its backend ssh-agent; --with-sk is the default)
#   --print-sk-dummy  build (or reuse) the regress binaries, print the
#                path of the sk-dummy FIDO provider and run no test; the
#                Go tests find it there (testbed.SKDummy, SESAME_SK_DUMMY)
#   TEST…        test names (agent, cert-file, …); default: every test in
#                regress/ that starts an agent
# Environment: SESAME_REGRESS_CACHE overrides the cache directory; with CI
# set, a test the suite skips for want of something on the machine fails.
set -euo pipefail

regress_user=sesame-regress
repo=$(cd "$(dirname "$0")/.." && pwd)
baseline=0 refresh=0 keep=0 with_sk=1 print_sk=0 source_dir="" agent_flags="" sesame_bin="" tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) baseline=1 ;;
    --refresh) refresh=1 ;;
    --keep) keep=1 ;;
    --with-sk) with_sk=1 ;;
    --without-sk) with_sk=0 ;;
    --print-sk-dummy) print_sk=1 ;;
    --agent-flags) agent_flags=$2; shift ;;
    --source) source_dir=$(cd "$2" && pwd); shift ;;
    --sesame) sesame_bin=$2; shift ;;
    --as-user) ;; # internal: already switched
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "openssh-regress: unknown option $1" >&2; exit 2 ;;
    *) tests+=("$1") ;;
  esac
  shift
done

if [ "$baseline" = 0 ] && [ "$print_sk" = 0 ]; then
  sesame_bin=${sesame_bin:-$repo/bin/sesame}
  [ -x "$sesame_bin" ] || { echo "openssh-regress: $sesame_bin not found (run make build, or give --sesame)" >&2; exit 2; }
  sesame_bin=$(cd "$(dirname "$sesame_bin")" && pwd)/$(basename "$sesame_bin")
fi

# As root: become the unprivileged test user.
if [ "$(id -u)" -eq 0 ]; then
  if ! id "$regress_user" >/dev/null 2>&1; then
    useradd --system --user-group --create-home --home-dir /var/lib/$regress_user \
      --shell /bin/sh --comment "sesame OpenSSH regress tests" "$regress_user"
    # sshd (UsePAM no) refuses a locked password ("!"); "*" only means no password.
    usermod -p '*' "$regress_user"
  fi
  command -v sudo >/dev/null || { echo "openssh-regress: sudo is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
  # The sudo rule lives only as long as this run: a standing NOPASSWD
  # account would outlast the tests on the machine of whoever ran them.
  sudoers=/etc/sudoers.d/$regress_user
  sudo_rule="$regress_user ALL=(ALL) NOPASSWD: ALL"
  drop_sudoers=""
  if [ ! -e "$sudoers" ]; then
    (umask 0337; echo "$sudo_rule" > "$sudoers.tmp") && mv "$sudoers.tmp" "$sudoers"
    drop_sudoers=yes
  elif [ "$(cat "$sudoers" 2>/dev/null)" = "$sudo_rule" ]; then
    drop_sudoers=yes # left by an earlier run of this script
  fi
  args=()
  [ "$baseline" = 1 ] && args+=(--baseline)
  [ "$refresh" = 1 ] && args+=(--refresh)
  [ "$keep" = 1 ] && args+=(--keep)
  [ "$with_sk" = 0 ] && args+=(--without-sk)
  [ "$print_sk" = 1 ] && args+=(--print-sk-dummy)
  [ -n "$agent_flags" ] && args+=(--agent-flags "$agent_flags")
  # The user needs to read the script, the binary and a given source tree:
  # copy them to a directory it can read rather than opening up ours.
  stage=$(mktemp -d /tmp/sesame-regress-stage.XXXXXX)
  trap 'rm -rf "$stage"; [ -z "$drop_sudoers" ] || rm -f "$sudoers"' EXIT
  chmod 0755 "$stage"
  cp "$0" "$stage/openssh-regress.sh"
  if [ "$baseline" = 0 ] && [ "$print_sk" = 0 ]; then
    cp "$sesame_bin" "$stage/sesame"
    args+=(--sesame "$stage/sesame")
  fi
  if [ -n "$source_dir" ]; then
    cp -a "$source_dir" "$stage/src"
    chmod -R a+rX "$stage/src"
    args+=(--source "$stage/src")
  fi
  chmod -R a+rX "$stage"
  home=$(getent passwd "$regress_user" | cut -d: -f6)
  set +e
  runuser -u "$regress_user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    HOME="$home" USER="$regress_user" LOGNAME="$regress_user" SHELL=/bin/sh LANG=C.UTF-8 \
    ${SESAME_REGRESS_CACHE:+SESAME_REGRESS_CACHE="$SESAME_REGRESS_CACHE"} \
    ${CI:+CI="$CI"} \
    bash "$stage/openssh-regress.sh" --as-user "${args[@]}" "${tests[@]}"
  exit $?
fi

export USER=${USER:-$(id -un)}
cache=${SESAME_REGRESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sesame-openssh-regress}
# Readable by others: agent-getpeereid runs the built ssh-add as nobody.
umask 022
mkdir -p "$cache"
# With --print-sk-dummy, stdout carries only the path.
say() { if [ "$print_sk" = 1 ]; then printf '%s\n' "$*" >&2; else printf '%s\n' "$*"; fi; }
die() { printf 'openssh-regress: %s\n' "$*" >&2; exit 1; }

# One run at a time per user, whatever the cache: runs share test-exec.sh's
# sshd port (4242), and those with one cache its build trees. Tests get
# the lock's descriptor closed, so an agent a test leaves behind cannot
# hold it.
exec 9>"${TMPDIR:-/tmp}/sesame-openssh-regress-$(id -u).lock"
if ! flock -n 9; then
  say "waiting for another openssh-regress run to finish"
  flock 9
fi

# fetch_debian_source puts the newest bookworm openssh source package into
# $cache/dl and prints its version.
fetch_debian_source() {
  local apt="$cache/apt" mirror signed suite
  rm -rf "$apt" "$cache/dl"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources" "$cache/dl"
  # The same mirror and key as the machine's own Debian list.
  mirror=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  signed=/usr/share/keyrings/debian-archive-keyring.gpg
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  cat > "$apt/sources/openssh-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $suite
Components: main
Signed-By: $signed
EOF
  local o=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt/sources"
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Sandbox::User="$(id -un)")
  apt-get -q "${o[@]}" update >"$apt/update.log" 2>&1 || { cat "$apt/update.log" >&2; die "apt-get update (deb-src) failed"; }
  (cd "$cache/dl" && apt-get -q "${o[@]}" source --download-only openssh) >"$apt/source.log" 2>&1 \
    || { cat "$apt/source.log" >&2; die "apt-get source openssh failed"; }
  local dsc
  dsc=$(ls "$cache/dl"/openssh_*.dsc | head -1)
  basename "$dsc" .dsc | sed 's/^openssh_//; s/^[0-9]*://'
}

# build_tree configures and builds the tree in $1 with its regress binaries.
build_tree() {
  local src=$1 log=$1/../build.log
  say "building OpenSSH in $src (log: $log)"
  (
    cd "$src"
    [ -f configure ] || autoreconf -i
    mkdir -p ../empty
    # Only what the agent tests need; no PAM, Kerberos or SELinux.
    ./configure --with-privsep-path="$(cd ../empty && pwd)" --with-privsep-user="$USER" \
      --without-pam --without-selinux --without-kerberos5 --without-libedit
    make -j"$(nproc 2>/dev/null || echo 2)"
    make regress-binaries
  ) >"$log" 2>&1 || { tail -30 "$log" >&2; die "build failed (see $log)"; }
}

# Find or build the tree.
if [ -n "$source_dir" ]; then
  # Keyed by its OpenSSH version and its commit (or, outside git, a digest
  # of its file list).
  ver=$(sed -n 's/^#define SSH_VERSION[^"]*"OpenSSH_\(.*\)"/\1/p' "$source_dir/version.h" 2>/dev/null)
  id=$(git -C "$source_dir" rev-parse --short HEAD 2>/dev/null ||
    (cd "$source_dir" && find . -type f -printf '%P %s\n' | sort | sha256sum | cut -c1-12))
  key="${ver:-unknown}-$id"
  tree="$cache/src-$key"
  if [ ! -f "$tree/.built" ] || [ "$refresh" = 1 ]; then
    rm -rf "$tree"; mkdir -p "$tree"
    cp -a "$source_dir" "$tree/src"
    # test-exec.sh warns about group-writable directories (a git checkout
    # may have them).
    chmod -R go-w "$tree/src"
    (cd "$tree/src" && autoreconf -i >/dev/null 2>&1)
    build_tree "$tree/src"
    touch "$tree/.built"
  fi
  version="$key (from $source_dir)"
else
  current=""
  [ -L "$cache/current" ] && current=$(readlink "$cache/current")
  if [ -z "$current" ] || [ ! -f "$cache/$current/.built" ] || [ "$refresh" = 1 ]; then
    command -v dpkg-source >/dev/null || die "dpkg-source is missing (scripts/install-deps.sh installs dpkg-dev)"
    command -v autoreconf >/dev/null || die "autoreconf is missing (scripts/install-deps.sh installs autoconf and automake)"
    say "fetching the openssh source package"
    v=$(fetch_debian_source)
    tree="$cache/$v"
    if [ ! -f "$tree/.built" ]; then
      rm -rf "$tree"; mkdir -p "$tree"
      dpkg-source --no-check -x "$cache/dl"/openssh_*.dsc "$tree/src" >"$tree/extract.log" 2>&1 \
        || { cat "$tree/extract.log" >&2; die "dpkg-source -x failed"; }
      (cd "$tree/src" && autoreconf -i) >>"$tree/extract.log" 2>&1 || die "autoreconf failed"
      build_tree "$tree/src"
      touch "$tree/.built"
    fi
    ln -sfn "$v" "$cache/current"
    rm -rf "$cache/dl"
    current=$v
  fi
  tree="$cache/$current"
  version="$current (Debian source package)"
fi
src="$tree/src"
obj="$src/regress"

if [ "$print_sk" = 1 ]; then
  sk="$obj/misc/sk-dummy/sk-dummy.so"
  [ -f "$sk" ] || [ ! -f "$sk.hidden" ] || mv -f "$sk.hidden" "$sk"
  [ -f "$sk" ] || die "sk-dummy.so was not built in $tree"
  printf '%s\n' "$sk"
  exit 0
fi

if [ ${#tests[@]} -eq 0 ]; then
  # Every test that starts an agent, except the harness itself.
  for f in $(grep -l SSHAGENT "$src"/regress/*.sh); do
    t=$(basename "$f" .sh)
    [ "$t" = test-exec ] || tests+=("$t")
  done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sesame-regress.XXXXXX")
if [ "$baseline" = 1 ]; then
  agent_bin="$src/ssh-agent"
  label="ssh-agent (baseline)"
else
  agent_bin="$work/sesame-agent"
  # SESAME_REGRESS_HOME is set per test below.
  printf '#!/bin/sh\nSESAME_HOME="$SESAME_REGRESS_HOME" exec %s agent %s "$@"\n' "$sesame_bin" "$agent_flags" > "$agent_bin"
  chmod 0755 "$agent_bin"
  label="sesame agent${agent_flags:+ $agent_flags}"
fi

# Tests sesame does not run, each with the reason (README.md lists them).
declare -A skip_reason=(
)

# Steps that fail only because the security-key types are left out (a
# regular expression on the step's trace line): hostkey-agent takes its
# certificate types from `ssh -Q key-sig`, which lists the sk ones even
# when the suite has no sk host keys.
declare -A sk_steps=(
  [hostkey-agent]="cert type sk-"
)
# Tests that need security keys in the agent throughout (OpenSSH 10.5 on).
declare -A sk_tests=(
  [pubkey-priority]="needs security-key (sk) keys in the agent (left out by --without-sk)"
)

# test-exec.sh runs the security-key (sk-*) key types only when it finds
# the sk-dummy provider: hide it while sesame is tested.
sk_so="$obj/misc/sk-dummy/sk-dummy.so"
restore_sk() { [ ! -f "$sk_so.hidden" ] || mv -f "$sk_so.hidden" "$sk_so"; }
restore_sk
sk_note=""
if [ "$baseline" = 0 ] && [ "$with_sk" = 0 ] && [ -f "$sk_so" ]; then
  mv "$sk_so" "$sk_so.hidden"
  sk_note=" (without security-key types: --without-sk)"
fi
if [ "$keep" = 0 ]; then trap 'restore_sk; rm -rf "$work"' EXIT; else trap restore_sk EXIT; fi

sudo_cmd=""
if sudo -n true 2>/dev/null; then sudo_cmd=sudo; fi

say "OpenSSH $version regress tests against $label$sk_note"
failed=0 passed=0 skipped=0
for t in "${tests[@]}"; do
  [ -f "$src/regress/$t.sh" ] || { say "FAIL $t: no such test"; failed=$((failed + 1)); continue; }
  if [ "$baseline" = 0 ] && [ -n "${skip_reason[$t]:-}" ]; then
    say "skip $t: ${skip_reason[$t]}"
    skipped=$((skipped + 1))
    continue
  fi
  if [ -n "$sk_note" ] && [ -n "${sk_tests[$t]:-}" ]; then
    say "skip $t: ${sk_tests[$t]}"
    skipped=$((skipped + 1))
    continue
  fi
  home="$work/home-$t"
  mkdir -m 0700 "$home"
  log="$work/$t.log"
  rm -f "$obj/failed-regress.log" "$obj/failed-ssh.log" "$obj/failed-sshd.log"
  start=$(date +%s)
  # Only the tests that act as another user get sudo: with SUDO set,
  # test-exec.sh would also run every sshd as root.
  test_sudo=""
  case "$t" in agent-getpeereid|agent-ptrace) test_sudo=$sudo_cmd ;; esac
  set +e
  (
    cd "$src/regress"
    # What the top-level Makefile's t-exec target sets.
    env SUDO="$test_sudo" SESAME_REGRESS_HOME="$home" \
      PATH="$src:$PATH" OBJ="$obj" BUILDDIR="$src" \
      TEST_SSH_SCP="$src/scp" TEST_SSH_SSH="$src/ssh" TEST_SSH_SSHD="$src/sshd" \
      TEST_SSH_SSHD_SESSION="$src/sshd-session" TEST_SSH_SSHD_AUTH="$src/sshd-auth" \
      TEST_SSH_SSHAGENT="$agent_bin" TEST_SSH_SSHADD="$src/ssh-add" \
      TEST_SSH_SSHKEYGEN="$src/ssh-keygen" TEST_SSH_SSHPKCS11HELPER="$src/ssh-pkcs11-helper" \
      TEST_SSH_SSHKEYSCAN="$src/ssh-keyscan" TEST_SSH_SFTP="$src/sftp" \
      TEST_SSH_PKCS11_HELPER="$src/ssh-pkcs11-helper" TEST_SSH_SK_HELPER="$src/ssh-sk-helper" \
      TEST_SSH_SFTPSERVER="$src/sftp-server" TEST_SSH_MODULI_FILE="$src/moduli" \
      TEST_SSH_PLINK=plink TEST_SSH_PUTTYGEN=puttygen TEST_SSH_CONCH=conch \
      TEST_SSH_IPV6=no TEST_SSH_UTF8=yes TEST_SHELL=sh \
      sh "$src/regress/test-exec.sh" "$obj" "$src/regress/$t.sh"
  ) >"$log" 2>&1 </dev/null 9>&-
  rc=$?
  # A test that stops early (fatal) leaves its agent running, with
  # ssh-agent as with sesame: stop the background agents of this test's
  # SESAME_HOME by the pids they recorded.
  for pf in "$home"/run/*.pid; do
    # An agent stopping on its own removes its file meanwhile.
    pid=$(cat "$pf" 2>/dev/null) && [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  set -e
  secs=$(( $(date +%s) - start ))
  # Each failing step, "step<TAB>message": the last trace line before its
  # FAIL line in test-exec.sh's failed-regress.log. Each failure appends
  # the step's whole log so far, earlier failures of the same step
  # included: each block's last FAIL line is the new one.
  steps="$work/$t.steps"
  : >"$steps"
  if [ -s "$obj/failed-regress.log" ]; then
    awk '/^trace: / { step = substr($0, 8) }
         /^(FAIL|FATAL): / { last = $0; sub(/^FA[A-Z]*: /, "", last) }
         /^$/ && last != "" { print step "\t" last; last = "" }
         END { if (last != "") print step "\t" last }' "$obj/failed-regress.log" >"$steps"
  fi
  # Steps left out on purpose (skip_steps) do not fail the test.
  note=""
  if [ $rc -ne 0 ] && [ -s "$steps" ] && [ -n "$sk_note" ] && [ -n "${sk_steps[$t]:-}" ]; then
    tab=$'\t'
    re="^(${sk_steps[$t]})[^$tab]*$tab"
    n=$( (grep -E "$re" "$steps" || true) | cut -f1 | sort -u | wc -l)
    if [ "$n" -gt 0 ] && ! grep -q -v -E "$re" "$steps"; then
      rc=0
      note="; $n steps skipped: security-key types"
    fi
  fi
  if [ $rc -ne 0 ]; then
    failed=$((failed + 1))
    say "FAIL $t (${secs}s)"
    if [ -s "$steps" ]; then
      awk -F'\t' '++n <= 12 { printf "    step \"%s\": %s\n", $1, $2 }
                  END { if (n > 12) printf "    … and %d more failed steps\n", n - 12 }' "$steps"
    else
      grep -v '^run test\|^failed ' "$log" | tail -15 | sed 's/^/    /'
    fi
    for f in regress ssh sshd; do
      [ -f "$obj/failed-$f.log" ] && mv "$obj/failed-$f.log" "$work/$t.failed-$f.log"
    done
  elif grep -qi '^SKIPPED\|^skipped' "$log"; then
    why=$(grep -i -m1 '^skipped' "$log" | sed 's/^SKIPPED: //; s/^[Ss]kipped:* *//')
    if [ -n "${CI:-}" ]; then
      # Under CI a test the machine cannot run is a failure: a missing
      # gdb or sudo must not pass as a skipped agent-ptrace.
      failed=$((failed + 1))
      say "FAIL $t: skipped under CI: $why"
    else
      skipped=$((skipped + 1))
      say "skip $t: $why"
    fi
  else
    passed=$((passed + 1))
    say "ok   $t (${secs}s$note)"
  fi
  rm -f "$obj/failed-regress.log" "$obj/failed-ssh.log" "$obj/failed-sshd.log"
  # test-exec.sh copies the host keys with $SUDO: give them back.
  [ -z "$test_sudo" ] || $test_sudo chown -R "$USER" "$obj"
done
[ "$keep" = 1 ] && say "logs and SESAME_HOMEs kept in $work"
say "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
