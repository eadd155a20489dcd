/* SPDX-License-Identifier: Apache-2.0 */
/* The control mailbox: queues of requests that other threads hand to a
 * shard, run on the shard's thread between loop iterations. One global
 * mutex guards every queue and completion flag. Requests are rare (a few
 * per monitoring scrape), so contention does not matter, and a static mutex
 * needs no set-up when shards are created. */
#include "core/control.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/server.h"
#include "core/shard.h"

struct control_request {
  control_fn fn;
  void *arg;
  struct control_request *next;
  bool started;             /* the shard detached it from the queue to run it */
  bool done;
  pthread_cond_t done_cond; /* signalled under control_lock when done is set */
};

static pthread_mutex_t control_lock = PTHREAD_MUTEX_INITIALIZER;

void control_run_queue(struct shard *s) {
  pthread_mutex_lock(&control_lock);
  struct control_request *list = s->control.queue;
  s->control.queue = NULL;
  atomic_store_explicit(&s->control.pending, false, memory_order_relaxed);
  for (struct control_request *r = list; r != NULL; r = r->next) r->started = true;
  pthread_mutex_unlock(&control_lock);

  /* The waiter may free a request as soon as done is set, so next is read
   * before that. */
  while (list != NULL) {
    struct control_request *r = list;
    list = r->next;
    r->fn(s, r->arg);
    pthread_mutex_lock(&control_lock);
    r->done = true;
    pthread_cond_signal(&r->done_cond);
    pthread_mutex_unlock(&control_lock);
  }
}

/* Appends r to s's queue and wakes s. */
static void post(struct shard *s, struct control_request *r) {
  pthread_mutex_lock(&control_lock);
  struct control_request **tail = &s->control.queue;
  while (*tail != NULL) tail = &(*tail)->next;
  *tail = r;
  atomic_store_explicit(&s->control.pending, true, memory_order_relaxed);
  pthread_mutex_unlock(&control_lock);

  /* The eventfd stays readable until the shard reads it, so a shard that
   * tested the flag just before we set it still wakes from its poll. */
  uint64_t one = 1;
  ssize_t unused = write(s->wake_fd, &one, sizeof one);
  (void)unused;
}

/* Removes r from s's queue unless the shard has started it. Called with
 * control_lock held. Returns true when r was withdrawn. */
static bool withdraw(struct shard *s, struct control_request *r) {
  if (r->started) return false;
  for (struct control_request **p = &s->control.queue; *p != NULL; p = &(*p)->next) {
    if (*p != r) continue;
    *p = r->next;
    if (s->control.queue == NULL)
      atomic_store_explicit(&s->control.pending, false, memory_order_relaxed);
    return true;
  }
  ASSERT(!"a request not started must be in its shard's queue");
  return false;
}

/* Waits until r is done, or withdraws it at deadline. A request already
 * started is waited for without limit, because the shard runs it right away
 * and its argument must outlive the call. Returns 0 or -ETIMEDOUT. */
static int wait_done(struct shard *s, struct control_request *r, const struct timespec *deadline) {
  int result = 0;
  pthread_mutex_lock(&control_lock);
  while (!r->done) {
    int rc = r->started ? pthread_cond_wait(&r->done_cond, &control_lock)
                      : pthread_cond_timedwait(&r->done_cond, &control_lock, deadline);
    if (rc == ETIMEDOUT && withdraw(s, r)) {
      result = -ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&control_lock);
  return result;
}

int control_run_on_all(control_fn fn, void *args, size_t arg_size, int timeout_ms) {
  int n = server.shard_count;
  struct control_request *requests = calloc((size_t)n, sizeof *requests);
  if (requests == NULL) return -ENOMEM;

  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  for (int i = 0; i < n; i++) {
    requests[i].fn = fn;
    requests[i].arg = (char *)args + (size_t)i * arg_size;
    pthread_cond_init(&requests[i].done_cond, &attr);
  }
  pthread_condattr_destroy(&attr);

  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }

  for (int i = 0; i < n; i++) post(server.shards[i], &requests[i]);
  int result = 0;
  for (int i = 0; i < n; i++) {
    if (wait_done(server.shards[i], &requests[i], &deadline) != 0) result = -ETIMEDOUT;
    pthread_cond_destroy(&requests[i].done_cond);
  }
  free(requests);
  return result;
}
