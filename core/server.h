/* SPDX-License-Identifier: Apache-2.0 */
/* Process-wide server state: options, identity, the shared subscription
 * index and the shards. Written once at start, read by every shard. */
#ifndef SHOAL_SERVER_H
#define SHOAL_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/opts.h"

#define SERVER_COMPAT_VERSION "2.9.10"

struct shard;
struct sublist;

struct server {
  struct opts opts;
  char server_id[57];
  char *server_name;
  int port;                 /* the port actually bound */
  int shard_count;
  struct shard **shards;
  struct sublist *sublist;
  atomic_uint_fast64_t next_cid;
  atomic_int_fast64_t connections; /* open client connections, all shards */
  atomic_bool stopping;
  int64_t start_time_ms;
};

extern struct server server;

/* Runs the server with the parsed options until SIGTERM or SIGINT. Returns
 * the process exit status. */
int server_run(void);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t server_now_ms(void);

#endif
