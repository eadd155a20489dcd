/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the HTTP monitor: clocks and nats-server's time formats,
 * counters summed over shards, and process usage from /proc. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/server.h"
#include "core/shard.h"
#include "net/monitor_int.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

int64_t monitor_wall_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Wall-clock minus monotonic time, read once, so that a connection's start
 * prints the same in every request, and a later step of the wall clock
 * does not move past events (nats-server stores wall-clock times). */
static pthread_once_t clock_offset_once = PTHREAD_ONCE_INIT;
static int64_t clock_offset_ns;

static void read_clock_offset(void) {
  struct timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  int64_t mono_ns = (int64_t)mono.tv_sec * NS_PER_S + mono.tv_nsec;
  clock_offset_ns = monitor_wall_now_ns() - mono_ns;
}

int64_t monitor_wall_from_mono(int64_t mono_ms) {
  pthread_once(&clock_offset_once, read_clock_offset);
  return mono_ms * NS_PER_MS + clock_offset_ns;
}

void monitor_format_time(int64_t wall_ns, char *out, size_t out_len) {
  time_t secs = (time_t)(wall_ns / NS_PER_S);
  long frac = (long)(wall_ns % NS_PER_S);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char date[32];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  if (frac == 0) {
    snprintf(out, out_len, "%sZ", date);
    return;
  }
  char digits[16];
  snprintf(digits, sizeof digits, "%09ld", frac);
  size_t n = strlen(digits);
  while (n > 0 && digits[n - 1] == '0') digits[--n] = '\0';
  snprintf(out, out_len, "%s.%sZ", date, digits);
}

void monitor_format_uptime(int64_t ns, char *out, size_t out_len) {
  int64_t secs = ns < 0 ? 0 : ns / NS_PER_S;
  int64_t mins = secs / 60, hours = mins / 60, days = hours / 24, years = days / 365;
  if (years > 0)
    snprintf(out, out_len, "%" PRId64 "y%" PRId64 "d%" PRId64 "h%" PRId64 "m%" PRId64 "s", years,
             days % 365, hours % 24, mins % 60, secs % 60);
  else if (days > 0)
    snprintf(out, out_len, "%" PRId64 "d%" PRId64 "h%" PRId64 "m%" PRId64 "s", days, hours % 24,
             mins % 60, secs % 60);
  else if (hours > 0)
    snprintf(out, out_len, "%" PRId64 "h%" PRId64 "m%" PRId64 "s", hours, mins % 60, secs % 60);
  else if (mins > 0)
    snprintf(out, out_len, "%" PRId64 "m%" PRId64 "s", mins, secs % 60);
  else
    snprintf(out, out_len, "%" PRId64 "s", secs);
}

/* Writes value / unit with the fraction's trailing zeros dropped, then the
 * suffix, as Go prints durations below one second. */
static void format_fraction(int64_t value, int64_t unit, int digits, const char *suffix, char *out,
                            size_t out_len) {
  char frac[16];
  snprintf(frac, sizeof frac, "%0*" PRId64, digits, value % unit);
  size_t n = strlen(frac);
  while (n > 0 && frac[n - 1] == '0') frac[--n] = '\0';
  if (n == 0) snprintf(out, out_len, "%" PRId64 "%s", value / unit, suffix);
  else snprintf(out, out_len, "%" PRId64 ".%s%s", value / unit, frac, suffix);
}

void monitor_format_go_duration(int64_t ns, char *out, size_t out_len) {
  if (ns <= 0) {
    snprintf(out, out_len, "0s");
    return;
  }
  if (ns < 1000) {
    snprintf(out, out_len, "%" PRId64 "ns", ns);
    return;
  }
  if (ns < NS_PER_MS) {
    format_fraction(ns, 1000, 3, "\xc2\xb5s", out, out_len); /* U+00B5, as Go prints it */
    return;
  }
  if (ns < NS_PER_S) {
    format_fraction(ns, NS_PER_MS, 6, "ms", out, out_len);
    return;
  }
  int64_t hours = ns / (3600 * NS_PER_S);
  int64_t mins = ns / (60 * NS_PER_S) % 60;
  char secs[40];
  format_fraction(ns % (60 * NS_PER_S), NS_PER_S, 9, "s", secs, sizeof secs);
  if (hours > 0) snprintf(out, out_len, "%" PRId64 "h%" PRId64 "m%s", hours, mins, secs);
  else if (mins > 0) snprintf(out, out_len, "%" PRId64 "m%s", mins, secs);
  else snprintf(out, out_len, "%s", secs);
}

/* Shards update their counters with plain increments, because only the
 * shard writes them. A relaxed atomic load of an aligned 64-bit word reads
 * a whole value that some increment produced. */
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

void monitor_read_stats(const struct shard *s, struct shard_stats *out) {
  const struct shard_stats *st = &s->stats;
  out->msgs_in = LOAD(st->msgs_in);
  out->bytes_in = LOAD(st->bytes_in);
  out->msgs_out = LOAD(st->msgs_out);
  out->bytes_out = LOAD(st->bytes_out);
  out->slow_consumers = LOAD(st->slow_consumers);
  out->ring_full_events = LOAD(st->ring_full_events);
  out->stall_events = LOAD(st->stall_events);
  out->connections_total = LOAD(st->connections_total);
}

void monitor_sum_stats(struct shard_stats *total) {
  memset(total, 0, sizeof *total);
  for (int i = 0; i < server.shard_count; i++) {
    struct shard_stats one;
    monitor_read_stats(server.shards[i], &one);
    total->msgs_in += one.msgs_in;
    total->bytes_in += one.bytes_in;
    total->msgs_out += one.msgs_out;
    total->bytes_out += one.bytes_out;
    total->slow_consumers += one.slow_consumers;
    total->ring_full_events += one.ring_full_events;
    total->stall_events += one.stall_events;
    total->connections_total += one.connections_total;
  }
}

int monitor_process_usage(int64_t *rss_bytes, double *cpu_seconds) {
  *rss_bytes = 0;
  *cpu_seconds = 0;
  FILE *f = fopen("/proc/self/statm", "re");
  if (f == NULL) return -errno;
  long long size_pages = 0, resident_pages = 0;
  int n = fscanf(f, "%lld %lld", &size_pages, &resident_pages);
  fclose(f);
  if (n != 2) return -EIO;
  *rss_bytes = (int64_t)resident_pages * sysconf(_SC_PAGESIZE);

  /* /proc/self/stat: utime and stime are fields 14 and 15, in clock
   * ticks, after the command name in parentheses (which may hold spaces). */
  f = fopen("/proc/self/stat", "re");
  if (f == NULL) return -errno;
  char line[1024];
  char *got = fgets(line, sizeof line, f);
  fclose(f);
  char *p = got != NULL ? strrchr(line, ')') : NULL;
  unsigned long long utime = 0, stime = 0;
  if (p == NULL ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
    return -EIO;
  *cpu_seconds = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
  return 0;
}

int monitor_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
