/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the JetStream API request decoder: the stream
 * configuration in $JS.API.STREAM.CREATE and UPDATE requests
 * (js_config_parse() in core/js_json.c, also used to reload stored
 * streams) and the RFC 3339 timestamps of consumer requests and stored
 * metadata (js_time_parse()). Owned by the robustness tests.
 *
 * Method: the input is a request body. It is parsed as JSON with cJSON, as
 * the API handlers do, and decoded into a stream configuration. A rejected
 * body must leave an error code and description. An accepted one must
 * have at least one subject, one replica and a duplicate window that is
 * not negative. It must come back unchanged through what the server stores
 * and reloads at start-up: printed with js_config_json(), parsed again,
 * and copied with js_config_copy(). The body is also given to
 * js_time_parse(), and a time it accepts in years 1970 to 9999 must be
 * printed by js_time_format() and parsed back to the same nanosecond.
 * Undefined behaviour (such as a number too large for int64_t) is found by
 * the sanitizers of the build. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/js_int.h"

#define TIME_INPUT_MAX 64
/* 9999-12-31T23:59:59Z in nanoseconds since the epoch. */
#define TIME_NS_MAX 253402300799000000000.0

static void fail(const char *message, const char *detail)
{
  fprintf(stderr, "fuzz_jsapi: %s (%s)\n", message, detail ? detail : "-");
  abort();
}

/* Checks what js_config_parse() guarantees of a configuration it accepts.
 * The stream name is checked by the API handler, not here. */
static void check_accepted(const struct js_stream_config *cfg)
{
  if (cfg->subject_count == 0 || cfg->subjects == NULL)
    fail("accepted a stream without subjects", cfg->name);
  for (uint32_t i = 0; i < cfg->subject_count; i++) {
    if (cfg->subjects[i] == NULL)
      fail("a subject is missing", cfg->name);
  }
  if (cfg->num_replicas != 1)
    fail("accepted a replica count other than 1", cfg->name);
  if (cfg->duplicate_window_ns < 0)
    fail("accepted a negative duplicate window", cfg->name);
}

static bool same_string(const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

static void check_same(const struct js_stream_config *a, const struct js_stream_config *b,
                       const char *how)
{
  bool same = strcmp(a->name, b->name) == 0 && same_string(a->description, b->description) &&
              a->subject_count == b->subject_count && a->retention == b->retention &&
              a->max_consumers == b->max_consumers && a->max_msgs == b->max_msgs &&
              a->max_bytes == b->max_bytes && a->max_age_ns == b->max_age_ns &&
              a->max_msgs_per_subject == b->max_msgs_per_subject &&
              a->max_msg_size == b->max_msg_size && a->discard == b->discard &&
              a->storage == b->storage && a->num_replicas == b->num_replicas &&
              a->duplicate_window_ns == b->duplicate_window_ns &&
              a->allow_direct == b->allow_direct && a->mirror_direct == b->mirror_direct &&
              a->sealed == b->sealed && a->deny_delete == b->deny_delete &&
              a->deny_purge == b->deny_purge && a->allow_rollup_hdrs == b->allow_rollup_hdrs &&
              a->no_ack == b->no_ack;
  for (uint32_t i = 0; same && i < a->subject_count; i++)
    same = strcmp(a->subjects[i], b->subjects[i]) == 0;
  if (!same)
    fail("the configuration changed", how);
}

/* Prints cfg as the server stores it, parses that back and compares. */
static void check_round_trip(const struct js_stream_config *cfg)
{
  cJSON *json = js_config_json(cfg);
  if (json == NULL)
    fail("js_config_json failed", cfg->name);
  char *text = cJSON_PrintUnformatted(json);
  cJSON_Delete(json);
  if (text == NULL)
    fail("printing the configuration failed", cfg->name);
  cJSON *again = cJSON_Parse(text);
  if (again == NULL)
    fail("the printed configuration is not JSON", text);

  struct js_stream_config back;
  struct js_err err = {0};
  if (js_config_parse(again, &back, &err) != 0)
    fail("the printed configuration is rejected", err.description);
  check_same(cfg, &back, "printed and parsed again");
  js_config_free(&back);
  cJSON_Delete(again);
  free(text);

  struct js_stream_config copy;
  if (js_config_copy(&copy, cfg) != 0)
    fail("js_config_copy failed", cfg->name);
  check_same(cfg, &copy, "copied");
  js_config_free(&copy);
}

static void fuzz_time(const uint8_t *data, size_t size)
{
  char text[TIME_INPUT_MAX + 1];
  size_t n = size < TIME_INPUT_MAX ? size : TIME_INPUT_MAX;
  memcpy(text, data, n);
  text[n] = '\0';
  int64_t ns = js_time_parse(text);
  if (ns < 0 || (double)ns > TIME_NS_MAX)
    return;
  char printed[64];
  js_time_format(ns, printed, sizeof printed);
  int64_t back = js_time_parse(printed);
  if (back != ns && ns != 0) /* 0 prints as Go's zero time, year 1 */
    fail("a time does not survive printing and parsing", printed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_time(data, size);

  cJSON *body = cJSON_ParseWithLength((const char *)data, size);
  if (body == NULL)
    return 0;
  struct js_stream_config cfg;
  struct js_err err = {0};
  if (js_config_parse(body, &cfg, &err) != 0) {
    if (err.code == 0 || err.err_code == 0 || err.description[0] == '\0')
      fail("a rejected configuration has no error", NULL);
    if (memchr(err.description, '\0', sizeof err.description) == NULL)
      fail("an error description is not NUL-terminated", NULL);
  } else {
    check_accepted(&cfg);
    check_round_trip(&cfg);
    js_config_free(&cfg);
  }
  cJSON_Delete(body);
  return 0;
}
