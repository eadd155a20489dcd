/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream streams on their owning shard: create, update, delete and
 * recovery, the capture of published messages into the store, the publish
 * acknowledgement sent once the store reports the message durable, and
 * duplicate detection with Nats-Msg-Id.
 *
 * On disk, a stream is <store_dir>/jetstream/$G/streams/<name>/ holding
 * meta.json (the configuration and creation time, replaced atomically) and
 * msgs/ (the store's journal). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/js_int.h"
#include "core/log.h"
#include "core/route.h"
#include "core/server.h"
#include "core/sub-t.h"
#include "core/subject.h"

#define META_FILE "meta.json"
#define DEDUPE_INITIAL_BUCKETS 256

/* The state an append carries to its durable callback. */
struct pending_ack {
  struct js_stream *st;
  char reply[];              /* "" when the publisher did not ask for an ack */
};

/* The JetStream headers of one published message, pointing into it. */
struct pub_headers {
  const char *msg_id;
  size_t msg_id_len;
  const char *expected_stream;
  size_t expected_stream_len;
  const char *expected_last_seq;
  size_t expected_last_seq_len;
  const char *expected_last_subject_seq;
  size_t expected_last_subject_seq_len;
  const char *expected_last_msg_id;
  size_t expected_last_msg_id_len;
  const char *rollup;
  size_t rollup_len;
};

struct js_stream *js_stream_find(struct js_shard *jsh, const char *name) {
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    if (strcmp(st->cfg.name, name) == 0) return st;
  }
  return NULL;
}

void js_stream_refresh_stats(struct js_stream *st) {
  struct store_state state;
  store_state(st->store, &state);
  js_stats_publish(st->reg, &state);
}

/* ---- Duplicate detection ---- */

static uint32_t dedupe_bucket(const struct js_stream *st, const char *id, size_t len) {
  return (uint32_t)(XXH3_64bits(id, len) & (st->dedupe_bucket_count - 1));
}

static struct js_dedupe *dedupe_find(struct js_stream *st, const char *id, size_t len) {
  if (st->dedupe_buckets == NULL) return NULL;
  for (struct js_dedupe *d = st->dedupe_buckets[dedupe_bucket(st, id, len)]; d != NULL;
       d = d->next_in_bucket) {
    if (strlen(d->id) == len && memcmp(d->id, id, len) == 0) return d;
  }
  return NULL;
}

static void dedupe_grow(struct js_stream *st) {
  uint32_t count = st->dedupe_bucket_count == 0 ? DEDUPE_INITIAL_BUCKETS
                                                : st->dedupe_bucket_count * 2;
  struct js_dedupe **buckets = calloc(count, sizeof *buckets);
  if (buckets == NULL) return; /* keep the smaller table: lookups stay correct */
  free(st->dedupe_buckets);
  st->dedupe_buckets = buckets;
  st->dedupe_bucket_count = count;
  for (struct js_dedupe *d = st->dedupe_oldest; d != NULL; d = d->next_in_order) {
    uint32_t b = dedupe_bucket(st, d->id, strlen(d->id));
    d->next_in_bucket = buckets[b];
    buckets[b] = d;
  }
}

static void dedupe_add(struct js_stream *st, const char *id, size_t len, uint64_t seq,
                       int64_t ts_ns) {
  if (st->dedupe_count >= st->dedupe_bucket_count) dedupe_grow(st);
  if (st->dedupe_buckets == NULL) return;
  struct js_dedupe *d = calloc(1, sizeof *d);
  if (d == NULL || (d->id = strndup(id, len)) == NULL) {
    free(d);
    return;
  }
  d->seq = seq;
  d->ts_ns = ts_ns;
  uint32_t b = dedupe_bucket(st, id, len);
  d->next_in_bucket = st->dedupe_buckets[b];
  st->dedupe_buckets[b] = d;
  if (st->dedupe_newest != NULL)
    st->dedupe_newest->next_in_order = d;
  else
    st->dedupe_oldest = d;
  st->dedupe_newest = d;
  st->dedupe_count++;
}

static void dedupe_remove_oldest(struct js_stream *st) {
  struct js_dedupe *d = st->dedupe_oldest;
  uint32_t b = dedupe_bucket(st, d->id, strlen(d->id));
  for (struct js_dedupe **p = &st->dedupe_buckets[b]; *p != NULL; p = &(*p)->next_in_bucket) {
    if (*p == d) {
      *p = d->next_in_bucket;
      break;
    }
  }
  st->dedupe_oldest = d->next_in_order;
  if (st->dedupe_oldest == NULL) st->dedupe_newest = NULL;
  st->dedupe_count--;
  free(d->id);
  free(d);
}

void js_stream_expire_dedupe(struct js_stream *st, int64_t now_ns) {
  while (st->dedupe_oldest != NULL &&
         now_ns - st->dedupe_oldest->ts_ns > st->cfg.duplicate_window_ns) {
    dedupe_remove_oldest(st);
  }
}

static void dedupe_free_all(struct js_stream *st) {
  while (st->dedupe_oldest != NULL) dedupe_remove_oldest(st);
  free(st->dedupe_buckets);
  st->dedupe_buckets = NULL;
  st->dedupe_bucket_count = 0;
}

/* ---- Publish path ---- */

/* Finds key's value in a NATS header block (case-sensitive, as nats-server
 * 2.9 looks headers up). */
static const char *header_value(const char *hdr, size_t hdr_len, const char *key, size_t *len) {
  size_t key_len = strlen(key);
  const char *end = hdr + hdr_len;
  const char *line = memchr(hdr, '\n', hdr_len); /* skip the NATS/1.0 status line */
  while (line != NULL && line < end) {
    line++;
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (eol == NULL) eol = end;
    if ((size_t)(eol - line) > key_len && memcmp(line, key, key_len) == 0 && line[key_len] == ':') {
      const char *v = line + key_len + 1;
      const char *v_end = eol;
      while (v < v_end && (*v == ' ' || *v == '\t')) v++;
      while (v_end > v && (v_end[-1] == '\r' || v_end[-1] == ' ' || v_end[-1] == '\t')) v_end--;
      *len = (size_t)(v_end - v);
      return v;
    }
    line = eol;
  }
  *len = 0;
  return NULL;
}

static void parse_pub_headers(const char *hdr, size_t len, struct pub_headers *h) {
  memset(h, 0, sizeof *h);
  if (len == 0) return;
  h->msg_id = header_value(hdr, len, "Nats-Msg-Id", &h->msg_id_len);
  h->expected_stream = header_value(hdr, len, "Nats-Expected-Stream", &h->expected_stream_len);
  h->expected_last_seq =
      header_value(hdr, len, "Nats-Expected-Last-Sequence", &h->expected_last_seq_len);
  h->expected_last_subject_seq = header_value(hdr, len, "Nats-Expected-Last-Subject-Sequence",
                                              &h->expected_last_subject_seq_len);
  h->expected_last_msg_id =
      header_value(hdr, len, "Nats-Expected-Last-Msg-Id", &h->expected_last_msg_id_len);
  h->rollup = header_value(hdr, len, "Nats-Rollup", &h->rollup_len);
}

static uint64_t parse_u64(const char *s, size_t len) {
  uint64_t v = 0;
  for (size_t i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (uint64_t)(s[i] - '0');
  return v;
}

static void send_pub_error(struct js_stream *st, const char *reply, const struct js_err *err) {
  if (reply == NULL || reply[0] == '\0') return;
  char text[512];
  int n = snprintf(text, sizeof text,
                   "{\"error\":{\"code\":%d,\"err_code\":%d,\"description\":\"%s\"},"
                   "\"stream\":\"%s\",\"seq\":0}",
                   err->code, err->err_code, err->description, st->cfg.name);
  if (n > 0 && (size_t)n < sizeof text) js_send(st->owner, reply, NULL, NULL, 0, text, (uint32_t)n);
}

static void send_pub_ack(struct js_stream *st, const char *reply, uint64_t seq, bool duplicate) {
  char text[JS_NAME_MAX + 96];
  /* The space after the comma is nats-server 2.9's exact form. */
  int n = snprintf(text, sizeof text, "{\"stream\":\"%s\", \"seq\":%" PRIu64 "%s}", st->cfg.name,
                   seq, duplicate ? ",\"duplicate\": true" : "");
  js_send(st->owner, reply, NULL, NULL, 0, text, (uint32_t)n);
}

static void on_durable(void *ctx, uint64_t seq, int res) {
  struct pending_ack *pa = ctx;
  struct js_stream *st = pa->st;
  st->pending_acks--;
  if (!st->closing) {
    js_stream_refresh_stats(st);
    if (res == 0 && pa->reply[0] != '\0') {
      send_pub_ack(st, pa->reply, seq, false);
    } else if (res != 0) {
      struct js_err err;
      js_err_set(&err, 503, 10077, "%s", strerror(-res));
      send_pub_error(st, pa->reply, &err);
      log_error("stream %s: storing message %" PRIu64 " failed: %s", st->cfg.name, seq,
                strerror(-res));
    }
    if (res == 0 && st->cfg.retention == JS_RETENTION_INTEREST) js_consumers_retire_unwanted(st, seq);
    if (res == 0) js_consumers_on_stream_msg(st);
  }
  free(pa);
}

/* Checks the expected-state headers; returns false after setting err. */
static bool check_expectations(struct js_stream *st, const char *subject, uint32_t subject_len,
                               const struct pub_headers *h, struct js_err *err) {
  if (h->expected_stream != NULL &&
      (h->expected_stream_len != strlen(st->cfg.name) ||
       memcmp(h->expected_stream, st->cfg.name, h->expected_stream_len) != 0)) {
    js_err_set(err, 400, 10060, "expected stream does not match");
    return false;
  }
  struct store_state state;
  store_state(st->store, &state);
  if (h->expected_last_seq != NULL &&
      parse_u64(h->expected_last_seq, h->expected_last_seq_len) != state.last_seq) {
    js_err_set(err, 400, 10071, "wrong last sequence: %" PRIu64, state.last_seq);
    return false;
  }
  if (h->expected_last_subject_seq != NULL) {
    struct store_msg m = {0};
    uint64_t last = 0;
    char filter[1024];
    if (subject_len < sizeof filter) {
      memcpy(filter, subject, subject_len);
      filter[subject_len] = '\0';
      if (store_read_last(st->store, filter, subject_len, &m) == 0) last = m.seq;
    }
    store_msg_free(&m);
    if (parse_u64(h->expected_last_subject_seq, h->expected_last_subject_seq_len) != last) {
      js_err_set(err, 400, 10071, "wrong last sequence: %" PRIu64, last);
      return false;
    }
  }
  if (h->expected_last_msg_id != NULL) {
    const char *last = st->last_msg_id != NULL ? st->last_msg_id : "";
    if (strlen(last) != h->expected_last_msg_id_len ||
        memcmp(last, h->expected_last_msg_id, h->expected_last_msg_id_len) != 0) {
      js_err_set(err, 400, 10070, "wrong last msg ID: %s", last);
      return false;
    }
  }
  return true;
}

/* Applies a Nats-Rollup header after its message got sequence seq. */
static bool check_rollup(struct js_stream *st, const struct pub_headers *h, struct js_err *err) {
  if (h->rollup == NULL) return true;
  if (!st->cfg.allow_rollup_hdrs) {
    js_err_set(err, 500, 10111, "rollup not permitted");
    return false;
  }
  bool sub = h->rollup_len == 3 && memcmp(h->rollup, "sub", 3) == 0;
  bool all = h->rollup_len == 3 && memcmp(h->rollup, "all", 3) == 0;
  if (!sub && !all) {
    js_err_set(err, 500, 10111, "rollup value invalid: %.*s", (int)h->rollup_len, h->rollup);
    return false;
  }
  return true;
}

static void apply_rollup(struct js_stream *st, const struct pub_headers *h, const char *subject,
                         uint32_t subject_len, uint64_t seq) {
  bool sub = h->rollup_len == 3 && memcmp(h->rollup, "sub", 3) == 0;
  struct store_purge req = {.filter = sub ? subject : NULL,
                            .filter_len = sub ? subject_len : 0,
                            .up_to_seq = seq};
  store_purge(st->store, &req, NULL);
}

/* True when a discard-new rejection of a message on subject came from
 * max_msgs. The store checks it before max_bytes, as nats-server 2.9.10
 * does, and skips it for a message that replaces its subject's oldest. */
static bool max_msgs_rejected(const struct js_stream *st, const char *subject,
                              uint32_t subject_len) {
  if (st->cfg.max_msgs <= 0) return false;
  struct store_state state;
  store_state(st->store, &state);
  if (state.msgs < (uint64_t)st->cfg.max_msgs) return false;
  int64_t per_subject = st->cfg.max_msgs_per_subject;
  return per_subject <= 0 ||
         store_subject_msgs(st->store, subject, subject_len) < (uint64_t)per_subject;
}

static void store_error(int rc, struct js_err *err, const struct js_stream *st,
                        const char *subject, uint32_t subject_len) {
  switch (rc) {
  case -EMSGSIZE:
    js_err_set(err, 400, 10054, "message size exceeds maximum allowed");
    break;
  case -EDQUOT:
    js_err_set(err, 503, 10077, "%s",
               max_msgs_rejected(st, subject, subject_len) ? "maximum messages exceeded"
                                                           : "maximum bytes exceeded");
    break;
  default:
    js_err_set(err, 503, 10077, "%s", strerror(-rc));
  }
}

/* True when the server's max_file_store or max_memory_store for the
 * stream's storage is exceeded. As in nats-server 2.9.10, the message that
 * crosses the limit is still stored and the next one is rejected, and
 * usage equal to the limit still takes messages.
 * NOTE: usage counts durable messages only, so the appends of one write
 * group in flight can all pass the check. */
static bool account_full(const struct js_stream *st) {
  int64_t max = st->cfg.storage == STORE_MEMORY ? server.opts.max_memory_store
                                                : server.opts.max_file_store;
  return max >= 0 && atomic_load_explicit(&js.used_bytes[st->cfg.storage], memory_order_relaxed) > max;
}

/* A published message that waits while the store's write buffers are
 * full, in arrival order. */
struct js_backlog {
  struct js_backlog *next;
  uint32_t subject_len;
  uint32_t header_len;
  uint32_t total_len;
  char *reply;               /* NUL-terminated, "" for none */
  char buf[];                /* subject, NUL, reply, NUL, headers and payload */
};

/* Bytes of messages one stream holds back before it rejects publishes. */
#define JS_BACKLOG_BYTES_MAX (64u << 20)

/* Stores one published message. reply is NUL-terminated ("" for none).
 * Returns -EAGAIN, having done nothing, when the store's write buffers
 * are full. Every other outcome is final, and its reply is sent. */
/* The sequence of the newest stored message on subject, 0 if none. */
static uint64_t last_seq_of_subject(struct js_stream *st, const char *subject, uint32_t subject_len) {
  char filter[1024];
  if (subject_len >= sizeof filter) return 0;
  memcpy(filter, subject, subject_len);
  filter[subject_len] = '\0';
  struct store_msg m = {0};
  uint64_t seq = store_read_last(st->store, filter, subject_len, &m) == 0 ? m.seq : 0;
  store_msg_free(&m);
  return seq;
}

/* Publishes a stored message again on the stream's republish subject,
 * with the headers nats-server 2.9 adds: Nats-Stream, Nats-Subject,
 * Nats-Sequence, Nats-Last-Sequence (the subject's previous sequence) and,
 * for headers_only, Nats-Msg-Size in place of the payload. */
static void send_republish(struct js_stream *st, const char *subject, uint32_t subject_len,
                           const char *data, uint32_t header_len, uint32_t total_len, uint64_t seq,
                           uint64_t last_subject_seq) {
  char literal[1024], dest[1024];
  if (subject_len >= sizeof literal) return;
  memcpy(literal, subject, subject_len);
  literal[subject_len] = '\0';
  if (js_republish_subject(st->cfg.republish_src, st->cfg.republish_dest, literal, dest,
                           sizeof dest) != 0)
    return;
  uint32_t data_len = total_len - header_len;
  /* Keep the publisher's headers without their closing blank line. */
  const char *prefix = header_len >= 2 ? data : "NATS/1.0\r\n";
  size_t prefix_len = header_len >= 2 ? header_len - 2 : strlen(prefix);
  size_t cap = prefix_len + subject_len + strlen(st->cfg.name) + 192;
  char *hdr = malloc(cap);
  if (hdr == NULL) return;
  memcpy(hdr, prefix, prefix_len);
  int n = snprintf(hdr + prefix_len, cap - prefix_len,
                   "Nats-Stream: %s\r\nNats-Subject: %s\r\nNats-Sequence: %" PRIu64
                   "\r\nNats-Last-Sequence: %" PRIu64 "\r\n",
                   st->cfg.name, literal, seq, last_subject_seq);
  size_t len = prefix_len + (size_t)n;
  if (st->cfg.republish_headers_only)
    len += (size_t)snprintf(hdr + len, cap - len, "Nats-Msg-Size: %u\r\n", data_len);
  len += (size_t)snprintf(hdr + len, cap - len, "\r\n");
  bool headers_only = st->cfg.republish_headers_only;
  js_send(st->owner, dest, NULL, hdr, (uint32_t)len, headers_only ? NULL : data + header_len,
          headers_only ? 0 : data_len);
  free(hdr);
}

static int capture_one(struct js_stream *st, const char *subject, uint32_t subject_len,
                       const char *reply, const char *data, uint32_t header_len,
                       uint32_t total_len) {
  struct pub_headers h;
  parse_pub_headers(data, header_len, &h);
  struct js_err err = {0};
  if (st->cfg.sealed) {
    js_err_set(&err, 400, 10109, "invalid operation on sealed stream");
    send_pub_error(st, reply, &err);
    return 0;
  }
  if (h.msg_id != NULL && h.msg_id_len > 0) {
    struct js_dedupe *d = dedupe_find(st, h.msg_id, h.msg_id_len);
    if (d != NULL) {
      if (reply[0] != '\0') send_pub_ack(st, reply, d->seq, true);
      return 0;
    }
  }
  if (account_full(st)) {
    js_err_set(&err, 503, 10023, "insufficient resources");
    send_pub_error(st, reply, &err);
    return 0;
  }
  if (!check_expectations(st, subject, subject_len, &h, &err) || !check_rollup(st, &h, &err)) {
    send_pub_error(st, reply, &err);
    return 0;
  }

  bool republish = st->cfg.republish_src != NULL &&
                   subject_matches(st->cfg.republish_src, strlen(st->cfg.republish_src), subject,
                                   subject_len);
  uint64_t last_subject_seq = republish ? last_seq_of_subject(st, subject, subject_len) : 0;

  size_t reply_len = strlen(reply);
  struct pending_ack *pa = malloc(sizeof *pa + reply_len + 1);
  if (pa == NULL) return 0;
  pa->st = st;
  memcpy(pa->reply, reply, reply_len + 1);
  uint64_t seq = 0;
  int rc = store_append(st->store, subject, subject_len, header_len > 0 ? data : NULL, header_len,
                        data + header_len, total_len - header_len, 0, on_durable, pa, &seq);
  if (rc != 0) {
    free(pa);
    if (rc == -EAGAIN) return rc;
    store_error(rc, &err, st, subject, subject_len);
    send_pub_error(st, reply, &err);
    return 0;
  }
  st->pending_acks++;
  if (republish) {
    send_republish(st, subject, subject_len, data, header_len, total_len, seq, last_subject_seq);
  }
  if (h.rollup != NULL) apply_rollup(st, &h, subject, subject_len, seq);
  if (h.msg_id != NULL && h.msg_id_len > 0) {
    dedupe_add(st, h.msg_id, h.msg_id_len, seq, js_now_ns());
    char *id = strndup(h.msg_id, h.msg_id_len);
    if (id != NULL) {
      free(st->last_msg_id);
      st->last_msg_id = id;
    }
  }
  return 0;
}

/* Holds a message back until the store has room. Returns false when the
 * backlog is full or memory ran out. */
static bool backlog_push(struct js_stream *st, const char *subject, uint32_t subject_len,
                         const char *reply, uint32_t reply_len, const char *data,
                         uint32_t header_len, uint32_t total_len) {
  size_t size = (size_t)subject_len + reply_len + total_len + 2;
  if (st->backlog_bytes + size > JS_BACKLOG_BYTES_MAX) return false;
  struct js_backlog *b = malloc(sizeof *b + size);
  if (b == NULL) return false;
  b->next = NULL;
  b->subject_len = subject_len;
  b->header_len = header_len;
  b->total_len = total_len;
  memcpy(b->buf, subject, subject_len);
  b->buf[subject_len] = '\0';
  b->reply = b->buf + subject_len + 1;
  if (reply_len > 0) memcpy(b->reply, reply, reply_len);
  b->reply[reply_len] = '\0';
  if (total_len > 0) memcpy(b->reply + reply_len + 1, data, total_len);
  if (st->backlog_tail != NULL)
    st->backlog_tail->next = b;
  else
    st->backlog_head = b;
  st->backlog_tail = b;
  st->backlog_bytes += size;
  return true;
}

void js_stream_drain_backlog(struct js_stream *st) {
  while (st->backlog_head != NULL) {
    struct js_backlog *b = st->backlog_head;
    const char *data = b->reply + strlen(b->reply) + 1;
    if (capture_one(st, b->buf, b->subject_len, b->reply, data, b->header_len, b->total_len) ==
        -EAGAIN)
      return;
    st->backlog_head = b->next;
    if (st->backlog_head == NULL) st->backlog_tail = NULL;
    st->backlog_bytes -= (size_t)b->subject_len + strlen(b->reply) + b->total_len + 2;
    free(b);
  }
}

static void backlog_free(struct js_stream *st) {
  while (st->backlog_head != NULL) {
    struct js_backlog *b = st->backlog_head;
    st->backlog_head = b->next;
    free(b);
  }
  st->backlog_tail = NULL;
  st->backlog_bytes = 0;
}

/* The capture subscription's callback: stores one published message, or
 * queues it in order while the store's write buffers are full. */
static void on_capture(struct sub *sub, const char *subject, uint32_t subject_len,
                       const char *reply, uint32_t reply_len, const char *data,
                       uint32_t header_len, uint32_t total_len) {
  struct js_stream *st = sub->internal_ctx;
  if (st == NULL || st->closing) return;
  if (st->backlog_head == NULL) {
    char stack_reply[256];
    char *reply_copy = reply_len < sizeof stack_reply ? stack_reply : malloc(reply_len + 1);
    if (reply_copy == NULL) return;
    if (reply_len > 0) memcpy(reply_copy, reply, reply_len);
    reply_copy[reply_len] = '\0';
    int rc = capture_one(st, subject, subject_len, reply_copy, data, header_len, total_len);
    if (reply_copy != stack_reply) free(reply_copy);
    if (rc != -EAGAIN) return;
  }
  if (!backlog_push(st, subject, subject_len, reply, reply_len, data, header_len, total_len)) {
    char reply_copy[1024];
    if (reply_len >= sizeof reply_copy) return;
    if (reply_len > 0) memcpy(reply_copy, reply, reply_len);
    reply_copy[reply_len] = '\0';
    struct js_err err;
    js_err_set(&err, 503, 10023, "insufficient resources");
    send_pub_error(st, reply_copy, &err);
  }
}

/* ---- Lifecycle ---- */

static void store_limits_of(const struct js_stream_config *cfg, struct store_limits *l) {
  memset(l, 0, sizeof *l);
  l->max_msgs = cfg->max_msgs > 0 ? cfg->max_msgs : 0;
  l->max_bytes = cfg->max_bytes > 0 ? cfg->max_bytes : 0;
  l->max_age_ns = cfg->max_age_ns > 0 ? cfg->max_age_ns : 0;
  l->max_msgs_per_subject = cfg->max_msgs_per_subject > 0 ? cfg->max_msgs_per_subject : 0;
  l->max_msg_size = cfg->max_msg_size > 0 ? cfg->max_msg_size : 0;
  l->discard = cfg->discard;
}

static char *config_text(const struct js_stream_config *cfg) {
  cJSON *obj = js_config_json(cfg);
  char *text = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;
  cJSON_Delete(obj);
  return text;
}

static int write_meta(struct js_stream *st) {
  cJSON *meta = cJSON_CreateObject();
  cJSON *config = js_config_json(&st->cfg);
  if (meta == NULL || config == NULL) {
    cJSON_Delete(meta);
    cJSON_Delete(config);
    return -ENOMEM;
  }
  cJSON_AddItemToObject(meta, "config", config);
  char ts[48];
  js_time_format(st->created_ns, ts, sizeof ts);
  cJSON_AddStringToObject(meta, "created", ts);
  char *text = cJSON_PrintUnformatted(meta);
  cJSON_Delete(meta);
  if (text == NULL) return -ENOMEM;
  int rc = js_write_file_atomic(st->dir, META_FILE, text, strlen(text));
  free(text);
  return rc;
}

static int subscribe_capture(struct js_stream *st) {
  st->capture = calloc(st->cfg.subject_count, sizeof *st->capture);
  if (st->capture == NULL) return -ENOMEM;
  for (uint32_t i = 0; i < st->cfg.subject_count; i++) {
    st->capture[i] = route_subscribe_internal(st->owner->id, st->cfg.subjects[i], NULL, on_capture, st);
    if (st->capture[i] == NULL) return -ENOMEM;
    st->capture_count++;
  }
  return 0;
}

static void unsubscribe_capture(struct js_stream *st) {
  for (uint32_t i = 0; i < st->capture_count; i++) {
    /* A message already on its way to us may still arrive. */
    st->capture[i]->internal_ctx = NULL;
    route_unsubscribe_internal(st->capture[i]);
  }
  free(st->capture);
  st->capture = NULL;
  st->capture_count = 0;
}

static int open_store(struct js_stream *st, struct js_err *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/msgs", st->dir);
  /* The sync policy is read when the store opens, so a reload that
   * changes sync_interval applies to streams created or restored later. */
  int64_t sync_interval_ms = server.opts.sync_interval_ms;
  struct store_config sc = {
      .name = st->cfg.name,
      .kind = st->cfg.storage,
      .dir = st->cfg.storage == STORE_FILE ? path : NULL,
      .io = st->cfg.storage == STORE_FILE ? st->owner->io : NULL,
      .sync = sync_interval_ms > 0 ? STORE_SYNC_RELAXED : STORE_SYNC_ALWAYS,
      .sync_interval_ns = sync_interval_ms * 1000000,
  };
  store_limits_of(&st->cfg, &sc.limits);
  struct store_error se;
  memset(&se, 0, sizeof se);
  int rc = store_open(&sc, &st->store, &se);
  if (rc != 0) {
    log_error("stream %s: could not open its store: %s", st->cfg.name,
              se.message[0] != '\0' ? se.message : strerror(-rc));
    js_err_set(err, 500, 10077, "%s", se.message[0] != '\0' ? se.message : strerror(-rc));
  }
  return rc;
}

static void free_stream(struct js_stream *st) {
  backlog_free(st);
  dedupe_free_all(st);
  free(st->last_msg_id);
  free(st->capture);
  free(st->dir);
  js_config_free(&st->cfg);
  free(st);
}

/* Rebuilds the duplicate table from messages still inside the window, so
 * a restart does not accept a retried publish twice. */
static void recover_dedupe(struct js_stream *st) {
  struct store_state state;
  store_state(st->store, &state);
  int64_t horizon = js_now_ns() - st->cfg.duplicate_window_ns;
  uint64_t first = state.first_seq;
  struct store_msg m = {0};
  /* Walk back from the newest message to the first one outside the window. */
  uint64_t seq = state.last_seq;
  for (; state.msgs > 0 && seq >= first && seq > 0; seq--) {
    if (store_read(st->store, seq, &m) != 0) continue;
    if (m.ts_ns < horizon) break;
  }
  for (seq++; state.msgs > 0 && seq <= state.last_seq; seq++) {
    if (store_read(st->store, seq, &m) != 0 || m.hdr_len == 0) continue;
    size_t len;
    const char *id = header_value((const char *)m.hdr, m.hdr_len, "Nats-Msg-Id", &len);
    if (id == NULL || len == 0) continue;
    dedupe_add(st, id, len, m.seq, m.ts_ns);
    char *copy = strndup(id, len);
    if (copy != NULL) {
      free(st->last_msg_id);
      st->last_msg_id = copy;
    }
  }
  store_msg_free(&m);
}

int js_stream_create(struct js_shard *jsh, const struct js_stream_config *cfg, int64_t created_ns,
                     bool recovering, struct js_stream **out, struct js_err *err) {
  struct js_stream *st = calloc(1, sizeof *st);
  char *text = config_text(cfg);
  if (st == NULL || text == NULL || js_config_copy(&st->cfg, cfg) != 0) {
    free(text);
    if (st != NULL) free_stream(st);
    js_err_set(err, 500, 10049, "insufficient resources");
    return -ENOMEM;
  }
  st->owner = jsh;
  st->created_ns = created_ns;
  size_t len = strlen(js.streams_dir) + strlen(cfg->name) + 2;
  st->dir = malloc(len);
  if (st->dir != NULL) snprintf(st->dir, len, "%s/%s", js.streams_dir, cfg->name);

  int rc = st->dir == NULL ? -ENOMEM : 0;
  if (rc == 0 && js_registry_add(cfg, jsh->id, created_ns, text, &st->reg, err) != 0) rc = -EEXIST;
  free(text);
  if (rc == -ENOMEM) js_err_set(err, 500, 10049, "insufficient resources");
  if (rc == 0 && !recovering) {
    rc = js_mkdir_p(st->dir);
    if (rc == 0) rc = write_meta(st);
    if (rc != 0) js_err_set(err, 500, 10077, "could not write the stream's configuration: %s",
                            strerror(-rc));
  }
  if (rc == 0) rc = open_store(st, err);
  if (rc == 0) {
    recover_dedupe(st);
    rc = subscribe_capture(st);
    if (rc != 0) js_err_set(err, 500, 10049, "insufficient resources");
  }
  if (rc != 0) {
    unsubscribe_capture(st);
    if (st->store != NULL) store_close(st->store);
    if (st->reg != NULL) js_registry_remove(st->reg);
    if (!recovering && rc != -EEXIST && st->dir != NULL) js_remove_tree(st->dir);
    free_stream(st);
    return rc;
  }
  st->next = jsh->streams;
  jsh->streams = st;
  if (recovering) js_consumers_recover(st);
  js_stream_refresh_stats(st);
  *out = st;
  return 0;
}

/* Checks the changes nats-server 2.9 refuses in an update. */
static int check_update(const struct js_stream_config *old, const struct js_stream_config *cfg,
                        struct js_err *err) {
  if (cfg->storage != old->storage) {
    js_err_set(err, 500, 10052, "stream configuration update can not change storage type");
    return -1;
  }
  if (cfg->retention != old->retention) {
    js_err_set(err, 500, 10052, "stream configuration update can not change retention policy");
    return -1;
  }
  if (old->sealed && !cfg->sealed) {
    js_err_set(err, 500, 10052, "stream configuration update can not unseal a sealed stream");
    return -1;
  }
  if (old->deny_delete && !cfg->deny_delete) {
    js_err_set(err, 500, 10052, "stream configuration update can not cancel deny message deletes");
    return -1;
  }
  if (old->deny_purge && !cfg->deny_purge) {
    js_err_set(err, 500, 10052, "stream configuration update can not cancel deny purge");
    return -1;
  }
  return 0;
}

int js_stream_update(struct js_stream *st, const struct js_stream_config *cfg, struct js_err *err) {
  if (check_update(&st->cfg, cfg, err) != 0) return -1;
  char *text = config_text(cfg);
  struct js_stream_config copy;
  if (text == NULL || js_config_copy(&copy, cfg) != 0) {
    free(text);
    js_err_set(err, 500, 10049, "insufficient resources");
    return -1;
  }
  int rc = js_registry_update(st->reg, cfg, text, err);
  free(text);
  if (rc != 0) {
    js_config_free(&copy);
    return -1;
  }
  unsubscribe_capture(st);
  js_config_free(&st->cfg);
  st->cfg = copy;
  struct store_limits limits;
  store_limits_of(&st->cfg, &limits);
  store_set_limits(st->store, &limits);
  if (subscribe_capture(st) != 0) log_error("stream %s: could not subscribe to its subjects", cfg->name);
  rc = write_meta(st);
  if (rc != 0)
    log_error("stream %s: could not save its configuration: %s", cfg->name, strerror(-rc));
  js_stream_refresh_stats(st);
  return 0;
}

void js_stream_delete(struct js_stream *st) {
  struct js_shard *jsh = st->owner;
  for (struct js_stream **p = &jsh->streams; *p != NULL; p = &(*p)->next) {
    if (*p == st) {
      *p = st->next;
      break;
    }
  }
  unsubscribe_capture(st);
  js_consumers_free_all(st);
  js_registry_remove(st->reg);
  st->reg = NULL;
  st->closing = true;

  /* Move the files aside at once: a stream created again under the same
   * name must not share the directory that the reaper removes later. */
  size_t len = strlen(js.streams_dir) + strlen(st->cfg.name) + 48;
  char *trash = malloc(len);
  if (trash != NULL) {
    snprintf(trash, len, "%s/.deleted-%s-%" PRId64, js.streams_dir, st->cfg.name, js_now_ns());
    if (rename(st->dir, trash) == 0) {
      free(st->dir);
      st->dir = trash;
    } else {
      log_error("stream %s: could not move %s aside: %s", st->cfg.name, st->dir, strerror(errno));
      free(trash);
    }
  }
  st->next = jsh->closing;
  jsh->closing = st;
  js_stream_reap_closing(jsh);
}

/* Closes the stores of deleted streams once no write group is in flight,
 * then removes their files. */
void js_stream_reap_closing(struct js_shard *jsh) {
  for (struct js_stream **p = &jsh->closing; *p != NULL;) {
    struct js_stream *st = *p;
    if (store_close(st->store) == -EBUSY) {
      p = &st->next;
      continue;
    }
    *p = st->next;
    int rc = js_remove_tree(st->dir);
    if (rc != 0) log_error("stream %s: could not remove %s: %s", st->cfg.name, st->dir, strerror(-rc));
    free_stream(st);
  }
}

struct cJSON *js_stream_info_json(struct js_stream *st, const char *type) {
  cJSON *resp = js_response(type);
  if (resp == NULL) return NULL;
  cJSON_AddItemToObject(resp, "config", js_config_json(&st->cfg));
  char ts[48];
  js_time_format(st->created_ns, ts, sizeof ts);
  cJSON_AddStringToObject(resp, "created", ts);
  js_stream_refresh_stats(st);
  cJSON_AddItemToObject(resp, "state", js_info_state_json(&st->reg->stats));
  return resp;
}

/* ---- Recovery ---- */

static void recover_one(struct js_shard *jsh, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", js.streams_dir, name, META_FILE);
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    log_warn("stream directory %s/%s has no %s; skipped", js.streams_dir, name, META_FILE);
    return;
  }
  char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  cJSON *meta = cJSON_Parse(buf);
  struct js_stream_config cfg;
  memset(&cfg, 0, sizeof cfg);
  struct js_err err = {0};
  cJSON *created = cJSON_GetObjectItemCaseSensitive(meta, "created");
  bool parsed = meta != NULL &&
                js_config_parse(cJSON_GetObjectItemCaseSensitive(meta, "config"), &cfg, &err) == 0;
  if (!parsed || strcmp(cfg.name, name) != 0 || !cJSON_IsString(created)) {
    log_error("stream %s: %s is invalid (%s); the stream is not loaded", name, path,
              err.description[0] != '\0' ? err.description : "not the expected JSON");
    cJSON_Delete(meta);
    if (parsed) js_config_free(&cfg);
    return;
  }
  int64_t created_ns = js_time_parse(created->valuestring);
  cJSON_Delete(meta);
  struct js_stream *st = NULL;
  if (js_stream_create(jsh, &cfg, created_ns > 0 ? created_ns : js_now_ns(), true, &st, &err) != 0)
    log_error("stream %s: recovery failed: %s", name, err.description);
  else
    log_info("shard %u: restored stream %s with %" PRIu64 " messages", jsh->id, name,
             (uint64_t)atomic_load(&st->reg->stats.messages));
  js_config_free(&cfg);
}

void js_stream_recover_all(struct js_shard *jsh) {
  DIR *dir = opendir(js.streams_dir);
  if (dir == NULL) return;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    if (strncmp(de->d_name, ".deleted-", 9) == 0) {
      /* A stream deleted just before a crash or stop: finish removing it,
       * once, on shard 0. */
      if (jsh->id == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", js.streams_dir, de->d_name);
        js_remove_tree(path);
      }
      continue;
    }
    if (de->d_name[0] == '.') continue;
    if (js_owner_of(de->d_name, strlen(de->d_name)) != jsh->id) continue;
    recover_one(jsh, de->d_name);
  }
  closedir(dir);
}
