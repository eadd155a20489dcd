/* SPDX-License-Identifier: Apache-2.0 */
/* The case table of the conformance suite: raw protocol bytes sent to
 * nats-server and to shoal-server, and nats-server 2.9.10's reply to them. */
#ifndef SHOAL_CONFORMANCE_H
#define SHOAL_CONFORMANCE_H

#include <stdbool.h>
#include <stddef.h>

#define CONF_STEPS_MAX 24
#define CONF_CONNS_MAX 2

/* One write on one connection. In bytes, "{c*N}" stands for N copies of the
 * character c (N in decimal), so long lines stay readable in the table. */
struct conf_step {
  int conn;          /* 0 or 1 */
  const char *bytes; /* NULL ends the step list */
};

/* One case: the writes in order, then per connection the reply expected
 * after the INFO line (expanded like the writes) and whether the server
 * closes that connection. A step that ends with "PING\r\n" waits for its
 * PONG before the next step, so a SUB is known to be in place before
 * another connection publishes. */
struct conf_case {
  const char *name;
  struct conf_step steps[CONF_STEPS_MAX];
  const char *expect[CONF_CONNS_MAX];
  bool closes[CONF_CONNS_MAX];
  /* Replace the sid of each MSG and HMSG line with '#' before comparing,
   * for queue groups, where the member that gets a message is random. */
  bool mask_sids;
  /* When nonzero, each step is written in pieces of this many bytes. */
  size_t chunk;
};

extern const struct conf_case conf_cases[];
extern const size_t conf_case_count;

/* The keys of nats-server 2.9.10's INFO to a plain client, which shoal's
 * INFO must contain too, comma-separated in nats-server's order. */
extern const char conf_info_keys[];

#endif
