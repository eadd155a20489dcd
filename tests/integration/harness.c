/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test harness: the server process under test, libnats
 * connections to it and a raw protocol client. Owned by the integration
 * test suite. harness.h states the contracts. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVER_ARGS_MAX 64
#define SERVER_READY_TIMEOUT_MS 5000
#define SERVER_STOP_TIMEOUT_MS 5000
#define CONNECTIONS_MAX 512
#define RAW_BUFFER_BYTES (256 * 1024)
#define LOG_TAIL_BYTES 4096

struct server {
  pid_t pid;
  int port;
  bool exited; /* reaped by waitpid() */
  int wait_status;
  char url[64];
  char log_path[64];
  const char *binary;
  char temp_dir[64];     /* empty until harness_temp_dir() creates it */
  char config_path[128]; /* empty unless started with a configuration */
  bool exit_expected;    /* harness_wait_exit() saw the server exit */
};

static struct server server = {.pid = -1};
static natsConnection *connections[CONNECTIONS_MAX];
static int connection_count;

int64_t harness_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static int loopback_socket(int port, int rcvbuf_bytes) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (rcvbuf_bytes > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes));

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

/* Binds 127.0.0.1:0 and returns the port the kernel chose. Another process
 * could take the port before the server binds it, which is unlikely enough
 * for tests. */
static int pick_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0, "socket() failed: %s", strerror(errno));

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  cr_assert(bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "bind(127.0.0.1:0) failed: %s",
            strerror(errno));
  cr_assert(getsockname(fd, (struct sockaddr *)&addr, &len) == 0, "getsockname() failed: %s",
            strerror(errno));
  close(fd);
  return ntohs(addr.sin_port);
}

static bool is_reference_server(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  return strcmp(base, "nats-server") == 0;
}

/* Appends the words of args, split on spaces in place, to argv. nats-server
 * does not know shoal's --shards and --backend flags, so those are dropped
 * with their values when the binary is nats-server. */
static void append_words(char **argv, int *argc, const char *binary, char *args) {
  bool reference = is_reference_server(binary);
  char *save = NULL;
  for (char *word = strtok_r(args, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
    if (reference && (strcmp(word, "--shards") == 0 || strcmp(word, "--backend") == 0)) {
      strtok_r(NULL, " ", &save);
      continue;
    }
    cr_assert(*argc < SERVER_ARGS_MAX - 1, "the server command line has too many words");
    argv[(*argc)++] = word;
  }
}

/* Fills argv with the server command line: the address and port, the words
 * of args, then `-c config_path` when config_path is not NULL and the words
 * of extra_args when that is not NULL. */
static void build_argv(char **argv, const char *binary, char *args, char *port_text,
                       const char *config_path, char *extra_args) {
  int argc = 0;
  argv[argc++] = (char *)binary;
  argv[argc++] = "-a";
  argv[argc++] = "127.0.0.1";
  argv[argc++] = "-p";
  argv[argc++] = port_text;
  append_words(argv, &argc, binary, args);
  if (config_path) {
    cr_assert(argc < SERVER_ARGS_MAX - 3, "the server command line has too many words");
    argv[argc++] = "-c";
    argv[argc++] = (char *)config_path;
  }
  if (extra_args)
    append_words(argv, &argc, binary, extra_args);
  argv[argc] = NULL;
}

/* Runs in the forked child: dies with the test process, sends output to the
 * log file and closes every descriptor inherited from the test runner. */
static void exec_server(char **argv, int log_fd, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  close_range(3, ~0U, 0);
  execv(argv[0], argv);
  dprintf(2, "execv(%s) failed: %s\n", argv[0], strerror(errno));
  _exit(127);
}

static void print_log_tail(void) {
  int fd = open(server.log_path, O_RDONLY);
  if (fd < 0)
    return;
  off_t size = lseek(fd, 0, SEEK_END);
  off_t from = size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0;
  char text[LOG_TAIL_BYTES + 1];
  ssize_t n = pread(fd, text, LOG_TAIL_BYTES, from);
  close(fd);
  if (n <= 0)
    return;
  text[n] = '\0';
  fprintf(stderr, "--- server log %s (last %zd bytes) ---\n%s\n--- end of server log ---\n",
          server.log_path, n, text);
}

static bool server_reaped(void) {
  if (server.exited)
    return true;
  int status;
  if (waitpid(server.pid, &status, WNOHANG) == server.pid) {
    server.exited = true;
    server.wait_status = status;
  }
  return server.exited;
}

/* Returns true once a TCP client connected to the server receives "INFO ". */
static bool server_sends_info(void) {
  struct raw_conn rc;
  if (raw_connect(&rc, 0) != 0)
    return false;
  raw_close(&rc);
  return true;
}

static const char *server_binary_from_env(void) {
  const char *binary = getenv("SHOAL_TEST_SERVER");
  if (!binary || !*binary)
    binary = HARNESS_DEFAULT_SERVER;
  return binary;
}

/* Starts the server with an optional configuration file and extra words. */
static void start_server(const char *config_text, const char *extra_args) {
  const char *binary = server_binary_from_env();
  const char *args_env = getenv("SHOAL_TEST_SERVER_ARGS");
  static char args[1024];
  snprintf(args, sizeof(args), "%s", args_env ? args_env : "");
  static char extra[1024];
  if (extra_args) {
    cr_assert_lt(strlen(extra_args), sizeof(extra), "extra_args is too long");
    snprintf(extra, sizeof(extra), "%s", extra_args);
  }

  server.binary = binary;
  if (config_text)
    harness_write_config(config_text);
  server.port = pick_free_port();
  snprintf(server.url, sizeof(server.url), "nats://127.0.0.1:%d", server.port);
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%d", server.port);
  char *argv[SERVER_ARGS_MAX];
  build_argv(argv, binary, args, port_text, config_text ? server.config_path : NULL,
             extra_args ? extra : NULL);

  snprintf(server.log_path, sizeof(server.log_path), "/tmp/shoal-integ-XXXXXX");
  int log_fd = mkstemp(server.log_path);
  cr_assert(log_fd >= 0, "mkstemp(%s) failed: %s", server.log_path, strerror(errno));

  pid_t parent = getpid();
  server.exited = false;
  server.pid = fork();
  cr_assert(server.pid >= 0, "fork() failed: %s", strerror(errno));
  if (server.pid == 0)
    exec_server(argv, log_fd, parent);
  close(log_fd);

  int64_t deadline = harness_now_ms() + SERVER_READY_TIMEOUT_MS;
  while (!server_sends_info()) {
    if (server_reaped()) {
      print_log_tail();
      cr_assert_fail("server %s exited during start-up (wait status 0x%x)", binary,
                     server.wait_status);
    }
    if (harness_now_ms() > deadline) {
      print_log_tail();
      cr_assert_fail("server %s did not accept connections on port %d within %d ms", binary,
                     server.port, SERVER_READY_TIMEOUT_MS);
    }
    sleep_ms(10);
  }
}

void harness_start(void) {
  start_server(NULL, NULL);
}

void harness_start_with(const char *config_text, const char *extra_args) {
  start_server(config_text, extra_args);
}

static void destroy_connections(void) {
  for (int i = 0; i < connection_count; i++) {
    if (connections[i]) {
      natsConnection_Destroy(connections[i]);
      connections[i] = NULL;
    }
  }
  connection_count = 0;
}

/* Stops the server and returns a description of what went wrong, or NULL
 * after a clean stop: exit status 0 or death by the SIGTERM sent here.
 * nats-server 2.9.10 exits with status 1 after SIGTERM, which counts as
 * clean for the reference server only. */
static const char *stop_server(char *problem, size_t capacity) {
  destroy_connections();
  if (server.pid <= 0)
    return NULL;

  bool died_before = server_reaped();
  if (!died_before) {
    kill(server.pid, SIGTERM);
    int64_t deadline = harness_now_ms() + SERVER_STOP_TIMEOUT_MS;
    while (!server_reaped() && harness_now_ms() < deadline)
      sleep_ms(5);
  }
  bool killed = false;
  if (!server_reaped()) {
    kill(server.pid, SIGKILL);
    waitpid(server.pid, &server.wait_status, 0);
    server.exited = true;
    killed = true;
  }
  server.pid = -1;

  if (died_before && server.exit_expected) {
    /* harness_wait_exit() returned the status to the test, which judges it. */
    server.exit_expected = false;
    if (getenv("SHOAL_TEST_KEEP_LOGS"))
      fprintf(stderr, "server log kept in %s\n", server.log_path);
    else
      unlink(server.log_path);
    return NULL;
  }

  int status = server.wait_status;
  int ok_exit = is_reference_server(server.binary) ? 1 : 0;
  bool clean_status = (WIFEXITED(status) && (WEXITSTATUS(status) == 0 ||
                                             WEXITSTATUS(status) == ok_exit)) ||
                      (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  const char *result = NULL;
  if (died_before)
    snprintf(problem, capacity, "server died during the test (%s %d)",
             WIFSIGNALED(status) ? "signal" : "exit status",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  else if (killed)
    snprintf(problem, capacity, "server did not stop within %d ms of SIGTERM",
             SERVER_STOP_TIMEOUT_MS);
  else if (!clean_status)
    snprintf(problem, capacity, "server stopped uncleanly after SIGTERM (%s %d)",
             WIFSIGNALED(status) ? "signal" : "exit status",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  if (died_before || killed || !clean_status) {
    print_log_tail();
    result = problem;
  }
  if (result || getenv("SHOAL_TEST_KEEP_LOGS"))
    fprintf(stderr, "server log kept in %s\n", server.log_path);
  else
    unlink(server.log_path);
  return result;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  return remove(path);
}

/* Deletes harness_temp_dir() and everything in it, once the server is gone. */
static void remove_temp_dir(void) {
  if (server.temp_dir[0] == '\0')
    return;
  if (nftw(server.temp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "removing %s failed: %s\n", server.temp_dir, strerror(errno));
  server.temp_dir[0] = '\0';
  server.config_path[0] = '\0';
}

void harness_finish(void) {
  char problem[256];
  const char *failure = stop_server(problem, sizeof(problem));
  remove_temp_dir();
  cr_assert_null(failure, "%s", failure);
}

void harness_stop(void) {
  char problem[256];
  const char *failure = stop_server(problem, sizeof(problem));
  remove_temp_dir();
  if (failure)
    fprintf(stderr, "%s\n", failure);
}

int harness_port(void) {
  return server.port;
}

const char *harness_url(void) {
  return server.url;
}

natsOptions *harness_options(void) {
  natsOptions *opts = NULL;
  cr_assert_eq(natsOptions_Create(&opts), NATS_OK);
  cr_assert_eq(natsOptions_SetURL(opts, server.url), NATS_OK);
  cr_assert_eq(natsOptions_SetAllowReconnect(opts, false), NATS_OK);
  cr_assert_eq(natsOptions_SetTimeout(opts, 5000), NATS_OK);
  return opts;
}

natsStatus harness_try_connect(natsOptions *opts, natsConnection **out) {
  int slot = 0;
  while (slot < connection_count && connections[slot])
    slot++;
  cr_assert(slot < CONNECTIONS_MAX, "more than %d connections open in one test", CONNECTIONS_MAX);
  natsOptions *own = opts ? NULL : harness_options();
  natsConnection *nc = NULL;
  natsStatus s = natsConnection_Connect(&nc, opts ? opts : own);
  natsOptions_Destroy(own);
  if (s != NATS_OK) {
    natsConnection_Destroy(nc);
    return s;
  }
  connections[slot] = nc;
  if (slot == connection_count)
    connection_count++;
  *out = nc;
  return NATS_OK;
}

natsConnection *harness_connect_opts(natsOptions *opts) {
  natsConnection *nc = NULL;
  natsStatus s = harness_try_connect(opts, &nc);
  cr_assert_eq(s, NATS_OK, "connect to %s failed: %s (%s)", server.url, natsStatus_GetText(s),
               nats_GetLastError(NULL));
  return nc;
}

natsConnection *harness_connect(void) {
  return harness_connect_opts(NULL);
}

void harness_disconnect(natsConnection *nc) {
  for (int i = 0; i < connection_count; i++) {
    if (connections[i] == nc)
      connections[i] = NULL;
  }
  natsConnection_Close(nc);
  natsConnection_Destroy(nc);
}

natsMsg *harness_next_msg(natsSubscription *sub) {
  natsMsg *msg = NULL;
  natsStatus s = natsSubscription_NextMsg(&msg, sub, 5000);
  cr_assert_eq(s, NATS_OK, "no message within 5 s: %s", natsStatus_GetText(s));
  return msg;
}

/* Connects and reads the INFO line into info. */
static int raw_connect_reading_info(struct raw_conn *rc, int rcvbuf_bytes, char *info,
                                    size_t capacity) {
  memset(rc, 0, sizeof(*rc));
  rc->fd = loopback_socket(server.port, rcvbuf_bytes);
  if (rc->fd < 0)
    return rc->fd;
  rc->capacity = RAW_BUFFER_BYTES;
  rc->buf = malloc(rc->capacity);
  if (!rc->buf) {
    close(rc->fd);
    return -ENOMEM;
  }

  int n = raw_read_line(rc, info, capacity, 2000);
  if (n < 0 || strncmp(info, "INFO ", 5) != 0) {
    raw_close(rc);
    return n < 0 ? n : -EPROTO;
  }
  return 0;
}

int raw_connect(struct raw_conn *rc, int rcvbuf_bytes) {
  char line[4096];
  return raw_connect_reading_info(rc, rcvbuf_bytes, line, sizeof(line));
}

int raw_connect_info(struct raw_conn *rc, char *info, size_t capacity) {
  return raw_connect_reading_info(rc, 0, info, capacity);
}

void raw_connect_ready(struct raw_conn *rc) {
  int err = raw_connect(rc, 0);
  cr_assert_eq(err, 0, "raw connect to port %d failed: %s", server.port, strerror(-err));
  err = raw_send_str(rc, "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n");
  cr_assert_eq(err, 0, "sending CONNECT failed: %s", strerror(-err));
}

int raw_send(struct raw_conn *rc, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = send(rc->fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int raw_send_str(struct raw_conn *rc, const char *text) {
  return raw_send(rc, text, strlen(text));
}

/* Receives more bytes into the buffer, compacting it first. Returns the byte
 * count, -EPIPE on EOF, -ETIMEDOUT when nothing arrived by deadline_ms. */
static int raw_fill(struct raw_conn *rc, int64_t deadline_ms) {
  if (rc->start > 0) {
    memmove(rc->buf, rc->buf + rc->start, rc->end - rc->start);
    rc->end -= rc->start;
    rc->start = 0;
  }
  if (rc->end == rc->capacity)
    return -EMSGSIZE;

  for (;;) {
    int64_t left = deadline_ms - harness_now_ms();
    if (left < 0)
      return -ETIMEDOUT;
    struct pollfd pfd = {.fd = rc->fd, .events = POLLIN};
    int ready = poll(&pfd, 1, (int)left);
    if (ready < 0 && errno != EINTR)
      return -errno;
    if (ready <= 0)
      continue;
    ssize_t n = recv(rc->fd, rc->buf + rc->end, rc->capacity - rc->end, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EPIPE;
    rc->end += (size_t)n;
    return (int)n;
  }
}

int raw_read_line(struct raw_conn *rc, char *line, size_t capacity, int timeout_ms) {
  int64_t deadline = harness_now_ms() + timeout_ms;
  for (;;) {
    char *begin = rc->buf + rc->start;
    char *crlf = memmem(begin, rc->end - rc->start, "\r\n", 2);
    if (crlf) {
      size_t len = (size_t)(crlf - begin);
      if (len + 1 > capacity)
        return -EMSGSIZE;
      memcpy(line, begin, len);
      line[len] = '\0';
      rc->start += len + 2;
      return (int)len;
    }
    int n = raw_fill(rc, deadline);
    if (n < 0)
      return n;
  }
}

int raw_read_exact(struct raw_conn *rc, void *out, size_t len, int timeout_ms) {
  int64_t deadline = harness_now_ms() + timeout_ms;
  char *dst = out;
  while (len > 0) {
    size_t have = rc->end - rc->start;
    if (have > 0) {
      size_t take = have < len ? have : len;
      memcpy(dst, rc->buf + rc->start, take);
      rc->start += take;
      dst += take;
      len -= take;
      continue;
    }
    int n = raw_fill(rc, deadline);
    if (n < 0)
      return n;
  }
  return 0;
}

int raw_wait_closed(struct raw_conn *rc, int timeout_ms, size_t *discarded) {
  int64_t deadline = harness_now_ms() + timeout_ms;
  size_t total = rc->end - rc->start;
  rc->start = rc->end = 0;
  int result;
  for (;;) {
    int n = raw_fill(rc, deadline);
    if (n < 0) {
      result = n == -EPIPE ? 0 : n;
      break;
    }
    total += (size_t)n;
    rc->start = rc->end = 0;
  }
  if (discarded)
    *discarded = total;
  return result;
}

void raw_close(struct raw_conn *rc) {
  if (rc->fd >= 0)
    close(rc->fd);
  rc->fd = -1;
  free(rc->buf);
  rc->buf = NULL;
}

const char *harness_temp_dir(void) {
  if (server.temp_dir[0] == '\0') {
    snprintf(server.temp_dir, sizeof(server.temp_dir), "/tmp/shoal-integ-dir-XXXXXX");
    cr_assert_not_null(mkdtemp(server.temp_dir), "mkdtemp(%s) failed: %s", server.temp_dir,
                       strerror(errno));
  }
  return server.temp_dir;
}

const char *harness_config_path(void) {
  if (server.config_path[0] == '\0')
    snprintf(server.config_path, sizeof(server.config_path), "%s/server.conf",
             harness_temp_dir());
  return server.config_path;
}

void harness_write_config(const char *config_text) {
  const char *path = harness_config_path();
  char next_path[160];
  snprintf(next_path, sizeof(next_path), "%s.next", path);
  FILE *f = fopen(next_path, "w");
  cr_assert_not_null(f, "fopen(%s) failed: %s", next_path, strerror(errno));
  size_t len = strlen(config_text);
  bool written = fwrite(config_text, 1, len, f) == len;
  cr_assert(fclose(f) == 0 && written, "writing %s failed: %s", next_path, strerror(errno));
  cr_assert_eq(rename(next_path, path), 0, "rename(%s, %s) failed: %s", next_path, path,
               strerror(errno));
}

const char *harness_server_binary(void) {
  return server.binary ? server.binary : server_binary_from_env();
}

bool harness_is_reference(void) {
  return is_reference_server(harness_server_binary());
}

int harness_server_pid(void) {
  return server.pid;
}

void harness_signal(int sig) {
  cr_assert(server.pid > 0 && !server_reaped(), "cannot send signal %d: the server has exited",
            sig);
  cr_assert_eq(kill(server.pid, sig), 0, "kill(%d, %d) failed: %s", server.pid, sig,
               strerror(errno));
}

int harness_wait_exit(int timeout_ms) {
  cr_assert(server.pid > 0, "no server was started");
  int64_t deadline = harness_now_ms() + timeout_ms;
  while (!server_reaped()) {
    if (harness_now_ms() > deadline) {
      print_log_tail();
      cr_assert_fail("server %s did not exit within %d ms", server.binary, timeout_ms);
    }
    sleep_ms(10);
  }
  server.exit_expected = true;
  return server.wait_status;
}

bool harness_clean_exit(int status) {
  int ok_exit = harness_is_reference() ? 1 : 0;
  if (WIFEXITED(status))
    return WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == ok_exit;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
}

/* True when one line of text contains needle and, when it is not NULL, also. */
static bool some_line_contains(char *text, const char *needle, const char *also) {
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strstr(line, needle) && (!also || strstr(line, also)))
      return true;
  }
  return false;
}

bool harness_wait_log(const char *text, const char *also_text, int timeout_ms) {
  int64_t deadline = harness_now_ms() + timeout_ms;
  for (;;) {
    FILE *f = fopen(server.log_path, "r");
    if (f) {
      static char content[1 << 20];
      size_t n = fread(content, 1, sizeof(content) - 1, f);
      fclose(f);
      content[n] = '\0';
      if (some_line_contains(content, text, also_text))
        return true;
    }
    if (harness_now_ms() > deadline)
      return false;
    sleep_ms(20);
  }
}

/* Reads the child's output from fd into output until EOF or deadline_ms. */
static void collect_output(int fd, char *output, size_t capacity, int64_t deadline_ms) {
  size_t used = 0;
  for (;;) {
    int64_t left = deadline_ms - harness_now_ms();
    if (left <= 0)
      break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready = poll(&pfd, 1, (int)left);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready <= 0)
      break;
    char chunk[1024];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    size_t take = (size_t)n;
    if (capacity > 0 && take > capacity - 1 - used)
      take = capacity - 1 - used;
    memcpy(output + used, chunk, take);
    used += take;
  }
  if (capacity > 0)
    output[used] = '\0';
}

int harness_run(char *const argv[], char *output, size_t capacity, int timeout_ms) {
  int pipe_fds[2];
  cr_assert_eq(pipe2(pipe_fds, O_CLOEXEC), 0, "pipe2() failed: %s", strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork() failed: %s", strerror(errno));
  if (pid == 0)
    exec_server((char **)argv, pipe_fds[1], parent);
  close(pipe_fds[1]);

  int64_t deadline = harness_now_ms() + timeout_ms;
  collect_output(pipe_fds[0], output, capacity, deadline);
  close(pipe_fds[0]);

  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (harness_now_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      cr_assert_fail("%s did not exit within %d ms; output: %s", argv[0], timeout_ms, output);
    }
    sleep_ms(10);
  }
  return status;
}

void raw_connect_fields(struct raw_conn *rc, const char *fields) {
  int err = raw_connect(rc, 0);
  cr_assert_eq(err, 0, "raw connect to port %d failed: %s", server.port, strerror(-err));
  char connect[1024];
  snprintf(connect, sizeof(connect),
           "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":true%s%s}"
           "\r\nPING\r\n",
           fields[0] ? "," : "", fields);
  err = raw_send_str(rc, connect);
  cr_assert_eq(err, 0, "sending CONNECT failed: %s", strerror(-err));
  raw_expect_line(rc, "PONG", 5000);
}

void raw_expect_line(struct raw_conn *rc, const char *expected, int timeout_ms) {
  char line[4096];
  for (;;) {
    int n = raw_read_line(rc, line, sizeof(line), timeout_ms);
    cr_assert_geq(n, 0, "expected \"%s\", read failed: %s", expected, strerror(-n));
    if (strcmp(line, "PING") != 0)
      break;
    raw_send_str(rc, "PONG\r\n");
  }
  cr_assert_str_eq(line, expected);
}

void raw_expect_closed(struct raw_conn *rc, int timeout_ms) {
  int err = raw_wait_closed(rc, timeout_ms, NULL);
  cr_assert(err == 0 || err == -ECONNRESET, "the server did not close the connection: %s",
            strerror(-err));
}

void harness_errors_init(struct harness_errors *errors) {
  memset(errors, 0, sizeof(*errors));
  pthread_mutex_init(&errors->lock, NULL);
  pthread_cond_init(&errors->changed, NULL);
}

void harness_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure) {
  (void)sub;
  struct harness_errors *errors = closure;
  /* libnats sets the callback thread's last error to this error's text
   * before it calls the handler; the connection's copy may already hold a
   * later error. */
  natsStatus status = NATS_OK;
  const char *text = nats_GetLastError(&status);
  if (!text || !*text)
    natsConnection_GetLastError(nc, &text);

  pthread_mutex_lock(&errors->lock);
  if (errors->count < HARNESS_ERRORS_MAX) {
    errors->status[errors->count] = err;
    snprintf(errors->text[errors->count], HARNESS_ERROR_TEXT_BYTES, "%s", text ? text : "");
    errors->count++;
  }
  pthread_cond_broadcast(&errors->changed);
  pthread_mutex_unlock(&errors->lock);
}

void harness_wait_errors(struct harness_errors *errors, int count) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  pthread_mutex_lock(&errors->lock);
  while (errors->count < count) {
    if (pthread_cond_timedwait(&errors->changed, &errors->lock, &deadline) == ETIMEDOUT)
      break;
  }
  int seen = errors->count;
  pthread_mutex_unlock(&errors->lock);
  cr_assert_geq(seen, count, "expected %d asynchronous errors within 5 s, got %d", count, seen);
}

int harness_error_count(struct harness_errors *errors) {
  pthread_mutex_lock(&errors->lock);
  int count = errors->count;
  pthread_mutex_unlock(&errors->lock);
  return count;
}
