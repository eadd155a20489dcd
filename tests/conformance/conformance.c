/* SPDX-License-Identifier: Apache-2.0 */
/* Black-box conformance of shoal-server with nats-server. Each case of
 * cases.c starts nats-server (NATS_SERVER, /usr/sbin/nats-server by default)
 * and shoal-server (SHOAL_TEST_SERVER, with the space-separated flags of
 * SHOAL_TEST_SERVER_ARGS) on free loopback ports and writes the same raw
 * bytes to both. It reads until the server closes or nothing arrives for a
 * quiet period. Then it checks nats-server's reply against the table and
 * shoal's against nats-server's: the bytes after the INFO line, and whether
 * the connection was closed. One more test compares the INFO lines by key.
 *
 * Set CONFORMANCE_PRINT=1 to log every reply, which is how the table's
 * expectations were recorded, and CONFORMANCE_QUIET_MS to change the quiet
 * period (200 ms). The suite is skipped when shoal-server is not there. */

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

#define DEFAULT_NATS_SERVER "/usr/sbin/nats-server"
#define DEFAULT_QUIET_MS 200
#define SERVER_START_TIMEOUT_MS 5000
#define PONG_WAIT_MS 2000
#define CASE_READ_MAX_MS 5000
#define STEP_GAP_MS 20
#define CHUNK_GAP_MS 3
#define SERVER_ARGS_MAX 32

/* ---- Small helpers ---- */

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

struct bytes {
  char *data;
  size_t len, cap;
};

static void bytes_append(struct bytes *b, const char *p, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data)
      abort();
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* Expands the table's "{c*N}" notation: N copies of the character c. */
static struct bytes expand(const char *tmpl)
{
  struct bytes out = {0};
  bytes_append(&out, "", 0);
  for (const char *p = tmpl; *p;) {
    char *end;
    if (p[0] == '{' && p[1] && p[2] == '*' && p[3] >= '0' && p[3] <= '9') {
      unsigned long n = strtoul(p + 3, &end, 10);
      if (*end == '}') {
        for (unsigned long i = 0; i < n; i++)
          bytes_append(&out, &p[1], 1);
        p = end + 1;
        continue;
      }
    }
    bytes_append(&out, p, 1);
    p++;
  }
  return out;
}

/* Escapes s for a failure message, cut to about max bytes. The caller
 * frees the result. */
static char *escape(const char *s, size_t len, size_t max)
{
  struct bytes out = {0};
  bytes_append(&out, "", 0);
  for (size_t i = 0; i < len && out.len < max; i++) {
    unsigned char c = (unsigned char)s[i];
    char tmp[8];
    if (c == '\r')
      bytes_append(&out, "\\r", 2);
    else if (c == '\n')
      bytes_append(&out, "\\n", 2);
    else if (c == '\t')
      bytes_append(&out, "\\t", 2);
    else if (c < 0x20 || c >= 0x7f)
      bytes_append(&out, tmp, (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c));
    else
      bytes_append(&out, (const char *)&c, 1);
  }
  if (out.len >= max)
    bytes_append(&out, "...", 3);
  return out.data;
}

static size_t count_pongs(const struct bytes *b)
{
  size_t n = 0;
  for (const char *p = b->data; p && (p = strstr(p, "PONG\r\n")); p += 6)
    n++;
  return n;
}

/* ---- Servers ---- */

struct server {
  const char *label;
  pid_t pid;
  int port;
};

static struct server servers[2] = {{"nats-server", 0, 0}, {"shoal-server", 0, 0}};

static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static int connect_port(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {3, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

/* Starts path with "-a 127.0.0.1 -p PORT" and the space-separated extra
 * flags, and waits until it accepts connections. Fails the test when the
 * server exits or does not listen in time. */
static void server_start(struct server *s, const char *path, const char *extra)
{
  s->port = free_port();
  cr_assert_gt(s->port, 0, "no free loopback port for %s", s->label);

  char port_arg[16];
  snprintf(port_arg, sizeof port_arg, "%d", s->port);
  char *extra_copy = strdup(extra ? extra : "");
  char *argv[SERVER_ARGS_MAX + 6] = {(char *)path, "-a", "127.0.0.1", "-p", port_arg};
  int argc = 5;
  for (char *tok = strtok(extra_copy, " "); tok && argc < SERVER_ARGS_MAX; tok = strtok(NULL, " "))
    argv[argc++] = tok;
  argv[argc] = NULL;

  s->pid = fork();
  cr_assert_geq(s->pid, 0, "fork failed for %s: %s", s->label, strerror(errno));
  if (s->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no server outlives a crashed test */
    int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, STDIN_FILENO);
    if (!getenv("CONFORMANCE_SERVER_OUTPUT")) {
      dup2(null_fd, STDOUT_FILENO);
      dup2(null_fd, STDERR_FILENO);
    }
    execv(path, argv);
    _exit(127);
  }
  free(extra_copy);

  for (int64_t deadline = now_ms() + SERVER_START_TIMEOUT_MS; now_ms() < deadline;) {
    int status = 0;
    pid_t done = waitpid(s->pid, &status, WNOHANG);
    cr_assert_eq(done, 0, "%s (%s) exited at start with status %d", s->label, path, status);
    int fd = connect_port(s->port);
    if (fd >= 0) {
      close(fd);
      return;
    }
    sleep_ms(20);
  }
  cr_assert_fail("%s (%s) did not listen on 127.0.0.1:%d within %d ms", s->label, path,
                 s->port, SERVER_START_TIMEOUT_MS);
}

static void server_stop(struct server *s)
{
  if (s->pid <= 0)
    return;
  kill(s->pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
      s->pid = 0;
      return;
    }
    sleep_ms(20);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

static void stop_servers(void)
{
  server_stop(&servers[0]);
  server_stop(&servers[1]);
}

static const char *env_or(const char *name, const char *fallback)
{
  const char *v = getenv(name);
  return v && *v ? v : fallback;
}

/* Skips the test unless both binaries are there, then starts both. */
static void start_servers_or_skip(void)
{
  const char *shoal = env_or("SHOAL_TEST_SERVER", NULL);
  const char *nats = env_or("NATS_SERVER", DEFAULT_NATS_SERVER);
  if (!shoal)
    cr_skip_test("SHOAL_TEST_SERVER is not set; it names the shoal-server binary to test");
  if (access(shoal, X_OK) != 0)
    cr_skip_test("shoal-server not found at SHOAL_TEST_SERVER=%s; build it first", shoal);
  if (access(nats, X_OK) != 0)
    cr_skip_test("nats-server not found at %s; install it or set NATS_SERVER", nats);

  server_start(&servers[0], nats, NULL);
  server_start(&servers[1], shoal, getenv("SHOAL_TEST_SERVER_ARGS"));
}

/* ---- Running one case against one server ---- */

struct conn_result {
  int fd;
  bool closed;
  struct bytes info;  /* the first line, INFO */
  struct bytes reply; /* everything after it */
};

struct case_run {
  const struct conf_case *c;
  int port;
  int quiet_ms;
  struct conn_result conns[CONF_CONNS_MAX];
  char error[256]; /* set when the harness itself failed */
};

/* Reads the available bytes of every open connection, waiting up to
 * timeout_ms for the first ones. Returns the number of bytes read. */
static size_t drain(struct case_run *run, int timeout_ms)
{
  struct pollfd pfd[CONF_CONNS_MAX];
  int map[CONF_CONNS_MAX], n = 0;
  for (int i = 0; i < CONF_CONNS_MAX; i++) {
    if (run->conns[i].fd >= 0 && !run->conns[i].closed) {
      pfd[n] = (struct pollfd){.fd = run->conns[i].fd, .events = POLLIN};
      map[n++] = i;
    }
  }
  if (n == 0 || poll(pfd, (nfds_t)n, timeout_ms) <= 0)
    return 0;

  size_t total = 0;
  for (int k = 0; k < n; k++) {
    if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    struct conn_result *cr = &run->conns[map[k]];
    char buf[65536];
    ssize_t got = recv(cr->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got > 0) {
      bytes_append(&cr->reply, buf, (size_t)got);
      total += (size_t)got;
    } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
      cr->closed = true;
    }
  }
  return total;
}

/* Connects and moves the INFO line from reply to info. */
static bool open_conn(struct case_run *run, int i)
{
  struct conn_result *cr = &run->conns[i];
  cr->fd = connect_port(run->port);
  if (cr->fd < 0) {
    snprintf(run->error, sizeof run->error, "connect to port %d: %s", run->port,
             strerror(-cr->fd));
    return false;
  }
  char *eol = NULL;
  for (int64_t deadline = now_ms() + PONG_WAIT_MS; !eol && now_ms() < deadline && !cr->closed;) {
    drain(run, 50);
    eol = cr->reply.data ? strstr(cr->reply.data, "\r\n") : NULL;
  }
  if (!eol) {
    snprintf(run->error, sizeof run->error, "no INFO line on connection %d", i);
    return false;
  }
  size_t info_len = (size_t)(eol + 2 - cr->reply.data);
  bytes_append(&cr->info, cr->reply.data, info_len);
  memmove(cr->reply.data, eol + 2, cr->reply.len - info_len + 1);
  cr->reply.len -= info_len;
  return true;
}

static void write_bytes(struct case_run *run, struct conn_result *cr, const char *p,
                        size_t len)
{
  while (len > 0 && !cr->closed) {
    ssize_t sent = send(cr->fd, p, len, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR)
        continue;
      cr->closed = errno == EPIPE || errno == ECONNRESET;
      if (!cr->closed)
        snprintf(run->error, sizeof run->error, "send: %s", strerror(errno));
      return;
    }
    p += sent;
    len -= (size_t)sent;
  }
}

/* Writes one step, then waits for its PONG when it ends with PING, or for a
 * short gap so the next step arrives as a separate read. */
static void run_step(struct case_run *run, const struct conf_step *step)
{
  struct conn_result *cr = &run->conns[step->conn];
  struct bytes data = expand(step->bytes);
  size_t pongs = count_pongs(&cr->reply);
  size_t chunk = run->c->chunk ? run->c->chunk : data.len;

  for (size_t off = 0; off < data.len && !cr->closed; off += chunk) {
    size_t n = data.len - off < chunk ? data.len - off : chunk;
    write_bytes(run, cr, data.data + off, n);
    if (run->c->chunk)
      drain(run, CHUNK_GAP_MS);
  }

  bool ping_last = data.len >= 6 && memcmp(data.data + data.len - 6, "PING\r\n", 6) == 0;
  free(data.data);
  if (!ping_last) {
    drain(run, STEP_GAP_MS);
    return;
  }
  for (int64_t deadline = now_ms() + PONG_WAIT_MS;
       count_pongs(&cr->reply) == pongs && !cr->closed && now_ms() < deadline;)
    drain(run, 50);
}

static void *run_case(void *arg)
{
  struct case_run *run = arg;
  int conn_count = 1;
  for (const struct conf_step *s = run->c->steps; s->bytes; s++)
    if (s->conn + 1 > conn_count)
      conn_count = s->conn + 1;

  for (int i = 0; i < CONF_CONNS_MAX; i++)
    run->conns[i].fd = -1;
  for (int i = 0; i < conn_count; i++)
    if (!open_conn(run, i))
      return NULL;

  for (const struct conf_step *s = run->c->steps; s->bytes && !run->error[0]; s++)
    run_step(run, s);

  /* Read until every connection is closed or a quiet period passes. */
  for (int64_t deadline = now_ms() + CASE_READ_MAX_MS; now_ms() < deadline;) {
    if (drain(run, run->quiet_ms) == 0)
      break;
  }
  return NULL;
}

static void case_run_free(struct case_run *run)
{
  for (int i = 0; i < CONF_CONNS_MAX; i++) {
    if (run->conns[i].fd >= 0)
      close(run->conns[i].fd);
    free(run->conns[i].info.data);
    free(run->conns[i].reply.data);
  }
}

/* ---- Normalizing ---- */

/* Replaces the sid of every MSG and HMSG line with '#', walking the reply
 * as a protocol stream so payload bytes are never taken for lines. */
static struct bytes mask_sids(const char *in, size_t len)
{
  struct bytes out = {0};
  bytes_append(&out, "", 0);
  size_t pos = 0;
  while (pos < len) {
    const char *eol = memchr(in + pos, '\n', len - pos);
    size_t line_end = eol ? (size_t)(eol - in) + 1 : len;
    const char *line = in + pos;
    bool is_msg = strncmp(line, "MSG ", 4) == 0 || strncmp(line, "HMSG ", 5) == 0;
    if (!is_msg) {
      bytes_append(&out, line, line_end - pos);
      pos = line_end;
      continue;
    }

    /* Fields: op subject sid [reply] [hdr] total. */
    char fields[8][256];
    int n = 0;
    char tmp[1024];
    size_t tlen = line_end - pos < sizeof tmp - 1 ? line_end - pos : sizeof tmp - 1;
    memcpy(tmp, line, tlen);
    tmp[tlen] = '\0';
    for (char *tok = strtok(tmp, " \r\n"); tok && n < 8; tok = strtok(NULL, " \r\n"))
      snprintf(fields[n++], sizeof fields[0], "%s", tok);
    if (n < 4) {
      bytes_append(&out, line, line_end - pos);
      pos = line_end;
      continue;
    }
    snprintf(fields[2], sizeof fields[2], "#");
    for (int i = 0; i < n; i++) {
      bytes_append(&out, fields[i], strlen(fields[i]));
      bytes_append(&out, i + 1 < n ? " " : "\r\n", i + 1 < n ? 1 : 2);
    }
    size_t payload = strtoul(fields[n - 1], NULL, 10) + 2;
    if (payload > len - line_end)
      payload = len - line_end;
    bytes_append(&out, in + line_end, payload);
    pos = line_end + payload;
  }
  return out;
}

static struct bytes normalized(const struct conf_case *c, const struct bytes *reply)
{
  if (c->mask_sids)
    return mask_sids(reply->data ? reply->data : "", reply->len);
  struct bytes out = {0};
  bytes_append(&out, reply->data ? reply->data : "", reply->len);
  return out;
}

/* ---- Checks ---- */

static void expect_reply(const char *what, const struct conf_case *c, int conn,
                         const struct bytes *got, bool got_closed, const char *want,
                         size_t want_len, bool want_closed)
{
  bool same = got->len == want_len && memcmp(got->data, want, want_len) == 0;
  if (!same) {
    char *g = escape(got->data, got->len, 600);
    char *w = escape(want, want_len, 600);
    cr_expect_fail("%s, case '%s', connection %d:\n  got      \"%s\"\n  expected \"%s\"", what,
                   c->name, conn, g, w);
    free(g);
    free(w);
  }
  cr_expect_eq(got_closed, want_closed, "%s, case '%s', connection %d: %s, expected %s", what,
               c->name, conn, got_closed ? "closed" : "open", want_closed ? "closed" : "open");
}

static void log_reply(const struct server *s, const struct conf_case *c, int conn,
                      const struct bytes *reply, bool closed)
{
  char *e = escape(reply->data, reply->len, 2000);
  cr_log_info("%s, case '%s', connection %d, %s: \"%s\"", s->label, c->name, conn,
              closed ? "closed" : "open", e);
  free(e);
}

static int quiet_ms(void)
{
  const char *v = getenv("CONFORMANCE_QUIET_MS");
  return v && atoi(v) > 0 ? atoi(v) : DEFAULT_QUIET_MS;
}

/* Runs the case against both servers at once, one thread each. */
static void run_both(const struct conf_case *c, struct case_run runs[2])
{
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) {
    runs[i] = (struct case_run){.c = c, .port = servers[i].port, .quiet_ms = quiet_ms()};
    cr_assert_eq(pthread_create(&threads[i], NULL, run_case, &runs[i]), 0, "pthread_create");
  }
  for (int i = 0; i < 2; i++)
    pthread_join(threads[i], NULL);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(runs[i].error[0], '\0', "%s, case '%s': %s", servers[i].label, c->name,
                 runs[i].error);
}

static void check_case(const struct conf_case *c)
{
  struct case_run runs[2];
  run_both(c, runs);
  bool print = getenv("CONFORMANCE_PRINT") != NULL;

  for (int conn = 0; conn < CONF_CONNS_MAX && c->expect[conn]; conn++) {
    struct bytes nats = normalized(c, &runs[0].conns[conn].reply);
    struct bytes shoal = normalized(c, &runs[1].conns[conn].reply);
    struct bytes want = expand(c->expect[conn]);
    bool nats_closed = runs[0].conns[conn].closed;
    if (print)
      log_reply(&servers[0], c, conn, &nats, nats_closed);

    expect_reply("nats-server differs from the table", c, conn, &nats, nats_closed, want.data,
                 want.len, c->closes[conn]);
    expect_reply("shoal-server differs from nats-server", c, conn, &shoal,
                 runs[1].conns[conn].closed, nats.data, nats.len, nats_closed);
    free(nats.data);
    free(shoal.data);
    free(want.data);
  }
  case_run_free(&runs[0]);
  case_run_free(&runs[1]);
}

ParameterizedTestParameters(conformance, cases)
{
  size_t *index = cr_malloc(conf_case_count * sizeof *index);
  for (size_t i = 0; i < conf_case_count; i++)
    index[i] = i;
  return cr_make_param_array(size_t, index, conf_case_count);
}

ParameterizedTest(size_t *index, conformance, cases, .fini = stop_servers, .timeout = 30)
{
  start_servers_or_skip();
  check_case(&conf_cases[*index]);
}

/* ---- INFO ---- */

/* Collects the top-level keys of a flat JSON object, comma-separated, and
 * the raw text of each value into values (same order, separated by '\n').
 * Returns false when text is not a JSON object this scanner understands. */
static bool json_keys(const char *text, struct bytes *keys, struct bytes *values)
{
  const char *p = strchr(text, '{');
  if (!p)
    return false;
  p++;
  for (;;) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '}')
      return true;
    if (*p != '"')
      return false;
    const char *key = ++p;
    while (*p && *p != '"')
      p += *p == '\\' ? 2 : 1;
    if (!*p)
      return false;
    if (keys->len)
      bytes_append(keys, ",", 1);
    bytes_append(keys, key, (size_t)(p - key));
    p++;
    while (*p == ' ' || *p == ':')
      p++;

    /* The value: scalar, string, or nested brackets. */
    const char *value = p;
    int depth = 0;
    bool in_string = false;
    for (; *p; p++) {
      if (in_string) {
        if (*p == '\\')
          p++;
        else if (*p == '"')
          in_string = false;
      } else if (*p == '"') {
        in_string = true;
      } else if (*p == '{' || *p == '[') {
        depth++;
      } else if (*p == '}' || *p == ']') {
        if (depth == 0)
          break;
        depth--;
      } else if (*p == ',' && depth == 0) {
        break;
      }
    }
    if (!*p)
      return false;
    bytes_append(values, value, (size_t)(p - value));
    bytes_append(values, "\n", 1);
    if (*p == ',')
      p++;
  }
}

/* Returns the raw value of key from the parallel lists of json_keys(). */
static char *json_value(const struct bytes *keys, const struct bytes *values, const char *key)
{
  char *k = strdup(keys->data), *v = strdup(values->data), *found = NULL;
  char *ks, *vs;
  char *kt = strtok_r(k, ",", &ks), *vt = strtok_r(v, "\n", &vs);
  for (; kt && vt; kt = strtok_r(NULL, ",", &ks), vt = strtok_r(NULL, "\n", &vs)) {
    if (strcmp(kt, key) == 0) {
      found = strdup(vt);
      break;
    }
  }
  free(k);
  free(v);
  return found;
}

static bool key_listed(const char *list, const char *key)
{
  size_t n = strlen(key);
  for (const char *p = list; (p = strstr(p, key)); p += n)
    if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
      return true;
  return false;
}

Test(conformance, info_keys, .fini = stop_servers, .timeout = 30)
{
  start_servers_or_skip();
  static const struct conf_case ping_case = {
      .name = "info", .steps = {{0, "PING\r\n"}}, .expect = {"PONG\r\n"}};
  struct case_run runs[2];
  run_both(&ping_case, runs);

  struct bytes keys[2] = {{0}}, values[2] = {{0}};
  for (int i = 0; i < 2; i++) {
    const struct bytes *info = &runs[i].conns[0].info;
    char *e = escape(info->data, info->len, 400);
    cr_expect_eq(strncmp(info->data, "INFO {", 6), 0, "%s INFO starts wrongly: \"%s\"",
                 servers[i].label, e);
    cr_expect(info->len >= 4 && memcmp(info->data + info->len - 4, "} \r\n", 4) == 0,
              "%s INFO does not end with \"} \\r\\n\" like nats-server's: \"%s\"",
              servers[i].label, e);
    bytes_append(&keys[i], "", 0);
    bytes_append(&values[i], "", 0);
    cr_assert(json_keys(info->data, &keys[i], &values[i]), "%s INFO is not a JSON object: %s",
              servers[i].label, e);
    free(e);
  }

  cr_expect_str_eq(keys[0].data, conf_info_keys, "nats-server's INFO keys differ from the table");
  char *list = strdup(keys[0].data);
  for (char *key = strtok(list, ","); key; key = strtok(NULL, ","))
    cr_expect(key_listed(keys[1].data, key), "shoal's INFO lacks the key \"%s\" (has %s)", key,
              keys[1].data);
  free(list);

  /* Values that clients act on must agree. */
  static const char *const same[] = {"version", "proto", "headers", "max_payload", "host",
                                     "client_ip"};
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    char *a = json_value(&keys[0], &values[0], same[i]);
    char *b = json_value(&keys[1], &values[1], same[i]);
    cr_expect(a && b && strcmp(a, b) == 0, "INFO %s: nats-server %s, shoal %s", same[i],
              a ? a : "(none)", b ? b : "(none)");
    free(a);
    free(b);
  }
  for (int i = 0; i < 2; i++) {
    char *port = json_value(&keys[i], &values[i], "port");
    cr_expect(port && atoi(port) == servers[i].port, "%s INFO port %s, listening on %d",
              servers[i].label, port ? port : "(none)", servers[i].port);
    free(port);
    free(keys[i].data);
    free(values[i].data);
  }
  case_run_free(&runs[0]);
  case_run_free(&runs[1]);
}
