/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the NATS protocol parser (core/proto.c). Owned by the
 * robustness tests.
 *
 * Method: the input is a byte stream from a peer. It is parsed command by
 * command, as a connection's receive buffer is, under three settings: the
 * server side with nats-server's default limits, the server side with tight
 * limits and headers off, and the client side with no limits. For every
 * command the target checks what proto.h promises:
 *   - a positive result is at most the bytes given, and every slice, the
 *     payload included, lies inside the bytes the command took;
 *   - header_len <= total_len, and the limits hold for what was accepted;
 *   - only ops that the side receives come back;
 *   - feeding a growing prefix gives PROTO_NEED_MORE until the result that
 *     the whole input gives, and that result then stays the same, except
 *     for the early max_control_line cut-off that in_uncounted_bytes()
 *     describes.
 * Each prefix is parsed from its own heap copy of exactly that length, so
 * AddressSanitizer reports any read past the bytes given. A broken promise
 * aborts, which libFuzzer and the replay driver report as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto.h"

/* Every prefix of a command up to this size is checked. A longer command
 * gets PREFIX_SAMPLES evenly spaced prefixes plus the last few, so the
 * checks stay close to linear in the input size. */
#define PREFIX_ALL_MAX 256
#define PREFIX_SAMPLES 64
#define PREFIX_TAIL 8

struct setting {
  const char *name;
  enum proto_side side;
  const struct proto_limits *lim;
};

static const struct proto_limits limits_default = {
    .max_control_line = 4096, .max_payload = 1024 * 1024, .no_headers = false};
static const struct proto_limits limits_tight = {
    .max_control_line = 24, .max_payload = 48, .no_headers = true};

static const struct setting settings[] = {
    {"server/default limits", PROTO_SIDE_SERVER, &limits_default},
    {"server/tight limits", PROTO_SIDE_SERVER, &limits_tight},
    {"client/no limits", PROTO_SIDE_CLIENT, NULL},
};

static void fail(const struct setting *s, size_t off, const char *message, long a, long b)
{
  fprintf(stderr, "fuzz_proto: %s, command at offset %zu: %s (%ld, %ld)\n", s->name, off, message,
          a, b);
  abort();
}

static void check_slice(const struct setting *s, size_t off, const char *name,
                        struct proto_slice sl, const char *start, const char *end)
{
  if (sl.len == 0)
    return;
  if (sl.ptr < start || sl.ptr + sl.len > end)
    fail(s, off, name, (long)(sl.ptr - start), (long)sl.len);
}

static bool op_allowed(enum proto_op op, enum proto_side side)
{
  switch (op) {
  case PROTO_OP_PING:
  case PROTO_OP_PONG:
  case PROTO_OP_INFO:
  case PROTO_OP_OK:
  case PROTO_OP_ERR:
    return true;
  case PROTO_OP_CONNECT:
  case PROTO_OP_PUB:
  case PROTO_OP_HPUB:
  case PROTO_OP_SUB:
  case PROTO_OP_UNSUB:
    return side == PROTO_SIDE_SERVER;
  case PROTO_OP_MSG:
  case PROTO_OP_HMSG:
    return side == PROTO_SIDE_CLIENT;
  default:
    return false;
  }
}

/* Checks a command that proto_parse() accepted: it took rc bytes at p. */
static void check_cmd(const struct setting *s, size_t off, const char *p, int rc,
                      const struct proto_cmd *cmd)
{
  const char *end = p + rc;
  if (!op_allowed(cmd->op, s->side))
    fail(s, off, "op not received by this side", cmd->op, s->side);
  check_slice(s, off, "subject outside the command", cmd->subject, p, end);
  check_slice(s, off, "reply outside the command", cmd->reply, p, end);
  check_slice(s, off, "queue outside the command", cmd->queue, p, end);
  check_slice(s, off, "sid outside the command", cmd->sid, p, end);
  check_slice(s, off, "argument outside the command", cmd->arg, p, end);

  bool has_payload = cmd->op == PROTO_OP_PUB || cmd->op == PROTO_OP_HPUB ||
                     cmd->op == PROTO_OP_MSG || cmd->op == PROTO_OP_HMSG;
  if (!has_payload)
    return;
  if (cmd->payload == NULL || cmd->payload < p)
    fail(s, off, "payload missing or before the command", 0, 0);
  /* The payload is followed by CRLF, which the command includes. */
  if (cmd->payload + cmd->total_len + 2 != end)
    fail(s, off, "payload does not end 2 bytes before the command", (long)cmd->total_len, rc);
  if (memcmp(end - 2, "\r\n", 2) != 0)
    fail(s, off, "payload not followed by CRLF", 0, 0);
  if (cmd->header_len > cmd->total_len)
    fail(s, off, "header_len above total_len", cmd->header_len, cmd->total_len);
  if (s->lim && cmd->total_len > s->lim->max_payload)
    fail(s, off, "payload above max_payload accepted", cmd->total_len, s->lim->max_payload);
  if (s->lim && s->lim->no_headers && cmd->op == PROTO_OP_HPUB)
    fail(s, off, "HPUB accepted with headers off", 0, 0);
}

static bool name_matches(const char *p, size_t n, const char *name)
{
  size_t len = strlen(name);
  if (n < len)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (c != name[i])
      return false;
  }
  return true;
}

/* Returns true when the n bytes at p are an op name followed only by bytes
 * that nats-server does not count against max_control_line: the junk after
 * PING, PONG or +OK up to the LF, or the blanks before an argument. There
 * proto_parse() fails past max_control_line while no LF is in sight, to
 * bound the caller's buffer, but accepts the same bytes once the LF came in
 * the same buffer (proto.c documents this in uncounted_need_more()). Such a
 * prefix is therefore exempt from the prefix rule. */
static bool in_uncounted_bytes(const char *p, size_t n)
{
  static const char *const bare[] = {"ping", "pong", "+ok"};
  static const char *const with_arg[] = {"pub",  "hpub", "sub", "unsub", "connect",
                                         "info", "-err", "msg", "hmsg"};
  for (size_t i = 0; i < sizeof bare / sizeof bare[0]; i++) {
    if (name_matches(p, n, bare[i]))
      return memchr(p, '\n', n) == NULL;
  }
  for (size_t i = 0; i < sizeof with_arg / sizeof with_arg[0]; i++) {
    size_t len = strlen(with_arg[i]);
    if (!name_matches(p, n, with_arg[i]))
      continue;
    for (size_t j = len; j < n; j++) {
      if (p[j] != ' ' && p[j] != '\t')
        return false;
    }
    return true;
  }
  return false;
}

/* Parses the first n bytes of p from a heap copy of exactly n bytes. */
static int parse_prefix(const struct setting *s, const char *p, size_t n)
{
  char *copy = malloc(n ? n : 1);
  if (copy == NULL)
    abort();
  memcpy(copy, p, n);
  struct proto_cmd cmd;
  int rc = proto_parse(copy, n, s->side, s->lim, &cmd);
  free(copy);
  return rc;
}

/* Checks the prefix rule for a command at p whose parse of all len bytes
 * gave rc: every shorter prefix gives PROTO_NEED_MORE or rc, and once rc
 * appears, longer prefixes give rc too. A command (rc > 0) takes len bytes,
 * so all of its shorter prefixes must give PROTO_NEED_MORE. */
static void check_prefixes(const struct setting *s, size_t off, const char *p, size_t len, int rc)
{
  size_t step = len <= PREFIX_ALL_MAX ? 1 : len / PREFIX_SAMPLES;
  bool seen = false;
  for (size_t n = 0; n < len; n += step) {
    if (len > PREFIX_ALL_MAX && n + PREFIX_TAIL >= len)
      break; /* the tail loop below covers these */
    int got = parse_prefix(s, p, n);
    if (got == PROTO_ERR_MAX_CONTROL_LINE && in_uncounted_bytes(p, n))
      continue;
    if (got != PROTO_NEED_MORE && got != rc)
      fail(s, off, "a prefix gives another result than the whole", (long)n, got);
    if (seen && got != rc)
      fail(s, off, "a result went back to PROTO_NEED_MORE", (long)n, got);
    if (got == rc)
      seen = true;
  }
  if (len > PREFIX_ALL_MAX) {
    for (size_t n = len - PREFIX_TAIL; n < len; n++) {
      int got = parse_prefix(s, p, n);
      if (got == PROTO_ERR_MAX_CONTROL_LINE && in_uncounted_bytes(p, n))
        continue;
      if (got != PROTO_NEED_MORE && got != rc)
        fail(s, off, "a prefix gives another result than the whole", (long)n, got);
    }
  }
}

static void run_setting(const struct setting *s, const char *data, size_t size)
{
  size_t off = 0;
  /* Each pass consumes at least one byte or stops, so size bounds it. */
  while (off < size) {
    struct proto_cmd cmd;
    int rc = proto_parse(data + off, size - off, s->side, s->lim, &cmd);
    if (rc > 0 && (size_t)rc > size - off)
      fail(s, off, "result above the bytes given", rc, (long)(size - off));
    if (rc < PROTO_ERR_NO_HEADERS)
      fail(s, off, "result is no enum proto_err", rc, 0);

    /* A command's prefixes are checked against its own length; a result
     * that needs the rest of the input is checked against all of it. */
    size_t span = rc > 0 ? (size_t)rc : size - off;
    check_prefixes(s, off, data + off, span, rc);
    if (rc <= 0)
      return;
    check_cmd(s, off, data + off, rc, &cmd);

    /* The same command, parsed again from exactly its own bytes. */
    if (parse_prefix(s, data + off, (size_t)rc) != rc)
      fail(s, off, "a command parses differently alone", rc, 0);
    off += (size_t)rc;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
    run_setting(&settings[i], (const char *)data, size);

  /* proto_err_text() and proto_err_closes() cover every result. */
  for (int err = PROTO_ERR_NO_HEADERS; err <= 0; err++) {
    const char *text = proto_err_text(err);
    if (text != NULL && text[0] != '\'')
      abort();
    if (err < 0 && !proto_err_closes(err))
      abort();
  }
  return 0;
}
