/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for journal recovery (storage/journal_recover.c through
 * store_open()). Owned by the robustness tests.
 *
 * Method: random bytes would almost never get past the segment header's
 * checksum, so the target first writes a valid journal and then damages it
 * as the input specifies. On the in-memory file system of the fault-injecting
 * backend (no faults enabled), a file store receives the input's number of
 * messages, each written and synced as its own group or in batches, with
 * some deleted. The store is closed, and the rest of the input is a list of
 * edits to the segment files: XOR one byte, or zero a 512-byte sector (as
 * a torn write leaves it). Then the store is opened again, which runs
 * recovery, and the target checks:
 *   - store_open() returns 0, or -EUCLEAN with a message naming a segment
 *     file ("...seg");
 *   - after a successful open, every sequence reads as removed or as the
 *     very message appended with that sequence: recovery may drop a torn
 *     tail but never returns altered content, and a message that reads
 *     back with a bad checksum means recovery missed damage;
 *   - without edits, every message that was not deleted is there;
 *   - the recovered store takes an append and closes cleanly.
 * Memory errors and leaks are found by the sanitizers of the build.
 *
 * Input layout: flags (1 byte), message count (1), payload size (1), then
 * edits of 6 bytes each: kind and segment (1), offset (4, little-endian),
 * XOR value (1). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "storage/io.h"
#include "storage/record.h"
#include "storage/store.h"

#define STREAM_DIR "/s/F"
#define MSGS_MAX 64
#define PAYLOAD_MAX 2000
#define EDITS_MAX 16
#define SEGMENTS_MAX 16
#define SECTOR_SIZE 512
/* Flush and poll rounds to wait for a group, far above what one group takes. */
#define DRAIN_ROUNDS 10000

static void fail(const char *message, long a, long b)
{
  fprintf(stderr, "fuzz_recover: %s (%ld, %ld)\n", message, a, b);
  abort();
}

static int64_t fixed_clock(void *ctx)
{
  (void)ctx;
  return 1700000000000000000ll;
}

static struct store_config stream_config(struct io_backend *io)
{
  struct store_config c;
  memset(&c, 0, sizeof c);
  c.name = "F";
  c.kind = STORE_FILE;
  c.dir = STREAM_DIR;
  c.io = io;
  /* Small segments, so that the messages span a few of them. A group must
   * hold a record plus two header areas, and a group is at most a quarter
   * of a segment, which rules out the 16 KiB minimum. */
  c.segment_size = 48 * 1024;
  c.group_bytes_max = 12 * 1024;
  c.clock_ns = fixed_clock;
  return c;
}

static void drain(struct store *st, struct io_backend *io)
{
  for (int i = 0; i < DRAIN_ROUNDS && store_busy(st); i++) {
    if (store_flush(st) < 0)
      fail("store_flush failed on a healthy disk", i, 0);
    io_flush(io);
    io_poll(io, io_inflight(io) > 0);
  }
  if (store_busy(st))
    fail("store still busy after draining", DRAIN_ROUNDS, 0);
}

/* The content of the message with sequence seq: its sequence, then bytes
 * derived from it, so any recovered message can be checked alone. */
static uint32_t make_payload(uint64_t seq, uint32_t size_base, uint8_t *out)
{
  uint32_t len = 8 + (uint32_t)((seq * 2654435761u + size_base) % (PAYLOAD_MAX - 8));
  memcpy(out, &seq, 8);
  for (uint32_t i = 8; i < len; i++)
    out[i] = (uint8_t)(seq * 31 + i * 7);
  return len;
}

static void make_subject(uint64_t seq, char *out, size_t size)
{
  snprintf(out, size, "fleet.r%llu", (unsigned long long)(seq % 5));
}

/* Writes count messages and marks the sequences it deleted in deleted[]. */
static void write_journal(struct io_backend *io, unsigned flags, uint32_t count,
                          uint32_t size_base, bool *deleted)
{
  struct store_config c = stream_config(io);
  struct store *st = NULL;
  struct store_error err;
  if (store_open(&c, &st, &err) != 0)
    fail("creating the store failed", 0, 0);

  static uint8_t payload[PAYLOAD_MAX];
  for (uint32_t i = 0; i < count; i++) {
    uint64_t seq = 0;
    uint64_t expect = i + 1;
    uint32_t len = make_payload(expect, size_base, payload);
    char subject[32];
    make_subject(expect, subject, sizeof subject);
    int rc = store_append(st, subject, strlen(subject), NULL, 0, payload, len, 0, NULL, NULL,
                          &seq);
    if (rc == -EAGAIN) {
      drain(st, io);
      rc = store_append(st, subject, strlen(subject), NULL, 0, payload, len, 0, NULL, NULL, &seq);
    }
    if (rc != 0 || seq != expect)
      fail("append failed on a healthy disk", rc, (long)seq);
    /* Bit 0: one group per message, else a group every 8 messages. */
    if ((flags & 1) || i % 8 == 7)
      drain(st, io);
    /* Bit 1: delete every 7th message once written. */
    if ((flags & 2) && expect % 7 == 0) {
      if (store_delete(st, expect) != 0)
        fail("delete of a stored message failed", (long)expect, 0);
      deleted[expect] = true;
    }
  }
  drain(st, io);
  if (store_close(st) != 0)
    fail("close failed", 0, 0);
}

struct name_list {
  char names[SEGMENTS_MAX][64];
  int count;
};

static void on_name(void *ctx, const char *name)
{
  struct name_list *l = ctx;
  size_t len = strlen(name);
  if (len > 4 && strcmp(name + len - 4, ".seg") == 0 && l->count < SEGMENTS_MAX)
    snprintf(l->names[l->count++], sizeof l->names[0], "%s", name);
}

static int compare_names(const void *a, const void *b)
{
  return strcmp(a, b);
}

/* Applies one edit; returns true when it changed a byte. */
static bool apply_edit(struct io_backend *io, const struct name_list *segs, const uint8_t *e)
{
  char path[128];
  snprintf(path, sizeof path, "%s/%s", STREAM_DIR, segs->names[(e[0] & 0x7f) % segs->count]);
  int fd = io->ops->open(io, path, 0);
  if (fd < 0)
    fail("cannot open a segment to edit", fd, 0);
  int64_t size = io->ops->file_size(io, fd);
  if (size <= 0)
    fail("segment without a size", (long)size, 0);
  uint32_t offset;
  memcpy(&offset, e + 1, 4);
  offset %= (uint32_t)size;

  bool changed = false;
  if (e[0] & 0x80) {
    /* Zero a sector, as a write that did not reach the disk leaves it. */
    static uint8_t sector[SECTOR_SIZE];
    static const uint8_t zeros[SECTOR_SIZE];
    uint64_t start = offset - offset % SECTOR_SIZE;
    ssize_t n = io->ops->pread(io, fd, sector, SECTOR_SIZE, start);
    changed = n > 0 && memcmp(sector, zeros, (size_t)n) != 0;
    if (n > 0 && io->ops->pwrite(io, fd, zeros, (size_t)n, start) != n)
      fail("zeroing a sector failed", (long)start, 0);
  } else if (e[5] != 0) {
    uint8_t b;
    if (io->ops->pread(io, fd, &b, 1, offset) != 1)
      fail("reading a byte to edit failed", offset, 0);
    b ^= e[5];
    if (io->ops->pwrite(io, fd, &b, 1, offset) != 1)
      fail("writing an edited byte failed", offset, 0);
    changed = true;
  }
  if (io->ops->fdatasync(io, fd) != 0)
    fail("fdatasync of an edit failed", 0, 0);
  io->ops->close(io, fd);
  return changed;
}

/* Reopens the store and checks what recovery made of the journal. */
static void check_recovery(struct io_backend *io, uint32_t count, uint32_t size_base,
                           const bool *deleted, bool edited)
{
  struct store_config c = stream_config(io);
  struct store *st = NULL;
  struct store_error err;
  memset(&err, 0, sizeof err);
  int rc = store_open(&c, &st, &err);
  if (rc == -EUCLEAN) {
    if (!edited)
      fail("an intact journal was reported damaged", 0, 0);
    if (strstr(err.message, ".seg") == NULL)
      fail("damage reported without the segment file", 0, 0);
    return;
  }
  if (rc != 0)
    fail("store_open failed with neither 0 nor -EUCLEAN", rc, 0);

  struct store_state s;
  store_state(st, &s);
  if (s.last_seq > count)
    fail("recovered sequences beyond those appended", (long)s.last_seq, count);
  struct store_msg m = {0};
  static uint8_t expect[PAYLOAD_MAX];
  for (uint64_t seq = 1; seq <= count; seq++) {
    rc = store_read(st, seq, &m);
    if (rc == -ENOENT) {
      if (!edited && !deleted[seq])
        fail("a message of an intact journal is missing", (long)seq, 0);
      continue;
    }
    if (rc != 0)
      fail("a recovered message does not read back", (long)seq, rc);
    if (deleted[seq] && !edited)
      fail("a deleted message came back from an intact journal", (long)seq, 0);
    uint32_t len = make_payload(seq, size_base, expect);
    char subject[32];
    make_subject(seq, subject, sizeof subject);
    if (m.seq != seq || m.data_len != len || memcmp(m.data, expect, len) != 0)
      fail("a recovered message differs from the one appended", (long)seq, m.data_len);
    if (m.subject_len != strlen(subject) || memcmp(m.subject, subject, m.subject_len) != 0)
      fail("a recovered subject differs from the one appended", (long)seq, m.subject_len);
  }
  store_msg_free(&m);

  uint64_t seq = 0;
  rc = store_append(st, "after", 5, NULL, 0, "x", 1, 0, NULL, NULL, &seq);
  if (rc != 0 || seq != s.last_seq + 1)
    fail("the recovered store does not take an append", rc, (long)seq);
  drain(st, io);
  if (store_close(st) != 0)
    fail("close after recovery failed", 0, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  /* Recovery logs each truncated tail and each damage it finds. */
  log_setup(false, false, false, "/dev/null");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 3)
    return 0;
  unsigned flags = data[0];
  uint32_t count = 1 + data[1] % MSGS_MAX;
  uint32_t size_base = data[2];
  bool deleted[MSGS_MAX + 1] = {false};

  struct io_fault_config fc = {.seed = 1};
  struct io_backend *io = io_fault_create(&fc);
  if (io == NULL)
    abort();
  write_journal(io, flags, count, size_base, deleted);

  struct name_list segs = {.count = 0};
  if (io->ops->list_dir(io, STREAM_DIR, on_name, &segs) != 0 || segs.count == 0)
    fail("no segment file after writing", segs.count, 0);
  qsort(segs.names, (size_t)segs.count, sizeof segs.names[0], compare_names);

  bool edited = false;
  const uint8_t *e = data + 3;
  for (int i = 0; i < EDITS_MAX && e + 6 <= data + size; i++, e += 6)
    edited |= apply_edit(io, &segs, e);

  check_recovery(io, count, size_base, deleted, edited);
  io_destroy(io);
  return 0;
}
