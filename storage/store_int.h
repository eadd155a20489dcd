/* SPDX-License-Identifier: Apache-2.0 */
/* Internal types of the store, shared by store.c (API, limits, memory
 * store), store_index.c (sequence index and subject table) and journal.c
 * (segment files, group commit, recovery). Private to storage/. */
#ifndef SHOAL_STORAGE_STORE_INT_H
#define SHOAL_STORAGE_STORE_INT_H

#include "storage/record.h"
#include "storage/store.h"

/* One sequence. loc locates the record: for a file store the segment index
 * in the high 32 bits and the file offset in the low 32, for a memory store
 * the address of the encoded record. length 0 marks a removed sequence. */
struct store_entry {
  uint64_t loc;
  uint32_t length;         /* record length without padding */
  uint32_t subject_id : 31;
  uint32_t has_hdr : 1;    /* headers change the bytes a file store charges */
  int64_t ts_ns;
};
_Static_assert(sizeof(struct store_entry) == 24, "one index entry per sequence stays 24 bytes");

/* Subject ids fit in the 31 bits of store_entry.subject_id. */
#define STORE_SUBJECT_ID_MAX ((1u << 31) - 1)

struct store_subject {
  char *name;
  uint16_t len;
  uint32_t id;
  uint64_t hash;
  uint64_t msgs;
  uint64_t first_seq;      /* lower bound of the first live sequence */
  uint64_t last_seq;       /* upper bound of the last live sequence */
  struct store_subject *next;   /* hash bucket chain */
};

/* Sequence index: entries[i] describes sequence base_seq + i. Entries
 * below first live sequence are dropped from the front in batches. */
struct store_index {
  struct store_entry *entries;
  uint64_t base_seq;
  uint64_t count;          /* entries in use from entries[0] */
  uint64_t cap;
  struct store_subject **buckets;
  uint64_t bucket_count;   /* a power of two */
  uint64_t subject_count;
  struct store_subject **by_id;
  uint32_t id_cap;
  uint32_t *free_ids;
  uint32_t free_count;
};

int index_init(struct store_index *ix, uint64_t first_seq);
void index_free(struct store_index *ix);
/* Entry of seq, or NULL when outside the index or removed. */
struct store_entry *index_get(struct store_index *ix, uint64_t seq);
/* Appends the entry of the next sequence. Returns 0 or -ENOMEM. */
int index_add(struct store_index *ix, uint64_t seq, uint64_t loc, uint32_t length, bool has_hdr,
              const char *subject, uint16_t subject_len, int64_t ts_ns);
/* Marks seq removed and updates its subject; returns the removed entry's
 * copy in *out. Returns false when seq was not live. */
bool index_remove(struct store_index *ix, uint64_t seq, struct store_entry *out);
/* Drops the entries of sequences above seq (they must be removed first). */
void index_truncate(struct store_index *ix, uint64_t seq);
/* Drops removed entries from the front up to, not including, seq. */
void index_trim_front(struct store_index *ix, uint64_t seq);
struct store_subject *index_subject(const struct store_index *ix, const char *s, uint16_t len);
struct store_subject *index_subject_by_id(const struct store_index *ix, uint32_t id);
/* First and last live sequences of a subject, tightening its bounds. */
uint64_t index_subject_first(struct store_index *ix, struct store_subject *sub);
uint64_t index_subject_last(struct store_index *ix, struct store_subject *sub);

/* A pending "durable" callback. */
struct store_ack {
  uint64_t seq;
  store_on_durable_fn fn;
  void *ctx;
};

struct journal;

struct store {
  char *name;
  char *dir;
  enum store_kind kind;
  struct store_config cfg;     /* name and dir point at the copies above */
  struct store_index ix;
  uint64_t first_seq;
  uint64_t last_seq;
  uint64_t msgs;
  uint64_t bytes;              /* sum of store_msg_bytes() of the live messages */
  int failed;                  /* sticky -errno after an fdatasync failure */
  bool replaying;              /* recovery: changes are not logged again */

  /* Callbacks waiting for durability, in sequence order. */
  struct store_ack *acks;
  uint64_t ack_head;
  uint64_t ack_count;
  uint64_t ack_cap;

  struct journal *j;           /* file stores only */
};

int64_t store_now(const struct store *st);
int store_ack_push(struct store *st, uint64_t seq, store_on_durable_fn fn, void *ctx);
/* Runs the callbacks of every pending append with seq <= upto, with res. */
void store_ack_complete(struct store *st, uint64_t upto, int res);
/* Fails every pending callback with res; appends made by those callbacks
 * wait for their own group. */
void store_ack_fail_all(struct store *st, int res);

/* Removal shared by API, limits and replay; logs nothing. Returns false
 * when seq was not live. */
bool store_remove_seq(struct store *st, uint64_t seq);
/* Applies a subject purge to the index; returns the number removed. */
uint64_t store_apply_purge(struct store *st, const char *filter, size_t filter_len,
                           uint64_t up_to_seq, uint64_t keep);
/* Adds a message to the index and the counters (append and replay). */
int store_index_msg(struct store *st, uint64_t seq, uint64_t loc, uint32_t length,
                    uint32_t hdr_len, const char *subject, uint16_t subject_len, int64_t ts_ns);
/* The store_msg_bytes() figure of an indexed message. */
uint64_t store_entry_bytes(const struct store *st, const struct store_entry *e);
/* Removes messages above seq after a failed write (no callbacks). */
void store_rollback_to(struct store *st, uint64_t seq);
/* Applies the limits; returns the number of messages removed. */
uint64_t store_enforce_limits(struct store *st);

/* Journal (file store) operations, in journal.c. */
int journal_open(struct store *st, struct store_error *err);
/* Returns -EBUSY while a group is in flight. */
int journal_close(struct store *st);
int journal_append(struct store *st, const struct record_fields *f, uint64_t *loc);
/* Logs a removal; ranges of head removals are merged until the next flush. */
int journal_log_delete(struct store *st, uint64_t seq);
int journal_log_range(struct store *st, uint64_t first, uint64_t last);
int journal_log_purge(struct store *st, const char *filter, size_t filter_len,
                      uint64_t up_to_seq, uint64_t keep);
void journal_on_remove(struct store *st, uint64_t loc);
int journal_flush(struct store *st);
bool journal_busy(const struct store *st);
int64_t journal_sync_due_ns(const struct store *st);
int journal_read(struct store *st, uint64_t loc, uint32_t length, struct store_msg *msg,
                 struct record_view *view);
uint64_t journal_segment_count(const struct store *st);

#endif
