/* SPDX-License-Identifier: Apache-2.0 */
/* /connz and /subsz: lists of connections and subscriptions gathered from
 * the shards' snapshots, then filtered, sorted and paged on the HTTP thread
 * with nats-server 2.9.10's options, field names and JSON types. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/server.h"
#include "core/subject.h"
#include "core/subcache.h"
#include "core/sublist.h"
#include "net/monitor_int.h"

/* nats-server's only account while accounts are not implemented. */
#define MONITOR_GLOBAL_ACCOUNT "$G"

enum connz_sort {
  SORT_CID, SORT_START, SORT_SUBS, SORT_PENDING, SORT_MSGS_TO, SORT_MSGS_FROM,
  SORT_BYTES_TO, SORT_BYTES_FROM, SORT_LAST, SORT_IDLE, SORT_UPTIME, SORT_STOP, SORT_REASON,
};

static const char *const sort_names[] = {
    [SORT_CID] = "cid",           [SORT_START] = "start",         [SORT_SUBS] = "subs",
    [SORT_PENDING] = "pending",   [SORT_MSGS_TO] = "msgs_to",     [SORT_MSGS_FROM] = "msgs_from",
    [SORT_BYTES_TO] = "bytes_to", [SORT_BYTES_FROM] = "bytes_from", [SORT_LAST] = "last",
    [SORT_IDLE] = "idle",         [SORT_UPTIME] = "uptime",       [SORT_STOP] = "stop",
    [SORT_REASON] = "reason",
};

enum connz_state { STATE_OPEN, STATE_CLOSED, STATE_ALL };

struct connz_options {
  enum connz_sort sort;
  bool auth;
  bool subs;
  bool subs_detail;
  int64_t offset;
  int64_t limit;
  uint64_t cid;
  enum connz_state state;
  const char *user;
  const char *account;
  const char *mqtt_client;
};

/* One gathered connection and the snapshot that contains its strings. */
struct conn_ref {
  const struct monitor_conn *conn;
  const struct monitor_snapshot *snap;
};

/* Parses /connz's query like nats-server's HandleConnz and Connz. Returns
 * false after filling reply with 400. */
static bool parse_connz_options(struct MHD_Connection *conn, struct connz_options *o,
                                struct monitor_reply *reply) {
  memset(o, 0, sizeof *o);
  const char *sort = monitor_arg(conn, "sort");
  if (sort != NULL) {
    size_t i = 0;
    while (i < sizeof sort_names / sizeof sort_names[0] && strcmp(sort, sort_names[i]) != 0) i++;
    if (i == sizeof sort_names / sizeof sort_names[0]) {
      monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST, "invalid sorting option: %s", sort);
      return false;
    }
    o->sort = (enum connz_sort)i;
  }
  if (!monitor_arg_bool(conn, "auth", &o->auth, reply)) return false;
  const char *subs = monitor_arg(conn, "subs");
  o->subs_detail = subs != NULL && strcasecmp(subs, "detail") == 0;
  if (!o->subs_detail && !monitor_arg_bool(conn, "subs", &o->subs, reply)) return false;
  if (!monitor_arg_int(conn, "offset", &o->offset, reply)) return false;
  if (!monitor_arg_int(conn, "limit", &o->limit, reply)) return false;
  if (!monitor_arg_uint(conn, "cid", &o->cid, reply)) return false;

  const char *state = monitor_arg(conn, "state");
  if (state == NULL || strcasecmp(state, "open") == 0) o->state = STATE_OPEN;
  else if (strcasecmp(state, "closed") == 0) o->state = STATE_CLOSED;
  else if (strcasecmp(state, "any") == 0 || strcasecmp(state, "all") == 0) o->state = STATE_ALL;
  else {
    monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST, "Error decoding state for %s", state);
    return false;
  }
  o->user = monitor_arg(conn, "user");
  o->account = monitor_arg(conn, "acc");
  o->mqtt_client = monitor_arg(conn, "mqtt_client");

  if (o->offset < 0) o->offset = 0;
  if (o->limit <= 0) o->limit = MONITOR_DEFAULT_LIST_LIMIT;
  if (o->cid > 0) o->limit = 1;
  if ((o->sort == SORT_STOP || o->sort == SORT_REASON) && o->state != STATE_CLOSED) {
    monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST, "sort by %s only valid on closed connections",
                       sort_names[o->sort]);
    return false;
  }
  return true;
}

/* ---- Sorting. Every order but cid, start and uptime is descending, as in
 * nats-server; ties go by ascending cid so that pages are stable. ---- */

struct sort_context {
  enum connz_sort key;
  int64_t now_ms;
};

static int compare_u64(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

static int compare_i64(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

/* Returns when c's uptime and idle time end: now while c is open, else
 * its stop time. */
static int64_t end_ms(const struct monitor_conn *c, int64_t now_ms) {
  return c->closed ? c->stop_ms : now_ms;
}

static int compare_conns(const void *pa, const void *pb, void *arg) {
  const struct sort_context *ctx = arg;
  const struct monitor_conn *a = ((const struct conn_ref *)pa)->conn;
  const struct monitor_conn *b = ((const struct conn_ref *)pb)->conn;
  int c = 0;
  switch (ctx->key) {
  case SORT_SUBS: c = compare_u64(b->sub_count, a->sub_count); break;
  case SORT_PENDING: c = compare_u64(b->pending_bytes, a->pending_bytes); break;
  case SORT_MSGS_TO: c = compare_u64(b->out_msgs, a->out_msgs); break;
  case SORT_MSGS_FROM: c = compare_u64(b->in_msgs, a->in_msgs); break;
  case SORT_BYTES_TO: c = compare_u64(b->out_bytes, a->out_bytes); break;
  case SORT_BYTES_FROM: c = compare_u64(b->in_bytes, a->in_bytes); break;
  case SORT_LAST: c = compare_i64(b->last_activity_ms, a->last_activity_ms); break;
  /* Longest idle first. nats-server 2.9.10 compares last activity minus
   * start here, which orders by time active instead. This follows the
   * documented meaning, which later nats-server versions adopted. */
  case SORT_IDLE:
    c = compare_i64(end_ms(b, ctx->now_ms) - b->last_activity_ms,
                    end_ms(a, ctx->now_ms) - a->last_activity_ms);
    break;
  /* Shortest uptime first, as nats-server 2.9.10 sorts it. */
  case SORT_UPTIME:
    c = compare_i64(end_ms(a, ctx->now_ms) - a->start_ms, end_ms(b, ctx->now_ms) - b->start_ms);
    break;
  /* Only closed connections are sorted by these: the latest stop first,
   * and reasons in byte order. */
  case SORT_STOP: c = compare_i64(b->stop_ms, a->stop_ms); break;
  case SORT_REASON: c = strcmp(a->reason, b->reason); break;
  default: break;
  }
  return c != 0 ? c : compare_u64(a->cid, b->cid);
}

/* ---- Output. ---- */

static void add_string_if(cJSON *obj, const char *name, const char *text) {
  if (text != NULL && text[0] != '\0') cJSON_AddStringToObject(obj, name, text);
}

/* Adds a subscription in nats-server's SubDetail form; account is NULL
 * inside a connection, where nats-server leaves it out. */
static cJSON *sub_detail(const struct monitor_snapshot *snap, const struct monitor_sub *sub,
                         const char *account) {
  cJSON *d = cJSON_CreateObject();
  if (account != NULL) cJSON_AddStringToObject(d, "account", account);
  cJSON_AddStringToObject(d, "subject", monitor_snapshot_string(snap, sub->subject));
  add_string_if(d, "qgroup", monitor_snapshot_string(snap, sub->queue));
  cJSON_AddStringToObject(d, "sid", monitor_snapshot_string(snap, sub->sid));
  monitor_json_add_uint(d, "msgs", sub->msgs);
  if (sub->max != 0) monitor_json_add_int(d, "max", sub->max);
  monitor_json_add_uint(d, "cid", sub->cid);
  return d;
}

static void add_conn_subs(cJSON *ci, const struct conn_ref *ref, const struct connz_options *o) {
  const struct monitor_conn *c = ref->conn;
  if (c->sub_len == 0 || (!o->subs && !o->subs_detail)) return;
  cJSON *list = cJSON_AddArrayToObject(ci, o->subs_detail ? "subscriptions_list_detail"
                                                          : "subscriptions_list");
  /* nats-server 2.9.10 names the account in a closed connection's
   * subscriptions, which it keeps in the form /subsz lists them. */
  const char *account = c->closed ? MONITOR_GLOBAL_ACCOUNT : NULL;
  for (uint32_t i = 0; i < c->sub_len; i++) {
    const struct monitor_sub *sub = &ref->snap->subs[c->sub_first + i];
    if (o->subs_detail) cJSON_AddItemToArray(list, sub_detail(ref->snap, sub, account));
    else
      cJSON_AddItemToArray(list,
                           cJSON_CreateString(monitor_snapshot_string(ref->snap, sub->subject)));
  }
}

static cJSON *conn_info(const struct conn_ref *ref, const struct connz_options *o,
                        int64_t now_mono_ms) {
  const struct monitor_conn *c = ref->conn;
  cJSON *ci = cJSON_CreateObject();
  char text[64];
  monitor_json_add_uint(ci, "cid", c->cid);
  cJSON_AddStringToObject(ci, "kind", "Client");
  cJSON_AddStringToObject(ci, "type", "nats");
  cJSON_AddStringToObject(ci, "ip", c->ip);
  monitor_json_add_int(ci, "port", c->port);
  monitor_format_time(monitor_wall_from_mono(c->start_ms), text, sizeof text);
  cJSON_AddStringToObject(ci, "start", text);
  monitor_format_time(monitor_wall_from_mono(c->last_activity_ms), text, sizeof text);
  cJSON_AddStringToObject(ci, "last_activity", text);
  if (c->closed) {
    monitor_format_time(monitor_wall_from_mono(c->stop_ms), text, sizeof text);
    cJSON_AddStringToObject(ci, "stop", text);
    cJSON_AddStringToObject(ci, "reason", c->reason);
  }
  monitor_format_go_duration(c->rtt_ns, text, sizeof text);
  cJSON_AddStringToObject(ci, "rtt", text);
  int64_t end = end_ms(c, now_mono_ms);
  monitor_format_uptime((end - c->start_ms) * 1000000, text, sizeof text);
  cJSON_AddStringToObject(ci, "uptime", text);
  monitor_format_uptime((end - c->last_activity_ms) * 1000000, text, sizeof text);
  cJSON_AddStringToObject(ci, "idle", text);
  monitor_json_add_uint(ci, "pending_bytes", c->pending_bytes);
  monitor_json_add_uint(ci, "in_msgs", c->in_msgs);
  monitor_json_add_uint(ci, "out_msgs", c->out_msgs);
  monitor_json_add_uint(ci, "in_bytes", c->in_bytes);
  monitor_json_add_uint(ci, "out_bytes", c->out_bytes);
  monitor_json_add_uint(ci, "subscriptions", c->sub_count);
  add_string_if(ci, "name", monitor_snapshot_string(ref->snap, c->name));
  add_string_if(ci, "lang", monitor_snapshot_string(ref->snap, c->lang));
  add_string_if(ci, "version", monitor_snapshot_string(ref->snap, c->version));
  if (o->auth) add_string_if(ci, "authorized_user", monitor_snapshot_string(ref->snap, c->user));
  add_conn_subs(ci, ref, o);
  return ci;
}

/* Whether c passes the user, account and MQTT client filters. */
static bool conn_selected(const struct conn_ref *ref, const struct connz_options *o) {
  if (o->account != NULL && strcmp(o->account, MONITOR_GLOBAL_ACCOUNT) != 0) return false;
  if (o->mqtt_client != NULL) return false; /* no MQTT connections exist */
  if (o->user != NULL) {
    const char *user = monitor_snapshot_string(ref->snap, ref->conn->user);
    if (user == NULL || strcmp(user, o->user) != 0) return false;
  }
  return true;
}

/* Collects the selected connections of every snapshot into refs, which
 * has room for all of them. Returns how many. */
static size_t select_conns(const struct monitor_snapshot *snaps, const struct connz_options *o,
                           struct conn_ref *refs) {
  size_t n = 0;
  for (int i = 0; i < server.shard_count; i++) {
    for (uint32_t k = 0; k < snaps[i].conn_count; k++) {
      struct conn_ref ref = {.conn = &snaps[i].conns[k], .snap = &snaps[i]};
      if (conn_selected(&ref, o)) refs[n++] = ref;
    }
  }
  return n;
}

static cJSON *connz_header(int64_t now_wall_ns) {
  cJSON *z = cJSON_CreateObject();
  char text[48];
  cJSON_AddStringToObject(z, "server_id", server.server_id);
  monitor_format_time(now_wall_ns, text, sizeof text);
  cJSON_AddStringToObject(z, "now", text);
  return z;
}

/* Adds the counts and the page refs[offset, offset + limit) to z. */
static void connz_page(cJSON *z, const struct conn_ref *refs, size_t selected, uint64_t total,
                       const struct connz_options *o, int64_t now_mono_ms) {
  size_t from = (size_t)o->offset < selected ? (size_t)o->offset : selected;
  size_t to = (uint64_t)o->offset + (uint64_t)o->limit < selected
                  ? (size_t)(o->offset + o->limit) : selected;
  monitor_json_add_uint(z, "num_connections", to - from);
  monitor_json_add_uint(z, "total", total);
  monitor_json_add_int(z, "offset", o->offset);
  monitor_json_add_int(z, "limit", o->limit);
  cJSON *list = cJSON_AddArrayToObject(z, "connections");
  for (size_t i = from; i < to; i++)
    cJSON_AddItemToArray(list, conn_info(&refs[i], o, now_mono_ms));
}

unsigned monitor_connz(struct MHD_Connection *conn, struct monitor_reply *reply) {
  struct connz_options o;
  if (!parse_connz_options(conn, &o, reply)) return reply->status;
  int64_t now_mono_ms = server_now_ms();

  /* With a cid and state=all, nats-server 2.9.10 looks among the closed
   * connections only. shoal looks among both, as state=all promises. */
  struct monitor_snapshot want = {.want_conns = o.state != STATE_CLOSED,
                                  .want_closed = o.state != STATE_OPEN,
                                  .want_conn_subs = o.subs || o.subs_detail,
                                  .cid = o.cid};
  struct monitor_snapshot *snaps = monitor_gather_all(&want, reply);
  if (snaps == NULL) return reply->status;
  uint64_t open = 0, closed = 0;
  size_t gathered = 0;
  for (int i = 0; i < server.shard_count; i++) {
    open += snaps[i].open_count;
    closed += snaps[i].closed_count;
    gathered += snaps[i].conn_count;
  }
  struct conn_ref *refs = calloc(gathered + 1, sizeof *refs);
  if (refs == NULL) {
    monitor_snapshot_free(snaps);
    return monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  }
  size_t selected = select_conns(snaps, &o, refs);
  struct sort_context sort = {.key = o.sort, .now_ms = now_mono_ms};
  qsort_r(refs, selected, sizeof *refs, compare_conns, &sort);

  /* With a cid, nats-server still counts every connection of the state in
   * total. With the other filters, total counts the connections they keep.
   * Closed connections count while their records are kept. */
  bool filtered = o.account != NULL || o.user != NULL || o.mqtt_client != NULL;
  uint64_t in_state = o.state == STATE_OPEN     ? open
                      : o.state == STATE_CLOSED ? closed
                                                : open + closed;
  uint64_t total = o.cid == 0 && filtered ? selected : in_state;
  cJSON *z = connz_header(monitor_wall_now_ns());
  connz_page(z, refs, selected, total, &o, now_mono_ms);
  free(refs);
  monitor_snapshot_free(snaps);
  return monitor_reply_json(conn, reply, z, false);
}

/* ---- /subsz ---- */

/* The match caches' figures in the form of nats-server's sublist
 * statistics, which count each cached subject once. A subject is cached on
 * every shard that matched it (the publisher's and each one that delivered
 * it), so the shards' results are merged by subject hash: subjects counts
 * distinct hashes, and each subject's fan-out is counted once. Two
 * subjects with the same 64-bit hash would count as one.
 * NOTE: a SUB or UNSUB drops every cached result in shoal, where
 * nats-server updates its cache in place, so after a subscription change
 * shoal reports 0 until subjects are published again. */
struct cache_figures {
  uint64_t subjects;
  uint64_t fanout_total;
  uint32_t fanout_max;
};

static int compare_stat_hash(const void *pa, const void *pb) {
  const struct subcache_stat *a = pa, *b = pb;
  return compare_u64(a->hash, b->hash);
}

/* Merges the shards' cache results into figures. Returns false when out
 * of memory. */
static bool merge_cache_stats(const struct monitor_snapshot *snaps, struct cache_figures *figures) {
  memset(figures, 0, sizeof *figures);
  size_t count = 0;
  for (int i = 0; i < server.shard_count; i++) count += snaps[i].cache_stat_count;
  struct subcache_stat *all = malloc((count + 1) * sizeof *all);
  if (all == NULL) return false;
  size_t n = 0;
  for (int i = 0; i < server.shard_count; i++) {
    if (snaps[i].cache_stat_count == 0) continue; /* cache_stats may be NULL */
    memcpy(all + n, snaps[i].cache_stats, snaps[i].cache_stat_count * sizeof *all);
    n += snaps[i].cache_stat_count;
  }
  qsort(all, n, sizeof *all, compare_stat_hash);

  /* Shards cache a subject's result for the same index generation, so
   * copies agree. The largest is taken in case a change races the copy. */
  for (size_t i = 0; i < n;) {
    uint32_t fanout = all[i].fanout;
    size_t next = i + 1;
    for (; next < n && all[next].hash == all[i].hash; next++)
      if (all[next].fanout > fanout) fanout = all[next].fanout;
    figures->subjects++;
    figures->fanout_total += fanout;
    if (fanout > figures->fanout_max) figures->fanout_max = fanout;
    i = next;
  }
  free(all);
  return true;
}

/* nats-server's SublistStats. num_matches and cache_hit_rate come from the
 * shards' match cache counters, num_cache and the fan-out from the results
 * they hold, num_inserts and num_removes from the index. */
static cJSON *sublist_stats(const struct monitor_snapshot *snaps, const struct cache_figures *cache,
                            bool account_known) {
  uint64_t hits = 0, misses = 0;
  for (int i = 0; i < server.shard_count; i++) {
    hits += snaps[i].cache_hits;
    misses += snaps[i].cache_misses;
  }
  cJSON *st = cJSON_CreateObject();
  monitor_json_add_uint(st, "num_subscriptions", account_known ? sublist_count(server.sublist) : 0);
  monitor_json_add_uint(st, "num_cache", account_known ? cache->subjects : 0);
  uint64_t inserts = 0, removes = 0;
  if (account_known) sublist_changes(server.sublist, &inserts, &removes);
  monitor_json_add_uint(st, "num_inserts", inserts);
  monitor_json_add_uint(st, "num_removes", removes);
  monitor_json_add_uint(st, "num_matches", account_known ? hits + misses : 0);
  double rate = account_known && hits + misses > 0 ? (double)hits / (double)(hits + misses) : 0;
  cJSON_AddNumberToObject(st, "cache_hit_rate", rate);
  monitor_json_add_uint(st, "max_fanout", account_known ? cache->fanout_max : 0);
  /* As nats-server computes it: 0 when no cached result has a subscriber. */
  double average = account_known && cache->fanout_total > 0
                       ? (double)cache->fanout_total / (double)cache->subjects : 0;
  cJSON_AddNumberToObject(st, "avg_fanout", average);
  return st;
}

/* Builds the full response with the page of subscriptions, which
 * nats-server sends only when the page is not empty. Returns NULL for an
 * empty page. */
static cJSON *subsz_with_list(const struct monitor_snapshot *snaps, cJSON *stats, int64_t offset,
                              int64_t limit) {
  cJSON *z = cJSON_CreateObject();
  char now[48];
  cJSON_AddStringToObject(z, "server_id", server.server_id);
  monitor_format_time(monitor_wall_now_ns(), now, sizeof now);
  cJSON_AddStringToObject(z, "now", now);
  for (cJSON *f = stats->child; f != NULL; f = f->next)
    cJSON_AddItemToObject(z, f->string, cJSON_Duplicate(f, true));

  cJSON *list = cJSON_CreateArray();
  uint64_t index = 0, listed = 0;
  for (int i = 0; i < server.shard_count; i++) {
    for (uint32_t k = 0; k < snaps[i].sub_count; k++, index++) {
      if (index < (uint64_t)offset || listed >= (uint64_t)limit) continue;
      cJSON_AddItemToArray(list, sub_detail(&snaps[i], &snaps[i].subs[k], MONITOR_GLOBAL_ACCOUNT));
      listed++;
    }
  }
  /* nats-server 2.9.10 reports the page's length as total. */
  monitor_json_add_uint(z, "total", listed);
  monitor_json_add_int(z, "offset", offset);
  monitor_json_add_int(z, "limit", limit);
  cJSON_AddItemToObject(z, "subscriptions_list", list);
  if (listed == 0) {
    cJSON_Delete(z);
    return NULL;
  }
  return z;
}

unsigned monitor_subsz(struct MHD_Connection *conn, struct monitor_reply *reply) {
  bool subs;
  int64_t offset, limit;
  if (!monitor_arg_bool(conn, "subs", &subs, reply)) return reply->status;
  if (!monitor_arg_int(conn, "offset", &offset, reply)) return reply->status;
  if (!monitor_arg_int(conn, "limit", &limit, reply)) return reply->status;
  if (offset < 0) offset = 0;
  if (limit <= 0) limit = MONITOR_DEFAULT_LIST_LIMIT;
  const char *test = monitor_arg(conn, "test");
  if (test != NULL && !subject_valid_literal(test, strlen(test)))
    return monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST,
                              "invalid test subject, must be valid publish subject: %s", test);
  const char *account = monitor_arg(conn, "acc");
  bool account_known = account == NULL || strcmp(account, MONITOR_GLOBAL_ACCOUNT) == 0;

  struct monitor_snapshot want = {.want_subs = subs && account_known,
                                  .want_cache_stats = account_known,
                                  .test_subject = test};
  struct monitor_snapshot *snaps = monitor_gather_all(&want, reply);
  if (snaps == NULL) return reply->status;
  struct cache_figures cache;
  if (!merge_cache_stats(snaps, &cache)) {
    monitor_snapshot_free(snaps);
    return monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  }
  cJSON *stats = sublist_stats(snaps, &cache, account_known);
  cJSON *full = subs ? subsz_with_list(snaps, stats, offset, limit) : NULL;
  monitor_snapshot_free(snaps);
  if (full != NULL) {
    cJSON_Delete(stats);
    return monitor_reply_json(conn, reply, full, false);
  }
  return monitor_reply_json(conn, reply, stats, false);
}
