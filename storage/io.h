/* SPDX-License-Identifier: Apache-2.0 */
/* The storage I/O backend interface: the few file operations the journal
 * needs, behind one vtable. The same store runs on plain syscalls (epoll
 * shards), on the owning shard's io_uring, or on a deterministic in-memory
 * file system that injects faults for tests.
 *
 * Two kinds of operations:
 * - Data-path writes (pwrite of aligned blocks, fdatasync) are asynchronous:
 *   io_submit() queues a request and its on_done callback runs later, from
 *   io_poll(). Requests flagged IO_REQ_LINK make the next request of the same
 *   stream wait for them and fail with -ECANCELED when they fail or are
 *   short, as io_uring's IOSQE_IO_LINK does.
 * - Metadata and recovery operations (open, pread, fallocate, truncate,
 *   rename, unlink, fsync of a directory) are synchronous and return their
 *   result. The store calls them when it opens, creates a segment (once per
 *   segment size of appends) or removes one.
 *
 * Every function returns a count or zero, or a negative errno.
 * One backend belongs to one thread (the shard that owns it). */
#ifndef SHOAL_STORAGE_IO_H
#define SHOAL_STORAGE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct io_backend;
struct io_req;
struct io_uring;
struct io_uring_cqe;

typedef void (*io_done_fn)(struct io_req *req);

enum io_op {
  IO_OP_PWRITE = 1,
  IO_OP_FDATASYNC,
};

/* The next request submitted after this one starts only after this one
 * completed in full; otherwise the next one fails with -ECANCELED. */
#define IO_REQ_LINK 1u

/* One asynchronous request. The caller owns the memory and keeps it, and the
 * buffer, unchanged until on_done has run. */
struct io_req {
  enum io_op op;
  unsigned flags;          /* IO_REQ_LINK */
  int fd;
  const void *buf;         /* IO_OP_PWRITE: aligned to the direct-I/O memory alignment */
  uint32_t len;            /* bytes to write */
  uint64_t offset;         /* file offset, aligned to the direct-I/O offset alignment */
  int32_t res;             /* set before on_done: bytes written, 0, or -errno */
  io_done_fn on_done;
  void *ctx;               /* the submitter's */
  struct io_backend *io;   /* set by io_submit */
  struct io_req *next;     /* the backend's queue link */
};

/* Open flags the store passes to open(); each backend maps them. */
#define IO_OPEN_CREATE 1u   /* create, failing with -EEXIST when present */
#define IO_OPEN_DIRECT 2u   /* O_DIRECT: writes bypass the page cache */

/* Called once per directory entry by list_dir; name is valid during the call. */
typedef void (*io_list_fn)(void *ctx, const char *name);

struct io_backend_ops {
  const char *name;

  /* Synchronous operations. */
  int (*open)(struct io_backend *io, const char *path, unsigned flags);
  int (*close)(struct io_backend *io, int fd);
  int (*mkdir)(struct io_backend *io, const char *path);
  int (*list_dir)(struct io_backend *io, const char *path, io_list_fn fn, void *ctx);
  /* Write alignment for direct I/O on the file behind fd, in bytes: a
   * multiple of the offset alignment that O_DIRECT requires. */
  int (*dio_align)(struct io_backend *io, int fd);
  int64_t (*file_size)(struct io_backend *io, int fd);
  ssize_t (*pread)(struct io_backend *io, int fd, void *buf, size_t len, uint64_t offset);
  ssize_t (*pwrite)(struct io_backend *io, int fd, const void *buf, size_t len, uint64_t offset);
  int (*fdatasync)(struct io_backend *io, int fd);
  int (*fallocate)(struct io_backend *io, int fd, uint64_t offset, uint64_t len);
  int (*ftruncate)(struct io_backend *io, int fd, uint64_t len);
  int (*rename)(struct io_backend *io, const char *from, const char *to);
  int (*unlink)(struct io_backend *io, const char *path);
  int (*fsync_dir)(struct io_backend *io, const char *path);

  /* Asynchronous operations. */
  int (*submit)(struct io_backend *io, struct io_req *req);
  /* Pushes queued requests to the kernel, when the backend owns that step. */
  int (*flush)(struct io_backend *io);
  /* Runs the callbacks of completed requests; with wait, first blocks until
   * at least one request completes. Returns the number of callbacks run. */
  int (*poll)(struct io_backend *io, bool wait);
  /* Number of submitted requests whose callback has not run yet. */
  unsigned (*inflight)(struct io_backend *io);

  void (*destroy)(struct io_backend *io);
};

struct io_backend {
  const struct io_backend_ops *ops;
};

/* Wrappers, so callers read io_submit(io, req) rather than the vtable. */
static inline int io_submit(struct io_backend *io, struct io_req *req)
{
  req->io = io;
  return io->ops->submit(io, req);
}

static inline int io_flush(struct io_backend *io) { return io->ops->flush(io); }
static inline int io_poll(struct io_backend *io, bool wait) { return io->ops->poll(io, wait); }
static inline unsigned io_inflight(struct io_backend *io) { return io->ops->inflight(io); }
static inline void io_destroy(struct io_backend *io) { io->ops->destroy(io); }

/* The plain backend: synchronous pread/pwrite/fdatasync syscalls, run from
 * io_poll() in submission order. For epoll shards. Returns NULL when out of
 * memory. Files opened with IO_OPEN_DIRECT on a file system without O_DIRECT
 * (tmpfs) fail with -EINVAL. */
struct io_backend *io_sync_create(void);

/* The io_uring backend. ring is the owning shard's ring, or NULL to make a
 * private one (tests, tools), in which case io_flush submits and io_poll
 * reaps it. With a shard's ring, the shard submits the SQEs in its loop and
 * hands every CQE whose user_data carries STORAGE_URING_TAG to
 * storage_uring_complete(); io_poll then runs the callbacks.
 * Returns NULL when out of memory or when the private ring cannot be set
 * up (*err gets -errno when err is not NULL). */
struct io_backend *io_uring_backend_create(struct io_uring *ring, int *err);

/* user_data tag scheme: bits 63..56 name the owner of a CQE, and storage
 * owns the value 0x53 ('S'). Bits 55..0 contain the address of the struct
 * io_req, which fits because user-space addresses on x86-64 and arm64 stay
 * below 2^56 even with five-level paging. Other modules must pick another
 * top byte. */
#define STORAGE_URING_TAG_SHIFT 56
#define STORAGE_URING_TAG 0x53ull
#define STORAGE_URING_PTR_MASK ((1ull << STORAGE_URING_TAG_SHIFT) - 1)

/* Returns true when user_data belongs to storage. */
static inline bool storage_uring_owns(uint64_t user_data)
{
  return (user_data >> STORAGE_URING_TAG_SHIFT) == STORAGE_URING_TAG;
}

/* Takes a storage CQE from the shard's completion loop: records its result
 * and queues the request's callback for the next io_poll() of its backend,
 * so no storage callback runs inside the shard's CQE loop. Returns false,
 * touching nothing, when the CQE is not storage's. Shard thread only. */
bool storage_uring_complete(const struct io_uring_cqe *cqe);

/* The fault-injecting backend: an in-memory file system where each file has
 * stable content (what survives a crash) and written-but-unsynced content.
 * Faults are drawn from a pseudo-random generator seeded with seed, so a
 * seed replays the same run. Probabilities are per operation, in parts per
 * million. */
struct io_fault_config {
  uint64_t seed;
  uint32_t enospc_ppm;       /* pwrite and fallocate fail with -ENOSPC */
  uint32_t eio_ppm;          /* pwrite fails with -EIO after writing part */
  uint32_t misdirect_ppm;    /* pwrite lands at another aligned offset, reports success */
  uint32_t crash_at_step;    /* 0 = never; else the I/O step (1-based) that crashes */
  uint32_t sector_size;      /* torn-write unit, 512 when 0 */
  uint32_t dio_align;        /* reported direct-I/O alignment, 4096 when 0 */
};

struct io_backend *io_fault_create(const struct io_fault_config *cfg);

/* Ends the simulated run as a power cut: every request still queued is
 * dropped, and each write made since its file's last fdatasync is kept,
 * lost, or torn at sector granularity, by the seed. Later operations fail
 * with -EIO until io_fault_restart(). */
void io_fault_crash(struct io_backend *io);

/* Starts the next run on the stable content left by io_fault_crash(): all
 * file descriptors are closed and operations work again, with the fault
 * probabilities and the crash step set to zero so recovery runs on a
 * healthy disk. Called without io_fault_crash() after the crash step was
 * reached, it models a process crash (kill -9) instead: writes and
 * directory changes not yet synced stay readable and stay unsynced, so a
 * later io_fault_crash() may still lose them. */
void io_fault_restart(struct io_backend *io);

/* Sets the I/O step that crashes, counted as io_fault_steps() counts;
 * 0 means never. For a crash after io_fault_restart(). */
void io_fault_set_crash_step(struct io_backend *io, uint32_t step);

/* Flips count random bits inside the stable content of files whose path
 * ends with suffix, within each file's written extent. Returns the number
 * of bits flipped. */
int io_fault_flip_bits(struct io_backend *io, const char *suffix, unsigned count);

/* Number of I/O steps taken so far (every operation counts one). */
uint32_t io_fault_steps(struct io_backend *io);

/* True once the configured crash step was reached. */
bool io_fault_crashed(struct io_backend *io);

/* Counters of injected faults, for test reports. */
struct io_fault_stats {
  uint32_t enospc;
  uint32_t eio;
  uint32_t misdirected;
  uint32_t torn;
  uint32_t lost;
  uint32_t flipped;
};

void io_fault_stats(struct io_backend *io, struct io_fault_stats *out);

#endif
