/* SPDX-License-Identifier: Apache-2.0 */
/* Client authorization as nats-server 2.9 does it: a token, one user and
 * password, or a users list with plain or bcrypt passwords and per-user
 * publish and subscribe permissions. */
#ifndef SHOAL_AUTH_H
#define SHOAL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct opts;
struct opts_user;
struct client;

/* Returns true when the options require clients to authenticate. */
bool auth_required(const struct opts *o);

/* Checks the credentials of a CONNECT (its parsed JSON object) against o.
 * Returns 0 and sets *user (NULL when the mode has no users list) or
 * -EACCES. Never logs a password or token. */
int auth_check_connect(const struct opts *o, const void *connect_json,
                       const struct opts_user **user);

/* Permission checks for an authenticated user; u NULL allows everything.
 * subject need not be NUL-terminated. */
bool auth_can_publish(const struct opts_user *u, const char *subject, size_t len);
bool auth_can_subscribe(const struct opts_user *u, const char *subject, size_t len,
                        const char *queue, size_t queue_len);

/* Whether a message on subject may be delivered to a subscription of u,
 * whose own subject may be a wildcard that covers denied subjects. */
bool auth_can_deliver(const struct opts_user *u, const char *subject, size_t len);

/* Reply subjects a client with allow_responses may publish to: each
 * delivered request adds one, good for max messages until it expires. */
struct auth_responses {
  struct auth_response *items;
  uint32_t count;
  uint32_t cap;
};

/* Records that c may answer on reply. */
void auth_responses_add(struct auth_responses *r, const struct opts_user *u,
                        const char *reply, size_t len, int64_t now_ms);

/* Consumes one allowed response on subject. Returns true when one was left. */
bool auth_responses_take(struct auth_responses *r, const char *subject, size_t len,
                         int64_t now_ms);

void auth_responses_free(struct auth_responses *r);

#endif
