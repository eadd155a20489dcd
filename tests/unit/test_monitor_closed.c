/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of net/monitor_closed.c, the per-shard ring of closed
 * connections behind /connz?state=closed. The file is included so that
 * the tests can build a ring smaller than the real one. Clients are plain
 * structs filled with the fields a record copies. No server runs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/monitor_closed.c"

static struct shard test_shard;

static void setup(void) {
  server.shard_count = 1;
  server.opts.http_port = 8222;
  memset(&test_shard, 0, sizeof test_shard);
}

TestSuite(monitor_closed, .init = setup, .timeout = 30);

static struct client *client_new(uint64_t cid, const char *name) {
  struct client *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  c->shard = &test_shard;
  c->cid = cid;
  snprintf(c->ip, sizeof c->ip, "127.0.0.1");
  c->port = 40000 + (int)cid;
  c->name = name != NULL ? strdup(name) : NULL;
  c->lang = strdup("C");
  c->close_reason = CLOSE_CLIENT;
  c->start_ms = 1000;
  c->last_recv_ms = 1500;
  return c;
}

/* Adds a subscription at the head of c's list, as the client code does. */
static void client_add_sub(struct client *c, const char *subject, const char *queue,
                           const char *sid) {
  struct sub *sub = calloc(1, sizeof *sub);
  cr_assert_not_null(sub);
  sub->subject = strdup(subject);
  sub->subject_len = (uint32_t)strlen(subject);
  if (queue != NULL) {
    sub->queue = strdup(queue);
    sub->queue_len = (uint32_t)strlen(queue);
  }
  sub->sid = strdup(sid);
  sub->sid_len = (uint32_t)strlen(sid);
  sub->next_in_client = c->sub_list;
  c->sub_list = sub;
  c->subs.count++;
}

static void client_free(struct client *c) {
  while (c->sub_list != NULL) {
    struct sub *sub = c->sub_list;
    c->sub_list = sub->next_in_client;
    free(sub->subject);
    free(sub->queue);
    free(sub->sid);
    free(sub);
  }
  free(c->name);
  free(c->lang);
  free(c);
}

static void ring_free(struct monitor_closed_ring *ring) {
  for (uint32_t i = 0; i < ring->capacity; i++) free(ring->records[i].data);
  free(ring);
}

static void snapshot_free(struct monitor_snapshot *snap) {
  free(snap->conns);
  free(snap->subs);
  buf_free(&snap->strings);
}

/* Closes one client with cid and name into ring. */
static void add_closed(struct monitor_closed_ring *ring, uint64_t cid, const char *name,
                       int64_t stop_ms) {
  struct client *c = client_new(cid, name);
  closed_ring_add(ring, c, stop_ms);
  client_free(c);
}

Test(monitor_closed, capacity_shares_max) {
  cr_expect_eq(monitor_closed_capacity(1), MONITOR_CLOSED_MAX);
  cr_expect_eq(monitor_closed_capacity(2), MONITOR_CLOSED_MAX / 2);
  cr_expect_eq(monitor_closed_capacity(0), MONITOR_CLOSED_MAX, "treated as one shard");
  for (int shards = 1; shards <= 256; shards++) {
    uint64_t total = (uint64_t)monitor_closed_capacity(shards) * (uint64_t)shards;
    cr_expect_leq(total, MONITOR_CLOSED_MAX, "%d shards keep %llu", shards,
                  (unsigned long long)total);
    cr_expect_gt(monitor_closed_capacity(shards), 0);
  }
  cr_expect_eq(monitor_closed_capacity(MONITOR_CLOSED_MAX * 2), 1, "at least one per shard");
}

Test(monitor_closed, ring_keeps_newest) {
  enum { CAPACITY = 4, CLOSED = 11 };
  struct monitor_closed_ring *ring = closed_ring_create(CAPACITY);
  cr_assert_not_null(ring);
  test_shard.closed = ring;

  struct monitor_snapshot snap = {0};
  monitor_closed_copy(&test_shard, &snap);
  cr_expect_eq(snap.closed_count, 0);
  cr_expect_eq(snap.conn_count, 0);

  for (uint64_t cid = 1; cid <= CLOSED; cid++) {
    char name[16];
    snprintf(name, sizeof name, "c%llu", (unsigned long long)cid);
    add_closed(ring, cid, name, 2000 + (int64_t)cid);
  }
  monitor_closed_copy(&test_shard, &snap);
  cr_expect_eq(snap.closed_count, CAPACITY, "the ring holds at most its capacity");
  cr_assert_eq(snap.conn_count, CAPACITY);
  for (uint32_t i = 0; i < CAPACITY; i++) {
    uint64_t cid = CLOSED - CAPACITY + 1 + i;
    char name[16];
    snprintf(name, sizeof name, "c%llu", (unsigned long long)cid);
    cr_expect_eq(snap.conns[i].cid, cid, "oldest kept first");
    cr_expect_str_eq(monitor_snapshot_string(&snap, snap.conns[i].name), name);
    cr_expect_eq(snap.conns[i].stop_ms, 2000 + (int64_t)cid);
    cr_expect(snap.conns[i].closed);
  }
  snapshot_free(&snap);

  /* A cid selects one record, and closed_count still counts all. */
  struct monitor_snapshot one = {.cid = CLOSED - 1};
  monitor_closed_copy(&test_shard, &one);
  cr_expect_eq(one.closed_count, CAPACITY);
  cr_assert_eq(one.conn_count, 1);
  cr_expect_eq(one.conns[0].cid, CLOSED - 1);
  snapshot_free(&one);

  struct monitor_snapshot evicted = {.cid = 1};
  monitor_closed_copy(&test_shard, &evicted);
  cr_expect_eq(evicted.conn_count, 0, "the oldest record was replaced");
  snapshot_free(&evicted);
  ring_free(ring);
}

Test(monitor_closed, record_copies_connection) {
  struct monitor_closed_ring *ring = closed_ring_create(2);
  test_shard.closed = ring;
  struct client *c = client_new(7, "robot-7");
  c->close_reason = CLOSE_SLOW_CONSUMER_PENDING;
  c->msgs_in = 3;
  c->bytes_in = 30;
  c->msgs_out = 5;
  c->bytes_out = 50;
  c->rtt_ns = 12345;
  client_add_sub(c, "robot.7.cmd", NULL, "1");
  client_add_sub(c, "tasks", "workers", "2");
  c->sub_list->delivered = 9;
  c->sub_list->max_msgs = 100;
  closed_ring_add(ring, c, 4000);
  client_free(c);

  struct monitor_snapshot snap = {.want_conn_subs = true};
  monitor_closed_copy(&test_shard, &snap);
  cr_assert_eq(snap.conn_count, 1);
  const struct monitor_conn *out = &snap.conns[0];
  cr_expect_eq(out->cid, 7);
  cr_expect_str_eq(out->ip, "127.0.0.1");
  cr_expect_eq(out->port, 40007);
  cr_expect_eq(out->start_ms, 1000);
  cr_expect_eq(out->last_activity_ms, 1500);
  cr_expect_eq(out->stop_ms, 4000);
  cr_expect_str_eq(out->reason, "Slow Consumer (Pending Bytes)");
  cr_expect_eq(out->in_msgs, 3);
  cr_expect_eq(out->in_bytes, 30);
  cr_expect_eq(out->out_msgs, 5);
  cr_expect_eq(out->out_bytes, 50);
  cr_expect_eq(out->rtt_ns, 12345);
  cr_expect_eq(out->sub_count, 2);
  cr_expect_str_eq(monitor_snapshot_string(&snap, out->name), "robot-7");
  cr_expect_str_eq(monitor_snapshot_string(&snap, out->lang), "C");
  cr_expect_null(monitor_snapshot_string(&snap, out->version));
  cr_expect_null(monitor_snapshot_string(&snap, out->user));

  /* Subscriptions oldest first, as for open connections. */
  cr_assert_eq(out->sub_len, 2);
  cr_assert_eq(snap.sub_count, 2);
  const struct monitor_sub *first = &snap.subs[out->sub_first];
  const struct monitor_sub *second = &snap.subs[out->sub_first + 1];
  cr_expect_str_eq(monitor_snapshot_string(&snap, first->subject), "robot.7.cmd");
  cr_expect_null(monitor_snapshot_string(&snap, first->queue));
  cr_expect_str_eq(monitor_snapshot_string(&snap, first->sid), "1");
  cr_expect_str_eq(monitor_snapshot_string(&snap, second->subject), "tasks");
  cr_expect_str_eq(monitor_snapshot_string(&snap, second->queue), "workers");
  cr_expect_str_eq(monitor_snapshot_string(&snap, second->sid), "2");
  cr_expect_eq(second->msgs, 9);
  cr_expect_eq(second->max, 100);
  cr_expect_eq(second->cid, 7);
  snapshot_free(&snap);

  /* Without want_conn_subs, no subscription is copied. */
  struct monitor_snapshot plain = {0};
  monitor_closed_copy(&test_shard, &plain);
  cr_assert_eq(plain.conn_count, 1);
  cr_expect_eq(plain.conns[0].sub_len, 0);
  cr_expect_eq(plain.sub_count, 0);
  cr_expect_eq(plain.conns[0].sub_count, 2);
  snapshot_free(&plain);
  ring_free(ring);
}

Test(monitor_closed, many_subscriptions_bounded) {
  /* The record lists as many subscriptions as fit in its block, and still
   * counts them all. */
  enum { SUBS = 200 };
  struct monitor_closed_ring *ring = closed_ring_create(1);
  test_shard.closed = ring;
  struct client *c = client_new(1, "busy");
  for (int i = 0; i < SUBS; i++) {
    char subject[32], sid[16];
    snprintf(subject, sizeof subject, "fleet.robot.%03d.status", i);
    snprintf(sid, sizeof sid, "%d", i);
    client_add_sub(c, subject, NULL, sid);
  }
  closed_ring_add(ring, c, 5000);
  client_free(c);

  const struct closed_record *r = &ring->records[0];
  size_t per_sub = sizeof(struct monitor_sub) + strlen("fleet.robot.000.status") + 1 + 4;
  cr_expect_eq(r->conn.sub_count, SUBS);
  cr_expect_gt(r->conn.sub_len, (CLOSED_DATA_BYTES_MAX - 64) / per_sub - 1);
  cr_expect_lt(r->conn.sub_len, SUBS);
  cr_expect_leq(r->conn.sub_len * per_sub, CLOSED_DATA_BYTES_MAX);

  /* The newest subscriptions are the ones kept, listed oldest first. */
  struct monitor_snapshot snap = {.want_conn_subs = true};
  monitor_closed_copy(&test_shard, &snap);
  cr_assert_eq(snap.sub_count, r->conn.sub_len);
  char expected[32];
  snprintf(expected, sizeof expected, "fleet.robot.%03d.status", SUBS - 1);
  cr_expect_str_eq(monitor_snapshot_string(&snap, snap.subs[snap.sub_count - 1].subject), expected);
  snapshot_free(&snap);
  ring_free(ring);
}

Test(monitor_closed, long_name_cut_at_character) {
  /* 300 bytes of "é" (two bytes each), after one ASCII byte: 256 bytes
   * would end inside a character, so 255 are kept. */
  char name[302];
  name[0] = 'a';
  for (int i = 1; i + 1 < 301; i += 2) {
    name[i] = (char)0xC3;
    name[i + 1] = (char)0xA9;
  }
  name[301] = '\0';
  struct monitor_closed_ring *ring = closed_ring_create(1);
  test_shard.closed = ring;
  add_closed(ring, 1, name, 100);
  struct monitor_snapshot snap = {0};
  monitor_closed_copy(&test_shard, &snap);
  cr_assert_eq(snap.conn_count, 1);
  const char *kept = monitor_snapshot_string(&snap, snap.conns[0].name);
  cr_assert_not_null(kept);
  cr_expect_eq(strlen(kept), CLOSED_STRING_BYTES_MAX - 1);
  cr_expect_eq(memcmp(kept, name, strlen(kept)), 0);
  snapshot_free(&snap);
  ring_free(ring);
}

Test(monitor_closed, reasons_use_nats_server_text) {
  static const struct {
    enum client_close_reason reason;
    const char *text;
  } cases[] = {
      {CLOSE_CLIENT, "Client Closed"},
      {CLOSE_PROTOCOL_VIOLATION, "Protocol Violation"},
      {CLOSE_SLOW_CONSUMER_PENDING, "Slow Consumer (Pending Bytes)"},
      {CLOSE_SLOW_CONSUMER_DEADLINE, "Slow Consumer (Write Deadline)"},
      {CLOSE_STALE, "Stale Connection"},
      {CLOSE_MAX_PAYLOAD, "Maximum Message Payload Exceeded"},
      {CLOSE_WRITE_ERROR, "Write Error"},
      {CLOSE_READ_ERROR, "Read Error"},
      {CLOSE_SERVER_SHUTDOWN, "Server Shutdown"},
      {CLOSE_MAX_CONNECTIONS, "Maximum Connections Exceeded"},
      {CLOSE_PARSE_ERROR, "Parse Error"},
      {CLOSE_AUTH_TIMEOUT, "Authentication Timeout"},
      {CLOSE_AUTH_VIOLATION, "Authentication Failure"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_expect_str_eq(reason_text(cases[i].reason), cases[i].text, "reason %d",
                     (int)cases[i].reason);
}

Test(monitor_closed, add_needs_monitoring) {
  struct client *c = client_new(1, "quiet");
  server.opts.http_port = 0;
  monitor_closed_add(c);
  cr_expect_null(test_shard.closed, "nothing is kept with monitoring off");

  server.opts.http_port = 8222;
  server.shard_count = 4;
  monitor_closed_add(c);
  cr_assert_not_null(test_shard.closed);
  cr_expect_eq(test_shard.closed->capacity, MONITOR_CLOSED_MAX / 4);
  cr_expect_eq(test_shard.closed->added, 1);
  client_free(c);
  ring_free(test_shard.closed);
}
