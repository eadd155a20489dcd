/* SPDX-License-Identifier: Apache-2.0 */
/* Publish and subscribe through libnats: exact payloads, wildcard matching,
 * echo, auto-unsubscribe and UNSUB, PING/PONG, subscribe-then-flush
 * visibility and many subscriptions on one connection. Owned by the
 * integration test suite. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(pubsub, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

static natsSubscription *subscribe_sync(natsConnection *nc, const char *subject) {
  natsSubscription *sub = NULL;
  natsStatus s = natsConnection_SubscribeSync(&sub, nc, subject);
  cr_assert_eq(s, NATS_OK, "subscribe to %s failed: %s", subject, natsStatus_GetText(s));
  return sub;
}

static void flush(natsConnection *nc) {
  natsStatus s = natsConnection_FlushTimeout(nc, 10000);
  cr_assert_eq(s, NATS_OK, "flush failed: %s", natsStatus_GetText(s));
}

static int pending_count(natsSubscription *sub) {
  int msgs = -1;
  cr_assert_eq(natsSubscription_GetPending(sub, &msgs, NULL), NATS_OK);
  return msgs;
}

struct payload {
  const char *name;
  char *data;
  int len;
};

/* Payloads whose bytes must arrive unchanged: text, binary with NUL bytes,
 * bytes that look like protocol, empty, and the maximum size. */
static int make_payloads(struct payload *p) {
  int n = 0;
  p[n++] = (struct payload){"text", strdup("hello world"), 11};

  char *binary = malloc(1024);
  for (int i = 0; i < 1024; i++)
    binary[i] = (char)(i % 256);
  binary[0] = binary[1] = binary[1023] = 0;
  p[n++] = (struct payload){"binary with NUL bytes", binary, 1024};

  const char *proto = "\r\nPUB x 1\r\nMSG y 1 1\r\n\r\n";
  p[n++] = (struct payload){"protocol lookalike", strdup(proto), (int)strlen(proto)};
  p[n++] = (struct payload){"empty", NULL, 0};

  int sizes[] = {HARNESS_MAX_PAYLOAD - 1, HARNESS_MAX_PAYLOAD};
  for (int k = 0; k < 2; k++) {
    char *big = malloc((size_t)sizes[k]);
    for (int i = 0; i < sizes[k]; i++)
      big[i] = (char)((i * 31 + k) & 0xff);
    p[n++] = (struct payload){k == 0 ? "max payload - 1" : "max payload", big, sizes[k]};
  }
  return n;
}

HARNESS_TEST(pubsub, payload_bytes_exact) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();
  natsSubscription *sub = subscribe_sync(sub_nc, "data.exact");
  flush(sub_nc);
  cr_assert_eq(natsConnection_GetMaxPayload(pub_nc), HARNESS_MAX_PAYLOAD);

  struct payload payloads[8];
  int count = make_payloads(payloads);
  for (int i = 0; i < count; i++) {
    natsStatus s = natsConnection_Publish(pub_nc, "data.exact", payloads[i].data, payloads[i].len);
    cr_assert_eq(s, NATS_OK, "publish of %s failed: %s", payloads[i].name, natsStatus_GetText(s));
  }
  flush(pub_nc);

  for (int i = 0; i < count; i++) {
    natsMsg *msg = harness_next_msg(sub);
    cr_assert_str_eq(natsMsg_GetSubject(msg), "data.exact");
    cr_assert_null(natsMsg_GetReply(msg), "%s: unexpected reply subject", payloads[i].name);
    cr_assert_eq(natsMsg_GetDataLength(msg), payloads[i].len, "%s: length %d, expected %d",
                 payloads[i].name, natsMsg_GetDataLength(msg), payloads[i].len);
    if (payloads[i].len > 0)
      cr_assert(memcmp(natsMsg_GetData(msg), payloads[i].data, (size_t)payloads[i].len) == 0,
                "%s: payload bytes differ", payloads[i].name);
    natsMsg_Destroy(msg);
    free(payloads[i].data);
  }
}

HARNESS_TEST(pubsub, reply_subject_passed) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();
  natsSubscription *sub = subscribe_sync(sub_nc, "with.reply");
  flush(sub_nc);

  cr_assert_eq(natsConnection_PublishRequestString(pub_nc, "with.reply", "my.inbox.1", "q1"),
               NATS_OK);
  cr_assert_eq(natsConnection_PublishRequest(pub_nc, "with.reply", "my.inbox.2", NULL, 0), NATS_OK);
  flush(pub_nc);

  natsMsg *msg = harness_next_msg(sub);
  cr_assert_str_eq(natsMsg_GetReply(msg), "my.inbox.1");
  cr_assert_eq(natsMsg_GetDataLength(msg), 2);
  cr_assert(memcmp(natsMsg_GetData(msg), "q1", 2) == 0);
  natsMsg_Destroy(msg);
  msg = harness_next_msg(sub);
  cr_assert_str_eq(natsMsg_GetReply(msg), "my.inbox.2");
  cr_assert_eq(natsMsg_GetDataLength(msg), 0);
  natsMsg_Destroy(msg);
}

/* Subjects published, in order, and which of the patterns below match each
 * one (bit i = pattern i). */
static const char *const wildcard_patterns[] = {
    "wc.*", "wc.>", "wc.*.c", "wc.a.>", "*.a.b", "wc.a.b", "*.*",
};
#define PATTERN_COUNT (int)(sizeof(wildcard_patterns) / sizeof(wildcard_patterns[0]))

static const struct {
  const char *subject;
  unsigned matches;
} wildcard_cases[] = {
    {"wc", 0},
    {"wc.a", 1u << 0 | 1u << 1 | 1u << 6},
    {"wc.a.b", 1u << 1 | 1u << 3 | 1u << 4 | 1u << 5},
    {"wc.a.c", 1u << 1 | 1u << 2 | 1u << 3},
    {"wc.x.c", 1u << 1 | 1u << 2},
    {"wc.a.b.c", 1u << 1 | 1u << 3},
    {"wc.x.c.d", 1u << 1},
    {"wc.a.b.c.d.e", 1u << 1 | 1u << 3},
    {"other.a.b", 1u << 4},
    {"other.a", 1u << 6},
    {"w.a.b", 1u << 4},
    {"wcx.a", 1u << 6},
    {"wcx.a.c", 0},
    {"a.wc", 1u << 6},
    {"x.a.b.c", 0},
    {"WC.a", 1u << 6},
    {"wc.A.b", 1u << 1},
};
#define CASE_COUNT (int)(sizeof(wildcard_cases) / sizeof(wildcard_cases[0]))

HARNESS_TEST(pubsub, wildcards_match_exactly) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();
  natsSubscription *subs[PATTERN_COUNT];
  for (int i = 0; i < PATTERN_COUNT; i++)
    subs[i] = subscribe_sync(sub_nc, wildcard_patterns[i]);
  natsSubscription *fence = subscribe_sync(sub_nc, "fence.w.end");
  flush(sub_nc);

  for (int c = 0; c < CASE_COUNT; c++)
    cr_assert_eq(natsConnection_PublishString(pub_nc, wildcard_cases[c].subject, "x"), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(pub_nc, "fence.w.end", "end"), NATS_OK);
  flush(pub_nc);

  /* Messages from one publisher reach one subscriber connection in order,
   * so once the fence arrived every earlier message is queued in its
   * subscription. */
  natsMsg *end = harness_next_msg(fence);
  natsMsg_Destroy(end);

  for (int p = 0; p < PATTERN_COUNT; p++) {
    int expected = 0;
    for (int c = 0; c < CASE_COUNT; c++)
      expected += (wildcard_cases[c].matches >> p) & 1;
    cr_assert_eq(pending_count(subs[p]), expected, "pattern %s: %d messages, expected %d",
                 wildcard_patterns[p], pending_count(subs[p]), expected);

    for (int c = 0; c < CASE_COUNT; c++) {
      if (!((wildcard_cases[c].matches >> p) & 1))
        continue;
      natsMsg *msg = harness_next_msg(subs[p]);
      cr_assert_str_eq(natsMsg_GetSubject(msg), wildcard_cases[c].subject, "pattern %s",
                       wildcard_patterns[p]);
      natsMsg_Destroy(msg);
    }
  }
}

HARNESS_TEST(pubsub, echo_off_skips_own_messages) {
  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetNoEcho(opts, true), NATS_OK);
  natsConnection *quiet = harness_connect_opts(opts);
  natsOptions_Destroy(opts);
  natsConnection *echo = harness_connect();
  natsConnection *other = harness_connect();

  natsSubscription *quiet_sub = subscribe_sync(quiet, "echo.test");
  natsSubscription *echo_sub = subscribe_sync(echo, "echo.test");
  natsSubscription *other_sub = subscribe_sync(other, "echo.test");
  flush(quiet);
  flush(echo);
  flush(other);

  /* A connection's own messages come before its PONG, so after a flush
   * they are already queued in its subscription when echo is on. The echo
   * connection may also hold the no-echo connection's message by then. */
  cr_assert_eq(natsConnection_PublishString(quiet, "echo.test", "from-quiet"), NATS_OK);
  flush(quiet);
  cr_assert_eq(pending_count(quiet_sub), 0, "no-echo connection received its own message");
  cr_assert_eq(natsConnection_PublishString(echo, "echo.test", "from-echo"), NATS_OK);
  flush(echo);
  int pending = pending_count(echo_sub);
  bool own_seen = false;
  for (int i = 0; i < pending; i++) {
    natsMsg *msg = harness_next_msg(echo_sub);
    if (natsMsg_GetDataLength(msg) == 9 && memcmp(natsMsg_GetData(msg), "from-echo", 9) == 0)
      own_seen = true;
    natsMsg_Destroy(msg);
  }
  cr_assert(own_seen, "echo connection did not receive its own message before its PONG");

  /* Messages of two publishers may arrive in either order. */
  bool got_quiet = false, got_echo = false;
  for (int i = 0; i < 2; i++) {
    natsMsg *msg = harness_next_msg(other_sub);
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    if (len == 10 && memcmp(data, "from-quiet", 10) == 0)
      got_quiet = true;
    else if (len == 9 && memcmp(data, "from-echo", 9) == 0)
      got_echo = true;
    else
      cr_assert_fail("unexpected payload \"%.*s\"", len, data);
    natsMsg_Destroy(msg);
  }
  cr_assert(got_quiet, "other connection missed the no-echo connection's message");
  cr_assert(got_echo, "other connection missed the echo connection's message");

  /* The no-echo connection still receives messages of other connections. */
  natsMsg *msg = harness_next_msg(quiet_sub);
  cr_assert_eq(natsMsg_GetDataLength(msg), 9);
  cr_assert(memcmp(natsMsg_GetData(msg), "from-echo", 9) == 0);
  natsMsg_Destroy(msg);
}

HARNESS_TEST(pubsub, auto_unsubscribe_after_max) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();
  natsSubscription *sub = subscribe_sync(sub_nc, "auto.unsub");
  natsSubscription *fence = subscribe_sync(sub_nc, "fence.unsub");
  cr_assert_eq(natsSubscription_AutoUnsubscribe(sub, 3), NATS_OK);
  flush(sub_nc);

  for (int i = 0; i < 10; i++) {
    char text[16];
    snprintf(text, sizeof(text), "%d", i);
    cr_assert_eq(natsConnection_PublishString(pub_nc, "auto.unsub", text), NATS_OK);
  }
  cr_assert_eq(natsConnection_PublishString(pub_nc, "fence.unsub", "end"), NATS_OK);
  flush(pub_nc);
  natsMsg_Destroy(harness_next_msg(fence));

  for (int i = 0; i < 3; i++) {
    natsMsg *msg = harness_next_msg(sub);
    char text[16];
    snprintf(text, sizeof(text), "%d", i);
    cr_assert_eq(natsMsg_GetDataLength(msg), (int)strlen(text));
    cr_assert(memcmp(natsMsg_GetData(msg), text, strlen(text)) == 0, "message %d out of order", i);
    natsMsg_Destroy(msg);
  }
  natsMsg *extra = NULL;
  natsStatus s = natsSubscription_NextMsg(&extra, sub, 100);
  cr_assert_neq(s, NATS_OK, "a fourth message was delivered after auto-unsubscribe at 3");
}

/* The server itself must stop delivering after UNSUB <sid> <max>: libnats
 * would drop extra messages on its own, so this uses a raw socket. */
HARNESS_TEST(pubsub, unsub_max_enforced_by_server) {
  struct raw_conn rc;
  raw_connect_ready(&rc);
  cr_assert_eq(raw_send_str(&rc, "SUB raw.unsub 7\r\nUNSUB 7 3\r\n"), 0);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(raw_send_str(&rc, "PUB raw.unsub 2\r\nab\r\n"), 0);
  cr_assert_eq(raw_send_str(&rc, "PING\r\n"), 0);

  char line[256];
  for (int i = 0; i < 3; i++) {
    cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
    cr_assert_str_eq(line, "MSG raw.unsub 7 2");
    cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
    cr_assert_str_eq(line, "ab");
  }
  cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "PONG", "expected PONG after 3 messages, got \"%s\"", line);
  raw_close(&rc);
}

HARNESS_TEST(pubsub, ping_pong_round_trip) {
  natsConnection *nc = harness_connect();
  for (int i = 0; i < 50; i++)
    flush(nc);
  int64_t rtt = -1;
  cr_assert_eq(natsConnection_GetRTT(nc, &rtt), NATS_OK);
  cr_assert_geq(rtt, 0);

  struct raw_conn rc;
  raw_connect_ready(&rc);
  cr_assert_eq(raw_send_str(&rc, "PING\r\nPING\r\n"), 0);
  char line[64];
  for (int i = 0; i < 2; i++) {
    cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
    cr_assert_str_eq(line, "PONG");
  }
  raw_close(&rc);
}

/* After Subscribe and a completed Flush, the subscription is known to the
 * server, so a message another connection publishes right away must be
 * delivered. */
HARNESS_TEST(pubsub, subscribe_then_flush_visible) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();

  for (int i = 0; i < 200; i++) {
    char subject[64];
    snprintf(subject, sizeof(subject), "visible.%d", i);
    natsSubscription *sub = subscribe_sync(sub_nc, subject);
    flush(sub_nc);
    cr_assert_eq(natsConnection_PublishString(pub_nc, subject, subject), NATS_OK);
    flush(pub_nc);

    natsMsg *msg = NULL;
    natsStatus s = natsSubscription_NextMsg(&msg, sub, 5000);
    cr_assert_eq(s, NATS_OK, "iteration %d: message published after subscribe+flush was lost (%s)",
                 i, natsStatus_GetText(s));
    cr_assert_str_eq(natsMsg_GetSubject(msg), subject);
    natsMsg_Destroy(msg);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
}

/* After UNSUB and a PONG, messages to the old subject are not delivered.
 * The fence is published after them by the same connection, so it arrives
 * after anything they could have caused. */
HARNESS_TEST(pubsub, unsubscribe_stops_delivery) {
  struct raw_conn rc;
  raw_connect_ready(&rc);
  cr_assert_eq(raw_send_str(&rc, "SUB gone 1\r\nSUB gone.fence 2\r\nUNSUB 1\r\nPING\r\n"), 0);
  char line[256];
  cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "PONG");

  natsConnection *pub_nc = harness_connect();
  for (int i = 0; i < 10; i++)
    cr_assert_eq(natsConnection_PublishString(pub_nc, "gone", "late"), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(pub_nc, "gone.fence", "end"), NATS_OK);
  flush(pub_nc);

  cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "MSG gone.fence 2 3", "message after UNSUB: \"%s\"", line);
  cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
  cr_assert_str_eq(line, "end");
  raw_close(&rc);
}

#define MANY_SUBSCRIPTIONS 10000

/* One connection with many subscriptions gets exactly one message on each,
 * and one published to a subject with no subscription is not delivered. */
HARNESS_TEST(pubsub, many_subscriptions_one_connection) {
  natsConnection *sub_nc = harness_connect();
  natsConnection *pub_nc = harness_connect();
  static natsSubscription *subs[MANY_SUBSCRIPTIONS];
  for (int i = 0; i < MANY_SUBSCRIPTIONS; i++) {
    char subject[64];
    snprintf(subject, sizeof(subject), "fleet.robot%d.status", i);
    subs[i] = subscribe_sync(sub_nc, subject);
  }
  natsSubscription *fence = subscribe_sync(sub_nc, "fleet.fence");
  flush(sub_nc);

  for (int i = MANY_SUBSCRIPTIONS - 1; i >= 0; i--) {
    char subject[64];
    snprintf(subject, sizeof(subject), "fleet.robot%d.status", i);
    cr_assert_eq(natsConnection_PublishString(pub_nc, subject, subject + 6), NATS_OK);
  }
  cr_assert_eq(natsConnection_PublishString(pub_nc, "fleet.robot-none.status", "x"), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(pub_nc, "fleet.fence", "end"), NATS_OK);
  flush(pub_nc);
  natsMsg_Destroy(harness_next_msg(fence));

  for (int i = 0; i < MANY_SUBSCRIPTIONS; i++) {
    cr_assert_eq(pending_count(subs[i]), 1, "subscription %d has %d messages", i,
                 pending_count(subs[i]));
    natsMsg *msg = harness_next_msg(subs[i]);
    char expected[64];
    int len = snprintf(expected, sizeof(expected), "robot%d.status", i);
    cr_assert_eq(natsMsg_GetDataLength(msg), len);
    cr_assert(memcmp(natsMsg_GetData(msg), expected, (size_t)len) == 0);
    natsMsg_Destroy(msg);
  }
}
