#!/usr/bin/env bash
# Fails when a file tracked by git is a compiled program or object: ELF,
# Mach-O, PE/COFF (Windows .exe), WebAssembly, or an ar archive (.a). The
# repository holds sources only; build and test outputs are ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  magic=$(head -c 8 -- "$f" | od -An -tx1 | tr -d ' \n')
  kind=""
  case "$magic" in
    7f454c46*) kind="ELF executable or object" ;;
    feedface*|feedfacf*|cefaedfe*|cffaedfe*|cafebabe*) kind="Mach-O executable" ;;
    4d5a*) kind="PE executable" ;;
    0061736d*) kind="WebAssembly module" ;;
    213c617263683e0a) kind="ar archive" ;;
  esac
  if [ -n "$kind" ]; then
    echo "check-no-binaries: $f is a compiled file ($kind); remove it with git rm --cached and ignore it" >&2
    bad=1
  fi
done < <(git ls-files -z)
exit "$bad"
