/* SPDX-License-Identifier: Apache-2.0 */
/* The subscription index shared by all shards: a trie over dot-separated
 * tokens with '*' and '>' wildcards.
 *
 * Concurrency: lookups take no lock and run inside a liburcu QSBR read-side
 * section (each shard thread is registered with rcu_register_thread() and
 * reports quiescent states between loop iterations). Inserts and removals
 * take a short mutex, publish replaced nodes with rcu_assign_pointer() and
 * free the old ones with call_rcu(). Every change bumps the generation, so
 * per-shard caches of match results know when to drop their entries. */
#ifndef SHOAL_SUBLIST_H
#define SHOAL_SUBLIST_H

#include <stddef.h>
#include <stdint.h>

#include "core/sub-t.h"

struct sublist;

/* One queue group among the matches: every member shares the queue name. */
struct sublist_qgroup {
  const char *queue;
  uint32_t queue_len;
  uint32_t member_count;
  struct sub **members;
};

/* The subscriptions matching one subject. Plain subscriptions each get a
 * copy of the message; each queue group gets one copy for one member. */
struct sublist_result {
  uint32_t plain_count;
  uint32_t group_count;
  struct sub **plain;
  struct sublist_qgroup *groups;
};

struct sublist *sublist_create(void);

/* Frees the index. No thread may use it any more. The subscriptions in it
 * are not freed. */
void sublist_destroy(struct sublist *sl);

/* Adds sub. Takes the mutex. The calling thread must be RCU-registered and
 * online, because replaced nodes are freed with call_rcu(). Returns 0,
 * -EINVAL when the subject or the queue name is not valid, -EEXIST when sub
 * is already in the index, or -ENOMEM. */
int sublist_insert(struct sublist *sl, struct sub *sub);

/* Removes sub and prunes the nodes it leaves empty. Takes the mutex; the
 * calling thread must be RCU-registered and online. Returns 0, -ENOENT when
 * sub is not in the index, or -ENOMEM when the copy of its node's
 * subscription list cannot be allocated, in which case sub stays in the
 * index and must not be freed. After 0, the caller frees sub only after a
 * grace period (call_rcu), because readers may still hold it. */
int sublist_remove(struct sublist *sl, struct sub *sub);

/* Returns the generation, which changes on every insert and removal. Loaded
 * with acquire order. */
uint64_t sublist_generation(const struct sublist *sl);

/* Reads how many inserts and removals succeeded since creation. Any
 * thread. */
void sublist_changes(const struct sublist *sl, uint64_t *inserts, uint64_t *removes);

/* Returns the number of subscriptions in the index. */
uint64_t sublist_count(const struct sublist *sl);

/* Finds every subscription matching the literal subject. Must be called by
 * an RCU-registered thread that is online. Returns a result allocated with
 * malloc() as one block (free() it once), or NULL on allocation failure.
 * The sub pointers and queue names stay valid until the caller's next
 * quiescent state. Queue subscriptions with the same queue name form one
 * group even when they come from different patterns, as in nats-server. A
 * subject with an empty token matches nothing. */
struct sublist_result *sublist_match(struct sublist *sl, const char *subject,
                                     size_t len);

#endif
