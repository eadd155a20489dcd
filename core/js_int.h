/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream internals shared by core/js*.c: the per-shard state, streams,
 * the account-wide stream registry, and the helpers that build API replies.
 *
 * Threading: a stream and everything inside it belong to the shard its name
 * hashes to (XXH3-64 modulo the shard count) and are touched only on that
 * shard's thread. The registry is the one structure other shards read: a
 * mutex guards its list, and each entry's counters are atomics that only
 * the owning shard writes. API requests, acks and captured publishes are
 * handled inside their subscription callbacks, so they apply in arrival
 * order, but nothing there publishes, because that would reuse the match
 * result the router is still walking. Replies and deliveries are queued,
 * and the shard's JetStream hook sends them. */
#ifndef SHOAL_JS_INT_H
#define SHOAL_JS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

struct cJSON;
struct shard;
struct sub;

#define JS_NAME_MAX 255
#define JS_API_PREFIX "$JS.API."
#define JS_ACCOUNT_DIR "$G"
/* nats-server 2.9 defaults. */
#define JS_DEFAULT_DUPLICATE_WINDOW_NS (120LL * 1000000000LL)
#define JS_NAMES_LIMIT 1024
#define JS_LIST_LIMIT 256

enum js_retention {
  JS_RETENTION_LIMITS = 0,
  JS_RETENTION_INTEREST,
  JS_RETENTION_WORKQUEUE,
};

/* A stream configuration as nats-server 2.9 defines it. A limit of -1
 * means no limit, as in nats-server. */
struct js_stream_config {
  char name[JS_NAME_MAX + 1];
  char *description;
  char **subjects;
  uint32_t subject_count;
  enum js_retention retention;
  int64_t max_consumers;
  int64_t max_msgs;
  int64_t max_bytes;
  int64_t max_age_ns;
  int64_t max_msgs_per_subject;
  int64_t max_msg_size;
  enum store_discard discard;
  enum store_kind storage;
  int64_t num_replicas;
  int64_t duplicate_window_ns;
  bool allow_direct;
  bool mirror_direct;
  bool sealed;
  bool deny_delete;
  bool deny_purge;
  bool allow_rollup_hdrs;
  bool no_ack;
  /* republish: each stored message whose subject matches republish_src
   * is also published to republish_dest, mapped by js_republish_subject. */
  char *republish_src;        /* NULL when the stream does not republish */
  char *republish_dest;
  bool republish_headers_only;
};

/* An API error as nats-server reports it: HTTP-like code, JetStream error
 * code and text. code 0 means no error. */
struct js_err {
  int code;
  int err_code;
  char description[256];
};

/* Stream state counters, written by the owning shard and read by others. */
struct js_stats {
  _Atomic uint64_t messages;
  _Atomic uint64_t bytes;
  _Atomic uint64_t first_seq;
  _Atomic uint64_t last_seq;
  _Atomic int64_t first_ts_ns;
  _Atomic int64_t last_ts_ns;
  _Atomic uint64_t num_subjects;
  _Atomic uint64_t num_deleted;
  _Atomic uint32_t consumer_count;
};

/* One stream in the account-wide registry. name, shard_id and created_ns
 * never change, and subjects and config_json change under the registry
 * mutex. */
struct js_reg_entry {
  char name[JS_NAME_MAX + 1];
  uint32_t shard_id;
  int64_t created_ns;
  enum store_kind storage;
  char **subjects;
  uint32_t subject_count;
  char *config_json;       /* the configuration as an API reply shows it */
  struct js_stats stats;
  struct js_reg_entry *next;
};

/* A Nats-Msg-Id seen within the duplicate window. */
struct js_dedupe {
  char *id;
  uint64_t seq;
  int64_t ts_ns;
  struct js_dedupe *next_in_bucket;
  struct js_dedupe *next_in_order;  /* oldest first */
};

struct js_consumer;
struct js_backlog;

struct js_stream {
  struct js_shard *owner;
  struct js_stream_config cfg;
  int64_t created_ns;
  char *dir;                  /* the stream's directory under the store dir */
  struct store *store;
  struct sub **capture;       /* one internal subscription per subject */
  uint32_t capture_count;
  struct js_reg_entry *reg;
  /* Duplicate detection: a chained hash table plus an age-ordered list. */
  struct js_dedupe **dedupe_buckets;
  uint32_t dedupe_bucket_count;
  uint32_t dedupe_count;
  struct js_dedupe *dedupe_oldest;
  struct js_dedupe *dedupe_newest;
  char *last_msg_id;          /* the newest stored Nats-Msg-Id, or NULL */
  uint32_t pending_acks;      /* appends whose durable callback has not run */
  struct js_backlog *backlog_head;  /* publishes waiting for room in the store */
  struct js_backlog *backlog_tail;
  size_t backlog_bytes;
  bool closing;               /* deleted, so callbacks only free their state */
  struct js_consumer *consumers;
  struct js_stream *next;
};

/* An API request or ack copied out of its subscription callback, with
 * NUL-terminated fields for the handlers. */
struct js_request {
  struct js_request *next;
  char *subject;
  char *reply;                /* NUL-terminated, may be "" */
  char *data;                 /* the payload without headers, NUL-terminated */
  uint32_t data_len;
  char buf[];
};

/* A message the shard publishes from its hook. With inbox_len above 0 it
 * goes to the subscribers of the inbox while its MSG line shows subject,
 * as consumer deliveries need. */
struct js_out {
  struct js_out *next;
  uint32_t inbox_len;
  uint32_t subject_len;
  uint32_t reply_len;
  uint32_t hdr_len;
  uint32_t total_len;          /* headers plus payload */
  uint32_t queue_len;          /* handovers for one queue group member: its name follows */
  char buf[];                  /* inbox, subject, reply, headers, payload[, queue] */
};

struct js_shard {
  struct shard *shard;
  uint32_t id;
  struct io_backend *io;
  bool io_sync;                /* the plain backend, whose requests run in io_poll */
  struct js_stream *streams;
  struct js_stream *closing;   /* deleted streams waiting for their store to close */
  struct sub *api_sub;
  struct sub *ack_sub;
  struct sub *deliver_sub;     /* deliveries handed over by other shards */
  struct js_out *out_head;
  struct js_out *out_tail;
  struct js_out *handover_head;  /* deliveries from other shards, for local subscribers */
  struct js_out *handover_tail;
  int64_t next_timer_ms;
  int64_t next_heartbeat_ns;   /* when the next idle heartbeat is due, 0 = none */
  bool heartbeat_check;        /* recompute next_heartbeat_ns in the next hook run */
  uint32_t group_turn;         /* rotates deliveries among queue group members */
  bool in_hook;                /* the hook is running, so matching and sending are safe */
  bool push_kick;              /* some push consumer may have messages to deliver */
  /* Consumers wait for the next loop iteration: new push consumers, so
   * their create reply goes out first, and any that used up its budget. */
  bool push_deferred;
};

/* Process-wide JetStream state, set by js_init() before shards start. */
struct js_global {
  bool enabled;
  char *root;                  /* <store_dir>/jetstream */
  char *streams_dir;           /* <root>/$G/streams */
  struct js_shard *shards;     /* one per shard, indexed by shard id */
  /* Bytes stored by all streams, indexed by enum store_kind, for the
   * max_file_store and max_memory_store limits. */
  _Atomic int64_t used_bytes[2];
};

extern struct js_global js;

/* js.c */
uint32_t js_owner_of(const char *name, size_t len);
struct js_shard *js_shard_self(struct shard *s);
void js_send(struct js_shard *jsh, const char *subject, const char *reply, const void *hdr,
             uint32_t hdr_len, const void *data, uint32_t data_len);
void js_send_json(struct js_shard *jsh, const char *subject, struct cJSON *obj);
void js_deliver(struct js_shard *jsh, const char *inbox, const char *subject, const char *reply,
                const void *hdr, uint32_t hdr_len, const void *data, uint32_t data_len);
void js_handle_request(struct js_shard *jsh, const char *subject, uint32_t subject_len,
                       const char *reply, uint32_t reply_len, const char *data, uint32_t data_len);
int js_write_file_atomic(const char *dir, const char *name, const char *text, size_t len);
int js_mkdir_p(const char *path);
int js_remove_tree(const char *path);
int64_t js_now_ns(void);

/* js_registry.c */
int js_registry_add(const struct js_stream_config *cfg, uint32_t shard_id, int64_t created_ns,
                    const char *config_json, struct js_reg_entry **out, struct js_err *err);
int js_registry_update(struct js_reg_entry *e, const struct js_stream_config *cfg,
                       const char *config_json, struct js_err *err);
void js_registry_remove(struct js_reg_entry *e);
bool js_subjects_overlap(const char *a, const char *b);
void js_stats_publish(struct js_reg_entry *e, const struct store_state *st);
struct cJSON *js_registry_names(const char *subject_filter, int64_t offset, uint32_t *total);
struct cJSON *js_registry_list(int64_t offset, uint32_t *total);
void js_registry_totals(uint64_t *streams, uint64_t *consumers, uint64_t *memory,
                        uint64_t *storage);
struct cJSON *js_info_state_json(const struct js_stats *stats);

/* js_json.c */
void js_err_set(struct js_err *err, int code, int err_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
struct cJSON *js_response(const char *type);
void js_response_error(struct cJSON *resp, const struct js_err *err);
int js_config_parse(const struct cJSON *obj, struct js_stream_config *cfg, struct js_err *err);
struct cJSON *js_config_json(const struct js_stream_config *cfg);
void js_config_free(struct js_stream_config *cfg);
int js_config_copy(struct js_stream_config *dst, const struct js_stream_config *src);
void js_time_format(int64_t ns, char *out, size_t cap);
int64_t js_time_parse(const char *text);
size_t js_base64_encode(const uint8_t *in, size_t len, char *out);
bool js_name_valid(const char *name);
/* Writes to out the republish subject for subject, which matches src:
 * dest with its '*' tokens replaced in order, "$N" by src's N-th '*'
 * token and '>' by the rest. Returns 0 or -ENAMETOOLONG. */
int js_republish_subject(const char *src, const char *dest, const char *subject, char *out,
                         size_t cap);

/* js_stream.c */
int js_stream_create(struct js_shard *jsh, const struct js_stream_config *cfg, int64_t created_ns,
                     bool recovering, struct js_stream **out, struct js_err *err);
int js_stream_update(struct js_stream *st, const struct js_stream_config *cfg, struct js_err *err);
void js_stream_delete(struct js_stream *st);
struct js_stream *js_stream_find(struct js_shard *jsh, const char *name);
void js_stream_refresh_stats(struct js_stream *st);
struct cJSON *js_stream_info_json(struct js_stream *st, const char *type);
void js_stream_recover_all(struct js_shard *jsh);
void js_stream_expire_dedupe(struct js_stream *st, int64_t now_ns);
void js_stream_reap_closing(struct js_shard *jsh);
void js_stream_drain_backlog(struct js_stream *st);

/* js_consumer.c */
void js_consumers_run(struct js_shard *jsh);
/* Starts writing the changed state of st's durable consumers. Returns true
 * while a durable consumer's state is changed or being written. */
bool js_consumers_save_all(struct js_stream *st);
void js_consumers_release_deferred(struct js_shard *jsh);
void js_consumer_on_ack(struct sub *sub, const char *subject, uint32_t subject_len,
                        const char *reply, uint32_t reply_len, const char *data,
                        uint32_t header_len, uint32_t total_len);
void js_consumers_on_stream_msg(struct js_stream *st);
void js_consumers_retire_unwanted(struct js_stream *st, uint64_t seq);
void js_consumers_free_all(struct js_stream *st);
void js_consumer_api(struct js_shard *jsh, struct js_request *req, const char *stream);
void js_consumer_ack(struct js_shard *jsh, struct js_request *req);
void js_consumers_recover(struct js_stream *st);
void js_consumers_timers(struct js_stream *st, int64_t now_ns);
int64_t js_consumers_heartbeats(struct js_stream *st, int64_t now_ns);

/* js_state.c: the background writer of durable consumer files. */
/* Receives a job's result, 0 or -errno, on the thread of the shard that
 * submitted the job. */
typedef void (*js_state_done_fn)(struct js_shard *jsh, void *ctx, int res);
/* Replaces dir/name with text atomically (js_write_file_atomic), creating
 * dir first when make_dir is set, on the writer thread. Takes ownership of
 * text, a malloc'd NUL-terminated string, even on failure. name must stay
 * valid until done runs (a string literal). Jobs run in submission order.
 * done (may be NULL) gets ctx and the result from js_state_poll(). Returns
 * 0, or -ENOMEM or -errno of the thread start, with done not called.
 * Shard threads only. */
int js_state_write(struct js_shard *jsh, const char *dir, const char *name, char *text,
                   bool make_dir, js_state_done_fn done, void *ctx);
/* Removes the tree at dir on the writer thread, after the jobs submitted
 * before it. Same contract as js_state_write. */
int js_state_remove(struct js_shard *jsh, const char *dir, js_state_done_fn done, void *ctx);
/* Runs the callbacks of jsh's finished jobs. Its shard's thread only, from
 * the JetStream hook. */
void js_state_poll(struct js_shard *jsh);

/* js_api.c */
void js_api_handle(struct js_shard *jsh, struct js_request *req);
bool js_api_owned_here(uint32_t shard_id, const char *subject, uint32_t subject_len);

/* Converts a JSON number to an integer, clamped to the type's range, so a
 * huge or negative value from a client is never undefined behaviour. */
static inline int64_t js_clamp_i64(double d) {
  if (!(d > -9223372036854775808.0)) return INT64_MIN;
  if (d >= 9223372036854775808.0) return INT64_MAX;
  return (int64_t)d;
}

static inline uint64_t js_clamp_u64(double d) {
  if (!(d > 0)) return 0;
  if (d >= 18446744073709551616.0) return UINT64_MAX;
  return (uint64_t)d;
}

#endif
