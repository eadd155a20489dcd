/* SPDX-License-Identifier: Apache-2.0 */
/* Resource limit test: a client cannot make the server use unbounded
 * memory. Owned by the robustness tests.
 *
 * Method: one server runs with max_subscriptions 100 and max_pending 2 MiB,
 * while max_control_line (4096) and max_payload (1 MiB) keep their
 * defaults. A max_pending below max_payload would cut off a subscriber of
 * one maximum-size message.
 * Each case attacks it from raw sockets and checks that the limit cuts the
 * attack off with nats-server 2.9.10's error, and that the server's
 * resident memory (VmRSS), sampled while the case runs, stays within
 * CASE_RSS_BOUND_KIB of its value before the case:
 *   - a control line without end, in four forms (SUB argument, CONNECT
 *     JSON, PING followed by junk, blanks after PUB), streamed up to
 *     STREAM_BYTES_MAX: closed with 'maximum control line exceeded';
 *   - a huge declared payload (PUB and HPUB, 999999999 bytes, and one byte
 *     over max_payload): closed with 'Maximum Payload Violation', while a
 *     payload of exactly max_payload is accepted;
 *   - endless subscriptions: the 101st SUB gets 'maximum subscriptions
 *     exceeded' and the connection stays usable, 100000 more SUBs change
 *     nothing, an UNSUB frees a slot, and another connection has its own
 *     100;
 *   - unread output: SLOW_READERS connections subscribe and never read while
 *     a publisher sends PUBLISH_BYTES: each reader is closed after at most
 *     max_pending plus socket buffers, and the publisher's last PING is
 *     answered; RSS may rise by UNREAD_RSS_BOUND_KIB here.
 * The RSS checks are skipped when SOAK_RSS_CHECK=0 (sanitizer builds).
 *
 * NOTE: nats-server does not bound the junk after PING nor the blanks
 * after PUB (it discards them as they come), so those two forms fail
 * against the reference server by design. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "soak_util.h"

#define MAX_SUBSCRIPTIONS 100
#define MAX_PENDING (2 * 1024 * 1024)
#define MAX_PAYLOAD (1024 * 1024)
#define STREAM_BYTES_MAX (64 * 1024 * 1024)
#define STREAM_TIMEOUT_MS 20000
#define EXTRA_SUBS 100000
#define SUB_BATCH 1000
#define SLOW_READERS 8
#define PUBLISH_BYTES (64 * 1024 * 1024)
#define PUBLISH_MSG_BYTES (64 * 1024)
#define READ_TIMEOUT_MS 10000
/* Max bytes a cut-off connection may have pushed or been sent: the limit
 * plus the kernel's socket buffers on both sides (loopback autotuning can
 * reach several MiB). */
#define CUTOFF_BYTES_MAX (16 * 1024 * 1024)
/* Max rise of the server's RSS during one case. The attacks push tens of
 * MiB (STREAM_BYTES_MAX, PUBLISH_BYTES), and what the limits let through is
 * at most a few MiB. Unread output is the exception: each reader may hold
 * up to max_pending, in a buffer that can be twice that after it grew by
 * doubling. */
#define CASE_RSS_BOUND_KIB (24 * 1024)
#define UNREAD_RSS_BOUND_KIB (SLOW_READERS * 2 * MAX_PENDING / 1024 + 8 * 1024)

static const char limits_conf[] = "max_subscriptions: 100\n"
                                  "max_pending: 2MB\n";

static struct soak_server srv;
static bool rss_check;
static long rss_base;
static long rss_peak;
static int failures;

static void rss_sample(void)
{
  long rss = soak_rss_kib(srv.pid);
  if (rss > rss_peak)
    rss_peak = rss;
}

static void rss_begin(void)
{
  rss_base = soak_rss_kib(srv.pid);
  rss_peak = rss_base;
}

static void expect(bool ok, const char *case_name, const char *description)
{
  if (!ok) {
    fprintf(stderr, "limits: FAILED: %s: %s\n", case_name, description);
    failures++;
  }
}

static void rss_end(const char *case_name, long bound_kib)
{
  rss_sample();
  printf("limits: %s: server RSS %ld KiB before, %ld KiB peak (+%ld KiB, bound %ld KiB%s)\n",
         case_name, rss_base, rss_peak, rss_peak - rss_base, bound_kib,
         rss_check ? "" : ", not checked");
  if (rss_check)
    expect(rss_peak - rss_base <= bound_kib, case_name, "RSS rose above the bound");
}

/* Connects and reads INFO; with connect_line, sends it too. Returns the
 * reader (owned by the caller) or NULL. */
static struct soak_reader *open_client(const char *connect_line, int rcvbuf)
{
  int fd = soak_connect(srv.port, rcvbuf);
  if (fd < 0)
    return NULL;
  struct soak_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    abort();
  r->fd = fd;
  char line[4096];
  if (soak_read_line(r, line, sizeof line, READ_TIMEOUT_MS) <= 0 || strncmp(line, "INFO ", 5) != 0 ||
      (connect_line != NULL && soak_send_all(fd, connect_line, strlen(connect_line)) != 0)) {
    close(fd);
    free(r);
    return NULL;
  }
  return r;
}

static void close_client(struct soak_reader *r)
{
  if (r == NULL)
    return;
  close(r->fd);
  free(r);
}

/* Reads lines until one equals want or starts with "-ERR". Returns 1 when
 * want came, 0 for an -ERR (copied to err), -1 on timeout or close. */
static int read_until(struct soak_reader *r, const char *want, char *err, size_t err_size)
{
  char line[4096];
  for (;;) {
    int n = soak_read_line(r, line, sizeof line, READ_TIMEOUT_MS);
    if (n < 0)
      return -1;
    if (strcmp(line, want) == 0)
      return 1;
    if (strncmp(line, "-ERR ", 5) == 0) {
      snprintf(err, err_size, "%.*s", (int)err_size - 1, line + 5);
      return 0;
    }
  }
}

/* ---- Control line without end. ---- */

/* Streams prefix then filler bytes (never an LF) until the server closes
 * the connection, STREAM_BYTES_MAX is sent or STREAM_TIMEOUT_MS passes.
 * Reads what the server sends meanwhile; the first -ERR text goes to err.
 * Returns the bytes sent. */
static size_t stream_until_closed(struct soak_reader *r, const char *prefix, char filler,
                                  char *err, size_t err_size, bool *closed)
{
  static char chunk[16 * 1024];
  memset(chunk, filler, sizeof chunk);
  size_t sent = 0;
  *closed = false;
  err[0] = '\0';
  if (soak_send_all(r->fd, prefix, strlen(prefix)) != 0)
    return 0;
  sent += strlen(prefix);

  int64_t deadline = soak_now_ms() + STREAM_TIMEOUT_MS;
  char in[4096];
  size_t in_len = 0;
  /* A failed send ends the sending but not the reading: the -ERR may still
   * wait in the receive buffer when the server's reset makes send() fail. */
  bool sending = true;
  while (!*closed && soak_now_ms() < deadline) {
    bool want_send = sending && sent < STREAM_BYTES_MAX;
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN | (want_send ? POLLOUT : 0)};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(r->fd, in + in_len, sizeof in - 1 - in_len, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        *closed = true;
        break;
      }
      if (n > 0) {
        in_len += (size_t)n;
        in[in_len] = '\0';
        const char *e = strstr(in, "-ERR ");
        const char *eol = e ? strstr(e, "\r\n") : NULL;
        if (e != NULL && eol != NULL && err[0] == '\0')
          snprintf(err, err_size, "%.*s", (int)(eol - e - 5), e + 5);
        if (in_len == sizeof in - 1)
          in_len = 0;
      }
    }
    if (want_send && (pfd.revents & POLLOUT)) {
      ssize_t n = send(r->fd, chunk, sizeof chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        sent += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR)
        sending = false;
    }
    rss_sample();
  }
  return sent;
}

static void case_control_line(void)
{
  static const struct {
    const char *name;
    const char *prefix;
    char filler;
  } forms[] = {
      {"SUB argument without end", "SUB ", 'a'},
      {"CONNECT JSON without end", "CONNECT {\"name\":\"", 'a'},
      {"PING followed by junk", "PING", 'x'},
      {"blanks after PUB", "PUB", ' '},
  };
  rss_begin();
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct soak_reader *r = open_client(NULL, 0);
    expect(r != NULL, forms[i].name, "connect");
    if (r == NULL)
      continue;
    char err[256];
    bool closed;
    size_t sent = stream_until_closed(r, forms[i].prefix, forms[i].filler, err, sizeof err, &closed);
    printf("limits: %s: closed %s after %zu bytes sent, -ERR %s\n", forms[i].name,
           closed ? "yes" : "no", sent, err[0] ? err : "(none)");
    expect(closed, forms[i].name, "the server did not close the connection");
    expect(strcmp(err, "'maximum control line exceeded'") == 0, forms[i].name,
           "expected -ERR 'maximum control line exceeded'");
    expect(sent <= CUTOFF_BYTES_MAX, forms[i].name, "more bytes taken than limit and buffers");
    close_client(r);
  }
  rss_end("control line without end", CASE_RSS_BOUND_KIB);
}

/* ---- Huge declared payload. ---- */

static void case_huge_payload(void)
{
  static const struct {
    const char *name;
    const char *line;
  } forms[] = {
      {"PUB of 999999999 bytes", "PUB big 999999999\r\n"},
      {"HPUB of 999999999 bytes", "HPUB big 12 999999999\r\n"},
      {"PUB one byte over max_payload", "PUB big 1048577\r\n"},
  };
  static const char connect_headers[] =
      "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n";
  rss_begin();
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct soak_reader *r = open_client(connect_headers, 0);
    expect(r != NULL, forms[i].name, "connect");
    if (r == NULL)
      continue;
    char err[256] = "";
    expect(soak_send_all(r->fd, forms[i].line, strlen(forms[i].line)) == 0, forms[i].name, "send");
    int got = read_until(r, "PONG", err, sizeof err);
    size_t rest = 0;
    int closed = soak_read_until_closed(r, READ_TIMEOUT_MS, &rest);
    printf("limits: %s: -ERR %s, closed %s\n", forms[i].name, got == 0 ? err : "(none)",
           closed == 0 ? "yes" : "no");
    expect(got == 0, forms[i].name, "expected an -ERR");
    expect(strcmp(err, "'Maximum Payload Violation'") == 0, forms[i].name,
           "expected -ERR 'Maximum Payload Violation'");
    expect(closed == 0, forms[i].name, "the server did not close the connection");
    close_client(r);
    rss_sample();
  }

  /* Exactly max_payload is accepted, and delivered. */
  struct soak_reader *r = open_client(connect_headers, 0);
  expect(r != NULL, "PUB of max_payload", "connect");
  if (r != NULL) {
    char *payload = malloc(MAX_PAYLOAD);
    if (payload == NULL)
      abort();
    memset(payload, 'p', MAX_PAYLOAD);
    static const char head[] = "SUB big 1\r\nPUB big 1048576\r\n";
    bool sent = soak_send_all(r->fd, head, sizeof head - 1) == 0 &&
                soak_send_all(r->fd, payload, MAX_PAYLOAD) == 0 &&
                soak_send_all(r->fd, "\r\nPING\r\n", 8) == 0;
    char err[256] = "";
    expect(sent, "PUB of max_payload", "send");
    expect(read_until(r, "MSG big 1 1048576", err, sizeof err) == 1, "PUB of max_payload",
           "the message was not delivered");
    char *back = malloc(MAX_PAYLOAD + 2);
    if (back == NULL)
      abort();
    bool same = soak_read_exact(r, back, MAX_PAYLOAD + 2, READ_TIMEOUT_MS) == 0 &&
                memcmp(back, payload, MAX_PAYLOAD) == 0 && memcmp(back + MAX_PAYLOAD, "\r\n", 2) == 0;
    expect(same, "PUB of max_payload", "the payload came back altered");
    expect(read_until(r, "PONG", err, sizeof err) == 1, "PUB of max_payload", "no PONG");
    free(back);
    free(payload);
    close_client(r);
  }
  rss_end("huge declared payload", CASE_RSS_BOUND_KIB);
}

/* ---- Endless subscriptions. ---- */

/* Sends count SUBs with sids from first, then PING, and counts the -ERR
 * lines before the PONG. Returns the count, or -1 when no PONG came. */
static int sub_batch(struct soak_reader *r, int first, int count, char *err, size_t err_size)
{
  size_t cap = (size_t)count * 32 + 16;
  char *buf = malloc(cap);
  if (buf == NULL)
    abort();
  size_t len = 0;
  for (int i = 0; i < count; i++)
    len += (size_t)snprintf(buf + len, cap - len, "SUB sub.%d %d\r\n", first + i, first + i);
  len += (size_t)snprintf(buf + len, cap - len, "PING\r\n");
  int rc = soak_send_all(r->fd, buf, len);
  free(buf);
  if (rc != 0)
    return -1;

  int errs = 0;
  char line[4096];
  for (;;) {
    int n = soak_read_line(r, line, sizeof line, READ_TIMEOUT_MS);
    if (n < 0)
      return -1;
    if (strcmp(line, "PONG") == 0)
      return errs;
    if (strncmp(line, "-ERR ", 5) == 0) {
      if (errs++ == 0)
        snprintf(err, err_size, "%.*s", (int)err_size - 1, line + 5);
    }
  }
}

static void case_subscriptions(void)
{
  static const char connect_quiet[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
  const char *name = "endless subscriptions";
  rss_begin();
  struct soak_reader *r = open_client(connect_quiet, 0);
  expect(r != NULL, name, "connect");
  if (r == NULL)
    return;
  char err[256] = "";

  expect(sub_batch(r, 1, MAX_SUBSCRIPTIONS, err, sizeof err) == 0, name,
         "the first 100 SUBs were not all accepted");
  int errs = sub_batch(r, MAX_SUBSCRIPTIONS + 1, 1, err, sizeof err);
  printf("limits: %s: SUB number 101: -ERR %s\n", name, errs == 1 ? err : "(none)");
  expect(errs == 1, name, "expected one -ERR for SUB number 101");
  expect(strcmp(err, "'maximum subscriptions exceeded'") == 0, name,
         "expected -ERR 'maximum subscriptions exceeded' for SUB number 101");

  int rejected = 0;
  for (int first = MAX_SUBSCRIPTIONS + 2; first < MAX_SUBSCRIPTIONS + 2 + EXTRA_SUBS;
       first += SUB_BATCH) {
    int n = sub_batch(r, first, SUB_BATCH, err, sizeof err);
    if (n < 0)
      break;
    rejected += n;
    rss_sample();
  }
  printf("limits: %s: %d of %d more SUBs rejected\n", name, rejected, EXTRA_SUBS);
  expect(rejected == EXTRA_SUBS, name, "every SUB past the limit is rejected");

  /* The connection still works, and an UNSUB frees a slot. */
  static const char unsub[] = "UNSUB 1\r\n";
  expect(soak_send_all(r->fd, unsub, sizeof unsub - 1) == 0, name, "send UNSUB");
  expect(sub_batch(r, 1, 1, err, sizeof err) == 0, name, "a SUB after an UNSUB was rejected");
  expect(sub_batch(r, 1000000, 1, err, sizeof err) == 1, name, "the limit holds after the UNSUB");

  /* The limit is per connection. */
  struct soak_reader *other = open_client(connect_quiet, 0);
  expect(other != NULL, name, "connect another client");
  if (other != NULL)
    expect(sub_batch(other, 1, MAX_SUBSCRIPTIONS, err, sizeof err) == 0, name,
           "another connection could not subscribe 100 times");
  close_client(other);
  close_client(r);
  rss_end(name, CASE_RSS_BOUND_KIB);
}

/* ---- Unread output. ---- */

static void case_unread_output(void)
{
  const char *name = "unread output";
  static const char connect_quiet[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
  rss_begin();
  struct soak_reader *readers[SLOW_READERS];
  for (int i = 0; i < SLOW_READERS; i++) {
    readers[i] = open_client(connect_quiet, 4096);
    expect(readers[i] != NULL, name, "connect a reader");
    if (readers[i] != NULL) {
      static const char sub[] = "SUB flood 1\r\nPING\r\n";
      char err[256];
      expect(soak_send_all(readers[i]->fd, sub, sizeof sub - 1) == 0 &&
                 read_until(readers[i], "PONG", err, sizeof err) == 1,
             name, "a reader's SUB was not acknowledged");
    }
  }

  struct soak_reader *pub = open_client(connect_quiet, 0);
  expect(pub != NULL, name, "connect the publisher");
  if (pub != NULL) {
    char *msg = malloc(PUBLISH_MSG_BYTES + 64);
    if (msg == NULL)
      abort();
    int head = snprintf(msg, 64, "PUB flood %d\r\n", PUBLISH_MSG_BYTES);
    memset(msg + head, 'f', PUBLISH_MSG_BYTES);
    memcpy(msg + head + PUBLISH_MSG_BYTES, "\r\n", 2);
    size_t msg_len = (size_t)head + PUBLISH_MSG_BYTES + 2;
    char err[256] = "";
    bool ok = true;
    /* A PING every 16 messages keeps the publisher's own output read. */
    for (size_t sent = 0; ok && sent < PUBLISH_BYTES; sent += PUBLISH_MSG_BYTES) {
      ok = soak_send_all(pub->fd, msg, msg_len) == 0;
      if (ok && (sent / PUBLISH_MSG_BYTES) % 16 == 15)
        ok = soak_send_all(pub->fd, "PING\r\n", 6) == 0 && read_until(pub, "PONG", err, sizeof err) == 1;
      rss_sample();
    }
    ok = ok && soak_send_all(pub->fd, "PING\r\n", 6) == 0 && read_until(pub, "PONG", err, sizeof err) == 1;
    expect(ok, name, "the publisher was cut off or its PING not answered");
    free(msg);
    close_client(pub);
  }

  int closed = 0;
  size_t most = 0;
  for (int i = 0; i < SLOW_READERS; i++) {
    if (readers[i] == NULL)
      continue;
    size_t discarded = 0;
    if (soak_read_until_closed(readers[i], READ_TIMEOUT_MS, &discarded) == 0)
      closed++;
    most = discarded > most ? discarded : most;
    close_client(readers[i]);
  }
  printf("limits: %s: %d of %d readers closed by the server, at most %zu bytes reached one\n",
         name, closed, SLOW_READERS, most);
  expect(closed == SLOW_READERS, name, "every reader that never reads is closed");
  expect(most <= CUTOFF_BYTES_MAX, name, "a reader received more than limit and buffers");
  rss_end(name, UNREAD_RSS_BOUND_KIB);
}

int main(void)
{
  const char *check = getenv("SOAK_RSS_CHECK");
  rss_check = check == NULL || strcmp(check, "0") != 0;
  /* As in the soak test: let jemalloc purge freed pages, so RSS follows
   * what the server holds. */
  setenv("MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0", 0);
  if (soak_server_start(&srv, limits_conf) != 0)
    return 1;

  case_control_line();
  case_huge_payload();
  case_subscriptions();
  case_unread_output();

  expect(soak_server_alive(&srv), "server", "the server died");
  expect(soak_server_stop(&srv) == 0, "server", "the server did not stop cleanly");
  printf("limits: %s\n", failures == 0 ? "passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}
