/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the file store on a real file system with O_DIRECT, through the
 * plain backend and through io_uring, and of the rejection of tmpfs. In the
 * kill -9 test a child process appends as fast as it can and is killed at
 * seeded random moments. Every message it reported durable must then be
 * back, with its content. Files go under /var/tmp, or the
 * working directory when /var/tmp is tmpfs. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <liburing.h>

#include "core/log.h"
#include "tests/unit/store/store_helpers.h"

#define KILL_ROUNDS 4
#define CHILD_APPENDS_MAX 200000

static char test_dir[512];

static void remove_dir(const char *path)
{
  DIR *d = opendir(path);
  if (d == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(path);
}

static bool on_tmpfs(const char *path)
{
  struct statfs sfs;
  return statfs(path, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
}

static void setup_dir(void)
{
  log_setup(false, false, false, "/dev/null");
  const char *base = on_tmpfs("/var/tmp") ? "." : "/var/tmp";
  snprintf(test_dir, sizeof(test_dir), "%s/shoal-store-test-%d", base, (int)getpid());
  remove_dir(test_dir);
}

static void teardown_dir(void)
{
  remove_dir(test_dir);
}

/* Payload of a sequence, so any process can check it. */
static uint32_t payload_of(uint64_t seq, uint8_t *out)
{
  uint32_t len = 1 + (uint32_t)(seq * 2654435761u % 1500);
  for (uint32_t i = 0; i < len; i++)
    out[i] = (uint8_t)(seq * 131 + i);
  return len;
}

static struct store_config direct_config(struct io_backend *io)
{
  struct store_config c = helper_config("DIRECT", STORE_FILE, test_dir, io);
  c.segment_size = 256 * 1024;
  c.group_bytes_max = 64 * 1024;
  return c;
}

static void append_reopen_check(struct io_backend *io)
{
  struct store_config c = direct_config(io);
  struct store *st;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "open: %d %s", rc, err.message);

  struct helper_acks acks = {0};
  static uint8_t buf[2048];
  for (uint64_t i = 1; i <= 600; i++) {
    uint32_t len = payload_of(i, buf);
    uint64_t seq;
    rc = store_append(st, "d.x", 3, NULL, 0, buf, len, 0, helper_on_durable, &acks, &seq);
    if (rc == -EAGAIN) {
      helper_drain(st, io);
      rc = store_append(st, "d.x", 3, NULL, 0, buf, len, 0, helper_on_durable, &acks, &seq);
    }
    cr_assert_eq(rc, 0, "append %llu: %d", (unsigned long long)i, rc);
    cr_assert_eq(seq, i);
    if (i % 37 == 0)
      helper_drain(st, io);
  }
  cr_assert_eq(helper_drain(st, io), 0);
  cr_assert_eq(acks.durable, 600);
  cr_assert_eq(acks.failed, 0);
  struct store_state s;
  store_state(st, &s);
  cr_assert_gt(s.segments, 1, "600 messages of about 750 bytes fill a 256 KiB segment");
  cr_assert_eq(store_close(st), 0);

  rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "reopen: %d %s", rc, err.message);
  store_state(st, &s);
  cr_assert_eq(s.msgs, 600);
  struct store_msg m = {0};
  for (uint64_t i = 1; i <= 600; i++) {
    cr_assert_eq(store_read(st, i, &m), 0);
    uint32_t len = payload_of(i, buf);
    cr_assert_eq(m.data_len, len);
    cr_assert(memcmp(m.data, buf, len) == 0, "seq %llu content", (unsigned long long)i);
  }
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  free(acks.res);
}

Test(store_direct, sync_backend, .init = setup_dir, .fini = teardown_dir, .timeout = 30)
{
  struct io_backend *io = io_sync_create();
  append_reopen_check(io);
  io_destroy(io);
}

Test(store_direct, uring_backend, .init = setup_dir, .fini = teardown_dir, .timeout = 30)
{
  int err = 0;
  struct io_backend *io = io_uring_backend_create(NULL, &err);
  if (io == NULL)
    cr_skip_test("io_uring is not available: %s", strerror(-err));
  append_reopen_check(io);
  io_destroy(io);
}

Test(store_direct, uring_tag_scheme)
{
  int err = 0;
  struct io_backend *io = io_uring_backend_create(NULL, &err);
  if (io == NULL)
    cr_skip_test("io_uring is not available: %s", strerror(-err));
  cr_assert(storage_uring_owns(STORAGE_URING_TAG << STORAGE_URING_TAG_SHIFT | 0x1234));
  cr_assert(!storage_uring_owns(0x1234));
  cr_assert(!storage_uring_owns(0x54ull << STORAGE_URING_TAG_SHIFT));
  io_destroy(io);
}

/* A shard owns the ring: it submits, reaps every CQE itself and hands the
 * storage ones over with storage_uring_complete(). */
Test(store_direct, uring_shard_ring, .init = setup_dir, .fini = teardown_dir, .timeout = 30)
{
  struct io_uring ring;
  if (io_uring_queue_init(32, &ring, 0) < 0)
    cr_skip_test("io_uring is not available");
  struct io_backend *io = io_uring_backend_create(&ring, NULL);
  cr_assert_not_null(io);
  struct store_config c = direct_config(io);
  struct store *st;
  cr_assert_eq(store_open(&c, &st, NULL), 0);

  struct helper_acks acks = {0};
  uint64_t seq;
  for (int i = 0; i < 10; i++)
    cr_assert_eq(store_append(st, "s", 1, NULL, 0, "v", 1, 0, helper_on_durable, &acks, &seq), 0);
  cr_assert_eq(store_flush(st), 0);
  cr_assert_eq(io_inflight(io), 2, "one write linked to one fdatasync");

  /* The shard loop: submit, wait, dispatch by tag, then run callbacks. */
  for (int round = 0; round < 100 && io_inflight(io) > 0; round++) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      cr_assert(storage_uring_complete(cqe));
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
    io_poll(io, false);
  }
  cr_assert_eq(acks.durable, 10);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
  io_uring_queue_exit(&ring);
  free(acks.res);
}

Test(store_direct, tmpfs_rejected, .init = setup_dir)
{
  if (!on_tmpfs("/dev/shm"))
    cr_skip_test("/dev/shm is not tmpfs here");
  char dir[256];
  snprintf(dir, sizeof(dir), "/dev/shm/shoal-store-test-%d", (int)getpid());
  struct io_backend *io = io_sync_create();
  struct store_config c = helper_config("TMP", STORE_FILE, dir, io);
  struct store *st = NULL;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, -EOPNOTSUPP);
  cr_assert(strstr(err.message, "tmpfs") != NULL, "message: %s", err.message);
  cr_assert(strstr(err.message, dir) != NULL, "message names the directory: %s", err.message);
  remove_dir(dir);
  io_destroy(io);
}

/* Flips one payload byte of the record whose subject is marker, in
 * whichever segment file holds it. Returns true when found. */
static bool flip_record_byte(const char *marker)
{
  DIR *d = opendir(test_dir);
  cr_assert_not_null(d);
  bool flipped = false;
  struct dirent *de;
  while (!flipped && (de = readdir(d)) != NULL) {
    if (strstr(de->d_name, ".seg") == NULL)
      continue;
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", test_dir, de->d_name);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    static uint8_t file[1 << 20];
    ssize_t n = pread(fd, file, sizeof(file), 0);
    cr_assert_gt(n, 0);
    uint8_t *at = memmem(file, (size_t)n, marker, strlen(marker));
    if (at != NULL) {
      /* The payload follows the subject; 10 bytes into it. */
      off_t pos = (at - file) + (off_t)strlen(marker) + 10;
      uint8_t byte = file[pos] ^ 0x20;
      cr_assert_eq(pwrite(fd, &byte, 1, pos), 1);
      cr_assert_eq(fsync(fd), 0);
      flipped = true;
    }
    close(fd);
  }
  closedir(d);
  return flipped;
}

/* A record damaged on disk after the store opened fails its checksum when
 * read, also when the read-ahead window brings it in with its neighbours,
 * which still read back intact. */
Test(store_direct, damaged_record_fails_read, .init = setup_dir, .fini = teardown_dir, .timeout = 30)
{
  struct io_backend *io = io_sync_create();
  struct store_config c = direct_config(io);
  struct store *st;
  cr_assert_eq(store_open(&c, &st, NULL), 0);
  static uint8_t buf[2048];
  for (uint64_t i = 1; i <= 600; i++) {
    uint32_t len = payload_of(i, buf);
    const char *subject = i == 300 ? "d.marker" : "d.x";
    uint64_t seq;
    int rc = store_append(st, subject, strlen(subject), NULL, 0, buf, len, 0, NULL, NULL, &seq);
    if (rc == -EAGAIN) {
      helper_drain(st, io);
      rc = store_append(st, subject, strlen(subject), NULL, 0, buf, len, 0, NULL, NULL, &seq);
    }
    cr_assert_eq(rc, 0);
  }
  cr_assert_eq(helper_drain(st, io), 0);
  cr_assert_eq(store_close(st), 0);

  struct store_error err;
  int rc = store_open(&c, &st, &err);
  cr_assert_eq(rc, 0, "reopen: %d %s", rc, err.message);
  cr_assert(flip_record_byte("d.marker"), "record 300 not found in the segment files");

  struct store_msg m = {0};
  for (uint64_t seq = 290; seq <= 310; seq++) {
    rc = store_read(st, seq, &m);
    if (seq == 300) {
      cr_assert_eq(rc, -EBADMSG, "the damaged record read back with %d", rc);
      continue;
    }
    cr_assert_eq(rc, 0, "seq %llu next to the damaged record: %d", (unsigned long long)seq, rc);
    uint32_t len = payload_of(seq, buf);
    cr_assert_eq(m.data_len, len);
    cr_assert(memcmp(m.data, buf, len) == 0, "seq %llu content", (unsigned long long)seq);
  }
  store_msg_free(&m);
  cr_assert_eq(store_close(st), 0);
  io_destroy(io);
}

/* The child: appends until killed or CHILD_APPENDS_MAX, writing each
 * durable sequence to fd. */
static void child_on_durable(void *ctx, uint64_t seq, int res)
{
  int fd = *(int *)ctx;
  if (res == 0 && write(fd, &seq, sizeof(seq)) != sizeof(seq))
    _exit(3);
}

static void child_run(int fd)
{
  struct io_backend *io = io_sync_create();
  struct store_config c = direct_config(io);
  struct store *st;
  if (store_open(&c, &st, NULL) != 0)
    _exit(2);
  static uint8_t buf[2048];
  struct store_state s;
  store_state(st, &s);
  for (int i = 0; i < CHILD_APPENDS_MAX; i++) {
    uint64_t seq = s.last_seq + 1;
    uint32_t len = payload_of(seq, buf);
    int rc = store_append(st, "k.x", 3, NULL, 0, buf, len, 0, child_on_durable, &fd, &seq);
    if (rc == 0)
      s.last_seq = seq;
    else if (rc != -EAGAIN)
      _exit(4);
    if (i % 8 == 0 || rc == -EAGAIN) {
      store_flush(st);
      io_poll(io, false);
    }
  }
  helper_drain(st, io);
  _exit(0);
}

Test(store_direct, kill9_keeps_acknowledged, .init = setup_dir, .fini = teardown_dir, .timeout = 60)
{
  uint64_t rng = 20261204;
  static bool acked[CHILD_APPENDS_MAX * KILL_ROUNDS + 1];
  uint64_t acked_max = 0, acked_total = 0;

  for (int round = 0; round < KILL_ROUNDS; round++) {
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
      close(pipefd[0]);
      child_run(pipefd[1]);
    }
    close(pipefd[1]);

    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    struct timespec delay = {0, (long)(30 + (rng >> 33) % 250) * 1000000};
    nanosleep(&delay, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);

    /* Sequences the child reported durable before it died. */
    uint64_t seq;
    while (read(pipefd[0], &seq, sizeof(seq)) == sizeof(seq)) {
      cr_assert_leq(seq, CHILD_APPENDS_MAX * KILL_ROUNDS);
      acked[seq] = true;
      acked_total++;
      if (seq > acked_max)
        acked_max = seq;
    }
    close(pipefd[0]);

    struct io_backend *io = io_sync_create();
    struct store_config c = direct_config(io);
    struct store *st;
    struct store_error err;
    int rc = store_open(&c, &st, &err);
    cr_assert_eq(rc, 0, "round %d: reopen after kill -9: %d %s", round, rc, err.message);
    struct store_msg m = {0};
    static uint8_t buf[2048];
    for (uint64_t s = 1; s <= acked_max; s++) {
      if (!acked[s])
        continue;
      rc = store_read(st, s, &m);
      cr_assert_eq(rc, 0, "round %d: acknowledged seq %llu missing: %d", round,
                   (unsigned long long)s, rc);
      uint32_t len = payload_of(s, buf);
      cr_assert_eq(m.data_len, len);
      cr_assert(memcmp(m.data, buf, len) == 0, "round %d: seq %llu content", round,
                (unsigned long long)s);
    }
    store_msg_free(&m);
    cr_assert_eq(store_close(st), 0);
    io_destroy(io);
  }
  cr_log_info("kill -9 rounds: %llu acknowledged messages checked", (unsigned long long)acked_total);
  cr_assert_gt(acked_total, 0, "the child acknowledged nothing before the kills");
}
