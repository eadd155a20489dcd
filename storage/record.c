/* SPDX-License-Identifier: Apache-2.0 */
/* Encoding and checking of journal segment headers and records.
 *
 * FORMAT
 *
 * A stream's journal is a directory of segment files named by their index
 * in 16 hex digits ("0000000000000001.seg"). Each file is preallocated to
 * its size with fallocate and written with O_DIRECT in blocks of the
 * device's direct-I/O alignment. All integers are little-endian.
 *
 * Segment header, at offset 0, in a SEGMENT_HEADER_AREA (4096) byte area
 * whose remaining bytes are zero:
 *
 *    0  8  magic "SHOALSEG"
 *    8  4  version (1)
 *   12  4  block_size: write alignment used for the segment
 *   16  8  index: segment number, consecutive within the stream
 *   24  8  first_seq: the stream's next sequence when the segment was made
 *   32  8  prev_end: end offset of the previous segment's records, 0 if none
 *   40  8  size: preallocated file size
 *   48  8  torn_window: most bytes that can be written but not yet synced
 *   56  8  created_ns: wall-clock time of creation
 *   64  8  reserved, zero
 *   72  8  XXH3-64 of bytes 0..71, seed 0
 *
 * Records follow from offset 4096, each starting at a multiple of 8:
 *
 *    0  4  length: bytes from offset 0 to the end of the checksum
 *    4  1  type: 1 message, 2 delete, 3 delete range, 4 subject purge
 *    5  1  reserved, zero
 *    6  2  subject_len
 *    8  8  seq: the message's sequence; for other types the stream's last
 *          sequence when the record was written
 *   16  8  ts_ns: wall-clock nanoseconds since the Unix epoch
 *   24  4  hdr_len: NATS header bytes
 *   28  4  data_len: payload bytes (the body for types 2..4)
 *   32  4  offset: the file offset the record was written for
 *   36  4  synced_end: the segment's durable end when it was written
 *   40  4  header check: low 32 bits of XXH3-64 of bytes 0..39
 *   44  4  reserved, zero
 *   48     subject, then headers, then payload
 *   length-8  8  checksum: XXH3-64 of bytes 0..length-9
 *   then zero padding up to a multiple of 8
 *
 * Checksum rule: both hashes are seeded with the segment index, so a record
 * copied into another segment fails. The offset field makes a record found
 * at another position identifiable (misdirected write). Every read of a
 * record, not only recovery, verifies both hashes and the offset.
 *
 * INVARIANTS (cited as J1..J8)
 *
 * J1 Append only: bytes of a segment below its logical end never change
 *    once written. The block holding the end is rewritten with the same
 *    prefix and more records, so a torn rewrite cannot damage a record that
 *    was already durable, given sector-atomic writes.
 * J2 At most one write group per stream is in flight. Under the default
 *    policy a group is a pwrite linked to an fdatasync, and the next group
 *    is submitted only after that fdatasync completed.
 * J3 A segment file is created (preallocated, header written and synced,
 *    directory synced) only when the previous segment is durable to its
 *    end. Its header's prev_end and first_seq bind it to the previous one.
 * J4 Each record carries the offset it was written for and the synced_end
 *    of its segment at the time, both covered by the checksums.
 * J5 Under the default policy an append is reported durable only after the
 *    fdatasync covering its record completed. Under the relaxed policy it
 *    is reported after its write completed, within J8's window.
 * J6 A write covers every byte that an earlier, failed write may have left
 *    past the logical end, filling it with zeros, so stale records never
 *    follow live ones.
 * J7 Message records carry consecutive sequences across the stream: the
 *    first in a segment has the header's first_seq, each next one the
 *    previous plus one.
 * J8 Bytes written to a segment past its last fdatasync never exceed the
 *    header's torn_window.
 *
 * RECOVERY (cited as R1..R8)
 *
 * R1 Segments are read in index order; the indices must be consecutive.
 * R2 A newest segment whose header and record area are all zero is a
 *    creation that did not finish (J3): it held no record and is removed.
 *    Any other invalid header is corruption.
 * R3 In every segment but the newest, records must be valid from 4096 up to
 *    the next segment's prev_end exactly, and end with the sequence before
 *    the next segment's first_seq (J3, J7).
 * R4 In the newest segment records are read up to the first invalid one, at
 *    the valid end P. If any valid record's synced_end is past P, a durable
 *    record was damaged: corruption (J4).
 * R5 Past P, an intact record written for another offset is a misdirected
 *    write, and a non-zero byte beyond the block holding P plus torn_window
 *    is data that cannot come from an unsynced write (J8): corruption.
 * R6 The damaged record at P must look torn: some sector-sized piece of it
 *    past P is all zero, as it is where a write did not reach the disk. A
 *    record with a bad checksum and no zero piece has a flipped bit:
 *    corruption.
 * R7 Otherwise the bytes from P on are the torn tail of writes in flight at
 *    the crash: they are overwritten with zeros and synced, and appends
 *    continue at P.
 * R8 Before the first append the newest segment and the directory are
 *    synced. After a process crash, the tail and the directory entries
 *    that recovery read may not be durable yet, and J8 counts from a
 *    durable end.
 *
 * Corruption is reported with the stream, segment file and offset, and the
 * stream is not opened.
 *
 * NOTE: R6 cannot tell a bit flip from a torn write when the damaged record
 * happens to contain a whole zero sector of payload; such a flip in the
 * newest group is taken as a torn write.
 */
#include "storage/record.h"

#include <errno.h>
#include <string.h>
#include <xxhash.h>

#include "core/assert.h"

_Static_assert(RECORD_HEADER_SIZE == 48, "record header layout");
_Static_assert(SEGMENT_HEADER_SIZE <= SEGMENT_HEADER_AREA, "segment header area");
_Static_assert(SEGMENT_HEADER_AREA % 4096 == 0, "records start on a block");

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

bool bytes_zero(const uint8_t *p, size_t len)
{
  size_t i = 0;
  for (; i + 8 <= len; i += 8)
    if (get64(p + i) != 0)
      return false;
  for (; i < len; i++)
    if (p[i] != 0)
      return false;
  return true;
}

static uint32_t header_check(const uint8_t *buf, uint64_t seg_index)
{
  return (uint32_t)XXH3_64bits_withSeed(buf, 40, seg_index);
}

uint32_t record_encode(uint8_t *buf, const struct record_fields *f, uint64_t seg_index,
                       uint32_t offset, uint32_t synced_end)
{
  uint32_t length = RECORD_OVERHEAD + f->subject_len + f->hdr_len + f->data_len;
  uint32_t padded = record_size(f->subject_len, f->hdr_len, f->data_len);
  ASSERT(f->type >= RECORD_MSG && f->type <= RECORD_PURGE);
  ASSERT(offset % RECORD_ALIGN == 0);

  put32(buf + 0, length);
  buf[4] = (uint8_t)f->type;
  buf[5] = 0;
  put16(buf + 6, f->subject_len);
  put64(buf + 8, f->seq);
  put64(buf + 16, (uint64_t)f->ts_ns);
  put32(buf + 24, f->hdr_len);
  put32(buf + 28, f->data_len);
  put32(buf + 32, offset);
  put32(buf + 36, synced_end);
  put32(buf + 40, header_check(buf, seg_index));
  put32(buf + 44, 0);

  uint8_t *p = buf + RECORD_HEADER_SIZE;
  if (f->subject_len)
    memcpy(p, f->subject, f->subject_len);
  p += f->subject_len;
  if (f->hdr_len)
    memcpy(p, f->hdr, f->hdr_len);
  p += f->hdr_len;
  if (f->data_len)
    memcpy(p, f->data, f->data_len);
  p += f->data_len;

  put64(p, XXH3_64bits_withSeed(buf, length - RECORD_CHECKSUM_SIZE, seg_index));
  memset(buf + length, 0, padded - length);
  return padded;
}

/* Checks the fixed header fields; returns RECORD_OK or RECORD_BAD_HEADER. */
static enum record_status decode_header(const uint8_t *buf, uint64_t seg_index,
                                        struct record_view *out)
{
  if (get32(buf + 40) != header_check(buf, seg_index) || buf[5] != 0 || get32(buf + 44) != 0)
    return RECORD_BAD_HEADER;

  out->length = get32(buf + 0);
  out->type = (enum record_type)buf[4];
  out->subject_len = get16(buf + 6);
  out->seq = get64(buf + 8);
  out->ts_ns = (int64_t)get64(buf + 16);
  out->hdr_len = get32(buf + 24);
  out->data_len = get32(buf + 28);
  out->offset = get32(buf + 32);
  out->synced_end = get32(buf + 36);

  uint64_t expect = (uint64_t)RECORD_OVERHEAD + out->subject_len + out->hdr_len + out->data_len;
  if (out->type < RECORD_MSG || out->type > RECORD_PURGE || expect != out->length)
    return RECORD_BAD_HEADER;
  out->padded_length = record_size(out->subject_len, out->hdr_len, out->data_len);
  return RECORD_OK;
}

enum record_status record_decode(const uint8_t *buf, size_t avail, uint64_t seg_index,
                                 uint32_t offset, struct record_view *out)
{
  if (avail < RECORD_HEADER_SIZE)
    return bytes_zero(buf, avail) ? RECORD_ZERO : RECORD_TRUNCATED;
  if (bytes_zero(buf, RECORD_HEADER_SIZE))
    return RECORD_ZERO;

  enum record_status st = decode_header(buf, seg_index, out);
  if (st != RECORD_OK)
    return st;
  if (out->length > avail)
    return RECORD_TRUNCATED;

  uint64_t sum = get64(buf + out->length - RECORD_CHECKSUM_SIZE);
  if (sum != XXH3_64bits_withSeed(buf, out->length - RECORD_CHECKSUM_SIZE, seg_index))
    return RECORD_BAD_CHECKSUM;
  if (out->offset != offset)
    return RECORD_MISPLACED;

  out->subject = (const char *)buf + RECORD_HEADER_SIZE;
  out->hdr = buf + RECORD_HEADER_SIZE + out->subject_len;
  out->data = out->hdr + out->hdr_len;
  return RECORD_OK;
}

const char *record_status_text(enum record_status st)
{
  switch (st) {
  case RECORD_OK: return "valid";
  case RECORD_ZERO: return "no record (zero bytes)";
  case RECORD_TRUNCATED: return "record runs past the end of the segment";
  case RECORD_BAD_HEADER: return "record header check failed";
  case RECORD_BAD_CHECKSUM: return "record checksum mismatch";
  case RECORD_MISPLACED: return "intact record written for another offset (misdirected write)";
  }
  return "unknown record status";
}

void segment_header_encode(uint8_t *buf, const struct segment_header *h)
{
  memset(buf, 0, SEGMENT_HEADER_AREA);
  memcpy(buf, SEGMENT_MAGIC, 8);
  put32(buf + 8, SEGMENT_VERSION);
  put32(buf + 12, h->block_size);
  put64(buf + 16, h->index);
  put64(buf + 24, h->first_seq);
  put64(buf + 32, h->prev_end);
  put64(buf + 40, h->size);
  put64(buf + 48, h->torn_window);
  put64(buf + 56, (uint64_t)h->created_ns);
  put64(buf + 72, XXH3_64bits_withSeed(buf, 72, 0));
}

int segment_header_decode(const uint8_t *buf, struct segment_header *out)
{
  if (bytes_zero(buf, SEGMENT_HEADER_AREA))
    return -ENODATA;
  if (memcmp(buf, SEGMENT_MAGIC, 8) != 0 || get32(buf + 8) != SEGMENT_VERSION)
    return -EBADMSG;
  if (get64(buf + 72) != XXH3_64bits_withSeed(buf, 72, 0))
    return -EBADMSG;

  out->block_size = get32(buf + 12);
  out->index = get64(buf + 16);
  out->first_seq = get64(buf + 24);
  out->prev_end = get64(buf + 32);
  out->size = get64(buf + 40);
  out->torn_window = get64(buf + 48);
  out->created_ns = (int64_t)get64(buf + 56);
  if (out->size > SEGMENT_SIZE_MAX || out->size < SEGMENT_HEADER_AREA || out->block_size == 0)
    return -EBADMSG;
  return 0;
}
