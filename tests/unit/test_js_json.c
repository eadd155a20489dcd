/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/js_json.c and the subject overlap rule of
 * core/js_registry.c: stream configuration defaults and validation
 * messages as nats-server 2.9.10 returns them (recorded from its replies
 * to the same requests), Go-style RFC 3339 timestamps, and base64. */

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>

#include "core/js_int.h"

/* Parses text as a stream configuration; returns the parser's result. */
static int parse(const char *text, struct js_stream_config *cfg, struct js_err *err) {
  cJSON *obj = cJSON_Parse(text);
  memset(err, 0, sizeof *err);
  int rc = js_config_parse(obj, cfg, err);
  cJSON_Delete(obj);
  return rc;
}

Test(js_json, config_defaults) {
  struct js_stream_config cfg;
  struct js_err err;
  cr_assert_eq(parse("{\"name\":\"S\"}", &cfg, &err), 0, "%s", err.description);
  cr_expect_str_eq(cfg.name, "S");
  cr_assert_eq(cfg.subject_count, 1);
  cr_expect_str_eq(cfg.subjects[0], "S");
  cr_expect_eq(cfg.max_msgs, -1);
  cr_expect_eq(cfg.max_bytes, -1);
  cr_expect_eq(cfg.max_msgs_per_subject, -1);
  cr_expect_eq(cfg.max_msg_size, -1);
  cr_expect_eq(cfg.max_consumers, -1);
  cr_expect_eq(cfg.num_replicas, 1);
  cr_expect_eq(cfg.duplicate_window_ns, 120000000000LL);
  cr_expect_eq(cfg.storage, STORE_FILE);
  cr_expect_eq(cfg.retention, JS_RETENTION_LIMITS);
  cr_expect_eq(cfg.discard, STORE_DISCARD_OLD);
  js_config_free(&cfg);
}

Test(js_json, duplicate_window_follows_short_max_age) {
  struct js_stream_config cfg;
  struct js_err err;
  cr_assert_eq(parse("{\"name\":\"S\",\"max_age\":5000000000}", &cfg, &err), 0);
  cr_expect_eq(cfg.duplicate_window_ns, 5000000000LL);
  js_config_free(&cfg);
}

Test(js_json, config_errors) {
  static const struct {
    const char *json;
    int code;
    int err_code;
    const char *description;
  } cases[] = {
      {"{\"name\":\"S\",\"retention\":\"bogus\"}", 400, 10025, "invalid JSON"},
      {"{\"name\":\"S\",\"max_msgs\":\"ten\"}", 400, 10025, "invalid JSON"},
      {"{\"name\":\"S\",\"num_replicas\":3}", 500, 10074,
       "replicas > 1 not supported in non-clustered mode"},
      {"{\"name\":\"S\",\"subjects\":[\"a.>.b\"]}", 500, 10052, "invalid subject"},
      {"{\"name\":\"S\",\"subjects\":[\"$JS.API.>\"]}", 500, 10052,
       "subjects overlap with jetstream api"},
      {"{\"name\":\"S\",\"max_age\":-5}", 500, 10052, "duplicates window can not be negative"},
      {"{\"name\":\"S\",\"subjects\":[\"a\",\"a\"]}", 500, 10052, "duplicate subjects detected"},
      {"{\"name\":\"a/b\"}", 400, 10128, "stream name can not contain path separators"},
      /* shoal's own message: nats-server supports mirrors. */
      {"{\"name\":\"M\",\"mirror\":{\"name\":\"S\"}}", 500, 10052,
       "stream mirrors and sources are not supported by this server yet"},
      {"{\"name\":\"S\",\"subjects\":[\"ov.b\",\"ov.c\",\"ov.*\"]}", 500, 10052,
       "subject \"ov.b\" overlaps with \"ov.*\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct js_stream_config cfg;
    struct js_err err;
    cr_expect_neq(parse(cases[i].json, &cfg, &err), 0, "%s was accepted", cases[i].json);
    cr_expect_eq(err.code, cases[i].code, "%s: code %d", cases[i].json, err.code);
    cr_expect_eq(err.err_code, cases[i].err_code, "%s: err_code %d", cases[i].json, err.err_code);
    cr_expect_str_eq(err.description, cases[i].description, "%s", cases[i].json);
  }
}

Test(js_json, config_round_trip) {
  struct js_stream_config cfg;
  struct js_err err;
  const char *text = "{\"name\":\"R\",\"subjects\":[\"r.*\"],\"storage\":\"memory\","
                     "\"retention\":\"workqueue\",\"discard\":\"new\",\"max_msgs\":7,"
                     "\"allow_direct\":true,\"deny_purge\":true}";
  cr_assert_eq(parse(text, &cfg, &err), 0, "%s", err.description);
  cJSON *out = js_config_json(&cfg);
  struct js_stream_config again;
  cr_assert_eq(js_config_parse(out, &again, &err), 0, "%s", err.description);
  cr_expect_eq(again.storage, STORE_MEMORY);
  cr_expect_eq(again.retention, JS_RETENTION_WORKQUEUE);
  cr_expect_eq(again.discard, STORE_DISCARD_NEW);
  cr_expect_eq(again.max_msgs, 7);
  cr_expect(again.allow_direct);
  cr_expect(again.deny_purge);
  cr_expect_str_eq(cJSON_GetObjectItem(out, "retention")->valuestring, "workqueue");
  cJSON_Delete(out);
  js_config_free(&cfg);
  js_config_free(&again);
}

Test(js_json, subjects_overlap) {
  static const struct {
    const char *a, *b;
    bool overlap;
  } cases[] = {
      {"a.>", "a.b", true},     {"a.*", "a.b", true},     {"a.*", "a.b.c", false},
      {"a.b", "a.c", false},    {">", "x.y.z", true},     {"a.*.c", "a.b.*", true},
      {"a.b.c", "a.b", false},  {"foo", "foobar", false}, {"$JS.API.>", "$JS.*.INFO", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cr_expect_eq(js_subjects_overlap(cases[i].a, cases[i].b), cases[i].overlap, "%s vs %s",
                 cases[i].a, cases[i].b);
    cr_expect_eq(js_subjects_overlap(cases[i].b, cases[i].a), cases[i].overlap, "%s vs %s",
                 cases[i].b, cases[i].a);
  }
}

Test(js_json, time_format_and_parse) {
  char text[48];
  js_time_format(0, text, sizeof text);
  cr_expect_str_eq(text, "0001-01-01T00:00:00Z");
  js_time_format(1733349855359148510LL, text, sizeof text);
  cr_expect_str_eq(text, "2024-12-04T22:04:15.35914851Z");
  js_time_format(1733349855000000000LL, text, sizeof text);
  cr_expect_str_eq(text, "2024-12-04T22:04:15Z");
  cr_expect_eq(js_time_parse("2024-12-04T22:04:15.35914851Z"), 1733349855359148510LL);
  cr_expect_eq(js_time_parse("2024-12-04T23:04:15+01:00"), 1733349855000000000LL);
  cr_expect_eq(js_time_parse("yesterday"), -1);
}

Test(js_json, base64) {
  char out[16];
  cr_expect_eq(js_base64_encode((const uint8_t *)"hello", 5, out), 8);
  cr_expect_str_eq(out, "aGVsbG8=");
  js_base64_encode((const uint8_t *)"hello2", 6, out);
  cr_expect_str_eq(out, "aGVsbG8y");
  js_base64_encode((const uint8_t *)"ab", 2, out);
  cr_expect_str_eq(out, "YWI=");
}

Test(js_json, stream_names) {
  cr_expect(js_name_valid("ORDERS"));
  cr_expect(js_name_valid("KV_robots"));
  cr_expect_not(js_name_valid(""));
  cr_expect_not(js_name_valid("a.b"));
  cr_expect_not(js_name_valid("a*"));
  cr_expect_not(js_name_valid("a b"));
}
