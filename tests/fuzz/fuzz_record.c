/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the journal's segment header and record decoder
 * (storage/record.c). Owned by the robustness tests.
 *
 * Method: the first input byte picks one of two modes.
 *   - Even: the rest is a segment header followed by its record area. The
 *     header is decoded, then a record is decoded at every 8-byte offset
 *     of the area. An accepted record must lie inside the bytes given and
 *     agree with its own length fields.
 *   - Odd: the rest describes a record (fields, lengths, content) and up to
 *     three byte changes. The record is encoded, changed, and decoded from a
 *     heap buffer of exactly its size. Unchanged, it must decode to the same
 *     fields, fail as misplaced at another offset, fail in another segment,
 *     and fail as truncated when a byte is missing. Changed anywhere within
 *     its length, it must not decode as valid: a change that the checksums
 *     let through would be lost data that recovery takes for good.
 * Random bytes almost never carry valid XXH3 checksums, which is why the
 * second mode builds records instead of hoping for them. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record.h"

#define EDITS_MAX 3
/* Keeps encoded records small, so runs stay fast. */
#define FIELD_BYTES_MAX 1024

/* Reads fixed-size fields from the input, giving zeros once it runs out. */
struct reader {
  const uint8_t *p;
  size_t left;
};

static uint64_t take(struct reader *r, size_t n)
{
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = 0;
    if (r->left > 0) {
      b = *r->p++;
      r->left--;
    }
    v |= (uint64_t)b << (8 * i);
  }
  return v;
}

static void fail(const char *message, long a, long b)
{
  fprintf(stderr, "fuzz_record: %s (%ld, %ld)\n", message, a, b);
  abort();
}

static void check_view_inside(const struct record_view *v, const uint8_t *buf, size_t avail)
{
  if (v->length > avail || v->length < RECORD_OVERHEAD)
    fail("accepted record length outside the bytes given", v->length, (long)avail);
  if (v->padded_length < v->length || v->padded_length % RECORD_ALIGN != 0)
    fail("padded length inconsistent", v->padded_length, v->length);
  const uint8_t *end = buf + v->length - RECORD_CHECKSUM_SIZE;
  if ((const uint8_t *)v->subject != buf + RECORD_HEADER_SIZE)
    fail("subject not right after the header", 0, 0);
  if (v->data + v->data_len != end)
    fail("payload does not end at the checksum", v->data_len, v->length);
  if (v->hdr != (const uint8_t *)v->subject + v->subject_len || v->data != v->hdr + v->hdr_len)
    fail("fields not contiguous", v->subject_len, v->hdr_len);
}

/* Raw mode: the first SEGMENT_HEADER_SIZE bytes are a segment header (the
 * rest of its area taken as zeros) and what follows is the record area,
 * whose first byte is at file offset SEGMENT_HEADER_AREA. */
static void fuzz_raw(const uint8_t *data, size_t size)
{
  uint8_t *area = calloc(1, SEGMENT_HEADER_AREA);
  if (area == NULL)
    abort();
  size_t header_bytes = size < SEGMENT_HEADER_SIZE ? size : SEGMENT_HEADER_SIZE;
  memcpy(area, data, header_bytes);
  struct segment_header h;
  int rc = segment_header_decode(area, &h);
  free(area);
  if (rc != 0 && rc != -EBADMSG && rc != -ENODATA)
    fail("segment_header_decode returned an undocumented value", rc, 0);
  if (rc == 0 && (h.size > SEGMENT_SIZE_MAX || h.size < SEGMENT_HEADER_AREA || h.block_size == 0))
    fail("accepted segment header out of range", (long)h.size, h.block_size);

  /* Records are 8-byte aligned; every aligned offset is tried, with the
   * segment index from a valid header (records are bound to it). */
  uint64_t seg_index = rc == 0 ? h.index : 1;
  const uint8_t *records = data + header_bytes;
  size_t records_size = size - header_bytes;
  for (size_t off = 0; off < records_size; off += RECORD_ALIGN) {
    struct record_view v;
    enum record_status st = record_decode(records + off, records_size - off, seg_index,
                                          (uint32_t)(SEGMENT_HEADER_AREA + off), &v);
    if (st == RECORD_OK)
      check_view_inside(&v, records + off, records_size - off);
    if (record_status_text(st) == NULL)
      fail("status without a text", st, 0);
  }
}

/* Decodes rec (len bytes) from a heap copy of exactly avail bytes. */
static enum record_status decode_copy(const uint8_t *rec, size_t avail, uint64_t seg_index,
                                      uint32_t offset, struct record_view *v, uint8_t **copy)
{
  *copy = malloc(avail ? avail : 1);
  if (*copy == NULL)
    abort();
  memcpy(*copy, rec, avail);
  return record_decode(*copy, avail, seg_index, offset, v);
}

static void check_round_trip(const struct record_fields *f, const struct record_view *v)
{
  if (v->type != f->type || v->seq != f->seq || v->ts_ns != f->ts_ns)
    fail("decoded type, seq or timestamp differs", v->type, (long)v->seq);
  if (v->subject_len != f->subject_len || memcmp(v->subject, f->subject, f->subject_len) != 0)
    fail("decoded subject differs", v->subject_len, f->subject_len);
  if (v->hdr_len != f->hdr_len || memcmp(v->hdr, f->hdr, f->hdr_len) != 0)
    fail("decoded headers differ", v->hdr_len, f->hdr_len);
  if (v->data_len != f->data_len || memcmp(v->data, f->data, f->data_len) != 0)
    fail("decoded payload differs", v->data_len, f->data_len);
}

static void fuzz_encoded(const uint8_t *data, size_t size)
{
  struct reader r = {data, size};
  struct record_fields f = {0};
  f.type = (enum record_type)(RECORD_MSG + take(&r, 1) % 4);
  uint64_t seg_index = take(&r, 8);
  f.seq = take(&r, 8);
  f.ts_ns = (int64_t)take(&r, 8);
  uint32_t offset = (uint32_t)take(&r, 4) & ~(uint32_t)(RECORD_ALIGN - 1);
  uint32_t synced_end = (uint32_t)take(&r, 4);
  f.subject_len = (uint16_t)(take(&r, 2) % FIELD_BYTES_MAX);
  f.hdr_len = (uint32_t)(take(&r, 2) % FIELD_BYTES_MAX);
  f.data_len = (uint32_t)(take(&r, 2) % FIELD_BYTES_MAX);
  unsigned edits = (unsigned)(take(&r, 1) % (EDITS_MAX + 1));
  struct {
    uint16_t pos;
    uint8_t xor;
  } edit[EDITS_MAX];
  for (unsigned i = 0; i < edits; i++) {
    edit[i].pos = (uint16_t)take(&r, 2);
    edit[i].xor = (uint8_t)take(&r, 1);
  }

  /* Field contents come from the remaining input, zero-filled. */
  size_t content = (size_t)f.subject_len + f.hdr_len + f.data_len;
  uint8_t *bytes = calloc(1, content ? content : 1);
  if (bytes == NULL)
    abort();
  memcpy(bytes, r.p, r.left < content ? r.left : content);
  f.subject = (const char *)bytes;
  f.hdr = bytes + f.subject_len;
  f.data = bytes + f.subject_len + f.hdr_len;

  uint32_t padded = record_size(f.subject_len, f.hdr_len, f.data_len);
  uint32_t length = RECORD_OVERHEAD + (uint32_t)content;
  uint8_t *rec = malloc(padded);
  if (rec == NULL)
    abort();
  if (record_encode(rec, &f, seg_index, offset, synced_end) != padded)
    fail("record_encode size differs from record_size", padded, 0);

  /* Apply the changes; a change inside the length must be detected. */
  bool changed = false;
  for (unsigned i = 0; i < edits; i++) {
    uint32_t pos = edit[i].pos % padded;
    rec[pos] ^= edit[i].xor;
    if (pos < length && edit[i].xor != 0)
      changed = true;
  }
  /* Two edits of one byte can cancel out. */
  uint8_t *clean = malloc(padded);
  if (clean == NULL)
    abort();
  record_encode(clean, &f, seg_index, offset, synced_end);
  changed = changed && memcmp(rec, clean, length) != 0;
  free(clean);

  struct record_view v;
  uint8_t *copy;
  enum record_status st = decode_copy(rec, padded, seg_index, offset, &v, &copy);
  if (changed && st == RECORD_OK)
    fail("a changed record decodes as valid", (long)length, 0);
  if (!changed) {
    if (st != RECORD_OK)
      fail("an unchanged record does not decode", st, (long)length);
    check_view_inside(&v, copy, padded);
    check_round_trip(&f, &v);
    if (v.offset != offset || v.synced_end != synced_end)
      fail("decoded offset or synced_end differs", v.offset, v.synced_end);
  }
  free(copy);

  if (!changed) {
    st = decode_copy(rec, length, seg_index, offset, &v, &copy);
    free(copy);
    if (st != RECORD_OK)
      fail("a record without its padding does not decode", st, (long)length);
    st = decode_copy(rec, length - 1, seg_index, offset, &v, &copy);
    free(copy);
    if (st != RECORD_TRUNCATED)
      fail("a record missing its last byte is not truncated", st, (long)length);
    st = decode_copy(rec, padded, seg_index, offset + RECORD_ALIGN, &v, &copy);
    free(copy);
    if (st != RECORD_MISPLACED)
      fail("a record at another offset is not misplaced", st, (long)offset);
    st = decode_copy(rec, padded, seg_index + 1, offset, &v, &copy);
    free(copy);
    if (st == RECORD_OK || st == RECORD_MISPLACED)
      fail("a record decodes in another segment", st, (long)seg_index);
  }
  free(rec);
  free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (data[0] & 1)
    fuzz_encoded(data + 1, size - 1);
  else
    fuzz_raw(data + 1, size - 1);
  return 0;
}
