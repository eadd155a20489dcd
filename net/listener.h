/* SPDX-License-Identifier: Apache-2.0 */
/* TCP listeners: one SO_REUSEPORT socket per shard on the same address, so
 * the kernel spreads new connections over the shards. */
#ifndef SHOAL_LISTENER_H
#define SHOAL_LISTENER_H

/* Opens a nonblocking listening socket on host:port with SO_REUSEPORT.
 * port 0 lets the kernel pick one; *bound_port receives the port in use.
 * Returns the descriptor, or a negative errno and a message in why. */
int listener_open(const char *host, int port, int *bound_port, char *why, unsigned why_len);

#endif
