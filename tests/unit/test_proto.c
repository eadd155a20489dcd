/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/proto.c. Every input is fed whole, as growing prefixes
 * and split in two at every offset, the way a receive loop appends a second
 * read to the bytes it kept. Each prefix sits in a heap block of exactly its
 * size, so the sanitizer build catches a read past the end. The expected
 * results are nats-server 2.9.10's, as the conformance suite records them. */

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto.h"

static const struct proto_limits default_limits = {
    .max_control_line = 4096,
    .max_payload = 1024 * 1024,
};

/* A command's fields with slices as offsets into the parsed buffer, so two
 * parses of copies of the same bytes compare equal. Offset -1 = absent. */
struct flat_cmd {
  int rc;
  enum proto_op op;
  long subject_off, reply_off, queue_off, sid_off, arg_off, payload_off;
  uint32_t subject_len, reply_len, queue_len, sid_len, arg_len;
  int64_t max_msgs;
  uint32_t header_len, total_len;
};

static long slice_off(const char *base, struct proto_slice s)
{
  return s.len ? (long)(s.ptr - base) : -1;
}

static struct flat_cmd flatten(const char *base, int rc, const struct proto_cmd *c)
{
  struct flat_cmd f;
  memset(&f, 0, sizeof f); /* padding too, because assert_same uses memcmp */
  f.rc = rc;
  if (rc <= 0)
    return f;
  f.op = c->op;
  f.subject_off = slice_off(base, c->subject);
  f.subject_len = c->subject.len;
  f.reply_off = slice_off(base, c->reply);
  f.reply_len = c->reply.len;
  f.queue_off = slice_off(base, c->queue);
  f.queue_len = c->queue.len;
  f.sid_off = slice_off(base, c->sid);
  f.sid_len = c->sid.len;
  f.arg_off = slice_off(base, c->arg);
  f.arg_len = c->arg.len;
  f.payload_off = c->payload ? (long)(c->payload - base) : -1;
  f.max_msgs = c->max_msgs;
  f.header_len = c->header_len;
  f.total_len = c->total_len;
  return f;
}

/* Parses a heap copy of in[0, len) that is exactly len bytes long. */
static struct flat_cmd parse_copy(const char *in, size_t len, enum proto_side side,
                                  const struct proto_limits *lim)
{
  char *copy = malloc(len ? len : 1);
  cr_assert_not_null(copy);
  memcpy(copy, in, len);
  struct proto_cmd cmd;
  int rc = proto_parse(copy, len, side, lim, &cmd);
  struct flat_cmd f = flatten(copy, rc, &cmd);
  free(copy);
  return f;
}

static void assert_same(const struct flat_cmd *got, const struct flat_cmd *want,
                        const char *name, const char *how, size_t at)
{
  cr_assert_eq(got->rc, want->rc, "%s, %s %zu: rc %d, expected %d", name, how, at,
               got->rc, want->rc);
  /* Field by field: a struct returned by value need not keep its padding,
   * so memcmp() over it fails at -O2 on equal fields. */
  bool same = got->op == want->op && got->subject_off == want->subject_off &&
              got->reply_off == want->reply_off && got->queue_off == want->queue_off &&
              got->sid_off == want->sid_off && got->arg_off == want->arg_off &&
              got->payload_off == want->payload_off && got->subject_len == want->subject_len &&
              got->reply_len == want->reply_len && got->queue_len == want->queue_len &&
              got->sid_len == want->sid_len && got->arg_len == want->arg_len &&
              got->max_msgs == want->max_msgs && got->header_len == want->header_len &&
              got->total_len == want->total_len;
  cr_assert(same, "%s, %s %zu: fields differ", name, how, at);
}

/* Feeds in whole, as every prefix and split at every offset. Returns the
 * result of the whole input. A prefix shorter than where the result is
 * decided must give PROTO_NEED_MORE; from there on every prefix gives the
 * whole input's result. decided_at is the prefix length where an error shows;
 * for a command it is the command's length. */
static struct flat_cmd feed_all_ways(const char *name, const char *in, size_t len,
                                     enum proto_side side, const struct proto_limits *lim,
                                     size_t decided_at)
{
  struct flat_cmd whole = parse_copy(in, len, side, lim);
  if (whole.rc > 0)
    cr_assert_eq((size_t)whole.rc, decided_at, "%s: consumed %d, expected %zu", name,
                 whole.rc, decided_at);

  for (size_t k = 1; k <= len; k++) {
    struct flat_cmd got = parse_copy(in, k, side, lim);
    if (k < decided_at) {
      cr_assert_eq(got.rc, PROTO_NEED_MORE, "%s, prefix %zu: rc %d, expected need-more",
                   name, k, got.rc);
      continue;
    }
    assert_same(&got, &whole, name, "prefix", k);
  }

  /* Split in two: the first read is kept, the second appended to it. */
  for (size_t cut = 1; cut < len; cut++) {
    char *first = malloc(cut);
    memcpy(first, in, cut);
    struct proto_cmd cmd;
    int rc = proto_parse(first, cut, side, lim, &cmd);
    struct flat_cmd got_first = flatten(first, rc, &cmd);
    struct flat_cmd want_first = parse_copy(in, cut, side, lim);
    assert_same(&got_first, &want_first, name, "first piece", cut);

    char *joined = malloc(len);
    memcpy(joined, first, cut);
    memcpy(joined + cut, in + cut, len - cut);
    free(first);
    rc = proto_parse(joined, len, side, lim, &cmd);
    struct flat_cmd got = flatten(joined, rc, &cmd);
    free(joined);
    assert_same(&got, &whole, name, "split at", cut);
  }
  return whole;
}

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- Commands a client sends, fed every way. ---- */

struct ok_case {
  const char *name;
  const char *in;
  size_t len;
  enum proto_op op;
  const char *subject, *reply, *queue, *sid, *arg, *payload;
  int64_t max_msgs;
  uint32_t header_len;
};

static void check_slice(const char *name, const char *field, struct proto_slice got,
                        const char *want)
{
  if (!want) {
    cr_assert_eq(got.len, 0, "%s: %s present ('%.*s'), expected absent", name, field,
                 (int)got.len, got.ptr);
    return;
  }
  cr_assert_eq(got.len, strlen(want), "%s: %s is '%.*s', expected '%s'", name, field,
               (int)got.len, got.ptr, want);
  cr_assert_eq(memcmp(got.ptr, want, got.len), 0, "%s: %s is '%.*s', expected '%s'",
               name, field, (int)got.len, got.ptr, want);
}

/* Runs one case: every way of feeding, then the fields of the whole parse. */
static void run_ok_case(const struct ok_case *c, enum proto_side side)
{
  feed_all_ways(c->name, c->in, c->len, side, &default_limits, c->len);

  struct proto_cmd cmd;
  int rc = proto_parse(c->in, c->len, side, &default_limits, &cmd);
  cr_assert_eq(rc, (int)c->len, "%s: rc %d, expected %zu", c->name, rc, c->len);
  cr_assert_eq(cmd.op, c->op, "%s: op %d, expected %d", c->name, cmd.op, c->op);
  check_slice(c->name, "subject", cmd.subject, c->subject);
  check_slice(c->name, "reply", cmd.reply, c->reply);
  check_slice(c->name, "queue", cmd.queue, c->queue);
  check_slice(c->name, "sid", cmd.sid, c->sid);
  check_slice(c->name, "arg", cmd.arg, c->arg);
  cr_assert_eq(cmd.max_msgs, c->max_msgs, "%s: max_msgs %lld, expected %lld", c->name,
               (long long)cmd.max_msgs, (long long)c->max_msgs);
  cr_assert_eq(cmd.header_len, c->header_len, "%s: header_len %u, expected %u", c->name,
               cmd.header_len, c->header_len);
  if (c->payload) {
    cr_assert_eq(cmd.total_len, strlen(c->payload), "%s: total_len %u", c->name,
                 cmd.total_len);
    cr_assert_eq(memcmp(cmd.payload, c->payload, cmd.total_len), 0, "%s: payload", c->name);
  } else {
    cr_assert_null(cmd.payload, "%s: payload set", c->name);
  }
}

#define NO -1

static const struct ok_case server_ok_cases[] = {
    {"ping", S("PING\r\n"), PROTO_OP_PING, .max_msgs = NO},
    {"ping lowercase bare lf", S("ping\n"), PROTO_OP_PING, .max_msgs = NO},
    {"ping trailing junk", S("PiNgjunk \t\r\n"), PROTO_OP_PING, .max_msgs = NO},
    {"pong", S("PONG\r\n"), PROTO_OP_PONG, .max_msgs = NO},
    {"connect", S("CONNECT {\"verbose\":false}\r\n"), PROTO_OP_CONNECT,
     .arg = "{\"verbose\":false}", .max_msgs = NO},
    {"connect no blank", S("connect{}\r\n"), PROTO_OP_CONNECT, .arg = "{}", .max_msgs = NO},
    {"connect blanks bare lf", S("CONNECT \t  {} \n"), PROTO_OP_CONNECT, .arg = "{} ",
     .max_msgs = NO},
    {"connect cr only", S("CONNECT\r\n"), PROTO_OP_CONNECT, .arg = "\r", .max_msgs = NO},
    {"pub", S("PUB foo 5\r\nhello\r\n"), PROTO_OP_PUB, .subject = "foo",
     .payload = "hello", .max_msgs = NO},
    {"pub reply", S("PUB foo.bar _INBOX.1 5\r\nhello\r\n"), PROTO_OP_PUB,
     .subject = "foo.bar", .reply = "_INBOX.1", .payload = "hello", .max_msgs = NO},
    {"pub tabs lowercase", S("pub\tfoo \t 2\t\r\nhi\r\n"), PROTO_OP_PUB, .subject = "foo",
     .payload = "hi", .max_msgs = NO},
    {"pub empty payload", S("PUB foo 0\r\n\r\n"), PROTO_OP_PUB, .subject = "foo",
     .payload = "", .max_msgs = NO},
    {"pub leading zeros", S("PUB foo 002\r\nhi\r\n"), PROTO_OP_PUB, .subject = "foo",
     .payload = "hi", .max_msgs = NO},
    {"pub bare lf", S("PUB foo 2\nhi\r\n"), PROTO_OP_PUB, .subject = "foo", .payload = "hi",
     .max_msgs = NO},
    {"pub payload with crlf", S("PUB foo 4\r\n\r\n\r\n\r\n"), PROTO_OP_PUB,
     .subject = "foo", .payload = "\r\n\r\n", .max_msgs = NO},
    {"hpub", S("HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"), PROTO_OP_HPUB,
     .subject = "foo", .payload = "NATS/1.0\r\n\r\nhi", .max_msgs = NO, .header_len = 12},
    {"hpub reply", S("hpub foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n"), PROTO_OP_HPUB,
     .subject = "foo", .reply = "r", .payload = "NATS/1.0\r\n\r\n", .max_msgs = NO,
     .header_len = 12},
    {"sub", S("SUB foo.* 1\r\n"), PROTO_OP_SUB, .subject = "foo.*", .sid = "1",
     .max_msgs = NO},
    {"sub queue", S("sub foo.> workers 22\r\n"), PROTO_OP_SUB, .subject = "foo.>",
     .queue = "workers", .sid = "22", .max_msgs = NO},
    {"sub cr separates", S("SUB foo\r1\r\n"), PROTO_OP_SUB, .subject = "foo", .sid = "1",
     .max_msgs = NO},
    {"sub many blanks", S("SUB \t foo \t 1 \t\n"), PROTO_OP_SUB, .subject = "foo",
     .sid = "1", .max_msgs = NO},
    {"unsub", S("UNSUB 1\r\n"), PROTO_OP_UNSUB, .sid = "1", .max_msgs = NO},
    {"unsub max", S("unsub 1 10\r\n"), PROTO_OP_UNSUB, .sid = "1", .max_msgs = 10},
    {"unsub max zero", S("UNSUB 1 0\r\n"), PROTO_OP_UNSUB, .sid = "1", .max_msgs = 0},
    {"unsub max not a number", S("UNSUB 1 x\r\n"), PROTO_OP_UNSUB, .sid = "1",
     .max_msgs = NO},
    {"plus ok from client", S("+OK\r\n"), PROTO_OP_OK, .max_msgs = NO},
    {"info from client", S("INFO {}\r\n"), PROTO_OP_INFO, .arg = "{}", .max_msgs = NO},
    {"err from client", S("-ERR 'x'\r\n"), PROTO_OP_ERR, .arg = "'x'", .max_msgs = NO},
};

static const struct ok_case client_ok_cases[] = {
    {"info", S("INFO {\"server_id\":\"X\",\"max_payload\":1048576}\r\n"), PROTO_OP_INFO,
     .arg = "{\"server_id\":\"X\",\"max_payload\":1048576}", .max_msgs = NO},
    {"msg", S("MSG foo 1 5\r\nhello\r\n"), PROTO_OP_MSG, .subject = "foo", .sid = "1",
     .payload = "hello", .max_msgs = NO},
    {"msg reply", S("MSG foo.bar 9 _INBOX.x 0\r\n\r\n"), PROTO_OP_MSG,
     .subject = "foo.bar", .sid = "9", .reply = "_INBOX.x", .payload = "", .max_msgs = NO},
    {"hmsg", S("HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"), PROTO_OP_HMSG,
     .subject = "foo", .sid = "1", .payload = "NATS/1.0\r\n\r\nhi", .max_msgs = NO,
     .header_len = 12},
    {"hmsg reply", S("HMSG foo 1 r 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"), PROTO_OP_HMSG,
     .subject = "foo", .sid = "1", .reply = "r", .payload = "NATS/1.0 503\r\n\r\n",
     .max_msgs = NO, .header_len = 16},
    {"plus ok", S("+OK\r\n"), PROTO_OP_OK, .max_msgs = NO},
    {"minus err", S("-ERR 'Unknown Protocol Operation'\r\n"), PROTO_OP_ERR,
     .arg = "'Unknown Protocol Operation'", .max_msgs = NO},
    {"ping", S("PING\r\n"), PROTO_OP_PING, .max_msgs = NO},
    {"pong", S("pong\n"), PROTO_OP_PONG, .max_msgs = NO},
};

Test(proto, server_commands_every_way)
{
  for (size_t i = 0; i < sizeof server_ok_cases / sizeof server_ok_cases[0]; i++)
    run_ok_case(&server_ok_cases[i], PROTO_SIDE_SERVER);
}

Test(proto, client_commands_every_way)
{
  for (size_t i = 0; i < sizeof client_ok_cases / sizeof client_ok_cases[0]; i++)
    run_ok_case(&client_ok_cases[i], PROTO_SIDE_CLIENT);
}

/* ---- Errors, fed every way: need-more until the deciding byte. ---- */

struct err_case {
  const char *name;
  const char *in;
  size_t len;
  int err;
  size_t decided_at; /* prefix length from which the error shows */
};

static void run_err_cases(const struct err_case *cases, size_t n, enum proto_side side,
                          const struct proto_limits *lim)
{
  for (size_t i = 0; i < n; i++) {
    const struct err_case *c = &cases[i];
    struct flat_cmd whole = feed_all_ways(c->name, c->in, c->len, side, lim, c->decided_at);
    cr_assert_eq(whole.rc, c->err, "%s: rc %d, expected %d", c->name, whole.rc, c->err);
  }
}

static const struct err_case server_err_cases[] = {
    /* Unknown ops fail at the first byte that fits no op name. */
    {"unknown op", S("FOO\r\n"), PROTO_ERR_UNKNOWN_OP, 1},
    {"bad second byte", S("PX\r\n"), PROTO_ERR_UNKNOWN_OP, 2},
    {"bad late byte", S("CONNEKT {}\r\n"), PROTO_ERR_UNKNOWN_OP, 6},
    {"empty line", S("\r\n"), PROTO_ERR_UNKNOWN_OP, 1},
    {"leading blank", S(" PING\r\n"), PROTO_ERR_UNKNOWN_OP, 1},
    {"pub without blank", S("PUB\r\n"), PROTO_ERR_UNKNOWN_OP, 4},
    {"publish", S("PUBLISH foo 1\r\n"), PROTO_ERR_UNKNOWN_OP, 4},
    {"unsub without blank", S("UNSUB\r\n"), PROTO_ERR_UNKNOWN_OP, 6},
    {"err without blank", S("-ERR\r\n"), PROTO_ERR_UNKNOWN_OP, 5},
    {"plus o then x", S("+OX\r\n"), PROTO_ERR_UNKNOWN_OP, 3},
    {"msg from client", S("MSG foo 1 0\r\n\r\n"), PROTO_ERR_UNKNOWN_OP, 1},
    {"hmsg from client", S("HMSG foo 1 0 0\r\n\r\n"), PROTO_ERR_UNKNOWN_OP, 16},
    {"route op from client", S("RS+ foo\r\n"), PROTO_ERR_UNKNOWN_OP, 1},
    /* Argument errors show once the control line is complete. */
    {"pub missing size", S("PUB foo\r\n"), PROTO_ERR_BAD_ARGS, 9},
    {"pub size not a number", S("PUB foo abc\r\nhello\r\n"), PROTO_ERR_BAD_ARGS, 13},
    {"pub negative size", S("PUB foo -1\r\n"), PROTO_ERR_BAD_ARGS, 12},
    {"pub ten digit size", S("PUB foo 0000000001\r\n"), PROTO_ERR_BAD_ARGS, 20},
    {"pub too many args", S("PUB foo bar baz 5\r\nhello\r\n"), PROTO_ERR_BAD_ARGS, 19},
    {"pub only cr", S("PUB \r\n"), PROTO_ERR_BAD_ARGS, 6},
    {"pub cr inside size", S("PUB foo 5\rx\n"), PROTO_ERR_BAD_ARGS, 12},
    {"hpub one size", S("HPUB foo 14\r\n"), PROTO_ERR_BAD_ARGS, 13},
    {"hpub bad header size", S("HPUB foo x 14\r\n"), PROTO_ERR_BAD_ARGS, 15},
    {"hpub too many args", S("HPUB a b c 1 2\r\n"), PROTO_ERR_BAD_ARGS, 16},
    {"hpub header above total", S("HPUB foo 14 12\r\n"), PROTO_ERR_BAD_HEADER, 16},
    {"sub one arg", S("SUB foo\r\n"), PROTO_ERR_BAD_ARGS, 9},
    {"sub four args", S("SUB foo q 1 2\r\n"), PROTO_ERR_BAD_ARGS, 15},
    {"unsub three args", S("UNSUB 1 2 3\r\n"), PROTO_ERR_BAD_ARGS, 13},
    /* The payload must be followed by exactly CR LF. */
    {"payload too long", S("PUB foo 5\r\nhelloX\r\n"), PROTO_ERR_BAD_TERMINATOR, 17},
    {"payload bare lf", S("PUB foo 5\r\nhello\n"), PROTO_ERR_BAD_TERMINATOR, 17},
    {"payload cr then x", S("PUB foo 5\r\nhello\rX"), PROTO_ERR_BAD_TERMINATOR, 18},
    {"hpub payload short", S("HPUB foo 2 3\r\nabcd\r\n"), PROTO_ERR_BAD_TERMINATOR, 18},
};

Test(proto, server_errors_every_way)
{
  run_err_cases(server_err_cases, sizeof server_err_cases / sizeof server_err_cases[0],
                PROTO_SIDE_SERVER, &default_limits);
}

static const struct err_case client_err_cases[] = {
    {"connect from server", S("CONNECT {}\r\n"), PROTO_ERR_UNKNOWN_OP, 12},
    {"pub from server", S("PUB foo 0\r\n\r\n"), PROTO_ERR_UNKNOWN_OP, 11},
    {"msg missing size", S("MSG foo 1\r\n"), PROTO_ERR_BAD_ARGS, 11},
    {"msg too many args", S("MSG a 1 r x 2\r\n"), PROTO_ERR_BAD_ARGS, 15},
    {"hmsg header above total", S("HMSG foo 1 5 4\r\n"), PROTO_ERR_BAD_HEADER, 16},
    {"msg payload too long", S("MSG foo 1 1\r\nab\r\n"), PROTO_ERR_BAD_TERMINATOR, 15},
    {"unknown op", S("XYZ\r\n"), PROTO_ERR_UNKNOWN_OP, 1},
};

Test(proto, client_errors_every_way)
{
  run_err_cases(client_err_cases, sizeof client_err_cases / sizeof client_err_cases[0],
                PROTO_SIDE_CLIENT, NULL);
}

Test(proto, hpub_without_headers)
{
  struct proto_limits lim = default_limits;
  lim.no_headers = true;
  static const struct err_case cases[] = {
      {"hpub no headers", S("HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"), PROTO_ERR_NO_HEADERS,
       16},
      /* nats-server checks headers before the size, so no payload error. */
      {"hpub no headers huge", S("HPUB foo 1 2000000\r\n"), PROTO_ERR_NO_HEADERS, 20},
      {"hpub no headers bad args", S("HPUB foo\r\n"), PROTO_ERR_NO_HEADERS, 10},
  };
  run_err_cases(cases, sizeof cases / sizeof cases[0], PROTO_SIDE_SERVER, &lim);

  struct proto_cmd cmd;
  int rc = proto_parse(S("PUB foo 0\r\n\r\n"), PROTO_SIDE_SERVER, &lim, &cmd);
  cr_assert_eq(rc, 13, "PUB is unaffected by no_headers: rc %d", rc);
}

/* ---- Limits. ---- */

/* Builds "<prefix><fill x n><suffix>" in a heap buffer. */
static char *build_line(const char *prefix, char fill, size_t n, const char *suffix,
                        size_t *len)
{
  size_t p = strlen(prefix), s = strlen(suffix);
  char *out = malloc(p + n + s);
  memcpy(out, prefix, p);
  memset(out + p, fill, n);
  memcpy(out + p + n, suffix, s);
  *len = p + n + s;
  return out;
}

static int parse_limited(const char *in, size_t len, uint32_t mcl, uint32_t max_payload)
{
  struct proto_limits lim = {.max_control_line = mcl, .max_payload = max_payload};
  return parse_copy(in, len, PROTO_SIDE_SERVER, &lim).rc;
}

Test(proto, control_line_counts_argument_only)
{
  /* "SUB " and CRLF are not counted: an argument of exactly 16 bytes fits. */
  size_t len;
  char *line = build_line("SUB ", 'a', 14, " 1\r\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), (int)len, "16-byte argument");
  free(line);

  line = build_line("SUB ", 'a', 15, " 1\r\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_ERR_MAX_CONTROL_LINE,
               "17-byte argument");
  free(line);

  /* With a bare LF the limit is the same. */
  line = build_line("SUB ", 'a', 14, " 1\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), (int)len, "16 bytes, bare LF");
  free(line);
}

Test(proto, control_line_checked_before_lf)
{
  size_t len;
  char *line = build_line("PUB ", 'a', 17, "", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_ERR_MAX_CONTROL_LINE,
               "17 bytes and no LF yet");
  cr_assert_eq(parse_limited(line, len - 1, 16, 100), PROTO_NEED_MORE,
               "16 bytes and no LF yet");
  free(line);

  /* A full-length argument whose CR came without its LF still fits. */
  line = build_line("PUB ", 'a', 16, "\r", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_NEED_MORE, "16 bytes and CR");
  free(line);
}

Test(proto, control_line_blanks_and_junk_uncounted)
{
  /* nats-server counts neither the blanks after the op nor PING's junk. */
  size_t len;
  char *line = build_line("PUB", ' ', 40, "foo 0\r\n\r\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), (int)len, "40 blanks before args");
  free(line);

  line = build_line("PING", 'x', 40, "\r\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), (int)len, "40 bytes of PING junk");
  free(line);

  /* Without an LF in sight the parser gives up past the limit, to bound the
   * caller's buffer (nats-server would keep reading). */
  line = build_line("PING", 'x', 17, "", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_ERR_MAX_CONTROL_LINE,
               "PING junk without LF");
  cr_assert_eq(parse_limited(line, len - 1, 16, 100), PROTO_NEED_MORE,
               "16 bytes of PING junk");
  free(line);

  line = build_line("SUB", '\t', 17, "", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_ERR_MAX_CONTROL_LINE,
               "blanks without argument");
  free(line);
}

Test(proto, control_line_connect_and_hmsg)
{
  size_t len;
  char *line = build_line("CONNECT {", ' ', 20, "}\r\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_ERR_MAX_CONTROL_LINE, "connect");
  free(line);

  /* HMSG from a client is unknown, but the length check comes first. */
  line = build_line("HMSG ", 'a', 20, " 1 0 0\r\n", &len);
  cr_assert_eq(parse_limited(line, len, 16, 100), PROTO_ERR_MAX_CONTROL_LINE, "hmsg");
  free(line);
}

Test(proto, max_payload_at_control_line)
{
  /* The check comes as soon as the control line is complete. */
  cr_assert_eq(parse_limited(S("PUB foo 11\r\n"), 4096, 10), PROTO_ERR_MAX_PAYLOAD,
               "11 > 10");
  cr_assert_eq(parse_limited(S("PUB foo 11"), 4096, 10), PROTO_NEED_MORE,
               "no LF yet");
  cr_assert_eq(parse_limited(S("PUB foo 10\r\n"), 4096, 10), PROTO_NEED_MORE,
               "10 fits, payload missing");
  cr_assert_eq(parse_limited(S("PUB foo 10\r\n0123456789\r\n"), 4096, 10), 24,
               "10 fits");
  cr_assert_eq(parse_limited(S("HPUB foo 5 11\r\n"), 4096, 10), PROTO_ERR_MAX_PAYLOAD,
               "hpub counts headers and body");
  /* Argument errors come before the payload check, as in nats-server. */
  cr_assert_eq(parse_limited(S("PUB a b c 99\r\n"), 4096, 10), PROTO_ERR_BAD_ARGS,
               "bad args first");
  cr_assert_eq(parse_limited(S("HPUB a 99 98\r\n"), 4096, 10), PROTO_ERR_BAD_HEADER,
               "header size first");
}

Test(proto, no_limits_on_client_side)
{
  size_t len;
  char *line = build_line("INFO {\"x\":\"", 'a', 100000, "\"}\r\n", &len);
  struct flat_cmd f = parse_copy(line, len, PROTO_SIDE_CLIENT, NULL);
  cr_assert_eq(f.rc, (int)len, "large INFO without limits");
  cr_assert_eq(f.arg_len, len - 7, "INFO arg length");
  free(line);
}

/* ---- Several commands in one buffer. ---- */

Test(proto, back_to_back_commands)
{
  static const char in[] = "CONNECT {}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\n"
                           "HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\nping\nUNSUB 1 3\r\nPONG\r\n";
  static const enum proto_op want_ops[] = {PROTO_OP_CONNECT, PROTO_OP_SUB, PROTO_OP_PUB,
                                           PROTO_OP_HPUB,    PROTO_OP_PING, PROTO_OP_UNSUB,
                                           PROTO_OP_PONG};
  size_t n_ops = sizeof want_ops / sizeof want_ops[0];
  size_t off = 0, i = 0;
  while (off < sizeof in - 1) {
    struct proto_cmd cmd;
    int rc = proto_parse(in + off, sizeof in - 1 - off, PROTO_SIDE_SERVER, &default_limits,
                         &cmd);
    cr_assert_gt(rc, 0, "command %zu at offset %zu: rc %d", i, off, rc);
    cr_assert_lt(i, n_ops, "more commands than expected");
    cr_assert_eq(cmd.op, want_ops[i], "command %zu: op %d, expected %d", i, cmd.op,
                 want_ops[i]);
    if (cmd.op == PROTO_OP_PUB)
      cr_assert_eq(memcmp(cmd.payload, "hi", 2), 0, "PUB payload");
    if (cmd.op == PROTO_OP_UNSUB)
      cr_assert_eq(cmd.max_msgs, 3, "UNSUB max");
    off += (size_t)rc;
    i++;
  }
  cr_assert_eq(i, n_ops, "parsed %zu commands, expected %zu", i, n_ops);
}

Test(proto, back_to_back_messages_client_side)
{
  static const char in[] = "MSG a 1 1\r\nx\r\nMSG b 2 r 0\r\n\r\n+OK\r\nPING\r\n"
                           "HMSG c 3 12 13\r\nNATS/1.0\r\n\r\ny\r\n";
  static const enum proto_op want_ops[] = {PROTO_OP_MSG, PROTO_OP_MSG, PROTO_OP_OK,
                                           PROTO_OP_PING, PROTO_OP_HMSG};
  size_t off = 0;
  for (size_t i = 0; i < sizeof want_ops / sizeof want_ops[0]; i++) {
    struct proto_cmd cmd;
    int rc = proto_parse(in + off, sizeof in - 1 - off, PROTO_SIDE_CLIENT, NULL, &cmd);
    cr_assert_gt(rc, 0, "command %zu: rc %d", i, rc);
    cr_assert_eq(cmd.op, want_ops[i], "command %zu: op %d", i, cmd.op);
    off += (size_t)rc;
  }
  cr_assert_eq(off, sizeof in - 1, "all bytes consumed");
}

Test(proto, pipeline_split_at_every_offset)
{
  /* A receive loop that keeps unparsed bytes and appends the next read must
   * see the same commands wherever the reads split. */
  static const char in[] = "SUB foo 1\r\nPUB foo 3\r\nabc\r\nPING\r\nUNSUB 1\r\n";
  for (size_t cut = 1; cut < sizeof in - 1; cut++) {
    char *buf = malloc(sizeof in);
    size_t have = cut, off = 0, n = 0;
    memcpy(buf, in, cut);
    for (int round = 0; round < 2; round++) {
      for (;;) {
        struct proto_cmd cmd;
        int rc = proto_parse(buf + off, have - off, PROTO_SIDE_SERVER, &default_limits, &cmd);
        cr_assert_geq(rc, 0, "cut %zu: rc %d", cut, rc);
        if (rc == 0)
          break;
        off += (size_t)rc;
        n++;
      }
      memcpy(buf + have, in + have, sizeof in - 1 - have);
      have = sizeof in - 1;
    }
    cr_assert_eq(n, 4, "cut %zu: %zu commands, expected 4", cut, n);
    cr_assert_eq(off, sizeof in - 1, "cut %zu: consumed %zu", cut, off);
    free(buf);
  }
}

/* ---- Field splitting against a reference splitter. ---- */

/* A deterministic generator, so a failure repeats with the same input. */
static uint32_t next_random(uint32_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

/* Appends a run of 1 to 3 separators: blanks, and CR when allowed. */
static size_t put_separators(char *out, uint32_t *rng, bool with_cr)
{
  static const char separators[] = " \t\r";
  size_t n = 1 + next_random(rng) % 3;
  for (size_t i = 0; i < n; i++)
    out[i] = separators[next_random(rng) % (with_cr ? 3 : 2)];
  return n;
}

/* Builds "<op> <fields separated by random blank runs><blanks>\r\n" with
 * field_count fields of random length, and returns the fields' offsets. */
static size_t build_random_line(char *out, const char *op, int field_count, bool with_cr,
                                uint32_t *rng, size_t *field_off, size_t *field_len)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789._*>-";
  size_t len = strlen(op);
  memcpy(out, op, len);
  len += put_separators(out + len, rng, false);
  for (int f = 0; f < field_count; f++) {
    if (f > 0)
      len += put_separators(out + len, rng, with_cr);
    size_t n = 1 + next_random(rng) % 40;
    field_off[f] = len;
    field_len[f] = n;
    for (size_t i = 0; i < n; i++)
      out[len++] = alphabet[next_random(rng) % (sizeof alphabet - 1)];
  }
  if (next_random(rng) % 2)
    len += put_separators(out + len, rng, false);
  out[len++] = '\r';
  out[len++] = '\n';
  return len;
}

static void check_field(const char *line, struct proto_slice got, size_t off, size_t len,
                        const char *what, uint32_t round)
{
  cr_assert_eq(got.len, len, "round %u: %s length %u, expected %zu in '%s'", round, what,
               got.len, len, line);
  cr_assert_eq(got.ptr, line + off, "round %u: %s at the wrong offset in '%s'", round, what,
               line);
}

Test(proto, random_sub_fields)
{
  uint32_t rng = 0x5eed1234;
  for (uint32_t round = 0; round < 20000; round++) {
    int field_count = 1 + (int)(next_random(&rng) % 5);
    char line[512];
    size_t off[8], len[8];
    size_t n = build_random_line(line, "SUB", field_count, true, &rng, off, len);
    line[n] = '\0';

    struct proto_cmd cmd;
    int rc = proto_parse(line, n, PROTO_SIDE_SERVER, &default_limits, &cmd);
    if (field_count != 2 && field_count != 3) {
      cr_assert_eq(rc, PROTO_ERR_BAD_ARGS, "round %u: %d fields gave rc %d", round,
                   field_count, rc);
      continue;
    }
    cr_assert_eq(rc, (int)n, "round %u: rc %d for '%s'", round, rc, line);
    check_field(line, cmd.subject, off[0], len[0], "subject", round);
    check_field(line, cmd.sid, off[field_count - 1], len[field_count - 1], "sid", round);
    if (field_count == 3)
      check_field(line, cmd.queue, off[1], len[1], "queue", round);
  }
}

Test(proto, random_pub_fields)
{
  uint32_t rng = 0xc0ffee01;
  for (uint32_t round = 0; round < 20000; round++) {
    int field_count = 1 + (int)(next_random(&rng) % 4);
    char line[512];
    size_t off[8], len[8];
    size_t n = build_random_line(line, "PUB", field_count, false, &rng, off, len);

    /* The last field becomes the size: "0" padded to its length. */
    size_t last = (size_t)field_count - 1;
    bool size_ok = len[last] <= 9;
    memset(line + off[last], '0', len[last]);
    memcpy(line + n, "\r\n", 2);
    line[n + 2] = '\0';

    struct proto_cmd cmd;
    int rc = proto_parse(line, n + 2, PROTO_SIDE_SERVER, &default_limits, &cmd);
    if ((field_count != 2 && field_count != 3) || !size_ok) {
      cr_assert_eq(rc, PROTO_ERR_BAD_ARGS, "round %u: rc %d for '%s'", round, rc, line);
      continue;
    }
    cr_assert_eq(rc, (int)n + 2, "round %u: rc %d for '%s'", round, rc, line);
    check_field(line, cmd.subject, off[0], len[0], "subject", round);
    if (field_count == 3)
      check_field(line, cmd.reply, off[1], len[1], "reply", round);
    cr_assert_eq(cmd.total_len, 0, "round %u: size", round);
  }
}

/* ---- Error texts. ---- */

Test(proto, error_texts)
{
  cr_assert_str_eq(proto_err_text(PROTO_ERR_UNKNOWN_OP), "'Unknown Protocol Operation'");
  cr_assert_str_eq(proto_err_text(PROTO_ERR_BAD_TERMINATOR), "'Unknown Protocol Operation'");
  cr_assert_str_eq(proto_err_text(PROTO_ERR_MAX_CONTROL_LINE),
                   "'maximum control line exceeded'");
  cr_assert_str_eq(proto_err_text(PROTO_ERR_MAX_PAYLOAD), "'Maximum Payload Violation'");
  cr_assert_null(proto_err_text(PROTO_ERR_BAD_ARGS), "bad args: closed silently");
  cr_assert_null(proto_err_text(PROTO_ERR_BAD_HEADER), "bad header: closed silently");
  cr_assert_null(proto_err_text(PROTO_ERR_NO_HEADERS), "no headers: closed silently");

  static const int all[] = {PROTO_ERR_UNKNOWN_OP, PROTO_ERR_MAX_CONTROL_LINE,
                            PROTO_ERR_MAX_PAYLOAD, PROTO_ERR_BAD_ARGS,
                            PROTO_ERR_BAD_TERMINATOR, PROTO_ERR_BAD_HEADER,
                            PROTO_ERR_NO_HEADERS};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    cr_assert(proto_err_closes(all[i]), "error %d closes", all[i]);
  cr_assert_not(proto_err_closes(PROTO_NEED_MORE), "need-more does not close");
}
