/* SPDX-License-Identifier: Apache-2.0 */
/* The subscription index shared by all shards: a trie with one node per
 * subject token, read without locks under liburcu QSBR and changed under one
 * mutex.
 *
 * Shape. Every node has up to three kinds of children: literal tokens in an
 * open-addressing hash table, the '*' child and the '>' child. The
 * subscriptions whose subject ends at a node sit in one immutable block
 * (struct sl_subs) holding the plain subscriptions and the queue groups.
 *
 * Rules that let readers run without a lock while one writer changes the
 * trie (all writers hold sl->lock):
 *   R1. A subscription block is never changed after it is published. A change
 *       builds a new block, publishes it with rcu_set_pointer() and frees the
 *       old one with call_rcu().
 *   R2. A child table slot goes only from NULL or TOMBSTONE to a node, or
 *       from a node to TOMBSTONE. A reader probing a table therefore finds
 *       every node that stayed linked since it loaded the table. At most
 *       three quarters of the slots are non-NULL, so every probe stops at a
 *       NULL slot. Past that load the writer builds a new table
 *       (copy-on-write), publishes it and frees the old one with call_rcu().
 *   R3. A node is unlinked from its parent once it has no subscriptions and
 *       no children, and freed with call_rcu(). The root is never unlinked.
 *   R4. The generation is bumped with release order after the change is
 *       published, so a thread that sees the new generation sees the change.
 */

/* liburcu may inline its small functions (rcu_dereference and friends) into
 * code under any license when this is defined before its headers. */
#define URCU_INLINE_SMALL_FUNCTIONS 1
#define XXH_INLINE_ALL

#include "core/sublist.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <urcu/urcu-qsbr.h>
#include <xxhash.h>

#include "core/assert.h"
#include "core/subject.h"

#define SL_TABLE_MIN_SLOTS 8u

/* The subscriptions whose subject ends at one node, in one allocation laid
 * out as this header, plain[plain_count], groups[group_count], then every
 * group's members one group after the other. Immutable once published (R1). */
struct sl_subs {
  struct rcu_head rcu;
  uint32_t plain_count;
  uint32_t group_count;
  uint32_t member_count; /* sum over the groups */
  struct sub **plain;
  struct sublist_qgroup *groups;
};

struct sl_node;

/* The literal children of one node. Probing is linear from hash & mask. */
struct sl_table {
  struct rcu_head rcu;
  uint32_t mask;
  uint32_t live_count; /* slots holding a node; writer only */
  uint32_t used_count; /* slots not NULL, tombstones included; writer only */
  struct sl_node *slots[];
};

struct sl_node {
  struct sl_table *children;  /* RCU; NULL when there is no literal child */
  struct sl_node *star_child; /* RCU; the child for the '*' token */
  struct sl_node *gt_child;   /* RCU; the child for the '>' token */
  struct sl_subs *subs;       /* RCU; NULL when no subject ends here */
  struct sl_node *parent;     /* writer only; NULL for the root */
  struct rcu_head rcu;
  uint64_t hash;              /* of token, with the sublist's seed */
  uint32_t token_len;
  char token[];
};

struct sublist {
  struct sl_node *root;
  uint64_t hash_seed; /* random, so clients cannot choose colliding tokens */
  pthread_mutex_t lock;
  uint64_t node_count; /* writer only, root included */
  _Atomic uint64_t sub_count;
  _Atomic uint64_t inserts; /* successful inserts since creation, for /subsz */
  _Atomic uint64_t removes; /* successful removals since creation */
  /* Read once per published message by every shard's cache, so it gets a
   * cache line that the mutex and counters do not dirty. */
  alignas(64) _Atomic uint64_t generation;
};

/* A slot whose node was removed. Probing continues past it. */
static char sl_tombstone_marker;
#define SL_TOMBSTONE ((struct sl_node *)&sl_tombstone_marker)

static uint64_t token_hash(const struct sublist *sl, const char *token,
                           size_t len)
{
  return XXH3_64bits_withSeed(token, len, sl->hash_seed);
}

/* ---- Child tables ---- */

static struct sl_node *table_find(const struct sl_table *t, const char *token,
                                  uint32_t len, uint64_t hash)
{
  uint32_t i = (uint32_t)hash & t->mask;
  for (uint32_t probes = 0; probes <= t->mask; probes++) {
    struct sl_node *n = rcu_dereference(t->slots[i]);
    if (n == NULL)
      return NULL;
    if (n != SL_TOMBSTONE && n->hash == hash && n->token_len == len &&
        memcmp(n->token, token, len) == 0)
      return n;
    i = (i + 1) & t->mask;
  }
  return NULL;
}

static void on_table_free(struct rcu_head *head)
{
  free(caa_container_of(head, struct sl_table, rcu));
}

/* Builds a table of slot_count slots holding the live nodes of old (may be
 * NULL) plus extra (may be NULL). Not yet visible to readers, so plain
 * stores do. */
static struct sl_table *table_build(const struct sl_table *old,
                                    struct sl_node *extra, uint32_t slot_count)
{
  struct sl_table *t = calloc(1, sizeof(*t) + slot_count * sizeof(t->slots[0]));
  if (t == NULL)
    return NULL;
  t->mask = slot_count - 1;

  uint32_t old_slots = old ? old->mask + 1 : 0;
  for (uint32_t i = 0; i <= old_slots; i++) {
    struct sl_node *n = i < old_slots ? old->slots[i] : extra;
    if (n == NULL || n == SL_TOMBSTONE)
      continue;
    uint32_t j = (uint32_t)n->hash & t->mask;
    while (t->slots[j] != NULL)
      j = (j + 1) & t->mask;
    t->slots[j] = n;
    t->live_count++;
  }
  t->used_count = t->live_count;
  ASSERT(t->live_count * 4 <= slot_count * 3);
  return t;
}

/* The smallest power of two, at least SL_TABLE_MIN_SLOTS, that keeps the
 * table at most half full with live_count nodes. */
static uint32_t table_slots_for(uint32_t live_count)
{
  uint32_t slots = SL_TABLE_MIN_SLOTS;
  while (slots < live_count * 2)
    slots *= 2;
  return slots;
}

/* Adds child to parent's table, in place when the table has room (R2) and
 * in a new table otherwise. Returns 0 or -ENOMEM. */
static int table_add(struct sl_node *parent, struct sl_node *child)
{
  struct sl_table *t = parent->children;
  if (t == NULL || (t->used_count + 1) * 4 > (t->mask + 1) * 3) {
    uint32_t live_count = t ? t->live_count : 0;
    struct sl_table *fresh = table_build(t, child, table_slots_for(live_count + 1));
    if (fresh == NULL)
      return -ENOMEM;
    rcu_set_pointer(&parent->children, fresh);
    if (t != NULL)
      urcu_qsbr_call_rcu(&t->rcu, on_table_free);
    return 0;
  }

  /* The caller checked that the token is absent, so the first free or
   * tombstone slot on the probe path is the place. */
  uint32_t i = (uint32_t)child->hash & t->mask;
  while (t->slots[i] != NULL && t->slots[i] != SL_TOMBSTONE)
    i = (i + 1) & t->mask;
  if (t->slots[i] == NULL)
    t->used_count++;
  t->live_count++;
  rcu_set_pointer(&t->slots[i], child);
  return 0;
}

/* Removes child from parent's table. Never fails: when a smaller table cannot
 * be allocated the tombstone stays. */
static void table_remove(struct sl_node *parent, struct sl_node *child)
{
  struct sl_table *t = parent->children;
  ASSERT(t != NULL);

  if (t->live_count == 1) {
    ASSERT(table_find(t, child->token, child->token_len, child->hash) == child);
    rcu_set_pointer(&parent->children, NULL);
    urcu_qsbr_call_rcu(&t->rcu, on_table_free);
    return;
  }

  uint32_t i = (uint32_t)child->hash & t->mask;
  for (uint32_t probes = 0; t->slots[i] != child; probes++) {
    ASSERT(probes <= t->mask);
    i = (i + 1) & t->mask;
  }
  rcu_set_pointer(&t->slots[i], SL_TOMBSTONE);
  t->live_count--;

  /* Shrink a table that is at most one eighth full, which also drops its
   * tombstones. */
  uint32_t slot_count = t->mask + 1;
  if (slot_count > SL_TABLE_MIN_SLOTS && t->live_count * 8 <= slot_count) {
    struct sl_table *fresh = table_build(t, NULL, table_slots_for(t->live_count));
    if (fresh != NULL) {
      rcu_set_pointer(&parent->children, fresh);
      urcu_qsbr_call_rcu(&t->rcu, on_table_free);
    }
  }
}

/* ---- Nodes ---- */

static struct sl_node *node_create(struct sl_node *parent, const char *token,
                                   uint32_t len, uint64_t hash)
{
  struct sl_node *n = calloc(1, sizeof(*n) + len + 1);
  if (n == NULL)
    return NULL;
  n->parent = parent;
  n->hash = hash;
  n->token_len = len;
  memcpy(n->token, token, len);
  return n;
}

static void on_node_free(struct rcu_head *head)
{
  free(caa_container_of(head, struct sl_node, rcu));
}

static void on_subs_free(struct rcu_head *head)
{
  free(caa_container_of(head, struct sl_subs, rcu));
}

static bool is_star(const char *token, uint32_t len)
{
  return len == 1 && token[0] == '*';
}

static bool is_gt(const char *token, uint32_t len)
{
  return len == 1 && token[0] == '>';
}

/* Writer side: the child of node for one token of a subscription subject,
 * or NULL. */
static struct sl_node *node_child(const struct sublist *sl,
                                  const struct sl_node *node,
                                  const char *token, uint32_t len)
{
  if (is_star(token, len))
    return node->star_child;
  if (is_gt(token, len))
    return node->gt_child;
  if (node->children == NULL)
    return NULL;
  return table_find(node->children, token, len, token_hash(sl, token, len));
}

/* Creates and links the child of node for one token. Returns the child, or
 * NULL on allocation failure. */
static struct sl_node *node_add_child(struct sublist *sl, struct sl_node *node,
                                      const char *token, uint32_t len)
{
  struct sl_node *child = node_create(node, token, len, token_hash(sl, token, len));
  if (child == NULL)
    return NULL;

  if (is_star(token, len)) {
    rcu_set_pointer(&node->star_child, child);
  } else if (is_gt(token, len)) {
    rcu_set_pointer(&node->gt_child, child);
  } else if (table_add(node, child) != 0) {
    free(child);
    return NULL;
  }
  sl->node_count++;
  return child;
}

static bool node_is_empty(const struct sl_node *n)
{
  return n->subs == NULL && n->children == NULL && n->star_child == NULL &&
         n->gt_child == NULL;
}

/* Unlinks and frees node and then each ancestor left empty, up to but not
 * including the root (R3). */
static void node_prune(struct sublist *sl, struct sl_node *node)
{
  while (node->parent != NULL && node_is_empty(node)) {
    struct sl_node *parent = node->parent;
    if (parent->star_child == node)
      rcu_set_pointer(&parent->star_child, NULL);
    else if (parent->gt_child == node)
      rcu_set_pointer(&parent->gt_child, NULL);
    else
      table_remove(parent, node);
    urcu_qsbr_call_rcu(&node->rcu, on_node_free);
    sl->node_count--;
    node = parent;
  }
}

/* ---- Subscription blocks ---- */

static struct sl_subs *subs_alloc(uint32_t plain_count, uint32_t group_count,
                                  uint32_t member_count)
{
  size_t size = sizeof(struct sl_subs) +
                (size_t)(plain_count + member_count) * sizeof(struct sub *) +
                (size_t)group_count * sizeof(struct sublist_qgroup);
  struct sl_subs *s = malloc(size);
  if (s == NULL)
    return NULL;
  s->plain_count = plain_count;
  s->group_count = group_count;
  s->member_count = member_count;
  s->plain = (struct sub **)(s + 1);
  s->groups = (struct sublist_qgroup *)(s->plain + plain_count);
  return s;
}

/* The start of the member array that follows the groups. */
static struct sub **subs_members(const struct sl_subs *s)
{
  return (struct sub **)(s->groups + s->group_count);
}

static bool queue_equal(const struct sublist_qgroup *g, const char *queue,
                        uint32_t queue_len)
{
  return g->queue_len == queue_len &&
         (g->queue == queue || memcmp(g->queue, queue, queue_len) == 0);
}

/* Returns the index of the group named queue in s, or -1. */
static int64_t subs_find_group(const struct sl_subs *s, const char *queue,
                               uint32_t queue_len)
{
  for (uint32_t i = 0; s != NULL && i < s->group_count; i++) {
    if (queue_equal(&s->groups[i], queue, queue_len))
      return i;
  }
  return -1;
}

static bool subs_contains(const struct sl_subs *s, const struct sub *sub)
{
  if (s == NULL)
    return false;
  if (sub->queue == NULL) {
    for (uint32_t i = 0; i < s->plain_count; i++) {
      if (s->plain[i] == sub)
        return true;
    }
    return false;
  }
  int64_t g = subs_find_group(s, sub->queue, sub->queue_len);
  for (uint32_t i = 0; g >= 0 && i < s->groups[g].member_count; i++) {
    if (s->groups[g].members[i] == sub)
      return true;
  }
  return false;
}

/* Builds a copy of old (may be NULL) with added inserted, or without removed,
 * at most one of them non-NULL. A group left without members is dropped.
 * Returns NULL on allocation failure, and sets *empty when the copy would
 * hold nothing (then nothing is allocated).
 * NOTE: each change copies the whole block, so building up n subscriptions
 * to one subject costs O(n^2) pointer copies. That is cheap for thousands
 * of subscribers to a subject, but not for millions. */
static struct sl_subs *subs_copy(const struct sl_subs *old, struct sub *added,
                                 const struct sub *removed, bool *empty)
{
  static const struct sl_subs none = {0};
  if (old == NULL)
    old = &none;
  const struct sub *changed = added ? added : removed;
  int delta = added ? 1 : -1;
  bool plain_change = changed->queue == NULL;
  int64_t changed_group =
      plain_change ? -1 : subs_find_group(old, changed->queue, changed->queue_len);

  /* Size the copy. */
  uint32_t plain_count = old->plain_count + (plain_change ? delta : 0);
  uint32_t member_count = old->member_count + (plain_change ? 0 : delta);
  uint32_t group_count = old->group_count;
  if (!plain_change && changed_group < 0)
    group_count++;
  else if (!plain_change && removed && old->groups[changed_group].member_count == 1)
    group_count--;
  *empty = plain_count == 0 && group_count == 0;
  if (*empty)
    return NULL;
  struct sl_subs *s = subs_alloc(plain_count, group_count, member_count);
  if (s == NULL)
    return NULL;

  /* Plain subscriptions keep their order; an added one goes last. */
  uint32_t plain_fill = 0;
  for (uint32_t i = 0; i < old->plain_count; i++) {
    if (old->plain[i] != removed)
      s->plain[plain_fill++] = old->plain[i];
  }
  if (added && plain_change)
    s->plain[plain_fill++] = added;
  ASSERT(plain_fill == plain_count);

  /* Groups keep their order; an added member goes last in its group and a
   * new group goes last. */
  struct sub **member_fill = subs_members(s);
  uint32_t group_fill = 0;
  bool adds_group = added && !plain_change && changed_group < 0;
  for (uint32_t g = 0; g < old->group_count + (adds_group ? 1 : 0); g++) {
    bool is_new_group = g == old->group_count;
    struct sublist_qgroup dst = {.members = member_fill};
    uint32_t old_members = is_new_group ? 0 : old->groups[g].member_count;
    for (uint32_t i = 0; i < old_members; i++) {
      if (old->groups[g].members[i] != removed)
        *member_fill++ = old->groups[g].members[i];
    }
    if (added && (is_new_group || g == changed_group))
      *member_fill++ = added;
    dst.member_count = (uint32_t)(member_fill - dst.members);
    if (dst.member_count == 0)
      continue;
    /* The name lives in a member, which outlives this block's readers. */
    dst.queue = dst.members[0]->queue;
    dst.queue_len = dst.members[0]->queue_len;
    s->groups[group_fill++] = dst;
  }
  ASSERT(group_fill == group_count);
  ASSERT(member_fill == subs_members(s) + member_count);
  return s;
}

/* Publishes a copy of node's block with added inserted or removed taken out
 * (R1). Returns 0, -EEXIST, -ENOENT or -ENOMEM. */
static int node_change_subs(struct sl_node *node, struct sub *added,
                            const struct sub *removed)
{
  struct sl_subs *old = node->subs;
  bool present = subs_contains(old, added ? added : removed);
  if (added && present)
    return -EEXIST;
  if (removed && !present)
    return -ENOENT;

  bool empty = false;
  struct sl_subs *fresh = subs_copy(old, added, removed, &empty);
  if (fresh == NULL && !empty)
    return -ENOMEM;
  rcu_set_pointer(&node->subs, fresh);
  if (old != NULL)
    urcu_qsbr_call_rcu(&old->rcu, on_subs_free);
  return 0;
}

/* ---- Creation and changes ---- */

struct sublist *sublist_create(void)
{
  struct sublist *sl = aligned_alloc(alignof(struct sublist), sizeof(*sl));
  if (sl == NULL)
    return NULL;
  memset(sl, 0, sizeof(*sl));

  sl->root = node_create(NULL, "", 0, 0);
  if (sl->root == NULL) {
    free(sl);
    return NULL;
  }
  if (getrandom(&sl->hash_seed, sizeof(sl->hash_seed), GRND_NONBLOCK) !=
      sizeof(sl->hash_seed))
    sl->hash_seed = (uint64_t)(uintptr_t)sl ^ 0x9e3779b97f4a7c15ull;
  pthread_mutex_init(&sl->lock, NULL);
  sl->node_count = 1;
  atomic_init(&sl->sub_count, 0);
  atomic_init(&sl->generation, 0);
  return sl;
}

/* Frees node and everything under it at once; no reader is left. The
 * recursion is as deep as the longest subscribed subject has tokens. */
static void node_destroy(struct sl_node *n)
{
  if (n->star_child != NULL)
    node_destroy(n->star_child);
  if (n->gt_child != NULL)
    node_destroy(n->gt_child);
  struct sl_table *t = n->children;
  for (uint32_t i = 0; t != NULL && i <= t->mask; i++) {
    if (t->slots[i] != NULL && t->slots[i] != SL_TOMBSTONE)
      node_destroy(t->slots[i]);
  }
  free(t);
  free(n->subs);
  free(n);
}

void sublist_destroy(struct sublist *sl)
{
  if (sl == NULL)
    return;
  node_destroy(sl->root);
  pthread_mutex_destroy(&sl->lock);
  free(sl);
}

/* Returns the length of the token of s starting at offset start: up to the
 * next '.' or the end. */
static uint32_t token_length(const char *s, size_t len, size_t start)
{
  const char *dot = memchr(s + start, '.', len - start);
  return (uint32_t)(dot ? (size_t)(dot - s) - start : len - start);
}

int sublist_insert(struct sublist *sl, struct sub *sub)
{
  if (!subject_valid(sub->subject, sub->subject_len))
    return -EINVAL;
  if (sub->queue != NULL && !subject_queue_valid(sub->queue, sub->queue_len))
    return -EINVAL;

  pthread_mutex_lock(&sl->lock);
  struct sl_node *node = sl->root;
  int err = 0;
  for (size_t start = 0; start < sub->subject_len;) {
    const char *token = sub->subject + start;
    uint32_t token_len = token_length(sub->subject, sub->subject_len, start);
    struct sl_node *child = node_child(sl, node, token, token_len);
    if (child == NULL)
      child = node_add_child(sl, node, token, token_len);
    if (child == NULL) {
      err = -ENOMEM;
      break;
    }
    node = child;
    start += token_len + 1;
  }

  if (err == 0)
    err = node_change_subs(node, sub, NULL);
  if (err == 0) {
    atomic_fetch_add_explicit(&sl->sub_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->inserts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->generation, 1, memory_order_release); /* R4 */
  } else {
    /* Drops the nodes this call created, which are still empty. */
    node_prune(sl, node);
  }
  pthread_mutex_unlock(&sl->lock);
  return err;
}

int sublist_remove(struct sublist *sl, struct sub *sub)
{
  pthread_mutex_lock(&sl->lock);
  struct sl_node *node = sl->root;
  for (size_t start = 0; start < sub->subject_len && node != NULL;) {
    uint32_t token_len = token_length(sub->subject, sub->subject_len, start);
    node = node_child(sl, node, sub->subject + start, token_len);
    start += token_len + 1;
  }

  int err = node ? node_change_subs(node, NULL, sub) : -ENOENT;
  if (err == 0) {
    node_prune(sl, node);
    atomic_fetch_sub_explicit(&sl->sub_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->removes, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->generation, 1, memory_order_release); /* R4 */
  }
  pthread_mutex_unlock(&sl->lock);
  return err;
}

void sublist_changes(const struct sublist *sl, uint64_t *inserts, uint64_t *removes)
{
  *inserts = atomic_load_explicit(&sl->inserts, memory_order_relaxed);
  *removes = atomic_load_explicit(&sl->removes, memory_order_relaxed);
}

uint64_t sublist_generation(const struct sublist *sl)
{
  return atomic_load_explicit(&sl->generation, memory_order_acquire);
}

uint64_t sublist_count(const struct sublist *sl)
{
  return atomic_load_explicit(&sl->sub_count, memory_order_relaxed);
}

/* ---- Matching ---- */

#define MATCH_INLINE_TOKENS 32
#define MATCH_INLINE_FOUND 16

struct match_token {
  const char *start;
  uint32_t len;
  uint64_t hash;
};

/* A '*' branch still to walk: node matched the tokens before index. */
struct match_branch {
  const struct sl_node *node;
  uint32_t index;
};

struct match_state {
  struct match_token *tokens;
  uint32_t token_count;
  struct match_branch *branches; /* token_count + 1 entries */
  const struct sl_subs **found;
  uint32_t found_count;
  uint32_t found_capacity;
  bool failed; /* an allocation failed */
  const struct sl_subs *found_inline[MATCH_INLINE_FOUND];
};

static void match_add(struct match_state *m, const struct sl_node *node)
{
  const struct sl_subs *s = rcu_dereference(node->subs);
  if (s == NULL)
    return;

  if (m->found_count == m->found_capacity) {
    uint32_t capacity = m->found_capacity * 2;
    const struct sl_subs **grown = malloc(capacity * sizeof(*grown));
    if (grown == NULL) {
      m->failed = true;
      return;
    }
    memcpy(grown, m->found, m->found_count * sizeof(*grown));
    if (m->found != m->found_inline)
      free(m->found);
    m->found = grown;
    m->found_capacity = capacity;
  }
  m->found[m->found_count++] = s;
}

/* Collects the subscription block of every node matching the tokens. Each
 * node is visited at most once, because a node's depth fixes the token it
 * is compared with. Pending '*' branches are kept on a stack whose indexes
 * rise from bottom to top, so it never holds more than token_count + 1. */
static void match_walk(struct match_state *m, const struct sl_node *root)
{
  uint32_t depth = 0;
  m->branches[depth++] = (struct match_branch){root, 0};
  while (depth > 0) {
    struct match_branch b = m->branches[--depth];
    const struct sl_node *node = b.node;
    for (uint32_t i = b.index;; i++) {
      if (i == m->token_count) {
        match_add(m, node);
        break;
      }
      const struct sl_node *gt = rcu_dereference(node->gt_child);
      if (gt != NULL)
        match_add(m, gt);
      const struct sl_node *star = rcu_dereference(node->star_child);
      if (star != NULL) {
        ASSERT_HOT(depth <= m->token_count);
        m->branches[depth++] = (struct match_branch){star, i + 1};
      }
      const struct sl_table *t = rcu_dereference(node->children);
      const struct match_token *tok = &m->tokens[i];
      node = t ? table_find(t, tok->start, tok->len, tok->hash) : NULL;
      if (node == NULL)
        break;
    }
  }
}

/* Returns the index of the group named like g among result's first
 * group_count groups, or -1. Queue groups per subject are few, so a linear
 * search does. */
static int64_t result_find_group(const struct sublist_result *r,
                                 const struct sublist_qgroup *g)
{
  for (uint32_t i = 0; i < r->group_count; i++) {
    if (queue_equal(&r->groups[i], g->queue, g->queue_len))
      return i;
  }
  return -1;
}

/* Merges the found blocks into one result allocation laid out as the
 * struct, plain[], groups[], then members. Groups with the same queue name
 * from different nodes become one group, as nats-server does. */
static struct sublist_result *result_build(const struct sl_subs *const *found,
                                           uint32_t found_count)
{
  size_t plain_total = 0, group_total = 0, member_total = 0;
  for (uint32_t f = 0; f < found_count; f++) {
    plain_total += found[f]->plain_count;
    group_total += found[f]->group_count;
    member_total += found[f]->member_count;
  }
  size_t size = sizeof(struct sublist_result) +
                (plain_total + member_total) * sizeof(struct sub *) +
                group_total * sizeof(struct sublist_qgroup);
  struct sublist_result *r = malloc(size);
  if (r == NULL)
    return NULL;
  r->plain_count = 0;
  r->group_count = 0;
  r->plain = (struct sub **)(r + 1);
  r->groups = (struct sublist_qgroup *)(r->plain + plain_total);

  /* Plain subscriptions, and one group entry per queue name with its total
   * member count. */
  for (uint32_t f = 0; f < found_count; f++) {
    memcpy(r->plain + r->plain_count, found[f]->plain,
           found[f]->plain_count * sizeof(struct sub *));
    r->plain_count += found[f]->plain_count;
    for (uint32_t g = 0; g < found[f]->group_count; g++) {
      const struct sublist_qgroup *src = &found[f]->groups[g];
      int64_t i = found_count > 1 ? result_find_group(r, src) : -1;
      if (i < 0) {
        i = r->group_count++;
        r->groups[i] = *src;
      } else {
        r->groups[i].member_count += src->member_count;
      }
    }
  }

  /* Place each group's members, then copy them in. */
  struct sub **members = (struct sub **)(r->groups + r->group_count);
  for (uint32_t i = 0; i < r->group_count; i++) {
    r->groups[i].members = members;
    members += r->groups[i].member_count;
    r->groups[i].member_count = 0;
  }
  for (uint32_t f = 0; f < found_count; f++) {
    for (uint32_t g = 0; g < found[f]->group_count; g++) {
      const struct sublist_qgroup *src = &found[f]->groups[g];
      int64_t i = found_count > 1 ? result_find_group(r, src) : g;
      struct sublist_qgroup *dst = &r->groups[i];
      memcpy(dst->members + dst->member_count, src->members,
             src->member_count * sizeof(struct sub *));
      dst->member_count += src->member_count;
    }
  }
  ASSERT_HOT(members <= (struct sub **)((char *)r + size));
  return r;
}

/* Splits subject into m->tokens. Returns false when a token is empty, which
 * matches nothing. */
static bool match_tokenize(struct match_state *m, const struct sublist *sl,
                           const char *subject, size_t len)
{
  size_t start = 0;
  for (uint32_t i = 0; i < m->token_count; i++) {
    uint32_t token_len = token_length(subject, len, start);
    if (token_len == 0)
      return false;
    m->tokens[i].start = subject + start;
    m->tokens[i].len = token_len;
    m->tokens[i].hash = token_hash(sl, subject + start, token_len);
    start += token_len + 1;
  }
  return true;
}

struct sublist_result *sublist_match(struct sublist *sl, const char *subject,
                                     size_t len)
{
  struct match_token tokens_inline[MATCH_INLINE_TOKENS];
  struct match_branch branches_inline[MATCH_INLINE_TOKENS + 1];
  struct match_state m = {
      .tokens = tokens_inline,
      .branches = branches_inline,
      .found_capacity = MATCH_INLINE_FOUND,
  };
  m.found = m.found_inline;

  /* Size the token arrays; a subject with more tokens than fit on the stack
   * gets them from the heap. */
  m.token_count = len > 0 ? 1 : 0;
  for (size_t i = 0; i < len; i++)
    m.token_count += subject[i] == '.';
  void *heap = NULL;
  if (m.token_count > MATCH_INLINE_TOKENS) {
    heap = malloc(m.token_count * sizeof(*m.tokens) +
                  (m.token_count + 1) * sizeof(*m.branches));
    if (heap == NULL)
      return NULL;
    m.tokens = heap;
    m.branches = (struct match_branch *)(m.tokens + m.token_count);
  }

  urcu_qsbr_read_lock();
  if (len > 0 && match_tokenize(&m, sl, subject, len))
    match_walk(&m, sl->root);
  struct sublist_result *r = m.failed ? NULL : result_build(m.found, m.found_count);
  urcu_qsbr_read_unlock();

  if (m.found != m.found_inline)
    free(m.found);
  free(heap);
  return r;
}
