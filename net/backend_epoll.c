/* SPDX-License-Identifier: Apache-2.0 */
/* The epoll backend, for kernels or sandboxes without a usable io_uring:
 * level-triggered readiness with plain recv and send on nonblocking
 * sockets, driving the same shard loop. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/client.h"
#include "core/log.h"
#include "core/shard.h"
#include "net/backend.h"

#define EPOLL_EVENTS_MAX 256
#define EPOLL_READ_SIZE (64 * 1024)
/* Reads per readiness event, so one busy connection cannot starve others. */
#define EPOLL_READS_PER_EVENT 16
#define EPOLL_ACCEPTS_PER_EVENT 64

struct epoll_state {
  int epfd;
  char *read_buf;
};

/* Markers for the two descriptors that are not connections. */
static char listener_marker, wake_marker;

static int ctl(int epfd, int op, int fd, uint32_t events, void *ptr) {
  struct epoll_event ev = {.events = events, .data.ptr = ptr};
  return epoll_ctl(epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

static int epoll_init(struct shard *s) {
  struct epoll_state *e = calloc(1, sizeof *e);
  if (e == NULL) return -ENOMEM;
  e->read_buf = malloc(EPOLL_READ_SIZE);
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  int rc = e->epfd < 0 ? -errno : 0;
  if (rc == 0 && e->read_buf == NULL) rc = -ENOMEM;
  if (rc == 0) rc = ctl(e->epfd, EPOLL_CTL_ADD, s->listen_fd, EPOLLIN, &listener_marker);
  if (rc == 0) rc = ctl(e->epfd, EPOLL_CTL_ADD, s->wake_fd, EPOLLIN, &wake_marker);
  if (rc != 0) {
    if (e->epfd >= 0) close(e->epfd);
    free(e->read_buf);
    free(e);
    return rc;
  }
  s->backend_state = e;
  return 0;
}

static void epoll_fini(struct shard *s) {
  struct epoll_state *e = s->backend_state;
  close(e->epfd);
  free(e->read_buf);
  free(e);
  s->backend_state = NULL;
}

static int epoll_client_start(struct shard *s, struct client *c) {
  struct epoll_state *e = s->backend_state;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return ctl(e->epfd, EPOLL_CTL_ADD, c->fd, EPOLLIN | EPOLLRDHUP, c);
}

/* Whether the connection waits for EPOLLOUT, kept in backend_data. */
#define WANTS_OUT ((void *)1)

static uint32_t wanted_events(const struct client *c) {
  uint32_t ev = EPOLLRDHUP;
  if (!c->recv_paused) ev |= EPOLLIN;
  if (c->backend_data == WANTS_OUT) ev |= EPOLLOUT;
  return ev;
}


static void epoll_client_send(struct shard *s, struct client *c) {
  struct epoll_state *e = s->backend_state;
  size_t total = 0;
  while (total < buf_pending(&c->wbuf)) {
    ssize_t n = send(c->fd, c->wbuf.data + c->wbuf.off + total, buf_pending(&c->wbuf) - total,
                     MSG_NOSIGNAL);
    if (n > 0) {
      total += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      client_on_send_error(c, -errno);
      return;
    }
    break;
  }
  if (total > 0) {
    client_on_sent(c, total);
    return;
  }
  /* Nothing went out: wait for room, with the send still in flight. */
  if (c->backend_data != WANTS_OUT) {
    c->backend_data = WANTS_OUT;
    ctl(e->epfd, EPOLL_CTL_MOD, c->fd, wanted_events(c), c);
  }
}

static void epoll_client_pause_recv(struct shard *s, struct client *c) {
  struct epoll_state *e = s->backend_state;
  ctl(e->epfd, EPOLL_CTL_MOD, c->fd, wanted_events(c), c);
}

static void epoll_client_resume_recv(struct shard *s, struct client *c) {
  struct epoll_state *e = s->backend_state;
  ctl(e->epfd, EPOLL_CTL_MOD, c->fd, wanted_events(c), c);
}

static void epoll_client_shutdown(struct shard *s, struct client *c) {
  struct epoll_state *e = s->backend_state;
  if (c->fd >= 0) {
    ctl(e->epfd, EPOLL_CTL_DEL, c->fd, 0, NULL);
    close(c->fd);
    c->fd = -1;
  }
  c->send_in_flight = false;
  client_on_io_done(c);
}

static void epoll_stop_accepting(struct shard *s) {
  struct epoll_state *e = s->backend_state;
  if (s->listen_fd < 0) return;
  ctl(e->epfd, EPOLL_CTL_DEL, s->listen_fd, 0, NULL);
  close(s->listen_fd);
  s->listen_fd = -1;
}

static void accept_ready(struct shard *s) {
  if (s->listen_fd < 0) return;
  for (int i = 0; i < EPOLL_ACCEPTS_PER_EVENT; i++) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      shard_on_accept(s, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN) log_warn("shard %u: accept failed: %s", s->id, strerror(errno));
    return;
  }
}

static void read_ready(struct epoll_state *e, struct client *c) {
  for (int i = 0; i < EPOLL_READS_PER_EVENT && c->state == CLIENT_OPEN && !c->recv_paused; i++) {
    ssize_t n = recv(c->fd, e->read_buf, EPOLL_READ_SIZE, 0);
    if (n > 0) {
      client_on_recv(c, e->read_buf, (size_t)n);
      if ((size_t)n < EPOLL_READ_SIZE) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    client_on_recv_end(c, n == 0 ? 0 : -errno);
    return;
  }
}

static void write_ready(struct epoll_state *e, struct client *c) {
  if (c->backend_data != WANTS_OUT) return;
  c->backend_data = NULL;
  ctl(e->epfd, EPOLL_CTL_MOD, c->fd, wanted_events(c), c);
  if (c->send_in_flight) {
    /* Retry the send that found the socket full. */
    c->send_in_flight = false;
    client_flush(c);
  }
}

static int epoll_poll(struct shard *s, int timeout_ms) {
  struct epoll_state *e = s->backend_state;
  struct epoll_event events[EPOLL_EVENTS_MAX];
  int n = epoll_wait(e->epfd, events, EPOLL_EVENTS_MAX, timeout_ms);
  shard_wait_done(s);
  if (n < 0) return errno == EINTR ? 0 : -errno;

  for (int i = 0; i < n; i++) {
    void *ptr = events[i].data.ptr;
    if (ptr == &listener_marker) {
      accept_ready(s);
      continue;
    }
    if (ptr == &wake_marker) {
      shard_on_wake(s);
      continue;
    }
    struct client *c = ptr;
    if (c->state == CLIENT_CLOSED) continue; /* closed earlier in this batch */
    if (events[i].events & EPOLLOUT) write_ready(e, c);
    if (c->state == CLIENT_CLOSED) continue;
    if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_ready(e, c);
  }
  return 0;
}

const struct backend_ops backend_epoll_ops = {
    .name = "epoll",
    .init = epoll_init,
    .fini = epoll_fini,
    .client_start = epoll_client_start,
    .client_send = epoll_client_send,
    .client_pause_recv = epoll_client_pause_recv,
    .client_resume_recv = epoll_client_resume_recv,
    .client_shutdown = epoll_client_shutdown,
    .stop_accepting = epoll_stop_accepting,
    .wake_peer = NULL,
    .poll = epoll_poll,
};
