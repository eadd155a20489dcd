/* SPDX-License-Identifier: Apache-2.0 */
/* The store API shared by file and memory stores: appends, reads, limits
 * retention, purge and delete, and the queue of durability callbacks. The
 * file store's journal lives in journal.c; a memory store keeps each
 * encoded record in its own allocation, so reads verify checksums the same
 * way. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert.h"
#include "core/log.h"
#include "core/subject.h"
#include "storage/journal.h"
#include "storage/store_int.h"

#define STORE_DEFAULT_SEGMENT_SIZE (64ull << 20)
#define STORE_MAX_SEGMENT_SIZE (1ull << 30)
#define STORE_DEFAULT_GROUP_BYTES (4u << 20)
#define STORE_DEFAULT_SYNC_INTERVAL_NS 1000000000ll
#define STORE_DEFAULT_SYNC_BYTES (8ull << 20)

int64_t store_now(const struct store *st)
{
  if (st->cfg.clock_ns != NULL)
    return st->cfg.clock_ns(st->cfg.clock_ctx);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* The figures of nats-server 2.9.10: memStoreMsgSize charges the lengths
 * plus 16, fileStoreMsgSize the lengths plus 30, and 4 more when the
 * message has headers. */
uint64_t store_msg_bytes(enum store_kind kind, size_t subject_len, size_t hdr_len, size_t data_len)
{
  uint64_t lengths = (uint64_t)subject_len + hdr_len + data_len;
  if (kind == STORE_MEMORY)
    return lengths + 16;
  return lengths + 30 + (hdr_len > 0 ? 4 : 0);
}

uint64_t store_entry_bytes(const struct store *st, const struct store_entry *e)
{
  ASSERT(e->length >= RECORD_OVERHEAD);
  uint64_t lengths = e->length - RECORD_OVERHEAD;
  if (st->kind == STORE_MEMORY)
    return lengths + 16;
  return lengths + 30 + (e->has_hdr ? 4 : 0);
}

/* Bytes of a record from its header to its checksum, without padding. */
static uint32_t record_length(size_t subject_len, size_t hdr_len, size_t data_len)
{
  return (uint32_t)(RECORD_OVERHEAD + subject_len + hdr_len + data_len);
}

static bool filter_all(const char *filter, size_t len)
{
  return filter == NULL || len == 0 || (len == 1 && filter[0] == '>');
}

static bool filter_literal(const char *filter, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    bool token_start = i == 0 || filter[i - 1] == '.';
    bool token_end = i + 1 == len || filter[i + 1] == '.';
    if ((filter[i] == '*' || filter[i] == '>') && token_start && token_end)
      return false;
  }
  return true;
}

/* Durability callbacks */

int store_ack_push(struct store *st, uint64_t seq, store_on_durable_fn fn, void *ctx)
{
  if (st->ack_count == st->ack_cap) {
    uint64_t cap = st->ack_cap ? st->ack_cap * 2 : 256;
    struct store_ack *a = malloc(cap * sizeof(*a));
    if (a == NULL)
      return -ENOMEM;
    for (uint64_t i = 0; i < st->ack_count; i++)
      a[i] = st->acks[(st->ack_head + i) % st->ack_cap];
    free(st->acks);
    st->acks = a;
    st->ack_cap = cap;
    st->ack_head = 0;
  }
  st->acks[(st->ack_head + st->ack_count) % st->ack_cap] = (struct store_ack){seq, fn, ctx};
  st->ack_count++;
  return 0;
}

/* Each callback is taken off the queue before it runs, so a callback may
 * append. The loop stops at the first newer sequence, which bounds it. */
void store_ack_complete(struct store *st, uint64_t upto, int res)
{
  while (st->ack_count > 0) {
    struct store_ack a = st->acks[st->ack_head];
    if (a.seq > upto)
      break;
    st->ack_head = (st->ack_head + 1) % st->ack_cap;
    st->ack_count--;
    a.fn(a.ctx, a.seq, res);
  }
}

void store_ack_fail_all(struct store *st, int res)
{
  struct store_ack *acks = st->acks;
  uint64_t head = st->ack_head, count = st->ack_count, cap = st->ack_cap;
  st->acks = NULL;
  st->ack_head = st->ack_count = st->ack_cap = 0;
  for (uint64_t i = 0; i < count; i++) {
    struct store_ack a = acks[(head + i) % cap];
    a.fn(a.ctx, a.seq, res);
  }
  free(acks);
}

/* Index changes shared by appends, removals and replay */

int store_index_msg(struct store *st, uint64_t seq, uint64_t loc, uint32_t length,
                    uint32_t hdr_len, const char *subject, uint16_t subject_len, int64_t ts_ns)
{
  int rc = index_add(&st->ix, seq, loc, length, hdr_len > 0, subject, subject_len, ts_ns);
  if (rc < 0)
    return rc;
  if (st->msgs == 0)
    st->first_seq = seq;
  st->msgs++;
  st->bytes += store_entry_bytes(st, index_get(&st->ix, seq));
  st->last_seq = seq;
  return 0;
}

bool store_remove_seq(struct store *st, uint64_t seq)
{
  struct store_entry e;
  if (!index_remove(&st->ix, seq, &e))
    return false;
  st->msgs--;
  st->bytes -= store_entry_bytes(st, &e);
  if (st->kind == STORE_FILE)
    journal_on_remove(st, e.loc);
  else
    free((void *)(uintptr_t)e.loc);

  if (st->msgs == 0) {
    st->first_seq = st->last_seq + 1;
  } else if (seq == st->first_seq) {
    /* Bounded by last_seq, which is live while msgs > 0. */
    uint64_t s = seq + 1;
    while (index_get(&st->ix, s) == NULL)
      s++;
    st->first_seq = s;
  }
  index_trim_front(&st->ix, st->first_seq);
  return true;
}

void store_rollback_to(struct store *st, uint64_t seq)
{
  for (uint64_t s = st->last_seq; s > seq; s--)
    store_remove_seq(st, s);
  index_truncate(&st->ix, seq);
  if (st->last_seq > seq)
    st->last_seq = seq;
  if (st->msgs == 0)
    st->first_seq = st->last_seq + 1;
}

/* Limits */

static void remove_head(struct store *st)
{
  uint64_t seq = st->first_seq;
  bool removed = store_remove_seq(st, seq);
  ASSERT(removed);
  if (st->kind == STORE_FILE && !st->replaying)
    journal_log_range(st, seq, seq);
}

static uint64_t enforce_subject(struct store *st, struct store_subject *sub, uint64_t max)
{
  uint64_t removed = 0;
  /* Bounded by the subject's message count. */
  while (sub->msgs > max) {
    uint64_t seq = index_subject_first(&st->ix, sub);
    store_remove_seq(st, seq);
    if (st->kind == STORE_FILE && !st->replaying)
      journal_log_delete(st, seq);
    removed++;
  }
  return removed;
}

uint64_t store_expire(struct store *st)
{
  const struct store_limits *l = &st->cfg.limits;
  if (l->max_age_ns <= 0 || st->msgs == 0)
    return 0;
  int64_t cutoff = store_now(st) - l->max_age_ns;
  uint64_t removed = 0;
  /* Bounded by the message count. */
  while (st->msgs > 0) {
    struct store_entry *e = index_get(&st->ix, st->first_seq);
    if (e->ts_ns > cutoff)
      break;
    remove_head(st);
    removed++;
  }
  return removed;
}

uint64_t store_enforce_limits(struct store *st)
{
  const struct store_limits *l = &st->cfg.limits;
  uint64_t removed = 0;
  while (l->max_msgs > 0 && st->msgs > (uint64_t)l->max_msgs) {
    remove_head(st);
    removed++;
  }
  while (l->max_bytes > 0 && st->bytes > (uint64_t)l->max_bytes) {
    remove_head(st);
    removed++;
  }
  if (l->max_msgs_per_subject > 0) {
    for (uint32_t id = 0; id < st->ix.id_cap; id++) {
      struct store_subject *sub = st->ix.by_id[id];
      if (sub != NULL && sub->msgs > (uint64_t)l->max_msgs_per_subject)
        removed += enforce_subject(st, sub, (uint64_t)l->max_msgs_per_subject);
    }
  }
  return removed + store_expire(st);
}

static int check_limits(const struct store_limits *l)
{
  if (l->discard != STORE_DISCARD_OLD && l->discard != STORE_DISCARD_NEW)
    return -EINVAL;
  return 0;
}

int store_set_limits(struct store *st, const struct store_limits *limits)
{
  if (check_limits(limits) < 0)
    return -EINVAL;
  st->cfg.limits = *limits;
  store_enforce_limits(st);
  return 0;
}

/* Open and close */

static int store_config_check(const struct store_config *cfg, struct store_error *err)
{
  const char *why = NULL;
  if (cfg->name == NULL || cfg->name[0] == '\0')
    why = "the stream name is empty";
  else if (cfg->kind != STORE_FILE && cfg->kind != STORE_MEMORY)
    why = "the store kind is neither file nor memory";
  else if (cfg->kind == STORE_FILE && (cfg->dir == NULL || cfg->io == NULL))
    why = "a file store needs a directory and an I/O backend";
  else if (cfg->segment_size > STORE_MAX_SEGMENT_SIZE)
    why = "segment_size is above 1 GiB";
  else if (cfg->segment_size != 0 && cfg->segment_size < 4 * (uint64_t)SEGMENT_HEADER_AREA)
    why = "segment_size is below 16 KiB";
  else if (cfg->sync != STORE_SYNC_ALWAYS && cfg->sync != STORE_SYNC_RELAXED)
    why = "the sync policy is unknown";
  else if (check_limits(&cfg->limits) < 0)
    why = "the discard policy is unknown";
  if (why == NULL)
    return 0;
  if (err != NULL)
    snprintf(err->message, sizeof(err->message), "stream %s: invalid store configuration: %s",
             cfg->name ? cfg->name : "(none)", why);
  return -EINVAL;
}

static void store_apply_defaults(struct store *st)
{
  struct store_config *c = &st->cfg;
  if (c->segment_size == 0)
    c->segment_size = STORE_DEFAULT_SEGMENT_SIZE;
  if (c->group_bytes_max == 0)
    c->group_bytes_max = STORE_DEFAULT_GROUP_BYTES;
  if (c->group_bytes_max > c->segment_size / 4)
    c->group_bytes_max = (uint32_t)(c->segment_size / 4);
  if (c->sync_interval_ns <= 0)
    c->sync_interval_ns = STORE_DEFAULT_SYNC_INTERVAL_NS;
  if (c->sync_bytes_max == 0)
    c->sync_bytes_max = STORE_DEFAULT_SYNC_BYTES;
}

static void store_free(struct store *st)
{
  if (st->kind == STORE_MEMORY) {
    for (uint64_t i = 0; i < st->ix.count; i++)
      if (st->ix.entries[i].length != 0)
        free((void *)(uintptr_t)st->ix.entries[i].loc);
  }
  if (st->j != NULL)
    journal_close(st);
  index_free(&st->ix);
  free(st->acks);
  free(st->name);
  free(st->dir);
  free(st);
}

int store_open(const struct store_config *cfg, struct store **out, struct store_error *err)
{
  if (err != NULL)
    memset(err, 0, sizeof(*err));
  int rc = store_config_check(cfg, err);
  if (rc < 0)
    return rc;

  struct store *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return -ENOMEM;
  st->cfg = *cfg;
  st->kind = cfg->kind;
  st->name = strdup(cfg->name);
  st->dir = cfg->dir != NULL ? strdup(cfg->dir) : NULL;
  st->cfg.name = st->name;
  st->cfg.dir = st->dir;
  store_apply_defaults(st);
  st->first_seq = 1;
  rc = st->name == NULL || (cfg->dir != NULL && st->dir == NULL) ? -ENOMEM : index_init(&st->ix, 1);
  if (rc < 0)
    goto fail;

  if (st->kind == STORE_FILE) {
    st->replaying = true;
    rc = journal_open(st, err);
    st->replaying = false;
    if (rc < 0)
      goto fail;
  }
  store_enforce_limits(st);
  *out = st;
  return 0;

fail:
  store_free(st);
  return rc;
}

int store_close(struct store *st)
{
  if (st->kind == STORE_FILE) {
    int rc = journal_close(st);
    if (rc < 0)
      return rc;
  }
  store_ack_fail_all(st, st->kind == STORE_MEMORY ? 0 : -ECANCELED);
  store_free(st);
  return 0;
}

/* Appends */

/* Applies the discard-new limits as nats-server 2.9.10's stores do. Its
 * max_bytes rejects a message once the stored bytes plus the message's
 * header and payload lengths, not its charged size, reach the limit. A
 * message whose subject is at max_msgs_per_subject will replace that
 * subject's oldest message, so it passes max_msgs, and it passes max_bytes
 * when the replaced message is large enough. Returns 0 or -EDQUOT. */
static int check_discard_new(struct store *st, const char *subject, size_t subject_len,
                             size_t hdr_len, size_t data_len)
{
  const struct store_limits *l = &st->cfg.limits;
  struct store_subject *sub = NULL;
  if (l->max_msgs_per_subject > 0)
    sub = index_subject(&st->ix, subject, (uint16_t)subject_len);
  bool replaces = sub != NULL && sub->msgs >= (uint64_t)l->max_msgs_per_subject;

  if (l->max_msgs > 0 && st->msgs >= (uint64_t)l->max_msgs && !replaces)
    return -EDQUOT;

  uint64_t lengths = (uint64_t)hdr_len + data_len;
  if (l->max_bytes > 0 && st->bytes + lengths >= (uint64_t)l->max_bytes) {
    if (!replaces)
      return -EDQUOT;
    const struct store_entry *oldest = index_get(&st->ix, index_subject_first(&st->ix, sub));
    uint64_t freed = store_entry_bytes(st, oldest);
    /* nats-server's memory store rejects when the freed bytes are fewer
     * than the lengths, its file store also when they are equal. */
    bool too_small = st->kind == STORE_MEMORY ? freed < lengths : freed <= lengths;
    if (too_small)
      return -EDQUOT;
  }
  return 0;
}

static int append_check(struct store *st, const char *subject, size_t subject_len,
                        size_t hdr_len, size_t data_len)
{
  const struct store_limits *l = &st->cfg.limits;
  if (st->failed != 0)
    return st->failed;
  if (subject_len == 0 || subject_len > UINT16_MAX || hdr_len > UINT32_MAX / 2 || data_len > UINT32_MAX / 2)
    return -EINVAL;
  if (l->max_msg_size > 0 && (int64_t)(hdr_len + data_len) > l->max_msg_size)
    return -EMSGSIZE;
  if (st->kind == STORE_FILE && record_size(subject_len, hdr_len, data_len) + 2 * SEGMENT_HEADER_AREA > st->cfg.group_bytes_max)
    return -EMSGSIZE;

  if (l->discard == STORE_DISCARD_NEW)
    return check_discard_new(st, subject, subject_len, hdr_len, data_len);
  return 0;
}

static int append_memory(struct store *st, const struct record_fields *f, uint64_t *loc)
{
  uint8_t *rec = malloc(record_size(f->subject_len, f->hdr_len, f->data_len));
  if (rec == NULL)
    return -ENOMEM;
  record_encode(rec, f, 0, 0, 0);
  *loc = (uintptr_t)rec;
  return 0;
}

int store_append(struct store *st, const char *subject, size_t subject_len,
                 const void *hdr, size_t hdr_len, const void *data, size_t data_len,
                 int64_t ts_ns, store_on_durable_fn on_durable, void *ctx, uint64_t *seq_out)
{
  int rc = append_check(st, subject, subject_len, hdr_len, data_len);
  if (rc < 0)
    return rc;
  if (ts_ns == 0)
    ts_ns = store_now(st);

  uint64_t seq = st->last_seq + 1;
  struct record_fields f = {
    .type = RECORD_MSG, .seq = seq, .ts_ns = ts_ns,
    .subject = subject, .subject_len = (uint16_t)subject_len,
    .hdr = hdr, .hdr_len = (uint32_t)hdr_len, .data = data, .data_len = (uint32_t)data_len,
  };
  uint64_t loc;
  rc = st->kind == STORE_FILE ? journal_append(st, &f, &loc) : append_memory(st, &f, &loc);
  if (rc < 0)
    return rc;

  /* The record is in the journal buffer now, so an allocation failure here
   * would leave the index behind it: the store stops taking appends. */
  uint32_t length = record_length(subject_len, hdr_len, data_len);
  rc = store_index_msg(st, seq, loc, length, (uint32_t)hdr_len, subject, (uint16_t)subject_len,
                       ts_ns);
  if (rc == 0 && on_durable != NULL)
    rc = store_ack_push(st, seq, on_durable, ctx);
  if (rc < 0) {
    log_error("stream %s: out of memory indexing sequence %llu; the store takes no more appends",
              st->name, (unsigned long long)seq);
    st->failed = rc;
    return rc;
  }

  /* Limits that discard old messages. */
  const struct store_limits *l = &st->cfg.limits;
  if (l->max_msgs_per_subject > 0) {
    struct store_subject *sub = index_subject(&st->ix, subject, (uint16_t)subject_len);
    enforce_subject(st, sub, (uint64_t)l->max_msgs_per_subject);
  }
  store_enforce_limits(st);
  *seq_out = seq;
  return 0;
}

int store_flush(struct store *st)
{
  if (st->kind == STORE_MEMORY) {
    store_ack_complete(st, UINT64_MAX, 0);
    return 0;
  }
  return journal_flush(st);
}

bool store_busy(const struct store *st)
{
  if (st->kind == STORE_MEMORY)
    return st->ack_count > 0;
  return journal_busy(st);
}

void store_sync_soon(struct store *st)
{
  if (st->kind == STORE_FILE)
    st->j->sync_now = true;
}

int64_t store_sync_due_ns(const struct store *st)
{
  if (st->kind == STORE_MEMORY || st->failed != 0 || st->cfg.sync != STORE_SYNC_RELAXED)
    return 0;
  return journal_sync_due_ns(st);
}

/* Reads */

void store_msg_free(struct store_msg *msg)
{
  free(msg->buf);
  memset(msg, 0, sizeof(*msg));
}

static int read_entry(struct store *st, uint64_t seq, const struct store_entry *e,
                      struct store_msg *msg)
{
  struct record_view v;
  int rc;
  if (st->kind == STORE_FILE) {
    rc = journal_read(st, e->loc, e->length, msg, &v);
  } else {
    uint32_t size = (e->length + RECORD_ALIGN - 1) & ~(uint32_t)(RECORD_ALIGN - 1);
    if (msg->buf_size < size) {
      free(msg->buf);
      msg->buf = malloc(size);
      msg->buf_size = msg->buf != NULL ? size : 0;
      if (msg->buf == NULL)
        return -ENOMEM;
    }
    memcpy(msg->buf, (const void *)(uintptr_t)e->loc, size);
    rc = record_decode(msg->buf, size, 0, 0, &v) == RECORD_OK ? 0 : -EBADMSG;
  }
  if (rc < 0)
    return rc;
  if (v.type != RECORD_MSG || v.seq != seq || v.length != e->length) {
    log_error("stream %s: sequence %llu: the record read back is another record",
              st->name, (unsigned long long)seq);
    return -EBADMSG;
  }

  msg->seq = v.seq;
  msg->ts_ns = v.ts_ns;
  msg->subject = v.subject;
  msg->subject_len = v.subject_len;
  msg->hdr = v.hdr;
  msg->hdr_len = v.hdr_len;
  msg->data = v.data;
  msg->data_len = v.data_len;
  return 0;
}

int store_read(struct store *st, uint64_t seq, struct store_msg *msg)
{
  struct store_entry *e = index_get(&st->ix, seq);
  if (e == NULL)
    return -ENOENT;
  return read_entry(st, seq, e, msg);
}

static bool entry_matches(struct store *st, const struct store_entry *e, const char *filter,
                          size_t filter_len)
{
  const struct store_subject *sub = index_subject_by_id(&st->ix, e->subject_id);
  return subject_matches(filter, filter_len, sub->name, sub->len);
}

int store_read_next(struct store *st, uint64_t start_seq, const char *filter,
                    size_t filter_len, struct store_msg *msg)
{
  bool all = filter_all(filter, filter_len);
  uint64_t from = start_seq > st->first_seq ? start_seq : st->first_seq;
  uint64_t to = st->last_seq;
  uint32_t only_id = UINT32_MAX;

  if (!all && filter_literal(filter, filter_len)) {
    struct store_subject *sub = filter_len <= UINT16_MAX ? index_subject(&st->ix, filter, (uint16_t)filter_len) : NULL;
    if (sub == NULL)
      return -ENOENT;
    uint64_t first = index_subject_first(&st->ix, sub);
    from = from > first ? from : first;
    to = sub->last_seq;
    only_id = sub->id;
  }

  /* Bounded by the sequence range. */
  for (uint64_t seq = from; seq <= to && st->msgs > 0; seq++) {
    struct store_entry *e = index_get(&st->ix, seq);
    if (e == NULL)
      continue;
    if (only_id != UINT32_MAX ? e->subject_id == only_id : all || entry_matches(st, e, filter, filter_len))
      return read_entry(st, seq, e, msg);
  }
  return -ENOENT;
}

int store_read_last(struct store *st, const char *filter, size_t filter_len, struct store_msg *msg)
{
  if (st->msgs == 0)
    return -ENOENT;
  bool all = filter_all(filter, filter_len);

  if (!all && filter_literal(filter, filter_len)) {
    struct store_subject *sub = filter_len <= UINT16_MAX ? index_subject(&st->ix, filter, (uint16_t)filter_len) : NULL;
    if (sub == NULL)
      return -ENOENT;
    return store_read(st, index_subject_last(&st->ix, sub), msg);
  }

  /* Bounded by the sequence range. */
  for (uint64_t seq = st->last_seq; seq >= st->first_seq; seq--) {
    struct store_entry *e = index_get(&st->ix, seq);
    if (e != NULL && (all || entry_matches(st, e, filter, filter_len)))
      return read_entry(st, seq, e, msg);
  }
  return -ENOENT;
}

/* Removal */

int store_delete(struct store *st, uint64_t seq)
{
  if (!store_remove_seq(st, seq))
    return -ENOENT;
  if (st->kind == STORE_FILE)
    journal_log_delete(st, seq);
  return 0;
}

uint64_t store_apply_purge(struct store *st, const char *filter, size_t filter_len,
                           uint64_t up_to_seq, uint64_t keep)
{
  bool all = filter_all(filter, filter_len);
  uint64_t end = st->last_seq;
  if (up_to_seq > 0 && up_to_seq - 1 < end)
    end = up_to_seq - 1;

  /* With keep, count the matches first: the newest keep of them stay. */
  uint64_t matches = 0;
  if (keep > 0) {
    for (uint64_t seq = st->first_seq; seq <= end && st->msgs > 0; seq++) {
      struct store_entry *e = index_get(&st->ix, seq);
      if (e != NULL && (all || entry_matches(st, e, filter, filter_len)))
        matches++;
    }
    if (matches <= keep)
      return 0;
  }

  uint64_t removed = 0;
  for (uint64_t seq = st->first_seq; seq <= end && st->msgs > 0; seq++) {
    if (keep > 0 && removed == matches - keep)
      break;
    struct store_entry *e = index_get(&st->ix, seq);
    if (e != NULL && (all || entry_matches(st, e, filter, filter_len))) {
      store_remove_seq(st, seq);
      removed++;
    }
  }
  return removed;
}

int store_purge(struct store *st, const struct store_purge *req, uint64_t *purged)
{
  if (req->up_to_seq > 0 && req->keep > 0)
    return -EINVAL;
  if (st->failed != 0)
    return st->failed;

  uint64_t old_first = st->first_seq;
  uint64_t removed = store_apply_purge(st, req->filter, req->filter_len, req->up_to_seq, req->keep);
  if (st->kind == STORE_FILE && removed > 0) {
    /* Without a filter a purge removes a prefix of the live messages, so
     * one range record covers it. A filtered purge is logged as itself and
     * replayed at recovery. */
    if (filter_all(req->filter, req->filter_len))
      journal_log_range(st, old_first, st->first_seq - 1);
    else
      journal_log_purge(st, req->filter, req->filter_len, req->up_to_seq, req->keep);
  }
  if (purged != NULL)
    *purged = removed;
  return 0;
}

/* State */

void store_state(const struct store *st, struct store_state *out)
{
  memset(out, 0, sizeof(*out));
  out->msgs = st->msgs;
  out->bytes = st->bytes;
  out->first_seq = st->first_seq;
  out->last_seq = st->last_seq;
  out->num_subjects = st->ix.subject_count;
  if (st->msgs > 0) {
    struct store_index *ix = (struct store_index *)&st->ix;
    out->first_ts_ns = index_get(ix, st->first_seq)->ts_ns;
    /* Bounded by first_seq, which is live. */
    uint64_t last = st->last_seq;
    while (index_get(ix, last) == NULL)
      last--;
    out->last_ts_ns = index_get(ix, last)->ts_ns;
    out->num_deleted = st->last_seq - st->first_seq + 1 - st->msgs;
  }
  out->segments = st->kind == STORE_FILE ? journal_segment_count(st) : 0;
}

uint64_t store_subject_msgs(const struct store *st, const char *subject, size_t subject_len)
{
  if (subject_len > UINT16_MAX)
    return 0;
  struct store_subject *sub = index_subject(&st->ix, subject, (uint16_t)subject_len);
  return sub != NULL ? sub->msgs : 0;
}

void store_subjects(const struct store *st, const char *filter, size_t filter_len,
                    void (*fn)(void *ctx, const char *subject, size_t len, uint64_t msgs),
                    void *ctx)
{
  bool all = filter_all(filter, filter_len);
  for (uint32_t id = 0; id < st->ix.id_cap; id++) {
    const struct store_subject *sub = st->ix.by_id[id];
    if (sub != NULL && (all || subject_matches(filter, filter_len, sub->name, sub->len)))
      fn(ctx, sub->name, sub->len, sub->msgs);
  }
}
