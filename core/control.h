/* SPDX-License-Identifier: Apache-2.0 */
/* The control mailbox: lets a thread that is not a shard (the HTTP monitor)
 * run a function on a shard's own thread, to read state that only the shard
 * may touch, such as its connection list. It is kept off the message path:
 * the shard loop tests one flag per iteration, and a global mutex guards the
 * queues. Owned by the control plane; the shard loop only calls
 * control_run_pending(). */
#ifndef SHOAL_CONTROL_H
#define SHOAL_CONTROL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct shard;
struct control_request;

/* A function run on shard s's thread with the caller's argument. It must be
 * bounded in time because the shard serves no I/O meanwhile. */
typedef void (*control_fn)(struct shard *s, void *arg);

/* One per shard, inside struct shard. All-zero bytes are a valid empty
 * mailbox, so shard creation needs no extra step. */
struct control_mailbox {
  atomic_bool pending;            /* set while queue is not empty */
  struct control_request *queue;  /* FIFO, guarded by the global control mutex */
};

/* Runs the requests queued for shard s. The shard loop calls it once per
 * iteration, and it costs one relaxed load when nothing is queued. It is a
 * macro so that the test is inlined where struct shard is complete. */
#define control_run_pending(s)                                                  \
  do {                                                                          \
    if (atomic_load_explicit(&(s)->control.pending, memory_order_relaxed))      \
      control_run_queue(s);                                                     \
  } while (0)

/* Runs and completes every request queued for s. Only s's thread calls it,
 * through control_run_pending(). */
void control_run_queue(struct shard *s);

/* Runs fn on every shard's thread, shard i getting (char *)args + i *
 * arg_size, and waits until all have run. The shards run their calls in
 * parallel. Returns 0, -ENOMEM, or -ETIMEDOUT when some shard did not start
 * its call within timeout_ms. Such a call is withdrawn and never runs, so
 * args may be freed at once, and the other shards' results are complete.
 * Any thread except a shard thread may call it, because a shard waiting on
 * itself would never finish. */
int control_run_on_all(control_fn fn, void *args, size_t arg_size, int timeout_ms);

#endif
