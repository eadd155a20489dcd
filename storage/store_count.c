/* SPDX-License-Identifier: Apache-2.0 */
/* Exact message counts by subject filter from a starting sequence. They
 * come from the in-memory index alone (storage/store_index.c): the subject
 * table's per-subject counts where a subject lies wholly at or after the
 * start, and a walk over the sequence index where it does not. No record
 * is read. */
#include "storage/store_count.h"

#include <stdbool.h>
#include <string.h>

#include "core/subject.h"
#include "storage/store_int.h"

/* Slots of the walk's memo of which subject ids it counts. */
#define MEMO_SLOTS 256

/* One walk over index entries. Each subject id is matched against the
 * filter once per memo slot it lands in, not once per message. */
struct count_walk {
  struct store *st;
  const char *filter;       /* NULL counts every live entry */
  size_t filter_len;
  /* When not 0, only subjects whose first live sequence is below it
   * count, because the caller already added the others whole. */
  uint64_t partial_before;
  uint32_t memo_id[MEMO_SLOTS];   /* subject id + 1, 0 for an empty slot */
  bool memo_counts[MEMO_SLOTS];
};

static bool filter_is_all(const char *filter, size_t len)
{
  return filter == NULL || len == 0 || (len == 1 && filter[0] == '>');
}

/* True when filter has a '*' or '>' token. */
static bool filter_has_wildcard(const char *filter, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    bool token_start = i == 0 || filter[i - 1] == '.';
    bool token_end = i + 1 == len || filter[i + 1] == '.';
    if ((filter[i] == '*' || filter[i] == '>') && token_start && token_end)
      return true;
  }
  return false;
}

static bool walk_counts(struct count_walk *w, uint32_t id)
{
  uint32_t slot = id % MEMO_SLOTS;
  if (w->memo_id[slot] == id + 1)
    return w->memo_counts[slot];

  struct store_subject *sub = index_subject_by_id(&w->st->ix, id);
  bool counts = sub != NULL;
  if (counts && w->filter != NULL)
    counts = subject_matches(w->filter, w->filter_len, sub->name, sub->len);
  if (counts && w->partial_before != 0)
    counts = index_subject_first(&w->st->ix, sub) < w->partial_before;
  w->memo_id[slot] = id + 1;
  w->memo_counts[slot] = counts;
  return counts;
}

/* Counts the live entries from sequence from to to, both included, that
 * the walk counts. */
static uint64_t walk(struct count_walk *w, uint64_t from, uint64_t to)
{
  struct store_index *ix = &w->st->ix;
  if (ix->count == 0 || to < ix->base_seq)
    return 0;
  if (from < ix->base_seq)
    from = ix->base_seq;
  if (to > ix->base_seq + ix->count - 1)
    to = ix->base_seq + ix->count - 1;

  uint64_t n = 0;
  for (uint64_t seq = from; seq <= to; seq++) {
    const struct store_entry *e = &ix->entries[seq - ix->base_seq];
    if (e->length != 0 && walk_counts(w, e->subject_id))
      n++;
  }
  return n;
}

/* Counts from start within the span first..last of count messages,
 * walking the shorter side of start. first < start <= last. */
static uint64_t count_in_span(struct count_walk *w, uint64_t start, uint64_t first, uint64_t last,
                              uint64_t count)
{
  if (last - start < start - first)
    return walk(w, start, last);
  return count - walk(w, first, start - 1);
}

static uint64_t count_literal(struct store *st, uint64_t start, const char *filter, size_t len)
{
  if (len > UINT16_MAX)
    return 0;
  struct store_subject *sub = index_subject(&st->ix, filter, (uint16_t)len);
  if (sub == NULL)
    return 0;
  uint64_t first = index_subject_first(&st->ix, sub);
  if (start <= first)
    return sub->msgs;
  uint64_t last = index_subject_last(&st->ix, sub);
  if (start > last)
    return 0;

  struct count_walk w = {.st = st, .filter = filter, .filter_len = len};
  return count_in_span(&w, start, first, last, sub->msgs);
}

/* A wildcard filter: walks the range when it is shorter than the subject
 * table, and otherwise adds up the subjects that lie wholly at or after
 * start and walks only for those that straddle it. */
static uint64_t count_wildcard(struct store *st, uint64_t start, const char *filter, size_t len)
{
  struct count_walk w = {.st = st, .filter = filter, .filter_len = len};
  if (st->last_seq - start < st->ix.subject_count)
    return walk(&w, start, st->last_seq);

  uint64_t total = 0;
  uint64_t straddle_last = 0;
  for (uint32_t id = 0; id < st->ix.id_cap; id++) {
    struct store_subject *sub = st->ix.by_id[id];
    if (sub == NULL || !subject_matches(filter, len, sub->name, sub->len))
      continue;
    if (start <= index_subject_first(&st->ix, sub)) {
      total += sub->msgs;
      continue;
    }
    uint64_t last = index_subject_last(&st->ix, sub);
    if (last >= start && last > straddle_last)
      straddle_last = last;
  }
  if (straddle_last == 0)
    return total;
  w.partial_before = start;
  return total + walk(&w, start, straddle_last);
}

uint64_t store_count_from(struct store *st, uint64_t start_seq, const char *filter,
                          size_t filter_len)
{
  if (st->msgs == 0 || start_seq > st->last_seq)
    return 0;
  if (start_seq <= st->first_seq)
    start_seq = st->first_seq;

  if (filter_is_all(filter, filter_len)) {
    if (start_seq == st->first_seq)
      return st->msgs;
    struct count_walk w = {.st = st};
    return count_in_span(&w, start_seq, st->first_seq, st->last_seq, st->msgs);
  }
  if (!filter_has_wildcard(filter, filter_len))
    return count_literal(st, start_seq, filter, filter_len);
  return count_wildcard(st, start_seq, filter, filter_len);
}
