/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test harness: starts the server under test on a free loopback
 * port for each test, stops it afterwards, and connects libnats clients and
 * raw protocol sockets to it. Owned by the integration test suite. */
#ifndef SHOAL_TESTS_HARNESS_H
#define SHOAL_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

/* The server binary when SHOAL_TEST_SERVER is unset: the reference server. */
#define HARNESS_DEFAULT_SERVER "/usr/sbin/nats-server"

/* Per-test timeout in seconds, for TestSuite(..., .timeout = ...). */
#define HARNESS_TEST_TIMEOUT_S 90

/* max_payload of both servers when started without a configuration file. */
#define HARNESS_MAX_PAYLOAD (1024 * 1024)

/* Starts the server named by SHOAL_TEST_SERVER (HARNESS_DEFAULT_SERVER when
 * unset) with `-a 127.0.0.1 -p PORT` and the words of SHOAL_TEST_SERVER_ARGS,
 * and waits until it sends INFO to a TCP client. The server's stdout and
 * stderr go to a temporary log file. Fails the current test when the server
 * exits early or is not ready within 5 s. Meant as a Criterion .init.
 * The log is deleted when the server stops, unless SHOAL_TEST_KEEP_LOGS is
 * set or the server did not stop cleanly. */
void harness_start(void);

/* Destroys the libnats connections made with harness_connect(), stops the
 * server with SIGTERM (SIGKILL after 5 s) and fails the current test when
 * the server had died before, needed SIGKILL or did not stop cleanly.
 * HARNESS_TEST calls it at the end of each test body, because Criterion
 * ignores assertions that fail in a .fini function. */
void harness_finish(void);

/* Stops the server when a test failed before harness_finish() and prints
 * any problem to stderr. Meant as a Criterion .fini. */
void harness_stop(void);

/* Defines a Criterion test whose body is followed by harness_finish(), so a
 * server crash during the test fails it. Use as
 * HARNESS_TEST(suite, name) { ... }. */
#define HARNESS_TEST(suite, name)                                                                  \
  static void suite##_##name##_body(void);                                                         \
  Test(suite, name) {                                                                              \
    suite##_##name##_body();                                                                       \
    harness_finish();                                                                              \
  }                                                                                                \
  static void suite##_##name##_body(void)

/* Port of the running server. */
int harness_port(void);

/* "nats://127.0.0.1:PORT" of the running server. */
const char *harness_url(void);

/* Creates libnats options for the running server: its URL, no reconnect, a
 * 5 s connect timeout. The caller destroys them with natsOptions_Destroy(). */
natsOptions *harness_options(void);

/* Connects with opts (harness_options() when NULL) and fails the test on
 * error. The harness destroys the connection when the test ends. A test may
 * close it earlier with harness_disconnect(). */
natsConnection *harness_connect_opts(natsOptions *opts);
natsConnection *harness_connect(void);

/* Closes and destroys nc, which harness_connect*() returned. */
void harness_disconnect(natsConnection *nc);

/* Monotonic clock in milliseconds. */
int64_t harness_now_ms(void);

/* Calls natsSubscription_NextMsg() with a 5 s timeout and fails the test
 * when no message arrives. The caller destroys the message. */
natsMsg *harness_next_msg(natsSubscription *sub);

/* A raw protocol client: one blocking TCP socket and a receive buffer. */
struct raw_conn {
  int fd;
  char *buf;
  size_t start; /* first unread byte in buf */
  size_t end;   /* one past the last received byte in buf */
  size_t capacity;
};

/* Connects to the running server and reads its INFO line. rcvbuf_bytes,
 * when above 0, sets SO_RCVBUF before connecting. Returns 0 or a negative
 * errno. */
int raw_connect(struct raw_conn *rc, int rcvbuf_bytes);

/* raw_connect() with default buffers, then sends CONNECT with verbose and
 * pedantic off and headers on. Fails the test on error. */
void raw_connect_ready(struct raw_conn *rc);

/* Sends all len bytes. Returns 0 or a negative errno. */
int raw_send(struct raw_conn *rc, const void *data, size_t len);

/* Sends a NUL-terminated string. Returns 0 or a negative errno. */
int raw_send_str(struct raw_conn *rc, const char *text);

/* Reads one line ending in CRLF into line (without the CRLF, NUL-terminated).
 * Returns its length, -ETIMEDOUT after timeout_ms, -EPIPE on EOF, -EMSGSIZE
 * when the line does not fit in capacity bytes, or another negative errno. */
int raw_read_line(struct raw_conn *rc, char *line, size_t capacity, int timeout_ms);

/* Reads exactly len bytes into out. Returns 0, -ETIMEDOUT, -EPIPE on EOF
 * or another negative errno. */
int raw_read_exact(struct raw_conn *rc, void *out, size_t len, int timeout_ms);

/* Reads and discards bytes until the server closes the socket. Returns 0 on
 * EOF, -ECONNRESET on a reset, or -ETIMEDOUT after timeout_ms. *discarded,
 * when not NULL, receives the number of bytes discarded. */
int raw_wait_closed(struct raw_conn *rc, int timeout_ms, size_t *discarded);

/* Closes the socket and frees the buffer. */
void raw_close(struct raw_conn *rc);

#endif
