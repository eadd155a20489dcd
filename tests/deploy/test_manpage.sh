#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Checks that every flag in the flags table of core/opts.c appears in
# "shoal-server --help" and in the man page, and that the man page renders
# without warnings. Owned by the deploy work.
. "$(dirname "$0")/lib.sh"

page=$SOURCE_DIR/deploy/shoal-server.8
[ -f "$page" ] || fail "no $page"

# The table rows look like {{"a", "addr", "net"}, FLAG_STRING, OPT_ADDR}.
names=$(sed -n 's/^ *{{\([^}]*\)}, FLAG_.*/\1/p' "$SOURCE_DIR/core/opts.c" | tr -d '",' )
[ -n "$names" ] || fail "no flags found in core/opts.c; has the table's form changed?"

"$SERVER" --help >"$WORK_DIR/help" || fail "shoal-server --help failed"
# groff writes a minus as \-, so the page is searched with plain hyphens.
sed 's/\\-/-/g' "$page" >"$WORK_DIR/page"

count=0
for name in $names; do
  count=$((count + 1))
  grep -Eq -- "(^|[ ,])--?$name([ ,=]|\$)" "$WORK_DIR/help" || fail "--help does not list -$name"
  grep -Eq -- "(^|[ ,\"])--?$name([ ,=\"]|\\\\|\$)" "$WORK_DIR/page" || fail "the man page does not list -$name"
done
echo "$count flag names listed in --help and in the man page"

if command -v man >/dev/null 2>&1; then
  warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || { echo "$warnings" >&2; fail "the man page renders with warnings"; }
  echo "man --warnings: clean"
else
  echo "NOTE: man not found, so rendering is not checked"
fi
