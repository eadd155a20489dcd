/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's latency histogram: log-linear buckets over the whole uint64_t
 * range, so recording is a few instructions and percentiles carry a fixed
 * relative error. Values below 2^(BENCH_HIST_SUB_BITS + 1) are kept exactly.
 * Above that, each power-of-two range [2^e, 2^(e+1)) is split into
 * 2^BENCH_HIST_SUB_BITS buckets of equal width 2^(e - BENCH_HIST_SUB_BITS). A
 * percentile is reported as the middle of its bucket, which is within
 * BENCH_HIST_REL_ERROR of every value in that bucket. */
#ifndef SHOAL_BENCH_HIST_H
#define SHOAL_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB_COUNT (1u << BENCH_HIST_SUB_BITS)
/* Buckets for shifts 0 to 63 - BENCH_HIST_SUB_BITS, plus the exact range. */
#define BENCH_HIST_BUCKETS ((64 - BENCH_HIST_SUB_BITS + 1) * BENCH_HIST_SUB_COUNT)
/* Maximum relative error of a reported percentile: half a bucket width over
 * the bucket's lower bound, 1 / 2^(BENCH_HIST_SUB_BITS + 1) = 0.39 %. */
#define BENCH_HIST_REL_ERROR (1.0 / (double)(2u << BENCH_HIST_SUB_BITS))

struct bench_hist {
  uint64_t count;
  uint64_t min;
  uint64_t max;
  uint64_t sum; /* wraps after 584 years of nanoseconds in total */
  uint64_t buckets[BENCH_HIST_BUCKETS];
};

/* Empties h. */
void bench_hist_reset(struct bench_hist *h);

/* Returns the bucket index of value. */
uint32_t bench_hist_bucket_index(uint64_t value);

/* Returns the smallest value that falls in bucket index. */
uint64_t bench_hist_bucket_lower(uint32_t index);

/* Returns the number of distinct values that fall in bucket index. */
uint64_t bench_hist_bucket_width(uint32_t index);

/* Adds one value to h. */
static inline void bench_hist_record(struct bench_hist *h, uint64_t value)
{
  h->buckets[bench_hist_bucket_index(value)]++;
  h->count++;
  h->sum += value;
  if (value < h->min) h->min = value;
  if (value > h->max) h->max = value;
}

/* Adds every value of src to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* Returns the nearest-rank percentile of h. For percent p in [0, 100], that
 * is the value at rank ceil(p / 100 * count) of the sorted values, reported
 * as the middle of its bucket clamped to [min, max]. So 0 returns min and 100
 * returns max exactly. Returns 0 when h is empty. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double percent);

/* Returns the mean of the values in h, or 0 when h is empty. */
double bench_hist_mean(const struct bench_hist *h);

#endif
