/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of store_count_from on a memory store. Every start sequence and a
 * set of literal, wildcard and catch-all filters are checked against a
 * count made by reading the messages one by one, after appends, interior
 * deletes, a head purge and a subject purge. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "storage/store_count.h"
#include "tests/unit/store/store_helpers.h"

static struct store *open_memory(void)
{
  struct store_config c = helper_config("COUNT", STORE_MEMORY, NULL, NULL);
  struct store *st = NULL;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "store_open: %d %s", rc, err.message);
  return st;
}

static void put(struct store *st, const char *subject)
{
  uint64_t seq = 0;
  int rc = store_append(st, subject, strlen(subject), NULL, 0, "x", 1, 0, NULL, NULL, &seq);
  cr_assert_eq(rc, 0, "append %s: %d", subject, rc);
}

/* The count store_count_from must return, by reading every message. */
static uint64_t count_by_reading(struct store *st, uint64_t start, const char *filter)
{
  uint64_t n = 0;
  struct store_msg m = {0};
  size_t len = filter != NULL ? strlen(filter) : 0;
  for (uint64_t seq = start; store_read_next(st, seq, filter, len, &m) == 0; seq = m.seq + 1)
    n++;
  store_msg_free(&m);
  return n;
}

static const char *const filters[] = {
    NULL, ">", "a.1", "a.2", "b.7", "none", "a.*", "b.*", "*.3", "a.>", "c.x.>", "*.*.y",
};

static void check_all(struct store *st, const char *stage)
{
  struct store_state s;
  store_state(st, &s);
  for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
    const char *filter = filters[f];
    size_t len = filter != NULL ? strlen(filter) : 0;
    for (uint64_t start = 0; start <= s.last_seq + 2; start++) {
      uint64_t want = count_by_reading(st, start, filter);
      uint64_t got = store_count_from(st, start, filter, len);
      cr_assert_eq(got, want, "%s: filter %s from %llu: counted %llu, read %llu", stage,
                   filter != NULL ? filter : "(none)", (unsigned long long)start,
                   (unsigned long long)got, (unsigned long long)want);
    }
  }
}

/* Subjects a.0..a.4 and b.0..b.9 (more subjects than some ranges, so both
 * wildcard paths run) and c.x.y, in a fixed pseudo-random order. */
static void fill(struct store *st, int count)
{
  uint64_t rng = 11;
  for (int i = 0; i < count; i++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    unsigned pick = (unsigned)(rng >> 33) % 16;
    char subject[16];
    if (pick < 5)
      snprintf(subject, sizeof(subject), "a.%u", pick);
    else if (pick < 15)
      snprintf(subject, sizeof(subject), "b.%u", pick - 5);
    else
      snprintf(subject, sizeof(subject), "c.x.y");
    put(st, subject);
  }
}

Test(store_count, matches_reads_after_changes)
{
  struct store *st = open_memory();
  check_all(st, "empty");
  fill(st, 300);
  check_all(st, "appended");

  for (uint64_t seq = 5; seq <= 300; seq += 7)
    cr_assert_eq(store_delete(st, seq), 0);
  check_all(st, "interior deletes");

  struct store_purge head = {.up_to_seq = 40};
  cr_assert_eq(store_purge(st, &head, NULL), 0);
  check_all(st, "head purge");

  struct store_purge subject = {.filter = "b.3", .filter_len = 3};
  cr_assert_eq(store_purge(st, &subject, NULL), 0);
  check_all(st, "subject purge");
  store_close(st);
}

Test(store_count, literal_subject_spans_start)
{
  struct store *st = open_memory();
  for (int i = 0; i < 1000; i++)
    put(st, i % 4 == 0 ? "t.rare" : "t.common");
  cr_assert_eq(store_count_from(st, 1, "t.common", 8), 750);
  cr_assert_eq(store_count_from(st, 2, "t.common", 8), 750);
  cr_assert_eq(store_count_from(st, 3, "t.common", 8), 749);
  cr_assert_eq(store_count_from(st, 998, "t.common", 8), 3);
  cr_assert_eq(store_count_from(st, 997, "t.rare", 6), 1);
  cr_assert_eq(store_count_from(st, 998, "t.rare", 6), 0);
  cr_assert_eq(store_count_from(st, 1001, "t.common", 8), 0);
  store_close(st);
}
