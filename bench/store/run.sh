#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs shoal-store-bench for each message size and sync policy and measures
# the device limit with fio for the same write size and sync pattern. Then
# times the recovery of a 1 GiB journal, and prints the part of the Storage
# section of docs/BENCHMARKS.md between its store-bench markers, as Markdown
# on standard output. Every run is repeated in three rounds, with the store
# and its fio runs side by side in each, and the table gives the median and
# the range.
#
# For each append run, fio writes sequentially with O_DIRECT in blocks of the
# store's average write size rounded to a multiple of 4096 bytes, with one
# fdatasync per the store's writes per sync. It runs twice. Into a new file,
# ext4 must mark the written blocks at each sync, as for the store's
# preallocated segments. Over a file written beforehand, no file system
# metadata changes, so that run gives the device's own limit.
#
# Usage: bench/store/run.sh BUILD_DIR [DIR]
#   BUILD_DIR  the CMake build directory holding bench/shoal-store-bench
#   DIR        a directory on the disk to measure (default /var/tmp)
# Needs fio and jq. Takes about four minutes and 2 GiB of free space in DIR.
set -eu

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [DIR]" >&2
  exit 2
fi
bench="$1/bench/shoal-store-bench"
dir="${2:-/var/tmp}"
seconds=2
rounds=3
for tool in fio jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$0: $tool is missing; install it with scripts/install-deps" >&2
    exit 1
  fi
done
if [ ! -x "$bench" ]; then
  echo "$0: $bench not found; build the shoal-store-bench target first" >&2
  exit 1
fi

work=$(mktemp -d "$dir/shoal-store-run-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
results="$work/results.jsonl"

# fio_limit BS NSYNC OVERWRITE SIZE: prints fio's write bandwidth in bytes
# per second.
fio_limit() {
  rm -f "$work/fio.dat"
  fio --name=store --filename="$work/fio.dat" --rw=write --direct=1 --ioengine=psync \
    --bs="$1" --fdatasync="$2" --overwrite="$3" --size="$4" --runtime="$seconds" \
    --time_based --output-format=json | jq '.jobs[0].write.bw_bytes'
  rm -f "$work/fio.dat"
}

# append_run LABEL ARGS...: one shoal-store-bench run and its fio limit.
append_run() {
  label=$1
  shift
  line=$("$bench" --dir "$dir" --seconds "$seconds" "$@")
  bs=$(echo "$line" | jq '[((.avg_write_bytes / 4096) | round), 1] | max * 4096')
  nsync=$(echo "$line" | jq '[(.writes_per_sync | round), 1] | max')
  bw_new=$(fio_limit "$bs" "$nsync" 0 1G)
  bw_over=$(fio_limit "$bs" "$nsync" 1 256M)
  echo "$line" | jq -c --arg run "$label" --argjson fio_bs "$bs" --argjson fio_nsync "$nsync" \
    --argjson bw_new "$bw_new" --argjson bw_over "$bw_over" \
    '. + {"label": $run, "fio_bs": $fio_bs, "fio_nsync": $fio_nsync,
      "fio_new_mb_per_s": ($bw_new / 1e6), "fio_over_mb_per_s": ($bw_over / 1e6),
      "ratio": (.device_mb_per_s / ($bw_new / 1e6))}' >>"$results"
}

round=1
while [ "$round" -le "$rounds" ]; do
  echo "round $round of $rounds" >&2
  for size in 128 1024 65536; do
    for policy in always relaxed; do
      append_run "$size B, $policy, as fast as possible" --size "$size" --policy "$policy"
    done
  done
  for size in 128 1024 65536; do
    append_run "$size B, always, one message at a time" --size "$size" --policy always \
      --window 1 --batch 1
  done
  append_run "1024 B, relaxed, one message at a time" --size 1024 --policy relaxed \
    --window 1 --batch 1
  round=$((round + 1))
done
recovery=$("$bench" --dir "$dir" --mode recovery --size 1024 --bytes 1073741824 --seconds 300)

# The Markdown section.
commit=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fs=$(findmnt -no SOURCE,FSTYPE -T "$dir" | tr -s ' ')
echo "<!-- store-bench: begin (written by bench/store/run.sh; edits here are replaced) -->"
echo "## Storage"
echo
echo "The file store under load, at start-up, and after a power cut. This part"
echo "is written by \`bench/store/run.sh\`; the power-cut part after it is kept"
echo "by hand from runs of \`tests/storage/server_power_cut.py\`."
echo
echo "### Appends and recovery"
echo
echo "The file store's appends and recovery on a real disk, measured with"
echo "\`shoal-store-bench\` (\`bench/store/\`) through the io_uring backend, next to"
echo "the device limit that fio measures for the same write size and sync pattern."
echo "Written by \`bench/store/run.sh\`; rerun it to refresh the numbers."
echo
echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'), repository at commit $commit"
echo "- Machine: $cpu, $(nproc) cores, $mem RAM, Linux $(uname -r)"
echo "- Disk: $dir on $fs; fio $(fio --version | sed 's/fio-//')"
echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- Command, from the repository root: \`bench/store/run.sh $1 $dir\`"
echo "- Each append run lasts $seconds s with the store's defaults: 4 MiB write groups,"
echo "  64 MiB segments, relaxed policy syncing every 1 s or 8 MiB. MB is 10^6 bytes."
echo "- Rounds: $rounds; cells give the median, and the range over the rounds in brackets."
echo "  fio writes blocks of the store's bytes per write rounded to 4096, with one"
echo "  fdatasync per the store's writes per sync. The last column divides the store's"
echo "  written MB/s by fio's new-file figure of the same round."
echo
echo "| Run | msgs/s | payload MB/s | written MB/s | latency p50 / p99 (ms) | bytes per write, writes per sync | fio MB/s, new file | fio MB/s, overwrite | store / fio |"
echo "|---|---|---|---|---|---|---|---|---|"
jq -rs '
  def r1: . * 10 | round / 10;
  def med: sort | .[length / 2 | floor];
  def cell(f; fmt): (map(f) | "\(med | fmt) (\(min | fmt)-\(max | fmt))");
  group_by(.label) | sort_by((.[0].window > 1 | not), .[0].size, .[0].policy) | .[] |
  "| \(.[0].label) | \(cell(.msgs_per_s; round)) | \(map(.payload_mb_per_s) | med | r1) | " +
  "\(cell(.device_mb_per_s; r1)) | " +
  "\(map(.lat_p50_us) | med / 1000 | r1) / \(map(.lat_p99_us) | med / 1000 | r1) | " +
  "\(map(.avg_write_bytes) | med | round), \(map(.writes_per_sync) | med | r1) | " +
  "\(cell(.fio_new_mb_per_s; r1)) | \(cell(.fio_over_mb_per_s; r1)) | " +
  "\(cell(.ratio; . * 100 | round / 100)) |"' "$results"
echo
echo "$recovery" | jq -r '"Recovery: store_open of a journal of \(.msgs) messages of \(.size) B " +
  "(\(.bytes / 1e6 | round) MB in \(.segments) segments) took \(.open_seconds * 100 | round / 100) s, " +
  "\(.open_mb_per_s | round) MB/s. Reading every message after it with store_read_next took " +
  "\(.scan_seconds * 100 | round / 100) s, \(.scan_msgs_per_s | round) msgs/s."'
cat <<'TEXT'

How to read the table:

- "As fast as possible" keeps appending while a group is in flight, so the
  store writes groups of up to 4 MiB, one write and one fdatasync each (the
  relaxed policy syncs after about 8 MiB). A message waits for the group in
  flight and then for its own, which sets the latency.
- "One message at a time" appends the next message only after the previous
  one was acknowledged: under the default policy each message costs one
  write and one fdatasync, and the latency is that of the disk's flush. A
  p50 far below a millisecond suggests that the disk, or the hypervisor
  behind it, acknowledges flushes from a volatile cache.
- Written MB/s counts every byte the store wrote. It exceeds payload MB/s by
  the record header (48 bytes), the subject, the padding, and the rewrite of
  the partly filled last block that each write starts with.
- fio's new file is written into blocks that ext4 must mark as written at
  each fdatasync, as the store's preallocated segments are. Its overwrite
  runs rewrite blocks written beforehand and give the device's own limit.
  The store can beat the new-file figure when most of its writes rewrite
  the last block of the segment, which ext4 has already marked as written.
<!-- store-bench: end -->
TEXT
