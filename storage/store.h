/* SPDX-License-Identifier: Apache-2.0 */
/* The message store of one JetStream stream: appends with group commit,
 * reads by sequence and subject, limits retention, purge and delete, over
 * a journal of O_DIRECT segment files (storage/record.c describes the
 * format) or over memory only, behind the same functions.
 *
 * Threading: a store belongs to the shard that owns its stream, and every
 * function must be called from that shard's thread, including the
 * callbacks, which run from io_poll() of the store's I/O backend or from
 * store_flush(). Nothing here blocks except the synchronous file operations
 * listed in storage/io.h (open, segment creation and removal).
 *
 * The loop of a shard that owns stores does, each iteration:
 *   append ... (any number); store_flush(st) for each store with
 *   store_busy(st); io_flush(io); ...wait for events...; io_poll(io).
 * store_flush() starts a group commit of the appends made since the last
 * one; their callbacks run once the group is durable. */
#ifndef SHOAL_STORAGE_STORE_H
#define SHOAL_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/io.h"

struct store;

enum store_kind {
  STORE_FILE = 0,
  STORE_MEMORY,
};

enum store_discard {
  STORE_DISCARD_OLD = 0,   /* a limit removes the oldest messages */
  /* A limit rejects the new message with -EDQUOT. As in nats-server
   * 2.9.10, max_bytes rejects once the stored bytes plus the message's
   * header and payload lengths reach the limit, and a message that
   * replaces its subject's oldest under max_msgs_per_subject may pass. */
  STORE_DISCARD_NEW,
};

enum store_sync_policy {
  /* A message is reported durable after the fdatasync covering it. */
  STORE_SYNC_ALWAYS = 0,
  /* A message is reported after its write completed. fdatasync runs once
   * sync_interval_ns passed or sync_bytes_max bytes are unsynced, so a
   * power cut loses at most sync_bytes_max bytes plus one write group of
   * acknowledged data. The time bound holds only while the shard calls
   * store_flush() at least every sync_interval_ns when store_busy(). */
  STORE_SYNC_RELAXED,
};

/* Retention limits; a value <= 0 means no limit. */
struct store_limits {
  int64_t max_msgs;
  int64_t max_bytes;               /* sum of store_msg_bytes() of stored messages */
  int64_t max_age_ns;
  int64_t max_msgs_per_subject;    /* always discards the subject's oldest */
  int64_t max_msg_size;            /* headers plus payload */
  enum store_discard discard;      /* for max_msgs and max_bytes */
};

struct store_config {
  const char *name;                /* stream name, for messages */
  enum store_kind kind;
  const char *dir;                 /* STORE_FILE: the stream's directory, created if missing */
  struct io_backend *io;           /* STORE_FILE: owned by the caller, outlives the store */
  struct store_limits limits;
  enum store_sync_policy sync;
  int64_t sync_interval_ns;        /* relaxed policy; 0 means 1 s */
  uint64_t sync_bytes_max;         /* relaxed policy; 0 means 8 MiB */
  uint64_t segment_size;           /* 0 means 64 MiB; at most 1 GiB */
  uint32_t group_bytes_max;        /* maximum bytes in one write; 0 means 4 MiB */
  /* Wall clock in nanoseconds for timestamps, max_age and the relaxed sync
   * interval; NULL means CLOCK_REALTIME. */
  int64_t (*clock_ns)(void *ctx);
  void *clock_ctx;
};

/* The failure report of store_open: a message naming the stream, and for
 * damage the segment file and the offset. */
struct store_error {
  char message[512];
  uint64_t segment;                /* segment index, 0 when not about one */
  uint64_t offset;
};

/* Called once per append with res 0 when the message is durable under the
 * store's policy, or a negative errno when it was not stored (-ENOSPC,
 * -EIO, -ECANCELED at close). After a failure the message's sequence is
 * free again and a later append may reuse it. */
typedef void (*store_on_durable_fn)(void *ctx, uint64_t seq, int res);

/* Opens or creates a store, recovering a file store from its segments.
 * Returns 0 and sets *out, or:
 *   -EOPNOTSUPP  the directory is on tmpfs or ramfs (no durable O_DIRECT),
 *   -EINVAL      a bad configuration or no O_DIRECT support,
 *   -EUCLEAN     the journal is damaged: err gives the place, and nothing
 *                was changed on disk,
 *   other -errno from the file system.
 * err (may be NULL) receives a message for every failure. */
int store_open(const struct store_config *cfg, struct store **out, struct store_error *err);

/* Closes the store. Appends not yet flushed fail with -ECANCELED. Returns
 * -EBUSY, closing nothing, while a write group is still in flight: poll
 * the backend and call again. */
int store_close(struct store *st);

/* Appends a message. subject must be a literal subject; hdr (NATS header
 * block) and data may be NULL with length 0. ts_ns 0 takes the clock. The
 * data is copied. On success sets *seq_out and returns 0; on_durable (may
 * be NULL) runs later. Errors, with on_durable not called:
 *   -EMSGSIZE  above max_msg_size or the group size,
 *   -EDQUOT    a limit with discard new,
 *   -EAGAIN    the write buffers are full while a group is in flight;
 *              retry after io_poll,
 *   -EIO       the store failed an fdatasync and must be reopened,
 *   -EINVAL    an empty subject or field lengths out of range. */
int store_append(struct store *st, const char *subject, size_t subject_len,
                 const void *hdr, size_t hdr_len, const void *data, size_t data_len,
                 int64_t ts_ns, store_on_durable_fn on_durable, void *ctx, uint64_t *seq_out);

/* Starts writing the appends made since the last flush, when no group is
 * in flight, and runs due maintenance (relaxed sync, segment removal).
 * Memory stores run their callbacks here. Returns 0 or the store's sticky
 * error. */
int store_flush(struct store *st);

/* True while appends wait for a flush or a group is in flight. */
bool store_busy(const struct store *st);

/* Relaxed policy: makes the next store_flush() sync the written bytes
 * without waiting for the interval, as at shutdown. No effect otherwise. */
void store_sync_soon(struct store *st);

/* Relaxed policy: returns the nanoseconds, at least 1, until the next
 * fdatasync of written bytes is due, so the shard can wake and call
 * store_flush() then. Returns 0 when no written bytes wait for one, under
 * the default policy, for memory stores and after a failure. */
int64_t store_sync_due_ns(const struct store *st);

/* One message read from the store. Zero-initialize before the first read;
 * the buffer is reused by later reads and freed by store_msg_free(). The
 * pointers are valid until the next read into the same store_msg. */
struct store_msg {
  uint64_t seq;
  int64_t ts_ns;
  const char *subject;
  uint16_t subject_len;
  const uint8_t *hdr;
  uint32_t hdr_len;
  const uint8_t *data;
  uint32_t data_len;
  uint8_t *buf;
  size_t buf_size;
};

void store_msg_free(struct store_msg *msg);

/* Returns the bytes a message with these lengths adds to the stream's byte
 * count: nats-server 2.9.10's figure for the store kind, so that stream
 * state, max_bytes and the server's storage limits agree with it. File
 * stores charge subject, headers and payload plus 30, and 4 more when
 * there are headers; memory stores the lengths plus 16. The journal
 * record is larger (RECORD_OVERHEAD plus the lengths, padded). */
uint64_t store_msg_bytes(enum store_kind kind, size_t subject_len, size_t hdr_len, size_t data_len);

/* Reads the message with sequence seq, verifying its checksum. Returns 0,
 * -ENOENT when it was removed or never stored, -EBADMSG when the bytes
 * read back fail their checksum (the message is reported, not returned),
 * or -errno of the read. */
int store_read(struct store *st, uint64_t seq, struct store_msg *msg);

/* Reads the first message with sequence >= start_seq whose subject matches
 * filter (wildcards allowed; NULL or "" or ">" match all). Errors as
 * store_read; -ENOENT when no message matches. */
int store_read_next(struct store *st, uint64_t start_seq, const char *filter,
                    size_t filter_len, struct store_msg *msg);

/* Reads the last message whose subject matches filter. */
int store_read_last(struct store *st, const char *filter, size_t filter_len,
                    struct store_msg *msg);

/* Removes one message. Returns 0 or -ENOENT. The removal is written with
 * the next group; a crash before that brings the message back. */
int store_delete(struct store *st, uint64_t seq);

/* A purge: messages matching filter (NULL, "" or ">" for all) with
 * sequence below up_to_seq (0 for no bound), except the newest keep of
 * them (0 keeps none). up_to_seq and keep together are rejected. */
struct store_purge {
  const char *filter;
  size_t filter_len;
  uint64_t up_to_seq;
  uint64_t keep;
};

/* Purges; sets *purged (may be NULL) to the number removed. Returns 0 or
 * -EINVAL. Durable with the next group, as store_delete. */
int store_purge(struct store *st, const struct store_purge *req, uint64_t *purged);

/* Removes messages older than max_age by the clock. Call it on a timer;
 * appends call it too. Returns the number removed. */
uint64_t store_expire(struct store *st);

/* Replaces the limits and applies them at once. Returns 0 or -EINVAL. */
int store_set_limits(struct store *st, const struct store_limits *limits);

struct store_state {
  uint64_t msgs;
  uint64_t bytes;
  uint64_t first_seq;      /* last_seq + 1 when empty */
  uint64_t last_seq;
  int64_t first_ts_ns;     /* 0 when empty */
  int64_t last_ts_ns;
  uint64_t num_subjects;
  uint64_t num_deleted;    /* removed sequences between first_seq and last_seq */
  uint64_t segments;       /* segment files, 0 for memory stores */
};

void store_state(const struct store *st, struct store_state *out);

/* Number of stored messages on one literal subject. */
uint64_t store_subject_msgs(const struct store *st, const char *subject, size_t subject_len);

/* Calls fn for each subject matching filter with its message count. */
void store_subjects(const struct store *st, const char *filter, size_t filter_len,
                    void (*fn)(void *ctx, const char *subject, size_t len, uint64_t msgs),
                    void *ctx);

#endif
