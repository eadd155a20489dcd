/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's JetStream scenarios: js-pub (one publish in flight, each
 * waiting for its ack), js-async-pub (up to --window unacknowledged publishes)
 * and js-consume (a durable pull consumer drains what was published first and
 * acks every message). Each run deletes and creates its own stream, and
 * deletes it at the end. One connection carries everything: API requests,
 * publishes and deliveries arrive on one wildcard inbox subscription,
 * distinguished by the inbox token after the prefix: "r" for API replies, "a.<n>" for
 * the ack of message n, "f" for the status messages that end a pull batch. */
#include "bench/bench.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define CONNECT_TIMEOUT_MS 5000
#define API_TIMEOUT_NS (5 * NS_PER_S)
/* A publish ack or a delivery that takes longer than this ends the phase,
 * and whatever is missing then counts as lost. */
#define IDLE_TIMEOUT_NS (5 * NS_PER_S)
#define FETCH_EXPIRES_NS (1 * NS_PER_S)
#define READS_PER_POLL 4
#define CONSUMER_NAME "shoal_bench_consumer"
/* nats-server's error code for "stream not found" (JSStreamNotFoundErr). */
#define JS_ERR_STREAM_NOT_FOUND 10059

struct js {
  const struct bench_opts *opts;
  struct bench_result *result;
  struct bench_conn conn;
  char inbox[64];           /* "_INBOX.shoal_bench_js.<pid>", subscribed as <inbox>.> */
  char *payload;            /* template of opts->size bytes */
  int64_t deadline_ns;
  bool timed;               /* duration mode: publishing stops at stop_ns */
  int64_t stop_ns;
  bool measuring;           /* latency is recorded only when set */
  bool stream_created;      /* delete the stream even when the run fails */

  /* The pending API request. */
  char *reply;
  size_t reply_len;
  bool reply_ready;

  /* Publishing. */
  uint64_t window;
  int64_t *sent_at;         /* send time of message n at n % window */
  uint64_t sent;
  uint64_t acked;
  uint64_t last_stream_seq;
  uint64_t stream_seq_disorder; /* acks whose stream sequence did not increase */
  struct bench_seq acks;    /* message numbers of the acks received */
  int64_t last_ack_ns;

  /* Consuming. */
  struct bench_seq consumed;
  uint64_t consumed_msgs;
  uint64_t last_consumed;   /* payload sequence of the previous delivery */
  uint64_t consume_disorder;
  uint64_t fetch_left;      /* deliveries still due for the outstanding fetch */
  bool fetch_open;
  int64_t fetch_ns;
  int64_t last_delivery_ns;
};

static int fail(struct js *js, int err, const char *fmt, const char *detail)
{
  snprintf(js->conn.error, sizeof(js->conn.error), fmt, detail);
  return err;
}

static int timed_out(struct js *js)
{
  snprintf(js->conn.error, sizeof(js->conn.error),
           "timed out after %.0f s (published %" PRIu64 ", acked %" PRIu64 ", consumed %" PRIu64
           "); raise --timeout or lower --msgs", js->opts->timeout_s, js->sent, js->acked, js->consumed_msgs);
  return -ETIMEDOUT;
}

/* ---- Receiving ---- */

static int on_api_reply(struct js *js, const char *body, size_t len)
{
  char *copy = realloc(js->reply, len + 1);
  if (copy == NULL) return fail(js, -ENOMEM, "%s", "out of memory for a JetStream API reply");
  memcpy(copy, body, len);
  copy[len] = '\0';
  js->reply = copy;
  js->reply_len = len;
  js->reply_ready = true;
  return 0;
}

/* Handles the ack {"stream":..,"seq":N} of message n, or an error reply. */
static int on_pub_ack(struct js *js, uint64_t n, const char *body, size_t len, int64_t now)
{
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (root == NULL) {
    snprintf(js->conn.error, sizeof(js->conn.error), "publish ack of message %" PRIu64 " is not JSON: %.*s", n,
             (int)(len > 200 ? 200 : len), body);
    return -EPROTO;
  }
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
  if (error != NULL || !cJSON_IsNumber(seq)) {
    snprintf(js->conn.error, sizeof(js->conn.error), "JetStream rejected publish %" PRIu64 ": %.*s", n,
             (int)(len > 300 ? 300 : len), body);
    cJSON_Delete(root);
    return -EPROTO;
  }
  uint64_t stream_seq = (uint64_t)seq->valuedouble;
  cJSON_Delete(root);

  if (stream_seq <= js->last_stream_seq) js->stream_seq_disorder++;
  else js->last_stream_seq = stream_seq;
  if (bench_seq_add(&js->acks, n) < 0) return fail(js, -ENOMEM, "%s", "out of memory for sequence tracking");
  if (n <= js->sent && js->sent - n < js->window && js->measuring) {
    int64_t sent_at = js->sent_at[n % js->window];
    if (now >= sent_at) bench_hist_record(js->result->latency, (uint64_t)(now - sent_at));
  }
  js->acked++;
  js->last_ack_ns = now;
  return 0;
}

/* Returns true when an HMSG carries only a status header ("NATS/1.0 408
 * Request Timeout", "404 No Messages", "409 ..."): the end of a pull batch. */
static bool is_status(const struct proto_cmd *cmd)
{
  return cmd->header_len > 0 && cmd->total_len == cmd->header_len && cmd->header_len >= 12 &&
         memcmp(cmd->payload, "NATS/1.0 ", 9) == 0;
}

/* Returns the length of a status header's first line, "NATS/1.0 503" for example. */
static int status_len(const struct proto_cmd *cmd)
{
  const char *end = memchr(cmd->payload, '\r', cmd->header_len);
  return end != NULL ? (int)(end - cmd->payload) : (int)cmd->header_len;
}

static int on_delivery(struct js *js, const struct proto_cmd *cmd, int64_t now)
{
  if (is_status(cmd)) {
    js->fetch_open = false;
    return 0;
  }
  const char *body = cmd->payload + cmd->header_len;
  size_t len = cmd->total_len - cmd->header_len;
  js->consumed_msgs++;
  js->last_delivery_ns = now;
  if (js->fetch_left > 0 && --js->fetch_left == 0) js->fetch_open = false;
  if (js->measuring && now >= js->fetch_ns) bench_hist_record(js->result->latency, (uint64_t)(now - js->fetch_ns));

  if (len < BENCH_PAYLOAD_MIN) {
    js->result->foreign++;
  } else {
    uint64_t seq;
    memcpy(&seq, body, 8);
    seq &= BENCH_SEQ_MASK;
    if (seq <= js->last_consumed) js->consume_disorder++;
    else js->last_consumed = seq;
    if (bench_seq_add(&js->consumed, seq) < 0) return fail(js, -ENOMEM, "%s", "out of memory for sequence tracking");
  }
  if (cmd->reply.len == 0) return fail(js, -EPROTO, "%s", "a pull delivery has no reply subject to ack");

  /* An empty payload on the reply subject acks the message. */
  char *dst = bench_conn_reserve(&js->conn, cmd->reply.len + 16);
  if (dst == NULL) return fail(js, -ENOBUFS, "%s", "acks pile up past the output buffer limit");
  int n = sprintf(dst, "PUB %.*s 0\r\n\r\n", (int)cmd->reply.len, cmd->reply.ptr);
  bench_conn_commit(&js->conn, (size_t)n);
  return 0;
}

static int on_message(struct js *js, const struct proto_cmd *cmd, int64_t now)
{
  /* A pull delivery keeps the subject it was published on, and its reply
   * subject is the ack subject. Only the batch's status messages arrive on
   * the fetch inbox itself. */
  if (cmd->reply.len > 8 && memcmp(cmd->reply.ptr, "$JS.ACK.", 8) == 0) return on_delivery(js, cmd, now);
  size_t prefix = strlen(js->inbox);
  const char *subject = cmd->subject.ptr;
  if (cmd->subject.len < prefix + 2 || memcmp(subject, js->inbox, prefix) != 0) return 0;
  const char *token = subject + prefix + 1;
  size_t token_len = cmd->subject.len - prefix - 1;
  const char *body = cmd->payload + cmd->header_len;
  size_t len = cmd->total_len - cmd->header_len;

  if (token_len == 1 && token[0] == 'r' && is_status(cmd)) {
    snprintf(js->conn.error, sizeof(js->conn.error), "a JetStream API request got the status reply \"%.*s\"; "
             "503 means no responder: is JetStream enabled (-js) on the server?",
             status_len(cmd), cmd->payload);
    return -EPROTO;
  }
  if (token_len == 1 && token[0] == 'r') return on_api_reply(js, body, len);
  if (token_len == 1 && token[0] == 'f') return on_delivery(js, cmd, now);
  if (token_len > 2 && token[0] == 'a' && token[1] == '.') {
    uint64_t n = 0;
    for (size_t i = 2; i < token_len && token[i] >= '0' && token[i] <= '9'; i++) n = n * 10 + (uint64_t)(token[i] - '0');
    return on_pub_ack(js, n, body, len, now);
  }
  return 0;
}

static int on_frame(struct js *js, const struct proto_cmd *cmd, int64_t now)
{
  switch (cmd->op) {
  case PROTO_OP_MSG:
  case PROTO_OP_HMSG:
    return on_message(js, cmd, now);
  case PROTO_OP_PING:
    return bench_conn_append(&js->conn, "PONG\r\n", 6);
  case PROTO_OP_ERR:
    snprintf(js->conn.error, sizeof(js->conn.error), "the server sent -ERR %.*s", (int)cmd->arg.len, cmd->arg.ptr);
    return -EPROTO;
  default:
    return 0;
  }
}

/* Writes pending output, then waits up to until_ns for input and handles
 * every frame that arrived. */
static int js_poll(struct js *js, int64_t until_ns)
{
  long left = bench_conn_flush(&js->conn);
  if (left < 0) return (int)left;
  int64_t wait_ns = until_ns - now_ns();
  if (wait_ns < 0) wait_ns = 0;
  struct pollfd pfd = {.fd = js->conn.fd, .events = POLLIN | (left > 0 ? POLLOUT : 0)};
  int ready = poll(&pfd, 1, (int)((wait_ns + 999999) / 1000000));
  if (ready < 0) {
    if (errno == EINTR) return 0;
    return fail(js, -errno, "poll failed: %s", strerror(errno));
  }
  if (ready == 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR))) return 0;

  long got = bench_conn_fill(&js->conn, READS_PER_POLL);
  if (got < 0) return (int)got;
  int64_t now = now_ns();
  for (;;) { /* bounded by the bytes in the input buffer */
    struct proto_cmd cmd;
    int rc = bench_conn_next(&js->conn, &cmd);
    if (rc < 0) return rc;
    if (rc == 0) break;
    rc = on_frame(js, &cmd, now);
    if (rc < 0) return rc;
  }
  return 0;
}

/* ---- JetStream API ---- */

/* Sends body to the API subject and waits for the reply. Returns the parsed
 * reply (the caller frees it), or NULL with conn.error set and *err set. An
 * error reply whose err_code equals allowed_code is returned as a reply. */
static cJSON *js_request(struct js *js, const char *subject, const char *body, int allowed_code, int *err)
{
  char header[400];
  int n = snprintf(header, sizeof(header), "PUB %s %s.r %zu\r\n", subject, js->inbox, strlen(body));
  js->reply_ready = false;
  if (bench_conn_append(&js->conn, header, (size_t)n) < 0 || bench_conn_append(&js->conn, body, strlen(body)) < 0 ||
      bench_conn_append(&js->conn, "\r\n", 2) < 0) {
    *err = fail(js, -ENOBUFS, "%s", "output buffer full");
    return NULL;
  }
  int64_t deadline = now_ns() + API_TIMEOUT_NS;
  while (!js->reply_ready) { /* bounded by deadline */
    if (now_ns() >= deadline) {
      *err = fail(js, -ETIMEDOUT, "no reply to %s within 5 s; is JetStream enabled (-js) on the server?", subject);
      return NULL;
    }
    int rc = js_poll(js, deadline);
    if (rc < 0) {
      *err = rc;
      return NULL;
    }
  }

  cJSON *root = cJSON_ParseWithLength(js->reply, js->reply_len);
  if (root == NULL) {
    *err = fail(js, -EPROTO, "the reply to %s is not JSON", subject);
    return NULL;
  }
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (error == NULL) return root;
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "err_code");
  if (cJSON_IsNumber(code) && code->valueint == allowed_code) return root;
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(error, "description");
  snprintf(js->conn.error, sizeof(js->conn.error), "JetStream request %s failed: %s (err_code %d)", subject,
           cJSON_IsString(text) ? text->valuestring : "no description", cJSON_IsNumber(code) ? code->valueint : 0);
  cJSON_Delete(root);
  *err = -EPROTO;
  return NULL;
}

static int js_call(struct js *js, const char *subject, const char *body, int allowed_code)
{
  int err = 0;
  cJSON *root = js_request(js, subject, body, allowed_code, &err);
  cJSON_Delete(root);
  return root != NULL ? 0 : err;
}

static int delete_stream(struct js *js)
{
  char subject[160];
  snprintf(subject, sizeof(subject), "$JS.API.STREAM.DELETE.%s", js->opts->stream);
  return js_call(js, subject, "", JS_ERR_STREAM_NOT_FOUND);
}

/* Deletes a stream left by an earlier run, then creates a fresh one. */
static int create_stream(struct js *js)
{
  int rc = delete_stream(js);
  if (rc < 0) return rc;
  cJSON *config = cJSON_CreateObject();
  cJSON_AddStringToObject(config, "name", js->opts->stream);
  cJSON *subjects = cJSON_AddArrayToObject(config, "subjects");
  cJSON_AddItemToArray(subjects, cJSON_CreateString(js->opts->subject));
  cJSON_AddStringToObject(config, "storage", js->opts->js_memory ? "memory" : "file");
  char *body = cJSON_PrintUnformatted(config);
  cJSON_Delete(config);
  if (body == NULL) return fail(js, -ENOMEM, "%s", "out of memory");

  char subject[160];
  snprintf(subject, sizeof(subject), "$JS.API.STREAM.CREATE.%s", js->opts->stream);
  rc = js_call(js, subject, body, 0);
  free(body);
  return rc;
}

static int create_consumer(struct js *js)
{
  char subject[240];
  char body[300];
  snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", js->opts->stream, CONSUMER_NAME);
  snprintf(body, sizeof(body),
           "{\"stream_name\":\"%s\",\"config\":{\"durable_name\":\"%s\",\"ack_policy\":\"explicit\"}}",
           js->opts->stream, CONSUMER_NAME);
  return js_call(js, subject, body, 0);
}

/* ---- Phases ---- */

static int publish_one(struct js *js, int64_t now)
{
  uint64_t n = js->sent + 1;
  char header[400];
  int hlen = snprintf(header, sizeof(header), "PUB %s %s.a.%" PRIu64 " %u\r\n", js->opts->subject, js->inbox, n,
                      js->opts->size);
  char *dst = bench_conn_reserve(&js->conn, (size_t)hlen + js->opts->size + 2);
  if (dst == NULL) return fail(js, -ENOBUFS, "%s", "output buffer full");
  memcpy(dst, header, (size_t)hlen);
  memcpy(dst + hlen, js->payload, js->opts->size);
  memcpy(dst + hlen, &n, 8);
  memcpy(dst + hlen + 8, &now, 8);
  memcpy(dst + hlen + js->opts->size, "\r\n", 2);
  bench_conn_commit(&js->conn, (size_t)hlen + js->opts->size + 2);
  js->sent_at[n % js->window] = now;
  js->sent = n;
  return 0;
}

/* Publishes quota messages (or until stop_ns in duration mode) with at most
 * window of them unacknowledged. Returns when every publish is acked, or when
 * no ack came for IDLE_TIMEOUT_NS; the missing ones then count as lost. */
static int publish_phase(struct js *js, uint64_t quota, uint64_t window)
{
  js->last_ack_ns = now_ns();
  for (;;) { /* bounded by quota or stop_ns, and by deadline_ns */
    int64_t now = now_ns();
    bool stop = js->timed ? now >= js->stop_ns : js->sent >= quota;
    if (stop && js->acked >= js->sent) return 0;
    if (now >= js->deadline_ns) return timed_out(js);
    if (js->sent > js->acked && now - js->last_ack_ns > IDLE_TIMEOUT_NS) {
      fprintf(stderr, "shoal-bench: no publish ack for 5 s; %" PRIu64 " publishes unacknowledged\n",
              js->sent - js->acked);
      return 0;
    }
    while (!stop && js->sent - js->acked < window) {
      if (js->sent == js->acked) js->last_ack_ns = now;
      int rc = publish_one(js, now);
      if (rc < 0) return rc;
      stop = !js->timed && js->sent >= quota;
    }
    int64_t until = js->last_ack_ns + IDLE_TIMEOUT_NS;
    if (js->timed && !stop && js->stop_ns < until) until = js->stop_ns;
    int rc = js_poll(js, until);
    if (rc < 0) return rc;
  }
}

static int fetch(struct js *js, uint64_t batch, int64_t now)
{
  char subject[240];
  char body[96];
  snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", js->opts->stream, CONSUMER_NAME);
  int blen = snprintf(body, sizeof(body), "{\"batch\":%" PRIu64 ",\"expires\":%lld}", batch, FETCH_EXPIRES_NS);
  char header[400];
  int hlen = snprintf(header, sizeof(header), "PUB %s %s.f %d\r\n", subject, js->inbox, blen);
  if (bench_conn_append(&js->conn, header, (size_t)hlen) < 0 || bench_conn_append(&js->conn, body, (size_t)blen) < 0 ||
      bench_conn_append(&js->conn, "\r\n", 2) < 0) {
    return fail(js, -ENOBUFS, "%s", "output buffer full");
  }
  js->fetch_left = batch;
  js->fetch_open = true;
  js->fetch_ns = now;
  return 0;
}

/* Pulls target messages in batches of at most window, acking each one. Ends
 * when all arrived, or when none arrived for IDLE_TIMEOUT_NS. */
static int consume_phase(struct js *js, uint64_t target, uint64_t window)
{
  js->last_delivery_ns = now_ns();
  for (;;) { /* bounded by target, by the idle timeout and by deadline_ns */
    int64_t now = now_ns();
    if (js->consumed.unique >= target) return 0;
    if (now >= js->deadline_ns) return timed_out(js);
    if (now - js->last_delivery_ns > IDLE_TIMEOUT_NS) {
      fprintf(stderr, "shoal-bench: no delivery for 5 s; %" PRIu64 " of %" PRIu64 " messages consumed\n",
              js->consumed.unique, target);
      return 0;
    }
    if (!js->fetch_open) {
      uint64_t left = target - js->consumed.unique;
      int rc = fetch(js, left < window ? left : window, now);
      if (rc < 0) return rc;
    }
    int rc = js_poll(js, now + FETCH_EXPIRES_NS);
    if (rc < 0) return rc;
  }
}

/* ---- Run ---- */

static void set_side(struct bench_side *side, uint64_t msgs, uint32_t size, int64_t ns)
{
  side->msgs = msgs;
  side->bytes = msgs * size;
  side->seconds = msgs > 0 ? (double)ns / NS_PER_S : 0;
}

static int run_phases(struct js *js)
{
  const struct bench_opts *opts = js->opts;
  struct bench_result *r = js->result;
  bool consume = opts->scenario == BENCH_SCENARIO_JS_CONSUME;
  uint64_t pub_window = opts->scenario == BENCH_SCENARIO_JS_PUB ? 1 : js->window;

  int rc = create_stream(js);
  if (rc < 0) return rc;
  js->stream_created = true;

  int64_t cpu_start = client_cpu_ns();
  int64_t server_start = opts->server_pid > 0 ? bench_process_cpu_ns(opts->server_pid) : -1;
  int64_t start = now_ns();
  js->timed = opts->msgs == 0;
  js->stop_ns = start + (int64_t)(opts->duration_s * NS_PER_S);
  js->measuring = !consume;
  rc = publish_phase(js, opts->msgs, pub_window);
  if (rc < 0) return rc;
  int64_t published_ns = js->last_ack_ns - start;
  set_side(&r->published, js->sent, opts->size, published_ns);
  r->sent_total = js->sent;
  r->lost = bench_seq_lost(&js->acks, js->sent);
  r->duplicated = js->acks.duplicated;
  r->out_of_order = js->stream_seq_disorder + js->acks.out_of_order;

  if (consume) {
    rc = create_consumer(js);
    if (rc < 0) return rc;
    cpu_start = client_cpu_ns();
    server_start = opts->server_pid > 0 ? bench_process_cpu_ns(opts->server_pid) : -1;
    start = now_ns();
    js->measuring = true;
    rc = consume_phase(js, js->acks.unique, js->window);
    if (rc < 0) return rc;
    set_side(&r->received, js->consumed_msgs, opts->size, js->last_delivery_ns - start);
    r->received_total = js->consumed_msgs;
    r->lost += bench_seq_lost(&js->consumed, js->acks.unique);
    r->duplicated += js->consumed.duplicated;
    r->out_of_order += js->consume_disorder;
  } else {
    set_side(&r->received, js->acked, opts->size, published_ns);
    r->received_total = js->acked;
  }

  r->client_cpu_s = (double)(client_cpu_ns() - cpu_start) / NS_PER_S;
  if (server_start >= 0) {
    int64_t end = bench_process_cpu_ns(opts->server_pid);
    r->cpu_server_known = end >= 0;
    if (end >= 0) r->server_cpu_s = (double)(end - server_start) / NS_PER_S;
  }
  /* The delete request goes out after the last acks, which are earlier in the
   * output buffer. */
  js->stream_created = false;
  return delete_stream(js);
}

static int open_connection(struct js *js)
{
  const struct bench_opts *opts = js->opts;
  struct bench_conn_auth auth = {.user = opts->user, .pass = opts->pass, .token = opts->token};
  int rc = bench_conn_open(&js->conn, opts->host, opts->port, "js", &auth, CONNECT_TIMEOUT_MS);
  if (rc < 0) return rc;
  if (opts->size > js->conn.max_payload) {
    snprintf(js->conn.error, sizeof(js->conn.error), "--size %u is over the server's max_payload of %" PRIu64 " bytes",
             opts->size, js->conn.max_payload);
    return -EMSGSIZE;
  }
  snprintf(js->result->server_version, sizeof(js->result->server_version), "%s", js->conn.server_version);
  snprintf(js->result->server_name, sizeof(js->result->server_name), "%s", js->conn.server_name);
  snprintf(js->inbox, sizeof(js->inbox), "_INBOX.shoal_bench_js.%d", (int)getpid());
  char line[128];
  int n = snprintf(line, sizeof(line), "SUB %s.> 1\r\n", js->inbox);
  return bench_conn_append(&js->conn, line, (size_t)n);
}

int bench_js_run(const struct bench_opts *opts, struct bench_result *result)
{
  struct js js = {.opts = opts, .result = result, .window = opts->window_msgs};
  js.conn.fd = -1;
  js.deadline_ns = now_ns() + (int64_t)(opts->timeout_s * NS_PER_S);
  result->latency = malloc(sizeof(*result->latency));
  js.payload = malloc(opts->size);
  js.sent_at = calloc(js.window, sizeof(*js.sent_at));
  int rc = 0;
  if (result->latency == NULL || js.payload == NULL || js.sent_at == NULL) {
    fprintf(stderr, "shoal-bench: out of memory\n");
    rc = -ENOMEM;
  }
  if (rc == 0) {
    bench_hist_reset(result->latency);
    for (uint32_t i = 0; i < opts->size; i++) js.payload[i] = (char)('a' + i % 26);
    bench_seq_init(&js.acks);
    bench_seq_init(&js.consumed);
    rc = open_connection(&js);
    if (rc == 0) rc = run_phases(&js);
    if (rc < 0) fprintf(stderr, "shoal-bench: %s\n", js.conn.error);
    if (rc < 0 && js.stream_created && rc != -ECONNRESET && rc != -EPIPE) {
      /* Best effort, so a failed run leaves no stream behind. */
      if (delete_stream(&js) < 0) fprintf(stderr, "shoal-bench: %s\n", js.conn.error);
    }
    bench_seq_free(&js.acks);
    bench_seq_free(&js.consumed);
  }
  if (js.conn.fd >= 0 || js.conn.in != NULL) bench_conn_close(&js.conn);
  free(js.reply);
  free(js.payload);
  free(js.sent_at);
  return rc;
}
