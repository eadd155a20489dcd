/* SPDX-License-Identifier: Apache-2.0 */
/* The background writer of durable consumer files. One thread, shared by
 * every shard, replaces meta.json and state.json atomically (write a
 * temporary file, fsync, rename, fsync of the directory) and removes the
 * directories of deleted consumers, so no shard waits for those fsyncs.
 *
 * Jobs run one at a time in submission order, so the writes and the
 * removal of one directory land in the order the shard asked for them.
 * The queue has no fixed bound. A consumer keeps at most one state.json
 * write queued (js_consumer.c), plus its meta.json write at creation and
 * the removal of its directory, so the queue has about three jobs per
 * durable consumer. Each job's result goes back to the shard that submitted it:
 * its callback runs on that shard's thread from js_state_poll(), and the
 * shard is woken through its wake eventfd, as the control mailbox wakes
 * it (core/control.c). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/js_int.h"
#include "core/log.h"
#include "core/server.h"
#include "core/shard.h"

enum job_kind { JOB_WRITE, JOB_REMOVE };

struct job {
  struct job *next;
  enum job_kind kind;
  uint32_t shard_id;
  bool make_dir;             /* JOB_WRITE: create dir first */
  char *dir;
  const char *name;          /* JOB_WRITE: a string literal, "meta.json" or "state.json" */
  char *text;                /* JOB_WRITE */
  int res;
  js_state_done_fn done;     /* may be NULL */
  void *ctx;
};

/* Results waiting for their shard, one list per shard. */
struct done_list {
  atomic_bool pending;       /* set while head is not empty */
  struct job *head;
  struct job *tail;
};

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int start_error;
/* Guards the job queue and every done list. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static struct job *queue_head;
static struct job *queue_tail;
/* Indexed by shard id; set once by the first submit, read by every shard. */
static _Atomic(struct done_list *) done_lists;

static void run_job(struct job *j) {
  if (j->kind == JOB_REMOVE) {
    j->res = js_remove_tree(j->dir);
    return;
  }
  j->res = j->make_dir ? js_mkdir_p(j->dir) : 0;
  if (j->res == 0) j->res = js_write_file_atomic(j->dir, j->name, j->text, strlen(j->text));
}

/* Hands j back to its shard and wakes the shard. */
static void finish_job(struct job *j) {
  struct done_list *d = &atomic_load_explicit(&done_lists, memory_order_acquire)[j->shard_id];
  pthread_mutex_lock(&lock);
  j->next = NULL;
  if (d->tail != NULL)
    d->tail->next = j;
  else
    d->head = j;
  d->tail = j;
  atomic_store_explicit(&d->pending, true, memory_order_relaxed);
  pthread_mutex_unlock(&lock);

  /* The eventfd stays readable until the shard reads it, so a shard that
   * tested the flag just before it was set still wakes from its poll. */
  uint64_t one = 1;
  ssize_t unused = write(js.shards[j->shard_id].shard->wake_fd, &one, sizeof one);
  (void)unused;
}

/* The writer thread's loop, endless by design: it lives as long as the
 * process. A job cut off by the exit leaves at most a temporary file,
 * never a torn meta.json or state.json. */
static void *writer_main(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (queue_head == NULL) pthread_cond_wait(&work, &lock);
    struct job *j = queue_head;
    queue_head = j->next;
    if (queue_head == NULL) queue_tail = NULL;
    pthread_mutex_unlock(&lock);

    run_job(j);
    finish_job(j);
  }
  return NULL;
}

static void start_writer(void) {
  struct done_list *lists = calloc((size_t)server.shard_count, sizeof *lists);
  if (lists == NULL) {
    start_error = -ENOMEM;
    return;
  }
  atomic_store_explicit(&done_lists, lists, memory_order_release);
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, writer_main, NULL);
  if (rc != 0) {
    start_error = -rc;
    log_error("JetStream: could not start the consumer state writer thread: %s", strerror(rc));
    return;
  }
  pthread_detach(thread);
}

static int submit(struct job *j) {
  pthread_once(&start_once, start_writer);
  if (start_error != 0) return start_error;
  pthread_mutex_lock(&lock);
  j->next = NULL;
  if (queue_tail != NULL)
    queue_tail->next = j;
  else
    queue_head = j;
  queue_tail = j;
  pthread_cond_signal(&work);
  pthread_mutex_unlock(&lock);
  return 0;
}

static struct job *new_job(struct js_shard *jsh, enum job_kind kind, const char *dir,
                           js_state_done_fn done, void *ctx) {
  struct job *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->dir = strdup(dir);
  if (j->dir == NULL) {
    free(j);
    return NULL;
  }
  j->kind = kind;
  j->shard_id = jsh->id;
  j->done = done;
  j->ctx = ctx;
  return j;
}

static void free_job(struct job *j) {
  free(j->dir);
  free(j->text);
  free(j);
}

int js_state_write(struct js_shard *jsh, const char *dir, const char *name, char *text,
                   bool make_dir, js_state_done_fn done, void *ctx) {
  struct job *j = new_job(jsh, JOB_WRITE, dir, done, ctx);
  if (j == NULL) {
    free(text);
    return -ENOMEM;
  }
  j->name = name;
  j->text = text;
  j->make_dir = make_dir;
  int rc = submit(j);
  if (rc != 0) free_job(j);
  return rc;
}

int js_state_remove(struct js_shard *jsh, const char *dir, js_state_done_fn done, void *ctx) {
  struct job *j = new_job(jsh, JOB_REMOVE, dir, done, ctx);
  if (j == NULL) return -ENOMEM;
  int rc = submit(j);
  if (rc != 0) free_job(j);
  return rc;
}

void js_state_poll(struct js_shard *jsh) {
  struct done_list *lists = atomic_load_explicit(&done_lists, memory_order_acquire);
  if (lists == NULL) return;
  struct done_list *d = &lists[jsh->id];
  if (!atomic_load_explicit(&d->pending, memory_order_relaxed)) return;

  pthread_mutex_lock(&lock);
  struct job *j = d->head;
  d->head = d->tail = NULL;
  atomic_store_explicit(&d->pending, false, memory_order_relaxed);
  pthread_mutex_unlock(&lock);

  /* Bounded by the jobs this shard submitted before the detach. */
  while (j != NULL) {
    struct job *next = j->next;
    if (j->done != NULL) j->done(jsh, j->ctx, j->res);
    free_job(j);
    j = next;
  }
}
