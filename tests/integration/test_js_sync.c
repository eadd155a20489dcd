/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream's relaxed sync policy, chosen with `jetstream { sync_interval }`
 * in the configuration. Publishes are acknowledged once their write has
 * completed, before any fdatasync, and the messages survive a clean
 * restart. nats-server 2.9.10 rejects the key, but it acknowledges before
 * it syncs by default, so it runs the same steps without the key. Owned by
 * the integration test suite. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(js_sync, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

#define SYNC_MSGS 200

/* Starts the server on a store in the test's temporary directory, with
 * sync_interval set to interval when the server is shoal. */
static void start_relaxed(const char *interval) {
  char config[1024];
  if (harness_is_reference()) {
    snprintf(config, sizeof config, "jetstream {\n  store_dir: \"%s/store\"\n}\n",
             harness_temp_dir());
  } else {
    snprintf(config, sizeof config,
             "jetstream {\n  store_dir: \"%s/store\"\n  sync_interval: \"%s\"\n}\n",
             harness_temp_dir(), interval);
  }
  harness_start_with(config, NULL);
}

static jsCtx *connect_js(natsConnection **nc_out) {
  natsConnection *nc = harness_connect();
  jsCtx *js = NULL;
  cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
  *nc_out = nc;
  return js;
}

/* Stops the server with SIGTERM and requires a clean exit. */
static void stop_cleanly(natsConnection *nc) {
  harness_disconnect(nc);
  harness_signal(SIGTERM);
  int status = harness_wait_exit(10000);
  cr_assert(harness_clean_exit(status), "the server did not stop cleanly: status %d", status);
}

static void add_file_stream(jsCtx *js, const char *name, const char *subject) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  const char *subjects[] = {subject};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
  cr_assert_eq(s, NATS_OK, "js_AddStream(%s): %s, error code %d", name, natsStatus_GetText(s),
               (int)jerr);
  jsStreamInfo_Destroy(si);
}

static void payload_of(int i, char *out, size_t size) {
  snprintf(out, size, "reading-%04d", i);
}

/* With an interval of an hour, no timed fdatasync runs during the test, and
 * 200 small messages stay far below the 8 MiB that forces one. Every ack
 * must still come within js_Publish's timeout: acks do not wait for the
 * sync. */
HARNESS_TEST(js_sync, relaxed_acks_and_restart) {
  start_relaxed("1h");
  if (!harness_is_reference()) {
    cr_assert(harness_wait_log("Sync Interval:", "3600000 ms", 5000),
              "the start log does not show the one-hour sync interval");
  }
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_file_stream(js, "TELEMETRY", "telemetry.>");

  for (int i = 1; i <= SYNC_MSGS; i++) {
    char data[32];
    payload_of(i, data, sizeof data);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, js, "telemetry.robot1", data, (int)strlen(data), NULL, &jerr);
    cr_assert_eq(s, NATS_OK, "publish %d: %s, error code %d", i, natsStatus_GetText(s), (int)jerr);
    cr_assert_eq(pa->Sequence, (uint64_t)i);
    jsPubAck_Destroy(pa);
  }
  jsCtx_Destroy(js);
  stop_cleanly(nc);
  start_relaxed("1h");
  js = connect_js(&nc);

  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_GetStreamInfo(&si, js, "TELEMETRY", NULL, &jerr), NATS_OK);
  cr_assert_eq(si->State.Msgs, SYNC_MSGS);
  cr_assert_eq(si->State.LastSeq, SYNC_MSGS);
  jsStreamInfo_Destroy(si);

  for (int i = 1; i <= SYNC_MSGS; i += SYNC_MSGS - 1) {
    natsMsg *msg = NULL;
    cr_assert_eq(js_GetMsg(&msg, js, "TELEMETRY", (uint64_t)i, NULL, &jerr), NATS_OK,
                 "message %d is missing after the restart", i);
    char want[32];
    payload_of(i, want, sizeof want);
    cr_assert_eq(natsMsg_GetDataLength(msg), (int)strlen(want));
    cr_assert_eq(memcmp(natsMsg_GetData(msg), want, strlen(want)), 0);
    natsMsg_Destroy(msg);
  }
  jsCtx_Destroy(js);
}

/* A short interval syncs in the background while publishing goes on, and
 * the acknowledged messages are all there after a restart. */
HARNESS_TEST(js_sync, short_interval_keeps_messages) {
  start_relaxed("10ms");
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_file_stream(js, "STATUS", "status.*");

  for (int i = 1; i <= SYNC_MSGS; i++) {
    char data[32];
    payload_of(i, data, sizeof data);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, js, "status.robot2", data, (int)strlen(data), NULL, &jerr);
    cr_assert_eq(s, NATS_OK, "publish %d: %s, error code %d", i, natsStatus_GetText(s), (int)jerr);
    jsPubAck_Destroy(pa);
  }
  jsCtx_Destroy(js);
  stop_cleanly(nc);
  start_relaxed("10ms");
  js = connect_js(&nc);
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_GetStreamInfo(&si, js, "STATUS", NULL, &jerr), NATS_OK);
  cr_assert_eq(si->State.Msgs, SYNC_MSGS);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
}

/* Acks sent without asking for a confirmation change a durable consumer's
 * state in memory. A clean stop saves that state, so after the restart the
 * consumer resumes after the last acked message. Both servers save
 * consumer state at shutdown. */
HARNESS_TEST(js_sync, stop_saves_consumer_acks) {
  start_relaxed("1h");
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_file_stream(js, "TASKS", "tasks.*");
  for (int i = 1; i <= SYNC_MSGS; i++) {
    char data[32];
    payload_of(i, data, sizeof data);
    cr_assert_eq(js_Publish(NULL, js, "tasks.move", data, (int)strlen(data), NULL, NULL), NATS_OK);
  }

  natsSubscription *sub = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_PullSubscribe(&sub, js, "tasks.*", "worker", NULL, NULL, &jerr), NATS_OK,
               "js_PullSubscribe: error code %d", (int)jerr);
  int acked = 0;
  while (acked < SYNC_MSGS / 2) { /* bounded: each pass acks a batch or fails */
    natsMsgList list = {0};
    cr_assert_eq(natsSubscription_Fetch(&list, sub, SYNC_MSGS / 2 - acked, 5000, &jerr), NATS_OK);
    cr_assert_gt(list.Count, 0);
    for (int i = 0; i < list.Count; i++) {
      cr_assert_eq(natsMsg_Ack(list.Msgs[i], NULL), NATS_OK);
      acked++;
    }
    natsMsgList_Destroy(&list);
  }
  cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
  stop_cleanly(nc);

  start_relaxed("1h");
  js = connect_js(&nc);
  jsConsumerInfo *ci = NULL;
  cr_assert_eq(js_GetConsumerInfo(&ci, js, "TASKS", "worker", NULL, &jerr), NATS_OK,
               "consumer info: error code %d", (int)jerr);
  cr_expect_eq(ci->AckFloor.Stream, (uint64_t)SYNC_MSGS / 2);
  cr_expect_eq(ci->NumAckPending, 0);
  cr_expect_eq(ci->NumPending, (uint64_t)SYNC_MSGS / 2);
  jsConsumerInfo_Destroy(ci);
  jsCtx_Destroy(js);
}

/* An ephemeral consumer has no files, so a clean stop does not wait for
 * its state: the stop logs no writes left pending. */
HARNESS_TEST(js_sync, stop_with_ephemeral_consumer) {
  start_relaxed("1h");
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_file_stream(js, "EPHEMERAL", "eph.*");
  cr_assert_eq(js_Publish(NULL, js, "eph.one", "x", 1, NULL, NULL), NATS_OK);

  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.AckPolicy = js_AckExplicit;
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_AddConsumer(&ci, js, "EPHEMERAL", &cc, NULL, &jerr), NATS_OK,
               "js_AddConsumer: error code %d", (int)jerr);
  char next[256];
  snprintf(next, sizeof next, "$JS.API.CONSUMER.MSG.NEXT.EPHEMERAL.%s", ci->Name);
  jsConsumerInfo_Destroy(ci);
  natsMsg *msg = NULL;
  cr_assert_eq(natsConnection_RequestString(&msg, nc, next, "1", 5000), NATS_OK);
  cr_assert_eq(natsMsg_GetDataLength(msg), 1);
  cr_assert_not_null(natsMsg_GetReply(msg));
  cr_assert_eq(natsConnection_PublishString(nc, natsMsg_GetReply(msg), "+ACK"), NATS_OK);
  cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
  natsMsg_Destroy(msg);
  jsCtx_Destroy(js);

  stop_cleanly(nc);
  cr_expect(!harness_wait_log("still pending", NULL, 100),
            "the stop waited for writes that an ephemeral consumer never makes");
}
