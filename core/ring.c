/* SPDX-License-Identifier: Apache-2.0 */
/* The bounded single-producer single-consumer ring between two shards.
 *
 * head and tail are free-running 32-bit counters. A slot index is the
 * counter masked by capacity - 1, and head - tail (modulo 2^32) is the
 * number of entries, so the capacity is at most 2^31. The producer
 * alone writes head and the consumer alone writes tail. Each publishes its
 * counter with a release store after touching the slots, and the other side
 * reads it with an acquire load before touching them, so an entry is fully
 * written before the consumer reads it and fully read before the producer
 * overwrites it.
 *
 * Each side keeps a cached copy of the other's counter on its own cache line
 * and reloads it only when the copy says the ring is full (producer) or holds
 * fewer entries than requested (consumer), so the two lines bounce between
 * cores once per batch rather than once per entry. */

#include "core/ring.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

#define RING_CACHE_LINE 64
#define RING_CAPACITY_MAX (1u << 31)

struct ring {
  /* Producer's line. */
  alignas(RING_CACHE_LINE) _Atomic uint32_t head; /* next counter to write */
  uint32_t tail_cached;                           /* producer's copy of tail */

  /* Consumer's line. */
  alignas(RING_CACHE_LINE) _Atomic uint32_t tail; /* next counter to read */
  uint32_t head_cached;                           /* consumer's copy of head */

  /* Read by both sides, written only at creation. */
  alignas(RING_CACHE_LINE) uint32_t capacity;
  uint32_t mask;
  struct ring_entry *slots; /* right after this struct, on its own lines */
};
_Static_assert(sizeof(struct ring) % RING_CACHE_LINE == 0,
               "the slots start on a cache line of their own");

struct ring *ring_create(uint32_t capacity)
{
  if (capacity < 2 || capacity > RING_CAPACITY_MAX ||
      (capacity & (capacity - 1)) != 0)
    return NULL;

  /* capacity >= 2 entries of 32 bytes keeps the size a multiple of the
   * alignment, as aligned_alloc() requires. */
  size_t size = sizeof(struct ring) + (size_t)capacity * sizeof(struct ring_entry);
  size = (size + RING_CACHE_LINE - 1) & ~(size_t)(RING_CACHE_LINE - 1);
  struct ring *r = aligned_alloc(RING_CACHE_LINE, size);
  if (r == NULL)
    return NULL;
  memset(r, 0, sizeof(*r));

  atomic_init(&r->head, 0);
  atomic_init(&r->tail, 0);
  r->capacity = capacity;
  r->mask = capacity - 1;
  r->slots = (struct ring_entry *)(r + 1);
  return r;
}

void ring_destroy(struct ring *r)
{
  free(r);
}

bool ring_push(struct ring *r, const struct ring_entry *e)
{
  uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
  if (head - r->tail_cached == r->capacity) {
    r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - r->tail_cached == r->capacity)
      return false;
  }
  ASSERT_HOT(head - r->tail_cached < r->capacity);

  r->slots[head & r->mask] = *e;
  atomic_store_explicit(&r->head, head + 1, memory_order_release);
  return true;
}

uint32_t ring_pop(struct ring *r, struct ring_entry *out, uint32_t max)
{
  uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
  uint32_t available = r->head_cached - tail;
  if (available < max) {
    r->head_cached = atomic_load_explicit(&r->head, memory_order_acquire);
    available = r->head_cached - tail;
  }
  ASSERT_HOT(available <= r->capacity);
  uint32_t n = available < max ? available : max;
  if (n == 0)
    return 0;

  /* Copy in at most two runs: up to the end of the slots, then from the
   * start. */
  uint32_t start = tail & r->mask;
  uint32_t first_run = r->capacity - start;
  if (first_run > n)
    first_run = n;
  memcpy(out, &r->slots[start], first_run * sizeof(*out));
  memcpy(out + first_run, &r->slots[0], (n - first_run) * sizeof(*out));

  atomic_store_explicit(&r->tail, tail + n, memory_order_release);
  return n;
}

uint32_t ring_count(const struct ring *r)
{
  /* tail first: head only grows, so head - tail cannot go below zero, but
   * it may exceed the capacity when the consumer moves between the loads. */
  uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
  uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
  uint32_t n = head - tail;
  return n > r->capacity ? r->capacity : n;
}

uint32_t ring_capacity(const struct ring *r)
{
  return r->capacity;
}
