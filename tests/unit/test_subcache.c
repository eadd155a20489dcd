/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/subcache.c. The file is included so that one test can
 * forge an entry whose hash matches another subject.
 *
 * subcache_match() calls sublist_match() on a miss, and the tests change the
 * sublist, so the test thread is registered with liburcu QSBR and online,
 * as every shard thread is. */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/subcache.c"

static void register_thread(void)
{
  urcu_qsbr_register_thread();
}

static void unregister_thread(void)
{
  urcu_qsbr_thread_offline();
  urcu_qsbr_barrier(); /* runs pending frees, for the leak checker */
  urcu_qsbr_thread_online();
  urcu_qsbr_unregister_thread();
}

TestSuite(subcache, .init = register_thread, .fini = unregister_thread, .timeout = 60);

static struct sub *sub_new(const char *subject, const char *queue)
{
  struct sub *s = calloc(1, sizeof(*s));
  cr_assert_not_null(s);
  s->subject = strdup(subject);
  s->subject_len = (uint32_t)strlen(subject);
  if (queue != NULL) {
    s->queue = strdup(queue);
    s->queue_len = (uint32_t)strlen(queue);
  }
  return s;
}

static void on_sub_free(struct rcu_head *head)
{
  struct sub *s = caa_container_of(head, struct sub, rcu);
  free(s->subject);
  free(s->queue);
  free(s);
}

static struct sub *insert_new(struct sublist *sl, const char *subject, const char *queue)
{
  struct sub *s = sub_new(subject, queue);
  cr_assert_eq(sublist_insert(sl, s), 0, "insert \"%s\"", subject);
  return s;
}

static void remove_sub(struct sublist *sl, struct sub *s)
{
  cr_assert_eq(sublist_remove(sl, s), 0, "remove \"%s\"", s->subject);
  urcu_qsbr_call_rcu(&s->rcu, on_sub_free);
}

static const struct sublist_result *cached(struct subcache *c, const char *subject)
{
  const struct sublist_result *r = subcache_match(c, subject, strlen(subject));
  cr_assert_not_null(r, "match \"%s\"", subject);
  return r;
}

static bool result_has_plain(const struct sublist_result *r, const struct sub *s)
{
  for (uint32_t i = 0; i < r->plain_count; i++) {
    if (r->plain[i] == s)
      return true;
  }
  return false;
}

Test(subcache, hit_after_miss)
{
  struct sublist *sl = sublist_create();
  struct sub *a = insert_new(sl, "robot.1.status", NULL);
  struct sub *b = insert_new(sl, "robot.*.status", "collectors");
  struct subcache *c = subcache_create(sl, 64);
  cr_assert_not_null(c);
  cr_expect_eq(subcache_hits(c), 0);
  cr_expect_eq(subcache_misses(c), 0);

  const struct sublist_result *first = cached(c, "robot.1.status");
  cr_expect_eq(subcache_misses(c), 1);
  cr_expect_eq(subcache_hits(c), 0);
  cr_expect_eq(first->plain_count, 1);
  cr_expect(result_has_plain(first, a));
  cr_assert_eq(first->group_count, 1);
  cr_expect_eq(first->groups[0].member_count, 1);
  cr_expect_eq(first->groups[0].members[0], b);

  const struct sublist_result *second = cached(c, "robot.1.status");
  cr_expect_eq(second, first, "a hit returns the cached result");
  cr_expect_eq(subcache_hits(c), 1);
  cr_expect_eq(subcache_misses(c), 1);

  /* Another subject is a miss, then a hit; the first stays cached. */
  const struct sublist_result *other = cached(c, "robot.2.status");
  cr_expect_eq(other->plain_count, 0);
  cr_expect_eq(other->group_count, 1);
  cached(c, "robot.2.status");
  cached(c, "robot.1.status");
  cr_expect_eq(subcache_misses(c), 2);
  cr_expect_eq(subcache_hits(c), 3);

  /* No interest is cached too. */
  cached(c, "nobody.listens");
  const struct sublist_result *none = cached(c, "nobody.listens");
  cr_expect_eq(none->plain_count + none->group_count, 0);
  cr_expect_eq(subcache_misses(c), 3);
  cr_expect_eq(subcache_hits(c), 4);

  subcache_destroy(c);
  remove_sub(sl, a);
  remove_sub(sl, b);
  sublist_destroy(sl);
}

Test(subcache, insert_invalidates)
{
  struct sublist *sl = sublist_create();
  struct sub *a = insert_new(sl, "foo.bar", NULL);
  struct subcache *c = subcache_create(sl, 16);
  cached(c, "foo.bar");
  cached(c, "other");
  cr_expect_eq(subcache_misses(c), 2);

  struct sub *b = insert_new(sl, "foo.*", NULL);
  const struct sublist_result *r = cached(c, "foo.bar");
  cr_expect_eq(subcache_misses(c), 3, "a change drops the cached result");
  cr_expect_eq(r->plain_count, 2);
  cr_expect(result_has_plain(r, a));
  cr_expect(result_has_plain(r, b));

  /* Every entry is dropped, not only those the change touches. */
  cached(c, "other");
  cr_expect_eq(subcache_misses(c), 4);
  cached(c, "other");
  cached(c, "foo.bar");
  cr_expect_eq(subcache_hits(c), 2);
  cr_expect_eq(subcache_misses(c), 4);

  subcache_destroy(c);
  remove_sub(sl, a);
  remove_sub(sl, b);
  sublist_destroy(sl);
}

Test(subcache, remove_invalidates)
{
  struct sublist *sl = sublist_create();
  struct sub *a = insert_new(sl, "foo.bar", NULL);
  struct sub *b = insert_new(sl, "foo.>", "q");
  struct subcache *c = subcache_create(sl, 16);
  const struct sublist_result *r = cached(c, "foo.bar");
  cr_expect_eq(r->plain_count, 1);
  cr_expect_eq(r->group_count, 1);

  remove_sub(sl, b);
  r = cached(c, "foo.bar");
  cr_expect_eq(subcache_misses(c), 2);
  cr_expect_eq(r->plain_count, 1);
  cr_expect_eq(r->group_count, 0);

  remove_sub(sl, a);
  r = cached(c, "foo.bar");
  cr_expect_eq(subcache_misses(c), 3);
  cr_expect_eq(r->plain_count, 0);
  cached(c, "foo.bar");
  cr_expect_eq(subcache_hits(c), 1);

  subcache_destroy(c);
  sublist_destroy(sl);
}

Test(subcache, failed_change_keeps_entries)
{
  struct sublist *sl = sublist_create();
  struct sub *a = insert_new(sl, "foo", NULL);
  struct subcache *c = subcache_create(sl, 16);
  cached(c, "foo");

  /* Rejected changes do not move the generation. */
  cr_expect_eq(sublist_insert(sl, a), -EEXIST);
  struct sub *bad = sub_new("foo..bar", NULL);
  cr_expect_eq(sublist_insert(sl, bad), -EINVAL);
  cr_expect_eq(sublist_remove(sl, bad), -ENOENT);
  cached(c, "foo");
  cr_expect_eq(subcache_hits(c), 1);
  cr_expect_eq(subcache_misses(c), 1);

  urcu_qsbr_call_rcu(&bad->rcu, on_sub_free);
  subcache_destroy(c);
  remove_sub(sl, a);
  sublist_destroy(sl);
}

Test(subcache, hash_hit_checks_subject)
{
  /* Forge an entry for "foo" that carries the hash of "bar", in the set
   * "bar" maps to: a lookup of "bar" must compare the bytes and miss. */
  struct sublist *sl = sublist_create();
  struct sub *foo = insert_new(sl, "foo", NULL);
  struct sub *bar = insert_new(sl, "bar", NULL);
  struct subcache *c = subcache_create(sl, 16);

  uint64_t bar_hash = XXH3_64bits("bar", 3);
  uint32_t set = (uint32_t)bar_hash & c->set_mask;
  for (uint32_t w = 0; w < SUBCACHE_WAYS; w++) {
    struct subcache_entry *e = &c->entries[set * SUBCACHE_WAYS + w];
    entry_clear(e);
    cr_assert(entry_set_subject(e, "foo", 3));
    e->hash = bar_hash;
    e->generation = sublist_generation(sl);
    e->result = sublist_match(sl, "foo", 3);
    cr_assert_not_null(e->result);
  }

  const struct sublist_result *r = cached(c, "bar");
  cr_expect_eq(subcache_misses(c), 1);
  cr_expect_eq(subcache_hits(c), 0);
  cr_assert_eq(r->plain_count, 1);
  cr_expect_eq(r->plain[0], bar);

  subcache_destroy(c);
  remove_sub(sl, foo);
  remove_sub(sl, bar);
  sublist_destroy(sl);
}

Test(subcache, long_subjects)
{
  /* Subjects longer than the inline copy are kept on the heap and still
   * compared byte for byte. */
  static const char *const subjects[] = {
      "$JS.API.CONSUMER.MSG.NEXT.ORDERS.dispatcher-0001",
      "$JS.API.CONSUMER.MSG.NEXT.ORDERS.dispatcher-0002",
      "exactly.thirty-two.bytes.long.ab", /* the largest inline subject */
      "exactly.thirty-three.bytes.long.a",
  };
  cr_assert_eq(strlen(subjects[2]), SUBCACHE_INLINE_SUBJECT);
  cr_assert_eq(strlen(subjects[3]), SUBCACHE_INLINE_SUBJECT + 1);

  struct sublist *sl = sublist_create();
  struct sub *all = insert_new(sl, ">", NULL);
  struct subcache *c = subcache_create(sl, 64);
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
      const struct sublist_result *r = cached(c, subjects[i]);
      cr_expect_eq(r->plain_count, 1);
    }
  }
  cr_expect_eq(subcache_misses(c), 4);
  cr_expect_eq(subcache_hits(c), 8);

  subcache_destroy(c);
  remove_sub(sl, all);
  sublist_destroy(sl);
}

Test(subcache, eviction_within_set)
{
  /* Capacity 4 is one set of four ways, so every subject shares it. The way
   * not used since the others were is the one refilled. */
  struct sublist *sl = sublist_create();
  struct sub *all = insert_new(sl, ">", NULL);
  struct subcache *c = subcache_create(sl, 4);
  cr_assert_eq(c->set_mask, 0);

  cached(c, "a");
  cached(c, "b");
  cached(c, "c");
  cached(c, "d");
  cr_expect_eq(subcache_misses(c), 4);
  cached(c, "b");
  cached(c, "c");
  cr_expect_eq(subcache_hits(c), 2);

  cached(c, "e"); /* a is the one not used since d: it goes */
  cr_expect_eq(subcache_misses(c), 5);
  static const char *const kept[] = {"b", "c", "d", "e"};
  for (size_t i = 0; i < 4; i++)
    cached(c, kept[i]);
  cr_expect_eq(subcache_hits(c), 6, "b, c, d and e stay cached");
  cached(c, "a");
  cr_expect_eq(subcache_misses(c), 6, "a was evicted");

  subcache_destroy(c);
  remove_sub(sl, all);
  sublist_destroy(sl);
}

Test(subcache, many_subjects_bounded)
{
  /* More subjects than entries: the cache keeps returning exact results,
   * and every call is counted once as a hit or a miss. */
  enum { SUBJECTS = 1000, ROUNDS = 3, CAPACITY = 256 };
  struct sublist *sl = sublist_create();
  struct sub *wild = insert_new(sl, "robot.*.status", NULL);
  struct subcache *c = subcache_create(sl, CAPACITY);
  char subject[48];
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < SUBJECTS; i++) {
      snprintf(subject, sizeof(subject), "robot.%d.%s", i, i % 2 ? "status" : "cmd");
      const struct sublist_result *r = cached(c, subject);
      cr_assert_eq(r->plain_count, (uint32_t)(i % 2), "%s", subject);
    }
  }
  cr_expect_eq(subcache_hits(c) + subcache_misses(c), SUBJECTS * ROUNDS);
  cr_expect_geq(subcache_misses(c), SUBJECTS);
  cr_expect_eq((c->set_mask + 1) * SUBCACHE_WAYS, CAPACITY);

  subcache_destroy(c);
  remove_sub(sl, wild);
  sublist_destroy(sl);
}

Test(subcache, capacity_rounding)
{
  struct sublist *sl = sublist_create();
  static const struct {
    uint32_t requested;
    uint32_t entries;
  } cases[] = {{0, 4}, {1, 4}, {4, 4}, {5, 8}, {1000, 1024}, {1024, 1024}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct subcache *c = subcache_create(sl, cases[i].requested);
    cr_assert_not_null(c);
    cr_expect_eq((c->set_mask + 1) * SUBCACHE_WAYS, cases[i].entries,
                 "capacity %u", cases[i].requested);
    subcache_destroy(c);
  }
  cr_expect_null(subcache_create(sl, SUBCACHE_CAPACITY_MAX + 1));
  sublist_destroy(sl);
}

static uint32_t stat_fanout(const struct subcache_stat *stats, uint32_t count,
                            const char *subject)
{
  uint64_t hash = XXH3_64bits(subject, strlen(subject));
  for (uint32_t i = 0; i < count; i++) {
    if (stats[i].hash == hash)
      return stats[i].fanout;
  }
  cr_assert(false, "\"%s\" is not among the current results", subject);
  return 0;
}

Test(subcache, stats_count_current_results)
{
  /* Fan-out counts plain subscriptions plus queue groups, each group once
   * however many members it has. */
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, "fleet.a", NULL),
      insert_new(sl, "fleet.*", NULL),
      insert_new(sl, "fleet.a", "workers"),
      insert_new(sl, "fleet.>", "workers"),
      insert_new(sl, "fleet.a", "loggers"),
  };
  struct subcache *c = subcache_create(sl, 16);
  cr_expect_eq(subcache_capacity(c), 16);
  struct subcache_stat stats[16];
  cr_expect_eq(subcache_stats(c, stats, 16), 0, "an empty cache has no results");

  cached(c, "fleet.a");
  cached(c, "fleet.b");
  cached(c, "nobody");
  cached(c, "fleet.a");
  uint32_t count = subcache_stats(c, stats, 16);
  cr_assert_eq(count, 3, "one result per subject");
  cr_expect_eq(stat_fanout(stats, count, "fleet.a"), 4);
  cr_expect_eq(stat_fanout(stats, count, "fleet.b"), 2);
  cr_expect_eq(stat_fanout(stats, count, "nobody"), 0);
  cr_expect_eq(subcache_stats(c, stats, 2), 2, "out_cap bounds the copy");

  /* A change leaves every cached result stale. */
  struct sub *late = insert_new(sl, "late", NULL);
  cr_expect_eq(subcache_stats(c, stats, 16), 0);
  cached(c, "fleet.b");
  cr_expect_eq(subcache_stats(c, stats, 16), 1);

  subcache_destroy(c);
  for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
    remove_sub(sl, subs[i]);
  remove_sub(sl, late);
  sublist_destroy(sl);
}
