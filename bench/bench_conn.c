/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's NATS client connection: connect and handshake, buffered
 * nonblocking reads and writes, and framing with core/proto's parser. */
#include "bench/bench_conn.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP_INITIAL (1u << 20)
#define OUT_CAP_INITIAL (1u << 20)
#define SOCKET_BUFFER_BYTES (4 << 20)


static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct bench_conn *conn, int err, const char *fmt, const char *detail)
{
  snprintf(conn->error, sizeof(conn->error), fmt, conn->name, detail);
  return err;
}

int bench_conn_parse_url(const char *url, char *host, size_t host_size, uint16_t *port,
                         char *userinfo, size_t userinfo_size)
{
  const char *p = url;
  if (strncmp(p, "nats://", 7) == 0) p += 7;
  userinfo[0] = '\0';
  const char *at = strrchr(p, '@');
  if (at != NULL) {
    size_t len = (size_t)(at - p);
    if (len >= userinfo_size) return -EINVAL;
    memcpy(userinfo, p, len);
    userinfo[len] = '\0';
    p = at + 1;
  }
  if (strchr(p, '/') != NULL) return -EINVAL;

  const char *colon = strrchr(p, ':');
  size_t host_len = colon ? (size_t)(colon - p) : strlen(p);
  if (host_len == 0 || host_len >= host_size) return -EINVAL;
  memcpy(host, p, host_len);
  host[host_len] = '\0';

  *port = 4222;
  if (colon) {
    char *end;
    long value = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || value < 1 || value > 65535) return -EINVAL;
    *port = (uint16_t)value;
  }
  return 0;
}

/* Waits until fd is ready for events or deadline passes. Returns 0,
 * -ETIMEDOUT, or a negative errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
  for (;;) { /* retries only after EINTR */
    int64_t left = deadline_ms - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd pfd = {.fd = fd, .events = events};
    int n = poll(&pfd, 1, (int)left);
    if (n > 0) return 0;
    if (n == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

static int connect_socket(struct bench_conn *conn, const char *host, uint16_t port,
                          int64_t deadline_ms)
{
  char service[8];
  snprintf(service, sizeof(service), "%u", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res;
  int gai = getaddrinfo(host, service, &hints, &res);
  if (gai != 0) return fail(conn, -EHOSTUNREACH, "%s: cannot resolve the server host: %s", gai_strerror(gai));

  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return fail(conn, -errno, "%s: socket failed: %s", strerror(errno));
  }
  int rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  if (rc < 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return fail(conn, -err, "%s: connect failed: %s (is the server running?)", strerror(err));
  }

  rc = wait_fd(fd, POLLOUT, deadline_ms);
  int err = 0;
  socklen_t err_len = sizeof(err);
  if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0) err = errno;
  if (rc < 0 || err != 0) {
    close(fd);
    if (rc < 0) return fail(conn, rc, "%s: connect failed: %s", strerror(-rc));
    return fail(conn, -err, "%s: connect failed: %s (is the server running?)", strerror(err));
  }

  int one = 1;
  int bytes = SOCKET_BUFFER_BYTES;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  conn->fd = fd;
  return 0;
}

static void read_info(struct bench_conn *conn, const struct proto_cmd *cmd)
{
  cJSON *info = cJSON_ParseWithLength(cmd->arg.ptr, cmd->arg.len);
  if (info == NULL) return;
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(info, "max_payload");
  if (cJSON_IsNumber(item) && item->valuedouble > 0) conn->max_payload = (uint64_t)item->valuedouble;
  item = cJSON_GetObjectItemCaseSensitive(info, "version");
  if (cJSON_IsString(item)) snprintf(conn->server_version, sizeof(conn->server_version), "%s", item->valuestring);
  item = cJSON_GetObjectItemCaseSensitive(info, "server_name");
  if (cJSON_IsString(item)) snprintf(conn->server_name, sizeof(conn->server_name), "%s", item->valuestring);
  cJSON_Delete(info);
}

/* Queues CONNECT and PING. cJSON builds the JSON so credentials with quotes or
 * backslashes stay valid. */
static int send_connect(struct bench_conn *conn, const struct bench_conn_auth *auth)
{
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return -ENOMEM;
  cJSON_AddBoolToObject(o, "verbose", false);
  cJSON_AddBoolToObject(o, "pedantic", false);
  cJSON_AddBoolToObject(o, "tls_required", false);
  cJSON_AddStringToObject(o, "name", "shoal-bench");
  cJSON_AddStringToObject(o, "lang", "c");
  cJSON_AddStringToObject(o, "version", SHOAL_VERSION);
  cJSON_AddNumberToObject(o, "protocol", 1);
  cJSON_AddBoolToObject(o, "echo", true);
  cJSON_AddBoolToObject(o, "headers", true);
  cJSON_AddBoolToObject(o, "no_responders", true);
  if (auth != NULL && auth->user != NULL && auth->user[0]) cJSON_AddStringToObject(o, "user", auth->user);
  if (auth != NULL && auth->pass != NULL && auth->pass[0]) cJSON_AddStringToObject(o, "pass", auth->pass);
  if (auth != NULL && auth->token != NULL && auth->token[0]) cJSON_AddStringToObject(o, "auth_token", auth->token);
  char *json = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (json == NULL) return -ENOMEM;

  int rc = bench_conn_append(conn, "CONNECT ", 8);
  if (rc == 0) rc = bench_conn_append(conn, json, strlen(json));
  if (rc == 0) rc = bench_conn_append(conn, "\r\nPING\r\n", 8);
  free(json);
  return rc;
}

/* Reads commands until one of type until arrives, replying to PING and
 * storing INFO on the way. Returns 0 or a negative errno with conn->error set. */
static int handshake_wait(struct bench_conn *conn, enum proto_op until, int64_t deadline_ms)
{
  for (;;) { /* bounded by deadline_ms */
    struct proto_cmd cmd;
    int rc = bench_conn_next(conn, &cmd);
    if (rc < 0) return rc;
    if (rc == 0) {
      rc = wait_fd(conn->fd, POLLIN, deadline_ms);
      if (rc < 0) return fail(conn, rc, "%s: no reply from the server during the handshake: %s", strerror(-rc));
      long got = bench_conn_fill(conn, 1);
      if (got < 0) return (int)got;
      continue;
    }
    switch (cmd.op) {
    case PROTO_OP_INFO:
      read_info(conn, &cmd);
      break;
    case PROTO_OP_ERR: {
      char text[160];
      snprintf(text, sizeof(text), "%.*s", (int)cmd.arg.len, cmd.arg.ptr);
      return fail(conn, -EPROTO, "%s: the server rejected the connection: -ERR %s", text);
    }
    case PROTO_OP_PING:
      if (bench_conn_append(conn, "PONG\r\n", 6) < 0) return -ENOBUFS;
      break;
    default:
      break;
    }
    if (cmd.op == until) return 0;
  }
}

int bench_conn_open(struct bench_conn *conn, const char *host, uint16_t port,
                    const char *name, const struct bench_conn_auth *auth, int timeout_ms)
{
  memset(conn, 0, sizeof(*conn));
  conn->fd = -1;
  conn->max_payload = 1u << 20;
  snprintf(conn->name, sizeof(conn->name), "%s", name);
  int64_t deadline_ms = now_ms() + timeout_ms;

  conn->in = malloc(IN_CAP_INITIAL);
  conn->out = malloc(OUT_CAP_INITIAL);
  if (conn->in == NULL || conn->out == NULL) {
    bench_conn_close(conn);
    return fail(conn, -ENOMEM, "%s: %s", "out of memory for the buffers");
  }
  conn->in_cap = IN_CAP_INITIAL;
  conn->out_cap = OUT_CAP_INITIAL;

  int rc = connect_socket(conn, host, port, deadline_ms);
  if (rc == 0) rc = handshake_wait(conn, PROTO_OP_INFO, deadline_ms);
  if (rc == 0) rc = send_connect(conn, auth);
  if (rc == 0) rc = bench_conn_flush_wait(conn, (int)(deadline_ms - now_ms()));
  if (rc == 0) rc = handshake_wait(conn, PROTO_OP_PONG, deadline_ms);
  if (rc < 0) {
    char saved[sizeof(conn->error)];
    memcpy(saved, conn->error, sizeof(saved));
    bench_conn_close(conn);
    memcpy(conn->error, saved, sizeof(saved));
    return rc;
  }
  return 0;
}

void bench_conn_close(struct bench_conn *conn)
{
  if (conn->fd >= 0) close(conn->fd);
  conn->fd = -1;
  free(conn->in);
  free(conn->out);
  conn->in = conn->out = NULL;
  conn->in_cap = conn->out_cap = 0;
  conn->in_len = conn->in_off = conn->out_len = conn->out_off = 0;
}

char *bench_conn_reserve(struct bench_conn *conn, size_t bytes)
{
  if (conn->out_cap - conn->out_len >= bytes) return conn->out + conn->out_len;

  /* Slide the pending bytes to the front before growing. */
  size_t pending = conn->out_len - conn->out_off;
  if (conn->out_off > 0) {
    memmove(conn->out, conn->out + conn->out_off, pending);
    conn->out_off = 0;
    conn->out_len = pending;
  }
  if (conn->out_cap - conn->out_len >= bytes) return conn->out + conn->out_len;

  size_t need = conn->out_len + bytes;
  if (need > BENCH_CONN_BUFFER_MAX) return NULL;
  size_t cap = conn->out_cap * 2;
  while (cap < need) cap *= 2;
  if (cap > BENCH_CONN_BUFFER_MAX) cap = BENCH_CONN_BUFFER_MAX;
  char *out = realloc(conn->out, cap);
  if (out == NULL) return NULL;
  conn->out = out;
  conn->out_cap = cap;
  return conn->out + conn->out_len;
}

int bench_conn_append(struct bench_conn *conn, const void *bytes, size_t len)
{
  char *dst = bench_conn_reserve(conn, len);
  if (dst == NULL) {
    snprintf(conn->error, sizeof(conn->error), "%s: output buffer is over %u MiB", conn->name,
             BENCH_CONN_BUFFER_MAX >> 20);
    return -ENOBUFS;
  }
  memcpy(dst, bytes, len);
  conn->out_len += len;
  return 0;
}

long bench_conn_flush(struct bench_conn *conn)
{
  while (conn->out_off < conn->out_len) { /* bounded: each pass writes bytes or returns */
    ssize_t n = send(conn->fd, conn->out + conn->out_off, conn->out_len - conn->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      conn->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    int err = n < 0 ? errno : EPIPE;
    fail(conn, -err, "%s: write failed: %s (the server closed the connection?)", strerror(err));
    return -err;
  }
  if (conn->out_off == conn->out_len) conn->out_off = conn->out_len = 0;
  return (long)(conn->out_len - conn->out_off);
}

int bench_conn_flush_wait(struct bench_conn *conn, int timeout_ms)
{
  int64_t deadline_ms = now_ms() + timeout_ms;
  for (;;) { /* bounded by deadline_ms */
    long left = bench_conn_flush(conn);
    if (left <= 0) return (int)left;
    int rc = wait_fd(conn->fd, POLLOUT, deadline_ms);
    if (rc < 0) return fail(conn, rc, "%s: write stalled: %s", strerror(-rc));
  }
}

/* Makes room for at least one more read in the input buffer. */
static int make_room(struct bench_conn *conn)
{
  if (conn->in_off > 0) {
    size_t keep = conn->in_len - conn->in_off;
    memmove(conn->in, conn->in + conn->in_off, keep);
    conn->in_off = 0;
    conn->in_len = keep;
  }
  if (conn->in_len < conn->in_cap) return 0;
  if (conn->in_cap >= BENCH_CONN_BUFFER_MAX) {
    return fail(conn, -ENOBUFS, "%s: a server frame is larger than %s", "the 72 MiB input buffer");
  }
  size_t cap = conn->in_cap * 2;
  char *in = realloc(conn->in, cap);
  if (in == NULL) return fail(conn, -ENOMEM, "%s: %s", "out of memory for the input buffer");
  conn->in = in;
  conn->in_cap = cap;
  return 0;
}

long bench_conn_fill(struct bench_conn *conn, int reads_max)
{
  long total = 0;
  for (int i = 0; i < reads_max; i++) {
    if (conn->in_len == conn->in_cap || (conn->in_off > 0 && conn->in_cap - conn->in_len < 65536)) {
      int rc = make_room(conn);
      if (rc < 0) return rc;
    }
    ssize_t n = recv(conn->fd, conn->in + conn->in_len, conn->in_cap - conn->in_len, 0);
    if (n > 0) {
      conn->in_len += (size_t)n;
      total += n;
      continue;
    }
    if (n == 0) return fail(conn, -ECONNRESET, "%s: %s", "the server closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    int err = errno;
    return fail(conn, -err, "%s: read failed: %s", strerror(err));
  }
  return total;
}

int bench_conn_next(struct bench_conn *conn, struct proto_cmd *cmd)
{
  size_t avail = conn->in_len - conn->in_off;
  if (avail == 0) return 0;
  int n = proto_parse(conn->in + conn->in_off, avail, PROTO_SIDE_CLIENT, NULL, cmd);
  if (n > 0) {
    conn->in_off += (size_t)n;
    if (conn->in_off == conn->in_len) conn->in_off = conn->in_len = 0;
    return 1;
  }
  if (n == PROTO_NEED_MORE) {
    /* A frame larger than the free space needs a bigger buffer. */
    if (conn->in_off == 0 && conn->in_len == conn->in_cap) {
      int rc = make_room(conn);
      if (rc < 0) return rc;
    }
    return 0;
  }
  char shown[48];
  size_t show = avail < 40 ? avail : 40;
  for (size_t i = 0; i < show; i++) {
    char c = conn->in[conn->in_off + i];
    shown[i] = (c >= 32 && c < 127) ? c : '.';
  }
  shown[show] = '\0';
  snprintf(conn->error, sizeof(conn->error), "%s: cannot parse the server's bytes (error %d) at \"%s\"",
           conn->name, n, shown);
  return -EPROTO;
}
