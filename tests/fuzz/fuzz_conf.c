/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the configuration file parser and its mapping onto
 * server options (core/conf.c). Owned by the robustness tests.
 *
 * Method: the input is the text of a configuration file. It is parsed with
 * conf_parse_text(), the resulting tree is walked and checked, and a tree
 * that parsed is applied to freshly initialised options with conf_apply().
 * The checks are what conf.h promises. Every value has a known type, a file
 * and a line of at least 1. Strings are NUL-terminated at their length, and
 * keys are unique within a block. A failure leaves a non-empty message in
 * the error buffer, NUL-terminated and never longer than the buffer. Memory
 * errors and leaks are found by the sanitizers of the build.
 *
 * The text is named as a file in a directory that does not exist, so an
 * include cannot open a real file (the parser joins even absolute include
 * paths to that directory, and ".." cannot leave a directory that is not
 * there). Includes are therefore fuzzed only up to their open failing.
 * Environment variables are read as in the server. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"
#include "core/log.h"
#include "core/opts.h"

#define FUZZ_CONF_NAME "/nonexistent-shoal-fuzz-dir/fuzz.conf"
/* Small enough that long messages are cut, to test the truncation. */
#define ERR_SIZE 96
#define ERR_CANARY 0x5a

static void fail(const char *message, const char *detail, int line)
{
  fprintf(stderr, "fuzz_conf: %s (%s, line %d)\n", message, detail ? detail : "-", line);
  abort();
}

static void check_value(const struct conf_value *v);

static void check_map(const struct conf_value *v)
{
  for (int i = 0; i < v->as.map.count; i++) {
    const struct conf_entry *e = &v->as.map.entries[i];
    if (e->key == NULL || e->file == NULL || e->line < 1 || e->value == NULL)
      fail("incomplete block entry", e->key, e->line);
    for (int j = 0; j < i; j++) {
      if (strcmp(v->as.map.entries[j].key, e->key) == 0)
        fail("key defined twice in one block", e->key, e->line);
    }
    check_value(e->value);
  }
}

/* Recursion follows the tree's depth, which the parser bounds. */
static void check_value(const struct conf_value *v)
{
  if (v->file == NULL || v->line < 1)
    fail("value without a file or line", NULL, v->line);
  switch (v->type) {
  case CONF_STRING:
    if (v->as.string.bytes == NULL || v->as.string.bytes[v->as.string.len] != '\0')
      fail("string not NUL-terminated at its length", NULL, v->line);
    break;
  case CONF_BOOL:
  case CONF_INTEGER:
  case CONF_FLOAT:
  case CONF_DATETIME:
    break;
  case CONF_ARRAY:
    if (v->as.array.count < 0 || (v->as.array.count > 0 && v->as.array.items == NULL))
      fail("array with a bad item list", NULL, v->line);
    for (int i = 0; i < v->as.array.count; i++)
      check_value(v->as.array.items[i]);
    break;
  case CONF_MAP:
    if (v->as.map.count < 0 || (v->as.map.count > 0 && v->as.map.entries == NULL))
      fail("block with a bad entry list", NULL, v->line);
    check_map(v);
    break;
  default:
    fail("value of unknown type", NULL, v->line);
  }
}

/* Checks that a failure wrote a message that fits in ERR_SIZE bytes. */
static void check_err(const char *err, const char *call)
{
  const char *nul = memchr(err, '\0', ERR_SIZE);
  if (nul == NULL)
    fail("error message not NUL-terminated", call, 0);
  if (nul == err)
    fail("empty error message", call, 0);
  if ((unsigned char)err[ERR_SIZE] != ERR_CANARY)
    fail("error message written past err_size", call, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* conf_apply() logs a warning per unknown key; keep the fuzzer's output
   * readable. */
  log_setup(false, false, false, "/dev/null");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char err[ERR_SIZE + 1];
  memset(err, ERR_CANARY, sizeof err);

  struct conf_doc *doc = conf_parse_text((const char *)data, size, FUZZ_CONF_NAME, err, ERR_SIZE);
  if (doc == NULL) {
    check_err(err, "conf_parse_text");
    return 0;
  }
  if (doc->root == NULL || doc->root->type != CONF_MAP)
    fail("document root is not a block", NULL, 0);
  if (doc->file_count < 1)
    fail("document lists no file", NULL, 0);
  check_value(doc->root);

  struct opts o;
  opts_init(&o);
  int warnings = 0;
  memset(err, ERR_CANARY, sizeof err);
  int rc = conf_apply(doc, &o, err, ERR_SIZE, &warnings);
  if (rc != 0 && rc != -1)
    fail("conf_apply returned neither 0 nor -1", NULL, rc);
  if (rc == -1)
    check_err(err, "conf_apply");
  if (warnings < 0)
    fail("negative warning count", NULL, warnings);
  opts_free(&o);
  conf_doc_free(doc);
  return 0;
}
