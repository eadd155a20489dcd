/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of reads from the file store's segment files through the
 * read-ahead window, over the fault-injecting backend with no faults. A
 * scan in either direction costs one pread per window, and every message
 * read back is the one appended. Reads interleaved with appends never see
 * bytes that a later write changed or a failed write left, a segment
 * removed under the window is not read from it, and neither is a deleted
 * message. The fault backend counts one I/O step per pread. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "tests/unit/store/store_helpers.h"

#define MSGS 3000
#define PAYLOAD_MAX 2000

static void quiet_logs(void)
{
  log_setup(false, false, false, "/dev/null");
}

/* Payload of a sequence, so any read can be checked. */
static uint32_t payload_of(uint64_t seq, uint8_t *out)
{
  uint32_t len = 1 + (uint32_t)(seq * 2654435761u % PAYLOAD_MAX);
  for (uint32_t i = 0; i < len; i++)
    out[i] = (uint8_t)(seq * 131 + i * 7);
  return len;
}

static struct store_config read_config(struct io_backend *io)
{
  struct store_config c = helper_config("READS", STORE_FILE, "/s/READS", io);
  c.segment_size = 4u << 20;
  c.group_bytes_max = 256u << 10;
  return c;
}

static struct store *open_store(struct io_backend *io)
{
  struct store_config c = read_config(io);
  struct store *st = NULL;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "store_open: %d %s", rc, err.message);
  return st;
}

static void append_one(struct store *st, struct io_backend *io, uint64_t expect_seq)
{
  static uint8_t buf[PAYLOAD_MAX];
  uint32_t len = payload_of(expect_seq, buf);
  uint64_t seq;
  int rc = store_append(st, "r.x", 3, NULL, 0, buf, len, 0, NULL, NULL, &seq);
  if (rc == -EAGAIN) {
    helper_drain(st, io);
    rc = store_append(st, "r.x", 3, NULL, 0, buf, len, 0, NULL, NULL, &seq);
  }
  cr_assert_eq(rc, 0, "append %llu: %d", (unsigned long long)expect_seq, rc);
  cr_assert_eq(seq, expect_seq);
}

static void expect_payload(struct store *st, uint64_t seq, struct store_msg *m)
{
  static uint8_t want[PAYLOAD_MAX];
  int rc = store_read(st, seq, m);
  cr_assert_eq(rc, 0, "read %llu: %d", (unsigned long long)seq, rc);
  uint32_t len = payload_of(seq, want);
  cr_assert_eq(m->seq, seq);
  cr_assert_eq(m->data_len, len, "seq %llu length", (unsigned long long)seq);
  cr_assert(memcmp(m->data, want, len) == 0, "seq %llu content", (unsigned long long)seq);
}

/* A store with MSGS messages, all on disk: it is reopened, so no write
 * buffer contains any of them. */
static struct store *filled_store(struct io_backend *io)
{
  struct store *st = open_store(io);
  for (uint64_t seq = 1; seq <= MSGS; seq++)
    append_one(st, io, seq);
  cr_assert_eq(helper_drain(st, io), 0);
  cr_assert_eq(store_close(st), 0);
  return open_store(io);
}

Test(store_read, forward_scan_few_preads, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 1});
  struct store *st = filled_store(io);

  uint32_t steps = io_fault_steps(io);
  struct store_msg m = {0};
  for (uint64_t seq = 1; seq <= MSGS; seq++)
    expect_payload(st, seq, &m);
  uint32_t preads = io_fault_steps(io) - steps;

  /* About 3.2 MB of records: one small read to start, then 256 KiB
   * windows, against one pread per message without read-ahead. */
  cr_assert_leq(preads, 16, "a forward scan of %d messages took %u preads", MSGS, preads);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

Test(store_read, backward_scan_few_preads, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 2});
  struct store *st = filled_store(io);

  uint32_t steps = io_fault_steps(io);
  struct store_msg m = {0};
  for (uint64_t seq = MSGS; seq >= 1; seq--)
    expect_payload(st, seq, &m);
  uint32_t preads = io_fault_steps(io) - steps;

  cr_assert_leq(preads, 16, "a backward scan of %d messages took %u preads", MSGS, preads);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

Test(store_read, random_reads_exact, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 3});
  struct store *st = filled_store(io);

  struct store_msg m = {0};
  uint64_t x = 12345;
  for (int i = 0; i < 2000; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    expect_payload(st, 1 + (x >> 33) % MSGS, &m);
  }
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

/* The window may hold the block where the journal ends. Appends then
 * rewrite that block with more records, which a later read must see. */
Test(store_read, reads_between_appends, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 4});
  struct store *st = open_store(io);
  struct store_msg m = {0};

  for (uint64_t seq = 1; seq <= MSGS; seq++) {
    append_one(st, io, seq);
    if (seq % 7 == 0)
      cr_assert_eq(helper_drain(st, io), 0);
    /* The newest message, from the write buffer, and one that trails it
     * on disk, so the window stays in place while appends pass it. */
    expect_payload(st, seq, &m);
    expect_payload(st, seq > 300 ? seq - 300 : 1, &m);
  }
  cr_assert_eq(helper_drain(st, io), 0);
  for (uint64_t seq = MSGS; seq >= 1; seq--)
    expect_payload(st, seq, &m);
  for (uint64_t seq = 1; seq <= MSGS; seq++) {
    append_one(st, io, MSGS + seq);
    expect_payload(st, 1 + seq * 7919 % (MSGS + seq), &m);
  }
  cr_assert_eq(helper_drain(st, io), 0);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

/* A window loaded at the end of the journal stops at the written end,
 * inside the last block. Records appended later into that block reach the
 * file with a later write. Once the write buffer moved past them, reading
 * them must fetch the block again rather than serve the window's copy. */
Test(store_read, window_stops_at_written_end, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 6});
  struct store *st = filled_store(io);
  struct store_msg m = {0};
  for (uint64_t seq = MSGS - 10; seq <= MSGS; seq++)
    expect_payload(st, seq, &m);

  /* More than a write buffer of appends, with no read in between. */
  for (uint64_t seq = MSGS + 1; seq <= MSGS + 400; seq++) {
    append_one(st, io, seq);
    if (seq % 16 == 0)
      cr_assert_eq(helper_drain(st, io), 0);
  }
  cr_assert_eq(helper_drain(st, io), 0);
  for (uint64_t seq = MSGS + 1; seq <= MSGS + 400; seq++)
    expect_payload(st, seq, &m);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

/* Segments removed by a purge take the window with them. The segment
 * created next has a new index, so reads of it go to the file. */
Test(store_read, purge_drops_window, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 5});
  struct store *st = filled_store(io);
  struct store_msg m = {0};
  expect_payload(st, 1, &m);
  expect_payload(st, 2, &m);

  uint64_t purged = 0;
  struct store_purge all = {0};
  cr_assert_eq(store_purge(st, &all, &purged), 0);
  cr_assert_eq(purged, MSGS);
  cr_assert_eq(store_read(st, 1, &m), -ENOENT);
  for (uint64_t seq = MSGS + 1; seq <= 2 * MSGS; seq++)
    append_one(st, io, seq);
  cr_assert_eq(helper_drain(st, io), 0);
  for (uint64_t seq = MSGS + 1; seq <= 2 * MSGS; seq++)
    expect_payload(st, seq, &m);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

/* Payload of one append attempt: a sequence that a failed write freed is
 * appended again with other content, so a read of stale bytes shows. */
static uint32_t payload_of_attempt(uint64_t seq, uint64_t attempt, uint8_t *out)
{
  uint32_t len = 1 + (uint32_t)((seq * 2654435761u + attempt * 40503u) % PAYLOAD_MAX);
  for (uint32_t i = 0; i < len; i++)
    out[i] = (uint8_t)(seq * 131 + attempt * 17 + i * 7);
  return len;
}

/* Failed writes roll the journal back past the written end, and later
 * appends reuse those sequences and file bytes. Reads through the window,
 * interleaved with them, must return each durable sequence's last content
 * and never the bytes of a rolled-back record. */
Test(store_read, window_after_failed_writes, .init = quiet_logs)
{
  enum { ROUNDS = 6000 };
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 9, .eio_ppm = 50000});
  /* Creating the first segment may draw a failed write too; the next
   * attempt draws again. */
  struct store_config c = read_config(io);
  struct store *st = NULL;
  struct store_error err;
  int rc = -EIO;
  for (int i = 0; i < 10 && rc == -EIO; i++)
    rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "store_open: %d %s", rc, err.message);
  struct helper_acks acks = {0};
  static uint64_t attempt_of[ROUNDS + 2];
  static uint8_t buf[PAYLOAD_MAX];
  struct store_msg m = {0};
  uint64_t durable_max = 0;

  for (uint64_t round = 1; round <= ROUNDS; round++) {
    struct store_state s;
    store_state(st, &s);
    uint64_t seq = s.last_seq + 1;
    cr_assert_leq(seq, ROUNDS + 1);
    attempt_of[seq] = round;
    uint32_t len = payload_of_attempt(seq, round, buf);
    uint64_t got;
    rc = store_append(st, "r.x", 3, NULL, 0, buf, len, 0, helper_on_durable, &acks, &got);
    if (rc == -EAGAIN) {
      helper_drain(st, io);
      continue;
    }
    cr_assert_eq(rc, 0, "append %llu: %d", (unsigned long long)seq, rc);
    cr_assert_eq(got, seq);
    if (round % 5 == 0)
      helper_drain(st, io);

    while (durable_max + 1 < acks.cap && acks.res[durable_max + 1] == 1)
      durable_max++;
    /* A durable message just behind the end, so the window often stays
     * in place while failed writes are rolled back past it. */
    uint64_t back = round * 7919 % 16;
    if (durable_max <= back)
      continue;
    uint64_t read_seq = durable_max - back;
    static uint8_t want[PAYLOAD_MAX];
    uint32_t want_len = payload_of_attempt(read_seq, attempt_of[read_seq], want);
    rc = store_read(st, read_seq, &m);
    cr_assert_eq(rc, 0, "read %llu: %d", (unsigned long long)read_seq, rc);
    cr_assert_eq(m.data_len, want_len, "seq %llu length", (unsigned long long)read_seq);
    cr_assert(memcmp(m.data, want, want_len) == 0, "seq %llu content", (unsigned long long)read_seq);
  }
  helper_drain(st, io);
  cr_assert_gt(acks.failed, 0, "the seed injected no write failure");
  cr_assert_gt(durable_max, ROUNDS / 2);
  store_msg_free(&m);
  free(acks.res);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

/* A message deleted inside the window is not read from it, and its
 * neighbours in the same window still are. */
Test(store_read, delete_inside_window, .init = quiet_logs)
{
  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = 10});
  struct store *st = filled_store(io);
  struct store_msg m = {0};
  expect_payload(st, 100, &m);
  expect_payload(st, 101, &m);
  cr_assert_eq(store_delete(st, 102), 0);
  cr_assert_eq(store_read(st, 102, &m), -ENOENT);
  cr_assert_eq(store_read_next(st, 102, NULL, 0, &m), 0);
  cr_assert_eq(m.seq, 103);
  expect_payload(st, 103, &m);
  expect_payload(st, 101, &m);
  cr_assert_eq(helper_drain(st, io), 0);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}
