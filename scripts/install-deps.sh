#!/usr/bin/env bash
# Installs the real servers and clients the test suite drives: an MIT KDC and
# its admin tools, MIT client tools (klist, kvno, kinit), OpenSSH server and
# client, kstart (krenew, k5start) as peers, and dbus-daemon for the
# suspend/screen-lock tests (they run a private bus), gnome-keyring for
# the Secret Service backend test, gcc for `make race` (the race detector
# needs cgo). Debian/Ubuntu, as root.
set -euo pipefail
pkgs=(krb5-kdc krb5-admin-server krb5-user openssh-server openssh-client kstart sssd-kcm keyutils dbus-daemon gnome-keyring procps make git gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
