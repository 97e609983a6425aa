#!/usr/bin/env bash
# Unpacks Heimdal's KDC and tools for the test bed without installing them:
# Heimdal's Debian packages conflict with MIT's, so the .debs are fetched
# with `apt-get download` and extracted with `dpkg -x` into DEST (default
# $XDG_CACHE_HOME/sesame-testbed/heimdal, else ~/.cache/...). The test bed
# (internal/testbed/heimdal.go) looks there, or in $SESAME_HEIMDAL_ROOT.
# Nothing outside DEST is written; running it again is a no-op.
set -euo pipefail
dest="${1:-${SESAME_HEIMDAL_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/sesame-testbed/heimdal}}"
if [ -x "$dest/usr/lib/heimdal-servers/kdc" ] && [ -x "$dest/usr/bin/kadmin.heimdal" ] ; then
  exit 0
fi
pkgs=(heimdal-kdc heimdal-clients libasn1-8-heimdal libgssapi3-heimdal libhcrypto5-heimdal
  libhdb9-heimdal libheimbase1-heimdal libheimntlm0-heimdal libhx509-5-heimdal
  libkadm5clnt7-heimdal libkadm5srv8-heimdal libkafs0-heimdal libkdc2-heimdal
  libkrb5-26-heimdal libotp0-heimdal libroken19-heimdal libsl0-heimdal libwind0-heimdal)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt-get download runs as _apt
mkdir -p "$tmp/root"
# A fresh machine may have no package lists yet: update once and retry.
if ! (cd "$tmp" && apt-get download -qq "${pkgs[@]}"); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  (cd "$tmp" && apt-get download -qq "${pkgs[@]}")
fi
for d in "$tmp"/*.deb; do dpkg -x "$d" "$tmp/root"; done
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/root" "$dest"
