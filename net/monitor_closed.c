/* SPDX-License-Identifier: Apache-2.0 */
/* Records of recently closed connections for /connz?state=closed. Each
 * shard keeps a ring of monitor_closed_capacity() records, so all shards
 * together keep at most nats-server's 10000. A record is written on the
 * shard's thread when a connection stops being open and is copied into a
 * snapshot on the same thread, so the ring needs no lock.
 *
 * Memory is bounded: a record's strings and subscriptions share one block
 * of at most CLOSED_DATA_BYTES_MAX bytes, so a shard's ring holds at most
 * capacity * (sizeof(struct closed_record) + CLOSED_DATA_BYTES_MAX) bytes, about
 * 22 MiB across all shards. The ring is allocated at the shard's first
 * close and kept until the process exits. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/opts.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sub-t.h"
#include "net/monitor.h"
#include "net/monitor_int.h"

/* Bytes of strings and subscriptions kept per closed connection. */
#define CLOSED_DATA_BYTES_MAX 2048
/* Bytes kept of a name, language, version or user. Longer ones are cut at
 * a UTF-8 character boundary. */
#define CLOSED_STRING_BYTES_MAX 256

/* One closed connection. data is one malloc'd block with conn.sub_len
 * struct monitor_sub followed by NUL-terminated strings, or NULL when it
 * could not be allocated. The string offsets in conn and in the
 * subscriptions are offsets into data. */
struct closed_record {
  struct monitor_conn conn;
  char *data;
};

struct monitor_closed_ring {
  uint32_t capacity;
  uint64_t added;           /* records ever added, so the next goes to added % capacity */
  struct closed_record records[];
};

/* nats-server 2.9.10's text for each reason (ClosedState.String()). */
static const char *reason_text(enum client_close_reason reason) {
  return client_close_reason_text(reason);
}

uint32_t monitor_closed_capacity(int shard_count) {
  if (shard_count < 1) shard_count = 1;
  uint32_t per_shard = MONITOR_CLOSED_MAX / (uint32_t)shard_count;
  return per_shard > 0 ? per_shard : 1;
}

static struct monitor_closed_ring *closed_ring_create(uint32_t capacity) {
  struct monitor_closed_ring *ring =
      calloc(1, sizeof *ring + (size_t)capacity * sizeof ring->records[0]);
  if (ring == NULL) return NULL;
  ring->capacity = capacity;
  return ring;
}

/* Returns the bytes of text to keep: at most CLOSED_STRING_BYTES_MAX, not
 * ending inside a UTF-8 sequence. */
static size_t kept_length(const char *text) {
  size_t len = strnlen(text, CLOSED_STRING_BYTES_MAX + 1);
  if (len <= CLOSED_STRING_BYTES_MAX) return len;
  len = CLOSED_STRING_BYTES_MAX;
  while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80) len--;
  return len;
}

static size_t sub_bytes(const struct sub *sub) {
  size_t n = sizeof(struct monitor_sub) + sub->subject_len + 1 + sub->sid_len + 1;
  if (sub->queue != NULL) n += sub->queue_len + 1;
  return n;
}

/* Writes strings into a record's data block from its start. */
struct data_writer {
  char *data;
  size_t len;
};

static uint32_t write_string(struct data_writer *w, const char *text, size_t len) {
  if (text == NULL) return MONITOR_NO_STRING;
  uint32_t offset = (uint32_t)w->len;
  memcpy(w->data + w->len, text, len);
  w->data[w->len + len] = '\0';
  w->len += len + 1;
  return offset;
}

/* Fills r->conn's figures from c, which closes at stop_ms. */
static void fill_figures(struct closed_record *r, const struct client *c, int64_t stop_ms) {
  struct monitor_conn *out = &r->conn;
  memset(out, 0, sizeof *out);
  monitor_conn_fill_figures(out, c);
  out->name = out->lang = out->version = out->user = MONITOR_NO_STRING;
  out->closed = true;
  out->stop_ms = stop_ms;
  out->reason = reason_text(c->close_reason);
}

/* Copies c's strings and its newest subscriptions, as many as fit in
 * CLOSED_DATA_BYTES_MAX bytes, into a new block for r, listed oldest
 * first. Leaves r without strings or subscriptions when out of memory. */
static void fill_data(struct closed_record *r, const struct client *c) {
  const char *user = c->user != NULL ? c->user->user : NULL;
  const char *texts[] = {c->name, c->lang, c->version, user};
  size_t lens[4];
  size_t size = 0;
  for (int i = 0; i < 4; i++) {
    lens[i] = texts[i] != NULL ? kept_length(texts[i]) : 0;
    if (texts[i] != NULL) size += lens[i] + 1;
  }

  /* The newest subscriptions come first in the client's list. */
  uint32_t listed = 0;
  for (const struct sub *sub = c->sub_list; sub != NULL; sub = sub->next_in_client) {
    if (size + sub_bytes(sub) > CLOSED_DATA_BYTES_MAX) break;
    size += sub_bytes(sub);
    listed++;
  }
  if (size == 0) return;
  struct data_writer w = {.data = malloc(size)};
  if (w.data == NULL) return;

  struct monitor_sub *subs = (struct monitor_sub *)w.data;
  w.len = listed * sizeof *subs;
  const struct sub *sub = c->sub_list;
  for (uint32_t i = 0; i < listed; i++, sub = sub->next_in_client) {
    struct monitor_sub *out = &subs[listed - 1 - i];
    out->subject = write_string(&w, sub->subject, sub->subject_len);
    out->queue = write_string(&w, sub->queue, sub->queue_len);
    out->sid = write_string(&w, sub->sid, sub->sid_len);
    out->msgs = sub->delivered;
    out->max = sub->max_msgs;
    out->cid = c->cid;
  }
  r->conn.name = write_string(&w, texts[0], lens[0]);
  r->conn.lang = write_string(&w, texts[1], lens[1]);
  r->conn.version = write_string(&w, texts[2], lens[2]);
  r->conn.user = write_string(&w, texts[3], lens[3]);
  r->conn.sub_len = listed;
  r->data = w.data;
}

/* Adds c's record to ring, replacing the oldest when ring is full. */
static void closed_ring_add(struct monitor_closed_ring *ring, const struct client *c,
                            int64_t stop_ms) {
  struct closed_record *r = &ring->records[ring->added % ring->capacity];
  free(r->data);
  r->data = NULL;
  fill_figures(r, c, stop_ms);
  fill_data(r, c);
  ring->added++;
}

void monitor_closed_add(const struct client *c) {
  if (server.opts.http_port == 0) return;
  struct shard *s = c->shard;
  if (s->closed == NULL) {
    /* When out of memory, the next close tries again. */
    s->closed = closed_ring_create(monitor_closed_capacity(server.shard_count));
    if (s->closed == NULL) return;
  }
  closed_ring_add(s->closed, c, server_now_ms());
}

static const char *record_string(const struct closed_record *r, uint32_t offset) {
  return offset == MONITOR_NO_STRING ? NULL : r->data + offset;
}

static void copy_record(struct monitor_snapshot *snap, const struct closed_record *r) {
  struct monitor_conn *out = monitor_snapshot_add_conn(snap);
  if (out == NULL) return;
  *out = r->conn;
  out->name = monitor_snapshot_add_string(snap, record_string(r, r->conn.name));
  out->lang = monitor_snapshot_add_string(snap, record_string(r, r->conn.lang));
  out->version = monitor_snapshot_add_string(snap, record_string(r, r->conn.version));
  out->user = monitor_snapshot_add_string(snap, record_string(r, r->conn.user));
  out->sub_first = snap->sub_count;
  out->sub_len = 0;
  if (!snap->want_conn_subs) return;

  /* out stays valid below, since only subs and the pool grow. */
  const struct monitor_sub *subs = (const struct monitor_sub *)r->data;
  for (uint32_t i = 0; i < r->conn.sub_len; i++) {
    struct monitor_sub *sub = monitor_snapshot_add_sub(snap);
    if (sub == NULL) return;
    sub->subject = monitor_snapshot_add_string(snap, record_string(r, subs[i].subject));
    sub->queue = monitor_snapshot_add_string(snap, record_string(r, subs[i].queue));
    sub->sid = monitor_snapshot_add_string(snap, record_string(r, subs[i].sid));
    sub->msgs = subs[i].msgs;
    sub->max = subs[i].max;
    sub->cid = subs[i].cid;
    out->sub_len++;
  }
}

void monitor_closed_copy(const struct shard *s, struct monitor_snapshot *snap) {
  const struct monitor_closed_ring *ring = s->closed;
  if (ring == NULL) return;
  uint64_t kept = ring->added < ring->capacity ? ring->added : ring->capacity;
  snap->closed_count = (uint32_t)kept;
  for (uint64_t i = ring->added - kept; i < ring->added; i++) {
    const struct closed_record *r = &ring->records[i % ring->capacity];
    if (snap->cid != 0 && r->conn.cid != snap->cid) continue;
    copy_record(snap, r);
  }
}
