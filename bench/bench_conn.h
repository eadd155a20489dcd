/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's lean NATS client connection: a nonblocking TCP socket with a
 * growable input buffer parsed in place by proto_parse() and an output buffer
 * that batches many frames into each write. One thread owns each connection;
 * nothing here locks. */
#ifndef SHOAL_BENCH_CONN_H
#define SHOAL_BENCH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/proto.h"

/* Upper bound for either buffer: a frame larger than the server's
 * max_payload (1 MiB by default, 64 MiB at most in nats-server) never fits. */
#define BENCH_CONN_BUFFER_MAX (72u << 20)

/* Credentials sent in CONNECT; NULL or empty fields are left out. */
struct bench_conn_auth {
  const char *user;
  const char *pass;
  const char *token;
};

struct bench_conn {
  int fd;
  char name[32];          /* "pub 0", "sub 3": used in error messages */

  char *in;               /* bytes read and not consumed yet: [in_off, in_len) */
  size_t in_off;
  size_t in_len;
  size_t in_cap;

  char *out;              /* bytes not written yet: [out_off, out_len) */
  size_t out_off;
  size_t out_len;
  size_t out_cap;

  uint64_t max_payload;   /* from the server's INFO */
  char server_name[64];   /* INFO "server_name", or empty */
  char server_version[32];/* INFO "version", or empty */
  char error[384];        /* why the last call failed, for the user */
};

/* Connects conn to host:port, reads INFO, sends CONNECT and PING and waits
 * for the PONG, all within timeout_ms. auth may be NULL. The socket is
 * nonblocking afterwards, and name labels the connection in errors.
 * Returns 0, or a negative errno with conn->error set: -ECONNREFUSED and
 * other connect errors, -ETIMEDOUT, or -EPROTO for a malformed reply or for
 * -ERR (an authorization failure, for example), with the server's text. */
int bench_conn_open(struct bench_conn *conn, const char *host, uint16_t port,
                    const char *name, const struct bench_conn_auth *auth, int timeout_ms);

/* Closes the socket and frees the buffers of conn. */
void bench_conn_close(struct bench_conn *conn);

/* Returns a pointer to room for at least bytes more output bytes, growing the
 * buffer when needed, or NULL when that would pass BENCH_CONN_BUFFER_MAX. The
 * caller writes the bytes and then calls bench_conn_commit(). */
char *bench_conn_reserve(struct bench_conn *conn, size_t bytes);

static inline void bench_conn_commit(struct bench_conn *conn, size_t bytes)
{
  conn->out_len += bytes;
}

/* Appends bytes to the output buffer. Returns 0 or -ENOBUFS. */
int bench_conn_append(struct bench_conn *conn, const void *bytes, size_t len);

static inline size_t bench_conn_pending(const struct bench_conn *conn)
{
  return conn->out_len - conn->out_off;
}

/* Writes buffered output until it is all sent or the socket would block.
 * Returns the number of bytes still pending (0 when all went out), or a
 * negative errno with conn->error set. */
long bench_conn_flush(struct bench_conn *conn);

/* Reads what the socket has into the input buffer, at most reads_max read
 * calls. Returns the number of bytes read (0 when the socket had none), or
 * -ECONNRESET when the server closed the connection, or another negative
 * errno; conn->error is set on every error. */
long bench_conn_fill(struct bench_conn *conn, int reads_max);

/* Parses the next server command from the input buffer into cmd, whose slices
 * stay valid until the next bench_conn_fill(). Returns 1 for a command, 0 when
 * the buffer holds only part of one, or -EPROTO with conn->error set. */
int bench_conn_next(struct bench_conn *conn, struct proto_cmd *cmd);

/* Blocks until conn has sent all its output, within timeout_ms. Returns 0,
 * -ETIMEDOUT or another negative errno with conn->error set. */
int bench_conn_flush_wait(struct bench_conn *conn, int timeout_ms);

/* Splits "nats://[user:pass@]host:port", "host:port" or "host" into host and
 * port (4222 when absent). The user and password, when present, are copied
 * into userinfo as "user:pass" (empty otherwise). Returns 0, or -EINVAL when
 * url is malformed or a part does not fit. */
int bench_conn_parse_url(const char *url, char *host, size_t host_size, uint16_t *port,
                         char *userinfo, size_t userinfo_size);

#endif
