/* SPDX-License-Identifier: Apache-2.0 */
/* shoal-store-bench: the file store's append throughput and recovery time
 * on a real disk, through the same storage/ code the server runs.
 *
 * Append mode: one thread appends messages of one size to a new stream as
 * fast as it can, as a shard loop would under a full input queue. Each
 * loop iteration appends a batch, starts a group commit with store_flush()
 * and reaps completions without waiting. Only when the write buffers are
 * full (-EAGAIN) does it wait for the group in flight. The run reports
 * acknowledged messages per second, payload MB/s, the latency from append
 * to the durability callback, and the writes and syncs the store issued,
 * counted by a wrapper around the I/O backend. bench/store/run.sh gives
 * those write sizes and syncs per write to fio, to measure the device
 * limit for the same pattern.
 *
 * Recovery mode: fills a new stream with --bytes of messages, closes it,
 * and times store_open(), which reads every segment with O_DIRECT and
 * rebuilds the index, then a read of every message in sequence order.
 *
 * Output: one JSON object on standard output, a readable line on standard
 * error. Every run is bounded by --seconds and by the message count. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_hist.h"
#include "core/log.h"
#include "storage/record.h"
#include "storage/store.h"

#define MSGS_MAX 100000000ull
/* Append timestamps are kept by sequence modulo this, so at most this many
 * messages may wait for their callback. */
#define STAMP_RING (1u << 22)
/* After the append phase, the store gets this long to make the rest durable. */
#define DRAIN_SECONDS_MAX 10
#define SUBJECT "fleet.robot1.telemetry"

struct options {
  const char *base_dir;
  const char *mode;        /* "append" or "recovery" */
  uint32_t size;           /* payload bytes */
  enum store_sync_policy policy;
  bool uring;
  double seconds;
  uint32_t batch;
  uint32_t window;         /* appended messages not yet acknowledged, at most */
  uint64_t bytes;          /* recovery: journal bytes to fill */
};

/* Counting I/O backend: forwards every operation to the real backend and
 * counts the writes and syncs the store issues. */

struct count_io {
  struct io_backend base;
  struct io_backend *inner;
  uint64_t writes;
  uint64_t write_bytes;
  uint64_t syncs;
};

static struct io_backend *inner_of(struct io_backend *io) { return ((struct count_io *)io)->inner; }

static int c_open(struct io_backend *io, const char *path, unsigned flags)
{ return inner_of(io)->ops->open(inner_of(io), path, flags); }
static int c_close(struct io_backend *io, int fd) { return inner_of(io)->ops->close(inner_of(io), fd); }
static int c_mkdir(struct io_backend *io, const char *path)
{ return inner_of(io)->ops->mkdir(inner_of(io), path); }
static int c_list_dir(struct io_backend *io, const char *path, io_list_fn fn, void *ctx)
{ return inner_of(io)->ops->list_dir(inner_of(io), path, fn, ctx); }
static int c_dio_align(struct io_backend *io, int fd) { return inner_of(io)->ops->dio_align(inner_of(io), fd); }
static int64_t c_file_size(struct io_backend *io, int fd)
{ return inner_of(io)->ops->file_size(inner_of(io), fd); }
static ssize_t c_pread(struct io_backend *io, int fd, void *buf, size_t len, uint64_t offset)
{ return inner_of(io)->ops->pread(inner_of(io), fd, buf, len, offset); }
static ssize_t c_pwrite(struct io_backend *io, int fd, const void *buf, size_t len, uint64_t offset)
{ return inner_of(io)->ops->pwrite(inner_of(io), fd, buf, len, offset); }
static int c_fdatasync(struct io_backend *io, int fd)
{ return inner_of(io)->ops->fdatasync(inner_of(io), fd); }
static int c_fallocate(struct io_backend *io, int fd, uint64_t offset, uint64_t len)
{ return inner_of(io)->ops->fallocate(inner_of(io), fd, offset, len); }
static int c_ftruncate(struct io_backend *io, int fd, uint64_t len)
{ return inner_of(io)->ops->ftruncate(inner_of(io), fd, len); }
static int c_rename(struct io_backend *io, const char *from, const char *to)
{ return inner_of(io)->ops->rename(inner_of(io), from, to); }
static int c_unlink(struct io_backend *io, const char *path)
{ return inner_of(io)->ops->unlink(inner_of(io), path); }
static int c_fsync_dir(struct io_backend *io, const char *path)
{ return inner_of(io)->ops->fsync_dir(inner_of(io), path); }
static int c_flush(struct io_backend *io) { return io_flush(inner_of(io)); }
static int c_poll(struct io_backend *io, bool wait) { return io_poll(inner_of(io), wait); }
static unsigned c_inflight(struct io_backend *io) { return io_inflight(inner_of(io)); }

static int c_submit(struct io_backend *io, struct io_req *req)
{
  struct count_io *c = (struct count_io *)io;
  if (req->op == IO_OP_PWRITE) {
    c->writes++;
    c->write_bytes += req->len;
  } else {
    c->syncs++;
  }
  return io_submit(c->inner, req);
}

static void c_destroy(struct io_backend *io)
{
  io_destroy(inner_of(io));
  free(io);
}

static const struct io_backend_ops count_ops = {
  .name = "count", .open = c_open, .close = c_close, .mkdir = c_mkdir, .list_dir = c_list_dir,
  .dio_align = c_dio_align, .file_size = c_file_size, .pread = c_pread, .pwrite = c_pwrite,
  .fdatasync = c_fdatasync, .fallocate = c_fallocate, .ftruncate = c_ftruncate,
  .rename = c_rename, .unlink = c_unlink, .fsync_dir = c_fsync_dir, .submit = c_submit,
  .flush = c_flush, .poll = c_poll, .inflight = c_inflight, .destroy = c_destroy,
};

static struct count_io *count_io_create(bool uring)
{
  struct io_backend *inner;
  if (uring) {
    int err = 0;
    inner = io_uring_backend_create(NULL, &err);
    if (inner == NULL) {
      fprintf(stderr, "shoal-store-bench: io_uring is not available: %s; use --backend sync\n",
              strerror(-err));
      exit(1);
    }
  } else {
    inner = io_sync_create();
  }
  struct count_io *c = calloc(1, sizeof(*c));
  if (inner == NULL || c == NULL) {
    fprintf(stderr, "shoal-store-bench: out of memory\n");
    exit(1);
  }
  c->base.ops = &count_ops;
  c->inner = inner;
  return c;
}

/* Helpers */

/* The run's directory, removed on exit and on failure; "" before it exists. */
static char work_dir[1024];

static void remove_tree(const char *dir);

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "shoal-store-bench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (work_dir[0] != '\0')
    remove_tree(work_dir);
  exit(1);
}

static void remove_tree(const char *dir)
{
  char stream[1024];
  snprintf(stream, sizeof(stream), "%s/bench", dir);
  DIR *d = opendir(stream);
  if (d != NULL) {
    struct dirent *de;
    /* Bounded by the directory's entries. */
    while ((de = readdir(d)) != NULL) {
      char path[2048];
      snprintf(path, sizeof(path), "%s/%s", stream, de->d_name);
      if (de->d_name[0] != '.')
        unlink(path);
    }
    closedir(d);
  }
  rmdir(stream);
  rmdir(dir);
}

static struct store_config bench_config(const struct options *o, struct io_backend *io,
                                        char *dir, size_t dir_size, const char *work)
{
  snprintf(dir, dir_size, "%s/bench", work);
  struct store_config c;
  memset(&c, 0, sizeof(c));
  c.name = "BENCH";
  c.kind = STORE_FILE;
  c.dir = dir;
  c.io = io;
  c.sync = o->policy;
  return c;
}

/* Appending */

struct append_run {
  struct store *st;
  struct count_io *io;
  int64_t *stamps;         /* append time by sequence modulo STAMP_RING */
  struct bench_hist latency_ns;
  uint64_t appended;
  uint64_t acked;
  uint64_t failed;
  uint64_t payload_bytes;  /* of acknowledged messages */
  int64_t last_ack_ns;
};

static void on_durable(void *ctx, uint64_t seq, int res)
{
  struct append_run *r = ctx;
  if (res != 0) {
    r->failed++;
    return;
  }
  int64_t now = now_ns();
  r->acked++;
  r->last_ack_ns = now;
  bench_hist_record(&r->latency_ns, (uint64_t)(now - r->stamps[seq % STAMP_RING]));
}

/* Appends payloads of size bytes in batches until the deadline or msgs_max
 * appends, then waits for the store to make them durable. At most window
 * messages wait for their callback at a time. */
static void append_loop(struct append_run *r, const uint8_t *payload, uint32_t size,
                        uint32_t batch, uint32_t window, int64_t deadline, uint64_t msgs_max)
{
  struct io_backend *io = &r->io->base;
  /* Bounded by the deadline and msgs_max. */
  while (now_ns() < deadline && r->appended < msgs_max) {
    bool full = false;
    for (uint32_t i = 0; i < batch && r->appended < msgs_max; i++) {
      if (r->appended - r->acked - r->failed >= window) {
        full = true;
        break;
      }
      int64_t t = now_ns();
      uint64_t seq;
      int rc = store_append(r->st, SUBJECT, strlen(SUBJECT), NULL, 0, payload, size, 0, on_durable,
                            r, &seq);
      if (rc == -EAGAIN) {
        full = true;
        break;
      }
      if (rc != 0)
        die("store_append failed: %s", strerror(-rc));
      r->stamps[seq % STAMP_RING] = t;
      r->appended++;
    }
    int rc = store_flush(r->st);
    if (rc < 0)
      die("store_flush failed: %s", strerror(-rc));
    io_flush(io);
    io_poll(io, full && io_inflight(io) > 0);
  }

  /* The relaxed policy syncs on its interval, so the store may stay busy
   * with nothing in flight for up to a second. */
  int64_t drain_deadline = now_ns() + DRAIN_SECONDS_MAX * 1000000000ll;
  while (store_busy(r->st) && now_ns() < drain_deadline) {
    int rc = store_flush(r->st);
    if (rc < 0)
      die("store_flush failed: %s", strerror(-rc));
    io_flush(io);
    if (io_inflight(io) > 0)
      io_poll(io, true);
    else
      nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  if (store_busy(r->st))
    die("the store did not become idle within %d s", DRAIN_SECONDS_MAX);
  r->payload_bytes = r->acked * size;
}

static struct store *open_store(const struct options *o, struct count_io *io, const char *work)
{
  char dir[1024];
  struct store_config c = bench_config(o, &io->base, dir, sizeof(dir), work);
  struct store *st;
  struct store_error err;
  int rc = store_open(&c, &st, &err);
  if (rc != 0)
    die("store_open %s failed: %s", dir, err.message);
  return st;
}

static const char *policy_name(enum store_sync_policy p)
{
  return p == STORE_SYNC_ALWAYS ? "always" : "relaxed";
}

static void run_append(const struct options *o, const char *work)
{
  struct append_run r = {0};
  r.io = count_io_create(o->uring);
  r.st = open_store(o, r.io, work);
  r.stamps = calloc(STAMP_RING, sizeof(*r.stamps));
  uint8_t *payload = malloc(o->size);
  if (r.stamps == NULL || payload == NULL)
    die("out of memory");
  memset(payload, 'x', o->size);
  bench_hist_reset(&r.latency_ns);
  uint64_t writes0 = r.io->writes, bytes0 = r.io->write_bytes, syncs0 = r.io->syncs;

  int64_t start = now_ns();
  append_loop(&r, payload, o->size, o->batch, o->window, start + (int64_t)(o->seconds * 1e9),
              MSGS_MAX);
  double elapsed = (r.last_ack_ns - start) / 1e9;
  if (r.acked == 0 || elapsed <= 0)
    die("no message was acknowledged");

  uint64_t writes = r.io->writes - writes0, write_bytes = r.io->write_bytes - bytes0;
  uint64_t syncs = r.io->syncs - syncs0;
  printf("{\"mode\":\"append\",\"backend\":\"%s\",\"policy\":\"%s\",\"size\":%u,\"batch\":%u,"
         "\"window\":%u,"
         "\"seconds\":%.3f,\"msgs\":%llu,\"failed\":%llu,\"msgs_per_s\":%.0f,"
         "\"payload_mb_per_s\":%.2f,\"device_mb_per_s\":%.2f,\"writes\":%llu,"
         "\"write_bytes\":%llu,\"syncs\":%llu,\"avg_write_bytes\":%.0f,\"writes_per_sync\":%.2f,"
         "\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f}\n",
         o->uring ? "io_uring" : "sync", policy_name(o->policy), o->size, o->batch, o->window,
         elapsed,
         (unsigned long long)r.acked, (unsigned long long)r.failed, r.acked / elapsed,
         r.payload_bytes / elapsed / 1e6, write_bytes / elapsed / 1e6, (unsigned long long)writes,
         (unsigned long long)write_bytes, (unsigned long long)syncs,
         writes ? (double)write_bytes / writes : 0.0, syncs ? (double)writes / syncs : 0.0,
         bench_hist_percentile(&r.latency_ns, 50) / 1e3,
         bench_hist_percentile(&r.latency_ns, 99) / 1e3,
         bench_hist_percentile(&r.latency_ns, 99.9) / 1e3, r.latency_ns.max / 1e3);
  fprintf(stderr, "append %s %s %u B: %.0f msgs/s, %.1f MB/s payload, p99 %.0f us, "
          "%.0f B per write, %.2f writes per sync\n", o->uring ? "io_uring" : "sync",
          policy_name(o->policy), o->size, r.acked / elapsed, r.payload_bytes / elapsed / 1e6,
          bench_hist_percentile(&r.latency_ns, 99) / 1e3,
          writes ? (double)write_bytes / writes : 0.0, syncs ? (double)writes / syncs : 0.0);

  if (store_close(r.st) != 0)
    die("store_close failed");
  io_destroy(&r.io->base);
  free(r.stamps);
  free(payload);
}

/* Recovery */

static void run_recovery(const struct options *o, const char *work)
{
  /* Fill: the same append loop, bounded by the journal size. */
  struct append_run r = {0};
  r.io = count_io_create(o->uring);
  r.st = open_store(o, r.io, work);
  r.stamps = calloc(STAMP_RING, sizeof(*r.stamps));
  uint8_t *payload = malloc(o->size);
  if (r.stamps == NULL || payload == NULL)
    die("out of memory");
  memset(payload, 'r', o->size);
  bench_hist_reset(&r.latency_ns);
  uint64_t msgs = o->bytes / record_size(strlen(SUBJECT), 0, o->size);
  int64_t fill_start = now_ns();
  append_loop(&r, payload, o->size, o->batch, o->window, fill_start + (int64_t)(o->seconds * 1e9),
              msgs);
  double fill_s = (now_ns() - fill_start) / 1e9;
  if (r.acked != msgs)
    die("filling stopped at %llu of %llu messages after %.0f s; raise --seconds",
        (unsigned long long)r.acked, (unsigned long long)msgs, o->seconds);
  if (store_close(r.st) != 0)
    die("store_close failed");

  int64_t t0 = now_ns();
  struct store *st = open_store(o, r.io, work);
  double open_s = (now_ns() - t0) / 1e9;
  struct store_state s;
  store_state(st, &s);
  if (s.msgs != msgs)
    die("recovery found %llu messages, not %llu", (unsigned long long)s.msgs,
        (unsigned long long)msgs);

  /* A scan of every message in order, as a consumer starting at the first
   * sequence reads them. */
  int64_t t1 = now_ns();
  struct store_msg m = {0};
  uint64_t scanned = 0;
  for (uint64_t seq = 1; store_read_next(st, seq, NULL, 0, &m) == 0; seq = m.seq + 1)
    scanned++;
  double scan_s = (now_ns() - t1) / 1e9;
  store_msg_free(&m);
  if (scanned != msgs)
    die("the scan read %llu messages, not %llu", (unsigned long long)scanned,
        (unsigned long long)msgs);

  printf("{\"mode\":\"recovery\",\"backend\":\"%s\",\"size\":%u,\"msgs\":%llu,\"bytes\":%llu,"
         "\"segments\":%llu,\"fill_seconds\":%.2f,\"open_seconds\":%.3f,\"open_mb_per_s\":%.1f,"
         "\"open_msgs_per_s\":%.0f,\"scan_seconds\":%.3f,\"scan_msgs_per_s\":%.0f}\n",
         o->uring ? "io_uring" : "sync", o->size, (unsigned long long)s.msgs,
         (unsigned long long)s.bytes, (unsigned long long)s.segments, fill_s, open_s,
         s.bytes / open_s / 1e6, s.msgs / open_s, scan_s, scanned / scan_s);
  fprintf(stderr, "recovery of %llu messages, %.0f MB in %llu segments: %.3f s; "
          "scan: %.3f s\n", (unsigned long long)s.msgs, s.bytes / 1e6,
          (unsigned long long)s.segments, open_s, scan_s);

  if (store_close(st) != 0)
    die("store_close failed");
  io_destroy(&r.io->base);
  free(r.stamps);
  free(payload);
}

/* Command line */

static void usage(FILE *out)
{
  fprintf(out,
          "usage: shoal-store-bench [options]\n"
          "  --dir DIR          directory for the stream, on a disk file system (default /var/tmp)\n"
          "  --mode MODE        append (default) or recovery\n"
          "  --size BYTES       payload bytes per message (default 1024)\n"
          "  --policy POLICY    always (sync before the acknowledgement, default) or relaxed\n"
          "  --backend BACKEND  io_uring (default) or sync (pwrite and fdatasync syscalls)\n"
          "  --seconds S        append phase length, or the fill time limit in recovery mode\n"
          "                     (default 3)\n"
          "  --batch N          appends per loop iteration (default 64)\n"
          "  --window N         most messages appended but not yet acknowledged; 1 makes\n"
          "                     each message wait for its own group (default 4194304)\n"
          "  --bytes BYTES      recovery mode: journal bytes to fill (default 1 GiB)\n");
}

static uint64_t parse_u64(const char *name, const char *value, uint64_t min, uint64_t max)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
    die("invalid %s '%s': expected an integer from %llu to %llu", name, value,
        (unsigned long long)min, (unsigned long long)max);
  return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
  static const struct option longopts[] = {
    {"dir", required_argument, NULL, 'd'},    {"mode", required_argument, NULL, 'm'},
    {"size", required_argument, NULL, 's'},   {"policy", required_argument, NULL, 'p'},
    {"backend", required_argument, NULL, 'b'}, {"seconds", required_argument, NULL, 't'},
    {"batch", required_argument, NULL, 'n'},  {"bytes", required_argument, NULL, 'B'},
    {"window", required_argument, NULL, 'w'},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
  };
  *o = (struct options){.base_dir = "/var/tmp", .mode = "append", .size = 1024,
                        .policy = STORE_SYNC_ALWAYS, .uring = true, .seconds = 3, .batch = 64, .window = STAMP_RING,
                        .bytes = 1ull << 30};
  int ch;
  /* Bounded by argc. */
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
    case 'd': o->base_dir = optarg; break;
    case 'm': o->mode = optarg; break;
    case 's': o->size = (uint32_t)parse_u64("--size", optarg, 1, 1u << 20); break;
    case 'p':
      if (strcmp(optarg, "always") != 0 && strcmp(optarg, "relaxed") != 0)
        die("invalid --policy '%s': expected always or relaxed", optarg);
      o->policy = strcmp(optarg, "always") == 0 ? STORE_SYNC_ALWAYS : STORE_SYNC_RELAXED;
      break;
    case 'b':
      if (strcmp(optarg, "io_uring") != 0 && strcmp(optarg, "sync") != 0)
        die("invalid --backend '%s': expected io_uring or sync", optarg);
      o->uring = strcmp(optarg, "io_uring") == 0;
      break;
    case 't': o->seconds = (double)parse_u64("--seconds", optarg, 1, 600); break;
    case 'n': o->batch = (uint32_t)parse_u64("--batch", optarg, 1, 1u << 20); break;
    case 'w': o->window = (uint32_t)parse_u64("--window", optarg, 1, STAMP_RING); break;
    case 'B': o->bytes = parse_u64("--bytes", optarg, 1u << 20, 1ull << 40); break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); exit(2);
    }
  }
  if (strcmp(o->mode, "append") != 0 && strcmp(o->mode, "recovery") != 0)
    die("invalid --mode '%s': expected append or recovery", o->mode);
}

int main(int argc, char **argv)
{
  struct options o;
  parse_options(argc, argv, &o);
  log_setup(false, false, false, NULL);

  struct statfs sfs;
  if (statfs(o.base_dir, &sfs) != 0)
    die("cannot use --dir %s: %s", o.base_dir, strerror(errno));
  if (sfs.f_type == TMPFS_MAGIC)
    die("--dir %s is on tmpfs, which keeps no data on a disk; choose a directory on a disk",
        o.base_dir);
  char work[1024];
  snprintf(work, sizeof(work), "%s/shoal-store-bench-XXXXXX", o.base_dir);
  if (mkdtemp(work) == NULL)
    die("cannot create a directory in %s: %s", o.base_dir, strerror(errno));
  snprintf(work_dir, sizeof(work_dir), "%s", work);

  if (strcmp(o.mode, "append") == 0)
    run_append(&o, work);
  else
    run_recovery(&o, work);
  remove_tree(work);
  return 0;
}
