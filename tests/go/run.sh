#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs the nats.go JetStream tests against one server in these steps:
#   1. start the server on a free loopback port with JetStream and a new
#      store directory, and run every test except TestRestartResume;
#   2. stop the server by its PID with SIGTERM and start it again on the
#      same port and store directory;
#   3. run TestRestartResume and stop the server.
# Prints the Go test output of both runs. Exits 0 only if both passed and the
# server started each time and exited with the expected status on SIGTERM.
#
# Usage: run.sh [--stop-status N] TEST_BINARY SERVER [SERVER_ARGS...]
#   --stop-status N  exit status expected from the server after SIGTERM
#                    (default 0; nats-server 2.9.10 exits with 1)
#   TEST_BINARY      jsclient.test, built by `go test -c` from this directory
#   SERVER           shoal-server or nats-server; it gets -a 127.0.0.1
#                    -p PORT -js -sd DIR, then SERVER_ARGS
set -u

usage="usage: $0 [--stop-status N] TEST_BINARY SERVER [SERVER_ARGS...]"
stop_status=0
if [ "${1:-}" = --stop-status ]; then
  if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
    echo "$0: missing or invalid number after --stop-status" >&2
    echo "$usage" >&2
    exit 2
  fi
  stop_status=$2
  shift 2
fi
if [ $# -lt 2 ]; then
  echo "$usage" >&2
  exit 2
fi
test_binary=$1
server=$2
shift 2
server_args=("$@")

readonly host=127.0.0.1
# Bounds, in tenths of a second, on waiting for the port and for an exit.
readonly ready_polls=100
readonly stop_polls=100
readonly start_attempts=3
readonly go_timeout=300s
readonly first_run='^Test(StreamWorkflow|WorkQueue|KeyValue|RestartPrepare)$'
readonly second_run='^TestRestartResume$'

work=$(mktemp -d "${TMPDIR:-/tmp}/shoal-go.XXXXXX") || exit 1
store="$work/store"
log="$work/server.log"
server_pid=""

fail() {
  echo "run.sh: $*" >&2
  if [ -s "$log" ]; then
    echo "--- last lines of the server log ($log) ---" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

# A server still running when the script ends is killed by its PID.
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Returns 0 once the process has ended (a zombie counts as ended).
has_exited() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
  [ -z "$state" ] || [ "$state" = Z ]
}

# Starts the server on $port and waits until the port accepts a TCP
# connection. Returns 1 if the server exited first, for example because
# another process took the port.
start_server() {
  echo "run.sh: starting $server -a $host -p $port -js -sd $store ${server_args[*]}"
  "$server" -a "$host" -p "$port" -js -sd "$store" "${server_args[@]}" >>"$log" 2>&1 &
  server_pid=$!
  for ((poll = 0; poll < ready_polls; poll++)); do
    if has_exited "$server_pid"; then
      wait "$server_pid"
      echo "run.sh: server exited with status $? before accepting connections" >&2
      server_pid=""
      return 1
    fi
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  fail "server did not accept connections on $host:$port within $((ready_polls / 10)) s"
}

# Stops the server with SIGTERM and waits for it to exit.
stop_server() {
  kill -TERM "$server_pid"
  for ((poll = 0; poll < stop_polls; poll++)); do
    has_exited "$server_pid" && break
    sleep 0.1
  done
  if ! has_exited "$server_pid"; then
    fail "server (PID $server_pid) still running $((stop_polls / 10)) s after SIGTERM"
  fi
  wait "$server_pid"
  local status=$?
  server_pid=""
  echo "run.sh: server stopped with exit status $status"
  if [ "$status" -gt 128 ]; then
    fail "server died with signal $((status - 128)) after SIGTERM"
  fi
  if [ "$status" -ne "$stop_status" ]; then
    fail "server exited with status $status after SIGTERM, expected $stop_status"
  fi
}

run_tests() {
  SHOAL_GO_URL="nats://$host:$port" "$test_binary" -test.v -test.count=1 \
    -test.timeout="$go_timeout" -test.run "$1"
}

[ -x "$test_binary" ] || fail "test binary $test_binary is missing or not executable"
[ -x "$server" ] || fail "server $server is missing or not executable"
mkdir -p "$store"

started=0
for ((attempt = 1; attempt <= start_attempts; attempt++)); do
  port=$(free_port) || fail "no free port on $host"
  if start_server; then
    started=1
    break
  fi
done
[ "$started" -eq 1 ] || fail "server did not start in $start_attempts attempts"

run_tests "$first_run" || fail "tests before the restart failed"

echo "run.sh: restarting the server on port $port with store $store"
stop_server
start_server || fail "server did not start again on port $port"

run_tests "$second_run" || fail "tests after the restart failed"
stop_server
echo "run.sh: all tests passed against $server"
