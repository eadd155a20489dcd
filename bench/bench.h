/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-bench's options, run state and results, shared by the option parser
 * (main.c), the event loop (bench_run.c) and the summary (bench_report.c).
 *
 * Payload layout: bytes 0-7 hold the sequence number, bytes 8-15 the send
 * time in nanoseconds of CLOCK_MONOTONIC, both little-endian; the rest is
 * filler. The top 16 bits of the sequence number carry the publisher index
 * and the low 48 bits count that publisher's messages from 1. */
#ifndef SHOAL_BENCH_H
#define SHOAL_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "bench/bench_conn.h"
#include "bench/bench_hist.h"
#include "bench/bench_seq.h"

#define BENCH_PAYLOAD_MIN 16
#define BENCH_PUB_INDEX_SHIFT 48
#define BENCH_SEQ_MASK (((uint64_t)1 << BENCH_PUB_INDEX_SHIFT) - 1)
#define BENCH_CLIENTS_MAX 1024
/* Publishers a subscriber in the "sub" scenario tracks separately. Messages
 * with a higher publisher index are counted as foreign. */
#define BENCH_EXTERNAL_PUBS_MAX 64

enum bench_scenario {
  BENCH_SCENARIO_PUB,
  BENCH_SCENARIO_SUB,
  BENCH_SCENARIO_PUBSUB,
  BENCH_SCENARIO_QUEUE,
  BENCH_SCENARIO_REQREP,
  BENCH_SCENARIO_JS_PUB,
  BENCH_SCENARIO_JS_ASYNC_PUB,
  BENCH_SCENARIO_JS_CONSUME,
};

struct bench_opts {
  enum bench_scenario scenario;
  const char *scenario_name;
  char url[300];
  char host[256];
  uint16_t port;
  char user[128];        /* empty when not given */
  char pass[128];
  char token[256];
  uint64_t msgs;         /* messages to measure; 0 runs for duration_s */
  double duration_s;     /* measured time when msgs is 0 */
  uint32_t size;         /* payload bytes */
  uint32_t pubs;         /* publishers, or requesters in reqrep */
  uint32_t subs;         /* subscribers, queue members, or responders in reqrep */
  char subject[256];
  char queue[64];
  double rate;           /* messages per second over all publishers; 0 unpaced */
  double warmup_s;
  double timeout_s;      /* hard cap on the whole run */
  uint64_t window_msgs;  /* maximum published and not yet received messages; in
                          * JetStream scenarios, unacked publishes and the pull batch */
  uint32_t batch_bytes;  /* output bytes a publisher builds before each write */
  int server_pid;        /* 0 when not given */
  char stream[64];       /* JetStream stream the js-* scenarios create and delete */
  bool js_memory;        /* memory storage for that stream instead of file */
  bool json;
  bool live;             /* print a line every second on stderr */
};

enum bench_role {
  BENCH_ROLE_PUB,       /* publishes; in reqrep it is a requester */
  BENCH_ROLE_SUB,       /* receives; in reqrep it is a responder */
};

struct bench_client {
  struct bench_conn conn;
  enum bench_role role;
  uint32_t index;
  bool want_write;       /* EPOLLOUT registered because a write would block */
  uint32_t pings_out;    /* PINGs sent without a PONG yet */

  /* Publisher side. */
  char header[320];      /* "PUB subject [reply] size\r\n" */
  uint32_t header_len;
  uint32_t frame_len;    /* header, payload and CRLF */
  uint64_t sent;         /* messages handed to the socket buffer */
  uint64_t quota;        /* stop after this many; UINT64_MAX until known */
  bool done;             /* sent everything and asked for the final PONG */
  bool flushed;          /* final PONG received */
  int64_t flushed_ns;

  /* Subscriber side, and requesters for their replies. */
  uint64_t received;
  uint64_t foreign;      /* messages without a shoal-bench sequence */
  struct bench_seq *seqs;/* one per publisher index, NULL for shared trackers */
  uint32_t seqs_count;
  uint64_t *last_seqs;   /* queue members: last sequence per publisher index */
  uint64_t out_of_order; /* queue members: arrivals below last_seqs */
};

struct bench_side {
  uint64_t msgs;
  uint64_t bytes;        /* payload bytes */
  double seconds;
};

struct bench_result {
  char server_version[32];
  char server_name[64];
  struct bench_side published; /* counted after the warm-up */
  struct bench_side received;
  struct bench_hist *latency;  /* send to receive, messages sent after warm-up */
  uint64_t sent_total;         /* including the warm-up */
  uint64_t received_total;
  uint64_t lost;
  uint64_t duplicated;
  uint64_t out_of_order;
  uint64_t beyond_window;
  uint64_t foreign;
  double client_cpu_s;
  double server_cpu_s;         /* negative when no server PID was given */
  bool cpu_server_known;
};

/* Runs the scenario in opts and fills result. Returns 0, or a negative errno
 * after printing what failed on stderr. */
int bench_run(const struct bench_opts *opts, struct bench_result *result);

/* Runs a JetStream scenario (js-pub, js-async-pub, js-consume) on one
 * connection, as bench_run() does for the others. */
int bench_js_run(const struct bench_opts *opts, struct bench_result *result);

/* Prints result as text on stdout, or as one JSON object when opts->json. */
void bench_report(const struct bench_opts *opts, const struct bench_result *result);

/* Reads the CPU time of process pid from /proc in nanoseconds, or returns a
 * negative errno. Resolution is one clock tick (10 ms at USER_HZ 100). */
int64_t bench_process_cpu_ns(int pid);

#define BENCH_NS_PER_S 1000000000LL

/* Reads clock id in nanoseconds: CLOCK_MONOTONIC for time stamps,
 * CLOCK_PROCESS_CPUTIME_ID for this process's own CPU time. */
static inline int64_t bench_clock_ns(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * BENCH_NS_PER_S + ts.tv_nsec;
}

static inline int64_t now_ns(void) { return bench_clock_ns(CLOCK_MONOTONIC); }
static inline int64_t client_cpu_ns(void) { return bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

#endif
