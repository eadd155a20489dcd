/* SPDX-License-Identifier: Apache-2.0 */
/* Process-wide server state: options, identity, the shared subscription
 * index and the shards. Written once at start, read by every shard. */
#ifndef SHOAL_SERVER_H
#define SHOAL_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
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

  /* Reload and lame duck. auth_opts holds the authorization in force:
   * server.opts at start, a reloaded copy after SIGHUP. Shards compare
   * reload_gen with their own to know when to check their clients again. */
  struct opts *_Atomic auth_opts;
  atomic_uint reload_gen;
  atomic_bool lame_duck;
  int64_t lame_duck_start_ms;
  int argc;
  char **argv;
};

extern struct server server;

/* Runs the server with the parsed options until SIGTERM or SIGINT. Returns
 * the process exit status. */
int server_run(void);

/* Returns the authorization options in force. Any thread. */
static inline const struct opts *server_auth_opts(void) {
  const struct opts *o = atomic_load_explicit(&server.auth_opts, memory_order_acquire);
  return o != NULL ? o : &server.opts;
}

/* Reloads the configuration file (SIGHUP). Returns 0, or -1 after logging
 * why the new file was rejected; the old settings then stay. */
int server_reload(void);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t server_now_ms(void);

#endif
