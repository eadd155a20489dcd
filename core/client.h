/* SPDX-License-Identifier: Apache-2.0 */
/* A client connection: protocol state, input and output buffers, and its
 * subscriptions. Owned by one shard; no other thread touches it. */
#ifndef SHOAL_CLIENT_H
#define SHOAL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "core/auth.h"
#include "core/buf.h"

struct shard;
struct sub;
struct msg;

/* Why a connection was closed, as nats-server's /connz names it. */
enum client_close_reason {
  CLOSE_CLIENT = 0,         /* "Client Closed" */
  CLOSE_PROTOCOL_VIOLATION, /* "Protocol Violation" */
  CLOSE_SLOW_CONSUMER_PENDING, /* "Slow Consumer (Pending Bytes)" */
  CLOSE_SLOW_CONSUMER_DEADLINE,/* "Slow Consumer (Write Deadline)" */
  CLOSE_STALE,              /* "Stale Connection" */
  CLOSE_MAX_PAYLOAD,        /* "Maximum Message Payload Exceeded" */
  CLOSE_WRITE_ERROR,        /* "Write Error" */
  CLOSE_READ_ERROR,         /* "Read Error" */
  CLOSE_SERVER_SHUTDOWN,    /* "Server Shutdown" */
  CLOSE_MAX_CONNECTIONS,    /* "Maximum Connections Exceeded" */
  CLOSE_AUTH_TIMEOUT,       /* "Authentication Timeout" */
  CLOSE_AUTH_VIOLATION,     /* "Authentication Failure" */
  CLOSE_PARSE_ERROR,        /* "Parse Error": the client sent -ERR */
};

/* Returns nats-server 2.9.10's text for reason, as /connz shows it. */
const char *client_close_reason_text(enum client_close_reason reason);

enum client_state {
  CLIENT_OPEN = 0,
  CLIENT_CLOSING, /* output flushes, then I/O stops */
  CLIENT_CLOSED,  /* I/O stopping; freed once no operation is in flight */
};

struct sub_table {
  struct sub **slots; /* open addressing by sid hash; NULL empty */
  uint32_t cap;       /* a power of two, or 0 */
  uint32_t count;
  uint32_t tombstones;
};

struct client {
  struct shard *shard;
  int fd;
  uint64_t cid;
  char ip[64];
  int port;
  enum client_state state;
  enum client_close_reason close_reason;

  /* CONNECT options. */
  bool connect_received;
  bool verbose;
  bool pedantic;
  bool echo;
  bool headers;
  bool no_responders;
  int protocol;
  char *name;
  char *lang;
  char *version;
  const struct opts_user *user;      /* NULL: no users list, no permissions */
  char *connect_json;                /* CONNECT's JSON when auth is on, for reloads */
  struct auth_responses responses;   /* reply subjects allowed by allow_responses */

  /* I/O. in holds the unparsed tail of received bytes. out collects frames
   * until the next flush; wbuf is the part in flight. */
  struct buf in;
  struct buf out;
  struct buf wbuf;
  bool send_in_flight;
  bool on_dirty_list;
  bool paused;              /* input parsing stopped: rings full or a consumer stalled */
  bool recv_paused;         /* the backend stopped receiving for back-pressure */
  bool stalled;             /* pending output above half of max_pending */
  bool stall_exempt;        /* stalled too long: no longer holds publishers back */
  bool recv_armed;          /* io_uring: a multishot recv is armed */
  int ops_in_flight;        /* backend operations not yet completed */
  int64_t send_started_ms;
  int64_t last_recv_ms;
  int64_t last_ping_ms;
  int64_t start_ms;
  uint32_t pings_out;
  int64_t ping_sent_ns;     /* CLOCK_MONOTONIC of the unanswered server PING, or 0 */
  int64_t rtt_ns;           /* round-trip time of the last answered PING */

  /* Counters. */
  uint64_t msgs_in, bytes_in, msgs_out, bytes_out;

  /* Shards this connection published to since its last PING, and the
   * barriers and PONGs that wait for them. */
  uint64_t remote_shards[4];
  uint32_t barriers_pending;
  uint32_t pongs_owed;

  struct sub_table subs;
  struct sub *sub_list;

  struct client *prev, *next;  /* shard->clients */
  struct client *next_dirty;
  struct client *next_reap;
  struct client *next_paused;
  void *backend_data;
};

/* Creates a connection for an accepted socket on shard s and queues INFO.
 * Returns NULL when out of memory (the caller closes fd). */
struct client *client_create(struct shard *s, int fd);

/* Called by the backend with received bytes. */
void client_on_recv(struct client *c, const char *data, size_t len);

/* Called by the backend at end of stream (err 0) or on a receive error. */
void client_on_recv_end(struct client *c, int err);

/* Called by the backend after n bytes of wbuf were sent. */
void client_on_sent(struct client *c, size_t n);

/* Called by the backend when a send failed with err (negative errno). */
void client_on_send_error(struct client *c, int err);

/* Called by the backend once no operation on c is in flight after
 * client_shutdown(); the shard frees c at the end of its loop iteration. */
void client_on_io_done(struct client *c);

/* Starts sending what out holds, when no send is in flight. */
void client_flush(struct client *c);

/* Closes c for reason: frees its subscriptions at once; with flush set the
 * queued output (an -ERR, say) is sent before the socket is shut down. */
void client_close(struct client *c, enum client_close_reason reason, bool flush);

/* Frees c. Only the shard loop calls this, after client_on_io_done(). */
void client_destroy(struct client *c);

/* Queues a MSG or HMSG frame for sub's connection. */
void client_deliver(struct client *c, struct sub *sub, const char *subject,
                    uint32_t subject_len, const char *reply, uint32_t reply_len,
                    const char *data, uint32_t header_len, uint32_t total_len);

/* Queues raw protocol bytes (INFO, PING, -ERR ...). */
void client_send_raw(struct client *c, const char *p, size_t n);

/* Sends "-ERR <text>\r\n". */
void client_send_err(struct client *c, const char *text);

/* Stops parsing c's input until client_resume(). */
void client_pause(struct client *c);

/* Resumes parsing input after back-pressure ended. */
void client_resume(struct client *c);

/* Called when a shard acknowledged a barrier sent by on_ping(). */
void client_on_barrier_ack(struct client *c);

/* Sends INFO with "ldm":true, telling the client to move elsewhere. */
void client_enter_lame_duck(struct client *c);

/* Checks c's CONNECT credentials against the reloaded authorization and
 * closes c with 'Authorization Violation' when they no longer pass. */
void client_recheck_auth(struct client *c);

/* Checks ping interval and write deadline; called by the shard tick. */
void client_tick(struct client *c, int64_t now_ms);

/* Removes sub from its connection and the shared index, then frees it
 * after a grace period. */
void client_unsubscribe(struct client *c, struct sub *sub);

#endif
