#!/usr/bin/env bash
# Builds what `make dist` and `make man` promise, from a clean checkout and
# with no network beyond the Go module proxy:
#   dist/man/            the manual pages (sesame.1, sesame-kinit.1, ...)
#   dist/sesame_V_OS_ARCH.tar.gz   static binaries for linux/amd64,
#                        linux/arm64, darwin/amd64, darwin/arm64 with the
#                        pages, completions, the systemd units (Linux) or
#                        the launchd plist (macOS), README and copyright
#   dist/sesame_V_ARCH.deb, dist/sesame-V-1.ARCH.rpm   Linux packages, made
#                        by nfpm from packaging/nfpm.yaml
# Usage: scripts/dist.sh [man]. GO, VERSION, DIST and MAINTAINER may be set;
# TARGETS (default: all four) narrows the builds, e.g. TARGETS=linux/amd64.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
DIST=${DIST:-dist}
VERSION=${VERSION:-$(sh scripts/version.sh)}
export GOEXPERIMENT=runtimesecret
# The commit's time, for pages and packages that do not change from one
# build of the same commit to the next (reproducible-builds.org).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
ldflags="-s -w -X main.version=$VERSION"
stage=$DIST/stage
mkdir -p "$DIST/tools"

# The generator is sesame itself built with -tags mangen (cmd/sesame/man.go),
# for the machine that runs the build.
CGO_ENABLED=0 "$GO" build -trimpath -tags mangen -ldflags "$ldflags" -o "$DIST/tools/sesame-gen" ./cmd/sesame
rm -rf "$DIST/man"
"$DIST/tools/sesame-gen" gen-man "$DIST/man"
echo "dist: manual pages in $DIST/man"
[ "${1:-}" = man ] && exit 0

rm -rf "$stage"
mkdir -p "$stage/man" "$stage/completions" "$stage/systemd" "$stage/doc"
# Debian policy: pages compressed, without a time stamp in the gzip header.
for p in "$DIST"/man/*.1; do gzip -9nc "$p" >"$stage/man/$(basename "$p").gz"; done
"$DIST/tools/sesame-gen" completion bash >"$stage/completions/sesame.bash"
"$DIST/tools/sesame-gen" completion zsh >"$stage/completions/_sesame"
"$DIST/tools/sesame-gen" completion fish >"$stage/completions/sesame.fish"
# The units in contrib/ name /usr/local/bin (make install); the packages
# put the binary in /usr/bin.
for u in contrib/systemd/*; do
  sed 's|/usr/local/bin/sesame|/usr/bin/sesame|g' "$u" >"$stage/systemd/$(basename "$u")"
done
cp README.md "$stage/doc/README.md"
cp packaging/copyright "$stage/doc/copyright"
# Debian's changelog file: one entry, this build.
when=$(date -u -R -d "@$SOURCE_DATE_EPOCH" 2>/dev/null || date -u -r "$SOURCE_DATE_EPOCH" -R)
MAINTAINER=${MAINTAINER:-"sesame developers <sesame@users.noreply.github.com>"}
printf 'sesame (%s-1) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
  "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$MAINTAINER" "$when" |
  gzip -9n >"$stage/doc/changelog.Debian.gz"

# Static binaries. On macOS the Keychain backend of 99designs/keyring needs
# cgo, and there is no macOS toolchain here: the darwin binaries are built
# without cgo, so they offer the vault and pass backends but not the
# Keychain (README, "Install"). A build on a Mac (make build) has it.
TARGETS=${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
for target in $TARGETS; do
  os=${target%/*} arch=${target#*/}
  mkdir -p "$stage/$os-$arch"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath -ldflags "$ldflags" -o "$stage/$os-$arch/sesame" ./cmd/sesame
  tdir=$stage/tar/sesame_${VERSION}_${os}_$arch
  rm -rf "$tdir"
  mkdir -p "$tdir/man" "$tdir/completions"
  cp "$stage/$os-$arch/sesame" "$tdir/"
  cp "$DIST"/man/*.1 "$tdir/man/"
  cp "$stage"/completions/* "$tdir/completions/"
  cp README.md packaging/copyright "$tdir/"
  if [ "$os" = darwin ]; then
    cp contrib/launchd/org.sesame.agent.plist "$tdir/"
  else
    mkdir -p "$tdir/systemd" && cp "$stage"/systemd/* "$tdir/systemd/"
  fi
  tar -C "$stage/tar" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -czf "$DIST/sesame_${VERSION}_${os}_$arch.tar.gz" "$(basename "$tdir")"
  echo "dist: $DIST/sesame_${VERSION}_${os}_$arch.tar.gz"
done

# The packages. nfpm expands variables in its metadata fields but not in
# the paths of contents, so the paths are filled in here; the files' times
# come from SOURCE_DATE_EPOCH.
for target in $TARGETS; do
  [ "${target%/*}" = linux ] || continue
  arch=${target#*/}
  sed -e "s|\${STAGE}|$stage|g" -e "s|\${ARCH}|$arch|g" packaging/nfpm.yaml >"$stage/nfpm-$arch.yaml"
  for packager in deb rpm; do
    ARCH=$arch VERSION=$VERSION MAINTAINER=$MAINTAINER \
      "$GO" tool nfpm package --config "$stage/nfpm-$arch.yaml" --packager "$packager" --target "$DIST/" >/dev/null
  done
done
ls -1 "$DIST"/*.deb "$DIST"/*.rpm | sed 's/^/dist: /'
