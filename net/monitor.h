/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP monitor: nats-server's monitoring endpoints (/varz, /connz,
 * /subsz, /healthz, /jsz, /routez) and Prometheus metrics (/metrics),
 * served by libmicrohttpd on its own thread, and the ports file that
 * ports_file_dir requests. */
#ifndef SHOAL_MONITOR_H
#define SHOAL_MONITOR_H

struct client;

/* Starts the monitor when opts.http_port is not 0, and writes the ports
 * file when opts.ports_file_dir is set. Called by server_run() on the main
 * thread once the shard threads run, because endpoints query the shards.
 * Returns 0, or a negative errno after logging why (the server then stops). */
int monitor_start(void);

/* Stops the HTTP thread, waiting for requests in progress, and removes the
 * ports file. Called before the shards stop, since a request in progress
 * may be waiting for a shard. Safe to call when monitor_start() failed or
 * did nothing. */
void monitor_stop(void);

/* Records c in its shard's ring of recently closed connections, which
 * /connz lists with state=closed, replacing the oldest record when the ring
 * is full. c->close_reason must be set, and c must still hold its
 * subscriptions, which the record lists. Called on c's shard thread when c
 * stops being open. Does nothing when monitoring is off. A record that
 * cannot be allocated is left out. */
void monitor_closed_add(const struct client *c);

#endif
