/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration reload (SIGHUP) and lame-duck mode (SIGUSR2): the main
 * thread's half, which publishes the change, and the shards' half, which
 * applies it to their own connections at their next tick. */
#include "core/lifecycle.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/server.h"
#include "core/shard.h"
#include "net/backend.h"

static bool same_string(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

/* Copies the settings that may change at run time into server.opts.
 * NOTE: shards read these 64-bit fields without synchronisation; an aligned
 * store is atomic on the 64-bit targets shoal supports, and a shard that
 * reads the old value for one more message is harmless. */
static void apply_limits(const struct opts *fresh) {
  struct opts *o = &server.opts;
  o->max_connections = fresh->max_connections;
  o->max_control_line = fresh->max_control_line;
  o->max_payload = fresh->max_payload;
  o->max_pending = fresh->max_pending;
  o->max_subscriptions = fresh->max_subscriptions;
  o->ping_interval_ms = fresh->ping_interval_ms;
  o->ping_max = fresh->ping_max;
  o->write_deadline_ms = fresh->write_deadline_ms;
  o->auth_timeout_ms = fresh->auth_timeout_ms;
  o->lame_duck_duration_ms = fresh->lame_duck_duration_ms;
  o->lame_duck_grace_period_ms = fresh->lame_duck_grace_period_ms;
  o->debug = fresh->debug;
  o->trace = fresh->trace;
  o->logtime = fresh->logtime;
}

int server_reload(void) {
  if (server.opts.config_file == NULL) {
    log_error("Failed to reload server configuration: no configuration file was given (-c)");
    return -1;
  }

  /* The new options: defaults, the file, then the command line again, so
   * flags keep overriding the file as they did at start. */
  struct opts *fresh = malloc(sizeof *fresh);
  if (fresh == NULL) {
    log_error("Failed to reload server configuration: out of memory");
    return -1;
  }
  opts_init(fresh);
  if (opts_parse_args(fresh, server.argc, server.argv) != 0) {
    log_error("Failed to reload server configuration from %s; the running configuration stays",
              server.opts.config_file);
    opts_free(fresh);
    free(fresh);
    return -1;
  }

  if (!same_string(fresh->host, server.opts.host) || fresh->port != server.opts.port) {
    log_warn("Reload cannot change the listen address %s:%d to %s:%d; it stays", server.opts.host,
             server.opts.port, fresh->host, fresh->port);
  }
  if (fresh->jetstream != server.opts.jetstream || !same_string(fresh->store_dir, server.opts.store_dir)) {
    log_warn("Reload cannot change JetStream settings; they take effect at the next start");
  }

  apply_limits(fresh);
  if (log_setup(fresh->debug, fresh->trace, fresh->logtime, fresh->logfile) != 0) {
    log_error("Reload could not open log file %s; logging continues where it was",
              fresh->logfile);
  }

  /* NOTE: the previous authorization options are not freed, because
   * connections may still point at their users until every shard has
   * checked them again; one options block per reload is the cost. */
  atomic_store_explicit(&server.auth_opts, fresh, memory_order_release);
  atomic_fetch_add(&server.reload_gen, 1);
  log_info("Reloaded server configuration");
  return 0;
}

void lifecycle_enter_lame_duck(void) {
  server.lame_duck_start_ms = server_now_ms();
  atomic_store(&server.lame_duck, true);
  log_info("Entering lame duck mode, stop accepting new clients");
}

/* Closes this shard's share of clients so that closes spread evenly over
 * the lame-duck duration after its grace period, as nats-server does. The
 * server shuts down once the last client is gone. */
static void close_lame_duck_share(struct shard *s) {
  int64_t grace = server.opts.lame_duck_grace_period_ms;
  int64_t span = server.opts.lame_duck_duration_ms - grace;
  int64_t elapsed = s->now_ms - server.lame_duck_start_ms - grace;
  if (elapsed < 0) return;
  if (span < 1) span = 1;

  /* The first close comes right after the grace period, the rest follow
   * at even intervals. */
  uint64_t start = s->lame_duck_clients;
  uint64_t closed = elapsed >= span ? start : 1 + start * (uint64_t)elapsed / (uint64_t)span;
  uint64_t keep = closed >= start ? 0 : start - closed;
  uint64_t open = 0;
  for (struct client *c = s->clients; c != NULL; c = c->next) open += c->state == CLIENT_OPEN;
  for (struct client *c = s->clients; c != NULL && open > keep; c = c->next) {
    if (c->state != CLIENT_OPEN) continue;
    client_close(c, CLOSE_SERVER_SHUTDOWN, true);
    open--;
  }
}

void lifecycle_tick(struct shard *s) {
  unsigned gen = atomic_load(&server.reload_gen);
  if (gen != s->reload_gen) {
    s->reload_gen = gen;
    for (struct client *c = s->clients; c != NULL; c = c->next) client_recheck_auth(c);
  }

  if (!atomic_load(&server.lame_duck)) return;
  if (!s->lame_duck) {
    s->lame_duck = true;
    s->backend->stop_accepting(s);
    uint64_t open = 0;
    for (struct client *c = s->clients; c != NULL; c = c->next) {
      if (c->state != CLIENT_OPEN) continue;
      client_enter_lame_duck(c);
      open++;
    }
    s->lame_duck_clients = open;
  }
  close_lame_duck_share(s);
}
