/* SPDX-License-Identifier: Apache-2.0 */
/* The in-memory index of a store: sequence to record location, and the
 * subject table with per-subject message counts and sequence bounds.
 * Rebuilt from the journal at open; never written to disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/assert.h"
#include "storage/store_int.h"

#define INDEX_MIN_CAP 1024
#define INDEX_MIN_BUCKETS 64
/* Front entries are dropped once this many removed ones pile up there. */
#define INDEX_TRIM_BATCH 4096

int index_init(struct store_index *ix, uint64_t first_seq)
{
  memset(ix, 0, sizeof(*ix));
  ix->base_seq = first_seq;
  ix->cap = INDEX_MIN_CAP;
  ix->entries = malloc(ix->cap * sizeof(*ix->entries));
  ix->bucket_count = INDEX_MIN_BUCKETS;
  ix->buckets = calloc(ix->bucket_count, sizeof(*ix->buckets));
  if (ix->entries == NULL || ix->buckets == NULL) {
    index_free(ix);
    return -ENOMEM;
  }
  return 0;
}

void index_free(struct store_index *ix)
{
  for (uint32_t i = 0; i < ix->id_cap; i++) {
    if (ix->by_id != NULL && ix->by_id[i] != NULL) {
      free(ix->by_id[i]->name);
      free(ix->by_id[i]);
    }
  }
  free(ix->by_id);
  free(ix->free_ids);
  free(ix->buckets);
  free(ix->entries);
  memset(ix, 0, sizeof(*ix));
}

struct store_entry *index_get(struct store_index *ix, uint64_t seq)
{
  if (seq < ix->base_seq || seq - ix->base_seq >= ix->count)
    return NULL;
  struct store_entry *e = &ix->entries[seq - ix->base_seq];
  return e->length != 0 ? e : NULL;
}

struct store_subject *index_subject(const struct store_index *ix, const char *s, uint16_t len)
{
  uint64_t h = XXH3_64bits(s, len);
  for (struct store_subject *sub = ix->buckets[h & (ix->bucket_count - 1)]; sub; sub = sub->next)
    if (sub->hash == h && sub->len == len && memcmp(sub->name, s, len) == 0)
      return sub;
  return NULL;
}

struct store_subject *index_subject_by_id(const struct store_index *ix, uint32_t id)
{
  return id < ix->id_cap ? ix->by_id[id] : NULL;
}

/* Doubles the bucket array once the table is as full as it is long. */
static int subjects_grow(struct store_index *ix)
{
  uint64_t n = ix->bucket_count * 2;
  struct store_subject **b = calloc(n, sizeof(*b));
  if (b == NULL)
    return -ENOMEM;
  for (uint64_t i = 0; i < ix->bucket_count; i++) {
    struct store_subject *sub = ix->buckets[i];
    while (sub != NULL) {
      struct store_subject *next = sub->next;
      sub->next = b[sub->hash & (n - 1)];
      b[sub->hash & (n - 1)] = sub;
      sub = next;
    }
  }
  free(ix->buckets);
  ix->buckets = b;
  ix->bucket_count = n;
  return 0;
}

static int subject_take_id(struct store_index *ix, uint32_t *id)
{
  if (ix->free_count > 0) {
    *id = ix->free_ids[--ix->free_count];
    return 0;
  }
  /* Ids must fit in store_entry.subject_id. */
  if (ix->id_cap > STORE_SUBJECT_ID_MAX / 2)
    return -ENOMEM;
  uint32_t cap = ix->id_cap ? ix->id_cap * 2 : 64;
  struct store_subject **by = realloc(ix->by_id, cap * sizeof(*by));
  if (by == NULL)
    return -ENOMEM;
  uint32_t *ids = realloc(ix->free_ids, cap * sizeof(*ids));
  if (ids == NULL) {
    ix->by_id = by;
    return -ENOMEM;
  }
  memset(by + ix->id_cap, 0, (cap - ix->id_cap) * sizeof(*by));
  ix->by_id = by;
  ix->free_ids = ids;
  /* Hand out the new ids lowest first. */
  for (uint32_t i = cap; i > ix->id_cap + 1; i--)
    ix->free_ids[ix->free_count++] = i - 1;
  *id = ix->id_cap;
  ix->id_cap = cap;
  return 0;
}

static struct store_subject *subject_get_or_add(struct store_index *ix, const char *s, uint16_t len)
{
  struct store_subject *sub = index_subject(ix, s, len);
  if (sub != NULL)
    return sub;

  if (ix->subject_count >= ix->bucket_count && subjects_grow(ix) < 0)
    return NULL;
  sub = calloc(1, sizeof(*sub));
  if (sub == NULL)
    return NULL;
  sub->name = malloc(len + 1u);
  if (sub->name == NULL || subject_take_id(ix, &sub->id) < 0) {
    free(sub->name);
    free(sub);
    return NULL;
  }
  memcpy(sub->name, s, len);
  sub->name[len] = '\0';
  sub->len = len;
  sub->hash = XXH3_64bits(s, len);
  struct store_subject **b = &ix->buckets[sub->hash & (ix->bucket_count - 1)];
  sub->next = *b;
  *b = sub;
  ix->by_id[sub->id] = sub;
  ix->subject_count++;
  return sub;
}

static void subject_drop(struct store_index *ix, struct store_subject *sub)
{
  struct store_subject **p = &ix->buckets[sub->hash & (ix->bucket_count - 1)];
  while (*p != sub)
    p = &(*p)->next;
  *p = sub->next;
  ix->by_id[sub->id] = NULL;
  ix->free_ids[ix->free_count++] = sub->id;
  ix->subject_count--;
  free(sub->name);
  free(sub);
}

int index_add(struct store_index *ix, uint64_t seq, uint64_t loc, uint32_t length, bool has_hdr,
              const char *subject, uint16_t subject_len, int64_t ts_ns)
{
  ASSERT(seq == ix->base_seq + ix->count);
  ASSERT(length > 0);

  if (ix->count == ix->cap) {
    uint64_t cap = ix->cap * 2;
    struct store_entry *e = realloc(ix->entries, cap * sizeof(*e));
    if (e == NULL)
      return -ENOMEM;
    ix->entries = e;
    ix->cap = cap;
  }
  struct store_subject *sub = subject_get_or_add(ix, subject, subject_len);
  if (sub == NULL)
    return -ENOMEM;

  ix->entries[ix->count++] = (struct store_entry){
    .loc = loc, .length = length, .subject_id = sub->id, .has_hdr = has_hdr, .ts_ns = ts_ns,
  };
  if (sub->msgs == 0)
    sub->first_seq = seq;
  sub->last_seq = seq;
  sub->msgs++;
  return 0;
}

bool index_remove(struct store_index *ix, uint64_t seq, struct store_entry *out)
{
  struct store_entry *e = index_get(ix, seq);
  if (e == NULL)
    return false;
  *out = *e;
  e->length = 0;

  struct store_subject *sub = ix->by_id[e->subject_id];
  ASSERT(sub != NULL && sub->msgs > 0);
  sub->msgs--;
  if (sub->msgs == 0)
    subject_drop(ix, sub);
  return true;
}

void index_truncate(struct store_index *ix, uint64_t seq)
{
  if (seq < ix->base_seq) {
    ix->base_seq = seq + 1;
    ix->count = 0;
    return;
  }
  uint64_t keep = seq - ix->base_seq + 1;
  if (keep < ix->count) {
    for (uint64_t i = keep; i < ix->count; i++)
      ASSERT(ix->entries[i].length == 0);
    ix->count = keep;
  }
}

void index_trim_front(struct store_index *ix, uint64_t seq)
{
  if (seq <= ix->base_seq)
    return;
  uint64_t drop = seq - ix->base_seq;
  if (drop > ix->count)
    drop = ix->count;
  if (drop < INDEX_TRIM_BATCH && drop * 2 < ix->count)
    return;
  for (uint64_t i = 0; i < drop; i++)
    ASSERT_HOT(ix->entries[i].length == 0);
  memmove(ix->entries, ix->entries + drop, (ix->count - drop) * sizeof(*ix->entries));
  ix->count -= drop;
  ix->base_seq += drop;
}

uint64_t index_subject_first(struct store_index *ix, struct store_subject *sub)
{
  uint64_t seq = sub->first_seq < ix->base_seq ? ix->base_seq : sub->first_seq;
  /* Bounded by the subject's last sequence, which is live. */
  for (; seq <= sub->last_seq; seq++) {
    struct store_entry *e = index_get(ix, seq);
    if (e != NULL && e->subject_id == sub->id) {
      sub->first_seq = seq;
      return seq;
    }
  }
  ASSERT(!"subject count without a live message");
  return 0;
}

uint64_t index_subject_last(struct store_index *ix, struct store_subject *sub)
{
  /* Bounded below by the subject's first live sequence. */
  for (uint64_t seq = sub->last_seq; seq >= sub->first_seq && seq >= ix->base_seq; seq--) {
    struct store_entry *e = index_get(ix, seq);
    if (e != NULL && e->subject_id == sub->id) {
      sub->last_seq = seq;
      return seq;
    }
  }
  ASSERT(!"subject count without a live message");
  return 0;
}

/* Returns the length of the token starting at s (up to '.' or the end). */
