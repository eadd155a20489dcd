/* SPDX-License-Identifier: Apache-2.0 */
/* The power-cut test of the file store. A writer process appends to a store
 * on ext4 on a loop device and reports each durable message. At a random
 * moment the test copies the loop device's backing file, and the copy is
 * taken as what the disk contained at a power cut. As after a power cut,
 * the copy is repaired with e2fsck -p, checked with e2fsck -f -n, mounted
 * read-write and recovered with store_open(). Under the default sync
 * policy every message acknowledged before the copy began must be there,
 * with its content and valid checksums. With --relaxed the writer uses the
 * relaxed policy, and the acknowledged messages missing from the copy must
 * stay within that policy's bound on lost bytes.
 *
 * Method: the writer sends each durable sequence to the parent over a pipe,
 * so the record of acknowledgements lives outside the file system under
 * test. The parent drains the pipe, stops the writer with SIGSTOP and
 * copies at once, so only sequences read before the copy count as
 * acknowledged before it. The writer's requests in flight (an io_uring
 * write and fdatasync, or the syscall it is in) keep running during the
 * copy, so the copy may catch them in part, as a power cut would. Each
 * round then kills the writer with SIGKILL, and the next round's writer
 * recovers the original file system and continues the same stream. Rounds
 * alternate between the plain and the io_uring backend.
 *
 * NOTE: a file copy approximates a power cut but does not reproduce one.
 * The loop driver writes to the backing file through the host's page
 * cache, so the copy sees every write the loop device completed, as a disk
 * with a write-through cache holds at a power cut. But the copy is not
 * atomic. It takes 20 to 250 ms, and blocks read early can be older than
 * blocks read late, a mix no real disk shows. In trials with the writer
 * running through the copy (--running), recovery reported false corruption
 * in 2 of about 100 rounds, because the copy held ext4 metadata of writes
 * whose data blocks it had read before they were written. Stopping the
 * writer leaves only its requests in flight and ext4's own background
 * writes to overlap the copy. A device-mapper snapshot would be atomic,
 * but the test kernel may lack device-mapper.
 *
 * Needs root, /dev/loop-control, losetup, mkfs.ext4, e2fsck, mount and
 * umount. Without them the test prints the reason and exits with 77, which
 * ctest reports as skipped. Files go in a new directory under /var/tmp
 * (TMPDIR overrides it), which must not be tmpfs.
 *
 * Usage: test_power_cut [--relaxed] [--running] [rounds [seed]]. Defaults:
 * 6 rounds, and a seed from the clock, printed so that a run's delays and
 * backends can be replayed (the timing of the writer cannot). */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "storage/record.h"
#include "storage/store.h"

#define SKIP_EXIT 77
#define ROUNDS_DEFAULT 6
#define ROUNDS_MAX 100
/* Rounds start only while the run is younger than this, so the test ends
 * within ctest's timeout on a slow disk. */
#define RUN_SECONDS_MAX 40
#define FS_SIZE (512ull << 20)
#define FS_JOURNAL_MIB "64"
#define SEGMENT_SIZE (4u << 20)
/* Writer bounds; the parent kills the writer long before either. */
#define WRITER_APPENDS_MAX 4000000u
#define WRITER_SECONDS_MAX 20
/* A tool that runs longer than this is killed and the round fails. */
#define TOOL_SECONDS_MAX 60
#define PAYLOAD_MAX (40u << 10)
#define GROUP_BYTES (256u << 10)
/* Relaxed policy: a power cut may lose this many bytes of acknowledged
 * messages plus one write group (store.h). */
#define RELAXED_SYNC_BYTES (1u << 20)
/* The test starts over on a new file system once the stream and the
 * journal's used part take this much. */
#define FS_GROWTH_MAX (64ull << 20)
#define COPY_CHUNK (1u << 20)
#define STREAM "POWERCUT"
/* Most reads of the acknowledgement pipe per drain, 4 KiB each. */
#define ACK_READS_MAX 4096

struct paths {
  char work[256];          /* the test's directory */
  char image[320];         /* the loop device's backing file */
  char copy[320];          /* the copy taken at the power cut */
  char mnt[320];           /* where the loop device is mounted */
  char copy_mnt[320];      /* where the copy is mounted */
  char log[320];           /* output of the tools */
  uint64_t fs_used_base;   /* bytes used on a new file system */
  bool mnt_mounted;
  bool copy_mounted;
};

static struct paths paths;
/* The running writer, killed by cleanup() when a check fails; 0 if none. */
static pid_t writer_pid;
/* --relaxed: the writer uses STORE_SYNC_RELAXED, and the test checks its
 * bound on acknowledged bytes lost instead of requiring no loss. */
static bool relaxed_policy;
/* --running: the writer keeps running during the copy instead of being
 * stopped, which lets the copy mix old and new blocks (see the file
 * comment). */
static bool copy_running;

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *state)
{
  /* splitmix64 */
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The payload and subject of a sequence, so that the parent can check
 * any message without receiving its content. Every 50th message is
 * large, so groups and segments fill at different points. */
static uint32_t payload_of(uint64_t seq, uint8_t *out)
{
  uint32_t len = seq % 50 == 0 ? PAYLOAD_MAX : 1 + (uint32_t)(seq * 2654435761u % 2048);
  for (uint32_t i = 0; i < len; i++)
    out[i] = (uint8_t)(seq * 131 + i * 7);
  return len;
}

static size_t subject_of(uint64_t seq, char *out, size_t size)
{
  return (size_t)snprintf(out, size, "fleet.robot%u.state", (unsigned)(seq % 13));
}

/* Tools */

/* Runs argv with its output appended to the log file. Returns its exit
 * status, or -1 when it could not start, died of a signal or ran longer
 * than TOOL_SECONDS_MAX (it is then killed). */
static int run_tool(const char *const argv[])
{
  FILE *log = fopen(paths.log, "a");
  if (log != NULL) {
    fprintf(log, "$");
    for (int i = 0; argv[i] != NULL; i++)
      fprintf(log, " %s", argv[i]);
    fprintf(log, "\n");
    fclose(log);
  }

  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(paths.log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }

  int status;
  int64_t deadline = now_ns() + TOOL_SECONDS_MAX * 1000000000ll;
  /* Bounded by the deadline: 10 ms per poll. */
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_ns() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fprintf(stderr, "%s timed out after %d s and was killed\n", argv[0], TOOL_SECONDS_MAX);
      return -1;
    }
    usleep(10000);
  }
  if (!WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

/* Prints the tool log to stderr, after a failure. */
static void dump_log(void)
{
  FILE *log = fopen(paths.log, "r");
  if (log == NULL)
    return;
  char line[512];
  fprintf(stderr, "---- tool output (%s) ----\n", paths.log);
  while (fgets(line, sizeof(line), log) != NULL)
    fputs(line, stderr);
  fprintf(stderr, "---- end of tool output ----\n");
  fclose(log);
}

/* Unmounts dir. A failed test may still hold files open there, so a
 * plain umount that fails is followed by a lazy one, which detaches the
 * mount at once and frees the loop device when this process exits. */
static bool unmount(const char *dir)
{
  const char *plain[] = {"umount", dir, NULL};
  if (run_tool(plain) == 0)
    return true;
  const char *lazy[] = {"umount", "-l", dir, NULL};
  return run_tool(lazy) == 0;
}

static void cleanup(void)
{
  if (writer_pid > 0) {
    kill(writer_pid, SIGKILL);
    waitpid(writer_pid, NULL, 0);
    writer_pid = 0;
  }
  if (paths.copy_mounted && unmount(paths.copy_mnt))
    paths.copy_mounted = false;
  if (paths.mnt_mounted && unmount(paths.mnt))
    paths.mnt_mounted = false;
  if (paths.mnt_mounted || paths.copy_mounted) {
    fprintf(stderr, "could not unmount %s or %s; remove %s by hand\n", paths.mnt, paths.copy_mnt,
            paths.work);
    return;
  }
  unlink(paths.image);
  unlink(paths.copy);
  unlink(paths.log);
  rmdir(paths.mnt);
  rmdir(paths.copy_mnt);
  rmdir(paths.work);
}

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  dump_log();
  cleanup();
  exit(1);
}

__attribute__((format(printf, 1, 2), noreturn))
static void skip(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("SKIP: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  dump_log();
  cleanup();
  exit(SKIP_EXIT);
}

/* Setup: backing file, ext4, loop mount */

/* Mounts image read-write on dir through a loop device that mount sets up
 * and that umount detaches again (mount's autoclear). Returns the exit
 * status of mount. */
static int mount_loop(const char *image, const char *dir)
{
  const char *argv[] = {"mount", "-t", "ext4", "-o", "loop", image, dir, NULL};
  return run_tool(argv);
}

static uint64_t fs_used_bytes(void)
{
  struct statvfs sv;
  if (statvfs(paths.mnt, &sv) != 0)
    fail("statvfs %s: %s", paths.mnt, strerror(errno));
  return (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
}

/* Makes a new file system on a new sparse backing file and mounts it.
 * A fresh file keeps stale data of earlier rounds out of the blocks the
 * store preallocates. On the first call a failure to attach or mount is a
 * skip, because it means this machine does not allow loop devices. */
static void fs_create(bool first)
{
  int fd = open(paths.image, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0 || ftruncate(fd, (off_t)FS_SIZE) != 0)
    fail("cannot create the sparse file %s: %s", paths.image, strerror(errno));
  close(fd);

  /* Inode tables are written now, so no lazy-init thread writes to the
   * device during the rounds. The journal is left unwritten, so copies
   * take only its used part. It is large, so the copy finishes long
   * before the journal wraps. */
  const char *mkfs[] = {"mkfs.ext4", "-q", "-F", "-J", "size=" FS_JOURNAL_MIB, "-E",
                        "lazy_itable_init=0,lazy_journal_init=1", paths.image, NULL};
  int rc = run_tool(mkfs);
  if (first && (rc == 127 || rc == -1))
    skip("mkfs.ext4 is missing or failed to run (Debian package e2fsprogs)");
  if (rc != 0)
    fail("mkfs.ext4 %s exited with %d", paths.image, rc);

  if (first) {
    const char *find[] = {"losetup", "--find", NULL};
    rc = run_tool(find);
    if (rc != 0)
      skip("no free loop device: losetup --find exited with %d", rc);
  }
  rc = mount_loop(paths.image, paths.mnt);
  if (first && rc != 0)
    skip("cannot loop-mount %s: mount exited with %d", paths.image, rc);
  if (rc != 0)
    fail("cannot loop-mount %s: mount exited with %d", paths.image, rc);
  paths.mnt_mounted = true;
  paths.fs_used_base = fs_used_bytes();
}

static void fs_destroy(void)
{
  const char *umount[] = {"umount", paths.mnt, NULL};
  if (run_tool(umount) != 0)
    fail("umount %s failed", paths.mnt);
  paths.mnt_mounted = false;
  if (unlink(paths.image) != 0)
    fail("unlink %s: %s", paths.image, strerror(errno));
}

static void setup(void)
{
  if (geteuid() != 0)
    skip("needs root to attach loop devices and mount file systems");
  if (access("/dev/loop-control", R_OK | W_OK) != 0)
    skip("loop devices are unavailable: /dev/loop-control: %s", strerror(errno));

  /* The tools live in /usr/sbin, which a non-login PATH may lack. */
  const char *path = getenv("PATH");
  char new_path[4096];
  snprintf(new_path, sizeof(new_path), "%s:/usr/sbin:/sbin", path != NULL ? path : "/usr/bin:/bin");
  setenv("PATH", new_path, 1);

  const char *base = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/var/tmp";
  struct statfs sfs;
  if (statfs(base, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC)
    skip("%s is tmpfs, but the backing file must be on a disk; set TMPDIR", base);
  snprintf(paths.work, sizeof(paths.work), "%s/shoal-power-cut-XXXXXX", base);
  if (mkdtemp(paths.work) == NULL)
    fail("cannot create a directory in %s: %s", base, strerror(errno));
  snprintf(paths.image, sizeof(paths.image), "%s/disk.img", paths.work);
  snprintf(paths.copy, sizeof(paths.copy), "%s/copy.img", paths.work);
  snprintf(paths.mnt, sizeof(paths.mnt), "%s/mnt", paths.work);
  snprintf(paths.copy_mnt, sizeof(paths.copy_mnt), "%s/copy-mnt", paths.work);
  snprintf(paths.log, sizeof(paths.log), "%s/tools.log", paths.work);
  if (mkdir(paths.mnt, 0755) != 0 || mkdir(paths.copy_mnt, 0755) != 0)
    fail("cannot create mount points in %s: %s", paths.work, strerror(errno));

  fs_create(true);
}

/* The writer */

struct writer {
  int ack_fd;
  uint64_t last_seq;       /* newest sequence appended */
};

static void writer_on_durable(void *ctx, uint64_t seq, int res)
{
  struct writer *w = ctx;
  /* A failed append frees its sequence for reuse, and the writer's
   * sequence prediction would go wrong: stop with a status of our own. */
  if (res != 0)
    _exit(5);
  if (write(w->ack_fd, &seq, sizeof(seq)) != sizeof(seq))
    _exit(6);
}

static struct io_backend *backend_create(bool uring)
{
  if (!uring)
    return io_sync_create();
  int err = 0;
  struct io_backend *io = io_uring_backend_create(NULL, &err);
  return io != NULL ? io : io_sync_create();
}

static struct store_config stream_config(const char *mnt, struct io_backend *io, char *dir,
                                         size_t dir_size)
{
  snprintf(dir, dir_size, "%s/" STREAM, mnt);
  struct store_config c;
  memset(&c, 0, sizeof(c));
  c.name = STREAM;
  c.kind = STORE_FILE;
  c.dir = dir;
  c.io = io;
  c.sync = relaxed_policy ? STORE_SYNC_RELAXED : STORE_SYNC_ALWAYS;
  c.sync_bytes_max = RELAXED_SYNC_BYTES;
  c.segment_size = SEGMENT_SIZE;
  c.group_bytes_max = GROUP_BYTES;
  return c;
}

/* Appends in batches of a seeded random size, flushing after each batch
 * as a shard does once per loop iteration, until killed or a bound. Exit
 * statuses other than death by SIGKILL tell the parent what failed. */
static void writer_run(int ack_fd, bool uring, uint64_t seed)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct io_backend *io = backend_create(uring);
  char dir[512];
  struct store_config c = stream_config(paths.mnt, io, dir, sizeof(dir));
  struct store *st;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  if (rc != 0) {
    fprintf(stderr, "writer: store_open: %d %s\n", rc, err.message);
    _exit(2);
  }

  struct writer w = {.ack_fd = ack_fd};
  struct store_state s;
  store_state(st, &s);
  w.last_seq = s.last_seq;
  static uint8_t buf[PAYLOAD_MAX];
  int64_t deadline = now_ns() + WRITER_SECONDS_MAX * 1000000000ll;
  uint32_t batch = 1;

  for (uint32_t i = 0; i < WRITER_APPENDS_MAX && now_ns() < deadline; i++) {
    uint64_t seq = w.last_seq + 1;
    char subject[64];
    size_t subject_len = subject_of(seq, subject, sizeof(subject));
    uint32_t len = payload_of(seq, buf);
    rc = store_append(st, subject, subject_len, NULL, 0, buf, len, 0, writer_on_durable, &w, &seq);
    if (rc != 0 && rc != -EAGAIN)
      _exit(4);
    if (rc == 0) {
      if (seq != w.last_seq + 1)
        _exit(7);
      w.last_seq = seq;
    }

    if (rc == -EAGAIN || --batch == 0) {
      if (store_flush(st) != 0)
        _exit(8);
      io_flush(io);
      io_poll(io, rc == -EAGAIN && io_inflight(io) > 0);
      batch = 1 + (uint32_t)(rng_next(&seed) % 64);
    }
  }
  _exit(9);
}

/* Acknowledged sequences, read from the writer's pipe */

struct acks {
  uint8_t *seen;           /* by sequence: 1 acknowledged before the copy */
  uint64_t cap;
  uint64_t before_max;     /* newest acknowledged before a copy, this stream */
  uint64_t before_total;   /* acknowledged before a copy, all rounds */
  uint64_t before_count;   /* this round: acknowledged before the copy */
  uint64_t during_count;   /* this round: acknowledged after the copy began */
};

static void acks_mark(struct acks *a, uint64_t seq)
{
  if (seq >= a->cap) {
    uint64_t cap = a->cap ? a->cap : 1 << 16;
    while (cap <= seq)
      cap *= 2;
    a->seen = realloc(a->seen, cap);
    if (a->seen == NULL)
      fail("out of memory for %llu sequences", (unsigned long long)cap);
    memset(a->seen + a->cap, 0, cap - a->cap);
    a->cap = cap;
  }
  a->seen[seq] = 1;
  a->before_count++;
  a->before_total++;
  if (seq > a->before_max)
    a->before_max = seq;
}

/* Reads the sequences waiting in the pipe. Returns the sequences read, or -1 at end
 * of file. */
static long acks_read(int fd, struct acks *a, bool before_copy)
{
  uint64_t seqs[512];
  _Static_assert(sizeof(seqs) == 4096, "one read drains 4 KiB");
  long total = 0;
  /* Bounded by ACK_READS_MAX, because a running writer can refill the
   * pipe as fast as it is read. */
  for (int r = 0; r < ACK_READS_MAX; r++) {
    ssize_t n = read(fd, seqs, sizeof(seqs));
    if (n == 0)
      return total > 0 ? total : -1;
    if (n < 0)
      return total;
    if (n % sizeof(uint64_t) != 0)
      fail("the writer's pipe delivered %zd bytes, not whole sequences", n);
    for (ssize_t i = 0; i < n / (ssize_t)sizeof(uint64_t); i++) {
      if (before_copy)
        acks_mark(a, seqs[i]);
      else
        a->during_count++;
    }
    total += n / (long)sizeof(uint64_t);
  }
  return total;
}

/* The copy */

/* Copies the data extents of from into a new sparse file to, reading in
 * offset order with SEEK_DATA and SEEK_HOLE so the copy takes as little
 * time as the data allows. Sets *bytes to the bytes copied. */
static void copy_sparse(const char *from, const char *to, uint64_t *bytes)
{
  int in = open(from, O_RDONLY);
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0)
    fail("cannot open %s or %s for the copy: %s", from, to, strerror(errno));
  off_t size = lseek(in, 0, SEEK_END);
  if (size < 0 || ftruncate(out, size) != 0)
    fail("cannot size the copy %s: %s", to, strerror(errno));

  static uint8_t buf[COPY_CHUNK];
  *bytes = 0;
  off_t pos = 0;
  /* Bounded by the file size: each pass moves pos forward. */
  while (pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0)
      break;                               /* ENXIO: no data past pos */
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0)
      fail("SEEK_HOLE on %s: %s", from, strerror(errno));
    for (off_t off = data; off < hole;) {
      size_t want = (size_t)(hole - off) < sizeof(buf) ? (size_t)(hole - off) : sizeof(buf);
      ssize_t n = pread(in, buf, want, off);
      if (n <= 0)
        fail("reading %s at %lld: %s", from, (long long)off, n < 0 ? strerror(errno) : "end of file");
      if (pwrite(out, buf, (size_t)n, off) != n)
        fail("writing %s at %lld: %s", to, (long long)off, strerror(errno));
      off += n;
      *bytes += (uint64_t)n;
    }
    pos = hole;
  }
  if (fsync(out) != 0)
    fail("fsync of %s: %s", to, strerror(errno));
  close(in);
  close(out);
}

/* Checking the copy */

struct round_result {
  int fsck_preen;          /* e2fsck -p exit status */
  uint64_t msgs;           /* messages recovered */
  uint64_t last_seq;
  uint64_t lost_msgs;      /* acknowledged before the copy, and missing */
  uint64_t lost_bytes;     /* their journal record sizes */
};

/* Repairs the copy as a boot after a power cut would (e2fsck -p replays
 * the journal and fixes what is safe), then requires a clean forced check.
 * e2fsck -p exits with 0 (clean) or 1 (fixed); 4 and above leave errors. */
static int fsck_copy(int round)
{
  const char *preen[] = {"e2fsck", "-p", paths.copy, NULL};
  int preen_rc = run_tool(preen);
  if (preen_rc < 0 || preen_rc >= 4)
    fail("round %d: e2fsck -p on the copy exited with %d: the file system was left damaged",
         round, preen_rc);
  const char *check[] = {"e2fsck", "-f", "-n", paths.copy, NULL};
  int check_rc = run_tool(check);
  if (check_rc != 0)
    fail("round %d: e2fsck -f -n after e2fsck -p exited with %d, not 0", round, check_rc);
  return preen_rc;
}

static uint64_t message_bytes(uint64_t seq)
{
  static uint8_t buf[PAYLOAD_MAX];
  char subject[64];
  return record_size(subject_of(seq, subject, sizeof(subject)), 0, payload_of(seq, buf));
}

/* Counts the acknowledged messages past the recovered end. The default
 * policy must lose none of them. The relaxed policy may lose up to
 * RELAXED_SYNC_BYTES plus one write group of them. */
static void check_lost(int round, const struct acks *a, struct round_result *res)
{
  for (uint64_t seq = res->last_seq + 1; seq <= a->before_max; seq++) {
    if (seq < a->cap && a->seen[seq]) {
      res->lost_msgs++;
      res->lost_bytes += message_bytes(seq);
    }
  }
  if (!relaxed_policy && res->lost_msgs > 0)
    fail("round %d: the store ends at seq %llu, but %llu messages up to seq %llu were "
         "acknowledged before the copy", round, (unsigned long long)res->last_seq,
         (unsigned long long)res->lost_msgs, (unsigned long long)a->before_max);
  if (relaxed_policy && res->lost_bytes > RELAXED_SYNC_BYTES + GROUP_BYTES)
    fail("round %d: the relaxed policy lost %llu acknowledged messages of %llu bytes, more "
         "than its bound of %u bytes", round, (unsigned long long)res->lost_msgs,
         (unsigned long long)res->lost_bytes, RELAXED_SYNC_BYTES + GROUP_BYTES);
}

/* Checks every message of the recovered store. The writer never removes a
 * message, so sequences 1 to the last one must all be there (invariant J7
 * of storage/record.c), each with its content and a valid checksum, which
 * store_read verifies. */
static void check_messages(int round, struct store *st, const struct acks *a,
                           struct round_result *res)
{
  struct store_state s;
  store_state(st, &s);
  res->msgs = s.msgs;
  res->last_seq = s.last_seq;
  check_lost(round, a, res);
  if (s.msgs != s.last_seq || (s.msgs > 0 && s.first_seq != 1))
    fail("round %d: the store holds %llu messages from seq %llu to %llu, with gaps", round,
         (unsigned long long)s.msgs, (unsigned long long)s.first_seq,
         (unsigned long long)s.last_seq);

  struct store_msg m = {0};
  static uint8_t want[PAYLOAD_MAX];
  for (uint64_t seq = 1; seq <= s.last_seq; seq++) {
    bool acked = seq < a->cap && a->seen[seq];
    int rc = store_read(st, seq, &m);
    if (rc != 0)
      fail("round %d: seq %llu (%s): store_read returned %d", round, (unsigned long long)seq,
           acked ? "acknowledged before the copy" : "not acknowledged before the copy", rc);

    uint32_t len = payload_of(seq, want);
    char subject[64];
    size_t subject_len = subject_of(seq, subject, sizeof(subject));
    if (m.seq != seq || m.data_len != len || memcmp(m.data, want, len) != 0)
      fail("round %d: seq %llu has %u payload bytes that differ from the %u appended", round,
           (unsigned long long)seq, m.data_len, len);
    if (m.subject_len != subject_len || memcmp(m.subject, subject, subject_len) != 0)
      fail("round %d: seq %llu has subject %.*s, not %s", round, (unsigned long long)seq,
           (int)m.subject_len, m.subject, subject);
  }
  store_msg_free(&m);
}

/* Recovers the store from the mounted copy, checks it, and appends one
 * more message to show the recovered journal accepts writes. */
static void recover_copy(int round, const struct acks *a, struct round_result *res)
{
  struct io_backend *io = io_sync_create();
  char dir[512];
  struct store_config c = stream_config(paths.copy_mnt, io, dir, sizeof(dir));
  /* Both policies write the same format. Under the default one, the
   * append below is complete once the store is idle. */
  c.sync = STORE_SYNC_ALWAYS;
  struct store *st;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  if (rc != 0)
    fail("round %d: store_open on the copy returned %d: %s", round, rc, err.message);

  check_messages(round, st, a, res);

  uint64_t seq;
  static uint8_t buf[PAYLOAD_MAX];
  uint32_t len = payload_of(res->last_seq + 1, buf);
  rc = store_append(st, "after.recovery", 14, NULL, 0, buf, len, 0, NULL, NULL, &seq);
  if (rc != 0 || seq != res->last_seq + 1)
    fail("round %d: append after recovery returned %d, seq %llu", round, rc,
         (unsigned long long)seq);
  /* Bounded: one group of one message needs one write and one sync. */
  for (int i = 0; i < 100 && store_busy(st); i++) {
    rc = store_flush(st);
    if (rc != 0)
      fail("round %d: flush after recovery returned %d", round, rc);
    io_poll(io, io_inflight(io) > 0);
  }
  if (store_busy(st))
    fail("round %d: the append after recovery did not complete", round);
  if (store_close(st) != 0)
    fail("round %d: store_close after recovery failed", round);
  io_destroy(io);
}

static void check_copy(int round, const struct acks *a, struct round_result *res)
{
  res->fsck_preen = fsck_copy(round);
  if (mount_loop(paths.copy, paths.copy_mnt) != 0)
    fail("round %d: cannot mount the copy %s after e2fsck", round, paths.copy);
  paths.copy_mounted = true;

  recover_copy(round, a, res);

  const char *umount[] = {"umount", paths.copy_mnt, NULL};
  if (run_tool(umount) != 0)
    fail("round %d: umount %s failed", round, paths.copy_mnt);
  paths.copy_mounted = false;
  unlink(paths.copy);
}

/* Rounds */

static const char *writer_failure(int status)
{
  if (WIFSIGNALED(status))
    return strsignal(WTERMSIG(status));
  switch (WEXITSTATUS(status)) {
  case 2: return "store_open failed on the original file system";
  case 4: return "store_append failed";
  case 5: return "an append failed after store_append accepted it";
  case 6: return "writing to the acknowledgement pipe failed";
  case 7: return "store_append returned an unexpected sequence";
  case 8: return "store_flush failed";
  case 9: return "the writer reached its append or time bound before the copy";
  default: return "unexpected exit status";
  }
}

/* Waits delay_ms while reading acknowledgements, failing if the writer
 * stops on its own. */
static void collect_acks(int round, pid_t pid, int fd, struct acks *a, int64_t delay_ms)
{
  int64_t deadline = now_ns() + delay_ms * 1000000;
  /* Bounded by the deadline. */
  for (int64_t left = delay_ms; left > 0; left = (deadline - now_ns()) / 1000000) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    poll(&pfd, 1, (int)left);
    acks_read(fd, a, true);
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
      fail("round %d: the writer stopped before the copy: %s (status %d)", round,
           writer_failure(status), status);
  }
  acks_read(fd, a, true);
}

/* Starts over on a new file system once the file system grew by
 * FS_GROWTH_MAX, so any number of rounds fits and copies stay short. The
 * next writer starts a new stream at seq 1. */
static void restart_if_full(struct acks *a)
{
  uint64_t growth = fs_used_bytes() - paths.fs_used_base;
  if (growth < FS_GROWTH_MAX)
    return;

  fs_destroy();
  fs_create(false);
  memset(a->seen, 0, a->cap);
  a->before_max = 0;
  printf("the file system grew by %.0f MiB: the test starts over on a new one\n",
         growth / 1048576.0);
}

static void run_round(int round, bool uring, uint64_t *rng, struct acks *a)
{
  /* A failure prints the tool output of its own round only. */
  if (truncate(paths.log, 0) != 0 && errno != ENOENT)
    fail("truncate %s: %s", paths.log, strerror(errno));

  int pipefd[2];
  if (pipe(pipefd) != 0)
    fail("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0)
    fail("fork: %s", strerror(errno));
  uint64_t writer_seed = rng_next(rng);
  if (pid == 0) {
    close(pipefd[0]);
    writer_run(pipefd[1], uring, writer_seed);
  }
  writer_pid = pid;
  close(pipefd[1]);
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);

  /* Let the writer run, then take the copy while it still runs. */
  a->before_count = 0;
  a->during_count = 0;
  int64_t delay_ms = 150 + (int64_t)(rng_next(rng) % 600);
  collect_acks(round, pid, pipefd[0], a, delay_ms);
  /* The writer stops at once, but the requests it submitted and the
   * syscall it may be in keep running during the copy. */
  if (!copy_running)
    kill(pid, SIGSTOP);
  int64_t copy_start = now_ns();
  uint64_t copied;
  copy_sparse(paths.image, paths.copy, &copied);
  int64_t copy_ns = now_ns() - copy_start;

  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  writer_pid = 0;
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    fail("round %d: the writer stopped during the copy: %s (status %d)", round,
         writer_failure(status), status);
  /* The writer is dead, so the pipe ends: bounded by its contents. */
  for (int i = 0; i < 64 && acks_read(pipefd[0], a, false) >= 0; i++)
    ;
  close(pipefd[0]);

  struct round_result res = {0};
  check_copy(round, a, &res);
  printf("round %d: %s backend, copy after %lld ms, %llu acknowledged before the copy "
         "(newest seq %llu), %llu during it; copied %.1f MiB in %.0f ms; e2fsck -p exit %d; "
         "recovered %llu messages, last seq %llu; lost %llu acknowledged (%llu bytes)\n",
         round, uring ? "io_uring" : "plain", (long long)delay_ms,
         (unsigned long long)a->before_count, (unsigned long long)a->before_max,
         (unsigned long long)a->during_count, copied / 1048576.0, copy_ns / 1e6, res.fsck_preen,
         (unsigned long long)res.msgs, (unsigned long long)res.last_seq,
         (unsigned long long)res.lost_msgs, (unsigned long long)res.lost_bytes);
  fflush(stdout);
  restart_if_full(a);
}

int main(int argc, char **argv)
{
  int arg = 1;
  /* Bounded by argc. */
  for (; arg < argc && argv[arg][0] == '-'; arg++) {
    if (strcmp(argv[arg], "--relaxed") == 0)
      relaxed_policy = true;
    else if (strcmp(argv[arg], "--running") == 0)
      copy_running = true;
    else
      break;
  }
  int rounds = arg < argc ? atoi(argv[arg]) : ROUNDS_DEFAULT;
  uint64_t seed = arg + 1 < argc ? strtoull(argv[arg + 1], NULL, 0) : (uint64_t)now_ns();
  if (rounds < 1 || rounds > ROUNDS_MAX) {
    fprintf(stderr, "usage: %s [--relaxed] [--running] [rounds [seed]]: rounds must be 1 to %d\n",
            argv[0], ROUNDS_MAX);
    return 2;
  }
  log_setup(false, false, false, NULL);
  printf("power-cut test: %s sync policy, writer %s during the copy, %d rounds, seed %llu\n",
         relaxed_policy ? "relaxed" : "default", copy_running ? "running" : "stopped", rounds,
         (unsigned long long)seed);
  fflush(stdout);

  int err = 0;
  struct io_backend *probe = io_uring_backend_create(NULL, &err);
  bool have_uring = probe != NULL;
  if (probe != NULL)
    io_destroy(probe);
  else
    printf("io_uring is unavailable (%s): every round uses the plain backend\n", strerror(-err));

  setup();
  struct acks a = {0};
  uint64_t rng = seed;
  int64_t start = now_ns();
  int done = 0;
  for (int r = 0; r < rounds && now_ns() - start < RUN_SECONDS_MAX * 1000000000ll; r++) {
    run_round(r, have_uring && r % 2 == 1, &rng, &a);
    done++;
  }
  if (a.before_total == 0)
    fail("the writer acknowledged no message before any copy");
  cleanup();
  free(a.seen);

  printf("PASS: %d rounds, %llu messages acknowledged before a copy, %s\n", done,
         (unsigned long long)a.before_total,
         relaxed_policy ? "losses within the relaxed policy's bound"
                        : "every one recovered from its copy");
  return 0;
}
