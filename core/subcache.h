/* SPDX-License-Identifier: Apache-2.0 */
/* A shard's private cache of sublist match results, keyed by the subject's
 * XXH3 hash and dropped whole when the sublist's generation moves. Owned and
 * used by one thread only. */
#ifndef SHOAL_SUBCACHE_H
#define SHOAL_SUBCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sublist.h"

struct subcache;

/* Creates a cache holding at most capacity results (rounded up to a power
 * of two, at least 4). Returns NULL on allocation failure or when capacity
 * is above 2^24. */
struct subcache *subcache_create(struct sublist *sl, uint32_t capacity);
void subcache_destroy(struct subcache *c);

/* Returns the match result for subject, from the cache or from the sublist.
 * The result stays valid until the next subcache_match() call on this cache
 * or the thread's next quiescent state, whichever comes first. Returns NULL
 * on allocation failure. */
const struct sublist_result *subcache_match(struct subcache *c,
                                            const char *subject, size_t len);

/* Counters for monitoring. Another thread may read them. */
uint64_t subcache_hits(const struct subcache *c);
uint64_t subcache_misses(const struct subcache *c);

/* The subject hash and fan-out of a result cached for the sublist's
 * current generation, for monitoring. */
struct subcache_stat {
  uint64_t hash;   /* XXH3-64 of the subject */
  uint32_t fanout; /* plain subscriptions plus queue groups */
};

/* Returns how many results c can hold. */
uint32_t subcache_capacity(const struct subcache *c);

/* Copies the hash and fan-out of each result cached for the sublist's
 * current generation into out, at most out_cap of them, and returns how
 * many it copied. Fan-out counts a queue group once, as nats-server's
 * sublist statistics do. Reads the cache without changing it; owning
 * thread only, because that thread replaces entries. */
uint32_t subcache_stats(const struct subcache *c, struct subcache_stat *out,
                        uint32_t out_cap);

#endif
