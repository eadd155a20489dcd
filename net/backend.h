/* SPDX-License-Identifier: Apache-2.0 */
/* The event-loop backend interface: one implementation on io_uring
 * (backend_uring.c), one on epoll (backend_epoll.c). Only these two files
 * include liburing or sys/epoll.h. Every function runs on the shard's own
 * thread. */
#ifndef SHOAL_BACKEND_H
#define SHOAL_BACKEND_H

#include <stdbool.h>

struct shard;
struct client;

struct backend_ops {
  const char *name;

  /* Sets up the shard's event loop and starts accepting on s->listen_fd.
   * Returns 0 or a negative errno. */
  int (*init)(struct shard *s);

  /* Releases what init() acquired. No client may remain. */
  void (*fini)(struct shard *s);

  /* Starts receiving on a new connection. Received bytes go to
   * client_on_recv(), end of stream and errors to client_on_recv_end(). */
  int (*client_start)(struct shard *s, struct client *c);

  /* Sends c->wbuf from its offset. Reports progress through
   * client_on_sent() and failure through client_on_send_error(); may send
   * nothing yet when the socket is full. Never called while a send is in
   * flight. */
  void (*client_send)(struct shard *s, struct client *c);

  /* Stops receiving on c until client_resume_recv(); bytes already in
   * flight may still arrive. Used for back-pressure on publishers. */
  void (*client_pause_recv)(struct shard *s, struct client *c);
  void (*client_resume_recv)(struct shard *s, struct client *c);

  /* Stops all I/O on c. The backend calls client_on_io_done() once no
   * operation on c is in flight any more. */
  void (*client_shutdown)(struct shard *s, struct client *c);

  /* Stops accepting new connections and closes the shard's listener. */
  void (*stop_accepting)(struct shard *s);

  /* Wakes dst, a sleeping shard, from s's thread; NULL or a false return
   * means the caller writes dst's eventfd instead. */
  bool (*wake_peer)(struct shard *s, struct shard *dst);

  /* Waits up to timeout_ms (0: do not wait) for events and dispatches them.
   * Returns 0 or a negative errno. */
  int (*poll)(struct shard *s, int timeout_ms);
};

extern const struct backend_ops backend_uring_ops;
extern const struct backend_ops backend_epoll_ops;

struct io_uring;

/* Returns s's io_uring for subsystems that submit their own requests on
 * it (storage), or NULL when s runs on epoll. Shard thread only. */
struct io_uring *backend_uring_ring(struct shard *s);

/* Probes whether io_uring can be set up with the features shoal needs.
 * Returns 0, or a negative errno and a reason in why. */
int backend_uring_probe(char *why, unsigned why_len);

#endif
