/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of reads from the file store's segment files through the
 * read-ahead window, over the fault-injecting backend with no faults. A
 * scan in either direction costs one pread per window, and every message
 * read back is the one appended. Reads interleaved with appends never see
 * bytes that a later write changed, and a segment removed under the window
 * is not read from it. The fault backend counts one I/O step per pread. */
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
