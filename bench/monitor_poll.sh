#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures whether polling the HTTP monitor slows the message path: runs
# shoal-bench against shoal-server on loopback with and without a loop that
# fetches /connz and /metrics, alternating the order by round, and prints
# medians, min-max and the per-round ratio polled/not polled, with the CPU
# time of the server's HTTP thread. Unless --no-doc is given
# it replaces its own section of docs/BENCHMARKS.md (between the
# "monitor-poll" markers) and leaves the rest of the page alone.
#
# Each round starts a fresh server with --shards 2 and monitoring on free
# loopback ports, plus idle client connections so that /connz has a list
# to copy from every shard. Needs jq and perl.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=5
duration=3
warmup=0.5
idle_conns=200
poll_interval=0.05
build="$here/build"
shoal=""
bench=""
shoal_args="--shards 2"
doc="$here/docs/BENCHMARKS.md"
write_doc=1
command_line="bench/monitor_poll.sh $*"

usage() {
  cat <<EOF
usage: bench/monitor_poll.sh [options]

Options:
  --rounds N         rounds; each runs every scenario polled and unpolled (default $rounds)
  --duration S       measured seconds per run (default $duration)
  --warmup S         warm-up seconds per run (default $warmup)
  --idle N           idle client connections listed by /connz (default $idle_conns)
  --interval S       pause in seconds between two polls of the loop (default $poll_interval)
  --build DIR        build directory with shoal-server and bench/shoal-bench (default $build)
  --shoal PATH       shoal-server binary (default DIR/shoal-server)
  --shoal-args "A"   extra shoal-server flags (default "$shoal_args")
  --bench PATH       shoal-bench binary (default DIR/bench/shoal-bench)
  --doc PATH         page whose monitor-poll section is replaced (default docs/BENCHMARKS.md)
  --no-doc           print the table only
  --quick            one round of 1 s runs, to check the setup
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --idle) idle_conns=$2; shift 2 ;;
    --interval) poll_interval=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --shoal) shoal=$2; shift 2 ;;
    --shoal-args) shoal_args=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --doc) doc=$2; shift 2 ;;
    --no-doc) write_doc=0; shift ;;
    --quick) rounds=1; duration=1; warmup=0.2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "monitor_poll.sh: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
[ -n "$shoal" ] || shoal="$build/shoal-server"
[ -n "$bench" ] || bench="$build/bench/shoal-bench"

for tool in jq perl; do
  command -v "$tool" >/dev/null || { echo "monitor_poll.sh: $tool is missing; run scripts/install-deps" >&2; exit 1; }
done
for bin in "$shoal" "$bench"; do
  [ -x "$bin" ] || { echo "monitor_poll.sh: $bin is missing or not executable; build first or pass its path" >&2; exit 1; }
done

# Scenarios: id|label|shoal-bench arguments.
matrix=(
  "ps16|pub/sub 1:1, 16 B|pubsub --size 16"
  "pub16|publish only, 16 B|pub --size 16"
)

results=$(mktemp -d /tmp/shoal-monitor-poll.XXXXXX)
shoal_path=$shoal
shoal_built=$(date -u -r "$shoal" '+%Y-%m-%d %H:%M UTC')
child_pids=()

cleanup() {
  for pid in "${child_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  child_pids=()
}
trap cleanup EXIT

free_port() {
  perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp")
      or die "cannot bind a loopback port: $!\n";
    print $s->sockport, "\n";'
}

wait_port() {
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Starts shoal-server on free ports; sets port, http_port and server_pid.
start_server() {
  port=$(free_port)
  http_port=$(free_port)
  local log="$results/server.round$round.log"
  # shellcheck disable=SC2086
  "$shoal" -a 127.0.0.1 -p "$port" -m "$http_port" $shoal_args >"$log" 2>&1 &
  server_pid=$!
  child_pids+=("$server_pid")
  if ! wait_port "$port" || ! wait_port "$http_port"; then
    echo "monitor_poll.sh: shoal-server did not listen on ports $port and $http_port within 5 s; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# Opens $idle_conns client connections that send CONNECT and then stay
# idle, for at most the given seconds.
start_idle_clients() {
  perl -MIO::Socket::INET -e '
    my ($port, $count, $seconds) = @ARGV;
    my @socks;
    for (1 .. $count) {
      my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port, Proto => "tcp")
        or die "idle client: cannot connect to 127.0.0.1:$port: $!\n";
      print $s "CONNECT {\"verbose\":false,\"name\":\"idle\"}\r\nPING\r\n";
      push @socks, $s;
    }
    sleep $seconds;' "$port" "$idle_conns" "$1" &
  child_pids+=("$!")
}

# Polls /connz and /metrics over one keep-alive connection until killed or
# for at most the given seconds, writing the count of successful requests
# to $results/polls.$2 after each one. A persistent perl process keeps the
# poller's own CPU use small next to the server's.
start_poller() {
  perl -MIO::Socket::INET -MTime::HiRes=sleep,time -e '
    my ($port, $seconds, $interval, $count_file) = @ARGV;
    my $end = time + $seconds;
    my ($sock, $served) = (undef, 0);
    while (time < $end) {
      for my $path ("/connz", "/metrics") {
        $sock ||= IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port, Proto => "tcp")
          or die "poller: cannot connect to 127.0.0.1:$port: $!\n";
        print $sock "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        my ($status, $length, $close) = (0, 0, 0);
        while (defined(my $line = <$sock>)) {
          $status = $1 if $line =~ m{^HTTP/1\.\d (\d+)};
          $length = $1 if $line =~ /^Content-Length: *(\d+)/i;
          $close = 1 if $line =~ /^Connection: *close/i;
          last if $line eq "\r\n";
        }
        my $body = "";
        read($sock, $body, $length) if $length > 0;
        if ($status == 200 && length($body) == $length) {
          $served++;
          if (open(my $count, ">", $count_file)) { print {$count} "$served\n"; close $count; }
        }
        if ($close || $status == 0) { close $sock; $sock = undef; }
      }
      sleep $interval;
    }' "$http_port" "$1" "$poll_interval" "$results/polls.$2" &
  poller_pid=$!
  child_pids+=("$poller_pid")
}

# Prints the CPU time in clock ticks that the server's HTTP thread (named
# MHD-single by libmicrohttpd) has used, or 0 when it has none yet.
monitor_thread_ticks() {
  local task ticks=0
  for task in /proc/"$server_pid"/task/*; do
    [ "$(cat "$task/comm" 2>/dev/null)" = MHD-single ] || continue
    # utime and stime are fields 14 and 15; the name in brackets has no space.
    ticks=$(awk '{ print $14 + $15 }' "$task/stat")
  done
  echo "$ticks"
}

# Runs matrix row $1 in mode $2 (polled or quiet).
run_one() {
  local id label args mode=$2
  IFS='|' read -r id label args <<<"$1"
  local tag="$mode.$id.$round"
  local run_seconds
  run_seconds=$(awk -v d="$duration" -v w="$warmup" 'BEGIN { printf "%d", d + w + 30 }')
  local ticks_before
  ticks_before=$(monitor_thread_ticks)
  local started_ns
  started_ns=$(date +%s%N)
  [ "$mode" = polled ] && start_poller "$run_seconds" "$tag"
  local rc=0
  # shellcheck disable=SC2086
  "$bench" $args --url "nats://127.0.0.1:$port" --duration "$duration" --warmup "$warmup" \
    --server-pid "$server_pid" --json --no-live >"$results/$tag.json" 2>"$results/$tag.err" || rc=$?
  if [ "$mode" = polled ]; then
    kill "$poller_pid" 2>/dev/null || true
    wait "$poller_pid" 2>/dev/null || true
    # The HTTP thread's share of one core over the run, in percent.
    awk -v t="$(( $(monitor_thread_ticks) - ticks_before ))" -v hz="$(getconf CLK_TCK)" \
      -v ns="$(( $(date +%s%N) - started_ns ))" 'BEGIN { printf "%.2f\n", t / hz * 1e11 / ns }' \
      >"$results/thread.$tag"
  fi
  if [ $rc -ne 0 ]; then
    echo "monitor_poll.sh: $label, $mode, round $round: shoal-bench failed with exit $rc:" \
      "$(head -c 300 "$results/$tag.err")" >&2
    echo "$rc" >"$results/$tag.failed"
    rm -f "$results/$tag.json"
  fi
  printf '.' >&2
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  start_server
  per_round=$(awk -v r="${#matrix[@]}" -v d="$duration" -v w="$warmup" 'BEGIN { printf "%d", r * 2 * (d + w + 5) + 30 }')
  start_idle_clients "$per_round"
  order=(quiet polled)
  [ $((round % 2)) -eq 0 ] && order=(polled quiet)
  for row in "${matrix[@]}"; do
    for mode in "${order[@]}"; do run_one "$row" "$mode"; done
  done
  echo >&2
  cleanup
done

# ---- Aggregation ----

# Prints "median min max" of jq filter $2 over files matching $1.
stats() {
  local files=()
  for f in "$results"/$1; do
    [ -s "$f" ] && files+=("$f")
  done
  if [ ${#files[@]} -eq 0 ]; then echo "- - -"; return; fi
  jq -rs "[.[] | $2 | select(. != null)] | sort |
    if length == 0 then \"- - -\" else
      (if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end)
      as \$m | \"\(\$m) \(.[0]) \(.[-1])\" end" "${files[@]}"
}

fmt() {
  if [ "$1" = - ]; then echo "-"; return; fi
  awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { printf "%.*f", d, v / s }'
}

# Prints "median min max" of the per-round ratio polled/not polled of jq
# filter $2 for row $1, over the rounds where both runs succeeded. Pairing
# the two runs of a round cancels most of the machine's drift.
paired_ratio() {
  local ratios=()
  for round in $(seq "$rounds"); do
    local q="$results/quiet.$1.$round.json" p="$results/polled.$1.$round.json"
    [ -s "$q" ] && [ -s "$p" ] || continue
    ratios+=("$(jq -rs ".[0] as \$q | .[1] as \$p | if (\$q | $2) > 0 then (\$p | $2) / (\$q | $2) else empty end" "$q" "$p")")
  done
  if [ ${#ratios[@]} -eq 0 ]; then echo "- - -"; return; fi
  printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}

table_row() { # label metric jq-filter divisor decimals id
  read -r qm qlo qhi <<<"$(stats "quiet.$6.*.json" "$3")"
  read -r pm plo phi <<<"$(stats "polled.$6.*.json" "$3")"
  read -r rm rlo rhi <<<"$(paired_ratio "$6" "$3")"
  printf '| %s | %s | %s (%s-%s) | %s (%s-%s) | %s (%s-%s) |\n' "$1" "$2" \
    "$(fmt "$qm" "$4" "$5")" "$(fmt "$qlo" "$4" "$5")" "$(fmt "$qhi" "$4" "$5")" \
    "$(fmt "$pm" "$4" "$5")" "$(fmt "$plo" "$4" "$5")" "$(fmt "$phi" "$4" "$5")" "$rm" "$rlo" "$rhi"
}

throughput='(if .received.msgs > 0 then .received.msgs_per_s else .published.msgs_per_s end)'
table=$(
  echo "| Scenario | Metric | not polled median (min-max) | polled median (min-max) | polled / not polled, per round: median (min-max) |"
  echo "|---|---|---|---|---|"
  for row in "${matrix[@]}"; do
    IFS='|' read -r id label args <<<"$row"
    table_row "$label" "msgs/s (thousands)" "$throughput" 1000 1 "$id"
    table_row "$label" "server CPU (ns/msg)" ".cpu.server_ns_per_msg" 1 0 "$id"
  done
)

polls=$(cat "$results"/polls.* 2>/dev/null | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }')
thread_cpu=$(cat "$results"/thread.* 2>/dev/null | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%s (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }')
failures=$(find "$results" -name '*.failed' | wc -l)
losses=$(cat "$results"/*.json 2>/dev/null | jq -s '[.[] | .lost + .duplicated] | add // 0')
echo "$table"
echo
echo "requests answered per polled run (median): $polls; HTTP thread CPU in % of one core: $thread_cpu"
echo "failed runs: $failures; messages lost or duplicated: $losses"
echo "raw results: $results"

if [ "$write_doc" -eq 1 ]; then
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)
  cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
  section="$results/section.md"
  cat >"$section" <<EOF
<!-- monitor-poll: begin (written by bench/monitor_poll.sh; edits here are replaced) -->
## Monitoring while under load

Whether serving the HTTP monitor slows the message path: the same
shoal-bench runs against shoal-server, once while a loop fetches /connz and
/metrics over one keep-alive connection and once without, the order
alternating by round. The loop fetches both, then pauses for
${poll_interval} s. $idle_conns idle client connections stay open, so every
/connz request makes each shard copy its connection list.

- Date: $started, repository at commit $commit, shoal-server with \`$shoal_args\`
- shoal-server binary: $shoal_path, built $shoal_built
- Machine: $cpu_model, $(nproc) cores, Linux $(uname -r); load average at the start
  $load_start, at the end $load_end
- Command, from the repository root: \`$command_line\`
- Rounds: $rounds; each run measures ${duration} s after a ${warmup} s warm-up
- Monitoring requests answered per polled run (median): $polls. CPU time of
  the monitor's HTTP thread during polled runs, in percent of one core:
  median $thread_cpu.
- Failed runs: $failures. Messages lost or duplicated: $losses.

$table

The last column divides each round's polled run by the same round's run
without polling, which cancels most of the drift of a shared machine. A
median near 1, with a range on both sides of 1, means no slowdown that
these runs can tell apart from the spread between runs. Server CPU per
message includes the HTTP thread's time. It also depends on whether the
kernel's SO_REUSEPORT hash puts the publisher and the subscriber on the
same shard, which changes from run to run and splits the pub/sub runs into
a cheaper and a dearer group.
<!-- monitor-poll: end -->
EOF
  mkdir -p "$(dirname "$doc")"
  touch "$doc"
  # Replace the old section, or append one when the page has none.
  perl -0 -i -e '
    my $new = do { local $/; open my $f, "<", $ARGV[0] or die; <$f> };
    shift @ARGV;
    local $/; my $page = <>;
    if ($page =~ s/<!-- monitor-poll: begin.*?<!-- monitor-poll: end -->\n?/$new/s) { print $page }
    else { $page .= "\n" if length $page && $page !~ /\n\n\z/; print $page . $new }
  ' "$section" "$doc"
  echo "wrote the monitor-poll section of $doc" >&2
fi
