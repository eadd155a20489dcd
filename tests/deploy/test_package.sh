#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package with "cpack -G DEB", lists it with
# "dpkg-deb -c" and checks its files, control fields, conffiles and
# maintainer scripts, and that its files equal a staged install. Owned by
# the deploy work.
. "$(dirname "$0")/lib.sh"

for tool in cpack dpkg-deb; do
  command -v $tool >/dev/null 2>&1 || skip "$tool not found; install Debian's cmake and dpkg packages"
done
[ -f "$BUILD_DIR/CPackConfig.cmake" ] || fail "no CPackConfig.cmake in $BUILD_DIR"

cpack -G DEB -B "$WORK_DIR/package" --config "$BUILD_DIR/CPackConfig.cmake" >"$WORK_DIR/cpack.log" 2>&1 ||
  { cat "$WORK_DIR/cpack.log" >&2; fail "cpack -G DEB failed"; }
set -- "$WORK_DIR"/package/*.deb
[ $# -eq 1 ] && [ -f "$1" ] || fail "cpack made $# .deb files, expected 1"
deb=$1
echo "package: $(basename "$deb")"

# Contents: exactly the files of a staged install, and no enablement link.
dpkg-deb -c "$deb" | tee "$WORK_DIR/contents"
awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' "$WORK_DIR/contents" | LC_ALL=C sort >"$WORK_DIR/got"
expected_files >"$WORK_DIR/want"
diff -u "$WORK_DIR/want" "$WORK_DIR/got" || fail "the package has other files than expected"
grep -q '\./etc/systemd/' "$WORK_DIR/contents" && fail "the package ships files under /etc/systemd"
awk '$1 !~ /^d/ && $2 != "root/root" { print; bad = 1 } END { exit bad }' "$WORK_DIR/contents" ||
  fail "files in the package are not owned by root/root"

dpkg-deb -x "$deb" "$WORK_DIR/extracted"
stage_install "$WORK_DIR/root"
while read -r path; do
  cmp -s "$WORK_DIR/extracted$path" "$WORK_DIR/root$path" || fail "$path differs from the staged install"
done <"$WORK_DIR/want"

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = shoal ] || fail "Package is '$(field Package)', expected shoal"
version=$("$SERVER" -v | sed -n 's/.*shoal-server \([^ )]*\).*/\1/p')
[ "$(field Version)" = "$version" ] || fail "Version is '$(field Version)', shoal-server -v says '$version'"
depends=$(field Depends)
echo "Depends: $depends"
for dependency in "systemd | adduser" liburing2 libc6; do
  case "$depends" in
  *"$dependency"*) ;;
  *) fail "Depends lacks $dependency" ;;
  esac
done

# Control files: the configuration is a conffile, the scripts run with sh.
dpkg-deb -e "$deb" "$WORK_DIR/control"
[ "$(cat "$WORK_DIR/control/conffiles")" = /etc/shoal/shoal.conf ] ||
  fail "conffiles is not exactly /etc/shoal/shoal.conf"
for script in postinst prerm postrm; do
  file=$WORK_DIR/control/$script
  [ -x "$file" ] || fail "the package has no executable $script"
  sh -n "$file" || fail "$script has a syntax error"
  if command -v shellcheck >/dev/null 2>&1; then
    shellcheck -s sh "$file" || fail "shellcheck reports problems in $script"
  fi
done
command -v shellcheck >/dev/null 2>&1 || echo "NOTE: shellcheck not found, so the scripts get only sh -n"

# The scripts create the user but enable and start nothing.
grep -q 'systemd-sysusers /usr/lib/sysusers.d/shoal.conf' "$WORK_DIR/control/postinst" ||
  fail "postinst does not create the user with systemd-sysusers"
grep -q 'adduser --system' "$WORK_DIR/control/postinst" ||
  fail "postinst has no adduser fallback"
if grep -Eq 'systemctl +(enable|start|restart|reenable|preset)' "$WORK_DIR/control/postinst"; then
  fail "postinst enables or starts the service"
fi
echo "package checks passed"
