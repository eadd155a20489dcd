/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the soak, resource limit and start/stop tests. Owned
 * by the robustness tests. soak_util.h states the contracts. */
#include "soak_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVER_ARGS_MAX 64
#define SERVER_READY_TIMEOUT_MS 10000
#define SERVER_STOP_TIMEOUT_MS 10000
#define LOG_TAIL_BYTES 4096

int64_t soak_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void soak_sleep_ms(int ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

uint64_t soak_rand(uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static const char *server_binary(void)
{
  const char *binary = getenv("SHOAL_TEST_SERVER");
  return binary != NULL && *binary != '\0' ? binary : "/usr/sbin/nats-server";
}

bool soak_server_is_reference(void)
{
  const char *binary = server_binary();
  const char *base = strrchr(binary, '/');
  return strcmp(base ? base + 1 : binary, "nats-server") == 0;
}

/* Binds 127.0.0.1:0 and returns the port the kernel chose, or -1. Another
 * process could take the port before the server binds it, which is
 * unlikely enough for tests. */
static int pick_free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
      getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

int soak_connect(int port, int rcvbuf_bytes)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (rcvbuf_bytes > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int soak_send_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Waits until fd is readable. Returns 0, -ETIMEDOUT or a negative errno. */
static int wait_readable(int fd, int64_t deadline_ms)
{
  for (;;) {
    int64_t left = deadline_ms - soak_now_ms();
    if (left <= 0)
      return -ETIMEDOUT;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc = poll(&pfd, 1, (int)left);
    if (rc > 0)
      return 0;
    if (rc < 0 && errno != EINTR)
      return -errno;
  }
}

int soak_read_line(struct soak_reader *r, char *line, size_t capacity, int timeout_ms)
{
  int64_t deadline = soak_now_ms() + timeout_ms;
  for (;;) {
    char *lf = memchr(r->buf + r->start, '\n', r->end - r->start);
    if (lf != NULL) {
      size_t n = (size_t)(lf - (r->buf + r->start));
      size_t text = n > 0 && lf[-1] == '\r' ? n - 1 : n;
      size_t copy = text < capacity - 1 ? text : capacity - 1;
      memcpy(line, r->buf + r->start, copy);
      line[copy] = '\0';
      r->start += n + 1;
      return (int)copy;
    }
    if (r->start > 0) {
      memmove(r->buf, r->buf + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    }
    if (r->end == sizeof r->buf)
      r->end = 0; /* a line longer than the buffer: drop what came so far */
    int rc = wait_readable(r->fd, deadline);
    if (rc < 0)
      return rc;
    ssize_t n = recv(r->fd, r->buf + r->end, sizeof r->buf - r->end, 0);
    if (n == 0)
      return -EPIPE;
    if (n < 0 && errno != EINTR)
      return -errno;
    if (n > 0)
      r->end += (size_t)n;
  }
}

int soak_read_exact(struct soak_reader *r, void *out, size_t len, int timeout_ms)
{
  int64_t deadline = soak_now_ms() + timeout_ms;
  char *p = out;
  size_t buffered = r->end - r->start;
  size_t take = buffered < len ? buffered : len;
  memcpy(p, r->buf + r->start, take);
  r->start += take;
  p += take;
  len -= take;
  while (len > 0) {
    int rc = wait_readable(r->fd, deadline);
    if (rc < 0)
      return rc;
    ssize_t n = recv(r->fd, p, len, 0);
    if (n == 0)
      return -EPIPE;
    if (n < 0 && errno != EINTR)
      return -errno;
    if (n > 0) {
      p += n;
      len -= (size_t)n;
    }
  }
  return 0;
}

int soak_read_until_closed(struct soak_reader *r, int timeout_ms, size_t *discarded)
{
  int64_t deadline = soak_now_ms() + timeout_ms;
  if (discarded != NULL)
    *discarded += r->end - r->start;
  r->start = r->end = 0;
  for (;;) {
    int rc = wait_readable(r->fd, deadline);
    if (rc < 0)
      return rc;
    ssize_t n = recv(r->fd, r->buf, sizeof r->buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return 0;
    if (n < 0 && errno != EINTR)
      return -errno;
    if (n > 0 && discarded != NULL)
      *discarded += (size_t)n;
  }
}

void soak_close_abruptly(int fd)
{
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

long soak_rss_kib(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  }
  fclose(f);
  return kib;
}

/* Splits SHOAL_TEST_SERVER_ARGS into argv after the fixed flags. */
static int build_argv(char **argv, char *args, char *port_text, const char *conf_path)
{
  int argc = 0;
  argv[argc++] = (char *)server_binary();
  argv[argc++] = "-a";
  argv[argc++] = "127.0.0.1";
  argv[argc++] = "-p";
  argv[argc++] = port_text;
  if (conf_path != NULL) {
    argv[argc++] = "-c";
    argv[argc++] = (char *)conf_path;
  }
  bool reference = soak_server_is_reference();
  char *save = NULL;
  for (char *word = strtok_r(args, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
    if (reference && (strcmp(word, "--shards") == 0 || strcmp(word, "--backend") == 0)) {
      strtok_r(NULL, " ", &save);
      continue;
    }
    if (argc == SERVER_ARGS_MAX - 1)
      return -1;
    argv[argc++] = word;
  }
  argv[argc] = NULL;
  return 0;
}

static int write_conf(struct soak_server *srv, const char *conf_text)
{
  snprintf(srv->conf_path, sizeof srv->conf_path, "/tmp/shoal-soak-conf-XXXXXX");
  int fd = mkstemp(srv->conf_path);
  if (fd < 0) {
    fprintf(stderr, "mkstemp(%s) failed: %s\n", srv->conf_path, strerror(errno));
    return -1;
  }
  size_t len = strlen(conf_text);
  int rc = write(fd, conf_text, len) == (ssize_t)len ? 0 : -1;
  if (rc != 0)
    fprintf(stderr, "writing %s failed\n", srv->conf_path);
  close(fd);
  return rc;
}

/* Returns true once a client connected to the server receives "INFO ". */
static bool server_sends_info(int port)
{
  int fd = soak_connect(port, 0);
  if (fd < 0)
    return false;
  struct soak_reader r = {.fd = fd};
  char line[4096];
  bool ok = soak_read_line(&r, line, sizeof line, 2000) > 0 && strncmp(line, "INFO ", 5) == 0;
  close(fd);
  return ok;
}

static void print_log_tail(const struct soak_server *srv)
{
  int fd = open(srv->log_path, O_RDONLY);
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
          srv->log_path, n, text);
}

int soak_server_start(struct soak_server *srv, const char *conf_text)
{
  memset(srv, 0, sizeof *srv);
  srv->pid = -1;
  srv->port = pick_free_port();
  if (srv->port < 0) {
    fprintf(stderr, "cannot pick a free loopback port: %s\n", strerror(errno));
    return -1;
  }
  if (conf_text != NULL && write_conf(srv, conf_text) != 0)
    return -1;

  static char args[1024];
  const char *args_env = getenv("SHOAL_TEST_SERVER_ARGS");
  snprintf(args, sizeof args, "%s", args_env ? args_env : "");
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", srv->port);
  char *argv[SERVER_ARGS_MAX];
  if (build_argv(argv, args, port_text, conf_text ? srv->conf_path : NULL) != 0) {
    fprintf(stderr, "SHOAL_TEST_SERVER_ARGS has too many words\n");
    return -1;
  }

  snprintf(srv->log_path, sizeof srv->log_path, "/tmp/shoal-soak-log-XXXXXX");
  int log_fd = mkstemp(srv->log_path);
  if (log_fd < 0) {
    fprintf(stderr, "mkstemp(%s) failed: %s\n", srv->log_path, strerror(errno));
    return -1;
  }
  pid_t parent = getpid();
  srv->pid = fork();
  if (srv->pid < 0) {
    fprintf(stderr, "fork failed: %s\n", strerror(errno));
    close(log_fd);
    return -1;
  }
  if (srv->pid == 0) {
    /* The server dies with the test, so a failed run leaves no process. */
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
  close(log_fd);

  int64_t deadline = soak_now_ms() + SERVER_READY_TIMEOUT_MS;
  while (soak_now_ms() < deadline) {
    if (!soak_server_alive(srv)) {
      fprintf(stderr, "the server exited during start-up\n");
      print_log_tail(srv);
      return -1;
    }
    if (server_sends_info(srv->port))
      return 0;
    soak_sleep_ms(50);
  }
  fprintf(stderr, "the server did not send INFO within %d ms\n", SERVER_READY_TIMEOUT_MS);
  print_log_tail(srv);
  kill(srv->pid, SIGKILL);
  waitpid(srv->pid, NULL, 0);
  srv->pid = -1;
  return -1;
}

bool soak_server_alive(struct soak_server *srv)
{
  if (srv->pid <= 0)
    return false;
  return waitpid(srv->pid, NULL, WNOHANG) == 0;
}

int soak_server_stop(struct soak_server *srv)
{
  if (srv->pid <= 0)
    return -1;
  int status = 0;
  bool exited = waitpid(srv->pid, &status, WNOHANG) == srv->pid;
  bool died_before = exited;
  if (!exited) {
    kill(srv->pid, SIGTERM);
    int64_t deadline = soak_now_ms() + SERVER_STOP_TIMEOUT_MS;
    while (!exited && soak_now_ms() < deadline) {
      soak_sleep_ms(20);
      exited = waitpid(srv->pid, &status, WNOHANG) == srv->pid;
    }
  }
  bool killed = false;
  if (!exited) {
    kill(srv->pid, SIGKILL);
    waitpid(srv->pid, &status, 0);
    killed = true;
  }
  srv->pid = -1;

  /* nats-server 2.9.10 exits with status 1 after SIGTERM; shoal with 0. */
  int clean_status = soak_server_is_reference() ? 1 : 0;
  bool clean = !died_before && !killed && WIFEXITED(status) && WEXITSTATUS(status) == clean_status;
  if (!clean) {
    if (died_before)
      fprintf(stderr, "the server had exited before the stop (status 0x%x)\n", status);
    else if (killed)
      fprintf(stderr, "the server did not stop within %d ms of SIGTERM\n",
              SERVER_STOP_TIMEOUT_MS);
    else
      fprintf(stderr, "the server stopped with status 0x%x after SIGTERM\n", status);
    print_log_tail(srv);
    return -1;
  }
  unlink(srv->log_path);
  if (srv->conf_path[0] != '\0')
    unlink(srv->conf_path);
  return 0;
}
