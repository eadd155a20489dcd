/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection tests of the file store's journal.
 *
 * Method: a seeded workload (appends of varied sizes, deletes, head purges,
 * flushes) runs against the fault-injecting backend, which may fail writes
 * with ENOSPC or EIO, misdirect them, and crash at a chosen I/O step. The
 * run then ends in a simulated power cut (unsynced writes kept, lost or
 * torn), optionally with bit flips in stable content, and the store is
 * reopened. The outcome table each run must meet:
 *
 *   faults injected              reopen must
 *   crash, torn/lost, ENOSPC/EIO  succeed, with every acknowledged message
 *                                not deleted by the workload intact
 *   misdirected writes, flips    either succeed as above, or fail with
 *                                -EUCLEAN naming the segment and offset
 *
 * and no recovered message may carry content that was never appended with
 * its sequence. A failure prints the seed and the crash step to replay. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "tests/unit/store/store_helpers.h"

#define WORKLOAD_OPS_MAX 400
#define PAYLOAD_MAX 3000
#define SUBJECTS 5

struct attempt {
  uint64_t seq;
  bool acked;
};

struct run {
  struct attempt attempts[WORKLOAD_OPS_MAX];
  uint32_t attempt_count;
  bool deleted[WORKLOAD_OPS_MAX * 2];   /* by sequence */
  uint64_t rng;
  uint64_t seed;
  uint32_t crash_at;
};

static void quiet_logs(void)
{
  log_setup(false, false, false, "/dev/null");
}

static uint64_t next_rand(struct run *r)
{
  r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
  return r->rng >> 17;
}

/* Payload of attempt id: the id, then bytes derived from it. */
static uint32_t make_payload(uint32_t id, uint8_t *out)
{
  uint32_t len = 8 + (id * 2654435761u) % (PAYLOAD_MAX - 8);
  uint64_t id64 = id;
  memcpy(out, &id64, 8);
  for (uint32_t i = 8; i < len; i++)
    out[i] = (uint8_t)(id * 31 + i * 7);
  return len;
}

static void on_durable(void *ctx, uint64_t seq, int res)
{
  struct attempt *a = ctx;
  cr_assert_eq(a->seq, seq);
  if (res == 0)
    a->acked = true;
}

static void do_append(struct run *r, struct store *st)
{
  static uint8_t payload[PAYLOAD_MAX];
  uint32_t id = r->attempt_count;
  uint32_t len = make_payload(id, payload);
  char subject[16];
  snprintf(subject, sizeof(subject), "t.%u", id % SUBJECTS);
  struct attempt *a = &r->attempts[id];
  uint64_t seq;
  int rc = store_append(st, subject, strlen(subject), NULL, 0, payload, len, 0, on_durable, a, &seq);
  if (rc == 0) {
    a->seq = seq;
    r->deleted[seq] = false;
    r->attempt_count++;
  }
}

static void do_remove(struct run *r, struct store *st, bool purge)
{
  struct store_state s;
  store_state(st, &s);
  if (s.msgs == 0)
    return;
  if (purge) {
    uint64_t upto = s.first_seq + next_rand(r) % 4;
    struct store_purge p = {.up_to_seq = upto};
    if (store_purge(st, &p, NULL) == 0)
      for (uint64_t q = 1; q < upto; q++)
        r->deleted[q] = true;
  } else {
    uint64_t seq = s.first_seq + next_rand(r) % (s.last_seq - s.first_seq + 1);
    if (store_delete(st, seq) == 0)
      r->deleted[seq] = true;
  }
}

/* Runs the workload until ops are done or the backend crashed. */
static void workload(struct run *r, struct store *st, struct io_backend *io, uint32_t ops)
{
  for (uint32_t i = 0; i < ops && !io_fault_crashed(io) && r->attempt_count < WORKLOAD_OPS_MAX; i++) {
    uint64_t x = next_rand(r) % 100;
    if (x < 80)
      do_append(r, st);
    else if (x < 85)
      do_remove(r, st, false);
    else if (x < 88)
      do_remove(r, st, true);
    else {
      store_flush(st);
      io_poll(io, false);
    }
  }
  /* helper_drain, stopping at a crash: the store retries removal records
   * after a failed write, so it stays busy while every write fails. */
  for (int i = 0; i < HELPER_DRAIN_ROUNDS && !io_fault_crashed(io) && store_busy(st); i++) {
    if (store_flush(st) < 0)
      break;
    io_poll(io, false);
  }
}

/* Reopens after the power cut and checks the outcome table. */
static void verify(struct run *r, struct io_backend *io, bool corruption_allowed)
{
  struct store_config c = helper_config("F", STORE_FILE, "/s/F", io);
  struct store *st = NULL;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  if (rc == -EUCLEAN && corruption_allowed) {
    cr_assert(strstr(err.message, ".seg offset") != NULL, "seed %llu: report without place: %s",
              (unsigned long long)r->seed, err.message);
    return;
  }
  cr_assert_eq(rc, 0, "seed %llu crash_at %u: reopen failed: %d %s",
               (unsigned long long)r->seed, r->crash_at, rc, err.message);

  struct store_msg m = {0};
  static uint8_t expect[PAYLOAD_MAX];
  for (uint32_t id = 0; id < r->attempt_count; id++) {
    struct attempt *a = &r->attempts[id];
    if (!a->acked || r->deleted[a->seq])
      continue;
    rc = store_read(st, a->seq, &m);
    cr_assert_eq(rc, 0, "seed %llu crash_at %u: acknowledged seq %llu lost: %d",
                 (unsigned long long)r->seed, r->crash_at, (unsigned long long)a->seq, rc);
  }

  /* Every recovered message is one that was appended with its sequence. */
  struct store_state s;
  store_state(st, &s);
  for (uint64_t seq = s.first_seq; seq <= s.last_seq; seq++) {
    rc = store_read(st, seq, &m);
    if (rc == -ENOENT)
      continue;
    cr_assert_eq(rc, 0, "seed %llu: seq %llu unreadable: %d", (unsigned long long)r->seed,
                 (unsigned long long)seq, rc);
    uint64_t id;
    cr_assert_geq(m.data_len, 8);
    memcpy(&id, m.data, 8);
    cr_assert_lt(id, r->attempt_count + 1, "seed %llu: seq %llu has unknown content",
                 (unsigned long long)r->seed, (unsigned long long)seq);
    uint32_t len = make_payload((uint32_t)id, expect);
    cr_assert_eq(m.data_len, len);
    cr_assert(memcmp(m.data, expect, len) == 0, "seed %llu: seq %llu content differs",
              (unsigned long long)r->seed, (unsigned long long)seq);
    bool same_seq = id < r->attempt_count ? r->attempts[id].seq == seq : true;
    cr_assert(same_seq, "seed %llu: seq %llu holds the content of another sequence",
              (unsigned long long)r->seed, (unsigned long long)seq);
  }

  /* The recovered store takes appends again. */
  uint64_t seq;
  cr_assert_eq(store_append(st, "after", 5, NULL, 0, "x", 1, 0, NULL, NULL, &seq), 0);
  cr_assert_eq(seq, s.last_seq + 1);
  cr_assert_eq(helper_drain(st, io), 0);
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
}

/* One run: workload under faults, power cut, optional bit flips, reopen. */
static void one_run(uint64_t seed, const struct io_fault_config *faults, uint32_t ops,
                    unsigned flips, bool corruption_allowed)
{
  static struct run r;
  memset(&r, 0, sizeof(r));
  r.seed = seed;
  if (getenv("STORE_TRACE")) fprintf(stderr, "run seed %llu crash_at %u\n", (unsigned long long)seed, faults->crash_at_step);
  r.rng = seed * 0x9e3779b97f4a7c15ull + 1;
  r.crash_at = faults->crash_at_step;

  struct io_fault_config fc = *faults;
  fc.seed = seed;
  struct io_backend *io = io_fault_create(&fc);
  struct store_config c = helper_config("F", STORE_FILE, "/s/F", io);
  c.sync = (seed % 4 == 3) ? STORE_SYNC_RELAXED : STORE_SYNC_ALWAYS;
  if (c.sync == STORE_SYNC_RELAXED)
    c.sync_bytes_max = 24 * 1024;
  struct store *st = NULL;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  if (rc == 0) {
    workload(&r, st, io, ops);
    /* After a crash every queued request fails; bounded by the queue. */
    for (int i = 0; i < 64 && io_inflight(io) > 0; i++)
      io_poll(io, false);
    cr_assert_eq(store_close(st), 0, "seed %llu: close", (unsigned long long)seed);
  } else {
    cr_assert(faults->crash_at_step != 0 || faults->enospc_ppm != 0,
              "seed %llu: open of a new store failed: %s", (unsigned long long)seed, err.message);
  }

  io_fault_crash(io);
  if (flips > 0)
    io_fault_flip_bits(io, ".seg", flips);
  io_fault_restart(io);

  /* Relaxed acknowledgements are not durable: only check what a sync covered. */
  if (c.sync == STORE_SYNC_RELAXED)
    for (uint32_t i = 0; i < r.attempt_count; i++)
      r.attempts[i].acked = false;
  verify(&r, io, corruption_allowed);
  io_destroy(io);
}

/* A process crash, a restart, then a power cut. The kill leaves writes
 * that were never synced in the files, and recovery reads them back. So
 * the restarted store must sync them before it appends after them.
 * Otherwise the power cut can lose them while newer records survive
 * beyond the torn window, and the reopen reports corruption (R8 in
 * storage/record.c). Messages acknowledged under the default policy,
 * before the kill or after the restart, must all survive. */
static void kill_then_power_cut(uint64_t seed, uint32_t kill_at, uint32_t cut_after)
{
  static struct run r;
  memset(&r, 0, sizeof(r));
  r.seed = seed;
  r.rng = seed * 0x9e3779b97f4a7c15ull + 1;
  r.crash_at = kill_at;

  struct io_backend *io = io_fault_create(&(struct io_fault_config){.seed = seed,
                                                                    .crash_at_step = kill_at});
  struct store_config c = helper_config("F", STORE_FILE, "/s/F", io);
  c.sync = (seed % 4 == 3) ? STORE_SYNC_RELAXED : STORE_SYNC_ALWAYS;
  if (c.sync == STORE_SYNC_RELAXED)
    c.sync_bytes_max = 24 * 1024;
  struct store *st = NULL;
  if (store_open(&c, &st, NULL) == 0) {
    workload(&r, st, io, 200);
    for (int i = 0; i < 64 && io_inflight(io) > 0; i++)
      io_poll(io, false);
    cr_assert_eq(store_close(st), 0, "seed %llu: close", (unsigned long long)seed);
  }

  /* The kill: no io_fault_crash(), so unsynced writes stay readable. */
  io_fault_restart(io);
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "seed %llu kill_at %u: reopen after the kill failed: %d %s",
               (unsigned long long)seed, kill_at, rc, err.message);
  io_fault_set_crash_step(io, io_fault_steps(io) + cut_after);
  workload(&r, st, io, 100);
  for (int i = 0; i < 64 && io_inflight(io) > 0; i++)
    io_poll(io, false);
  cr_assert_eq(store_close(st), 0, "seed %llu: close", (unsigned long long)seed);

  io_fault_crash(io);
  io_fault_restart(io);
  if (c.sync == STORE_SYNC_RELAXED)
    for (uint32_t i = 0; i < r.attempt_count; i++)
      r.attempts[i].acked = false;
  r.crash_at = cut_after;
  verify(&r, io, false);
  io_destroy(io);
}

Test(store_fault, kill_then_power_cut, .init = quiet_logs, .timeout = 60)
{
  for (uint64_t seed = 1; seed <= 2000; seed++)
    kill_then_power_cut(seed, 1 + (uint32_t)(seed * 7919 % 250), 1 + (uint32_t)(seed * 104729 % 40));
}

/* Counts the I/O steps of a clean run of seed, then crashes at each. */
static void crash_every_step(uint64_t seed, uint32_t ops)
{
  struct io_backend *probe = io_fault_create(&(struct io_fault_config){.seed = seed});
  struct store_config c = helper_config("F", STORE_FILE, "/s/F", probe);
  c.sync = (seed % 4 == 3) ? STORE_SYNC_RELAXED : STORE_SYNC_ALWAYS;
  if (c.sync == STORE_SYNC_RELAXED)
    c.sync_bytes_max = 24 * 1024;
  struct store *st;
  cr_assert_eq(store_open(&c, &st, NULL), 0);
  static struct run r;
  memset(&r, 0, sizeof(r));
  r.rng = seed * 0x9e3779b97f4a7c15ull + 1;
  workload(&r, st, probe, ops);
  store_close(st);
  uint32_t steps = io_fault_steps(probe);
  io_destroy(probe);
  cr_assert_gt(steps, 20);

  for (uint32_t k = 1; k <= steps + 1; k++) {
    struct io_fault_config fc = {.crash_at_step = k};
    one_run(seed, &fc, ops, 0, false);
  }
}

Test(store_fault, crash_at_every_step, .init = quiet_logs, .timeout = 60)
{
  /* Seeds 3 mod 4 run the relaxed policy, the others the default one. */
  for (uint64_t seed = 8; seed <= 15; seed++)
    crash_every_step(seed, 150);
}

Test(store_fault, crash_random_seeds, .init = quiet_logs, .timeout = 60)
{
  for (uint64_t seed = 1; seed <= 2000; seed++) {
    struct io_fault_config fc = {.crash_at_step = 1 + (uint32_t)(seed * 7919 % 300)};
    one_run(seed, &fc, 300, 0, false);
  }
}

Test(store_fault, enospc_and_eio, .init = quiet_logs, .timeout = 60)
{
  for (uint64_t seed = 1; seed <= 300; seed++) {
    struct io_fault_config fc = {
      .enospc_ppm = 30000, .eio_ppm = 30000,
      .crash_at_step = seed % 3 == 0 ? 0 : 1 + (uint32_t)(seed * 104729 % 400),
    };
    one_run(seed, &fc, 300, 0, false);
  }
}

Test(store_fault, misdirected_writes, .init = quiet_logs, .timeout = 60)
{
  for (uint64_t seed = 1; seed <= 300; seed++) {
    struct io_fault_config fc = {.misdirect_ppm = 20000, .crash_at_step = 0};
    one_run(seed, &fc, 300, 0, true);
  }
}

Test(store_fault, bit_flips, .init = quiet_logs, .timeout = 60)
{
  for (uint64_t seed = 1; seed <= 300; seed++) {
    struct io_fault_config fc = {.crash_at_step = seed % 2 ? 0 : 1 + (uint32_t)(seed * 31 % 300)};
    one_run(seed, &fc, 300, 1 + seed % 3, true);
  }
}

Test(store_fault, sector_dio_align, .init = quiet_logs, .timeout = 60)
{
  for (uint64_t seed = 1; seed <= 200; seed++) {
    struct io_fault_config fc = {.dio_align = 512, .crash_at_step = 1 + (uint32_t)(seed * 13 % 300),
                                 .eio_ppm = 10000};
    one_run(seed, &fc, 300, 0, false);
  }
}
