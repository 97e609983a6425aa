#!/bin/sh
# The version of this checkout, from git tags, in a form dpkg and rpm both
# accept and order: tag v1.2.3 gives 1.2.3; four commits after it,
# 1.2.3+4.gabc1234; no tag at all, 0.0.0+gitabc1234; uncommitted changes add
# .dirty. Outside a git checkout (a source tarball) it is 0.0.0.
# `sesame --version` and the packages carry the same string.
d=$(git describe --tags --match 'v[0-9]*' --long --dirty 2>/dev/null)
if [ -z "$d" ]; then
  h=$(git rev-parse --short=7 HEAD 2>/dev/null) || { echo 0.0.0; exit 0; }
  dirty=$(git diff --quiet HEAD 2>/dev/null || echo .dirty)
  echo "0.0.0+git$h$dirty"
  exit 0
fi
# v1.2.3-4-gabc1234[-dirty]
echo "$d" | sed -e 's/^v//' -e 's/-dirty$/.dirty/' \
  -e 's/^\(.*\)-0-g[0-9a-f]*\(\.dirty\)\{0,1\}$/\1\2/' \
  -e 's/^\(.*\)-\([0-9][0-9]*\)-\(g[0-9a-f]*\)/\1+\2.\3/' \
  -e 's/-/~/g'
