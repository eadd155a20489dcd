/* SPDX-License-Identifier: Apache-2.0 */
/* /metrics in the Prometheus text exposition format 0.0.4. Every value is
 * read without asking the shards: counters and gauges with relaxed loads,
 * ring occupancy from the rings' own indexes. So a scrape costs the message
 * path nothing but the cache misses of those reads.
 *
 * Counters are per shard, with a shard label; sum() over the label gives
 * the server's total, which is therefore not exported a second time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/ring.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sublist.h"
#include "net/backend.h"
#include "net/monitor_int.h"

struct text {
  struct buf buf;
  bool failed; /* out of memory */
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...) {
  if (t->failed) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line || buf_append(&t->buf, line, (size_t)n) != 0)
    t->failed = true;
}

static void family(struct text *t, const char *name, const char *type, const char *help) {
  put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Counter fields of struct shard_stats, one family each. */
static const struct stat_family {
  const char *name;
  const char *help;
  size_t offset;
} stat_families[] = {
    {"shoal_connections_accepted_total", "Client connections accepted by the shard.",
     offsetof(struct shard_stats, connections_total)},
    {"shoal_in_messages_total", "Messages published by the shard's clients (PUB and HPUB).",
     offsetof(struct shard_stats, msgs_in)},
    {"shoal_in_bytes_total", "Payload bytes, headers included, published by the shard's clients.",
     offsetof(struct shard_stats, bytes_in)},
    {"shoal_out_messages_total", "Messages delivered to the shard's clients (MSG and HMSG).",
     offsetof(struct shard_stats, msgs_out)},
    {"shoal_out_bytes_total", "Payload bytes, headers included, delivered to the shard's clients.",
     offsetof(struct shard_stats, bytes_out)},
    {"shoal_slow_consumers_total",
     "Connections of the shard closed as slow consumers (max_pending or write_deadline).",
     offsetof(struct shard_stats, slow_consumers)},
    {"shoal_ring_full_events_total",
     "Entries for another shard that found the ring full and waited in the overflow queue.",
     offsetof(struct shard_stats, ring_full_events)},
    {"shoal_stall_events_total",
     "Times a consumer's pending output passed half of max_pending and held publishers back.",
     offsetof(struct shard_stats, stall_events)},
};

static void put_server(struct text *t) {
  const struct backend_ops *backend = server.shards[0]->backend;
  family(t, "shoal_info", "gauge", "Server identity in labels; the value is always 1.");
  put(t, "shoal_info{version=\"%s\",compat_version=\"%s\",backend=\"%s\",server_id=\"%s\"} 1\n",
      SHOAL_VERSION, SERVER_COMPAT_VERSION, backend != NULL ? backend->name : "", server.server_id);
  family(t, "shoal_shards", "gauge", "Shard threads, each with its own event loop.");
  put(t, "shoal_shards %d\n", server.shard_count);
  family(t, "shoal_connections", "gauge", "Open client connections.");
  put(t, "shoal_connections %lld\n", (long long)atomic_load(&server.connections));
  family(t, "shoal_max_connections", "gauge", "Configured limit of open client connections.");
  put(t, "shoal_max_connections %lld\n", (long long)server.opts.max_connections);
  family(t, "shoal_subscriptions", "gauge", "Subscriptions in the shared subscription index.");
  put(t, "shoal_subscriptions %llu\n", (unsigned long long)sublist_count(server.sublist));
}

static void put_shards(struct text *t) {
  int n = server.shard_count;
  family(t, "shoal_shard_connections", "gauge",
         "Connections owned by the shard, including those still closing.");
  for (int i = 0; i < n; i++)
    put(t, "shoal_shard_connections{shard=\"%d\"} %u\n", i,
        __atomic_load_n(&server.shards[i]->client_count, __ATOMIC_RELAXED));

  for (size_t f = 0; f < sizeof stat_families / sizeof stat_families[0]; f++) {
    const struct stat_family *sf = &stat_families[f];
    family(t, sf->name, "counter", sf->help);
    for (int i = 0; i < n; i++) {
      struct shard_stats stats;
      monitor_read_stats(server.shards[i], &stats);
      uint64_t value;
      memcpy(&value, (const char *)&stats + sf->offset, sizeof value);
      put(t, "%s{shard=\"%d\"} %llu\n", sf->name, i, (unsigned long long)value);
    }
  }
}

/* Ring occupancy, per ordered pair of shards. With one shard there are no
 * rings, and the families have no samples. */
static void put_rings(struct text *t) {
  int n = server.shard_count;
  family(t, "shoal_ring_entries", "gauge",
         "Entries waiting in the ring from the source shard to the shard.");
  for (int dst = 0; dst < n; dst++)
    for (int src = 0; src < n; src++)
      if (src != dst)
        put(t, "shoal_ring_entries{shard=\"%d\",source=\"%d\"} %u\n", dst, src,
            ring_count(server.shards[dst]->in[src]));
  family(t, "shoal_ring_capacity", "gauge", "Capacity in entries of the ring from the source shard to the shard.");
  for (int dst = 0; dst < n; dst++)
    for (int src = 0; src < n; src++)
      if (src != dst)
        put(t, "shoal_ring_capacity{shard=\"%d\",source=\"%d\"} %u\n", dst, src,
            ring_capacity(server.shards[dst]->in[src]));
  family(t, "shoal_overflow_entries", "gauge",
         "Entries of the shard waiting for room in its full ring to the destination shard.");
  for (int src = 0; src < n; src++)
    for (int dst = 0; dst < n; dst++)
      if (src != dst)
        put(t, "shoal_overflow_entries{shard=\"%d\",destination=\"%d\"} %u\n", src, dst,
            __atomic_load_n(&server.shards[src]->overflow[dst].count, __ATOMIC_RELAXED));
}

static void put_process(struct text *t) {
  family(t, "shoal_http_requests_total", "counter", "Requests served by the HTTP monitor, by path.");
  for (int p = 0; p < MONITOR_PATH_COUNT; p++)
    put(t, "shoal_http_requests_total{path=\"%s\"} %llu\n", monitor_path_name((enum monitor_path)p),
        (unsigned long long)monitor_path_requests((enum monitor_path)p));

  int64_t rss = 0;
  double cpu_seconds = 0;
  if (monitor_process_usage(&rss, &cpu_seconds) == 0) {
    family(t, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
    put(t, "process_cpu_seconds_total %.2f\n", cpu_seconds);
    family(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    put(t, "process_resident_memory_bytes %lld\n", (long long)rss);
  }
  int64_t start_ns = monitor_wall_from_mono(server.start_time_ms);
  family(t, "process_start_time_seconds", "gauge",
         "Start time of the process since the Unix epoch in seconds.");
  put(t, "process_start_time_seconds %.3f\n", (double)start_ns / 1e9);
}

unsigned monitor_metrics(struct MHD_Connection *conn, struct monitor_reply *reply) {
  (void)conn;
  struct text t = {0};
  put_server(&t);
  put_shards(&t);
  put_rings(&t);
  put_process(&t);
  if (t.failed) {
    buf_free(&t.buf);
    return monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  }

  /* The body must be a malloc'd block that starts at its first byte, and
   * struct buf may hold consumed bytes in front. */
  size_t len = buf_pending(&t.buf);
  char *body = malloc(len + 1);
  if (body == NULL) {
    buf_free(&t.buf);
    return monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  }
  memcpy(body, t.buf.data + t.buf.off, len);
  body[len] = '\0';
  buf_free(&t.buf);
  free(reply->body);
  reply->status = MHD_HTTP_OK;
  reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
  reply->body = body;
  reply->body_len = len;
  return reply->status;
}
