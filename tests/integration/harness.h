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
#include <pthread.h>

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

/* Starts the server as harness_start() does, and adds `-c FILE` when
 * config_text is not NULL, then the space-separated words of extra_args
 * when not NULL, both after the words of SHOAL_TEST_SERVER_ARGS. FILE is
 * harness_config_path(), written with config_text. Fails the current test
 * when the server exits early or is not ready within 5 s. Called from a
 * test body, in a suite whose .fini is harness_stop. */
void harness_start_with(const char *config_text, const char *extra_args);

/* Creates on first use a temporary directory for the current test's
 * server files (configuration, pid file, store) and returns its path.
 * harness_finish() and harness_stop() delete it with its contents. */
const char *harness_temp_dir(void);

/* Path of the configuration file inside harness_temp_dir(). */
const char *harness_config_path(void);

/* Replaces the configuration file with config_text by writing a new file
 * and renaming it over the old one, so a server that reads the file on
 * SIGHUP sees either version whole. Fails the test on error. */
void harness_write_config(const char *config_text);

/* Path of the server binary under test. */
const char *harness_server_binary(void);

/* True when the server under test is the reference nats-server. */
bool harness_is_reference(void);

/* Process ID of the running server. */
int harness_server_pid(void);

/* Sends sig to the running server. Fails the test when it has exited. */
void harness_signal(int sig);

/* Waits up to timeout_ms for the server to exit on its own and returns its
 * wait status. Fails the test on timeout (the server is then killed by
 * harness_finish()). After it returns, the server counts as stopped. */
int harness_wait_exit(int timeout_ms);

/* True when a wait status is a clean stop: exit status 0, death by
 * SIGTERM, or exit status 1 for nats-server 2.9.10, which exits with 1
 * after SIGTERM (and with 0 after SIGINT). */
bool harness_clean_exit(int status);

/* Waits up to timeout_ms until one line of the server log contains text,
 * and also also_text when that is not NULL. Returns whether it did. */
bool harness_wait_log(const char *text, const char *also_text, int timeout_ms);

/* Runs argv (argv[0] a path) with its standard output and error collected
 * in output (NUL-terminated, truncated to capacity), waits up to
 * timeout_ms and returns its wait status. Fails the test when it cannot
 * start or does not exit in time (it is killed then). */
int harness_run(char *const argv[], char *output, size_t capacity, int timeout_ms);

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

/* Connects with opts (harness_options() when NULL) and returns the libnats
 * status. On success *out receives the connection, which the harness
 * destroys when the test ends, as for harness_connect_opts(). */
natsStatus harness_try_connect(natsOptions *opts, natsConnection **out);

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

/* raw_connect() that also copies the INFO line, without its CRLF, into
 * info (NUL-terminated, at most capacity bytes). Returns 0 or a negative
 * errno. */
int raw_connect_info(struct raw_conn *rc, char *info, size_t capacity);

/* raw_connect() with default buffers, then sends CONNECT with verbose and
 * pedantic off and headers on. Fails the test on error. */
void raw_connect_ready(struct raw_conn *rc);

/* raw_connect() with default buffers, then sends CONNECT with protocol 1
 * (so the server may send it INFO updates), verbose and pedantic off,
 * headers on and the JSON members in fields (for example
 * "\"user\":\"a\",\"pass\":\"b\"", or "" for none), then PING, and
 * fails the test unless PONG comes back. */
void raw_connect_fields(struct raw_conn *rc, const char *fields);

/* Reads lines until one that is not PING (each PING is answered with PONG)
 * and fails the test unless it equals expected. */
void raw_expect_line(struct raw_conn *rc, const char *expected, int timeout_ms);

/* Reads and discards data until the server closes the connection; fails
 * the test when it stays open for timeout_ms. */
void raw_expect_closed(struct raw_conn *rc, int timeout_ms);

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

/* Asynchronous errors that libnats reported for one connection, in order,
 * with the server's text. Set up with harness_errors_init() and pass to
 * natsOptions_SetErrorHandler(opts, harness_on_error, errors). */
#define HARNESS_ERRORS_MAX 32
#define HARNESS_ERROR_TEXT_BYTES 256

struct harness_errors {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int count;
  natsStatus status[HARNESS_ERRORS_MAX];
  char text[HARNESS_ERRORS_MAX][HARNESS_ERROR_TEXT_BYTES];
};

void harness_errors_init(struct harness_errors *errors);

/* The natsErrHandler that records into the struct harness_errors closure. */
void harness_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure);

/* Waits up to 5 s until at least count errors are recorded and fails the
 * test otherwise. */
void harness_wait_errors(struct harness_errors *errors, int count);

/* Returns the number of errors recorded so far. */
int harness_error_count(struct harness_errors *errors);

#endif
