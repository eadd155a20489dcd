# SPDX-License-Identifier: Apache-2.0
# Shared by the deployment test scripts, which take the source directory,
# the build directory and the shoal-server binary as arguments. Owned by
# the deploy work.

SOURCE_DIR=$1
BUILD_DIR=$2
SERVER=$3

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Exit status 77 makes ctest report the test as skipped.
skip() {
  echo "SKIP: $*"
  exit 77
}

[ -d "$SOURCE_DIR" ] && [ -d "$BUILD_DIR" ] && [ -x "$SERVER" ] ||
  fail "usage: $0 SOURCE_DIR BUILD_DIR SHOAL_SERVER"

WORK_DIR=$(mktemp -d /tmp/shoal-deploy-test-XXXXXX) || fail "mktemp failed"
trap 'rm -rf "$WORK_DIR"' EXIT

# Installs the build tree into the staging directory $1 with prefix $2
# (/usr when omitted). A staging directory is required, because an empty
# DESTDIR would install into the real /usr and /etc.
stage_install() {
  [ -n "$1" ] || fail "stage_install needs a staging directory"
  DESTDIR=$1 cmake --install "$BUILD_DIR" --prefix "${2:-/usr}" >"$WORK_DIR/install.log" 2>&1 ||
    { cat "$WORK_DIR/install.log" >&2; fail "cmake --install into $1 failed"; }
}

# Prints the regular files and links under directory $1, relative to it,
# sorted.
list_files() {
  (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./|/|' | LC_ALL=C sort)
}

# Prints the files that an install with prefix /usr must contain, sorted.
expected_files() {
  {
    echo /etc/shoal/shoal.conf
    echo /usr/bin/shoal-server
    [ -x "$BUILD_DIR/bench/shoal-bench" ] && echo /usr/bin/shoal-bench
    echo /usr/lib/systemd/system/shoal.service
    echo /usr/lib/sysusers.d/shoal.conf
    echo /usr/share/man/man8/shoal-server.8
  } | LC_ALL=C sort
}
