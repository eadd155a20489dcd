#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every shoal-bench scenario briefly against a real server on a free
# loopback port and checks that the JSON summary's counts add up. Then it
# checks the error exits and the credentials options. Usage: test_bench_run.sh SHOAL_BENCH SERVER [SERVER_ARGS...]
# The server gets "-a 127.0.0.1 -p PORT" followed by SERVER_ARGS. Needs jq
# and perl. Exits 77 (skipped for ctest) when the server binary is missing.
set -euo pipefail

bench=$1
server=$2
shift 2
server_args=("$@")
[ -x "$server" ] || { echo "skip: $server is not installed"; exit 77; }

port=$(perl -MIO::Socket::INET -e '
  my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp")
    or die "cannot bind a loopback port: $!\n";
  print $s->sockport, "\n";')
log=$(mktemp /tmp/shoal-bench-test.XXXXXX)
store_dir=$(mktemp -d /tmp/shoal-bench-js.XXXXXX)
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
cleanup() {
  stop_server
  rm -f "$log"
  rm -rf "$store_dir"
}
trap cleanup EXIT

# start_server EXTRA_ARGS...: starts the server and waits up to 5 s for it.
start_server() {
  "$server" -a 127.0.0.1 -p "$port" "${server_args[@]}" "$@" >>"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "FAIL: the server did not listen on 127.0.0.1:$port within 5 s"
  cat "$log"
  exit 1
}
start_server
url="nats://127.0.0.1:$port"
failures=0

# check NAME JSON JQ_CONDITION...: each condition must be true on JSON.
check() {
  local name=$1 json=$2 failed=0
  shift 2
  for cond in "$@"; do
    if [ "$(jq -r "$cond" <<<"$json")" != true ]; then
      echo "FAIL $name: expected $cond in $json"
      failed=1
    fi
  done
  if [ $failed -eq 0 ]; then echo "ok   $name"; else failures=$((failures + 1)); fi
}

# run NAME ARGS...: runs shoal-bench with ARGS, bounded by --timeout.
run() {
  local name=$1
  shift
  local out rc=0
  out=$("$bench" "$@" --url "$url" --json --no-live --timeout 60) || rc=$?
  if [ $rc -ne 0 ]; then
    echo "FAIL $name: shoal-bench exited with $rc" >&2
    failures=$((failures + 1))
    echo '{}'
    return
  fi
  echo "$out"
}

clean='.lost == 0 and .duplicated == 0 and .out_of_order == 0 and .foreign == 0'

json=$(run pub pub --msgs 20000)
check pub "$json" '.published.msgs == 20000' '.sent_total == 20000' "$clean"

json=$(run pubsub pubsub --msgs 20000 --size 64)
check pubsub "$json" '.published.msgs == 20000' '.received.msgs == 20000' "$clean" \
  '.latency_ns.count == 20000' '.latency_ns.p50 > 0' '.latency_ns.max >= .latency_ns.p99'

json=$(run "pubsub N:M" pubsub --msgs 20000 --pubs 2 --subs 3)
check "pubsub N:M" "$json" '.published.msgs == 20000' '.received.msgs == 60000' "$clean"

json=$(run "pubsub paced" pubsub --msgs 2000 --rate 10000 --size 1024)
check "pubsub paced" "$json" '.received.msgs == 2000' "$clean" '.published.seconds >= 0.15'

json=$(run queue queue --msgs 20000 --pubs 2 --subs 3)
check queue "$json" '.published.msgs == 20000' '.received.msgs == 20000' '.exactly_once == true' "$clean"

json=$(run reqrep reqrep --msgs 2000 --pubs 4 --subs 2)
check reqrep "$json" '.published.msgs == 2000' '.received.msgs == 2000' "$clean" \
  '.latency_ns.count == 2000'

# Requesters 10 and up have a longer inbox, so a longer PUB header, than
# requester 0; sizing every frame by requester 0 corrupted their output.
json=$(run "reqrep 12 requesters" reqrep --msgs 2400 --pubs 12 --subs 2)
check "reqrep 12 requesters" "$json" '.published.msgs == 2400' '.received.msgs == 2400' "$clean"

json=$(run warmup pubsub --duration 0.3 --warmup 0.2)
check warmup "$json" '.sent_total >= .published.msgs' '.received_total == .sent_total' "$clean"

# sub counts what a separate pub run sends; it must be subscribed first.
sub_out=$(mktemp /tmp/shoal-bench-sub.XXXXXX)
"$bench" sub --url "$url" --msgs 5000 --json --no-live --timeout 30 >"$sub_out" &
sub_pid=$!
sleep 0.5
run "pub for sub" pub --msgs 5000 --rate 20000 >/dev/null
sub_rc=0
wait "$sub_pid" || sub_rc=$?
check sub "$(cat "$sub_out")" '.received.msgs == 5000' "$clean"
[ $sub_rc -eq 0 ] || { echo "FAIL sub: exited with $sub_rc"; failures=$((failures + 1)); }
rm -f "$sub_out"

# Errors end the run with a message and a non-zero exit.
expect_exit() {
  local name=$1 want=$2 text=$3
  shift 3
  local rc=0 err
  err=$("$bench" "$@" --no-live --timeout 10 2>&1 >/dev/null) || rc=$?
  if [ $rc -ne "$want" ] || ! grep -q "$text" <<<"$err"; then
    echo "FAIL $name: expected exit $want and '$text', got exit $rc and '$err'"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}
expect_exit "unreachable server" 1 "Connection refused" pub --url "nats://127.0.0.1:1" --msgs 10
expect_exit "payload over max" 1 "max_payload" pub --url "$url" --msgs 10 --size 2000000
expect_exit "jetstream disabled" 1 "is JetStream enabled" js-pub --url "$url" --msgs 10
expect_exit "invalid size" 2 "invalid --size" pub --url "$url" --size 4

# JetStream: every publish acked once with increasing stream sequences, and
# every message consumed and acked once, in order.
stop_server
start_server -js -sd "$store_dir"
json=$(run js-pub js-pub --msgs 500)
check js-pub "$json" '.published.msgs == 500' '.received.msgs == 500' "$clean" '.latency_ns.count == 500'
json=$(run js-async-pub js-async-pub --msgs 20000 --window 64)
check js-async-pub "$json" '.published.msgs == 20000' '.received.msgs == 20000' "$clean" \
  '.latency_ns.count == 20000'
json=$(run "js-async-pub memory" js-async-pub --msgs 5000 --js-storage memory --size 512)
check "js-async-pub memory" "$json" '.received.msgs == 5000' "$clean"
json=$(run "js-async-pub duration" js-async-pub --duration 0.3)
check "js-async-pub duration" "$json" '.published.msgs > 0' '.received.msgs == .published.msgs' "$clean"
# 10000 is not a multiple of the batch size, so the last fetch is partial.
json=$(run js-consume js-consume --msgs 10000 --window 300)
check js-consume "$json" '.published.msgs == 10000' '.received.msgs == 10000' "$clean"
# A second run deletes the stream the first one left behind, if any, and
# starts again from stream sequence 1.
json=$(run "js-consume again" js-consume --msgs 1000)
check "js-consume again" "$json" '.received.msgs == 1000' "$clean"
expect_exit "jetstream bad stream" 1 "JetStream request" js-pub --url "$url" --msgs 10 --stream 'bad*'

# Credentials from options and from the URL; a missing one fails the run.
stop_server
start_server --user bench --pass 'se"cr\et'
json=$(run "auth options" pub --msgs 1000 --user bench --pass 'se"cr\et')
check "auth options" "$json" '.published.msgs == 1000'
url="nats://bench:se\"cr\\et@127.0.0.1:$port"
json=$(run "auth url" pub --msgs 1000)
check "auth url" "$json" '.published.msgs == 1000' '.url | contains("se") | not'
expect_exit "auth missing" 1 "Authorization Violation" pub --url "nats://127.0.0.1:$port" --msgs 10

if [ $failures -ne 0 ]; then
  echo "$failures checks failed; server log:"
  cat "$log"
  exit 1
fi
echo "all checks passed"
