/* SPDX-License-Identifier: Apache-2.0 */
/* Opening a file store: finding the segment files, checking them by the
 * recovery rules R1..R8 of storage/record.c, rebuilding the index by
 * replaying every record, and cutting a torn tail. Damage is reported with
 * stream, segment and offset, and the store is not opened; nothing on disk
 * changes before every segment passed its checks.
 *
 * NOTE: each segment is read whole into memory, so recovery needs one
 * buffer of the segment size, and start-up time grows with the journal:
 * 2 to 2.6 s for 1 GiB of 1 KiB messages on a virtio disk, measured with
 * bench/store/run.sh.
 * TODO: an index snapshot written at clean shutdown would let start-up skip
 * the scan of sealed segments; recovery is correct without it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/log.h"
#include "storage/journal.h"

static uint32_t align_down(uint64_t v, uint32_t a) { return (uint32_t)(v - v % a); }
static uint32_t align_up(uint64_t v, uint32_t a) { return (uint32_t)((v + a - 1) / a * a); }

/* Segment files found in the directory, sorted by index. */
struct seg_list {
  uint64_t *index;
  size_t count;
  size_t cap;
  bool oom;
};

struct recovery {
  struct journal *j;
  struct store_error *err;
  uint8_t *scan;           /* one whole segment, aligned */
  size_t scan_size;
};

static void copy_message(struct store_error *err, const char *msg)
{
  size_t n = strlen(msg);
  if (n >= sizeof(err->message))
    n = sizeof(err->message) - 1;
  memcpy(err->message, msg, n);
  err->message[n] = '\0';
}

/* Fills err and logs; returns -EUCLEAN. */
__attribute__((format(printf, 4, 5)))
static int corrupt(struct recovery *r, uint64_t seg_index, uint64_t offset, const char *fmt, ...)
{
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);

  struct store *st = r->j->st;
  char path[JOURNAL_PATH_MAX];
  journal_segment_path(r->j, seg_index, path, sizeof(path));
  char msg[8192];
  snprintf(msg, sizeof(msg), "stream %s: segment %s offset %llu: %s; the stream was not opened. "
           "Restore the segment from a copy, or move it aside to open the stream without it",
           st->name, path, (unsigned long long)offset, what);
  log_error("%s", msg);
  if (r->err != NULL) {
    copy_message(r->err, msg);
    r->err->segment = seg_index;
    r->err->offset = offset;
  }
  return -EUCLEAN;
}

static int fail(struct recovery *r, int rc, const char *what)
{
  struct store *st = r->j->st;
  char msg[8192];
  if (rc == -EOPNOTSUPP || rc == -EINVAL)
    snprintf(msg, sizeof(msg), "stream %s: %s in %s failed: the file system does not keep "
             "O_DIRECT writes on durable storage (tmpfs or ramfs, or no O_DIRECT support); "
             "put the store directory on a disk file system such as ext4 or xfs",
             st->name, what, st->dir);
  else
    snprintf(msg, sizeof(msg), "stream %s: %s in %s failed: %s", st->name, what, st->dir,
             strerror(-rc));
  log_error("%s", msg);
  if (r->err != NULL)
    copy_message(r->err, msg);
  return rc;
}

static void on_dir_entry(void *ctx, const char *name)
{
  struct seg_list *l = ctx;
  unsigned long long index;
  char tail[8];
  if (strlen(name) != 20 || sscanf(name, "%16llx%4s", &index, tail) != 2 || strcmp(tail, ".seg") != 0)
    return;
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    uint64_t *p = realloc(l->index, cap * sizeof(*p));
    if (p == NULL) {
      l->oom = true;
      return;
    }
    l->index = p;
    l->cap = cap;
  }
  l->index[l->count++] = index;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void journal_set_block(struct journal *j, uint32_t block)
{
  const struct store_config *c = &j->st->cfg;
  j->block = block;
  j->buf_cap = align_up((uint64_t)c->group_bytes_max + block, JOURNAL_MEM_ALIGN);
  j->torn_window = j->buf_cap;
  if (c->sync == STORE_SYNC_RELAXED)
    j->torn_window += c->sync_bytes_max;
}

static int read_whole(struct recovery *r, int fd, uint64_t size)
{
  if (size == 0)
    return 0;
  if (size > r->scan_size) {
    free(r->scan);
    r->scan = aligned_alloc(JOURNAL_MEM_ALIGN, align_up(size, JOURNAL_MEM_ALIGN));
    r->scan_size = r->scan != NULL ? size : 0;
    if (r->scan == NULL)
      return -ENOMEM;
  }
  struct io_backend *io = r->j->io;
  ssize_t n = io->ops->pread(io, fd, r->scan, size, 0);
  if (n < 0)
    return (int)n;
  /* A file shorter than its header says reads as zeros past its end. */
  memset(r->scan + n, 0, size - (size_t)n);
  return 0;
}

/* Replays one valid record into the index. */
static int apply_record(struct recovery *r, struct segment *seg, const struct record_view *v,
                        uint32_t offset)
{
  struct store *st = r->j->st;
  uint64_t args[2] = {0, 0};
  if (v->type != RECORD_MSG) {
    uint32_t want = v->type == RECORD_DELETE ? 8 : 16;
    if (v->data_len != want || v->hdr_len != 0)
      return corrupt(r, seg->index, offset, "removal record with a body of %u bytes", v->data_len);
    memcpy(args, v->data, want);
  }

  switch (v->type) {
  case RECORD_MSG:
    if (v->seq != st->last_seq + 1)
      return corrupt(r, seg->index, offset, "message sequence %llu where %llu was expected",
                     (unsigned long long)v->seq, (unsigned long long)st->last_seq + 1);
    if (store_index_msg(st, v->seq, (seg->index << 32) | offset, v->length, v->hdr_len,
                        v->subject, v->subject_len, v->ts_ns) < 0)
      return -ENOMEM;
    seg->live++;
    return 0;
  case RECORD_DELETE:
    store_remove_seq(st, args[0]);
    return 0;
  case RECORD_DELETE_RANGE:
    /* Bounded by the live sequence range. */
    for (uint64_t s = args[0] > st->first_seq ? args[0] : st->first_seq; s <= args[1] && s <= st->last_seq; s++)
      store_remove_seq(st, s);
    return 0;
  case RECORD_PURGE:
    store_apply_purge(st, v->subject, v->subject_len, args[0], args[1]);
    return 0;
  }
  return corrupt(r, seg->index, offset, "unknown record type %d", (int)v->type);
}

/* Result of reading one segment's records. */
struct scan_result {
  uint32_t valid_end;            /* P: end of the valid records */
  enum record_status status;     /* what stopped the scan at P */
  struct record_view at_end;     /* header fields at P, when they decoded */
  uint32_t max_synced_end;
};

/* Reads records from the header area on, replaying each, until one does
 * not decode or stop_at is reached. */
static int scan_records(struct recovery *r, struct segment *seg, uint32_t size, uint32_t stop_at,
                        struct scan_result *out)
{
  uint32_t off = SEGMENT_HEADER_AREA;
  memset(out, 0, sizeof(*out));
  /* Bounded by the segment size: each record advances off. */
  while (off < size && off < stop_at) {
    struct record_view v;
    enum record_status rs = record_decode(r->scan + off, size - off, seg->index, off, &v);
    if (rs != RECORD_OK) {
      out->status = rs;
      out->at_end = v;
      break;
    }
    if (v.synced_end > out->max_synced_end)
      out->max_synced_end = v.synced_end;
    int rc = apply_record(r, seg, &v, off);
    if (rc < 0)
      return rc;
    off += v.padded_length;
  }
  out->valid_end = off;
  return 0;
}

/* R6: a torn record has a sector-sized piece past P that is all zero. */
static bool looks_torn(const uint8_t *scan, uint32_t p, uint32_t end)
{
  for (uint32_t s = p; s < end;) {
    uint32_t next = align_down(s, JOURNAL_SECTOR) + JOURNAL_SECTOR;
    if (next > end)
      next = end;
    if (bytes_zero(scan + s, next - s))
      return true;
    s = next;
  }
  return false;
}

/* R4..R7 for the newest segment. Returns 0 with the bytes past P zeroed on
 * disk when they were a torn tail, or -EUCLEAN. */
static int check_tail(struct recovery *r, struct segment *seg, const struct segment_header *h,
                      const struct scan_result *sr)
{
  struct journal *j = r->j;
  uint32_t p = sr->valid_end;
  uint32_t size = (uint32_t)h->size;

  if (sr->max_synced_end > p)
    return corrupt(r, seg->index, p, "%s below the synced end %u",
                   record_status_text(sr->status), sr->max_synced_end);
  if (sr->status == RECORD_MISPLACED || (sr->status == RECORD_TRUNCATED && sr->at_end.length != 0))
    return corrupt(r, seg->index, p, "%s", record_status_text(sr->status));
  if (sr->status == RECORD_BAD_CHECKSUM || sr->status == RECORD_BAD_HEADER) {
    uint32_t end = sr->status == RECORD_BAD_CHECKSUM ? p + sr->at_end.length
                                                     : align_up(p + RECORD_HEADER_SIZE, JOURNAL_SECTOR);
    if (end > size)
      end = size;
    if (!looks_torn(r->scan, p, end))
      return corrupt(r, seg->index, p, "%s, and no part of the record is missing as after a torn "
                     "write", record_status_text(sr->status));
  }

  /* R5: past P, only intact records at their own offset, and nothing at
   * all beyond the window of unsynced writes. The last write started at
   * the block holding P, counted in the segment's block size, which can be
   * smaller than the alignment the device reports now. */
  uint32_t block = h->block_size != 0 && h->block_size < j->block ? h->block_size : j->block;
  uint64_t window_end = (uint64_t)align_down(p, block) + h->torn_window;
  uint32_t last_nonzero = p;
  for (uint32_t off = align_up(p, RECORD_ALIGN); off < size; off += RECORD_ALIGN) {
    if (bytes_zero(r->scan + off, RECORD_ALIGN))
      continue;
    last_nonzero = off + RECORD_ALIGN;
    if (off >= window_end)
      return corrupt(r, seg->index, off, "data past the end of the journal, beyond what unsynced "
                     "writes from %u could have reached", p);
    struct record_view v;
    if (record_decode(r->scan + off, size - off, seg->index, off, &v) == RECORD_MISPLACED)
      return corrupt(r, seg->index, off, "%s", record_status_text(RECORD_MISPLACED));
  }

  /* R7: overwrite the torn tail with zeros, durably. */
  if (last_nonzero > p) {
    uint32_t a0 = align_down(p, j->block);
    uint32_t a1 = align_up(last_nonzero, j->block);
    memset(r->scan + p, 0, last_nonzero - p);
    ssize_t n = j->io->ops->pwrite(j->io, seg->fd, r->scan + a0, a1 - a0, a0);
    int rc = n == (ssize_t)(a1 - a0) ? j->io->ops->fdatasync(j->io, seg->fd) : n < 0 ? (int)n : -EIO;
    if (rc < 0)
      return fail(r, rc, "zeroing the torn tail of the newest segment");
    log_warn("stream %s: segment %016llx: cut a torn tail of %u bytes at offset %u, left by "
             "writes in flight at a crash", j->st->name, (unsigned long long)seg->index,
             last_nonzero - p, p);
  }
  return 0;
}

/* Opens one segment and reads its header. Returns 0, -ENODATA for an all
 * zero header, or another -errno. */
static int open_segment(struct recovery *r, uint64_t index, int *fd, struct segment_header *h)
{
  struct journal *j = r->j;
  char path[JOURNAL_PATH_MAX];
  journal_segment_path(j, index, path, sizeof(path));
  *fd = j->io->ops->open(j->io, path, IO_OPEN_DIRECT);
  if (*fd < 0)
    return fail(r, *fd, "opening a segment");
  ssize_t n = j->io->ops->pread(j->io, *fd, j->hdr_buf, SEGMENT_HEADER_AREA, 0);
  if (n < 0)
    return fail(r, (int)n, "reading a segment header");
  memset(j->hdr_buf + n, 0, SEGMENT_HEADER_AREA - (size_t)n);
  return segment_header_decode(j->hdr_buf, h);
}

/* R2: drops a newest segment whose creation did not finish. Returns 1 when
 * dropped, 0 when the segment is not such a one, or -errno. */
static int drop_unfinished(struct recovery *r, uint64_t index, int fd)
{
  struct journal *j = r->j;
  int64_t size = j->io->ops->file_size(j->io, fd);
  if (size < 0)
    return (int)size;
  int rc = read_whole(r, fd, (uint64_t)size);
  if (rc < 0)
    return rc;
  if (!bytes_zero(r->scan, (size_t)size))
    return 0;

  char path[JOURNAL_PATH_MAX];
  journal_segment_path(j, index, path, sizeof(path));
  j->io->ops->close(j->io, fd);
  rc = j->io->ops->unlink(j->io, path);
  if (rc == 0)
    rc = j->io->ops->fsync_dir(j->io, j->st->dir);
  if (rc < 0)
    return fail(r, rc, "removing an unfinished segment");
  log_warn("stream %s: removed segment %s, whose creation did not finish before a crash",
           j->st->name, path);
  return 1;
}

/* Checks and replays segment k of the list (R1..R7). */
static int recover_segment(struct recovery *r, const struct seg_list *l, size_t k,
                           const struct segment_header *h, const struct segment_header *next)
{
  struct journal *j = r->j;
  struct store *st = j->st;
  struct segment *seg = journal_active(j);

  if (k == 0) {
    index_free(&st->ix);
    if (index_init(&st->ix, h->first_seq) < 0)
      return -ENOMEM;
    st->first_seq = h->first_seq;
    st->last_seq = h->first_seq - 1;
  } else if (h->first_seq != st->last_seq + 1) {
    return corrupt(r, h->index, 0, "segment starts at sequence %llu but the previous one ends "
                   "at %llu", (unsigned long long)h->first_seq, (unsigned long long)st->last_seq);
  }

  int rc = read_whole(r, seg->fd, h->size);
  if (rc < 0)
    return fail(r, rc, "reading a segment");

  struct scan_result sr;
  uint32_t stop = next != NULL ? (uint32_t)next->prev_end : UINT32_MAX;
  rc = scan_records(r, seg, (uint32_t)h->size, stop, &sr);
  if (rc < 0)
    return rc;

  if (next != NULL) {
    /* R3: a sealed segment is valid exactly up to the next one's prev_end. */
    if (sr.valid_end != next->prev_end)
      return corrupt(r, h->index, sr.valid_end, "%s where the next segment says the records "
                     "end at %llu", record_status_text(sr.status), (unsigned long long)next->prev_end);
  } else {
    rc = check_tail(r, seg, h, &sr);
    if (rc < 0)
      return rc;
  }
  seg->end = seg->flushed_end = seg->written_end = seg->synced_end = seg->dirty_end = sr.valid_end;
  return 0;
}

/* Gives the newest segment its write buffer, continuing at its end. */
static int setup_active(struct recovery *r)
{
  struct journal *j = r->j;
  struct segment *seg = journal_active(j);
  seg->active = journal_buf_take(j, align_down(seg->end, j->block));
  if (seg->active == NULL)
    return -ENOMEM;
  seg->active->len = seg->end - seg->active->base;
  /* The newest segment is the last one read into the scan buffer. */
  if (seg->active->len > 0)
    memcpy(seg->active->mem, r->scan + seg->active->base, seg->active->len);
  j->durable_pos = (seg->index << 32) | seg->end;
  j->acked_seq = j->st->last_seq;
  return 0;
}

/* R8: syncs the newest segment and the stream directory before the first
 * append. After a process crash the kernel still returns the newest
 * segment's unsynced tail and unsynced directory entries, so recovery
 * accepted them, but a power cut can still take them back. New records
 * must count their torn window (J8) from a durable end. */
static int sync_recovered(struct recovery *r)
{
  struct journal *j = r->j;
  int rc = j->io->ops->fdatasync(j->io, journal_active(j)->fd);
  if (rc == 0)
    rc = j->io->ops->fsync_dir(j->io, j->st->dir);
  return rc < 0 ? fail(r, rc, "syncing the recovered journal") : 0;
}

/* Creates the first segment of an empty stream. */
static int create_first(struct recovery *r, uint64_t index, uint64_t first_seq)
{
  struct journal *j = r->j;
  int rc = journal_segment_add(j, index, first_seq, 0, (uint32_t)j->st->cfg.segment_size);
  if (rc < 0)
    return rc;
  rc = journal_segment_create(j, journal_active(j));
  if (rc < 0)
    return fail(r, rc, "creating the first segment");
  j->st->first_seq = first_seq;
  j->st->last_seq = first_seq - 1;
  index_free(&j->st->ix);
  return index_init(&j->st->ix, first_seq);
}

static int recover_all(struct recovery *r, struct seg_list *l)
{
  struct journal *j = r->j;
  struct segment_header *hs = calloc(l->count, sizeof(*hs));
  int *fds = malloc(l->count * sizeof(*fds));
  int rc = hs == NULL || fds == NULL ? -ENOMEM : 0;
  size_t opened = 0;

  /* R1, R2: headers first, since sealed segments are checked against the
   * next one's header. */
  for (size_t k = 0; k < l->count && rc == 0; k++) {
    if (k > 0 && l->index[k] != l->index[k - 1] + 1) {
      rc = corrupt(r, l->index[k - 1] + 1, 0, "segment file missing between %016llx and %016llx",
                   (unsigned long long)l->index[k - 1], (unsigned long long)l->index[k]);
      break;
    }
    rc = open_segment(r, l->index[k], &fds[k], &hs[k]);
    if (fds[k] >= 0)
      opened = k + 1;
    if (rc == -ENODATA && k + 1 == l->count) {
      rc = drop_unfinished(r, l->index[k], fds[k]);
      if (rc == 1) {
        l->count--;
        opened--;
        rc = l->count == 0 ? (l->index[0] == 1 ? 1 : corrupt(r, l->index[0], 0, "the only segment "
                              "is unfinished, so the stream's first sequence is unknown")) : 0;
        break;
      }
      if (rc == 0)
        rc = corrupt(r, l->index[k], 0, "segment header is zero but the segment holds data");
    } else if (rc == -ENODATA || rc == -EBADMSG || (rc == 0 && hs[k].index != l->index[k])) {
      rc = corrupt(r, l->index[k], 0, "segment header is invalid");
    }
  }
  if (rc == 1) {
    rc = create_first(r, 1, 1);
    if (rc == 0)
      rc = setup_active(r);
  } else if (rc == 0) {
    journal_set_block(j, (uint32_t)j->io->ops->dio_align(j->io, fds[l->count - 1]));
    for (size_t k = 0; k < l->count && rc == 0; k++) {
      rc = journal_segment_add(j, l->index[k], hs[k].first_seq, (uint32_t)hs[k].prev_end, (uint32_t)hs[k].size);
      if (rc == 0) {
        journal_active(j)->fd = fds[k];
        fds[k] = -1;
        rc = recover_segment(r, l, k, &hs[k], k + 1 < l->count ? &hs[k + 1] : NULL);
      }
    }
    if (rc == 0)
      rc = setup_active(r);
    if (rc == 0)
      rc = sync_recovered(r);
  }

  for (size_t k = 0; k < opened && fds != NULL; k++)
    if (fds[k] >= 0)
      j->io->ops->close(j->io, fds[k]);
  free(hs);
  free(fds);
  return rc;
}

int journal_open(struct store *st, struct store_error *err)
{
  struct journal *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return -ENOMEM;
  st->j = j;
  j->st = st;
  j->io = st->cfg.io;
  j->hdr_buf = aligned_alloc(JOURNAL_MEM_ALIGN, SEGMENT_HEADER_AREA);
  if (j->hdr_buf == NULL)
    return -ENOMEM;

  struct recovery r = {.j = j, .err = err};
  int rc = j->io->ops->mkdir(j->io, st->dir);
  if (rc < 0 && rc != -EEXIST)
    return fail(&r, rc, "creating the stream directory");

  struct seg_list l = {0};
  rc = j->io->ops->list_dir(j->io, st->dir, on_dir_entry, &l);
  if (rc < 0 || l.oom) {
    free(l.index);
    return fail(&r, rc < 0 ? rc : -ENOMEM, "listing the stream directory");
  }
  if (l.count > 1)
    qsort(l.index, l.count, sizeof(*l.index), cmp_u64);

  if (l.count == 0) {
    rc = create_first(&r, 1, 1);
    if (rc == 0)
      rc = setup_active(&r);
  } else {
    rc = recover_all(&r, &l);
  }
  free(l.index);
  free(r.scan);
  return rc;
}
