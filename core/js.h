/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream: persistent streams and consumers served over the $JS.API
 * subjects, with streams owned by the shard their name hashes to. */
#ifndef SHOAL_JS_H
#define SHOAL_JS_H

/* Prepares JetStream when server.opts.jetstream is set: creates the store
 * directory layout and arranges for each shard, on its own thread at
 * start, to recover its streams and subscribe to the API subjects. Call on
 * the main thread after shard_create_all() and before shard_start_all().
 * Returns 0 (also when JetStream is off) or a negative errno after logging
 * the cause. */
int js_init(void);

#endif
