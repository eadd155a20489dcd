/* SPDX-License-Identifier: Apache-2.0 */
/* Service manager notifications of a live shoal-server. Owned by the
 * deploy work.
 *
 * Each test binds its own AF_UNIX datagram socket, starts the server named
 * by SHOAL_TEST_SERVER with NOTIFY_SOCKET naming that socket (and the words
 * of SHOAL_TEST_SERVER_ARGS), and reads the datagrams it sends, as systemd
 * would. Waits are bounded, and only the order and content of messages are
 * asserted, never their timing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVER_ARGS_MAX 64
#define MESSAGE_BYTES 4096
/* Bounds on every wait: generous, because the machine may be loaded. */
#define MESSAGE_TIMEOUT_MS 10000
#define STATUS_TIMEOUT_MS 20000
#define EXIT_TIMEOUT_MS 10000
/* The watchdog interval the tests set: pings are due every 500 ms. */
#define WATCHDOG_USEC_TEXT "1000000"
#define WATCHDOG_PINGS_EXPECTED 3
/* How long the no-ping tests listen, during which a watchdog set from
 * WATCHDOG_USEC_TEXT would ping about four times. */
#define NO_PING_LISTEN_MS 2000

struct notified {
  pid_t pid;
  int sock;              /* the test's end: bound, receives the datagrams */
  char address[108];     /* the NOTIFY_SOCKET value */
  char socket_dir[64];   /* directory of a path socket, or "" */
  int port;
  char log_path[64];
  int exit_status;       /* waitpid status once reaped, or -1 */
};

static struct notified current = {.pid = -1, .sock = -1, .exit_status = -1};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Binds 127.0.0.1:0 and returns the port the kernel chose. */
static int pick_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0, "socket() failed: %s", strerror(errno));
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  cr_assert(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "bind failed: %s",
            strerror(errno));
  cr_assert(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

/* Binds the receiving socket: an abstract name, or a path in a new
 * temporary directory. Fills current.address with the NOTIFY_SOCKET form. */
static void bind_notify_socket(bool abstract) {
  static int counter;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  socklen_t len;
  if (abstract) {
    snprintf(current.address, sizeof current.address, "@shoal-notify-test-%d-%d", (int)getpid(),
             counter++);
    size_t name_len = strlen(current.address);
    memcpy(addr.sun_path + 1, current.address + 1, name_len - 1);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len);
  } else {
    snprintf(current.socket_dir, sizeof current.socket_dir, "/tmp/shoal-notify-XXXXXX");
    cr_assert_not_null(mkdtemp(current.socket_dir), "mkdtemp failed: %s", strerror(errno));
    snprintf(current.address, sizeof current.address, "%s/notify", current.socket_dir);
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", current.address);
    len = (socklen_t)sizeof addr;
  }
  current.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert(current.sock >= 0, "socket(AF_UNIX) failed: %s", strerror(errno));
  cr_assert(bind(current.sock, (struct sockaddr *)&addr, len) == 0, "bind(%s) failed: %s",
            current.address, strerror(errno));
}

/* Runs in the child: sets the notification environment and executes the
 * server with its output in the log file. watchdog_pid is "self" for the
 * child's own PID, or NULL to leave WATCHDOG_PID unset. */
static void exec_server(char **argv, int log_fd, pid_t parent, const char *notify_socket,
                        const char *watchdog_usec, const char *watchdog_pid) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  close_range(3, ~0U, 0);

  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  if (notify_socket != NULL) setenv("NOTIFY_SOCKET", notify_socket, 1);
  if (watchdog_usec != NULL) setenv("WATCHDOG_USEC", watchdog_usec, 1);
  if (watchdog_pid != NULL) {
    char self[16];
    snprintf(self, sizeof self, "%d", (int)getpid());
    setenv("WATCHDOG_PID", strcmp(watchdog_pid, "self") == 0 ? self : watchdog_pid, 1);
  }
  execv(argv[0], argv);
  dprintf(2, "execv(%s) failed: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* Starts the server. notify_socket NULL means the address bound before. */
static void start_server(const char *notify_socket, const char *watchdog_usec,
                         const char *watchdog_pid) {
  const char *binary = getenv("SHOAL_TEST_SERVER");
  cr_assert(binary != NULL && binary[0] != '\0', "SHOAL_TEST_SERVER is not set");
  static char args[1024];
  const char *args_env = getenv("SHOAL_TEST_SERVER_ARGS");
  snprintf(args, sizeof args, "%s", args_env ? args_env : "");

  current.port = pick_free_port();
  static char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", current.port);
  char *argv[SERVER_ARGS_MAX] = {(char *)binary, "-a", "127.0.0.1", "-p", port_text};
  int argc = 5;
  char *save = NULL;
  for (char *word = strtok_r(args, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
    cr_assert(argc < SERVER_ARGS_MAX - 1, "SHOAL_TEST_SERVER_ARGS has too many words");
    argv[argc++] = word;
  }
  argv[argc] = NULL;

  snprintf(current.log_path, sizeof current.log_path, "/tmp/shoal-notify-log-XXXXXX");
  int log_fd = mkstemp(current.log_path);
  cr_assert(log_fd >= 0, "mkstemp failed: %s", strerror(errno));
  pid_t parent = getpid();
  current.pid = fork();
  cr_assert(current.pid >= 0, "fork failed: %s", strerror(errno));
  if (current.pid == 0) {
    exec_server(argv, log_fd, parent, notify_socket ? notify_socket : current.address,
                watchdog_usec, watchdog_pid);
  }
  close(log_fd);
  current.exit_status = -1;
}

static void print_log(void) {
  FILE *f = fopen(current.log_path, "r");
  if (f == NULL) return;
  char line[512];
  fprintf(stderr, "--- server log %s ---\n", current.log_path);
  for (int i = 0; i < 200 && fgets(line, sizeof line, f) != NULL; i++) fputs(line, stderr);
  fprintf(stderr, "--- end of server log ---\n");
  fclose(f);
}

/* Waits for the server to exit. Returns false after EXIT_TIMEOUT_MS. */
static bool wait_exit(void) {
  for (int64_t deadline = now_ms() + EXIT_TIMEOUT_MS; now_ms() < deadline;) {
    int status;
    if (waitpid(current.pid, &status, WNOHANG) == current.pid) {
      current.exit_status = status;
      return true;
    }
    struct timespec ten_ms = {.tv_nsec = 10 * 1000000};
    nanosleep(&ten_ms, NULL);
  }
  return false;
}

/* Criterion .fini: kills a server that a failed test left running and
 * removes the sockets and the log. */
static void cleanup(void) {
  if (current.pid > 0 && current.exit_status == -1) {
    print_log();
    kill(current.pid, SIGKILL);
    waitpid(current.pid, NULL, 0);
  }
  if (current.sock >= 0) close(current.sock);
  if (current.socket_dir[0] != '\0') {
    unlink(current.address);
    rmdir(current.socket_dir);
  }
  if (current.log_path[0] != '\0' && current.exit_status == 0) unlink(current.log_path);
}

/* Receives the next datagram into out (NUL-terminated). Returns its length
 * or -ETIMEDOUT. */
static int next_message(char *out, size_t size, int timeout_ms) {
  struct pollfd p = {.fd = current.sock, .events = POLLIN};
  int ready = poll(&p, 1, timeout_ms);
  if (ready <= 0) return -ETIMEDOUT;
  ssize_t n = recv(current.sock, out, size - 1, 0);
  cr_assert(n >= 0, "recv failed: %s", strerror(errno));
  out[n] = '\0';
  return (int)n;
}

/* Copies the value of the line "name=value" of message into value and
 * returns value, or returns NULL when no line has that name. */
static const char *field(const char *message, const char *name, char *value, size_t size) {
  size_t name_len = strlen(name);
  for (const char *line = message; line != NULL && *line != '\0';) {
    const char *end = strchr(line, '\n');
    size_t line_len = end ? (size_t)(end - line) : strlen(line);
    if (line_len > name_len && strncmp(line, name, name_len) == 0 && line[name_len] == '=') {
      snprintf(value, size, "%.*s", (int)(line_len - name_len - 1), line + name_len + 1);
      return value;
    }
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

static bool has_field(const char *message, const char *name, const char *expected) {
  char value[MESSAGE_BYTES];
  return field(message, name, value, sizeof value) != NULL && strcmp(value, expected) == 0;
}

/* Receives messages until one is not a lone WATCHDOG=1 ping or STATUS=
 * refresh, and fails the test on timeout. */
static void next_state(char *out, size_t size, const char *waiting_for) {
  for (;;) {
    int n = next_message(out, size, MESSAGE_TIMEOUT_MS);
    if (n == -ETIMEDOUT) print_log();
    cr_assert(n >= 0, "no notification within %d ms while waiting for %s", MESSAGE_TIMEOUT_MS,
              waiting_for);
    if (strcmp(out, "WATCHDOG=1") == 0) continue;
    if (strncmp(out, "STATUS=", 7) == 0 && strchr(out, '\n') == NULL) continue;
    return;
  }
}

/* Connects to the server and checks that it sends INFO first. */
static void expect_info(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)current.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0,
            "connect to 127.0.0.1:%d after READY=1 failed: %s", current.port, strerror(errno));
  struct pollfd p = {.fd = fd, .events = POLLIN};
  cr_assert(poll(&p, 1, MESSAGE_TIMEOUT_MS) == 1, "no INFO after READY=1");
  char text[5];
  cr_assert(recv(fd, text, sizeof text, MSG_WAITALL) == (ssize_t)sizeof text);
  cr_assert(memcmp(text, "INFO ", 5) == 0, "the server did not start with INFO");
  close(fd);
}

static void stop_and_expect_stopping(void) {
  char message[MESSAGE_BYTES];
  cr_assert(kill(current.pid, SIGTERM) == 0);
  next_state(message, sizeof message, "STOPPING=1");
  cr_assert(has_field(message, "STOPPING", "1"), "expected STOPPING=1, got \"%s\"", message);
  cr_assert(field(message, "STATUS", (char[256]){0}, 256) != NULL,
            "STOPPING=1 came without STATUS=: \"%s\"", message);
  cr_assert(wait_exit(), "the server did not exit within %d ms of SIGTERM", EXIT_TIMEOUT_MS);
  cr_assert(WIFEXITED(current.exit_status) && WEXITSTATUS(current.exit_status) == 0,
            "the server did not exit with status 0 (wait status %d)", current.exit_status);

  /* Nothing may follow STOPPING=1, a watchdog ping least of all. */
  int n = next_message(message, sizeof message, 0);
  cr_assert(n == -ETIMEDOUT, "a notification followed STOPPING=1: \"%s\"", message);
}

static void expect_ready(char *message, size_t size) {
  next_state(message, size, "READY=1");
  cr_assert(has_field(message, "READY", "1"), "the first notification is not READY=1: \"%s\"",
            message);
}

TestSuite(notify, .fini = cleanup, .timeout = 90);

Test(notify, lifecycle_messages_in_order) {
  bind_notify_socket(true);
  start_server(NULL, WATCHDOG_USEC_TEXT, "self");
  char message[MESSAGE_BYTES];

  /* READY=1 comes first, before any ping, with the summary. */
  int n = next_message(message, sizeof message, MESSAGE_TIMEOUT_MS);
  cr_assert(n > 0, "no READY=1 within %d ms", MESSAGE_TIMEOUT_MS);
  cr_assert(has_field(message, "READY", "1"), "the first notification is not READY=1: \"%s\"",
            message);
  char status[MESSAGE_BYTES];
  cr_assert_not_null(field(message, "STATUS", status, sizeof status), "READY=1 without STATUS=");
  char where[64];
  snprintf(where, sizeof where, "127.0.0.1:%d", current.port);
  cr_assert(strstr(status, where) != NULL, "STATUS=%s does not name %s", status, where);
  cr_assert(strstr(status, "0 open") != NULL, "STATUS=%s does not count 0 connections", status);
  expect_info();

  /* Watchdog pings follow, while nothing else happens. */
  int pings = 0;
  int64_t first_ping_ms = 0, last_ping_ms = 0;
  while (pings < WATCHDOG_PINGS_EXPECTED) {
    n = next_message(message, sizeof message, MESSAGE_TIMEOUT_MS);
    cr_assert(n > 0, "only %d WATCHDOG=1 within %d ms", pings, MESSAGE_TIMEOUT_MS);
    if (strncmp(message, "STATUS=", 7) == 0) continue;
    cr_assert_str_eq(message, "WATCHDOG=1");
    last_ping_ms = now_ms();
    if (pings++ == 0) first_ping_ms = last_ping_ms;
  }
  cr_log_info("%d pings, %" PRId64 " ms apart on average (WATCHDOG_USEC=%s)", pings,
              (last_ping_ms - first_ping_ms) / (pings - 1), WATCHDOG_USEC_TEXT);

  /* SIGHUP: RELOADING=1 with the current CLOCK_MONOTONIC, then READY=1. */
  uint64_t before_usec = now_usec();
  cr_assert(kill(current.pid, SIGHUP) == 0);
  next_state(message, sizeof message, "RELOADING=1");
  uint64_t after_usec = now_usec();
  cr_assert(has_field(message, "RELOADING", "1"), "expected RELOADING=1, got \"%s\"", message);
  char value[64];
  cr_assert_not_null(field(message, "MONOTONIC_USEC", value, sizeof value),
                     "RELOADING=1 without MONOTONIC_USEC=: \"%s\"", message);
  uint64_t stamp = strtoull(value, NULL, 10);
  cr_assert(stamp >= before_usec && stamp <= after_usec,
            "MONOTONIC_USEC=%" PRIu64 " is not between %" PRIu64 " and %" PRIu64, stamp,
            before_usec, after_usec);
  next_state(message, sizeof message, "READY=1 after the reload");
  cr_assert(has_field(message, "READY", "1"), "expected READY=1 after RELOADING=1, got \"%s\"",
            message);
  cr_assert_not_null(field(message, "STATUS", status, sizeof status));

  stop_and_expect_stopping();
}

Test(notify, path_socket_without_watchdog) {
  bind_notify_socket(false);
  start_server(NULL, NULL, NULL);
  char message[MESSAGE_BYTES];
  expect_ready(message, sizeof message);
  expect_info();

  /* No WATCHDOG_USEC, so no pings. */
  int64_t until = now_ms() + NO_PING_LISTEN_MS;
  for (int64_t left = NO_PING_LISTEN_MS; left > 0; left = until - now_ms()) {
    if (next_message(message, sizeof message, (int)left) < 0) break;
    cr_assert(strcmp(message, "WATCHDOG=1") != 0, "a ping came without WATCHDOG_USEC");
  }
  stop_and_expect_stopping();
}

Test(notify, watchdog_for_other_pid_ignored) {
  bind_notify_socket(true);
  char parent[16];
  snprintf(parent, sizeof parent, "%d", (int)getpid());
  start_server(NULL, WATCHDOG_USEC_TEXT, parent);
  char message[MESSAGE_BYTES];
  expect_ready(message, sizeof message);

  int64_t until = now_ms() + NO_PING_LISTEN_MS;
  for (int64_t left = NO_PING_LISTEN_MS; left > 0; left = until - now_ms()) {
    if (next_message(message, sizeof message, (int)left) < 0) break;
    cr_assert(strcmp(message, "WATCHDOG=1") != 0,
              "a ping came although WATCHDOG_PID names another process");
  }
  stop_and_expect_stopping();
}

/* Waits for a STATUS= line that contains text, bounded by
 * STATUS_TIMEOUT_MS. Returns false on timeout. */
static bool wait_status_with(const char *text) {
  char message[MESSAGE_BYTES], status[MESSAGE_BYTES];
  for (int64_t deadline = now_ms() + STATUS_TIMEOUT_MS; now_ms() < deadline;) {
    if (next_message(message, sizeof message, (int)(deadline - now_ms())) < 0) return false;
    if (field(message, "STATUS", status, sizeof status) != NULL && strstr(status, text) != NULL)
      return true;
  }
  return false;
}

Test(notify, status_counts_connections) {
  bind_notify_socket(true);
  start_server(NULL, NULL, NULL);
  char message[MESSAGE_BYTES];
  expect_ready(message, sizeof message);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)current.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
  const char *hello = "CONNECT {\"verbose\":false}\r\nPING\r\n";
  cr_assert(send(fd, hello, strlen(hello), MSG_NOSIGNAL) == (ssize_t)strlen(hello));
  cr_assert(wait_status_with("1 open"), "no STATUS= with 1 open connection within %d ms",
            STATUS_TIMEOUT_MS);

  close(fd);
  cr_assert(wait_status_with("0 open"), "no STATUS= with 0 open connections within %d ms",
            STATUS_TIMEOUT_MS);
  stop_and_expect_stopping();
}

Test(notify, unusable_socket_still_serves) {
  /* A relative path is no NOTIFY_SOCKET form: the server logs it and runs. */
  start_server("relative/notify", NULL, NULL);
  bool served = false;
  for (int64_t deadline = now_ms() + MESSAGE_TIMEOUT_MS; !served && now_ms() < deadline;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)current.port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    served = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    if (!served) {
      struct timespec ten_ms = {.tv_nsec = 10 * 1000000};
      nanosleep(&ten_ms, NULL);
    }
  }
  cr_assert(served, "the server did not accept connections with NOTIFY_SOCKET=relative/notify");
  expect_info();

  cr_assert(kill(current.pid, SIGTERM) == 0);
  cr_assert(wait_exit());
  cr_assert(WIFEXITED(current.exit_status) && WEXITSTATUS(current.exit_status) == 0);
  FILE *f = fopen(current.log_path, "r");
  cr_assert_not_null(f);
  char line[512];
  bool warned = false;
  while (!warned && fgets(line, sizeof line, f) != NULL) warned = strstr(line, "NOTIFY_SOCKET") != NULL;
  fclose(f);
  cr_assert(warned, "the log does not mention the unusable NOTIFY_SOCKET");
}
