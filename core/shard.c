/* SPDX-License-Identifier: Apache-2.0 */
/* The shard runtime: thread start-up, the event loop, the rings between
 * shards and their overflow queues, and per-connection housekeeping. */
#include "core/shard.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "core/assert.h"
#include "core/client.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/msg.h"
#include "core/route.h"
#include "core/server.h"
#include "core/subcache.h"
#include "net/backend.h"
#include "net/listener.h"

/* Entries per ring. With the overflow queue behind it, a full ring pauses
 * publishers instead of dropping or blocking. */
#define SHARD_RING_CAPACITY 8192
/* Entries drained from one ring per loop iteration, so one busy peer cannot
 * starve the shard's own sockets. */
#define SHARD_DRAIN_BATCH 256
#define SHARD_SUBCACHE_CAPACITY 4096
#define SHARD_TICK_MS 250

void (*shard_on_start)(struct shard *s);
void (*shard_on_stop)(struct shard *s);

/* Shard threads meet here after leaving their loops, before teardown. */
static pthread_barrier_t stop_barrier;

int shard_add_hook(struct shard *s, bool (*run)(struct shard *s, void *ctx), void *ctx) {
  if (s->hook_count == SHARD_HOOKS_MAX) return -ENOSPC;
  s->hooks[s->hook_count++] = (struct shard_hook){.run = run, .ctx = ctx};
  return 0;
}

static bool run_hooks(struct shard *s) {
  bool busy = false;
  for (uint32_t i = 0; i < s->hook_count; i++) busy |= s->hooks[i].run(s, s->hooks[i].ctx);
  return busy;
}

int shard_create_all(void) {
  int n = server.shard_count;
  server.shards = calloc((size_t)n, sizeof *server.shards);
  if (server.shards == NULL) return -ENOMEM;

  for (int i = 0; i < n; i++) {
    struct shard *s = aligned_alloc(64, (sizeof(struct shard) + 63) & ~(size_t)63);
    if (s == NULL) return -ENOMEM;
    memset(s, 0, sizeof *s);
    s->id = (uint32_t)i;
    s->listen_fd = -1;
    s->in = calloc((size_t)n, sizeof *s->in);
    s->overflow = calloc((size_t)n, sizeof *s->overflow);
    s->batch = calloc((size_t)n, sizeof *s->batch);
    if (s->in == NULL || s->overflow == NULL || s->batch == NULL) return -ENOMEM;
    for (int src = 0; src < n; src++) {
      if (src == i) continue;
      s->in[src] = ring_create(SHARD_RING_CAPACITY);
      if (s->in[src] == NULL) return -ENOMEM;
    }
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) return -errno;
    server.shards[i] = s;
  }
  return 0;
}

/* Wakes dst if it announced sleep. from is the calling shard, or NULL for
 * other threads. */
static void wake(struct shard *from, struct shard *dst) {
  /* Pairs with the fence in the shard loop: either dst sees our entry
   * after announcing sleep, or we see its announcement here. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&dst->sleeping, memory_order_seq_cst) == 0) return;
  if (atomic_exchange(&dst->sleeping, 0) == 0) return;
  if (from != NULL && from->backend->wake_peer != NULL && from->backend->wake_peer(from, dst))
    return;
  uint64_t one = 1;
  ssize_t unused = write(dst->wake_fd, &one, sizeof one);
  (void)unused;
}

static bool overflow_push(struct shard_overflow *o, const struct ring_entry *e) {
  if (o->count == o->cap) {
    uint32_t cap = o->cap ? o->cap * 2 : 64;
    struct ring_entry *entries = malloc(cap * sizeof *entries);
    if (entries == NULL) return false;
    for (uint32_t i = 0; i < o->count; i++) entries[i] = o->entries[(o->head + i) % o->cap];
    free(o->entries);
    o->entries = entries;
    o->head = 0;
    o->cap = cap;
  }
  o->entries[(o->head + o->count) % o->cap] = *e;
  o->count++;
  return true;
}

static void flush_batch(struct shard *s, uint32_t dst);

bool shard_send(struct shard *s, uint32_t dst, const struct ring_entry *e) {
  ASSERT(dst != s->id);
  /* Batched messages were published first: they go first. */
  if (e->type != SHARD_ENTRY_BATCH && s->batch[dst] != NULL) flush_batch(s, dst);
  struct shard *d = server.shards[dst];
  struct shard_overflow *o = &s->overflow[dst];
  /* Entries already waiting go first, to keep per-pair FIFO order. */
  if (o->count == 0 && ring_push(d->in[s->id], e)) {
    wake(s, d);
    return true;
  }
  s->stats.ring_full_events++;
  if (!overflow_push(o, e)) {
    log_error("shard %u: out of memory queueing for shard %u, message dropped", s->id, dst);
    msg_release(e->ptr);
  }
  wake(s, d);
  return false;
}

/* A batch grows to this size before it is sent ahead of the iteration's
 * end; 64 KiB keeps the copy cache-resident. */
#define SHARD_BATCH_BYTES (64 * 1024)

static void flush_batch(struct shard *s, uint32_t dst) {
  struct shard_batch *b = s->batch[dst];
  s->batch[dst] = NULL;
  struct ring_entry e = {.type = SHARD_ENTRY_BATCH, .ptr = b};
  shard_send(s, dst, &e);
}

static void flush_batches(struct shard *s) {
  for (uint32_t dst = 0; dst < (uint32_t)server.shard_count; dst++) {
    if (s->batch[dst] != NULL) flush_batch(s, dst);
  }
}

bool shard_batch_append(struct shard *s, uint32_t dst, enum shard_record_kind kind,
                        uint8_t hops, const char *subject, uint32_t subject_len,
                        const char *reply, uint32_t reply_len, const char *queue,
                        uint16_t queue_len, const char *data, uint32_t header_len,
                        uint32_t total_len) {
  ASSERT(dst != s->id);
  uint32_t size = (uint32_t)sizeof(struct shard_record) + subject_len + reply_len + queue_len +
                  total_len;
  size = (size + 7) & ~7u;

  struct shard_batch *b = s->batch[dst];
  if (b != NULL && b->len + size > b->cap) {
    flush_batch(s, dst);
    b = NULL;
  }
  if (b == NULL) {
    uint32_t cap = size > SHARD_BATCH_BYTES ? size : SHARD_BATCH_BYTES;
    b = malloc(sizeof *b + cap);
    if (b == NULL) {
      log_error("shard %u: out of memory batching for shard %u, message dropped", s->id, dst);
      return true;
    }
    b->count = 0;
    b->len = 0;
    b->cap = cap;
    s->batch[dst] = b;
  }

  struct shard_record *r = (struct shard_record *)(b->data + b->len);
  *r = (struct shard_record){.kind = (uint8_t)kind, .hops = hops, .queue_len = queue_len,
                             .subject_len = subject_len, .reply_len = reply_len,
                             .header_len = header_len, .total_len = total_len, .size = size};
  char *p = (char *)(r + 1);
  memcpy(p, subject, subject_len);
  p += subject_len;
  if (reply_len > 0) memcpy(p, reply, reply_len);
  p += reply_len;
  if (queue_len > 0) memcpy(p, queue, queue_len);
  p += queue_len;
  if (total_len > 0) memcpy(p, data, total_len);
  b->len += size;
  b->count++;
  return s->overflow[dst].count == 0;
}

/* Moves overflow entries into rings that have room. Returns true when no
 * overflow remains. */
static bool drain_overflow(struct shard *s) {
  bool empty = true;
  for (uint32_t dst = 0; dst < (uint32_t)server.shard_count; dst++) {
    struct shard_overflow *o = &s->overflow[dst];
    if (o->count == 0) continue;
    struct shard *d = server.shards[dst];
    for (int attempt = 0; attempt < 2 && o->count > 0; attempt++) {
      if (attempt == 1) {
        /* Still full: ask dst to wake us once it makes room, then look
         * again, so that room made in between is not missed. */
        atomic_fetch_or(&d->room_wanted[s->id >> 6], 1ULL << (s->id & 63));
        atomic_thread_fence(memory_order_seq_cst);
      }
      while (o->count > 0 && ring_push(d->in[s->id], &o->entries[o->head])) {
        o->head = (o->head + 1) % o->cap;
        o->count--;
      }
    }
    wake(s, d);
    if (o->count > 0) empty = false;
  }
  return empty;
}

static void resume_paused(struct shard *s) {
  struct client *list = s->paused;
  s->paused = NULL;
  while (list != NULL) {
    struct client *c = list;
    list = c->next_paused;
    c->next_paused = NULL;
    client_resume(c);
  }
}

/* Ends a stall that lasted too long: the stalled connections stop holding
 * publishers back and fall under the max_pending rule. */
static void release_stalls(struct shard *s) {
  for (struct client *c = s->clients; c != NULL; c = c->next) {
    if (!c->stalled) continue;
    c->stalled = false;
    c->stall_exempt = true;
    log_debug("%s:%d - cid:%" PRIu64 " - still stalled at the deadline, publishers released",
              c->ip, c->port, c->cid);
  }
  s->stalled_count = 0;
}

static void handle_entry(struct shard *s, const struct ring_entry *e) {
  switch (e->type) {
  case SHARD_ENTRY_BARRIER: {
    struct ring_entry ack = {.type = SHARD_ENTRY_BARRIER_ACK, .ptr = e->ptr};
    shard_send(s, (uint32_t)e->a, &ack);
    break;
  }
  case SHARD_ENTRY_BARRIER_ACK:
    client_on_barrier_ack(e->ptr);
    break;
  case SHARD_ENTRY_BATCH: {
    struct shard_batch *b = e->ptr;
    for (uint32_t off = 0; off < b->len;) {
      const struct shard_record *r = (const struct shard_record *)(b->data + off);
      route_on_record(s, r);
      off += r->size;
    }
    free(b);
    break;
  }
  default:
    route_on_entry(s, e);
    break;
  }
}

/* Wakes shard src if it waits for room in its ring to us. */
static void wake_waiting_producer(struct shard *s, uint32_t src) {
  uint64_t bit = 1ULL << (src & 63);
  atomic_thread_fence(memory_order_seq_cst);
  if ((atomic_load_explicit(&s->room_wanted[src >> 6], memory_order_relaxed) & bit) == 0) return;
  atomic_fetch_and(&s->room_wanted[src >> 6], ~bit);
  wake(s, server.shards[src]);
}

/* Drains inbound rings. Returns the number of entries handled. */
static uint32_t drain_rings(struct shard *s) {
  uint32_t total = 0;
  struct ring_entry batch[64];
  for (uint32_t src = 0; src < (uint32_t)server.shard_count; src++) {
    if (src == s->id) continue;
    uint32_t budget = SHARD_DRAIN_BATCH;
    while (budget > 0) {
      uint32_t n = ring_pop(s->in[src], batch, budget < 64 ? budget : 64);
      if (n == 0) break;
      for (uint32_t i = 0; i < n; i++) handle_entry(s, &batch[i]);
      budget -= n;
      total += n;
      wake_waiting_producer(s, src);
      if (s->stalled_count > 0) return total; /* a consumer is full: hold the rest */
    }
  }
  return total;
}

static bool rings_have_entries(struct shard *s) {
  for (uint32_t src = 0; src < (uint32_t)server.shard_count; src++) {
    if (src != s->id && ring_count(s->in[src]) > 0) return true;
  }
  return false;
}

void shard_mark_dirty(struct shard *s, struct client *c) {
  if (c->on_dirty_list) return;
  c->on_dirty_list = true;
  c->next_dirty = s->dirty;
  s->dirty = c;
}

static void flush_dirty(struct shard *s) {
  /* Flushing can mark more clients dirty (a close after flush), so loop
   * until the list stays empty; each pass only shrinks the work. */
  while (s->dirty != NULL) {
    struct client *list = s->dirty;
    s->dirty = NULL;
    while (list != NULL) {
      struct client *c = list;
      list = c->next_dirty;
      c->on_dirty_list = false;
      client_flush(c);
    }
  }
}

static void reap_closed(struct shard *s) {
  struct client *waiting = NULL;
  while (s->reap != NULL) {
    struct client *c = s->reap;
    s->reap = c->next_reap;
    if (c->barriers_pending > 0) {
      /* Other shards still hold barriers naming c: free it after the acks. */
      c->next_reap = waiting;
      waiting = c;
      continue;
    }
    if (c->prev) c->prev->next = c->next;
    else s->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    s->client_count--;
    client_destroy(c);
  }
  s->reap = waiting;
}

void shard_on_accept(struct shard *s, int fd) {
  int64_t open = atomic_fetch_add(&server.connections, 1) + 1;
  struct client *c = client_create(s, fd);
  if (c == NULL) {
    atomic_fetch_sub(&server.connections, 1);
    close(fd);
    return;
  }
  c->next = s->clients;
  if (s->clients) s->clients->prev = c;
  s->clients = c;
  s->client_count++;
  s->stats.connections_total++;

  if (open > server.opts.max_connections) {
    client_send_err(c, "'maximum connections exceeded'");
    client_close(c, CLOSE_MAX_CONNECTIONS, true);
    return;
  }
  int rc = s->backend->client_start(s, c);
  if (rc != 0) {
    log_error("cid:%" PRIu64 " - could not start receiving: %s", c->cid, strerror(-rc));
    client_close(c, CLOSE_READ_ERROR, false);
  }
}

void shard_wait_done(struct shard *s) {
  if (!s->rcu_offline) return;
  s->rcu_offline = false;
  rcu_thread_online();
}

void shard_on_wake(struct shard *s) {
  uint64_t v;
  ssize_t unused = read(s->wake_fd, &v, sizeof v);
  (void)unused;
}

static void tick(struct shard *s) {
  for (struct client *c = s->clients; c != NULL; c = c->next) client_tick(c, s->now_ms);
}

static void close_all(struct shard *s) {
  for (struct client *c = s->clients; c != NULL; c = c->next) {
    client_close(c, CLOSE_SERVER_SHUTDOWN, true);
  }
}

/* Pins the shard's thread to one CPU when there is one shard per CPU the
 * process may use. With fewer shards than CPUs the threads stay free to
 * move: a pinned thread waits whenever another process holds its CPU, and
 * on a shared 2-CPU machine that raised the p99 latency of a paced 1:1
 * pub/sub run on one shard from about 1-2 ms to 1-20 ms. */
static void pin_to_cpu(struct shard *s) {
  cpu_set_t online;
  if (sched_getaffinity(0, sizeof online, &online) != 0) return;
  int count = CPU_COUNT(&online);
  if (count <= 1 || count != server.shard_count) return;
  int want = (int)s->id % count;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &online)) continue;
    if (seen++ != want) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    return;
  }
}

/* jemalloc's control interface, present when shoal-server links jemalloc
 * and NULL in builds that do not (the sanitizer builds, the tests). */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

/* Gives the shard's thread a jemalloc arena of its own, so allocations on
 * the message path never contend with another shard's. */
static void use_own_arena(struct shard *s) {
  if (mallctl == NULL) return;
  unsigned arena = 0;
  size_t size = sizeof arena;
  if (mallctl("arenas.create", &arena, &size, NULL, 0) != 0 ||
      mallctl("thread.arena", NULL, NULL, &arena, sizeof arena) != 0) {
    log_warn("shard %u: could not create a jemalloc arena; sharing the default ones", s->id);
  }
}

static void *shard_main(void *arg) {
  struct shard *s = arg;
  pin_to_cpu(s);
  use_own_arena(s);
  rcu_register_thread();
  s->cache = subcache_create(server.sublist, SHARD_SUBCACHE_CAPACITY);
  ASSERT(s->cache != NULL);
  s->now_ms = server_now_ms();
  s->next_tick_ms = s->now_ms + SHARD_TICK_MS;

  int rc = s->backend->init(s);
  if (rc != 0) {
    log_fatal("shard %u: %s backend start failed: %s", s->id, s->backend->name, strerror(-rc));
    exit(1);
  }
  if (shard_on_start != NULL) shard_on_start(s);

  /* The shard loop runs until shutdown; every step inside is bounded. */
  bool stopping = false;
  int64_t stop_deadline = 0;
  for (;;) {
    /* Single writer, so a relaxed load and store avoid a locked add. */
    uint64_t beat = atomic_load_explicit(&s->heartbeat, memory_order_relaxed);
    atomic_store_explicit(&s->heartbeat, beat + 1, memory_order_relaxed);
    s->now_ms = server_now_ms();
    if (s->stalled_count > 0 && s->now_ms >= s->stall_deadline_ms) release_stalls(s);
    uint32_t handled = s->stalled_count > 0 ? 0 : drain_rings(s);
    control_run_pending(s);
    if (drain_overflow(s) && s->paused != NULL && s->stalled_count == 0) resume_paused(s);
    s->hook_wake_ms = 0;
    bool hooks_busy = run_hooks(s);
    flush_batches(s);
    flush_dirty(s);
    reap_closed(s);

    if (s->now_ms >= s->next_tick_ms) {
      tick(s);
      lifecycle_tick(s);
      s->next_tick_ms = s->now_ms + SHARD_TICK_MS;
    }
    if (atomic_load(&server.stopping) && !stopping) {
      stopping = true;
      stop_deadline = s->now_ms + 2000;
      s->stop = true;
      s->backend->stop_accepting(s);
      close_all(s);
      flush_dirty(s);
    }
    if (stopping && (s->clients == NULL || s->now_ms > stop_deadline)) break;
    rcu_quiescent_state();

    /* Sleep only when no ring has entries, announcing it first so that a
     * producer that pushes after the check wakes us. */
    int timeout = 0;
    if (handled == 0 && !hooks_busy && s->dirty == NULL && s->reap == NULL) {
      atomic_store(&s->sleeping, 1);
      atomic_thread_fence(memory_order_seq_cst);
      bool stalled = s->stalled_count > 0;
      if ((!stalled && rings_have_entries(s)) || atomic_load(&server.stopping)) {
        atomic_store(&s->sleeping, 0);
      } else {
        int64_t until = s->next_tick_ms;
        if (stalled && s->stall_deadline_ms < until) until = s->stall_deadline_ms;
        if (s->hook_wake_ms != 0 && s->hook_wake_ms < until) until = s->hook_wake_ms;
        timeout = (int)(until - s->now_ms);
        if (timeout < 0) timeout = 0;
      }
    }
    if (timeout > 0) {
      /* Offline only while blocked: the backend calls shard_wait_done()
       * before it handles completions, which read the sublist. */
      s->rcu_offline = true;
      rcu_thread_offline();
    }
    rc = s->backend->poll(s, timeout);
    shard_wait_done(s);
    atomic_store(&s->sleeping, 0);
    if (rc < 0 && rc != -EINTR && rc != -ETIME) {
      log_error("shard %u: event loop failed: %s", s->id, strerror(-rc));
    }
  }

  if (shard_on_stop != NULL) shard_on_stop(s);
  /* Other shards may still push to this one and wake it until they leave
   * their loops too, so no shard frees its event loop before all have. */
  pthread_barrier_wait(&stop_barrier);
  s->backend->fini(s);
  subcache_destroy(s->cache);
  rcu_unregister_thread();
  return NULL;
}

int shard_start_all(void) {
  int brc = pthread_barrier_init(&stop_barrier, NULL, (unsigned)server.shard_count);
  if (brc != 0) return -brc;
  for (int i = 0; i < server.shard_count; i++) {
    struct shard *s = server.shards[i];
    int rc = pthread_create(&s->thread, NULL, shard_main, s);
    if (rc != 0) return -rc;
  }
  return 0;
}

void shard_stop_all(void) {
  atomic_store(&server.stopping, true);
  for (int i = 0; i < server.shard_count; i++) {
    struct shard *s = server.shards[i];
    atomic_store(&s->sleeping, 1);
    wake(NULL, s);
  }
  for (int i = 0; i < server.shard_count; i++) pthread_join(server.shards[i]->thread, NULL);
}
