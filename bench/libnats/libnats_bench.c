/* SPDX-License-Identifier: Apache-2.0 */
/* libnats-bench: a cross-check for shoal-bench built on the nats.c client
 * library (libnats), used as an independent measure of the same scenarios.
 * It publishes with natsConnection_Publish, receives with an asynchronous
 * subscription and times requests with natsConnection_Request, the way an
 * application would, and prints one JSON line. bench/compare.sh runs it next
 * to shoal-bench against nats-server. */
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_hist.h"

#define WAIT_LIMIT_S 60
#define REQUEST_TIMEOUT_MS 5000

struct receiver {
  pthread_mutex_t lock;
  pthread_cond_t done;
  int64_t expected;
  int64_t received;
  int64_t last_ns;
  struct bench_hist *latency; /* NULL when not measured */
};

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of this process in nanoseconds: libnats's threads included. */
static int64_t cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Returns the CPU time of process pid from /proc/PID/stat (utime plus
 * stime, fields 14 and 15) in nanoseconds, or -1 when unreadable. */
static int64_t process_cpu_ns(int pid)
{
  char path[64];
  char line[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  char *got = fgets(line, sizeof(line), f);
  fclose(f);
  char *p = got ? strrchr(line, ')') : NULL;
  unsigned long long utime, stime;
  if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    return -1;
  }
  return (int64_t)((utime + stime) * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

static void die(const char *operation, natsStatus s)
{
  fprintf(stderr, "libnats-bench: %s failed: %s\n", operation, natsStatus_GetText(s));
  exit(1);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
  struct receiver *r = closure;
  int64_t now = now_ns();
  int64_t sent_ns = 0;
  if (natsMsg_GetDataLength(msg) >= 8) memcpy(&sent_ns, natsMsg_GetData(msg), 8);
  natsMsg_Destroy(msg);
  pthread_mutex_lock(&r->lock);
  if (r->latency != NULL && now >= sent_ns) bench_hist_record(r->latency, (uint64_t)(now - sent_ns));
  r->received++;
  if (r->received == r->expected) {
    r->last_ns = now_ns();
    pthread_cond_signal(&r->done);
  }
  pthread_mutex_unlock(&r->lock);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
  const char *reply = natsMsg_GetReply(msg);
  if (reply != NULL) natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
}

/* Connects to url. send_asap writes each publish at once instead of leaving
 * it to libnats's flusher thread, which batches them: with nats.c 3.4.1 on a
 * 2-core loopback run, the p50 request latency fell from 990 us to 240 us. */
static natsConnection *connect_to(const char *url, bool send_asap)
{
  natsOptions *opts;
  natsConnection *nc;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url);
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, send_asap);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, false);
  if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK) die("connect", s);
  natsOptions_Destroy(opts);
  return nc;
}

/* Publishes msgs payloads, at rate messages per second unless rate is 0,
 * and waits for the server to process them. Each payload of 8 bytes or more
 * starts with its send time in CLOCK_MONOTONIC nanoseconds. */
static double publish_all(natsConnection *nc, const char *subject, char *payload, int size, int64_t msgs,
                          double rate)
{
  int64_t start = now_ns();
  for (int64_t i = 0; i < msgs; i++) {
    int64_t now = now_ns();
    if (rate > 0) {
      int64_t due = start + (int64_t)((double)i / rate * 1e9);
      if (due > now) {
        struct timespec pause = {.tv_sec = (due - now) / 1000000000, .tv_nsec = (due - now) % 1000000000};
        nanosleep(&pause, NULL);
        now = now_ns();
      }
    }
    if (size >= 8) memcpy(payload, &now, 8);
    natsStatus s = natsConnection_Publish(nc, subject, payload, size);
    if (s != NATS_OK) die("publish", s);
  }
  natsStatus s = natsConnection_FlushTimeout(nc, WAIT_LIMIT_S * 1000);
  if (s != NATS_OK) die("flush", s);
  return (double)(now_ns() - start) / 1e9;
}

/* Paced runs measure latency, so they write each publish at once. */
static void run_pubsub(const char *url, const char *subject, char *payload, int size, int64_t msgs, double rate,
                       int server_pid)
{
  struct receiver r = {.expected = msgs};
  pthread_mutex_init(&r.lock, NULL);
  pthread_cond_init(&r.done, NULL);
  if (rate > 0) {
    r.latency = malloc(sizeof(*r.latency));
    if (r.latency == NULL) die("malloc", NATS_NO_MEMORY);
    bench_hist_reset(r.latency);
  }
  natsConnection *sub_nc = connect_to(url, rate > 0);
  natsConnection *pub_nc = connect_to(url, rate > 0);
  natsSubscription *sub;
  natsStatus s = natsConnection_Subscribe(&sub, sub_nc, subject, on_msg, &r);
  if (s == NATS_OK) s = natsSubscription_SetPendingLimits(sub, -1, -1);
  if (s == NATS_OK) s = natsConnection_Flush(sub_nc);
  if (s != NATS_OK) die("subscribe", s);

  int64_t start = now_ns();
  int64_t cpu_start = cpu_ns();
  int64_t server_start = server_pid > 0 ? process_cpu_ns(server_pid) : -1;
  double pub_s = publish_all(pub_nc, subject, payload, size, msgs, rate);
  struct timespec limit;
  clock_gettime(CLOCK_REALTIME, &limit);
  limit.tv_sec += WAIT_LIMIT_S;
  pthread_mutex_lock(&r.lock);
  while (r.received < r.expected) { /* bounded by limit */
    if (pthread_cond_timedwait(&r.done, &r.lock, &limit) == ETIMEDOUT) break;
  }
  int64_t received = r.received;
  double recv_s = (double)(r.last_ns - start) / 1e9;
  pthread_mutex_unlock(&r.lock);
  double cpu_per_msg = (double)(cpu_ns() - cpu_start) / (double)msgs;
  int64_t server_end = server_start >= 0 ? process_cpu_ns(server_pid) : -1;

  printf("{\"scenario\":\"pubsub\",\"size\":%d,\"rate\":%.0f,\"published\":%lld,\"received\":%lld,"
         "\"pub_msgs_per_s\":%.0f,\"msgs_per_s\":%.0f,\"client_ns_per_msg\":%.0f",
         size, rate, (long long)msgs, (long long)received, msgs / pub_s, received == msgs ? msgs / recv_s : 0.0,
         cpu_per_msg);
  if (server_end >= 0) printf(",\"server_ns_per_msg\":%.0f", (double)(server_end - server_start) / (double)msgs);
  if (r.latency != NULL) {
    printf(",\"p50_ns\":%llu,\"p99_ns\":%llu,\"p99_9_ns\":%llu",
           (unsigned long long)bench_hist_percentile(r.latency, 50),
           (unsigned long long)bench_hist_percentile(r.latency, 99),
           (unsigned long long)bench_hist_percentile(r.latency, 99.9));
  }
  printf("}\n");
  free(r.latency);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(pub_nc);
  natsConnection_Destroy(sub_nc);
  if (received != msgs) {
    fprintf(stderr, "libnats-bench: received %lld of %lld messages\n", (long long)received, (long long)msgs);
    exit(3);
  }
}

static void run_reqrep(const char *url, const char *subject, const char *payload, int size, int64_t msgs)
{
  natsConnection *resp_nc = connect_to(url, true);
  natsConnection *req_nc = connect_to(url, true);
  natsSubscription *sub;
  natsStatus s = natsConnection_Subscribe(&sub, resp_nc, subject, on_request, NULL);
  if (s == NATS_OK) s = natsConnection_Flush(resp_nc);
  if (s != NATS_OK) die("subscribe", s);

  struct bench_hist *h = malloc(sizeof(*h));
  if (h == NULL) die("malloc", NATS_NO_MEMORY);
  bench_hist_reset(h);
  int64_t start = now_ns();
  int64_t cpu_start = cpu_ns();
  for (int64_t i = 0; i < msgs; i++) {
    natsMsg *reply;
    int64_t sent = now_ns();
    s = natsConnection_Request(&reply, req_nc, subject, payload, size, REQUEST_TIMEOUT_MS);
    if (s != NATS_OK) die("request", s);
    bench_hist_record(h, (uint64_t)(now_ns() - sent));
    natsMsg_Destroy(reply);
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  double cpu_per_msg = (double)(cpu_ns() - cpu_start) / (double)msgs;
  printf("{\"scenario\":\"reqrep\",\"size\":%d,\"requests\":%lld,\"msgs_per_s\":%.0f,"
         "\"p50_ns\":%llu,\"p99_ns\":%llu,\"client_ns_per_msg\":%.0f}\n",
         size, (long long)msgs, msgs / seconds, (unsigned long long)bench_hist_percentile(h, 50),
         (unsigned long long)bench_hist_percentile(h, 99), cpu_per_msg);
  free(h);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(req_nc);
  natsConnection_Destroy(resp_nc);
}

int main(int argc, char **argv)
{
  if (argc < 5 || argc > 7) {
    fprintf(stderr, "usage: libnats-bench pub|pubsub|reqrep URL MSGS SIZE [RATE [SERVER_PID]]\n"
                    "RATE (messages per second, 0 for unpaced) and SERVER_PID apply to pubsub.\n");
    return 2;
  }
  const char *scenario = argv[1];
  const char *url = argv[2];
  int64_t msgs = strtoll(argv[3], NULL, 10);
  int size = atoi(argv[4]);
  double rate = argc > 5 ? strtod(argv[5], NULL) : 0;
  int server_pid = argc > 6 ? atoi(argv[6]) : 0;
  if (msgs <= 0 || size < 0 || size > (1 << 20) || rate < 0) {
    fprintf(stderr, "libnats-bench: invalid arguments MSGS '%s', SIZE '%s', RATE '%s': expected MSGS above 0, "
                    "SIZE from 0 to 1048576 and RATE of 0 or more\n", argv[3], argv[4], argc > 5 ? argv[5] : "0");
    return 2;
  }
  char *payload = calloc(1, (size_t)size + 1);
  if (payload == NULL) return 1;
  memset(payload, 'x', (size_t)size);
  const char *subject = "shoal.bench.libnats";

  if (strcmp(scenario, "pub") == 0) {
    natsConnection *nc = connect_to(url, false);
    int64_t cpu_start = cpu_ns();
    double seconds = publish_all(nc, subject, payload, size, msgs, 0);
    printf("{\"scenario\":\"pub\",\"size\":%d,\"published\":%lld,\"msgs_per_s\":%.0f,"
           "\"client_ns_per_msg\":%.0f}\n",
           size, (long long)msgs, msgs / seconds, (double)(cpu_ns() - cpu_start) / (double)msgs);
    natsConnection_Destroy(nc);
  } else if (strcmp(scenario, "pubsub") == 0) {
    run_pubsub(url, subject, payload, size, msgs, rate, server_pid);
  } else if (strcmp(scenario, "reqrep") == 0) {
    run_reqrep(url, subject, payload, size, msgs);
  } else {
    fprintf(stderr, "libnats-bench: unknown scenario '%s': expected pub, pubsub or reqrep\n", scenario);
    return 2;
  }
  free(payload);
  nats_Close();
  return 0;
}
