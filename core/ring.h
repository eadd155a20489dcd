/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded lock-free single-producer single-consumer ring of fixed-size
 * entries, one per ordered pair of shards. Entries arrive in the order they
 * were pushed. Head and tail live on their own cache lines, and each side
 * keeps a cached copy of the other's index to touch the shared line rarely. */
#ifndef SHOAL_RING_H
#define SHOAL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One entry: a type code and three words whose meaning the type gives. */
struct ring_entry {
  uint32_t type;
  uint32_t aux;
  void *ptr;
  uint64_t a;
  uint64_t b;
};

struct ring;

/* Creates a ring with capacity entries (a power of two, at least 2).
 * Returns NULL on allocation failure or a bad capacity. */
struct ring *ring_create(uint32_t capacity);
void ring_destroy(struct ring *r);

/* Producer side. Copies e into the ring. Returns false when it is full. */
bool ring_push(struct ring *r, const struct ring_entry *e);

/* Consumer side. Copies up to max entries out. Returns how many. */
uint32_t ring_pop(struct ring *r, struct ring_entry *out, uint32_t max);

/* Either side: entries in the ring now (a snapshot), and the capacity. */
uint32_t ring_count(const struct ring *r);
uint32_t ring_capacity(const struct ring *r);

#endif
