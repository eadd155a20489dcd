/* SPDX-License-Identifier: Apache-2.0 */
/* Authorization checks. Permission lists are short, so each check walks
 * them; a client without permissions pays nothing. */
#include "core/auth.h"

#include <cjson/cJSON.h>
#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/opts.h"
#include "core/subject.h"

/* The most reply subjects one client may hold for responses; the oldest is
 * dropped beyond it, which bounds memory against a flood of requests. */
#define AUTH_RESPONSES_MAX 4096

bool auth_required(const struct opts *o) {
  return o->auth_token != NULL || o->auth_user != NULL || o->user_count > 0;
}

/* Compares without an early exit, so timing does not reveal the prefix. */
static bool secret_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = (unsigned char)(la != lb);
  for (size_t i = 0; i < la && i < lb; i++) diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static bool password_matches(const char *stored, const char *given) {
  if (stored == NULL || given == NULL) return false;
  if (strncmp(stored, "$2a$", 4) == 0 || strncmp(stored, "$2b$", 4) == 0 ||
      strncmp(stored, "$2y$", 4) == 0) {
    struct crypt_data data;
    memset(&data, 0, sizeof data);
    const char *hash = crypt_r(given, stored, &data);
    return hash != NULL && hash[0] != '*' && secret_equal(hash, stored);
  }
  return secret_equal(stored, given);
}

static const char *json_string(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const struct opts_user *find_user(const struct opts *o, const char *name) {
  for (int i = 0; name != NULL && i < o->user_count; i++) {
    if (strcmp(o->users[i].user, name) == 0) return &o->users[i];
  }
  return NULL;
}

int auth_check_connect(const struct opts *o, const void *connect_json,
                       const struct opts_user **user) {
  const cJSON *obj = connect_json;
  const char *name = json_string(obj, "user");
  const char *pass = json_string(obj, "pass");
  const char *token = json_string(obj, "auth_token");
  *user = NULL;

  if (o->user_count > 0) {
    bool anonymous = name == NULL && pass == NULL && token == NULL;
    if (anonymous && o->no_auth_user != NULL) {
      *user = find_user(o, o->no_auth_user);
      return *user != NULL ? 0 : -EACCES;
    }
    const struct opts_user *u = find_user(o, name);
    if (u == NULL || !password_matches(u->password, pass)) return -EACCES;
    *user = u;
    return 0;
  }
  if (o->auth_token != NULL) {
    return token != NULL && secret_equal(o->auth_token, token) ? 0 : -EACCES;
  }
  if (o->auth_user != NULL) {
    if (name == NULL || strcmp(name, o->auth_user) != 0) return -EACCES;
    return password_matches(o->auth_password, pass) ? 0 : -EACCES;
  }
  return 0;
}

/* Returns true when every subject the pattern `sub` can match is matched by
 * `pattern`, token by token: '>' covers the rest, '*' covers one token
 * (including a '*' of sub), a literal covers only itself. */
static bool subject_subset(const char *sub, size_t sub_len, const char *pattern,
                           size_t pattern_len) {
  size_t i = 0, j = 0;
  for (;;) {
    size_t si = i, pj = j;
    while (i < sub_len && sub[i] != '.') i++;
    while (j < pattern_len && pattern[j] != '.') j++;
    size_t st = i - si, pt = j - pj;
    bool p_full = pt == 1 && pattern[pj] == '>';
    bool p_star = pt == 1 && pattern[pj] == '*';
    bool s_full = st == 1 && sub[si] == '>';
    if (p_full) return true;
    if (s_full) return false;
    if (!p_star && (st != pt || memcmp(sub + si, pattern + pj, st) != 0)) return false;
    bool sub_end = i >= sub_len, pattern_end = j >= pattern_len;
    if (sub_end || pattern_end) return sub_end && pattern_end;
    i++;
    j++;
  }
}

/* One permission entry is "subject" or "subject queue". */
static void split_entry(const char *entry, size_t *subject_len, const char **queue) {
  const char *space = strchr(entry, ' ');
  if (space == NULL) {
    *subject_len = strlen(entry);
    *queue = NULL;
    return;
  }
  *subject_len = (size_t)(space - entry);
  while (*space == ' ') space++;
  *queue = *space ? space : NULL;
}

static bool list_covers(char **list, const char *subject, size_t len) {
  for (char **p = list; p != NULL && *p != NULL; p++) {
    if (subject_subset(subject, len, *p, strlen(*p))) return true;
  }
  return false;
}

bool auth_can_publish(const struct opts_user *u, const char *subject, size_t len) {
  if (u == NULL) return true;
  if (u->pub_allow != NULL && !list_covers(u->pub_allow, subject, len)) return false;
  return !list_covers(u->pub_deny, subject, len);
}

/* Whether an entry of a subscribe list applies to the SUB: a queue entry
 * applies only to SUBs in that queue group. */
static bool sub_list_covers(char **list, const char *subject, size_t len, const char *queue,
                            size_t queue_len) {
  for (char **p = list; p != NULL && *p != NULL; p++) {
    size_t entry_len;
    const char *entry_queue;
    split_entry(*p, &entry_len, &entry_queue);
    if (entry_queue != NULL &&
        (queue_len == 0 || strlen(entry_queue) != queue_len ||
         memcmp(entry_queue, queue, queue_len) != 0))
      continue;
    if (subject_subset(subject, len, *p, entry_len)) return true;
  }
  return false;
}

bool auth_can_subscribe(const struct opts_user *u, const char *subject, size_t len,
                        const char *queue, size_t queue_len) {
  if (u == NULL) return true;
  if (u->sub_allow != NULL && !sub_list_covers(u->sub_allow, subject, len, queue, queue_len))
    return false;
  return !sub_list_covers(u->sub_deny, subject, len, queue, queue_len);
}

bool auth_can_deliver(const struct opts_user *u, const char *subject, size_t len) {
  if (u == NULL || u->sub_deny == NULL) return true;
  for (char **p = u->sub_deny; *p != NULL; p++) {
    size_t entry_len;
    const char *entry_queue;
    split_entry(*p, &entry_len, &entry_queue);
    if (entry_queue == NULL && subject_matches(*p, entry_len, subject, len)) return false;
  }
  return true;
}

struct auth_response {
  char *subject;
  size_t len;
  int64_t remaining; /* negative: no limit */
  int64_t expires_ms; /* 0: never */
};

void auth_responses_add(struct auth_responses *r, const struct opts_user *u,
                        const char *reply, size_t len, int64_t now_ms) {
  if (r->count == AUTH_RESPONSES_MAX) {
    free(r->items[0].subject);
    memmove(&r->items[0], &r->items[1], (r->count - 1) * sizeof r->items[0]);
    r->count--;
  }
  if (r->count == r->cap) {
    uint32_t cap = r->cap ? r->cap * 2 : 8;
    struct auth_response *items = realloc(r->items, cap * sizeof *items);
    if (items == NULL) return;
    r->items = items;
    r->cap = cap;
  }
  char *copy = malloc(len);
  if (copy == NULL) return;
  memcpy(copy, reply, len);
  r->items[r->count++] = (struct auth_response){
      .subject = copy,
      .len = len,
      .remaining = u->responses_max,
      .expires_ms = u->responses_expires_ms > 0 ? now_ms + u->responses_expires_ms : 0,
  };
}

static void remove_at(struct auth_responses *r, uint32_t i) {
  free(r->items[i].subject);
  r->items[i] = r->items[--r->count];
}

bool auth_responses_take(struct auth_responses *r, const char *subject, size_t len,
                         int64_t now_ms) {
  for (uint32_t i = 0; i < r->count;) {
    struct auth_response *it = &r->items[i];
    if (it->expires_ms != 0 && now_ms > it->expires_ms) {
      remove_at(r, i);
      continue;
    }
    if (it->len == len && memcmp(it->subject, subject, len) == 0) {
      if (it->remaining > 0 && --it->remaining == 0) remove_at(r, i);
      return true;
    }
    i++;
  }
  return false;
}

void auth_responses_free(struct auth_responses *r) {
  for (uint32_t i = 0; i < r->count; i++) free(r->items[i].subject);
  free(r->items);
  memset(r, 0, sizeof *r);
}
