/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's event loop: opens the connections of a scenario, publishes
 * in large batches, dispatches the server's frames, accounts every message
 * and decides when the run ends. One thread drives every connection through
 * one epoll instance, so counters need no locks and the tool costs at most
 * one core. */
#include "bench/bench.h"

#include "core/assert.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 5000
#define SETUP_TIMEOUT_NS (5 * NS_PER_S)
/* How long receivers may stay silent after the publishers' final PONG before
 * the run ends and the missing messages count as lost. */
#define DRAIN_IDLE_NS (2 * NS_PER_S)
#define NS_PER_S 1000000000LL
#define EVENTS_MAX 64
#define READS_PER_EVENT 4
#define BATCHES_PER_PUMP 4
#define RESPONDER_QUEUE "shoal_bench_responders"

struct run {
  const struct bench_opts *opts;
  struct bench_result *result;
  int epfd;
  struct bench_client *clients; /* receivers first, then publishers */
  uint32_t count;
  uint32_t subs;
  uint32_t pubs;
  struct bench_seq *group_seqs; /* queue scenario: one per publisher */
  char *payload;                /* template of opts->size bytes */

  int64_t start_ns;
  int64_t measure_ns;           /* end of the warm-up */
  int64_t stop_ns;              /* publishing ends here in duration mode */
  int64_t deadline_ns;          /* hard end of the run */
  int64_t last_recv_ns;
  int64_t pubs_flushed_ns;      /* when the last publisher's final PONG came */
  double rate_per_pub;          /* messages per second, 0 when unpaced */
  bool measuring;
  bool stopping;                /* publishers must finish now */

  uint64_t sent_total;
  uint64_t received_total;      /* by the clients that measure: see counts_receipt */
  uint64_t sent_at_measure;
  uint64_t received_at_measure;
  int64_t client_cpu_at_measure;
  int64_t server_cpu_at_measure;

  int64_t next_live_ns;
  uint64_t live_sent;
  uint64_t live_received;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
  (void)sig;
  interrupted = 1;
}

int64_t bench_process_cpu_ns(int pid)
{
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -errno;
  char line[1024];
  char *got = fgets(line, sizeof(line), f);
  fclose(f);
  if (got == NULL) return -EIO;

  /* The command name may hold spaces, so fields are counted after its ')':
   * state is field 3, utime field 14 and stime field 15. */
  char *p = strrchr(line, ')');
  if (p == NULL) return -EIO;
  unsigned long long utime, stime;
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    return -EIO;
  }
  long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return -EIO;
  return (int64_t)((utime + stime) * (NS_PER_S / (unsigned long long)ticks));
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "payload fields are copied as host integers");

static inline uint64_t read_le64(const char *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline void write_le64(char *p, uint64_t v)
{
  memcpy(p, &v, 8);
}

static bool is_reqrep(const struct run *run)
{
  return run->opts->scenario == BENCH_SCENARIO_REQREP;
}

/* Receipts that count towards the received side: subscribers in the pub/sub
 * scenarios, requesters (replies) in reqrep; responders do not count. */
static bool counts_receipt(const struct run *run, const struct bench_client *c)
{
  return is_reqrep(run) ? c->role == BENCH_ROLE_PUB : c->role == BENCH_ROLE_SUB;
}

static int fatal(struct bench_client *c, int err)
{
  fprintf(stderr, "shoal-bench: %s\n", c->conn.error);
  if (err == -ECONNRESET && c->role == BENCH_ROLE_SUB) {
    fprintf(stderr, "shoal-bench: a server closes a subscriber that falls too far behind (slow "
                    "consumer); check the server log, or lower --window or --rate\n");
  }
  return err;
}

static int watch_write(struct run *run, struct bench_client *c, bool on)
{
  if (c->want_write == on) return 0;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - run->clients)};
  if (epoll_ctl(run->epfd, EPOLL_CTL_MOD, c->conn.fd, &ev) < 0) {
    snprintf(c->conn.error, sizeof(c->conn.error), "%s: epoll_ctl failed: %s", c->conn.name, strerror(errno));
    return -errno;
  }
  c->want_write = on;
  return 0;
}

/* Writes what c has buffered and watches for writability if some is left. */
static int flush_client(struct run *run, struct bench_client *c)
{
  long left = bench_conn_flush(&c->conn);
  if (left < 0) return fatal(c, (int)left);
  int rc = watch_write(run, c, left > 0);
  return rc < 0 ? fatal(c, rc) : 0;
}

/* ---- Receiving ---- */

static struct bench_seq *tracker_for(struct run *run, struct bench_client *c, uint32_t pub_index)
{
  if (run->group_seqs != NULL) return pub_index < run->pubs ? &run->group_seqs[pub_index] : NULL;
  return pub_index < c->seqs_count ? &c->seqs[pub_index] : NULL;
}

static int account(struct run *run, struct bench_client *c, const char *payload, uint32_t len,
                   int64_t now)
{
  c->received++;
  run->received_total++;
  run->last_recv_ns = now;
  if (len < BENCH_PAYLOAD_MIN) {
    c->foreign++;
    return 0;
  }

  uint64_t seq = read_le64(payload);
  uint64_t sent_ns = read_le64(payload + 8);
  struct bench_seq *tracker = tracker_for(run, c, (uint32_t)(seq >> BENCH_PUB_INDEX_SHIFT));
  if (tracker == NULL) {
    c->foreign++;
    return 0;
  }
  if (c->last_seqs != NULL) {
    /* Queue members share one tracker, so order is checked per member. */
    uint64_t *last = &c->last_seqs[seq >> BENCH_PUB_INDEX_SHIFT];
    if ((seq & BENCH_SEQ_MASK) < *last) c->out_of_order++;
    else *last = seq & BENCH_SEQ_MASK;
  }
  if (bench_seq_add(tracker, seq & BENCH_SEQ_MASK) < 0) {
    snprintf(c->conn.error, sizeof(c->conn.error), "%s: out of memory for sequence tracking", c->conn.name);
    return -ENOMEM;
  }
  if (run->measuring && (int64_t)sent_ns >= run->measure_ns && now >= (int64_t)sent_ns) {
    bench_hist_record(run->result->latency, (uint64_t)(now - (int64_t)sent_ns));
  }
  return 0;
}

/* A responder sends the request's payload back to its reply subject. */
static int respond(struct bench_client *c, const struct proto_cmd *cmd)
{
  if (cmd->reply.len == 0) return 0;
  size_t body = cmd->total_len - cmd->header_len;
  char *dst = bench_conn_reserve(&c->conn, cmd->reply.len + body + 40);
  if (dst == NULL) {
    snprintf(c->conn.error, sizeof(c->conn.error), "%s: replies pile up past the output buffer limit",
             c->conn.name);
    return -ENOBUFS;
  }
  int n = sprintf(dst, "PUB %.*s %zu\r\n", (int)cmd->reply.len, cmd->reply.ptr, body);
  memcpy(dst + n, cmd->payload + cmd->header_len, body);
  memcpy(dst + n + body, "\r\n", 2);
  bench_conn_commit(&c->conn, (size_t)n + body + 2);
  return 0;
}

static void on_pong(struct run *run, struct bench_client *c, int64_t now)
{
  if (c->pings_out > 0) c->pings_out--;
  if (c->done && c->pings_out == 0 && !c->flushed) {
    c->flushed = true;
    c->flushed_ns = now;
    if (now > run->pubs_flushed_ns) run->pubs_flushed_ns = now;
  }
}

static int on_frame(struct run *run, struct bench_client *c, const struct proto_cmd *cmd, int64_t now)
{
  switch (cmd->op) {
  case PROTO_OP_MSG:
  case PROTO_OP_HMSG:
    if (is_reqrep(run) && c->role == BENCH_ROLE_SUB) return respond(c, cmd);
    return account(run, c, cmd->payload + cmd->header_len, cmd->total_len - cmd->header_len, now);
  case PROTO_OP_PING:
    return bench_conn_append(&c->conn, "PONG\r\n", 6);
  case PROTO_OP_PONG:
    on_pong(run, c, now);
    return 0;
  case PROTO_OP_ERR:
    snprintf(c->conn.error, sizeof(c->conn.error), "%s: the server sent -ERR %.*s", c->conn.name,
             (int)cmd->arg.len, cmd->arg.ptr);
    return -EPROTO;
  default: /* INFO updates and +OK change nothing for a benchmark */
    return 0;
  }
}

static int on_readable(struct run *run, struct bench_client *c)
{
  long got = bench_conn_fill(&c->conn, READS_PER_EVENT);
  if (got < 0) return fatal(c, (int)got);

  /* One timestamp per read: latency resolution is one read's parse time. */
  int64_t now = now_ns();
  for (;;) { /* bounded by the bytes in the input buffer */
    struct proto_cmd cmd;
    int rc = bench_conn_next(&c->conn, &cmd);
    if (rc < 0) return fatal(c, rc);
    if (rc == 0) break;
    rc = on_frame(run, c, &cmd, now);
    if (rc < 0) return fatal(c, rc);
  }
  if (bench_conn_pending(&c->conn) > 0) return flush_client(run, c);
  return 0;
}

/* ---- Publishing ---- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
  return a < b ? a : b;
}

/* Returns how many more messages may be in flight between the publishers and
 * the receivers, so that a receiver never falls behind far enough for the
 * server to drop it as a slow consumer. */
static uint64_t window_room(const struct run *run, const struct bench_client *c)
{
  uint64_t window = run->opts->window_msgs;
  uint64_t in_flight = 0;
  switch (run->opts->scenario) {
  case BENCH_SCENARIO_PUBSUB: {
    uint64_t slowest = UINT64_MAX;
    for (uint32_t i = 0; i < run->subs; i++) slowest = min_u64(slowest, run->clients[i].received);
    in_flight = run->sent_total - slowest;
    break;
  }
  case BENCH_SCENARIO_QUEUE:
    in_flight = run->sent_total - run->received_total;
    break;
  case BENCH_SCENARIO_REQREP:
    /* Closed loop: one request in flight per requester unless paced. */
    if (run->rate_per_pub == 0) window = 1;
    in_flight = c->sent - c->received;
    break;
  default:
    return UINT64_MAX;
  }
  return in_flight < window ? window - in_flight : 0;
}

/* Appends count PUB frames to c's output; the caller reserved the room. */
static void build_frames(struct run *run, struct bench_client *c, char *dst, uint64_t count, int64_t now)
{
  ASSERT(c->frame_len == c->header_len + run->opts->size + 2);
  uint32_t size = run->opts->size;
  uint64_t pub_bits = (uint64_t)c->index << BENCH_PUB_INDEX_SHIFT;
  for (uint64_t i = 0; i < count; i++) {
    memcpy(dst, c->header, c->header_len);
    dst += c->header_len;
    write_le64(dst, pub_bits | (c->sent + i + 1));
    write_le64(dst + 8, (uint64_t)now);
    memcpy(dst + 16, run->payload + 16, size - 16);
    dst += size;
    dst[0] = '\r';
    dst[1] = '\n';
    dst += 2;
  }
}

static int finish_publisher(struct run *run, struct bench_client *c)
{
  c->done = true;
  c->pings_out++;
  if (bench_conn_append(&c->conn, "PING\r\n", 6) < 0) return fatal(c, -ENOBUFS);
  return flush_client(run, c);
}

/* Sends what c may send now. Sets *wake_ns to when c can send again:
 * 0 for at once, INT64_MAX when only an event (a write, a receipt) helps. */
static int pump(struct run *run, struct bench_client *c, int64_t now, int64_t *wake_ns)
{
  *wake_ns = INT64_MAX;
  if (c->done || c->want_write) return 0;
  if (c->sent >= c->quota) return finish_publisher(run, c);

  uint64_t allowed = c->quota - c->sent;
  if (run->rate_per_pub > 0) {
    double elapsed_s = (double)(now - run->start_ns) / NS_PER_S;
    uint64_t due = (uint64_t)(elapsed_s * run->rate_per_pub) + 1;
    allowed = min_u64(allowed, due > c->sent ? due - c->sent : 0);
    if (allowed == 0) {
      *wake_ns = run->start_ns + (int64_t)((double)c->sent / run->rate_per_pub * NS_PER_S);
      return 0;
    }
  }
  allowed = min_u64(allowed, window_room(run, c));

  uint64_t per_batch = run->opts->batch_bytes / c->frame_len;
  if (per_batch == 0) per_batch = 1;
  for (int round = 0; round < BATCHES_PER_PUMP && allowed > 0; round++) {
    uint64_t count = min_u64(allowed, per_batch);
    char *dst = bench_conn_reserve(&c->conn, count * c->frame_len);
    if (dst == NULL) return fatal(c, -ENOBUFS);
    build_frames(run, c, dst, count, now);
    bench_conn_commit(&c->conn, count * c->frame_len);
    c->sent += count;
    run->sent_total += count;
    allowed -= count;
    int rc = flush_client(run, c);
    if (rc < 0) return rc;
    if (c->want_write) return 0;
  }
  if (c->sent >= c->quota) return finish_publisher(run, c);
  if (allowed > 0) *wake_ns = 0;
  else if (run->rate_per_pub > 0 && window_room(run, c) > 0) {
    *wake_ns = run->start_ns + (int64_t)((double)c->sent / run->rate_per_pub * NS_PER_S);
  }
  return 0;
}

/* ---- Setup ---- */

static void name_client(const struct run *run, struct bench_client *c, char *name, size_t size)
{
  const char *kind = c->role == BENCH_ROLE_PUB ? "pub" : "sub";
  if (is_reqrep(run)) kind = c->role == BENCH_ROLE_PUB ? "requester" : "responder";
  snprintf(name, size, "%s %u", kind, c->index);
}

/* Queues the SUB of c (if it has one) with a PING, because the server sends
 * the PONG only after it has registered the interest. */
static int subscribe(struct run *run, struct bench_client *c)
{
  const struct bench_opts *opts = run->opts;
  char line[400];
  int n = 0;
  if (c->role == BENCH_ROLE_SUB) {
    const char *queue = "";
    if (opts->scenario == BENCH_SCENARIO_QUEUE) queue = opts->queue;
    if (is_reqrep(run)) queue = RESPONDER_QUEUE;
    n = snprintf(line, sizeof(line), "SUB %s%s%s 1\r\nPING\r\n", opts->subject, queue[0] ? " " : "", queue);
  } else if (is_reqrep(run)) {
    n = snprintf(line, sizeof(line), "SUB _INBOX.shoal_bench.%d.%u 1\r\nPING\r\n", (int)getpid(), c->index);
  } else {
    return 0;
  }
  c->pings_out++;
  return bench_conn_append(&c->conn, line, (size_t)n);
}

static void prepare_publisher(struct run *run, struct bench_client *c)
{
  const struct bench_opts *opts = run->opts;
  int n;
  if (is_reqrep(run)) {
    n = snprintf(c->header, sizeof(c->header), "PUB %s _INBOX.shoal_bench.%d.%u %u\r\n", opts->subject,
                 (int)getpid(), c->index, opts->size);
  } else {
    n = snprintf(c->header, sizeof(c->header), "PUB %s %u\r\n", opts->subject, opts->size);
  }
  c->header_len = (uint32_t)n;
  c->quota = UINT64_MAX;
  /* Per client: a requester's inbox, and so its header, grows with its index. */
  c->frame_len = c->header_len + opts->size + 2;
}

static int prepare_trackers(struct run *run, struct bench_client *c)
{
  uint32_t count = 0;
  if (c->role == BENCH_ROLE_SUB && !is_reqrep(run) && run->group_seqs == NULL) {
    count = run->opts->scenario == BENCH_SCENARIO_SUB ? BENCH_EXTERNAL_PUBS_MAX : run->pubs;
  }
  if (c->role == BENCH_ROLE_PUB && is_reqrep(run)) count = run->pubs;
  if (c->role == BENCH_ROLE_SUB && run->group_seqs != NULL) {
    c->last_seqs = calloc(run->pubs, sizeof(*c->last_seqs));
    if (c->last_seqs == NULL) return -ENOMEM;
  }
  if (count == 0) return 0;
  c->seqs = calloc(count, sizeof(*c->seqs));
  if (c->seqs == NULL) return -ENOMEM;
  c->seqs_count = count;
  return 0;
}

static int open_client(struct run *run, struct bench_client *c)
{
  char name[32];
  name_client(run, c, name, sizeof(name));
  const struct bench_opts *opts = run->opts;
  struct bench_conn_auth auth = {.user = opts->user, .pass = opts->pass, .token = opts->token};
  int rc = bench_conn_open(&c->conn, opts->host, opts->port, name, &auth, CONNECT_TIMEOUT_MS);
  if (rc < 0) {
    fprintf(stderr, "shoal-bench: %s\n", c->conn.error);
    return rc;
  }
  if (run->opts->size > c->conn.max_payload) {
    fprintf(stderr, "shoal-bench: --size %u is over the server's max_payload of %llu bytes\n",
            run->opts->size, (unsigned long long)c->conn.max_payload);
    return -EMSGSIZE;
  }

  if (c->role == BENCH_ROLE_PUB) prepare_publisher(run, c);
  if (prepare_trackers(run, c) < 0 || subscribe(run, c) < 0) {
    fprintf(stderr, "shoal-bench: %s: out of memory\n", name);
    return -ENOMEM;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - run->clients)};
  if (epoll_ctl(run->epfd, EPOLL_CTL_ADD, c->conn.fd, &ev) < 0) {
    fprintf(stderr, "shoal-bench: epoll_ctl failed: %s\n", strerror(errno));
    return -errno;
  }
  return flush_client(run, c);
}

static int open_clients(struct run *run)
{
  const struct bench_opts *opts = run->opts;
  run->subs = opts->scenario == BENCH_SCENARIO_PUB ? 0 : opts->subs;
  run->pubs = opts->scenario == BENCH_SCENARIO_SUB ? 0 : opts->pubs;
  run->count = run->subs + run->pubs;
  run->clients = calloc(run->count, sizeof(*run->clients));
  if (run->clients == NULL) return -ENOMEM;
  if (opts->scenario == BENCH_SCENARIO_QUEUE) {
    run->group_seqs = calloc(run->pubs, sizeof(*run->group_seqs));
    if (run->group_seqs == NULL) return -ENOMEM;
  }

  for (uint32_t i = 0; i < run->count; i++) {
    struct bench_client *c = &run->clients[i];
    c->conn.fd = -1;
    c->role = i < run->subs ? BENCH_ROLE_SUB : BENCH_ROLE_PUB;
    c->index = i < run->subs ? i : i - run->subs;
  }
  for (uint32_t i = 0; i < run->count; i++) {
    int rc = open_client(run, &run->clients[i]);
    if (rc < 0) return rc;
  }
  snprintf(run->result->server_version, sizeof(run->result->server_version), "%s",
           run->clients[0].conn.server_version);
  snprintf(run->result->server_name, sizeof(run->result->server_name), "%s",
           run->clients[0].conn.server_name);
  return 0;
}

static int dispatch(struct run *run, const struct epoll_event *ev)
{
  struct bench_client *c = &run->clients[ev->data.u32];
  if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    int rc = on_readable(run, c);
    if (rc < 0) return rc;
  }
  if (ev->events & EPOLLOUT) return flush_client(run, c);
  return 0;
}

static int wait_events(struct run *run, int64_t timeout_ns)
{
  struct epoll_event events[EVENTS_MAX];
  struct timespec ts = {.tv_sec = timeout_ns / NS_PER_S, .tv_nsec = timeout_ns % NS_PER_S};
  int n = epoll_pwait2(run->epfd, events, EVENTS_MAX, &ts, NULL);
  if (n < 0) {
    if (errno == EINTR) return 0;
    fprintf(stderr, "shoal-bench: epoll_pwait2 failed: %s\n", strerror(errno));
    return -errno;
  }
  for (int i = 0; i < n; i++) {
    int rc = dispatch(run, &events[i]);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Waits for the PONG after every SUB, so no message published later can be
 * missed by a subscriber that was not registered yet. */
static int wait_subscribed(struct run *run)
{
  int64_t deadline = now_ns() + SETUP_TIMEOUT_NS;
  for (;;) { /* bounded by deadline */
    uint32_t waiting = 0;
    for (uint32_t i = 0; i < run->count; i++) waiting += run->clients[i].pings_out;
    if (waiting == 0) return 0;
    int64_t left = deadline - now_ns();
    if (left <= 0 || interrupted) {
      fprintf(stderr, "shoal-bench: the server did not confirm %u subscriptions within %lld s\n", waiting,
              SETUP_TIMEOUT_NS / NS_PER_S);
      return -ETIMEDOUT;
    }
    int rc = wait_events(run, left);
    if (rc < 0) return rc;
  }
}

/* ---- Phases ---- */

static void begin_measure(struct run *run, int64_t now)
{
  const struct bench_opts *opts = run->opts;
  run->measuring = true;
  run->measure_ns = now;
  run->sent_at_measure = run->sent_total;
  run->received_at_measure = run->received_total;
  run->client_cpu_at_measure = client_cpu_ns();
  if (opts->server_pid > 0) run->server_cpu_at_measure = bench_process_cpu_ns(opts->server_pid);

  if (opts->msgs == 0) {
    run->stop_ns = now + (int64_t)(opts->duration_s * NS_PER_S);
    return;
  }
  /* Spread the measured messages over the publishers, the remainder first. */
  uint64_t share = run->pubs ? opts->msgs / run->pubs : 0;
  uint64_t extra = run->pubs ? opts->msgs % run->pubs : 0;
  for (uint32_t i = 0; i < run->pubs; i++) {
    struct bench_client *c = &run->clients[run->subs + i];
    c->quota = c->sent + share + (i < extra ? 1 : 0);
  }
}

static int stop_publishers(struct run *run)
{
  run->stopping = true;
  for (uint32_t i = run->subs; i < run->count; i++) {
    struct bench_client *c = &run->clients[i];
    if (c->done) continue;
    c->quota = c->sent;
    int rc = finish_publisher(run, c);
    if (rc < 0) return rc;
  }
  return 0;
}

static bool receivers_complete(const struct run *run)
{
  switch (run->opts->scenario) {
  case BENCH_SCENARIO_PUBSUB:
    for (uint32_t i = 0; i < run->subs; i++) {
      if (run->clients[i].received < run->sent_total) return false;
    }
    return true;
  case BENCH_SCENARIO_QUEUE:
    return run->received_total >= run->sent_total;
  case BENCH_SCENARIO_REQREP:
    for (uint32_t i = run->subs; i < run->count; i++) {
      if (run->clients[i].received < run->clients[i].sent) return false;
    }
    return true;
  default:
    return true;
  }
}

/* Returns when the run may end: after the publishers' final PONG, once every
 * receiver has every message or has been silent for DRAIN_IDLE_NS. */
static int64_t completion_ns(const struct run *run)
{
  const struct bench_opts *opts = run->opts;
  if (!run->measuring) return INT64_MAX;
  if (opts->scenario == BENCH_SCENARIO_SUB) {
    /* Every subscriber gets each message, as in pubsub. */
    uint64_t expected = opts->msgs * run->subs;
    if (opts->msgs > 0) return run->received_total - run->received_at_measure >= expected ? 0 : INT64_MAX;
    return interrupted ? 0 : run->stop_ns;
  }
  for (uint32_t i = run->subs; i < run->count; i++) {
    if (!run->clients[i].flushed) return INT64_MAX;
  }
  if (receivers_complete(run)) return 0;
  int64_t quiet_since = run->last_recv_ns > run->pubs_flushed_ns ? run->last_recv_ns : run->pubs_flushed_ns;
  return quiet_since + DRAIN_IDLE_NS;
}

static uint64_t gaps_so_far(const struct run *run)
{
  uint64_t gaps = 0;
  for (uint32_t i = 0; i < run->count; i++) {
    const struct bench_client *c = &run->clients[i];
    for (uint32_t p = 0; p < c->seqs_count; p++) gaps += bench_seq_lost(&c->seqs[p], 0);
  }
  for (uint32_t p = 0; run->group_seqs != NULL && p < run->pubs; p++) {
    gaps += bench_seq_lost(&run->group_seqs[p], 0);
  }
  return gaps;
}

static void print_live(struct run *run, int64_t now)
{
  double mb = (double)run->opts->size / 1e6;
  uint64_t sent = run->sent_total - run->live_sent;
  uint64_t received = run->received_total - run->live_received;
  fprintf(stderr, "[%5.1f s]%s pub %10.0f msgs/s %8.1f MB/s | recv %10.0f msgs/s %8.1f MB/s | lost so far %llu\n",
          (double)(now - run->start_ns) / NS_PER_S, run->measuring ? "" : " warm-up", (double)sent,
          (double)sent * mb, (double)received, (double)received * mb, (unsigned long long)gaps_so_far(run));
  run->live_sent = run->sent_total;
  run->live_received = run->received_total;
  run->next_live_ns = now + NS_PER_S;
}

static int64_t min_i64(int64_t a, int64_t b)
{
  return a < b ? a : b;
}

/* The next time the loop must wake without an event. */
static int64_t next_timer_ns(const struct run *run)
{
  int64_t wake = run->deadline_ns;
  if (run->opts->live) wake = min_i64(wake, run->next_live_ns);
  if (!run->measuring) wake = min_i64(wake, run->measure_ns);
  if (run->measuring && run->opts->msgs == 0 && !run->stopping) wake = min_i64(wake, run->stop_ns);
  return min_i64(wake, completion_ns(run));
}

static int loop(struct run *run)
{
  for (;;) { /* ends on completion, an error, or at deadline_ns */
    int64_t now = now_ns();
    if (!run->measuring && now >= run->measure_ns) begin_measure(run, now);
    bool time_up = run->measuring && run->opts->msgs == 0 && now >= run->stop_ns;
    if (!run->stopping && (interrupted || time_up)) {
      int rc = stop_publishers(run);
      if (rc < 0) return rc;
    }
    if (run->opts->live && now >= run->next_live_ns) print_live(run, now);
    if (interrupted && !run->measuring) return 0;
    if (completion_ns(run) <= now) return 0;
    if (now >= run->deadline_ns) {
      fprintf(stderr, "shoal-bench: timed out after %.0f s (sent %llu, received %llu); raise --timeout "
                      "or lower --msgs\n", run->opts->timeout_s, (unsigned long long)run->sent_total,
              (unsigned long long)run->received_total);
      return -ETIMEDOUT;
    }

    int64_t wake = next_timer_ns(run);
    for (uint32_t i = run->subs; i < run->count && !run->stopping; i++) {
      int64_t pub_wake;
      int rc = pump(run, &run->clients[i], now, &pub_wake);
      if (rc < 0) return rc;
      wake = min_i64(wake, pub_wake);
    }
    int rc = wait_events(run, wake > now ? wake - now : 0);
    if (rc < 0) return rc;
  }
}

/* ---- Results ---- */

static void add_tracker(struct bench_result *r, const struct bench_seq *seq, uint64_t sent)
{
  r->lost += bench_seq_lost(seq, sent);
  r->duplicated += seq->duplicated;
  r->out_of_order += seq->out_of_order;
  r->beyond_window += seq->beyond_window;
  r->foreign += seq->invalid;
}

static uint64_t sent_by(const struct run *run, uint32_t pub_index)
{
  return pub_index < run->pubs ? run->clients[run->subs + pub_index].sent : 0;
}

static void collect(struct run *run)
{
  struct bench_result *r = run->result;
  const struct bench_opts *opts = run->opts;
  r->sent_total = run->sent_total;
  r->received_total = run->received_total;
  r->published.msgs = run->sent_total - run->sent_at_measure;
  r->published.bytes = r->published.msgs * opts->size;
  r->published.seconds = (double)(run->pubs_flushed_ns - run->measure_ns) / NS_PER_S;
  r->received.msgs = run->received_total - run->received_at_measure;
  r->received.bytes = r->received.msgs * opts->size;
  r->received.seconds = (double)(run->last_recv_ns - run->measure_ns) / NS_PER_S;
  if (r->published.msgs == 0) r->published.seconds = 0;
  if (r->received.msgs == 0) r->received.seconds = 0;

  for (uint32_t i = 0; i < run->count; i++) {
    const struct bench_client *c = &run->clients[i];
    if (counts_receipt(run, c)) r->foreign += c->foreign;
    r->out_of_order += c->out_of_order;
    if (is_reqrep(run)) {
      /* A requester's replies carry its own publisher index. */
      if (c->role == BENCH_ROLE_PUB) add_tracker(r, &c->seqs[c->index], c->sent);
      continue;
    }
    for (uint32_t p = 0; p < c->seqs_count; p++) add_tracker(r, &c->seqs[p], sent_by(run, p));
  }
  for (uint32_t p = 0; run->group_seqs != NULL && p < run->pubs; p++) {
    /* Arrivals interleave across members, so the group's order means nothing. */
    uint64_t interleaved = run->group_seqs[p].out_of_order;
    add_tracker(r, &run->group_seqs[p], sent_by(run, p));
    r->out_of_order -= interleaved;
  }

  r->client_cpu_s = (double)(client_cpu_ns() - run->client_cpu_at_measure) / NS_PER_S;
  r->cpu_server_known = false;
  if (opts->server_pid > 0 && run->server_cpu_at_measure >= 0) {
    int64_t end = bench_process_cpu_ns(opts->server_pid);
    if (end >= 0) {
      r->server_cpu_s = (double)(end - run->server_cpu_at_measure) / NS_PER_S;
      r->cpu_server_known = true;
    }
  }
}

static void release(struct run *run)
{
  for (uint32_t i = 0; run->clients != NULL && i < run->count; i++) {
    struct bench_client *c = &run->clients[i];
    if (c->conn.fd >= 0 || c->conn.in != NULL) bench_conn_close(&c->conn);
    for (uint32_t p = 0; p < c->seqs_count; p++) bench_seq_free(&c->seqs[p]);
    free(c->seqs);
    free(c->last_seqs);
  }
  for (uint32_t p = 0; run->group_seqs != NULL && p < run->pubs; p++) bench_seq_free(&run->group_seqs[p]);
  free(run->group_seqs);
  free(run->clients);
  free(run->payload);
  if (run->epfd >= 0) close(run->epfd);
}

int bench_run(const struct bench_opts *opts, struct bench_result *result)
{
  memset(result, 0, sizeof(*result));
  if (opts->scenario >= BENCH_SCENARIO_JS_PUB) return bench_js_run(opts, result);

  struct run run = {.opts = opts, .result = result, .epfd = -1};
  result->latency = malloc(sizeof(*result->latency));
  run.payload = malloc(opts->size);
  run.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (result->latency == NULL || run.payload == NULL || run.epfd < 0) {
    fprintf(stderr, "shoal-bench: setup failed: %s\n", strerror(errno));
    release(&run);
    return -ENOMEM;
  }
  bench_hist_reset(result->latency);
  for (uint32_t i = 0; i < opts->size; i++) run.payload[i] = (char)('a' + i % 26);

  struct sigaction sa = {.sa_handler = on_sigint};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int rc = open_clients(&run);
  if (rc == 0) rc = wait_subscribed(&run);
  if (rc == 0) {
    run.start_ns = now_ns();
    run.measure_ns = run.start_ns + (int64_t)(opts->warmup_s * NS_PER_S);
    run.deadline_ns = run.start_ns + (int64_t)(opts->timeout_s * NS_PER_S);
    run.next_live_ns = run.start_ns + NS_PER_S;
    run.rate_per_pub = opts->rate > 0 && run.pubs > 0 ? opts->rate / run.pubs : 0;
    rc = loop(&run);
  }
  if (rc == 0 && !run.measuring) {
    fprintf(stderr, "shoal-bench: interrupted during the warm-up, nothing was measured\n");
    rc = -EINTR;
  }
  if (rc == 0) collect(&run);
  release(&run);
  return rc;
}
