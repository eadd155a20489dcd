/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP monitor: nats-server's monitoring endpoints (/varz, /connz,
 * /subsz, /healthz, /jsz, /routez) and Prometheus metrics (/metrics),
 * served by libmicrohttpd on its own thread, and the ports file that
 * ports_file_dir requests. */
#ifndef SHOAL_MONITOR_H
#define SHOAL_MONITOR_H

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

#endif
