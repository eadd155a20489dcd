/* SPDX-License-Identifier: Apache-2.0 */
/* Sequence accounting of shoal-bench; bench_seq.h states the window rule. */
#include "bench/bench_seq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WORD_BITS 64
#define WINDOW_WORDS (BENCH_SEQ_WINDOW / WORD_BITS)

void bench_seq_init(struct bench_seq *seq)
{
  memset(seq, 0, sizeof(*seq));
}

void bench_seq_free(struct bench_seq *seq)
{
  free(seq->seen);
  seq->seen = NULL;
}

static inline uint64_t *seen_word(struct bench_seq *seq, uint64_t n)
{
  return &seq->seen[(n % BENCH_SEQ_WINDOW) / WORD_BITS];
}

static inline uint64_t seen_bit(uint64_t n)
{
  return (uint64_t)1 << (n % WORD_BITS);
}

/* Moves the window up to end at n, clearing the bits of the sequences that
 * enter it, since their ring slots still hold sequences that leave it. */
static void advance(struct bench_seq *seq, uint64_t n)
{
  if (n - seq->highest >= BENCH_SEQ_WINDOW) {
    memset(seq->seen, 0, WINDOW_WORDS * sizeof(uint64_t));
  } else {
    for (uint64_t k = seq->highest + 1; k < n; k++) *seen_word(seq, k) &= ~seen_bit(k);
  }
  *seen_word(seq, n) |= seen_bit(n);
  seq->highest = n;
  seq->unique++;
}

int bench_seq_add(struct bench_seq *seq, uint64_t n)
{
  if (n == 0) {
    seq->invalid++;
    return 0;
  }
  if (seq->seen == NULL) {
    seq->seen = calloc(WINDOW_WORDS, sizeof(uint64_t));
    if (seq->seen == NULL) return -ENOMEM;
  }

  if (seq->lowest == 0 || n < seq->lowest) seq->lowest = n;
  if (n > seq->highest) {
    advance(seq, n);
    return 0;
  }

  if (seq->highest - n >= BENCH_SEQ_WINDOW) {
    seq->beyond_window++;
    seq->unique++;
    seq->out_of_order++;
    return 0;
  }
  uint64_t *word = seen_word(seq, n);
  if (*word & seen_bit(n)) {
    seq->duplicated++;
    return 0;
  }
  *word |= seen_bit(n);
  seq->unique++;
  seq->out_of_order++;
  return 0;
}

uint64_t bench_seq_lost(const struct bench_seq *seq, uint64_t sent)
{
  uint64_t expected = sent > seq->highest ? sent : seq->highest;
  if (sent == 0 && seq->lowest > 0) expected = seq->highest - seq->lowest + 1;
  return expected > seq->unique ? expected - seq->unique : 0;
}
