/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of core/sublist.c. The file is included so that the tests can
 * read the node count and check that emptied nodes are pruned.
 *
 * Every thread that calls sublist_match(), sublist_insert() or
 * sublist_remove() must be registered with urcu_qsbr_register_thread() and
 * online: match reads under QSBR, and insert and remove free replaced nodes
 * with call_rcu(), which liburcu requires of a registered, online thread.
 * Each test registers its main thread in the fixture; the concurrency test
 * registers its own threads. A registered thread that blocks (pthread_join,
 * rcu_barrier) goes offline first, or it would hold up every grace period.
 *
 * Results are compared with the expected sets computed by brute force with
 * subject_matches() over every subscription in the index. */

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sublist.c"

static void register_thread(void)
{
  urcu_qsbr_register_thread();
}

/* Runs every pending call_rcu() callback, so the sanitizer build reports no
 * leak, then unregisters. */
static void unregister_thread(void)
{
  urcu_qsbr_thread_offline();
  urcu_qsbr_barrier();
  urcu_qsbr_thread_online();
  urcu_qsbr_unregister_thread();
}

TestSuite(sublist, .init = register_thread, .fini = unregister_thread, .timeout = 120);

/* ---- Helpers ---- */

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

static void sub_free(struct sub *s)
{
  free(s->subject);
  free(s->queue);
  free(s);
}

static void on_sub_free(struct rcu_head *head)
{
  sub_free(caa_container_of(head, struct sub, rcu));
}

static struct sub *insert_new(struct sublist *sl, const char *subject,
                              const char *queue)
{
  struct sub *s = sub_new(subject, queue);
  int rc = sublist_insert(sl, s);
  cr_assert_eq(rc, 0, "insert \"%s\" queue \"%s\" returned %d", subject,
               queue ? queue : "", rc);
  return s;
}

static bool same_queue(const struct sub *s, const char *queue, uint32_t len)
{
  return s->queue != NULL && s->queue_len == len && memcmp(s->queue, queue, len) == 0;
}

/* Checks that r contains exactly the subscriptions among subs[0, count) whose
 * subject matches subject: each plain one once among the plain results, and
 * each queue one once, in the one group named after its queue. */
static void check_result(const struct sublist_result *r, const char *subject,
                         struct sub *const *subs, size_t count)
{
  cr_assert_not_null(r);
  size_t len = strlen(subject);
  uint32_t expected_plain = 0, expected_members = 0;
  for (size_t i = 0; i < count; i++) {
    if (subs[i] == NULL ||
        !subject_matches(subs[i]->subject, subs[i]->subject_len, subject, len))
      continue;
    if (subs[i]->queue == NULL) {
      expected_plain++;
      uint32_t seen = 0;
      for (uint32_t p = 0; p < r->plain_count; p++)
        seen += r->plain[p] == subs[i];
      cr_assert_eq(seen, 1, "\"%s\": plain sub \"%s\" seen %u times", subject,
                   subs[i]->subject, seen);
      continue;
    }
    expected_members++;
    uint32_t seen = 0;
    for (uint32_t g = 0; g < r->group_count; g++) {
      const struct sublist_qgroup *grp = &r->groups[g];
      for (uint32_t m = 0; m < grp->member_count; m++) {
        if (grp->members[m] != subs[i])
          continue;
        seen++;
        cr_assert(same_queue(subs[i], grp->queue, grp->queue_len),
                  "\"%s\": member of queue \"%s\" in another group", subject,
                  subs[i]->queue);
      }
    }
    cr_assert_eq(seen, 1, "\"%s\": queue sub \"%s\" seen %u times", subject,
                 subs[i]->subject, seen);
  }
  cr_assert_eq(r->plain_count, expected_plain, "\"%s\": plain count", subject);

  /* No extra members, no empty or duplicate groups. */
  uint32_t members = 0;
  for (uint32_t g = 0; g < r->group_count; g++) {
    cr_assert_gt(r->groups[g].member_count, 0);
    members += r->groups[g].member_count;
    for (uint32_t h = g + 1; h < r->group_count; h++) {
      cr_assert_not(r->groups[g].queue_len == r->groups[h].queue_len &&
                        memcmp(r->groups[g].queue, r->groups[h].queue,
                               r->groups[g].queue_len) == 0,
                    "\"%s\": queue \"%.*s\" split in two groups", subject,
                    (int)r->groups[g].queue_len, r->groups[g].queue);
    }
  }
  cr_assert_eq(members, expected_members, "\"%s\": member count", subject);
}

static void check_match(struct sublist *sl, const char *subject,
                        struct sub *const *subs, size_t count)
{
  struct sublist_result *r = sublist_match(sl, subject, strlen(subject));
  check_result(r, subject, subs, count);
  free(r);
}

static uint32_t match_total(struct sublist *sl, const char *subject)
{
  struct sublist_result *r = sublist_match(sl, subject, strlen(subject));
  cr_assert_not_null(r);
  uint32_t total = r->plain_count;
  for (uint32_t g = 0; g < r->group_count; g++)
    total += r->groups[g].member_count;
  free(r);
  return total;
}

/* Removes every sub and frees it after a grace period. */
static void remove_all(struct sublist *sl, struct sub **subs, size_t count)
{
  for (size_t i = 0; i < count; i++) {
    if (subs[i] == NULL)
      continue;
    cr_assert_eq(sublist_remove(sl, subs[i]), 0, "remove \"%s\"", subs[i]->subject);
    urcu_qsbr_call_rcu(&subs[i]->rcu, on_sub_free);
    subs[i] = NULL;
  }
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Tests ---- */

Test(sublist, literal_matches)
{
  struct sublist *sl = sublist_create();
  cr_assert_not_null(sl);
  struct sub *subs[] = {
      insert_new(sl, "foo", NULL),
      insert_new(sl, "foo.bar", NULL),
      insert_new(sl, "foo.bar", NULL),
      insert_new(sl, "foo.baz", NULL),
      insert_new(sl, "foo.bar.baz", NULL),
  };
  cr_expect_eq(sublist_count(sl), 5);

  static const char *const subjects[] = {"foo", "foo.bar", "foo.baz",
                                         "foo.bar.baz", "bar", "foo.ba", "foo.barr"};
  for (size_t i = 0; i < COUNT(subjects); i++)
    check_match(sl, subjects[i], subs, COUNT(subs));
  cr_expect_eq(match_total(sl, "foo.bar"), 2);
  cr_expect_eq(match_total(sl, "bar"), 0);

  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, star_wildcard)
{
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, "*", NULL),
      insert_new(sl, "foo.*", NULL),
      insert_new(sl, "*.bar", NULL),
      insert_new(sl, "*.*", NULL),
      insert_new(sl, "foo.*.baz", NULL),
      insert_new(sl, "*.*.*", NULL),
  };
  static const char *const subjects[] = {"foo", "foo.bar", "x.bar", "foo.x",
                                         "foo.bar.baz", "foo.x.baz", "a.b.c",
                                         "a.b.c.d", "foo.*", "*"};
  for (size_t i = 0; i < COUNT(subjects); i++)
    check_match(sl, subjects[i], subs, COUNT(subs));
  cr_expect_eq(match_total(sl, "foo.bar"), 3); /* foo.*, *.bar, *.* */
  cr_expect_eq(match_total(sl, "foo"), 1);

  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, gt_wildcard)
{
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, ">", NULL),
      insert_new(sl, "foo.>", NULL),
      insert_new(sl, "foo.bar.>", NULL),
      insert_new(sl, "*.>", NULL),
  };
  static const char *const subjects[] = {"foo", "foo.bar", "foo.bar.baz",
                                         "bar.x", "foo.bar.baz.qux"};
  for (size_t i = 0; i < COUNT(subjects); i++)
    check_match(sl, subjects[i], subs, COUNT(subs));
  cr_expect_eq(match_total(sl, "foo"), 1);         /* > */
  cr_expect_eq(match_total(sl, "foo.bar"), 3);     /* >, foo.>, *.> */
  cr_expect_eq(match_total(sl, "foo.bar.baz"), 4); /* all */

  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, mixed_wildcards)
{
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, "robot.7.status", NULL),
      insert_new(sl, "robot.*.status", NULL),
      insert_new(sl, "robot.>", NULL),
      insert_new(sl, "*.7.>", NULL),
      insert_new(sl, "robot.*.*", NULL),
      insert_new(sl, "*.*.status.>", NULL),
      insert_new(sl, "robot.7", NULL),
  };
  static const char *const subjects[] = {
      "robot.7.status", "robot.8.status", "robot.7", "robot.7.status.x",
      "robot.7.cmd",    "fleet.7.cmd",    "robot",   "robot.7.status.x.y"};
  for (size_t i = 0; i < COUNT(subjects); i++)
    check_match(sl, subjects[i], subs, COUNT(subs));
  cr_expect_eq(match_total(sl, "robot.7.status"), 5);

  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, wildcard_tokens_in_subject)
{
  /* A published "foo.*" is not a wildcard: only patterns whose '*' or '>'
   * covers that token match it, as in nats-server. */
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, "foo.bar", NULL),
      insert_new(sl, "foo.*", NULL),
      insert_new(sl, "foo.>", NULL),
  };
  check_match(sl, "foo.*", subs, COUNT(subs));
  cr_expect_eq(match_total(sl, "foo.*"), 2);
  cr_expect_eq(match_total(sl, "foo.>"), 2);
  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, empty_tokens_match_nothing)
{
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, ">", NULL),
      insert_new(sl, "foo.*", NULL),
  };
  static const char *const subjects[] = {"", ".", "foo.", ".foo", "foo..bar"};
  for (size_t i = 0; i < COUNT(subjects); i++) {
    struct sublist_result *r = sublist_match(sl, subjects[i], strlen(subjects[i]));
    cr_assert_not_null(r);
    cr_expect_eq(r->plain_count, 0, "\"%s\"", subjects[i]);
    cr_expect_eq(r->group_count, 0, "\"%s\"", subjects[i]);
    free(r);
  }
  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, queue_groups)
{
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, "jobs.new", "workers"),
      insert_new(sl, "jobs.new", "workers"),
      insert_new(sl, "jobs.new", "auditors"),
      insert_new(sl, "jobs.new", NULL),
      /* Same queue name through other patterns: merged into one group. */
      insert_new(sl, "jobs.*", "workers"),
      insert_new(sl, "jobs.>", "auditors"),
      insert_new(sl, "jobs.*", "other"),
  };
  check_match(sl, "jobs.new", subs, COUNT(subs));
  check_match(sl, "jobs.old", subs, COUNT(subs));
  check_match(sl, "jobs.new.x", subs, COUNT(subs));

  struct sublist_result *r = sublist_match(sl, "jobs.new", 8);
  cr_assert_eq(r->plain_count, 1);
  cr_assert_eq(r->group_count, 3);
  for (uint32_t g = 0; g < r->group_count; g++) {
    const struct sublist_qgroup *grp = &r->groups[g];
    char name[16] = {0};
    memcpy(name, grp->queue, grp->queue_len);
    if (strcmp(name, "workers") == 0)
      cr_expect_eq(grp->member_count, 3);
    else if (strcmp(name, "auditors") == 0)
      cr_expect_eq(grp->member_count, 2);
    else
      cr_expect_str_eq(name, "other");
  }
  free(r);

  /* Removing members shrinks the group; removing the last one drops it. */
  cr_assert_eq(sublist_remove(sl, subs[2]), 0);
  cr_assert_eq(sublist_remove(sl, subs[5]), 0);
  struct sub *gone[] = {subs[2], subs[5]};
  subs[2] = subs[5] = NULL;
  check_match(sl, "jobs.new", subs, COUNT(subs));
  r = sublist_match(sl, "jobs.new", 8);
  cr_expect_eq(r->group_count, 2);
  free(r);

  /* The group keeps its name after the member that gave it is removed. */
  cr_assert_eq(sublist_remove(sl, subs[0]), 0);
  struct sub *first = subs[0];
  subs[0] = NULL;
  r = sublist_match(sl, "jobs.new", 8);
  bool found = false;
  for (uint32_t g = 0; g < r->group_count; g++) {
    if (r->groups[g].queue_len == 7 && memcmp(r->groups[g].queue, "workers", 7) == 0) {
      found = true;
      cr_expect_eq(r->groups[g].member_count, 2);
      cr_expect_neq(r->groups[g].queue, first->queue);
    }
  }
  cr_expect(found);
  free(r);

  sub_free(gone[0]);
  sub_free(gone[1]);
  sub_free(first);
  remove_all(sl, subs, COUNT(subs));
  sublist_destroy(sl);
}

Test(sublist, insert_rejects_invalid)
{
  struct sublist *sl = sublist_create();
  static const char *const bad_subjects[] = {"", "foo.", ".foo", "foo..bar",
                                             "foo.>.bar", "foo bar"};
  for (size_t i = 0; i < COUNT(bad_subjects); i++) {
    struct sub *s = sub_new(bad_subjects[i], NULL);
    cr_expect_eq(sublist_insert(sl, s), -EINVAL, "\"%s\"", bad_subjects[i]);
    sub_free(s);
  }
  struct sub *bad_queue = sub_new("foo", "a b");
  cr_expect_eq(sublist_insert(sl, bad_queue), -EINVAL);
  sub_free(bad_queue);
  struct sub *empty_queue = sub_new("foo", "");
  cr_expect_eq(sublist_insert(sl, empty_queue), -EINVAL);
  sub_free(empty_queue);

  cr_expect_eq(sublist_count(sl), 0);
  cr_expect_eq(sublist_generation(sl), 0);
  cr_expect_eq(sl->node_count, 1);
  sublist_destroy(sl);
}

Test(sublist, duplicate_and_missing)
{
  struct sublist *sl = sublist_create();
  struct sub *plain = insert_new(sl, "foo.bar", NULL);
  struct sub *queued = insert_new(sl, "foo.bar", "q");
  uint64_t generation = sublist_generation(sl);

  cr_expect_eq(sublist_insert(sl, plain), -EEXIST);
  cr_expect_eq(sublist_insert(sl, queued), -EEXIST);
  cr_expect_eq(sublist_count(sl), 2);
  cr_expect_eq(sublist_generation(sl), generation);

  struct sub *never = sub_new("foo.bar", NULL);
  struct sub *elsewhere = sub_new("foo.baz.qux", "q");
  cr_expect_eq(sublist_remove(sl, never), -ENOENT);
  cr_expect_eq(sublist_remove(sl, elsewhere), -ENOENT);
  cr_expect_eq(sublist_generation(sl), generation);
  cr_expect_eq(sl->node_count, 3); /* root, foo, bar */

  cr_expect_eq(sublist_remove(sl, plain), 0);
  cr_expect_eq(sublist_remove(sl, plain), -ENOENT);
  cr_expect_eq(sublist_count(sl), 1);
  check_match(sl, "foo.bar", &queued, 1);

  sub_free(never);
  sub_free(elsewhere);
  sub_free(plain);
  remove_all(sl, &queued, 1);
  sublist_destroy(sl);
}

Test(sublist, generation_moves_on_change)
{
  struct sublist *sl = sublist_create();
  uint64_t g0 = sublist_generation(sl);
  struct sub *a = insert_new(sl, "a.b", NULL);
  uint64_t g1 = sublist_generation(sl);
  cr_expect_gt(g1, g0);
  struct sub *b = insert_new(sl, "a.*", "q");
  uint64_t g2 = sublist_generation(sl);
  cr_expect_gt(g2, g1);

  /* Matching changes nothing. */
  free(sublist_match(sl, "a.b", 3));
  cr_expect_eq(sublist_generation(sl), g2);

  cr_assert_eq(sublist_remove(sl, a), 0);
  uint64_t g3 = sublist_generation(sl);
  cr_expect_gt(g3, g2);
  urcu_qsbr_call_rcu(&a->rcu, on_sub_free);

  remove_all(sl, &b, 1);
  cr_expect_gt(sublist_generation(sl), g3);
  sublist_destroy(sl);
}

Test(sublist, remove_prunes_empty_nodes)
{
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, "a.b.c.d", NULL),
      insert_new(sl, "a.b.x", NULL),
      insert_new(sl, "a.*.c", "q"),
      insert_new(sl, "a.>", NULL),
  };
  /* root, a, b, c, d, x, *, c under *, > */
  cr_expect_eq(sl->node_count, 9);

  cr_assert_eq(sublist_remove(sl, subs[0]), 0); /* drops c and d under b */
  urcu_qsbr_call_rcu(&subs[0]->rcu, on_sub_free);
  subs[0] = NULL;
  cr_expect_eq(sl->node_count, 7);
  check_match(sl, "a.b.c", subs, COUNT(subs));
  check_match(sl, "a.b.x", subs, COUNT(subs));

  cr_assert_eq(sublist_remove(sl, subs[2]), 0); /* drops * and its c */
  urcu_qsbr_call_rcu(&subs[2]->rcu, on_sub_free);
  subs[2] = NULL;
  cr_expect_eq(sl->node_count, 5);

  remove_all(sl, subs, COUNT(subs));
  cr_expect_eq(sl->node_count, 1);
  cr_expect_null(sl->root->children);
  cr_expect_null(sl->root->star_child);
  cr_expect_null(sl->root->gt_child);
  cr_expect_null(sl->root->subs);
  cr_expect_eq(sublist_count(sl), 0);
  sublist_destroy(sl);
}

Test(sublist, long_subjects)
{
  /* More tokens than the matcher keeps on its stack, with '*' at every
   * level so the pending-branch stack fills up. */
  enum { TOKENS = 100 };
  char literal[TOKENS * 2], stars[TOKENS * 2], mixed[TOKENS * 3];
  literal[0] = stars[0] = mixed[0] = '\0';
  for (int i = 0; i < TOKENS; i++) {
    strcat(literal, i ? ".t" : "t");
    strcat(stars, i ? ".*" : "*");
    strcat(mixed, i % 2 ? ".*" : (i ? ".t" : "t"));
  }
  struct sublist *sl = sublist_create();
  struct sub *subs[] = {
      insert_new(sl, literal, NULL),
      insert_new(sl, stars, NULL),
      insert_new(sl, mixed, "q"),
      insert_new(sl, "t.>", NULL),
      insert_new(sl, "t.t.*", NULL),
  };
  check_match(sl, literal, subs, COUNT(subs));
  cr_expect_eq(match_total(sl, literal), 4);
  char other[TOKENS * 2];
  strcpy(other, literal);
  other[strlen(other) - 1] = 'u';
  check_match(sl, other, subs, COUNT(subs));
  cr_expect_eq(match_total(sl, other), 3); /* stars, mixed (odd tokens are *), t.> */

  remove_all(sl, subs, COUNT(subs));
  cr_expect_eq(sl->node_count, 1);
  sublist_destroy(sl);
}

Test(sublist, many_subscriptions)
{
  /* 100k subscriptions over 25k robot ids, so the level under "robot" has
   * 25k children, plus wildcard interest over all of them. */
  enum { IDS = 25000, PER_ID = 4 };
  static const char *const kinds[PER_ID] = {"status", "telemetry", "cmd.*", "task.>"};
  struct sublist *sl = sublist_create();
  struct sub **subs = calloc(IDS * PER_ID, sizeof(*subs));
  cr_assert_not_null(subs);
  char subject[64];
  for (int id = 0; id < IDS; id++) {
    for (int k = 0; k < PER_ID; k++) {
      snprintf(subject, sizeof(subject), "robot.%d.%s", id, kinds[k]);
      subs[id * PER_ID + k] = insert_new(sl, subject, k == 3 ? "planners" : NULL);
    }
  }
  struct sub *wild[] = {
      insert_new(sl, "robot.*.status", "collectors"),
      insert_new(sl, "robot.>", NULL),
  };
  cr_expect_eq(sublist_count(sl), IDS * PER_ID + 2);

  for (int id = 0; id < IDS; id += 997) {
    static const char *const tails[] = {"status", "telemetry", "cmd.go", "task.a.b", "none"};
    /* Other ids' subscriptions cannot match, so these are all candidates. */
    struct sub *candidates[PER_ID + 2] = {wild[0], wild[1]};
    memcpy(candidates + 2, subs + id * PER_ID, PER_ID * sizeof(*subs));
    for (size_t t = 0; t < COUNT(tails); t++) {
      snprintf(subject, sizeof(subject), "robot.%d.%s", id, tails[t]);
      check_match(sl, subject, candidates, COUNT(candidates));
      uint32_t expected = t == 4 ? 1 : (t == 0 ? 3 : 2);
      cr_expect_eq(match_total(sl, subject), expected, "%s", subject);
    }
  }
  snprintf(subject, sizeof(subject), "robot.%d.status", IDS + 5);
  cr_expect_eq(match_total(sl, subject), 2);

  /* Removing everything prunes the trie back to its root. */
  remove_all(sl, subs, IDS * PER_ID);
  remove_all(sl, wild, COUNT(wild));
  cr_expect_eq(sublist_count(sl), 0);
  cr_expect_eq(sl->node_count, 1);
  free(subs);
  sublist_destroy(sl);
}

Test(sublist, child_table_grows_and_shrinks)
{
  enum { CHILDREN = 5000 };
  struct sublist *sl = sublist_create();
  struct sub **subs = calloc(CHILDREN, sizeof(*subs));
  char subject[32];
  for (int i = 0; i < CHILDREN; i++) {
    snprintf(subject, sizeof(subject), "w.%d", i);
    subs[i] = insert_new(sl, subject, NULL);
  }
  struct sl_node *w = table_find(sl->root->children, "w", 1, token_hash(sl, "w", 1));
  cr_assert_not_null(w);
  cr_assert_eq(w->children->live_count, CHILDREN);
  cr_expect_leq(w->children->used_count * 4, (w->children->mask + 1) * 3);

  /* Remove all but 10: the table shrinks and every survivor is found. */
  for (int i = 10; i < CHILDREN; i++) {
    cr_assert_eq(sublist_remove(sl, subs[i]), 0);
    urcu_qsbr_call_rcu(&subs[i]->rcu, on_sub_free);
    subs[i] = NULL;
  }
  cr_expect_leq(w->children->mask + 1, 64);
  cr_expect_eq(w->children->live_count, 10);
  for (int i = 0; i < CHILDREN; i += 7) {
    snprintf(subject, sizeof(subject), "w.%d", i);
    cr_expect_eq(match_total(sl, subject), i < 10 ? 1 : 0, "%s", subject);
  }
  remove_all(sl, subs, CHILDREN);
  free(subs);
  sublist_destroy(sl);
}

/* A small deterministic generator, so failures reproduce. */
static uint64_t rng_next(uint64_t *state)
{
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

/* Writes a random subject of 1 to 4 tokens from a small alphabet, with
 * wildcards when pattern is set. */
static void random_subject(uint64_t *rng, char *out, bool pattern)
{
  static const char *const literals[] = {"a", "b", "cc"};
  unsigned n = 1 + (unsigned)(rng_next(rng) % 4);
  out[0] = '\0';
  for (unsigned i = 0; i < n; i++) {
    if (i > 0)
      strcat(out, ".");
    unsigned pick = (unsigned)(rng_next(rng) % (pattern ? 6 : 3));
    if (pick == 5 && i + 1 < n)
      pick = 4; /* '>' only as the last token */
    strcat(out, pick < 3 ? literals[pick] : (pick < 5 ? "*" : ">"));
  }
}

Test(sublist, random_against_brute_force)
{
  enum { SUBS = 400, ROUNDS = 6, PROBES = 120 };
  static const char *const queues[] = {NULL, NULL, NULL, "q1", "q2"};
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  struct sublist *sl = sublist_create();
  struct sub *subs[SUBS] = {0};
  char subject[64];

  for (int round = 0; round < ROUNDS; round++) {
    /* Refill empty places, then remove about a third at random. */
    for (int i = 0; i < SUBS; i++) {
      if (subs[i] != NULL)
        continue;
      random_subject(&rng, subject, true);
      subs[i] = insert_new(sl, subject, queues[rng_next(&rng) % COUNT(queues)]);
    }
    for (int i = 0; i < SUBS; i++) {
      if (rng_next(&rng) % 3 == 0)
        remove_all(sl, &subs[i], 1);
    }

    uint64_t present = 0;
    for (int i = 0; i < SUBS; i++)
      present += subs[i] != NULL;
    cr_assert_eq(sublist_count(sl), present);
    for (int p = 0; p < PROBES; p++) {
      random_subject(&rng, subject, false);
      check_match(sl, subject, subs, SUBS);
    }
  }
  remove_all(sl, subs, SUBS);
  cr_expect_eq(sl->node_count, 1);
  sublist_destroy(sl);
}

/* ---- Concurrency ---- */

/* Subjects the writer churns: some match "a.b.c", some don't. */
static const char *const churn_subjects[] = {"a.b.c", "a.*.c", "a.>", "*.b.c", ">",
                                             "a.b.d", "x.y", "a.b.c.d", "*.*.*", "a.b"};
static const char *const churn_queues[] = {NULL, "q", "r"};

enum { CHURN_SLOTS = 64, WRITER_STEPS = 20000, READER_MATCHES_MAX = 2000000 };

struct concurrency {
  struct sublist *sl;
  struct sub *stable[4];
  atomic_bool writer_done;
  atomic_uint_fast64_t reader_matches;
  atomic_uint_fast64_t reader_failures;
};

static void *writer_main(void *arg)
{
  struct concurrency *cc = arg;
  urcu_qsbr_register_thread();
  struct sub *slots[CHURN_SLOTS] = {0};
  uint64_t rng = 12345;
  for (int step = 0; step < WRITER_STEPS; step++) {
    unsigned i = (unsigned)(rng_next(&rng) % CHURN_SLOTS);
    if (slots[i] == NULL) {
      const char *subject = churn_subjects[rng_next(&rng) % COUNT(churn_subjects)];
      const char *queue = churn_queues[rng_next(&rng) % COUNT(churn_queues)];
      slots[i] = sub_new(subject, queue);
      if (sublist_insert(cc->sl, slots[i]) != 0)
        atomic_fetch_add(&cc->reader_failures, 1);
    } else {
      if (sublist_remove(cc->sl, slots[i]) != 0)
        atomic_fetch_add(&cc->reader_failures, 1);
      /* Readers may still hold it: free after a grace period. */
      urcu_qsbr_call_rcu(&slots[i]->rcu, on_sub_free);
      slots[i] = NULL;
    }
    if (step % 64 == 0)
      urcu_qsbr_quiescent_state();
  }
  for (unsigned i = 0; i < CHURN_SLOTS; i++) {
    if (slots[i] == NULL)
      continue;
    if (sublist_remove(cc->sl, slots[i]) != 0)
      atomic_fetch_add(&cc->reader_failures, 1);
    urcu_qsbr_call_rcu(&slots[i]->rcu, on_sub_free);
  }
  atomic_store(&cc->writer_done, true);
  urcu_qsbr_unregister_thread();
  return NULL;
}

/* Checks one result taken while the writer runs: every stable sub exactly
 * once, every member matching the subject and in the right group, no sub
 * twice. Returns the number of violations. */
static unsigned check_concurrent_result(const struct concurrency *cc,
                                        const struct sublist_result *r,
                                        const char *subject, bool stable_expected)
{
  unsigned bad = 0;
  size_t len = strlen(subject);
  struct sub *seen[256];
  unsigned seen_count = 0;
  for (uint32_t p = 0; p < r->plain_count; p++) {
    struct sub *s = r->plain[p];
    bad += s->queue != NULL;
    bad += !subject_matches(s->subject, s->subject_len, subject, len);
    if (seen_count < COUNT(seen))
      seen[seen_count++] = s;
  }
  for (uint32_t g = 0; g < r->group_count; g++) {
    const struct sublist_qgroup *grp = &r->groups[g];
    bad += grp->member_count == 0;
    for (uint32_t m = 0; m < grp->member_count; m++) {
      struct sub *s = grp->members[m];
      bad += !same_queue(s, grp->queue, grp->queue_len);
      bad += !subject_matches(s->subject, s->subject_len, subject, len);
      if (seen_count < COUNT(seen))
        seen[seen_count++] = s;
    }
  }
  for (unsigned i = 0; i < seen_count; i++) {
    for (unsigned j = i + 1; j < seen_count; j++)
      bad += seen[i] == seen[j];
  }
  for (unsigned k = 0; k < COUNT(cc->stable); k++) {
    unsigned found = 0;
    for (unsigned i = 0; i < seen_count; i++)
      found += seen[i] == cc->stable[k];
    bad += found != (stable_expected ? 1u : 0u);
  }
  return bad;
}

static void *reader_main(void *arg)
{
  struct concurrency *cc = arg;
  urcu_qsbr_register_thread();
  for (uint64_t n = 0; n < READER_MATCHES_MAX; n++) {
    bool done = atomic_load(&cc->writer_done);
    const char *subject = n % 4 == 3 ? "x.y" : "a.b.c";
    struct sublist_result *r = sublist_match(cc->sl, subject, strlen(subject));
    if (r == NULL) {
      atomic_fetch_add(&cc->reader_failures, 1);
    } else {
      unsigned bad = check_concurrent_result(cc, r, subject, n % 4 != 3);
      if (bad)
        atomic_fetch_add(&cc->reader_failures, bad);
      free(r);
    }
    atomic_fetch_add(&cc->reader_matches, 1);
    /* Sub pointers from r are not used past this point. */
    urcu_qsbr_quiescent_state();
    if (done)
      break;
  }
  urcu_qsbr_unregister_thread();
  return NULL;
}

Test(sublist, concurrent_match_during_changes)
{
  struct concurrency cc = {.sl = sublist_create()};
  cc.stable[0] = insert_new(cc.sl, "a.b.c", NULL);
  cc.stable[1] = insert_new(cc.sl, "a.*.c", NULL);
  cc.stable[2] = insert_new(cc.sl, "a.>", "q");
  cc.stable[3] = insert_new(cc.sl, "a.b.c", "q");

  pthread_t writer, readers[2];
  cr_assert_eq(pthread_create(&readers[0], NULL, reader_main, &cc), 0);
  cr_assert_eq(pthread_create(&readers[1], NULL, reader_main, &cc), 0);
  cr_assert_eq(pthread_create(&writer, NULL, writer_main, &cc), 0);

  /* Offline while blocked, so this thread holds up no grace period. */
  urcu_qsbr_thread_offline();
  pthread_join(writer, NULL);
  pthread_join(readers[0], NULL);
  pthread_join(readers[1], NULL);
  urcu_qsbr_thread_online();

  cr_expect_eq(atomic_load(&cc.reader_failures), 0);
  cr_expect_gt(atomic_load(&cc.reader_matches), 2);
  check_match(cc.sl, "a.b.c", cc.stable, COUNT(cc.stable));
  cr_expect_eq(sublist_count(cc.sl), COUNT(cc.stable));
  remove_all(cc.sl, cc.stable, COUNT(cc.stable));
  cr_expect_eq(cc.sl->node_count, 1);
  sublist_destroy(cc.sl);
}
