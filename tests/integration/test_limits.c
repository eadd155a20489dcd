/* SPDX-License-Identifier: Apache-2.0 */
/* Limits and protocol errors: max_payload on the client and on the wire, a
 * slow consumer cut off without harm to others, and a malformed line that
 * closes only its own connection. Owned by the integration test suite. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

TestSuite(limits, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

static void assert_line(struct raw_conn *rc, const char *expected) {
  char line[512];
  int n = raw_read_line(rc, line, sizeof(line), 5000);
  cr_assert_geq(n, 0, "expected \"%s\", read failed: %s", expected, strerror(-n));
  cr_assert_str_eq(line, expected);
}

static void assert_closed(struct raw_conn *rc) {
  int err = raw_wait_closed(rc, 5000, NULL);
  cr_assert(err == 0 || err == -ECONNRESET, "server did not close the connection: %s",
            strerror(-err));
}

/* Checks that nc still delivers its own messages. */
static void assert_connection_works(natsConnection *nc, const char *subject) {
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, subject), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(nc, subject, "still-here"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
  natsMsg *msg = harness_next_msg(sub);
  cr_assert_eq(natsMsg_GetDataLength(msg), 10);
  cr_assert(memcmp(natsMsg_GetData(msg), "still-here", 10) == 0);
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
}

HARNESS_TEST(limits, client_rejects_over_max_payload) {
  natsConnection *nc = harness_connect();
  cr_assert_eq(natsConnection_GetMaxPayload(nc), HARNESS_MAX_PAYLOAD);

  char *big = calloc(1, HARNESS_MAX_PAYLOAD + 1);
  natsStatus s = natsConnection_Publish(nc, "too.big", big, HARNESS_MAX_PAYLOAD + 1);
  free(big);
  cr_assert_eq(s, NATS_MAX_PAYLOAD, "publish over max_payload returned %s", natsStatus_GetText(s));
  assert_connection_works(nc, "after.too.big");
}

/* libnats checks max_payload itself, so the server's check needs a raw PUB. */
HARNESS_TEST(limits, raw_pub_over_max_payload) {
  natsConnection *watcher = harness_connect();
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, watcher, "too.big"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(watcher, 10000), NATS_OK);

  struct raw_conn rc;
  raw_connect_ready(&rc);
  char line[64];
  snprintf(line, sizeof(line), "PUB too.big %d\r\n", HARNESS_MAX_PAYLOAD + 1);
  cr_assert_eq(raw_send_str(&rc, line), 0);
  assert_line(&rc, "-ERR 'Maximum Payload Violation'");
  assert_closed(&rc);
  raw_close(&rc);

  /* The payload limit includes the header bytes of an HPUB. */
  raw_connect_ready(&rc);
  snprintf(line, sizeof(line), "HPUB too.big 12 %d\r\n", HARNESS_MAX_PAYLOAD + 1);
  cr_assert_eq(raw_send_str(&rc, line), 0);
  assert_line(&rc, "-ERR 'Maximum Payload Violation'");
  assert_closed(&rc);
  raw_close(&rc);

  natsMsg *msg = NULL;
  cr_assert_eq(natsSubscription_NextMsg(&msg, sub, 100), NATS_TIMEOUT,
               "a rejected message was delivered");
  assert_connection_works(watcher, "after.raw.too.big");
}

HARNESS_TEST(limits, malformed_line_closes_only_sender) {
  natsConnection *nc = harness_connect();
  struct raw_conn bystander;
  raw_connect_ready(&bystander);

  struct raw_conn rc;
  raw_connect_ready(&rc);
  cr_assert_eq(raw_send_str(&rc, "FOO BAR\r\n"), 0);
  assert_line(&rc, "-ERR 'Unknown Protocol Operation'");
  assert_closed(&rc);
  raw_close(&rc);

  cr_assert_eq(raw_send_str(&bystander, "PING\r\n"), 0);
  assert_line(&bystander, "PONG");
  raw_close(&bystander);
  assert_connection_works(nc, "after.malformed");
}

#define SLOW_PAYLOAD_BYTES (64 * 1024)
#define SLOW_MESSAGE_COUNT 1600 /* 100 MiB, above the default max_pending of 64 MiB */
/* Several stalled subscribers, so that with more than one shard at least
 * one of them likely sits on another shard than the publisher. If two
 * shards get connections evenly at random, all four share the publisher's
 * shard in about 1 run in 16. */
#define STALLED_SUBSCRIBERS 4

struct slow_receiver {
  pthread_mutex_t lock;
  pthread_cond_t done;
  int received;
  int first_bad_seq; /* -1 while every message had the expected bytes */
};

static void fill_slow_payload(unsigned char *buf, int seq) {
  memset(buf, (unsigned char)(seq * 7 + 1), SLOW_PAYLOAD_BYTES);
  memcpy(buf, &seq, sizeof(seq));
}

static void on_slow_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg) {
  struct slow_receiver *r = arg;
  static unsigned char expected[SLOW_PAYLOAD_BYTES];

  pthread_mutex_lock(&r->lock);
  int seq = r->received;
  fill_slow_payload(expected, seq);
  bool same = natsMsg_GetDataLength(msg) == SLOW_PAYLOAD_BYTES &&
              memcmp(natsMsg_GetData(msg), expected, SLOW_PAYLOAD_BYTES) == 0;
  if (!same && r->first_bad_seq < 0)
    r->first_bad_seq = seq;
  r->received++;
  if (r->received == SLOW_MESSAGE_COUNT)
    pthread_cond_signal(&r->done);
  pthread_mutex_unlock(&r->lock);
  natsMsg_Destroy(msg);
}

static void on_disconnected(natsConnection *nc, void *arg) {
  atomic_fetch_add((atomic_int *)arg, 1);
}

/* Waits until r has every message or timeout_ms passed. Returns the count. */
static int wait_received(struct slow_receiver *r, int timeout_ms) {
  int64_t deadline = harness_now_ms() + timeout_ms;
  pthread_mutex_lock(&r->lock);
  while (r->received < SLOW_MESSAGE_COUNT && harness_now_ms() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000 * 1000 * 1000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000 * 1000 * 1000;
    }
    pthread_cond_timedwait(&r->done, &r->lock, &ts);
  }
  int received = r->received;
  pthread_mutex_unlock(&r->lock);
  return received;
}

/* Subscribers that never read are disconnected once their pending output
 * passes max_pending or a write to them stalls past write_deadline, while a
 * reading subscriber gets every message and the publisher stays connected.
 * nats-server 2.9.10 takes about 10 s here, its default write_deadline. */
HARNESS_TEST(limits, slow_consumer_disconnected) {
  struct raw_conn stalled[STALLED_SUBSCRIBERS];
  for (int i = 0; i < STALLED_SUBSCRIBERS; i++) {
    int err = raw_connect(&stalled[i], 16 * 1024);
    cr_assert_eq(err, 0, "raw connect failed: %s", strerror(-err));
    cr_assert_eq(raw_send_str(&stalled[i], "CONNECT {\"verbose\":false}\r\nSUB bulk 1\r\nPING\r\n"),
                 0);
    assert_line(&stalled[i], "PONG");
  }

  static struct slow_receiver receiver = {
      .lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER, .first_bad_seq = -1};
  natsConnection *reader = harness_connect();
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_Subscribe(&sub, reader, "bulk", on_slow_message, &receiver), NATS_OK);
  cr_assert_eq(natsSubscription_SetPendingLimits(sub, -1, -1), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(reader, 10000), NATS_OK);

  static atomic_int publisher_disconnects;
  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetDisconnectedCB(opts, on_disconnected, &publisher_disconnects),
               NATS_OK);
  natsConnection *pub = harness_connect_opts(opts);
  natsOptions_Destroy(opts);

  unsigned char *payload = malloc(SLOW_PAYLOAD_BYTES);
  for (int seq = 0; seq < SLOW_MESSAGE_COUNT; seq++) {
    fill_slow_payload(payload, seq);
    natsStatus s = natsConnection_Publish(pub, "bulk", payload, SLOW_PAYLOAD_BYTES);
    cr_assert_eq(s, NATS_OK, "publish %d failed: %s", seq, natsStatus_GetText(s));
  }
  free(payload);
  natsStatus s = natsConnection_FlushTimeout(pub, 60000);
  cr_assert_eq(s, NATS_OK, "publisher flush failed: %s", natsStatus_GetText(s));

  int received = wait_received(&receiver, 60000);
  cr_assert_eq(received, SLOW_MESSAGE_COUNT, "reading subscriber got %d of %d messages", received,
               SLOW_MESSAGE_COUNT);
  cr_assert_eq(receiver.first_bad_seq, -1, "message %d had wrong bytes", receiver.first_bad_seq);

  for (int i = 0; i < STALLED_SUBSCRIBERS; i++) {
    size_t discarded = 0;
    int err = raw_wait_closed(&stalled[i], 30000, &discarded);
    cr_assert(err == 0 || err == -ECONNRESET,
              "stalled subscriber %d was not disconnected: %s after reading %zu bytes", i,
              strerror(-err), discarded);
    cr_assert_lt(discarded, (size_t)SLOW_MESSAGE_COUNT * SLOW_PAYLOAD_BYTES,
                 "stalled subscriber %d received everything (%zu bytes)", i, discarded);
    raw_close(&stalled[i]);
  }

  cr_assert_eq(atomic_load(&publisher_disconnects), 0, "publisher was disconnected");
  cr_assert_eq(natsConnection_Status(pub), NATS_CONN_STATUS_CONNECTED);
  assert_connection_works(pub, "after.slow");
}
