/* SPDX-License-Identifier: Apache-2.0 */
/* The NATS client protocol parser: splits a byte buffer into commands
 * (CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG from clients; INFO, MSG, HMSG,
 * +OK, -ERR, PING, PONG from servers) without copying. The caller owns the
 * buffer and keeps any bytes the parser has not consumed yet. */
#ifndef SHOAL_PROTO_H
#define SHOAL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum proto_op {
  PROTO_OP_NONE = 0,
  PROTO_OP_CONNECT,
  PROTO_OP_PUB,
  PROTO_OP_HPUB,
  PROTO_OP_SUB,
  PROTO_OP_UNSUB,
  PROTO_OP_PING,
  PROTO_OP_PONG,
  PROTO_OP_INFO,
  PROTO_OP_MSG,
  PROTO_OP_HMSG,
  PROTO_OP_OK,
  PROTO_OP_ERR,
};

/* Which side's commands proto_parse() accepts. */
enum proto_side {
  PROTO_SIDE_SERVER, /* the server parsing what a client sends */
  PROTO_SIDE_CLIENT, /* a client parsing what a server sends */
};

/* A view into the caller's buffer; len 0 means absent. */
struct proto_slice {
  const char *ptr;
  uint32_t len;
};

/* One parsed command. Slices point into the buffer given to proto_parse(). */
struct proto_cmd {
  enum proto_op op;
  struct proto_slice subject; /* PUB, HPUB, SUB, MSG, HMSG */
  struct proto_slice reply;   /* PUB, HPUB, MSG, HMSG */
  struct proto_slice queue;   /* SUB */
  struct proto_slice sid;     /* SUB, UNSUB, MSG, HMSG */
  int64_t max_msgs;           /* UNSUB; -1 when absent or not 1-9 digits */
  uint32_t header_len;        /* HPUB, HMSG: bytes of headers at payload's start */
  uint32_t total_len;         /* PUB, HPUB, MSG, HMSG: headers plus body */
  const char *payload;        /* PUB, HPUB, MSG, HMSG: total_len bytes */
  struct proto_slice arg;     /* CONNECT and INFO: the JSON; -ERR: the text */
};

struct proto_limits {
  /* Bytes of a control line's argument: what follows the op name and its
   * blanks, CR of CRLF excluded (nats-server counts no more than that). */
  uint32_t max_control_line;
  uint32_t max_payload;      /* bytes of headers plus body */
  /* Set when the client's CONNECT did not enable headers: then HPUB fails
   * with PROTO_ERR_NO_HEADERS before its arguments are read, as in
   * nats-server. Zero, the default, accepts HPUB. */
  bool no_headers;
};

/* Errors, each mapped to what nats-server 2.9.10 does on the server side:
 * the -ERR text it sends (none for some) and whether it closes (always). */
enum proto_err {
  PROTO_NEED_MORE = 0,            /* not an error: the command is incomplete */
  PROTO_ERR_UNKNOWN_OP = -1,      /* 'Unknown Protocol Operation', closes */
  PROTO_ERR_MAX_CONTROL_LINE = -2,/* 'maximum control line exceeded', closes */
  PROTO_ERR_MAX_PAYLOAD = -3,     /* 'Maximum Payload Violation', closes */
  PROTO_ERR_BAD_ARGS = -4,        /* wrong field count or size: no -ERR, closes */
  PROTO_ERR_BAD_TERMINATOR = -5,  /* payload not followed by CRLF:
                                     'Unknown Protocol Operation', closes */
  PROTO_ERR_BAD_HEADER = -6,      /* header size above total: no -ERR, closes */
  PROTO_ERR_NO_HEADERS = -7,      /* HPUB with lim->no_headers: no -ERR, closes */
};

/* Parses one command at the start of buf[0, len).
 *
 * Returns the number of bytes the command takes (> 0) and fills cmd; or
 * PROTO_NEED_MORE (0) when buf holds only a prefix of a command; or a
 * negative enum proto_err. cmd's contents are meaningful only after a
 * return > 0. Errors come as early as nats-server's byte-by-byte parser
 * finds them: a wrong op byte at once, limits as soon as the control line
 * (or, for max_control_line, a too long part of it) is there, a bad payload
 * terminator as soon as its byte arrives. Feeding a growing prefix therefore
 * gives PROTO_NEED_MORE until the result that the whole input gives.
 *
 * On the server side, INFO, +OK and -ERR from a client are returned as
 * commands because nats-server accepts them: it checks INFO's JSON (closing
 * without a reply when invalid) and ignores it, ignores +OK, and closes on
 * -ERR without a reply. MSG and HMSG are PROTO_ERR_UNKNOWN_OP.
 * Argument checks that need connection state stay with the caller: CONNECT
 * JSON, subject validity, pedantic mode, and HPUB without headers unless
 * lim->no_headers is set.
 *
 * lim may be NULL, meaning no limits (the client side).
 * Thread-safe: the parser keeps no state between calls. */
int proto_parse(const char *buf, size_t len, enum proto_side side,
                const struct proto_limits *lim, struct proto_cmd *cmd);

/* Returns the quoted text that nats-server sends after "-ERR " for err, for
 * example "'Unknown Protocol Operation'", or NULL when nats-server closes
 * the connection without sending an -ERR for it. */
const char *proto_err_text(int err);

/* Returns true when nats-server closes the connection after err. */
bool proto_err_closes(int err);

#endif
