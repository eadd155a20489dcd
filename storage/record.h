/* SPDX-License-Identifier: Apache-2.0 */
/* The on-disk format of a stream journal: segment headers and records.
 * storage/record.c opens with the byte layout, the checksum rule and the
 * numbered invariants (J1..J8) and recovery rules (R1..R8) that the journal
 * code cites. */
#ifndef SHOAL_STORAGE_RECORD_H
#define SHOAL_STORAGE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEGMENT_MAGIC "SHOALSEG"
#define SEGMENT_VERSION 1
/* Bytes reserved for the segment header; records start here. */
#define SEGMENT_HEADER_AREA 4096
#define SEGMENT_HEADER_SIZE 80
/* A segment's records are addressed with 32-bit offsets. */
#define SEGMENT_SIZE_MAX (1ull << 31)

#define RECORD_HEADER_SIZE 48
#define RECORD_CHECKSUM_SIZE 8
#define RECORD_ALIGN 8
/* Fixed bytes of every record: header and checksum. */
#define RECORD_OVERHEAD (RECORD_HEADER_SIZE + RECORD_CHECKSUM_SIZE)

enum record_type {
  RECORD_MSG = 1,          /* a stored message */
  RECORD_DELETE = 2,       /* removes one sequence: body u64 target */
  RECORD_DELETE_RANGE = 3, /* removes [first, last]: body u64 first, u64 last */
  RECORD_PURGE = 4,        /* subject purge: subject = filter, body u64 up_to_seq, u64 keep */
};

struct segment_header {
  uint32_t block_size;     /* write alignment used for this segment */
  uint64_t index;          /* segment number, consecutive within a stream */
  uint64_t first_seq;      /* stream's next sequence when the segment was created */
  uint64_t prev_end;       /* end offset of the records of segment index - 1, 0 if none */
  uint64_t size;           /* preallocated file size */
  uint64_t torn_window;    /* most bytes that can be written but unsynced (J8) */
  int64_t created_ns;
};

/* A decoded record. Pointers point into the buffer given to record_decode. */
struct record_view {
  enum record_type type;
  uint32_t length;         /* bytes from the header to the checksum, no padding */
  uint32_t padded_length;  /* length rounded up to RECORD_ALIGN */
  uint64_t seq;
  int64_t ts_ns;
  uint32_t offset;         /* the offset the record was written for */
  uint32_t synced_end;     /* segment bytes durable when it was written */
  const char *subject;
  uint16_t subject_len;
  const uint8_t *hdr;
  uint32_t hdr_len;
  const uint8_t *data;
  uint32_t data_len;
};

enum record_status {
  RECORD_OK = 0,
  RECORD_ZERO,             /* the header bytes are all zero: no record here */
  RECORD_TRUNCATED,        /* the claimed length runs past the bytes given */
  RECORD_BAD_HEADER,       /* header check failed or fields are out of range */
  RECORD_BAD_CHECKSUM,     /* header valid, body checksum mismatch */
  RECORD_MISPLACED,        /* intact, but written for another offset */
};

/* Returns the padded size of a record with these field lengths. */
static inline uint32_t record_size(size_t subject_len, size_t hdr_len, size_t data_len)
{
  size_t n = RECORD_OVERHEAD + subject_len + hdr_len + data_len;
  return (uint32_t)((n + RECORD_ALIGN - 1) & ~(size_t)(RECORD_ALIGN - 1));
}

/* Fields of a record to encode. */
struct record_fields {
  enum record_type type;
  uint64_t seq;
  int64_t ts_ns;
  const char *subject;
  uint16_t subject_len;
  const void *hdr;
  uint32_t hdr_len;
  const void *data;
  uint32_t data_len;
};

/* Encodes a record into buf, which has room for record_size() bytes, for
 * segment seg_index at offset with the given synced_end. Pads with zeros.
 * Returns the padded size. */
uint32_t record_encode(uint8_t *buf, const struct record_fields *f, uint64_t seg_index,
                       uint32_t offset, uint32_t synced_end);

/* Decodes the record at buf (avail bytes readable), found at offset in
 * segment seg_index, verifying both checksums. Returns a record_status. */
enum record_status record_decode(const uint8_t *buf, size_t avail, uint64_t seg_index,
                                 uint32_t offset, struct record_view *out);

/* Returns a short description of a status, for error messages. */
const char *record_status_text(enum record_status st);

/* Encodes a segment header into buf (SEGMENT_HEADER_AREA bytes, zero
 * filled beyond the header). */
void segment_header_encode(uint8_t *buf, const struct segment_header *h);

/* Decodes and verifies a segment header. Returns 0, or -EBADMSG when the
 * magic, version or checksum is wrong, or -ENODATA when the bytes are all
 * zero (a segment whose creation did not finish). */
int segment_header_decode(const uint8_t *buf, struct segment_header *out);

/* Returns true when len bytes at p are all zero. */
bool bytes_zero(const uint8_t *p, size_t len);

#endif
