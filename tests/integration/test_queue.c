/* SPDX-License-Identifier: Apache-2.0 */
/* Queue groups across many connections: each message goes to exactly one
 * member of the group, while plain subscribers get every message in order.
 * With several shards the connections spread over them, so this checks
 * exactly-once delivery across shards. Owned by the integration test suite. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(queue, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

#define MEMBER_COUNT 8
#define PLAIN_COUNT 2
#define MESSAGE_COUNT 2000

static int parse_seq(natsMsg *msg) {
  char text[16];
  int len = natsMsg_GetDataLength(msg);
  cr_assert(len > 0 && len < (int)sizeof(text), "payload of %d bytes is not a sequence number", len);
  memcpy(text, natsMsg_GetData(msg), (size_t)len);
  text[len] = '\0';
  char *end = NULL;
  long seq = strtol(text, &end, 10);
  cr_assert(*end == '\0' && seq >= 0 && seq < MESSAGE_COUNT, "bad sequence number \"%s\"", text);
  return (int)seq;
}

static natsSubscription *subscribe(natsConnection *nc, const char *subject, const char *queue) {
  natsSubscription *sub = NULL;
  natsStatus s = queue ? natsConnection_QueueSubscribeSync(&sub, nc, subject, queue)
                       : natsConnection_SubscribeSync(&sub, nc, subject);
  cr_assert_eq(s, NATS_OK, "subscribe to %s failed: %s", subject, natsStatus_GetText(s));
  cr_assert_eq(natsSubscription_SetPendingLimits(sub, -1, -1), NATS_OK);
  return sub;
}

/* Reads the messages queued in sub, which all arrived before the fence.
 * Marks each sequence number in seen and fails on a duplicate or when the
 * numbers do not increase. Returns the number read. */
static int drain_member(natsSubscription *sub, int member, int *seen) {
  int pending = 0;
  cr_assert_eq(natsSubscription_GetPending(sub, &pending, NULL), NATS_OK);
  int last = -1;
  for (int i = 0; i < pending; i++) {
    natsMsg *msg = harness_next_msg(sub);
    int seq = parse_seq(msg);
    natsMsg_Destroy(msg);
    cr_assert_eq(seen[seq], -1, "message %d delivered to members %d and %d", seq, seen[seq],
                 member);
    cr_assert_gt(seq, last, "member %d got message %d after %d", member, seq, last);
    seen[seq] = member;
    last = seq;
  }
  return pending;
}

HARNESS_TEST(queue, exactly_once_across_connections) {
  natsConnection *members[MEMBER_COUNT];
  natsSubscription *member_subs[MEMBER_COUNT];
  natsSubscription *member_fences[MEMBER_COUNT];
  for (int i = 0; i < MEMBER_COUNT; i++) {
    members[i] = harness_connect();
    member_subs[i] = subscribe(members[i], "work.items", "workers");
    member_fences[i] = subscribe(members[i], "work.fence", NULL);
  }
  natsConnection *plains[PLAIN_COUNT];
  natsSubscription *plain_subs[PLAIN_COUNT];
  for (int i = 0; i < PLAIN_COUNT; i++) {
    plains[i] = harness_connect();
    plain_subs[i] = subscribe(plains[i], "work.*", NULL);
  }
  for (int i = 0; i < MEMBER_COUNT; i++)
    cr_assert_eq(natsConnection_FlushTimeout(members[i], 10000), NATS_OK);
  for (int i = 0; i < PLAIN_COUNT; i++)
    cr_assert_eq(natsConnection_FlushTimeout(plains[i], 10000), NATS_OK);

  natsConnection *pub = harness_connect();
  for (int seq = 0; seq < MESSAGE_COUNT; seq++) {
    char text[16];
    snprintf(text, sizeof(text), "%d", seq);
    cr_assert_eq(natsConnection_PublishString(pub, "work.items", text), NATS_OK);
  }
  cr_assert_eq(natsConnection_PublishString(pub, "work.fence", "end"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(pub, 10000), NATS_OK);

  /* Messages from one publisher reach each connection in order, so once a
   * member's fence arrived, every work item for it is queued. */
  static int seen[MESSAGE_COUNT];
  memset(seen, -1, sizeof(seen));
  int total = 0;
  for (int i = 0; i < MEMBER_COUNT; i++) {
    natsMsg_Destroy(harness_next_msg(member_fences[i]));
    total += drain_member(member_subs[i], i, seen);
  }
  cr_assert_eq(total, MESSAGE_COUNT, "queue group received %d of %d messages", total,
               MESSAGE_COUNT);

  for (int i = 0; i < PLAIN_COUNT; i++) {
    for (int seq = 0; seq < MESSAGE_COUNT; seq++) {
      natsMsg *msg = harness_next_msg(plain_subs[i]);
      cr_assert_str_eq(natsMsg_GetSubject(msg), "work.items");
      int got = parse_seq(msg);
      natsMsg_Destroy(msg);
      cr_assert_eq(got, seq, "plain subscriber %d got message %d, expected %d", i, got, seq);
    }
    natsMsg *msg = harness_next_msg(plain_subs[i]);
    cr_assert_str_eq(natsMsg_GetSubject(msg), "work.fence");
    natsMsg_Destroy(msg);
  }
}

/* After half of the members unsubscribed, the remaining members receive
 * every message exactly once. */
HARNESS_TEST(queue, remaining_members_get_all) {
  natsConnection *members[MEMBER_COUNT];
  natsSubscription *member_subs[MEMBER_COUNT];
  natsSubscription *member_fences[MEMBER_COUNT];
  for (int i = 0; i < MEMBER_COUNT; i++) {
    members[i] = harness_connect();
    member_subs[i] = subscribe(members[i], "jobs", "job-workers");
    member_fences[i] = subscribe(members[i], "jobs.fence", NULL);
    cr_assert_eq(natsConnection_FlushTimeout(members[i], 10000), NATS_OK);
  }

  /* Half of the members leave, and each flush makes its UNSUB take effect. */
  for (int i = 0; i < MEMBER_COUNT / 2; i++) {
    cr_assert_eq(natsSubscription_Unsubscribe(member_subs[i]), NATS_OK);
    cr_assert_eq(natsConnection_FlushTimeout(members[i], 10000), NATS_OK);
  }

  natsConnection *pub = harness_connect();
  for (int seq = 0; seq < MESSAGE_COUNT; seq++) {
    char text[16];
    snprintf(text, sizeof(text), "%d", seq);
    cr_assert_eq(natsConnection_PublishString(pub, "jobs", text), NATS_OK);
  }
  cr_assert_eq(natsConnection_PublishString(pub, "jobs.fence", "end"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(pub, 10000), NATS_OK);

  static int seen[MESSAGE_COUNT];
  memset(seen, -1, sizeof(seen));
  int total = 0;
  for (int i = 0; i < MEMBER_COUNT; i++)
    natsMsg_Destroy(harness_next_msg(member_fences[i]));
  for (int i = MEMBER_COUNT / 2; i < MEMBER_COUNT; i++)
    total += drain_member(member_subs[i], i, seen);
  cr_assert_eq(total, MESSAGE_COUNT, "remaining members received %d of %d messages", total,
               MESSAGE_COUNT);
}
