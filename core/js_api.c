/* SPDX-License-Identifier: Apache-2.0 */
/* The JetStream API handlers for the account and its streams, run by the
 * JetStream hook of the shard that owns the request: account-wide requests
 * on shard 0, stream requests on the stream's shard. Replies carry
 * nats-server 2.9.10's type strings, fields and error codes. Consumer
 * requests go on to js_consumer.c. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/js_int.h"
#include "core/server.h"

#define TYPE_PREFIX "io.nats.jetstream.api.v1."

static atomic_uint_fast64_t api_total;
static atomic_uint_fast64_t api_errors;

/* The API subject split after "$JS.API.": up to 8 tokens. */
struct api_tokens {
  const char *tok[8];
  size_t len[8];
  int count;
};

static void split_tokens(const char *subject, size_t subject_len, struct api_tokens *t) {
  t->count = 0;
  size_t prefix = sizeof JS_API_PREFIX - 1;
  if (subject_len <= prefix) return;
  const char *p = subject + prefix;
  const char *end = subject + subject_len;
  while (p < end && t->count < 8) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    if (dot == NULL) dot = end;
    t->tok[t->count] = p;
    t->len[t->count] = (size_t)(dot - p);
    t->count++;
    p = dot + 1;
  }
}

static bool tok_is(const struct api_tokens *t, int i, const char *word) {
  return i < t->count && t->len[i] == strlen(word) && memcmp(t->tok[i], word, t->len[i]) == 0;
}

/* The index of the token naming the stream, or -1 for account-wide
 * requests. */
static int stream_token(const struct api_tokens *t) {
  if (tok_is(t, 0, "STREAM")) {
    if (tok_is(t, 1, "NAMES") || tok_is(t, 1, "LIST")) return -1;
    return tok_is(t, 1, "MSG") ? 3 : 2;
  }
  if (tok_is(t, 0, "CONSUMER"))
    return tok_is(t, 1, "DURABLE") || tok_is(t, 1, "MSG") ? 3 : 2;
  if (tok_is(t, 0, "DIRECT")) return 2;
  return -1;
}

bool js_api_owned_here(uint32_t shard_id, const char *subject, uint32_t subject_len) {
  struct api_tokens t;
  split_tokens(subject, subject_len, &t);
  int i = stream_token(&t);
  if (i < 0 || i >= t.count) return shard_id == 0;
  return js_owner_of(t.tok[i], t.len[i]) == shard_id;
}

static cJSON *parse_body(const struct js_request *req, bool *invalid) {
  *invalid = false;
  if (req->data_len == 0) return NULL;
  cJSON *body = cJSON_Parse(req->data);
  if (body == NULL || !cJSON_IsObject(body)) {
    cJSON_Delete(body);
    *invalid = true;
    return NULL;
  }
  return body;
}

static void reply_error(struct js_shard *jsh, const struct js_request *req, const char *type,
                        const struct js_err *err) {
  atomic_fetch_add(&api_errors, 1);
  cJSON *resp = js_response(type);
  js_response_error(resp, err);
  js_send_json(jsh, req->reply, resp);
}

static void reply_not_found(struct js_shard *jsh, const struct js_request *req, const char *type) {
  struct js_err err;
  js_err_set(&err, 404, 10059, "stream not found");
  reply_error(jsh, req, type, &err);
}

static void handle_account_info(struct js_shard *jsh, const struct js_request *req) {
  uint64_t streams, consumers, memory, storage;
  js_registry_totals(&streams, &consumers, &memory, &storage);
  cJSON *resp = js_response(TYPE_PREFIX "account_info_response");
  cJSON_AddNumberToObject(resp, "memory", (double)memory);
  cJSON_AddNumberToObject(resp, "storage", (double)storage);
  cJSON_AddNumberToObject(resp, "streams", (double)streams);
  cJSON_AddNumberToObject(resp, "consumers", (double)consumers);
  cJSON *limits = cJSON_AddObjectToObject(resp, "limits");
  /* These are the account's own limits, which shoal does not have yet.
   * nats-server 2.9 reports -1 for them too when only the server-wide
   * max_memory_store and max_file_store are set. */
  cJSON_AddNumberToObject(limits, "max_memory", -1);
  cJSON_AddNumberToObject(limits, "max_storage", -1);
  cJSON_AddNumberToObject(limits, "max_streams", -1);
  cJSON_AddNumberToObject(limits, "max_consumers", -1);
  cJSON_AddNumberToObject(limits, "max_ack_pending", -1);
  cJSON_AddNumberToObject(limits, "memory_max_stream_bytes", -1);
  cJSON_AddNumberToObject(limits, "storage_max_stream_bytes", -1);
  cJSON_AddBoolToObject(limits, "max_bytes_required", false);
  cJSON *api = cJSON_AddObjectToObject(resp, "api");
  cJSON_AddNumberToObject(api, "total", (double)atomic_load(&api_total));
  cJSON_AddNumberToObject(api, "errors", (double)atomic_load(&api_errors));
  js_send_json(jsh, req->reply, resp);
}

static int64_t body_int(const cJSON *body, const char *key, int64_t fallback) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
  return cJSON_IsNumber(v) ? js_clamp_i64(v->valuedouble) : fallback;
}

static const char *body_string(const cJSON *body, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void handle_names(struct js_shard *jsh, const struct js_request *req, bool list) {
  const char *type = list ? TYPE_PREFIX "stream_list_response" : TYPE_PREFIX "stream_names_response";
  bool invalid;
  cJSON *body = parse_body(req, &invalid);
  if (invalid) {
    struct js_err err;
    js_err_set(&err, 400, 10025, "invalid JSON");
    atomic_fetch_add(&api_errors, 1);
    cJSON *resp = js_response(type);
    js_response_error(resp, &err);
    cJSON_AddNumberToObject(resp, "total", 0);
    cJSON_AddNumberToObject(resp, "offset", 0);
    cJSON_AddNumberToObject(resp, "limit", 0);
    cJSON_AddNullToObject(resp, "streams");
    js_send_json(jsh, req->reply, resp);
    return;
  }
  int64_t offset = body_int(body, "offset", 0);
  if (offset < 0) offset = 0;
  uint32_t total = 0;
  cJSON *items = list ? js_registry_list(offset, &total)
                      : js_registry_names(body_string(body, "subject"), offset, &total);
  cJSON_Delete(body);
  cJSON *resp = js_response(type);
  cJSON_AddNumberToObject(resp, "total", total);
  cJSON_AddNumberToObject(resp, "offset", (double)offset);
  cJSON_AddNumberToObject(resp, "limit", list ? JS_LIST_LIMIT : JS_NAMES_LIMIT);
  if (cJSON_GetArraySize(items) == 0) {
    cJSON_Delete(items);
    cJSON_AddNullToObject(resp, "streams");
  } else {
    cJSON_AddItemToObject(resp, "streams", items);
  }
  js_send_json(jsh, req->reply, resp);
}

/* Parses the configuration of a CREATE or UPDATE and checks that it names
 * the stream of the subject. */
static int parse_stream_request(const struct js_request *req, const char *name,
                                struct js_stream_config *cfg, struct js_err *err) {
  cJSON *body = cJSON_Parse(req->data);
  if (body == NULL) {
    js_err_set(err, 400, 10025, "invalid JSON");
    return -1;
  }
  int rc = js_config_parse(body, cfg, err);
  cJSON_Delete(body);
  if (rc != 0) return -1;
  if (strcmp(cfg->name, name) != 0) {
    js_config_free(cfg);
    js_err_set(err, 400, 10056, "stream name in subject does not match request");
    return -1;
  }
  return 0;
}

static bool same_config(const struct js_stream_config *a, const struct js_stream_config *b) {
  cJSON *ja = js_config_json(a);
  cJSON *jb = js_config_json(b);
  bool same = ja != NULL && jb != NULL && cJSON_Compare(ja, jb, true);
  cJSON_Delete(ja);
  cJSON_Delete(jb);
  return same;
}

static void handle_create(struct js_shard *jsh, const struct js_request *req, const char *name) {
  const char *type = TYPE_PREFIX "stream_create_response";
  struct js_stream_config cfg;
  struct js_err err = {0};
  if (parse_stream_request(req, name, &cfg, &err) != 0) {
    reply_error(jsh, req, type, &err);
    return;
  }
  if (cfg.sealed) {
    js_err_set(&err, 500, 10052, "stream configuration for create can not be sealed");
    reply_error(jsh, req, type, &err);
    js_config_free(&cfg);
    return;
  }
  if (!js_name_valid(cfg.name)) {
    js_err_set(&err, 400, 10131, "stream name is invalid");
    reply_error(jsh, req, type, &err);
    js_config_free(&cfg);
    return;
  }
  int64_t max = cfg.storage == STORE_MEMORY ? server.opts.max_memory_store : server.opts.max_file_store;
  if (max >= 0 && cfg.max_bytes > max) {
    if (cfg.storage == STORE_MEMORY)
      js_err_set(&err, 500, 10028, "insufficient memory resources available");
    else
      js_err_set(&err, 500, 10047, "insufficient storage resources available");
    reply_error(jsh, req, type, &err);
    js_config_free(&cfg);
    return;
  }
  struct js_stream *st = js_stream_find(jsh, name);
  if (st != NULL) {
    /* Creating an existing stream with the same configuration succeeds. */
    bool same = same_config(&st->cfg, &cfg);
    js_config_free(&cfg);
    if (!same) {
      js_err_set(&err, 400, 10058, "stream name already in use with a different configuration");
      reply_error(jsh, req, type, &err);
      return;
    }
  } else {
    int rc = js_stream_create(jsh, &cfg, js_now_ns(), false, &st, &err);
    js_config_free(&cfg);
    if (rc != 0) {
      reply_error(jsh, req, type, &err);
      return;
    }
  }
  cJSON *resp = js_stream_info_json(st, type);
  cJSON_AddBoolToObject(resp, "did_create", true);
  js_send_json(jsh, req->reply, resp);
}

static void handle_update(struct js_shard *jsh, const struct js_request *req, const char *name) {
  const char *type = TYPE_PREFIX "stream_update_response";
  struct js_stream_config cfg;
  struct js_err err = {0};
  if (parse_stream_request(req, name, &cfg, &err) != 0) {
    reply_error(jsh, req, type, &err);
    return;
  }
  struct js_stream *st = js_stream_find(jsh, name);
  int rc = -1;
  if (st == NULL)
    js_err_set(&err, 404, 10059, "stream not found");
  else
    rc = js_stream_update(st, &cfg, &err);
  js_config_free(&cfg);
  if (rc != 0) {
    reply_error(jsh, req, type, &err);
    return;
  }
  js_send_json(jsh, req->reply, js_stream_info_json(st, type));
}

struct subject_counts {
  cJSON *map;
  uint32_t count;
};

static void add_subject_count(void *ctx, const char *subject, size_t len, uint64_t msgs) {
  struct subject_counts *sc = ctx;
  if (msgs == 0) return;
  char *key = strndup(subject, len);
  if (key == NULL) return;
  cJSON_AddNumberToObject(sc->map, key, (double)msgs);
  free(key);
  sc->count++;
}

/* Adds "subjects" with per-subject counts to state when the request has
 * subjects_filter, before consumer_count as nats-server orders it.
 * Returns the number of subjects added. */
static uint32_t add_subjects_filter(const struct js_request *req, struct js_stream *st,
                                    cJSON *state) {
  bool invalid;
  cJSON *body = parse_body(req, &invalid);
  const char *filter = body_string(body, "subjects_filter");
  struct subject_counts sc = {cJSON_CreateObject(), 0};
  if (filter != NULL && sc.map != NULL && state != NULL) {
    store_subjects(st->store, filter, strlen(filter), add_subject_count, &sc);
    cJSON *consumers = cJSON_DetachItemFromObjectCaseSensitive(state, "consumer_count");
    cJSON_AddItemToObject(state, "subjects", sc.map);
    sc.map = NULL;
    if (consumers != NULL) cJSON_AddItemToObject(state, "consumer_count", consumers);
  }
  cJSON_Delete(sc.map);
  cJSON_Delete(body);
  return sc.count;
}

static void handle_info(struct js_shard *jsh, const struct js_request *req, struct js_stream *st) {
  const char *type = TYPE_PREFIX "stream_info_response";
  cJSON *resp;
  if (st == NULL) {
    atomic_fetch_add(&api_errors, 1);
    resp = js_response(type);
    struct js_err err;
    js_err_set(&err, 404, 10059, "stream not found");
    js_response_error(resp, &err);
  } else {
    resp = js_stream_info_json(st, type);
    /* nats-server 2.9 puts the paging fields right after the type. */
    cJSON *config = cJSON_DetachItemFromObjectCaseSensitive(resp, "config");
    cJSON *created = cJSON_DetachItemFromObjectCaseSensitive(resp, "created");
    cJSON *state = cJSON_DetachItemFromObjectCaseSensitive(resp, "state");
    uint32_t subjects = add_subjects_filter(req, st, state);
    cJSON_AddNumberToObject(resp, "total", subjects);
    cJSON_AddNumberToObject(resp, "offset", 0);
    cJSON_AddNumberToObject(resp, "limit", subjects > 0 ? 100000 : 0);
    cJSON_AddItemToObject(resp, "config", config);
    cJSON_AddItemToObject(resp, "created", created);
    cJSON_AddItemToObject(resp, "state", state);
    js_send_json(jsh, req->reply, resp);
    return;
  }
  cJSON_AddNumberToObject(resp, "total", 0);
  cJSON_AddNumberToObject(resp, "offset", 0);
  cJSON_AddNumberToObject(resp, "limit", 0);
  js_send_json(jsh, req->reply, resp);
}

static void handle_delete(struct js_shard *jsh, const struct js_request *req, struct js_stream *st) {
  const char *type = TYPE_PREFIX "stream_delete_response";
  if (st == NULL) {
    reply_not_found(jsh, req, type);
    return;
  }
  js_stream_delete(st);
  cJSON *resp = js_response(type);
  cJSON_AddBoolToObject(resp, "success", true);
  js_send_json(jsh, req->reply, resp);
}

static void purge_error(struct js_shard *jsh, const struct js_request *req, const struct js_err *err) {
  atomic_fetch_add(&api_errors, 1);
  cJSON *resp = js_response(TYPE_PREFIX "stream_purge_response");
  js_response_error(resp, err);
  cJSON_AddNumberToObject(resp, "purged", 0);
  js_send_json(jsh, req->reply, resp);
}

static void handle_purge(struct js_shard *jsh, const struct js_request *req, struct js_stream *st) {
  struct js_err err = {0};
  if (st == NULL) {
    reply_not_found(jsh, req, TYPE_PREFIX "stream_purge_response");
    return;
  }
  bool invalid;
  cJSON *body = parse_body(req, &invalid);
  if (invalid) {
    js_err_set(&err, 400, 10025, "invalid JSON");
    purge_error(jsh, req, &err);
    return;
  }
  if (st->cfg.sealed) {
    cJSON_Delete(body);
    js_err_set(&err, 400, 10109, "invalid operation on sealed stream");
    purge_error(jsh, req, &err);
    return;
  }
  if (st->cfg.deny_purge) {
    cJSON_Delete(body);
    js_err_set(&err, 500, 10110, "stream purge not permitted");
    purge_error(jsh, req, &err);
    return;
  }
  const char *filter = body_string(body, "filter");
  struct store_purge p = {
      .filter = filter,
      .filter_len = filter != NULL ? strlen(filter) : 0,
      .up_to_seq = (uint64_t)body_int(body, "seq", 0),
      .keep = (uint64_t)body_int(body, "keep", 0),
  };
  uint64_t purged = 0;
  int rc = p.up_to_seq > 0 && p.keep > 0 ? -EINVAL : store_purge(st->store, &p, &purged);
  cJSON_Delete(body);
  if (rc != 0) {
    js_err_set(&err, 400, 10003, "bad request");
    purge_error(jsh, req, &err);
    return;
  }
  js_stream_refresh_stats(st);
  cJSON *resp = js_response(TYPE_PREFIX "stream_purge_response");
  cJSON_AddBoolToObject(resp, "success", true);
  cJSON_AddNumberToObject(resp, "purged", (double)purged);
  js_send_json(jsh, req->reply, resp);
}

static cJSON *message_json(const struct store_msg *m) {
  cJSON *msg = cJSON_CreateObject();
  char *subject = strndup(m->subject, m->subject_len);
  size_t enc_cap = 4 * ((m->hdr_len > m->data_len ? m->hdr_len : m->data_len) / 3 + 1) + 1;
  char *enc = malloc(enc_cap);
  if (msg == NULL || subject == NULL || enc == NULL) {
    free(subject);
    free(enc);
    cJSON_Delete(msg);
    return NULL;
  }
  cJSON_AddStringToObject(msg, "subject", subject);
  cJSON_AddNumberToObject(msg, "seq", (double)m->seq);
  if (m->hdr_len > 0) {
    js_base64_encode(m->hdr, m->hdr_len, enc);
    cJSON_AddStringToObject(msg, "hdrs", enc);
  }
  if (m->data_len > 0) {
    js_base64_encode(m->data, m->data_len, enc);
    cJSON_AddStringToObject(msg, "data", enc);
  }
  char ts[48];
  js_time_format(m->ts_ns, ts, sizeof ts);
  cJSON_AddStringToObject(msg, "time", ts);
  free(subject);
  free(enc);
  return msg;
}

static void handle_msg_get(struct js_shard *jsh, const struct js_request *req, struct js_stream *st) {
  const char *type = TYPE_PREFIX "stream_msg_get_response";
  struct js_err err = {0};
  if (st == NULL) {
    reply_not_found(jsh, req, type);
    return;
  }
  bool invalid;
  cJSON *body = parse_body(req, &invalid);
  int64_t seq = body_int(body, "seq", 0);
  const char *last = body_string(body, "last_by_subj");
  const char *next = body_string(body, "next_by_subj");
  struct store_msg m = {0};
  int rc = -ENOENT;
  if (invalid) {
    js_err_set(&err, 400, 10025, "invalid JSON");
  } else if ((seq > 0 && last != NULL) || (seq <= 0 && last == NULL && next == NULL) ||
             (last != NULL && next != NULL)) {
    js_err_set(&err, 400, 10003, "bad request");
  } else {
    if (last != NULL)
      rc = store_read_last(st->store, last, strlen(last), &m);
    else if (next != NULL)
      rc = store_read_next(st->store, seq > 0 ? (uint64_t)seq : 1, next, strlen(next), &m);
    else
      rc = store_read(st->store, (uint64_t)seq, &m);
    if (rc != 0) js_err_set(&err, 404, 10037, "no message found");
  }
  cJSON_Delete(body);
  if (rc != 0) {
    store_msg_free(&m);
    reply_error(jsh, req, type, &err);
    return;
  }
  cJSON *resp = js_response(type);
  cJSON_AddItemToObject(resp, "message", message_json(&m));
  store_msg_free(&m);
  js_send_json(jsh, req->reply, resp);
}

/* Sets nats-server 2.9's error for deleting a missing sequence. Its memory
 * store reports every miss as "sequence N not found". Its file store
 * reports that only for a gap inside the stream, and a sequence before the
 * first or after the last comes back as a store error. */
static void set_delete_not_found(const struct js_stream *st, uint64_t seq, struct js_err *err) {
  struct store_state state;
  store_state(st->store, &state);
  if (st->cfg.storage == STORE_FILE && seq > state.last_seq) {
    js_err_set(err, 500, 10057, "stream store EOF");
  } else if (st->cfg.storage == STORE_FILE && seq < state.first_seq) {
    js_err_set(err, 500, 10057, "no message found");
  } else {
    js_err_set(err, 400, 10043, "sequence %llu not found", (unsigned long long)seq);
  }
}

static void handle_msg_delete(struct js_shard *jsh, const struct js_request *req,
                              struct js_stream *st) {
  const char *type = TYPE_PREFIX "stream_msg_delete_response";
  struct js_err err = {0};
  if (st == NULL) {
    reply_not_found(jsh, req, type);
    return;
  }
  bool invalid;
  cJSON *body = parse_body(req, &invalid);
  int64_t seq = body_int(body, "seq", 0);
  cJSON_Delete(body);
  if (invalid) {
    js_err_set(&err, 400, 10025, "invalid JSON");
  } else if (st->cfg.sealed) {
    js_err_set(&err, 400, 10109, "invalid operation on sealed stream");
  } else if (st->cfg.deny_delete) {
    js_err_set(&err, 500, 10057, "message delete not permitted");
  } else if (seq <= 0) {
    js_err_set(&err, 400, 10003, "bad request");
  } else if (store_delete(st->store, (uint64_t)seq) != 0) {
    set_delete_not_found(st, (uint64_t)seq, &err);
  }
  if (err.code != 0) {
    reply_error(jsh, req, type, &err);
    return;
  }
  js_stream_refresh_stats(st);
  cJSON *resp = js_response(type);
  cJSON_AddBoolToObject(resp, "success", true);
  js_send_json(jsh, req->reply, resp);
}

static void direct_status(struct js_shard *jsh, const struct js_request *req, const char *status) {
  char hdr[128];
  int n = snprintf(hdr, sizeof hdr, "NATS/1.0 %s\r\n\r\n", status);
  js_send(jsh, req->reply, NULL, hdr, (uint32_t)n, NULL, 0);
}

/* Sends m as a direct get reply: its own headers followed by Nats-Stream,
 * Nats-Subject, Nats-Sequence and Nats-Time-Stamp, as nats-server 2.9 does. */
static void direct_reply(struct js_shard *jsh, const struct js_request *req, struct js_stream *st,
                         const struct store_msg *m) {
  size_t own = m->hdr_len;
  /* Drop the blank line that ends the stored block, keeping its headers. */
  if (own >= 4 && memcmp(m->hdr + own - 4, "\r\n\r\n", 4) == 0) own -= 2;
  size_t cap = own + m->subject_len + strlen(st->cfg.name) + 160;
  char *hdr = malloc(cap);
  if (hdr == NULL) return;
  size_t n = 0;
  if (own > 0) {
    memcpy(hdr, m->hdr, own);
    n = own;
  } else {
    n = (size_t)snprintf(hdr, cap, "NATS/1.0\r\n");
  }
  char ts[48];
  js_time_format(m->ts_ns, ts, sizeof ts);
  n += (size_t)snprintf(hdr + n, cap - n,
                        "Nats-Stream: %s\r\nNats-Subject: %.*s\r\nNats-Sequence: %" PRIu64
                        "\r\nNats-Time-Stamp: %s\r\n\r\n",
                        st->cfg.name, (int)m->subject_len, m->subject, m->seq, ts);
  js_send(jsh, req->reply, NULL, hdr, (uint32_t)n, m->data, m->data_len);
  free(hdr);
}

/* $JS.API.DIRECT.GET.<stream> with a JSON body, or with the subject of the
 * last message to read appended to the API subject. */
static void handle_direct_get(struct js_shard *jsh, const struct js_request *req,
                              struct js_stream *st, const char *last_subject) {
  if (st == NULL || !st->cfg.allow_direct || req->reply[0] == '\0') return;
  struct store_msg m = {0};
  int rc;
  if (last_subject != NULL) {
    rc = store_read_last(st->store, last_subject, strlen(last_subject), &m);
  } else {
    bool invalid;
    cJSON *body = parse_body(req, &invalid);
    int64_t seq = body_int(body, "seq", 0);
    const char *last = body_string(body, "last_by_subj");
    const char *next = body_string(body, "next_by_subj");
    if (invalid || body == NULL || (seq <= 0 && last == NULL && next == NULL)) {
      cJSON_Delete(body);
      direct_status(jsh, req, "408 Malformed Request");
      return;
    }
    if (last != NULL)
      rc = store_read_last(st->store, last, strlen(last), &m);
    else if (next != NULL)
      rc = store_read_next(st->store, seq > 0 ? (uint64_t)seq : 1, next, strlen(next), &m);
    else
      rc = store_read(st->store, (uint64_t)seq, &m);
    cJSON_Delete(body);
  }
  if (rc == 0)
    direct_reply(jsh, req, st, &m);
  else
    direct_status(jsh, req, "404 Message Not Found");
  store_msg_free(&m);
}

/* Dispatches a stream request; name is the stream token. */
static void handle_stream(struct js_shard *jsh, const struct js_request *req,
                          const struct api_tokens *t, const char *name) {
  struct js_stream *st = js_stream_find(jsh, name);
  if (tok_is(t, 1, "CREATE") && t->count == 3)
    handle_create(jsh, req, name);
  else if (tok_is(t, 1, "UPDATE") && t->count == 3)
    handle_update(jsh, req, name);
  else if (tok_is(t, 1, "INFO") && t->count == 3)
    handle_info(jsh, req, st);
  else if (tok_is(t, 1, "DELETE") && t->count == 3)
    handle_delete(jsh, req, st);
  else if (tok_is(t, 1, "PURGE") && t->count == 3)
    handle_purge(jsh, req, st);
  else if (tok_is(t, 1, "MSG") && tok_is(t, 2, "GET") && t->count == 4)
    handle_msg_get(jsh, req, st);
  else if (tok_is(t, 1, "MSG") && tok_is(t, 2, "DELETE") && t->count == 4)
    handle_msg_delete(jsh, req, st);
}

void js_api_handle(struct js_shard *jsh, struct js_request *req) {
  if (strncmp(req->subject, "$JS.ACK.", 8) == 0) {
    js_consumer_ack(jsh, req);
    return;
  }
  struct api_tokens t;
  split_tokens(req->subject, strlen(req->subject), &t);
  atomic_fetch_add(&api_total, 1);
  if (t.count == 1 && tok_is(&t, 0, "INFO")) {
    handle_account_info(jsh, req);
    return;
  }
  if (tok_is(&t, 0, "STREAM") && t.count == 2 && (tok_is(&t, 1, "NAMES") || tok_is(&t, 1, "LIST"))) {
    handle_names(jsh, req, tok_is(&t, 1, "LIST"));
    return;
  }
  int i = stream_token(&t);
  if (i < 0 || i >= t.count || t.len[i] > JS_NAME_MAX) return; /* unknown: no reply, as nats-server */
  char name[JS_NAME_MAX + 1];
  memcpy(name, t.tok[i], t.len[i]);
  name[t.len[i]] = '\0';
  if (tok_is(&t, 0, "STREAM")) {
    handle_stream(jsh, req, &t, name);
  } else if (tok_is(&t, 0, "DIRECT") && tok_is(&t, 1, "GET")) {
    /* Everything after the stream token is the subject to read. */
    const char *last = t.count > 3 ? t.tok[3] : NULL;
    handle_direct_get(jsh, req, js_stream_find(jsh, name), last);
  }
  else if (tok_is(&t, 0, "CONSUMER"))
    js_consumer_api(jsh, req, name);
}
