/* SPDX-License-Identifier: Apache-2.0 */
/* Internal interface of the HTTP monitor, shared by net/monitor*.c only:
 * the reply of one endpoint, query decoding with nats-server's rules, time
 * formats, and the per-shard snapshot of connections and subscriptions that
 * the shards copy for /connz and /subsz. Every function here runs on the
 * monitor's HTTP thread unless its comment names another thread. */
#ifndef SHOAL_MONITOR_INT_H
#define SHOAL_MONITOR_INT_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

struct shard;
struct shard_stats;
struct subcache_stat;

/* Connections and subscriptions listed by default, as in nats-server. */
#define MONITOR_DEFAULT_LIST_LIMIT 1024
/* How long an endpoint waits for the shards to copy their state. */
#define MONITOR_SHARD_TIMEOUT_MS 2000
/* An absent string in a snapshot's string pool. */
#define MONITOR_NO_STRING UINT32_MAX
/* Closed connections kept for /connz, across all shards: nats-server
 * 2.9.10's default (DEFAULT_MAX_CLOSED_CLIENTS). */
#define MONITOR_CLOSED_MAX 10000

/* The response to one request. body is malloc'd and owned by the reply. */
struct monitor_reply {
  unsigned status;
  const char *content_type;
  char *body;
  size_t body_len;
};

/* Endpoint counters for /varz's http_req_stats and /metrics. */
enum monitor_path {
  MONITOR_PATH_ROOT = 0,
  MONITOR_PATH_VARZ,
  MONITOR_PATH_CONNZ,
  MONITOR_PATH_ROUTEZ,
  MONITOR_PATH_SUBSZ,
  MONITOR_PATH_JSZ,
  MONITOR_PATH_HEALTHZ,
  MONITOR_PATH_METRICS,
  MONITOR_PATH_COUNT,
};

/* ---- State shared by the endpoints (net/monitor.c). ---- */

/* The address the monitor listens on, for /varz. */
const char *monitor_http_host(void);
int monitor_http_port(void);

/* Requests served per path since start. */
uint64_t monitor_path_requests(enum monitor_path path);
const char *monitor_path_name(enum monitor_path path);

/* ---- Replies and query decoding (net/monitor.c). ---- */

/* Sets reply to status with a plain-text body built from fmt. Returns
 * status, so that handlers can end with `return monitor_reply_text(...)`. */
unsigned monitor_reply_text(struct monitor_reply *reply, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets reply to 200 with json printed, or JSONP when the request has a
 * callback argument, then deletes json. compact selects cJSON's unformatted
 * output. Returns the status set (500 when out of memory). */
unsigned monitor_reply_json(struct MHD_Connection *conn, struct monitor_reply *reply, cJSON *json,
                            bool compact);

/* Returns the query argument key, or NULL when absent or empty. */
const char *monitor_arg(struct MHD_Connection *conn, const char *key);

/* Decode query arguments like nats-server's decodeBool, decodeInt and
 * decodeUint64: absent or empty gives false or 0. On an invalid value they
 * fill reply with 400 and the reason, and return false. */
bool monitor_arg_bool(struct MHD_Connection *conn, const char *key, bool *out,
                      struct monitor_reply *reply);
bool monitor_arg_int(struct MHD_Connection *conn, const char *key, int64_t *out,
                     struct monitor_reply *reply);
bool monitor_arg_uint(struct MHD_Connection *conn, const char *key, uint64_t *out,
                      struct monitor_reply *reply);

/* Adds an integer member printed exactly, since cJSON keeps numbers as
 * doubles and would round counters above 2^53. Returns false when out of
 * memory. */
bool monitor_json_add_int(cJSON *obj, const char *name, int64_t value);
bool monitor_json_add_uint(cJSON *obj, const char *name, uint64_t value);

/* ---- Time, process and counters (net/monitor_util.c). ---- */

/* Nanoseconds since the Unix epoch, now. */
int64_t monitor_wall_now_ns(void);

/* Converts a CLOCK_MONOTONIC time in milliseconds (what shards record) to
 * wall-clock nanoseconds, with the clocks' difference read at first use. */
int64_t monitor_wall_from_mono(int64_t mono_ms);

/* Formats wall_ns as Go's time.Time in JSON: RFC 3339 in UTC with up to
 * nine fraction digits, trailing zeros dropped. out needs 40 bytes. */
void monitor_format_time(int64_t wall_ns, char *out, size_t out_len);

/* Formats a duration like nats-server's uptime and idle fields: "1y2d3h4m5s"
 * with leading zero units left out, whole seconds only. */
void monitor_format_uptime(int64_t ns, char *out, size_t out_len);

/* Formats a duration like Go's time.Duration.String(): "0s", "850ns",
 * "1.5µs", "12.345ms", "2m3.5s". */
void monitor_format_go_duration(int64_t ns, char *out, size_t out_len);

/* Reads shard s's counters with relaxed loads into out. */
void monitor_read_stats(const struct shard *s, struct shard_stats *out);

/* Sums every shard's counters into total. The shards keep counting
 * meanwhile, so the sum mixes nearby moments, which monitoring tolerates. */
void monitor_sum_stats(struct shard_stats *total);

/* Reads the process's resident memory in bytes and CPU time in seconds
 * (user plus system) from /proc/self. Returns 0 or a negative errno. */
int monitor_process_usage(int64_t *rss_bytes, double *cpu_seconds);

/* The CPUs this process may run on (its affinity mask). */
int monitor_cpu_count(void);

/* ---- Per-shard snapshots (net/monitor_gather.c). ---- */

/* One subscription. String fields are offsets into the snapshot's string
 * pool; queue is MONITOR_NO_STRING for a plain subscription. */
struct monitor_sub {
  uint32_t subject;
  uint32_t queue;
  uint32_t sid;
  uint64_t msgs;
  int64_t max;
  uint64_t cid;
};

/* One open or closed connection. Times are CLOCK_MONOTONIC milliseconds.
 * name, lang, version and user are string-pool offsets or
 * MONITOR_NO_STRING. Its subscriptions, when requested, are
 * subs[sub_first, sub_first + sub_len) of the same snapshot. A closed
 * connection's figures are those at the moment it closed. */
struct monitor_conn {
  uint64_t cid;
  char ip[64];
  int port;
  int64_t start_ms;
  int64_t last_activity_ms;
  int64_t rtt_ns;
  uint64_t pending_bytes;
  uint64_t in_msgs, out_msgs, in_bytes, out_bytes;
  uint32_t sub_count;
  uint32_t name, lang, version;
  uint32_t user;            /* the authorized user of a users list */
  uint32_t sub_first, sub_len;
  bool closed;
  int64_t stop_ms;          /* closed: when it closed */
  const char *reason;       /* closed: nats-server's text for the reason, static */
};

/* What one shard copies. The HTTP thread sets the inputs, and
 * monitor_gather_on_shard() fills the outputs on the shard's thread. They
 * belong to the HTTP thread afterwards, which frees them with
 * monitor_snapshot_free(). */
struct monitor_snapshot {
  /* Inputs. */
  bool want_conns;          /* fill conns with the open connections */
  bool want_closed;         /* fill conns with the closed ones the shard keeps */
  bool want_conn_subs;      /* with each connection's subscriptions */
  bool want_subs;           /* fill subs with every subscription (for /subsz) */
  bool want_cache_stats;    /* fill cache_stats (for /subsz) */
  uint64_t cid;             /* only this connection, 0 for all */
  const char *test_subject; /* /subsz: only subscriptions matching it, or NULL */

  /* Outputs. */
  bool answered;            /* the shard ran the request */
  bool out_of_memory;       /* the lists are incomplete */
  uint32_t open_count;      /* open connections on the shard */
  uint32_t closed_count;    /* closed connections the shard keeps */
  uint64_t cache_hits;      /* the shard's match cache */
  uint64_t cache_misses;
  struct subcache_stat *cache_stats; /* the match cache's current results */
  uint32_t cache_stat_count;
  struct monitor_conn *conns;
  uint32_t conn_count, conn_cap;
  struct monitor_sub *subs;
  uint32_t sub_count, sub_cap;
  struct buf strings;       /* NUL-terminated strings */
};

/* Copies the state that the snapshot's inputs select. Runs on shard s's
 * thread through the control mailbox, with arg a struct monitor_snapshot. */
void monitor_gather_on_shard(struct shard *s, void *arg);

/* Runs monitor_gather_on_shard() on every shard with the inputs in
 * templ, into an array of server.shard_count snapshots. Returns the array,
 * or NULL when a shard did not respond in time or memory ran out. The reason
 * is then in reply, as 503 or 500. */
struct monitor_snapshot *monitor_gather_all(const struct monitor_snapshot *templ,
                                            struct monitor_reply *reply);

/* Frees an array returned by monitor_gather_all(). */
void monitor_snapshot_free(struct monitor_snapshot *snaps);

/* Returns the string at offset in snap's pool, or NULL for MONITOR_NO_STRING. */
const char *monitor_snapshot_string(const struct monitor_snapshot *snap, uint32_t offset);

/* Add to a snapshot on the shard's thread. monitor_snapshot_add_string()
 * returns the copy's offset in the pool, or MONITOR_NO_STRING for NULL
 * text. monitor_snapshot_add_conn() and monitor_snapshot_add_sub() return
 * a zeroed element at the end of conns or subs. When memory runs out, they
 * set snap->out_of_memory and return MONITOR_NO_STRING or NULL. */
uint32_t monitor_snapshot_add_string(struct monitor_snapshot *snap, const char *text);
struct monitor_conn *monitor_snapshot_add_conn(struct monitor_snapshot *snap);
struct monitor_sub *monitor_snapshot_add_sub(struct monitor_snapshot *snap);

/* Copies c's address, times and counters into out, on the shard's thread;
 * strings and subscriptions are left to the caller. */
struct client;
void monitor_conn_fill_figures(struct monitor_conn *out, const struct client *c);

/* ---- Closed connections (net/monitor_closed.c). ---- */

/* Returns how many closed connections each of shard_count shards keeps:
 * MONITOR_CLOSED_MAX shared evenly, at least one. */
uint32_t monitor_closed_capacity(int shard_count);

/* Copies the records of shard s's closed connections, oldest first, into
 * snap->conns (only the one with snap->cid when it is not 0), with their
 * subscriptions when snap->want_conn_subs is set, and sets
 * snap->closed_count. Runs on s's thread, from monitor_gather_on_shard(). */
void monitor_closed_copy(const struct shard *s, struct monitor_snapshot *snap);

/* ---- Endpoints. Each fills reply and returns its status. ---- */

/* net/monitor_varz.c */
unsigned monitor_varz(struct MHD_Connection *conn, struct monitor_reply *reply);
unsigned monitor_healthz(struct MHD_Connection *conn, struct monitor_reply *reply);
unsigned monitor_jsz(struct MHD_Connection *conn, struct monitor_reply *reply);
unsigned monitor_routez(struct MHD_Connection *conn, struct monitor_reply *reply);

/* net/monitor_connz.c */
unsigned monitor_connz(struct MHD_Connection *conn, struct monitor_reply *reply);
unsigned monitor_subsz(struct MHD_Connection *conn, struct monitor_reply *reply);

/* net/monitor_metrics.c */
unsigned monitor_metrics(struct MHD_Connection *conn, struct monitor_reply *reply);

#endif
