/* SPDX-License-Identifier: Apache-2.0 */
/* Server lifecycle with clients connected: the fleet configuration file,
 * reload on SIGHUP, log reopening on SIGUSR1, lame-duck mode on SIGUSR2,
 * graceful stop on SIGTERM and the --signal command, each checked as
 * nats-server 2.9.10 behaves. Owned by the integration test suite. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(lifecycle_config, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);
TestSuite(reload, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);
TestSuite(lame_duck, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);
TestSuite(shutdown, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);
TestSuite(signal_flag, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

#define AUTH_VIOLATION "-ERR 'Authorization Violation'"

/* Upper bound for a reload, a reopen or a state change to show. */
#define CHANGE_TIMEOUT_MS 5000

/* nats-server 2.9.10 rejects a lame_duck_duration under 30 s. */
#define LAME_DUCK_CONFIG "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n"
#define LAME_DUCK_DURATION_MS 30000

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* A free loopback port, found as the harness finds the server's. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

/* Tries to connect with a user and password and returns the libnats
 * status. On success *out, when out is not NULL, receives the connection. */
static natsStatus try_connect(const char *user, const char *pass, natsConnection **out) {
  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetUserInfo(opts, user, pass), NATS_OK);
  natsConnection *nc = NULL;
  natsStatus s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s == NATS_OK && out)
    *out = nc;
  else
    natsConnection_Destroy(nc);
  return s;
}

static natsConnection *connect_as(const char *user, const char *pass) {
  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetUserInfo(opts, user, pass), NATS_OK);
  natsConnection *nc = harness_connect_opts(opts);
  natsOptions_Destroy(opts);
  return nc;
}

/* Waits until a new connection with these credentials is accepted, which
 * shows that a reload has taken effect. */
static void wait_until_accepted(const char *user, const char *pass) {
  int64_t deadline = harness_now_ms() + CHANGE_TIMEOUT_MS;
  while (try_connect(user, pass, NULL) != NATS_OK) {
    cr_assert_lt(harness_now_ms(), deadline, "user %s was not accepted within %d ms of the reload",
                 user, CHANGE_TIMEOUT_MS);
    sleep_ms(50);
  }
}

static void assert_rejected(const char *user, const char *pass) {
  natsStatus s = try_connect(user, pass, NULL);
  cr_assert_eq(s, NATS_CONNECTION_AUTH_FAILED, "connect as %s/%s returned %s", user, pass,
               natsStatus_GetText(s));
}

static void assert_round_trip(natsConnection *nc, const char *subject) {
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, subject), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(nc, subject, "ping"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
  natsMsg *msg = harness_next_msg(sub);
  cr_assert_str_eq(natsMsg_GetSubject(msg), subject);
  cr_assert_eq(natsMsg_GetDataLength(msg), 4);
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
}

/* Reads the file at path (its first 64 KiB) into a static buffer. Returns
 * NULL when the file cannot be opened. */
static const char *read_text_file(const char *path) {
  static char content[65536];
  FILE *f = fopen(path, "r");
  if (!f)
    return NULL;
  size_t n = fread(content, 1, sizeof(content) - 1, f);
  fclose(f);
  content[n] = '\0';
  return content;
}

/* ---- configuration file ---- */

/* The fleet's configuration from its deployment notes, as in
 * tests/unit/conf/fleet.conf, with store_dir moved to the test's
 * temporary directory (%s). */
#define FLEET_CONFIG                                                                               \
  "port: 4222\n"                                                                                   \
  "http_port: 8222\n"                                                                              \
  "jetstream {\n"                                                                                  \
  "  store_dir: \"%s\"\n"                                                                          \
  "  max_memory_store: 1G\n"                                                                       \
  "  max_file_store: 10G\n"                                                                        \
  "}\n"                                                                                            \
  "cluster {\n"                                                                                    \
  "  name: \"ros2-cluster\"\n"                                                                     \
  "  port: 6222\n"                                                                                 \
  "  routes: [\n"                                                                                  \
  "    \"nats://robot1:6222\"\n"                                                                   \
  "    \"nats://robot2:6222\"\n"                                                                   \
  "  ]\n"                                                                                          \
  "}\n"

/* The same for a running nats-server, without the cluster block: it would
 * listen on every interface and dial robot1 and robot2, and nats-server
 * 2.9.10 refuses to start JetStream in a cluster without server_name
 * ("jetstream cluster requires `server_name` to be set"). */
#define FLEET_CONFIG_WITHOUT_CLUSTER                                                               \
  "port: 4222\n"                                                                                   \
  "http_port: 8222\n"                                                                              \
  "jetstream {\n"                                                                                  \
  "  store_dir: \"%s\"\n"                                                                          \
  "  max_memory_store: 1G\n"                                                                       \
  "  max_file_store: 10G\n"                                                                        \
  "}\n"

/* `-t` checks the file and exits without starting anything, so both
 * servers get the file unchanged, routes included. */
HARNESS_TEST(lifecycle_config, fleet_config_test_flag) {
  char store_dir[160];
  snprintf(store_dir, sizeof(store_dir), "%s/jetstream", harness_temp_dir());
  char config[2048];
  snprintf(config, sizeof(config), FLEET_CONFIG, store_dir);
  harness_write_config(config);

  char *argv[] = {(char *)harness_server_binary(), "-t", "-c", (char *)harness_config_path(),
                  NULL};
  char output[4096];
  int status = harness_run(argv, output, sizeof(output), 10000);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "-t failed (status 0x%x): %s",
            status, output);
  char expected[256];
  snprintf(expected, sizeof(expected), "configuration file %s is valid", harness_config_path());
  cr_assert_not_null(strstr(output, expected), "-t output lacks \"%s\": %s", expected, output);
}

/* A max_payload above max_pending stops the start with nats-server's
 * message, while -t, which only parses the file, accepts it. */
HARNESS_TEST(lifecycle_config, max_payload_above_max_pending) {
  harness_write_config("max_payload: 2000\nmax_pending: 1000\n");
  char port[16];
  snprintf(port, sizeof(port), "%d", free_port());
  char *start[] = {(char *)harness_server_binary(), "-a", "127.0.0.1", "-p", port, "-c",
                   (char *)harness_config_path(), NULL};
  char output[4096];
  int status = harness_run(start, output, sizeof(output), 10000);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "the server started (status 0x%x): %s",
            status, output);
  cr_expect_not_null(strstr(output, "max_payload (2000) cannot be higher than max_pending (1000)"),
                     "unexpected message: %s", output);

  char *test[] = {(char *)harness_server_binary(), "-t", "-c", (char *)harness_config_path(),
                  NULL};
  status = harness_run(test, output, sizeof(output), 10000);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "-t rejected the file: %s", output);
}

/* -t without a file is an error, with nats-server's message. */
HARNESS_TEST(lifecycle_config, test_flag_without_file) {
  char *argv[] = {(char *)harness_server_binary(), "-t", NULL};
  char output[4096];
  int status = harness_run(argv, output, sizeof(output), 10000);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "-t alone exited with 0x%x: %s",
            status, output);
  cr_expect_not_null(strstr(output, "must specify [-c, --config] option"), "unexpected: %s",
                     output);
}

HARNESS_TEST(lifecycle_config, fleet_config_starts) {
  char store_dir[160];
  snprintf(store_dir, sizeof(store_dir), "%s/jetstream", harness_temp_dir());
  char config[2048];
  if (harness_is_reference())
    snprintf(config, sizeof(config), FLEET_CONFIG_WITHOUT_CLUSTER, store_dir);
  else
    /* NOTE: shoal accepts the cluster block with a warning and ignores it.
     * Once shoal implements clustering this must switch to the loopback
     * variant too, or the test would dial robot1 and robot2. */
    snprintf(config, sizeof(config), FLEET_CONFIG, store_dir);
  char monitor_flag[32];
  snprintf(monitor_flag, sizeof(monitor_flag), "-m %d", free_port());
  harness_start_with(config, monitor_flag);

  /* The -p flag overrides the file's port 4222. */
  struct raw_conn rc;
  char info[4096];
  int err = raw_connect_info(&rc, info, sizeof(info));
  cr_assert_eq(err, 0, "raw connect failed: %s", strerror(-err));
  raw_close(&rc);
  char port_field[32];
  snprintf(port_field, sizeof(port_field), "\"port\":%d,", harness_port());
  cr_assert_not_null(strstr(info, port_field), "INFO lacks %s: %s", port_field, info);

  natsConnection *nc = harness_connect();
  assert_round_trip(nc, "fleet.status");

  if (!harness_is_reference())
    cr_assert(harness_wait_log("[WRN]", "cluster", CHANGE_TIMEOUT_MS),
              "no warning about the cluster block in the log");
}

/* ---- reload on SIGHUP ---- */

#define TWO_USERS_CONFIG                                                                           \
  "authorization {\n"                                                                              \
  "  users: [\n"                                                                                   \
  "    {user: alice, password: \"%s\"}\n"                                                          \
  "    {user: bob, password: bpass}\n"                                                             \
  "  ]\n"                                                                                          \
  "}\n"

static void write_two_users(const char *alice_password) {
  char config[512];
  snprintf(config, sizeof(config), TWO_USERS_CONFIG, alice_password);
  harness_write_config(config);
}

/* A new password applies to new connections, and a connection that logged
 * in with the old one is closed with an authorization error. Other users
 * keep their connections. */
HARNESS_TEST(reload, password_change) {
  char config[512];
  snprintf(config, sizeof(config), TWO_USERS_CONFIG, "old-pass");
  harness_start_with(config, NULL);

  struct raw_conn alice;
  raw_connect_fields(&alice, "\"user\":\"alice\",\"pass\":\"old-pass\"");
  natsConnection *bob = connect_as("bob", "bpass");

  write_two_users("new-pass");
  harness_signal(SIGHUP);
  wait_until_accepted("alice", "new-pass");

  assert_rejected("alice", "old-pass");
  raw_expect_line(&alice, AUTH_VIOLATION, CHANGE_TIMEOUT_MS);
  raw_expect_closed(&alice, CHANGE_TIMEOUT_MS);
  raw_close(&alice);

  cr_assert_eq(natsConnection_Status(bob), NATS_CONN_STATUS_CONNECTED);
  assert_round_trip(bob, "reload.bob");
}

/* A user's publish and subscribe permissions change on reload: existing
 * subscriptions that are no longer allowed are removed with an error, and
 * the connection's publishes follow the new rules. */
HARNESS_TEST(reload, permissions_change) {
  const char *before = "authorization {\n"
                       "  users: [\n"
                       "    {user: admin, password: apass}\n"
                       "    {user: dev, password: dpass, permissions: {\n"
                       "      publish: \"old.>\"\n"
                       "      subscribe: [\"keep.>\", \"drop.>\"]\n"
                       "    }}\n"
                       "  ]\n"
                       "}\n";
  harness_start_with(before, NULL);
  struct raw_conn dev;
  raw_connect_fields(&dev, "\"user\":\"dev\",\"pass\":\"dpass\"");
  cr_assert_eq(raw_send_str(&dev, "SUB keep.x 1\r\nSUB drop.x 2\r\nPING\r\n"), 0);
  raw_expect_line(&dev, "PONG", 5000);

  const char *after = "authorization {\n"
                      "  users: [\n"
                      "    {user: admin, password: apass}\n"
                      "    {user: dev, password: dpass, permissions: {\n"
                      "      publish: \"new.>\"\n"
                      "      subscribe: \"keep.>\"\n"
                      "    }}\n"
                      "  ]\n"
                      "}\n";
  harness_write_config(after);
  harness_signal(SIGHUP);
  raw_expect_line(&dev, "-ERR 'Permissions Violation for Subscription to \"drop.x\" (sid \"2\")'",
                  CHANGE_TIMEOUT_MS);

  cr_assert_eq(raw_send_str(&dev, "PUB old.x 1\r\na\r\nPUB new.x 1\r\nb\r\nPING\r\n"), 0);
  raw_expect_line(&dev, "-ERR 'Permissions Violation for Publish to \"old.x\"'", 5000);
  raw_expect_line(&dev, "PONG", 5000);

  /* keep.x still delivers and drop.x is gone. */
  natsConnection *admin = connect_as("admin", "apass");
  cr_assert_eq(natsConnection_PublishString(admin, "drop.x", "d"), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(admin, "keep.x", "k"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(admin, 5000), NATS_OK);
  raw_expect_line(&dev, "MSG keep.x 1 1", 5000);
  raw_expect_line(&dev, "k", 5000);
  raw_close(&dev);
}

/* A file that does not parse is rejected with an error in the log, and the
 * running configuration and connections stay. */
HARNESS_TEST(reload, invalid_file_keeps_config) {
  char config[512];
  snprintf(config, sizeof(config), TWO_USERS_CONFIG, "apass");
  harness_start_with(config, NULL);
  natsConnection *alice = connect_as("alice", "apass");

  harness_write_config("authorization {\n  users: [\n    {user: alice, password: \n");
  harness_signal(SIGHUP);
  cr_assert(harness_wait_log("[ERR]", "Failed to reload server configuration", CHANGE_TIMEOUT_MS),
            "no reload error in the log");

  cr_assert_eq(natsConnection_Status(alice), NATS_CONN_STATUS_CONNECTED);
  assert_round_trip(alice, "reload.survivor");
  natsConnection *again = NULL;
  cr_assert_eq(try_connect("alice", "apass", &again), NATS_OK);
  natsConnection_Destroy(again);
  assert_rejected("alice", "other");

  /* A valid file after the invalid one is applied. */
  write_two_users("fixed-pass");
  harness_signal(SIGHUP);
  wait_until_accepted("alice", "fixed-pass");
  assert_rejected("alice", "apass");
}

/* A reloaded max_payload shows in the INFO of new connections. */
HARNESS_TEST(reload, max_payload_change) {
  harness_start_with("max_payload: 1024\n", NULL);
  natsConnection *nc = harness_connect();
  cr_assert_eq(natsConnection_GetMaxPayload(nc), 1024);

  harness_write_config("max_payload: 2048\n");
  harness_signal(SIGHUP);
  int64_t deadline = harness_now_ms() + CHANGE_TIMEOUT_MS;
  for (;;) {
    struct raw_conn rc;
    char info[4096];
    int err = raw_connect_info(&rc, info, sizeof(info));
    cr_assert_eq(err, 0, "raw connect failed: %s", strerror(-err));
    raw_close(&rc);
    if (strstr(info, "\"max_payload\":2048"))
      break;
    cr_assert_not_null(strstr(info, "\"max_payload\":1024"), "unexpected INFO: %s", info);
    cr_assert_lt(harness_now_ms(), deadline, "max_payload 2048 not in INFO after the reload");
    sleep_ms(50);
  }
  assert_round_trip(nc, "reload.payload");
}

/* ---- log reopening on SIGUSR1 ---- */

/* Waits until the file at path contains text. */
static bool wait_file_contains(const char *path, const char *text) {
  int64_t deadline = harness_now_ms() + CHANGE_TIMEOUT_MS;
  for (;;) {
    const char *content = read_text_file(path);
    if (content && strstr(content, text))
      return true;
    if (harness_now_ms() > deadline)
      return false;
    sleep_ms(20);
  }
}

/* After the log file is renamed, SIGUSR1 makes the server create it again
 * and write later entries there. A reload provides an entry that both
 * servers log. */
HARNESS_TEST(reload, reopen_log_file) {
  char log_path[160];
  snprintf(log_path, sizeof(log_path), "%s/server.log", harness_temp_dir());
  char config[256];
  snprintf(config, sizeof(config), "logfile: \"%s\"\n", log_path);
  harness_start_with(config, NULL);
  cr_assert(wait_file_contains(log_path, "[INF]"), "%s has no entries", log_path);

  char rotated[192];
  snprintf(rotated, sizeof(rotated), "%s.1", log_path);
  cr_assert_eq(rename(log_path, rotated), 0, "rename(%s) failed: %s", log_path, strerror(errno));
  harness_signal(SIGUSR1);
  int64_t deadline = harness_now_ms() + CHANGE_TIMEOUT_MS;
  struct stat st;
  while (stat(log_path, &st) != 0) {
    cr_assert_lt(harness_now_ms(), deadline, "%s was not created again after SIGUSR1", log_path);
    sleep_ms(20);
  }

  harness_signal(SIGHUP);
  cr_assert(wait_file_contains(log_path, "Reloaded server configuration"),
            "the reload was not logged to the reopened %s", log_path);
  const char *old_log = read_text_file(rotated);
  cr_assert_not_null(old_log);
  cr_assert_null(strstr(old_log, "Reloaded server configuration"),
                 "the reload was logged to the renamed file");

  natsConnection *nc = harness_connect();
  assert_round_trip(nc, "reopen.ok");
}

/* ---- lame-duck mode on SIGUSR2 ---- */

/* Tries to open a TCP connection to the server's port. Returns 0 or a
 * negative errno. */
static int try_tcp_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)harness_port())};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int result = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 ? 0 : -errno;
  close(fd);
  return result;
}

/* Waits until connecting to the server's port is refused. */
static void wait_until_refused(void) {
  int64_t deadline = harness_now_ms() + CHANGE_TIMEOUT_MS;
  int err;
  while ((err = try_tcp_connect()) != -ECONNREFUSED) {
    cr_assert_lt(harness_now_ms(), deadline,
                 "new connections were still accepted %d ms after SIGUSR2 (last result: %s)",
                 CHANGE_TIMEOUT_MS, err == 0 ? "connected" : strerror(-err));
    sleep_ms(20);
  }
}

/* A client with protocol 1 gets INFO with "ldm":true, new connections are
 * refused, the client is closed within lame_duck_duration, and the server
 * then exits on its own. One client only, because nats-server spreads the
 * closes over the duration: a second client would wait about 15 s. */
HARNESS_TEST(lame_duck, raw_client_gets_ldm_info) {
  harness_start_with(LAME_DUCK_CONFIG, NULL);
  struct raw_conn rc;
  raw_connect_fields(&rc, "");

  harness_signal(SIGUSR2);
  char line[4096];
  for (;;) {
    int n = raw_read_line(&rc, line, sizeof(line), CHANGE_TIMEOUT_MS);
    cr_assert_geq(n, 0, "no INFO with ldm after SIGUSR2: %s", strerror(-n));
    if (strcmp(line, "PING") == 0) {
      raw_send_str(&rc, "PONG\r\n");
      continue;
    }
    break;
  }
  cr_assert_eq(strncmp(line, "INFO {", 6), 0, "expected INFO, got: %s", line);
  cr_assert_not_null(strstr(line, "\"ldm\":true"), "INFO without \"ldm\":true: %s", line);

  wait_until_refused();
  raw_expect_closed(&rc, LAME_DUCK_DURATION_MS + CHANGE_TIMEOUT_MS);
  raw_close(&rc);

  int status = harness_wait_exit(LAME_DUCK_DURATION_MS + CHANGE_TIMEOUT_MS);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the server did not exit cleanly after lame-duck mode (status 0x%x)", status);
}

struct ldm_events {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  bool lame_duck;
  bool closed;
};

static void on_lame_duck(natsConnection *nc, void *closure) {
  (void)nc;
  struct ldm_events *events = closure;
  pthread_mutex_lock(&events->lock);
  events->lame_duck = true;
  pthread_cond_broadcast(&events->changed);
  pthread_mutex_unlock(&events->lock);
}

static void on_closed(natsConnection *nc, void *closure) {
  (void)nc;
  struct ldm_events *events = closure;
  pthread_mutex_lock(&events->lock);
  events->closed = true;
  pthread_cond_broadcast(&events->changed);
  pthread_mutex_unlock(&events->lock);
}

/* Waits until *flag is set or timeout_ms (whole seconds) passes, and
 * returns the flag. */
static bool wait_event(struct ldm_events *events, bool *flag, int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  pthread_mutex_lock(&events->lock);
  while (!*flag) {
    if (pthread_cond_timedwait(&events->changed, &events->lock, &deadline) == ETIMEDOUT)
      break;
  }
  bool seen = *flag;
  pthread_mutex_unlock(&events->lock);
  return seen;
}

/* libnats reports the lame-duck INFO through its callback. */
HARNESS_TEST(lame_duck, libnats_callback) {
  harness_start_with(LAME_DUCK_CONFIG, NULL);
  struct ldm_events events = {.lame_duck = false, .closed = false};
  pthread_mutex_init(&events.lock, NULL);
  pthread_cond_init(&events.changed, NULL);
  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetLameDuckModeCB(opts, on_lame_duck, &events), NATS_OK);
  cr_assert_eq(natsOptions_SetClosedCB(opts, on_closed, &events), NATS_OK);
  natsConnection *nc = harness_connect_opts(opts);
  natsOptions_Destroy(opts);

  harness_signal(SIGUSR2);
  cr_assert(wait_event(&events, &events.lame_duck, CHANGE_TIMEOUT_MS),
            "libnats saw no lame-duck INFO");
  cr_assert_eq(natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);

  /* SIGTERM ends lame-duck mode early: the connection is closed and the
   * server exits cleanly (harness_finish() checks the exit). */
  harness_signal(SIGTERM);
  cr_assert(wait_event(&events, &events.closed, CHANGE_TIMEOUT_MS),
            "the connection was not closed after SIGTERM");
  int status = harness_wait_exit(CHANGE_TIMEOUT_MS);
  cr_assert(harness_clean_exit(status), "unclean exit after SIGTERM in lame-duck mode (0x%x)",
            status);
}

/* ---- graceful stop on SIGTERM ---- */

#define FLUSH_MESSAGE_COUNT 64
#define FLUSH_MESSAGE_BYTES (128 * 1024)

/* A subscriber that has not read its messages yet still gets every one of
 * them after SIGTERM, then the server closes it and exits cleanly. The
 * subscriber's small receive buffer keeps megabytes of the 8 MiB queued in
 * the server, and write_deadline is raised so that the stall does not count
 * as a slow consumer. */
HARNESS_TEST(shutdown, sigterm_flushes_pending_output) {
  harness_start_with("write_deadline: \"30s\"\n", NULL);
  struct raw_conn sub;
  int err = raw_connect(&sub, 4096);
  cr_assert_eq(err, 0, "raw connect failed: %s", strerror(-err));
  cr_assert_eq(raw_send_str(&sub, "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}"
                                  "\r\nSUB big 1\r\nPING\r\n"),
               0);
  raw_expect_line(&sub, "PONG", 5000);

  natsConnection *pub = harness_connect();
  char *payload = malloc(FLUSH_MESSAGE_BYTES);
  cr_assert_not_null(payload);
  for (int i = 0; i < FLUSH_MESSAGE_COUNT; i++) {
    memset(payload, 'a' + i % 26, FLUSH_MESSAGE_BYTES);
    char seq[16];
    int len = snprintf(seq, sizeof(seq), "%08d", i);
    memcpy(payload, seq, (size_t)len);
    cr_assert_eq(natsConnection_Publish(pub, "big", payload, FLUSH_MESSAGE_BYTES), NATS_OK);
  }
  cr_assert_eq(natsConnection_FlushTimeout(pub, 20000), NATS_OK);

  harness_signal(SIGTERM);

  char expected_header[64];
  snprintf(expected_header, sizeof(expected_header), "MSG big 1 %d", FLUSH_MESSAGE_BYTES);
  char *received = malloc(FLUSH_MESSAGE_BYTES + 2);
  cr_assert_not_null(received);
  for (int i = 0; i < FLUSH_MESSAGE_COUNT; i++) {
    raw_expect_line(&sub, expected_header, 10000);
    err = raw_read_exact(&sub, received, FLUSH_MESSAGE_BYTES + 2, 10000);
    cr_assert_eq(err, 0, "message %d: payload read failed: %s", i, strerror(-err));
    char seq[16];
    snprintf(seq, sizeof(seq), "%08d", i);
    cr_assert(memcmp(received, seq, 8) == 0, "message %d arrived out of order (%.8s)", i,
              received);
    cr_assert_eq(received[FLUSH_MESSAGE_BYTES - 1], 'a' + i % 26);
    cr_assert(memcmp(received + FLUSH_MESSAGE_BYTES, "\r\n", 2) == 0);
  }
  free(received);
  free(payload);
  raw_expect_closed(&sub, 10000);
  raw_close(&sub);

  int status = harness_wait_exit(10000);
  cr_assert(harness_clean_exit(status), "unclean exit after SIGTERM (status 0x%x)", status);
}

/* ---- the --signal command ---- */

/* Waits for the pid file to hold the server's PID. */
static void wait_for_pid_file(const char *path) {
  char expected[32];
  snprintf(expected, sizeof(expected), "%d", harness_server_pid());
  int64_t deadline = harness_now_ms() + CHANGE_TIMEOUT_MS;
  for (;;) {
    const char *text = read_text_file(path);
    if (text && strncmp(text, expected, strlen(expected)) == 0)
      return;
    cr_assert_lt(harness_now_ms(), deadline, "%s does not hold PID %s: %s", path, expected,
                 text ? text : "(missing)");
    sleep_ms(20);
  }
}

/* Runs `SERVER --signal COMMAND` and returns its wait status. */
static int run_signal_command(const char *command, char *output, size_t capacity) {
  char *argv[] = {(char *)harness_server_binary(), "--signal", (char *)command, NULL};
  return harness_run(argv, output, capacity, 10000);
}

HARNESS_TEST(signal_flag, reload_by_pid_file_then_quit_by_pid) {
  char pid_path[160];
  snprintf(pid_path, sizeof(pid_path), "%s/server.pid", harness_temp_dir());
  char flags[192];
  snprintf(flags, sizeof(flags), "-P %s", pid_path);
  char config[512];
  snprintf(config, sizeof(config), TWO_USERS_CONFIG, "old-pass");
  harness_start_with(config, flags);
  wait_for_pid_file(pid_path);
  natsConnection *bob = connect_as("bob", "bpass");

  write_two_users("new-pass");
  char command[256];
  snprintf(command, sizeof(command), "reload=%s", pid_path);
  char output[1024];
  int status = run_signal_command(command, output, sizeof(output));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--signal %s failed (0x%x): %s",
            command, status, output);
  cr_assert_str_eq(output, "");
  wait_until_accepted("alice", "new-pass");
  assert_rejected("alice", "old-pass");
  assert_round_trip(bob, "signal.reload");

  /* quit is SIGINT: a graceful stop. */
  snprintf(command, sizeof(command), "quit=%d", harness_server_pid());
  status = run_signal_command(command, output, sizeof(output));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--signal %s failed (0x%x): %s",
            command, status, output);
  cr_assert_str_eq(output, "");
  status = harness_wait_exit(10000);
  cr_assert(harness_clean_exit(status), "unclean exit after --signal quit (status 0x%x)", status);
}

/* An unknown command fails with nats-server's message; ldm enters
 * lame-duck mode, seen as refused connections. */
HARNESS_TEST(signal_flag, ldm_and_unknown_command) {
  harness_start_with(LAME_DUCK_CONFIG, NULL);
  char command[64];
  snprintf(command, sizeof(command), "bogus=%d", harness_server_pid());
  char output[1024];
  int status = run_signal_command(command, output, sizeof(output));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "--signal %s returned 0x%x: %s",
            command, status, output);
  cr_assert_not_null(strstr(output, "unknown signal \"bogus\""), "output: %s", output);

  snprintf(command, sizeof(command), "ldm=%d", harness_server_pid());
  status = run_signal_command(command, output, sizeof(output));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--signal %s failed (0x%x): %s",
            command, status, output);
  wait_until_refused();

  /* nats-server with no clients has exited already; shoal would wait out
   * lame_duck_duration, so stop it now. The server process is a zombie at
   * worst until harness_wait_exit() reaps it, so its PID is still ours. */
  kill(harness_server_pid(), SIGTERM);
  status = harness_wait_exit(CHANGE_TIMEOUT_MS);
  cr_assert(harness_clean_exit(status), "unclean exit in lame-duck mode (status 0x%x)", status);
}
