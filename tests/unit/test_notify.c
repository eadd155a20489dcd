/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/notify.c: socket addresses, the datagrams, the
 * WATCHDOG_USEC/WATCHDOG_PID rules and the heartbeat-gated watchdog. The
 * file is included so that the tests can drive the watchdog with their own
 * clock and fake shards. Owned by the deploy work. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/notify.c"

/* The test's receiving end of the notification socket. */
static int receiver = -1;
static char socket_dir[64];
static char socket_path[sizeof((struct sockaddr_un *)0)->sun_path];

static void bind_abstract(const char *address) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(address);
  memcpy(addr.sun_path + 1, address + 1, len - 1);
  receiver = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert(receiver >= 0);
  cr_assert(bind(receiver, (struct sockaddr *)&addr,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) == 0,
            "bind(%s) failed: %s", address, strerror(errno));
}

static void bind_path(void) {
  snprintf(socket_dir, sizeof socket_dir, "/tmp/shoal-notify-unit-XXXXXX");
  cr_assert_not_null(mkdtemp(socket_dir));
  snprintf(socket_path, sizeof socket_path, "%s/notify", socket_dir);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
  receiver = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert(receiver >= 0);
  cr_assert(bind(receiver, (struct sockaddr *)&addr, sizeof addr) == 0);
}

static void cleanup(void) {
  notify_close();
  if (receiver >= 0) close(receiver);
  if (socket_dir[0] != '\0') {
    unlink(socket_path);
    rmdir(socket_dir);
  }
}

/* Receives one datagram without waiting. Returns its length, or -1 when
 * none is queued. */
static int receive(char *out, size_t size) {
  ssize_t n = recv(receiver, out, size - 1, MSG_DONTWAIT);
  if (n < 0) return -1;
  out[n] = '\0';
  return (int)n;
}

static void expect_message(const char *expected) {
  char text[1024];
  cr_assert(receive(text, sizeof text) >= 0, "no datagram, expected \"%s\"", expected);
  cr_assert_str_eq(text, expected);
}

static void expect_no_message(const char *when) {
  char text[1024];
  int n = receive(text, sizeof text);
  cr_assert(n < 0, "unexpected datagram \"%s\" %s", n >= 0 ? text : "", when);
}

TestSuite(notify, .fini = cleanup, .timeout = 30);

Test(notify, open_rejects_invalid_addresses) {
  char long_path[200];
  memset(long_path, 'a', sizeof long_path);
  long_path[0] = '/';
  long_path[sizeof((struct sockaddr_un *)0)->sun_path] = '\0'; /* one byte too long */
  char long_abstract[200];
  memset(long_abstract, 'a', sizeof long_abstract);
  long_abstract[0] = '@';
  long_abstract[sizeof((struct sockaddr_un *)0)->sun_path + 1] = '\0';

  static const struct {
    const char *address;
    int expected;
  } cases[] = {
      {NULL, -EINVAL},          {"", -EINVAL},
      {"@", -EINVAL},           {"relative/notify", -EAFNOSUPPORT},
      {"vsock:2:1234", -EAFNOSUPPORT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cr_expect_eq(notify_open(cases[i].address), cases[i].expected, "address \"%s\"",
                 cases[i].address ? cases[i].address : "(null)");
  }
  cr_expect_eq(notify_open(long_path), -EINVAL, "a path of %zu bytes", strlen(long_path));
  cr_expect_eq(notify_open(long_abstract), -EINVAL, "an abstract name of %zu bytes",
               strlen(long_abstract));
  cr_expect_eq(notify.fd, -1, "a rejected address left a socket open");
}

Test(notify, sends_to_path_socket) {
  bind_path();
  cr_assert_eq(notify_open(socket_path), 0);
  cr_assert_eq(notify_send("READY=1\nSTATUS=up"), 0);
  expect_message("READY=1\nSTATUS=up");
}

Test(notify, sends_to_abstract_socket) {
  char address[64];
  snprintf(address, sizeof address, "@shoal-notify-unit-%d", (int)getpid());
  bind_abstract(address);
  cr_assert_eq(notify_open(address), 0);
  cr_assert_eq(notify_send("WATCHDOG=1"), 0);
  expect_message("WATCHDOG=1");
}

Test(notify, send_without_socket_does_nothing) {
  cr_assert_eq(notify.fd, -1);
  cr_assert_eq(notify_send("READY=1"), 0);
}

Test(notify, send_to_missing_socket_fails) {
  cr_assert_eq(notify_open("/nonexistent-shoal-dir/notify"), 0);
  int rc = notify_send("READY=1");
  cr_assert(rc == -ENOENT, "sending to a missing socket returned %d, expected -ENOENT", rc);
}

Test(notify, watchdog_usec_rules) {
  pid_t self = 4242;
  static const struct {
    const char *usec;
    const char *pid;
    int64_t expected;
  } cases[] = {
      {NULL, NULL, 0},
      {NULL, "4242", 0},
      {"30000000", NULL, 30000000},
      {"30000000", "4242", 30000000},
      {"30000000", "4243", 0}, /* meant for another process */
      {"0", NULL, -EINVAL},
      {"", NULL, -EINVAL},
      {"abc", NULL, -EINVAL},
      {"10s", NULL, -EINVAL},
      {"-5", NULL, -EINVAL},
      {" 5", NULL, -EINVAL},
      {"99999999999999999999", NULL, -EINVAL},
      {"30000000", "", -EINVAL},
      {"30000000", "0", -EINVAL},
      {"30000000", "pid", -EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t got = notify_watchdog_usec(cases[i].usec, cases[i].pid, self);
    cr_expect_eq(got, cases[i].expected, "WATCHDOG_USEC=%s WATCHDOG_PID=%s: got %lld",
                 cases[i].usec ? cases[i].usec : "(unset)", cases[i].pid ? cases[i].pid : "(unset)",
                 (long long)got);
  }
}

/* Two fake shards whose heartbeats the tests move by hand, an open socket,
 * and a watchdog period of 100 ms started at time 1000. */
static void setup_watchdog(void) {
  static struct shard *shards[2];
  for (int i = 0; i < 2; i++) {
    shards[i] = aligned_alloc(64, (sizeof(struct shard) + 63) & ~(size_t)63);
    cr_assert_not_null(shards[i]);
    memset(shards[i], 0, sizeof *shards[i]);
    atomic_store(&shards[i]->heartbeat, 1);
  }
  server.shards = shards;
  server.shard_count = 2;
  server.opts.host = "127.0.0.1";
  server.port = 4222;

  char address[64];
  snprintf(address, sizeof address, "@shoal-notify-unit-wd-%d", (int)getpid());
  bind_abstract(address);
  cr_assert_eq(notify_open(address), 0);
  notify.watchdog_period_ms = 100;
  notify.ready = true;
  notify.status_due_ms = INT64_MAX; /* keep STATUS= refreshes out of the way */
  watchdog_start(1000);
}

static void beat(int shard_index) { atomic_fetch_add(&server.shards[shard_index]->heartbeat, 1); }

Test(notify, watchdog_waits_for_every_shard) {
  setup_watchdog();

  /* Due at 1100, but neither shard moved: no ping, retry a quarter later. */
  cr_expect_eq(notify_tick(1050), 50);
  expect_no_message("before the first period");
  cr_expect_eq(notify_tick(1100), 25);
  expect_no_message("while no shard moved");

  beat(0);
  cr_expect_eq(notify_tick(1125), 25);
  expect_no_message("while shard 1 stood still");
  cr_expect_eq(notify.stalled_shard, 1);

  beat(1);
  cr_expect_eq(notify_tick(1150), 100);
  expect_message("WATCHDOG=1");
  cr_expect_eq(notify.stalled_shard, -1);

  /* The next period measures from the ping, against the new heartbeats. */
  beat(0);
  beat(1);
  cr_expect_eq(notify_tick(1200), 50);
  expect_no_message("before the next period");
  cr_expect_eq(notify_tick(1250), 100);
  expect_message("WATCHDOG=1");

  /* A shard that moved before the last ping but not since blocks the next. */
  beat(0);
  cr_expect_eq(notify_tick(1350), 25);
  expect_no_message("while shard 1 stood still after a ping");
}

Test(notify, stopping_ends_pings) {
  setup_watchdog();
  notify_stopping();
  expect_message("STOPPING=1\nSTATUS=Stopping: closing 0 client connections");

  beat(0);
  beat(1);
  cr_expect_eq(notify_tick(2000), -1);
  expect_no_message("after STOPPING=1");
}

Test(notify, reload_brackets_with_ready) {
  setup_watchdog();
  snprintf(notify.backend, sizeof notify.backend, "epoll");
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t before = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
  notify_reloading();
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t after = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;

  char text[1024];
  cr_assert(receive(text, sizeof text) >= 0);
  unsigned long long stamp = 0;
  cr_assert_eq(sscanf(text, "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=%llu",
                      &stamp),
               1, "unexpected message \"%s\"", text);
  cr_expect(stamp >= before && stamp <= after, "MONOTONIC_USEC=%llu is not the current time",
            stamp);

  notify_reloaded();
  expect_message("READY=1\nSTATUS=Accepting client connections on 127.0.0.1:4222 (2 shards, "
                 "epoll backend), 0 open");
}

Test(notify, ready_reports_status) {
  setup_watchdog();
  notify.ready = false;
  atomic_store(&server.connections, 1);
  notify_ready("io_uring");
  expect_message("READY=1\nSTATUS=Accepting client connections on 127.0.0.1:4222 (2 shards, "
                 "io_uring backend), 1 open");
  cr_expect(notify.ready);

  /* A refresh goes out only when the count changed. */
  notify.status_due_ms = 0;
  notify_tick(1);
  expect_no_message("with an unchanged connection count");
  atomic_store(&server.connections, 3);
  notify.status_due_ms = 0;
  notify_tick(1);
  expect_message("STATUS=Accepting client connections on 127.0.0.1:4222 (2 shards, io_uring "
                 "backend), 3 open");
}
