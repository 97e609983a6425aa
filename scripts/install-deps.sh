#!/usr/bin/env bash
# Installs the real servers and clients the test suite drives: an MIT KDC and
# its admin tools, MIT client tools (klist, kvno, kinit), OpenSSH server and
# client, kstart (krenew, k5start) as peers, and dbus-daemon for the
# suspend/screen-lock tests (they run a private bus), gnome-keyring for
# the Secret Service backend test, gcc for `make race` (the race detector
# needs cgo), a Samba AD DC (samba-ad-dc with its provisioning data) as the
# Active Directory KDC, and Heimdal's KDC unpacked under a cache directory
# (scripts/fetch-heimdal.sh; its packages conflict with MIT's); make and git
# for the build; and what scripts/openssh-regress.sh needs to fetch and build
# OpenSSH's regress suite (dpkg-dev for apt-get source, autoconf, automake,
# zlib and OpenSSL headers; gdb and sudo for agent-ptrace and
# agent-getpeereid); SoftHSM2 as the PKCS#11 token of the agent's
# ssh-add -s tests and of OpenSSH's agent-pkcs11 regress tests (openssl
# makes the key it holds); sssd-kcm and keyutils for the KCM and KEYRING
# credentials caches; the two-factor realm (the KDC's otp and pkinit plugins,
# FreeRADIUS as its RADIUS server, oathtool for TOTP codes); python3-paramiko
# as an SSH client without session-bind; lintian and rpm to check the
# packages `make dist` builds, man-db and bash-completion to read the
# installed package's page and find its completion (make install-test);
# strace to kill a vault writer at its rename.
# Debian/Ubuntu. Runs as root or as a user who may sudo: it asks for sudo
# only when something is missing and it is not root. When another apt or
# dpkg is running (an unattended upgrade on a fresh machine), it waits for it
# (up to 10 minutes) instead of failing.
set -euo pipefail
pkgs=(krb5-kdc krb5-admin-server krb5-user openssh-server openssh-client kstart sssd-kcm keyutils samba-ad-dc samba-ad-provision dbus-daemon gnome-keyring procps make git gcc libc6-dev ca-certificates
  dpkg-dev autoconf automake zlib1g-dev libssl-dev gdb sudo softhsm2 openssl
  krb5-otp krb5-pkinit freeradius oathtool python3-paramiko lintian rpm strace
  man-db bash-completion)

# The Go toolchain: go.mod names the release it wants, and any go from 1.21
# on fetches it through the module proxy. Install Debian's when it is new
# enough (Debian 13 and later); Debian 12's 1.19 is too old to do that.
need_go=""
if ! command -v go >/dev/null 2>&1; then
  need_go="yes"
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
if [ "$(id -u)" -ne 0 ] && { [ ${#missing[@]} -gt 0 ] || [ -n "$need_go" ]; }; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: not root and sudo is not installed; run this script as root to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi

# apt_get runs apt-get non-interactively and waits while another apt or dpkg
# holds its locks. DPkg::Lock::Timeout covers dpkg's lock during an install;
# apt-get update (apt 2.6) does not wait on the lists lock, hence the loop.
apt_get() {
  local err deadline=$((SECONDS + 600)) said=""
  err=$(mktemp)
  while :; do
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" 2>"$err"; then
      cat "$err" >&2
      rm -f "$err"
      return 0
    fi
    if grep -qE 'Could not get lock|Unable to (acquire|lock)' "$err" && [ $SECONDS -lt $deadline ]; then
      if [ -z "$said" ]; then
        echo "install-deps: another apt or dpkg is running; waiting for it to finish" >&2
        said=yes
      fi
      sleep 5
      continue
    fi
    cat "$err" >&2
    rm -f "$err"
    return 1
  done
}

updated=""
if [ -n "$need_go" ]; then
  apt_get update -qq
  updated=yes
  cand=$(apt-cache policy golang-go | sed -n 's/^ *Candidate: *\(.*\)$/\1/p')
  # Debian versions look like 2:1.24~2: take the minor after "1.".
  minor=$(printf '%s\n' "$cand" | sed -n 's/^\([0-9]*:\)\{0,1\}1\.\([0-9]*\).*/\2/p')
  if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then
    missing+=(golang-go)
  else
    echo "install-deps: go is not on PATH and this system's golang-go (${cand:-none}) is older than 1.21; install Go 1.21 or later from go.dev/dl and put it on PATH" >&2
    exit 1
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  [ -n "$updated" ] || apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
fi
"$(dirname "$0")/fetch-heimdal.sh"
