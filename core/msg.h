/* SPDX-License-Identifier: Apache-2.0 */
/* A published message shared by the shards it fans out to: stored once,
 * reference counted, freed by whichever shard drops the last reference. */
#ifndef SHOAL_MSG_H
#define SHOAL_MSG_H

#include <stdatomic.h>
#include <stdint.h>

struct msg {
  atomic_uint refs;
  uint32_t subject_len;
  uint32_t reply_len;
  uint32_t header_len;  /* headers at the start of data; 0 for PUB */
  uint32_t total_len;   /* headers plus body */
  uint64_t publisher_cid;
  char *subject;        /* points into data_area, NUL-terminated */
  char *reply;          /* points into data_area, NUL-terminated; may be "" */
  char *data;           /* total_len bytes */
  char data_area[];
};

/* Copies one message into a new buffer with refs set to refs. Returns NULL
 * when out of memory. */
struct msg *msg_create(const char *subject, uint32_t subject_len,
                       const char *reply, uint32_t reply_len,
                       const char *data, uint32_t header_len,
                       uint32_t total_len, uint32_t refs);

/* Drops one reference; the last one frees the buffer. Any thread. */
void msg_release(struct msg *m);

#endif
