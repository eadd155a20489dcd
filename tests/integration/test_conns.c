/* SPDX-License-Identifier: Apache-2.0 */
/* Many connections: hundreds of clients open at once, each with its own
 * subscription, then closed, and raw sockets dropped in the middle of a
 * frame. The server must deliver to each and keep serving afterwards.
 * Owned by the integration test suite. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(conns, .init = harness_start, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

#define CLIENT_COUNT 200
#define ROUNDS 2

static void assert_server_serves(void) {
  natsConnection *nc = harness_connect();
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, "alive"), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(nc, "alive", "yes"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(nc, 10000), NATS_OK);
  natsMsg *msg = harness_next_msg(sub);
  cr_assert_eq(natsMsg_GetDataLength(msg), 3);
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
  harness_disconnect(nc);
}

/* In each of ROUNDS rounds, opens CLIENT_COUNT libnats connections, each
 * subscribed to its own subject, sends one message to each from another
 * connection, then closes them all. */
HARNESS_TEST(conns, many_clients_each_served) {
  natsConnection *pub = harness_connect();
  for (int round = 0; round < ROUNDS; round++) {
    static natsConnection *clients[CLIENT_COUNT];
    static natsSubscription *subs[CLIENT_COUNT];
    for (int i = 0; i < CLIENT_COUNT; i++) {
      clients[i] = harness_connect();
      char subject[32];
      snprintf(subject, sizeof(subject), "client.%d", i);
      cr_assert_eq(natsConnection_SubscribeSync(&subs[i], clients[i], subject), NATS_OK);
    }
    for (int i = 0; i < CLIENT_COUNT; i++)
      cr_assert_eq(natsConnection_FlushTimeout(clients[i], 10000), NATS_OK, "client %d", i);

    for (int i = 0; i < CLIENT_COUNT; i++) {
      char subject[32], payload[32];
      snprintf(subject, sizeof(subject), "client.%d", i);
      snprintf(payload, sizeof(payload), "round %d for %d", round, i);
      cr_assert_eq(natsConnection_PublishString(pub, subject, payload), NATS_OK);
    }
    cr_assert_eq(natsConnection_FlushTimeout(pub, 10000), NATS_OK);

    for (int i = 0; i < CLIENT_COUNT; i++) {
      char payload[32];
      int len = snprintf(payload, sizeof(payload), "round %d for %d", round, i);
      natsMsg *msg = harness_next_msg(subs[i]);
      cr_assert_eq(natsMsg_GetDataLength(msg), len, "client %d", i);
      cr_assert(memcmp(natsMsg_GetData(msg), payload, (size_t)len) == 0, "client %d got \"%.*s\"",
                i, natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
      natsMsg_Destroy(msg);
      natsSubscription_Destroy(subs[i]);
      harness_disconnect(clients[i]);
    }
  }
  assert_server_serves();
}

/* Connects and disconnects raw sockets one after another, some closing
 * cleanly and some with a reset in the middle of a PUB frame. A partial
 * frame must never be delivered. */
HARNESS_TEST(conns, abrupt_disconnects_harmless) {
  natsConnection *watcher = harness_connect();
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, watcher, "partial"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(watcher, 10000), NATS_OK);

  for (int i = 0; i < CLIENT_COUNT; i++) {
    struct raw_conn rc;
    raw_connect_ready(&rc);
    if (i % 2 == 0) {
      cr_assert_eq(raw_send_str(&rc, "SUB partial 1\r\nPUB partial 10\r\nabc"), 0);
      struct linger reset = {.l_onoff = 1, .l_linger = 0};
      setsockopt(rc.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    } else {
      cr_assert_eq(raw_send_str(&rc, "SUB partial 1\r\nPING\r\n"), 0);
      char line[64];
      cr_assert_gt(raw_read_line(&rc, line, sizeof(line), 5000), 0);
      cr_assert_str_eq(line, "PONG");
    }
    raw_close(&rc);
  }

  /* A complete message after the churn arrives, and it is the only one. */
  cr_assert_eq(natsConnection_PublishString(watcher, "partial", "complete"), NATS_OK);
  cr_assert_eq(natsConnection_FlushTimeout(watcher, 10000), NATS_OK);
  natsMsg *msg = harness_next_msg(sub);
  cr_assert_eq(natsMsg_GetDataLength(msg), 8);
  cr_assert(memcmp(natsMsg_GetData(msg), "complete", 8) == 0, "a partial frame was delivered");
  natsMsg_Destroy(msg);
  int pending = -1;
  cr_assert_eq(natsSubscription_GetPending(sub, &pending, NULL), NATS_OK);
  cr_assert_eq(pending, 0);
  assert_server_serves();
}
