/* SPDX-License-Identifier: Apache-2.0 */
/* Internal types of the file store's journal, shared by journal.c (appends,
 * group commit) and journal_recover.c (open and recovery). Private to
 * storage/. */
#ifndef SHOAL_STORAGE_JOURNAL_H
#define SHOAL_STORAGE_JOURNAL_H

#include "storage/store_int.h"

/* Write buffers per stream: the group in flight, the active segment's, and
 * a new segment's while the previous one still has bytes to write. */
#define JOURNAL_BUFFERS 3
/* Memory alignment of write buffers and O_DIRECT read buffers; at least
 * any STATX_DIOALIGN memory alignment seen in practice. */
#define JOURNAL_MEM_ALIGN 4096
#define JOURNAL_PATH_MAX 4096
/* Sector size R6 uses to tell a torn write from a flipped bit. */
#define JOURNAL_SECTOR 512
/* empty_pos of a segment whose last message was removed but whose removal
 * record is not appended yet. */
#define JOURNAL_POS_AWAITING UINT64_MAX
/* Bytes one read-ahead pread fetches during a scan of records on disk.
 * NOTE: every store that reads from its files keeps one such buffer, so a
 * shard with thousands of streams read from disk spends 256 KiB on each; a
 * buffer per shard would cap that, but the store API knows no shard. */
#define JOURNAL_READAHEAD (256u << 10)

/* A write buffer: file bytes [base, base + len) of one segment. */
struct wbuf {
  uint8_t *mem;            /* buf_cap bytes, JOURNAL_MEM_ALIGN aligned */
  uint32_t base;           /* a multiple of the block size */
  uint32_t len;
  uint64_t last_msg_seq;   /* newest message appended here, 0 if none */
  bool in_use;
};

struct segment {
  uint64_t index;
  int fd;                  /* -1 until the file is created (J3) */
  uint64_t first_seq;
  uint32_t prev_end;
  uint32_t size;
  uint32_t end;            /* logical end: where the next record goes */
  uint32_t flushed_end;    /* end of the bytes handed to a write */
  uint32_t written_end;    /* end of the bytes whose write completed */
  uint32_t synced_end;     /* end of the durable bytes */
  uint32_t dirty_end;      /* furthest byte any write reached (J6) */
  struct wbuf *active;     /* receives appends; NULL when none yet */
  uint64_t live;           /* messages not removed */
  bool has_tombstones;
  /* Journal position (index << 32 | offset) after the record that removed
   * the last message; the file may go once that is durable. */
  uint64_t empty_pos;
};

/* The write group in flight (J2): a write and, under the default policy,
 * the fdatasync linked to it; or a lone fdatasync (relaxed policy). */
struct group {
  bool active;
  bool sync_only;
  struct segment *seg;
  struct wbuf *buf;
  uint32_t start;          /* logical bytes [start, end) are new in this group */
  uint32_t end;
  uint32_t write_len;
  uint64_t last_msg_seq;
  int pending;             /* requests whose callback has not run */
  struct io_req write;
  struct io_req sync;
};

/* The read-ahead window: file bytes [base, base + len) of one segment,
 * all below its written_end, so they never change (J1). */
struct readahead {
  uint8_t *mem;            /* JOURNAL_READAHEAD bytes, allocated at the first file read */
  uint64_t seg_index;      /* 0 when the window is empty */
  uint32_t base;
  uint32_t len;
  uint32_t last_offset;    /* offset of the last record read from the file */
};

/* A removal record kept across a rollback. */
struct requeued {
  enum record_type type;
  uint64_t args[2];
  char *subject;
  uint16_t subject_len;
};

struct journal {
  struct store *st;
  struct io_backend *io;
  uint32_t block;          /* write alignment: STATX_DIOALIGN, else 4096 */
  uint32_t buf_cap;        /* bytes per write buffer */
  uint64_t torn_window;    /* J8 */
  struct segment **segs;   /* by index, oldest first; the last is active */
  size_t seg_count;
  size_t seg_cap;
  struct wbuf bufs[JOURNAL_BUFFERS];
  struct group g;
  uint64_t acked_seq;      /* newest message reported to its callback */
  uint64_t durable_pos;    /* index << 32 | offset of the durable end */
  uint64_t range_first;    /* pending head removals, 0 when none */
  uint64_t range_last;
  uint64_t unsynced_bytes; /* relaxed policy: written since the last sync */
  int64_t unsynced_since_ns;
  bool sync_now;           /* relaxed policy: sync at the next flush, due or not */
  bool rolling_back;
  struct requeued *requeue;
  uint32_t requeue_count;
  uint32_t requeue_cap;
  uint8_t *hdr_buf;        /* SEGMENT_HEADER_AREA bytes, aligned */
  struct readahead ra;
};

struct segment *journal_segment(struct journal *j, uint64_t index);
struct segment *journal_active(struct journal *j);
void journal_segment_path(const struct journal *j, uint64_t index, char *out, size_t size);
struct wbuf *journal_buf_take(struct journal *j, uint32_t base);
void journal_buf_release(struct wbuf *b);
int journal_segment_add(struct journal *j, uint64_t index, uint64_t first_seq, uint32_t prev_end,
                        uint32_t size);
int journal_segment_create(struct journal *j, struct segment *seg);
/* Sets the write alignment and the sizes that follow from it. */
void journal_set_block(struct journal *j, uint32_t block);

#endif
