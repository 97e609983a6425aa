#!/usr/bin/env bash
# `make install-test` (part of `make test`): the .deb that `make dist`
# builds, installed and used as a user would. It builds the packages for
# this machine's architecture, lints them (lintian: no errors; rpm -qlp:
# the expected files), installs the .deb with apt-get, runs the installed
# /usr/bin/sesame through the end-to-end tests that matter for a package
# (kinit/klist against a real MIT KDC next to MIT's tools, the agent with
# stock ssh-add), checks that `man sesame-kinit` renders and that bash
# finds the completion, then removes the package and checks that nothing
# of it is left. A sesame in /usr/local/bin (make install) is left alone:
# everything here names /usr/bin/sesame. Needs root or sudo; a sesame
# package installed before is not touched (the step refuses to run).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
fail() { echo "install-test: $*" >&2; exit 1; }

if dpkg-query -W -f='${Status}' sesame 2>/dev/null | grep -q "install ok installed"; then
  fail "a sesame package is already installed here; remove it (dpkg -r sesame) or run this step on another machine"
fi
for tool in lintian rpm man apt-get dpkg; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (bash scripts/install-deps.sh)"
done
[ -r /usr/share/bash-completion/bash_completion ] || fail "bash-completion is not installed (bash scripts/install-deps.sh)"

arch=$("$GO" env GOARCH)
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
DIST=$dist TARGETS=linux/$arch bash scripts/dist.sh >/dev/null
deb=$(ls "$dist"/sesame_*_"$arch".deb)
rpmfile=$(ls "$dist"/sesame-*.rpm)
version=$(dpkg-deb -f "$deb" Version)
version=${version%-*} # without the package release
echo "install-test: $(basename "$deb") and $(basename "$rpmfile")"

# lintian: errors fail, warnings are shown.
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v '^running with root privileges' || true)
[ -z "$lint" ] || echo "$lint"
if echo "$lint" | grep -q '^E: '; then fail "lintian reports errors on $(basename "$deb")"; fi

expected="/usr/bin/sesame
/usr/lib/systemd/user/sesame-agent.service
/usr/lib/systemd/user/sesame-agent.socket
/usr/lib/systemd/user/sesame-renew.service
/usr/share/bash-completion/completions/sesame
/usr/share/doc/sesame/README.md
/usr/share/doc/sesame/copyright
/usr/share/fish/vendor_completions.d/sesame.fish
/usr/share/man/man1/sesame-agent.1.gz
/usr/share/man/man1/sesame-kinit.1.gz
/usr/share/man/man1/sesame-klist.1.gz
/usr/share/man/man1/sesame.1.gz
/usr/share/zsh/vendor-completions/_sesame"
listed=$(rpm -qlp "$rpmfile" 2>/dev/null)
missing=$(comm -23 <(echo "$expected" | sort) <(echo "$listed" | sort))
[ -z "$missing" ] || fail "rpm -qlp $(basename "$rpmfile") lacks: $missing"

$sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$deb" >/dev/null
removed=""
cleanup() {
  [ -n "$removed" ] || $sudo dpkg -r sesame >/dev/null 2>&1 || true
  rm -rf "$dist"
}
trap cleanup EXIT

got=$(/usr/bin/sesame --version)
[ "$got" = "sesame $version" ] || fail "/usr/bin/sesame --version says '$got', the package is $version"
# The installed binary against the test bed: the same tests as for a
# build, through SESAME_BIN.
SESAME_BIN=/usr/bin/sesame "$GO" test -count=1 -timeout 5m \
  -v -run '^(TestKlistMatchesMIT|TestAgentBackgroundAndKill|TestAgentForegroundSignals)$|^TestKerberosSuite$/^mit$/^(password|no_pre-authentication|keytab)$' \
  ./cmd/sesame

MANWIDTH=80 man sesame-kinit 2>&1 | grep -q -- '--password-stdin' || fail "man sesame-kinit does not render the page"
for f in $(/usr/bin/sesame agent --help | sed -n 's/^ *\(-[A-Za-z], \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p'); do
  MANWIDTH=200 man sesame-agent 2>/dev/null | grep -q -- "$f" || fail "man sesame-agent lacks $f of sesame agent --help"
done
# bash-completion loads a command's completion on its first <TAB>, from
# /usr/share/bash-completion/completions/NAME; __load_completion is that
# step. (Debian's /etc/bash.bashrc leaves bash-completion commented out,
# so it is sourced here as a user's ~/.bashrc does.)
bash -ic '. /usr/share/bash-completion/bash_completion; __load_completion sesame; complete -p sesame' </dev/null 2>/dev/null |
  grep -q 'sesame$' || fail "bash finds no completion for sesame (complete -p sesame)"

$sudo dpkg -r sesame >/dev/null
removed=yes
left=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||' | while read -r p; do
  [ -f "$p" ] && echo "$p"
done || true)
[ -z "$left" ] || fail "dpkg -r left files behind: $left"
dpkg-query -W -f='${Status}' sesame 2>/dev/null | grep -q "install ok installed" && fail "dpkg -r did not remove the package"
echo "install-test: installed, used and removed $(basename "$deb")"
