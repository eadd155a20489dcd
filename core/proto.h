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
  int64_t max_msgs;           /* UNSUB; -1 when absent */
  uint32_t header_len;        /* HPUB, HMSG: bytes of headers at payload's start */
  uint32_t total_len;         /* PUB, HPUB, MSG, HMSG: headers plus body */
  const char *payload;        /* PUB, HPUB, MSG, HMSG: total_len bytes */
  struct proto_slice arg;     /* CONNECT and INFO: the JSON; -ERR: the text */
};

struct proto_limits {
  uint32_t max_control_line; /* bytes of a control line, CRLF excluded */
  uint32_t max_payload;      /* bytes of headers plus body */
};

/* Errors, each mapped one-to-one to a nats-server -ERR reply. */
enum proto_err {
  PROTO_NEED_MORE = 0,            /* not an error: the command is incomplete */
  PROTO_ERR_UNKNOWN_OP = -1,      /* 'Unknown Protocol Operation', closes */
  PROTO_ERR_MAX_CONTROL_LINE = -2,/* 'Maximum Control Line Exceeded', closes */
  PROTO_ERR_MAX_PAYLOAD = -3,     /* 'Maximum Payload Violation', closes */
  PROTO_ERR_BAD_ARGS = -4,        /* malformed arguments of a known op */
  PROTO_ERR_BAD_TERMINATOR = -5,  /* payload not followed by CRLF */
  PROTO_ERR_BAD_HEADER = -6,      /* HPUB header size larger than total */
};

/* Parses one command at the start of buf[0, len).
 *
 * Returns the number of bytes the command takes (> 0) and fills cmd; or
 * PROTO_NEED_MORE (0) when buf holds only a prefix of a command; or a
 * negative enum proto_err. Limits are checked as soon as the control line
 * is known, before the payload arrives. lim may be NULL on the client side.
 * Thread-safe: the parser keeps no state between calls. */
int proto_parse(const char *buf, size_t len, enum proto_side side,
                const struct proto_limits *lim, struct proto_cmd *cmd);

/* Returns the quoted text that nats-server sends after "-ERR " for err,
 * for example "'Unknown Protocol Operation'". */
const char *proto_err_text(int err);

/* Returns true when nats-server closes the connection after err. */
bool proto_err_closes(int err);

#endif
