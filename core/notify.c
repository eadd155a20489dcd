/* SPDX-License-Identifier: Apache-2.0 */
/* Service manager notifications and the shard-gated watchdog. Owned by the
 * deploy work.
 *
 * The protocol is the one sd_notify(3) documents: NOTIFY_SOCKET names an
 * AF_UNIX datagram socket, either a file path or, with a leading '@', a
 * name in the abstract namespace. Each message is one datagram of
 * newline-separated VARIABLE=value assignments. The service manager reads
 * the sender's PID from the socket credentials, so the main process sends
 * every message itself (NotifyAccess=main, the default for Type=notify).
 *
 * Watchdog: with WATCHDOG_USEC set (WatchdogSec= in the unit), a ping goes
 * out at half the interval, as sd_watchdog_enabled(3) advises, but only
 * when the heartbeat counter of every shard moved since the previous ping.
 * A shard loop wakes at least every 250 ms tick even when idle, so a
 * heartbeat that does not change means a shard is stuck, and the missing
 * pings let the service manager kill and restart the server. */
#include "core/notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/server.h"
#include "core/shard.h"

/* How long notify_ready() waits for every shard loop to start. */
#define NOTIFY_READY_WAIT_MS 5000
/* How often the STATUS= line is refreshed when the connection count moved. */
#define NOTIFY_STATUS_PERIOD_MS 5000
/* A send blocks at most this long when the service manager's queue is full. */
#define NOTIFY_SEND_TIMEOUT_MS 1000
/* Below this interval an idle shard's 250 ms tick can make a ping late. */
#define NOTIFY_WATCHDOG_USEC_MIN 1000000

static struct {
  int fd;
  struct sockaddr_un addr;
  socklen_t addr_len;
  bool send_failed; /* a failed send was logged; later ones go to debug */

  bool ready;    /* READY=1 was sent and no stop started */
  char backend[16];

  int64_t watchdog_period_ms; /* half of WATCHDOG_USEC; 0 = no watchdog */
  int64_t watchdog_due_ms;
  int64_t watchdog_last_ping_ms;
  uint64_t *heartbeats_seen; /* each shard's heartbeat at the last ping */
  int stalled_shard;         /* shard logged as stalled since the last ping, or -1 */

  int64_t status_due_ms;
  int64_t status_connections; /* the count in the last STATUS= line */
} notify = {.fd = -1, .stalled_shard = -1};

int notify_open(const char *address) {
  if (address == NULL || address[0] == '\0' || strcmp(address, "@") == 0) return -EINVAL;
  if (address[0] != '/' && address[0] != '@') return -EAFNOSUPPORT;

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(address);
  socklen_t addr_len;
  if (address[0] == '@') {
    /* Abstract names are not NUL-terminated: the length delimits them. */
    if (len > sizeof addr.sun_path) return -EINVAL;
    memcpy(addr.sun_path + 1, address + 1, len - 1);
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  } else {
    if (len >= sizeof addr.sun_path) return -EINVAL;
    memcpy(addr.sun_path, address, len + 1);
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct timeval timeout = {.tv_sec = NOTIFY_SEND_TIMEOUT_MS / 1000,
                            .tv_usec = (NOTIFY_SEND_TIMEOUT_MS % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);

  notify_close();
  notify.fd = fd;
  notify.addr = addr;
  notify.addr_len = addr_len;
  notify.send_failed = false;
  return 0;
}

int notify_send(const char *state) {
  if (notify.fd < 0) return 0;
  size_t len = strlen(state);
  struct iovec iov = {.iov_base = (void *)state, .iov_len = len};
  struct msghdr msg = {
      .msg_name = &notify.addr,
      .msg_namelen = notify.addr_len,
      .msg_iov = &iov,
      .msg_iovlen = 1,
  };
  ssize_t sent = sendmsg(notify.fd, &msg, MSG_NOSIGNAL);
  if (sent < 0) return -errno;
  /* A datagram goes out whole or not at all. */
  return (size_t)sent == len ? 0 : -EIO;
}

void notify_close(void) {
  if (notify.fd >= 0) close(notify.fd);
  notify.fd = -1;
}

/* Parses a positive decimal number with nothing after it. */
static int parse_positive(const char *text, uint64_t *out) {
  if (text[0] < '0' || text[0] > '9') return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || n == 0) return -EINVAL;
  *out = n;
  return 0;
}

int64_t notify_watchdog_usec(const char *usec_text, const char *pid_text, pid_t self) {
  if (usec_text == NULL) return 0;
  uint64_t usec;
  if (parse_positive(usec_text, &usec) != 0 || usec > INT64_MAX) return -EINVAL;
  if (pid_text != NULL) {
    uint64_t pid;
    if (parse_positive(pid_text, &pid) != 0) return -EINVAL;
    /* The variables were meant for another process, such as a parent. */
    if (pid != (uint64_t)self) return 0;
  }
  return (int64_t)usec;
}

/* Sends state and logs the first failure. The server keeps running either way. */
static void send_logged(const char *state) {
  int rc = notify_send(state);
  if (rc == 0) return;
  if (!notify.send_failed) {
    int first_line_len = (int)strcspn(state, "\n");
    log_warn("could not notify the service manager (%s), message starting \"%.*s\" lost",
             strerror(-rc), first_line_len, state);
    notify.send_failed = true;
    return;
  }
  log_debug("could not notify the service manager: %s", strerror(-rc));
}

int notify_init(void) {
  const char *address = getenv("NOTIFY_SOCKET");
  if (address == NULL) return 0;
  int rc = notify_open(address);
  if (rc != 0) {
    log_warn("NOTIFY_SOCKET=\"%s\" cannot be used (%s); service manager notifications are off",
             address, strerror(-rc));
    return rc;
  }
  log_debug("service manager notifications go to %s", address);

  const char *usec_text = getenv("WATCHDOG_USEC");
  const char *pid_text = getenv("WATCHDOG_PID");
  int64_t usec = notify_watchdog_usec(usec_text, pid_text, getpid());
  if (usec < 0) {
    log_warn("invalid WATCHDOG_USEC=\"%s\" or WATCHDOG_PID=\"%s\": expected positive integers; "
             "watchdog pings are off",
             usec_text, pid_text ? pid_text : "");
    return 0;
  }
  if (usec == 0) return 0;
  notify.watchdog_period_ms = usec / 2000 > 0 ? usec / 2000 : 1;
  if (usec < NOTIFY_WATCHDOG_USEC_MIN) {
    log_warn("watchdog interval %" PRId64 " us is under 1 s: an idle shard moves its heartbeat "
             "only every 250 ms, so pings may come too late; set WatchdogSec to 1s or more",
             usec);
  }
  return 0;
}

static uint64_t heartbeat_of(int shard_index) {
  return atomic_load_explicit(&server.shards[shard_index]->heartbeat, memory_order_relaxed);
}

/* Writes prefix ("READY=1\n" or "") and a STATUS= line naming the address,
 * the shards, the backend and the open connections into text. */
static void format_status(char *text, size_t size, const char *prefix) {
  int64_t connections = atomic_load(&server.connections);
  snprintf(text, size,
           "%sSTATUS=Accepting client connections on %s:%d (%d shard%s, %s backend), %" PRId64
           " open",
           prefix, server.opts.host, server.port, server.shard_count,
           server.shard_count == 1 ? "" : "s", notify.backend, connections);
  notify.status_connections = connections;
}

/* Waits, bounded by NOTIFY_READY_WAIT_MS, until every shard's heartbeat
 * left zero, which means its backend is set up and its loop runs. */
static bool wait_shards_running(void) {
  for (int waited_ms = 0; waited_ms < NOTIFY_READY_WAIT_MS; waited_ms++) {
    bool all = true;
    for (int i = 0; i < server.shard_count && all; i++) all = heartbeat_of(i) > 0;
    if (all) return true;
    struct timespec one_ms = {.tv_sec = 0, .tv_nsec = 1000000};
    nanosleep(&one_ms, NULL);
  }
  return false;
}

static void watchdog_start(int64_t now_ms) {
  if (notify.watchdog_period_ms == 0) return;
  free(notify.heartbeats_seen);
  notify.heartbeats_seen = calloc((size_t)server.shard_count, sizeof *notify.heartbeats_seen);
  if (notify.heartbeats_seen == NULL) {
    log_error("out of memory for the watchdog; pings are off and the service manager "
              "will restart the server when WatchdogSec passes");
    notify.watchdog_period_ms = 0;
    return;
  }
  for (int i = 0; i < server.shard_count; i++) notify.heartbeats_seen[i] = heartbeat_of(i);
  notify.watchdog_last_ping_ms = now_ms;
  notify.watchdog_due_ms = now_ms + notify.watchdog_period_ms;
  notify.stalled_shard = -1;
  log_info("Watchdog pings every %" PRId64 " ms while every shard runs", notify.watchdog_period_ms);
}

void notify_ready(const char *backend_name) {
  if (notify.fd < 0) return;
  snprintf(notify.backend, sizeof notify.backend, "%s", backend_name);
  if (!wait_shards_running()) {
    log_warn("a shard loop had not started after %d ms; sending READY=1 anyway",
             NOTIFY_READY_WAIT_MS);
  }

  char text[512];
  format_status(text, sizeof text, "READY=1\n");
  send_logged(text);

  int64_t now_ms = server_now_ms();
  notify.ready = true;
  notify.status_due_ms = now_ms + NOTIFY_STATUS_PERIOD_MS;
  watchdog_start(now_ms);
}

void notify_reloading(void) {
  if (notify.fd < 0) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char text[128];
  snprintf(text, sizeof text, "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%" PRIu64,
           (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
  send_logged(text);
}

void notify_reloaded(void) {
  if (notify.fd < 0) return;
  char text[512];
  format_status(text, sizeof text, "READY=1\n");
  send_logged(text);
}

void notify_stopping(void) {
  if (notify.fd < 0) return;
  notify.ready = false;
  char text[128];
  int64_t connections = atomic_load(&server.connections);
  snprintf(text, sizeof text, "STOPPING=1\nSTATUS=Stopping: closing %" PRId64 " client connection%s",
           connections, connections == 1 ? "" : "s");
  send_logged(text);
}

/* Pings when every shard's heartbeat moved since the last ping. Otherwise
 * logs the first stalled shard once and checks again a quarter period
 * later, so a shard that resumes soon still gets its ping out in time. */
static void watchdog_check(int64_t now_ms) {
  for (int i = 0; i < server.shard_count; i++) {
    if (heartbeat_of(i) != notify.heartbeats_seen[i]) continue;
    if (notify.stalled_shard != i) {
      log_warn("shard %d has not run its loop for %" PRId64 " ms; watchdog ping withheld", i,
               now_ms - notify.watchdog_last_ping_ms);
      notify.stalled_shard = i;
    }
    int64_t retry_ms = notify.watchdog_period_ms / 4;
    notify.watchdog_due_ms = now_ms + (retry_ms > 0 ? retry_ms : 1);
    return;
  }

  for (int i = 0; i < server.shard_count; i++) notify.heartbeats_seen[i] = heartbeat_of(i);
  if (notify.stalled_shard >= 0) {
    log_info("shard %d runs again; watchdog pings resume", notify.stalled_shard);
    notify.stalled_shard = -1;
  }
  send_logged("WATCHDOG=1");
  notify.watchdog_last_ping_ms = now_ms;
  notify.watchdog_due_ms = now_ms + notify.watchdog_period_ms;
}

int notify_tick(int64_t now_ms) {
  if (notify.fd < 0 || !notify.ready) return -1;

  if (notify.watchdog_period_ms > 0 && now_ms >= notify.watchdog_due_ms) watchdog_check(now_ms);
  if (now_ms >= notify.status_due_ms) {
    if (atomic_load(&server.connections) != notify.status_connections) {
      char text[512];
      format_status(text, sizeof text, "");
      send_logged(text);
    }
    notify.status_due_ms = now_ms + NOTIFY_STATUS_PERIOD_MS;
  }

  int64_t next_ms = notify.status_due_ms;
  if (notify.watchdog_period_ms > 0 && notify.watchdog_due_ms < next_ms) {
    next_ms = notify.watchdog_due_ms;
  }
  return next_ms > now_ms ? (int)(next_ms - now_ms) : 0;
}
