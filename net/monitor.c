/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP monitor's daemon: the listening socket, libmicrohttpd on one
 * internal thread, routing to the endpoints, replies, query decoding and
 * the ports file. The endpoints live in the other net/monitor_*.c files.
 *
 * One thread serves every request, so endpoints run one at a time and at
 * most one snapshot request per shard is in flight. libmicrohttpd parses
 * HTTP and rejects malformed requests with 400 itself, except that 0.9.75
 * closes the connection without a response when the request line has no
 * space at all. */
#include "net/monitor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/server.h"
#include "net/monitor_int.h"

/* Concurrent HTTP connections the monitor accepts; more wait in the listen
 * backlog until one closes. Scrapers and dashboards need a handful. */
#define MONITOR_CONNECTION_LIMIT 64
/* Seconds an idle HTTP connection stays open. */
#define MONITOR_IDLE_TIMEOUT_S 30
/* The nice value of the HTTP thread. When a CPU is busy, Linux's CFS gives
 * a nice 19 thread a weight of 15 against 1024 for a nice 0 shard thread
 * (sched_prio_to_weight), so building a large /connz response takes little
 * CPU time from the message path and takes longer instead. */
#define MONITOR_THREAD_NICE 19
#define MONITOR_LISTEN_BACKLOG 128

static struct {
  struct MHD_Daemon *daemon;
  char host[256];
  int port;
  char ports_file[4096]; /* empty when none was written */
  atomic_uint_fast64_t requests[MONITOR_PATH_COUNT];
} monitor;

static const char *const path_names[MONITOR_PATH_COUNT] = {
    [MONITOR_PATH_ROOT] = "/",           [MONITOR_PATH_VARZ] = "/varz",
    [MONITOR_PATH_CONNZ] = "/connz",     [MONITOR_PATH_ROUTEZ] = "/routez",
    [MONITOR_PATH_SUBSZ] = "/subsz",     [MONITOR_PATH_JSZ] = "/jsz",
    [MONITOR_PATH_HEALTHZ] = "/healthz", [MONITOR_PATH_METRICS] = "/metrics",
};

typedef unsigned (*endpoint_fn)(struct MHD_Connection *conn, struct monitor_reply *reply);

static unsigned serve_root(struct MHD_Connection *conn, struct monitor_reply *reply);

static const struct route {
  const char *url;
  enum monitor_path path;
  endpoint_fn serve;
} routes[] = {
    {"/", MONITOR_PATH_ROOT, serve_root},
    {"/varz", MONITOR_PATH_VARZ, monitor_varz},
    {"/connz", MONITOR_PATH_CONNZ, monitor_connz},
    {"/routez", MONITOR_PATH_ROUTEZ, monitor_routez},
    {"/subsz", MONITOR_PATH_SUBSZ, monitor_subsz},
    {"/subscriptionsz", MONITOR_PATH_SUBSZ, monitor_subsz},
    {"/jsz", MONITOR_PATH_JSZ, monitor_jsz},
    {"/healthz", MONITOR_PATH_HEALTHZ, monitor_healthz},
    {"/metrics", MONITOR_PATH_METRICS, monitor_metrics},
};

const char *monitor_http_host(void) { return monitor.host; }

int monitor_http_port(void) { return monitor.port; }

uint64_t monitor_path_requests(enum monitor_path path) {
  return atomic_load_explicit(&monitor.requests[path], memory_order_relaxed);
}

const char *monitor_path_name(enum monitor_path path) { return path_names[path]; }

/* ---- Replies. ---- */

unsigned monitor_reply_text(struct monitor_reply *reply, unsigned status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = NULL;
  int n = vasprintf(&text, fmt, ap);
  va_end(ap);
  free(reply->body);
  reply->status = status;
  reply->content_type = "text/plain; charset=utf-8";
  reply->body = n < 0 ? NULL : text;
  reply->body_len = n < 0 ? 0 : (size_t)n;
  return status;
}

/* A JSONP callback must be a JavaScript name, so that it cannot inject
 * script into the page that loads the reply. */
static bool callback_valid(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 128) return false;
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '$' || ch == '.';
    if (!ok) return false;
  }
  return true;
}

unsigned monitor_reply_json(struct MHD_Connection *conn, struct monitor_reply *reply, cJSON *json,
                            bool compact) {
  const char *callback = monitor_arg(conn, "callback");
  if (callback != NULL && !callback_valid(callback)) {
    cJSON_Delete(json);
    return monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST,
                              "invalid callback '%s': expected letters, digits, '_', '$' or '.'",
                              callback);
  }
  char *text = compact ? cJSON_PrintUnformatted(json) : cJSON_Print(json);
  cJSON_Delete(json);
  if (text == NULL) return monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");

  free(reply->body);
  reply->status = MHD_HTTP_OK;
  reply->content_type = "application/json";
  reply->body = text;
  reply->body_len = strlen(text);
  if (callback != NULL) {
    char *wrapped = NULL;
    int n = asprintf(&wrapped, "%s(%s)", callback, text);
    free(text);
    reply->body = NULL;
    if (n < 0) return monitor_reply_text(reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    reply->content_type = "application/javascript";
    reply->body = wrapped;
    reply->body_len = (size_t)n;
  }
  return reply->status;
}

bool monitor_json_add_int(cJSON *obj, const char *name, int64_t value) {
  char text[24];
  snprintf(text, sizeof text, "%" PRId64, value);
  return cJSON_AddRawToObject(obj, name, text) != NULL;
}

bool monitor_json_add_uint(cJSON *obj, const char *name, uint64_t value) {
  char text[24];
  snprintf(text, sizeof text, "%" PRIu64, value);
  return cJSON_AddRawToObject(obj, name, text) != NULL;
}

/* ---- Query arguments. ---- */

const char *monitor_arg(struct MHD_Connection *conn, const char *key) {
  const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The spellings Go's strconv.ParseBool accepts, which nats-server uses. */
bool monitor_arg_bool(struct MHD_Connection *conn, const char *key, bool *out,
                      struct monitor_reply *reply) {
  static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
  *out = false;
  const char *v = monitor_arg(conn, key);
  if (v == NULL) return true;
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcmp(v, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcmp(v, no[i]) == 0) return true;
  }
  monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST,
                     "Error decoding boolean for '%s': invalid value \"%s\", expected true or false",
                     key, v);
  return false;
}

bool monitor_arg_int(struct MHD_Connection *conn, const char *key, int64_t *out,
                     struct monitor_reply *reply) {
  *out = 0;
  const char *v = monitor_arg(conn, key);
  if (v == NULL) return true;
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || end == v) {
    monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST,
                       "Error decoding int for '%s': invalid value \"%s\", expected an integer",
                       key, v);
    return false;
  }
  *out = n;
  return true;
}

bool monitor_arg_uint(struct MHD_Connection *conn, const char *key, uint64_t *out,
                      struct monitor_reply *reply) {
  *out = 0;
  const char *v = monitor_arg(conn, key);
  if (v == NULL) return true;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0' || end == v || v[0] == '-' || v[0] == '+') {
    monitor_reply_text(reply, MHD_HTTP_BAD_REQUEST,
                       "Error decoding uint64 for '%s': invalid value \"%s\", expected an "
                       "unsigned integer",
                       key, v);
    return false;
  }
  *out = n;
  return true;
}

/* ---- Routing. ---- */

static unsigned serve_root(struct MHD_Connection *conn, struct monitor_reply *reply) {
  (void)conn;
  static const char page[] =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>shoal "
      "monitor</title></head>\n<body>\n<h1>shoal %s (nats-server %s compatible)</h1>\n<ul>\n"
      "<li><a href=\"varz\">varz</a></li>\n<li><a href=\"connz\">connz</a></li>\n"
      "<li><a href=\"routez\">routez</a></li>\n<li><a href=\"subsz\">subsz</a></li>\n"
      "<li><a href=\"jsz\">jsz</a></li>\n<li><a href=\"healthz\">healthz</a></li>\n"
      "<li><a href=\"metrics\">metrics</a> (Prometheus)</li>\n</ul>\n</body>\n</html>\n";
  monitor_reply_text(reply, MHD_HTTP_OK, page, SHOAL_VERSION, SERVER_COMPAT_VERSION);
  reply->content_type = "text/html; charset=utf-8";
  return reply->status;
}

static void route_request(struct MHD_Connection *conn, const char *url, const char *method,
                          struct monitor_reply *reply) {
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    monitor_reply_text(reply, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed: use GET\n",
                       method);
    return;
  }
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (strcmp(url, routes[i].url) != 0) continue;
    atomic_fetch_add_explicit(&monitor.requests[routes[i].path], 1, memory_order_relaxed);
    routes[i].serve(conn, reply);
    return;
  }
  /* The same text as Go's http.NotFound, which nats-server sends. */
  monitor_reply_text(reply, MHD_HTTP_NOT_FOUND, "404 page not found\n");
}

/* Lowers the calling thread's priority once. On Linux the nice value is
 * per thread, and PRIO_PROCESS with a thread id sets that thread's only. */
static void lower_thread_priority(void) {
  static __thread bool lowered;
  if (lowered) return;
  lowered = true;
  if (setpriority(PRIO_PROCESS, (id_t)gettid(), MONITOR_THREAD_NICE) != 0)
    log_warn("http monitor: could not set the nice value of its thread to %d: %s",
             MONITOR_THREAD_NICE, strerror(errno));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **request_state) {
  (void)cls;
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)request_state;

  lower_thread_priority();
  struct monitor_reply reply = {0};
  route_request(conn, url, method, &reply);
  if (reply.body == NULL) monitor_reply_text(&reply, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  if (reply.body == NULL) return MHD_NO; /* closes the connection */

  struct MHD_Response *response =
      MHD_create_response_from_buffer(reply.body_len, reply.body, MHD_RESPMEM_MUST_FREE);
  if (response == NULL) {
    free(reply.body);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type);
  if (reply.status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result rc = MHD_queue_response(conn, reply.status, response);
  MHD_destroy_response(response);
  return rc;
}

/* libmicrohttpd's messages are about single peers (a malformed request, a
 * reset connection), so they go to the debug level where a bad client
 * cannot flood the log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  if (!log_debug_on) return;
  char text[512];
  vsnprintf(text, sizeof text, fmt, ap);
  size_t len = strlen(text);
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = '\0';
  log_debug("http monitor: %s", text);
}

/* ---- Start and stop. ---- */

/* Formats host:port, bracketing IPv6 addresses as URLs need. */
static void join_host_port(char *out, size_t out_len, const char *host, int port) {
  if (strchr(host, ':') != NULL) snprintf(out, out_len, "[%s]:%d", host, port);
  else snprintf(out, out_len, "%s:%d", host, port);
}

/* Opens the listening socket on host:port (port 0 or -1 lets the kernel
 * pick one). Returns the descriptor and sets *bound_port, or returns a
 * negative errno with the reason in why. */
static int open_listener(const char *host, int port, int *bound_port, char *why, size_t why_len) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", port < 0 ? 0 : port);
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(host, port_text, &hints, &res);
  if (rc != 0) {
    snprintf(why, why_len, "cannot resolve %s: %s", host, gai_strerror(rc));
    return -EINVAL;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    snprintf(why, why_len, "socket: %s", strerror(errno));
    freeaddrinfo(res);
    return rc;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, MONITOR_LISTEN_BACKLOG) != 0) {
    rc = -errno;
    snprintf(why, why_len, "bind: %s", strerror(errno));
    freeaddrinfo(res);
    close(fd);
    return rc;
  }
  freeaddrinfo(res);

  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  getsockname(fd, (struct sockaddr *)&addr, &len);
  *bound_port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                 : ((struct sockaddr_in *)&addr)->sin_port);
  return fd;
}

static int start_http(void) {
  const struct opts *o = &server.opts;
  const char *host = o->http_host != NULL ? o->http_host : o->host;
  if (host == NULL || host[0] == '\0') host = "0.0.0.0";
  snprintf(monitor.host, sizeof monitor.host, "%s", host);

  char why[300];
  int port = 0;
  int fd = open_listener(host, o->http_port, &port, why, sizeof why);
  if (fd < 0) {
    char where[300];
    join_host_port(where, sizeof where, host, o->http_port);
    log_fatal("Can't listen to the monitor port %s: %s", where, why);
    return fd;
  }
  monitor.port = port;

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  monitor.daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
      MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)MONITOR_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)MONITOR_IDLE_TIMEOUT_S, MHD_OPTION_END);
  if (monitor.daemon == NULL) {
    log_fatal("Can't start the http monitor on port %d: libmicrohttpd failed to start", port);
    close(fd);
    return -EIO;
  }
  char where[300];
  join_host_port(where, sizeof where, host, port);
  log_info("Starting http monitor on %s", where);
  return 0;
}

/* Appends "scheme://host:port" URLs to array: one per local address when
 * host is unspecified (0.0.0.0 or ::), as nats-server lists them. */
static void add_urls(cJSON *array, const char *scheme, const char *host, int port) {
  bool any4 = strcmp(host, "0.0.0.0") == 0;
  bool any6 = strcmp(host, "::") == 0;
  char url[320], hostport[300];
  struct ifaddrs *ifs = NULL;
  if ((any4 || any6) && getifaddrs(&ifs) == 0) {
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
      if (i->ifa_addr == NULL) continue;
      int family = i->ifa_addr->sa_family;
      if (family != AF_INET && !(family == AF_INET6 && any6)) continue;
      char ip[INET6_ADDRSTRLEN];
      const void *raw = family == AF_INET ? (void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                                          : (void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
      if (inet_ntop(family, raw, ip, sizeof ip) == NULL) continue;
      join_host_port(hostport, sizeof hostport, ip, port);
      snprintf(url, sizeof url, "%s://%s", scheme, hostport);
      cJSON_AddItemToArray(array, cJSON_CreateString(url));
    }
    freeifaddrs(ifs);
    return;
  }
  join_host_port(hostport, sizeof hostport, host, port);
  snprintf(url, sizeof url, "%s://%s", scheme, hostport);
  cJSON_AddItemToArray(array, cJSON_CreateString(url));
}

/* Writes nats-server's ports file, <dir>/<program>_<pid>.ports, a JSON
 * object with the client ("nats") and monitoring URLs. */
static void write_ports_file(const char *dir) {
  cJSON *root = cJSON_CreateObject();
  const char *host = server.opts.host != NULL ? server.opts.host : "0.0.0.0";
  add_urls(cJSON_AddArrayToObject(root, "nats"), "nats", host, server.port);
  if (monitor.daemon != NULL)
    add_urls(cJSON_AddArrayToObject(root, "monitoring"), "http", monitor.host, monitor.port);
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);

  char path[sizeof monitor.ports_file];
  snprintf(path, sizeof path, "%s/%s_%d.ports", dir, program_invocation_short_name, (int)getpid());
  if (text == NULL) {
    log_error("Error writing ports file %s: out of memory", path);
    return;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  size_t len = strlen(text);
  bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
  int err = errno;
  if (fd >= 0) close(fd);
  free(text);
  if (!ok) {
    log_error("Error writing ports file %s: %s", path, strerror(err));
    return;
  }
  snprintf(monitor.ports_file, sizeof monitor.ports_file, "%s", path);
}

int monitor_start(void) {
  if (server.opts.http_port != 0) {
    int rc = start_http();
    if (rc != 0) return rc;
  }
  if (server.opts.ports_file_dir != NULL && server.opts.ports_file_dir[0] != '\0')
    write_ports_file(server.opts.ports_file_dir);
  return 0;
}

void monitor_stop(void) {
  if (monitor.daemon != NULL) {
    MHD_stop_daemon(monitor.daemon);
    monitor.daemon = NULL;
  }
  if (monitor.ports_file[0] != '\0') {
    if (unlink(monitor.ports_file) != 0)
      log_error("Error cleaning up ports file %s: %s", monitor.ports_file, strerror(errno));
    monitor.ports_file[0] = '\0';
  }
}
