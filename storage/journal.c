/* SPDX-License-Identifier: Apache-2.0 */
/* The file store's journal: segment files, write buffers, group commit and
 * its failure handling. Recovery is in journal_recover.c. The format and
 * the invariants J1..J8 cited here are described in storage/record.c.
 *
 * Appends are encoded straight into the active segment's write buffer,
 * which mirrors the file from a block boundary up to the logical end. A
 * flush seals that buffer into the one write group in flight (J2), and the
 * segment continues in a fresh buffer that starts with a copy of the
 * partial last block, so the sealed buffer is never touched while the
 * kernel reads it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/log.h"
#include "storage/journal.h"

static uint32_t align_down(uint64_t v, uint32_t a) { return (uint32_t)(v - v % a); }
static uint32_t align_up(uint64_t v, uint32_t a) { return (uint32_t)((v + a - 1) / a * a); }

/* Segments and buffers */

struct segment *journal_segment(struct journal *j, uint64_t index)
{
  if (j->seg_count == 0 || index < j->segs[0]->index)
    return NULL;
  uint64_t i = index - j->segs[0]->index;
  return i < j->seg_count ? j->segs[i] : NULL;
}

struct segment *journal_active(struct journal *j)
{
  ASSERT(j->seg_count > 0);
  return j->segs[j->seg_count - 1];
}

void journal_segment_path(const struct journal *j, uint64_t index, char *out, size_t size)
{
  snprintf(out, size, "%s/%016llx.seg", j->st->dir, (unsigned long long)index);
}

struct wbuf *journal_buf_take(struct journal *j, uint32_t base)
{
  for (int i = 0; i < JOURNAL_BUFFERS; i++) {
    struct wbuf *b = &j->bufs[i];
    if (b->in_use)
      continue;
    if (b->mem == NULL) {
      b->mem = aligned_alloc(JOURNAL_MEM_ALIGN, j->buf_cap);
      if (b->mem == NULL)
        return NULL;
      memset(b->mem, 0, j->buf_cap);
    }
    b->in_use = true;
    b->base = base;
    b->len = 0;
    b->last_msg_seq = 0;
    return b;
  }
  return NULL;
}

void journal_buf_release(struct wbuf *b)
{
  ASSERT(b->in_use);
  b->in_use = false;
}

int journal_segment_add(struct journal *j, uint64_t index, uint64_t first_seq, uint32_t prev_end,
                        uint32_t size)
{
  if (j->seg_count == j->seg_cap) {
    size_t cap = j->seg_cap ? j->seg_cap * 2 : 16;
    struct segment **s = realloc(j->segs, cap * sizeof(*s));
    if (s == NULL)
      return -ENOMEM;
    j->segs = s;
    j->seg_cap = cap;
  }
  struct segment *seg = calloc(1, sizeof(*seg));
  if (seg == NULL)
    return -ENOMEM;
  seg->index = index;
  seg->fd = -1;
  seg->first_seq = first_seq;
  seg->prev_end = prev_end;
  seg->size = size;
  seg->end = seg->flushed_end = seg->written_end = seg->synced_end = seg->dirty_end = SEGMENT_HEADER_AREA;
  j->segs[j->seg_count++] = seg;
  return 0;
}

static void segment_free(struct journal *j, struct segment *seg)
{
  if (j->ra.seg_index == seg->index)
    j->ra.seg_index = 0;
  if (seg->fd >= 0)
    j->io->ops->close(j->io, seg->fd);
  if (seg->active != NULL)
    journal_buf_release(seg->active);
  free(seg);
}

/* Creates the file of a segment that so far lived in memory (J3): the
 * previous segment is durable to its end. Synchronous. */
int journal_segment_create(struct journal *j, struct segment *seg)
{
  struct io_backend *io = j->io;
  char path[JOURNAL_PATH_MAX];
  journal_segment_path(j, seg->index, path, sizeof(path));

  int fd = io->ops->open(io, path, IO_OPEN_CREATE | IO_OPEN_DIRECT);
  if (fd < 0)
    return fd;
  if (j->block == 0)
    journal_set_block(j, (uint32_t)io->ops->dio_align(io, fd));

  struct segment_header h = {
    .block_size = j->block, .index = seg->index, .first_seq = seg->first_seq,
    .prev_end = seg->prev_end, .size = seg->size, .torn_window = j->torn_window,
    .created_ns = store_now(j->st),
  };
  segment_header_encode(j->hdr_buf, &h);

  int rc = io->ops->fallocate(io, fd, 0, seg->size);
  if (rc == 0) {
    ssize_t n = io->ops->pwrite(io, fd, j->hdr_buf, SEGMENT_HEADER_AREA, 0);
    if (n < 0)
      rc = (int)n;
    else if (n != SEGMENT_HEADER_AREA)
      rc = -EIO;
  }
  if (rc == 0)
    rc = io->ops->fdatasync(io, fd);
  if (rc == 0)
    rc = io->ops->fsync_dir(io, j->st->dir);
  if (rc < 0) {
    log_error("stream %s: creating segment %s failed: %s; appends for it fail",
              j->st->name, path, strerror(-rc));
    io->ops->close(io, fd);
    io->ops->unlink(io, path);
    return rc;
  }
  seg->fd = fd;
  return 0;
}

/* Starts a new in-memory segment after the active one is full. Its file is
 * created at flush time, once the previous segment is durable (J3). */
static int journal_roll(struct journal *j)
{
  struct segment *prev = journal_active(j);
  /* A segment whose bytes were all handed to writes keeps no buffer. */
  if (prev->end == prev->flushed_end && prev->active != NULL) {
    journal_buf_release(prev->active);
    prev->active = NULL;
  }
  struct wbuf *b = journal_buf_take(j, SEGMENT_HEADER_AREA);
  if (b == NULL)
    return -EAGAIN;
  int rc = journal_segment_add(j, prev->index + 1, j->st->last_seq + 1, prev->end,
                               (uint32_t)j->st->cfg.segment_size);
  if (rc < 0) {
    journal_buf_release(b);
    return rc;
  }
  journal_active(j)->active = b;
  return 0;
}

/* Appending records */

/* Encodes one record at the end of the active segment, rolling to a new
 * segment or sealing the buffer when needed. */
static int append_record(struct journal *j, const struct record_fields *f, uint64_t *loc)
{
  uint32_t size = record_size(f->subject_len, f->hdr_len, f->data_len);
  struct segment *seg = journal_active(j);

  if ((uint64_t)seg->end + size > seg->size) {
    int rc = journal_roll(j);
    if (rc < 0)
      return rc;
    seg = journal_active(j);
  }
  /* The active segment always has a buffer: recovery, journal_roll and
   * group_submit_write give it one. */
  ASSERT(seg->active != NULL);

  /* A full buffer is sealed now when nothing is in flight (J2). */
  struct wbuf *b = seg->active;
  if (seg->end + size - b->base > j->buf_cap - j->block) {
    uint64_t last_seq = j->st->last_seq;
    if (!j->g.active)
      journal_flush(j->st);
    if (j->st->failed != 0)
      return j->st->failed;
    /* A failed segment creation rolls back, and f->seq is stale then. */
    if (j->st->last_seq != last_seq || seg != journal_active(j))
      return -EAGAIN;
    b = seg->active;
    if (b == NULL || seg->end + size - b->base > j->buf_cap - j->block)
      return -EAGAIN;
  }

  uint32_t offset = seg->end;
  record_encode(b->mem + (offset - b->base), f, seg->index, offset, seg->synced_end);
  b->len = offset + size - b->base;
  seg->end = offset + size;
  if (f->type == RECORD_MSG) {
    b->last_msg_seq = f->seq;
    seg->live++;
  } else {
    seg->has_tombstones = true;
    /* Segments emptied by this removal may go once it is durable. */
    uint64_t pos = (seg->index << 32) | seg->end;
    for (size_t i = 0; i < j->seg_count; i++)
      if (j->segs[i]->empty_pos == JOURNAL_POS_AWAITING)
        j->segs[i]->empty_pos = pos;
  }
  *loc = (seg->index << 32) | offset;
  return 0;
}

int journal_append(struct store *st, const struct record_fields *f, uint64_t *loc)
{
  ASSERT(f->type == RECORD_MSG);
  return append_record(st->j, f, loc);
}

static int append_tombstone(struct journal *j, enum record_type type, const char *subject,
                            uint16_t subject_len, const uint64_t *args, uint32_t arg_count)
{
  uint8_t body[16];
  ASSERT(arg_count <= 2);
  memcpy(body, args, arg_count * sizeof(uint64_t));
  struct record_fields f = {
    .type = type, .seq = j->st->last_seq, .ts_ns = store_now(j->st),
    .subject = subject, .subject_len = subject_len,
    .data = body, .data_len = arg_count * (uint32_t)sizeof(uint64_t),
  };
  uint64_t loc;
  int rc = append_record(j, &f, &loc);
  if (rc < 0)
    log_error("stream %s: logging a removal failed: %s; it is lost at the next restart",
              j->st->name, strerror(-rc));
  return rc;
}

/* Writes the pending range of head removals, clamped to sequences that
 * still exist after a rollback. */
static int emit_range(struct journal *j)
{
  if (j->range_first == 0)
    return 0;
  uint64_t args[2] = {j->range_first, j->range_last};
  j->range_first = j->range_last = 0;
  if (args[1] > j->st->last_seq)
    args[1] = j->st->last_seq;
  if (args[0] > args[1])
    return 0;
  return append_tombstone(j, RECORD_DELETE_RANGE, NULL, 0, args, 2);
}

int journal_log_range(struct store *st, uint64_t first, uint64_t last)
{
  struct journal *j = st->j;
  if (j->range_first != 0 && first <= j->range_last + 1) {
    if (last > j->range_last)
      j->range_last = last;
    return 0;
  }
  int rc = emit_range(j);
  j->range_first = first;
  j->range_last = last;
  return rc;
}

int journal_log_delete(struct store *st, uint64_t seq)
{
  int rc = emit_range(st->j);
  uint64_t arg = seq;
  int rc2 = append_tombstone(st->j, RECORD_DELETE, NULL, 0, &arg, 1);
  return rc < 0 ? rc : rc2;
}

int journal_log_purge(struct store *st, const char *filter, size_t filter_len,
                      uint64_t up_to_seq, uint64_t keep)
{
  if (filter_len > UINT16_MAX)
    return -EINVAL;
  int rc = emit_range(st->j);
  uint64_t args[2] = {up_to_seq, keep};
  int rc2 = append_tombstone(st->j, RECORD_PURGE, filter, (uint16_t)filter_len, args, 2);
  return rc < 0 ? rc : rc2;
}

void journal_on_remove(struct store *st, uint64_t loc)
{
  struct journal *j = st->j;
  struct segment *seg = journal_segment(j, loc >> 32);
  ASSERT(seg != NULL && seg->live > 0);
  seg->live--;
  if (seg->live == 0)
    seg->empty_pos = st->replaying || j->rolling_back ? 0 : JOURNAL_POS_AWAITING;
}

/* Group commit */

static void group_on_done(struct io_req *req);

static bool relaxed(const struct journal *j)
{
  return j->st->cfg.sync == STORE_SYNC_RELAXED;
}

/* Seals the active buffer of seg into the group and submits its write,
 * linked to an fdatasync under the default policy (J2, J5). */
static void group_submit_write(struct journal *j, struct segment *seg)
{
  struct group *g = &j->g;
  struct wbuf *b = seg->active;
  uint32_t end = seg->end;

  /* J6: cover whatever an earlier failed write may have left past the end. */
  uint32_t write_end = align_up(end > seg->dirty_end ? end : seg->dirty_end, j->block);
  if (write_end > seg->size)
    write_end = seg->size;
  uint32_t write_len = write_end - b->base;
  ASSERT(write_len <= j->buf_cap);
  memset(b->mem + b->len, 0, write_len - b->len);

  /* The active segment continues in a fresh buffer holding the partial
   * block; a sealed one takes no more appends and needs none. */
  seg->active = NULL;
  if (seg == journal_active(j)) {
    struct wbuf *next = journal_buf_take(j, align_down(end, j->block));
    ASSERT(next != NULL);
    next->len = end - next->base;
    memcpy(next->mem, b->mem + (next->base - b->base), next->len);
    seg->active = next;
  }

  *g = (struct group){
    .active = true, .seg = seg, .buf = b, .start = seg->flushed_end, .end = end,
    .write_len = write_len, .last_msg_seq = b->last_msg_seq, .pending = 1,
  };
  seg->flushed_end = end;
  if (write_end > seg->dirty_end)
    seg->dirty_end = write_end;

  g->write = (struct io_req){
    .op = IO_OP_PWRITE, .fd = seg->fd, .buf = b->mem, .len = write_len,
    .offset = b->base, .on_done = group_on_done, .ctx = j,
  };
  if (!relaxed(j)) {
    g->write.flags = IO_REQ_LINK;
    g->sync = (struct io_req){.op = IO_OP_FDATASYNC, .fd = seg->fd, .on_done = group_on_done, .ctx = j};
    g->pending = 2;
  }
  int rc = io_submit(j->io, &g->write);
  if (rc == 0 && !relaxed(j))
    rc = io_submit(j->io, &g->sync);
  ASSERT(rc == 0);
  io_flush(j->io);
}

/* Relaxed policy: an fdatasync on its own, for the written bytes. */
static void group_submit_sync(struct journal *j, struct segment *seg)
{
  struct group *g = &j->g;
  *g = (struct group){
    .active = true, .sync_only = true, .seg = seg, .start = seg->synced_end,
    .end = seg->written_end, .pending = 1,
  };
  g->sync = (struct io_req){.op = IO_OP_FDATASYNC, .fd = seg->fd, .on_done = group_on_done, .ctx = j};
  int rc = io_submit(j->io, &g->sync);
  ASSERT(rc == 0);
  io_flush(j->io);
}

/* Copies the removal records of [from, to) of a buffer, so they can be
 * appended again after a rollback. */
static void collect_tombstones(struct journal *j, const struct segment *seg, const struct wbuf *b,
                               uint32_t from, uint32_t to)
{
  uint32_t off = from;
  /* Bounded by the buffer: every record advances off. */
  while (off < to) {
    struct record_view v;
    const uint8_t *p = b->mem + (off - b->base);
    enum record_status rs = record_decode(p, to - off, seg->index, off, &v);
    ASSERT(rs == RECORD_OK);
    off += v.padded_length;
    if (v.type == RECORD_MSG)
      continue;

    if (j->requeue_count == j->requeue_cap) {
      uint32_t cap = j->requeue_cap ? j->requeue_cap * 2 : 16;
      struct requeued *r = realloc(j->requeue, cap * sizeof(*r));
      if (r == NULL)
        break;
      j->requeue = r;
      j->requeue_cap = cap;
    }
    struct requeued *r = &j->requeue[j->requeue_count];
    r->type = v.type;
    memcpy(r->args, v.data, v.data_len <= sizeof(r->args) ? v.data_len : sizeof(r->args));
    r->subject_len = v.subject_len;
    r->subject = v.subject_len ? malloc(v.subject_len) : NULL;
    if (v.subject_len != 0 && r->subject == NULL)
      break;
    if (v.subject_len)
      memcpy(r->subject, v.subject, v.subject_len);
    j->requeue_count++;
  }
}

/* Appends the collected removal records again, dropping targets that the
 * rollback removed. */
static void requeue_tombstones(struct journal *j)
{
  for (uint32_t i = 0; i < j->requeue_count; i++) {
    struct requeued *r = &j->requeue[i];
    if (r->type == RECORD_DELETE && r->args[0] <= j->st->last_seq)
      append_tombstone(j, RECORD_DELETE, NULL, 0, r->args, 1);
    else if (r->type == RECORD_DELETE_RANGE)
      journal_log_range(j->st, r->args[0], r->args[1]);
    else if (r->type == RECORD_PURGE)
      append_tombstone(j, RECORD_PURGE, r->subject, r->subject_len, r->args, 2);
    free(r->subject);
  }
  j->requeue_count = 0;
}

/* Appends starting at offset start of seg were not stored: a write failed
 * (failed holds the group's buffer) or the segment's file could not be
 * created (failed is NULL). Every append not yet acknowledged fails with
 * err, the index and the segments return to the last acknowledged
 * sequence, and later writes overwrite the failed bytes with zeros (J6).
 * Removal records among the lost bytes are appended again. */
static void rollback_pending(struct journal *j, struct segment *seg, struct wbuf *failed,
                             uint32_t start, uint32_t failed_end, int err)
{
  struct store *st = j->st;
  log_warn("stream %s: journal write at segment %016llx offset %u failed: %s; "
           "%llu appends failed", st->name, (unsigned long long)seg->index, start,
           strerror(-err), (unsigned long long)st->ack_count);

  /* Keep the removals of the lost records for appending again. */
  uint32_t mid = failed != NULL ? failed_end : start;
  if (failed != NULL)
    collect_tombstones(j, seg, failed, start, failed_end);
  if (seg->active != NULL)
    collect_tombstones(j, seg, seg->active, mid, seg->end);
  size_t pos = 0;
  while (j->segs[pos] != seg)
    pos++;
  for (size_t i = pos + 1; i < j->seg_count; i++)
    collect_tombstones(j, j->segs[i], j->segs[i]->active, SEGMENT_HEADER_AREA, j->segs[i]->end);

  j->rolling_back = true;
  store_rollback_to(st, j->acked_seq);
  j->rolling_back = false;

  /* Later segments were never created: they exist only in memory (J3). */
  while (j->seg_count > pos + 1) {
    struct segment *s = j->segs[--j->seg_count];
    ASSERT(s->fd < 0);
    segment_free(j, s);
  }
  if (failed != NULL) {
    if (seg->active != NULL)
      journal_buf_release(seg->active);
    seg->active = failed;
  }
  seg->active->len = start - seg->active->base;
  seg->active->last_msg_seq = 0;
  seg->end = seg->flushed_end = start;
  j->range_first = j->range_last = 0;

  requeue_tombstones(j);
  store_ack_fail_all(st, err);
}

/* An fdatasync failed. Linux may have dropped the dirty state with the
 * error, so a retry could report success for data that is not on disk: the
 * store stops and must be reopened, which checks the journal again. */
static void group_fail_sync(struct journal *j, int err)
{
  struct store *st = j->st;
  log_error("stream %s: fdatasync of segment %016llx failed: %s; the stream stops taking "
            "appends until it is reopened", st->name, (unsigned long long)j->g.seg->index,
            strerror(-err));
  st->failed = -EIO;
  if (j->g.buf != NULL)
    journal_buf_release(j->g.buf);
  j->g.active = false;
  store_ack_fail_all(st, -EIO);
}

static void group_complete(struct journal *j)
{
  struct group *g = &j->g;
  struct segment *seg = g->seg;
  struct store *st = j->st;

  if (g->sync_only) {
    if (g->sync.res < 0)
      return group_fail_sync(j, g->sync.res);
    seg->synced_end = g->end;
    j->durable_pos = (seg->index << 32) | g->end;
    j->unsynced_bytes = 0;
    j->unsynced_since_ns = 0;
    g->active = false;
    return;
  }

  if (g->write.res < 0 || (uint32_t)g->write.res != g->write_len) {
    g->active = false;
    rollback_pending(j, seg, g->buf, g->start, g->end, g->write.res < 0 ? g->write.res : -EIO);
    return;
  }
  if (!relaxed(j) && g->sync.res < 0)
    return group_fail_sync(j, g->sync.res);

  seg->written_end = g->end;
  if (relaxed(j)) {
    if (j->unsynced_bytes == 0)
      j->unsynced_since_ns = store_now(st);
    j->unsynced_bytes += g->write_len;
  } else {
    seg->synced_end = g->end;
    j->durable_pos = (seg->index << 32) | g->end;
  }
  if (g->last_msg_seq > j->acked_seq)
    j->acked_seq = g->last_msg_seq;
  journal_buf_release(g->buf);
  g->active = false;
  store_ack_complete(st, g->last_msg_seq, 0);
}

static void group_on_done(struct io_req *req)
{
  struct journal *j = req->ctx;
  ASSERT(j->g.active && j->g.pending > 0);
  if (--j->g.pending == 0)
    group_complete(j);
}

/* Maintenance */

/* Removes segments from the front once their messages are all removed and
 * the removals are durable. Only the oldest segment goes, so a removal
 * record can never vanish while an older segment contains its target. */
static void remove_empty_segments(struct journal *j)
{
  bool removed = false;
  /* Bounded by the segment count; the active segment stays. */
  while (j->seg_count > 1) {
    struct segment *seg = j->segs[0];
    if (seg->live != 0 || seg->empty_pos > j->durable_pos || seg->synced_end != seg->end)
      break;
    char path[JOURNAL_PATH_MAX];
    journal_segment_path(j, seg->index, path, sizeof(path));
    int rc = j->io->ops->unlink(j->io, path);
    if (rc < 0) {
      log_warn("stream %s: removing empty segment %s failed: %s; it is kept",
               j->st->name, path, strerror(-rc));
      break;
    }
    segment_free(j, seg);
    memmove(j->segs, j->segs + 1, (j->seg_count - 1) * sizeof(*j->segs));
    j->seg_count--;
    removed = true;
  }
  if (removed)
    j->io->ops->fsync_dir(j->io, j->st->dir);
}

static bool relaxed_sync_due(struct journal *j, struct segment *seg)
{
  if (seg->written_end == seg->synced_end)
    return false;
  if (j->sync_now)
    return true;
  if (j->unsynced_bytes + j->buf_cap > j->st->cfg.sync_bytes_max)
    return true;
  return store_now(j->st) - j->unsynced_since_ns >= j->st->cfg.sync_interval_ns;
}

int journal_flush(struct store *st)
{
  struct journal *j = st->j;
  if (st->failed != 0)
    return st->failed;
  if (j->g.active)
    return 0;

  remove_empty_segments(j);
  /* Appending the range record may itself seal a full buffer. */
  emit_range(j);
  if (j->g.active || st->failed != 0)
    return st->failed;

  /* The oldest segment with bytes not yet handed to a write. */
  size_t i = 0;
  while (i < j->seg_count && j->segs[i]->end == j->segs[i]->flushed_end)
    i++;

  if (relaxed(j)) {
    struct segment *unsynced = NULL;
    for (size_t k = 0; k < j->seg_count && unsynced == NULL; k++)
      if (j->segs[k]->written_end != j->segs[k]->synced_end)
        unsynced = j->segs[k];
    bool creating = i < j->seg_count && j->segs[i]->fd < 0;
    if (unsynced == NULL && i == j->seg_count)
      j->sync_now = false;
    if (unsynced != NULL && (creating || relaxed_sync_due(j, unsynced))) {
      group_submit_sync(j, unsynced);
      return 0;
    }
  }
  if (i == j->seg_count)
    return 0;

  struct segment *seg = j->segs[i];
  if (seg->fd < 0) {
    int rc = journal_segment_create(j, seg);
    if (rc < 0) {
      /* The segment stays in memory, empty, and creation is tried again
       * with its next append. */
      rollback_pending(j, seg, NULL, SEGMENT_HEADER_AREA, 0, rc);
      return 0;
    }
  }
  group_submit_write(j, seg);
  return 0;
}

bool journal_busy(const struct store *st)
{
  const struct journal *j = st->j;
  if (j->g.active || j->range_first != 0)
    return true;
  for (size_t i = 0; i < j->seg_count; i++) {
    const struct segment *seg = j->segs[i];
    if (seg->end != seg->flushed_end || seg->written_end != seg->synced_end)
      return true;
  }
  return false;
}

int64_t journal_sync_due_ns(const struct store *st)
{
  const struct journal *j = st->j;
  if (j->unsynced_bytes == 0)
    return 0;
  int64_t left = j->unsynced_since_ns + st->cfg.sync_interval_ns - store_now(st);
  return left > 0 ? left : 1;
}

uint64_t journal_segment_count(const struct store *st)
{
  return st->j->seg_count;
}

/* Reads */

static int msg_buf_reserve(struct store_msg *msg, size_t size)
{
  if (msg->buf_size >= size)
    return 0;
  free(msg->buf);
  size = align_up(size, JOURNAL_MEM_ALIGN);
  msg->buf = aligned_alloc(JOURNAL_MEM_ALIGN, size);
  msg->buf_size = msg->buf != NULL ? size : 0;
  return msg->buf != NULL ? 0 : -ENOMEM;
}

/* Chooses the file range [*a0, *a1) to read for the record at offset. A
 * read within JOURNAL_READAHEAD of the previous one in the same segment is
 * taken as part of a scan, forward or backward, and fetches a whole window
 * in that direction. Any other read fetches only the record's blocks, so
 * random reads cost no more than before. */
static void readahead_range(const struct journal *j, const struct segment *seg, uint32_t offset,
                            uint32_t padded, uint32_t *a0, uint32_t *a1)
{
  const struct readahead *ra = &j->ra;
  uint32_t first = align_down(offset, j->block);
  uint32_t end = align_up((uint64_t)offset + padded, j->block);
  uint32_t distance = offset > ra->last_offset ? offset - ra->last_offset : ra->last_offset - offset;
  bool scan = ra->seg_index == seg->index && distance <= JOURNAL_READAHEAD;

  *a0 = first;
  *a1 = end;
  if (scan && offset >= ra->last_offset) {
    *a1 = first + JOURNAL_READAHEAD;
  } else if (scan) {
    *a0 = end > JOURNAL_READAHEAD ? end - JOURNAL_READAHEAD : 0;
  }
  /* Never past the block holding the written end. */
  uint32_t limit = align_up(seg->written_end, j->block);
  if (*a1 > limit)
    *a1 = limit > end ? limit : end;
}

/* Returns in *out the padded bytes of the record at offset, from the
 * read-ahead window, reading the window first when it lacks them. Only
 * bytes below written_end enter the window: a rollback rewrites bytes past
 * it only, and J1 keeps the ones below. */
static int read_via_window(struct journal *j, struct segment *seg, uint32_t offset,
                           uint32_t padded, const uint8_t **out)
{
  struct readahead *ra = &j->ra;
  bool hit = ra->seg_index == seg->index && offset >= ra->base &&
             (uint64_t)offset + padded <= (uint64_t)ra->base + ra->len;
  if (!hit) {
    if (ra->mem == NULL) {
      ra->mem = aligned_alloc(JOURNAL_MEM_ALIGN, JOURNAL_READAHEAD);
      if (ra->mem == NULL)
        return -ENOMEM;
    }
    uint32_t a0, a1;
    readahead_range(j, seg, offset, padded, &a0, &a1);
    ASSERT(a1 - a0 <= JOURNAL_READAHEAD);
    ra->seg_index = 0;
    ssize_t n = j->io->ops->pread(j->io, seg->fd, ra->mem, a1 - a0, a0);
    if (n < 0)
      return (int)n;
    if ((uint64_t)a0 + (uint64_t)n < (uint64_t)offset + padded)
      return -EIO;
    uint64_t valid_end = (uint64_t)a0 + (uint64_t)n;
    if (valid_end > seg->written_end)
      valid_end = seg->written_end > offset + padded ? seg->written_end : offset + padded;
    ra->seg_index = seg->index;
    ra->base = a0;
    ra->len = (uint32_t)(valid_end - a0);
  }
  ra->last_offset = offset;
  *out = ra->mem + (offset - ra->base);
  return 0;
}

/* Reads one record: from the write buffers while its bytes may not be on
 * disk yet, else from the file with aligned O_DIRECT reads, through the
 * read-ahead window when the record fits in half of it. */
int journal_read(struct store *st, uint64_t loc, uint32_t length, struct store_msg *msg,
                 struct record_view *view)
{
  struct journal *j = st->j;
  struct segment *seg = journal_segment(j, loc >> 32);
  uint32_t offset = (uint32_t)loc;
  uint32_t padded = align_up(length, RECORD_ALIGN);
  ASSERT(seg != NULL);

  const struct wbuf *src = NULL;
  if (seg->active != NULL && offset >= seg->active->base)
    src = seg->active;
  else if (j->g.active && j->g.seg == seg && j->g.buf != NULL && offset >= j->g.buf->base && offset < j->g.end)
    src = j->g.buf;

  uint8_t *p;
  const uint8_t *window = NULL;
  if (src == NULL && padded <= JOURNAL_READAHEAD / 2) {
    int rc = read_via_window(j, seg, offset, padded, &window);
    if (rc < 0)
      return rc;
  }
  if (src != NULL || window != NULL) {
    int rc = msg_buf_reserve(msg, padded);
    if (rc < 0)
      return rc;
    memcpy(msg->buf, src != NULL ? src->mem + (offset - src->base) : window, padded);
    p = msg->buf;
  } else {
    uint32_t a0 = align_down(offset, j->block);
    uint32_t a1 = align_up((uint64_t)offset + padded, j->block);
    int rc = msg_buf_reserve(msg, a1 - a0);
    if (rc < 0)
      return rc;
    ssize_t n = j->io->ops->pread(j->io, seg->fd, msg->buf, a1 - a0, a0);
    if (n < 0)
      return (int)n;
    if ((uint32_t)n < a1 - a0)
      return -EIO;
    p = msg->buf + (offset - a0);
  }

  enum record_status rs = record_decode(p, padded, seg->index, offset, view);
  if (rs != RECORD_OK) {
    log_error("stream %s: segment %016llx offset %u: %s on read", st->name,
              (unsigned long long)seg->index, offset, record_status_text(rs));
    return -EBADMSG;
  }
  return 0;
}

/* Open and close */

int journal_close(struct store *st)
{
  struct journal *j = st->j;
  if (j == NULL)
    return 0;
  if (j->g.active)
    return -EBUSY;
  for (size_t i = 0; i < j->seg_count; i++)
    segment_free(j, j->segs[i]);
  for (int i = 0; i < JOURNAL_BUFFERS; i++)
    free(j->bufs[i].mem);
  free(j->ra.mem);
  free(j->segs);
  free(j->requeue);
  free(j->hdr_buf);
  free(j);
  st->j = NULL;
  return 0;
}
