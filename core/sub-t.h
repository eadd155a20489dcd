/* SPDX-License-Identifier: Apache-2.0 */
/* The subscription record, types only. A record belongs to the shard of its
 * connection; the shared sublist reads subject, queue and shard_id only. */
#ifndef SHOAL_SUB_T_H
#define SHOAL_SUB_T_H

#include <stdint.h>
#include <urcu-qsbr.h>

struct client;

struct sub {
  char *subject;           /* NUL-terminated, validated by subject_valid() */
  uint32_t subject_len;
  char *queue;             /* NUL-terminated queue group name, or NULL */
  uint32_t queue_len;
  uint32_t shard_id;       /* owning shard */
  struct client *client;   /* owning connection; NULL for internal subscribers */
  char *sid;               /* client's subscription id, NUL-terminated */
  uint32_t sid_len;
  uint64_t delivered;      /* messages delivered so far */
  int64_t max_msgs;        /* auto-unsubscribe after this many; 0 = no limit */
  struct sub *next_in_client; /* the owning client's list of subscriptions */
  /* Internal subscribers (client NULL), such as JetStream's: called on the
   * owning shard's thread for each matching message. */
  void (*deliver)(struct sub *sub, const char *subject, uint32_t subject_len,
                  const char *reply, uint32_t reply_len, const char *data,
                  uint32_t header_len, uint32_t total_len);
  void *internal_ctx;
  struct rcu_head rcu;     /* for freeing after a grace period */
};

#endif
