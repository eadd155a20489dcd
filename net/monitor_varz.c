/* SPDX-License-Identifier: Apache-2.0 */
/* /varz, /healthz, /jsz and /routez with nats-server 2.9.10's field names,
 * units and JSON types, so that tools written for nats-server parse them.
 * Durations in nanoseconds, timeouts in seconds, times as RFC 3339 in UTC,
 * as nats-server marshals its Go types. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/auth.h"
#include "core/js_int.h"
#include "core/log.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sublist.h"
#include "net/backend.h"
#include "net/monitor_int.h"

/* The protocol version INFO announces. */
#define MONITOR_PROTO 1
/* nats-server's default TLS handshake timeout in seconds. shoal has no TLS
 * yet, and nats-server reports the default when TLS is off as well. */
#define MONITOR_TLS_TIMEOUT_S 2.0

static void add_time(cJSON *obj, const char *name, int64_t wall_ns) {
  char text[48];
  monitor_format_time(wall_ns, text, sizeof text);
  cJSON_AddStringToObject(obj, name, text);
}

/* CPU use in percent of one core since the previous /varz request (since
 * start for the first), as nats-server reports it. Only the HTTP thread
 * calls this, and the mutex guards against a second monitor thread. */
static double cpu_percent(double cpu_seconds, int64_t now_mono_ms) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static double last_cpu_seconds;
  static int64_t last_mono_ms = -1;
  static double last_percent;

  pthread_mutex_lock(&lock);
  if (last_mono_ms < 0) last_mono_ms = server.start_time_ms;
  int64_t elapsed_ms = now_mono_ms - last_mono_ms;
  /* Below a tenth of a second the tick granularity makes the rate noise. */
  if (elapsed_ms >= 100) {
    last_percent = (cpu_seconds - last_cpu_seconds) * 100000.0 / (double)elapsed_ms;
    last_percent = round(last_percent * 100) / 100;
    last_cpu_seconds = cpu_seconds;
    last_mono_ms = now_mono_ms;
  }
  double result = last_percent;
  pthread_mutex_unlock(&lock);
  return result;
}

/* JetStream's state as /varz and /jsz report it. */
struct js_summary {
  bool enabled;
  uint64_t streams, consumers, memory, storage;
};

/* NOTE: reads JetStream's internal state (core/js_int.h) because core/js.h
 * exports no usage summary yet. API request counts and stored message
 * counts are not reachable from here, so they are reported as 0. */
static void read_js_summary(struct js_summary *out) {
  memset(out, 0, sizeof *out);
  out->enabled = js.enabled;
  if (out->enabled) js_registry_totals(&out->streams, &out->consumers, &out->memory, &out->storage);
}

static void add_js_config(cJSON *obj) {
  cJSON *config = cJSON_AddObjectToObject(obj, "config");
  monitor_json_add_int(config, "max_memory", server.opts.max_memory_store);
  monitor_json_add_int(config, "max_storage", server.opts.max_file_store);
  cJSON_AddStringToObject(config, "store_dir", js.root != NULL ? js.root : "");
}

/* The JetStreamStats fields: usage, one account ($G) and API counters. */
static void add_js_stats(cJSON *obj, const struct js_summary *sum) {
  monitor_json_add_uint(obj, "memory", sum->memory);
  monitor_json_add_uint(obj, "storage", sum->storage);
  monitor_json_add_int(obj, "reserved_memory", 0);
  monitor_json_add_int(obj, "reserved_storage", 0);
  monitor_json_add_int(obj, "accounts", sum->enabled ? 1 : 0);
  monitor_json_add_int(obj, "ha_assets", 0);
  cJSON *api = cJSON_AddObjectToObject(obj, "api");
  monitor_json_add_int(api, "total", 0);
  monitor_json_add_int(api, "errors", 0);
}

/* Options as nats-server lists them, in its order. */
static void add_options(cJSON *v) {
  const struct opts *o = &server.opts;
  cJSON_AddStringToObject(v, "host", o->host != NULL ? o->host : "0.0.0.0");
  monitor_json_add_int(v, "port", server.port);
  if (auth_required(server_auth_opts())) cJSON_AddBoolToObject(v, "auth_required", true);
  monitor_json_add_int(v, "max_connections", o->max_connections);
  if (o->max_subscriptions > 0) monitor_json_add_int(v, "max_subscriptions", o->max_subscriptions);
  monitor_json_add_int(v, "ping_interval", o->ping_interval_ms * 1000000);
  monitor_json_add_int(v, "ping_max", o->ping_max);
  cJSON_AddStringToObject(v, "http_host", monitor_http_host());
  monitor_json_add_int(v, "http_port", monitor_http_port());
  cJSON_AddStringToObject(v, "http_base_path", "");
  monitor_json_add_int(v, "https_port", 0);
  cJSON_AddNumberToObject(v, "auth_timeout", (double)o->auth_timeout_ms / 1000.0);
  monitor_json_add_int(v, "max_control_line", o->max_control_line);
  monitor_json_add_int(v, "max_payload", o->max_payload);
  monitor_json_add_int(v, "max_pending", o->max_pending);

  /* Clustering, gateways, leaf nodes, MQTT and WebSocket are not
   * implemented, and nats-server prints these as empty objects when they
   * are off. So is JetStream's when it is off. */
  static const char *const off[] = {"cluster", "gateway", "leaf", "mqtt", "websocket"};
  for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) cJSON_AddObjectToObject(v, off[i]);
  cJSON *jetstream = cJSON_AddObjectToObject(v, "jetstream");
  struct js_summary sum;
  read_js_summary(&sum);
  if (sum.enabled) {
    add_js_config(jetstream);
    add_js_stats(cJSON_AddObjectToObject(jetstream, "stats"), &sum);
  }

  cJSON_AddNumberToObject(v, "tls_timeout", MONITOR_TLS_TIMEOUT_S);
  monitor_json_add_int(v, "write_deadline", o->write_deadline_ms * 1000000);
}

/* Runtime fields: clocks, process usage and the summed counters. */
static void add_runtime(cJSON *v, int64_t now_mono_ms, int64_t now_wall_ns) {
  int64_t start_ns = monitor_wall_from_mono(server.start_time_ms);
  add_time(v, "start", start_ns);
  add_time(v, "now", now_wall_ns);
  char uptime[64];
  monitor_format_uptime((now_mono_ms - server.start_time_ms) * 1000000, uptime, sizeof uptime);
  cJSON_AddStringToObject(v, "uptime", uptime);

  int64_t rss = 0;
  double cpu_seconds = 0;
  monitor_process_usage(&rss, &cpu_seconds);
  monitor_json_add_int(v, "mem", rss);
  monitor_json_add_int(v, "cores", monitor_cpu_count());
  /* nats-server's Go scheduler threads; shoal's are its shard threads. */
  monitor_json_add_int(v, "gomaxprocs", server.shard_count);
  cJSON_AddNumberToObject(v, "cpu", cpu_percent(cpu_seconds, now_mono_ms));

  struct shard_stats total;
  monitor_sum_stats(&total);
  monitor_json_add_int(v, "connections", atomic_load(&server.connections));
  monitor_json_add_uint(v, "total_connections", total.connections_total);
  monitor_json_add_int(v, "routes", 0);
  monitor_json_add_int(v, "remotes", 0);
  monitor_json_add_int(v, "leafnodes", 0);
  monitor_json_add_uint(v, "in_msgs", total.msgs_in);
  monitor_json_add_uint(v, "out_msgs", total.msgs_out);
  monitor_json_add_uint(v, "in_bytes", total.bytes_in);
  monitor_json_add_uint(v, "out_bytes", total.bytes_out);
  monitor_json_add_uint(v, "slow_consumers", total.slow_consumers);
  monitor_json_add_uint(v, "subscriptions", sublist_count(server.sublist));

  /* nats-server lists only the paths requested at least once. */
  cJSON *stats = cJSON_AddObjectToObject(v, "http_req_stats");
  for (int p = 0; p < MONITOR_PATH_COUNT; p++) {
    uint64_t n = monitor_path_requests((enum monitor_path)p);
    if (n > 0) monitor_json_add_uint(stats, monitor_path_name((enum monitor_path)p), n);
  }
  add_time(v, "config_load_time", start_ns);
}

unsigned monitor_varz(struct MHD_Connection *conn, struct monitor_reply *reply) {
  int64_t now_mono_ms = server_now_ms();
  int64_t now_wall_ns = monitor_wall_now_ns();

  cJSON *v = cJSON_CreateObject();
  cJSON_AddStringToObject(v, "server_id", server.server_id);
  cJSON_AddStringToObject(v, "server_name", server.server_name);
  cJSON_AddStringToObject(v, "version", SERVER_COMPAT_VERSION);
  monitor_json_add_int(v, "proto", MONITOR_PROTO);
  /* nats-server's Go version. shoal is C, so this names the compiler;
   * tools read the field as an opaque string. */
#ifdef __VERSION__
  cJSON_AddStringToObject(v, "go", "cc " __VERSION__);
#else
  cJSON_AddStringToObject(v, "go", "cc");
#endif
  add_options(v);
  add_runtime(v, now_mono_ms, now_wall_ns);

  /* shoal's own fields, which nats-server's parsers ignore. */
  cJSON_AddStringToObject(v, "shoal_version", SHOAL_VERSION);
  monitor_json_add_int(v, "shoal_shards", server.shard_count);
  const struct backend_ops *backend = server.shards[0]->backend;
  cJSON_AddStringToObject(v, "shoal_backend", backend != NULL ? backend->name : "");
  return monitor_reply_json(conn, reply, v, false);
}

/* ---- /healthz ---- */

/* nats-server's JSNotEnabledErr text: description and error code. */
#define MONITOR_JS_NOT_ENABLED "JetStream not enabled (10076)"

/* Returns NULL when healthy, or why not, and sets *status to nats-server's
 * status word. */
static const char *health_problem(const char **status) {
  if (atomic_load(&server.stopping)) {
    *status = "unavailable";
    return "server is shutting down";
  }
  if (server.opts.jetstream && !js.enabled) {
    *status = "unavailable";
    return MONITOR_JS_NOT_ENABLED;
  }
  *status = "ok";
  return NULL;
}

unsigned monitor_healthz(struct MHD_Connection *conn, struct monitor_reply *reply) {
  bool js_enabled, js_enabled_only, js_server_only;
  if (!monitor_arg_bool(conn, "js-enabled", &js_enabled, reply)) return reply->status;
  if (!monitor_arg_bool(conn, "js-enabled-only", &js_enabled_only, reply)) return reply->status;
  if (!monitor_arg_bool(conn, "js-server-only", &js_server_only, reply)) return reply->status;

  /* js-enabled-only and js-server-only skip nats-server's checks that
   * follow "JetStream is enabled", which are about clustered JetStream.
   * shoal's checks end there, so the options are decoded (and rejected
   * when invalid) but change nothing. */
  if (js_enabled) log_warn("Healthcheck: js-enabled deprecated, use js-enabled-only instead");
  const char *status = NULL;
  const char *problem = health_problem(&status);
  if (problem != NULL) log_warn("Healthcheck failed: \"%s\"", problem);
  cJSON *h = cJSON_CreateObject();
  cJSON_AddStringToObject(h, "status", status);
  if (problem != NULL) cJSON_AddStringToObject(h, "error", problem);
  monitor_reply_json(conn, reply, h, true);
  if (problem != NULL && reply->status == MHD_HTTP_OK) reply->status = MHD_HTTP_SERVICE_UNAVAILABLE;
  return reply->status;
}

/* ---- /jsz ---- */

unsigned monitor_jsz(struct MHD_Connection *conn, struct monitor_reply *reply) {
  /* Decoded only to reject invalid values with 400 as nats-server does,
   * because with JetStream off none of them changes the response. */
  static const char *const bools[] = {"accounts", "streams", "consumers", "config"};
  bool flag;
  for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
    if (!monitor_arg_bool(conn, bools[i], &flag, reply)) return reply->status;
  int64_t number;
  if (!monitor_arg_int(conn, "offset", &number, reply)) return reply->status;
  if (!monitor_arg_int(conn, "limit", &number, reply)) return reply->status;
  bool leader_only;
  if (!monitor_arg_bool(conn, "leader-only", &leader_only, reply)) return reply->status;
  if (leader_only)
    return monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST, "filtered response: not leader");

  struct js_summary sum;
  read_js_summary(&sum);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "server_id", server.server_id);
  add_time(j, "now", monitor_wall_now_ns());
  if (!sum.enabled) {
    /* nats-server's response while JetStream is disabled. */
    cJSON_AddBoolToObject(j, "disabled", true);
    cJSON *config = cJSON_AddObjectToObject(j, "config");
    monitor_json_add_int(config, "max_memory", 0);
    monitor_json_add_int(config, "max_storage", 0);
  } else {
    add_js_config(j);
  }
  add_js_stats(j, &sum);
  monitor_json_add_uint(j, "streams", sum.streams);
  monitor_json_add_uint(j, "consumers", sum.consumers);
  monitor_json_add_int(j, "messages", 0);
  monitor_json_add_uint(j, "bytes", sum.memory + sum.storage);
  return monitor_reply_json(conn, reply, j, false);
}

/* ---- /routez ---- */

unsigned monitor_routez(struct MHD_Connection *conn, struct monitor_reply *reply) {
  /* The subs argument is checked like nats-server's decodeSubs, though no
   * route exists to list subscriptions for. */
  const char *subs = monitor_arg(conn, "subs");
  bool flag;
  if (subs == NULL || strcasecmp(subs, "detail") != 0)
    if (!monitor_arg_bool(conn, "subs", &flag, reply)) return reply->status;

  cJSON *r = cJSON_CreateObject();
  cJSON_AddStringToObject(r, "server_id", server.server_id);
  add_time(r, "now", monitor_wall_now_ns());
  monitor_json_add_int(r, "num_routes", 0);
  cJSON_AddArrayToObject(r, "routes");
  return monitor_reply_json(conn, reply, r, false);
}
