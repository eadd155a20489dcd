/* SPDX-License-Identifier: Apache-2.0 */
/* The io_uring backend: one ring per shard, created on the shard's thread
 * (SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them), multishot
 * accept, multishot recv into a provided buffer ring, and at most one send
 * in flight per connection. Completions are collected from the CQ first and
 * handled afterwards, so handlers never run nested. */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/client.h"
#include "core/log.h"
#include "core/shard.h"
#include "net/backend.h"
#include "storage/io.h"

#define URING_ENTRIES 4096
#define URING_BUF_GROUP 0
/* Provided receive buffers per shard: 256 x 64 KiB = 16 MiB. 64 KiB cut the
 * server CPU per 1 KiB publish by about a tenth against 16 KiB in a noisy
 * local run. A dry ring shows up as -ENOBUFS and only delays the receive
 * until buffers return. */
#define URING_BUF_COUNT 256
#define URING_BUF_SIZE (64 * 1024)
#define URING_CQE_BATCH 256

/* user_data: a pointer with the operation in its low three bits. */
enum uring_tag {
  TAG_ACCEPT = 1,
  TAG_RECV = 2,
  TAG_SEND = 3,
  TAG_WAKE = 4,
  TAG_CANCEL = 5,
  TAG_PEER_WAKE = 6, /* a MSG_RING from another shard: only ends a wait */
};
#define TAG_MASK 7ULL

struct uring_state {
  struct io_uring ring;
  struct io_uring_buf_ring *buf_ring;
  char *bufs;
  unsigned bufs_returned; /* added to buf_ring since the last advance */
  uint64_t wake_value;
  bool msg_ring;          /* the kernel supports IORING_OP_MSG_RING */
  struct client **rearm;  /* connections whose recv stopped on -ENOBUFS */
  unsigned rearm_count, rearm_cap;
};

static inline uint64_t pack(void *p, enum uring_tag tag) {
  ASSERT_HOT(((uintptr_t)p & TAG_MASK) == 0);
  return (uint64_t)(uintptr_t)p | tag;
}

static struct io_uring_sqe *get_sqe(struct uring_state *u) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (sqe != NULL) return sqe;
  /* The SQ is full: submit what is queued to make room. */
  io_uring_submit(&u->ring);
  sqe = io_uring_get_sqe(&u->ring);
  ASSERT(sqe != NULL);
  return sqe;
}

static void arm_accept(struct shard *s, struct uring_state *u) {
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, pack(s, TAG_ACCEPT));
}

static void arm_wake(struct shard *s, struct uring_state *u) {
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_read(sqe, s->wake_fd, &u->wake_value, sizeof u->wake_value, 0);
  io_uring_sqe_set_data64(sqe, pack(s, TAG_WAKE));
}

static void arm_recv(struct uring_state *u, struct client *c) {
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = URING_BUF_GROUP;
  io_uring_sqe_set_data64(sqe, pack(c, TAG_RECV));
  c->ops_in_flight++;
  c->recv_armed = true;
}

static int setup_ring(struct uring_state *u) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
  if (rc == -EINVAL) {
    /* Kernels before 6.1 lack DEFER_TASKRUN. */
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
  }
  if (rc == -EINVAL) {
    memset(&p, 0, sizeof p);
    rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
  }
  return rc;
}

static int setup_buffers(struct uring_state *u) {
  size_t ring_size = URING_BUF_COUNT * sizeof(struct io_uring_buf);
  void *ring_mem = NULL;
  if (posix_memalign(&ring_mem, 4096, ring_size) != 0) return -ENOMEM;
  u->buf_ring = ring_mem;
  u->bufs = malloc((size_t)URING_BUF_COUNT * URING_BUF_SIZE);
  if (u->bufs == NULL) return -ENOMEM;
  io_uring_buf_ring_init(u->buf_ring);

  struct io_uring_buf_reg reg = {
      .ring_addr = (uint64_t)(uintptr_t)u->buf_ring,
      .ring_entries = URING_BUF_COUNT,
      .bgid = URING_BUF_GROUP,
  };
  int rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
  if (rc != 0) return rc;

  int mask = io_uring_buf_ring_mask(URING_BUF_COUNT);
  for (unsigned i = 0; i < URING_BUF_COUNT; i++) {
    io_uring_buf_ring_add(u->buf_ring, u->bufs + (size_t)i * URING_BUF_SIZE, URING_BUF_SIZE,
                          (unsigned short)i, mask, (int)i);
  }
  io_uring_buf_ring_advance(u->buf_ring, URING_BUF_COUNT);
  return 0;
}

static int uring_init(struct shard *s) {
  struct uring_state *u = calloc(1, sizeof *u);
  if (u == NULL) return -ENOMEM;
  int rc = setup_ring(u);
  if (rc != 0) {
    free(u);
    return rc;
  }
  rc = setup_buffers(u);
  if (rc != 0) {
    io_uring_queue_exit(&u->ring);
    free(u->bufs);
    free(u->buf_ring);
    free(u);
    return rc;
  }
  struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
  u->msg_ring = probe != NULL && io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
  free(probe);
  s->backend_state = u;
  arm_accept(s, u);
  arm_wake(s, u);
  io_uring_submit(&u->ring);
  return 0;
}

static void uring_fini(struct shard *s) {
  struct uring_state *u = s->backend_state;
  io_uring_queue_exit(&u->ring);
  if (s->listen_fd >= 0) {
    close(s->listen_fd);
    s->listen_fd = -1;
  }
  free(u->bufs);
  free(u->buf_ring);
  free(u->rearm);
  free(u);
  s->backend_state = NULL;
}

static int uring_client_start(struct shard *s, struct client *c) {
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  arm_recv(s->backend_state, c);
  return 0;
}

static void uring_client_send(struct shard *s, struct client *c) {
  struct uring_state *u = s->backend_state;
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_send(sqe, c->fd, c->wbuf.data + c->wbuf.off, buf_pending(&c->wbuf),
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, pack(c, TAG_SEND));
  c->ops_in_flight++;
}

static void finish_if_idle(struct client *c) {
  if (c->state != CLIENT_CLOSED || c->ops_in_flight > 0 || c->fd < 0) return;
  close(c->fd);
  c->fd = -1;
  client_on_io_done(c);
}

static void uring_client_shutdown(struct shard *s, struct client *c) {
  struct uring_state *u = s->backend_state;
  if (c->ops_in_flight > 0) {
    shutdown(c->fd, SHUT_RDWR);
    struct io_uring_sqe *sqe = get_sqe(u);
    io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
  }
  finish_if_idle(c);
}

static void uring_stop_accepting(struct shard *s) {
  struct uring_state *u = s->backend_state;
  if (s->listen_fd < 0) return;
  /* shutdown() takes the socket out of the SO_REUSEPORT group at once, so
   * a server started next on the same port gets every new connection even
   * while this ring still holds the socket. The multishot accept then ends
   * with -ECANCELED and on_accept() closes the listener, so no completion
   * refers to a closed descriptor. */
  shutdown(s->listen_fd, SHUT_RDWR);
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_cancel_fd(sqe, s->listen_fd, 0);
  io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

static void uring_client_pause_recv(struct shard *s, struct client *c) {
  struct uring_state *u = s->backend_state;
  if (!c->recv_armed) return;
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_cancel64(sqe, pack(c, TAG_RECV), 0);
  io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

static void uring_client_resume_recv(struct shard *s, struct client *c) {
  if (!c->recv_armed && c->state == CLIENT_OPEN) arm_recv(s->backend_state, c);
}

static void return_buffer(struct uring_state *u, unsigned bid) {
  io_uring_buf_ring_add(u->buf_ring, u->bufs + (size_t)bid * URING_BUF_SIZE, URING_BUF_SIZE,
                        (unsigned short)bid, io_uring_buf_ring_mask(URING_BUF_COUNT),
                        (int)u->bufs_returned);
  u->bufs_returned++;
}

static void queue_rearm(struct uring_state *u, struct client *c) {
  if (u->rearm_count == u->rearm_cap) {
    unsigned cap = u->rearm_cap ? u->rearm_cap * 2 : 64;
    struct client **list = realloc(u->rearm, cap * sizeof *list);
    ASSERT(list != NULL);
    u->rearm = list;
    u->rearm_cap = cap;
  }
  u->rearm[u->rearm_count++] = c;
  c->ops_in_flight++; /* keeps c allocated until the re-arm */
}

static void on_recv(struct uring_state *u, struct client *c, const struct io_uring_cqe *cqe) {
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (cqe->res > 0) {
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    client_on_recv(c, u->bufs + (size_t)bid * URING_BUF_SIZE, (size_t)cqe->res);
    return_buffer(u, bid);
  }
  if (more) return;

  c->ops_in_flight--;
  c->recv_armed = false;
  if (c->state == CLIENT_CLOSED) {
    finish_if_idle(c);
  } else if (c->recv_paused) {
    /* Cancelled for back-pressure: client_resume_recv() re-arms. */
  } else if (cqe->res > 0 || cqe->res == -ENOBUFS || cqe->res == -ECANCELED) {
    queue_rearm(u, c); /* the multishot ended but the stream goes on */
  } else {
    client_on_recv_end(c, cqe->res);
    finish_if_idle(c);
  }
}

static void on_send(struct client *c, int res) {
  c->ops_in_flight--;
  if (res > 0) {
    client_on_sent(c, (size_t)res);
  } else if (res == 0 || res == -EAGAIN) {
    client_on_sent(c, 0);
  } else {
    client_on_send_error(c, res);
  }
  finish_if_idle(c);
}

static void on_accept(struct shard *s, struct uring_state *u, const struct io_uring_cqe *cqe) {
  if (cqe->res >= 0) {
    shard_on_accept(s, cqe->res);
  } else if (cqe->res != -ECANCELED) {
    log_warn("shard %u: accept failed: %s", s->id, strerror(-cqe->res));
  }
  if (cqe->flags & IORING_CQE_F_MORE) return;
  if (s->listen_fd >= 0 && !s->lame_duck && !s->stop) {
    arm_accept(s, u);
  } else if (s->listen_fd >= 0) {
    close(s->listen_fd); /* the accept was cancelled: lame duck or shutdown */
    s->listen_fd = -1;
  }
}

static void handle_cqe(struct shard *s, struct uring_state *u, const struct io_uring_cqe *cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  void *ptr = (void *)(uintptr_t)(data & ~TAG_MASK);
  switch ((enum uring_tag)(data & TAG_MASK)) {
  case TAG_ACCEPT:
    on_accept(s, u, cqe);
    break;
  case TAG_RECV:
    on_recv(u, ptr, cqe);
    break;
  case TAG_SEND:
    on_send(ptr, cqe->res);
    break;
  case TAG_WAKE:
    arm_wake(s, u);
    break;
  case TAG_CANCEL:
  case TAG_PEER_WAKE:
    break;
  default:
    /* Storage requests carry their own tag in the top byte. */
    if (!storage_uring_complete(cqe)) ASSERT(!"unknown io_uring completion tag");
  }
}

static void rearm_receives(struct uring_state *u) {
  for (unsigned i = 0; i < u->rearm_count; i++) {
    struct client *c = u->rearm[i];
    c->ops_in_flight--;
    if (c->state == CLIENT_CLOSED) {
      finish_if_idle(c);
    } else if (!c->recv_paused && !c->recv_armed) {
      arm_recv(u, c);
    }
  }
  u->rearm_count = 0;
}

static int uring_poll(struct shard *s, int timeout_ms) {
  struct uring_state *u = s->backend_state;
  int rc;
  if (timeout_ms > 0) {
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    shard_wait_done(s);
  } else {
    rc = io_uring_submit_and_get_events(&u->ring);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) return rc;

  /* Bounded: at most URING_CQE_BATCH completions per pass, and as many
   * passes as the CQ held at entry allows. */
  for (int pass = 0; pass < URING_ENTRIES / URING_CQE_BATCH; pass++) {
    struct io_uring_cqe *cqes[URING_CQE_BATCH];
    unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_CQE_BATCH);
    if (n == 0) break;
    struct io_uring_cqe copies[URING_CQE_BATCH];
    for (unsigned i = 0; i < n; i++) copies[i] = *cqes[i];
    io_uring_cq_advance(&u->ring, n);
    for (unsigned i = 0; i < n; i++) handle_cqe(s, u, &copies[i]);
  }
  if (u->bufs_returned > 0) {
    io_uring_buf_ring_advance(u->buf_ring, (int)u->bufs_returned);
    u->bufs_returned = 0;
  }
  rearm_receives(u);
  return 0;
}

/* Posts a completion into dst's ring, which ends its wait. The SQE goes out
 * with s's next submit, at the end of the current loop iteration. */
static bool uring_wake_peer(struct shard *s, struct shard *dst) {
  struct uring_state *u = s->backend_state;
  struct uring_state *d = dst->backend_state;
  if (u == NULL || d == NULL || !u->msg_ring || dst->backend != &backend_uring_ops) return false;
  struct io_uring_sqe *sqe = get_sqe(u);
  io_uring_prep_msg_ring(sqe, d->ring.ring_fd, 0, TAG_PEER_WAKE, 0);
  io_uring_sqe_set_data64(sqe, TAG_CANCEL);
  return true;
}

int backend_uring_probe(char *why, unsigned why_len) {
  struct io_uring ring;
  int rc = io_uring_queue_init(8, &ring, 0);
  if (rc != 0) {
    snprintf(why, why_len, "io_uring_setup failed: %s", strerror(-rc));
    return rc;
  }
  struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
  static const int needed[] = {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
                               IORING_OP_READ, IORING_OP_ASYNC_CANCEL, IORING_OP_PROVIDE_BUFFERS};
  static const char *const names[] = {"ACCEPT", "RECV", "SEND", "READ", "ASYNC_CANCEL",
                                      "PROVIDE_BUFFERS"};
  rc = 0;
  for (unsigned i = 0; probe != NULL && i < sizeof needed / sizeof needed[0]; i++) {
    if (!io_uring_opcode_supported(probe, needed[i])) {
      snprintf(why, why_len, "the kernel's io_uring lacks IORING_OP_%s", names[i]);
      rc = -EOPNOTSUPP;
      break;
    }
  }
  if (probe == NULL) {
    snprintf(why, why_len, "io_uring probe failed");
    rc = -EOPNOTSUPP;
  }
  free(probe);
  if (rc == 0 && !(ring.features & IORING_FEAT_EXT_ARG)) {
    snprintf(why, why_len, "the kernel's io_uring lacks IORING_FEAT_EXT_ARG (needs Linux 5.11)");
    rc = -EOPNOTSUPP;
  }
  io_uring_queue_exit(&ring);
  return rc;
}

const struct backend_ops backend_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .client_start = uring_client_start,
    .client_send = uring_client_send,
    .client_pause_recv = uring_client_pause_recv,
    .client_resume_recv = uring_client_resume_recv,
    .client_shutdown = uring_client_shutdown,
    .stop_accepting = uring_stop_accepting,
    .wake_peer = uring_wake_peer,
    .poll = uring_poll,
};

struct io_uring *backend_uring_ring(struct shard *s) {
  if (s->backend != &backend_uring_ops || s->backend_state == NULL) return NULL;
  return &((struct uring_state *)s->backend_state)->ring;
}
