/* SPDX-License-Identifier: Apache-2.0 */
/* The log-linear latency histogram of shoal-bench; bench_hist.h describes the
 * bucket layout and its error bound. */
#include "bench/bench_hist.h"

#include <string.h>

void bench_hist_reset(struct bench_hist *h)
{
  memset(h, 0, sizeof(*h));
  h->min = UINT64_MAX;
}

uint32_t bench_hist_bucket_index(uint64_t value)
{
  if (value < 2 * BENCH_HIST_SUB_COUNT) return (uint32_t)value;

  /* value = mantissa << shift, with mantissa in [SUB_COUNT, 2 * SUB_COUNT).
   * The index shift * SUB_COUNT + mantissa continues the exact range. */
  uint32_t exponent = 63u - (uint32_t)__builtin_clzll(value);
  uint32_t shift = exponent - BENCH_HIST_SUB_BITS;
  uint64_t mantissa = value >> shift;
  return shift * BENCH_HIST_SUB_COUNT + (uint32_t)mantissa;
}

uint64_t bench_hist_bucket_lower(uint32_t index)
{
  if (index < 2 * BENCH_HIST_SUB_COUNT) return index;
  uint32_t shift = index / BENCH_HIST_SUB_COUNT - 1;
  uint64_t mantissa = index - shift * BENCH_HIST_SUB_COUNT;
  return mantissa << shift;
}

uint64_t bench_hist_bucket_width(uint32_t index)
{
  if (index < 2 * BENCH_HIST_SUB_COUNT) return 1;
  return (uint64_t)1 << (index / BENCH_HIST_SUB_COUNT - 1);
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
  if (src->count == 0) return;
  for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
  dst->count += src->count;
  dst->sum += src->sum;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double percent)
{
  if (h->count == 0) return 0;
  if (percent <= 0) return h->min;
  if (percent >= 100) return h->max;

  /* Rounds up, and the epsilon keeps 99.9 % of 1000 at rank 999 despite
   * the binary representation of 99.9. */
  double exact_rank = percent / 100.0 * (double)h->count * (1 - 1e-12);
  uint64_t rank = (uint64_t)exact_rank;
  if ((double)rank < exact_rank) rank++;
  if (rank < 1) rank = 1;
  if (rank > h->count) rank = h->count;

  uint64_t seen = 0;
  for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen < rank) continue;
    uint64_t middle = bench_hist_bucket_lower(i) + bench_hist_bucket_width(i) / 2;
    if (middle < h->min) return h->min;
    if (middle > h->max) return h->max;
    return middle;
  }
  return h->max; /* unreachable while count equals the sum of the buckets */
}

double bench_hist_mean(const struct bench_hist *h)
{
  if (h->count == 0) return 0;
  return (double)h->sum / (double)h->count;
}
