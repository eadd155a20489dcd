/* SPDX-License-Identifier: Apache-2.0 */
/* Shared message buffers. */
#include "core/msg.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

struct msg *msg_create(const char *subject, uint32_t subject_len,
                       const char *reply, uint32_t reply_len,
                       const char *data, uint32_t header_len,
                       uint32_t total_len, uint32_t refs) {
  ASSERT(refs > 0);
  ASSERT(header_len <= total_len);
  size_t size = sizeof(struct msg) + subject_len + 1 + reply_len + 1 + total_len;
  struct msg *m = malloc(size);
  if (m == NULL) return NULL;

  atomic_init(&m->refs, refs);
  m->subject_len = subject_len;
  m->reply_len = reply_len;
  m->header_len = header_len;
  m->total_len = total_len;
  m->publisher_cid = 0;
  m->subject = m->data_area;
  memcpy(m->subject, subject, subject_len);
  m->subject[subject_len] = '\0';
  m->reply = m->subject + subject_len + 1;
  if (reply_len > 0) memcpy(m->reply, reply, reply_len);
  m->reply[reply_len] = '\0';
  m->data = m->reply + reply_len + 1;
  if (total_len > 0) memcpy(m->data, data, total_len);
  return m;
}

void msg_release(struct msg *m) {
  unsigned before = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
  ASSERT(before > 0);
  if (before == 1) free(m);
}
