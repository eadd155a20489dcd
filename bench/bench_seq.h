/* SPDX-License-Identifier: Apache-2.0 */
/* Message accounting for shoal-bench: one struct bench_seq per stream of
 * sequence numbers (one publisher as seen by one subscriber, or by a whole
 * queue group) counts unique, duplicated, out-of-order and lost messages.
 *
 * Sequences start at 1 and a publisher sends them in order. The tracker keeps
 * a bitmap of the last BENCH_SEQ_WINDOW sequences below the highest one seen,
 * so a duplicate or a late message within that window is classified exactly.
 * A message older than the window cannot be distinguished from a duplicate,
 * so it is counted in beyond_window, and as unique and out of order. */
#ifndef SHOAL_BENCH_SEQ_H
#define SHOAL_BENCH_SEQ_H

#include <stdint.h>

#define BENCH_SEQ_WINDOW_BITS 18
#define BENCH_SEQ_WINDOW ((uint64_t)1 << BENCH_SEQ_WINDOW_BITS)

struct bench_seq {
  uint64_t highest;       /* highest sequence seen, 0 before the first */
  uint64_t lowest;        /* lowest sequence seen, 0 before the first */
  uint64_t unique;        /* distinct sequences seen */
  uint64_t duplicated;    /* messages whose sequence was seen before */
  uint64_t out_of_order;  /* first arrivals below the highest sequence seen */
  uint64_t beyond_window; /* arrivals older than the window (see above) */
  uint64_t invalid;       /* sequence 0, which no publisher sends */
  uint64_t *seen;         /* ring bitmap of the window, allocated on first use */
};

/* Empties seq; it allocates nothing until the first message. */
void bench_seq_init(struct bench_seq *seq);

/* Frees the bitmap of seq. */
void bench_seq_free(struct bench_seq *seq);

/* Counts one arrival of sequence number n. Returns 0, or -ENOMEM when the
 * bitmap cannot be allocated. */
int bench_seq_add(struct bench_seq *seq, uint64_t n);

/* Returns how many sequences never arrived. sent is the number the publisher
 * reports having sent, and then sequences 1 to max(sent, highest) count.
 * When sent is 0 (a publisher in another process, which may have started
 * before the subscriber), sequences lowest to highest count. */
uint64_t bench_seq_lost(const struct bench_seq *seq, uint64_t sent);

#endif
