/* SPDX-License-Identifier: Apache-2.0 */
/* Message routing. The publishing shard looks the subject up once (in its
 * cache first) and delivers to its own subscribers. Each other shard with
 * interest gets the message once, in a batch or by reference. That shard
 * delivers to its own subscribers after a lookup of its own, so a
 * subscription removed in the meantime gets nothing. A queue group gets one
 * copy: the publishing shard picks a member, preferring a local one, and a
 * remote shard whose member has gone picks another local member or passes
 * the message on. */
#include "core/route.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/client.h"
#include "core/msg.h"
#include "core/server.h"
#include "core/shard.h"
#include "core/sub-t.h"
#include "core/subcache.h"
#include "core/sublist.h"

/* The status message sent to a requester whose request matched nobody. */
static const char no_responders_header[] = "NATS/1.0 503\r\n\r\n";

/* Messages up to this size travel to other shards copied into a batch;
 * larger ones are stored once and shared by reference. */
#define ROUTE_BATCH_MSG_MAX (4 * 1024)

/* A small xorshift generator per thread, for picking queue members. */
static _Thread_local uint64_t pick_state = 0x9e3779b97f4a7c15ULL;

static uint32_t pick_random(uint32_t n) {
  pick_state ^= pick_state << 13;
  pick_state ^= pick_state >> 7;
  pick_state ^= pick_state << 17;
  return (uint32_t)(pick_state % n);
}

/* Picks a member of g, preferring members on shard s. Returns NULL when the
 * group has no deliverable member. */
static struct sub *pick_member(struct shard *s, const struct sublist_qgroup *g,
                               struct client *publisher) {
  uint32_t local = 0;
  for (uint32_t i = 0; i < g->member_count; i++) {
    struct sub *m = g->members[i];
    if (m->shard_id == s->id && !(m->client == publisher && publisher && !publisher->echo)) local++;
  }
  if (local > 0) {
    uint32_t k = pick_random(local);
    for (uint32_t i = 0; i < g->member_count; i++) {
      struct sub *m = g->members[i];
      if (m->shard_id != s->id || (m->client == publisher && publisher && !publisher->echo))
        continue;
      if (k-- == 0) return m;
    }
  }
  uint32_t remote = 0;
  for (uint32_t i = 0; i < g->member_count; i++) remote += g->members[i]->shard_id != s->id;
  if (remote == 0) return NULL;
  uint32_t k = pick_random(remote);
  for (uint32_t i = 0; i < g->member_count; i++) {
    struct sub *m = g->members[i];
    if (m->shard_id != s->id && k-- == 0) return m;
  }
  return NULL;
}

static void deliver_local(struct client *publisher, struct sub *sub, const char *subject,
                          uint32_t subject_len, const char *reply, uint32_t reply_len,
                          const char *data, uint32_t header_len, uint32_t total_len) {
  struct client *c = sub->client;
  if (c == NULL) {
    if (sub->deliver != NULL)
      sub->deliver(sub, subject, subject_len, reply, reply_len, data, header_len, total_len);
    return;
  }
  if (c == publisher && !c->echo) return;
  client_deliver(c, sub, subject, subject_len, reply, reply_len, data, header_len, total_len);
}

struct remote_plan {
  uint64_t plain_mask[4];  /* shards with plain subscribers, up to 256 */
};

static bool send_qpick(struct shard *s, uint32_t dst, struct msg *m, const char *queue,
                       uint32_t queue_len, uint32_t hops) {
  struct shard_qpick *q = malloc(sizeof *q + queue_len);
  if (q == NULL) {
    msg_release(m);
    return true;
  }
  q->hops = hops;
  q->queue_len = queue_len;
  memcpy(q->queue, queue, queue_len);
  struct ring_entry e = {.type = SHARD_ENTRY_QUEUE_MSG, .ptr = m, .a = (uint64_t)(uintptr_t)q};
  return shard_send(s, dst, &e);
}

bool route_publish(struct shard *s, struct client *publisher,
                   const char *subject, uint32_t subject_len,
                   const char *reply, uint32_t reply_len,
                   const char *data, uint32_t header_len, uint32_t total_len) {
  const struct sublist_result *r = subcache_match(s->cache, subject, subject_len);
  if (r == NULL) return true;

  if (r->plain_count == 0 && r->group_count == 0) {
    if (publisher != NULL && publisher->no_responders && publisher->headers && reply_len > 0) {
      return route_publish(s, NULL, reply, reply_len, NULL, 0, no_responders_header,
                           sizeof no_responders_header - 1, sizeof no_responders_header - 1);
    }
    return true;
  }

  /* Local plain subscribers now; remember which shards need a copy. */
  struct remote_plan plan = {{0}};
  uint32_t remote_count = 0;
  for (uint32_t i = 0; i < r->plain_count; i++) {
    struct sub *sub = r->plain[i];
    if (sub->shard_id == s->id) {
      deliver_local(publisher, sub, subject, subject_len, reply, reply_len, data, header_len,
                    total_len);
      continue;
    }
    uint64_t bit = 1ULL << (sub->shard_id & 63);
    if ((plan.plain_mask[sub->shard_id >> 6] & bit) == 0) {
      plan.plain_mask[sub->shard_id >> 6] |= bit;
      remote_count++;
    }
  }

  /* Queue groups: one member each. Remote picks are collected first so the
   * shared buffer is allocated once with the right reference count. */
  struct sub *remote_picks[64];
  const struct sublist_qgroup *remote_groups[64];
  uint32_t pick_count = 0;
  for (uint32_t i = 0; i < r->group_count; i++) {
    struct sub *m = pick_member(s, &r->groups[i], publisher);
    if (m == NULL) continue;
    if (m->shard_id == s->id) {
      deliver_local(publisher, m, subject, subject_len, reply, reply_len, data, header_len,
                    total_len);
    } else if (pick_count < 64) {
      remote_groups[pick_count] = &r->groups[i];
      remote_picks[pick_count++] = m;
    }
    /* TODO: more than 64 remote queue groups on one subject are not served;
     * no known fleet layout comes near it. */
  }

  uint32_t refs = remote_count + pick_count;
  if (refs == 0) return true;

  if (publisher != NULL) {
    for (int i = 0; i < 4; i++) publisher->remote_shards[i] |= plan.plain_mask[i];
    for (uint32_t i = 0; i < pick_count; i++) {
      uint32_t dst = remote_picks[i]->shard_id;
      publisher->remote_shards[dst >> 6] |= 1ULL << (dst & 63);
    }
  }

  bool room = true;
  if (total_len <= ROUTE_BATCH_MSG_MAX) {
    /* Small: a copy in each destination's batch. */
    for (uint32_t dst = 0; dst < (uint32_t)server.shard_count; dst++) {
      if ((plan.plain_mask[dst >> 6] & (1ULL << (dst & 63))) == 0) continue;
      room &= shard_batch_append(s, dst, SHARD_RECORD_PLAIN, 0, subject, subject_len, reply,
                                 reply_len, NULL, 0, data, header_len, total_len);
    }
    for (uint32_t i = 0; i < pick_count; i++) {
      const struct sublist_qgroup *g = remote_groups[i];
      room &= shard_batch_append(s, remote_picks[i]->shard_id, SHARD_RECORD_QUEUE, 1, subject,
                                 subject_len, reply, reply_len, g->queue,
                                 (uint16_t)g->queue_len, data, header_len, total_len);
    }
    return room;
  }

  /* Large: stored once and shared by reference. */
  struct msg *m = msg_create(subject, subject_len, reply, reply_len, data, header_len,
                             total_len, refs);
  if (m == NULL) return true;
  m->publisher_cid = publisher ? publisher->cid : 0;
  for (uint32_t dst = 0; dst < (uint32_t)server.shard_count; dst++) {
    if ((plan.plain_mask[dst >> 6] & (1ULL << (dst & 63))) == 0) continue;
    struct ring_entry e = {.type = SHARD_ENTRY_MSG, .ptr = m};
    room &= shard_send(s, dst, &e);
  }
  for (uint32_t i = 0; i < pick_count; i++) {
    room &= send_qpick(s, remote_picks[i]->shard_id, m, remote_groups[i]->queue,
                       remote_groups[i]->queue_len, 1);
  }
  return room;
}

/* A message as delivered on the destination shard, from a batch record or
 * a shared buffer. */
struct msg_view {
  const char *subject, *reply, *data;
  uint32_t subject_len, reply_len, header_len, total_len;
};

static void deliver_plain_here(struct shard *s, const struct msg_view *v) {
  const struct sublist_result *r = subcache_match(s->cache, v->subject, v->subject_len);
  if (r == NULL) return;
  for (uint32_t i = 0; i < r->plain_count; i++) {
    struct sub *sub = r->plain[i];
    if (sub->shard_id != s->id) continue;
    deliver_local(NULL, sub, v->subject, v->subject_len, v->reply, v->reply_len, v->data,
                  v->header_len, v->total_len);
  }
}

/* Delivers to one local member of the queue group, or passes the message
 * to another shard that has a member. Returns the member's shard when the
 * message must travel on, or -1 when it was delivered or has no member. */
static int deliver_queue_here(struct shard *s, const struct msg_view *v, const char *queue,
                              uint32_t queue_len, uint32_t hops) {
  const struct sublist_result *r = subcache_match(s->cache, v->subject, v->subject_len);
  const struct sublist_qgroup *g = NULL;
  for (uint32_t i = 0; r != NULL && i < r->group_count; i++) {
    if (r->groups[i].queue_len == queue_len && memcmp(r->groups[i].queue, queue, queue_len) == 0) {
      g = &r->groups[i];
      break;
    }
  }
  struct sub *member = g ? pick_member(s, g, NULL) : NULL;
  if (member == NULL) return -1;
  if (member->shard_id == s->id) {
    deliver_local(NULL, member, v->subject, v->subject_len, v->reply, v->reply_len, v->data,
                  v->header_len, v->total_len);
    return -1;
  }
  /* Every shard tried: the members left while the message travelled. */
  if (hops >= (uint32_t)server.shard_count) return -1;
  return (int)member->shard_id;
}

void route_on_record(struct shard *s, const struct shard_record *r) {
  const char *p = (const char *)(r + 1);
  struct msg_view v = {.subject = p, .subject_len = r->subject_len,
                       .reply = p + r->subject_len, .reply_len = r->reply_len,
                       .header_len = r->header_len, .total_len = r->total_len};
  const char *queue = v.reply + r->reply_len;
  v.data = queue + r->queue_len;
  if (r->kind == SHARD_RECORD_PLAIN) {
    deliver_plain_here(s, &v);
    return;
  }
  int next = deliver_queue_here(s, &v, queue, r->queue_len, r->hops);
  if (next >= 0) {
    shard_batch_append(s, (uint32_t)next, SHARD_RECORD_QUEUE, (uint8_t)(r->hops + 1), v.subject,
                       v.subject_len, v.reply, v.reply_len, queue, r->queue_len, v.data,
                       v.header_len, v.total_len);
  }
}

static struct msg_view view_of(const struct msg *m) {
  return (struct msg_view){.subject = m->subject, .subject_len = m->subject_len,
                           .reply = m->reply, .reply_len = m->reply_len, .data = m->data,
                           .header_len = m->header_len, .total_len = m->total_len};
}

void route_on_entry(struct shard *s, const struct ring_entry *e) {
  struct msg *m = e->ptr;
  switch (e->type) {
  case SHARD_ENTRY_MSG: {
    struct msg_view v = view_of(m);
    deliver_plain_here(s, &v);
    msg_release(m);
    break;
  }
  case SHARD_ENTRY_QUEUE_MSG: {
    struct shard_qpick *q = (struct shard_qpick *)(uintptr_t)e->a;
    struct msg_view v = view_of(m);
    int next = deliver_queue_here(s, &v, q->queue, q->queue_len, q->hops);
    if (next < 0) {
      msg_release(m);
      free(q);
      break;
    }
    q->hops++;
    struct ring_entry fwd = {.type = SHARD_ENTRY_QUEUE_MSG, .ptr = m, .a = (uint64_t)(uintptr_t)q};
    shard_send(s, (uint32_t)next, &fwd);
    break;
  }
  default:
    ASSERT(!"unknown ring entry type");
  }
}

static void free_internal_sub(struct rcu_head *head) {
  struct sub *sub = caa_container_of(head, struct sub, rcu);
  free(sub->subject);
  free(sub->queue);
  free(sub);
}

struct sub *route_subscribe_internal(uint32_t shard_id, const char *subject, const char *queue,
                                     void (*deliver)(struct sub *, const char *, uint32_t,
                                                     const char *, uint32_t, const char *,
                                                     uint32_t, uint32_t),
                                     void *ctx) {
  struct sub *sub = calloc(1, sizeof *sub);
  if (sub == NULL) return NULL;
  sub->subject = strdup(subject);
  sub->subject_len = (uint32_t)strlen(subject);
  if (queue != NULL) {
    sub->queue = strdup(queue);
    sub->queue_len = (uint32_t)strlen(queue);
  }
  sub->shard_id = shard_id;
  sub->deliver = deliver;
  sub->internal_ctx = ctx;
  if (sub->subject == NULL || (queue != NULL && sub->queue == NULL) ||
      sublist_insert(server.sublist, sub) != 0) {
    free(sub->subject);
    free(sub->queue);
    free(sub);
    return NULL;
  }
  return sub;
}

void route_unsubscribe_internal(struct sub *sub) {
  if (sublist_remove(server.sublist, sub) != 0) {
    sub->deliver = NULL; /* out of memory: leave it in the index, inert */
    return;
  }
  call_rcu(&sub->rcu, free_internal_sub);
}
