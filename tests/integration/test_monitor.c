/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of the HTTP monitor. Every endpoint is fetched with
 * libcurl while libnats clients are connected, and values are checked
 * against a known number of connections, publishes and subscriptions.
 * Further tests cover the ports file, the connection limit and promtool's
 * check of /metrics. The last suite compares the JSON of /varz, /connz,
 * /subsz, /healthz, /jsz and /routez with Debian's nats-server 2.9.10,
 * field by field, for presence and type. Owned by the monitoring code's
 * authors. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(monitor, .fini = harness_stop, .timeout = HARNESS_TEST_TIMEOUT_S);

/* Messages each publishing test sends, and their payload size. */
#define PUBLISH_COUNT 100
#define PAYLOAD_BYTES 10
/* shoal's stated limit of concurrent HTTP connections (net/monitor.c). */
#define SHOAL_HTTP_CONNECTION_LIMIT 64
#define REFERENCE_SERVER "/usr/sbin/nats-server"

/* ---- HTTP with libcurl. ---- */

struct http_reply {
  long status;
  char *body; /* NUL-terminated */
  size_t len;
  char content_type[128];
};

static size_t on_body(char *data, size_t size, size_t count, void *arg) {
  struct http_reply *r = arg;
  size_t n = size * count;
  char *grown = realloc(r->body, r->len + n + 1);
  if (!grown)
    return 0;
  memcpy(grown + r->len, data, n);
  r->len += n;
  grown[r->len] = '\0';
  r->body = grown;
  return n;
}

/* Sends a method request for http://127.0.0.1:port/path and fails the
 * test when it cannot be made. No proxy is used, so the request stays on
 * loopback whatever proxy the environment sets. */
static void http_request(int port, const char *method, const char *path, struct http_reply *r) {
  static bool curl_ready;
  if (!curl_ready) {
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    curl_ready = true;
  }
  memset(r, 0, sizeof(*r));
  char url[512];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
  CURL *curl = curl_easy_init();
  cr_assert_not_null(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  CURLcode rc = curl_easy_perform(curl);
  cr_assert_eq(rc, CURLE_OK, "%s %s failed: %s", method, url, curl_easy_strerror(rc));
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
  char *type = NULL;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  snprintf(r->content_type, sizeof(r->content_type), "%s", type ? type : "");
  curl_easy_cleanup(curl);
  if (!r->body)
    r->body = calloc(1, 1);
}

static void http_get(int port, const char *path, struct http_reply *r) {
  http_request(port, "GET", path, r);
}

/* GETs path, checks 200 and JSON, and returns the parsed document. */
static cJSON *get_json(int port, const char *path) {
  struct http_reply r;
  http_get(port, path, &r);
  cr_assert_eq(r.status, 200, "GET %s: status %ld, body: %s", path, r.status, r.body);
  cr_assert(strncmp(r.content_type, "application/json", 16) == 0, "GET %s: Content-Type %s",
            path, r.content_type);
  cJSON *doc = cJSON_Parse(r.body);
  cr_assert_not_null(doc, "GET %s: body is not JSON: %s", path, r.body);
  free(r.body);
  return doc;
}

/* ---- JSON access that fails the test on a missing or mistyped field. ---- */

static const cJSON *field(const cJSON *obj, const char *key) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, key);
  cr_assert_not_null(f, "field %s is missing", key);
  return f;
}

static double number(const cJSON *obj, const char *key) {
  const cJSON *f = field(obj, key);
  cr_assert(cJSON_IsNumber(f), "field %s is not a number", key);
  return f->valuedouble;
}

static const char *string(const cJSON *obj, const char *key) {
  const cJSON *f = field(obj, key);
  cr_assert(cJSON_IsString(f), "field %s is not a string", key);
  return f->valuestring;
}

static const cJSON *array(const cJSON *obj, const char *key) {
  const cJSON *f = field(obj, key);
  cr_assert(cJSON_IsArray(f), "field %s is not an array", key);
  return f;
}

/* Returns the connection of /connz's list whose name is name, or NULL. */
static const cJSON *conn_named(const cJSON *connz, const char *name) {
  const cJSON *c;
  cJSON_ArrayForEach(c, array(connz, "connections")) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
      return c;
  }
  return NULL;
}

/* ---- Servers. ---- */

/* Binds 127.0.0.1:0 and returns the port the kernel chose. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

/* Starts the server under test with monitoring on a free port and returns
 * that port. config_text and extra_args as for harness_start_with(). */
static int start_monitored(const char *config_text, const char *extra_args) {
  int http_port = free_port();
  char args[1024];
  snprintf(args, sizeof(args), "-m %d%s%s", http_port, extra_args ? " " : "",
           extra_args ? extra_args : "");
  harness_start_with(config_text, args);
  return http_port;
}

/* Connects a libnats client named name. */
static natsConnection *connect_named(const char *name) {
  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetName(opts, name), NATS_OK);
  natsConnection *nc = harness_connect_opts(opts);
  natsOptions_Destroy(opts);
  return nc;
}

/* The traffic most tests look at: "subscriber" with a plain subscription
 * on mon.a and a queue subscription on mon.b in group q, "publisher" that
 * sent PUBLISH_COUNT messages to mon.a (all received), and "idle". */
struct traffic {
  natsConnection *subscriber, *publisher, *idle;
  natsSubscription *plain, *queued;
};

static void make_traffic(struct traffic *t) {
  t->subscriber = connect_named("subscriber");
  t->publisher = connect_named("publisher");
  t->idle = connect_named("idle");
  cr_assert_eq(natsConnection_SubscribeSync(&t->plain, t->subscriber, "mon.a"), NATS_OK);
  cr_assert_eq(natsConnection_QueueSubscribeSync(&t->queued, t->subscriber, "mon.b", "q"),
               NATS_OK);
  cr_assert_eq(natsConnection_Flush(t->subscriber), NATS_OK);

  char payload[PAYLOAD_BYTES];
  memset(payload, 'x', sizeof(payload));
  for (int i = 0; i < PUBLISH_COUNT; i++)
    cr_assert_eq(natsConnection_Publish(t->publisher, "mon.a", payload, sizeof(payload)), NATS_OK);
  cr_assert_eq(natsConnection_Flush(t->publisher), NATS_OK);
  for (int i = 0; i < PUBLISH_COUNT; i++)
    natsMsg_Destroy(harness_next_msg(t->plain));
}

static void end_traffic(struct traffic *t) {
  natsSubscription_Destroy(t->plain);
  natsSubscription_Destroy(t->queued);
}

/* ---- /varz ---- */

HARNESS_TEST(monitor, varz_counts_traffic) {
  int http = start_monitored(NULL, NULL);
  cJSON *before = get_json(http, "/varz");
  double total_before = number(before, "total_connections");
  double subs_before = number(before, "subscriptions");

  struct traffic t;
  make_traffic(&t);
  cJSON *v = get_json(http, "/varz");
  cr_expect_str_eq(string(v, "version"), "2.9.10");
  cr_expect_eq(number(v, "port"), harness_port());
  cr_expect_eq(number(v, "http_port"), http);
  cr_expect_str_eq(string(v, "http_host"), "127.0.0.1");
  cr_expect_eq(number(v, "connections"), 3);
  cr_expect_eq(number(v, "total_connections"), total_before + 3);
  cr_expect_eq(number(v, "in_msgs"), PUBLISH_COUNT);
  cr_expect_eq(number(v, "out_msgs"), PUBLISH_COUNT);
  cr_expect_eq(number(v, "in_bytes"), PUBLISH_COUNT * PAYLOAD_BYTES);
  cr_expect_eq(number(v, "out_bytes"), PUBLISH_COUNT * PAYLOAD_BYTES);
  cr_expect_eq(number(v, "slow_consumers"), 0);
  cr_expect_eq(number(v, "subscriptions"), subs_before + 2);
  cr_expect_eq(number(v, "ping_interval"), 120e9, "ping_interval is in nanoseconds");
  cr_expect_eq(number(v, "write_deadline"), 10e9, "write_deadline is in nanoseconds");
  cr_expect_eq(number(v, "max_payload"), HARNESS_MAX_PAYLOAD);
  cr_expect_geq(number(field(v, "http_req_stats"), "/varz"), 2);
  if (!harness_is_reference()) {
    cr_expect_str_eq(string(v, "shoal_version"), SHOAL_VERSION);
    cr_expect_gt(number(v, "shoal_shards"), 0);
  }
  cJSON_Delete(before);
  cJSON_Delete(v);
  end_traffic(&t);
}

/* ---- /connz ---- */

HARNESS_TEST(monitor, connz_lists_connections) {
  int http = start_monitored(NULL, NULL);
  struct traffic t;
  make_traffic(&t);

  cJSON *z = get_json(http, "/connz");
  cr_expect_eq(number(z, "num_connections"), 3);
  cr_expect_eq(number(z, "total"), 3);
  cr_expect_eq(number(z, "offset"), 0);
  cr_expect_eq(number(z, "limit"), 1024);
  const cJSON *sub = conn_named(z, "subscriber");
  const cJSON *pub = conn_named(z, "publisher");
  const cJSON *idle = conn_named(z, "idle");
  cr_assert_not_null(sub);
  cr_assert_not_null(pub);
  cr_assert_not_null(idle);
  cr_expect_eq(number(sub, "subscriptions"), 2);
  cr_expect_eq(number(sub, "out_msgs"), PUBLISH_COUNT);
  cr_expect_eq(number(sub, "out_bytes"), PUBLISH_COUNT * PAYLOAD_BYTES);
  cr_expect_eq(number(sub, "in_msgs"), 0);
  cr_expect_eq(number(pub, "in_msgs"), PUBLISH_COUNT);
  cr_expect_eq(number(pub, "in_bytes"), PUBLISH_COUNT * PAYLOAD_BYTES);
  cr_expect_eq(number(pub, "subscriptions"), 0);
  cr_expect_eq(number(idle, "in_msgs"), 0);
  cr_expect_str_eq(string(pub, "lang"), "C");
  cr_expect_str_eq(string(pub, "kind"), "Client");
  cr_expect_str_eq(string(pub, "type"), "nats");
  cr_expect_str_eq(string(pub, "ip"), "127.0.0.1");
  cr_expect_null(cJSON_GetObjectItemCaseSensitive(sub, "subscriptions_list"),
                 "subscriptions are listed only with subs=1");

  /* The list is sorted by cid, ascending. */
  double last_cid = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, array(z, "connections")) {
    cr_expect_gt(number(c, "cid"), last_cid);
    last_cid = number(c, "cid");
  }
  cJSON_Delete(z);
  end_traffic(&t);
}

HARNESS_TEST(monitor, connz_lists_subscriptions) {
  int http = start_monitored(NULL, NULL);
  struct traffic t;
  make_traffic(&t);

  cJSON *z = get_json(http, "/connz?subs=1");
  const cJSON *list = array(conn_named(z, "subscriber"), "subscriptions_list");
  cr_expect_eq(cJSON_GetArraySize(list), 2);
  bool seen_a = false, seen_b = false;
  const cJSON *s;
  cJSON_ArrayForEach(s, list) {
    cr_assert(cJSON_IsString(s));
    seen_a |= strcmp(s->valuestring, "mon.a") == 0;
    seen_b |= strcmp(s->valuestring, "mon.b") == 0;
  }
  cr_expect(seen_a && seen_b, "subscriptions_list lacks mon.a or mon.b");
  cJSON_Delete(z);

  z = get_json(http, "/connz?subs=detail");
  const cJSON *subscriber = conn_named(z, "subscriber");
  list = array(subscriber, "subscriptions_list_detail");
  cr_expect_eq(cJSON_GetArraySize(list), 2);
  cJSON_ArrayForEach(s, list) {
    cr_expect_eq(number(s, "cid"), number(subscriber, "cid"));
    if (strcmp(string(s, "subject"), "mon.a") == 0) {
      cr_expect_eq(number(s, "msgs"), PUBLISH_COUNT);
      cr_expect_null(cJSON_GetObjectItemCaseSensitive(s, "qgroup"));
    } else {
      cr_expect_str_eq(string(s, "subject"), "mon.b");
      cr_expect_str_eq(string(s, "qgroup"), "q");
      cr_expect_eq(number(s, "msgs"), 0);
    }
  }
  cJSON_Delete(z);
  end_traffic(&t);
}

HARNESS_TEST(monitor, connz_sorts_and_pages) {
  int http = start_monitored(NULL, NULL);
  struct traffic t;
  make_traffic(&t);

  cJSON *z = get_json(http, "/connz?sort=msgs_to");
  cr_expect_str_eq(string(cJSON_GetArrayItem(array(z, "connections"), 0), "name"), "subscriber");
  cJSON_Delete(z);
  z = get_json(http, "/connz?sort=msgs_from");
  cr_expect_str_eq(string(cJSON_GetArrayItem(array(z, "connections"), 0), "name"), "publisher");
  cJSON_Delete(z);
  z = get_json(http, "/connz?sort=subs");
  cr_expect_str_eq(string(cJSON_GetArrayItem(array(z, "connections"), 0), "name"), "subscriber");
  cJSON_Delete(z);

  z = get_json(http, "/connz?offset=1&limit=1");
  cr_expect_eq(number(z, "num_connections"), 1);
  cr_expect_eq(number(z, "total"), 3);
  cr_expect_eq(number(z, "offset"), 1);
  cr_expect_eq(number(z, "limit"), 1);
  cr_expect_eq(cJSON_GetArraySize(array(z, "connections")), 1);
  cJSON_Delete(z);

  z = get_json(http, "/connz?offset=5");
  cr_expect_eq(number(z, "num_connections"), 0);
  cr_expect_eq(cJSON_GetArraySize(array(z, "connections")), 0);
  cJSON_Delete(z);
  end_traffic(&t);
}

HARNESS_TEST(monitor, connz_finds_cid) {
  int http = start_monitored(NULL, NULL);
  struct traffic t;
  make_traffic(&t);

  cJSON *all = get_json(http, "/connz");
  double cid = number(conn_named(all, "publisher"), "cid");
  char path[64];
  snprintf(path, sizeof(path), "/connz?cid=%.0f", cid);
  cJSON *z = get_json(http, path);
  cr_expect_eq(number(z, "num_connections"), 1);
  cr_expect_eq(number(z, "total"), 3, "total counts every open connection, as nats-server does");
  cr_expect_eq(number(z, "limit"), 1);
  const cJSON *only = cJSON_GetArrayItem(array(z, "connections"), 0);
  cr_assert_not_null(only);
  cr_expect_eq(number(only, "cid"), cid);
  cr_expect_str_eq(string(only, "name"), "publisher");
  cJSON_Delete(z);

  z = get_json(http, "/connz?cid=999999");
  cr_expect_eq(number(z, "num_connections"), 0);
  cr_expect_eq(cJSON_GetArraySize(array(z, "connections")), 0);
  cJSON_Delete(z);
  cJSON_Delete(all);
  end_traffic(&t);
}

HARNESS_TEST(monitor, connz_rejects_bad_options) {
  int http = start_monitored(NULL, NULL);
  static const char *const bad[] = {
      "/connz?sort=bogus", "/connz?subs=maybe", "/connz?offset=x", "/connz?cid=-1",
      "/connz?state=unknown", "/connz?sort=stop", "/connz?sort=reason",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct http_reply r;
    http_get(http, bad[i], &r);
    cr_expect_eq(r.status, 400, "GET %s: status %ld, expected 400", bad[i], r.status);
    free(r.body);
  }
}

/* ---- Closed connections ---- */

/* Connections closed by connz_state_closed, each with one subscription. */
#define CLOSED_COUNT 3
/* A payload and count that pass a max_pending of 128 KiB many times over,
 * beyond what the socket buffers of a stalled reader absorb. nats-server
 * requires max_payload to be at most max_pending, and the payload fits
 * max_payload exactly. */
#define FLOOD_PAYLOAD_BYTES (64 * 1024)
#define FLOOD_COUNT 256

/* Returns the connection of /connz's list whose cid is cid, or NULL. */
static const cJSON *conn_with_cid(const cJSON *connz, double cid) {
  const cJSON *c;
  cJSON_ArrayForEach(c, array(connz, "connections")) {
    if (number(c, "cid") == cid)
      return c;
  }
  return NULL;
}

/* Returns the connection of /connz's list whose client port is port, or
 * NULL. */
static const cJSON *conn_with_port(const cJSON *connz, int port) {
  const cJSON *c;
  cJSON_ArrayForEach(c, array(connz, "connections")) {
    if (number(c, "port") == port)
      return c;
  }
  return NULL;
}

/* Returns whether /connz?state=closed on the server at http lists a
 * connection whose field key is the number value, or the string text when
 * text is not NULL. */
static bool closed_listed(int http, const char *key, double value, const char *text) {
  cJSON *z = get_json(http, "/connz?state=closed");
  bool found = false;
  const cJSON *c;
  cJSON_ArrayForEach(c, array(z, "connections")) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, key);
    if (text ? cJSON_IsString(f) && strcmp(f->valuestring, text) == 0
             : cJSON_IsNumber(f) && f->valuedouble == value)
      found = true;
  }
  cJSON_Delete(z);
  return found;
}

/* Waits until the server at http lists a closed connection that
 * closed_listed() matches. A server records a close once it notices it, a
 * moment after the client closed. */
static void wait_closed(int http, const char *key, double value, const char *text) {
  for (int i = 0; i < 500; i++) {
    if (closed_listed(http, key, value, text))
      return;
    usleep(10000);
  }
  cr_assert_fail("no closed connection with %s %s%.0f is listed after 5 s", key, text ? text : "",
                 text ? 0.0 : value);
}

/* Counts the connections of /connz's list that have no name. The only such
 * connections closed in these tests are the harness's readiness checks,
 * which never send CONNECT. */
static int unnamed_count(const cJSON *connz) {
  int count = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, array(connz, "connections")) {
    if (!cJSON_GetObjectItemCaseSensitive(c, "name"))
      count++;
  }
  return count;
}

/* Returns the local port of a socket, which the server reports as the
 * client's port. */
static int local_port(int fd) {
  struct sockaddr_in addr;
  socklen_t len = sizeof(addr);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
  return ntohs(addr.sin_port);
}

/* Closed connections are kept with their reason, stop time and
 * subscriptions, listed by state=closed and state=all and left out of the
 * default state=open. */
HARNESS_TEST(monitor, connz_state_closed) {
  int http = start_monitored(NULL, NULL);
  connect_named("open-0");
  connect_named("open-1");
  natsConnection *gone[CLOSED_COUNT];
  natsSubscription *subs[CLOSED_COUNT];
  for (int i = 0; i < CLOSED_COUNT; i++) {
    char name[32], subject[32];
    snprintf(name, sizeof(name), "gone-%d", i);
    snprintf(subject, sizeof(subject), "closed.sub.%d", i);
    gone[i] = connect_named(name);
    cr_assert_eq(natsConnection_SubscribeSync(&subs[i], gone[i], subject), NATS_OK);
    cr_assert_eq(natsConnection_Flush(gone[i]), NATS_OK);
  }
  cJSON *open = get_json(http, "/connz");
  double cids[CLOSED_COUNT];
  for (int i = 0; i < CLOSED_COUNT; i++) {
    char name[32];
    snprintf(name, sizeof(name), "gone-%d", i);
    cids[i] = number(conn_named(open, name), "cid");
  }
  cJSON_Delete(open);

  /* One at a time, so that each stops at a later millisecond. The
   * subscription is destroyed after its connection, so no UNSUB is sent. */
  for (int i = 0; i < CLOSED_COUNT; i++) {
    harness_disconnect(gone[i]);
    natsSubscription_Destroy(subs[i]);
    wait_closed(http, "cid", cids[i], NULL);
    usleep(20000);
  }

  /* Besides ours, the closed list has the harness's readiness checks. */
  cJSON *z = get_json(http, "/connz?state=closed&subs=1");
  int checks = unnamed_count(z);
  int closed = CLOSED_COUNT + checks;
  cr_expect_eq(number(z, "num_connections"), closed);
  cr_expect_eq(number(z, "total"), closed);
  cr_expect_null(conn_named(z, "open-0"));
  cr_expect_null(conn_named(z, "open-1"));
  for (int i = 0; i < CLOSED_COUNT; i++) {
    const cJSON *c = conn_with_cid(z, cids[i]);
    cr_assert_not_null(c, "closed cid %.0f is not listed", cids[i]);
    char name[32], subject[32];
    snprintf(name, sizeof(name), "gone-%d", i);
    snprintf(subject, sizeof(subject), "closed.sub.%d", i);
    cr_expect_str_eq(string(c, "name"), name);
    cr_expect_str_eq(string(c, "reason"), "Client Closed");
    cr_expect_gt(strlen(string(c, "stop")), 0);
    cr_expect_gt(strlen(string(c, "uptime")), 0);
    cr_expect_gt(strlen(string(c, "idle")), 0);
    cr_expect_eq(number(c, "subscriptions"), 1);
    const cJSON *list = array(c, "subscriptions_list");
    cr_assert_eq(cJSON_GetArraySize(list), 1);
    cr_expect_str_eq(cJSON_GetArrayItem(list, 0)->valuestring, subject);
  }
  cJSON_Delete(z);

  z = get_json(http, "/connz?state=closed&subs=detail");
  const cJSON *detail = array(conn_with_cid(z, cids[0]), "subscriptions_list_detail");
  cr_assert_eq(cJSON_GetArraySize(detail), 1);
  cr_expect_str_eq(string(cJSON_GetArrayItem(detail, 0), "subject"), "closed.sub.0");
  cr_expect_eq(number(cJSON_GetArrayItem(detail, 0), "cid"), cids[0]);
  cJSON_Delete(z);

  z = get_json(http, "/connz");
  cr_expect_eq(number(z, "num_connections"), 2);
  cr_expect_eq(number(z, "total"), 2);
  cr_expect_not_null(conn_named(z, "open-0"));
  for (int i = 0; i < CLOSED_COUNT; i++)
    cr_expect_null(conn_with_cid(z, cids[i]), "closed cid %.0f is listed as open", cids[i]);
  cJSON_Delete(z);

  z = get_json(http, "/connz?state=all");
  cr_expect_eq(number(z, "num_connections"), 2 + closed);
  cr_expect_eq(number(z, "total"), 2 + closed);
  cr_expect_not_null(conn_named(z, "open-0"));
  cr_expect_not_null(conn_named(z, "open-1"));
  for (int i = 0; i < CLOSED_COUNT; i++)
    cr_expect_not_null(conn_with_cid(z, cids[i]), "closed cid %.0f is missing", cids[i]);
  cJSON_Delete(z);

  /* The latest stop first: ours, which closed after the checks. */
  z = get_json(http, "/connz?state=closed&sort=stop");
  const cJSON *list = array(z, "connections");
  cr_assert_eq(cJSON_GetArraySize(list), closed);
  for (int i = 0; i < CLOSED_COUNT; i++)
    cr_expect_eq(number(cJSON_GetArrayItem(list, i), "cid"), cids[CLOSED_COUNT - 1 - i]);
  cJSON_Delete(z);

  z = get_json(http, "/connz?state=closed&sort=reason");
  cr_expect_eq(number(z, "num_connections"), closed);
  cJSON_Delete(z);

  char path[80];
  snprintf(path, sizeof(path), "/connz?state=closed&cid=%.0f", cids[1]);
  z = get_json(http, path);
  cr_expect_eq(number(z, "num_connections"), 1);
  cr_expect_eq(number(z, "total"), closed);
  cr_expect_str_eq(string(cJSON_GetArrayItem(array(z, "connections"), 0), "name"), "gone-1");
  cJSON_Delete(z);
}

/* A connection that fails authorization and a subscriber cut off as a
 * slow consumer are kept with nats-server's reasons. */
HARNESS_TEST(monitor, connz_closed_reasons) {
  int http = start_monitored("authorization {\n  user: mon\n  password: secret\n}\n"
                             "max_payload: 65536\nmax_pending: 131072\n",
                             NULL);
  struct raw_conn intruder;
  cr_assert_eq(raw_connect(&intruder, 0), 0);
  int intruder_port = local_port(intruder.fd);
  cr_assert_eq(raw_send_str(&intruder, "CONNECT {\"verbose\":false,\"user\":\"mon\","
                                       "\"pass\":\"wrong\"}\r\nPING\r\n"),
               0);
  raw_expect_closed(&intruder, 5000);
  raw_close(&intruder);

  /* A subscriber with a small receive buffer that never reads. */
  struct raw_conn stalled;
  cr_assert_eq(raw_connect(&stalled, 16 * 1024), 0);
  int stalled_port = local_port(stalled.fd);
  cr_assert_eq(raw_send_str(&stalled, "CONNECT {\"verbose\":false,\"user\":\"mon\","
                                      "\"pass\":\"secret\"}\r\nSUB flood 1\r\nPING\r\n"),
               0);
  raw_expect_line(&stalled, "PONG", 5000);

  natsOptions *opts = harness_options();
  cr_assert_eq(natsOptions_SetUserInfo(opts, "mon", "secret"), NATS_OK);
  natsConnection *pub = harness_connect_opts(opts);
  natsOptions_Destroy(opts);
  char *payload = calloc(1, FLOOD_PAYLOAD_BYTES);
  cr_assert_not_null(payload);
  for (int i = 0; i < FLOOD_COUNT; i++)
    cr_assert_eq(natsConnection_Publish(pub, "flood", payload, FLOOD_PAYLOAD_BYTES), NATS_OK);
  free(payload);
  cr_assert_eq(natsConnection_FlushTimeout(pub, 30000), NATS_OK);
  int err = raw_wait_closed(&stalled, 30000, NULL);
  cr_assert(err == 0 || err == -ECONNRESET, "the stalled subscriber is still connected: %s",
            strerror(-err));
  raw_close(&stalled);

  /* A client that sends -ERR is closed as a parse error. */
  struct raw_conn erring;
  cr_assert_eq(raw_connect(&erring, 0), 0);
  int erring_port = local_port(erring.fd);
  cr_assert_eq(raw_send_str(&erring, "CONNECT {\"verbose\":false,\"user\":\"mon\","
                                     "\"pass\":\"secret\"}\r\nPING\r\n"),
               0);
  raw_expect_line(&erring, "PONG", 5000);
  cr_assert_eq(raw_send_str(&erring, "-ERR 'robot fault'\r\n"), 0);
  raw_expect_closed(&erring, 5000);
  raw_close(&erring);

  wait_closed(http, "port", intruder_port, NULL);
  wait_closed(http, "port", stalled_port, NULL);
  wait_closed(http, "port", erring_port, NULL);
  cJSON *z = get_json(http, "/connz?state=closed");
  const cJSON *erred = conn_with_port(z, erring_port);
  cr_assert_not_null(erred, "the client that sent -ERR is not listed");
  cr_expect_str_eq(string(erred, "reason"), "Parse Error");
  const cJSON *rejected = conn_with_port(z, intruder_port);
  cr_assert_not_null(rejected, "the rejected connection is not listed");
  cr_expect_str_eq(string(rejected, "reason"), "Authentication Failure");
  const cJSON *slow = conn_with_port(z, stalled_port);
  cr_assert_not_null(slow, "the slow consumer is not listed");
  const char *reason = string(slow, "reason");
  cr_expect(strcmp(reason, "Slow Consumer (Pending Bytes)") == 0 ||
                strcmp(reason, "Slow Consumer (Write Deadline)") == 0,
            "slow consumer closed for \"%s\"", reason);
  cJSON_Delete(z);
}

/* ---- /subsz ---- */

static bool list_has_subject(const cJSON *list, const char *subject, const char *queue) {
  const cJSON *s;
  cJSON_ArrayForEach(s, list) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(s, "qgroup");
    bool queue_ok = queue ? cJSON_IsString(q) && strcmp(q->valuestring, queue) == 0 : q == NULL;
    if (strcmp(string(s, "subject"), subject) == 0 && queue_ok)
      return true;
  }
  return false;
}

HARNESS_TEST(monitor, subsz_counts_subscriptions) {
  int http = start_monitored(NULL, NULL);
  cJSON *before = get_json(http, "/subsz");
  double subs_before = number(before, "num_subscriptions");
  cr_expect_null(cJSON_GetObjectItemCaseSensitive(before, "subscriptions_list"));
  struct traffic t;
  make_traffic(&t);

  cJSON *z = get_json(http, "/subsz");
  cr_expect_eq(number(z, "num_subscriptions"), subs_before + 2);
  cr_expect_geq(number(z, "num_matches"), 1);
  cJSON_Delete(z);

  z = get_json(http, "/subsz?subs=1");
  cr_expect_eq(number(z, "num_subscriptions"), subs_before + 2);
  const cJSON *list = array(z, "subscriptions_list");
  cr_expect(list_has_subject(list, "mon.a", NULL), "mon.a is not listed");
  cr_expect(list_has_subject(list, "mon.b", "q"), "mon.b in group q is not listed");
  cJSON_Delete(z);

  z = get_json(http, "/subscriptionsz?subs=1&test=mon.a");
  list = array(z, "subscriptions_list");
  cr_expect_eq(cJSON_GetArraySize(list), 1);
  const cJSON *only = cJSON_GetArrayItem(list, 0);
  cr_assert_not_null(only);
  cr_expect_str_eq(string(only, "subject"), "mon.a");
  cr_expect_str_eq(string(only, "account"), "$G");
  cr_expect_eq(number(only, "msgs"), PUBLISH_COUNT);
  cr_expect_eq(number(z, "total"), 1);
  cJSON_Delete(z);

  struct http_reply r;
  http_get(http, "/subsz?test=mon.*", &r);
  cr_expect_eq(r.status, 400, "a wildcard test subject must be rejected");
  free(r.body);
  cJSON_Delete(before);
  end_traffic(&t);
}

/* num_cache counts the subjects published to, each with a cached match
 * result. The fan-out counts each result's plain subscriptions plus its
 * queue groups, as nats-server's sublist statistics do. fan.one has 1,
 * fan.three 3 (two plain subscriptions and one group of two members) and
 * fan.none 0, so the maximum is 3 and the average 4/3. acc=$G leaves out
 * nats-server's system account, whose events are cached too. */
HARNESS_TEST(monitor, subsz_cache_fanout) {
  int http = start_monitored(NULL, NULL);
  natsConnection *a = connect_named("fan-a");
  natsConnection *b = connect_named("fan-b");
  natsConnection *pub = connect_named("fan-pub");
  natsSubscription *one, *three_a, *three_b, *group_a, *group_b;
  cr_assert_eq(natsConnection_SubscribeSync(&one, a, "fan.one"), NATS_OK);
  cr_assert_eq(natsConnection_SubscribeSync(&three_a, a, "fan.three"), NATS_OK);
  cr_assert_eq(natsConnection_SubscribeSync(&three_b, b, "fan.three"), NATS_OK);
  cr_assert_eq(natsConnection_QueueSubscribeSync(&group_a, a, "fan.three", "q"), NATS_OK);
  cr_assert_eq(natsConnection_QueueSubscribeSync(&group_b, b, "fan.three", "q"), NATS_OK);
  cr_assert_eq(natsConnection_Flush(a), NATS_OK);
  cr_assert_eq(natsConnection_Flush(b), NATS_OK);

  static const char *const subjects[] = {"fan.one", "fan.three", "fan.none"};
  for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++)
    cr_assert_eq(natsConnection_PublishString(pub, subjects[i], "x"), NATS_OK);
  cr_assert_eq(natsConnection_Flush(pub), NATS_OK);
  natsMsg_Destroy(harness_next_msg(one));
  natsMsg_Destroy(harness_next_msg(three_a));
  natsMsg_Destroy(harness_next_msg(three_b));

  const char *paths[] = {"/subsz?acc=%24G", "/subsz"};
  size_t path_count = harness_is_reference() ? 1 : 2;
  for (size_t i = 0; i < path_count; i++) {
    cJSON *z = get_json(http, paths[i]);
    cr_expect_eq(number(z, "num_cache"), 3, "GET %s", paths[i]);
    cr_expect_eq(number(z, "max_fanout"), 3, "GET %s", paths[i]);
    double average = number(z, "avg_fanout");
    cr_expect(average > 4.0 / 3 - 1e-9 && average < 4.0 / 3 + 1e-9,
              "GET %s: avg_fanout %f, expected 4/3", paths[i], average);
    cJSON_Delete(z);
  }

  /* An unknown account has no cache. */
  cJSON *z = get_json(http, "/subsz?acc=nobody");
  cr_expect_eq(number(z, "num_cache"), 0);
  cr_expect_eq(number(z, "max_fanout"), 0);
  cr_expect_eq(number(z, "avg_fanout"), 0);
  cJSON_Delete(z);

  natsSubscription *all[] = {one, three_a, three_b, group_a, group_b};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
    natsSubscription_Destroy(all[i]);
}

/* ---- /healthz, /jsz, /routez, paths and methods ---- */

HARNESS_TEST(monitor, healthz_ok) {
  int http = start_monitored(NULL, NULL);
  connect_named("client");
  static const char *const paths[] = {"/healthz", "/healthz?js-enabled-only=true",
                                      "/healthz?js-server-only=true"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    cJSON *h = get_json(http, paths[i]);
    cr_expect_str_eq(string(h, "status"), "ok", "GET %s", paths[i]);
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(h, "error"), "GET %s", paths[i]);
    cJSON_Delete(h);
  }
  struct http_reply r;
  http_get(http, "/healthz?js-enabled-only=maybe", &r);
  cr_expect_eq(r.status, 400);
  free(r.body);
}

HARNESS_TEST(monitor, jetstream_reported) {
  char args[512];
  snprintf(args, sizeof(args), "-js -sd %s", harness_temp_dir());
  int http = start_monitored(NULL, args);
  connect_named("client");

  cJSON *h = get_json(http, "/healthz?js-enabled-only=true");
  cr_expect_str_eq(string(h, "status"), "ok");
  cJSON_Delete(h);

  char store_dir[512];
  snprintf(store_dir, sizeof(store_dir), "%s/jetstream", harness_temp_dir());
  cJSON *j = get_json(http, "/jsz");
  cr_expect_null(cJSON_GetObjectItemCaseSensitive(j, "disabled"));
  cr_expect_str_eq(string(field(j, "config"), "store_dir"), store_dir);
  cr_expect_eq(number(j, "accounts"), 1);
  cr_expect_eq(number(j, "streams"), 0);
  cr_expect_eq(number(j, "consumers"), 0);
  cJSON_Delete(j);

  cJSON *v = get_json(http, "/varz");
  const cJSON *js = field(v, "jetstream");
  cr_expect_str_eq(string(field(js, "config"), "store_dir"), store_dir);
  cr_expect_eq(number(field(js, "stats"), "accounts"), 1);
  cJSON_Delete(v);
}

HARNESS_TEST(monitor, jsz_and_routez_empty) {
  int http = start_monitored(NULL, NULL);
  connect_named("client");
  cJSON *j = get_json(http, "/jsz");
  cr_expect(cJSON_IsTrue(field(j, "disabled")));
  cr_expect_eq(number(j, "streams"), 0);
  cr_expect_eq(number(j, "messages"), 0);
  cr_expect_eq(number(field(j, "api"), "total"), 0);
  cJSON_Delete(j);

  cJSON *r = get_json(http, "/routez");
  cr_expect_eq(number(r, "num_routes"), 0);
  cr_expect_eq(cJSON_GetArraySize(array(r, "routes")), 0);
  cr_expect_gt(strlen(string(r, "server_id")), 0);
  cJSON_Delete(r);
}

HARNESS_TEST(monitor, unknown_path_404) {
  int http = start_monitored(NULL, NULL);
  static const char *const paths[] = {"/nope", "/varz/", "/connzz", "/metricsx"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    struct http_reply r;
    http_get(http, paths[i], &r);
    cr_expect_eq(r.status, 404, "GET %s: status %ld", paths[i], r.status);
    free(r.body);
  }
}

/* Sends raw bytes to the monitor and returns the status line's code, or 0
 * when the server closed the connection without a response. */
static int raw_http_status(int port, const char *request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0, "connect: %s",
               strerror(errno));
  cr_assert_eq(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
  char reply[256] = "";
  size_t got = 0;
  while (got < sizeof(reply) - 1 && !strstr(reply, "\r\n")) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    cr_assert_gt(poll(&pfd, 1, 5000), 0, "no response to %s within 5 s", request);
    ssize_t n = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
    if (n <= 0)
      break;
    got += (size_t)n;
    reply[got] = '\0';
  }
  close(fd);
  int status = 0;
  sscanf(reply, "HTTP/1.%*d %d", &status);
  return status;
}

HARNESS_TEST(monitor, malformed_request_400) {
  int http = start_monitored(NULL, NULL);
  static const char *const bad[] = {
      "GET /varz HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n",
      "GET /varz XTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /varz HTTP/1.1 extra\r\nHost: a\r\n\r\n",
      "GET /varz\r\n\r\n",
      "GET /varz HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_expect_eq(raw_http_status(http, bad[i]), 400, "request %zu: %s", i, bad[i]);
  cr_expect_eq(raw_http_status(http, "GET /varz HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
}

/* nats-server serves any method; shoal accepts GET and HEAD only. */
HARNESS_TEST(monitor, post_not_allowed) {
  if (harness_is_reference())
    cr_skip_test("checks shoal's own behaviour");
  int http = start_monitored(NULL, NULL);
  struct http_reply r;
  http_request(http, "POST", "/varz", &r);
  cr_expect_eq(r.status, 405);
  free(r.body);
  http_request(http, "HEAD", "/healthz", &r);
  cr_expect_eq(r.status, 200);
  free(r.body);
}

HARNESS_TEST(monitor, jsonp_callback) {
  int http = start_monitored(NULL, NULL);
  struct http_reply r;
  http_get(http, "/varz?callback=show", &r);
  cr_expect_eq(r.status, 200);
  cr_expect(strncmp(r.body, "show(", 5) == 0, "body starts with %.20s", r.body);
  cr_expect(strncmp(r.content_type, "application/javascript", 22) == 0, "Content-Type %s",
            r.content_type);
  free(r.body);
}

/* ---- Connection limit (shoal's own). ---- */

static int open_idle_socket(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
  return fd;
}

/* Waits up to timeout_ms for bytes on fd. Returns whether any arrived. */
static bool bytes_arrive(int fd, int timeout_ms) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  return poll(&pfd, 1, timeout_ms) > 0;
}

/* With the limit of connections open and idle, one more connection waits
 * in the listen backlog unserved until one of them closes. The 500 ms wait
 * only shows that no response came in that time, so a slow server cannot
 * fail the test. */
HARNESS_TEST(monitor, connection_limit) {
  if (harness_is_reference())
    cr_skip_test("checks shoal's own behaviour");
  int http = start_monitored(NULL, NULL);

  /* The monitor accepts connections in the order they queued, so once a
   * request on a later connection is served, the idle ones before it hold
   * their slots. At the limit that response closes its connection. */
  int idle[SHOAL_HTTP_CONNECTION_LIMIT];
  for (int i = 0; i < SHOAL_HTTP_CONNECTION_LIMIT - 1; i++)
    idle[i] = open_idle_socket(http);
  const char *request = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  cr_assert_eq(raw_http_status(http, request), 200, "the connection at the limit was not served");
  idle[SHOAL_HTTP_CONNECTION_LIMIT - 1] = open_idle_socket(http);

  int extra = open_idle_socket(http);
  cr_assert_eq(send(extra, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
  cr_expect_not(bytes_arrive(extra, 500), "a connection above the limit was served");

  close(idle[0]);
  cr_expect(bytes_arrive(extra, 5000), "the waiting connection was not served after one closed");
  char reply[64] = "";
  cr_expect_gt(recv(extra, reply, sizeof(reply) - 1, 0), 0);
  cr_expect(strncmp(reply, "HTTP/1.1 200", 12) == 0, "reply %s", reply);
  close(extra);
  for (int i = 1; i < SHOAL_HTTP_CONNECTION_LIMIT; i++)
    close(idle[i]);
}

/* ---- Ports file. ---- */

HARNESS_TEST(monitor, ports_file_lists_urls) {
  char config[512];
  snprintf(config, sizeof(config), "ports_file_dir: \"%s\"\n", harness_temp_dir());
  int http = start_monitored(config, NULL);

  const char *binary = harness_server_binary();
  const char *base = strrchr(binary, '/') ? strrchr(binary, '/') + 1 : binary;
  char path[512];
  snprintf(path, sizeof(path), "%s/%s_%d.ports", harness_temp_dir(), base, harness_server_pid());
  /* nats-server writes the file shortly after it is ready. */
  FILE *f = NULL;
  for (int i = 0; i < 200 && !(f = fopen(path, "r")); i++)
    usleep(10000);
  cr_assert_not_null(f, "%s was not written: %s", path, strerror(errno));
  char text[1024] = "";
  size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[n] = '\0';

  cJSON *ports = cJSON_Parse(text);
  cr_assert_not_null(ports, "not JSON: %s", text);
  char nats_url[64], http_url[64];
  snprintf(nats_url, sizeof(nats_url), "nats://127.0.0.1:%d", harness_port());
  snprintf(http_url, sizeof(http_url), "http://127.0.0.1:%d", http);
  const cJSON *nats = cJSON_GetArrayItem(array(ports, "nats"), 0);
  const cJSON *monitoring = cJSON_GetArrayItem(array(ports, "monitoring"), 0);
  cr_assert(cJSON_IsString(nats) && cJSON_IsString(monitoring), "ports file: %s", text);
  cr_expect_str_eq(nats->valuestring, nats_url);
  cr_expect_str_eq(monitoring->valuestring, http_url);
  cJSON_Delete(ports);

  harness_signal(SIGTERM);
  cr_expect(harness_clean_exit(harness_wait_exit(5000)));
  cr_expect_neq(access(path, F_OK), 0, "%s is left after the server stopped", path);
}

/* ---- /metrics ---- */

/* Returns the sum of every sample of family name in a Prometheus text
 * body, or -1 when it has none. */
static double metric_sum(const char *body, const char *name) {
  double sum = -1;
  size_t len = strlen(name);
  const char *line = body;
  while (line && *line) {
    const char *next = strchr(line, '\n');
    if (strncmp(line, name, len) == 0 && (line[len] == ' ' || line[len] == '{')) {
      const char *value = line[len] == '{' ? strchr(strchr(line, '}'), ' ') : line + len;
      sum = (sum < 0 ? 0 : sum) + strtod(value + 1, NULL);
    }
    line = next ? next + 1 : NULL;
  }
  return sum;
}

HARNESS_TEST(monitor, metrics_count_traffic) {
  if (harness_is_reference())
    cr_skip_test("checks shoal's own behaviour");
  int http = start_monitored(NULL, NULL);
  struct traffic t;
  make_traffic(&t);
  struct http_reply r;
  http_get(http, "/metrics", &r);
  cr_assert_eq(r.status, 200);
  cr_expect(strncmp(r.content_type, "text/plain; version=0.0.4", 25) == 0, "Content-Type %s",
            r.content_type);
  cr_expect_eq(metric_sum(r.body, "shoal_connections"), 3);
  cr_expect_eq(metric_sum(r.body, "shoal_subscriptions"), 2);
  cr_expect_eq(metric_sum(r.body, "shoal_in_messages_total"), PUBLISH_COUNT);
  cr_expect_eq(metric_sum(r.body, "shoal_out_messages_total"), PUBLISH_COUNT);
  cr_expect_eq(metric_sum(r.body, "shoal_in_bytes_total"), PUBLISH_COUNT * PAYLOAD_BYTES);
  cr_expect_eq(metric_sum(r.body, "shoal_out_bytes_total"), PUBLISH_COUNT * PAYLOAD_BYTES);
  cr_expect_eq(metric_sum(r.body, "shoal_slow_consumers_total"), 0);
  cr_expect_eq(metric_sum(r.body, "shoal_shard_connections"), 3);
  cr_expect_geq(metric_sum(r.body, "shoal_connections_accepted_total"), 3);
  cr_expect(strstr(r.body, "shoal_info{") != NULL, "shoal_info is missing");
  free(r.body);
  end_traffic(&t);
}

/* promtool, from Debian's prometheus package, checks the exposition format
 * and the naming conventions. */
HARNESS_TEST(monitor, metrics_pass_promtool) {
  if (harness_is_reference())
    cr_skip_test("checks shoal's own behaviour");
  int http = start_monitored(NULL, NULL);
  if (access("/usr/bin/promtool", X_OK) != 0)
    cr_skip_test("promtool is not installed (Debian package prometheus)");
  struct traffic t;
  make_traffic(&t);
  struct http_reply r;
  http_get(http, "/metrics", &r);
  cr_assert_eq(r.status, 200);
  char path[512];
  snprintf(path, sizeof(path), "%s/metrics.txt", harness_temp_dir());
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(r.body, 1, r.len, f), r.len);
  fclose(f);
  free(r.body);

  char command[600];
  snprintf(command, sizeof(command), "/usr/bin/promtool check metrics < %s", path);
  char *argv[] = {"/bin/sh", "-c", command, NULL};
  char output[4096];
  int status = harness_run(argv, output, sizeof(output), 30000);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "promtool failed: %s", output);
  cr_expect_str_eq(output, "", "promtool reported problems");
  end_traffic(&t);
}

/* ---- Field-by-field comparison with nats-server. ---- */

/* The reference nats-server, started next to the server under test. */
static pid_t reference_pid = -1;

static void reference_stop(void) {
  if (reference_pid <= 0)
    return;
  kill(reference_pid, SIGTERM);
  for (int i = 0; i < 500 && waitpid(reference_pid, NULL, WNOHANG) == 0; i++)
    usleep(10000);
  if (waitpid(reference_pid, NULL, WNOHANG) == 0) {
    kill(reference_pid, SIGKILL);
    waitpid(reference_pid, NULL, 0);
  }
  reference_pid = -1;
}

static void compare_fini(void) {
  reference_stop();
  harness_stop();
}

TestSuite(monitor_compare, .fini = compare_fini, .timeout = HARNESS_TEST_TIMEOUT_S);

/* Starts nats-server on loopback with monitoring, and with JetStream in
 * store_dir unless it is NULL, and waits until its monitoring port
 * accepts connections. */
/* nats-server opens its monitoring port before its client listener, and
 * /healthz answers 503 until both are up; a loaded machine shows the gap.
 * Waits for the client port with plain connects, because a GET here would
 * add /healthz to nats-server's http_req_stats and differ from shoal's. */
static void wait_reference_clients(int port) {
  for (int i = 0; i < 500; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool up = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    if (up)
      return;
    usleep(10000);
  }
  cr_assert_fail("nats-server did not open its client port %d within 5 s", port);
}

static void reference_start(int port, int http, const char *store_dir) {
  char port_text[16], http_text[16];
  snprintf(port_text, sizeof(port_text), "%d", port);
  snprintf(http_text, sizeof(http_text), "%d", http);
  pid_t parent = getpid();
  reference_pid = fork();
  cr_assert(reference_pid >= 0, "fork failed: %s", strerror(errno));
  if (reference_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    close_range(3, ~0U, 0);
    if (store_dir)
      execl(REFERENCE_SERVER, REFERENCE_SERVER, "-a", "127.0.0.1", "-p", port_text, "-m",
            http_text, "-js", "-sd", store_dir, (char *)NULL);
    else
      execl(REFERENCE_SERVER, REFERENCE_SERVER, "-a", "127.0.0.1", "-p", port_text, "-m",
            http_text, (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool up = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    if (up) {
      wait_reference_clients(port);
      return;
    }
    cr_assert_eq(waitpid(reference_pid, NULL, WNOHANG), 0, "nats-server exited during start-up");
    usleep(10000);
  }
  cr_assert_fail("nats-server did not open its monitoring port %d within 5 s", http);
}

static const char *json_type_name(const cJSON *item) {
  if (cJSON_IsBool(item))
    return "boolean";
  if (cJSON_IsNumber(item))
    return "number";
  if (cJSON_IsString(item))
    return "string";
  if (cJSON_IsArray(item))
    return "array";
  if (cJSON_IsObject(item))
    return "object";
  return "null";
}

/* Fields of nats-server's response that shoal leaves out on purpose: they
 * are omitempty in nats-server and have no meaning in shoal. */
static bool may_be_absent(const char *path) {
  static const char *const absent[] = {
      "/varz.system_account", /* shoal has no system account */
  };
  for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
    if (strcmp(path, absent[i]) == 0)
      return true;
  return false;
}

/* Returns an object with every field that the array's object elements
 * have, each taken from the first element that has it, since omitempty
 * fields and the order of elements differ between the two servers. */
static cJSON *union_of_elements(const cJSON *list) {
  cJSON *all = cJSON_CreateObject();
  const cJSON *element;
  cJSON_ArrayForEach(element, list) {
    const cJSON *f;
    cJSON_ArrayForEach(f, element) {
      if (!cJSON_GetObjectItemCaseSensitive(all, f->string))
        cJSON_AddItemToObject(all, f->string, cJSON_Duplicate(f, true));
    }
  }
  return all;
}

/* Checks that ours has every field of ref, under path, with the same JSON
 * type, recursing into objects and arrays. Returns the number of
 * mismatches, each reported with cr_expect. */
static int compare_shapes(const cJSON *ref, const cJSON *ours, const char *path) {
  if (strcmp(json_type_name(ref), json_type_name(ours)) != 0) {
    cr_expect_fail("%s: nats-server has a %s, shoal a %s", path, json_type_name(ref),
                   json_type_name(ours));
    return 1;
  }
  int problems = 0;
  char inner[512];
  if (cJSON_IsArray(ref)) {
    const cJSON *first_ref = cJSON_GetArrayItem(ref, 0);
    const cJSON *first_ours = cJSON_GetArrayItem(ours, 0);
    if (!first_ref || !first_ours)
      return 0;
    snprintf(inner, sizeof(inner), "%s[]", path);
    if (!cJSON_IsObject(first_ref))
      return compare_shapes(first_ref, first_ours, inner);
    cJSON *ref_fields = union_of_elements(ref);
    cJSON *our_fields = union_of_elements(ours);
    problems = compare_shapes(ref_fields, our_fields, inner);
    cJSON_Delete(ref_fields);
    cJSON_Delete(our_fields);
    return problems;
  }
  if (!cJSON_IsObject(ref))
    return 0;
  const cJSON *f;
  cJSON_ArrayForEach(f, ref) {
    snprintf(inner, sizeof(inner), "%s.%s", path, f->string);
    const cJSON *mine = cJSON_GetObjectItemCaseSensitive(ours, f->string);
    if (!mine) {
      if (!may_be_absent(inner)) {
        cr_expect_fail("%s: present in nats-server's response, missing in shoal's", inner);
        problems++;
      }
      continue;
    }
    problems += compare_shapes(f, mine, inner);
  }
  return problems;
}

/* One client on a server: a plain and a queue subscription and one message
 * received, so that lists of connections and subscriptions are not empty. */
static natsConnection *connect_with_traffic(const char *url, natsSubscription **subs) {
  natsOptions *opts = NULL;
  cr_assert_eq(natsOptions_Create(&opts), NATS_OK);
  cr_assert_eq(natsOptions_SetURL(opts, url), NATS_OK);
  cr_assert_eq(natsOptions_SetAllowReconnect(opts, false), NATS_OK);
  cr_assert_eq(natsOptions_SetName(opts, "compare"), NATS_OK);
  natsConnection *nc = NULL;
  cr_assert_eq(natsConnection_Connect(&nc, opts), NATS_OK, "connect to %s failed", url);
  natsOptions_Destroy(opts);
  cr_assert_eq(natsConnection_SubscribeSync(&subs[0], nc, "cmp.a"), NATS_OK);
  cr_assert_eq(natsConnection_QueueSubscribeSync(&subs[1], nc, "cmp.b", "q"), NATS_OK);
  cr_assert_eq(natsConnection_PublishString(nc, "cmp.a", "hello"), NATS_OK);
  natsMsg_Destroy(harness_next_msg(subs[0]));
  return nc;
}

/* Connects a client named "compare-closed" with one subscription and
 * closes it, then waits until the server at http lists it as closed. */
static void close_with_subscription(const char *url, int http) {
  natsOptions *opts = NULL;
  cr_assert_eq(natsOptions_Create(&opts), NATS_OK);
  cr_assert_eq(natsOptions_SetURL(opts, url), NATS_OK);
  cr_assert_eq(natsOptions_SetAllowReconnect(opts, false), NATS_OK);
  cr_assert_eq(natsOptions_SetName(opts, "compare-closed"), NATS_OK);
  natsConnection *nc = NULL;
  cr_assert_eq(natsConnection_Connect(&nc, opts), NATS_OK, "connect to %s failed", url);
  natsOptions_Destroy(opts);
  natsSubscription *sub = NULL;
  cr_assert_eq(natsConnection_SubscribeSync(&sub, nc, "cmp.closed"), NATS_OK);
  cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
  natsConnection_Close(nc);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);
  wait_closed(http, "name", 0, "compare-closed");
}

/* Fetches every path from both servers and compares them. Returns the
 * number of fields that differ. */
static int compare_paths(int ref_http, int our_http, const char *const *paths, size_t count) {
  int problems = 0;
  for (size_t i = 0; i < count; i++) {
    cJSON *ref = get_json(ref_http, paths[i]);
    cJSON *ours = get_json(our_http, paths[i]);
    problems += compare_shapes(ref, ours, paths[i]);
    cJSON_Delete(ref);
    cJSON_Delete(ours);
  }
  return problems;
}

HARNESS_TEST(monitor_compare, fields_match_nats_server) {
  if (harness_is_reference())
    cr_skip_test("the server under test is nats-server itself");
  if (access(REFERENCE_SERVER, X_OK) != 0)
    cr_skip_test("%s is not installed (Debian package nats-server)", REFERENCE_SERVER);
  int http = start_monitored(NULL, NULL);
  int ref_port = free_port();
  int ref_http = free_port();
  reference_start(ref_port, ref_http, NULL);

  char ref_url[64];
  snprintf(ref_url, sizeof(ref_url), "nats://127.0.0.1:%d", ref_port);
  natsSubscription *ref_subs[2], *our_subs[2];
  natsConnection *ref_nc = connect_with_traffic(ref_url, ref_subs);
  natsConnection *our_nc = connect_with_traffic(harness_url(), our_subs);
  close_with_subscription(ref_url, ref_http);
  close_with_subscription(harness_url(), http);

  /* subs=detail on closed connections comes last, because nats-server
   * 2.9.10 then stores the detail in its records, and later responses list
   * it whatever the options. */
  static const char *const paths[] = {
      "/varz",         "/connz",   "/connz?subs=1",
      "/connz?subs=detail", "/connz?state=all&auth=1", "/connz?state=closed",
      "/connz?state=closed&subs=1", "/connz?state=closed&subs=detail", "/subsz",
      "/subsz?subs=1", "/healthz",      "/healthz?js-enabled-only=true", "/jsz",
      "/routez",
  };
  int problems = compare_paths(ref_http, http, paths, sizeof(paths) / sizeof(paths[0]));
  cr_expect_eq(problems, 0, "%d fields differ from nats-server's", problems);

  for (int i = 0; i < 2; i++) {
    natsSubscription_Destroy(ref_subs[i]);
    natsSubscription_Destroy(our_subs[i]);
  }
  natsConnection_Destroy(ref_nc);
  natsConnection_Destroy(our_nc);
  reference_stop();
}

HARNESS_TEST(monitor_compare, jetstream_fields_match_nats_server) {
  if (harness_is_reference())
    cr_skip_test("the server under test is nats-server itself");
  if (access(REFERENCE_SERVER, X_OK) != 0)
    cr_skip_test("%s is not installed (Debian package nats-server)", REFERENCE_SERVER);
  char our_dir[512], ref_dir[512], args[600];
  snprintf(our_dir, sizeof(our_dir), "%s/shoal", harness_temp_dir());
  snprintf(ref_dir, sizeof(ref_dir), "%s/nats", harness_temp_dir());
  snprintf(args, sizeof(args), "-js -sd %s", our_dir);
  int http = start_monitored(NULL, args);
  int ref_http = free_port();
  reference_start(free_port(), ref_http, ref_dir);

  static const char *const paths[] = {"/varz", "/jsz", "/healthz", "/healthz?js-server-only=true"};
  int problems = compare_paths(ref_http, http, paths, sizeof(paths) / sizeof(paths[0]));
  cr_expect_eq(problems, 0, "%d fields differ from nats-server's", problems);
  reference_stop();
}
