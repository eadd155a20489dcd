/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of shoal-bench's latency histogram against sorted references, and of
 * its sequence accounting (lost, duplicated, out of order) on crafted
 * streams. The bench sources are included because they are built into
 * shoal-bench, not into shoalcore. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "bench/bench_hist.c"
#include "bench/bench_seq.c"

/* A fixed-seed xorshift generator, so every run checks the same values. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static double next_unit(void)
{
  return (double)(next_random() >> 11) / (double)(1ull << 53);
}

static int compare_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a;
  uint64_t y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of a sorted array: the value at rank
 * ceil(percent / 100 * n), computed without libm, which the unit tests do
 * not link. */
static uint64_t reference_percentile(const uint64_t *sorted, size_t n, double percent)
{
  if (percent <= 0) return sorted[0];
  double exact_rank = percent / 100.0 * (double)n * (1 - 1e-12);
  size_t rank = (size_t)exact_rank;
  if ((double)rank < exact_rank) rank++;
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static const double checked_percentiles[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

/* Records values into a histogram and checks every percentile against the
 * sorted copy within the stated relative error. */
static void check_distribution(const char *name, uint64_t *values, size_t n)
{
  struct bench_hist *h = malloc(sizeof(*h));
  cr_assert_not_null(h);
  bench_hist_reset(h);
  for (size_t i = 0; i < n; i++) bench_hist_record(h, values[i]);
  qsort(values, n, sizeof(*values), compare_u64);

  cr_assert_eq(h->count, n, "%s: count", name);
  cr_assert_eq(h->min, values[0], "%s: min", name);
  cr_assert_eq(h->max, values[n - 1], "%s: max", name);
  for (size_t i = 0; i < sizeof(checked_percentiles) / sizeof(checked_percentiles[0]); i++) {
    double p = checked_percentiles[i];
    double expected = (double)reference_percentile(values, n, p);
    double got = (double)bench_hist_percentile(h, p);
    double diff = got > expected ? got - expected : expected - got;
    double error = diff / (expected > 0 ? expected : 1);
    cr_expect_leq(error, BENCH_HIST_REL_ERROR + 1e-12, "%s: p%g is %.0f, reference %.0f, error %g", name, p, got,
                  expected, error);
  }
  free(h);
}

Test(bench_hist, bucket_bounds_contain_value)
{
  uint64_t probes[] = {0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 65535, 65536, 1000000007ull,
                       (1ull << 40) + 12345, UINT64_MAX / 3, UINT64_MAX - 1, UINT64_MAX};
  for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
    uint64_t v = probes[i];
    uint32_t index = bench_hist_bucket_index(v);
    cr_assert_lt(index, BENCH_HIST_BUCKETS, "value %llu", (unsigned long long)v);
    uint64_t lower = bench_hist_bucket_lower(index);
    uint64_t width = bench_hist_bucket_width(index);
    cr_assert_leq(lower, v, "value %llu", (unsigned long long)v);
    cr_assert_leq(v - lower, width - 1, "value %llu", (unsigned long long)v);
  }
}

Test(bench_hist, buckets_are_contiguous)
{
  for (uint32_t i = 0; i + 1 < BENCH_HIST_BUCKETS; i++) {
    uint64_t end = bench_hist_bucket_lower(i) + bench_hist_bucket_width(i);
    cr_assert_eq(end, bench_hist_bucket_lower(i + 1), "bucket %u", i);
    cr_assert_eq(bench_hist_bucket_index(bench_hist_bucket_lower(i)), i, "bucket %u", i);
  }
}

Test(bench_hist, small_values_exact)
{
  for (uint64_t v = 0; v < 2 * BENCH_HIST_SUB_COUNT; v++) {
    cr_assert_eq(bench_hist_bucket_width(bench_hist_bucket_index(v)), 1);
  }
  struct bench_hist *h = malloc(sizeof(*h));
  bench_hist_reset(h);
  for (uint64_t v = 1; v <= 200; v++) bench_hist_record(h, v);
  cr_assert_eq(bench_hist_percentile(h, 50), 100);
  cr_assert_eq(bench_hist_percentile(h, 90), 180);
  cr_assert_eq(bench_hist_percentile(h, 99.5), 199);
  free(h);
}

Test(bench_hist, empty_returns_zero)
{
  struct bench_hist *h = malloc(sizeof(*h));
  bench_hist_reset(h);
  cr_assert_eq(bench_hist_percentile(h, 50), 0);
  cr_assert_eq(bench_hist_percentile(h, 100), 0);
  cr_assert_eq(bench_hist_mean(h), 0);
  free(h);
}

Test(bench_hist, uniform_within_error)
{
  size_t n = 200000;
  uint64_t *values = malloc(n * sizeof(*values));
  for (size_t i = 0; i < n; i++) values[i] = 1000 + next_random() % 5000000;
  check_distribution("uniform", values, n);
  free(values);
}

Test(bench_hist, skewed_within_error)
{
  /* The product of two uniform values piles up near the minimum, as
   * latencies do. */
  size_t n = 200000;
  uint64_t *values = malloc(n * sizeof(*values));
  for (size_t i = 0; i < n; i++) values[i] = 20000 + (uint64_t)(next_unit() * next_unit() * 3000000);
  check_distribution("skewed", values, n);
  free(values);
}

Test(bench_hist, long_tail_within_error)
{
  /* About log-uniform from 100 ns to 13 s: every magnitude carries weight. */
  size_t n = 200000;
  uint64_t *values = malloc(n * sizeof(*values));
  for (size_t i = 0; i < n; i++) {
    uint64_t octave = (uint64_t)100 << (next_random() % 27);
    values[i] = octave + (uint64_t)(next_unit() * (double)octave);
  }
  check_distribution("long tail", values, n);
  free(values);
}

Test(bench_hist, bimodal_within_error)
{
  size_t n = 100001;
  uint64_t *values = malloc(n * sizeof(*values));
  for (size_t i = 0; i < n; i++) {
    values[i] = (i % 100 == 0) ? 40000000 + next_random() % 1000000 : 150000 + next_random() % 20000;
  }
  check_distribution("bimodal", values, n);
  free(values);
}

Test(bench_hist, constant_is_exact)
{
  size_t n = 1000;
  uint64_t *values = malloc(n * sizeof(*values));
  for (size_t i = 0; i < n; i++) values[i] = 123456789;
  check_distribution("constant", values, n);
  free(values);
}

Test(bench_hist, merge_equals_single)
{
  struct bench_hist *a = malloc(sizeof(*a));
  struct bench_hist *b = malloc(sizeof(*b));
  struct bench_hist *all = malloc(sizeof(*all));
  bench_hist_reset(a);
  bench_hist_reset(b);
  bench_hist_reset(all);
  for (int i = 0; i < 50000; i++) {
    uint64_t v = next_random() % 100000000;
    bench_hist_record(i % 3 ? a : b, v);
    bench_hist_record(all, v);
  }
  bench_hist_merge(a, b);
  cr_assert_eq(a->count, all->count);
  cr_assert_eq(a->min, all->min);
  cr_assert_eq(a->max, all->max);
  cr_assert_eq(a->sum, all->sum);
  cr_assert_eq(memcmp(a->buckets, all->buckets, sizeof(a->buckets)), 0);
  free(a);
  free(b);
  free(all);
}

/* ---- Sequence accounting ---- */

static void add_all(struct bench_seq *seq, const uint64_t *numbers, size_t n)
{
  for (size_t i = 0; i < n; i++) cr_assert_eq(bench_seq_add(seq, numbers[i]), 0);
}

Test(bench_seq, in_order_stream_clean)
{
  struct bench_seq seq;
  bench_seq_init(&seq);
  for (uint64_t n = 1; n <= 3 * BENCH_SEQ_WINDOW; n++) cr_assert_eq(bench_seq_add(&seq, n), 0);
  cr_assert_eq(seq.unique, 3 * BENCH_SEQ_WINDOW);
  cr_assert_eq(seq.duplicated, 0);
  cr_assert_eq(seq.out_of_order, 0);
  cr_assert_eq(bench_seq_lost(&seq, 3 * BENCH_SEQ_WINDOW), 0);
  bench_seq_free(&seq);
}

Test(bench_seq, gaps_count_as_lost)
{
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {1, 2, 4, 5, 9, 10};
  add_all(&seq, numbers, 6);
  cr_assert_eq(seq.unique, 6);
  cr_assert_eq(bench_seq_lost(&seq, 10), 4);
  /* The publisher sent 12: the tail that never arrived is lost too. */
  cr_assert_eq(bench_seq_lost(&seq, 12), 6);
  /* An unknown sender count falls back to the lowest and highest seen. */
  cr_assert_eq(bench_seq_lost(&seq, 0), 4);
  cr_assert_eq(seq.out_of_order, 0);
  bench_seq_free(&seq);
}

Test(bench_seq, unknown_sender_counts_from_lowest)
{
  /* A subscriber that joined late first sees sequence 5. */
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {5, 6, 8, 9};
  add_all(&seq, numbers, 4);
  cr_assert_eq(bench_seq_lost(&seq, 0), 1);
  cr_assert_eq(bench_seq_lost(&seq, 9), 5);
  cr_assert_eq(seq.lowest, 5);
  bench_seq_free(&seq);
}

Test(bench_seq, duplicates_detected)
{
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {1, 2, 2, 3, 1, 3, 4};
  add_all(&seq, numbers, 7);
  cr_assert_eq(seq.unique, 4);
  cr_assert_eq(seq.duplicated, 3);
  cr_assert_eq(seq.out_of_order, 0);
  cr_assert_eq(bench_seq_lost(&seq, 4), 0);
  bench_seq_free(&seq);
}

Test(bench_seq, late_arrival_out_of_order)
{
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {1, 3, 4, 2, 6, 5, 5};
  add_all(&seq, numbers, 7);
  cr_assert_eq(seq.unique, 6);
  cr_assert_eq(seq.out_of_order, 2);
  cr_assert_eq(seq.duplicated, 1);
  cr_assert_eq(bench_seq_lost(&seq, 6), 0);
  bench_seq_free(&seq);
}

Test(bench_seq, window_slot_reuse_clean)
{
  /* Sequence n + WINDOW reuses the ring slot of n: it must not look seen. */
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {1, 2, 3, 3 + BENCH_SEQ_WINDOW, 2 + BENCH_SEQ_WINDOW, 4 + BENCH_SEQ_WINDOW};
  add_all(&seq, numbers, 6);
  cr_assert_eq(seq.duplicated, 0);
  cr_assert_eq(seq.unique, 6);
  cr_assert_eq(seq.out_of_order, 1);
  cr_assert_eq(seq.beyond_window, 0);
  cr_assert_eq(bench_seq_lost(&seq, 4 + BENCH_SEQ_WINDOW), BENCH_SEQ_WINDOW + 4 - 6);
  bench_seq_free(&seq);
}

Test(bench_seq, older_than_window_counted)
{
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {1, 2 * BENCH_SEQ_WINDOW, 2};
  add_all(&seq, numbers, 3);
  cr_assert_eq(seq.beyond_window, 1);
  cr_assert_eq(seq.out_of_order, 1);
  cr_assert_eq(seq.unique, 3);
  bench_seq_free(&seq);
}

Test(bench_seq, zero_is_invalid)
{
  struct bench_seq seq;
  bench_seq_init(&seq);
  uint64_t numbers[] = {0, 1, 0};
  add_all(&seq, numbers, 3);
  cr_assert_eq(seq.invalid, 2);
  cr_assert_eq(seq.unique, 1);
  cr_assert_eq(bench_seq_lost(&seq, 1), 0);
  bench_seq_free(&seq);
}
