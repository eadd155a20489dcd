/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the store unit tests (tests/unit/test_store_*.c): a
 * settable clock, a durability callback recorder, and a loop that runs
 * group commits until the store is idle. */
#ifndef SHOAL_TEST_STORE_HELPERS_H
#define SHOAL_TEST_STORE_HELPERS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store.h"

/* Most flush and poll rounds helper_drain runs before giving up. */
#define HELPER_DRAIN_ROUNDS 100000

static int64_t helper_clock_value = 1700000000000000000ll;

static inline int64_t helper_clock(void *ctx)
{
  (void)ctx;
  return helper_clock_value;
}

/* Durability results by sequence: 0 unknown, 1 durable, -errno failed. */
struct helper_acks {
  int *res;
  uint64_t cap;
  uint64_t durable;
  uint64_t failed;
};

static inline void helper_on_durable(void *ctx, uint64_t seq, int res)
{
  struct helper_acks *a = ctx;
  if (seq >= a->cap) {
    uint64_t cap = a->cap ? a->cap : 1024;
    while (cap <= seq)
      cap *= 2;
    a->res = realloc(a->res, cap * sizeof(*a->res));
    memset(a->res + a->cap, 0, (cap - a->cap) * sizeof(*a->res));
    a->cap = cap;
  }
  a->res[seq] = res == 0 ? 1 : res;
  if (res == 0)
    a->durable++;
  else
    a->failed++;
}

/* Runs flush and poll until the store has nothing in flight or waiting.
 * Returns the store's flush result of the last round. */
static inline int helper_drain(struct store *st, struct io_backend *io)
{
  int rc = 0;
  for (int i = 0; i < HELPER_DRAIN_ROUNDS && store_busy(st); i++) {
    rc = store_flush(st);
    if (io != NULL) {
      io_flush(io);
      io_poll(io, io_inflight(io) > 0);
    }
    if (rc < 0)
      break;
  }
  return rc;
}

static inline struct store_config helper_config(const char *name, enum store_kind kind,
                                                const char *dir, struct io_backend *io)
{
  struct store_config c;
  memset(&c, 0, sizeof(c));
  c.name = name;
  c.kind = kind;
  c.dir = dir;
  c.io = io;
  c.segment_size = 64 * 1024;
  c.group_bytes_max = 16 * 1024;
  c.clock_ns = helper_clock;
  return c;
}

#endif
