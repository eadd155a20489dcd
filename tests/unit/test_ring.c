/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/ring.c. The file is included so that one test can start
 * the counters just below 2^32 and cross the wrap of the 32-bit counters.
 *
 * The two-thread test moves 10 million entries through a small ring. Each
 * entry carries its sequence number and a value derived from it, and both
 * sides fold the values into a checksum. It stops after the last entry or
 * after a deadline, whichever comes first, and only counts are asserted. */

#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "core/ring.c"

static struct ring_entry entry_for(uint64_t seq)
{
  return (struct ring_entry){
      .type = (uint32_t)(seq % 7),
      .aux = (uint32_t)(seq >> 3),
      .ptr = (void *)(uintptr_t)(seq * 16),
      .a = seq,
      .b = seq * 0x9e3779b97f4a7c15ull,
  };
}

static void expect_entry(const struct ring_entry *e, uint64_t seq)
{
  struct ring_entry want = entry_for(seq);
  cr_assert_eq(e->a, want.a, "entry %lu out of order", (unsigned long)seq);
  cr_assert_eq(e->b, want.b);
  cr_assert_eq(e->type, want.type);
  cr_assert_eq(e->aux, want.aux);
  cr_assert_eq(e->ptr, want.ptr);
}

Test(ring, create_checks_capacity)
{
  static const uint32_t bad[] = {0, 1, 3, 6, 100, 0x80000001u, UINT32_MAX};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_expect_null(ring_create(bad[i]), "capacity %u", bad[i]);

  static const uint32_t good[] = {2, 4, 1024};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    struct ring *r = ring_create(good[i]);
    cr_assert_not_null(r, "capacity %u", good[i]);
    cr_expect_eq(ring_capacity(r), good[i]);
    cr_expect_eq(ring_count(r), 0);
    ring_destroy(r);
  }
}

Test(ring, layout_separates_sides)
{
  struct ring *r = ring_create(8);
  cr_assert_not_null(r);
  uintptr_t head = (uintptr_t)&r->head, tail = (uintptr_t)&r->tail;
  uintptr_t shared = (uintptr_t)&r->capacity, slots = (uintptr_t)r->slots;
  cr_expect_eq(head % 64, 0);
  cr_expect_eq(tail % 64, 0);
  cr_expect_eq(slots % 64, 0);
  cr_expect_neq(head / 64, tail / 64);
  cr_expect_eq((uintptr_t)&r->tail_cached / 64, head / 64);
  cr_expect_eq((uintptr_t)&r->head_cached / 64, tail / 64);
  cr_expect_neq(shared / 64, head / 64);
  cr_expect_neq(shared / 64, tail / 64);
  cr_expect_neq(slots / 64, shared / 64);
  ring_destroy(r);
}

Test(ring, empty_pop_returns_zero)
{
  struct ring *r = ring_create(4);
  struct ring_entry out[4];
  cr_expect_eq(ring_pop(r, out, 4), 0);
  struct ring_entry e = entry_for(1);
  cr_assert(ring_push(r, &e));
  cr_expect_eq(ring_pop(r, out, 0), 0, "max 0 takes nothing");
  cr_expect_eq(ring_pop(r, out, 4), 1);
  expect_entry(&out[0], 1);
  cr_expect_eq(ring_pop(r, out, 4), 0);
  cr_expect_eq(ring_count(r), 0);
  ring_destroy(r);
}

Test(ring, keeps_order)
{
  struct ring *r = ring_create(16);
  for (uint64_t i = 0; i < 10; i++) {
    struct ring_entry e = entry_for(i);
    cr_assert(ring_push(r, &e));
  }
  cr_expect_eq(ring_count(r), 10);

  struct ring_entry out[16];
  cr_assert_eq(ring_pop(r, out, 3), 3);
  for (uint64_t i = 0; i < 3; i++)
    expect_entry(&out[i], i);
  cr_assert_eq(ring_pop(r, out, 16), 7);
  for (uint64_t i = 0; i < 7; i++)
    expect_entry(&out[i], i + 3);
  ring_destroy(r);
}

Test(ring, full_rejects_push)
{
  struct ring *r = ring_create(8);
  for (uint64_t i = 0; i < 8; i++) {
    struct ring_entry e = entry_for(i);
    cr_assert(ring_push(r, &e), "push %lu", (unsigned long)i);
  }
  struct ring_entry extra = entry_for(99);
  cr_expect_not(ring_push(r, &extra));
  cr_expect_not(ring_push(r, &extra));
  cr_expect_eq(ring_count(r), 8);

  /* One pop makes room for exactly one push. */
  struct ring_entry out[8];
  cr_assert_eq(ring_pop(r, out, 1), 1);
  expect_entry(&out[0], 0);
  struct ring_entry next = entry_for(8);
  cr_expect(ring_push(r, &next));
  cr_expect_not(ring_push(r, &extra));

  cr_assert_eq(ring_pop(r, out, 8), 8);
  for (uint64_t i = 0; i < 8; i++)
    expect_entry(&out[i], i + 1);
  ring_destroy(r);
}

Test(ring, wraps_around_slots)
{
  /* Batches of 3 through 4 slots start at every slot offset, and pops
   * split across the end of the slots. */
  struct ring *r = ring_create(4);
  struct ring_entry out[4];
  uint64_t pushed = 0, popped = 0;
  for (int round = 0; round < 100; round++) {
    for (int i = 0; i < 3; i++) {
      struct ring_entry e = entry_for(pushed++);
      cr_assert(ring_push(r, &e));
    }
    cr_assert_eq(ring_count(r), 3);
    uint32_t n = ring_pop(r, out, 2);
    n += ring_pop(r, out + n, 4);
    cr_assert_eq(n, 3);
    for (uint32_t i = 0; i < n; i++)
      expect_entry(&out[i], popped++);
  }
  cr_expect_eq(popped, 300);
  ring_destroy(r);
}

Test(ring, counters_wrap_at_2_32)
{
  struct ring *r = ring_create(8);
  uint32_t start = UINT32_MAX - 5;
  atomic_store(&r->head, start);
  atomic_store(&r->tail, start);
  r->tail_cached = start;
  r->head_cached = start;

  uint64_t pushed = 0, popped = 0;
  struct ring_entry out[8];
  for (int round = 0; round < 6; round++) {
    while (true) {
      struct ring_entry e = entry_for(pushed);
      if (!ring_push(r, &e))
        break;
      pushed++;
    }
    cr_assert_eq(ring_count(r), 8, "full across the wrap");
    uint32_t n = ring_pop(r, out, 5);
    cr_assert_eq(n, 5);
    for (uint32_t i = 0; i < n; i++)
      expect_entry(&out[i], popped++);
  }
  uint32_t n = ring_pop(r, out, 8);
  cr_assert_eq(n, 3);
  for (uint32_t i = 0; i < n; i++)
    expect_entry(&out[i], popped++);
  cr_expect_eq(pushed, popped);
  cr_expect_lt(atomic_load(&r->head), start, "the counter wrapped");
  ring_destroy(r);
}

/* ---- Two threads ---- */

enum { TRANSFER_ENTRIES = 10 * 1000 * 1000, TRANSFER_CAPACITY = 1024, POP_BATCH = 64 };
#define TRANSFER_DEADLINE_S 120

struct transfer {
  struct ring *r;
  atomic_bool stop; /* set by either side past the deadline */
  uint64_t pushed;
  uint64_t producer_sum;
  uint64_t popped;
  uint64_t consumer_sum;
  uint64_t out_of_order;
  uint32_t max_count_seen;
  uint32_t max_batch_seen;
};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *producer_main(void *arg)
{
  struct transfer *t = arg;
  double deadline = now_s() + TRANSFER_DEADLINE_S;
  for (uint64_t seq = 0; seq < TRANSFER_ENTRIES;) {
    struct ring_entry e = entry_for(seq);
    if (ring_push(t->r, &e)) {
      t->producer_sum += e.b ^ e.a;
      seq++;
      t->pushed = seq;
      continue;
    }
    /* Full: let the consumer run; the cores are shared. */
    if (atomic_load_explicit(&t->stop, memory_order_relaxed) || now_s() > deadline) {
      atomic_store(&t->stop, true);
      break;
    }
    sched_yield();
  }
  return NULL;
}

static void *consumer_main(void *arg)
{
  struct transfer *t = arg;
  double deadline = now_s() + TRANSFER_DEADLINE_S;
  struct ring_entry batch[POP_BATCH];
  while (t->popped < TRANSFER_ENTRIES) {
    uint32_t count = ring_count(t->r);
    if (count > t->max_count_seen)
      t->max_count_seen = count;
    uint32_t n = ring_pop(t->r, batch, POP_BATCH);
    if (n > t->max_batch_seen)
      t->max_batch_seen = n;
    for (uint32_t i = 0; i < n; i++) {
      t->out_of_order += batch[i].a != t->popped;
      t->out_of_order += batch[i].b != t->popped * 0x9e3779b97f4a7c15ull;
      t->consumer_sum += batch[i].b ^ batch[i].a;
      t->popped++;
    }
    if (n > 0)
      continue;
    if (atomic_load_explicit(&t->stop, memory_order_relaxed) || now_s() > deadline) {
      atomic_store(&t->stop, true);
      break;
    }
    sched_yield();
  }
  return NULL;
}

Test(ring, two_threads_ten_million, .timeout = 300)
{
  struct transfer t = {.r = ring_create(TRANSFER_CAPACITY)};
  cr_assert_not_null(t.r);
  pthread_t producer, consumer;
  cr_assert_eq(pthread_create(&consumer, NULL, consumer_main, &t), 0);
  cr_assert_eq(pthread_create(&producer, NULL, producer_main, &t), 0);
  pthread_join(producer, NULL);
  pthread_join(consumer, NULL);

  cr_expect_not(atomic_load(&t.stop), "stopped at the deadline: pushed %lu popped %lu",
                (unsigned long)t.pushed, (unsigned long)t.popped);
  cr_expect_eq(t.pushed, TRANSFER_ENTRIES);
  cr_expect_eq(t.popped, TRANSFER_ENTRIES);
  cr_expect_eq(t.out_of_order, 0);
  cr_expect_eq(t.consumer_sum, t.producer_sum);
  cr_expect_leq(t.max_count_seen, TRANSFER_CAPACITY);
  cr_expect_leq(t.max_batch_seen, POP_BATCH);
  cr_expect_eq(ring_count(t.r), 0);
  ring_destroy(t.r);
}
