/* SPDX-License-Identifier: Apache-2.0 */
/* Server start-up and shutdown: identity, listeners, shard threads, and
 * the main thread's signal loop. */
#include "core/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "core/js.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/notify.h"
#include "core/shard.h"
#include "core/sublist.h"
#include "net/backend.h"
#include "net/listener.h"
#include "net/monitor.h"

struct server server;

int64_t server_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A server id in nats-server's form: 'N' and 55 base32 characters. */
static void make_server_id(char out[57]) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  unsigned char random[55];
  if (getrandom(random, sizeof random, 0) != (ssize_t)sizeof random) {
    uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    for (size_t i = 0; i < sizeof random; i++) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      random[i] = (unsigned char)(x >> 56);
    }
  }
  out[0] = 'N';
  for (int i = 0; i < 55; i++) out[i + 1] = alphabet[random[i] & 31];
  out[56] = '\0';
}

static const struct backend_ops *choose_backend(void) {
  if (server.opts.backend == OPTS_BACKEND_EPOLL) return &backend_epoll_ops;
  char why[256] = "";
  int rc = backend_uring_probe(why, sizeof why);
  if (rc == 0) return &backend_uring_ops;
  if (server.opts.backend == OPTS_BACKEND_URING) {
    log_fatal("io_uring backend requested but unavailable: %s", why);
    return NULL;
  }
  log_warn("io_uring is unavailable (%s); using the epoll backend", why);
  return &backend_epoll_ops;
}

static int open_listeners(const struct backend_ops *backend) {
  int port = server.opts.port < 0 ? 0 : server.opts.port;
  for (int i = 0; i < server.shard_count; i++) {
    char why[256];
    int bound = 0;
    int fd = listener_open(server.opts.host, port, &bound, why, sizeof why);
    if (fd < 0) {
      log_fatal("Error listening on port: %s:%d, \"%s\"", server.opts.host, port, why);
      return fd;
    }
    port = bound; /* later shards join the port the first one got */
    server.shards[i]->listen_fd = fd;
    server.shards[i]->backend = backend;
  }
  server.port = port;
  return 0;
}

static int write_pidfile(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  char text[32];
  int n = snprintf(text, sizeof text, "%d", (int)getpid());
  ssize_t w = write(fd, text, (size_t)n);
  close(fd);
  return w == n ? 0 : -EIO;
}

static void log_banner(const struct backend_ops *backend) {
  log_info("Starting nats-server");
  log_info("  Version:  %s", SERVER_COMPAT_VERSION);
  log_info("  Git:      [not set]");
  log_info("  Name:     %s", server.server_name);
  log_info("  ID:       %s", server.server_id);
  log_info("  shoal:    %s, %d shard%s, %s backend", SHOAL_VERSION, server.shard_count,
           server.shard_count == 1 ? "" : "s", backend->name);
}

/* Waits up to timeout_ms (forever when negative) for a signal in set.
 * Returns the signal, or -1 on timeout or interruption. */
static int wait_signal(const sigset_t *set, int timeout_ms) {
  if (timeout_ms < 0) return sigwaitinfo(set, NULL);
  struct timespec timeout = {.tv_sec = timeout_ms / 1000,
                             .tv_nsec = (long)(timeout_ms % 1000) * 1000000};
  return sigtimedwait(set, NULL, &timeout);
}

/* Waits for signals on the main thread, which blocks them for every shard
 * thread, and sends service manager notifications between them. Returns
 * when a stop signal arrives. */
static void signal_loop(const sigset_t *set) {
  for (;;) {
    int64_t now = server_now_ms();
    int timeout = notify_tick(now);
    if (atomic_load(&server.lame_duck)) {
      /* Lame-duck mode ends with a normal shutdown once its duration is up. */
      int64_t left = server.lame_duck_start_ms + server.opts.lame_duck_duration_ms - now;
      if (left <= 0 || atomic_load(&server.connections) == 0) return;
      /* Look again soon: the shutdown follows the last client's close. */
      if (left > 100) left = 100;
      if (timeout < 0 || left < timeout) timeout = (int)left;
    }
    int sig = wait_signal(set, timeout);
    if (sig < 0) continue;
    switch (sig) {
    case SIGTERM:
    case SIGINT:
      log_info("Trapped \"%s\" signal", sig == SIGTERM ? "terminated" : "interrupt");
      return;
    case SIGUSR2:
      if (!atomic_load(&server.lame_duck)) lifecycle_enter_lame_duck();
      break;
    case SIGUSR1:
      if (log_reopen() != 0) {
        log_error("could not reopen the log file %s", server.opts.logfile);
      } else if (server.opts.logfile != NULL) {
        log_info("File log re-opened");
      }
      break;
    case SIGHUP:
      notify_reloading();
      log_info("Trapped \"hangup\" signal");
      server_reload();
      notify_reloaded();
      break;
    default:
      break;
    }
  }
}

int server_run(void) {
  struct opts *o = &server.opts;
  if (log_setup(o->debug, o->trace, o->logtime, o->logfile) != 0) {
    fprintf(stderr, "cannot open log file %s: %s\n", o->logfile, strerror(errno));
    return 1;
  }
  notify_init();

  make_server_id(server.server_id);
  server.server_name = o->server_name ? o->server_name : server.server_id;
  server.shard_count = o->shard_count > 0 ? o->shard_count : (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (server.shard_count < 1) server.shard_count = 1;
  atomic_init(&server.next_cid, 1);
  server.start_time_ms = server_now_ms();

  /* Signals are handled on this thread only; shard threads inherit the
   * blocked mask. SIGPIPE stays blocked: sends use MSG_NOSIGNAL. */
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  const struct backend_ops *backend = choose_backend();
  if (backend == NULL) return 1;

  server.sublist = sublist_create();
  if (server.sublist == NULL || shard_create_all() != 0) {
    log_fatal("out of memory while creating shards");
    return 1;
  }
  log_banner(backend);
  if (open_listeners(backend) != 0) return 1;
  if (o->pidfile != NULL && write_pidfile(o->pidfile) != 0) {
    log_fatal("Could not write pidfile: %s", o->pidfile);
    return 1;
  }
  if (js_init() != 0) return 1;

  /* The monitor listens before the shards run, so that it is up once
   * clients are served; its requests wait in the shards' mailboxes. */
  if (monitor_start() != 0) return 1;
  int rc = shard_start_all();
  if (rc != 0) {
    log_fatal("could not start shard threads: %s", strerror(-rc));
    return 1;
  }
  log_info("Listening for client connections on %s:%d", o->host, server.port);
  log_info("Server is ready");
  notify_ready(backend->name);

  signal_loop(&set);

  log_info("Initiating Shutdown...");
  notify_stopping();
  monitor_stop(); /* before the shards, which its requests may wait for */
  shard_stop_all();
  rcu_barrier();
  if (o->pidfile != NULL) unlink(o->pidfile);
  log_info("Server Exiting..");
  return 0;
}
