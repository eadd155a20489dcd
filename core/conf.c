/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration file: a parser for nats-server's format into a tree of
 * values tagged with file and line, and the mapping of that tree onto
 * struct opts.
 *
 * The language is the one nats-server 2.9.10 accepts (conf/lex.go and
 * conf/parse.go), quirks included, because a fleet's existing files must
 * load unchanged and mean the same thing:
 * - A key ends at white space, '=' or ':'. At the top level a new line may
 *   come between a key and its separator or value. It may not come between
 *   the separator and the value, except inside a block.
 * - An unquoted value that starts with a digit is a number only when it
 *   ends at white space, a new line, ',', ';', '}' or the end of the file.
 *   So "4222#x" and "1]" are strings, while "1m30s" is the integer 1m
 *   followed by garbage (an error).
 * - Integer suffixes: k, m, g, t, p, e are powers of 1000; kb, ki, kib (and
 *   so on) are powers of 1024. So unquoted 1G is 10^9 and 1GB is 2^30; a
 *   quoted "1G" stays a string, which the JetStream size keys read as 2^30.
 * - An unquoted "2m" is the integer 2000000, so "ping_interval: 2m" means
 *   2000000 seconds; durations must be quoted to mean minutes.
 * - A lone '/' after a value is skipped at the top level and separates
 *   elements in arrays and blocks.
 * - include paths are joined to the including file's directory even when
 *   absolute, because nats-server joins them with Go's filepath.Join.
 * Where nats-server silently accepts a broken file (a key with no value at
 * the end of the file, an unknown size suffix such as 1kbb), this parser
 * reports an error instead.
 *
 * Every loop consumes input on each iteration or ends, so the file's length
 * bounds it. CONF_DEPTH_MAX, CONF_INCLUDE_DEPTH_MAX and ENV_DEPTH_MAX bound
 * the recursion. */
#include "core/conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/log.h"

#define END_OF_INPUT (-1)
#define ENV_DEPTH_MAX 8 /* an environment variable whose value names another */
#define KEY_NAME_MAX 80 /* how much of a key error messages quote */

struct conf_error {
  const char *file;
  int line; /* 0 when the error concerns the whole file */
  char message[512];
};

struct parser {
  struct conf_doc *doc;
  const char *file; /* interned in doc */
  const char *text;
  size_t len;
  size_t pos;
  int line;
  /* The enclosing blocks, innermost last, searched for $variables. */
  struct conf_value *scopes[CONF_DEPTH_MAX + 1];
  int scope_count;
  int depth;
  int include_depth;
  int env_depth;
  struct conf_error *error;
};

struct strbuf {
  char *data;
  size_t len;
  size_t cap;
};

static int parse_value(struct parser *p, const char *key, struct conf_value **out);
static int parse_document(struct conf_doc *doc, const char *text, size_t len, const char *name,
                          int include_depth, int env_depth, struct conf_error *error,
                          struct conf_value **root_out);

/* ---- Characters ---- */

static int peek(const struct parser *p) {
  return p->pos < p->len ? (unsigned char)p->text[p->pos] : END_OF_INPUT;
}

static int peek_next(const struct parser *p) {
  return p->pos + 1 < p->len ? (unsigned char)p->text[p->pos + 1] : END_OF_INPUT;
}

static void advance(struct parser *p) {
  ASSERT(p->pos < p->len);
  if (p->text[p->pos] == '\n') p->line++;
  p->pos++;
}

static bool is_blank(int c) { return c == ' ' || c == '\t'; }

static bool is_newline(int c) { return c == '\n' || c == '\r'; }

/* Go's unicode.IsSpace for ASCII. */
static bool is_space(int c) { return is_blank(c) || is_newline(c) || c == '\v' || c == '\f'; }

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool is_key_separator(int c) { return c == '=' || c == ':'; }

static bool is_size_suffix(int c) { return c != END_OF_INPUT && strchr("kKmMgGtTpPeE", c) != NULL; }

static bool at_comment(const struct parser *p) {
  return peek(p) == '#' || (peek(p) == '/' && peek_next(p) == '/');
}

/* Skips a comment up to, not including, its new line. */
static void skip_comment(struct parser *p) {
  while (peek(p) != END_OF_INPUT && !is_newline(peek(p))) advance(p);
}

/* Skips white space, new lines and comments; returns the next character. */
static int skip_space_and_comments(struct parser *p) {
  for (;;) {
    int c = peek(p);
    if (is_space(c)) {
      advance(p);
    } else if (at_comment(p)) {
      skip_comment(p);
    } else {
      return c;
    }
  }
}

static const char *describe_char(int c, char buf[16]) {
  if (c == END_OF_INPUT) return "the end of the file";
  if (c == '\n') return "a new line";
  if (c == '\r') return "a carriage return";
  if (c > ' ' && c < 0x7f) {
    snprintf(buf, 16, "'%c'", c);
  } else {
    snprintf(buf, 16, "byte 0x%02x", (unsigned)c);
  }
  return buf;
}

/* ---- Errors and memory ---- */

static int parse_error(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error; later ones are consequences of it. Returns -1. */
static int parse_error(struct parser *p, int line, const char *fmt, ...) {
  if (p->error->message[0] != '\0') return -1;
  p->error->file = p->file;
  p->error->line = line;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->error->message, sizeof p->error->message, fmt, ap);
  va_end(ap);
  return -1;
}

static int out_of_memory(struct parser *p) { return parse_error(p, p->line, "out of memory"); }

static int strbuf_add(struct strbuf *sb, const char *bytes, size_t n) {
  if (sb->len + n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap * 2 : 64;
    while (cap < sb->len + n + 1) cap *= 2;
    char *data = realloc(sb->data, cap);
    if (data == NULL) return -ENOMEM;
    sb->data = data;
    sb->cap = cap;
  }
  memcpy(sb->data + sb->len, bytes, n);
  sb->len += n;
  sb->data[sb->len] = '\0';
  return 0;
}

static void value_free(struct conf_value *v) {
  if (v == NULL) return;
  free(v->text);
  switch (v->type) {
  case CONF_STRING:
    free(v->as.string.bytes);
    break;
  case CONF_ARRAY:
    for (int i = 0; i < v->as.array.count; i++) value_free(v->as.array.items[i]);
    free(v->as.array.items);
    break;
  case CONF_MAP:
    for (int i = 0; i < v->as.map.count; i++) {
      free(v->as.map.entries[i].key);
      value_free(v->as.map.entries[i].value);
    }
    free(v->as.map.entries);
    break;
  default:
    break;
  }
  free(v);
}

static struct conf_value *value_new(struct parser *p, enum conf_type type, int line) {
  struct conf_value *v = calloc(1, sizeof *v);
  if (v == NULL) {
    out_of_memory(p);
    return NULL;
  }
  v->type = type;
  v->file = p->file;
  v->line = line;
  return v;
}

/* Makes a string value that takes over bytes (len bytes, NUL-terminated). */
static struct conf_value *string_new(struct parser *p, int line, char *bytes, size_t len) {
  struct conf_value *v = value_new(p, CONF_STRING, line);
  if (v == NULL) {
    free(bytes);
    return NULL;
  }
  v->as.string.bytes = bytes;
  v->as.string.len = len;
  return v;
}

static struct conf_value *string_from_text(struct parser *p, int line, const char *s, size_t n) {
  char *bytes = strndup(s, n);
  if (bytes == NULL) {
    out_of_memory(p);
    return NULL;
  }
  return string_new(p, line, bytes, n);
}

/* Makes a scalar that keeps its source text for messages. */
static struct conf_value *scalar_new(struct parser *p, enum conf_type type, int line, size_t start) {
  struct conf_value *v = value_new(p, type, line);
  if (v == NULL) return NULL;
  v->text = strndup(p->text + start, p->pos - start);
  if (v->text == NULL) {
    free(v);
    out_of_memory(p);
    return NULL;
  }
  return v;
}

static struct conf_entry *map_find(const struct conf_value *map, const char *key) {
  for (int i = 0; i < map->as.map.count; i++) {
    if (strcmp(map->as.map.entries[i].key, key) == 0) return &map->as.map.entries[i];
  }
  return NULL;
}

/* Sets key in map, taking over key and value. An earlier definition of the
 * key is dropped, so the entries stay in the order of each key's last line. */
static int map_set(struct parser *p, struct conf_value *map, char *key, const char *file,
                   int line, struct conf_value *value) {
  struct conf_entry *old = map_find(map, key);
  if (old != NULL) {
    free(old->key);
    value_free(old->value);
    struct conf_entry *end = map->as.map.entries + map->as.map.count;
    memmove(old, old + 1, (size_t)(end - old - 1) * sizeof *old);
    map->as.map.count--;
  }

  struct conf_entry *entries =
      realloc(map->as.map.entries, (size_t)(map->as.map.count + 1) * sizeof *entries);
  if (entries == NULL) {
    free(key);
    value_free(value);
    return out_of_memory(p);
  }
  map->as.map.entries = entries;
  entries[map->as.map.count++] = (struct conf_entry){key, file, line, value};
  return 0;
}

static int array_append(struct parser *p, struct conf_value *array, struct conf_value *value) {
  struct conf_value **items =
      realloc(array->as.array.items, (size_t)(array->as.array.count + 1) * sizeof *items);
  if (items == NULL) {
    value_free(value);
    return out_of_memory(p);
  }
  array->as.array.items = items;
  items[array->as.array.count++] = value;
  return 0;
}

static struct conf_value *value_copy(struct parser *p, const struct conf_value *src) {
  struct conf_value *v = value_new(p, src->type, src->line);
  if (v == NULL) return NULL;
  v->file = src->file;
  bool failed = src->text != NULL && (v->text = strdup(src->text)) == NULL;

  switch (src->type) {
  case CONF_STRING:
    v->as.string.len = src->as.string.len;
    v->as.string.bytes = malloc(src->as.string.len + 1);
    failed = failed || v->as.string.bytes == NULL;
    if (v->as.string.bytes != NULL) {
      memcpy(v->as.string.bytes, src->as.string.bytes, src->as.string.len + 1);
    }
    break;
  case CONF_ARRAY:
    for (int i = 0; !failed && i < src->as.array.count; i++) {
      struct conf_value *item = value_copy(p, src->as.array.items[i]);
      failed = item == NULL || array_append(p, v, item) != 0;
    }
    break;
  case CONF_MAP:
    for (int i = 0; !failed && i < src->as.map.count; i++) {
      const struct conf_entry *from = &src->as.map.entries[i];
      char *key = strdup(from->key);
      struct conf_value *item = key != NULL ? value_copy(p, from->value) : NULL;
      if (item == NULL) free(key);
      failed = item == NULL || map_set(p, v, key, from->file, from->line, item) != 0;
    }
    break;
  default:
    v->as = src->as;
    break;
  }
  if (failed) {
    value_free(v);
    out_of_memory(p);
    return NULL;
  }
  return v;
}

/* Returns the doc's copy of name, adding it on first use, or NULL. */
static const char *doc_intern_file(struct conf_doc *doc, const char *name) {
  for (int i = 0; i < doc->file_count; i++) {
    if (strcmp(doc->files[i], name) == 0) return doc->files[i];
  }
  char **files = realloc(doc->files, (size_t)(doc->file_count + 1) * sizeof *files);
  if (files == NULL) return NULL;
  doc->files = files;
  files[doc->file_count] = strdup(name);
  if (files[doc->file_count] == NULL) return NULL;
  return files[doc->file_count++];
}

/* ---- Strings ---- */

static int hex_digit(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes one escape sequence at '\\' into sb: \xHH, \t, \n, \r, \" or \\,
 * the set nats-server allows in double-quoted and unquoted strings. */
static int scan_escape(struct parser *p, struct strbuf *sb) {
  advance(p);
  int c = peek(p);
  char decoded;
  switch (c) {
  case 't': decoded = '\t'; break;
  case 'n': decoded = '\n'; break;
  case 'r': decoded = '\r'; break;
  case '"': decoded = '"'; break;
  case '\\': decoded = '\\'; break;
  case 'x': {
    advance(p);
    int hi = hex_digit(peek(p));
    if (hi >= 0) advance(p);
    int lo = hi >= 0 ? hex_digit(peek(p)) : -1;
    if (lo < 0) {
      return parse_error(p, p->line, "invalid escape in string: expected two hexadecimal "
                                      "digits after \\x");
    }
    decoded = (char)(hi * 16 + lo);
    break;
  }
  default:
    if (c > ' ' && c < 0x7f) {
      return parse_error(p, p->line,
                         "invalid escape '\\%c': expected one of \\xHH, \\t, \\n, \\r, \\\" "
                         "and \\\\",
                         c);
    }
    return parse_error(p, p->line,
                       "invalid escape: expected one of \\xHH, \\t, \\n, \\r, \\\" and \\\\");
  }
  advance(p);
  return strbuf_add(sb, &decoded, 1) == 0 ? 0 : out_of_memory(p);
}

/* A string in quote characters. Single quotes take the bytes as they are;
 * double quotes decode escapes. */
static int scan_quoted(struct parser *p, struct conf_value **out) {
  int line = p->line;
  int quote = peek(p);
  struct strbuf sb = {0};
  advance(p);
  for (;;) {
    int c = peek(p);
    if (c == END_OF_INPUT) {
      free(sb.data);
      return parse_error(p, line, "string starting on line %d is not closed: expected %c", line,
                         quote);
    }
    if (c == quote) break;
    if (c == '\\' && quote == '"') {
      if (scan_escape(p, &sb) != 0) {
        free(sb.data);
        return -1;
      }
      continue;
    }
    char byte = (char)c;
    if (strbuf_add(&sb, &byte, 1) != 0) {
      free(sb.data);
      return out_of_memory(p);
    }
    advance(p);
  }
  advance(p);
  if (sb.data == NULL && strbuf_add(&sb, "", 0) != 0) return out_of_memory(p);
  *out = string_new(p, line, sb.data, sb.len);
  return *out != NULL ? 0 : -1;
}

/* A block string: from after '(' to a ')' that is alone at the start of
 * a line, followed by a new line or the end of the file. The new line
 * before the ')' belongs to the value. nats-server 2.9.10 also keeps the
 * ')' when the file ends right after it; this parser does not. */
static int scan_block_string(struct parser *p, struct conf_value **out) {
  int line = p->line;
  advance(p);
  size_t start = p->pos;
  for (;;) {
    int c = peek(p);
    if (c == END_OF_INPUT) {
      return parse_error(p, line,
                         "block string starting on line %d is not closed: expected ')' alone "
                         "at the start of a line",
                         line);
    }
    if (c == ')' && p->text[p->pos - 1] == '\n' &&
        (peek_next(p) == '\n' || peek_next(p) == END_OF_INPUT)) {
      break;
    }
    advance(p);
  }
  *out = string_from_text(p, line, p->text + start, p->pos - start);
  advance(p);
  return *out != NULL ? 0 : -1;
}

static bool is_bool_word(const char *s, size_t n, bool *value) {
  static const struct {
    const char *word;
    bool value;
  } words[] = {{"true", true}, {"yes", true}, {"on", true},
               {"false", false}, {"no", false}, {"off", false}};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    if (strlen(words[i].word) == n && strncasecmp(s, words[i].word, n) == 0) {
      *value = words[i].value;
      return true;
    }
  }
  return false;
}

static int resolve_variable(struct parser *p, const char *name, int line, struct conf_value **out);

/* Finishes an unquoted value whose text began at start: a string, or a
 * boolean or $variable when the text has no escapes. It ends before white
 * space, a new line, ',', ';', ']', '}' or the end of the file, and a
 * single quote ends it too (and is dropped), as in nats-server. */
static int scan_unquoted(struct parser *p, size_t start, int line, struct conf_value **out) {
  struct strbuf sb = {0};
  bool escaped = false;
  size_t segment = start;
  int c;
  for (;;) {
    c = peek(p);
    if (c == '\\') {
      if (strbuf_add(&sb, p->text + segment, p->pos - segment) != 0) {
        free(sb.data);
        return out_of_memory(p);
      }
      if (scan_escape(p, &sb) != 0) {
        free(sb.data);
        return -1;
      }
      escaped = true;
      segment = p->pos;
      continue;
    }
    if (c == END_OF_INPUT || is_newline(c) || is_blank(c) || c == ',' || c == ';' || c == ']' ||
        c == '}' || c == '\'') {
      break;
    }
    advance(p);
  }

  size_t end = p->pos;
  if (c == '\'') advance(p);
  if (strbuf_add(&sb, p->text + segment, end - segment) != 0) {
    free(sb.data);
    return out_of_memory(p);
  }

  bool boolean;
  if (!escaped && c != '\'' && is_bool_word(p->text + start, end - start, &boolean)) {
    free(sb.data);
    *out = scalar_new(p, CONF_BOOL, line, start);
    if (*out == NULL) return -1;
    (*out)->as.boolean = boolean;
    return 0;
  }
  if (!escaped && c != '\'' && end > start && p->text[start] == '$') {
    int rc = resolve_variable(p, sb.data + 1, line, out);
    free(sb.data);
    return rc;
  }
  *out = string_new(p, line, sb.data, sb.len);
  return *out != NULL ? 0 : -1;
}

/* ---- Numbers and dates ---- */

/* Characters that end an unquoted number in nats-server. A digit is among
 * them so that "1k5" is the integer 1k followed by an error. */
static bool ends_number(int c) {
  return c == END_OF_INPUT || is_newline(c) || is_blank(c) || c == '}' || c == ';' || c == ',' ||
         is_digit(c);
}

/* Returns the multiplier for a lower-cased integer suffix, or 0. */
static int64_t size_multiplier(const char *suffix) {
  static const char units[] = "kmgtpe";
  if (suffix[0] == '\0') return 1;
  const char *unit = strchr(units, suffix[0]);
  if (unit == NULL) return 0;
  int power = (int)(unit - units) + 1;

  const char *rest = suffix + 1;
  int64_t base;
  if (rest[0] == '\0') {
    base = 1000;
  } else if (strcmp(rest, "b") == 0 || strcmp(rest, "i") == 0 || strcmp(rest, "ib") == 0) {
    base = 1024;
  } else {
    return 0;
  }
  int64_t m = 1;
  for (int i = 0; i < power; i++) m *= base;
  return m;
}

/* The integer text[start, pos): digits with an optional '-' and suffix. */
static int make_integer(struct parser *p, size_t start, int line, struct conf_value **out) {
  struct conf_value *v = scalar_new(p, CONF_INTEGER, line, start);
  if (v == NULL) return -1;

  char *suffix = v->text;
  while (*suffix == '-' || is_digit(*suffix)) suffix++;
  char lowered[8] = {0};
  size_t suffix_len = strlen(suffix);
  for (size_t i = 0; i < suffix_len && i < sizeof lowered - 1; i++) {
    lowered[i] = (char)tolower((unsigned char)suffix[i]);
  }
  int64_t multiplier = suffix_len < sizeof lowered ? size_multiplier(lowered) : 0;
  if (multiplier == 0) {
    parse_error(p, line,
                "invalid size '%s': expected a number with one of the suffixes k, kb, ki, kib, m, "
                "mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, p, pb, pi, pib, e, eb, ei, eib",
                v->text);
    value_free(v);
    return -1;
  }

  errno = 0;
  long long number = strtoll(v->text, NULL, 10);
  if (errno == ERANGE || __builtin_mul_overflow(number, multiplier, &v->as.integer)) {
    parse_error(p, line, "integer '%s' is out of range", v->text);
    value_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

/* At the '.' after the digits of text[start, pos): a float, or an address
 * such as 127.0.0.1:4222 (a string) when a second '.' follows. */
static int scan_float(struct parser *p, size_t start, int line, struct conf_value **out) {
  advance(p);
  if (!is_digit(peek(p))) {
    char buf[16];
    return parse_error(p, line, "invalid number '%.*s': expected a digit after '.', found %s",
                       (int)(p->pos - start), p->text + start, describe_char(peek(p), buf));
  }
  while (is_digit(peek(p))) advance(p);

  if (peek(p) == '.') {
    while (is_digit(peek(p)) || peek(p) == '.' || peek(p) == ':' || peek(p) == '-') advance(p);
    *out = string_from_text(p, line, p->text + start, p->pos - start);
    return *out != NULL ? 0 : -1;
  }

  struct conf_value *v = scalar_new(p, CONF_FLOAT, line, start);
  if (v == NULL) return -1;
  v->as.number = strtod(v->text, NULL);
  if (!isfinite(v->as.number)) {
    parse_error(p, line, "float '%s' is out of range", v->text);
    value_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

static bool is_leap_year(int64_t year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t year, int month, int day) {
  year -= month <= 2;
  int64_t era = (year >= 0 ? year : year - 399) / 400;
  int64_t year_of_era = year - era * 400;
  int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

/* At the '-' after four digits: a datetime in the only form nats-server
 * takes, 2006-01-02T15:04:05Z. */
static int scan_datetime(struct parser *p, size_t start, int line, struct conf_value **out) {
  static const char form[] = "-00-00T00:00:00Z";
  for (const char *f = form; *f != '\0'; f++) {
    int c = peek(p);
    if (*f == '0' ? !is_digit(c) : c != *f) {
      return parse_error(p, line, "invalid date '%.*s': expected the form YYYY-MM-DDTHH:MM:SSZ",
                         (int)(p->pos - start + (c != END_OF_INPUT && !is_space(c))),
                         p->text + start);
    }
    advance(p);
  }

  const char *t = p->text + start;
  int year = atoi(t), month = atoi(t + 5), day = atoi(t + 8);
  int hour = atoi(t + 11), minute = atoi(t + 14), second = atoi(t + 17);
  static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool valid = month >= 1 && month <= 12 && day >= 1 && hour < 24 && minute < 60 && second < 60;
  if (valid) valid = day <= month_days[month - 1] + (month == 2 && is_leap_year(year));
  if (!valid) {
    return parse_error(p, line, "invalid date '%.*s': a field is out of range",
                       (int)(p->pos - start), t);
  }

  struct conf_value *v = scalar_new(p, CONF_DATETIME, line, start);
  if (v == NULL) return -1;
  v->as.unix_seconds =
      days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  *out = v;
  return 0;
}

/* A value that starts with a digit or '-': an integer (with an optional
 * size suffix), a float, a datetime, an address, or else an unquoted
 * string, decided the way nats-server's lexer decides it. */
static int scan_number(struct parser *p, struct conf_value **out) {
  size_t start = p->pos;
  int line = p->line;
  bool negative = peek(p) == '-';
  char buf[16];
  if (negative) {
    advance(p);
    if (peek(p) == '.') {
      return parse_error(p, line, "invalid number: a float must start with a digit, not '.'");
    }
    if (!is_digit(peek(p))) {
      return parse_error(p, line, "expected a digit after '-', found %s",
                         describe_char(peek(p), buf));
    }
  }
  while (is_digit(peek(p))) advance(p);

  int c = peek(p);
  if (c == '-' && !negative) {
    if (p->pos - start == 4) return scan_datetime(p, start, line, out);
    return parse_error(p, line, "invalid number '%.*s-': a date must have the form "
                                "YYYY-MM-DDTHH:MM:SSZ",
                       (int)(p->pos - start), p->text + start);
  }
  if (c == '.') return scan_float(p, start, line, out);
  if (is_size_suffix(c)) {
    advance(p);
    while (peek(p) != END_OF_INPUT && strchr("bBiI", peek(p)) != NULL) advance(p);
    if (ends_number(peek(p))) return make_integer(p, start, line, out);
    return scan_unquoted(p, start, line, out);
  }
  if (!negative && !ends_number(c)) return scan_unquoted(p, start, line, out);
  return make_integer(p, start, line, out);
}

/* ---- Variables ---- */

/* Parses the environment variable's value the way a value in a file is
 * parsed, so "4222" is an integer and "1G" a size. Returns 1 when the
 * variable is not set. */
static int resolve_from_environment(struct parser *p, const char *name, int line,
                                    struct conf_value **out) {
  const char *raw = getenv(name);
  if (raw == NULL) return 1;
  if (p->env_depth >= ENV_DEPTH_MAX) {
    return parse_error(p, line, "environment variable $%s refers to variables nested deeper "
                                "than %d levels",
                       name, ENV_DEPTH_MAX);
  }

  /* Name the key after the variable when it is a plain word, so messages
   * about its value read naturally. */
  bool plain = name[0] != '\0' && strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789_") == strlen(name);
  const char *key = plain ? name : "value";
  char *text = NULL;
  int len = asprintf(&text, "%s=%s", key, raw);
  char label[KEY_NAME_MAX + 32];
  snprintf(label, sizeof label, "environment variable $%s", name);
  if (len < 0) return out_of_memory(p);

  struct conf_error error = {0};
  struct conf_value *root = NULL;
  int rc = parse_document(p->doc, text, (size_t)len, label, p->include_depth, p->env_depth + 1,
                          &error, &root);
  free(text);
  /* An error about a variable nested in this one is passed on as it is. */
  if (rc != 0 && (strncmp(error.message, "cannot use environment variable", 31) == 0 ||
                  strncmp(error.message, "environment variable", 20) == 0)) {
    return parse_error(p, line, "%s", error.message);
  }
  if (rc != 0) {
    return parse_error(p, line, "cannot use environment variable $%s: %s", name, error.message);
  }
  struct conf_entry *entry = map_find(root, key);
  if (entry != NULL) {
    *out = entry->value;
    entry->value = NULL;
  } else {
    /* "NAME=" with nothing after it parses as an empty string. */
    *out = string_from_text(p, line, "", 0);
  }
  value_free(root);
  return *out != NULL ? 0 : -1;
}

/* Replaces a $variable by a copy of the value of the key of that name in
 * the innermost enclosing block that has one, else by the environment
 * variable. "$2a$..." is a bcrypt hash, not a variable. */
static int resolve_variable(struct parser *p, const char *name, int line, struct conf_value **out) {
  if (strncmp(name, "2a$", 3) == 0) {
    char *hash = NULL;
    int len = asprintf(&hash, "$%s", name);
    if (len < 0) return out_of_memory(p);
    *out = string_new(p, line, hash, (size_t)len);
    return *out != NULL ? 0 : -1;
  }

  for (int i = p->scope_count - 1; i >= 0; i--) {
    struct conf_entry *entry = map_find(p->scopes[i], name);
    if (entry == NULL) continue;
    entry->value->used = true;
    *out = value_copy(p, entry->value);
    if (*out == NULL) return -1;
    (*out)->file = p->file;
    (*out)->line = line;
    return 0;
  }

  int rc = resolve_from_environment(p, name, line, out);
  if (rc == 1) {
    return parse_error(p, line,
                       "variable $%s is not defined in an enclosing block or in the environment",
                       name);
  }
  if (rc == 0) {
    (*out)->file = p->file;
    (*out)->line = line;
  }
  return rc;
}

/* ---- Includes ---- */

/* Reads a whole file (a pipe too) of at most CONF_FILE_SIZE_MAX bytes.
 * Returns 0, or a negative errno (-EFBIG when it is larger). */
static int read_file(const char *path, char **text_out, size_t *len_out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int err = fstat(fd, &st) != 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
  if (err != 0) {
    close(fd);
    return err;
  }

  struct strbuf sb = {0};
  for (;;) {
    char chunk[16384];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = -errno;
    if (n <= 0) break;
    if (sb.len + (size_t)n > CONF_FILE_SIZE_MAX) {
      err = -EFBIG;
      break;
    }
    if (strbuf_add(&sb, chunk, (size_t)n) != 0) {
      err = -ENOMEM;
      break;
    }
  }
  close(fd);
  if (err == 0 && sb.data == NULL && strbuf_add(&sb, "", 0) != 0) err = -ENOMEM;
  if (err != 0) {
    free(sb.data);
    return err;
  }
  *text_out = sb.data;
  *len_out = sb.len;
  return 0;
}

/* Joins name to the directory of file the way Go's filepath.Join does in
 * nats-server: an absolute name is still taken as relative. */
static char *include_path(const char *file, const char *name) {
  const char *slash = strrchr(file, '/');
  while (*name == '/') name++;
  char *path = NULL;
  int rc = slash == NULL ? asprintf(&path, "%s", name)
           : slash == file ? asprintf(&path, "/%s", name)
                           : asprintf(&path, "%.*s/%s", (int)(slash - file), file, name);
  return rc < 0 ? NULL : path;
}

/* Reads the file name after the include keyword: quoted, or unquoted up to
 * white space, a new line, ';', '}' or a single quote. */
static int scan_include_name(struct parser *p, int line, char **name_out) {
  while (is_blank(peek(p))) advance(p);
  int c = peek(p);
  char buf[16];
  if (c == END_OF_INPUT || is_newline(c) || c == '[' || c == '{' || c == '(' || c == '-' ||
      c == '\\' || is_digit(c)) {
    return parse_error(p, line, "expected a file name after include, found %s",
                       describe_char(c, buf));
  }

  size_t start;
  size_t end;
  if (c == '"' || c == '\'') {
    advance(p);
    start = p->pos;
    while (peek(p) != END_OF_INPUT && peek(p) != c) advance(p);
    if (peek(p) == END_OF_INPUT) {
      return parse_error(p, line, "include file name starting on line %d is not closed: "
                                  "expected %c",
                         line, c);
    }
    end = p->pos;
    advance(p);
  } else {
    start = p->pos;
    for (c = peek(p); c != END_OF_INPUT && !is_newline(c) && !is_blank(c) && c != ';' &&
                      c != '}' && c != '\'';
         c = peek(p)) {
      advance(p);
    }
    end = p->pos;
    if (c == '\'') advance(p);
  }
  *name_out = strndup(p->text + start, end - start);
  return *name_out != NULL ? 0 : out_of_memory(p);
}

/* Parses the included file and merges its top-level keys into map. The
 * included file can refer to environment variables but not to the
 * including file's keys, and the including file can refer to the included
 * keys from here on. */
static int parse_include(struct parser *p, struct conf_value *map, int line) {
  char *name = NULL;
  if (scan_include_name(p, line, &name) != 0) return -1;
  if (p->include_depth >= CONF_INCLUDE_DEPTH_MAX) {
    parse_error(p, line, "include '%s' is nested deeper than %d includes; is there an include loop?",
                name, CONF_INCLUDE_DEPTH_MAX);
    free(name);
    return -1;
  }
  char *path = include_path(p->file, name);
  if (path == NULL) {
    free(name);
    return out_of_memory(p);
  }

  char *text = NULL;
  size_t len = 0;
  int rc = read_file(path, &text, &len);
  if (rc != 0) {
    parse_error(p, line, "cannot read include file '%s': %s", path, strerror(-rc));
    free(name);
    free(path);
    return -1;
  }
  free(name);

  struct conf_value *root = NULL;
  rc = parse_document(p->doc, text, len, path, p->include_depth + 1, p->env_depth, p->error,
                      &root);
  free(text);
  free(path);
  if (rc != 0) return -1;

  for (int i = 0; i < root->as.map.count && rc == 0; i++) {
    struct conf_entry *e = &root->as.map.entries[i];
    rc = map_set(p, map, e->key, e->file, e->line, e->value);
    e->key = NULL;
    e->value = NULL;
  }
  value_free(root);
  return rc;
}

/* ---- Blocks, arrays and keys ---- */

/* A digit right after a value is most often an unquoted duration such as
 * 1m30s, which nats-server splits into the integer 1m and garbage. */
static const char *digit_hint(const struct parser *p) {
  bool glued = is_digit(peek(p)) && p->pos > 0 && !is_blank(p->text[p->pos - 1]);
  return glued ? "; write durations such as \"1m30s\" in quotes" : "";
}

/* After an array element: ',' or a new line continues, ']' ends. Returns
 * 1 at the end, 0 to continue, -1 on error. */
static int end_array_element(struct parser *p, int array_line) {
  for (;;) {
    int c = peek(p);
    if (is_blank(c)) {
      advance(p);
    } else if (at_comment(p)) {
      skip_comment(p);
    } else if (c == ',' || c == '/' || is_newline(c)) {
      advance(p);
      return 0;
    } else if (c == ']') {
      advance(p);
      return 1;
    } else {
      char buf[16];
      return parse_error(p, p->line,
                         "expected ',', a new line or ']' after an element of the array "
                         "starting on line %d, found %s%s",
                         array_line, describe_char(c, buf), digit_hint(p));
    }
  }
}

static int parse_array_elements(struct parser *p, struct conf_value *array, const char *key) {
  for (;;) {
    int c = skip_space_and_comments(p);
    char buf[16];
    if (c == END_OF_INPUT) {
      return parse_error(p, array->line,
                         "array starting on line %d is not closed: expected ']'", array->line);
    }
    if (c == ']') {
      advance(p);
      return 0;
    }
    if (c == ',' || c == '/') {
      return parse_error(p, p->line, "expected an array element or ']', found %s",
                         describe_char(c, buf));
    }

    struct conf_value *element = NULL;
    if (parse_value(p, key, &element) != 0) return -1;
    if (array_append(p, array, element) != 0) return -1;
    int rc = end_array_element(p, array->line);
    if (rc != 0) return rc < 0 ? -1 : 0;
  }
}

static int parse_map_entries(struct parser *p, struct conf_value *map);

/* A '[' array or '{' block, with the nesting depth bounded. */
static int parse_container(struct parser *p, enum conf_type type, const char *key,
                           struct conf_value **out) {
  if (p->depth >= CONF_DEPTH_MAX) {
    return parse_error(p, p->line, "blocks and arrays are nested deeper than %d levels",
                       CONF_DEPTH_MAX);
  }
  struct conf_value *v = value_new(p, type, p->line);
  if (v == NULL) return -1;
  advance(p);

  p->depth++;
  int rc;
  if (type == CONF_ARRAY) {
    rc = parse_array_elements(p, v, key);
  } else {
    p->scopes[p->scope_count++] = v;
    rc = parse_map_entries(p, v);
    p->scope_count--;
  }
  p->depth--;

  if (rc != 0) {
    value_free(v);
    return -1;
  }
  *out = v;
  return 0;
}

/* Parses one value at the current position; key names it in messages. */
static int parse_value(struct parser *p, const char *key, struct conf_value **out) {
  while (is_blank(peek(p))) advance(p);
  int c = peek(p);
  switch (c) {
  case '[':
    return parse_container(p, CONF_ARRAY, key, out);
  case '{':
    return parse_container(p, CONF_MAP, key, out);
  case '"':
  case '\'':
    return scan_quoted(p, out);
  case '(':
    return scan_block_string(p, out);
  case '-':
    return scan_number(p, out);
  case '.':
    return parse_error(p, p->line, "invalid number: a float must start with a digit, not '.'");
  case '\n':
  case '\r':
    return parse_error(p, p->line, "expected a value for '%s', found a new line", key);
  }
  if (is_digit(c)) return scan_number(p, out);
  return scan_unquoted(p, p->pos, p->line, out);
}

/* Reads a key: quoted (taken as it is, never a keyword) or unquoted up to
 * white space or a separator. Sets *include when the key is the include
 * keyword. */
static int scan_key(struct parser *p, char **key_out, bool *include) {
  int line = p->line;
  int c = peek(p);
  size_t start;
  size_t end;
  *include = false;
  if (c == '"' || c == '\'') {
    advance(p);
    start = p->pos;
    while (peek(p) != END_OF_INPUT && peek(p) != c) advance(p);
    if (peek(p) == END_OF_INPUT) {
      return parse_error(p, line, "key starting on line %d is not closed: expected %c", line, c);
    }
    end = p->pos;
    advance(p);
  } else {
    start = p->pos;
    while (peek(p) != END_OF_INPUT && !is_space(peek(p)) && !is_key_separator(peek(p))) {
      advance(p);
    }
    end = p->pos;
    *include = is_space(peek(p)) && end - start == 7 && strncasecmp(p->text + start, "include", 7) == 0;
  }
  *key_out = strndup(p->text + start, end - start);
  return *key_out != NULL ? 0 : out_of_memory(p);
}

/* Parses "key value", "key = value" or "key: value", or an include, into
 * map. top selects the top level's rule that the value must be on the same
 * line as a separator. key_name receives the key for later messages. */
static int parse_entry(struct parser *p, struct conf_value *map, bool top,
                       char key_name[KEY_NAME_MAX]) {
  int line = p->line;
  char *key = NULL;
  bool include;
  if (scan_key(p, &key, &include) != 0) return -1;
  snprintf(key_name, KEY_NAME_MAX, "%s", key);
  if (include) {
    free(key);
    return parse_include(p, map, line);
  }

  /* White space and new lines may separate the key from its separator or
   * value; after a separator, new lines may come only inside a block. */
  while (is_space(peek(p))) advance(p);
  if (is_key_separator(peek(p))) advance(p);
  while (top ? is_blank(peek(p)) : is_space(peek(p))) advance(p);
  int c = peek(p);
  char buf[16];
  if (c == END_OF_INPUT || (!top && (c == ',' || c == '}'))) {
    parse_error(p, line, "expected a value for '%s', found %s", key, describe_char(c, buf));
    free(key);
    return -1;
  }

  struct conf_value *value = NULL;
  if (parse_value(p, key, &value) != 0) {
    free(key);
    return -1;
  }
  return map_set(p, map, key, p->file, line, value);
}

/* After a value in a block: ',', ';' or a new line continues, '}' ends.
 * Returns 1 at the end, 0 to continue, -1 on error. */
static int end_map_value(struct parser *p, int map_line, const char *key) {
  for (;;) {
    int c = peek(p);
    char buf[16];
    if (is_blank(c)) {
      advance(p);
    } else if (at_comment(p)) {
      skip_comment(p);
    } else if (c == ',' || c == ';' || c == '/' || is_newline(c)) {
      advance(p);
      return 0;
    } else if (c == '}') {
      advance(p);
      return 1;
    } else if (c == END_OF_INPUT) {
      return parse_error(p, map_line, "block starting on line %d is not closed: expected '}'",
                         map_line);
    } else {
      return parse_error(p, p->line,
                         "expected ',', ';', a new line or '}' after the value of '%s', found "
                         "%s%s",
                         key, describe_char(c, buf), digit_hint(p));
    }
  }
}

static int parse_map_entries(struct parser *p, struct conf_value *map) {
  for (;;) {
    int c = skip_space_and_comments(p);
    char buf[16];
    if (c == END_OF_INPUT) {
      return parse_error(p, map->line, "block starting on line %d is not closed: expected '}'",
                         map->line);
    }
    if (c == '}') {
      advance(p);
      return 0;
    }
    if (is_key_separator(c) || c == ']' || c == '/') {
      return parse_error(p, p->line, "expected a key or '}', found %s", describe_char(c, buf));
    }

    char key[KEY_NAME_MAX];
    if (parse_entry(p, map, false, key) != 0) return -1;
    int rc = end_map_value(p, map->line, key);
    if (rc != 0) return rc < 0 ? -1 : 0;
  }
}

/* After a top-level value: a new line, ';', ',', '}' or the end of the
 * file. A lone '/' is skipped as nats-server skips it. */
static int end_top_value(struct parser *p, const char *key) {
  for (;;) {
    int c = peek(p);
    if (is_blank(c)) {
      advance(p);
    } else if (at_comment(p)) {
      skip_comment(p);
      return 0;
    } else if (c == '/') {
      advance(p);
    } else if (c == END_OF_INPUT) {
      return 0;
    } else if (is_newline(c) || c == ';' || c == ',' || c == '}') {
      advance(p);
      return 0;
    } else {
      char buf[16];
      return parse_error(p, p->line,
                         "expected a new line, ';' or a comment after the value of '%s', found "
                         "%s%s",
                         key, describe_char(c, buf), digit_hint(p));
    }
  }
}

/* Parses the top level. Braces around the whole file are allowed: nats-server
 * skips a '{' where a key may start, and this parser skips a '}' there
 * too (nats-server reads that '}' as a key without a value). */
static int parse_top(struct parser *p, struct conf_value *root) {
  for (;;) {
    int c = skip_space_and_comments(p);
    if (c == '{' || c == '}') {
      advance(p);
      continue;
    }
    if (c == END_OF_INPUT) return 0;
    if (is_key_separator(c) || c == '/') {
      char buf[16];
      return parse_error(p, p->line, "expected a key, found %s", describe_char(c, buf));
    }

    char key[KEY_NAME_MAX];
    if (parse_entry(p, root, true, key) != 0) return -1;
    if (end_top_value(p, key) != 0) return -1;
  }
}

static int parse_document(struct conf_doc *doc, const char *text, size_t len, const char *name,
                          int include_depth, int env_depth, struct conf_error *error,
                          struct conf_value **root_out) {
  struct parser p = {
      .doc = doc,
      .text = text,
      .len = len,
      .line = 1,
      .include_depth = include_depth,
      .env_depth = env_depth,
      .error = error,
  };
  p.file = doc_intern_file(doc, name);
  if (p.file == NULL) {
    p.file = name;
    return out_of_memory(&p);
  }

  const char *nul = memchr(text, '\0', len);
  if (nul != NULL) {
    int line = 1;
    for (const char *c = text; c < nul; c++) line += *c == '\n';
    return parse_error(&p, line, "the file contains a NUL byte");
  }

  struct conf_value *root = value_new(&p, CONF_MAP, 1);
  if (root == NULL) return -1;
  p.scopes[p.scope_count++] = root;
  if (parse_top(&p, root) != 0) {
    value_free(root);
    return -1;
  }
  *root_out = root;
  return 0;
}

/* ---- Public parsing API ---- */

static void format_error(const struct conf_error *error, char *err, size_t err_size) {
  if (err == NULL || err_size == 0) return;
  if (error->line > 0) {
    snprintf(err, err_size, "%s:%d: %s", error->file, error->line, error->message);
  } else {
    snprintf(err, err_size, "%s: %s", error->file, error->message);
  }
}

void conf_doc_free(struct conf_doc *doc) {
  if (doc == NULL) return;
  value_free(doc->root);
  for (int i = 0; i < doc->file_count; i++) free(doc->files[i]);
  free(doc->files);
  free(doc);
}

struct conf_doc *conf_parse_text(const char *text, size_t len, const char *name, char *err,
                                 size_t err_size) {
  struct conf_error error = {.file = name};
  struct conf_doc *doc = calloc(1, sizeof *doc);
  if (doc == NULL) {
    snprintf(error.message, sizeof error.message, "out of memory");
    format_error(&error, err, err_size);
    return NULL;
  }
  if (parse_document(doc, text, len, name, 0, 0, &error, &doc->root) != 0) {
    format_error(&error, err, err_size);
    conf_doc_free(doc);
    return NULL;
  }
  return doc;
}

struct conf_doc *conf_parse_file(const char *path, char *err, size_t err_size) {
  char *text = NULL;
  size_t len = 0;
  int rc = read_file(path, &text, &len);
  if (rc != 0) {
    struct conf_error error = {.file = path};
    snprintf(error.message, sizeof error.message, "cannot read the configuration file: %s",
             rc == -EFBIG ? "larger than 16 MiB" : strerror(-rc));
    format_error(&error, err, err_size);
    return NULL;
  }
  struct conf_doc *doc = conf_parse_text(text, len, path, err, err_size);
  free(text);
  return doc;
}

const struct conf_value *conf_map_get(const struct conf_value *map, const char *key) {
  ASSERT(map != NULL && map->type == CONF_MAP);
  const struct conf_entry *entry = map_find(map, key);
  return entry != NULL ? entry->value : NULL;
}

/* ---- Mapping onto struct opts ----
 *
 * Keys are matched without case, as nats-server matches them. Where
 * nats-server takes a zero to mean its default, so does this mapping.
 * Values nats-server would accept but cannot use (a negative max_payload,
 * a port above 65535) are rejected here. */

struct apply {
  char *err;
  size_t err_size;
  int warnings;
  bool store_dir_seen; /* at the top level or in jetstream; both is an error */
};

static int apply_error(struct apply *a, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int apply_error(struct apply *a, const char *file, int line, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  if (a->err != NULL && a->err_size > 0) {
    snprintf(a->err, a->err_size, "%s:%d: %s", file, line, message);
  }
  return -1;
}

static void apply_warn(struct apply *a, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void apply_warn(struct apply *a, const char *file, int line, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  log_warn("%s:%d: %s", file, line, message);
  a->warnings++;
}

/* Describes a value for a message. A secret (password, token) is described
 * by its type only, so it never reaches a log. */
static void describe_value(const struct conf_value *v, bool secret, char *buf, size_t size) {
  static const char *const type_names[] = {
      [CONF_STRING] = "a string", [CONF_BOOL] = "a boolean",   [CONF_INTEGER] = "an integer",
      [CONF_FLOAT] = "a float",   [CONF_DATETIME] = "a date", [CONF_ARRAY] = "an array",
      [CONF_MAP] = "a block",
  };
  if (secret || v->type == CONF_ARRAY || v->type == CONF_MAP) {
    snprintf(buf, size, "%s", type_names[v->type]);
  } else if (v->type == CONF_STRING) {
    bool long_string = v->as.string.len > 60;
    snprintf(buf, size, "\"%.60s%s\"", v->as.string.bytes, long_string ? "..." : "");
  } else {
    snprintf(buf, size, "%s", v->text);
  }
}

static int invalid_value(struct apply *a, const char *key, const struct conf_value *v,
                         const char *expected, bool secret) {
  char got[96];
  describe_value(v, secret, got, sizeof got);
  return apply_error(a, v->file, v->line, "invalid %s: expected %s, got %s", key, expected, got);
}

static bool key_is(const char *key, const char *const names[]) {
  for (const char *const *name = names; *name != NULL; name++) {
    if (strcasecmp(key, *name) == 0) return true;
  }
  return false;
}

#define KEY_IS(key, ...) key_is((key), (const char *const[]){__VA_ARGS__, NULL})

/* ---- Scalar values ---- */

static const char expect_bool[] = "true or false (or yes/no, on/off, unquoted)";

static int get_string(struct apply *a, const char *key, const struct conf_value *v, bool secret,
                      char **out) {
  if (v->type != CONF_STRING) return invalid_value(a, key, v, "a string", secret);
  if (strlen(v->as.string.bytes) != v->as.string.len) {
    return apply_error(a, v->file, v->line, "invalid %s: the string contains a NUL byte", key);
  }
  *out = strdup(v->as.string.bytes);
  return *out != NULL ? 0 : apply_error(a, v->file, v->line, "out of memory");
}

/* Replaces the string in *slot with the value's. */
static int set_string(struct apply *a, const char *key, const struct conf_value *v, bool secret,
                      char **slot) {
  char *s = NULL;
  if (get_string(a, key, v, secret, &s) != 0) return -1;
  free(*slot);
  *slot = s;
  return 0;
}

static int set_bool(struct apply *a, const char *key, const struct conf_value *v, bool *slot) {
  if (v->type != CONF_BOOL) return invalid_value(a, key, v, expect_bool, false);
  *slot = v->as.boolean;
  return 0;
}

/* A port: -1 picks a random port, 0 means default_port. */
static int set_port(struct apply *a, const char *key, const struct conf_value *v, int default_port,
                    int *slot) {
  static const char expected[] = "a port number from 0 to 65535, or -1 for a random port";
  if (v->type != CONF_INTEGER || v->as.integer < -1 || v->as.integer > 65535) {
    return invalid_value(a, key, v, expected, false);
  }
  *slot = v->as.integer == 0 ? default_port : (int)v->as.integer;
  return 0;
}

/* Splits "host:port" or "[v6]:port" as Go's net.SplitHostPort does and
 * reads the port as strconv.Atoi does. Returns 0, or -1 on a bad form. */
static int split_host_port(const char *s, char **host, long *port) {
  const char *host_start = s;
  const char *host_end;
  const char *port_start;
  if (s[0] == '[') {
    host_start = s + 1;
    host_end = strchr(host_start, ']');
    if (host_end == NULL || host_end[1] != ':') return -1;
    port_start = host_end + 2;
  } else {
    host_end = strrchr(s, ':');
    if (host_end == NULL || memchr(s, ':', (size_t)(host_end - s)) != NULL) return -1;
    port_start = host_end + 1;
  }
  if (memchr(host_start, '[', (size_t)(host_end - host_start)) != NULL ||
      memchr(host_start, ']', (size_t)(host_end - host_start)) != NULL) {
    return -1;
  }

  const char *digits = port_start + (*port_start == '+' || *port_start == '-');
  if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits)) return -1;
  errno = 0;
  *port = strtol(port_start, NULL, 10);
  if (errno == ERANGE) return -1;
  *host = strndup(host_start, (size_t)(host_end - host_start));
  return *host != NULL ? 0 : -1;
}

/* listen and http: a port alone, or "host:port". An empty host means the
 * default, stored in *host_slot as default_host (NULL for none). */
static int set_listen(struct apply *a, const char *key, const struct conf_value *v,
                      const char *default_host, int default_port, char **host_slot,
                      int *port_slot) {
  static const char expected[] = "a port, or a string \"host:port\"";
  if (v->type == CONF_INTEGER) return set_port(a, key, v, default_port, port_slot);
  if (v->type != CONF_STRING) return invalid_value(a, key, v, expected, false);

  char *host = NULL;
  long port = 0;
  if (split_host_port(v->as.string.bytes, &host, &port) != 0) {
    return invalid_value(a, key, v, expected, false);
  }
  if (port < -1 || port > 65535) {
    free(host);
    return invalid_value(a, key, v, "a port number from 0 to 65535, or -1 for a random port",
                         false);
  }
  if (host[0] == '\0') {
    free(host);
    host = default_host != NULL ? strdup(default_host) : NULL;
    if (default_host != NULL && host == NULL) return apply_error(a, v->file, v->line, "out of memory");
  }
  free(*host_slot);
  *host_slot = host;
  *port_slot = port == 0 ? default_port : (int)port;
  return 0;
}

/* ---- Durations and sizes ---- */

/* Parses s as Go's time.ParseDuration does ("1h30m", "500ms", "-2.5s"; a
 * bare "0"; units ns, us, µs, ms, s, m, h). Returns 0 and sets *ns, or -1. */
static int parse_go_duration(const char *s, int64_t *ns) {
  static const struct {
    const char *name;
    uint64_t ns;
  } units[] = {{"ns", 1},          {"us", 1000},          {"\xc2\xb5s", 1000},
               {"\xce\xbcs", 1000}, {"ms", 1000000},       {"s", 1000000000},
               {"m", 60000000000}, {"h", 3600000000000}};
  const uint64_t limit = (uint64_t)1 << 63;
  bool negative = *s == '-';
  if (*s == '-' || *s == '+') s++;
  if (strcmp(s, "0") == 0) {
    *ns = 0;
    return 0;
  }
  if (*s == '\0') return -1;

  uint64_t total = 0;
  while (*s != '\0') {
    if (*s != '.' && !is_digit(*s)) return -1;
    uint64_t whole = 0;
    const char *start = s;
    for (; is_digit(*s); s++) {
      if (whole > limit / 10) return -1;
      whole = whole * 10 + (uint64_t)(*s - '0');
      if (whole > limit) return -1;
    }
    bool has_whole = s != start;

    /* Fraction digits beyond what fits are dropped, as Go drops them. */
    uint64_t fraction = 0;
    double scale = 1;
    bool has_fraction = false;
    if (*s == '.') {
      s++;
      bool overflow = false;
      for (start = s; is_digit(*s); s++) {
        if (overflow || fraction > (UINT64_MAX >> 1) / 10) {
          overflow = true;
          continue;
        }
        fraction = fraction * 10 + (uint64_t)(*s - '0');
        scale *= 10;
      }
      has_fraction = s != start;
    }
    if (!has_whole && !has_fraction) return -1;

    size_t unit_len = 0;
    while (s[unit_len] != '\0' && s[unit_len] != '.' && !is_digit(s[unit_len])) unit_len++;
    uint64_t unit = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      if (strlen(units[i].name) == unit_len && strncmp(s, units[i].name, unit_len) == 0) {
        unit = units[i].ns;
      }
    }
    if (unit == 0) return -1;
    s += unit_len;

    if (whole > limit / unit) return -1;
    uint64_t value = whole * unit;
    if (fraction > 0) value += (uint64_t)((double)fraction * ((double)unit / scale));
    if (value > limit) return -1;
    total += value;
    if (total > limit) return -1;
  }
  if (!negative && total == limit) return -1;
  *ns = negative ? (int64_t)(0 - total) : (int64_t)total;
  return 0;
}

/* Milliseconds from nanoseconds, rounding a positive remainder up so a
 * short positive duration never turns into zero, which means "default". */
static int64_t ns_to_ms(int64_t ns) {
  return ns > 0 ? ns / 1000000 + (ns % 1000000 != 0) : ns / 1000000;
}

static const char expect_duration[] = "a duration string such as \"2m\", \"1h30m\" or \"500ms\"";

/* A duration string, or (when seconds_allowed) an integer number of
 * seconds, which nats-server takes with a warning. */
static int get_duration_ms(struct apply *a, const char *key, const struct conf_value *v,
                           bool seconds_allowed, int64_t *ms) {
  if (v->type == CONF_STRING) {
    int64_t ns;
    if (parse_go_duration(v->as.string.bytes, &ns) != 0) {
      return invalid_value(a, key, v, expect_duration, false);
    }
    *ms = ns_to_ms(ns);
    return 0;
  }
  if (v->type != CONF_INTEGER || !seconds_allowed) {
    return invalid_value(a, key, v, expect_duration, false);
  }

  if (__builtin_mul_overflow(v->as.integer, 1000, ms)) {
    return invalid_value(a, key, v, expect_duration, false);
  }
  if (strspn(v->text, "-0123456789") != strlen(v->text)) {
    apply_warn(a, v->file, v->line,
               "%s: unquoted %s is the number %lld, so %lld seconds, as in nats-server; "
               "write \"%s\" in quotes for a duration",
               key, v->text, (long long)v->as.integer, (long long)v->as.integer, v->text);
  } else {
    apply_warn(a, v->file, v->line,
               "%s: a bare number is read as seconds; write a duration such as \"%llds\"", key,
               (long long)v->as.integer);
  }
  return 0;
}

/* A size for the JetStream limits, as nats-server's getStorageSize reads
 * it: an integer (unquoted 1G is 10^9, 1GB is 2^30), or a string of an
 * integer and one of the suffixes K, M, G, T, which are powers of 1024. */
static int get_storage_size(struct apply *a, const char *key, const struct conf_value *v,
                            int64_t *out) {
  static const char expected[] =
      "a size such as 1G (10^9 bytes), 1GB (2^30 bytes) or the string \"1G\" (2^30 bytes)";
  static const char suffixes[] = "KMGT";
  if (v->type == CONF_INTEGER) {
    *out = v->as.integer;
    return 0;
  }
  if (v->type != CONF_STRING) return invalid_value(a, key, v, expected, false);
  const char *s = v->as.string.bytes;
  size_t len = v->as.string.len;
  if (len == 0) {
    *out = 0;
    return 0;
  }

  const char *suffix = strchr(suffixes, s[len - 1]);
  const char *digits = s + (s[0] == '+' || s[0] == '-');
  size_t digit_count = len - 1 - (size_t)(digits - s);
  if (s[len - 1] == '\0' || suffix == NULL || digit_count == 0 ||
      strspn(digits, "0123456789") != digit_count) {
    return invalid_value(a, key, v, expected, false);
  }
  errno = 0;
  long long number = strtoll(s, NULL, 10);
  int shift = 10 * (int)(suffix - suffixes + 1);
  if (errno == ERANGE || number > (INT64_MAX >> shift) || number < (INT64_MIN >> shift)) {
    return apply_error(a, v->file, v->line, "invalid %s: size \"%s\" is out of range", key, s);
  }
  *out = number * ((int64_t)1 << shift);
  return 0;
}

/* ---- Authorization ---- */

#define RESPONSES_MAX_DEFAULT 1                   /* nats-server 2.9.10 */
#define RESPONSES_EXPIRES_DEFAULT_MS (2 * 60 * 1000) /* nats-server 2.9.10 */

static void free_subject_list(char **list) {
  if (list == NULL) return;
  for (char **s = list; *s != NULL; s++) free(*s);
  free(list);
}

static void free_user(struct opts_user *u) {
  free(u->user);
  free(u->password);
  free_subject_list(u->pub_allow);
  free_subject_list(u->pub_deny);
  free_subject_list(u->sub_allow);
  free_subject_list(u->sub_deny);
  memset(u, 0, sizeof *u);
}

static void free_users(struct opts_user *users, int count) {
  for (int i = 0; i < count; i++) free_user(&users[i]);
  free(users);
}

/* A subject by nats-server 2.9.10's IsValidSubject: non-empty tokens
 * between dots, no space, tab, CR, LF or form feed, and '>' only as the
 * last token. */
static bool permission_subject_tokens_valid(const char *s, size_t len) {
  if (len == 0) return false;
  size_t token_start = 0;
  bool after_full_wildcard = false;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.') {
      if (strchr(" \t\r\n\f", s[i]) != NULL) return false;
      continue;
    }
    if (i == token_start || after_full_wildcard) return false;
    after_full_wildcard = i - token_start == 1 && s[token_start] == '>';
    token_start = i + 1;
  }
  return true;
}

/* A permission subject as nats-server's checkPermSubjectArray takes it: a
 * subject, or a subject and a queue group separated by white space. */
static bool permission_subject_valid(const char *s) {
  if (permission_subject_tokens_valid(s, strlen(s))) return true;
  static const char spaces[] = " \t\n\v\f\r";
  const char *first = s + strspn(s, spaces);
  size_t first_len = strcspn(first, spaces);
  const char *second = first + first_len + strspn(first + first_len, spaces);
  size_t second_len = strcspn(second, spaces);
  const char *rest = second + second_len + strspn(second + second_len, spaces);
  return first_len > 0 && second_len > 0 && *rest == '\0' &&
         permission_subject_tokens_valid(first, first_len);
}

/* A subject, or an array of subjects, into a NULL-terminated list. */
static int get_subject_list(struct apply *a, const char *key, const struct conf_value *v,
                            char ***out) {
  static const char expected[] = "a subject or an array of subjects";
  const struct conf_value *const *items = (const struct conf_value *const *)&v;
  int count = 1;
  if (v->type == CONF_ARRAY) {
    items = (const struct conf_value *const *)v->as.array.items;
    count = v->as.array.count;
  } else if (v->type != CONF_STRING) {
    return invalid_value(a, key, v, expected, false);
  }

  char **list = calloc((size_t)count + 1, sizeof *list);
  if (list == NULL) return apply_error(a, v->file, v->line, "out of memory");
  for (int i = 0; i < count; i++) {
    if (items[i]->type != CONF_STRING) {
      free_subject_list(list);
      return invalid_value(a, key, items[i], "a subject string", false);
    }
    if (get_string(a, key, items[i], false, &list[i]) != 0) {
      free_subject_list(list);
      return -1;
    }
    if (!permission_subject_valid(list[i])) {
      apply_error(a, items[i]->file, items[i]->line,
                  "invalid %s: \"%s\" is not a valid subject, nor a subject and a queue group",
                  key, list[i]);
      free_subject_list(list);
      return -1;
    }
  }
  *out = list;
  return 0;
}

static int set_subject_list(struct apply *a, const char *key, const struct conf_value *v,
                            char ***slot) {
  char **list = NULL;
  if (get_subject_list(a, key, v, &list) != 0) return -1;
  free_subject_list(*slot);
  *slot = list;
  return 0;
}

/* publish or subscribe: subjects (allowed), or a block { allow, deny }. */
static int apply_direction(struct apply *a, const struct conf_entry *e, char ***allow,
                           char ***deny) {
  const struct conf_value *v = e->value;
  if (v->type != CONF_MAP) return set_subject_list(a, e->key, v, allow);

  for (int i = 0; i < v->as.map.count; i++) {
    const struct conf_entry *d = &v->as.map.entries[i];
    int rc;
    if (KEY_IS(d->key, "allow")) {
      rc = set_subject_list(a, d->key, d->value, allow);
    } else if (KEY_IS(d->key, "deny")) {
      rc = set_subject_list(a, d->key, d->value, deny);
    } else {
      rc = apply_error(a, d->file, d->line, "unknown key '%s' in %s: expected allow or deny",
                       d->key, e->key);
    }
    if (rc != 0) return -1;
  }
  return 0;
}

/* allow_responses: true, or a block { max, expires }. */
static int apply_responses(struct apply *a, const struct conf_entry *e, struct opts_user *u) {
  const struct conf_value *v = e->value;
  if (v->type == CONF_BOOL) {
    u->allow_responses = v->as.boolean;
    u->responses_max = RESPONSES_MAX_DEFAULT;
    u->responses_expires_ms = RESPONSES_EXPIRES_DEFAULT_MS;
    return 0;
  }
  if (v->type != CONF_MAP) {
    return invalid_value(a, e->key, v, "true, false or a block { max, expires }", false);
  }

  u->allow_responses = true;
  u->responses_max = RESPONSES_MAX_DEFAULT;
  u->responses_expires_ms = RESPONSES_EXPIRES_DEFAULT_MS;
  for (int i = 0; i < v->as.map.count; i++) {
    const struct conf_entry *r = &v->as.map.entries[i];
    /* Zero means the default, a negative value no limit, as in nats-server. */
    if (KEY_IS(r->key, "max", "max_msgs", "max_messages", "max_responses")) {
      if (r->value->type != CONF_INTEGER) {
        return invalid_value(a, r->key, r->value, "an integer", false);
      }
      if (r->value->as.integer != 0) u->responses_max = r->value->as.integer;
    } else if (KEY_IS(r->key, "expires", "expiration", "ttl")) {
      int64_t ms;
      if (get_duration_ms(a, r->key, r->value, false, &ms) != 0) return -1;
      if (ms != 0) u->responses_expires_ms = ms;
    } else {
      return apply_error(a, r->file, r->line,
                         "unknown key '%s' in %s: expected max or expires", r->key, e->key);
    }
  }
  return 0;
}

/* A permissions block into u's permission fields. */
static int apply_permissions(struct apply *a, const struct conf_value *v, const char *key,
                             struct opts_user *u) {
  if (v->type != CONF_MAP) {
    return invalid_value(a, key, v, "a block { publish, subscribe, allow_responses }", false);
  }
  for (int i = 0; i < v->as.map.count; i++) {
    const struct conf_entry *e = &v->as.map.entries[i];
    int rc;
    if (KEY_IS(e->key, "pub", "publish", "import")) {
      rc = apply_direction(a, e, &u->pub_allow, &u->pub_deny);
    } else if (KEY_IS(e->key, "sub", "subscribe", "export")) {
      rc = apply_direction(a, e, &u->sub_allow, &u->sub_deny);
    } else if (KEY_IS(e->key, "publish_allow_responses", "allow_responses")) {
      rc = apply_responses(a, e, u);
    } else {
      /* An error, not a warning: a misspelt key would leave a user unrestricted. */
      rc = apply_error(a, e->file, e->line,
                       "unknown key '%s' in permissions: expected publish, subscribe or "
                       "allow_responses",
                       e->key);
    }
    if (rc != 0) return -1;
  }

  /* Allowing responses turns off the blanket publish permission, so the
   * user may publish to reply subjects and to nothing else unless allowed. */
  if (u->allow_responses && u->pub_allow == NULL) {
    u->pub_allow = calloc(1, sizeof *u->pub_allow);
    if (u->pub_allow == NULL) return apply_error(a, v->file, v->line, "out of memory");
  }
  return 0;
}

static int copy_subject_list(char **src, char ***out) {
  *out = NULL;
  if (src == NULL) return 0;
  int count = 0;
  while (src[count] != NULL) count++;
  char **list = calloc((size_t)count + 1, sizeof *list);
  if (list == NULL) return -ENOMEM;
  for (int i = 0; i < count; i++) {
    list[i] = strdup(src[i]);
    if (list[i] == NULL) {
      free_subject_list(list);
      return -ENOMEM;
    }
  }
  *out = list;
  return 0;
}

static int copy_permissions(const struct opts_user *from, struct opts_user *to) {
  to->allow_responses = from->allow_responses;
  to->responses_max = from->responses_max;
  to->responses_expires_ms = from->responses_expires_ms;
  if (copy_subject_list(from->pub_allow, &to->pub_allow) != 0) return -ENOMEM;
  if (copy_subject_list(from->pub_deny, &to->pub_deny) != 0) return -ENOMEM;
  if (copy_subject_list(from->sub_allow, &to->sub_allow) != 0) return -ENOMEM;
  return copy_subject_list(from->sub_deny, &to->sub_deny);
}

/* One block of the users array. *has_permissions is set when the block has
 * a permissions key, so default permissions apply to the others only. */
static int apply_user(struct apply *a, const struct conf_value *v, struct opts_user *u,
                      bool *has_permissions) {
  if (v->type != CONF_MAP) {
    return invalid_value(a, "users", v, "a block such as { user: alice, password: secret }",
                         false);
  }
  *has_permissions = false;
  for (int i = 0; i < v->as.map.count; i++) {
    const struct conf_entry *e = &v->as.map.entries[i];
    int rc = 0;
    if (KEY_IS(e->key, "user", "username")) {
      rc = set_string(a, e->key, e->value, false, &u->user);
    } else if (KEY_IS(e->key, "pass", "password")) {
      rc = set_string(a, e->key, e->value, true, &u->password);
    } else if (KEY_IS(e->key, "permission", "permissions", "authorization")) {
      *has_permissions = true;
      rc = apply_permissions(a, e->value, e->key, u);
    } else if (KEY_IS(e->key, "nkey")) {
      rc = apply_error(a, e->file, e->line, "nkey users are not supported yet");
    } else if (KEY_IS(e->key, "allowed_connection_types", "connection_types", "clients")) {
      apply_warn(a, e->file, e->line,
                 "%s is not supported yet and is ignored; shoal accepts only client connections",
                 e->key);
    } else if (!e->value->used) {
      apply_warn(a, e->file, e->line, "unknown key '%s' in a user block, ignored", e->key);
    }
    if (rc != 0) return -1;
  }
  if (u->user == NULL) {
    return apply_error(a, v->file, v->line, "a block in the users array has no user key");
  }
  return 0;
}

/* The users array, with default permissions given to users without any. */
static int apply_users(struct apply *a, const struct conf_value *v,
                       const struct opts_user *defaults, struct opts_user **users_out,
                       int *count_out) {
  if (v->type != CONF_ARRAY) return invalid_value(a, "users", v, "an array of user blocks", false);
  int count = v->as.array.count;
  *users_out = NULL;
  *count_out = 0;
  if (count == 0) return 0;
  struct opts_user *users = calloc((size_t)count + 1, sizeof *users);
  if (users == NULL) return apply_error(a, v->file, v->line, "out of memory");

  for (int i = 0; i < count; i++) {
    const struct conf_value *item = v->as.array.items[i];
    bool has_permissions = false;
    int rc = apply_user(a, item, &users[i], &has_permissions);
    for (int j = 0; rc == 0 && j < i; j++) {
      if (strcmp(users[j].user, users[i].user) == 0) {
        rc = apply_error(a, item->file, item->line, "duplicate user \"%s\" in users",
                         users[i].user);
      }
    }
    if (rc == 0 && !has_permissions && defaults != NULL &&
        copy_permissions(defaults, &users[i]) != 0) {
      rc = apply_error(a, item->file, item->line, "out of memory");
    }
    if (rc != 0) {
      free_users(users, i + 1);
      return -1;
    }
  }
  *users_out = users;
  *count_out = count;
  return 0;
}

/* The keys of an authorization block, gathered before any is applied
 * because their checks depend on each other. */
struct auth_block {
  const struct conf_entry *user;
  const struct conf_entry *password;
  const struct conf_entry *token;
  const struct conf_entry *timeout;
  const struct conf_entry *users;
  const struct conf_entry *permissions;
};

static int gather_auth_block(struct apply *a, const struct conf_value *v, struct auth_block *b) {
  memset(b, 0, sizeof *b);
  for (int i = 0; i < v->as.map.count; i++) {
    const struct conf_entry *e = &v->as.map.entries[i];
    if (KEY_IS(e->key, "user", "username")) {
      b->user = e;
    } else if (KEY_IS(e->key, "pass", "password")) {
      b->password = e;
    } else if (KEY_IS(e->key, "token")) {
      b->token = e;
    } else if (KEY_IS(e->key, "timeout")) {
      b->timeout = e;
    } else if (KEY_IS(e->key, "users")) {
      b->users = e;
    } else if (KEY_IS(e->key, "default_permission", "default_permissions", "permissions")) {
      b->permissions = e;
    } else if (!e->value->used) {
      apply_warn(a, e->file, e->line, "unknown key '%s' in authorization, ignored", e->key);
    }
  }

  const struct conf_entry *conflict = NULL;
  const char *conflicting = NULL;
  if ((b->user != NULL || b->password != NULL) && b->token != NULL) {
    conflict = b->token;
    conflicting = "a token and a user/password";
  } else if (b->users != NULL && b->user != NULL) {
    conflict = b->user;
    conflicting = "a single user and a users array";
  } else if (b->users != NULL && b->token != NULL) {
    conflict = b->token;
    conflicting = "a token and a users array";
  }
  if (conflict != NULL) {
    return apply_error(a, conflict->file, conflict->line,
                       "authorization cannot have both %s; use one of them", conflicting);
  }
  return 0;
}

/* authorization's timeout: seconds as an integer or float. nats-server
 * 2.9.10 takes any other value as 1 second; so does this, with a warning. */
static int apply_auth_timeout(struct apply *a, const struct conf_entry *e, struct opts *o) {
  const struct conf_value *v = e->value;
  double seconds = 1;
  if (v->type == CONF_INTEGER) {
    seconds = (double)v->as.integer;
  } else if (v->type == CONF_FLOAT) {
    seconds = v->as.number;
  } else {
    apply_warn(a, v->file, v->line,
               "timeout is not a number of seconds, so it is 1 second as in nats-server");
  }
  if (seconds < 0 || seconds > (double)(INT64_MAX / 1000)) {
    return invalid_value(a, e->key, v, "a number of seconds such as 2 or 0.5", false);
  }
  /* Rounded up, so a small positive timeout does not become 0 (the default). */
  int64_t ms = (int64_t)(seconds * 1000);
  if ((double)ms < seconds * 1000) ms++;
  o->auth_timeout_ms = ms == 0 ? OPTS_DEFAULT_AUTH_TIMEOUT_MS : ms;
  return 0;
}

static int apply_authorization(struct apply *a, const struct conf_entry *e, struct opts *o) {
  const struct conf_value *v = e->value;
  if (v->type != CONF_MAP) return invalid_value(a, e->key, v, "a block", false);
  struct auth_block b;
  if (gather_auth_block(a, v, &b) != 0) return -1;

  char *user = NULL, *password = NULL, *token = NULL;
  struct opts_user defaults = {0};
  struct opts_user *users = NULL;
  int user_count = 0;
  int rc = 0;
  if (b.user != NULL) rc = get_string(a, b.user->key, b.user->value, false, &user);
  if (rc == 0 && b.password != NULL) {
    rc = get_string(a, b.password->key, b.password->value, true, &password);
  }
  if (rc == 0 && b.token != NULL) rc = get_string(a, b.token->key, b.token->value, true, &token);
  if (rc == 0 && b.timeout != NULL) rc = apply_auth_timeout(a, b.timeout, o);
  if (rc == 0 && b.permissions != NULL) {
    rc = apply_permissions(a, b.permissions->value, b.permissions->key, &defaults);
    if (rc == 0 && b.users == NULL) {
      apply_warn(a, b.permissions->file, b.permissions->line,
                 "%s apply to the users array only, and there is none; ignored",
                 b.permissions->key);
    }
  }
  if (rc == 0 && b.users != NULL) {
    rc = apply_users(a, b.users->value, b.permissions != NULL ? &defaults : NULL, &users,
                     &user_count);
  }
  free_user(&defaults);
  if (rc != 0) {
    free(user);
    free(password);
    free(token);
    return -1;
  }

  free(o->auth_user);
  free(o->auth_password);
  free(o->auth_token);
  free_users(o->users, o->user_count);
  o->auth_user = user;
  o->auth_password = password;
  o->auth_token = token;
  o->users = users;
  o->user_count = user_count;
  return 0;
}

/* ---- JetStream, clustering and lame duck ---- */

static int apply_store_dir(struct apply *a, const struct conf_entry *e, struct opts *o) {
  if (a->store_dir_seen) {
    return apply_error(a, e->file, e->line,
                       "store_dir is set twice, at the top level and in jetstream; keep one");
  }
  a->store_dir_seen = true;
  return set_string(a, e->key, e->value, false, &o->store_dir);
}

/* Reads sync_interval, a nats-server 2.10 key that 2.9 rejects: "always",
 * or a duration after which written messages are synced. shoal's default
 * is "always", where nats-server 2.10 defaults to "2m". */
static int apply_sync_interval(struct apply *a, const struct conf_entry *e, struct opts *o) {
  static const char expected[] = "\"always\" or a duration such as \"2m\" or \"500ms\"";
  const struct conf_value *v = e->value;
  if (v->type == CONF_STRING && strcasecmp(v->as.string.bytes, "always") == 0) {
    o->sync_interval_ms = 0;
    return 0;
  }
  int64_t ms = 0;
  if (v->type == CONF_STRING) {
    int64_t ns;
    if (parse_go_duration(v->as.string.bytes, &ns) == 0) ms = ns_to_ms(ns);
  } else if (v->type == CONF_INTEGER) {
    /* A bare number is seconds, with nats-server's warning. */
    if (get_duration_ms(a, e->key, v, true, &ms) != 0) return -1;
  }
  if (ms <= 0) return invalid_value(a, e->key, v, expected, false);
  o->sync_interval_ms = ms;
  return 0;
}

static int apply_jetstream_key(struct apply *a, const struct conf_entry *e, struct opts *o,
                               bool *enable) {
  if (KEY_IS(e->key, "store", "store_dir", "storedir")) return apply_store_dir(a, e, o);
  if (KEY_IS(e->key, "max_memory_store", "max_mem_store", "max_mem")) {
    return get_storage_size(a, e->key, e->value, &o->max_memory_store);
  }
  if (KEY_IS(e->key, "max_file_store", "max_file")) {
    return get_storage_size(a, e->key, e->value, &o->max_file_store);
  }
  if (KEY_IS(e->key, "enable", "enabled")) return set_bool(a, e->key, e->value, enable);
  if (KEY_IS(e->key, "sync", "sync_interval")) return apply_sync_interval(a, e, o);
  if (KEY_IS(e->key, "key", "ek", "encryption_key")) {
    /* Ignoring it would store the data unencrypted. */
    return apply_error(a, e->file, e->line,
                       "JetStream encryption (%s) is not supported yet; remove the key to store "
                       "streams unencrypted",
                       e->key);
  }
  if (KEY_IS(e->key, "cipher", "domain", "extension_hint", "limits", "unique_tag",
             "max_outstanding_catchup")) {
    apply_warn(a, e->file, e->line, "jetstream %s is not supported yet, ignored", e->key);
  } else if (!e->value->used) {
    apply_warn(a, e->file, e->line, "unknown key '%s' in jetstream, ignored", e->key);
  }
  return 0;
}

/* jetstream: true/false, "enabled"/"disabled", or a block that enables it
 * unless the block sets enabled: false. */
static int apply_jetstream(struct apply *a, const struct conf_entry *e, struct opts *o) {
  const struct conf_value *v = e->value;
  if (v->type == CONF_BOOL) {
    o->jetstream = v->as.boolean;
    return 0;
  }
  if (v->type == CONF_STRING) {
    const char *s = v->as.string.bytes;
    if (strcasecmp(s, "enabled") == 0 || strcasecmp(s, "enable") == 0) {
      o->jetstream = true;
    } else if (strcasecmp(s, "disabled") == 0 || strcasecmp(s, "disable") == 0) {
      o->jetstream = false;
    } else {
      return invalid_value(a, e->key, v, "true, false, \"enabled\", \"disabled\" or a block",
                           false);
    }
    return 0;
  }
  if (v->type != CONF_MAP) {
    return invalid_value(a, e->key, v, "true, false, \"enabled\", \"disabled\" or a block", false);
  }

  bool enable = true;
  for (int i = 0; i < v->as.map.count; i++) {
    if (apply_jetstream_key(a, &v->as.map.entries[i], o, &enable) != 0) return -1;
  }
  o->jetstream = enable;
  return 0;
}

static int apply_cluster(struct apply *a, const struct conf_entry *e, struct opts *o) {
  if (e->value->type != CONF_MAP) return invalid_value(a, e->key, e->value, "a block", false);
  apply_warn(a, e->file, e->line,
             "clustering is not supported yet; the cluster block is accepted and ignored, and "
             "this server runs alone");
  return 0;
}

/* lame_duck_duration and lame_duck_grace_period take duration strings
 * only, as in nats-server; the duration is at least 30 seconds. */
static int apply_lame_duck(struct apply *a, const struct conf_entry *e, struct opts *o) {
  bool is_duration = KEY_IS(e->key, "lame_duck_duration");
  int64_t ms;
  if (get_duration_ms(a, e->key, e->value, false, &ms) != 0) return -1;
  if (is_duration && ms < 30 * 1000) {
    return invalid_value(a, e->key, e->value, "a duration of at least 30s", false);
  }
  if (!is_duration && ms < 0) {
    return invalid_value(a, e->key, e->value, "a duration of 0s or more", false);
  }
  if (is_duration) {
    o->lame_duck_duration_ms = ms;
  } else {
    o->lame_duck_grace_period_ms = ms == 0 ? OPTS_DEFAULT_LAME_DUCK_GRACE_MS : ms;
  }
  return 0;
}

static int apply_listen(struct apply *a, const struct conf_entry *e, struct opts *o) {
  return set_listen(a, e->key, e->value, "0.0.0.0", OPTS_DEFAULT_PORT, &o->host, &o->port);
}

/* http: an empty host means the client listener's host. */
static int apply_http(struct apply *a, const struct conf_entry *e, struct opts *o) {
  return set_listen(a, e->key, e->value, NULL, 0, &o->http_host, &o->http_port);
}

/* ---- Top-level keys ---- */

enum key_kind {
  KEY_STRING,      /* char * */
  KEY_BOOL,        /* bool */
  KEY_PORT,        /* int; 0 means default_value */
  KEY_SIZE,        /* int64_t above zero; 0 means default_value */
  KEY_SIZE32,      /* the same, at most 2^31 - 1 as nats-server stores it in an int32 */
  KEY_COUNT,       /* int64_t above zero, without "size" in messages; 0 means default_value */
  KEY_LIMIT,       /* int64_t; 0 means default_value, a negative value no limit */
  KEY_DURATION,    /* int64_t milliseconds above zero; 0 means default_value */
  KEY_HANDLER,     /* handler */
  KEY_UNSUPPORTED, /* a nats-server key that shoal ignores with a warning */
  KEY_REJECTED,    /* a nats-server key that shoal cannot ignore safely: an error */
};

struct key_rule {
  const char *name;
  enum key_kind kind;
  size_t offset;
  int64_t default_value;
  int (*handler)(struct apply *a, const struct conf_entry *e, struct opts *o);
};

#define FIELD(kind, field, default_value) kind, offsetof(struct opts, field), default_value, NULL
#define HANDLER(handler) KEY_HANDLER, 0, 0, handler
#define UNSUPPORTED KEY_UNSUPPORTED, 0, 0, NULL
#define REJECTED KEY_REJECTED, 0, 0, NULL

static const struct key_rule key_rules[] = {
    {"listen", HANDLER(apply_listen)},
    {"host", FIELD(KEY_STRING, host, 0)},
    {"net", FIELD(KEY_STRING, host, 0)},
    {"port", FIELD(KEY_PORT, port, OPTS_DEFAULT_PORT)},
    {"server_name", FIELD(KEY_STRING, server_name, 0)},
    {"http", HANDLER(apply_http)},
    {"http_port", FIELD(KEY_PORT, http_port, 0)},
    {"monitor_port", FIELD(KEY_PORT, http_port, 0)},
    {"max_connections", FIELD(KEY_LIMIT, max_connections, OPTS_DEFAULT_MAX_CONNECTIONS)},
    {"max_conn", FIELD(KEY_LIMIT, max_connections, OPTS_DEFAULT_MAX_CONNECTIONS)},
    {"max_control_line", FIELD(KEY_SIZE32, max_control_line, OPTS_DEFAULT_MAX_CONTROL_LINE)},
    {"max_payload", FIELD(KEY_SIZE32, max_payload, OPTS_DEFAULT_MAX_PAYLOAD)},
    {"max_pending", FIELD(KEY_SIZE, max_pending, OPTS_DEFAULT_MAX_PENDING)},
    {"max_subscriptions", FIELD(KEY_LIMIT, max_subscriptions, 0)},
    {"max_subs", FIELD(KEY_LIMIT, max_subscriptions, 0)},
    {"ping_interval", FIELD(KEY_DURATION, ping_interval_ms, OPTS_DEFAULT_PING_INTERVAL_MS)},
    {"ping_max", FIELD(KEY_COUNT, ping_max, OPTS_DEFAULT_PING_MAX)},
    {"write_deadline", FIELD(KEY_DURATION, write_deadline_ms, OPTS_DEFAULT_WRITE_DEADLINE_MS)},
    {"lame_duck_duration", HANDLER(apply_lame_duck)},
    {"lame_duck_grace_period", HANDLER(apply_lame_duck)},
    {"debug", FIELD(KEY_BOOL, debug, 0)},
    {"trace", FIELD(KEY_BOOL, trace, 0)},
    {"logtime", FIELD(KEY_BOOL, logtime, 0)},
    {"logfile", FIELD(KEY_STRING, logfile, 0)},
    {"log_file", FIELD(KEY_STRING, logfile, 0)},
    {"pidfile", FIELD(KEY_STRING, pidfile, 0)},
    {"pid_file", FIELD(KEY_STRING, pidfile, 0)},
    {"ports_file_dir", FIELD(KEY_STRING, ports_file_dir, 0)},
    {"authorization", HANDLER(apply_authorization)},
    {"no_auth_user", FIELD(KEY_STRING, no_auth_user, 0)},
    {"jetstream", HANDLER(apply_jetstream)},
    {"store_dir", HANDLER(apply_store_dir)},
    {"storedir", HANDLER(apply_store_dir)},
    {"cluster", HANDLER(apply_cluster)},

    /* nats-server 2.9.10 options that shoal does not implement yet. */
    {"client_advertise", UNSUPPORTED},
    {"trace_verbose", UNSUPPORTED},
    {"mappings", UNSUPPORTED},
    {"maps", UNSUPPORTED},
    {"disable_sublist_cache", UNSUPPORTED},
    {"no_sublist_cache", UNSUPPORTED},
    {"https", UNSUPPORTED},
    {"https_port", UNSUPPORTED},
    {"http_base_path", UNSUPPORTED},
    {"gateway", UNSUPPORTED},
    {"leaf", UNSUPPORTED},
    {"leafnodes", UNSUPPORTED},
    {"logfile_size_limit", UNSUPPORTED},
    {"log_size_limit", UNSUPPORTED},
    {"syslog", UNSUPPORTED},
    {"remote_syslog", UNSUPPORTED},
    {"prof_port", UNSUPPORTED},
    {"max_traced_msg_len", UNSUPPORTED},
    {"max_sub_tokens", UNSUPPORTED},
    {"max_subscription_tokens", UNSUPPORTED},
    {"ocsp", UNSUPPORTED},
    {"allow_non_tls", UNSUPPORTED},
    {"connect_error_reports", UNSUPPORTED},
    {"reconnect_error_reports", UNSUPPORTED},
    {"websocket", UNSUPPORTED},
    {"ws", UNSUPPORTED},
    {"mqtt", UNSUPPORTED},
    {"server_tags", UNSUPPORTED},
    {"default_js_domain", UNSUPPORTED},
    {"system_account", UNSUPPORTED},
    {"system", UNSUPPORTED},
    {"no_system_account", UNSUPPORTED},
    {"no_system", UNSUPPORTED},
    {"no_sys_acc", UNSUPPORTED},
    {"no_header_support", UNSUPPORTED},

    /* Ignoring these would run without the TLS or the accounts and users
     * they configure, so a client could connect without the
     * authentication that the file requires. */
    {"tls", REJECTED},
    {"accounts", REJECTED},
    {"operator", REJECTED},
    {"operators", REJECTED},
    {"root", REJECTED},
    {"roots", REJECTED},
    {"root_operator", REJECTED},
    {"root_operators", REJECTED},
    {"resolver", REJECTED},
    {"account_resolver", REJECTED},
    {"accounts_resolver", REJECTED},
    {"resolver_tls", REJECTED},
    {"resolver_preload", REJECTED},
    {"resolver_pinned_accounts", REJECTED},
    {"trusted", REJECTED},
    {"trusted_keys", REJECTED},
};

/* The integer kinds: KEY_SIZE, KEY_SIZE32, KEY_COUNT and KEY_LIMIT. */
static int apply_integer_rule(struct apply *a, const struct key_rule *rule,
                              const struct conf_entry *e, int64_t *slot) {
  const struct conf_value *v = e->value;
  const char *expected = rule->kind == KEY_LIMIT   ? "an integer, such as 1000 or 64K"
                         : rule->kind == KEY_COUNT ? "a positive integer"
                                                   : "a positive integer, optionally with a size "
                                                     "suffix such as 1MB or 64K";
  if (v->type != CONF_INTEGER) return invalid_value(a, e->key, v, expected, false);
  int64_t n = v->as.integer;
  if (rule->kind != KEY_LIMIT && n < 0) return invalid_value(a, e->key, v, expected, false);
  if (rule->kind == KEY_SIZE32 && n > INT32_MAX) {
    return invalid_value(a, e->key, v, "a size of at most 2147483647 bytes", false);
  }
  *slot = n == 0 ? rule->default_value : n;
  return 0;
}

static int apply_rule(struct apply *a, const struct key_rule *rule, const struct conf_entry *e,
                      struct opts *o) {
  void *field = (char *)o + rule->offset;
  switch (rule->kind) {
  case KEY_STRING:
    return set_string(a, e->key, e->value, false, field);
  case KEY_BOOL:
    return set_bool(a, e->key, e->value, field);
  case KEY_PORT:
    return set_port(a, e->key, e->value, (int)rule->default_value, field);
  case KEY_SIZE:
  case KEY_SIZE32:
  case KEY_COUNT:
  case KEY_LIMIT:
    return apply_integer_rule(a, rule, e, field);
  case KEY_DURATION: {
    int64_t ms;
    if (get_duration_ms(a, e->key, e->value, true, &ms) != 0) return -1;
    if (ms < 0) return invalid_value(a, e->key, e->value, "a positive duration", false);
    *(int64_t *)field = ms == 0 ? rule->default_value : ms;
    return 0;
  }
  case KEY_HANDLER:
    return rule->handler(a, e, o);
  case KEY_UNSUPPORTED:
    apply_warn(a, e->file, e->line, "%s is a nats-server option that shoal does not support yet, "
                                    "ignored",
               e->key);
    return 0;
  case KEY_REJECTED:
    return apply_error(a, e->file, e->line,
                       "%s is a nats-server option that shoal does not support yet, and running "
                       "without it would weaken security; remove it to run without",
                       e->key);
  }
  ASSERT(!"unknown key kind");
  return -1;
}

/* no_auth_user must name a user of the users array, as nats-server checks
 * when it starts. */
static int check_no_auth_user(struct apply *a, const struct conf_value *root,
                              const struct opts *o) {
  const struct conf_entry *entry = NULL;
  for (int i = 0; i < root->as.map.count; i++) {
    if (KEY_IS(root->as.map.entries[i].key, "no_auth_user")) entry = &root->as.map.entries[i];
  }
  if (entry == NULL || o->no_auth_user == NULL) return 0;
  for (int i = 0; i < o->user_count; i++) {
    if (strcmp(o->users[i].user, o->no_auth_user) == 0) return 0;
  }
  return apply_error(a, entry->file, entry->line,
                     "no_auth_user \"%s\" is not a user of the authorization users array",
                     o->no_auth_user);
}

int conf_apply(const struct conf_doc *doc, struct opts *o, char *err, size_t err_size,
               int *warning_count) {
  ASSERT(doc != NULL && doc->root != NULL && doc->root->type == CONF_MAP);
  struct apply a = {.err = err, .err_size = err_size};
  if (err != NULL && err_size > 0) err[0] = '\0';

  int rc = 0;
  const struct conf_value *root = doc->root;
  for (int i = 0; i < root->as.map.count && rc == 0; i++) {
    const struct conf_entry *e = &root->as.map.entries[i];
    const struct key_rule *rule = NULL;
    for (size_t r = 0; r < sizeof key_rules / sizeof key_rules[0] && rule == NULL; r++) {
      if (strcasecmp(e->key, key_rules[r].name) == 0) rule = &key_rules[r];
    }
    if (rule != NULL) {
      rc = apply_rule(&a, rule, e, o);
    } else if (!e->value->used) {
      /* A key used only as a $variable is not unknown. */
      apply_warn(&a, e->file, e->line, "unknown key '%s', ignored", e->key);
    }
  }
  if (rc == 0) rc = check_no_auth_user(&a, root, o);

  if (warning_count != NULL) *warning_count = a.warnings;
  return rc;
}

int conf_load(const char *path, struct opts *o, char *err, size_t err_size, int *warning_count) {
  if (warning_count != NULL) *warning_count = 0;
  struct conf_doc *doc = conf_parse_file(path, err, err_size);
  if (doc == NULL) return -1;
  int rc = conf_apply(doc, o, err, err_size, warning_count);
  conf_doc_free(doc);
  return rc;
}

int conf_load_file(const char *path, struct opts *o) {
  char err[1024];
  if (conf_load(path, o, err, sizeof err, NULL) != 0) {
    log_error("%s", err);
    return -1;
  }
  return 0;
}
