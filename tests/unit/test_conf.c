/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of core/conf.c: every syntax form, the size and duration tables,
 * includes, variables, each error with its exact text, the mapping onto
 * struct opts, and the fixture files in tests/unit/conf/ checked side by
 * side with nats-server 2.9.10 (`nats-server -t -c FILE`). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/conf.h"
#include "core/log.h"

extern char **environ;

#define NATS_SERVER "/usr/sbin/nats-server"

static char err[1024];

/* ---- Helpers ---- */

/* The directory of the fixture files, next to this source file. */
static const char *fixture_dir(void) {
  static char dir[512];
  const char *slash = strrchr(__FILE__, '/');
  snprintf(dir, sizeof dir, "%.*s/conf", slash != NULL ? (int)(slash - __FILE__) : 1,
           slash != NULL ? __FILE__ : ".");
  return dir;
}

static const char *fixture(const char *name) {
  static char paths[4][600];
  static int next;
  char *path = paths[next++ % 4];
  snprintf(path, sizeof paths[0], "%s/%s", fixture_dir(), name);
  return path;
}

static struct conf_doc *parse(const char *text) {
  struct conf_doc *doc = conf_parse_text(text, strlen(text), "test.conf", err, sizeof err);
  cr_assert_not_null(doc, "parse of [%s] failed: %s", text, err);
  return doc;
}

static const char *parse_error(const char *text) {
  struct conf_doc *doc = conf_parse_text(text, strlen(text), "test.conf", err, sizeof err);
  cr_assert_null(doc, "expected a parse error for [%s]", text);
  return err;
}

static const struct conf_value *get(const struct conf_doc *doc, const char *key) {
  const struct conf_value *v = conf_map_get(doc->root, key);
  cr_assert_not_null(v, "key %s is missing", key);
  return v;
}

static int64_t get_integer(const struct conf_doc *doc, const char *key) {
  const struct conf_value *v = get(doc, key);
  cr_assert_eq(v->type, CONF_INTEGER, "key %s is not an integer", key);
  return v->as.integer;
}

static const char *get_string(const struct conf_doc *doc, const char *key) {
  const struct conf_value *v = get(doc, key);
  cr_assert_eq(v->type, CONF_STRING, "key %s is not a string", key);
  return v->as.string.bytes;
}

/* opts_init, then parse and apply text. Returns conf_apply's result, or
 * -2 when the text does not parse; the message is in err. */
static int load_text(const char *text, struct opts *o, int *warnings) {
  opts_init(o);
  struct conf_doc *doc = conf_parse_text(text, strlen(text), "test.conf", err, sizeof err);
  if (doc == NULL) return -2;
  int rc = conf_apply(doc, o, err, sizeof err, warnings);
  conf_doc_free(doc);
  return rc;
}

static char log_path[64];

/* Sends log lines, without the time, to a file that read_log returns. */
static void capture_log(void) {
  snprintf(log_path, sizeof log_path, "/tmp/shoal-test-conf-XXXXXX");
  int fd = mkstemp(log_path);
  cr_assert_geq(fd, 0);
  close(fd);
  cr_assert_eq(log_setup(false, false, false, log_path), 0);
}

static const char *read_log(void) {
  static char text[8192];
  FILE *f = fopen(log_path, "r");
  cr_assert_not_null(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  unlink(log_path);
  return text;
}

static void assert_list(char **list, const char *const expected[], const char *what) {
  cr_assert_not_null(list, "%s is NULL", what);
  int i = 0;
  for (; expected[i] != NULL; i++) {
    cr_assert_not_null(list[i], "%s has %d subjects, expected more", what, i);
    cr_assert_str_eq(list[i], expected[i], "%s[%d]", what, i);
  }
  cr_assert_null(list[i], "%s has more than %d subjects", what, i);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- Syntax ---- */

TestSuite(conf_syntax);

Test(conf_syntax, key_value_separators) {
  struct conf_doc *doc = parse("a = 1\nb: 2\nc 3\nd=4\ne:5\nf\t6\n");
  cr_assert_eq(get_integer(doc, "a"), 1);
  cr_assert_eq(get_integer(doc, "b"), 2);
  cr_assert_eq(get_integer(doc, "c"), 3);
  cr_assert_eq(get_integer(doc, "d"), 4);
  cr_assert_eq(get_integer(doc, "e"), 5);
  cr_assert_eq(get_integer(doc, "f"), 6);
  cr_assert_eq(doc->root->as.map.count, 6);
  conf_doc_free(doc);
}

Test(conf_syntax, top_level_terminators) {
  struct conf_doc *doc = parse("a: 1; b: 2, c: 3\nd: 4;\n");
  cr_assert_eq(get_integer(doc, "a"), 1);
  cr_assert_eq(get_integer(doc, "b"), 2);
  cr_assert_eq(get_integer(doc, "c"), 3);
  cr_assert_eq(get_integer(doc, "d"), 4);
  conf_doc_free(doc);
}

Test(conf_syntax, comments_everywhere) {
  struct conf_doc *doc = parse("# hash\n// slashes\na: 1 # after a value\nb: 2 // after a value\n"
                               "c: [1 # in an array\n 2 // here too\n # alone\n]\n"
                               "d { e: 1 # in a block\n // alone\n}\n");
  cr_assert_eq(get_integer(doc, "a"), 1);
  cr_assert_eq(get_integer(doc, "b"), 2);
  cr_assert_eq(get(doc, "c")->as.array.count, 2);
  cr_assert_eq(get(doc, "d")->as.map.count, 1);
  cr_assert_eq(doc->root->as.map.count, 4);
  conf_doc_free(doc);
}

Test(conf_syntax, double_quoted_escapes) {
  struct conf_doc *doc = parse("s: \"a\\tb\\nc\\rd\\\"e\\\\f\\x41\\x00g\"\n");
  const struct conf_value *s = get(doc, "s");
  cr_assert_eq(s->type, CONF_STRING);
  cr_assert_eq(s->as.string.len, 14);
  cr_assert_eq(memcmp(s->as.string.bytes, "a\tb\nc\rd\"e\\fA\0g", 14), 0);
  conf_doc_free(doc);
}

Test(conf_syntax, single_quoted_is_raw) {
  struct conf_doc *doc = parse("s: 'a\\tb \"q\"'\n");
  cr_assert_str_eq(get_string(doc, "s"), "a\\tb \"q\"");
  conf_doc_free(doc);
}

Test(conf_syntax, unquoted_strings) {
  struct conf_doc *doc = parse("a: hello\nb: nats://host:4222\nc: /var/lib/x\nd: 127.0.0.1:4222\n"
                               "e: 1h30m\nf: 4222#x\ng: a\\tb\nh: abc'\ni: 30s\n");
  cr_assert_str_eq(get_string(doc, "a"), "hello");
  cr_assert_str_eq(get_string(doc, "b"), "nats://host:4222");
  cr_assert_str_eq(get_string(doc, "c"), "/var/lib/x");
  cr_assert_str_eq(get_string(doc, "d"), "127.0.0.1:4222");
  cr_assert_str_eq(get_string(doc, "e"), "1h30m");
  cr_assert_str_eq(get_string(doc, "f"), "4222#x");
  cr_assert_str_eq(get_string(doc, "g"), "a\tb");
  cr_assert_str_eq(get_string(doc, "h"), "abc");
  cr_assert_str_eq(get_string(doc, "i"), "30s");
  conf_doc_free(doc);
}

Test(conf_syntax, block_string) {
  struct conf_doc *doc = parse("s: (\nline one\n  ) not the end\nline three\n)\nnext: 1\n");
  cr_assert_str_eq(get_string(doc, "s"), "\nline one\n  ) not the end\nline three\n");
  cr_assert_eq(get_integer(doc, "next"), 1);
  cr_assert_eq(get(doc, "next")->line, 6);
  conf_doc_free(doc);
}

Test(conf_syntax, booleans) {
  static const struct {
    const char *word;
    bool value;
  } cases[] = {{"true", true},  {"TRUE", true},   {"yes", true}, {"On", true},
               {"false", false}, {"off", false}, {"NO", false}, {"False", false}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "b: %s\n", cases[i].word);
    struct conf_doc *doc = parse(text);
    const struct conf_value *b = get(doc, "b");
    cr_assert_eq(b->type, CONF_BOOL, "%s", cases[i].word);
    cr_assert_eq(b->as.boolean, cases[i].value, "%s", cases[i].word);
    conf_doc_free(doc);
  }

  struct conf_doc *doc = parse("q: \"true\"\n");
  cr_assert_str_eq(get_string(doc, "q"), "true");
  conf_doc_free(doc);
}

Test(conf_syntax, numbers_and_dates) {
  struct conf_doc *doc = parse("i: 42\nn: -7\nf: 1.5\ng: -0.25\nd: 2024-02-29T12:30:45Z\n");
  cr_assert_eq(get_integer(doc, "i"), 42);
  cr_assert_eq(get_integer(doc, "n"), -7);
  cr_assert_eq(get(doc, "f")->type, CONF_FLOAT);
  cr_assert_float_eq(get(doc, "f")->as.number, 1.5, 1e-12);
  cr_assert_float_eq(get(doc, "g")->as.number, -0.25, 1e-12);
  cr_assert_eq(get(doc, "d")->type, CONF_DATETIME);
  cr_assert_eq(get(doc, "d")->as.unix_seconds, 1709209845);
  conf_doc_free(doc);
}

/* nats-server ends an unquoted number only at white space, a new line,
 * ',', ';', '}' or the end, so "1]" is the string "1". */
Test(conf_syntax, digit_before_bracket_is_string) {
  struct conf_doc *doc = parse("a: [1]\nb: [1, 2]\n");
  const struct conf_value *a = get(doc, "a");
  cr_assert_eq(a->as.array.count, 1);
  cr_assert_eq(a->as.array.items[0]->type, CONF_STRING);
  cr_assert_str_eq(a->as.array.items[0]->as.string.bytes, "1");
  const struct conf_value *b = get(doc, "b");
  cr_assert_eq(b->as.array.items[0]->type, CONF_INTEGER);
  cr_assert_eq(b->as.array.items[1]->type, CONF_STRING);
  conf_doc_free(doc);
}

Test(conf_syntax, arrays) {
  struct conf_doc *doc = parse("a: [1, 2, 3]\nb: [\n  x\n  y,\n  z\n]\nc: []\nd: [1, 2, ]\n"
                               "e: [[1, 2 ], {k: v}]\n");
  cr_assert_eq(get(doc, "a")->as.array.count, 3);
  const struct conf_value *b = get(doc, "b");
  cr_assert_eq(b->as.array.count, 3);
  cr_assert_str_eq(b->as.array.items[2]->as.string.bytes, "z");
  cr_assert_eq(b->as.array.items[2]->line, 5);
  cr_assert_eq(get(doc, "c")->as.array.count, 0);
  cr_assert_eq(get(doc, "d")->as.array.count, 2);
  const struct conf_value *e = get(doc, "e");
  cr_assert_eq(e->as.array.items[0]->type, CONF_ARRAY);
  cr_assert_eq(e->as.array.items[1]->type, CONF_MAP);
  cr_assert_str_eq(conf_map_get(e->as.array.items[1], "k")->as.string.bytes, "v");
  conf_doc_free(doc);
}

Test(conf_syntax, blocks) {
  struct conf_doc *doc = parse("m { a 1 }\nn: { a: 1 }\no = {\n  a\n  =\n  1\n}\np {}\n"
                               "q { r { s { t: deep } } }\n");
  cr_assert_eq(conf_map_get(get(doc, "m"), "a")->as.integer, 1);
  cr_assert_eq(conf_map_get(get(doc, "n"), "a")->as.integer, 1);
  cr_assert_eq(conf_map_get(get(doc, "o"), "a")->as.integer, 1);
  cr_assert_eq(get(doc, "p")->type, CONF_MAP);
  cr_assert_eq(get(doc, "p")->as.map.count, 0);
  const struct conf_value *s = conf_map_get(conf_map_get(get(doc, "q"), "r"), "s");
  cr_assert_str_eq(conf_map_get(s, "t")->as.string.bytes, "deep");
  conf_doc_free(doc);
}

Test(conf_syntax, file_wrapped_in_braces) {
  struct conf_doc *doc = parse("{\n  port: 4222\n  debug: true\n}\n");
  cr_assert_eq(get_integer(doc, "port"), 4222);
  cr_assert_eq(doc->root->as.map.count, 2);
  conf_doc_free(doc);
}

Test(conf_syntax, duplicate_key_last_wins) {
  struct conf_doc *doc = parse("a: 1\nb: 2\na: 3\n");
  cr_assert_eq(doc->root->as.map.count, 2);
  cr_assert_str_eq(doc->root->as.map.entries[0].key, "b");
  cr_assert_str_eq(doc->root->as.map.entries[1].key, "a");
  cr_assert_eq(get_integer(doc, "a"), 3);
  cr_assert_eq(doc->root->as.map.entries[1].line, 3);
  conf_doc_free(doc);
}

Test(conf_syntax, quoted_keys) {
  struct conf_doc *doc = parse("\"a b\": 1\n'c': 2\n\"include\": 3\n");
  cr_assert_eq(get_integer(doc, "a b"), 1);
  cr_assert_eq(get_integer(doc, "c"), 2);
  cr_assert_eq(get_integer(doc, "include"), 3);
  conf_doc_free(doc);
}

/* At the top level a new line may separate a key from its value, but not
 * a separator from its value. */
Test(conf_syntax, new_line_after_key) {
  struct conf_doc *doc = parse("port\n  4222\n");
  cr_assert_eq(get_integer(doc, "port"), 4222);
  conf_doc_free(doc);
  cr_assert_str_eq(parse_error("port =\n  4222\n"),
                   "test.conf:1: expected a value for 'port', found a new line");
}

Test(conf_syntax, values_tagged_with_line) {
  struct conf_doc *doc = parse("a: 1\n\n\nb: {\n  c: [\n    x\n  ]\n}\n");
  cr_assert_str_eq(get(doc, "a")->file, "test.conf");
  cr_assert_eq(get(doc, "a")->line, 1);
  cr_assert_eq(doc->root->as.map.entries[1].line, 4);
  const struct conf_entry *c = &get(doc, "b")->as.map.entries[0];
  cr_assert_eq(c->line, 5);
  cr_assert_eq(c->value->as.array.items[0]->line, 6);
  cr_assert_str_eq(c->file, "test.conf");
  conf_doc_free(doc);
}

/* A lone '/' after a value is skipped at the top level and separates
 * elements in arrays, as in nats-server. */
Test(conf_syntax, lone_slash_after_value) {
  struct conf_doc *doc = parse("a: 1 /\nb: [1 / 2]\n");
  cr_assert_eq(get_integer(doc, "a"), 1);
  cr_assert_eq(get(doc, "b")->as.array.count, 2);
  conf_doc_free(doc);
}

/* ---- Sizes ---- */

TestSuite(conf_sizes);

Test(conf_sizes, integer_suffixes) {
  static const struct {
    const char *text;
    int64_t value;
  } cases[] = {
      {"0", 0},
      {"1k", 1000},
      {"1K", 1000},
      {"1kb", 1024},
      {"1KB", 1024},
      {"1ki", 1024},
      {"1kib", 1024},
      {"1KiB", 1024},
      {"2m", 2000000},
      {"2mb", 2 * 1048576},
      {"2MiB", 2 * 1048576},
      {"1g", 1000000000},
      {"1G", 1000000000},
      {"1gb", 1073741824},
      {"1GB", 1073741824},
      {"1Gi", 1073741824},
      {"1GiB", 1073741824},
      {"1t", 1000000000000},
      {"1TB", 1099511627776},
      {"1p", 1000000000000000},
      {"1PiB", 1125899906842624},
      {"1e", 1000000000000000000},
      {"1EB", 1152921504606846976},
      {"7EB", 7 * 1152921504606846976},
      {"-5k", -5000},
      {"64K", 64000},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "v: %s\n", cases[i].text);
    struct conf_doc *doc = parse(text);
    cr_assert_eq(get_integer(doc, "v"), cases[i].value, "%s", cases[i].text);
    cr_assert_str_eq(get(doc, "v")->text, cases[i].text);
    conf_doc_free(doc);
  }
}

Test(conf_sizes, invalid_integers) {
  static const char suffixes[] = "expected a number with one of the suffixes k, kb, ki, kib, m, "
                                 "mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, p, pb, pi, pib, e, "
                                 "eb, ei, eib";
  char expected[512];
  snprintf(expected, sizeof expected, "test.conf:1: invalid size '1kbb': %s", suffixes);
  cr_assert_str_eq(parse_error("v: 1kbb\n"), expected);
  snprintf(expected, sizeof expected, "test.conf:1: invalid size '1kiib': %s", suffixes);
  cr_assert_str_eq(parse_error("v: 1kiib\n"), expected);
  cr_assert_str_eq(parse_error("v: 16E\n"), "test.conf:1: integer '16E' is out of range");
  cr_assert_str_eq(parse_error("v: 8EB\n"), "test.conf:1: integer '8EB' is out of range");
  cr_assert_str_eq(parse_error("v: 99999999999999999999\n"),
                   "test.conf:1: integer '99999999999999999999' is out of range");
}

/* JetStream limits take nats-server's getStorageSize forms: unquoted
 * integers with their suffix, or a quoted number with K, M, G or T, which
 * are powers of 1024. */
Test(conf_sizes, jetstream_storage_sizes) {
  static const struct {
    const char *text;
    int64_t value;
  } cases[] = {
      {"1G", 1000000000},        {"10G", 10000000000},     {"1GB", 1073741824},
      {"1GiB", 1073741824},      {"\"1G\"", 1073741824},   {"\"512M\"", 512 * 1048576},
      {"\"2K\"", 2048},          {"\"1T\"", 1099511627776}, {"\"\"", 0},
      {"1048576", 1048576},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "jetstream {\n  max_memory_store: %s\n  max_file_store: %s\n}\n",
             cases[i].text, cases[i].text);
    struct opts o;
    cr_assert_eq(load_text(text, &o, NULL), 0, "%s: %s", cases[i].text, err);
    cr_assert_eq(o.max_memory_store, cases[i].value, "%s", cases[i].text);
    cr_assert_eq(o.max_file_store, cases[i].value, "%s", cases[i].text);
    cr_assert(o.jetstream);
    opts_free(&o);
  }
}

Test(conf_sizes, invalid_jetstream_sizes) {
  static const char *const texts[] = {"\"1GB\"", "\"1g\"", "\"G\"", "\"1.5G\"", "true", "1.5"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "jetstream {\n  max_file_store: %s\n}\n", texts[i]);
    struct opts o;
    cr_assert_eq(load_text(text, &o, NULL), -1, "%s", texts[i]);
    char expected[512];
    snprintf(expected, sizeof expected,
             "test.conf:2: invalid max_file_store: expected a size such as 1G (10^9 bytes), 1GB "
             "(2^30 bytes) or the string \"1G\" (2^30 bytes), got %s",
             texts[i]);
    cr_assert_str_eq(err, expected);
    opts_free(&o);
  }
}

/* ---- Durations ---- */

TestSuite(conf_durations);

Test(conf_durations, ping_interval_table) {
  static const struct {
    const char *text;
    int64_t ms;
    int warnings;
  } cases[] = {
      {"\"2m\"", 120000, 0},
      {"\"1h30m\"", 5400000, 0},
      {"1h30m", 5400000, 0},
      {"\"500ms\"", 500, 0},
      {"\"1.5s\"", 1500, 0},
      {"\".5s\"", 500, 0},
      {"\"1500us\"", 2, 0}, /* rounded up to whole milliseconds */
      {"\"1m30s\"", 90000, 0},
      {"'45s'", 45000, 0},
      {"\"+1m\"", 60000, 0},
      {"\"0\"", OPTS_DEFAULT_PING_INTERVAL_MS, 0},
      {"30", 30000, 1},
      {"2m", 2000000000LL, 1}, /* the integer 2000000, so seconds */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "ping_interval: %s\n", cases[i].text);
    struct opts o;
    int warnings = -1;
    cr_assert_eq(load_text(text, &o, &warnings), 0, "%s: %s", cases[i].text, err);
    cr_assert_eq(o.ping_interval_ms, cases[i].ms, "%s", cases[i].text);
    cr_assert_eq(warnings, cases[i].warnings, "%s", cases[i].text);
    opts_free(&o);
  }
}

Test(conf_durations, bare_integer_warnings) {
  capture_log();
  struct opts o;
  int warnings = 0;
  cr_assert_eq(load_text("ping_interval: 2m\nwrite_deadline: 5\n", &o, &warnings), 0);
  cr_assert_eq(warnings, 2);
  cr_assert_eq(o.write_deadline_ms, 5000);
  const char *log = read_log();
  cr_assert_not_null(strstr(log, "[WRN] test.conf:1: ping_interval: unquoted 2m is the number "
                                 "2000000, so 2000000 seconds, as in nats-server; write \"2m\" "
                                 "in quotes for a duration\n"),
                     "%s", log);
  cr_assert_not_null(strstr(log, "[WRN] test.conf:2: write_deadline: a bare number is read as "
                                 "seconds; write a duration such as \"5s\"\n"),
                     "%s", log);
  opts_free(&o);
}

Test(conf_durations, invalid_durations) {
  static const struct {
    const char *text;
    const char *got;
    const char *expected;
  } cases[] = {
      {"\"2x\"", "\"2x\"", NULL},       {"\"\"", "\"\"", NULL},
      {"\"1\"", "\"1\"", NULL},         {"1.5", "1.5", NULL},
      {"true", "true", NULL},           {"[1]", "an array", NULL},
      {"\"-1s\"", "\"-1s\"", "a positive duration"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "write_deadline: %s\n", cases[i].text);
    struct opts o;
    cr_assert_eq(load_text(text, &o, NULL), -1, "%s", cases[i].text);
    char expected[256];
    snprintf(expected, sizeof expected, "test.conf:1: invalid write_deadline: expected %s, got %s",
             cases[i].expected != NULL
                 ? cases[i].expected
                 : "a duration string such as \"2m\", \"1h30m\" or \"500ms\"",
             cases[i].got);
    cr_assert_str_eq(err, expected);
    opts_free(&o);
  }
}

Test(conf_durations, lame_duck) {
  struct opts o;
  cr_assert_eq(load_text("lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"0s\"\n", &o,
                         NULL),
               0, "%s", err);
  cr_assert_eq(o.lame_duck_duration_ms, 30000);
  cr_assert_eq(o.lame_duck_grace_period_ms, OPTS_DEFAULT_LAME_DUCK_GRACE_MS);
  opts_free(&o);

  cr_assert_eq(load_text("lame_duck_duration: \"29s\"\n", &o, NULL), -1);
  cr_assert_str_eq(err, "test.conf:1: invalid lame_duck_duration: expected a duration of at "
                        "least 30s, got \"29s\"");
  opts_free(&o);

  cr_assert_eq(load_text("lame_duck_duration: 40\n", &o, NULL), -1);
  cr_assert_str_eq(err, "test.conf:1: invalid lame_duck_duration: expected a duration string "
                        "such as \"2m\", \"1h30m\" or \"500ms\", got 40");
  opts_free(&o);

  cr_assert_eq(load_text("lame_duck_grace_period: \"-1s\"\n", &o, NULL), -1);
  cr_assert_str_eq(err, "test.conf:1: invalid lame_duck_grace_period: expected a duration of 0s "
                        "or more, got \"-1s\"");
  opts_free(&o);
}

/* ---- Includes ---- */

TestSuite(conf_include);

Test(conf_include, relative_to_including_file) {
  struct opts o;
  opts_init(&o);
  cr_assert_eq(conf_load(fixture("valid_include.conf"), &o, err, sizeof err, NULL), 0, "%s", err);
  cr_assert_str_eq(o.server_name, "from-include");
  cr_assert_eq(o.max_payload, 512 * 1024);
  cr_assert_eq(o.max_connections, 100);
  cr_assert_eq(o.user_count, 2);
  cr_assert_str_eq(o.users[0].user, "alice");
  cr_assert_str_eq(o.users[1].user, "bob");
  opts_free(&o);
}

Test(conf_include, values_keep_included_file_and_line) {
  struct conf_doc *doc = conf_parse_file(fixture("valid_include.conf"), err, sizeof err);
  cr_assert_not_null(doc, "%s", err);
  const struct conf_value *payload = get(doc, "max_payload");
  cr_assert_str_eq(payload->file, fixture("include/limits.conf"));
  cr_assert_eq(payload->line, 2);
  const struct conf_value *name = get(doc, "server_name");
  cr_assert_str_eq(name->file, fixture("valid_include.conf"));
  cr_assert_eq(name->line, 3);
  cr_assert_eq(doc->file_count, 3);
  conf_doc_free(doc);
}

/* nats-server joins an absolute include path to the including file's
 * directory (Go's filepath.Join). */
Test(conf_include, absolute_path_joined_to_directory) {
  struct opts o;
  opts_init(&o);
  cr_assert_eq(conf_load(fixture("valid_include_absolute.conf"), &o, err, sizeof err, NULL), 0,
               "%s", err);
  cr_assert_eq(o.ping_max, 4);
  opts_free(&o);
}

Test(conf_include, missing_file) {
  struct conf_doc *doc = conf_parse_file(fixture("invalid_include_missing.conf"), err, sizeof err);
  cr_assert_null(doc);
  char expected[1024];
  snprintf(expected, sizeof expected,
           "%s:2: cannot read include file '%s': No such file or directory",
           fixture("invalid_include_missing.conf"), fixture("include/missing.conf"));
  cr_assert_str_eq(err, expected);
}

Test(conf_include, error_names_included_file) {
  struct conf_doc *doc = conf_parse_file(fixture("invalid_include_error.conf"), err, sizeof err);
  cr_assert_null(doc);
  char expected[1024];
  snprintf(expected, sizeof expected, "%s:2: block starting on line 2 is not closed: expected '}'",
           fixture("include/broken.conf"));
  cr_assert_str_eq(err, expected);
}

/* Writes text to dir/name. */
static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
}

static void remove_file(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unlink(path);
}

Test(conf_include, loop_is_bounded) {
  char dir[] = "/tmp/shoal-test-conf-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_file(dir, "loop.conf", "port: 4222\ninclude loop.conf\n");
  char path[512];
  snprintf(path, sizeof path, "%s/loop.conf", dir);

  struct conf_doc *doc = conf_parse_file(path, err, sizeof err);
  cr_assert_null(doc);
  char expected[1024];
  snprintf(expected, sizeof expected,
           "%s:2: include 'loop.conf' is nested deeper than 16 includes; is there an include "
           "loop?",
           path);
  cr_assert_str_eq(err, expected);
  remove_file(dir, "loop.conf");
  rmdir(dir);
}

/* An included file is parsed on its own: it cannot refer to the including
 * file's keys, while the including file can refer to the included keys. */
Test(conf_include, variable_scope_across_include) {
  char dir[] = "/tmp/shoal-test-conf-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_file(dir, "main.conf", "SHOAL_CONF_TEST_OUTER = 1\ninclude inner.conf\n");
  write_file(dir, "inner.conf", "\nport: $SHOAL_CONF_TEST_OUTER\n");
  write_file(dir, "main2.conf", "include inner2.conf\nport: $SHOAL_CONF_TEST_INNER\n");
  write_file(dir, "inner2.conf", "SHOAL_CONF_TEST_INNER = 4777\n");
  char path[512];

  snprintf(path, sizeof path, "%s/main.conf", dir);
  cr_assert_null(conf_parse_file(path, err, sizeof err));
  char expected[1024];
  snprintf(expected, sizeof expected,
           "%s/inner.conf:2: variable $SHOAL_CONF_TEST_OUTER is not defined in an enclosing "
           "block or in the environment",
           dir);
  cr_assert_str_eq(err, expected);

  snprintf(path, sizeof path, "%s/main2.conf", dir);
  struct opts o;
  opts_init(&o);
  int warnings = -1;
  cr_assert_eq(conf_load(path, &o, err, sizeof err, &warnings), 0, "%s", err);
  cr_assert_eq(o.port, 4777);
  cr_assert_eq(warnings, 0);
  opts_free(&o);

  remove_file(dir, "main.conf");
  remove_file(dir, "inner.conf");
  remove_file(dir, "main2.conf");
  remove_file(dir, "inner2.conf");
  rmdir(dir);
}

/* ---- Variables ---- */

TestSuite(conf_variables);

Test(conf_variables, enclosing_blocks) {
  struct conf_doc *doc = parse("VAR = 5\nblock {\n  inner = $VAR\n  VAR = 7\n  deep { x = $VAR }\n"
                               "}\ny = $VAR\n");
  const struct conf_value *block = get(doc, "block");
  cr_assert_eq(conf_map_get(block, "inner")->as.integer, 5);
  cr_assert_eq(conf_map_get(conf_map_get(block, "deep"), "x")->as.integer, 7);
  cr_assert_eq(get_integer(doc, "y"), 5);
  cr_assert_eq(get(doc, "y")->line, 7);
  cr_assert(get(doc, "VAR")->used);
  conf_doc_free(doc);
}

Test(conf_variables, copies_arrays_and_blocks) {
  struct conf_doc *doc = parse("B { a: 1, l: [x, y] }\nc: $B\nL = [1, 2]\nd: [$L, z]\n");
  const struct conf_value *c = get(doc, "c");
  cr_assert_eq(c->type, CONF_MAP);
  cr_assert_eq(conf_map_get(c, "a")->as.integer, 1);
  cr_assert_eq(conf_map_get(c, "l")->as.array.count, 2);
  cr_assert_neq(c, get(doc, "B"));
  const struct conf_value *d = get(doc, "d");
  cr_assert_eq(d->as.array.count, 2);
  cr_assert_eq(d->as.array.items[0]->type, CONF_ARRAY);
  conf_doc_free(doc);
}

Test(conf_variables, environment_typed_like_a_value) {
  setenv("SHOAL_CONF_TEST_INT", "4222", 1);
  setenv("SHOAL_CONF_TEST_SIZE", "1G", 1);
  setenv("SHOAL_CONF_TEST_LIST", "[a, b]", 1);
  setenv("SHOAL_CONF_TEST_STR", "hello", 1);
  setenv("SHOAL_CONF_TEST_QUOTED", "\"1G\"", 1);
  struct conf_doc *doc = parse("i: $SHOAL_CONF_TEST_INT\ns: $SHOAL_CONF_TEST_SIZE\n"
                               "l: $SHOAL_CONF_TEST_LIST\nt: $SHOAL_CONF_TEST_STR\n"
                               "q: $SHOAL_CONF_TEST_QUOTED\n");
  cr_assert_eq(get_integer(doc, "i"), 4222);
  cr_assert_eq(get_integer(doc, "s"), 1000000000);
  cr_assert_eq(get(doc, "l")->as.array.count, 2);
  cr_assert_str_eq(get_string(doc, "t"), "hello");
  cr_assert_str_eq(get_string(doc, "q"), "1G");
  cr_assert_str_eq(get(doc, "i")->file, "test.conf");
  cr_assert_eq(get(doc, "t")->line, 4);
  conf_doc_free(doc);
}

Test(conf_variables, file_before_environment) {
  setenv("SHOAL_CONF_TEST_BOTH", "from-env", 1);
  struct conf_doc *doc = parse("SHOAL_CONF_TEST_BOTH = from-file\na: $SHOAL_CONF_TEST_BOTH\n");
  cr_assert_str_eq(get_string(doc, "a"), "from-file");
  conf_doc_free(doc);
}

Test(conf_variables, undefined_is_error_with_line) {
  unsetenv("SHOAL_CONF_TEST_NOPE");
  cr_assert_str_eq(parse_error("port: 4222\n\nserver_name: $SHOAL_CONF_TEST_NOPE\n"),
                   "test.conf:3: variable $SHOAL_CONF_TEST_NOPE is not defined in an enclosing "
                   "block or in the environment");
}

Test(conf_variables, unparsable_environment_value) {
  setenv("SHOAL_CONF_TEST_BAD", "a b", 1);
  cr_assert_str_eq(parse_error("server_name: $SHOAL_CONF_TEST_BAD\n"),
                   "test.conf:1: cannot use environment variable $SHOAL_CONF_TEST_BAD: expected a "
                   "new line, ';' or a comment after the value of 'SHOAL_CONF_TEST_BAD', found "
                   "'b'");
}

Test(conf_variables, self_reference_is_bounded) {
  setenv("SHOAL_CONF_TEST_SELF", "$SHOAL_CONF_TEST_SELF", 1);
  cr_assert_str_eq(parse_error("a: $SHOAL_CONF_TEST_SELF\n"),
                   "test.conf:1: environment variable $SHOAL_CONF_TEST_SELF refers to variables "
                   "nested deeper than 8 levels");
}

/* "$2a$..." is a bcrypt hash and needs no quotes, as in nats-server. */
Test(conf_variables, bcrypt_hash_is_not_a_variable) {
  struct conf_doc *doc = parse("p: $2a$11$W2zko751KUvVy59mUTWmpO/dWjp.Em5q\n");
  cr_assert_str_eq(get_string(doc, "p"), "$2a$11$W2zko751KUvVy59mUTWmpO/dWjp.Em5q");
  conf_doc_free(doc);
}

Test(conf_variables, key_used_as_variable_is_not_unknown) {
  capture_log();
  struct opts o;
  int warnings = -1;
  cr_assert_eq(load_text("N = 4333\nport: $N\nunused = 1\n", &o, &warnings), 0, "%s", err);
  cr_assert_eq(o.port, 4333);
  cr_assert_eq(warnings, 1);
  const char *log = read_log();
  cr_assert_not_null(strstr(log, "[WRN] test.conf:3: unknown key 'unused', ignored\n"), "%s", log);
  cr_assert_null(strstr(log, "'N'"), "%s", log);
  opts_free(&o);
}

/* ---- Parse errors ---- */

TestSuite(conf_errors);

Test(conf_errors, exact_messages) {
  static const struct {
    const char *text;
    const char *message;
  } cases[] = {
      {"a: [1,,2]\n", "test.conf:1: expected an array element or ']', found ','"},
      {"a: [1 2]\n", "test.conf:1: expected ',', a new line or ']' after an element of the array "
                     "starting on line 1, found '2'"},
      {"a: {b: 1\n", "test.conf:1: block starting on line 1 is not closed: expected '}'"},
      {"a: [1,\n2\n", "test.conf:1: array starting on line 1 is not closed: expected ']'"},
      {"a: \"abc\n", "test.conf:1: string starting on line 1 is not closed: expected \""},
      {"a: 'abc\n", "test.conf:1: string starting on line 1 is not closed: expected '"},
      {"\n\na: (\nabc\n", "test.conf:3: block string starting on line 3 is not closed: expected "
                          "')' alone at the start of a line"},
      {"a: \"\\q\"\n", "test.conf:1: invalid escape '\\q': expected one of \\xHH, \\t, \\n, \\r, "
                       "\\\" and \\\\"},
      {"a: \"\\xZZ\"\n", "test.conf:1: invalid escape in string: expected two hexadecimal digits "
                         "after \\x"},
      {"a: .5\n", "test.conf:1: invalid number: a float must start with a digit, not '.'"},
      {"a: 1.x\n", "test.conf:1: invalid number '1.': expected a digit after '.', found 'x'"},
      {"a: 12-3\n", "test.conf:1: invalid number '12-': a date must have the form "
                    "YYYY-MM-DDTHH:MM:SSZ"},
      {"a: 2024-02-30T00:00:00Z\n", "test.conf:1: invalid date '2024-02-30T00:00:00Z': a field "
                                    "is out of range"},
      {"a: 2024-02-01 00:00\n", "test.conf:1: invalid date '2024-02-01': expected the form "
                                "YYYY-MM-DDTHH:MM:SSZ"},
      {"a: -x\n", "test.conf:1: expected a digit after '-', found 'x'"},
      {"a: 1 b\n", "test.conf:1: expected a new line, ';' or a comment after the value of 'a', "
                   "found 'b'"},
      {"a: 1m30s\n", "test.conf:1: expected a new line, ';' or a comment after the value of 'a', "
                     "found '3'; write durations such as \"1m30s\" in quotes"},
      {"m { a: 1 b: 2 }\n", "test.conf:1: expected ',', ';', a new line or '}' after the value "
                            "of 'a', found 'b'"},
      {"m { a: }\n", "test.conf:1: expected a value for 'a', found '}'"},
      {"m { = 1 }\n", "test.conf:1: expected a key or '}', found '='"},
      {": 1\n", "test.conf:1: expected a key, found ':'"},
      {"a =\n", "test.conf:1: expected a value for 'a', found a new line"},
      {"a\n", "test.conf:1: expected a value for 'a', found the end of the file"},
      {"\"a: 1\n", "test.conf:1: key starting on line 1 is not closed: expected \""},
      {"include\n", "test.conf:1: expected a file name after include, found a new line"},
      {"include [x]\n", "test.conf:1: expected a file name after include, found '['"},
      {"a: 1\nb: 2\nc: [\n1,\n,\n]\n", "test.conf:5: expected an array element or ']', found ','"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cr_assert_str_eq(parse_error(cases[i].text), cases[i].message, "for [%s]", cases[i].text);
  }
}

Test(conf_errors, nul_byte) {
  static const char text[] = "a: 1\nb: x\0y\n";
  struct conf_doc *doc = conf_parse_text(text, sizeof text - 1, "test.conf", err, sizeof err);
  cr_assert_null(doc);
  cr_assert_str_eq(err, "test.conf:2: the file contains a NUL byte");
}

Test(conf_errors, nesting_is_bounded) {
  char text[256] = "a: ";
  for (int i = 0; i < CONF_DEPTH_MAX + 1; i++) strcat(text, "[");
  cr_assert_str_eq(parse_error(text),
                   "test.conf:1: blocks and arrays are nested deeper than 64 levels");
}

Test(conf_errors, missing_file) {
  struct opts o;
  opts_init(&o);
  cr_assert_eq(conf_load("/nonexistent/shoal.conf", &o, err, sizeof err, NULL), -1);
  cr_assert_str_eq(err, "/nonexistent/shoal.conf: cannot read the configuration file: No such "
                        "file or directory");
  opts_free(&o);
}

/* Method: every prefix of each fixture, and single-byte mutations of them
 * with a fixed seed, must either parse or give an error message that names
 * the file. Memory errors show up in the sanitizer build. */
static char *read_fixture(const char *name, size_t *len) {
  FILE *f = fopen(fixture(name), "rb");
  cr_assert_not_null(f, "%s", name);
  static char text[8192];
  *len = fread(text, 1, sizeof text, f);
  fclose(f);
  char *copy = malloc(*len + 1);
  cr_assert_not_null(copy);
  memcpy(copy, text, *len);
  return copy;
}

static void assert_parses_or_errors(const char *text, size_t len) {
  /* An exact-size copy, so that a read past the end fails under ASan. */
  char *exact = malloc(len > 0 ? len : 1);
  cr_assert_not_null(exact);
  memcpy(exact, text, len);
  struct conf_doc *doc = conf_parse_text(exact, len, "test.conf", err, sizeof err);
  free(exact);
  if (doc != NULL) {
    cr_assert_eq(doc->root->type, CONF_MAP);
    conf_doc_free(doc);
  } else {
    cr_assert_eq(strncmp(err, "test.conf", 9), 0, "error without the file name: %s", err);
  }
}

Test(conf_errors, every_prefix_and_mutation) {
  static const char *const names[] = {"fleet.conf", "valid_syntax.conf", "valid_auth.conf",
                                      "valid_variables.conf"};
  setenv("SHOAL_CONF_TEST_PAYLOAD", "2MB", 1);
  static const char bytes[] = "{}[]()\"'#/:=,; \n\t$-.0123456789kKbBiIxZ";
  unsigned seed = 12345;
  for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
    size_t len;
    char *text = read_fixture(names[n], &len);
    for (size_t prefix = 0; prefix <= len; prefix++) assert_parses_or_errors(text, prefix);

    for (int round = 0; round < 500; round++) {
      seed = seed * 1103515245 + 12345;
      size_t at = (seed >> 8) % len;
      char saved = text[at];
      text[at] = bytes[(seed >> 20) % (sizeof bytes - 1)];
      assert_parses_or_errors(text, len);
      text[at] = saved;
    }
    free(text);
  }
}

/* ---- Mapping onto struct opts ---- */

TestSuite(conf_apply);

Test(conf_apply, fleet_config_loads) {
  capture_log();
  struct opts o;
  opts_init(&o);
  int warnings = -1;
  cr_assert_eq(conf_load(fixture("fleet.conf"), &o, err, sizeof err, &warnings), 0, "%s", err);
  cr_assert_eq(o.port, 4222);
  cr_assert_eq(o.http_port, 8222);
  cr_assert(o.jetstream);
  cr_assert_str_eq(o.store_dir, "/var/lib/nats/jetstream");
  cr_assert_eq(o.max_memory_store, 1000000000);
  cr_assert_eq(o.max_file_store, 10000000000);
  cr_assert_eq(warnings, 1);

  char expected[1024];
  snprintf(expected, sizeof expected,
           "[WRN] %s:8: clustering is not supported yet; the cluster block is accepted and "
           "ignored, and this server runs alone\n",
           fixture("fleet.conf"));
  const char *log = read_log();
  cr_assert_not_null(strstr(log, expected), "%s", log);
  opts_free(&o);
}

Test(conf_apply, every_listed_key) {
  struct opts o;
  opts_init(&o);
  int warnings = -1;
  cr_assert_eq(conf_load(fixture("valid_syntax.conf"), &o, err, sizeof err, &warnings), 0, "%s",
               err);
  cr_assert_eq(warnings, 0);
  cr_assert_eq(o.port, 4333);
  cr_assert_str_eq(o.server_name, "syntax \"test\"!");
  cr_assert_str_eq(o.host, "127.0.0.1");
  cr_assert(o.debug);
  cr_assert_not(o.trace);
  cr_assert(o.logtime);
  cr_assert_eq(o.ping_max, 3);
  cr_assert_str_eq(o.http_host, "localhost");
  cr_assert_eq(o.http_port, 8333);
  cr_assert_str_eq(o.pidfile, "/tmp/shoal-conf-test/server.pid");
  cr_assert_str_eq(o.logfile, "/tmp/shoal-conf-test/server.log");
  cr_assert_str_eq(o.ports_file_dir, "/tmp/shoal-conf-test");
  cr_assert_eq(o.max_payload, 2 * 1048576);
  cr_assert_eq(o.max_pending, 64 * 1048576);
  cr_assert_eq(o.max_control_line, 8000);
  cr_assert_eq(o.max_connections, 10000);
  cr_assert_eq(o.max_subscriptions, 1000);
  cr_assert_eq(o.write_deadline_ms, 2500);
  cr_assert_eq(o.ping_interval_ms, 5400000);
  cr_assert_eq(o.lame_duck_duration_ms, 45000);
  cr_assert_eq(o.lame_duck_grace_period_ms, 5000);
  cr_assert_str_eq(o.auth_user, "alice");
  cr_assert_str_eq(o.auth_password, "\nsecret with spaces\n");
  cr_assert_eq(o.auth_timeout_ms, 1500);
  cr_assert(o.jetstream);
  cr_assert_str_eq(o.store_dir, "/tmp/shoal-conf-test/js");
  cr_assert_eq(o.max_memory_store, 1000000000);
  cr_assert_eq(o.max_file_store, 10737418240);
  opts_free(&o);
}

Test(conf_apply, listen_forms) {
  static const struct {
    const char *text;
    const char *host;
    int port;
  } cases[] = {
      {"listen: 4333", "0.0.0.0", 4333},
      {"listen: 127.0.0.1:4333", "127.0.0.1", 4333},
      {"listen: localhost:4333", "localhost", 4333},
      {"listen: \"[::1]:4333\"", "::1", 4333},
      {"listen: \":4333\"", "0.0.0.0", 4333},
      {"listen: -1", "0.0.0.0", -1},
      {"host: 127.0.0.2\nlisten: 4333", "127.0.0.2", 4333},
      {"listen: 127.0.0.1:0", "127.0.0.1", OPTS_DEFAULT_PORT},
      {"net: 127.0.0.3\nport: 4444", "127.0.0.3", 4444},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct opts o;
    cr_assert_eq(load_text(cases[i].text, &o, NULL), 0, "%s: %s", cases[i].text, err);
    cr_assert_str_eq(o.host, cases[i].host, "%s", cases[i].text);
    cr_assert_eq(o.port, cases[i].port, "%s", cases[i].text);
    opts_free(&o);
  }
}

Test(conf_apply, invalid_listen) {
  static const char *const texts[] = {"\"localhost\"", "\"a:b:4222\"", "\"host:port\"", "1.5"};
  static const char *const got[] = {"\"localhost\"", "\"a:b:4222\"", "\"host:port\"", "1.5"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "listen: %s\n", texts[i]);
    struct opts o;
    cr_assert_eq(load_text(text, &o, NULL), -1, "%s", texts[i]);
    char expected[256];
    snprintf(expected, sizeof expected,
             "test.conf:1: invalid listen: expected a port, or a string \"host:port\", got %s",
             got[i]);
    cr_assert_str_eq(err, expected);
    opts_free(&o);
  }
}

Test(conf_apply, http_forms) {
  struct opts o;
  cr_assert_eq(load_text("http: 8222\n", &o, NULL), 0, "%s", err);
  cr_assert_null(o.http_host);
  cr_assert_eq(o.http_port, 8222);
  opts_free(&o);

  cr_assert_eq(load_text("http: 127.0.0.1:8223\n", &o, NULL), 0, "%s", err);
  cr_assert_str_eq(o.http_host, "127.0.0.1");
  cr_assert_eq(o.http_port, 8223);
  opts_free(&o);

  cr_assert_eq(load_text("monitor_port: 8224\n", &o, NULL), 0, "%s", err);
  cr_assert_eq(o.http_port, 8224);
  opts_free(&o);
}

/* nats-server replaces a zero by its default for these keys. */
Test(conf_apply, zero_means_default) {
  struct opts o;
  cr_assert_eq(load_text("port: 0\nmax_payload: 0\nmax_pending: 0\nmax_control_line: 0\n"
                         "max_connections: 0\nping_max: 0\nping_interval: \"0s\"\n"
                         "write_deadline: \"0\"\nlame_duck_grace_period: \"0s\"\n",
                         &o, NULL),
               0, "%s", err);
  cr_assert_eq(o.port, OPTS_DEFAULT_PORT);
  cr_assert_eq(o.max_payload, OPTS_DEFAULT_MAX_PAYLOAD);
  cr_assert_eq(o.max_pending, OPTS_DEFAULT_MAX_PENDING);
  cr_assert_eq(o.max_control_line, OPTS_DEFAULT_MAX_CONTROL_LINE);
  cr_assert_eq(o.max_connections, OPTS_DEFAULT_MAX_CONNECTIONS);
  cr_assert_eq(o.ping_max, OPTS_DEFAULT_PING_MAX);
  cr_assert_eq(o.ping_interval_ms, OPTS_DEFAULT_PING_INTERVAL_MS);
  cr_assert_eq(o.write_deadline_ms, OPTS_DEFAULT_WRITE_DEADLINE_MS);
  cr_assert_eq(o.lame_duck_grace_period_ms, OPTS_DEFAULT_LAME_DUCK_GRACE_MS);
  opts_free(&o);
}

Test(conf_apply, negative_limit_kept) {
  struct opts o;
  cr_assert_eq(load_text("max_connections: -1\nmax_subs: -1\n", &o, NULL), 0, "%s", err);
  cr_assert_eq(o.max_connections, -1);
  cr_assert_eq(o.max_subscriptions, -1);
  opts_free(&o);
}

Test(conf_apply, invalid_types) {
  static const struct {
    const char *text;
    const char *message;
  } cases[] = {
      {"port: \"4222\"", "test.conf:1: invalid port: expected a port number from 0 to 65535, or "
                         "-1 for a random port, got \"4222\""},
      {"port: 70000", "test.conf:1: invalid port: expected a port number from 0 to 65535, or -1 "
                      "for a random port, got 70000"},
      {"debug: 1", "test.conf:1: invalid debug: expected true or false (or yes/no, on/off, "
                   "unquoted), got 1"},
      {"server_name: [a]", "test.conf:1: invalid server_name: expected a string, got an array"},
      {"max_payload: 3GB", "test.conf:1: invalid max_payload: expected a size of at most "
                           "2147483647 bytes, got 3GB"},
      {"max_pending: -1", "test.conf:1: invalid max_pending: expected a positive integer, "
                          "optionally with a size suffix such as 1MB or 64K, got -1"},
      {"ping_max: -2", "test.conf:1: invalid ping_max: expected a positive integer, got -2"},
      {"max_connections: 1.5", "test.conf:1: invalid max_connections: expected an integer, such "
                               "as 1000 or 64K, got 1.5"},
      {"authorization: true", "test.conf:1: invalid authorization: expected a block, got true"},
      {"cluster: [1]", "test.conf:1: invalid cluster: expected a block, got an array"},
      {"jetstream: maybe", "test.conf:1: invalid jetstream: expected true, false, \"enabled\", "
                           "\"disabled\" or a block, got \"maybe\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct opts o;
    cr_assert_eq(load_text(cases[i].text, &o, NULL), -1, "%s", cases[i].text);
    cr_assert_str_eq(err, cases[i].message);
    opts_free(&o);
  }
}

Test(conf_apply, jetstream_forms) {
  static const struct {
    const char *text;
    bool enabled;
  } cases[] = {
      {"jetstream: enabled", true},       {"jetstream: \"Enable\"", true},
      {"jetstream: true", true},          {"jetstream: disabled", false},
      {"jetstream: off", false},          {"jetstream {}", true},
      {"jetstream { enabled: false }", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct opts o;
    cr_assert_eq(load_text(cases[i].text, &o, NULL), 0, "%s: %s", cases[i].text, err);
    cr_assert_eq(o.jetstream, cases[i].enabled, "%s", cases[i].text);
    opts_free(&o);
  }

  struct opts o;
  cr_assert_eq(load_text("jetstream {\n  key: abc\n}\n", &o, NULL), -1);
  cr_assert_str_eq(err, "test.conf:2: JetStream encryption (key) is not supported yet; remove the "
                        "key to store streams unencrypted");
  opts_free(&o);
}

/* sync_interval (nats-server 2.10's name, also "sync") takes "always" or a
 * positive duration. shoal's default is "always". */
Test(conf_apply, jetstream_sync_interval) {
  static const struct {
    const char *text;
    int64_t ms;
    int warnings;
  } cases[] = {
      {"jetstream {}", 0, 0},
      {"jetstream { sync_interval: always }", 0, 0},
      {"jetstream { sync_interval: \"ALWAYS\" }", 0, 0},
      {"jetstream { sync_interval: \"2m\" }", 120000, 0},
      {"jetstream { sync_interval: \"250ms\" }", 250, 0},
      {"jetstream { sync: \"1s\" }", 1000, 0},
      {"jetstream { sync_interval: \"1us\" }", 1, 0},
      {"jetstream { sync_interval: 5 }", 5000, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct opts o;
    int warnings = -1;
    cr_assert_eq(load_text(cases[i].text, &o, &warnings), 0, "%s: %s", cases[i].text, err);
    cr_assert_eq(o.sync_interval_ms, cases[i].ms, "%s", cases[i].text);
    cr_assert_eq(warnings, cases[i].warnings, "%s", cases[i].text);
    cr_assert(o.jetstream);
    opts_free(&o);
  }
}

Test(conf_apply, invalid_sync_interval) {
  static const char *const values[] = {"\"fast\"", "\"0s\"", "\"-1s\"", "0", "true", "[1]"};
  static const char *const shown[] = {"\"fast\"", "\"0s\"", "\"-1s\"", "0", "true", "an array"};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "jetstream {\n  sync_interval: %s\n}\n", values[i]);
    struct opts o;
    cr_assert_eq(load_text(text, &o, NULL), -1, "%s", values[i]);
    char expected[256];
    snprintf(expected, sizeof expected,
             "test.conf:2: invalid sync_interval: expected \"always\" or a duration such as "
             "\"2m\" or \"500ms\", got %s",
             shown[i]);
    cr_assert_str_eq(err, expected);
    opts_free(&o);
  }
}

Test(conf_apply, authorization_single_user_and_token) {
  struct opts o;
  cr_assert_eq(load_text("authorization { user: alice, password: secret, timeout: 5 }\n", &o,
                         NULL),
               0, "%s", err);
  cr_assert_str_eq(o.auth_user, "alice");
  cr_assert_str_eq(o.auth_password, "secret");
  cr_assert_null(o.auth_token);
  cr_assert_eq(o.auth_timeout_ms, 5000);
  cr_assert_eq(o.user_count, 0);
  opts_free(&o);

  cr_assert_eq(load_text("authorization {\n  token: \"s3cr3t\"\n  timeout: 0.5\n}\n", &o, NULL), 0,
               "%s", err);
  cr_assert_str_eq(o.auth_token, "s3cr3t");
  cr_assert_null(o.auth_user);
  cr_assert_eq(o.auth_timeout_ms, 500);
  opts_free(&o);
}

Test(conf_apply, authorization_users_and_permissions) {
  struct opts o;
  opts_init(&o);
  int warnings = -1;
  cr_assert_eq(conf_load(fixture("valid_auth.conf"), &o, err, sizeof err, &warnings), 0, "%s", err);
  cr_assert_eq(warnings, 0);
  cr_assert_eq(o.auth_timeout_ms, 3000);
  cr_assert_str_eq(o.no_auth_user, "guest");
  cr_assert_eq(o.user_count, 4);

  const struct opts_user *admin = &o.users[0];
  cr_assert_str_eq(admin->user, "admin");
  cr_assert_str_eq(admin->password, "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG");
  assert_list(admin->pub_allow, LIST("default.>"), "admin publish allow");
  assert_list(admin->sub_allow, LIST("_INBOX.>", "default.>"), "admin subscribe allow");
  cr_assert_null(admin->pub_deny);
  cr_assert_not(admin->allow_responses);

  const struct opts_user *robot = &o.users[1];
  cr_assert_str_eq(robot->user, "robot");
  cr_assert_str_eq(robot->password, "robot-pass");
  assert_list(robot->pub_allow, LIST("telemetry.>", "status.*"), "robot publish allow");
  assert_list(robot->pub_deny, LIST("telemetry.secret"), "robot publish deny");
  assert_list(robot->sub_allow, LIST("commands.robot.>", "tasks.> workers"),
              "robot subscribe allow");
  cr_assert_null(robot->sub_deny);
  cr_assert(robot->allow_responses);
  cr_assert_eq(robot->responses_max, 1);
  cr_assert_eq(robot->responses_expires_ms, 2 * 60 * 1000);

  /* allow_responses turns off the blanket publish permission. */
  const struct opts_user *service = &o.users[2];
  cr_assert_str_eq(service->user, "service");
  assert_list(service->sub_allow, LIST("requests.>"), "service subscribe allow");
  cr_assert_not_null(service->pub_allow);
  cr_assert_null(service->pub_allow[0]);
  cr_assert(service->allow_responses);
  cr_assert_eq(service->responses_max, 5);
  cr_assert_eq(service->responses_expires_ms, 60000);

  const struct opts_user *guest = &o.users[3];
  cr_assert_str_eq(guest->user, "guest");
  assert_list(guest->pub_allow, LIST("default.>"), "guest publish allow");
  opts_free(&o);
}

Test(conf_apply, authorization_conflicts) {
  static const struct {
    const char *text;
    const char *message;
  } cases[] = {
      {"authorization {\n  user: a\n  token: t\n}\n",
       "test.conf:3: authorization cannot have both a token and a user/password; use one of "
       "them"},
      {"authorization {\n  user: a\n  users: []\n}\n",
       "test.conf:2: authorization cannot have both a single user and a users array; use one of "
       "them"},
      {"authorization {\n  token: t\n  users: []\n}\n",
       "test.conf:2: authorization cannot have both a token and a users array; use one of them"},
      {"authorization {\n  users: [\n    {user: a}\n    {user: a}\n  ]\n}\n",
       "test.conf:4: duplicate user \"a\" in users"},
      {"authorization {\n  users: [\n    {password: a}\n  ]\n}\n",
       "test.conf:3: a block in the users array has no user key"},
      {"authorization {\n  users: [\n    {nkey: UABC}\n  ]\n}\n",
       "test.conf:3: nkey users are not supported yet"},
      {"authorization {\n  users: [a]\n}\n",
       "test.conf:2: invalid users: expected a block such as { user: alice, password: secret }, "
       "got \"a\""},
      {"authorization {\n  users: [{user: a, permissions: {publish: {allow: [true]}}}]\n}\n",
       "test.conf:2: invalid allow: expected a subject string, got true"},
      {"authorization {\n  users: [{user: a, permissions: {publish: {allw: x}}}]\n}\n",
       "test.conf:2: unknown key 'allw' in publish: expected allow or deny"},
      {"authorization {\n  users: [{user: a, permissions: {allow_responses: {max: x}}}]\n}\n",
       "test.conf:2: invalid max: expected an integer, got \"x\""},
      {"no_auth_user: bob\n", "test.conf:1: no_auth_user \"bob\" is not a user of the "
                              "authorization users array"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct opts o;
    cr_assert_eq(load_text(cases[i].text, &o, NULL), -1, "%s", cases[i].text);
    cr_assert_str_eq(err, cases[i].message);
    opts_free(&o);
  }
}

/* Permission subjects follow nats-server 2.9.10: a subject, or a subject
 * and a queue group separated by white space. */
Test(conf_apply, permission_subject_forms) {
  static const struct {
    const char *subject;
    bool valid;
  } cases[] = {
      {"foo", true},          {">", true},           {"*", true},
      {"foo.*.bar", true},    {"foo.>", true},       {"foo*.b>r", true},
      {"foo.> workers", true}, {"foo\tq", true},      {"foo..bar", false},
      {".foo", false},        {"foo.", false},       {"foo.>.bar", false},
      {"", false},            {"foo bar baz", false}, {"foo..bar q", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[256];
    snprintf(text, sizeof text,
             "authorization {\n  users: [{user: a, permissions: {subscribe: \"%s\"}}]\n}\n",
             cases[i].subject);
    struct opts o;
    cr_assert_eq(load_text(text, &o, NULL), cases[i].valid ? 0 : -1, "[%s]: %s",
                 cases[i].subject, err);
    if (cases[i].valid) {
      assert_list(o.users[0].sub_allow, LIST(cases[i].subject), cases[i].subject);
    } else {
      char expected[256];
      snprintf(expected, sizeof expected,
               "test.conf:2: invalid subscribe: \"%s\" is not a valid subject, nor a subject "
               "and a queue group",
               cases[i].subject);
      cr_assert_str_eq(err, expected);
    }
    opts_free(&o);
  }
}

/* Passwords and tokens never reach a message or a log. */
Test(conf_apply, secrets_not_in_messages) {
  struct opts o;
  cr_assert_eq(load_text("authorization { token: 123456789 }\n", &o, NULL), -1);
  cr_assert_str_eq(err, "test.conf:1: invalid token: expected a string, got an integer");
  opts_free(&o);

  cr_assert_eq(load_text("authorization { users: [{user: a, password: 987654321}] }\n", &o, NULL),
               -1);
  cr_assert_str_eq(err, "test.conf:1: invalid password: expected a string, got an integer");
  opts_free(&o);
}

Test(conf_apply, auth_timeout_string_is_one_second) {
  capture_log();
  struct opts o;
  int warnings = 0;
  cr_assert_eq(load_text("authorization {\n  timeout: \"5s\"\n}\n", &o, &warnings), 0, "%s", err);
  cr_assert_eq(o.auth_timeout_ms, 1000);
  cr_assert_eq(warnings, 1);
  const char *log = read_log();
  cr_assert_not_null(strstr(log, "[WRN] test.conf:2: timeout is not a number of seconds, so it is "
                                 "1 second as in nats-server\n"),
                     "%s", log);
  opts_free(&o);
}

Test(conf_apply, unknown_and_unsupported_keys_warn) {
  capture_log();
  struct opts o;
  int warnings = -1;
  cr_assert_eq(load_text("port: 4222\nfoo: 1\nsyslog: true\nauthorization {\n  bar: 2\n}\n"
                         "jetstream {\n  domain: hub\n}\n",
                         &o, &warnings),
               0, "%s", err);
  cr_assert_eq(warnings, 4);
  const char *log = read_log();
  cr_assert_not_null(strstr(log, "[WRN] test.conf:2: unknown key 'foo', ignored\n"), "%s", log);
  cr_assert_not_null(strstr(log, "[WRN] test.conf:3: syslog is a nats-server option that shoal "
                                 "does not support yet, ignored\n"),
                     "%s", log);
  cr_assert_not_null(strstr(log, "[WRN] test.conf:5: unknown key 'bar' in authorization, "
                                 "ignored\n"),
                     "%s", log);
  cr_assert_not_null(strstr(log, "[WRN] test.conf:8: jetstream domain is not supported yet, "
                                 "ignored\n"),
                     "%s", log);
  opts_free(&o);
}

Test(conf_apply, security_keys_rejected) {
  struct opts o;
  cr_assert_eq(load_text("port: 4222\ntls {\n  cert_file: x\n}\n", &o, NULL), -1);
  cr_assert_str_eq(err, "test.conf:2: tls is a nats-server option that shoal does not support "
                        "yet, and running without it would weaken security; remove it to run "
                        "without");
  opts_free(&o);
}

Test(conf_apply, keys_match_without_case) {
  struct opts o;
  cr_assert_eq(load_text("PORT: 4333\nServer_Name: a\nAuthorization { USER: u, Password: p }\n",
                         &o, NULL),
               0, "%s", err);
  cr_assert_eq(o.port, 4333);
  cr_assert_str_eq(o.server_name, "a");
  cr_assert_str_eq(o.auth_user, "u");
  cr_assert_str_eq(o.auth_password, "p");
  opts_free(&o);
}

Test(conf_apply, load_file_logs_error) {
  capture_log();
  struct opts o;
  opts_init(&o);
  cr_assert_eq(conf_load_file(fixture("invalid_lame_duck.conf"), &o), -1);
  char expected[1024];
  snprintf(expected, sizeof expected,
           "[ERR] %s:2: invalid lame_duck_duration: expected a duration of at least 30s, got "
           "\"10s\"\n",
           fixture("invalid_lame_duck.conf"));
  const char *log = read_log();
  cr_assert_not_null(strstr(log, expected), "%s", log);
  opts_free(&o);
}

/* ---- Fixture files, side by side with nats-server ---- */

/* How shoal and nats-server 2.9.10 (`-t`) take each fixture. The error is
 * shoal's, with %s for the fixture directory. */
static const struct fixture_case {
  const char *name;
  bool nats_accepts;
  bool shoal_accepts;
  int shoal_warnings;
  const char *shoal_error;
} fixture_cases[] = {
    {"fleet.conf", true, true, 1, NULL},
    {"valid_syntax.conf", true, true, 0, NULL},
    {"valid_auth.conf", true, true, 0, NULL},
    {"valid_variables.conf", true, true, 0, NULL},
    {"valid_include.conf", true, true, 0, NULL},
    {"valid_include_absolute.conf", true, true, 0, NULL},
    {"warn_unsupported.conf", true, true, 2, NULL},

    /* shoal warns where nats-server -t fails: nats-server rejects unknown
     * keys, and -t turns its own warnings into errors. */
    {"warn_unknown_key.conf", false, true, 1, NULL},
    /* sync_interval is nats-server 2.10's; 2.9.10 rejects it as unknown. */
    {"valid_sync_interval.conf", false, true, 0, NULL},
    {"warn_integer_duration.conf", false, true, 2, NULL},

    {"invalid_unquoted_duration.conf", false, false, 0,
     "%s/invalid_unquoted_duration.conf:3: expected a new line, ';' or a comment after the value "
     "of 'ping_interval', found '3'; write durations such as \"1m30s\" in quotes"},
    {"invalid_undefined_variable.conf", false, false, 0,
     "%s/invalid_undefined_variable.conf:3: variable $SHOAL_CONF_TEST_UNDEFINED is not defined in "
     "an enclosing block or in the environment"},
    {"invalid_lame_duck.conf", false, false, 0,
     "%s/invalid_lame_duck.conf:2: invalid lame_duck_duration: expected a duration of at least "
     "30s, got \"10s\""},
    {"invalid_bool_string.conf", false, false, 0,
     "%s/invalid_bool_string.conf:2: invalid debug: expected true or false (or yes/no, on/off, "
     "unquoted), got \"true\""},
    {"invalid_block_string.conf", false, false, 0,
     "%s/invalid_block_string.conf:1: block string starting on line 1 is not closed: expected ')' "
     "alone at the start of a line"},
    {"invalid_store_dir_twice.conf", false, false, 0,
     "%s/invalid_store_dir_twice.conf:3: store_dir is set twice, at the top level and in "
     "jetstream; keep one"},
    {"invalid_token_and_user.conf", false, false, 0,
     "%s/invalid_token_and_user.conf:4: authorization cannot have both a token and a "
     "user/password; use one of them"},
    {"invalid_permission_key.conf", false, false, 0,
     "%s/invalid_permission_key.conf:3: unknown key 'publsh' in permissions: expected publish, "
     "subscribe or allow_responses"},
    {"invalid_subject.conf", false, false, 0,
     "%s/invalid_subject.conf:3: invalid subscribe: \"foo..bar\" is not a valid subject, nor a "
     "subject and a queue group"},
    {"invalid_include_missing.conf", false, false, 0,
     "%s/invalid_include_missing.conf:2: cannot read include file '%s/include/missing.conf': No "
     "such file or directory"},
    {"invalid_include_error.conf", false, false, 0,
     "%s/include/broken.conf:2: block starting on line 2 is not closed: expected '}'"},
    {"invalid_sync_interval.conf", false, false, 0,
     "%s/invalid_sync_interval.conf:4: invalid sync_interval: expected \"always\" or a duration "
     "such as \"2m\" or \"500ms\", got \"2 minutes\""},
    {"invalid_jetstream_size.conf", false, false, 0,
     "%s/invalid_jetstream_size.conf:3: invalid max_file_store: expected a size such as 1G (10^9 "
     "bytes), 1GB (2^30 bytes) or the string \"1G\" (2^30 bytes), got \"10GB\""},
    {"invalid_max_payload.conf", false, false, 0,
     "%s/invalid_max_payload.conf:1: invalid max_payload: expected a size of at most 2147483647 "
     "bytes, got 3GB"},
    {"invalid_escape.conf", false, false, 0,
     "%s/invalid_escape.conf:1: invalid escape '\\q': expected one of \\xHH, \\t, \\n, \\r, \\\" "
     "and \\\\"},
    {"invalid_array.conf", false, false, 0,
     "%s/invalid_array.conf:3: expected an array element or ']', found ','"},

    /* nats-server -t accepts these, but they are broken: a value lost or
     * out of range, or (no_auth_user) a start that fails later. */
    {"strict_key_without_value.conf", true, false, 0,
     "%s/strict_key_without_value.conf:3: expected a value for 'server_name', found the end of the "
     "file"},
    {"strict_size_suffix.conf", true, false, 0,
     "%s/strict_size_suffix.conf:2: invalid size '1kbb': expected a number with one of the "
     "suffixes k, kb, ki, kib, m, mb, mi, mib, g, gb, gi, gib, t, tb, ti, tib, p, pb, pi, pib, e, "
     "eb, ei, eib"},
    {"strict_port_range.conf", true, false, 0,
     "%s/strict_port_range.conf:1: invalid port: expected a port number from 0 to 65535, or -1 "
     "for a random port, got 70000"},
    {"strict_no_auth_user.conf", true, false, 0,
     "%s/strict_no_auth_user.conf:2: no_auth_user \"bob\" is not a user of the authorization "
     "users array"},
    {"strict_negative_payload.conf", true, false, 0,
     "%s/strict_negative_payload.conf:1: invalid max_payload: expected a positive integer, "
     "optionally with a size suffix such as 1MB or 64K, got -1"},
};

static void set_fixture_environment(void) {
  setenv("SHOAL_CONF_TEST_PAYLOAD", "2MB", 1);
  unsetenv("SHOAL_CONF_TEST_UNDEFINED");
}

TestSuite(conf_fixtures);

Test(conf_fixtures, shoal_verdicts) {
  set_fixture_environment();
  for (size_t i = 0; i < sizeof fixture_cases / sizeof fixture_cases[0]; i++) {
    const struct fixture_case *c = &fixture_cases[i];
    struct opts o;
    opts_init(&o);
    int warnings = -1;
    int rc = conf_load(fixture(c->name), &o, err, sizeof err, &warnings);
    cr_assert_eq(rc, c->shoal_accepts ? 0 : -1, "%s: %s", c->name, err);
    if (c->shoal_accepts) {
      cr_assert_eq(warnings, c->shoal_warnings, "%s", c->name);
    } else {
      char expected[1024];
      snprintf(expected, sizeof expected, c->shoal_error, fixture_dir(), fixture_dir());
      cr_assert_str_eq(err, expected, "%s", c->name);
    }
    opts_free(&o);
  }
}

Test(conf_fixtures, sync_interval_value) {
  struct opts o;
  opts_init(&o);
  cr_assert_eq(conf_load(fixture("valid_sync_interval.conf"), &o, err, sizeof err, NULL), 0, "%s",
               err);
  cr_assert_eq(o.sync_interval_ms, 30000);
  cr_assert_str_eq(o.store_dir, "/var/lib/shoal");
  opts_free(&o);
}

/* Runs `nats-server -t -c path` with its output discarded. Returns the
 * exit status, or -1 when it did not exit normally. */
static int run_nats_server_check(const char *path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  char *argv[] = {NATS_SERVER, "-t", "-c", (char *)path, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, NATS_SERVER, &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  cr_assert_eq(rc, 0, "posix_spawn %s: %s", NATS_SERVER, strerror(rc));

  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* nats-server -t only reads the file: it opens no port and writes nothing. */
Test(conf_fixtures, nats_server_verdicts, .timeout = 120) {
  if (access(NATS_SERVER, X_OK) != 0) cr_skip_test("%s is not installed", NATS_SERVER);
  set_fixture_environment();
  for (size_t i = 0; i < sizeof fixture_cases / sizeof fixture_cases[0]; i++) {
    const struct fixture_case *c = &fixture_cases[i];
    int status = run_nats_server_check(fixture(c->name));
    if (c->nats_accepts) {
      cr_assert_eq(status, 0, "nats-server -t rejects %s", c->name);
    } else {
      cr_assert_eq(status, 1, "nats-server -t gives status %d for %s, expected 1", status,
                   c->name);
    }
  }
}
