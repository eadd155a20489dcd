/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration reload and lame-duck mode. */
#ifndef SHOAL_LIFECYCLE_H
#define SHOAL_LIFECYCLE_H

struct shard;

/* Main thread: starts lame-duck mode. Shards stop accepting at their next
 * tick, send INFO with "ldm":true and close their clients over
 * lame_duck_duration after lame_duck_grace_period. */
void lifecycle_enter_lame_duck(void);

/* Shard thread, once per tick: applies a reload or lame-duck mode
 * published by the main thread to the shard's connections. */
void lifecycle_tick(struct shard *s);

#endif
