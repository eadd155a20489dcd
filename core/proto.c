/* SPDX-License-Identifier: Apache-2.0 */
/* The NATS protocol parser: one stateless call per command, slices into the
 * caller's buffer, nats-server 2.9.10's acceptance rules (server/parser.go and
 * the process* functions of server/client.go at tag v2.9.10).
 *
 * What the rules come down to, for a command at the start of the buffer:
 *   1. The op name is matched without regard to case, byte by byte, so a wrong
 *      byte fails at once even before the line ends. MSG ('M' at the start) is
 *      not a client op and fails at its first byte.
 *   2. PING, PONG and +OK end at the next LF, whatever bytes come before it.
 *   3. PUB, HPUB, SUB, UNSUB, HMSG and -ERR need one space or tab after the
 *      name, CONNECT and INFO need none. Further spaces and tabs are skipped.
 *      The next byte, whatever it is, starts the argument, and the argument
 *      ends at the first LF after that byte.
 *   4. When a CR occurs anywhere in the argument after its first byte, the
 *      byte before the LF is dropped (nats-server sets a flag on any CR and
 *      cuts one byte). For a well-formed line that byte is the CR of CRLF, so
 *      a bare LF also ends a control line.
 *   5. The argument, CR dropped, may hold max_control_line bytes. The check
 *      also runs on an incomplete argument, as nats-server does at the end of
 *      each read.
 *   6. PUB and HPUB arguments split on spaces and tabs, SUB and UNSUB
 *      arguments on spaces, tabs, CR and LF. Sizes are 1 to 9 decimal
 *      digits. max_payload is checked once the control line is complete.
 *   7. The payload is followed by exactly CR LF. */

#include "core/proto.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The shape of a control line after the op name. */
enum line_kind {
  LINE_BARE, /* PING, PONG, +OK: anything up to LF is ignored */
  LINE_JSON, /* CONNECT, INFO: optional blanks, then the argument */
  LINE_ARGS, /* others: one blank required, then the argument */
};

struct op_def {
  const char *name; /* lowercase; letters match either case */
  uint8_t name_len;
  enum proto_op op;
  enum line_kind kind;
};

static const struct op_def op_pub = {"pub", 3, PROTO_OP_PUB, LINE_ARGS};
static const struct op_def op_ping = {"ping", 4, PROTO_OP_PING, LINE_BARE};
static const struct op_def op_pong = {"pong", 4, PROTO_OP_PONG, LINE_BARE};
static const struct op_def op_hpub = {"hpub", 4, PROTO_OP_HPUB, LINE_ARGS};
static const struct op_def op_hmsg = {"hmsg", 4, PROTO_OP_HMSG, LINE_ARGS};
static const struct op_def op_sub = {"sub", 3, PROTO_OP_SUB, LINE_ARGS};
static const struct op_def op_unsub = {"unsub", 5, PROTO_OP_UNSUB, LINE_ARGS};
static const struct op_def op_connect = {"connect", 7, PROTO_OP_CONNECT, LINE_JSON};
static const struct op_def op_info = {"info", 4, PROTO_OP_INFO, LINE_JSON};
static const struct op_def op_msg = {"msg", 3, PROTO_OP_MSG, LINE_ARGS};
static const struct op_def op_ok = {"+ok", 3, PROTO_OP_OK, LINE_BARE};
static const struct op_def op_err = {"-err", 4, PROTO_OP_ERR, LINE_ARGS};

/* Argument counts: PUB 3, HPUB 4, SUB 3, UNSUB 2, MSG 4, HMSG 5. One more
 * slot lets the splitter tell "too many" apart. */
#define ARGS_MAX 6

static inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Compares one input byte with one byte of a lowercase op name. OR-ing 0x20
 * folds case for letters only: no other byte turns into a lowercase letter. */
static inline bool op_byte_matches(char in, char name)
{
  if (name >= 'a' && name <= 'z')
    return (char)(in | 0x20) == name;
  return in == name;
}

/* Picks the op definition from the first two bytes. Returns NULL with *err
 * set to PROTO_NEED_MORE or PROTO_ERR_UNKNOWN_OP when no op fits (yet). */
static const struct op_def *op_pick(const char *buf, size_t len, int *err)
{
  *err = PROTO_ERR_UNKNOWN_OP;
  char c0 = (char)(buf[0] | 0x20);
  switch (buf[0]) {
  case '+':
    return &op_ok;
  case '-':
    return &op_err;
  }
  switch (c0) {
  case 's':
    return &op_sub;
  case 'u':
    return &op_unsub;
  case 'c':
    return &op_connect;
  case 'i':
    return &op_info;
  case 'm':
    return &op_msg;
  case 'p':
  case 'h':
    break;
  default:
    return NULL;
  }

  if (len < 2) {
    *err = PROTO_NEED_MORE;
    return NULL;
  }
  char c1 = (char)(buf[1] | 0x20);
  if (c0 == 'h') {
    if (c1 == 'p')
      return &op_hpub;
    if (c1 == 'm')
      return &op_hmsg;
    return NULL;
  }
  switch (c1) {
  case 'u':
    return &op_pub;
  case 'i':
    return &op_ping;
  case 'o':
    return &op_pong;
  default:
    return NULL;
  }
}

/* nats-server's parseSize(): 1 to 9 decimal digits, else -1. */
static int64_t parse_size(struct proto_slice s)
{
  if (s.len == 0 || s.len > 9)
    return -1;
  int64_t n = 0;
  for (uint32_t i = 0; i < s.len; i++) {
    unsigned d = (unsigned char)s.ptr[i] - '0';
    if (d > 9)
      return -1;
    n = n * 10 + d;
  }
  return n;
}

/* Separator classes for split_args(): blanks separate the fields of every
 * op, CR and LF those of SUB and UNSUB only. */
#define SEP_BLANK 1
#define SEP_CRLF 2
static const uint8_t sep_class[256] = {
    [' '] = SEP_BLANK, ['\t'] = SEP_BLANK, ['\r'] = SEP_CRLF, ['\n'] = SEP_CRLF};

/* Splits arg into at most ARGS_MAX fields, separated by runs of the bytes
 * whose class is in sep_mask, one byte at a time. Returns the number of
 * fields, ARGS_MAX meaning ARGS_MAX or more. */
static int split_args_scalar(const char *arg, uint32_t len, uint8_t sep_mask,
                             struct proto_slice *out)
{
  const uint8_t *p = (const uint8_t *)arg;
  int n = 0;
  uint32_t i = 0;
  for (;;) {
    while (i < len && (sep_class[p[i]] & sep_mask))
      i++;
    if (i == len || n == ARGS_MAX)
      return n;
    uint32_t start = i;
    while (i < len && !(sep_class[p[i]] & sep_mask))
      i++;
    out[n++] = (struct proto_slice){arg + start, i - start};
  }
}

#ifdef __SSE2__
/* Returns bit i set when byte i of the 16 at p is a separator. */
static inline uint32_t sep_bits16(const char *p, uint8_t sep_mask)
{
  __m128i v = _mm_loadu_si128((const __m128i *)p);
  __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
                           _mm_cmpeq_epi8(v, _mm_set1_epi8('\t')));
  if (sep_mask & SEP_CRLF)
    m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))));
  return (uint32_t)_mm_movemask_epi8(m);
}

/* The same split, 16 bytes at a time: a separator bitmask per block, whose
 * 0-to-1 and 1-to-0 edges are where fields end and start. The last block
 * is loaded so that it ends at arg's end, overlapping the one before, so no
 * byte past arg is read. */
static int split_args(const char *arg, uint32_t len, uint8_t sep_mask,
                      struct proto_slice *out)
{
  if (len < 16)
    return split_args_scalar(arg, len, sep_mask, out);

  int n = 0;
  uint32_t start = 0;
  uint32_t prev_sep = 1; /* the byte before arg counts as a separator */
  for (uint32_t base = 0; base < len; base += 16) {
    uint32_t seps;
    if (base + 16 <= len) {
      seps = sep_bits16(arg + base, sep_mask);
    } else {
      uint32_t shift = base + 16 - len; /* bytes already seen */
      seps = sep_bits16(arg + len - 16, sep_mask) >> shift;
      seps |= ~0u << (16 - shift); /* past the end: separators */
    }
    seps &= 0xffff;
    uint32_t before = (seps << 1) | prev_sep; /* bit i: byte i-1 separates */
    uint32_t starts = ~seps & before & 0xffff;
    uint32_t ends = seps & ~before & 0xffff;
    for (uint32_t edges = starts | ends; edges; edges &= edges - 1) {
      uint32_t bit = (uint32_t)__builtin_ctz(edges);
      if (starts & (1u << bit)) {
        if (n == ARGS_MAX)
          return n;
        start = base + bit;
      } else {
        out[n++] = (struct proto_slice){arg + start, base + bit - start};
      }
    }
    prev_sep = (seps >> 15) & 1;
  }
  if (!prev_sep && len > start) /* a field runs to the end */
    out[n++] = (struct proto_slice){arg + start, len - start};
  return n;
}
#else
#define split_args split_args_scalar
#endif

/* Fills subject, reply and the sizes of PUB, HPUB (server side) or MSG, HMSG
 * (client side). The size fields are the last one (total) or two (headers,
 * total); a MSG has the sid before the optional reply. */
static int parse_msg_args(struct proto_cmd *cmd, struct proto_slice *a, int n,
                          bool has_sid, bool has_hdr)
{
  int fixed = 2 + has_sid + has_hdr; /* fields without the reply */
  if (n != fixed && n != fixed + 1)
    return PROTO_ERR_BAD_ARGS;

  cmd->subject = a[0];
  if (has_sid)
    cmd->sid = a[1];
  if (n == fixed + 1)
    cmd->reply = a[1 + has_sid];

  int64_t hdr = has_hdr ? parse_size(a[n - 2]) : 0;
  int64_t total = parse_size(a[n - 1]);
  if (hdr < 0 || total < 0)
    return PROTO_ERR_BAD_ARGS;
  if (hdr > total)
    return PROTO_ERR_BAD_HEADER;
  cmd->header_len = (uint32_t)hdr;
  cmd->total_len = (uint32_t)total;
  return 0;
}

/* Splits and checks the argument of ops that take a field list. */
static int parse_args(struct proto_cmd *cmd, struct proto_slice arg,
                      const struct proto_limits *lim)
{
  struct proto_slice a[ARGS_MAX];
  int n;
  switch (cmd->op) {
  case PROTO_OP_PUB:
  case PROTO_OP_HPUB: {
    bool hpub = cmd->op == PROTO_OP_HPUB;
    if (hpub && lim && lim->no_headers)
      return PROTO_ERR_NO_HEADERS;
    n = split_args(arg.ptr, arg.len, SEP_BLANK, a);
    int rc = parse_msg_args(cmd, a, n, false, hpub);
    if (rc < 0)
      return rc;
    if (lim && cmd->total_len > lim->max_payload)
      return PROTO_ERR_MAX_PAYLOAD;
    return 0;
  }
  case PROTO_OP_MSG:
  case PROTO_OP_HMSG:
    n = split_args(arg.ptr, arg.len, SEP_BLANK, a);
    return parse_msg_args(cmd, a, n, true, cmd->op == PROTO_OP_HMSG);
  case PROTO_OP_SUB:
    n = split_args(arg.ptr, arg.len, SEP_BLANK | SEP_CRLF, a);
    if (n != 2 && n != 3)
      return PROTO_ERR_BAD_ARGS;
    cmd->subject = a[0];
    if (n == 3)
      cmd->queue = a[1];
    cmd->sid = a[n - 1];
    return 0;
  case PROTO_OP_UNSUB:
    n = split_args(arg.ptr, arg.len, SEP_BLANK | SEP_CRLF, a);
    if (n != 1 && n != 2)
      return PROTO_ERR_BAD_ARGS;
    cmd->sid = a[0];
    if (n == 2)
      cmd->max_msgs = parse_size(a[1]);
    return 0;
  default: /* CONNECT, INFO, -ERR keep the argument whole */
    cmd->arg = arg;
    return 0;
  }
}

/* Returns true when the op is not one that this side receives. nats-server
 * takes INFO, +OK and -ERR from clients too (it ignores the first two and
 * closes on -ERR), so the server side returns them as commands. */
static bool op_foreign(enum proto_op op, enum proto_side side)
{
  if (side == PROTO_SIDE_SERVER)
    return op == PROTO_OP_MSG || op == PROTO_OP_HMSG;
  switch (op) {
  case PROTO_OP_CONNECT:
  case PROTO_OP_PUB:
  case PROTO_OP_HPUB:
  case PROTO_OP_SUB:
  case PROTO_OP_UNSUB:
    return true;
  default:
    return false;
  }
}

/* Applies rule 4 of the file comment: returns where the argument that starts
 * at arg_start and whose line ends with the LF at lf stops. */
static size_t arg_end(const char *buf, size_t arg_start, size_t lf)
{
  if (lf < arg_start + 2)
    return lf;
  if (buf[lf - 1] == '\r' || memchr(buf + arg_start + 1, '\r', lf - arg_start - 1))
    return lf - 1;
  return lf;
}

/* The bytes after a command's name that nats-server never counts against
 * max_control_line: the junk of PING, PONG, +OK and the blanks before an
 * argument. nats-server waits for these without bound. */
static int uncounted_need_more(size_t uncounted, const struct proto_limits *lim)
{
  /* NOTE: nats-server would keep reading here. A stateless parser cannot
   * drop bytes that it has not turned into a command, so it fails past
   * max_control_line bytes without an LF, which bounds the caller's buffer. */
  if (lim && uncounted > lim->max_control_line)
    return PROTO_ERR_MAX_CONTROL_LINE;
  return PROTO_NEED_MORE;
}

/* Checks the payload after a control line that ends at body_start. */
static int take_payload(const char *buf, size_t len, size_t body_start,
                        struct proto_cmd *cmd)
{
  size_t end = body_start + cmd->total_len;
  if (len > end && buf[end] != '\r')
    return PROTO_ERR_BAD_TERMINATOR;
  if (len > end + 1 && buf[end + 1] != '\n')
    return PROTO_ERR_BAD_TERMINATOR;
  if (len < end + 2)
    return PROTO_NEED_MORE;
  cmd->payload = buf + body_start;
  return (int)(end + 2);
}

int proto_parse(const char *buf, size_t len, enum proto_side side,
                const struct proto_limits *lim, struct proto_cmd *cmd)
{
  if (len == 0)
    return PROTO_NEED_MORE;

  /* The op name, byte by byte. */
  int err;
  const struct op_def *def = op_pick(buf, len, &err);
  if (!def)
    return err;
  if (def->op == PROTO_OP_MSG && side == PROTO_SIDE_SERVER)
    return PROTO_ERR_UNKNOWN_OP; /* nats-server has no 'M' op for clients */
  size_t pos = 0;
  for (; pos < def->name_len; pos++) {
    if (pos == len)
      return PROTO_NEED_MORE;
    if (!op_byte_matches(buf[pos], def->name[pos]))
      return PROTO_ERR_UNKNOWN_OP;
  }

  /* Copying a constant compiles to a few vector stores, where zeroing the
   * struct in place compiled to a slower rep stos (GCC 12, -O2). */
  static const struct proto_cmd cmd_empty = {.max_msgs = -1};
  *cmd = cmd_empty;
  cmd->op = def->op;
  if (def->kind == LINE_BARE) {
    const char *lf = memchr(buf + pos, '\n', len - pos);
    if (!lf)
      return uncounted_need_more(len - pos, lim);
    return op_foreign(def->op, side) ? PROTO_ERR_UNKNOWN_OP : (int)(lf - buf + 1);
  }

  /* The blanks between name and argument. */
  if (def->kind == LINE_ARGS) {
    if (pos == len)
      return PROTO_NEED_MORE;
    if (!is_blank(buf[pos]))
      return PROTO_ERR_UNKNOWN_OP;
    pos++;
  }
  while (pos < len && is_blank(buf[pos]))
    pos++;
  if (pos == len)
    return uncounted_need_more(len - def->name_len, lim);

  /* The argument: from pos to the first LF after it. */
  size_t arg_start = pos;
  const char *lf_ptr = memchr(buf + arg_start + 1, '\n', len - arg_start - 1);
  if (!lf_ptr) {
    bool long_arg = lim && len - arg_start > lim->max_control_line;
    if (long_arg && arg_end(buf, arg_start, len) - arg_start > lim->max_control_line)
      return PROTO_ERR_MAX_CONTROL_LINE;
    return PROTO_NEED_MORE;
  }
  size_t lf = (size_t)(lf_ptr - buf);
  size_t end = arg_end(buf, arg_start, lf);
  if (lim && end - arg_start > lim->max_control_line)
    return PROTO_ERR_MAX_CONTROL_LINE;
  if (op_foreign(def->op, side))
    return PROTO_ERR_UNKNOWN_OP;

  struct proto_slice arg = {buf + arg_start, (uint32_t)(end - arg_start)};
  int rc = parse_args(cmd, arg, lim);
  if (rc < 0)
    return rc;

  bool has_payload = def->op == PROTO_OP_PUB || def->op == PROTO_OP_HPUB ||
                     def->op == PROTO_OP_MSG || def->op == PROTO_OP_HMSG;
  if (!has_payload)
    return (int)(lf + 1);
  return take_payload(buf, len, lf + 1, cmd);
}

const char *proto_err_text(int err)
{
  switch (err) {
  case PROTO_ERR_UNKNOWN_OP:
  case PROTO_ERR_BAD_TERMINATOR:
    return "'Unknown Protocol Operation'";
  case PROTO_ERR_MAX_CONTROL_LINE:
    return "'maximum control line exceeded'";
  case PROTO_ERR_MAX_PAYLOAD:
    return "'Maximum Payload Violation'";
  default: /* BAD_ARGS, BAD_HEADER, NO_HEADERS: closed without a reply */
    return NULL;
  }
}

bool proto_err_closes(int err)
{
  switch (err) {
  case PROTO_ERR_UNKNOWN_OP:
  case PROTO_ERR_MAX_CONTROL_LINE:
  case PROTO_ERR_MAX_PAYLOAD:
  case PROTO_ERR_BAD_ARGS:
  case PROTO_ERR_BAD_TERMINATOR:
  case PROTO_ERR_BAD_HEADER:
  case PROTO_ERR_NO_HEADERS:
    return true;
  default:
    return false;
  }
}
