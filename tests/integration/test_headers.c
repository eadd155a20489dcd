/* SPDX-License-Identifier: Apache-2.0 */
/* Message headers (HPUB/HMSG): keys, repeated values and payload arrive
 * intact, through libnats and byte for byte on raw sockets. Owned by the
 * integration test suite. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(headers, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

static natsSubscription *subscribe_flushed(natsConnection *nc, const char *subject) {
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, subject), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
  return sub;
}

static void assert_header(natsMsg *msg, const char *key, const char *value) {
  const char *got = NULL;
  natsStatus s = natsMsgHeader_Get(msg, key, &got);
  cr_assert_eq(s, NATS_OK, "header %s: %s", key, natsStatus_GetText(s));
  cr_assert_str_eq(got, value, "header %s", key);
}

static void assert_values(natsMsg *msg, const char *key, const char *const *expected, int count) {
  const char **values = NULL;
  int got = 0;
  cr_assert_eq(natsMsgHeader_Values(msg, key, &values, &got), NATS_OK, "header %s missing", key);
  cr_assert_eq(got, count, "header %s has %d values, expected %d", key, got, count);
  for (int i = 0; i < count; i++)
    cr_assert_str_eq(values[i], expected[i], "header %s value %d", key, i);
  free((void *)values);
}

HARNESS_TEST(headers, values_and_payload_intact) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();
  natsSubscription *sub = subscribe_flushed(sub_nc, "hdr.test");

  natsMsg *out = NULL;
  cr_assert_eq(natsMsg_Create(&out, "hdr.test", "hdr.reply", "body\0bytes", 10), NATS_OK);
  cr_assert_eq(natsMsgHeader_Set(out, "Robot-Id", "r-17"), NATS_OK);
  cr_assert_eq(natsMsgHeader_Add(out, "Multi", "one"), NATS_OK);
  cr_assert_eq(natsMsgHeader_Add(out, "Multi", "two"), NATS_OK);
  cr_assert_eq(natsMsgHeader_Add(out, "Multi", "three"), NATS_OK);
  cr_assert_eq(natsMsgHeader_Set(out, "Spaces", "a b  c"), NATS_OK);
  cr_assert_eq(natsConnection_PublishMsg(pub_nc, out), NATS_OK);
  natsMsg_Destroy(out);

  /* The same headers with an empty payload. */
  cr_assert_eq(natsMsg_Create(&out, "hdr.test", NULL, NULL, 0), NATS_OK);
  cr_assert_eq(natsMsgHeader_Set(out, "Only", "header"), NATS_OK);
  cr_assert_eq(natsConnection_PublishMsg(pub_nc, out), NATS_OK);
  natsMsg_Destroy(out);
  cr_assert_eq(natsConnection_FlushTimeout(pub_nc, 10000), NATS_OK);

  natsMsg *msg = harness_next_msg(sub);
  cr_assert_str_eq(natsMsg_GetSubject(msg), "hdr.test");
  cr_assert_str_eq(natsMsg_GetReply(msg), "hdr.reply");
  cr_assert_eq(natsMsg_GetDataLength(msg), 10);
  cr_assert(memcmp(natsMsg_GetData(msg), "body\0bytes", 10) == 0, "payload bytes differ");
  assert_header(msg, "Robot-Id", "r-17");
  assert_header(msg, "Spaces", "a b  c");
  static const char *const multi[] = {"one", "two", "three"};
  assert_values(msg, "Multi", multi, 3);
  const char **keys = NULL;
  int key_count = 0;
  cr_assert_eq(natsMsgHeader_Keys(msg, &keys, &key_count), NATS_OK);
  cr_assert_eq(key_count, 3);
  free((void *)keys);
  natsMsg_Destroy(msg);

  msg = harness_next_msg(sub);
  cr_assert_eq(natsMsg_GetDataLength(msg), 0);
  assert_header(msg, "Only", "header");
  natsMsg_Destroy(msg);
}

/* Formats an HPUB frame with header and payload and returns its length. */
static int format_hpub(char *frame, size_t capacity, const char *subject, const char *header,
                       const char *payload) {
  int header_len = (int)strlen(header);
  int total_len = header_len + (int)strlen(payload);
  return snprintf(frame, capacity, "HPUB %s %d %d\r\n%s%s\r\n", subject, header_len, total_len,
                  header, payload);
}

static const char raw_header[] = "NATS/1.0\r\nA: 1\r\nA: 2\r\nTrace-Id: abc-123\r\n\r\n";

/* A raw HPUB reaches a raw subscriber as an HMSG with the same header and
 * payload bytes. */
HARNESS_TEST(headers, raw_hpub_to_raw_hmsg) {
  struct raw_conn sub, pub;
  raw_connect_ready(&sub);
  cr_assert_eq(raw_send_str(&sub, "SUB hdr.raw 9\r\nPING\r\n"), 0);
  char line[512];
  cr_assert_gt(raw_read_line(&sub, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "PONG");

  raw_connect_ready(&pub);
  char frame[512];
  format_hpub(frame, sizeof(frame), "hdr.raw", raw_header, "payload");
  cr_assert_eq(raw_send_str(&pub, frame), 0);
  cr_assert_eq(raw_send_str(&pub, "PING\r\n"), 0);
  cr_assert_gt(raw_read_line(&pub, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "PONG");

  int header_len = (int)strlen(raw_header);
  char expected[128];
  snprintf(expected, sizeof(expected), "HMSG hdr.raw 9 %d %d", header_len, header_len + 7);
  cr_assert_gt(raw_read_line(&sub, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, expected);
  char body[256];
  cr_assert_eq(raw_read_exact(&sub, body, (size_t)header_len + 7 + 2, 5000), 0);
  cr_assert(memcmp(body, raw_header, (size_t)header_len) == 0, "header bytes differ");
  cr_assert(memcmp(body + header_len, "payload\r\n", 9) == 0, "payload bytes differ");
  raw_close(&pub);
  raw_close(&sub);
}

/* A raw HPUB with a repeated key reaches a libnats subscriber with both
 * values in order. */
HARNESS_TEST(headers, raw_hpub_to_libnats) {
  natsConnection *nc = harness_connect();
  natsSubscription *sub = subscribe_flushed(nc, "hdr.mixed");

  struct raw_conn pub;
  raw_connect_ready(&pub);
  char frame[512];
  format_hpub(frame, sizeof(frame), "hdr.mixed", raw_header, "");
  cr_assert_eq(raw_send_str(&pub, frame), 0);

  natsMsg *msg = harness_next_msg(sub);
  cr_assert_eq(natsMsg_GetDataLength(msg), 0);
  static const char *const values[] = {"1", "2"};
  assert_values(msg, "A", values, 2);
  assert_header(msg, "Trace-Id", "abc-123");
  natsMsg_Destroy(msg);
  raw_close(&pub);
}

/* A subscriber that did not announce header support gets no HMSG. nats-server
 * 2.9.10 delivers such a message as a MSG with the payload only. */
HARNESS_TEST(headers, non_header_client_gets_msg) {
  struct raw_conn sub;
  int err = raw_connect(&sub, 0);
  cr_assert_eq(err, 0);
  cr_assert_eq(raw_send_str(&sub, "CONNECT {\"verbose\":false,\"headers\":false}\r\n"
                                  "SUB hdr.old 3\r\nPING\r\n"),
               0);
  char line[512];
  cr_assert_gt(raw_read_line(&sub, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "PONG");

  struct raw_conn pub;
  raw_connect_ready(&pub);
  char frame[512];
  format_hpub(frame, sizeof(frame), "hdr.old", raw_header, "data");
  cr_assert_eq(raw_send_str(&pub, frame), 0);

  cr_assert_gt(raw_read_line(&sub, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "MSG hdr.old 3 4");
  cr_assert_gt(raw_read_line(&sub, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "data");
  raw_close(&pub);
  raw_close(&sub);
}
