/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots of connections, subscriptions and match-cache figures for
 * /connz and /subsz. Each shard copies its own clients, its records of
 * closed connections and its cache's figures on its thread, through the
 * control mailbox between two loop iterations. So no lock is added to the
 * message path, and the HTTP thread never reads a struct client. The copy
 * is O(connections + subscriptions) of the shard, and the shard serves no
 * I/O meanwhile. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/control.h"
#include "core/opts.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sub-t.h"
#include "core/subcache.h"
#include "core/subject.h"
#include "net/monitor_int.h"

uint32_t monitor_snapshot_add_string(struct monitor_snapshot *snap, const char *text) {
  if (text == NULL) return MONITOR_NO_STRING;
  size_t offset = snap->strings.len;
  if (offset >= MONITOR_NO_STRING || buf_append(&snap->strings, text, strlen(text) + 1) != 0) {
    snap->out_of_memory = true;
    return MONITOR_NO_STRING;
  }
  return (uint32_t)offset;
}

/* Grows *items to hold one more element of size bytes. */
static bool grow(void **items, uint32_t *cap, uint32_t count, size_t size) {
  if (count < *cap) return true;
  uint32_t want = *cap ? *cap * 2 : 64;
  void *bigger = realloc(*items, (size_t)want * size);
  if (bigger == NULL) return false;
  *items = bigger;
  *cap = want;
  return true;
}

struct monitor_conn *monitor_snapshot_add_conn(struct monitor_snapshot *snap) {
  if (!grow((void **)&snap->conns, &snap->conn_cap, snap->conn_count, sizeof *snap->conns)) {
    snap->out_of_memory = true;
    return NULL;
  }
  struct monitor_conn *out = &snap->conns[snap->conn_count++];
  memset(out, 0, sizeof *out);
  return out;
}

struct monitor_sub *monitor_snapshot_add_sub(struct monitor_snapshot *snap) {
  if (!grow((void **)&snap->subs, &snap->sub_cap, snap->sub_count, sizeof *snap->subs)) {
    snap->out_of_memory = true;
    return NULL;
  }
  struct monitor_sub *out = &snap->subs[snap->sub_count++];
  memset(out, 0, sizeof *out);
  return out;
}

static void copy_sub(struct monitor_snapshot *snap, const struct sub *sub, uint64_t cid) {
  struct monitor_sub *out = monitor_snapshot_add_sub(snap);
  if (out == NULL) return;
  out->subject = monitor_snapshot_add_string(snap, sub->subject);
  out->queue = monitor_snapshot_add_string(snap, sub->queue);
  out->sid = monitor_snapshot_add_string(snap, sub->sid);
  out->msgs = sub->delivered;
  out->max = sub->max_msgs;
  out->cid = cid;
}

/* Copies c's subscriptions, oldest first (the client's list is newest
 * first), keeping those that match snap->test_subject when it is set.
 * Returns how many were copied. */
static uint32_t copy_client_subs(struct monitor_snapshot *snap, const struct client *c) {
  uint32_t first = snap->sub_count;
  for (const struct sub *sub = c->sub_list; sub != NULL; sub = sub->next_in_client) {
    const char *test = snap->test_subject;
    if (test != NULL && !subject_matches(sub->subject, sub->subject_len, test, strlen(test)))
      continue;
    copy_sub(snap, sub, c->cid);
  }
  uint32_t n = snap->sub_count - first;
  for (uint32_t i = 0; i < n / 2; i++) {
    struct monitor_sub tmp = snap->subs[first + i];
    snap->subs[first + i] = snap->subs[first + n - 1 - i];
    snap->subs[first + n - 1 - i] = tmp;
  }
  return n;
}

void monitor_conn_fill_figures(struct monitor_conn *out, const struct client *c) {
  out->cid = c->cid;
  snprintf(out->ip, sizeof out->ip, "%s", c->ip);
  out->port = c->port;
  out->start_ms = c->start_ms;
  out->last_activity_ms = c->last_recv_ms;
  out->rtt_ns = c->rtt_ns; /* 0 ("0s") until the first PING was answered */
  out->pending_bytes = buf_pending(&c->out) + buf_pending(&c->wbuf);
  out->in_msgs = c->msgs_in;
  out->out_msgs = c->msgs_out;
  out->in_bytes = c->bytes_in;
  out->out_bytes = c->bytes_out;
  out->sub_count = c->subs.count;
}

static void copy_conn(struct monitor_snapshot *snap, const struct client *c) {
  struct monitor_conn *out = monitor_snapshot_add_conn(snap);
  if (out == NULL) return;
  monitor_conn_fill_figures(out, c);
  out->name = monitor_snapshot_add_string(snap, c->name);
  out->lang = monitor_snapshot_add_string(snap, c->lang);
  out->version = monitor_snapshot_add_string(snap, c->version);
  /* TODO: name the user of --user or of a single authorization user too;
   * connections keep only the entry of a users list. */
  out->user = monitor_snapshot_add_string(snap, c->user != NULL ? c->user->user : NULL);
  out->sub_first = snap->sub_count;
  out->sub_len = snap->want_conn_subs ? copy_client_subs(snap, c) : 0;
}

/* Copies the hash and fan-out of the match cache's current results. */
static void copy_cache_stats(struct monitor_snapshot *snap, const struct subcache *cache) {
  uint32_t capacity = subcache_capacity(cache);
  snap->cache_stats = malloc((size_t)capacity * sizeof *snap->cache_stats);
  if (snap->cache_stats == NULL) {
    snap->out_of_memory = true;
    return;
  }
  snap->cache_stat_count = subcache_stats(cache, snap->cache_stats, capacity);
}

void monitor_gather_on_shard(struct shard *s, void *arg) {
  struct monitor_snapshot *snap = arg;
  snap->answered = true;
  if (s->cache != NULL) {
    snap->cache_hits = subcache_hits(s->cache);
    snap->cache_misses = subcache_misses(s->cache);
    if (snap->want_cache_stats) copy_cache_stats(snap, s->cache);
  }
  if (snap->want_conns && snap->cid == 0) {
    snap->conns = malloc((s->client_count + 1) * sizeof *snap->conns);
    snap->conn_cap = snap->conns != NULL ? s->client_count + 1 : 0;
  }

  /* The list contains closing and closed connections too. Only open ones
   * are listed and counted, matching server.connections and /varz. The
   * closed ones are listed from the records kept when they closed. */
  for (const struct client *c = s->clients; c != NULL; c = c->next) {
    if (c->state != CLIENT_OPEN) continue;
    snap->open_count++;
    if (snap->cid != 0 && c->cid != snap->cid) continue;
    if (snap->want_conns) copy_conn(snap, c);
    if (snap->want_subs) copy_client_subs(snap, c);
  }
  if (snap->want_closed) monitor_closed_copy(s, snap);
}

struct monitor_snapshot *monitor_gather_all(const struct monitor_snapshot *templ,
                                            struct monitor_reply *reply) {
  int n = server.shard_count;
  struct monitor_snapshot *snaps = calloc((size_t)n, sizeof *snaps);
  if (snaps == NULL) {
    monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    snaps[i].want_conns = templ->want_conns;
    snaps[i].want_closed = templ->want_closed;
    snaps[i].want_conn_subs = templ->want_conn_subs;
    snaps[i].want_subs = templ->want_subs;
    snaps[i].want_cache_stats = templ->want_cache_stats;
    snaps[i].cid = templ->cid;
    snaps[i].test_subject = templ->test_subject;
  }

  int rc = control_run_on_all(monitor_gather_on_shard, snaps, sizeof *snaps,
                              MONITOR_SHARD_TIMEOUT_MS);
  bool out_of_memory = rc == -ENOMEM;
  for (int i = 0; i < n; i++) out_of_memory |= snaps[i].out_of_memory;
  if (rc == -ETIMEDOUT) {
    int missing = 0;
    for (int i = 0; i < n; i++) missing += !snaps[i].answered;
    monitor_snapshot_free(snaps);
    monitor_reply_text(reply, MHD_HTTP_SERVICE_UNAVAILABLE,
                       "%d of %d shards did not answer within %d ms; try again", missing, n,
                       MONITOR_SHARD_TIMEOUT_MS);
    return NULL;
  }
  if (out_of_memory) {
    monitor_snapshot_free(snaps);
    monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return NULL;
  }
  return snaps;
}

void monitor_snapshot_free(struct monitor_snapshot *snaps) {
  if (snaps == NULL) return;
  for (int i = 0; i < server.shard_count; i++) {
    free(snaps[i].conns);
    free(snaps[i].subs);
    free(snaps[i].cache_stats);
    buf_free(&snaps[i].strings);
  }
  free(snaps);
}

const char *monitor_snapshot_string(const struct monitor_snapshot *snap, uint32_t offset) {
  if (offset == MONITOR_NO_STRING) return NULL;
  return snap->strings.data + offset;
}
