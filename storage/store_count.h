/* SPDX-License-Identifier: Apache-2.0 */
/* Exact counts of stored messages by subject filter from a starting
 * sequence, read from the store's in-memory index, for the num_pending of
 * JetStream consumers. Same threading rule as storage/store.h: the owning
 * shard's thread only. */
#ifndef SHOAL_STORAGE_STORE_COUNT_H
#define SHOAL_STORAGE_STORE_COUNT_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* Returns the number of live messages with sequence >= start_seq whose
 * subject matches filter (wildcards allowed; NULL, "" or ">" match all).
 * Reads no record. A literal filter whose subject starts at or after
 * start_seq costs one lookup. Otherwise the count walks the index entries
 * from start_seq to the last sequence at most, and a wildcard filter may
 * also scan the subject table. */
uint64_t store_count_from(struct store *st, uint64_t start_seq, const char *filter,
                          size_t filter_len);

#endif
