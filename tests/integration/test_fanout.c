/* SPDX-License-Identifier: Apache-2.0 */
/* Fan-out and fan-in under load: many subscriber connections receiving
 * mixed-size payloads intact and in order, concurrent publishers whose
 * order is kept per publisher, and subscribers that vanish mid-stream.
 * With several shards these cross shard boundaries. Owned by the
 * integration test suite. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

TestSuite(fanout, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

static natsSubscription *subscribe_unlimited(natsConnection *nc, const char *subject) {
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, subject), NATS_OK);
  cr_assert_eq(natsSubscription_SetPendingLimits(sub, -1, -1), NATS_OK);
  return sub;
}

/* Payload sizes cycled through by the fan-out test: empty, tiny, around
 * common buffer sizes and above 256 KiB. */
static const int fanout_sizes[] = {0, 1, 37, 1000, 4096, 16384, 65536, 262147};
#define FANOUT_SIZE_COUNT (int)(sizeof(fanout_sizes) / sizeof(fanout_sizes[0]))
#define FANOUT_SUBSCRIBERS 20
#define FANOUT_MESSAGES 200

static void fill_payload(unsigned char *buf, int len, int seq) {
  for (int i = 0; i < len; i++)
    buf[i] = (unsigned char)(seq * 13 + i);
}

HARNESS_TEST(fanout, mixed_sizes_to_many) {
  natsSubscription *subs[FANOUT_SUBSCRIBERS];
  for (int i = 0; i < FANOUT_SUBSCRIBERS; i++) {
    natsConnection *nc = harness_connect();
    subs[i] = subscribe_unlimited(nc, "fan.out");
    cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
  }

  natsConnection *pub = harness_connect();
  unsigned char *payload = malloc(262147);
  for (int seq = 0; seq < FANOUT_MESSAGES; seq++) {
    int len = fanout_sizes[seq % FANOUT_SIZE_COUNT];
    fill_payload(payload, len, seq);
    cr_assert_eq(natsConnection_Publish(pub, "fan.out", payload, len), NATS_OK);
  }
  cr_assert_eq(natsConnection_FlushTimeout(pub, 30000), NATS_OK);

  for (int i = 0; i < FANOUT_SUBSCRIBERS; i++) {
    for (int seq = 0; seq < FANOUT_MESSAGES; seq++) {
      int len = fanout_sizes[seq % FANOUT_SIZE_COUNT];
      fill_payload(payload, len, seq);
      natsMsg *msg = harness_next_msg(subs[i]);
      cr_assert_eq(natsMsg_GetDataLength(msg), len,
                   "subscriber %d message %d: %d bytes, expected %d", i, seq,
                   natsMsg_GetDataLength(msg), len);
      cr_assert(len == 0 || memcmp(natsMsg_GetData(msg), payload, (size_t)len) == 0,
                "subscriber %d message %d: payload bytes differ", i, seq);
      natsMsg_Destroy(msg);
    }
  }
  free(payload);
}

#define FANIN_PUBLISHERS 4
#define FANIN_MESSAGES 5000 /* per publisher */

struct publisher {
  natsConnection *nc;
  int id;
  natsStatus status;
};

static void *run_publisher(void *arg) {
  struct publisher *p = arg;
  p->status = NATS_OK;
  for (int seq = 0; seq < FANIN_MESSAGES && p->status == NATS_OK; seq++) {
    char text[32];
    snprintf(text, sizeof(text), "%d:%d", p->id, seq);
    p->status = natsConnection_PublishString(p->nc, "fan.in", text);
  }
  if (p->status == NATS_OK)
    p->status = natsConnection_FlushTimeout(p->nc, 30000);
  return NULL;
}

/* Publishers on separate connections publish at the same time: every
 * subscriber gets every message once, in order per publisher. */
HARNESS_TEST(fanout, concurrent_publishers_ordered) {
  natsSubscription *subs[2];
  for (int i = 0; i < 2; i++) {
    natsConnection *nc = harness_connect();
    subs[i] = subscribe_unlimited(nc, "fan.in");
    cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
  }

  struct publisher publishers[FANIN_PUBLISHERS];
  pthread_t threads[FANIN_PUBLISHERS];
  for (int p = 0; p < FANIN_PUBLISHERS; p++) {
    publishers[p] = (struct publisher){.nc = harness_connect(), .id = p};
    cr_assert_eq(pthread_create(&threads[p], NULL, run_publisher, &publishers[p]), 0);
  }
  for (int p = 0; p < FANIN_PUBLISHERS; p++)
    pthread_join(threads[p], NULL);
  for (int p = 0; p < FANIN_PUBLISHERS; p++)
    cr_assert_eq(publishers[p].status, NATS_OK, "publisher %d failed: %s", p,
                 natsStatus_GetText(publishers[p].status));

  for (int i = 0; i < 2; i++) {
    int next[FANIN_PUBLISHERS] = {0};
    for (int n = 0; n < FANIN_PUBLISHERS * FANIN_MESSAGES; n++) {
      natsMsg *msg = harness_next_msg(subs[i]);
      char text[32];
      int len = natsMsg_GetDataLength(msg);
      cr_assert(len > 0 && len < (int)sizeof(text));
      memcpy(text, natsMsg_GetData(msg), (size_t)len);
      text[len] = '\0';
      natsMsg_Destroy(msg);

      int id = -1, seq = -1;
      cr_assert_eq(sscanf(text, "%d:%d", &id, &seq), 2, "bad payload \"%s\"", text);
      cr_assert(id >= 0 && id < FANIN_PUBLISHERS, "bad publisher id in \"%s\"", text);
      cr_assert_eq(seq, next[id], "subscriber %d: publisher %d message %d, expected %d", i, id,
                   seq, next[id]);
      next[id]++;
    }
  }
}

#define STORM_RAW_SUBSCRIBERS 8
#define STORM_MESSAGES 10000
#define STORM_PAYLOAD_BYTES 1024

/* Reads MSG frames for sid 1 from rc and checks each payload's sequence
 * number. Returns the number of frames read before the expected count or
 * a read error. */
static int read_storm_frames(struct raw_conn *rc, int expected_count) {
  static unsigned char payload[STORM_PAYLOAD_BYTES + 2];
  char line[128], expected_line[128];
  snprintf(expected_line, sizeof(expected_line), "MSG storm 1 %d", STORM_PAYLOAD_BYTES);
  for (int seq = 0; seq < expected_count; seq++) {
    if (raw_read_line(rc, line, sizeof(line), 5000) < 0)
      return seq;
    cr_assert_str_eq(line, expected_line, "frame %d", seq);
    cr_assert_eq(raw_read_exact(rc, payload, sizeof(payload), 5000), 0, "frame %d", seq);
    int got = -1;
    memcpy(&got, payload, sizeof(got));
    cr_assert_eq(got, seq, "raw subscriber got message %d, expected %d", got, seq);
    cr_assert(payload[STORM_PAYLOAD_BYTES] == '\r' && payload[STORM_PAYLOAD_BYTES + 1] == '\n');
  }
  return expected_count;
}

/* Half of the raw subscribers reset their connections while messages flow
 * to them. The others and a libnats subscriber still get every message. */
HARNESS_TEST(fanout, subscribers_vanish_mid_stream) {
  struct raw_conn raws[STORM_RAW_SUBSCRIBERS];
  for (int i = 0; i < STORM_RAW_SUBSCRIBERS; i++) {
    raw_connect_ready(&raws[i]);
    cr_assert_eq(raw_send_str(&raws[i], "SUB storm 1\r\nPING\r\n"), 0);
    char line[64];
    cr_assert_gt(raw_read_line(&raws[i], line, sizeof(line), 5000), 0);
    cr_assert_str_eq(line, "PONG");
  }
  natsConnection *nc = harness_connect();
  natsSubscription *sub = subscribe_unlimited(nc, "storm");
  cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);

  natsConnection *pub = harness_connect();
  unsigned char payload[STORM_PAYLOAD_BYTES];
  memset(payload, 'x', sizeof(payload));
  int vanish_every = STORM_MESSAGES / (STORM_RAW_SUBSCRIBERS / 2 + 1);
  for (int seq = 0; seq < STORM_MESSAGES; seq++) {
    memcpy(payload, &seq, sizeof(seq));
    cr_assert_eq(natsConnection_Publish(pub, "storm", payload, sizeof(payload)), NATS_OK);
    int vanishing = seq / vanish_every - 1;
    if (seq % vanish_every == 0 && vanishing >= 0 && vanishing < STORM_RAW_SUBSCRIBERS / 2) {
      cr_assert_eq(natsConnection_Flush(pub), NATS_OK);
      struct linger reset = {.l_onoff = 1, .l_linger = 0};
      setsockopt(raws[vanishing].fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      raw_close(&raws[vanishing]);
    }
  }
  cr_assert_eq(natsConnection_FlushTimeout(pub, 30000), NATS_OK);

  for (int seq = 0; seq < STORM_MESSAGES; seq++) {
    natsMsg *msg = harness_next_msg(sub);
    int got = -1;
    cr_assert_eq(natsMsg_GetDataLength(msg), STORM_PAYLOAD_BYTES);
    memcpy(&got, natsMsg_GetData(msg), sizeof(got));
    cr_assert_eq(got, seq, "libnats subscriber got message %d, expected %d", got, seq);
    natsMsg_Destroy(msg);
  }
  for (int i = STORM_RAW_SUBSCRIBERS / 2; i < STORM_RAW_SUBSCRIBERS; i++) {
    int frames = read_storm_frames(&raws[i], STORM_MESSAGES);
    cr_assert_eq(frames, STORM_MESSAGES, "raw subscriber %d got %d of %d messages", i, frames,
                 STORM_MESSAGES);
    raw_close(&raws[i]);
  }
}
