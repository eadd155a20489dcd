/* SPDX-License-Identifier: Apache-2.0 */
/* Subject and queue-name validation with nats-server 2.9's rules. */
#ifndef SHOAL_SUBJECT_H
#define SHOAL_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

/* A subscription subject: dot-separated non-empty tokens without whitespace,
 * '*' and '>' only as whole tokens, '>' only as the last token. */
bool subject_valid(const char *s, size_t len);

/* A publish subject in pedantic mode: non-empty tokens, none of them '*' or
 * '>'. Like nats-server 2.9.10, whitespace is not checked here, because the
 * protocol parser has already split the arguments on it. */
bool subject_valid_literal(const char *s, size_t len);

/* A queue group name: non-empty and without whitespace. */
bool subject_queue_valid(const char *s, size_t len);

/* Returns true when the literal subject matches the pattern (which may hold
 * wildcards). */
bool subject_matches(const char *pattern, size_t pattern_len,
                     const char *subject, size_t subject_len);

#endif
