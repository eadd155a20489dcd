/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte buffer for a connection's input and output. */
#ifndef SHOAL_BUF_H
#define SHOAL_BUF_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct buf {
  char *data;
  size_t len; /* bytes held */
  size_t off; /* bytes already consumed from the front */
  size_t cap;
};

/* Makes room for extra more bytes at the end. Returns 0 or -1 when out of
 * memory. */
static inline int buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return 0;
  if (b->off > 0 && b->len - b->off + extra <= b->cap) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    return 0;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len - b->off + extra) cap *= 2;
  char *data = malloc(cap);
  if (data == NULL) return -1;
  if (b->len > b->off) memcpy(data, b->data + b->off, b->len - b->off);
  free(b->data);
  b->data = data;
  b->len -= b->off;
  b->off = 0;
  b->cap = cap;
  return 0;
}

static inline int buf_append(struct buf *b, const void *p, size_t n) {
  if (buf_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }

static inline void buf_clear(struct buf *b) { b->len = b->off = 0; }

static inline void buf_free(struct buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

#endif
