#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the build tree into staging directories and checks the files,
# their modes, the paths in the unit, the default configuration and the
# sysusers entry. Owned by the deploy work.
. "$(dirname "$0")/lib.sh"

root=$WORK_DIR/root
stage_install "$root"

echo "installed files:"
list_files "$root" | tee "$WORK_DIR/got"
expected_files >"$WORK_DIR/want"
diff -u "$WORK_DIR/want" "$WORK_DIR/got" || fail "the install has other files than expected"

check_mode() {
  mode=$(stat -c %a "$root$1")
  [ "$mode" = "$2" ] || fail "$1 has mode $mode, expected $2"
}
check_mode /usr/bin/shoal-server 755
check_mode /etc/shoal/shoal.conf 644
check_mode /usr/lib/systemd/system/shoal.service 644
check_mode /usr/lib/sysusers.d/shoal.conf 644
check_mode /usr/share/man/man8/shoal-server.8 644

unit=$root/usr/lib/systemd/system/shoal.service
grep -qx "ExecStart=/usr/bin/shoal-server -c /etc/shoal/shoal.conf" "$unit" ||
  fail "ExecStart in the installed unit does not run /usr/bin/shoal-server with /etc/shoal/shoal.conf"

# The installed server accepts the installed configuration without a warning.
output=$("$root/usr/bin/shoal-server" -c "$root/etc/shoal/shoal.conf" -t 2>&1) ||
  { echo "$output" >&2; fail "shoal-server -t rejects the installed shoal.conf"; }
case "$output" in
*WRN* | *ERR*) echo "$output" >&2; fail "shoal-server -t warns about the installed shoal.conf" ;;
esac
echo "shoal-server -t: $output"

# Another prefix moves the binary and the unit's ExecStart, not the configuration.
other=$WORK_DIR/other
stage_install "$other" /opt/shoal
[ -x "$other/opt/shoal/bin/shoal-server" ] || fail "no /opt/shoal/bin/shoal-server with prefix /opt/shoal"
[ -f "$other/etc/shoal/shoal.conf" ] || fail "prefix /opt/shoal did not keep /etc/shoal/shoal.conf"
grep -qx "ExecStart=/opt/shoal/bin/shoal-server -c /etc/shoal/shoal.conf" \
  "$other/opt/shoal/lib/systemd/system/shoal.service" ||
  fail "ExecStart does not follow prefix /opt/shoal"

# The sysusers entry creates the shoal user and group in an empty root.
if command -v systemd-sysusers >/dev/null 2>&1; then
  users=$WORK_DIR/users
  mkdir -p "$users/etc"
  systemd-sysusers --root="$users" "$root/usr/lib/sysusers.d/shoal.conf" ||
    fail "systemd-sysusers rejected the installed sysusers.d/shoal.conf"
  grep -q '^shoal:x:[0-9]*:[0-9]*:shoal message broker:/var/lib/shoal:' "$users/etc/passwd" ||
    fail "systemd-sysusers did not create the shoal user with home /var/lib/shoal"
  grep -q '^shoal:x:[0-9]*:' "$users/etc/group" || fail "systemd-sysusers did not create the shoal group"
  echo "systemd-sysusers: $(grep '^shoal:' "$users/etc/passwd")"
else
  echo "NOTE: systemd-sysusers not found, so the sysusers entry is not checked"
fi
