#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Checks the installed shoal.service with "systemd-analyze verify", which
# must print nothing, and its "systemd-analyze security" exposure score,
# which must stay at or below SHOAL_EXPOSURE_MAX. Owned by the deploy work.
. "$(dirname "$0")/lib.sh"

# The score of deploy/shoal.service was 1.2 with systemd 252; the rest is
# headroom for other systemd versions, which weigh settings differently.
SHOAL_EXPOSURE_MAX=1.5

command -v systemd-analyze >/dev/null 2>&1 ||
  skip "systemd-analyze not found; it comes with Debian's systemd package"

stage_install "$WORK_DIR/root"
unit=$WORK_DIR/root/usr/lib/systemd/system/shoal.service
[ -f "$unit" ] || fail "the install has no $unit"

# verify checks that each command exists, so the copy runs the staged
# binary. It also runs man for Documentation=, which needs the staged page.
mkdir -p "$WORK_DIR/unit"
sed "s|/usr/bin/shoal-server|$WORK_DIR/root/usr/bin/shoal-server|" "$unit" >"$WORK_DIR/unit/shoal.service"
if ! command -v man >/dev/null 2>&1; then
  echo "NOTE: man not found, so Documentation= is left out of the check"
  sed -i '/^Documentation=/d' "$WORK_DIR/unit/shoal.service"
fi
output=$(MANPATH=$WORK_DIR/root/usr/share/man systemd-analyze verify "$WORK_DIR/unit/shoal.service" 2>&1)
status=$?
[ -z "$output" ] || { echo "$output" >&2; fail "systemd-analyze verify printed warnings"; }
[ "$status" -eq 0 ] || fail "systemd-analyze verify exited with $status"
echo "systemd-analyze verify: clean"

# The settings the service relies on, so that an edit cannot drop them.
for setting in Type=notify WatchdogSec= ExecReload= Restart=on-failure TimeoutStopSec= \
  LimitNOFILE= LimitMEMLOCK= StateDirectory=shoal User=shoal NoNewPrivileges=yes \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes RestrictAddressFamilies= \
  "SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register"; do
  grep -q "^$setting" "$unit" || fail "shoal.service has no line starting with $setting"
done

report=$(systemd-analyze security --offline=true "$WORK_DIR/unit/shoal.service" 2>&1)
score=$(echo "$report" | sed -n 's/.*Overall exposure level for shoal.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "$report" >&2; fail "no exposure score in systemd-analyze security output"; }
echo "systemd-analyze security exposure: $score (at most $SHOAL_EXPOSURE_MAX allowed)"
awk -v s="$score" -v m="$SHOAL_EXPOSURE_MAX" 'BEGIN { exit !(s <= m) }' ||
  { echo "$report" | grep '✗' >&2; fail "exposure $score is above $SHOAL_EXPOSURE_MAX"; }
