/* SPDX-License-Identifier: Apache-2.0 */
/* The account-wide stream registry: every stream's name, owning shard,
 * subjects and configuration. With it any shard checks a new stream's name
 * and subjects against all others and serves STREAM.NAMES, STREAM.LIST and
 * INFO requests. A mutex guards the list. Stream create, update and delete
 * take it, and the message path never does. Each entry's counters are
 * atomics written by the owning shard only. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/js_int.h"
#include "core/subject.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct js_reg_entry *registry_head;

/* Two subscription subjects overlap when some literal subject matches
 * both: token by token equal or a '*', and a '>' covers the rest. */
bool js_subjects_overlap(const char *a, const char *b) {
  for (;;) {
    size_t la = strcspn(a, ".");
    size_t lb = strcspn(b, ".");
    bool full_a = la == 1 && a[0] == '>';
    bool full_b = lb == 1 && b[0] == '>';
    if (full_a || full_b) return true;
    bool any = (la == 1 && a[0] == '*') || (lb == 1 && b[0] == '*');
    if (!any && (la != lb || memcmp(a, b, la) != 0)) return false;
    a += la;
    b += lb;
    if (*a == '\0' || *b == '\0') return *a == *b;
    a++;
    b++;
  }
}

static void free_subjects(char **subjects, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) free(subjects[i]);
  free(subjects);
}

static char **copy_subjects(const struct js_stream_config *cfg) {
  char **out = calloc(cfg->subject_count, sizeof *out);
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < cfg->subject_count; i++) {
    out[i] = strdup(cfg->subjects[i]);
    if (out[i] == NULL) {
      free_subjects(out, i);
      return NULL;
    }
  }
  return out;
}

/* Returns true when a subject of cfg overlaps a subject of another stream
 * than self. Caller holds registry_lock. */
static bool overlaps_locked(const struct js_stream_config *cfg, const struct js_reg_entry *self) {
  for (const struct js_reg_entry *e = registry_head; e != NULL; e = e->next) {
    if (e == self) continue;
    for (uint32_t i = 0; i < e->subject_count; i++) {
      for (uint32_t j = 0; j < cfg->subject_count; j++) {
        if (js_subjects_overlap(e->subjects[i], cfg->subjects[j])) return true;
      }
    }
  }
  return false;
}

int js_registry_add(const struct js_stream_config *cfg, uint32_t shard_id, int64_t created_ns,
                    const char *config_json, struct js_reg_entry **out, struct js_err *err) {
  struct js_reg_entry *entry = calloc(1, sizeof *entry);
  char *json = strdup(config_json);
  char **subjects = copy_subjects(cfg);
  if (entry == NULL || json == NULL || subjects == NULL) {
    free(entry);
    free(json);
    if (subjects != NULL) free_subjects(subjects, cfg->subject_count);
    js_err_set(err, 500, 10049, "insufficient resources");
    return -1;
  }
  snprintf(entry->name, sizeof entry->name, "%s", cfg->name);
  entry->shard_id = shard_id;
  entry->created_ns = created_ns;
  entry->storage = cfg->storage;
  entry->subjects = subjects;
  entry->subject_count = cfg->subject_count;
  entry->config_json = json;

  /* The name and subject checks and the insert form one critical section,
   * so two shards creating clashing streams at once cannot both succeed. */
  pthread_mutex_lock(&registry_lock);
  int rc = 0;
  for (struct js_reg_entry *e = registry_head; e != NULL; e = e->next) {
    if (strcmp(e->name, cfg->name) == 0) {
      js_err_set(err, 400, 10058, "stream name already in use with a different configuration");
      rc = -1;
      break;
    }
  }
  if (rc == 0 && overlaps_locked(cfg, NULL)) {
    js_err_set(err, 400, 10065, "subjects overlap with an existing stream");
    rc = -1;
  }
  if (rc == 0) {
    entry->next = registry_head;
    registry_head = entry;
  }
  pthread_mutex_unlock(&registry_lock);

  if (rc != 0) {
    free_subjects(subjects, cfg->subject_count);
    free(json);
    free(entry);
    return rc;
  }
  *out = entry;
  return 0;
}

int js_registry_update(struct js_reg_entry *e, const struct js_stream_config *cfg,
                       const char *config_json, struct js_err *err) {
  char *json = strdup(config_json);
  char **subjects = copy_subjects(cfg);
  if (json == NULL || subjects == NULL) {
    free(json);
    if (subjects != NULL) free_subjects(subjects, cfg->subject_count);
    js_err_set(err, 500, 10049, "insufficient resources");
    return -1;
  }
  pthread_mutex_lock(&registry_lock);
  bool overlap = overlaps_locked(cfg, e);
  if (!overlap) {
    char **old_subjects = e->subjects;
    uint32_t old_count = e->subject_count;
    char *old_json = e->config_json;
    e->subjects = subjects;
    e->subject_count = cfg->subject_count;
    e->config_json = json;
    subjects = old_subjects;
    json = old_json;
    pthread_mutex_unlock(&registry_lock);
    free_subjects(subjects, old_count);
    free(json);
    return 0;
  }
  pthread_mutex_unlock(&registry_lock);
  free_subjects(subjects, cfg->subject_count);
  free(json);
  js_err_set(err, 400, 10065, "subjects overlap with an existing stream");
  return -1;
}

void js_registry_remove(struct js_reg_entry *e) {
  pthread_mutex_lock(&registry_lock);
  for (struct js_reg_entry **p = &registry_head; *p != NULL; p = &(*p)->next) {
    if (*p == e) {
      *p = e->next;
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  atomic_fetch_sub(&js.used_bytes[e->storage], (int64_t)atomic_load(&e->stats.bytes));
  free_subjects(e->subjects, e->subject_count);
  free(e->config_json);
  free(e);
}

/* The store counts bytes as nats-server 2.9.10 does (store_msg_bytes), so
 * stream state and the max_file_store and max_memory_store usage take its
 * figure as it is. */
void js_stats_publish(struct js_reg_entry *e, const struct store_state *st) {
  struct js_stats *s = &e->stats;
  uint64_t bytes = st->bytes;
  /* Only the owning shard writes bytes, so the difference is exact. */
  int64_t delta = (int64_t)bytes - (int64_t)atomic_load_explicit(&s->bytes, memory_order_relaxed);
  if (delta != 0) atomic_fetch_add_explicit(&js.used_bytes[e->storage], delta, memory_order_relaxed);
  atomic_store_explicit(&s->messages, st->msgs, memory_order_relaxed);
  atomic_store_explicit(&s->bytes, bytes, memory_order_relaxed);
  /* nats-server shows first_seq 0 for a stream that never had a message. */
  uint64_t first = st->msgs == 0 && st->last_seq == 0 ? 0 : st->first_seq;
  atomic_store_explicit(&s->first_seq, first, memory_order_relaxed);
  atomic_store_explicit(&s->last_seq, st->last_seq, memory_order_relaxed);
  atomic_store_explicit(&s->first_ts_ns, st->first_ts_ns, memory_order_relaxed);
  atomic_store_explicit(&s->last_ts_ns, st->last_ts_ns, memory_order_relaxed);
  atomic_store_explicit(&s->num_subjects, st->num_subjects, memory_order_relaxed);
  /* Release order: a reader that loads num_deleted after our reply went
   * out also loads the other counters of this update. */
  atomic_store_explicit(&s->num_deleted, st->num_deleted, memory_order_release);
}

/* The "state" object of a stream info reply, with nats-server's omissions
 * of zero num_subjects and num_deleted. */
struct cJSON *js_info_state_json(const struct js_stats *s) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  uint64_t num_deleted = atomic_load_explicit(&s->num_deleted, memory_order_acquire);
  char ts[48];
  cJSON_AddNumberToObject(o, "messages", (double)atomic_load(&s->messages));
  cJSON_AddNumberToObject(o, "bytes", (double)atomic_load(&s->bytes));
  cJSON_AddNumberToObject(o, "first_seq", (double)atomic_load(&s->first_seq));
  js_time_format(atomic_load(&s->first_ts_ns), ts, sizeof ts);
  cJSON_AddStringToObject(o, "first_ts", ts);
  cJSON_AddNumberToObject(o, "last_seq", (double)atomic_load(&s->last_seq));
  js_time_format(atomic_load(&s->last_ts_ns), ts, sizeof ts);
  cJSON_AddStringToObject(o, "last_ts", ts);
  uint64_t subjects = atomic_load(&s->num_subjects);
  if (subjects > 0) cJSON_AddNumberToObject(o, "num_subjects", (double)subjects);
  if (num_deleted > 0) cJSON_AddNumberToObject(o, "num_deleted", (double)num_deleted);
  cJSON_AddNumberToObject(o, "consumer_count", atomic_load(&s->consumer_count));
  return o;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Collects the entries sorted by name, as nats-server lists them. Caller
 * holds registry_lock and frees the array. */
static struct js_reg_entry **sorted_locked(uint32_t *count) {
  uint32_t n = 0;
  for (struct js_reg_entry *e = registry_head; e != NULL; e = e->next) n++;
  struct js_reg_entry **all = calloc(n > 0 ? n : 1, sizeof *all);
  if (all == NULL) {
    *count = 0;
    return NULL;
  }
  n = 0;
  for (struct js_reg_entry *e = registry_head; e != NULL; e = e->next) all[n++] = e;
  /* name is the first member, so a pointer to the entry is a pointer to it. */
  qsort(all, n, sizeof *all, compare_names);
  *count = n;
  return all;
}

static bool entry_has_subject(const struct js_reg_entry *e, const char *filter) {
  if (filter == NULL || filter[0] == '\0') return true;
  for (uint32_t i = 0; i < e->subject_count; i++) {
    if (js_subjects_overlap(e->subjects[i], filter)) return true;
  }
  return false;
}

struct cJSON *js_registry_names(const char *subject_filter, int64_t offset, uint32_t *total) {
  cJSON *names = cJSON_CreateArray();
  pthread_mutex_lock(&registry_lock);
  uint32_t n = 0;
  struct js_reg_entry **all = sorted_locked(&n);
  uint32_t matched = 0;
  for (uint32_t i = 0; all != NULL && i < n; i++) {
    if (!entry_has_subject(all[i], subject_filter)) continue;
    if (matched >= offset && matched - offset < JS_NAMES_LIMIT)
      cJSON_AddItemToArray(names, cJSON_CreateString(all[i]->name));
    matched++;
  }
  pthread_mutex_unlock(&registry_lock);
  free(all);
  *total = matched;
  return names;
}

struct cJSON *js_registry_list(int64_t offset, uint32_t *total) {
  cJSON *list = cJSON_CreateArray();
  pthread_mutex_lock(&registry_lock);
  uint32_t n = 0;
  struct js_reg_entry **all = sorted_locked(&n);
  for (uint32_t i = 0; all != NULL && i < n; i++) {
    if (i < offset || i - offset >= JS_LIST_LIMIT) continue;
    struct js_reg_entry *e = all[i];
    cJSON *info = cJSON_CreateObject();
    cJSON *config = cJSON_Parse(e->config_json);
    if (info == NULL || config == NULL) {
      cJSON_Delete(info);
      cJSON_Delete(config);
      continue;
    }
    cJSON_AddItemToObject(info, "config", config);
    char ts[48];
    js_time_format(e->created_ns, ts, sizeof ts);
    cJSON_AddStringToObject(info, "created", ts);
    cJSON_AddItemToObject(info, "state", js_info_state_json(&e->stats));
    cJSON_AddItemToArray(list, info);
  }
  pthread_mutex_unlock(&registry_lock);
  free(all);
  *total = n;
  return list;
}

void js_registry_totals(uint64_t *streams, uint64_t *consumers, uint64_t *memory,
                        uint64_t *storage) {
  *streams = *consumers = *memory = *storage = 0;
  pthread_mutex_lock(&registry_lock);
  for (struct js_reg_entry *e = registry_head; e != NULL; e = e->next) {
    (*streams)++;
    *consumers += atomic_load(&e->stats.consumer_count);
    uint64_t bytes = atomic_load(&e->stats.bytes);
    if (e->storage == STORE_MEMORY)
      *memory += bytes;
    else
      *storage += bytes;
  }
  pthread_mutex_unlock(&registry_lock);
}
