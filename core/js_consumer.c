/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream consumers on their stream's shard: configuration, the
 * CONSUMER.* API, pull requests (MSG.NEXT), push delivery to a
 * deliver_subject, acknowledgements on $JS.ACK subjects, redelivery after
 * ack_wait, and the saved state of durable consumers.
 *
 * A durable consumer is <stream dir>/obs/<name>/ with meta.json (its
 * configuration) and state.json (delivered and ack floor sequences and the
 * pending messages), both replaced atomically by the writer thread of
 * js_state.c, so the shard does not wait for their fsync. state.json is
 * written within one timer interval of a change, one write in flight at a
 * time.
 * The reply to a create, and to an acknowledgement that asked for one, is
 * held until a write that contains it is on disk, so a confirmed ack
 * survives a crash.
 *
 * Push consumers with flow_control pace themselves as nats-server 2.9
 * does: once half of the window of unanswered bytes is delivered, they send
 * a "100 FlowControl Request" status to the deliver subject, with a reply
 * subject under $JS.FC.<stream>.<consumer>, and they stop delivering while
 * more than the whole window is unanswered. A response frees the bytes the
 * request covered and doubles the window, up to FC_LIMIT_BYTES. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/js_int.h"
#include "core/log.h"
#include "core/route.h"
#include "core/shard.h"
#include "core/sub-t.h"
#include "core/subcache.h"
#include "core/subject.h"
#include "storage/store_count.h"

#define TYPE_PREFIX "io.nats.jetstream.api.v1."
/* nats-server 2.9 defaults. */
#define DEFAULT_ACK_WAIT_NS (30LL * 1000000000LL)
#define DEFAULT_MAX_WAITING 512
#define DEFAULT_MAX_ACK_PENDING 1000
#define DEFAULT_INACTIVE_THRESHOLD_NS (5LL * 1000000000LL)
#define MAX_DESCRIPTION_LEN 4096
/* Messages one consumer delivers per hook run, so one busy consumer
 * cannot hold the shard for long. */
#define DELIVER_BUDGET 256
/* nats-server 2.9's largest flow control window (JsFlowControlMaxPending);
 * the first window is a sixteenth of it. */
#define FC_LIMIT_BYTES (32LL * 1024 * 1024)
/* replay_policy "original" delays a message only for a gap above this, as
 * nats-server 2.9 does. */
#define REPLAY_MIN_GAP_NS 1000000LL
/* "$JS.FC." <stream> "." <consumer> "." and an 8-character token. */
#define FC_REPLY_MAX (JS_NAME_MAX * 2 + 24)

enum deliver_policy {
  DELIVER_ALL = 0,
  DELIVER_LAST,
  DELIVER_NEW,
  DELIVER_BY_START_SEQUENCE,
  DELIVER_BY_START_TIME,
  DELIVER_LAST_PER_SUBJECT,
};
static const char *const deliver_names[] = {"all", "last", "new", "by_start_sequence",
                                            "by_start_time", "last_per_subject"};

enum ack_policy { ACK_NONE = 0, ACK_ALL, ACK_EXPLICIT };
static const char *const ack_names[] = {"none", "all", "explicit"};

struct consumer_config {
  char durable[JS_NAME_MAX + 1];
  char name[JS_NAME_MAX + 1];
  char *description;
  enum deliver_policy deliver_policy;
  uint64_t opt_start_seq;
  int64_t opt_start_time_ns;
  enum ack_policy ack_policy;
  int64_t ack_wait_ns;
  int64_t max_deliver;
  int64_t backoff_ns[16];    /* redelivery delays by delivery count, ack_wait after */
  uint32_t backoff_count;
  char *filter_subject;
  int64_t max_waiting;
  int64_t max_ack_pending;
  char *deliver_subject;
  char *deliver_group;
  bool flow_control;
  int64_t idle_heartbeat_ns;
  bool headers_only;
  bool replay_original;      /* replay_policy "original" */
  bool mem_storage;
  int64_t max_batch;
  int64_t max_expires_ns;
  int64_t max_bytes;
  int64_t inactive_threshold_ns;
  int64_t num_replicas;
};

/* A delivered message waiting for its acknowledgement. */
struct pending {
  uint64_t sseq;
  uint64_t cseq;
  uint64_t deliveries;
  int64_t deadline_ns;
  bool redeliver;           /* queued for redelivery (expired or NAK) */
};

/* A waiting pull request. */
struct pull {
  struct pull *next;
  int64_t batch;            /* messages still to send */
  int64_t max_bytes;        /* 0 = no limit */
  int64_t bytes_left;       /* of max_bytes */
  bool bytes_exceeded;      /* the next message is larger than bytes_left */
  int64_t deadline_ns;      /* 0 = no expiry */
  int64_t heartbeat_ns;     /* idle heartbeat interval, 0 = none */
  int64_t next_heartbeat_ns;
  bool no_wait;
  char reply[];
};

/* A reply held until state.json generation gen is on disk: the empty
 * confirmation of an acknowledgement, or with text, the create reply. */
struct state_waiter {
  struct state_waiter *next;
  uint64_t gen;
  char *text;
  char subject[];
};

/* Names the consumer a file write belongs to, because the consumer may be
 * deleted, or deleted and created again, before the result comes back. */
struct save_ticket {
  uint64_t instance;
  uint64_t gen;              /* state.json generation, 0 for meta.json */
  char stream[JS_NAME_MAX + 1];
  char consumer[JS_NAME_MAX + 1];
};

/* Source of js_consumer.instance, shared by all shards. */
static _Atomic uint64_t next_instance = 1;

/* A copy of a message a consumer starts with, taken when it is created,
 * so a later publish that replaces it (max_msgs_per_subject) before the
 * consumer's first delivery does not lose it. */
struct start_msg {
  uint64_t seq;
  int64_t ts_ns;
  uint16_t subject_len;
  uint32_t hdr_len;
  uint32_t data_len;
  uint8_t *buf;              /* subject, headers, payload */
};

struct js_consumer {
  struct js_stream *st;
  struct js_consumer *next;
  struct consumer_config cfg;
  char name[JS_NAME_MAX + 1];
  int64_t created_ns;
  char *dir;                /* durable consumers only */
  uint64_t next_sseq;       /* the next stream sequence to look at */
  /* deliver_policy last_per_subject: the messages to deliver before
   * next_sseq, ascending, and how many were delivered. state.json keeps
   * the sequences not delivered yet. */
  struct start_msg *start_msgs;
  uint32_t start_count;
  uint32_t start_index;
  uint64_t delivered_cseq;
  uint64_t delivered_sseq;
  uint64_t ack_floor_cseq;
  uint64_t ack_floor_sseq;
  struct pending *pending;  /* sorted by sseq */
  uint32_t pending_count;
  uint32_t pending_cap;
  uint64_t num_redelivered;
  struct pull *waiting;
  struct pull *waiting_tail;
  uint32_t waiting_count;
  int64_t last_active_ns;
  int64_t next_heartbeat_ns; /* push consumers with idle_heartbeat */
  int64_t last_interest_ns;  /* push consumers: when a subscriber was last seen */
  /* A new push consumer waits one loop iteration, so the create response
   * reaches the client in an earlier write than the first messages:
   * nats.js drops messages of a consumer whose create it has not seen. */
  bool start_deferred;
  bool run_again;              /* used up its budget with pull requests left */
  bool state_dirty;
  /* Durable consumers: the files on disk. save_gen counts the state.json
   * writes handed to the writer thread, one in flight at a time. */
  uint64_t instance;           /* unique in the process */
  uint64_t save_gen;
  bool save_inflight;
  bool meta_failed;            /* the meta.json write of the create failed */
  bool create_pending;         /* the create reply waits for the first writes */
  struct state_waiter *waiters;  /* ascending gen */
  /* Flow control of a push consumer; fc_window_bytes is 0 without it. */
  struct sub *fc_sub;          /* $JS.FC.<stream>.<consumer>.*, for the responses */
  int64_t fc_window_bytes;
  int64_t fc_unanswered_bytes; /* delivered since the last response */
  int64_t fc_request_bytes;    /* the part of those the outstanding request covers */
  char fc_reply[FC_REPLY_MAX]; /* the outstanding request's reply subject, "" when none */
  /* replay_policy "original": until the consumer passes the stream's last
   * sequence at its start, each message waits for the gap between its
   * timestamp and that of the message delivered before it. */
  bool replay_active;
  uint64_t replay_last_seq;
  int64_t replay_prev_ts_ns;   /* of the previous delivery, 0 before the first */
  int64_t replay_due_ns;       /* when the held message may go, 0 when none is held */
};

static void run_consumer(struct js_consumer *c, int64_t now_ns);
static void flow_control_start(struct js_consumer *c);
static void replay_start(struct js_consumer *c);

/* ---- Configuration ---- */

static void config_free(struct consumer_config *c) {
  free(c->description);
  free(c->filter_subject);
  free(c->deliver_subject);
  free(c->deliver_group);
  memset(c, 0, sizeof *c);
}

static bool opt_string(const cJSON *obj, const char *key, char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (!cJSON_IsString(v)) return false;
  if (v->valuestring[0] == '\0') return true;
  *out = strdup(v->valuestring);
  return *out != NULL;
}

static bool opt_int(const cJSON *obj, const char *key, int64_t *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (!cJSON_IsNumber(v)) return false;
  *out = js_clamp_i64(v->valuedouble);
  return true;
}

static bool opt_bool(const cJSON *obj, const char *key, bool *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (!cJSON_IsBool(v)) return false;
  *out = cJSON_IsTrue(v);
  return true;
}

static bool opt_enum(const cJSON *obj, const char *key, const char *const *names, int count,
                     int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == NULL || cJSON_IsNull(v)) return true;
  if (!cJSON_IsString(v)) return false;
  for (int i = 0; i < count; i++) {
    if (strcmp(v->valuestring, names[i]) == 0) {
      *out = i;
      return true;
    }
  }
  return false;
}

static bool opt_name(const cJSON *obj, const char *key, char *out) {
  char *s = NULL;
  if (!opt_string(obj, key, &s)) return false;
  if (s == NULL) return true;
  bool ok = strlen(s) <= JS_NAME_MAX;
  if (ok) snprintf(out, JS_NAME_MAX + 1, "%s", s);
  free(s);
  return ok;
}

/* Decodes a consumer configuration; false where Go's decoder fails. */
static bool decode_config(const cJSON *obj, struct consumer_config *c) {
  int deliver = 0, ack = 0, replay = 0;
  static const char *const replay_names[] = {"instant", "original"};
  int64_t opt_start_seq = 0;
  char *start_time = NULL;
  bool ok = cJSON_IsObject(obj) && opt_name(obj, "durable_name", c->durable) &&
            opt_name(obj, "name", c->name) && opt_string(obj, "description", &c->description) &&
            opt_enum(obj, "deliver_policy", deliver_names, 6, &deliver) &&
            opt_int(obj, "opt_start_seq", &opt_start_seq) &&
            opt_string(obj, "opt_start_time", &start_time) &&
            opt_enum(obj, "ack_policy", ack_names, 3, &ack) &&
            opt_int(obj, "ack_wait", &c->ack_wait_ns) && opt_int(obj, "max_deliver", &c->max_deliver) &&
            opt_string(obj, "filter_subject", &c->filter_subject) &&
            opt_enum(obj, "replay_policy", replay_names, 2, &replay) &&
            opt_int(obj, "max_waiting", &c->max_waiting) &&
            opt_int(obj, "max_ack_pending", &c->max_ack_pending) &&
            opt_string(obj, "deliver_subject", &c->deliver_subject) &&
            opt_string(obj, "deliver_group", &c->deliver_group) &&
            opt_bool(obj, "flow_control", &c->flow_control) &&
            opt_int(obj, "idle_heartbeat", &c->idle_heartbeat_ns) &&
            opt_bool(obj, "headers_only", &c->headers_only) &&
            opt_bool(obj, "mem_storage", &c->mem_storage) &&
            opt_int(obj, "max_batch", &c->max_batch) &&
            opt_int(obj, "max_expires", &c->max_expires_ns) &&
            opt_int(obj, "max_bytes", &c->max_bytes) &&
            opt_int(obj, "inactive_threshold", &c->inactive_threshold_ns) &&
            opt_int(obj, "num_replicas", &c->num_replicas);
  const cJSON *backoff = cJSON_GetObjectItemCaseSensitive(obj, "backoff");
  if (backoff != NULL && !cJSON_IsNull(backoff)) {
    const cJSON *v;
    if (!cJSON_IsArray(backoff)) ok = false;
    cJSON_ArrayForEach(v, backoff) {
      if (!cJSON_IsNumber(v) || c->backoff_count == 16) {
        ok = false;
        break;
      }
      c->backoff_ns[c->backoff_count++] = js_clamp_i64(v->valuedouble);
    }
  }
  c->deliver_policy = (enum deliver_policy)deliver;
  c->ack_policy = (enum ack_policy)ack;
  c->replay_original = replay == 1;
  c->opt_start_seq = opt_start_seq > 0 ? (uint64_t)opt_start_seq : 0;
  if (start_time != NULL) {
    c->opt_start_time_ns = js_time_parse(start_time);
    if (c->opt_start_time_ns < 0) ok = false;
    free(start_time);
  }
  return ok;
}

static bool consumer_name_valid(const char *name) {
  for (const char *p = name; *p != '\0'; p++) {
    if (*p == '.' || *p == '*' || *p == '>' || *p <= ' ' || *p == '/' || *p == '\\') return false;
  }
  return true;
}

/* Applies nats-server 2.9's defaults and checks. */
/* True when a token of subject is the wildcard * or >, which nats-server
 * checks for before it checks that a deliver subject is valid. */
static bool has_wildcard_token(const char *subject) {
  for (const char *p = subject; *p != '\0'; p++) {
    bool starts = p == subject || p[-1] == '.';
    bool ends = p[1] == '.' || p[1] == '\0';
    if ((*p == '*' || *p == '>') && starts && ends) return true;
  }
  return false;
}

static int check_config(struct js_stream *st, struct consumer_config *c, struct js_err *err) {
  if (c->durable[0] != '\0' && c->name[0] != '\0' && strcmp(c->durable, c->name) != 0) {
    js_err_set(err, 400, 10017, "consumer name in subject does not match durable name in request");
    return -1;
  }
  if (c->description != NULL && strlen(c->description) > MAX_DESCRIPTION_LEN) {
    js_err_set(err, 400, 10107, "consumer description is too long, maximum allowed is %d",
               MAX_DESCRIPTION_LEN);
    return -1;
  }
  if (c->flow_control && c->idle_heartbeat_ns == 0) {
    js_err_set(err, 400, 10108, "consumer with flow control also needs heartbeats");
    return -1;
  }
  if (!consumer_name_valid(c->durable) || !consumer_name_valid(c->name)) {
    js_err_set(err, 400, 10103, "durable name can not contain '.', '*', '>'");
    return -1;
  }
  if (st->cfg.retention == JS_RETENTION_WORKQUEUE && c->deliver_subject == NULL &&
      c->ack_policy == ACK_NONE) {
    js_err_set(err, 400, 10084, "consumer in pull mode requires ack policy");
    return -1;
  }
  if (c->max_deliver == 0) c->max_deliver = -1;
  if (c->backoff_count > 0) {
    if (c->max_deliver <= (int64_t)c->backoff_count) {
      js_err_set(err, 400, 10116, "max deliver is required to be > length of backoff values");
      return -1;
    }
    c->ack_wait_ns = c->backoff_ns[0];
  }
  if (c->ack_policy != ACK_NONE && c->ack_wait_ns == 0) c->ack_wait_ns = DEFAULT_ACK_WAIT_NS;
  if (c->deliver_subject == NULL && c->max_waiting == 0) c->max_waiting = DEFAULT_MAX_WAITING;
  if (c->ack_policy != ACK_NONE && c->max_ack_pending == 0) c->max_ack_pending = DEFAULT_MAX_ACK_PENDING;
  if (c->durable[0] == '\0' && c->inactive_threshold_ns == 0)
    c->inactive_threshold_ns = DEFAULT_INACTIVE_THRESHOLD_NS;
  if (c->deliver_policy == DELIVER_BY_START_SEQUENCE && c->opt_start_seq == 0) {
    js_err_set(err, 400, 10094, "consumer delivery policy is deliver by start sequence, but optional start sequence is not set");
    return -1;
  }
  if (c->deliver_policy == DELIVER_LAST_PER_SUBJECT && c->filter_subject == NULL) {
    js_err_set(err, 400, 10094, "consumer delivery policy is deliver last per subject, but optional filter subject is not set");
    return -1;
  }
  if (c->deliver_policy == DELIVER_BY_START_TIME && c->opt_start_time_ns == 0) {
    js_err_set(err, 400, 10094, "consumer delivery policy is deliver by start time, but optional start time is not set");
    return -1;
  }
  if (c->deliver_subject != NULL && has_wildcard_token(c->deliver_subject)) {
    js_err_set(err, 400, 10079, "consumer deliver subject has wildcards");
    return -1;
  }
  if (c->deliver_subject != NULL && !subject_valid_literal(c->deliver_subject, strlen(c->deliver_subject))) {
    js_err_set(err, 400, 10112, "invalid push consumer deliver subject");
    return -1;
  }
  for (uint32_t i = 0; c->deliver_subject != NULL && i < st->cfg.subject_count; i++) {
    /* The stream would capture its own deliveries. */
    const char *captured = st->cfg.subjects[i];
    if (subject_matches(captured, strlen(captured), c->deliver_subject, strlen(c->deliver_subject))) {
      js_err_set(err, 400, 10081, "consumer deliver subject forms a cycle");
      return -1;
    }
  }
  if (c->filter_subject != NULL) {
    bool covered = false;
    for (uint32_t i = 0; i < st->cfg.subject_count; i++) {
      if (js_subjects_overlap(st->cfg.subjects[i], c->filter_subject)) covered = true;
    }
    if (!covered || !subject_valid(c->filter_subject, strlen(c->filter_subject))) {
      js_err_set(err, 400, 10093, "consumer filter subject is not a valid subset of the interest subjects");
      return -1;
    }
  }
  if (st->cfg.retention == JS_RETENTION_WORKQUEUE && c->ack_policy != ACK_EXPLICIT) {
    js_err_set(err, 400, 10084, "workqueue stream requires explicit ack");
    return -1;
  }
  return 0;
}

static void add_num(cJSON *o, const char *key, int64_t v) { cJSON_AddNumberToObject(o, key, (double)v); }

static cJSON *config_json(const struct consumer_config *c) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  if (c->durable[0] != '\0') cJSON_AddStringToObject(o, "durable_name", c->durable);
  if (c->name[0] != '\0') cJSON_AddStringToObject(o, "name", c->name);
  if (c->description != NULL) cJSON_AddStringToObject(o, "description", c->description);
  cJSON_AddStringToObject(o, "deliver_policy", deliver_names[c->deliver_policy]);
  if (c->opt_start_seq > 0) add_num(o, "opt_start_seq", (int64_t)c->opt_start_seq);
  if (c->opt_start_time_ns != 0) {
    char ts[48];
    js_time_format(c->opt_start_time_ns, ts, sizeof ts);
    cJSON_AddStringToObject(o, "opt_start_time", ts);
  }
  cJSON_AddStringToObject(o, "ack_policy", ack_names[c->ack_policy]);
  if (c->ack_wait_ns != 0) add_num(o, "ack_wait", c->ack_wait_ns);
  add_num(o, "max_deliver", c->max_deliver);
  if (c->backoff_count > 0) {
    cJSON *backoff = cJSON_AddArrayToObject(o, "backoff");
    for (uint32_t i = 0; backoff != NULL && i < c->backoff_count; i++)
      cJSON_AddItemToArray(backoff, cJSON_CreateNumber((double)c->backoff_ns[i]));
  }
  if (c->filter_subject != NULL) cJSON_AddStringToObject(o, "filter_subject", c->filter_subject);
  cJSON_AddStringToObject(o, "replay_policy", c->replay_original ? "original" : "instant");
  if (c->max_waiting != 0) add_num(o, "max_waiting", c->max_waiting);
  if (c->max_ack_pending != 0) add_num(o, "max_ack_pending", c->max_ack_pending);
  if (c->flow_control) cJSON_AddBoolToObject(o, "flow_control", true);
  if (c->idle_heartbeat_ns != 0) add_num(o, "idle_heartbeat", c->idle_heartbeat_ns);
  if (c->headers_only) cJSON_AddBoolToObject(o, "headers_only", true);
  if (c->max_batch != 0) add_num(o, "max_batch", c->max_batch);
  if (c->max_expires_ns != 0) add_num(o, "max_expires", c->max_expires_ns);
  if (c->max_bytes != 0) add_num(o, "max_bytes", c->max_bytes);
  if (c->deliver_subject != NULL) cJSON_AddStringToObject(o, "deliver_subject", c->deliver_subject);
  if (c->deliver_group != NULL) cJSON_AddStringToObject(o, "deliver_group", c->deliver_group);
  if (c->inactive_threshold_ns != 0) add_num(o, "inactive_threshold", c->inactive_threshold_ns);
  add_num(o, "num_replicas", c->num_replicas);
  if (c->mem_storage) cJSON_AddBoolToObject(o, "mem_storage", true);
  return o;
}

/* ---- State ---- */

/* True when every subject that matches pattern b also matches pattern a. */
static bool subject_covers(const char *a, const char *b) {
  for (;;) {
    size_t la = strcspn(a, ".");
    size_t lb = strcspn(b, ".");
    if (la == 1 && a[0] == '>') return true;
    if (lb == 1 && b[0] == '>') return false;
    bool a_star = la == 1 && a[0] == '*';
    bool b_star = lb == 1 && b[0] == '*';
    if (b_star && !a_star) return false;
    if (!a_star && (la != lb || memcmp(a, b, la) != 0)) return false;
    a += la;
    b += lb;
    if (*a == '\0' || *b == '\0') return *a == *b;
    a++;
    b++;
  }
}

/* The consumer's filter, or NULL when it has none or when it covers every
 * subject of the stream (clients often repeat the stream's subject), so
 * reads and counts take the cheaper unfiltered path. */
static const char *filter_of(const struct js_consumer *c, size_t *len) {
  *len = 0;
  const char *f = c->cfg.filter_subject;
  if (f == NULL) return NULL;
  bool covers_all = true;
  for (uint32_t i = 0; covers_all && i < c->st->cfg.subject_count; i++)
    covers_all = subject_covers(f, c->st->cfg.subjects[i]);
  if (covers_all) return NULL;
  *len = strlen(f);
  return f;
}

/* Counts messages from next_sseq on that match the filter, plus the
 * starting messages not delivered yet. The count comes from the store's
 * index and reads no message. */
static uint64_t num_pending(struct js_consumer *c) {
  struct store_state state;
  store_state(c->st->store, &state);
  uint64_t listed = c->start_count - c->start_index;
  if (state.msgs == 0 || c->next_sseq > state.last_seq) return listed;
  size_t flen;
  const char *filter = filter_of(c, &flen);
  if (filter == NULL && c->next_sseq <= state.first_seq) return listed + state.msgs;
  if (filter == NULL && state.num_deleted == 0) return listed + state.last_seq - c->next_sseq + 1;
  return listed + store_count_from(c->st->store, c->next_sseq, filter, flen);
}

struct subject_list {
  char **names;
  uint32_t count;
  uint32_t cap;
};

static void add_subject(void *ctx, const char *subject, size_t len, uint64_t msgs) {
  struct subject_list *l = ctx;
  if (msgs == 0) return;
  if (l->count == l->cap) {
    uint32_t cap = l->cap == 0 ? 64 : l->cap * 2;
    char **grown = realloc(l->names, cap * sizeof *grown);
    if (grown == NULL) return;
    l->names = grown;
    l->cap = cap;
  }
  char *copy = strndup(subject, len);
  if (copy != NULL) l->names[l->count++] = copy;
}

static int compare_start(const void *a, const void *b) {
  uint64_t x = ((const struct start_msg *)a)->seq, y = ((const struct start_msg *)b)->seq;
  return x < y ? -1 : x > y;
}

static bool copy_start(struct start_msg *out, const struct store_msg *m) {
  out->buf = malloc((size_t)m->subject_len + m->hdr_len + m->data_len + 1);
  if (out->buf == NULL) return false;
  out->seq = m->seq;
  out->ts_ns = m->ts_ns;
  out->subject_len = m->subject_len;
  out->hdr_len = m->hdr_len;
  out->data_len = m->data_len;
  memcpy(out->buf, m->subject, m->subject_len);
  if (m->hdr_len > 0) memcpy(out->buf + m->subject_len, m->hdr, m->hdr_len);
  if (m->data_len > 0) memcpy(out->buf + m->subject_len + m->hdr_len, m->data, m->data_len);
  return true;
}

/* Fills start_msgs with copies of the last message of each subject that
 * matches the filter, in stream order.
 * NOTE: the copies cost memory in proportion to the number of subjects. */
static void collect_last_per_subject(struct js_consumer *c) {
  size_t flen;
  const char *filter = filter_of(c, &flen);
  struct subject_list l = {0};
  store_subjects(c->st->store, filter, flen, add_subject, &l);
  c->start_msgs = calloc(l.count > 0 ? l.count : 1, sizeof *c->start_msgs);
  struct store_msg m = {0};
  for (uint32_t i = 0; i < l.count; i++) {
    if (c->start_msgs != NULL &&
        store_read_last(c->st->store, l.names[i], strlen(l.names[i]), &m) == 0 &&
        copy_start(&c->start_msgs[c->start_count], &m))
      c->start_count++;
    free(l.names[i]);
  }
  store_msg_free(&m);
  free(l.names);
  qsort(c->start_msgs, c->start_count, sizeof *c->start_msgs, compare_start);
}

/* Sets next_sseq from the deliver policy of a new consumer. */
static void set_start(struct js_consumer *c) {
  struct store_state state;
  store_state(c->st->store, &state);
  size_t flen;
  const char *filter = filter_of(c, &flen);
  struct store_msg m = {0};
  c->next_sseq = state.first_seq > 0 ? state.first_seq : 1;
  switch (c->cfg.deliver_policy) {
  case DELIVER_ALL:
    break;
  case DELIVER_LAST_PER_SUBJECT:
    collect_last_per_subject(c);
    c->next_sseq = state.last_seq + 1;
    if (c->start_count > 0) {
      store_msg_free(&m);
      c->delivered_sseq = c->start_msgs[0].seq - 1;
      return;
    }
    break;
  case DELIVER_LAST:
    if (store_read_last(c->st->store, filter, flen, &m) == 0)
      c->next_sseq = m.seq;
    else
      c->next_sseq = state.last_seq + 1;
    break;
  case DELIVER_NEW:
    c->next_sseq = state.last_seq + 1;
    break;
  case DELIVER_BY_START_SEQUENCE:
    c->next_sseq = c->cfg.opt_start_seq;
    break;
  case DELIVER_BY_START_TIME:
    c->next_sseq = state.last_seq + 1;
    for (uint64_t seq = state.first_seq; store_read_next(c->st->store, seq, NULL, 0, &m) == 0;
         seq = m.seq + 1) {
      if (m.ts_ns >= c->cfg.opt_start_time_ns) {
        c->next_sseq = m.seq;
        break;
      }
    }
    break;
  }
  store_msg_free(&m);
  /* nats-server 2.9 reports the sequence before the start as delivered
   * and leaves the ack floor at 0. */
  c->delivered_sseq = c->next_sseq > 0 ? c->next_sseq - 1 : 0;
}

static char *state_text(const struct js_consumer *c) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  add_num(o, "next_sseq", (int64_t)c->next_sseq);
  add_num(o, "delivered_cseq", (int64_t)c->delivered_cseq);
  add_num(o, "delivered_sseq", (int64_t)c->delivered_sseq);
  add_num(o, "ack_floor_cseq", (int64_t)c->ack_floor_cseq);
  add_num(o, "ack_floor_sseq", (int64_t)c->ack_floor_sseq);
  add_num(o, "redelivered", (int64_t)c->num_redelivered);
  cJSON *pending = cJSON_AddArrayToObject(o, "pending");
  for (uint32_t i = 0; pending != NULL && i < c->pending_count; i++) {
    cJSON *p = cJSON_CreateArray();
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)c->pending[i].sseq));
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)c->pending[i].cseq));
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)c->pending[i].deliveries));
    cJSON_AddItemToArray(pending, p);
  }
  if (c->start_index < c->start_count) {
    cJSON *starts = cJSON_AddArrayToObject(o, "start_seqs");
    for (uint32_t i = c->start_index; starts != NULL && i < c->start_count; i++)
      cJSON_AddItemToArray(starts, cJSON_CreateNumber((double)c->start_msgs[i].seq));
  }
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

static struct save_ticket *new_ticket(const struct js_consumer *c, uint64_t gen) {
  struct save_ticket *t = malloc(sizeof *t);
  if (t == NULL) return NULL;
  t->instance = c->instance;
  t->gen = gen;
  snprintf(t->stream, sizeof t->stream, "%s", c->st->cfg.name);
  snprintf(t->consumer, sizeof t->consumer, "%s", c->name);
  return t;
}

static void on_state_saved(struct js_shard *jsh, void *ctx, int res);
static void on_meta_saved(struct js_shard *jsh, void *ctx, int res);

/* Hands a snapshot of a durable consumer's changed state to the writer
 * thread. While a write is in flight the state stays dirty, and
 * on_state_saved() or the next timer pass starts the next write. A write
 * that could not be queued is retried the same way. */
static void save_state(struct js_consumer *c) {
  if (c->dir == NULL || !c->state_dirty || c->save_inflight) return;
  char *text = state_text(c);
  struct save_ticket *t = text != NULL ? new_ticket(c, c->save_gen + 1) : NULL;
  if (t == NULL) {
    free(text);
    log_error("consumer %s > %s: out of memory while saving its state; retrying at the next "
              "timer pass", c->st->cfg.name, c->name);
    return;
  }
  int rc = js_state_write(c->st->owner, c->dir, "state.json", text, false, on_state_saved, t);
  if (rc != 0) {
    free(t);
    log_error("consumer %s > %s: could not queue its state for writing: %s; retrying at the "
              "next timer pass", c->st->cfg.name, c->name, strerror(-rc));
    return;
  }
  c->save_gen++;
  c->state_dirty = false;
  c->save_inflight = true;
}

/* Hands meta.json of a new durable consumer to the writer thread, which
 * creates the consumer's directory first. Returns 0 or -errno. */
static int save_meta(struct js_consumer *c) {
  cJSON *meta = cJSON_CreateObject();
  cJSON_AddItemToObject(meta, "config", config_json(&c->cfg));
  char ts[48];
  js_time_format(c->created_ns, ts, sizeof ts);
  cJSON_AddStringToObject(meta, "created", ts);
  char *text = cJSON_PrintUnformatted(meta);
  cJSON_Delete(meta);
  struct save_ticket *t = text != NULL ? new_ticket(c, 0) : NULL;
  if (t == NULL) {
    free(text);
    return -ENOMEM;
  }
  int rc = js_state_write(c->st->owner, c->dir, "meta.json", text, true, on_meta_saved, t);
  if (rc != 0) free(t);
  return rc;
}

/* Holds a reply to subject until state.json generation gen is on disk.
 * text is the create reply (NULL for an ack confirmation); this takes it.
 * Returns false when out of memory. */
static bool add_waiter(struct js_consumer *c, uint64_t gen, const char *subject, cJSON *text_json) {
  size_t len = strlen(subject);
  struct state_waiter *w = malloc(sizeof *w + len + 1);
  char *text = text_json != NULL ? cJSON_PrintUnformatted(text_json) : NULL;
  cJSON_Delete(text_json);
  if (w == NULL || (text_json != NULL && text == NULL)) {
    free(w);
    free(text);
    return false;
  }
  w->next = NULL;
  w->gen = gen;
  w->text = text;
  memcpy(w->subject, subject, len + 1);
  struct state_waiter **p = &c->waiters;
  while (*p != NULL) p = &(*p)->next;
  *p = w;
  return true;
}

static cJSON *info_json(struct js_consumer *c, const char *type) {
  cJSON *o = type != NULL ? js_response(type) : cJSON_CreateObject();
  cJSON_AddStringToObject(o, "stream_name", c->st->cfg.name);
  cJSON_AddStringToObject(o, "name", c->name);
  char ts[48];
  js_time_format(c->created_ns, ts, sizeof ts);
  cJSON_AddStringToObject(o, "created", ts);
  cJSON_AddItemToObject(o, "config", config_json(&c->cfg));
  cJSON *d = cJSON_AddObjectToObject(o, "delivered");
  add_num(d, "consumer_seq", (int64_t)c->delivered_cseq);
  add_num(d, "stream_seq", (int64_t)c->delivered_sseq);
  if (c->last_active_ns != 0) {
    js_time_format(c->last_active_ns, ts, sizeof ts);
    cJSON_AddStringToObject(d, "last_active", ts);
  }
  cJSON *a = cJSON_AddObjectToObject(o, "ack_floor");
  add_num(a, "consumer_seq", (int64_t)c->ack_floor_cseq);
  add_num(a, "stream_seq", (int64_t)c->ack_floor_sseq);
  add_num(o, "num_ack_pending", c->pending_count);
  add_num(o, "num_redelivered", (int64_t)c->num_redelivered);
  add_num(o, "num_waiting", c->waiting_count);
  add_num(o, "num_pending", (int64_t)num_pending(c));
  return o;
}

/* ---- Lifecycle ---- */

static struct js_consumer *find_consumer(struct js_stream *st, const char *name) {
  for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
    if (strcmp(c->name, name) == 0) return c;
  }
  return NULL;
}

static void send_status(struct js_consumer *c, const char *inbox, const char *status,
                        int64_t pending_msgs) {
  char hdr[256];
  int n;
  if (pending_msgs >= 0)
    n = snprintf(hdr, sizeof hdr,
                 "NATS/1.0 %s\r\nNats-Pending-Messages: %" PRId64 "\r\nNats-Pending-Bytes: 0\r\n\r\n",
                 status, pending_msgs);
  else
    n = snprintf(hdr, sizeof hdr, "NATS/1.0 %s\r\n\r\n", status);
  js_deliver(c->st->owner, inbox, inbox, NULL, hdr, (uint32_t)n, NULL, 0);
}

static void free_consumer(struct js_consumer *c, bool notify_waiting) {
  while (c->waiting != NULL) {
    struct pull *p = c->waiting;
    c->waiting = p->next;
    if (notify_waiting) send_status(c, p->reply, "409 Consumer Deleted", -1);
    free(p);
  }
  if (c->fc_sub != NULL) route_unsubscribe_internal(c->fc_sub);
  while (c->waiters != NULL) {
    struct state_waiter *w = c->waiters;
    c->waiters = w->next;
    free(w->text);
    free(w);
  }
  config_free(&c->cfg);
  free(c->pending);
  for (uint32_t i = 0; i < c->start_count; i++) free(c->start_msgs[i].buf);
  free(c->start_msgs);
  free(c->dir);
  free(c);
}

static void unlink_consumer(struct js_consumer *c) {
  for (struct js_consumer **p = &c->st->consumers; *p != NULL; p = &(*p)->next) {
    if (*p == c) {
      *p = c->next;
      break;
    }
  }
  atomic_fetch_sub(&c->st->reg->stats.consumer_count, 1);
}

void js_consumers_free_all(struct js_stream *st) {
  while (st->consumers != NULL) {
    struct js_consumer *c = st->consumers;
    st->consumers = c->next;
    free_consumer(c, true);
  }
}

static void random_name(char *out) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char r[8];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    uint64_t x = (uint64_t)js_now_ns();
    memcpy(r, &x, sizeof r);
  }
  for (int i = 0; i < 8; i++) out[i] = alphabet[r[i] % (sizeof alphabet - 1)];
  out[8] = '\0';
}

static struct js_consumer *new_consumer(struct js_stream *st, struct consumer_config *cfg,
                                        const char *name, int64_t created_ns) {
  struct js_consumer *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->st = st;
  c->cfg = *cfg;
  memset(cfg, 0, sizeof *cfg);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->created_ns = created_ns;
  c->instance = atomic_fetch_add(&next_instance, 1);
  if (c->cfg.durable[0] != '\0') {
    size_t len = strlen(st->dir) + strlen(name) + 8;
    c->dir = malloc(len);
    if (c->dir != NULL) snprintf(c->dir, len, "%s/obs/%s", st->dir, name);
  }
  c->next = st->consumers;
  st->consumers = c;
  atomic_fetch_add(&st->reg->stats.consumer_count, 1);
  return c;
}

static void on_dir_removed(struct js_shard *jsh, void *ctx, int res) {
  char *dir = ctx;
  if (res != 0) log_error("JetStream: could not remove the consumer directory %s: %s", dir, strerror(-res));
  free(dir);
}

/* Deletes c. Its directory is removed by the writer thread after the
 * writes queued before, so none of them can bring a file back. */
static void delete_consumer(struct js_consumer *c) {
  unlink_consumer(c);
  if (c->dir != NULL) {
    char *dir = strdup(c->dir);
    int rc = dir != NULL ? js_state_remove(c->st->owner, c->dir, on_dir_removed, dir) : -ENOMEM;
    if (rc != 0) {
      free(dir);
      log_error("consumer %s > %s: could not queue the removal of %s (%s); removing it now",
                c->st->cfg.name, c->name, c->dir, strerror(-rc));
      rc = js_remove_tree(c->dir);
      if (rc != 0) log_error("consumer %s: could not remove %s: %s", c->name, c->dir, strerror(-rc));
    }
  }
  free_consumer(c, true);
}

/* ---- API ---- */

struct consumer_request {
  const char *op;          /* CREATE, DURABLE, INFO, DELETE, NAMES, LIST, MSG */
  const char *consumer;    /* the consumer token, or NULL */
  const char *filter;      /* CREATE's filter subject token(s), or NULL */
};

static void reply_error(struct js_shard *jsh, const struct js_request *req, const char *type,
                        const struct js_err *err) {
  cJSON *resp = js_response(type);
  js_response_error(resp, err);
  js_send_json(jsh, req->reply, resp);
}

static bool same_config(const struct consumer_config *a, const struct consumer_config *b) {
  cJSON *ja = config_json(a);
  cJSON *jb = config_json(b);
  bool same = ja != NULL && jb != NULL && cJSON_Compare(ja, jb, true);
  cJSON_Delete(ja);
  cJSON_Delete(jb);
  return same;
}

/* Parses a create request into cfg and checks it against the subject. */
static int parse_create(struct js_stream *st, const struct js_request *req,
                        const struct consumer_request *cr, bool durable_form,
                        struct consumer_config *cfg, struct js_err *err) {
  memset(cfg, 0, sizeof *cfg);
  cJSON *body = cJSON_Parse(req->data);
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(body, "config");
  const cJSON *stream_name = cJSON_GetObjectItemCaseSensitive(body, "stream_name");
  if (body == NULL || !cJSON_IsObject(config) || !decode_config(config, cfg)) {
    cJSON_Delete(body);
    config_free(cfg);
    js_err_set(err, 400, 10025, "invalid JSON");
    return -1;
  }
  bool stream_ok = !cJSON_IsString(stream_name) || strcmp(stream_name->valuestring, st->cfg.name) == 0;
  cJSON_Delete(body);
  if (!stream_ok) {
    js_err_set(err, 400, 10056, "stream name in subject does not match request");
  } else if (durable_form && strcmp(cfg->durable, cr->consumer) != 0) {
    js_err_set(err, 400, 10017, "consumer name in subject does not match durable name in request");
  } else if (!durable_form && cr->consumer == NULL && cfg->durable[0] != '\0') {
    js_err_set(err, 400, 10020, "consumer expected to be ephemeral but a durable name was set in request");
  } else if (!durable_form && cr->consumer != NULL &&
             strcmp(cfg->name[0] != '\0' ? cfg->name : cfg->durable, cr->consumer) != 0) {
    js_err_set(err, 400, 10017, "consumer name in subject does not match durable name in request");
  } else if (cr->filter != NULL && (cfg->filter_subject == NULL || strcmp(cfg->filter_subject, cr->filter) != 0)) {
    js_err_set(err, 400, 10131, "consumer create request did not match filtered subject from create subject");
  } else if (check_config(st, cfg, err) == 0) {
    return 0;
  }
  config_free(cfg);
  return -1;
}

/* A workqueue stream gives each message to one consumer, so nats-server
 * 2.9 rejects a consumer whose filter overlaps another one's. */
static bool workqueue_conflict(struct js_stream *st, const struct consumer_config *cfg,
                               struct js_err *err) {
  for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
    if (c->cfg.filter_subject == NULL && cfg->filter_subject == NULL) {
      js_err_set(err, 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream");
      return true;
    }
    if (c->cfg.filter_subject == NULL || cfg->filter_subject == NULL ||
        js_subjects_overlap(c->cfg.filter_subject, cfg->filter_subject)) {
      js_err_set(err, 400, 10100, "filtered consumer not unique on workqueue stream");
      return true;
    }
  }
  return false;
}

static void handle_create(struct js_shard *jsh, const struct js_request *req, struct js_stream *st,
                          const struct consumer_request *cr, bool durable_form) {
  const char *type = TYPE_PREFIX "consumer_create_response";
  struct consumer_config cfg;
  struct js_err err = {0};
  if (parse_create(st, req, cr, durable_form, &cfg, &err) != 0) {
    reply_error(jsh, req, type, &err);
    return;
  }
  char name[JS_NAME_MAX + 1];
  if (cfg.durable[0] != '\0')
    snprintf(name, sizeof name, "%s", cfg.durable);
  else if (cfg.name[0] != '\0')
    snprintf(name, sizeof name, "%s", cfg.name);
  else
    random_name(name);

  struct js_consumer *c = find_consumer(st, name);
  if (c != NULL) {
    /* An identical configuration returns the existing consumer. */
    bool same = same_config(&c->cfg, &cfg);
    config_free(&cfg);
    if (!same) {
      js_err_set(&err, 400, 10013, "consumer name already in use");
      reply_error(jsh, req, type, &err);
      return;
    }
    js_send_json(jsh, req->reply, info_json(c, type));
    return;
  }
  if (st->cfg.retention == JS_RETENTION_WORKQUEUE && workqueue_conflict(st, &cfg, &err)) {
    config_free(&cfg);
    reply_error(jsh, req, type, &err);
    return;
  }
  if (st->cfg.max_consumers > 0) {
    uint32_t count = 0;
    for (struct js_consumer *x = st->consumers; x != NULL; x = x->next) count++;
    if (count >= st->cfg.max_consumers) {
      config_free(&cfg);
      js_err_set(&err, 400, 10026, "maximum consumers limit reached");
      reply_error(jsh, req, type, &err);
      return;
    }
  }
  c = new_consumer(st, &cfg, name, js_now_ns());
  if (c == NULL) {
    config_free(&cfg);
    js_err_set(&err, 500, 10049, "insufficient resources");
    reply_error(jsh, req, type, &err);
    return;
  }
  set_start(c);
  flow_control_start(c);
  replay_start(c);
  c->state_dirty = true;
  c->last_active_ns = 0;
  if (c->cfg.deliver_subject != NULL) c->start_deferred = true;
  if (c->dir == NULL) {
    js_send_json(jsh, req->reply, info_json(c, type));
    if (c->cfg.deliver_subject != NULL) jsh->push_deferred = true;
    return;
  }

  /* A durable consumer's reply waits until meta.json and state.json are
   * on disk, and a push consumer starts only after that reply. */
  if (save_meta(c) != 0 || !add_waiter(c, c->save_gen + 1, req->reply, info_json(c, type))) {
    delete_consumer(c);
    js_err_set(&err, 500, 10012, "could not save the consumer");
    reply_error(jsh, req, type, &err);
    return;
  }
  c->create_pending = true;
  save_state(c);
}

static void handle_names(struct js_shard *jsh, const struct js_request *req, struct js_stream *st,
                         bool list) {
  cJSON *resp = js_response(list ? TYPE_PREFIX "consumer_list_response"
                                 : TYPE_PREFIX "consumer_names_response");
  /* Sorted by name, as nats-server lists them. */
  uint32_t n = 0;
  for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) n++;
  struct js_consumer **all = calloc(n > 0 ? n : 1, sizeof *all);
  n = 0;
  for (struct js_consumer *c = st->consumers; all != NULL && c != NULL; c = c->next) all[n++] = c;
  for (uint32_t i = 1; i < n; i++) {
    for (uint32_t j = i; j > 0 && strcmp(all[j - 1]->name, all[j]->name) > 0; j--) {
      struct js_consumer *t = all[j];
      all[j] = all[j - 1];
      all[j - 1] = t;
    }
  }
  cJSON_AddNumberToObject(resp, "total", n);
  cJSON_AddNumberToObject(resp, "offset", 0);
  cJSON_AddNumberToObject(resp, "limit", list ? JS_LIST_LIMIT : JS_NAMES_LIMIT);
  cJSON *items = cJSON_AddArrayToObject(resp, "consumers");
  for (uint32_t i = 0; i < n && i < (list ? JS_LIST_LIMIT : JS_NAMES_LIMIT); i++) {
    cJSON_AddItemToArray(items, list ? info_json(all[i], NULL) : cJSON_CreateString(all[i]->name));
  }
  free(all);
  js_send_json(jsh, req->reply, resp);
}

static void queue_pull(struct js_shard *jsh, const struct js_request *req, struct js_consumer *c);

void js_consumer_api(struct js_shard *jsh, struct js_request *req, const char *stream) {
  /* $JS.API.CONSUMER.<op>.<stream>[.<consumer>[.<filter>]], where the
   * DURABLE.CREATE and MSG.NEXT ops take two tokens. */
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", req->subject + strlen("$JS.API.CONSUMER."));
  struct consumer_request cr = {0};
  char *rest = buf;
  char *op = strsep(&rest, ".");
  if (strcmp(op, "DURABLE") == 0 || strcmp(op, "MSG") == 0) strsep(&rest, ".");
  strsep(&rest, "."); /* the stream */
  cr.op = op;
  cr.consumer = rest != NULL ? strsep(&rest, ".") : NULL;
  cr.filter = rest;

  bool create = strcmp(op, "CREATE") == 0;
  bool durable = strcmp(op, "DURABLE") == 0;
  bool info = strcmp(op, "INFO") == 0;
  bool del = strcmp(op, "DELETE") == 0;
  bool names = strcmp(op, "NAMES") == 0 && cr.consumer == NULL;
  bool list = strcmp(op, "LIST") == 0 && cr.consumer == NULL;
  bool next = strcmp(op, "MSG") == 0 && cr.consumer != NULL && cr.filter == NULL;
  const char *type = create || durable ? TYPE_PREFIX "consumer_create_response"
                     : info          ? TYPE_PREFIX "consumer_info_response"
                     : del           ? TYPE_PREFIX "consumer_delete_response"
                     : names         ? TYPE_PREFIX "consumer_names_response"
                     : list          ? TYPE_PREFIX "consumer_list_response"
                                     : NULL;
  if (type == NULL && !next) return;

  struct js_stream *st = js_stream_find(jsh, stream);
  struct js_err err = {0};
  if (st == NULL) {
    if (next) return; /* nats-server sends nothing either */
    js_err_set(&err, 404, 10059, "stream not found");
    reply_error(jsh, req, type, &err);
    return;
  }
  if (create || durable) {
    if (durable && cr.consumer == NULL) return;
    handle_create(jsh, req, st, &cr, durable);
    return;
  }
  if (names || list) {
    handle_names(jsh, req, st, list);
    return;
  }
  struct js_consumer *c = cr.consumer != NULL ? find_consumer(st, cr.consumer) : NULL;
  if (c == NULL) {
    if (next) return;
    js_err_set(&err, 404, 10014, "consumer not found");
    reply_error(jsh, req, type, &err);
    return;
  }
  if (info) {
    js_send_json(jsh, req->reply, info_json(c, type));
  } else if (del) {
    delete_consumer(c);
    cJSON *resp = js_response(type);
    cJSON_AddBoolToObject(resp, "success", true);
    js_send_json(jsh, req->reply, resp);
  } else if (next) {
    queue_pull(jsh, req, c);
  }
}

/* ---- Delivery ---- */

static struct pending *find_pending(struct js_consumer *c, uint64_t sseq) {
  uint32_t lo = 0, hi = c->pending_count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (c->pending[mid].sseq < sseq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < c->pending_count && c->pending[lo].sseq == sseq ? &c->pending[lo] : NULL;
}

static void remove_pending_at(struct js_consumer *c, uint32_t i) {
  memmove(&c->pending[i], &c->pending[i + 1], (c->pending_count - i - 1) * sizeof *c->pending);
  c->pending_count--;
}

static void update_ack_floor(struct js_consumer *c) {
  if (c->pending_count == 0) {
    c->ack_floor_cseq = c->delivered_cseq;
    c->ack_floor_sseq = c->delivered_sseq;
  } else {
    c->ack_floor_cseq = c->pending[0].cseq - 1;
    c->ack_floor_sseq = c->pending[0].sseq - 1;
  }
}

/* Records a new delivery of sseq. Returns false when out of memory. */
/* The ack wait after a message's deliveries-th delivery: the backoff
 * entry for it (the last one beyond the list), or ack_wait. */
static int64_t ack_wait_for(const struct js_consumer *c, uint64_t deliveries) {
  if (c->cfg.backoff_count == 0 || deliveries == 0) return c->cfg.ack_wait_ns;
  uint64_t i = deliveries - 1 < c->cfg.backoff_count ? deliveries - 1 : c->cfg.backoff_count - 1;
  return c->cfg.backoff_ns[i];
}

static bool track_pending(struct js_consumer *c, uint64_t sseq, uint64_t cseq, int64_t now_ns) {
  struct pending *p = find_pending(c, sseq);
  if (p != NULL) {
    p->cseq = cseq;
    p->deliveries++;
    p->deadline_ns = now_ns + ack_wait_for(c, p->deliveries);
    p->redeliver = false;
    return true;
  }
  if (c->pending_count == c->pending_cap) {
    uint32_t cap = c->pending_cap == 0 ? 64 : c->pending_cap * 2;
    struct pending *grown = realloc(c->pending, cap * sizeof *grown);
    if (grown == NULL) return false;
    c->pending = grown;
    c->pending_cap = cap;
  }
  /* New deliveries have the highest sequence so far, so they go last. */
  c->pending[c->pending_count++] =
      (struct pending){.sseq = sseq, .cseq = cseq, .deliveries = 1, .deadline_ns = now_ns + c->cfg.ack_wait_ns};
  return true;
}

/* Delivers the stored message m to inbox. Returns the bytes that flow
 * control counts for it: inbox, ack reply subject, headers and payload, as
 * nats-server 2.9 counts them. */
static int64_t deliver_msg(struct js_consumer *c, const char *inbox, const struct store_msg *m,
                           uint64_t deliveries, uint64_t pending_after) {
  c->delivered_cseq++;
  char ack[JS_NAME_MAX * 2 + 128];
  int ack_len = snprintf(ack, sizeof ack, "$JS.ACK.%s.%s.%" PRIu64 ".%" PRIu64 ".%" PRIu64 ".%" PRId64 ".%" PRIu64,
           c->st->cfg.name, c->name, deliveries, m->seq, c->delivered_cseq, m->ts_ns,
           pending_after);
  char subject[1024];
  size_t len = m->subject_len < sizeof subject - 1 ? m->subject_len : sizeof subject - 1;
  memcpy(subject, m->subject, len);
  subject[len] = '\0';
  int64_t size = (int64_t)strlen(inbox) + ack_len;
  if (!c->cfg.headers_only) {
    js_deliver(c->st->owner, inbox, subject, ack, m->hdr, m->hdr_len, m->data, m->data_len);
    return size + m->hdr_len + m->data_len;
  }
  /* headers_only: the stored headers plus Nats-Msg-Size with the payload
   * length, as nats-server 2.9 sends them, and no payload. */
  char size_line[48];
  int size_len = snprintf(size_line, sizeof size_line, "Nats-Msg-Size: %u\r\n\r\n", m->data_len);
  static const char status_line[] = "NATS/1.0\r\n";
  uint32_t kept = m->hdr_len >= 2 ? m->hdr_len - 2 : 0; /* without the closing blank line */
  uint32_t prefix = kept > 0 ? kept : (uint32_t)sizeof status_line - 1;
  char *hdr = malloc(prefix + (size_t)size_len);
  if (hdr == NULL) return 0;
  memcpy(hdr, kept > 0 ? (const char *)m->hdr : status_line, prefix);
  memcpy(hdr + prefix, size_line, (size_t)size_len);
  js_deliver(c->st->owner, inbox, subject, ack, hdr, prefix + (uint32_t)size_len, NULL, 0);
  free(hdr);
  return size + prefix + size_len;
}

/* ---- Flow control and replay pacing ---- */

static bool flow_control_stalled(const struct js_consumer *c) {
  return c->fc_window_bytes > 0 && c->fc_unanswered_bytes > c->fc_window_bytes;
}

/* Counts a delivery of size bytes against the flow control window, and
 * sends a flow control request once half of the window is unanswered. */
static void flow_control_count(struct js_consumer *c, int64_t size) {
  if (c->fc_window_bytes == 0) return;
  c->fc_unanswered_bytes += size;
  if (c->fc_reply[0] != '\0') {
    /* As in nats-server 2.9, an outstanding request that fell a whole
     * window behind also covers the new delivery. */
    if (c->fc_unanswered_bytes - c->fc_request_bytes >= c->fc_window_bytes)
      c->fc_request_bytes += size;
    return;
  }
  if (c->fc_unanswered_bytes <= c->fc_window_bytes / 2) return;

  char token[9];
  random_name(token);
  snprintf(c->fc_reply, sizeof c->fc_reply, "$JS.FC.%s.%s.%s", c->st->cfg.name, c->name, token);
  c->fc_request_bytes = c->fc_unanswered_bytes;
  static const char hdr[] = "NATS/1.0 100 FlowControl Request\r\n\r\n";
  js_deliver(c->st->owner, c->cfg.deliver_subject, c->cfg.deliver_subject, c->fc_reply, hdr,
             sizeof hdr - 1, NULL, 0);
}

/* Takes the response to a flow control request, published by a client to
 * the request's reply subject $JS.FC.<stream>.<consumer>.<token>. A
 * response to an older request is ignored, as nats-server 2.9 ignores it. Runs inside
 * the router's walk, so it only marks the consumer for the hook. */
static void on_flow_control(struct sub *sub, const char *subject, uint32_t subject_len,
                            const char *reply, uint32_t reply_len, const char *data,
                            uint32_t header_len, uint32_t total_len) {
  struct js_shard *jsh = sub->internal_ctx;
  char buf[FC_REPLY_MAX];
  static const char prefix[] = "$JS.FC.";
  if (subject_len >= sizeof buf || subject_len < sizeof prefix) return;
  memcpy(buf, subject, subject_len);
  buf[subject_len] = '\0';

  /* The names are looked up again, so a response that arrives after the
   * consumer was deleted finds nothing. */
  char names[FC_REPLY_MAX];
  memcpy(names, buf + sizeof prefix - 1, subject_len - (sizeof prefix - 1) + 1);
  char *rest = names;
  const char *stream = strsep(&rest, ".");
  const char *consumer = rest != NULL ? strsep(&rest, ".") : NULL;
  struct js_stream *st = consumer != NULL ? js_stream_find(jsh, stream) : NULL;
  struct js_consumer *c = st != NULL ? find_consumer(st, consumer) : NULL;
  if (c == NULL || c->fc_reply[0] == '\0' || strcmp(c->fc_reply, buf) != 0) return;

  c->fc_window_bytes *= 2;
  if (c->fc_window_bytes > FC_LIMIT_BYTES) c->fc_window_bytes = FC_LIMIT_BYTES;
  c->fc_unanswered_bytes -= c->fc_request_bytes;
  if (c->fc_unanswered_bytes < 0) c->fc_unanswered_bytes = 0;
  c->fc_request_bytes = 0;
  c->fc_reply[0] = '\0';
  jsh->push_kick = true;
}

/* Sets up flow control for a push consumer with flow_control set. Without
 * the subscription for the responses, the consumer delivers without flow
 * control, because it could never resume after its first request. */
static void flow_control_start(struct js_consumer *c) {
  if (!c->cfg.flow_control || c->cfg.deliver_subject == NULL) return;
  char subject[FC_REPLY_MAX];
  snprintf(subject, sizeof subject, "$JS.FC.%s.%s.*", c->st->cfg.name, c->name);
  c->fc_sub = route_subscribe_internal(c->st->owner->id, subject, NULL, on_flow_control, c->st->owner);
  if (c->fc_sub == NULL) {
    log_error("consumer %s > %s: could not subscribe to %s; delivering without flow control",
              c->st->cfg.name, c->name, subject);
    return;
  }
  c->fc_window_bytes = FC_LIMIT_BYTES / 16;
}

/* Makes the shard's hook run js_consumers_heartbeats() by at_ns, even when
 * the shard is otherwise idle. */
static void wake_at(struct js_shard *jsh, int64_t at_ns) {
  if (jsh->next_heartbeat_ns == 0 || at_ns < jsh->next_heartbeat_ns) jsh->next_heartbeat_ns = at_ns;
  struct shard *s = jsh->shard;
  int64_t wait_ms = (at_ns - js_now_ns() + 999999) / 1000000;
  int64_t wake_ms = s->now_ms + (wait_ms > 0 ? wait_ms : 0);
  if (s->hook_wake_ms == 0 || wake_ms < s->hook_wake_ms) s->hook_wake_ms = wake_ms;
}

/* Starts replay_policy "original" pacing up to the stream's last sequence
 * now, as nats-server 2.9 does at each start of a consumer, a restart
 * included. */
static void replay_start(struct js_consumer *c) {
  if (!c->cfg.replay_original) return;
  struct store_state state;
  store_state(c->st->store, &state);
  c->replay_active = true;
  c->replay_last_seq = state.last_seq;
}

/* True while message m must wait for its original gap after the previous
 * delivery; the first call for it sets the time it may go. */
static bool replay_holds(struct js_consumer *c, const struct store_msg *m, int64_t now_ns) {
  if (!c->replay_active || c->replay_prev_ts_ns == 0) return false;
  int64_t gap_ns = m->ts_ns - c->replay_prev_ts_ns;
  if (gap_ns <= REPLAY_MIN_GAP_NS) return false;
  if (c->replay_due_ns == 0) {
    c->replay_due_ns = now_ns + gap_ns;
    wake_at(c->st->owner, c->replay_due_ns);
  }
  if (now_ns < c->replay_due_ns) return true;
  c->replay_due_ns = 0;
  return false;
}

/* Ends replay pacing once nothing is left up to the stream's last sequence
 * at the consumer's start. */
static void replay_check_caught_up(struct js_consumer *c) {
  if (c->replay_active && c->start_index == c->start_count && c->next_sseq > c->replay_last_seq)
    c->replay_active = false;
}

/* Picks the next message for c: a due redelivery first, then the next new
 * one. Returns 0 with m filled and *deliveries set, or -ENOENT. */
static int next_message(struct js_consumer *c, struct store_msg *m, uint64_t *deliveries,
                        bool *is_new) {
  for (uint32_t i = 0; i < c->pending_count; i++) {
    struct pending *p = &c->pending[i];
    if (!p->redeliver) continue;
    if (store_read(c->st->store, p->sseq, m) != 0) {
      remove_pending_at(c, i); /* removed from the stream meanwhile */
      i--;
      continue;
    }
    *deliveries = p->deliveries + 1;
    *is_new = false;
    return 0;
  }
  bool full = c->cfg.ack_policy != ACK_NONE && c->cfg.max_ack_pending > 0 &&
              c->pending_count >= c->cfg.max_ack_pending;
  if (full) return -ENOENT;
  if (c->start_index < c->start_count) {
    /* m keeps its buffer; its fields point into the copy until the next read. */
    const struct start_msg *sm = &c->start_msgs[c->start_index];
    m->seq = sm->seq;
    m->ts_ns = sm->ts_ns;
    m->subject = (const char *)sm->buf;
    m->subject_len = sm->subject_len;
    m->hdr = sm->buf + sm->subject_len;
    m->hdr_len = sm->hdr_len;
    m->data = sm->buf + sm->subject_len + sm->hdr_len;
    m->data_len = sm->data_len;
    *deliveries = 1;
    *is_new = true;
    return 0;
  }
  size_t flen;
  const char *filter = filter_of(c, &flen);
  int rc = store_read_next(c->st->store, c->next_sseq, filter, flen, m);
  if (rc != 0) return -ENOENT;
  *deliveries = 1;
  *is_new = true;
  return 0;
}

/* Sends one message to inbox if one is ready. Returns false otherwise.
 * *pending carries the count of undelivered messages across calls, -1
 * before the first, so a batch counts the stream once. */
static bool deliver_one(struct js_consumer *c, const char *inbox, struct store_msg *m, int64_t now_ns,
                        int64_t *pending, struct pull *pull) {
  uint64_t deliveries;
  bool is_new;
  if (next_message(c, m, &deliveries, &is_new) != 0) {
    replay_check_caught_up(c);
    return false;
  }
  if (replay_holds(c, m, now_ns)) return false;
  if (pull != NULL && pull->max_bytes > 0) {
    /* nats-server counts the subject, the ack reply subject, headers and
     * payload; the reply's length is estimated here with a one-digit
     * pending count. The message stays next in line for a later request. */
    int ack_len = snprintf(NULL, 0, "$JS.ACK.%s.%s.%" PRIu64 ".%" PRIu64 ".%" PRIu64 ".%" PRId64 ".0",
                           c->st->cfg.name, c->name, deliveries, m->seq, c->delivered_cseq + 1,
                           m->ts_ns);
    int64_t size = (int64_t)m->subject_len + ack_len + m->hdr_len + m->data_len;
    if (size > pull->bytes_left) {
      pull->bytes_exceeded = true;
      return false;
    }
    pull->bytes_left -= size;
  }
  if (is_new) {
    if (c->start_index < c->start_count)
      c->start_index++; /* its copy is freed with the consumer */
    else
      c->next_sseq = m->seq + 1;
    c->delivered_sseq = m->seq;
  } else {
    c->num_redelivered++;
  }
  uint64_t cseq = c->delivered_cseq + 1;
  if (c->cfg.ack_policy != ACK_NONE) {
    track_pending(c, m->seq, cseq, now_ns);
  } else {
    c->ack_floor_cseq = cseq;
    c->ack_floor_sseq = m->seq;
  }
  if (*pending < 0)
    *pending = (int64_t)num_pending(c);
  else if (is_new && *pending > 0)
    --*pending;
  int64_t size = deliver_msg(c, inbox, m, deliveries, (uint64_t)*pending);
  if (pull == NULL) flow_control_count(c, size);
  if (c->replay_active) c->replay_prev_ts_ns = m->ts_ns;
  c->last_active_ns = now_ns;
  c->state_dirty = true;
  return true;
}

static void pop_pull(struct js_consumer *c) {
  struct pull *p = c->waiting;
  c->waiting = p->next;
  if (c->waiting == NULL) c->waiting_tail = NULL;
  c->waiting_count--;
  free(p);
}

/* True when a client subscribes to the push consumer's deliver_subject.
 * Hook context only, because it uses the shard's match cache. */
static bool has_interest(struct js_consumer *c) {
  struct shard *s = c->st->owner->shard;
  const char *subject = c->cfg.deliver_subject;
  const struct sublist_result *r = subcache_match(s->cache, subject, strlen(subject));
  for (uint32_t i = 0; r != NULL && i < r->plain_count; i++) {
    if (r->plain[i]->client != NULL || r->plain[i]->shard_id != s->id) return true;
  }
  return r != NULL && r->group_count > 0;
}

static void run_consumer(struct js_consumer *c, int64_t now_ns) {
  struct store_msg m = {0};
  int budget = DELIVER_BUDGET;
  int64_t pending = -1;
  if (c->cfg.deliver_subject != NULL) {
    /* Push consumers run from the hook only, as nats-server delivers
     * only while the deliver subject has a subscriber. */
    if (c->start_deferred) return;
    if (!c->st->owner->in_hook || !has_interest(c)) {
      c->st->owner->push_kick = true;
      return;
    }
    while (budget > 0 && !flow_control_stalled(c) &&
           deliver_one(c, c->cfg.deliver_subject, &m, now_ns, &pending, NULL))
      budget--;
    store_msg_free(&m);
    /* More may be ready: run again in the next loop iteration. */
    if (budget == 0) c->st->owner->push_deferred = true;
    return;
  }
  while (c->waiting != NULL) {
    if (budget == 0) {
      /* More may be ready: run again in the next loop iteration. */
      c->run_again = true;
      c->st->owner->push_deferred = true;
      break;
    }
    struct pull *p = c->waiting;
    bool sent = false;
    while (p->batch > 0 && budget > 0 && deliver_one(c, p->reply, &m, now_ns, &pending, p)) {
      budget--;
      p->batch--;
      p->next_heartbeat_ns = now_ns + p->heartbeat_ns;
      sent = true;
    }
    if (p->batch == 0) {
      pop_pull(c);
      continue;
    }
    if (budget == 0) continue; /* the request continues in the next loop iteration */
    if (p->bytes_exceeded) {
      /* The next message does not fit in what is left of max_bytes. */
      send_status(c, p->reply, "409 Message Size Exceeds MaxBytes", -1);
      pop_pull(c);
      continue;
    }
    if (p->no_wait && c->replay_due_ns == 0) {
      /* Nothing more to send now: a no_wait request ends here. */
      if (!sent || p->batch > 0) send_status(c, p->reply, "404 No Messages", -1);
      pop_pull(c);
      continue;
    }
    break;
  }
  store_msg_free(&m);
}

/* Formats ns as Go's time.Duration.String does ("1.5s", "2m0s", "150ms"),
 * because nats-server prints max_expires that way in its 409 status. */
static void format_go_duration(int64_t ns, char *out, size_t cap) {
  static const struct { int64_t unit; const char *suffix; } small[] = {
      {1000000, "ms"}, {1000, "\xc2\xb5s"}, {1, "ns"}};
  if (ns < 1000000000LL) {
    for (size_t i = 0; i < 3; i++) {
      if (ns < small[i].unit && small[i].unit != 1) continue;
      int64_t whole = ns / small[i].unit, frac = ns % small[i].unit;
      int len = snprintf(out, cap, "%lld", (long long)whole);
      if (frac != 0 && len > 0 && (size_t)len < cap) {
        char digits[16];
        int width = i == 0 ? 6 : 3;
        snprintf(digits, sizeof digits, "%0*lld", width, (long long)frac);
        for (int end = width - 1; end >= 0 && digits[end] == '0'; end--) digits[end] = '\0';
        len += snprintf(out + len, cap - (size_t)len, ".%s", digits);
      }
      if (len > 0 && (size_t)len < cap) snprintf(out + len, cap - (size_t)len, "%s", small[i].suffix);
      return;
    }
  }
  int64_t secs = ns / 1000000000LL, frac = ns % 1000000000LL;
  int len = 0;
  if (secs >= 3600) len += snprintf(out, cap, "%lldh", (long long)(secs / 3600));
  if (secs >= 60 && (size_t)len < cap)
    len += snprintf(out + len, cap - (size_t)len, "%lldm", (long long)(secs / 60 % 60));
  if ((size_t)len >= cap) return;
  len += snprintf(out + len, cap - (size_t)len, "%lld", (long long)(secs % 60));
  if (frac != 0 && (size_t)len < cap) {
    char digits[16];
    snprintf(digits, sizeof digits, "%09lld", (long long)frac);
    for (int end = 8; end >= 0 && digits[end] == '0'; end--) digits[end] = '\0';
    len += snprintf(out + len, cap - (size_t)len, ".%s", digits);
  }
  if ((size_t)len < cap) snprintf(out + len, cap - (size_t)len, "s");
}

/* Sends nats-server's 409 status for a pull request that asks for more
 * than the consumer's max_batch, max_expires or max_bytes; true if sent. */
static bool reject_pull_over_limits(struct js_consumer *c, const char *reply, int64_t batch,
                                    int64_t expires, int64_t max_bytes) {
  char status[96];
  if (c->cfg.max_batch > 0 && batch > c->cfg.max_batch) {
    snprintf(status, sizeof status, "409 Exceeded MaxRequestBatch of %lld", (long long)c->cfg.max_batch);
  } else if (c->cfg.max_expires_ns > 0 && expires > c->cfg.max_expires_ns) {
    char limit[48];
    format_go_duration(c->cfg.max_expires_ns, limit, sizeof limit);
    snprintf(status, sizeof status, "409 Exceeded MaxRequestExpires of %s", limit);
  } else if (c->cfg.max_bytes > 0 && max_bytes > c->cfg.max_bytes) {
    snprintf(status, sizeof status, "409 Exceeded MaxRequestMaxBytes of %lld", (long long)c->cfg.max_bytes);
  } else {
    return false;
  }
  send_status(c, reply, status, -1);
  return true;
}

static void queue_pull(struct js_shard *jsh, const struct js_request *req, struct js_consumer *c) {
  if (req->reply[0] == '\0') return;
  if (c->cfg.deliver_subject != NULL) {
    send_status(c, req->reply, "409 Consumer is push based", -1);
    return;
  }
  int64_t batch = 1, expires = 0, max_bytes = 0, heartbeat = 0;
  bool no_wait = false;
  if (req->data_len > 0) {
    cJSON *body = cJSON_Parse(req->data);
    if (body == NULL) {
      /* A plain number is a batch size, as nats-server accepts it. */
      batch = strtoll(req->data, NULL, 10);
    } else {
      const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "batch");
      if (cJSON_IsNumber(v)) batch = js_clamp_i64(v->valuedouble);
      v = cJSON_GetObjectItemCaseSensitive(body, "expires");
      if (cJSON_IsNumber(v)) expires = js_clamp_i64(v->valuedouble);
      v = cJSON_GetObjectItemCaseSensitive(body, "idle_heartbeat");
      if (cJSON_IsNumber(v)) heartbeat = js_clamp_i64(v->valuedouble);
      v = cJSON_GetObjectItemCaseSensitive(body, "max_bytes");
      if (cJSON_IsNumber(v)) max_bytes = js_clamp_i64(v->valuedouble);
      no_wait = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "no_wait"));
      cJSON_Delete(body);
    }
  }
  if (batch <= 0) batch = 1;
  if (reject_pull_over_limits(c, req->reply, batch, expires, max_bytes)) return;
  if (c->cfg.max_waiting > 0 && c->waiting_count >= c->cfg.max_waiting) {
    send_status(c, req->reply, "409 Exceeded MaxWaiting", -1);
    return;
  }
  size_t reply_len = strlen(req->reply);
  struct pull *p = calloc(1, sizeof *p + reply_len + 1);
  if (p == NULL) return;
  memcpy(p->reply, req->reply, reply_len + 1);
  p->batch = batch;
  p->max_bytes = max_bytes;
  p->bytes_left = max_bytes;
  int64_t now_ns = js_now_ns();
  p->deadline_ns = expires > 0 ? now_ns + expires : 0;
  p->no_wait = no_wait;
  p->heartbeat_ns = heartbeat > 0 ? heartbeat : 0;
  p->next_heartbeat_ns = now_ns + p->heartbeat_ns;
  if (p->heartbeat_ns > 0) c->st->owner->heartbeat_check = true;
  if (c->waiting_tail != NULL)
    c->waiting_tail->next = p;
  else
    c->waiting = p;
  c->waiting_tail = p;
  c->waiting_count++;
  c->last_active_ns = now_ns;
  run_consumer(c, now_ns);
}

void js_consumers_on_stream_msg(struct js_stream *st) {
  int64_t now_ns = 0;
  for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
    if (c->waiting == NULL && c->cfg.deliver_subject == NULL) continue;
    if (now_ns == 0) now_ns = js_now_ns();
    run_consumer(c, now_ns);
  }
}

/* Lets the push consumers created since the last call start at the next
 * js_consumers_run(). Hook context, after the outgoing queue was sent. */
void js_consumers_release_deferred(struct js_shard *jsh) {
  if (!jsh->push_deferred) return;
  jsh->push_deferred = false;
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
      if (!c->create_pending) c->start_deferred = false;
    }
  }
  jsh->push_kick = true;
}

/* Runs the results of finished file writes, then the push consumers of
 * the shard, and the pull consumers that used up their budget, after new
 * messages, acks, a new consumer or a used-up budget set push_kick.
 * Hook context. */
void js_consumers_run(struct js_shard *jsh) {
  js_state_poll(jsh);
  if (!jsh->push_kick) return;
  jsh->push_kick = false;
  int64_t now_ns = js_now_ns();
  for (struct js_stream *st = jsh->streams; st != NULL; st = st->next) {
    for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
      if (c->cfg.deliver_subject == NULL && !c->run_again) continue;
      c->run_again = false;
      run_consumer(c, now_ns);
    }
  }
  /* Consumers without interest set push_kick again; the timer retries
   * them, so the hook does not spin on them. */
  jsh->push_kick = false;
}

/* The stream sequence an idle heartbeat reports. nats-server 2.9 reports
 * the one before its next read position, which moves on to the stream's
 * last sequence once a read finds nothing more that matches the filter.
 * It stays while max_ack_pending or flow control stops the consumer. */
static uint64_t heartbeat_stream_seq(struct js_consumer *c) {
  bool full = c->cfg.ack_policy != ACK_NONE && c->cfg.max_ack_pending > 0 &&
              c->pending_count >= c->cfg.max_ack_pending;
  if (full || flow_control_stalled(c) || c->start_index < c->start_count) return c->delivered_sseq;
  struct store_state state;
  store_state(c->st->store, &state);
  if (c->next_sseq <= state.last_seq) {
    size_t flen;
    const char *filter = filter_of(c, &flen);
    if (store_count_from(c->st->store, c->next_sseq, filter, flen) > 0) return c->delivered_sseq;
  }
  return state.last_seq > c->delivered_sseq ? state.last_seq : c->delivered_sseq;
}

/* Sends a push consumer's idle heartbeat when nothing was delivered for
 * idle_heartbeat, with the last sequences as nats-server 2.9 sends them,
 * and while a flow control request is unanswered, its reply subject in
 * Nats-Consumer-Stalled, so a client that missed the request can respond. */
static void push_heartbeat(struct js_consumer *c, int64_t now_ns) {
  int64_t last = c->last_active_ns > c->created_ns ? c->last_active_ns : c->created_ns;
  if (now_ns - last < c->cfg.idle_heartbeat_ns || now_ns < c->next_heartbeat_ns) return;
  char stalled[FC_REPLY_MAX + 32] = "";
  if (c->fc_reply[0] != '\0') snprintf(stalled, sizeof stalled, "Nats-Consumer-Stalled: %s\r\n", c->fc_reply);
  char hdr[FC_REPLY_MAX + 160];
  int n = snprintf(hdr, sizeof hdr,
                   "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: %" PRIu64
                   "\r\nNats-Last-Stream: %" PRIu64 "\r\n%s\r\n",
                   c->delivered_cseq, heartbeat_stream_seq(c), stalled);
  js_deliver(c->st->owner, c->cfg.deliver_subject, c->cfg.deliver_subject, NULL, hdr, (uint32_t)n,
             NULL, 0);
  c->next_heartbeat_ns = now_ns + c->cfg.idle_heartbeat_ns;
}

/* Sends the idle heartbeats of st's consumers that are due: a push
 * consumer's after idle_heartbeat without a delivery, and a waiting pull
 * request's after its own idle_heartbeat, and sends the messages that
 * replay_policy "original" held until now. Returns the time (ns) the next
 * of these is due, or 0 when none is scheduled. Hook context, because it checks
 * interest in the deliver subjects. */
int64_t js_consumers_heartbeats(struct js_stream *st, int64_t now_ns) {
  int64_t next_ns = 0;
  for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
    /* A message held by replay_policy "original" goes out when due. */
    if (c->replay_due_ns != 0 && c->replay_due_ns <= now_ns) run_consumer(c, now_ns);
    if (c->replay_due_ns != 0 && (next_ns == 0 || c->replay_due_ns < next_ns)) next_ns = c->replay_due_ns;
    for (struct pull *p = c->waiting; p != NULL; p = p->next) {
      if (p->heartbeat_ns <= 0) continue;
      if (p->next_heartbeat_ns <= now_ns) {
        send_status(c, p->reply, "100 Idle Heartbeat", -1);
        p->next_heartbeat_ns = now_ns + p->heartbeat_ns;
      }
      if (next_ns == 0 || p->next_heartbeat_ns < next_ns) next_ns = p->next_heartbeat_ns;
    }
    /* Without a subscriber nothing is scheduled: the timer pass checks
     * again every JS_TIMER_INTERVAL_MS. */
    if (c->cfg.deliver_subject == NULL || c->cfg.idle_heartbeat_ns <= 0 || !has_interest(c)) continue;
    push_heartbeat(c, now_ns);
    int64_t last = c->last_active_ns > c->created_ns ? c->last_active_ns : c->created_ns;
    int64_t due_ns = last + c->cfg.idle_heartbeat_ns;
    if (due_ns < c->next_heartbeat_ns) due_ns = c->next_heartbeat_ns;
    if (next_ns == 0 || due_ns < next_ns) next_ns = due_ns;
  }
  return next_ns;
}

/* Expires pull requests and queues redeliveries after ack_wait. */
void js_consumers_timers(struct js_stream *st, int64_t now_ns) {
  for (struct js_consumer *c = st->consumers, *next; c != NULL; c = next) {
    next = c->next;
    for (struct pull **pp = &c->waiting; *pp != NULL;) {
      struct pull *p = *pp;
      if (p->deadline_ns == 0 || p->deadline_ns > now_ns) {
        pp = &p->next;
        continue;
      }
      send_status(c, p->reply, "408 Request Timeout", p->batch);
      *pp = p->next;
      c->waiting_count--;
      free(p);
    }
    c->waiting_tail = NULL;
    for (struct pull *p = c->waiting; p != NULL; p = p->next) c->waiting_tail = p;

    bool due = false;
    for (uint32_t i = 0; i < c->pending_count; i++) {
      struct pending *p = &c->pending[i];
      if (p->redeliver || p->deadline_ns > now_ns) continue;
      if (c->cfg.max_deliver > 0 && (int64_t)p->deliveries >= c->cfg.max_deliver) continue;
      p->redeliver = true;
      due = true;
    }
    if (due || c->cfg.deliver_subject != NULL) run_consumer(c, now_ns);

    /* An ephemeral consumer goes away after inactive_threshold without a
     * pull request (pull) or without a subscriber (push). */
    if (c->cfg.durable[0] == '\0' && c->cfg.inactive_threshold_ns > 0) {
      bool push = c->cfg.deliver_subject != NULL;
      if (push && has_interest(c)) c->last_interest_ns = now_ns;
      int64_t since = push ? c->last_interest_ns : c->last_active_ns;
      if (since < c->created_ns) since = c->created_ns;
      bool idle = push || c->waiting == NULL;
      if (idle && now_ns - since > c->cfg.inactive_threshold_ns) {
        delete_consumer(c);
        continue;
      }
    }
    save_state(c);
  }
}

bool js_consumers_save_all(struct js_stream *st) {
  bool pending = false;
  for (struct js_consumer *c = st->consumers; c != NULL; c = c->next) {
    if (c->dir == NULL) continue; /* ephemeral: nothing to save */
    save_state(c);
    pending |= c->state_dirty || c->save_inflight;
  }
  return pending;
}

/* ---- Acknowledgements ---- */

void js_consumer_on_ack(struct sub *sub, const char *subject, uint32_t subject_len,
                        const char *reply, uint32_t reply_len, const char *data,
                        uint32_t header_len, uint32_t total_len) {
  struct js_shard *jsh = sub->internal_ctx;
  /* $JS.ACK.<stream>.<consumer>...: the stream token decides the owner. */
  const char *stream = subject + strlen("$JS.ACK.");
  const char *end = subject + subject_len;
  if (stream >= end) return;
  const char *dot = memchr(stream, '.', (size_t)(end - stream));
  if (dot == NULL) return;
  if (js_owner_of(stream, (size_t)(dot - stream)) != jsh->id) return;
  js_handle_request(jsh, subject, subject_len, reply, reply_len, data + header_len,
                    total_len - header_len);
}

/* True when consumer c no longer needs message m: it does not match the
 * filter, or it was delivered and is not waiting for an ack. */
static bool consumer_done_with(struct js_consumer *c, const struct store_msg *m) {
  size_t flen;
  const char *filter = filter_of(c, &flen);
  if (filter != NULL && !subject_matches(filter, flen, m->subject, m->subject_len)) return true;
  if (m->seq >= c->next_sseq) return false;
  return find_pending(c, m->seq) == NULL;
}

/* Applies the stream's retention to an acknowledged message: a workqueue
 * stream drops it at once, an interest stream once every consumer is done
 * with it. */
static void retire(struct js_consumer *c, uint64_t sseq) {
  struct js_stream *st = c->st;
  if (st->cfg.retention == JS_RETENTION_WORKQUEUE) {
    store_delete(st->store, sseq);
    return;
  }
  if (st->cfg.retention != JS_RETENTION_INTEREST) return;
  struct store_msg m = {0};
  if (store_read(st->store, sseq, &m) == 0) {
    bool done = true;
    for (struct js_consumer *o = st->consumers; o != NULL && done; o = o->next)
      done = consumer_done_with(o, &m);
    if (done) store_delete(st->store, sseq);
  }
  store_msg_free(&m);
}

/* Drops a new message of an interest stream that no consumer's filter
 * matches, because no consumer will acknowledge it (nats-server 2.9 does
 * not keep it either). */
void js_consumers_retire_unwanted(struct js_stream *st, uint64_t seq) {
  struct store_msg m = {0};
  if (store_read(st->store, seq, &m) == 0) {
    bool interested = false;
    for (struct js_consumer *c = st->consumers; c != NULL && !interested; c = c->next) {
      size_t flen;
      const char *filter = filter_of(c, &flen);
      interested = filter == NULL || subject_matches(filter, flen, m.subject, m.subject_len);
    }
    if (!interested) {
      store_delete(st->store, seq);
      js_stream_refresh_stats(st);
    }
  }
  store_msg_free(&m);
}

static void ack_one(struct js_consumer *c, uint64_t sseq) {
  if (c->cfg.ack_policy == ACK_ALL) {
    uint32_t n = 0;
    while (n < c->pending_count && c->pending[n].sseq <= sseq) n++;
    uint64_t *acked = malloc((n > 0 ? n : 1) * sizeof *acked);
    for (uint32_t i = 0; acked != NULL && i < n; i++) acked[i] = c->pending[i].sseq;
    memmove(c->pending, c->pending + n, (c->pending_count - n) * sizeof *c->pending);
    c->pending_count -= n;
    for (uint32_t i = 0; acked != NULL && i < n; i++) retire(c, acked[i]);
    free(acked);
  } else {
    struct pending *p = find_pending(c, sseq);
    if (p == NULL) return;
    remove_pending_at(c, (uint32_t)(p - c->pending));
    retire(c, sseq);
  }
}

void js_consumer_ack(struct js_shard *jsh, struct js_request *req) {
  /* $JS.ACK.<stream>.<consumer>.<deliveries>.<sseq>.<cseq>.<ts>.<pending> */
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", req->subject + strlen("$JS.ACK."));
  char *rest = buf;
  char *tok[7] = {0};
  for (int i = 0; i < 7 && rest != NULL; i++) tok[i] = strsep(&rest, ".");
  if (tok[6] == NULL) return;
  struct js_stream *st = js_stream_find(jsh, tok[0]);
  struct js_consumer *c = st != NULL ? find_consumer(st, tok[1]) : NULL;
  if (c == NULL) return;
  uint64_t sseq = strtoull(tok[3], NULL, 10);
  int64_t now_ns = js_now_ns();
  const char *body = req->data;
  c->last_active_ns = now_ns;

  struct pending *p = find_pending(c, sseq);
  if (req->data_len == 0 || strncmp(body, "+ACK", 4) == 0 || strncmp(body, "+NXT", 4) == 0) {
    ack_one(c, sseq);
  } else if (strncmp(body, "-NAK", 4) == 0) {
    if (p != NULL) {
      /* -NAK {"delay": ns} redelivers after the delay instead of at once. */
      int64_t delay = 0;
      const char *json = strchr(body, '{');
      cJSON *o = json != NULL ? cJSON_Parse(json) : NULL;
      const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "delay");
      if (cJSON_IsNumber(d)) delay = js_clamp_i64(d->valuedouble);
      cJSON_Delete(o);
      if (c->cfg.max_deliver > 0 && (int64_t)p->deliveries >= c->cfg.max_deliver)
        remove_pending_at(c, (uint32_t)(p - c->pending)); /* no deliveries left */
      else if (delay > 0)
        p->deadline_ns = now_ns + delay;
      else
        p->redeliver = true;
    }
  } else if (strncmp(body, "+WPI", 4) == 0) {
    if (p != NULL) p->deadline_ns = now_ns + c->cfg.ack_wait_ns;
  } else if (strncmp(body, "+TERM", 5) == 0) {
    if (p != NULL) remove_pending_at(c, (uint32_t)(p - c->pending));
  } else {
    return;
  }
  update_ack_floor(c);
  c->state_dirty = true;
  js_stream_refresh_stats(st);

  bool next = strncmp(body, "+NXT", 4) == 0;
  if (next && req->reply[0] != '\0') {
    /* +NXT [request]: the ack's reply subject receives the next messages,
     * as a pull request with the optional JSON after the verb. */
    const char *json = body + 4;
    while (*json == ' ') json++;
    struct js_request *pull = calloc(1, sizeof *pull + strlen(req->reply) + strlen(json) + 2);
    if (pull != NULL) {
      pull->reply = pull->buf;
      strcpy(pull->reply, req->reply);
      pull->data = pull->reply + strlen(req->reply) + 1;
      strcpy(pull->data, json);
      pull->data_len = (uint32_t)strlen(json);
      queue_pull(jsh, pull, c);
      free(pull);
    }
  } else if (req->reply[0] != '\0') {
    /* A confirmed ack is confirmed once a state.json that contains it is
     * on disk. Without memory for the wait it stays unconfirmed, so the
     * client retries or times out. */
    if (c->dir == NULL)
      js_send(jsh, req->reply, NULL, NULL, 0, NULL, 0);
    else if (add_waiter(c, c->save_gen + 1, req->reply, NULL))
      save_state(c);
  }
  run_consumer(c, now_ns);
}

/* ---- Saved state results ---- */

static struct js_consumer *ticket_consumer(struct js_shard *jsh, const struct save_ticket *t) {
  struct js_stream *st = js_stream_find(jsh, t->stream);
  struct js_consumer *c = st != NULL ? find_consumer(st, t->consumer) : NULL;
  return c != NULL && c->instance == t->instance ? c : NULL;
}

static void on_meta_saved(struct js_shard *jsh, void *ctx, int res) {
  struct save_ticket *t = ctx;
  struct js_consumer *c = ticket_consumer(jsh, t);
  free(t);
  if (c == NULL || res == 0) return;
  log_error("consumer %s > %s: could not write %s/meta.json: %s", c->st->cfg.name, c->name,
            c->dir, strerror(-res));
  c->meta_failed = true;
}

/* Sends the replies that waited for state.json generations up to gen.
 * With failed set, drops the ack confirmations among them and replies to
 * the create request with an error. Returns false when c was deleted. */
static bool settle_waiters(struct js_shard *jsh, struct js_consumer *c, uint64_t gen, bool failed) {
  while (c->waiters != NULL && c->waiters->gen <= gen) {
    struct state_waiter *w = c->waiters;
    c->waiters = w->next;
    bool create = w->text != NULL;
    if (create && failed) {
      struct js_err err = {0};
      js_err_set(&err, 500, 10012, "could not save the consumer");
      cJSON *resp = js_response(TYPE_PREFIX "consumer_create_response");
      js_response_error(resp, &err);
      js_send_json(jsh, w->subject, resp);
    } else if (!failed && w->subject[0] != '\0') {
      js_send(jsh, w->subject, NULL, NULL, 0, w->text, create ? (uint32_t)strlen(w->text) : 0);
    }
    free(w->text);
    free(w);
    if (create && failed) {
      delete_consumer(c);
      return false;
    }
    if (create) {
      /* The reply is queued now: the push consumer starts after it. */
      c->create_pending = false;
      if (c->cfg.deliver_subject != NULL) jsh->push_deferred = true;
    }
  }
  return true;
}

static void on_state_saved(struct js_shard *jsh, void *ctx, int res) {
  struct save_ticket *t = ctx;
  struct js_consumer *c = ticket_consumer(jsh, t);
  uint64_t gen = t->gen;
  free(t);
  if (c == NULL) return;
  c->save_inflight = false;
  if (res != 0) {
    log_error("consumer %s > %s: could not write %s/state.json: %s", c->st->cfg.name, c->name,
              c->dir, strerror(-res));
    c->state_dirty = true;
  }
  bool failed = res != 0 || (c->create_pending && c->meta_failed);
  if (!settle_waiters(jsh, c, gen, failed)) return;
  /* Replies that came in during the write need the next one now. */
  if (c->waiters != NULL) save_state(c);
}

/* ---- Recovery ---- */

static cJSON *read_json(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "re");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = size > 0 ? malloc((size_t)size + 1) : NULL;
  cJSON *obj = NULL;
  if (text != NULL && fread(text, 1, (size_t)size, f) == (size_t)size) {
    text[size] = '\0';
    obj = cJSON_Parse(text);
  }
  free(text);
  fclose(f);
  return obj;
}

static uint64_t json_u64(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) && v->valuedouble > 0 ? js_clamp_u64(v->valuedouble) : 0;
}

/* Reloads the starting messages of a last_per_subject consumer that were
 * not delivered before the restart. One removed meanwhile is left out: a
 * message that replaced it has a sequence of at least next_sseq, so it
 * comes as a new message. */
static void restore_start_list(struct js_consumer *c, const cJSON *seqs) {
  int count = cJSON_GetArraySize(seqs);
  if (count <= 0) return;
  c->start_msgs = calloc((size_t)count, sizeof *c->start_msgs);
  if (c->start_msgs == NULL) {
    log_error("consumer %s > %s: out of memory for %d starting messages; they are skipped",
              c->st->cfg.name, c->name, count);
    return;
  }
  struct store_msg m = {0};
  const cJSON *v;
  cJSON_ArrayForEach(v, seqs) {
    if (!cJSON_IsNumber(v) || c->start_count == (uint32_t)count) continue;
    if (store_read(c->st->store, js_clamp_u64(v->valuedouble), &m) == 0 &&
        copy_start(&c->start_msgs[c->start_count], &m))
      c->start_count++;
  }
  store_msg_free(&m);
}

static void restore_state(struct js_consumer *c, const cJSON *state, int64_t now_ns) {
  c->next_sseq = json_u64(state, "next_sseq");
  c->delivered_cseq = json_u64(state, "delivered_cseq");
  c->delivered_sseq = json_u64(state, "delivered_sseq");
  c->ack_floor_cseq = json_u64(state, "ack_floor_cseq");
  c->ack_floor_sseq = json_u64(state, "ack_floor_sseq");
  c->num_redelivered = json_u64(state, "redelivered");
  const cJSON *pending = cJSON_GetObjectItemCaseSensitive(state, "pending");
  const cJSON *p;
  cJSON_ArrayForEach(p, pending) {
    if (cJSON_GetArraySize(p) != 3) continue;
    uint64_t sseq = js_clamp_u64(cJSON_GetArrayItem(p, 0)->valuedouble);
    uint64_t cseq = js_clamp_u64(cJSON_GetArrayItem(p, 1)->valuedouble);
    if (!track_pending(c, sseq, cseq, now_ns)) break;
    c->pending[c->pending_count - 1].deliveries = js_clamp_u64(cJSON_GetArrayItem(p, 2)->valuedouble);
  }
  restore_start_list(c, cJSON_GetObjectItemCaseSensitive(state, "start_seqs"));
}

static void recover_consumer(struct js_stream *st, const char *dir, const char *name) {
  cJSON *meta = read_json(dir, "meta.json");
  cJSON *state = read_json(dir, "state.json");
  struct consumer_config cfg;
  memset(&cfg, 0, sizeof cfg);
  struct js_err err = {0};
  const cJSON *created = cJSON_GetObjectItemCaseSensitive(meta, "created");
  if (meta == NULL || state == NULL ||
      !decode_config(cJSON_GetObjectItemCaseSensitive(meta, "config"), &cfg) ||
      check_config(st, &cfg, &err) != 0 || strcmp(cfg.durable, name) != 0) {
    log_error("consumer %s > %s: %s/meta.json or state.json is missing or invalid; the consumer "
              "is not loaded", st->cfg.name, name, dir);
    config_free(&cfg);
    cJSON_Delete(meta);
    cJSON_Delete(state);
    return;
  }
  int64_t created_ns = cJSON_IsString(created) ? js_time_parse(created->valuestring) : js_now_ns();
  struct js_consumer *c = new_consumer(st, &cfg, name, created_ns);
  if (c != NULL) {
    restore_state(c, state, js_now_ns());
    flow_control_start(c);
    replay_start(c);
  }
  cJSON_Delete(meta);
  cJSON_Delete(state);
}

void js_consumers_recover(struct js_stream *st) {
  char obs[4096];
  snprintf(obs, sizeof obs, "%s/obs", st->dir);
  DIR *d = opendir(obs);
  if (d == NULL) return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char dir[4096 + 256];
    snprintf(dir, sizeof dir, "%s/%s", obs, de->d_name);
    recover_consumer(st, dir, de->d_name);
  }
  closedir(d);
}
