/* SPDX-License-Identifier: Apache-2.0 */
/* A shard: one pinned thread with its own event loop, owning a disjoint set
 * of connections and their subscriptions. Shards exchange messages only
 * through SPSC rings, one per ordered pair. */
#ifndef SHOAL_SHARD_H
#define SHOAL_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/control.h"
#include "core/ring.h"

struct backend_ops;
struct client;
struct monitor_closed_ring;
struct subcache;

/* Ring entry types. */
enum shard_entry_type {
  SHARD_ENTRY_MSG = 1,     /* ptr: struct msg; deliver to local plain subs */
  SHARD_ENTRY_QUEUE_MSG,   /* ptr: struct msg; a: struct shard_qpick * */
  SHARD_ENTRY_BATCH,       /* ptr: struct shard_batch of small messages */
  SHARD_ENTRY_BARRIER,     /* ptr: struct client on shard a; answer with an ACK */
  SHARD_ENTRY_BARRIER_ACK, /* ptr: struct client of ours */
};

/* A queue group chosen for a message on another shard: the destination
 * picks a local member of the group named queue. */
struct shard_qpick {
  uint32_t hops;      /* shards tried so far, bounded by the shard count */
  uint32_t queue_len;
  char queue[];
};

/* Small messages for one destination shard, copied into one buffer during
 * a loop iteration and sent as a single ring entry at its end, so a burst of
 * small publishes costs one allocation and one ring slot per destination
 * instead of one per message. The records are struct shard_record. */
struct shard_batch {
  uint32_t count;
  uint32_t len;
  uint32_t cap;
  char data[];
};

enum shard_record_kind {
  SHARD_RECORD_PLAIN = 1, /* deliver to the destination's plain subscribers */
  SHARD_RECORD_QUEUE,     /* deliver to one local member of the named group */
};

/* One message in a batch, followed by subject, reply, queue name and data,
 * the whole rounded up to 8 bytes. */
struct shard_record {
  uint8_t kind;
  uint8_t hops;        /* SHARD_RECORD_QUEUE: shards tried so far */
  uint16_t queue_len;
  uint32_t subject_len;
  uint32_t reply_len;
  uint32_t header_len;
  uint32_t total_len;
  uint32_t size;       /* bytes of this record, header included */
};

/* Entries that did not fit in a full ring, kept in order until it drains. */
struct shard_overflow {
  struct ring_entry *entries;
  uint32_t head;
  uint32_t count;
  uint32_t cap;
};

/* Work a subsystem (JetStream, storage) runs once per loop iteration on
 * the shard's thread. run returns true while it has more work, which keeps
 * the shard from sleeping. */
struct shard;
struct shard_hook {
  bool (*run)(struct shard *s, void *ctx);
  void *ctx;
};
#define SHARD_HOOKS_MAX 4

/* Per-shard counters, summed over shards when read. Padded so that two
 * shards never write the same cache line. */
struct shard_stats {
  _Alignas(64) uint64_t msgs_in;
  uint64_t bytes_in;
  uint64_t msgs_out;
  uint64_t bytes_out;
  uint64_t slow_consumers;
  uint64_t ring_full_events;
  uint64_t stall_events;
  uint64_t connections_total;
};

struct shard {
  uint32_t id;
  pthread_t thread;
  const struct backend_ops *backend;
  void *backend_state;
  int listen_fd;
  int wake_fd;               /* eventfd: another thread has work for us */
  struct control_mailbox control; /* requests from non-shard threads (monitoring) */
  _Alignas(64) atomic_int sleeping;
  /* Bit src is set while shard src holds entries for us in its overflow
   * queue; we wake src after making room in its ring. */
  atomic_uint_fast64_t room_wanted[4];
  _Alignas(64) struct ring **in;  /* in[src]: entries from shard src */
  struct shard_overflow *overflow; /* overflow[dst], in order before new entries */
  struct shard_batch **batch;      /* batch[dst]: small messages not sent yet */
  struct subcache *cache;
  struct monitor_closed_ring *closed; /* recently closed connections, for /connz */
  struct client *clients;    /* every open or closing connection */
  struct client *dirty;      /* connections with output to flush */
  struct client *reap;       /* closed connections to free */
  struct client *paused;     /* connections waiting for ring room */
  uint32_t client_count;
  uint32_t stalled_count;    /* connections with stalled set */
  int64_t stall_deadline_ms; /* when stalled connections stop holding publishers */
  bool stall_hit;            /* the last publish reached a stalled connection */
  unsigned reload_gen;       /* server.reload_gen this shard has applied */
  bool lame_duck;            /* lame-duck mode seen: no longer accepting */
  uint64_t lame_duck_clients; /* open connections when lame-duck mode began */
  int64_t now_ms;
  int64_t next_tick_ms;
  /* Loop iterations so far, written only by this shard and read by the
   * main thread's watchdog: a value that stops moving means a stuck loop. */
  _Atomic uint64_t heartbeat;
  bool stop;
  struct shard_hook hooks[SHARD_HOOKS_MAX];
  uint32_t hook_count;
  bool rcu_offline;          /* blocked in the backend's wait, outside RCU */
  int64_t hook_wake_ms;      /* earliest time a hook must run again, 0 = none;
                                reset before and lowered by the hooks each pass */
  struct shard_stats stats;
};

/* Called on each shard's thread after its event loop is set up and before
 * it serves connections; set before shard_start_all(). */
extern void (*shard_on_start)(struct shard *s);

/* Called on each shard's thread when its loop has ended at shutdown. The
 * clients are closed but the event loop still runs, so a subsystem can
 * finish its writes. Set before shard_start_all(). */
extern void (*shard_on_stop)(struct shard *s);

/* Adds a hook to s. Shard thread only. Returns 0 or -ENOSPC. */
int shard_add_hook(struct shard *s, bool (*run)(struct shard *s, void *ctx), void *ctx);

/* Creates the shards' structures and rings; starts no thread. */
int shard_create_all(void);

/* Starts every shard thread. Returns 0 or a negative errno. */
int shard_start_all(void);

/* Asks every shard to stop, then joins the threads. */
void shard_stop_all(void);

/* Queues an entry for shard dst from shard s (the caller's shard), waking
 * dst if it sleeps. Returns false when the entry went to the overflow
 * queue because the ring is full; it will be sent later, in order. */
bool shard_send(struct shard *s, uint32_t dst, const struct ring_entry *e);

/* Copies one small message into s's batch for dst. Returns false when
 * dst's ring is backed up, so the publisher should pause. */
bool shard_batch_append(struct shard *s, uint32_t dst, enum shard_record_kind kind,
                        uint8_t hops, const char *subject, uint32_t subject_len,
                        const char *reply, uint32_t reply_len, const char *queue,
                        uint16_t queue_len, const char *data, uint32_t header_len,
                        uint32_t total_len);

/* Called by a backend when a new connection was accepted on s. */
void shard_on_accept(struct shard *s, int fd);

/* Called by a backend as soon as its wait for events returns and before
 * it handles any, so the thread is back online for RCU readers. */
void shard_wait_done(struct shard *s);

/* Called by a backend when the wake eventfd fired. */
void shard_on_wake(struct shard *s);

/* Marks c as having output to flush at the end of the loop iteration. */
void shard_mark_dirty(struct shard *s, struct client *c);

#endif
