/* SPDX-License-Identifier: Apache-2.0 */
/* Client connections: the server side of the NATS client protocol. Parses
 * commands in place from the receive buffer, answers and routes them, and
 * frames MSG and HMSG for delivery. */
#include "core/client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/assert.h"
#include "core/auth.h"
#include "core/log.h"
#include "core/proto.h"
#include "core/route.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sub-t.h"
#include "core/subject.h"
#include "core/sublist.h"
#include "net/backend.h"
#include "net/monitor.h"

static const char *const close_reason_text[] = {
    [CLOSE_CLIENT] = "Client Closed",
    [CLOSE_PROTOCOL_VIOLATION] = "Protocol Violation",
    [CLOSE_SLOW_CONSUMER_PENDING] = "Slow Consumer (Pending Bytes)",
    [CLOSE_SLOW_CONSUMER_DEADLINE] = "Slow Consumer (Write Deadline)",
    [CLOSE_STALE] = "Stale Connection",
    [CLOSE_MAX_PAYLOAD] = "Maximum Message Payload Exceeded",
    [CLOSE_WRITE_ERROR] = "Write Error",
    [CLOSE_READ_ERROR] = "Read Error",
    [CLOSE_SERVER_SHUTDOWN] = "Server Shutdown",
    [CLOSE_MAX_CONNECTIONS] = "Maximum Connections Exceeded",
    [CLOSE_AUTH_TIMEOUT] = "Authentication Timeout",
    [CLOSE_AUTH_VIOLATION] = "Authentication Failure",
    [CLOSE_PARSE_ERROR] = "Parse Error",
};

const char *client_close_reason_text(enum client_close_reason reason) {
  size_t count = sizeof close_reason_text / sizeof close_reason_text[0];
  if ((size_t)reason >= count || close_reason_text[reason] == NULL) return "Unknown State";
  return close_reason_text[reason];
}

/* How long stalled consumers may hold publishers back before they are left
 * to the max_pending rule; nats-server stalls a producer for at most a
 * second too. */
#define CLIENT_STALL_MAX_MS 1000
/* Input kept for a paused publisher before receiving stops. */
#define CLIENT_PAUSED_INPUT_MAX (256 * 1024)

/* ---- Subscription table, keyed by sid. ---- */

#define SUB_TOMBSTONE ((struct sub *)1)

static uint32_t sid_hash(const char *sid, size_t len) {
  return (uint32_t)XXH3_64bits(sid, len);
}

static struct sub **sub_table_find_slot(struct sub_table *t, const char *sid, size_t len) {
  if (t->cap == 0) return NULL;
  uint32_t mask = t->cap - 1;
  for (uint32_t i = sid_hash(sid, len) & mask, n = 0; n < t->cap; i = (i + 1) & mask, n++) {
    struct sub *s = t->slots[i];
    if (s == NULL) return NULL;
    if (s != SUB_TOMBSTONE && s->sid_len == len && memcmp(s->sid, sid, len) == 0)
      return &t->slots[i];
  }
  return NULL;
}

static int sub_table_grow(struct sub_table *t) {
  uint32_t cap = t->cap ? t->cap * 2 : 8;
  if (t->count * 2 < t->cap) cap = t->cap; /* only tombstones: rehash in place size */
  struct sub **slots = calloc(cap, sizeof *slots);
  if (slots == NULL) return -ENOMEM;
  for (uint32_t i = 0; i < t->cap; i++) {
    struct sub *s = t->slots[i];
    if (s == NULL || s == SUB_TOMBSTONE) continue;
    uint32_t j = sid_hash(s->sid, s->sid_len) & (cap - 1);
    while (slots[j] != NULL) j = (j + 1) & (cap - 1);
    slots[j] = s;
  }
  free(t->slots);
  t->slots = slots;
  t->cap = cap;
  t->tombstones = 0;
  return 0;
}

static int sub_table_insert(struct sub_table *t, struct sub *sub) {
  if ((t->count + t->tombstones + 1) * 4 > t->cap * 3) {
    int rc = sub_table_grow(t);
    if (rc != 0) return rc;
  }
  uint32_t mask = t->cap - 1;
  uint32_t i = sid_hash(sub->sid, sub->sid_len) & mask;
  while (t->slots[i] != NULL && t->slots[i] != SUB_TOMBSTONE) i = (i + 1) & mask;
  if (t->slots[i] == SUB_TOMBSTONE) t->tombstones--;
  t->slots[i] = sub;
  t->count++;
  return 0;
}

static void sub_table_remove(struct sub_table *t, struct sub *sub) {
  struct sub **slot = sub_table_find_slot(t, sub->sid, sub->sid_len);
  ASSERT(slot != NULL && *slot == sub);
  *slot = SUB_TOMBSTONE;
  t->count--;
  t->tombstones++;
}

/* ---- Output. ---- */

static bool client_out_would_exceed(struct client *c, size_t n) {
  size_t pending = buf_pending(&c->out) + buf_pending(&c->wbuf);
  return pending + n > (size_t)server.opts.max_pending;
}

static void mark_slow_consumer(struct client *c) {
  c->shard->stats.slow_consumers++;
  log_debug("%s:%d - cid:%" PRIu64 " - Slow Consumer Detected: MaxPending of %" PRId64
            " Exceeded", c->ip, c->port, c->cid, server.opts.max_pending);
  client_close(c, CLOSE_SLOW_CONSUMER_PENDING, false);
}

/* Returns the length of p's first line: the bytes before a CR or LF. */
static size_t first_line_len(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\r' || p[i] == '\n') return i;
  }
  return n;
}

/* Logs an outgoing protocol line in nats-server's trace form, "->> [PONG]". */
static void trace_out(struct client *c, const char *p, size_t n) {
  size_t line = first_line_len(p, n);
  log_trace("%s:%d - cid:%" PRIu64 " - ->> [%.*s]", c->ip, c->port, c->cid,
            (int)(line < 512 ? line : 512), p);
}

void client_send_raw(struct client *c, const char *p, size_t n) {
  if (c->state != CLIENT_OPEN) return;
  if (log_trace_on) trace_out(c, p, n);
  if (client_out_would_exceed(c, n)) {
    mark_slow_consumer(c);
    return;
  }
  if (buf_append(&c->out, p, n) != 0) {
    client_close(c, CLOSE_SLOW_CONSUMER_PENDING, false);
    return;
  }
  shard_mark_dirty(c->shard, c);
}

void client_send_err(struct client *c, const char *text) {
  char line[512];
  int n = snprintf(line, sizeof line, "-ERR %s\r\n", text);
  client_send_raw(c, line, (size_t)n);
}

static void send_ok(struct client *c) {
  if (c->verbose) client_send_raw(c, "+OK\r\n", 5);
}

static void update_stall(struct client *c);

static int64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Input waits while the publisher is paused or a PONG waits for barriers. */
static inline bool input_blocked(const struct client *c) {
  return c->paused || c->barriers_pending > 0;
}

static char *put_u64(char *p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

void client_deliver(struct client *c, struct sub *sub, const char *subject,
                    uint32_t subject_len, const char *reply, uint32_t reply_len,
                    const char *data, uint32_t header_len, uint32_t total_len) {
  if (c->state != CLIENT_OPEN) return;
  if (c->user != NULL) {
    if (!auth_can_deliver(c->user, subject, subject_len)) return;
    if (c->user->allow_responses && reply_len > 0)
      auth_responses_add(&c->responses, c->user, reply, reply_len, c->shard->now_ms);
  }
  bool with_headers = header_len > 0;
  if (with_headers && !c->headers) {
    /* A client without header support gets the body alone, as nats-server
     * does. */
    data += header_len;
    total_len -= header_len;
    header_len = 0;
    with_headers = false;
  }

  /* TODO: large payloads are copied into the output buffer like small
   * ones; sending them from the shared buffer with writev would save the
   * copy, which only shows above about 64 KiB per message. */
  size_t frame_max = 5 + subject_len + 1 + sub->sid_len + 1 + reply_len + 1 + 44 +
                     total_len + 2;
  if (client_out_would_exceed(c, frame_max)) {
    mark_slow_consumer(c);
    return;
  }
  if (buf_reserve(&c->out, frame_max) != 0) {
    client_close(c, CLOSE_SLOW_CONSUMER_PENDING, false);
    return;
  }

  char *p = c->out.data + c->out.len;
  if (with_headers) {
    memcpy(p, "HMSG ", 5);
  } else {
    memcpy(p, "MSG ", 4);
  }
  p += with_headers ? 5 : 4;
  memcpy(p, subject, subject_len);
  p += subject_len;
  *p++ = ' ';
  memcpy(p, sub->sid, sub->sid_len);
  p += sub->sid_len;
  *p++ = ' ';
  if (reply_len > 0) {
    memcpy(p, reply, reply_len);
    p += reply_len;
    *p++ = ' ';
  }
  if (with_headers) {
    p = put_u64(p, header_len);
    *p++ = ' ';
  }
  p = put_u64(p, total_len);
  *p++ = '\r';
  *p++ = '\n';
  memcpy(p, data, total_len);
  p += total_len;
  *p++ = '\r';
  *p++ = '\n';
  if (log_trace_on) trace_out(c, c->out.data + c->out.len, (size_t)(p - c->out.data - c->out.len));
  c->out.len = (size_t)(p - c->out.data);

  c->msgs_out++;
  c->bytes_out += total_len;
  c->shard->stats.msgs_out++;
  c->shard->stats.bytes_out += total_len;
  shard_mark_dirty(c->shard, c);
  update_stall(c);

  sub->delivered++;
  if (sub->max_msgs > 0 && sub->delivered >= (uint64_t)sub->max_msgs) {
    client_unsubscribe(c, sub);
  }
}

/* A consumer whose output passes half of max_pending holds back the
 * publishers that feed it, as nats-server stalls them, so that a reader
 * that is slower than its publisher but keeps reading is not cut off. */
static void update_stall(struct client *c) {
  struct shard *s = c->shard;
  size_t pending = buf_pending(&c->out) + buf_pending(&c->wbuf);
  size_t half = (size_t)server.opts.max_pending / 2;
  if (pending > half) {
    if (!c->stalled && !c->stall_exempt && c->state == CLIENT_OPEN) {
      c->stalled = true;
      s->stats.stall_events++;
      log_debug("%s:%d - cid:%" PRIu64 " - pending output of %zu bytes holds publishers back",
                c->ip, c->port, c->cid, pending);
      if (s->stalled_count++ == 0) s->stall_deadline_ms = s->now_ms + CLIENT_STALL_MAX_MS;
    }
    if (c->stalled) s->stall_hit = true;
    return;
  }
  c->stall_exempt = false;
  if (c->stalled) {
    c->stalled = false;
    s->stalled_count--;
  }
}

void client_flush(struct client *c) {
  if (c->send_in_flight || c->state == CLIENT_CLOSED) return;
  if (buf_pending(&c->wbuf) == 0) {
    if (buf_pending(&c->out) == 0) {
      if (c->state == CLIENT_CLOSING) client_close(c, c->close_reason, false);
      return;
    }
    struct buf tmp = c->wbuf;
    c->wbuf = c->out;
    c->out = tmp;
    buf_clear(&c->out);
  }
  c->send_in_flight = true;
  c->send_started_ms = c->shard->now_ms;
  c->shard->backend->client_send(c->shard, c);
}

void client_on_sent(struct client *c, size_t n) {
  ASSERT(c->send_in_flight);
  ASSERT(n <= buf_pending(&c->wbuf));
  c->send_in_flight = false;
  c->wbuf.off += n;
  if (buf_pending(&c->wbuf) == 0) buf_clear(&c->wbuf);
  if (c->stalled) update_stall(c);
  if (c->state == CLIENT_CLOSED) return;
  if (buf_pending(&c->wbuf) > 0 || buf_pending(&c->out) > 0 || c->state == CLIENT_CLOSING)
    shard_mark_dirty(c->shard, c);
}

void client_on_send_error(struct client *c, int err) {
  c->send_in_flight = false;
  if (c->state == CLIENT_CLOSED) return;
  log_debug("%s:%d - cid:%" PRIu64 " - Write error: %s", c->ip, c->port, c->cid, strerror(-err));
  client_close(c, CLOSE_WRITE_ERROR, false);
}

/* ---- Lifecycle. ---- */

static void send_info(struct client *c, bool lame_duck) {
  char info[1024];
  int n = snprintf(info, sizeof info,
                   "INFO {\"server_id\":\"%s\",\"server_name\":\"%s\",\"version\":\"%s\","
                   "\"proto\":1,\"go\":\"go1.19.8\",\"host\":\"%s\",\"port\":%d,"
                   "\"headers\":true,%s\"max_payload\":%" PRId64 ",\"client_id\":%" PRIu64
                   ",\"client_ip\":\"%s\",%s\"shoal_version\":\"%s\"} \r\n",
                   server.server_id, server.server_name, SERVER_COMPAT_VERSION,
                   server.opts.host, server.port,
                   auth_required(server_auth_opts()) ? "\"auth_required\":true," : "",
                   server.opts.max_payload, c->cid, c->ip, lame_duck ? "\"ldm\":true," : "",
                   SHOAL_VERSION);
  client_send_raw(c, info, (size_t)n);
}

static void fill_peer(struct client *c) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0) {
    strcpy(c->ip, "unknown");
    return;
  }
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, c->ip, sizeof c->ip);
    c->port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, c->ip, sizeof c->ip);
    c->port = ntohs(a->sin6_port);
  }
}

struct client *client_create(struct shard *s, int fd) {
  struct client *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->shard = s;
  c->fd = fd;
  c->cid = atomic_fetch_add(&server.next_cid, 1);
  /* Until CONNECT arrives, nats-server's defaults apply. */
  c->verbose = true;
  c->pedantic = true;
  c->echo = true;
  c->start_ms = s->now_ms;
  c->last_recv_ms = s->now_ms;
  /* As nats-server 2.9 does, the first PING goes out two seconds after the
   * connection opens plus up to 20% jitter (or at the ping interval when
   * that is shorter), then one every interval. */
  int64_t first_ping_ms = 2000 + (int64_t)(c->cid * 2654435761u % 400);
  if (first_ping_ms > server.opts.ping_interval_ms) first_ping_ms = server.opts.ping_interval_ms;
  c->last_ping_ms = s->now_ms - server.opts.ping_interval_ms + first_ping_ms;
  fill_peer(c);
  send_info(c, false);
  log_debug("%s:%d - cid:%" PRIu64 " - Client connection created on shard %u", c->ip, c->port,
            c->cid, s->id);
  return c;
}

static void free_sub_rcu(struct rcu_head *head) {
  struct sub *sub = caa_container_of(head, struct sub, rcu);
  free(sub->subject);
  free(sub->queue);
  free(sub->sid);
  free(sub);
}

/* Removes sub from the shared index and frees it after a grace period. If
 * the index cannot shrink (out of memory) sub stays in it, detached from
 * its connection, and is leaked rather than freed under readers' feet. */
static void retire_sub(struct sub *sub) {
  if (sublist_remove(server.sublist, sub) != 0) {
    log_error("out of memory removing subscription to %s; it stays detached", sub->subject);
    __atomic_store_n(&sub->client, NULL, __ATOMIC_RELEASE);
    return;
  }
  call_rcu(&sub->rcu, free_sub_rcu);
}

void client_unsubscribe(struct client *c, struct sub *sub) {
  sub_table_remove(&c->subs, sub);
  for (struct sub **pp = &c->sub_list; *pp != NULL; pp = &(*pp)->next_in_client) {
    if (*pp == sub) {
      *pp = sub->next_in_client;
      break;
    }
  }
  retire_sub(sub);
}

static void remove_all_subs(struct client *c) {
  struct sub *sub = c->sub_list;
  while (sub != NULL) {
    struct sub *next = sub->next_in_client;
    retire_sub(sub);
    sub = next;
  }
  c->sub_list = NULL;
  free(c->subs.slots);
  memset(&c->subs, 0, sizeof c->subs);
}

void client_close(struct client *c, enum client_close_reason reason, bool flush) {
  if (c->state == CLIENT_CLOSED) return;
  if (c->stalled) {
    c->stalled = false;
    c->shard->stalled_count--;
  }
  if (c->state == CLIENT_OPEN) {
    c->close_reason = reason;
    monitor_closed_add(c); /* before the subscriptions go */
    remove_all_subs(c);
    atomic_fetch_sub(&server.connections, 1);
    log_debug("%s:%d - cid:%" PRIu64 " - Client connection closed: %s", c->ip, c->port,
              c->cid, close_reason_text[reason]);
  }
  bool pending = buf_pending(&c->out) + buf_pending(&c->wbuf) > 0 || c->send_in_flight;
  if (flush && pending) {
    c->state = CLIENT_CLOSING;
    shard_mark_dirty(c->shard, c);
    return;
  }
  c->state = CLIENT_CLOSED;
  c->shard->backend->client_shutdown(c->shard, c);
}

void client_on_io_done(struct client *c) {
  ASSERT(c->state == CLIENT_CLOSED);
  ASSERT(c->ops_in_flight == 0);
  struct shard *s = c->shard;
  c->next_reap = s->reap;
  s->reap = c;
}

void client_destroy(struct client *c) {
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  free(c->name);
  free(c->lang);
  free(c->version);
  free(c->connect_json);
  auth_responses_free(&c->responses);
  free(c);
}

/* ---- Commands. ---- */

static char *dup_json_string(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) && v->valuestring != NULL ? strdup(v->valuestring) : NULL;
}

static bool json_bool(const cJSON *obj, const char *key, bool dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  return dflt;
}

static void on_connect(struct client *c, const struct proto_cmd *cmd) {
  cJSON *obj = cJSON_ParseWithLength(cmd->arg.ptr, cmd->arg.len);
  if (obj == NULL || !cJSON_IsObject(obj)) {
    /* nats-server closes without a reply on JSON it cannot decode. */
    cJSON_Delete(obj);
    client_close(c, CLOSE_PROTOCOL_VIOLATION, true);
    return;
  }
  c->verbose = json_bool(obj, "verbose", c->verbose);
  c->pedantic = json_bool(obj, "pedantic", c->pedantic);
  c->echo = json_bool(obj, "echo", true);
  c->headers = json_bool(obj, "headers", false);
  c->no_responders = json_bool(obj, "no_responders", false);
  const cJSON *proto = cJSON_GetObjectItemCaseSensitive(obj, "protocol");
  if (cJSON_IsNumber(proto)) c->protocol = proto->valueint;
  if (c->protocol < 0 || c->protocol > 1) {
    cJSON_Delete(obj);
    client_send_err(c, "'invalid client protocol'");
    client_close(c, CLOSE_PROTOCOL_VIOLATION, true);
    return;
  }
  if (c->no_responders && !c->headers) {
    cJSON_Delete(obj);
    client_send_err(c, "'no responders requires headers support'");
    client_close(c, CLOSE_PROTOCOL_VIOLATION, true);
    return;
  }
  free(c->name);
  free(c->lang);
  free(c->version);
  c->name = dup_json_string(obj, "name");
  c->lang = dup_json_string(obj, "lang");
  c->version = dup_json_string(obj, "version");
  free(c->connect_json);
  c->connect_json = NULL;
  if (auth_required(server_auth_opts())) {
    /* Kept to check the credentials again after a configuration reload;
     * never logged. */
    c->connect_json = strndup(cmd->arg.ptr, cmd->arg.len);
  }
  if (auth_required(server_auth_opts()) && auth_check_connect(server_auth_opts(), obj, &c->user) != 0) {
    cJSON_Delete(obj);
    log_error("%s:%d - cid:%" PRIu64 " - authentication error", c->ip, c->port, c->cid);
    client_send_err(c, "'Authorization Violation'");
    client_close(c, CLOSE_AUTH_VIOLATION, true);
    return;
  }
  cJSON_Delete(obj);
  c->connect_received = true;
  send_ok(c);
}

static bool publish_allowed(struct client *c, const char *subject, size_t len) {
  if (auth_can_publish(c->user, subject, len)) return true;
  return c->user->allow_responses &&
         auth_responses_take(&c->responses, subject, len, c->shard->now_ms);
}

static void on_pub(struct client *c, const struct proto_cmd *cmd) {
  c->msgs_in++;
  c->bytes_in += cmd->total_len;
  c->shard->stats.msgs_in++;
  c->shard->stats.bytes_in += cmd->total_len;

  /* nats-server warns about an invalid subject in pedantic mode but still
   * delivers the message, and sends +OK before any MSG it causes. */
  if (c->pedantic && !subject_valid_literal(cmd->subject.ptr, cmd->subject.len))
    client_send_err(c, "'Invalid Publish Subject'");
  if (c->user != NULL && !publish_allowed(c, cmd->subject.ptr, cmd->subject.len)) {
    char text[300];
    snprintf(text, sizeof text, "'Permissions Violation for Publish to \"%.*s\"'",
             (int)(cmd->subject.len < 256 ? cmd->subject.len : 256), cmd->subject.ptr);
    client_send_err(c, text);
    return;
  }
  send_ok(c);
  c->shard->stall_hit = false;
  bool room = route_publish(c->shard, c, cmd->subject.ptr, cmd->subject.len, cmd->reply.ptr,
                            cmd->reply.len, cmd->payload, cmd->header_len, cmd->total_len);
  if (!room || c->shard->stall_hit) client_pause(c);
}

void client_pause(struct client *c) {
  if (c->state != CLIENT_OPEN || c->paused) return;
  c->paused = true;
  c->next_paused = c->shard->paused;
  c->shard->paused = c;
}

static char *dup_slice(struct proto_slice s) {
  char *p = malloc(s.len + 1);
  if (p == NULL) return NULL;
  memcpy(p, s.ptr, s.len);
  p[s.len] = '\0';
  return p;
}

static void on_sub(struct client *c, const struct proto_cmd *cmd) {
  if (!subject_valid(cmd->subject.ptr, cmd->subject.len)) {
    client_send_err(c, "'Invalid Subject'");
    return;
  }
  if (cmd->queue.len > 0 && !subject_queue_valid(cmd->queue.ptr, cmd->queue.len)) {
    client_send_err(c, "'Invalid Queue Name'");
    return;
  }
  if (c->user != NULL && !auth_can_subscribe(c->user, cmd->subject.ptr, cmd->subject.len,
                                              cmd->queue.ptr, cmd->queue.len)) {
    char text[600];
    int n = snprintf(text, sizeof text, "'Permissions Violation for Subscription to \"%.*s\"",
                     (int)(cmd->subject.len < 256 ? cmd->subject.len : 256), cmd->subject.ptr);
    if (cmd->queue.len > 0) {
      n += snprintf(text + n, sizeof text - (size_t)n, " using queue \"%.*s\"",
                    (int)(cmd->queue.len < 256 ? cmd->queue.len : 256), cmd->queue.ptr);
    }
    snprintf(text + n, sizeof text - (size_t)n, "'");
    client_send_err(c, text);
    return;
  }
  if (sub_table_find_slot(&c->subs, cmd->sid.ptr, cmd->sid.len) != NULL) {
    send_ok(c); /* nats-server ignores a SUB that reuses a live sid */
    return;
  }
  if (server.opts.max_subscriptions > 0 &&
      c->subs.count >= (uint64_t)server.opts.max_subscriptions) {
    client_send_err(c, "'maximum subscriptions exceeded'");
    return;
  }

  struct sub *sub = calloc(1, sizeof *sub);
  if (sub == NULL) goto oom;
  sub->subject = dup_slice(cmd->subject);
  sub->subject_len = cmd->subject.len;
  sub->sid = dup_slice(cmd->sid);
  sub->sid_len = cmd->sid.len;
  if (cmd->queue.len > 0) {
    sub->queue = dup_slice(cmd->queue);
    sub->queue_len = cmd->queue.len;
  }
  sub->shard_id = c->shard->id;
  sub->client = c;
  if (sub->subject == NULL || sub->sid == NULL || (cmd->queue.len > 0 && sub->queue == NULL))
    goto oom_sub;
  if (sub_table_insert(&c->subs, sub) != 0) goto oom_sub;
  if (sublist_insert(server.sublist, sub) != 0) {
    sub_table_remove(&c->subs, sub);
    client_send_err(c, "'Invalid Subject'");
    free_sub_rcu(&sub->rcu);
    return;
  }
  sub->next_in_client = c->sub_list;
  c->sub_list = sub;
  send_ok(c);
  return;

oom_sub:
  free_sub_rcu(&sub->rcu);
oom:
  log_error("cid:%" PRIu64 " - out of memory for a subscription, closing", c->cid);
  client_close(c, CLOSE_SLOW_CONSUMER_PENDING, false);
}

static void on_unsub(struct client *c, const struct proto_cmd *cmd) {
  struct sub **slot = sub_table_find_slot(&c->subs, cmd->sid.ptr, cmd->sid.len);
  if (slot != NULL) {
    struct sub *sub = *slot;
    if (cmd->max_msgs > 0 && sub->delivered < (uint64_t)cmd->max_msgs) {
      sub->max_msgs = cmd->max_msgs;
    } else {
      client_unsubscribe(c, sub);
    }
  }
  send_ok(c);
}

/* Answers PING. When the connection published to other shards since its
 * last PING, the PONG waits until each of them has handled a barrier sent
 * behind those messages, so a PONG means what it means with nats-server:
 * every message published before the PING sits in its subscribers'
 * output. Input waits meanwhile, which keeps replies in order. */
static void on_ping(struct client *c) {
  struct shard *s = c->shard;
  bool sent = false;
  for (uint32_t dst = 0; dst < (uint32_t)server.shard_count; dst++) {
    if ((c->remote_shards[dst >> 6] & (1ULL << (dst & 63))) == 0) continue;
    struct ring_entry e = {.type = SHARD_ENTRY_BARRIER, .ptr = c, .a = s->id};
    shard_send(s, dst, &e);
    c->barriers_pending++;
    sent = true;
  }
  memset(c->remote_shards, 0, sizeof c->remote_shards);
  if (!sent && c->barriers_pending == 0) {
    client_send_raw(c, "PONG\r\n", 6);
    return;
  }
  c->pongs_owed++;
}

void client_on_barrier_ack(struct client *c) {
  ASSERT(c->barriers_pending > 0);
  if (--c->barriers_pending > 0) return;
  for (; c->pongs_owed > 0; c->pongs_owed--) client_send_raw(c, "PONG\r\n", 6);
  if (c->state == CLIENT_OPEN && !c->paused) client_resume(c);
}

static void dispatch(struct client *c, const struct proto_cmd *cmd) {
  if (!c->connect_received && cmd->op != PROTO_OP_CONNECT && auth_required(server_auth_opts())) {
    client_send_err(c, "'Authorization Violation'");
    client_close(c, CLOSE_AUTH_VIOLATION, true);
    return;
  }
  switch (cmd->op) {
  case PROTO_OP_PUB:
  case PROTO_OP_HPUB:
    on_pub(c, cmd);
    break;
  case PROTO_OP_SUB:
    on_sub(c, cmd);
    break;
  case PROTO_OP_UNSUB:
    on_unsub(c, cmd);
    break;
  case PROTO_OP_PING:
    on_ping(c);
    break;
  case PROTO_OP_PONG:
    c->pings_out = 0;
    if (c->ping_sent_ns != 0) {
      c->rtt_ns = monotonic_ns() - c->ping_sent_ns;
      c->ping_sent_ns = 0;
    }
    break;
  case PROTO_OP_CONNECT:
    on_connect(c, cmd);
    break;
  case PROTO_OP_INFO: {
    /* Only routes send INFO; nats-server checks a client's and ignores it. */
    cJSON *obj = cJSON_ParseWithLength(cmd->arg.ptr, cmd->arg.len);
    if (obj == NULL) client_close(c, CLOSE_PROTOCOL_VIOLATION, true);
    cJSON_Delete(obj);
    break;
  }
  case PROTO_OP_OK:
    break;
  case PROTO_OP_ERR:
    /* nats-server logs the client's error and closes as a parse error. */
    log_error("%s:%d - cid:%" PRIu64 " - Client Error %.*s", c->ip, c->port, c->cid,
              (int)cmd->arg.len, cmd->arg.ptr);
    client_close(c, CLOSE_PARSE_ERROR, true);
    break;
  default:
    client_send_err(c, "'Unknown Protocol Operation'");
    client_close(c, CLOSE_PROTOCOL_VIOLATION, true);
    break;
  }
}

static void on_parse_error(struct client *c, int err, const char *at, size_t len) {
  const char *text = proto_err_text(err);
  /* The quoted bytes stop at the line end, so the entry stays on one line. */
  size_t shown = first_line_len(at, len < 32 ? len : 32);
  log_debug("%s:%d - cid:%" PRIu64 " - Client parser ERROR: %s near '%.*s'", c->ip, c->port,
            c->cid, text != NULL ? text : "closed without a reply", (int)shown, at);
  if (text != NULL) client_send_err(c, text);
  if (proto_err_closes(err)) {
    client_close(c, err == PROTO_ERR_MAX_PAYLOAD ? CLOSE_MAX_PAYLOAD : CLOSE_PROTOCOL_VIOLATION,
                 true);
  }
}

/* Logs the command's control line in nats-server's trace form,
 * "<<- [PUB foo 5]". */
static void trace_cmd(struct client *c, const struct proto_cmd *cmd, const char *p, size_t len) {
  size_t n = first_line_len(p, len);
  if (cmd->op == PROTO_OP_CONNECT) {
    /* Passwords and tokens never reach the log, as with nats-server. */
    cJSON *obj = cJSON_ParseWithLength(cmd->arg.ptr, cmd->arg.len);
    static const char *const secrets[] = {"pass", "auth_token", "sig", "jwt"};
    for (size_t i = 0; obj != NULL && i < sizeof secrets / sizeof secrets[0]; i++) {
      if (cJSON_GetObjectItemCaseSensitive(obj, secrets[i]) != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(obj, secrets[i], cJSON_CreateString("[REDACTED]"));
    }
    char *text = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;
    log_trace("%s:%d - cid:%" PRIu64 " - <<- [CONNECT %s]", c->ip, c->port, c->cid,
              text != NULL ? text : "(invalid JSON)");
    free(text);
    cJSON_Delete(obj);
    return;
  }
  log_trace("%s:%d - cid:%" PRIu64 " - <<- [%.*s]", c->ip, c->port, c->cid,
            (int)(n < 512 ? n : 512), p);
}

/* Parses and runs every complete command in p[0, len). Returns the bytes
 * consumed; stops early when the connection closes or pauses. */
static size_t process(struct client *c, const char *p, size_t len) {
  struct proto_limits lim = {
      .max_control_line = (uint32_t)server.opts.max_control_line,
      .max_payload = (uint32_t)server.opts.max_payload,
      .no_headers = !c->headers,
  };
  size_t off = 0;
  while (off < len && c->state == CLIENT_OPEN && !input_blocked(c)) {
    lim.no_headers = !c->headers; /* a CONNECT earlier in this buffer may change it */
    struct proto_cmd cmd;
    int rc = proto_parse(p + off, len - off, PROTO_SIDE_SERVER, &lim, &cmd);
    if (rc == PROTO_NEED_MORE) break;
    if (rc < 0) {
      on_parse_error(c, rc, p + off, len - off);
      return len;
    }
    if (log_trace_on) trace_cmd(c, &cmd, p + off, (size_t)rc);
    dispatch(c, &cmd);
    off += (size_t)rc;
  }
  return off;
}

/* Parses data in place and keeps an incomplete tail in c->in. */
static void process_direct(struct client *c, const char *data, size_t len) {
  size_t used = process(c, data, len);
  if (used < len && c->state == CLIENT_OPEN && buf_append(&c->in, data + used, len - used) != 0)
    client_close(c, CLOSE_READ_ERROR, false);
}

/* Bytes of new data tried first to complete a command split across
 * receives; most control lines and small messages fit. */
#define CLIENT_COMPLETE_STEP 4096

void client_on_recv(struct client *c, const char *data, size_t len) {
  if (c->state != CLIENT_OPEN) return;
  c->last_recv_ms = c->shard->now_ms;

  if (buf_pending(&c->in) == 0 && !input_blocked(c)) {
    process_direct(c, data, len);
    return;
  }

  /* A command is split across receives. Copy only enough new bytes to
   * complete it, then go back to parsing in place, so a stream of
   * messages that straddle buffer boundaries is not copied whole. */
  if (!input_blocked(c) && len > CLIENT_COMPLETE_STEP) {
    size_t partial = buf_pending(&c->in);
    if (buf_append(&c->in, data, CLIENT_COMPLETE_STEP) != 0) {
      client_close(c, CLOSE_READ_ERROR, false);
      return;
    }
    size_t used = process(c, c->in.data + c->in.off, buf_pending(&c->in));
    c->in.off += used;
    if (used >= partial && c->state == CLIENT_OPEN && !input_blocked(c)) {
      /* What is left in c->in came from data: parse it from there. */
      size_t from = CLIENT_COMPLETE_STEP - buf_pending(&c->in);
      buf_clear(&c->in);
      process_direct(c, data + from, len - from);
      return;
    }
    data += CLIENT_COMPLETE_STEP;
    len -= CLIENT_COMPLETE_STEP;
    if (c->state != CLIENT_OPEN) return;
  }

  if (buf_append(&c->in, data, len) != 0) {
    client_close(c, CLOSE_READ_ERROR, false);
    return;
  }
  if (input_blocked(c)) {
    if (!c->recv_paused && buf_pending(&c->in) > CLIENT_PAUSED_INPUT_MAX) {
      c->recv_paused = true;
      c->shard->backend->client_pause_recv(c->shard, c);
    }
    return;
  }
  size_t used = process(c, c->in.data + c->in.off, buf_pending(&c->in));
  c->in.off += used;
  if (buf_pending(&c->in) == 0) buf_clear(&c->in);
}

void client_resume(struct client *c) {
  c->paused = false;
  if (input_blocked(c)) return;
  if (c->recv_paused && c->state == CLIENT_OPEN) {
    c->recv_paused = false;
    c->shard->backend->client_resume_recv(c->shard, c);
  }
  if (c->state != CLIENT_OPEN || buf_pending(&c->in) == 0) return;
  size_t used = process(c, c->in.data + c->in.off, buf_pending(&c->in));
  c->in.off += used;
  if (buf_pending(&c->in) == 0) buf_clear(&c->in);
}

void client_on_recv_end(struct client *c, int err) {
  if (c->state == CLIENT_CLOSED) return;
  if (err != 0) {
    log_debug("%s:%d - cid:%" PRIu64 " - Read error: %s", c->ip, c->port, c->cid,
              strerror(-err));
  }
  client_close(c, err == 0 ? CLOSE_CLIENT : CLOSE_READ_ERROR, false);
}

void client_tick(struct client *c, int64_t now_ms) {
  if (c->state != CLIENT_OPEN) return;

  if (!c->connect_received && auth_required(server_auth_opts()) &&
      now_ms - c->start_ms > server.opts.auth_timeout_ms) {
    client_send_err(c, "'Authentication Timeout'");
    client_close(c, CLOSE_AUTH_TIMEOUT, true);
    return;
  }

  if (c->send_in_flight && now_ms - c->send_started_ms > server.opts.write_deadline_ms) {
    c->shard->stats.slow_consumers++;
    log_debug("%s:%d - cid:%" PRIu64 " - Slow Consumer Detected: WriteDeadline of %" PRId64
              "ms Exceeded", c->ip, c->port, c->cid, server.opts.write_deadline_ms);
    client_close(c, CLOSE_SLOW_CONSUMER_DEADLINE, false);
    return;
  }

  if (now_ms - c->last_ping_ms < server.opts.ping_interval_ms) return;
  /* Data from a client since the last PING counts as its PONG. */
  if (c->last_recv_ms > c->last_ping_ms) c->pings_out = 0;
  c->last_ping_ms = now_ms;
  if (c->pings_out + 1 > (uint32_t)server.opts.ping_max) {
    client_send_err(c, "'Stale Connection'");
    client_close(c, CLOSE_STALE, true);
    return;
  }
  c->pings_out++;
  c->ping_sent_ns = monotonic_ns();
  client_send_raw(c, "PING\r\n", 6);
}

void client_enter_lame_duck(struct client *c) {
  if (c->state == CLIENT_OPEN) send_info(c, true);
}

void client_recheck_auth(struct client *c) {
  if (c->state != CLIENT_OPEN || !c->connect_received) return;
  const struct opts *o = server_auth_opts();
  if (!auth_required(o)) {
    c->user = NULL;
    return;
  }
  cJSON *obj = c->connect_json ? cJSON_Parse(c->connect_json) : NULL;
  const struct opts_user *user = NULL;
  int rc = obj != NULL ? auth_check_connect(o, obj, &user) : -EACCES;
  cJSON_Delete(obj);
  if (rc != 0) {
    log_debug("%s:%d - cid:%" PRIu64 " - credentials no longer valid after reload", c->ip,
              c->port, c->cid);
    client_send_err(c, "'Authorization Violation'");
    client_close(c, CLOSE_AUTH_VIOLATION, true);
    return;
  }
  c->user = user;

  /* Subscriptions the new permissions no longer allow are removed, with
   * the error nats-server sends for them. */
  struct sub *sub = c->sub_list;
  while (sub != NULL) {
    struct sub *next = sub->next_in_client;
    if (!auth_can_subscribe(user, sub->subject, sub->subject_len, sub->queue, sub->queue_len)) {
      char text[600];
      snprintf(text, sizeof text, "'Permissions Violation for Subscription to \"%.256s\" (sid \"%.64s\")'",
               sub->subject, sub->sid);
      client_send_err(c, text);
      client_unsubscribe(c, sub);
    }
    sub = next;
  }
}
