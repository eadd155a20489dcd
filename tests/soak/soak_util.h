/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the soak, resource limit and start/stop tests: the
 * server process under test, its resident memory, and blocking raw
 * protocol clients. Owned by the robustness tests.
 *
 * These tests run without Criterion: each is one long scenario that prints
 * its figures and exits 0 when every check passed, 1 otherwise. */
#ifndef SHOAL_TESTS_SOAK_UTIL_H
#define SHOAL_TESTS_SOAK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A started server. */
struct soak_server {
  pid_t pid;
  int port;
  char log_path[64];
  char conf_path[64]; /* empty when no configuration file was written */
};

/* Starts SHOAL_TEST_SERVER (the reference nats-server when unset) on a free
 * loopback port with -a 127.0.0.1 -p PORT and the words of
 * SHOAL_TEST_SERVER_ARGS, dropping shoal's --shards and --backend for
 * nats-server. When conf_text is not NULL, it is written to a temporary
 * file passed with -c. Waits until the server sends INFO. Returns 0, or -1
 * after printing why. Output goes to a temporary log file. */
int soak_server_start(struct soak_server *srv, const char *conf_text);

/* Stops the server with SIGTERM (SIGKILL after 10 s) and removes the
 * temporary files unless it failed. Returns 0 when it exited after SIGTERM
 * with the status of a clean stop, which is 0 for shoal and 1 for
 * nats-server. Otherwise prints the status and the log's tail and returns
 * -1, keeping the log. */
int soak_server_stop(struct soak_server *srv);

/* Returns true while the server process has not exited. */
bool soak_server_alive(struct soak_server *srv);

/* Returns the server's resident set size in KiB (VmRSS of
 * /proc/PID/status), or -1 when it cannot be read. */
long soak_rss_kib(pid_t pid);

/* Returns true when the server under test is nats-server, which lacks
 * shoal's flags and some of its behaviour. */
bool soak_server_is_reference(void);

/* Monotonic clock in milliseconds. */
int64_t soak_now_ms(void);

void soak_sleep_ms(int ms);

/* Opens a TCP connection to 127.0.0.1:port. rcvbuf_bytes above 0 sets
 * SO_RCVBUF before connecting. Returns the socket (blocking, TCP_NODELAY)
 * or a negative errno. */
int soak_connect(int port, int rcvbuf_bytes);

/* Sends all len bytes. Returns 0 or a negative errno (-EPIPE and
 * -ECONNRESET when the server closed the connection). */
int soak_send_all(int fd, const void *data, size_t len);

/* A line-oriented reader over a blocking socket. */
struct soak_reader {
  int fd;
  char buf[65536];
  size_t start;
  size_t end;
};

/* Reads one line without its CRLF into line (NUL-terminated, cut to
 * capacity). Returns its length, -ETIMEDOUT after timeout_ms, -EPIPE at
 * end of stream, or another negative errno. */
int soak_read_line(struct soak_reader *r, char *line, size_t capacity, int timeout_ms);

/* Reads exactly len bytes into out. Returns 0, -ETIMEDOUT after
 * timeout_ms, -EPIPE at end of stream, or another negative errno. */
int soak_read_exact(struct soak_reader *r, void *out, size_t len, int timeout_ms);

/* Reads and discards until end of stream. Returns 0 at end of stream (a
 * reset counts as one), -ETIMEDOUT after timeout_ms. Adds the bytes
 * discarded to *discarded when not NULL. */
int soak_read_until_closed(struct soak_reader *r, int timeout_ms, size_t *discarded);

/* Closes fd with a TCP reset instead of a FIN (SO_LINGER with timeout 0),
 * as the server gets it from a client whose host restarted. */
void soak_close_abruptly(int fd);

/* A splitmix64 generator, so that a seed replays a run. */
uint64_t soak_rand(uint64_t *state);

#endif
