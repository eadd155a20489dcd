#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs one shoal-bench scenario matrix against Debian's nats-server and
# shoal-server on loopback, alternating the two servers, and prints a table of
# medians, min-max and the ratio shoal/nats-server. Unless --no-doc is given it
# rewrites docs/BENCHMARKS.md with that table, the machine and the command.
#
# Each round starts both servers fresh on free loopback ports, then runs every
# scenario once per server. The server that goes first alternates by round, so
# a slow drift of the machine affects both sides alike. Needs jq and perl.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=5
duration=2
warmup=0.5
build="$here/build"
nats=/usr/sbin/nats-server
shoal=""
bench=""
libnats_bench=""
shoal_args="--shards 2"
doc="$here/docs/BENCHMARKS.md"
write_doc=1
command_line="bench/compare.sh $*"

usage() {
  cat <<EOF
usage: bench/compare.sh [options]

Options:
  --rounds N        rounds over the whole matrix (default $rounds)
  --duration S      measured seconds per run (default $duration)
  --warmup S        warm-up seconds per run (default $warmup)
  --build DIR       build directory with shoal-server and bench/shoal-bench
                    (default $build)
  --shoal PATH      shoal-server binary (default DIR/shoal-server)
  --shoal-args "A"  extra shoal-server flags (default "$shoal_args")
  --nats PATH       nats-server binary (default $nats)
  --bench PATH      shoal-bench binary (default DIR/bench/shoal-bench)
  --libnats PATH    libnats-bench binary for the cross-check against nats-server
                    (default DIR/bench/libnats-bench; skipped when missing)
  --doc PATH        where to write the results page (default docs/BENCHMARKS.md)
  --no-doc          print the table only
  --quick           one round of 1 s runs, to check the setup
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --shoal) shoal=$2; shift 2 ;;
    --shoal-args) shoal_args=$2; shift 2 ;;
    --nats) nats=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --libnats) libnats_bench=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    --no-doc) write_doc=0; shift ;;
    --quick) rounds=1; duration=1; warmup=0.2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
[ -n "$shoal" ] || shoal="$build/shoal-server"
[ -n "$bench" ] || bench="$build/bench/shoal-bench"
[ -n "$libnats_bench" ] || libnats_bench="$build/bench/libnats-bench"

for tool in jq perl; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing; run scripts/install-deps" >&2; exit 1; }
done
for bin in "$nats" "$shoal" "$bench"; do
  [ -x "$bin" ] || { echo "compare.sh: $bin is missing or not executable; build first or pass its path" >&2; exit 1; }
done

# The scenario matrix: id|label|shoal-bench arguments|metrics. Metrics: tput
# (msgs/s), lat (latency percentiles), cpu (server and client CPU per message).
# Latency of unpaced runs is left out because it measures the publisher's
# window of unreceived messages, not the server.
matrix=(
  "pub16|publish only, 16 B|pub --size 16|tput cpu"
  "pub1k|publish only, 1 KiB|pub --size 1024|tput cpu"
  "ps16|pub/sub 1:1, 16 B|pubsub --size 16|tput cpu"
  "ps1k|pub/sub 1:1, 1 KiB|pubsub --size 1024|tput cpu"
  "queue|queue group of 3, 16 B|queue --subs 3 --size 16|tput cpu"
  "reqrep|request-reply, 1 requester, 16 B|reqrep --pubs 1 --subs 1 --size 16|tput lat cpu"
  "rate|pub/sub 1:1 at 20k msgs/s, 16 B|pubsub --size 16 --rate 20000|lat cpu"
)

# JetStream rows, run on servers started with -js: id|label|shoal-bench
# arguments|metrics|shoal's sync policy. Each label states each side's
# durability. On file storage nats-server 2.9 acknowledges a publish before
# it syncs (in the background); shoal by default acknowledges after the
# fdatasync that covers it, and with "relaxed" it runs a third server whose
# configuration sets jetstream { sync_interval: 60s }, so that both sides
# acknowledge first and sync in the background. The JetStream scenarios
# ignore --warmup; js-consume publishes --msgs messages and measures the pull.
js_file="file; nats-server acks before fsync, shoal after fdatasync"
js_equal="file; both ack before fsync, shoal with sync_interval 60s"
js_memory="memory on both"
js_matrix=(
  "jspub128|JetStream sync publish, 128 B ($js_file)|js-pub --size 128|tput lat cpu|"
  "jspub128r|JetStream sync publish, 128 B ($js_equal)|js-pub --size 128|tput lat cpu|relaxed"
  "jsasync128|JetStream async publish, window 256, 128 B ($js_file)|js-async-pub --size 128 --window 256|tput cpu|"
  "jsasync128r|JetStream async publish, window 256, 128 B ($js_equal)|js-async-pub --size 128 --window 256|tput cpu|relaxed"
  "jsasync1k|JetStream async publish, window 256, 1 KiB ($js_file)|js-async-pub --size 1024 --window 256|tput cpu|"
  "jsasync1kr|JetStream async publish, window 256, 1 KiB ($js_equal)|js-async-pub --size 1024 --window 256|tput cpu|relaxed"
  "jsconsume128|JetStream pull consume with acks, batch 256, 128 B ($js_file)|js-consume --size 128 --window 256 --msgs 50000|tput cpu|"
  "jsconsume128r|JetStream pull consume with acks, batch 256, 128 B ($js_equal)|js-consume --size 128 --window 256 --msgs 50000|tput cpu|relaxed"
  "jsconsume1k|JetStream pull consume with acks, batch 256, 1 KiB ($js_file)|js-consume --size 1024 --window 256 --msgs 50000|tput cpu|"
  "jsconsume1kr|JetStream pull consume with acks, batch 256, 1 KiB ($js_equal)|js-consume --size 1024 --window 256 --msgs 50000|tput cpu|relaxed"
  "jsasyncmem|JetStream async publish, window 256, 128 B ($js_memory)|js-async-pub --size 128 --window 256 --js-storage memory|tput cpu|"
  "jsconsumemem|JetStream pull consume with acks, batch 256, 128 B ($js_memory)|js-consume --size 128 --window 256 --msgs 50000 --js-storage memory|tput cpu|"
)

results=$(mktemp -d /tmp/shoal-compare.XXXXXX)
server_pids=()

# Run a copy, so a rebuild during the run cannot mix two binaries.
shoal_built=$(date -u -r "$shoal" '+%Y-%m-%d %H:%M UTC')
shoal_path=$shoal
cp "$shoal" "$results/shoal-server"
shoal="$results/shoal-server"

cleanup() {
  for pid in "${server_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  server_pids=()
}
trap cleanup EXIT

free_port() {
  perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp")
      or die "cannot bind a loopback port: $!\n";
    print $s->sockport, "\n";'
}

# Waits up to 5 s for a TCP listener on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Starts server $1 (nats or shoal) on a free port; sets port and pid. With
# $2 = js, JetStream is enabled with a fresh store directory under $results.
start_server() {
  port=$(free_port)
  local log="$results/$1.round$round${2:-}.log"
  local js_args=()
  if [ "${2:-}" = js ]; then
    js_args=(-js -sd "$results/store.$1.round$round")
  fi
  if [ "$1" = shoalr ]; then
    # shoal with the relaxed sync policy, for the equal-durability rows.
    printf 'jetstream {\n  store_dir: "%s"\n  sync_interval: "60s"\n}\n' \
      "$results/store.$1.round$round" >"$results/shoalr.conf"
    # shellcheck disable=SC2086
    "$shoal" -a 127.0.0.1 -p "$port" $shoal_args -c "$results/shoalr.conf" >"$log" 2>&1 &
  elif [ "$1" = nats ]; then
    ${server_cpus:+taskset -c "$server_cpus"} "$nats" -a 127.0.0.1 -p "$port" "${js_args[@]}" >"$log" 2>&1 &
  else
    # shellcheck disable=SC2086
    "$shoal" -a 127.0.0.1 -p "$port" $shoal_args "${js_args[@]}" >"$log" 2>&1 &
  fi
  pid=$!
  server_pids+=("$pid")
  if ! wait_port "$port"; then
    echo "compare.sh: $1 did not listen on 127.0.0.1:$port within 5 s; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# Runs matrix row $2 against server $1 at port ${ports[$1]}. A row whose
# sync field is "relaxed" runs on shoalr in place of shoal, and its results
# are filed under shoal.
run_one() {
  local server=$1 id label args metrics sync
  IFS='|' read -r id label args metrics sync <<<"$2"
  local target=$server
  [ "$server" = shoal ] && [ "$sync" = relaxed ] && target=shoalr
  local out="$results/$server.$id.$round.json"
  local rc=0
  # shellcheck disable=SC2086
  "$bench" $args --url "nats://127.0.0.1:${ports[$target]}" --duration "$duration" --warmup "$warmup" \
    --server-pid "${pids[$target]}" --json --no-live >"$out" 2>"$results/$server.$id.$round.err" || rc=$?
  if [ $rc -ne 0 ]; then
    echo "compare.sh: $server, $label, round $round: shoal-bench failed with exit $rc:" \
      "$(head -c 300 "$results/$server.$id.$round.err")" >&2
    echo "$rc" >"$results/$server.$id.$round.failed"
  fi
  printf '.' >&2
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A ports pids
for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  order=(nats shoal)
  [ $((round % 2)) -eq 0 ] && order=(shoal nats)
  for server in "${order[@]}"; do
    start_server "$server"
    ports[$server]=$port
    pids[$server]=$pid
  done
  for row in "${matrix[@]}"; do
    for server in "${order[@]}"; do run_one "$server" "$row"; done
  done
  cleanup
  for server in "${order[@]}" shoalr; do
    start_server "$server" js
    ports[$server]=$port
    pids[$server]=$pid
  done
  for row in "${js_matrix[@]}"; do
    for server in "${order[@]}"; do run_one "$server" "$row"; done
  done
  echo >&2
  cleanup
  rm -rf "$results"/store.*
done

# ---- Cross-check against libnats on nats-server ----

# The same message count through shoal-bench and libnats-bench, alternating,
# at most 3 rounds. Results go to $results/check.<tool>.<scenario>.<round>.json.
# On a machine with more than one CPU the server runs on CPU 0 and both
# tools on the others, so that neither tool's own CPU use slows the server.
crosscheck_rounds=$((rounds < 3 ? rounds : 3))
ncpu=$(nproc)
run_crosscheck() {
  [ -x "$libnats_bench" ] || return 0
  echo "cross-check with libnats-bench, $crosscheck_rounds rounds" >&2
  local client_cpus=""
  if [ "$ncpu" -gt 1 ] && command -v taskset >/dev/null; then
    server_cpus=0
    client_cpus="1-$((ncpu - 1))"
  fi
  local bench="${client_cpus:+taskset -c $client_cpus }$bench"
  local libnats_bench="${client_cpus:+taskset -c $client_cpus }$libnats_bench"
  for round in $(seq "$crosscheck_rounds"); do
    start_server nats
    local url="nats://127.0.0.1:$port" c="$results/check"
    $bench pub --url "$url" --msgs 1000000 --json --no-live >"$c.shoal-bench.pub.$round.json" || true
    $libnats_bench pub "$url" 1000000 16 >"$c.libnats.pub.$round.json" || true
    $bench pubsub --url "$url" --msgs 1000000 --json --no-live >"$c.shoal-bench.pubsub.$round.json" || true
    $libnats_bench pubsub "$url" 1000000 16 >"$c.libnats.pubsub.$round.json" || true
    $bench reqrep --url "$url" --msgs 2000 --json --no-live >"$c.shoal-bench.reqrep.$round.json" || true
    $libnats_bench reqrep "$url" 2000 16 >"$c.libnats.reqrep.$round.json" || true
    $bench pubsub --url "$url" --msgs 60000 --rate 20000 --server-pid "$pid" --json --no-live \
      >"$c.shoal-bench.rate.$round.json" || true
    $libnats_bench pubsub "$url" 60000 16 20000 "$pid" >"$c.libnats.rate.$round.json" || true
    # Larger payloads, where the server and the kernel's copies, not the
    # client's work per message, set the rate.
    local size n
    for size in 1024 16384 65536; do
      n=$((size == 1024 ? 500000 : size == 16384 ? 100000 : 25000))
      $bench pub --url "$url" --msgs "$n" --size "$size" --json --no-live \
        >"$c.shoal-bench.pub$size.$round.json" || true
      $libnats_bench pub "$url" "$n" "$size" >"$c.libnats.pub$size.$round.json" || true
      $bench pubsub --url "$url" --msgs "$n" --size "$size" --json --no-live \
        >"$c.shoal-bench.pubsub$size.$round.json" || true
      $libnats_bench pubsub "$url" "$n" "$size" >"$c.libnats.pubsub$size.$round.json" || true
    done
    cleanup
  done
  server_cpus=""
}
run_crosscheck

# ---- Aggregation ----

# Prints "median min max" of the numbers jq filter $3 yields for server $1,
# row $2, over the rounds that succeeded; "- - -" when none did.
stats() {
  local files=()
  for f in "$results/$1.$2".*.json; do
    [ -s "$f" ] && files+=("$f")
  done
  if [ ${#files[@]} -eq 0 ]; then echo "- - -"; return; fi
  jq -rs "[.[] | $3 | select(. != null)] | sort |
    if length == 0 then \"- - -\" else
      (if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end)
      as \$m | \"\(\$m) \(.[0]) \(.[-1])\" end" "${files[@]}"
}

# Formats a number for the table: $1 value, $2 scale divisor, $3 decimals.
fmt() {
  if [ "$1" = - ]; then echo "-"; return; fi
  awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { printf "%.*f", d, v / s }'
}

ratio() {
  if [ "$1" = - ] || [ "$2" = - ]; then echo "-"; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == 0) print "-"; else printf "%.2f", b / a }'
}

table_row() { # label metric jq-filter divisor decimals id
  read -r nm nlo nhi <<<"$(stats nats "$6" "$3")"
  read -r sm slo shi <<<"$(stats shoal "$6" "$3")"
  printf '| %s | %s | %s (%s-%s) | %s (%s-%s) | %s |\n' "$1" "$2" \
    "$(fmt "$nm" "$4" "$5")" "$(fmt "$nlo" "$4" "$5")" "$(fmt "$nhi" "$4" "$5")" \
    "$(fmt "$sm" "$4" "$5")" "$(fmt "$slo" "$4" "$5")" "$(fmt "$shi" "$4" "$5")" "$(ratio "$nm" "$sm")"
}

throughput='(if .received.msgs > 0 then .received.msgs_per_s else .published.msgs_per_s end)'
table=$(
  echo "| Scenario | Metric | nats-server median (min-max) | shoal median (min-max) | shoal / nats |"
  echo "|---|---|---|---|---|"
  for row in "${matrix[@]}" "${js_matrix[@]}"; do
    IFS='|' read -r id label args metrics _ <<<"$row"
    for m in $metrics; do
      case $m in
        tput) table_row "$label" "msgs/s (thousands)" "$throughput" 1000 1 "$id" ;;
        lat)
          table_row "$label" "latency p50 (us)" ".latency_ns.p50" 1000 1 "$id"
          table_row "$label" "latency p99 (us)" ".latency_ns.p99" 1000 1 "$id"
          table_row "$label" "latency p99.9 (us)" ".latency_ns.p99_9" 1000 1 "$id" ;;
        cpu)
          table_row "$label" "server CPU (ns/msg)" ".cpu.server_ns_per_msg" 1 0 "$id"
          table_row "$label" "client CPU (ns/msg)" ".cpu.client_ns_per_msg" 1 0 "$id" ;;
      esac
    done
  done
)

check_row() { # label shoal-bench-filter libnats-filter divisor decimals scenario
  read -r bm blo bhi <<<"$(stats check.shoal-bench "$6" "$2")"
  read -r lm llo lhi <<<"$(stats check.libnats "$6" "$3")"
  printf '| %s | %s (%s-%s) | %s (%s-%s) | %s |\n' "$1" \
    "$(fmt "$bm" "$4" "$5")" "$(fmt "$blo" "$4" "$5")" "$(fmt "$bhi" "$4" "$5")" \
    "$(fmt "$lm" "$4" "$5")" "$(fmt "$llo" "$4" "$5")" "$(fmt "$lhi" "$4" "$5")" "$(ratio "$lm" "$bm")"
}

crosscheck=""
if [ -x "$libnats_bench" ]; then
  crosscheck=$(
    echo "| nats-server, 16 B | shoal-bench median (min-max) | libnats-bench median (min-max) | shoal-bench / libnats |"
    echo "|---|---|---|---|"
    check_row "publish only, msgs/s (thousands)" ".published.msgs_per_s" ".msgs_per_s" 1000 1 pub
    check_row "publish only, client CPU (ns/msg)" ".cpu.client_ns_per_msg" ".client_ns_per_msg" 1 0 pub
    check_row "pub/sub 1:1, msgs/s (thousands)" ".received.msgs_per_s" ".msgs_per_s" 1000 1 pubsub
    check_row "pub/sub 1:1, client CPU (ns/msg)" ".cpu.client_ns_per_msg" ".client_ns_per_msg" 1 0 pubsub
    check_row "request-reply, requests/s (thousands)" ".received.msgs_per_s" ".msgs_per_s" 1000 2 reqrep
    check_row "request-reply, latency p50 (us)" ".latency_ns.p50" ".p50_ns" 1000 1 reqrep
    check_row "request-reply, client CPU (ns/request)" ".cpu.client_ns_per_msg" ".client_ns_per_msg" 1 0 reqrep
    check_row "pub/sub at 20k msgs/s, latency p50 (us)" ".latency_ns.p50" ".p50_ns" 1000 1 rate
    check_row "pub/sub at 20k msgs/s, latency p99 (us)" ".latency_ns.p99" ".p99_ns" 1000 1 rate
    check_row "pub/sub at 20k msgs/s, server CPU (ns/msg)" ".cpu.server_ns_per_msg" ".server_ns_per_msg" 1 0 rate
    check_row "pub/sub at 20k msgs/s, client CPU (ns/msg)" ".cpu.client_ns_per_msg" ".client_ns_per_msg" 1 0 rate
    echo
    echo "| nats-server, server on CPU 0 | shoal-bench median (min-max) | libnats-bench median (min-max) | shoal-bench / libnats |"
    echo "|---|---|---|---|"
    for size in 1024 16384 65536; do
      label="$((size / 1024)) KiB"
      check_row "publish only $label, msgs/s (thousands)" ".published.msgs_per_s" ".msgs_per_s" 1000 2 "pub$size"
      check_row "publish only $label, client CPU (ns/msg)" ".cpu.client_ns_per_msg" ".client_ns_per_msg" 1 0 "pub$size"
      check_row "pub/sub 1:1 $label, msgs/s (thousands)" ".received.msgs_per_s" ".msgs_per_s" 1000 2 "pubsub$size"
      check_row "pub/sub 1:1 $label, client CPU (ns/msg)" ".cpu.client_ns_per_msg" ".client_ns_per_msg" 1 0 "pubsub$size"
    done
  )
  # The agreement asked of shoal-bench: its throughput for nats-server
  # within 15 % of libnats-bench's. A run where libnats-bench kept its CPUs
  # busy (CPU per message times msgs/s above 0.8 CPU per client CPU) was
  # limited by libnats itself and is named so rather than judged.
  local_cpus=$((ncpu > 1 ? ncpu - 1 : 1))
  agreement=$(for id in pub1024 pubsub1024 pub16384 pubsub16384 pub65536 pubsub65536; do
    read -r bm _ <<<"$(stats check.shoal-bench "$id" "$throughput")"
    read -r lm _ <<<"$(stats check.libnats "$id" ".msgs_per_s")"
    read -r lc _ <<<"$(stats check.libnats "$id" ".client_ns_per_msg")"
    awk -v id="$id" -v b="$bm" -v l="$lm" -v c="$lc" -v n="$local_cpus" 'BEGIN {
      if (b == "-" || l == "-" || l == 0) { printf "- %s: no result\n", id; exit }
      r = b / l; busy = (c == "-") ? 0 : c * l / 1e9
      if (busy > 0.8 * n)
        printf "- %s: %.2f, libnats-bench used %.2f CPU, so it limited its own run\n", id, r, busy
      else
        printf "- %s: %.2f, %s\n", id, r, (r >= 0.85 && r <= 1.15) ? "within 15 %" : "outside 15 %"
    }'
  done)
fi

failures=$(find "$results" -name '*.failed' | wc -l)
losses=$(cat "$results"/{nats,shoal}.*.json 2>/dev/null | jq -s '[.[] | .lost + .duplicated] | add // 0')
echo "$table"
echo
[ -z "$crosscheck" ] || { echo "$crosscheck"; echo; }
echo "failed runs: $failures; messages lost or duplicated over all runs: $losses"
echo "raw results: $results"

if [ "$write_doc" -eq 1 ]; then
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)
  cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  cores=$(nproc)
  kernel=$(uname -r)
  memory=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  nats_version=$("$nats" --version 2>&1 | head -1)
  commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
  mkdir -p "$(dirname "$doc")"
  # Sections other scripts write between "<!-- NAME: begin" and
  # "<!-- NAME: end -->" lines are carried over to the new page.
  kept=""
  if [ -f "$doc" ]; then
    kept=$(awk '/^<!-- [a-z-]+: begin/ { keep = 1 } keep { print } /^<!-- [a-z-]+: end -->/ { keep = 0; print "" }' "$doc")
  fi
  cat >"$doc" <<EOF
# Benchmarks

shoal-server against Debian's nats-server on the same machine, measured with
shoal-bench (\`bench/\`). This page is written by \`bench/compare.sh\`; rerun
it to refresh the numbers.

## Latest run

- Date: $started, repository at commit $commit
- shoal-server binary: $shoal_path, built $shoal_built
- Machine: $cpu_model, $cores cores, $memory RAM, Linux $kernel
- Load average (1, 5, 15 min) at the start: $load_start; at the end: $load_end.
  Other processes on the machine widen the min-max ranges.
- Servers: $nats_version with default settings; shoal-server with \`$shoal_args\`
- Command, from the repository root: \`$command_line\`
- Rounds: $rounds; each run measures ${duration} s after a ${warmup} s warm-up
- Failed runs: $failures. Messages lost or duplicated over all runs: $losses.

$table

## How to read the table

- Each cell is the median over the rounds, with the minimum and maximum in
  brackets. The last column is shoal's median divided by nats-server's:
  above 1 is better for msgs/s, below 1 is better for latency and CPU.
- msgs/s counts received messages where there are receivers (replies for
  request-reply) and published messages otherwise.
- Latency runs from the publish (the send time travels in the payload) to
  the receipt, from a log-linear histogram with at most 0.39 % relative
  error. Unpaced runs show no latency: there it measures how many messages
  the publisher keeps in flight, not the server.
- Server CPU is utime plus stime of the server process from /proc, read in
  10 ms ticks, divided by the larger of the published and received message
  counts. Client CPU is shoal-bench's own. shoal-bench runs in one thread on
  the same cores as the server, so when client CPU per message comes close
  to the time per message, the client limited that run.
- Each round starts both servers fresh on free loopback ports and runs every
  scenario on both; the server that goes first alternates between rounds.

## Cross-check with libnats

\`libnats-bench\` (bench/libnats/) runs the same scenarios through the nats.c
client library as an application would: natsConnection_Publish, an
asynchronous subscription with unlimited pending limits, and
natsConnection_Request on connections with natsOptions_SetSendAsap (also
used for the paced run). Both tools run against nats-server with the same
message counts (1,000,000 messages of 16 B unpaced, 60,000 at 20,000 msgs/s,
2,000 requests; 500,000 of 1 KiB, 100,000 of 16 KiB and 25,000 of 64 KiB),
alternating, over $crosscheck_rounds rounds. nats-server runs on CPU 0 and
both tools on the other CPUs (taskset), so that the client's own CPU use
does not slow the server.

The paced run holds both clients to the same load, so there the server CPU
per message compares how much each client's traffic costs the server.

${crosscheck:-libnats-bench was not built, so this run has no cross-check.}

When a tool's client CPU per message comes close to its time per message,
that tool, not the server, limits the run, and the two figures then compare
the clients rather than measure the server. With 16 B messages libnats
spends several times shoal-bench's CPU per message, in more threads, on
one CPU. So on 16 B rows libnats limits itself and the two differ by more
than 15 %. The paced rows add libnats's hand-over from its reader thread
to the subscription's thread to each latency. The rows with larger
payloads are where the server and the kernel's copies can set the rate;
there the two tools should agree within 15 %, unless libnats-bench keeps
its CPU busy. On this 2-core machine the tools get one CPU, and
libnats-bench, with 2 to 4 times shoal-bench's client CPU per message,
fills it in most of these rows. shoal-bench / libnats throughput this
run, with the CPU libnats-bench used:

${agreement:-not measured}

## JetStream rows

The JetStream rows run on a second set of servers per round, started with
\`-js -sd <fresh directory>\` on the same disk, plus a shoal-server with the
relaxed sync policy for the equal-durability rows. shoal-bench deletes and
creates its stream (\`SHOAL_BENCH\` on the run's subject) before each run and
deletes it afterwards.

- Sync publish: one publish in flight, each waiting for its ack; msgs/s is
  acks per second and latency runs from the publish to its ack.
- Async publish: up to 256 unacknowledged publishes in flight; every ack is
  checked for a strictly increasing stream sequence, and a missing or
  duplicated ack counts as lost or duplicated.
- Pull consume: 50,000 messages are published with acks first, then a
  durable pull consumer (explicit ack) fetches batches of 256 and acks each
  message with an empty publish to its reply subject. msgs/s counts
  deliveries; order and completeness are checked on the payload sequence.
- Durability differs on the other file storage rows, as each label says.
  nats-server 2.9 acknowledges a publish before the data is synced (it
  syncs in the background). shoal by default acknowledges after the
  fdatasync that covers it, so a shoal ack survives a power cut and a
  nats-server ack may not.
- Rows marked "both ack before fsync" compare file storage at equal
  durability. There shoal runs with \`jetstream { sync_interval: 60s }\`:
  it acknowledges a publish once its O_DIRECT write completes and syncs in
  the background, like nats-server 2.9.10, whose file store syncs every
  60 s.
  Rows marked "memory on both" compare the two servers with neither
  syncing.
- The JetStream scenarios run on one connection and ignore \`--warmup\`.
EOF
  [ -z "$kept" ] || printf '\n%s\n' "$kept" >>"$doc"
  echo "wrote $doc" >&2
fi
