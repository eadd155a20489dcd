/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream through libnats's jsCtx against a server started with -js and
 * a store directory in the test's temporary directory: streams, publish
 * acknowledgements with de-duplication, a durable pull consumer with
 * acknowledgements, the stream-not-found error, and a restart after which
 * the stream, its messages and the consumer's position remain. Owned by
 * the integration test suite. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(jetstream, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

static void start_jetstream(void) {
  char args[1024];
  snprintf(args, sizeof args, "-js -sd %s/store", harness_temp_dir());
  harness_start_with(NULL, args);
}

static jsCtx *connect_js(natsConnection **nc_out) {
  natsConnection *nc = harness_connect();
  jsCtx *js = NULL;
  cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
  *nc_out = nc;
  return js;
}

static void add_stream(jsCtx *js, const char *name, const char *subject) {
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
  cr_assert_str_eq(si->Config->Name, name);
  cr_assert_eq(si->State.Msgs, 0);
  jsStreamInfo_Destroy(si);
}

/* Publishes data with msg_id (NULL for none) and returns the ack's sequence;
 * *duplicate receives the ack's duplicate flag. */
static uint64_t publish(jsCtx *js, const char *subject, const char *data, const char *msg_id,
                        bool *duplicate) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id;
  jsPubAck *pa = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_Publish(&pa, js, subject, data, (int)strlen(data), &po, &jerr);
  cr_assert_eq(s, NATS_OK, "js_Publish(%s): %s, error code %d", subject, natsStatus_GetText(s),
               (int)jerr);
  uint64_t seq = pa->Sequence;
  if (duplicate != NULL) *duplicate = pa->Duplicate;
  jsPubAck_Destroy(pa);
  return seq;
}

static natsSubscription *pull_subscribe(jsCtx *js, const char *subject, const char *durable) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Config.AckPolicy = js_AckExplicit;
  natsSubscription *sub = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr);
  cr_assert_eq(s, NATS_OK, "js_PullSubscribe: %s, error code %d", natsStatus_GetText(s), (int)jerr);
  return sub;
}

/* Fetches up to batch messages, acknowledges each with AckSync, and
 * stores their stream sequences in seqs. Returns the number fetched. */
static int fetch_and_ack(natsSubscription *sub, int batch, uint64_t *seqs) {
  natsMsgList list = {0};
  jsErrCode jerr = 0;
  natsStatus s = natsSubscription_Fetch(&list, sub, batch, 5000, &jerr);
  if (s == NATS_TIMEOUT) return 0;
  cr_assert_eq(s, NATS_OK, "natsSubscription_Fetch: %s, error code %d", natsStatus_GetText(s),
               (int)jerr);
  for (int i = 0; i < list.Count; i++) {
    jsMsgMetaData *meta = NULL;
    cr_assert_eq(natsMsg_GetMetaData(&meta, list.Msgs[i]), NATS_OK);
    seqs[i] = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    cr_assert_eq(natsMsg_AckSync(list.Msgs[i], NULL, &jerr), NATS_OK);
  }
  int count = list.Count;
  natsMsgList_Destroy(&list);
  return count;
}

HARNESS_TEST(jetstream, publish_ack_and_duplicate) {
  start_jetstream();
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_stream(js, "ORDERS", "orders.*");

  bool duplicate = true;
  cr_assert_eq(publish(js, "orders.new", "first", "order-1", &duplicate), 1);
  cr_assert_not(duplicate);
  cr_assert_eq(publish(js, "orders.new", "second", "order-2", &duplicate), 2);
  cr_assert_eq(publish(js, "orders.new", "first", "order-1", &duplicate), 1);
  cr_assert(duplicate, "a repeated Nats-Msg-Id was not reported as a duplicate");

  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_GetStreamInfo(&si, js, "ORDERS", NULL, &jerr), NATS_OK);
  cr_assert_eq(si->State.Msgs, 2);
  cr_assert_eq(si->State.LastSeq, 2);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
}

HARNESS_TEST(jetstream, stream_not_found) {
  start_jetstream();
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus s = js_GetStreamInfo(&si, js, "MISSING", NULL, &jerr);
  cr_assert_eq(s, NATS_NOT_FOUND, "js_GetStreamInfo: %s", natsStatus_GetText(s));
  cr_assert_null(si);
  jsCtx_Destroy(js);
}

HARNESS_TEST(jetstream, pull_fetch_and_ack) {
  start_jetstream();
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_stream(js, "TASKS", "tasks.*");
  for (int i = 0; i < 5; i++) publish(js, "tasks.run", "job", NULL, NULL);

  natsSubscription *sub = pull_subscribe(js, "tasks.*", "runner");
  uint64_t seqs[8] = {0};
  cr_assert_eq(fetch_and_ack(sub, 3, seqs), 3);
  cr_assert_eq(seqs[0], 1);
  cr_assert_eq(seqs[1], 2);
  cr_assert_eq(seqs[2], 3);

  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_GetConsumerInfo(&ci, js, "TASKS", "runner", NULL, &jerr), NATS_OK);
  cr_assert_eq(ci->Delivered.Stream, 3);
  cr_assert_eq(ci->AckFloor.Stream, 3);
  cr_assert_eq(ci->NumAckPending, 0);
  cr_assert_eq(ci->NumPending, 2);
  jsConsumerInfo_Destroy(ci);

  cr_assert_eq(fetch_and_ack(sub, 5, seqs), 2);
  cr_assert_eq(seqs[0], 4);
  cr_assert_eq(seqs[1], 5);
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
}

HARNESS_TEST(jetstream, restart_keeps_stream_and_consumer) {
  start_jetstream();
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  add_stream(js, "KEEP", "keep.*");
  for (int i = 0; i < 4; i++) publish(js, "keep.x", "data", NULL, NULL);
  publish(js, "keep.x", "tagged", "tag-1", NULL);
  natsSubscription *sub = pull_subscribe(js, "keep.*", "reader");
  uint64_t seqs[8] = {0};
  cr_assert_eq(fetch_and_ack(sub, 2, seqs), 2);
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
  harness_disconnect(nc);

  harness_signal(SIGTERM);
  harness_wait_exit(10000);
  start_jetstream();
  js = connect_js(&nc);

  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  cr_assert_eq(js_GetStreamInfo(&si, js, "KEEP", NULL, &jerr), NATS_OK);
  cr_assert_eq(si->State.Msgs, 5);
  cr_assert_eq(si->State.LastSeq, 5);
  jsStreamInfo_Destroy(si);

  bool duplicate = false;
  cr_assert_eq(publish(js, "keep.x", "tagged", "tag-1", &duplicate), 5);
  cr_assert(duplicate, "the duplicate window was lost across the restart");

  sub = pull_subscribe(js, "keep.*", "reader");
  cr_assert_eq(fetch_and_ack(sub, 8, seqs), 3);
  cr_assert_eq(seqs[0], 3);
  cr_assert_eq(seqs[2], 5);
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
}

HARNESS_TEST(jetstream, kv_bucket) {
  start_jetstream();
  natsConnection *nc;
  jsCtx *js = connect_js(&nc);
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = "fleet";
  cfg.History = 3;
  kvStore *kv = NULL;
  natsStatus s = js_CreateKeyValue(&kv, js, &cfg);
  cr_assert_eq(s, NATS_OK, "js_CreateKeyValue: %s", natsStatus_GetText(s));

  uint64_t rev1 = 0, rev2 = 0, rev3 = 0;
  cr_assert_eq(kvStore_PutString(&rev1, kv, "robot.1", "idle"), NATS_OK);
  cr_assert_eq(kvStore_PutString(&rev2, kv, "robot.1", "busy"), NATS_OK);
  cr_assert_eq(rev2, rev1 + 1);
  cr_assert_neq(kvStore_CreateString(NULL, kv, "robot.1", "again"), NATS_OK,
                "create of an existing key succeeded");
  cr_assert_eq(kvStore_UpdateString(&rev3, kv, "robot.1", "charging", rev2), NATS_OK);
  cr_assert_neq(kvStore_UpdateString(NULL, kv, "robot.1", "stale", rev2), NATS_OK,
                "update with an old revision succeeded");
  cr_assert_eq(kvStore_PutString(NULL, kv, "robot.2", "idle"), NATS_OK);

  kvEntry *e = NULL;
  cr_assert_eq(kvStore_Get(&e, kv, "robot.1"), NATS_OK);
  cr_assert_str_eq(kvEntry_ValueString(e), "charging");
  cr_assert_eq(kvEntry_Revision(e), rev3);
  kvEntry_Destroy(e);

  cr_assert_eq(kvStore_Delete(kv, "robot.2"), NATS_OK);
  e = NULL;
  cr_assert_eq(kvStore_Get(&e, kv, "robot.2"), NATS_NOT_FOUND);

  kvKeysList keys = {0};
  cr_assert_eq(kvStore_Keys(&keys, kv, NULL), NATS_OK);
  cr_assert_eq(keys.Count, 1);
  cr_assert_str_eq(keys.Keys[0], "robot.1");
  kvKeysList_Destroy(&keys);

  kvEntryList history = {0};
  cr_assert_eq(kvStore_History(&history, kv, "robot.1", NULL), NATS_OK);
  cr_assert_eq(history.Count, 3);
  cr_assert_str_eq(kvEntry_ValueString(history.Entries[2]), "charging");
  kvEntryList_Destroy(&history);

  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
}
