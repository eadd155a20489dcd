/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the journal record and segment header format (storage/record.c)
 * and of the store's subject matcher. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/subject.h"
#include "storage/record.h"
#include "storage/store_int.h"

static uint32_t encode_sample(uint8_t *buf, uint64_t seg, uint32_t offset)
{
  struct record_fields f = {
    .type = RECORD_MSG, .seq = 42, .ts_ns = 123456789,
    .subject = "robots.7.status", .subject_len = 15,
    .hdr = "NATS/1.0\r\nA: b\r\n\r\n", .hdr_len = 18,
    .data = "hello world", .data_len = 11,
  };
  return record_encode(buf, &f, seg, offset, 8192);
}

Test(store_record, roundtrip_fields)
{
  uint8_t buf[256] = {0};
  uint32_t n = encode_sample(buf, 3, 4096);
  cr_assert_eq(n, record_size(15, 18, 11));
  cr_assert_eq(n % RECORD_ALIGN, 0);

  struct record_view v;
  cr_assert_eq(record_decode(buf, n, 3, 4096, &v), RECORD_OK);
  cr_assert_eq(v.type, RECORD_MSG);
  cr_assert_eq(v.seq, 42);
  cr_assert_eq(v.ts_ns, 123456789);
  cr_assert_eq(v.offset, 4096);
  cr_assert_eq(v.synced_end, 8192);
  cr_assert_eq(v.length, RECORD_OVERHEAD + 15 + 18 + 11);
  cr_assert_eq(v.padded_length, n);
  cr_assert_eq(v.subject_len, 15);
  cr_assert(memcmp(v.subject, "robots.7.status", 15) == 0);
  cr_assert_eq(v.hdr_len, 18);
  cr_assert(memcmp(v.hdr, "NATS/1.0\r\nA: b\r\n\r\n", 18) == 0);
  cr_assert_eq(v.data_len, 11);
  cr_assert(memcmp(v.data, "hello world", 11) == 0);
}

Test(store_record, every_bit_flip_detected)
{
  uint8_t buf[256] = {0};
  uint32_t n = encode_sample(buf, 3, 4096);
  uint32_t length = RECORD_OVERHEAD + 15 + 18 + 11;
  for (uint32_t bit = 0; bit < length * 8; bit++) {
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    struct record_view v;
    enum record_status st = record_decode(buf, n, 3, 4096, &v);
    cr_assert(st == RECORD_BAD_HEADER || st == RECORD_BAD_CHECKSUM || st == RECORD_TRUNCATED,
              "bit %u flipped gave status %d", bit, st);
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
}

Test(store_record, other_segment_fails)
{
  uint8_t buf[256] = {0};
  uint32_t n = encode_sample(buf, 3, 4096);
  struct record_view v;
  cr_assert_eq(record_decode(buf, n, 4, 4096, &v), RECORD_BAD_HEADER);
}

Test(store_record, other_offset_is_misplaced)
{
  uint8_t buf[256] = {0};
  uint32_t n = encode_sample(buf, 3, 4096);
  struct record_view v;
  cr_assert_eq(record_decode(buf, n, 3, 8192, &v), RECORD_MISPLACED);
}

Test(store_record, zero_and_truncated)
{
  uint8_t buf[256] = {0};
  struct record_view v;
  cr_assert_eq(record_decode(buf, sizeof(buf), 1, 4096, &v), RECORD_ZERO);
  cr_assert_eq(record_decode(buf, 10, 1, 4096, &v), RECORD_ZERO);
  uint32_t n = encode_sample(buf, 1, 4096);
  cr_assert_eq(record_decode(buf, n - 16, 1, 4096, &v), RECORD_TRUNCATED);
}

Test(store_record, segment_header_roundtrip)
{
  static uint8_t buf[SEGMENT_HEADER_AREA];
  struct segment_header h = {
    .block_size = 512, .index = 7, .first_seq = 1001, .prev_end = 65536,
    .size = 1 << 20, .torn_window = 1 << 16, .created_ns = 99,
  };
  segment_header_encode(buf, &h);
  struct segment_header out;
  cr_assert_eq(segment_header_decode(buf, &out), 0);
  cr_assert_eq(out.block_size, 512);
  cr_assert_eq(out.index, 7);
  cr_assert_eq(out.first_seq, 1001);
  cr_assert_eq(out.prev_end, 65536);
  cr_assert_eq(out.size, 1 << 20);
  cr_assert_eq(out.torn_window, 1 << 16);
  cr_assert_eq(out.created_ns, 99);

  buf[30] ^= 4;
  cr_assert_eq(segment_header_decode(buf, &out), -EBADMSG);
  memset(buf, 0, sizeof(buf));
  cr_assert_eq(segment_header_decode(buf, &out), -ENODATA);
}

Test(store_record, subject_filter_matching)
{
  struct { const char *filter, *subject; bool match; } cases[] = {
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b", "a.b.c", false},
    {"a.*.c", "a.x.c", true},
    {"a.*.c", "a.x.d", false},
    {"a.*", "a.x.c", false},
    {"a.>", "a.x.c", true},
    {"a.>", "a", false},
    {">", "a", true},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*.>", "a.b", true},
    {"ab", "a", false},
    {"a", "ab", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bool got = subject_matches(cases[i].filter, strlen(cases[i].filter), cases[i].subject,
                               strlen(cases[i].subject));
    cr_assert_eq(got, cases[i].match, "filter %s subject %s", cases[i].filter, cases[i].subject);
  }
}
