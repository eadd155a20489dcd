/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream start-up and the per-shard plumbing. This file owns the store
 * directory, one storage I/O backend per shard, the internal subscriptions
 * that receive API requests and the queue of outgoing messages. A hook
 * drives storage and sends that queue once per shard loop iteration. Streams are in
 * js_stream.c, API handlers in js_api.c. */
#include "core/js.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/client.h"
#include "core/js_int.h"
#include "core/log.h"
#include "core/route.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sub-t.h"
#include "core/subcache.h"
#include "net/backend.h"

struct js_global js;

/* The start callback that was set before ours, run first. */
static void (*previous_on_start)(struct shard *s);
static void (*previous_on_stop)(struct shard *s);

/* How often a shard expires old messages and duplicate ids. */
#define JS_TIMER_INTERVAL_MS 250

int64_t js_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

uint32_t js_owner_of(const char *name, size_t len) {
  return (uint32_t)(XXH3_64bits(name, len) % (uint64_t)server.shard_count);
}

struct js_shard *js_shard_self(struct shard *s) { return &js.shards[s->id]; }

int js_mkdir_p(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -errno;
  return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  return remove(path) == 0 ? 0 : -1;
}

int js_remove_tree(const char *path) {
  if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) return -errno;
  return 0;
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

/* Replaces dir/name with text: a crash leaves either the old file or the
 * new one, never a mix, because the new bytes are synced under a temporary
 * name before the rename, and the directory is synced after it. */
int js_write_file_atomic(const char *dir, const char *name, const char *text, size_t len) {
  char tmp[4096], final[4096];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  snprintf(final, sizeof final, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return -errno;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, text + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int rc = n < 0 ? -errno : -EIO;
      close(fd);
      unlink(tmp);
      return rc;
    }
    done += (size_t)n;
  }
  if (fsync(fd) != 0) {
    int rc = -errno;
    close(fd);
    unlink(tmp);
    return rc;
  }
  close(fd);
  if (rename(tmp, final) != 0) {
    int rc = -errno;
    unlink(tmp);
    return rc;
  }
  return fsync_path(dir);
}

static void append_out(struct js_shard *jsh, const char *inbox, uint32_t inbox_len,
                       const char *subject, const char *reply, const void *hdr, uint32_t hdr_len,
                       const void *data, uint32_t data_len) {
  uint32_t subject_len = (uint32_t)strlen(subject);
  uint32_t reply_len = reply != NULL ? (uint32_t)strlen(reply) : 0;
  struct js_out *o =
      malloc(sizeof *o + inbox_len + subject_len + reply_len + hdr_len + data_len + 1);
  if (o == NULL) {
    log_error("JetStream: out of memory, dropping a message to %s", subject);
    return;
  }
  o->next = NULL;
  o->queue_len = 0;
  o->inbox_len = inbox_len;
  o->subject_len = subject_len;
  o->reply_len = reply_len;
  o->hdr_len = hdr_len;
  o->total_len = hdr_len + data_len;
  char *p = o->buf;
  if (inbox_len > 0) memcpy(p, inbox, inbox_len);
  p += inbox_len;
  memcpy(p, subject, subject_len);
  p += subject_len;
  if (reply_len > 0) memcpy(p, reply, reply_len);
  p += reply_len;
  if (hdr_len > 0) memcpy(p, hdr, hdr_len);
  p += hdr_len;
  if (data_len > 0) memcpy(p, data, data_len);
  if (jsh->out_tail != NULL)
    jsh->out_tail->next = o;
  else
    jsh->out_head = o;
  jsh->out_tail = o;
}

void js_send(struct js_shard *jsh, const char *subject, const char *reply, const void *hdr,
             uint32_t hdr_len, const void *data, uint32_t data_len) {
  append_out(jsh, NULL, 0, subject, reply, hdr, hdr_len, data, data_len);
}

void js_deliver(struct js_shard *jsh, const char *inbox, const char *subject, const char *reply,
                const void *hdr, uint32_t hdr_len, const void *data, uint32_t data_len) {
  append_out(jsh, inbox, (uint32_t)strlen(inbox), subject, reply, hdr, hdr_len, data, data_len);
}

void js_send_json(struct js_shard *jsh, const char *subject, struct cJSON *obj) {
  if (obj == NULL) return;
  char *text = cJSON_PrintUnformatted(obj);
  cJSON_Delete(obj);
  if (text == NULL || subject == NULL || subject[0] == '\0') {
    free(text);
    return;
  }
  js_send(jsh, subject, NULL, NULL, 0, text, (uint32_t)strlen(text));
  free(text);
}

/* The subject on which shard id receives deliveries handed over by other
 * shards. Clients subscribed to ">" see these messages too, as they see
 * nats-server's own $JS traffic. */
static void handover_subject(uint32_t id, char *out, size_t cap) {
  snprintf(out, cap, "$JS.SHOAL.DELIVER.%u", id);
}

/* The fixed part of a handed-over delivery. The strings follow it: inbox,
 * subject, reply, headers and payload, then the queue group name when the
 * delivery is for one member of a queue group. */
struct handover {
  uint32_t inbox_len;
  uint32_t subject_len;
  uint32_t reply_len;
  uint32_t hdr_len;
  uint32_t total_len;
  uint32_t queue_len;
};

static void deliver_to(const struct js_out *o, struct sub *sub) {
  const char *subject = o->buf + o->inbox_len;
  const char *reply = subject + o->subject_len;
  const char *data = reply + o->reply_len;
  client_deliver(sub->client, sub, subject, o->subject_len, reply, o->reply_len, data, o->hdr_len,
                 o->total_len);
}

/* Delivers o to the local plain subscribers of its inbox. Returns a mask
 * of the other shards (up to 64) that have plain subscribers too. */
static uint64_t deliver_plain_local(struct shard *s, const struct sublist_result *r,
                                    const struct js_out *o) {
  uint64_t remote = 0;
  for (uint32_t i = 0; r != NULL && i < r->plain_count; i++) {
    struct sub *sub = r->plain[i];
    if (sub->shard_id != s->id)
      remote |= 1ULL << (sub->shard_id & 63);
    else if (sub->client != NULL)
      deliver_to(o, sub);
  }
  return remote;
}

/* Delivers o to one local member of queue group g, taking turns. Returns
 * false when g has no local member. */
static bool deliver_group_local(struct js_shard *jsh, const struct sublist_qgroup *g,
                                const struct js_out *o) {
  uint32_t local = 0;
  for (uint32_t i = 0; i < g->member_count; i++)
    local += g->members[i]->shard_id == jsh->id && g->members[i]->client != NULL;
  if (local == 0) return false;
  uint32_t k = jsh->group_turn++ % local;
  for (uint32_t i = 0; i < g->member_count; i++) {
    struct sub *m = g->members[i];
    if (m->shard_id != jsh->id || m->client == NULL) continue;
    if (k-- == 0) {
      deliver_to(o, m);
      break;
    }
  }
  return true;
}

/* Sends o to shard dst's handover subscription, which delivers it to its
 * plain subscribers, or with queue to one member of that group. */
static void hand_over(struct js_shard *jsh, uint32_t dst, const struct js_out *o,
                      const char *queue, uint32_t queue_len) {
  size_t body = (size_t)o->inbox_len + o->subject_len + o->reply_len + o->total_len;
  size_t len = sizeof(struct handover) + body + queue_len;
  char *buf = malloc(len);
  if (buf == NULL) return;
  struct handover h = {o->inbox_len, o->subject_len, o->reply_len, o->hdr_len, o->total_len,
                       queue_len};
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, o->buf, body);
  if (queue_len > 0) memcpy(buf + sizeof h + body, queue, queue_len);
  char subject[64];
  handover_subject(dst, subject, sizeof subject);
  route_publish(jsh->shard, NULL, subject, (uint32_t)strlen(subject), NULL, 0, buf, 0,
                (uint32_t)len);
  free(buf);
}

static void on_handover(struct sub *sub, const char *subject, uint32_t subject_len,
                        const char *reply, uint32_t reply_len, const char *data,
                        uint32_t header_len, uint32_t total_len) {
  struct js_shard *jsh = sub->internal_ctx;
  struct handover h;
  if (header_len != 0 || total_len < sizeof h) return;
  memcpy(&h, data, sizeof h);
  size_t len = sizeof h + (size_t)h.inbox_len + h.subject_len + h.reply_len + h.total_len +
               h.queue_len;
  if (len != total_len || h.hdr_len > h.total_len) return;
  struct js_out *o = malloc(sizeof *o + len - sizeof h);
  if (o == NULL) return;
  o->next = NULL;
  o->inbox_len = h.inbox_len;
  o->subject_len = h.subject_len;
  o->reply_len = h.reply_len;
  o->hdr_len = h.hdr_len;
  o->total_len = h.total_len;
  o->queue_len = h.queue_len;
  memcpy(o->buf, data + sizeof h, len - sizeof h);
  /* Delivered from the hook, in arrival order, with local output. */
  if (jsh->handover_tail != NULL)
    jsh->handover_tail->next = o;
  else
    jsh->handover_head = o;
  jsh->handover_tail = o;
}

/* Delivers a handover from another shard to local subscribers only. */
static void deliver_handover(struct js_shard *jsh, const struct js_out *o) {
  const struct sublist_result *r = subcache_match(jsh->shard->cache, o->buf, o->inbox_len);
  if (o->queue_len == 0) {
    deliver_plain_local(jsh->shard, r, o);
    return;
  }
  const char *queue = o->buf + o->inbox_len + o->subject_len + o->reply_len + o->total_len;
  for (uint32_t i = 0; r != NULL && i < r->group_count; i++) {
    const struct sublist_qgroup *g = &r->groups[i];
    if (g->queue_len == o->queue_len && memcmp(g->queue, queue, o->queue_len) == 0) {
      /* TODO: a member that left meanwhile drops the message instead of
       * passing it to a member on another shard. */
      deliver_group_local(jsh, g, o);
      return;
    }
  }
}

/* A queue group whose chosen member is on another shard. */
struct group_pick {
  uint32_t dst;
  uint32_t queue_len;
  char queue[256];
};
#define GROUP_PICKS_MAX 16

/* Delivers an outgoing consumer message to every subscriber of its inbox:
 * local ones here, the others through their shards' handover subjects. */
static void deliver_outgoing(struct js_shard *jsh, const struct js_out *o) {
  const struct sublist_result *r = subcache_match(jsh->shard->cache, o->buf, o->inbox_len);
  uint64_t remote = deliver_plain_local(jsh->shard, r, o);
  struct group_pick picks[GROUP_PICKS_MAX];
  uint32_t pick_count = 0;
  for (uint32_t i = 0; r != NULL && i < r->group_count; i++) {
    const struct sublist_qgroup *g = &r->groups[i];
    if (deliver_group_local(jsh, g, o) || g->member_count == 0) continue;
    if (pick_count == GROUP_PICKS_MAX || g->queue_len > sizeof picks[0].queue) continue;
    struct group_pick *p = &picks[pick_count++];
    p->dst = g->members[jsh->group_turn++ % g->member_count]->shard_id;
    p->queue_len = g->queue_len;
    memcpy(p->queue, g->queue, g->queue_len);
  }
  /* r is invalid from here on: hand_over() routes, which matches again. */
  for (uint32_t dst = 0; remote != 0 && dst < 64; dst++) {
    if (remote & (1ULL << dst)) hand_over(jsh, dst, o, NULL, 0);
  }
  for (uint32_t i = 0; i < pick_count; i++) hand_over(jsh, picks[i].dst, o, picks[i].queue, picks[i].queue_len);
}

static void send_outbox(struct js_shard *jsh) {
  /* Deliveries handed over by other shards go to local subscribers only. */
  struct js_out *o = jsh->handover_head;
  jsh->handover_head = jsh->handover_tail = NULL;
  while (o != NULL) {
    struct js_out *next = o->next;
    deliver_handover(jsh, o);
    free(o);
    o = next;
  }

  o = jsh->out_head;
  jsh->out_head = jsh->out_tail = NULL;
  while (o != NULL) {
    struct js_out *next = o->next;
    if (o->inbox_len > 0) {
      deliver_outgoing(jsh, o);
    } else {
      const char *subject = o->buf;
      const char *reply = subject + o->subject_len;
      const char *data = reply + o->reply_len;
      /* A full ring keeps the message in order in the shard's overflow
       * queue, so the return value needs no handling here. */
      route_publish(jsh->shard, NULL, subject, o->subject_len, reply, o->reply_len, data,
                    o->hdr_len, o->total_len);
    }
    free(o);
    o = next;
  }
}

void js_handle_request(struct js_shard *jsh, const char *subject, uint32_t subject_len,
                       const char *reply, uint32_t reply_len, const char *data, uint32_t data_len) {
  struct js_request *req = malloc(sizeof *req + subject_len + reply_len + data_len + 3);
  if (req == NULL) {
    log_error("JetStream: out of memory, dropping a request on %.*s", (int)subject_len, subject);
    return;
  }
  req->next = NULL;
  req->subject = req->buf;
  memcpy(req->subject, subject, subject_len);
  req->subject[subject_len] = '\0';
  req->reply = req->subject + subject_len + 1;
  if (reply_len > 0) memcpy(req->reply, reply, reply_len);
  req->reply[reply_len] = '\0';
  req->data = req->reply + reply_len + 1;
  if (data_len > 0) memcpy(req->data, data, data_len);
  req->data[data_len] = '\0';
  req->data_len = data_len;
  js_api_handle(jsh, req);
  free(req);
}

/* Handles an API request owned by this shard at once, so it takes effect
 * before any later publish from the same connection, as in nats-server.
 * Its replies are only queued, because this runs inside the router's walk
 * of a match result. */
static void on_api_msg(struct sub *sub, const char *subject, uint32_t subject_len,
                       const char *reply, uint32_t reply_len, const char *data,
                       uint32_t header_len, uint32_t total_len) {
  struct js_shard *jsh = sub->internal_ctx;
  if (!js_api_owned_here(jsh->id, subject, subject_len)) return;
  js_handle_request(jsh, subject, subject_len, reply, reply_len, data + header_len,
                    total_len - header_len);
}

static void run_timers(struct js_shard *jsh) {
  int64_t now_ns = js_now_ns();
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    if (st->cfg.max_age_ns > 0 && store_expire(st->store) > 0) js_stream_refresh_stats(st);
    js_stream_expire_dedupe(st, now_ns);
    js_consumers_timers(st, now_ns);
  }
  if (jsh->closing != NULL) js_stream_reap_closing(jsh);
}

/* Sends the idle heartbeats that are due, checking between timer passes
 * only once the earliest deadline has passed, so a heartbeat shorter than
 * JS_TIMER_INTERVAL_MS goes out on time whenever the shard is awake.
 * The hook also sets the shard's hook_wake_ms, so an idle shard wakes for
 * the earliest heartbeat instead of its next 250 ms tick. */
static void run_heartbeats(struct js_shard *jsh) {
  if (!jsh->heartbeat_check && jsh->next_heartbeat_ns == 0) return;
  int64_t now_ns = js_now_ns();
  if (!jsh->heartbeat_check && now_ns < jsh->next_heartbeat_ns) return;
  jsh->heartbeat_check = false;
  jsh->next_heartbeat_ns = 0;
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    int64_t due_ns = js_consumers_heartbeats(st, now_ns);
    if (due_ns != 0 && (jsh->next_heartbeat_ns == 0 || due_ns < jsh->next_heartbeat_ns))
      jsh->next_heartbeat_ns = due_ns;
  }
}

/* Lowers the shard's wake time to the next fdatasync that a store under
 * the relaxed sync policy (sync_interval) owes, which store_flush starts. */
static void wake_for_sync(struct shard *s, const struct store *store) {
  int64_t due_ns = store_sync_due_ns(store);
  if (due_ns == 0) return;
  int64_t wake_ms = s->now_ms + (due_ns + 999999) / 1000000;
  if (s->hook_wake_ms == 0 || wake_ms < s->hook_wake_ms) s->hook_wake_ms = wake_ms;
}

/* The per-iteration JetStream work of one shard, in the order the store
 * requires: completions, timers, group commit, then queued messages. */
static bool js_hook(struct shard *s, void *ctx) {
  struct js_shard *jsh = ctx;
  jsh->in_hook = true;
  io_poll(jsh->io, false);
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    if (st->backlog_head != NULL) js_stream_drain_backlog(st);
  }
  if (s->now_ms >= jsh->next_timer_ms) {
    run_timers(jsh);
    jsh->next_timer_ms = s->now_ms + JS_TIMER_INTERVAL_MS;
    jsh->heartbeat_check = true;
  }
  run_heartbeats(jsh);
  if (jsh->next_heartbeat_ns != 0) {
    /* Wake for the next heartbeat even when the shard is otherwise idle. */
    int64_t wait_ms = (jsh->next_heartbeat_ns - js_now_ns() + 999999) / 1000000;
    int64_t wake_ms = s->now_ms + (wait_ms > 0 ? wait_ms : 0);
    if (s->hook_wake_ms == 0 || wake_ms < s->hook_wake_ms) s->hook_wake_ms = wake_ms;
  }
  js_consumers_run(jsh);
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    if (store_busy(st->store)) store_flush(st->store);
    wake_for_sync(s, st->store);
  }
  io_flush(jsh->io);
  send_outbox(jsh);
  bool deferred = jsh->push_deferred;
  js_consumers_release_deferred(jsh);
  jsh->in_hook = false;

  /* io_uring completions wake the shard by themselves; the plain backend
   * runs its requests only when polled, so it keeps the shard awake. */
  return deferred || jsh->out_head != NULL || (jsh->io_sync && io_inflight(jsh->io) > 0);
}

/* Holds each shard until every shard has recovered its streams and
 * subscribed to the API, so the first clients, already accepted by the
 * kernel, find every stream as nats-server's clients do. Bounded, so a
 * stuck shard delays the others by JS_START_WAIT_MS at most. */
#define JS_START_WAIT_MS 60000
static atomic_int shards_ready;

static void wait_for_all_shards(struct shard *s) {
  atomic_fetch_add(&shards_ready, 1);
  for (int waited_ms = 0; atomic_load(&shards_ready) < server.shard_count; waited_ms++) {
    if (waited_ms == JS_START_WAIT_MS) {
      log_warn("shard %u: other shards did not finish JetStream recovery within %d ms; "
               "serving clients anyway",
               s->id, JS_START_WAIT_MS);
      return;
    }
    usleep(1000);
  }
}

static void on_shard_start(struct shard *s) {
  if (previous_on_start != NULL) previous_on_start(s);
  struct js_shard *jsh = &js.shards[s->id];
  jsh->shard = s;
  jsh->id = s->id;
  struct io_uring *ring = backend_uring_ring(s);
  if (ring != NULL) {
    int err = 0;
    jsh->io = io_uring_backend_create(ring, &err);
  } else {
    jsh->io = io_sync_create();
    jsh->io_sync = true;
  }
  if (jsh->io == NULL) {
    log_fatal("shard %u: could not create the JetStream storage backend: out of memory", s->id);
    exit(1);
  }
  js_stream_recover_all(jsh);
  jsh->api_sub = route_subscribe_internal(s->id, "$JS.API.>", NULL, on_api_msg, jsh);
  jsh->ack_sub = route_subscribe_internal(s->id, "$JS.ACK.>", NULL, js_consumer_on_ack, jsh);
  char handover[64];
  handover_subject(s->id, handover, sizeof handover);
  jsh->deliver_sub = route_subscribe_internal(s->id, handover, NULL, on_handover, jsh);
  if (jsh->api_sub == NULL || jsh->ack_sub == NULL || jsh->deliver_sub == NULL ||
      shard_add_hook(s, js_hook, jsh) != 0) {
    log_fatal("shard %u: could not set up the JetStream subscriptions and hook", s->id);
    exit(1);
  }
  wait_for_all_shards(s);
}

/* At shutdown: writes the appends still buffered, syncs stores under the
 * relaxed policy and saves changed consumer state, for at most
 * JS_STOP_WAIT_MS. */
#define JS_STOP_WAIT_MS 5000

static void on_shard_stop(struct shard *s) {
  if (previous_on_stop != NULL) previous_on_stop(s);
  struct js_shard *jsh = &js.shards[s->id];
  if (jsh->shard == NULL) return;
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    if (st->store != NULL) store_sync_soon(st->store);
  }
  int64_t deadline_ms = server_now_ms() + JS_STOP_WAIT_MS;
  for (;;) { /* bounded by the deadline */
    io_poll(jsh->io, false);
    js_state_poll(jsh);
    bool busy = false;
    for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
      busy |= js_consumers_save_all(st);
      if (st->store != NULL && store_busy(st->store)) {
        store_flush(st->store);
        busy = true;
      }
    }
    io_flush(jsh->io);
    if (!busy) return;
    if (server_now_ms() > deadline_ms) {
      log_warn("shard %u: JetStream writes still pending after %d ms at shutdown; relaxed "
               "streams may lose their unsynced messages and durable consumers their newest "
               "acks, so check the store's disk if this repeats",
               s->id, JS_STOP_WAIT_MS);
      return;
    }
    rcu_quiescent_state();
    s->backend->poll(s, 1);
  }
}

static void log_limit(const char *label, int64_t bytes) {
  if (bytes < 0)
    log_info("  %-16s unlimited", label);
  else
    log_info("  %-16s %.2f GB", label, (double)bytes / (1024.0 * 1024.0 * 1024.0));
}

int js_init(void) {
  if (!server.opts.jetstream) return 0;
  /* nats-server's default when no store directory is configured. */
  const char *store_dir = server.opts.store_dir != NULL ? server.opts.store_dir : "/tmp/nats";
  size_t len = strlen(store_dir) + 64;
  js.root = malloc(len);
  js.streams_dir = malloc(len + 16);
  js.shards = calloc((size_t)server.shard_count, sizeof *js.shards);
  if (js.root == NULL || js.streams_dir == NULL || js.shards == NULL) {
    log_fatal("out of memory while starting JetStream");
    return -ENOMEM;
  }
  snprintf(js.root, len, "%s/jetstream", store_dir);
  snprintf(js.streams_dir, len + 16, "%s/%s/streams", js.root, JS_ACCOUNT_DIR);
  int rc = js_mkdir_p(js.streams_dir);
  if (rc != 0) {
    log_fatal("could not create the JetStream store directory %s: %s; check that the "
              "store_dir (-sd) is writable",
              js.streams_dir, strerror(-rc));
    return rc;
  }

  log_info("Starting JetStream");
  log_info("---------------- JETSTREAM ----------------");
  log_limit("Max Memory:", server.opts.max_memory_store);
  log_limit("Max Storage:", server.opts.max_file_store);
  log_info("  Store Directory: \"%s\"", js.root);
  if (server.opts.sync_interval_ms > 0)
    log_info("  Sync Interval:   %" PRId64 " ms (publishes are acknowledged before the sync)",
             server.opts.sync_interval_ms);
  else
    log_info("  Sync Interval:   always (publishes are acknowledged after the sync)");
  log_info("-------------------------------------------");
  js.enabled = true;
  previous_on_start = shard_on_start;
  shard_on_start = on_shard_start;
  previous_on_stop = shard_on_stop;
  shard_on_stop = on_shard_stop;
  return 0;
}
