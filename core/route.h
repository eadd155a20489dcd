/* SPDX-License-Identifier: Apache-2.0 */
/* Message routing: from a publish to every matching subscription, local
 * ones directly and other shards' through the rings. */
#ifndef SHOAL_ROUTE_H
#define SHOAL_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct shard;
struct ring_entry;
struct sub;

/* Routes one published message from publisher (NULL for the server's own
 * messages) on shard s. Returns false when a ring was full, so the caller
 * should pause the publisher until shard_send() drains its overflow. */
bool route_publish(struct shard *s, struct client *publisher,
                   const char *subject, uint32_t subject_len,
                   const char *reply, uint32_t reply_len,
                   const char *data, uint32_t header_len, uint32_t total_len);

/* Adds an internal subscription owned by shard shard_id: deliver runs on
 * that shard's thread for every matching message (a queue group member
 * when queue is not NULL). Must be called by an RCU-registered, online
 * thread. Returns NULL when subject is invalid or memory ran out. */
struct sub *route_subscribe_internal(uint32_t shard_id, const char *subject, const char *queue,
                                     void (*deliver)(struct sub *, const char *, uint32_t,
                                                     const char *, uint32_t, const char *,
                                                     uint32_t, uint32_t),
                                     void *ctx);

/* Removes an internal subscription and frees it after a grace period. */
void route_unsubscribe_internal(struct sub *sub);

struct shard_record;

/* Delivers one batched message received from another shard. */
void route_on_record(struct shard *s, const struct shard_record *r);

/* Delivers one entry received from another shard's ring. */
void route_on_entry(struct shard *s, const struct ring_entry *e);

#endif
