/* SPDX-License-Identifier: Apache-2.0 */
/* The fault-injecting storage backend: an in-memory file system that models
 * what a disk keeps across a power cut, and injects faults drawn from a
 * seeded generator so every run replays exactly.
 *
 * Model. Each file has current content (what reads return) and stable
 * content (what survives a crash). pwrite changes the current content and
 * is remembered as pending; fdatasync applies the pending writes to the
 * stable content. A directory entry created or removed becomes stable at
 * fsync_dir of its directory. At io_fault_crash() each pending write is
 * kept, lost or torn (a random subset of its sectors kept), in order, and a
 * directory change that was not synced is kept or undone at random.
 *
 * Faults: ENOSPC (pwrite, fallocate), EIO after part of a pwrite, and a
 * pwrite that lands at another aligned offset yet reports success
 * (misdirected). Bits flip in stable content on request. A crash at a chosen
 * I/O step makes every later operation fail with -EIO. Asynchronous requests run in submission
 * order from io_poll(), like the plain backend. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "storage/io.h"

#define FAULT_MAX_FILES 256
#define FAULT_FIRST_FD 3

struct pending_write {
  uint64_t offset;
  uint32_t len;
  uint8_t *data;
};

struct mfile {
  char *path;
  bool present;             /* in the directory now */
  bool stable_present;      /* in the directory as last synced */
  uint8_t *cur;
  uint64_t cur_size;
  uint8_t *stable;
  uint64_t stable_size;
  uint64_t stable_extent;   /* end of the furthest write that reached stable content */
  uint64_t cap;             /* allocation of cur and stable */
  struct pending_write *pending;
  uint32_t pending_count;
  uint32_t pending_cap;
};

struct io_fault {
  struct io_backend base;
  struct io_fault_config cfg;
  uint64_t rng;
  uint32_t steps;
  bool crashed;
  struct io_fault_stats stats;
  struct mfile *files[FAULT_MAX_FILES];
  struct mfile *fds[FAULT_MAX_FILES];   /* fd - FAULT_FIRST_FD */
  struct io_req *head;
  struct io_req *tail;
  unsigned queued;
  bool chain_failed;
};

/* splitmix64: small, fast and fully determined by the seed. */
static uint64_t rng_next(struct io_fault *f)
{
  uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static bool rng_ppm(struct io_fault *f, uint32_t ppm)
{
  return ppm > 0 && rng_next(f) % 1000000 < ppm;
}

static uint64_t rng_below(struct io_fault *f, uint64_t n)
{
  return n == 0 ? 0 : rng_next(f) % n;
}

/* Counts one I/O step. Returns false once the run has crashed. */
static bool step(struct io_fault *f)
{
  if (f->crashed)
    return false;
  f->steps++;
  if (f->cfg.crash_at_step != 0 && f->steps >= f->cfg.crash_at_step) {
    f->crashed = true;
    return false;
  }
  return true;
}

static struct mfile *file_find(struct io_fault *f, const char *path)
{
  for (int i = 0; i < FAULT_MAX_FILES; i++) {
    struct mfile *m = f->files[i];
    if (m != NULL && strcmp(m->path, path) == 0)
      return m;
  }
  return NULL;
}

static struct mfile *fd_file(struct io_fault *f, int fd)
{
  int i = fd - FAULT_FIRST_FD;
  if (i < 0 || i >= FAULT_MAX_FILES)
    return NULL;
  return f->fds[i];
}

static int file_reserve(struct mfile *m, uint64_t size)
{
  if (size <= m->cap)
    return 0;
  uint64_t cap = m->cap ? m->cap : 4096;
  while (cap < size)
    cap *= 2;
  uint8_t *cur = realloc(m->cur, cap);
  if (cur == NULL)
    return -ENOMEM;
  m->cur = cur;
  uint8_t *stable = realloc(m->stable, cap);
  if (stable == NULL)
    return -ENOMEM;
  m->stable = stable;
  memset(m->cur + m->cap, 0, cap - m->cap);
  memset(m->stable + m->cap, 0, cap - m->cap);
  m->cap = cap;
  return 0;
}

static void file_free(struct mfile *m)
{
  for (uint32_t i = 0; i < m->pending_count; i++)
    free(m->pending[i].data);
  free(m->pending);
  free(m->cur);
  free(m->stable);
  free(m->path);
  free(m);
}

static int fault_open(struct io_backend *io, const char *path, unsigned flags)
{
  struct io_fault *f = (struct io_fault *)io;
  if (!step(f))
    return -EIO;

  struct mfile *m = file_find(f, path);
  if (m != NULL && m->present && (flags & IO_OPEN_CREATE))
    return -EEXIST;
  if ((m == NULL || !m->present) && !(flags & IO_OPEN_CREATE))
    return -ENOENT;

  if (m == NULL) {
    int slot = -1;
    for (int i = 0; i < FAULT_MAX_FILES && slot < 0; i++)
      if (f->files[i] == NULL)
        slot = i;
    if (slot < 0)
      return -ENFILE;
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->path = strdup(path)) == NULL) {
      free(m);
      return -ENOMEM;
    }
    f->files[slot] = m;
  } else if (!m->present) {
    /* A removed entry that is still stable: reuse the record as new. */
    if (m->cap > 0)
      memset(m->cur, 0, m->cap);
    m->cur_size = 0;
  }
  m->present = true;

  for (int i = 0; i < FAULT_MAX_FILES; i++) {
    if (f->fds[i] == NULL) {
      f->fds[i] = m;
      return i + FAULT_FIRST_FD;
    }
  }
  return -EMFILE;
}

static int fault_close(struct io_backend *io, int fd)
{
  struct io_fault *f = (struct io_fault *)io;
  if (fd_file(f, fd) == NULL)
    return -EBADF;
  f->fds[fd - FAULT_FIRST_FD] = NULL;
  return 0;
}

static int fault_mkdir(struct io_backend *io, const char *path)
{
  struct io_fault *f = (struct io_fault *)io;
  return step(f) ? 0 : -EIO;
}

/* True when path is dir + "/" + a name without another slash. */
static const char *name_in_dir(const char *path, const char *dir)
{
  size_t dlen = strlen(dir);
  if (strncmp(path, dir, dlen) != 0 || path[dlen] != '/')
    return NULL;
  const char *name = path + dlen + 1;
  return strchr(name, '/') == NULL ? name : NULL;
}

static int fault_list_dir(struct io_backend *io, const char *path, io_list_fn fn, void *ctx)
{
  struct io_fault *f = (struct io_fault *)io;
  if (!step(f))
    return -EIO;
  for (int i = 0; i < FAULT_MAX_FILES; i++) {
    struct mfile *m = f->files[i];
    const char *name = m != NULL && m->present ? name_in_dir(m->path, path) : NULL;
    if (name != NULL)
      fn(ctx, name);
  }
  return 0;
}

static int fault_dio_align(struct io_backend *io, int fd)
{
  struct io_fault *f = (struct io_fault *)io;
  return (int)f->cfg.dio_align;
}

static int64_t fault_file_size(struct io_backend *io, int fd)
{
  struct io_fault *f = (struct io_fault *)io;
  struct mfile *m = fd_file(f, fd);
  if (m == NULL)
    return -EBADF;
  return (int64_t)m->cur_size;
}

static ssize_t fault_pread(struct io_backend *io, int fd, void *buf, size_t len, uint64_t offset)
{
  struct io_fault *f = (struct io_fault *)io;
  struct mfile *m = fd_file(f, fd);
  if (m == NULL)
    return -EBADF;
  if (!step(f))
    return -EIO;
  if (offset >= m->cur_size)
    return 0;
  size_t n = len;
  if (offset + n > m->cur_size)
    n = (size_t)(m->cur_size - offset);
  memcpy(buf, m->cur + offset, n);
  return (ssize_t)n;
}

/* Applies a write to the current content and remembers it as pending. */
static int file_write(struct mfile *m, const void *buf, size_t len, uint64_t offset)
{
  int rc = file_reserve(m, offset + len);
  if (rc < 0)
    return rc;
  if (m->pending_count == m->pending_cap) {
    uint32_t cap = m->pending_cap ? m->pending_cap * 2 : 16;
    struct pending_write *p = realloc(m->pending, cap * sizeof(*p));
    if (p == NULL)
      return -ENOMEM;
    m->pending = p;
    m->pending_cap = cap;
  }
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL)
    return -ENOMEM;
  memcpy(copy, buf, len);
  m->pending[m->pending_count++] = (struct pending_write){offset, (uint32_t)len, copy};

  memcpy(m->cur + offset, buf, len);
  if (offset + len > m->cur_size)
    m->cur_size = offset + len;
  return 0;
}

/* One pwrite with its injected faults. Decisions are drawn in a fixed order
 * so the seed alone determines the outcome. */
static ssize_t fault_pwrite(struct io_backend *io, int fd, const void *buf, size_t len, uint64_t offset)
{
  struct io_fault *f = (struct io_fault *)io;
  struct mfile *m = fd_file(f, fd);
  if (m == NULL)
    return -EBADF;
  bool crashed_before = f->crashed;
  if (!step(f)) {
    /* The crash hits during this write: it may reach the disk in part.
     * Writes after the crash never reach it. */
    if (!crashed_before)
      file_write(m, buf, len, offset);
    return -EIO;
  }

  if (rng_ppm(f, f->cfg.enospc_ppm)) {
    f->stats.enospc++;
    return -ENOSPC;
  }
  if (rng_ppm(f, f->cfg.eio_ppm)) {
    f->stats.eio++;
    uint32_t sectors = (uint32_t)(len / f->cfg.sector_size);
    size_t part = (size_t)rng_below(f, sectors + 1) * f->cfg.sector_size;
    file_write(m, buf, part, offset);
    return -EIO;
  }
  if (rng_ppm(f, f->cfg.misdirect_ppm) && m->cur_size > len) {
    uint64_t slots = (m->cur_size - len) / f->cfg.dio_align + 1;
    uint64_t target = rng_below(f, slots) * f->cfg.dio_align;
    if (target != offset) {
      f->stats.misdirected++;
      offset = target;
    }
  }
  int rc = file_write(m, buf, len, offset);
  return rc < 0 ? rc : (ssize_t)len;
}

static void file_sync(struct mfile *m)
{
  for (uint32_t i = 0; i < m->pending_count; i++) {
    struct pending_write *p = &m->pending[i];
    memcpy(m->stable + p->offset, p->data, p->len);
    if (p->offset + p->len > m->stable_extent)
      m->stable_extent = p->offset + p->len;
    free(p->data);
  }
  m->pending_count = 0;
  m->stable_size = m->cur_size;
}

static int fault_fdatasync(struct io_backend *io, int fd)
{
  struct io_fault *f = (struct io_fault *)io;
  struct mfile *m = fd_file(f, fd);
  if (m == NULL)
    return -EBADF;
  if (!step(f))
    return -EIO;
  file_sync(m);
  return 0;
}

static int fault_fallocate(struct io_backend *io, int fd, uint64_t offset, uint64_t len)
{
  struct io_fault *f = (struct io_fault *)io;
  struct mfile *m = fd_file(f, fd);
  if (m == NULL)
    return -EBADF;
  if (!step(f))
    return -EIO;
  if (rng_ppm(f, f->cfg.enospc_ppm)) {
    f->stats.enospc++;
    return -ENOSPC;
  }
  int rc = file_reserve(m, offset + len);
  if (rc < 0)
    return rc;
  if (offset + len > m->cur_size)
    m->cur_size = offset + len;
  return 0;
}

static int fault_ftruncate(struct io_backend *io, int fd, uint64_t len)
{
  struct io_fault *f = (struct io_fault *)io;
  struct mfile *m = fd_file(f, fd);
  if (m == NULL)
    return -EBADF;
  if (!step(f))
    return -EIO;
  int rc = file_reserve(m, len);
  if (rc < 0)
    return rc;
  if (len < m->cur_size)
    memset(m->cur + len, 0, m->cur_size - len);
  m->cur_size = len;
  return 0;
}

/* NOTE: a rename is modelled as stable at once; the journal does not rename. */
static int fault_rename(struct io_backend *io, const char *from, const char *to)
{
  struct io_fault *f = (struct io_fault *)io;
  if (!step(f))
    return -EIO;
  struct mfile *m = file_find(f, from);
  if (m == NULL || !m->present)
    return -ENOENT;
  char *path = strdup(to);
  if (path == NULL)
    return -ENOMEM;
  struct mfile *old = file_find(f, to);
  if (old != NULL)
    old->present = old->stable_present = false;
  free(m->path);
  m->path = path;
  return 0;
}

static int fault_unlink(struct io_backend *io, const char *path)
{
  struct io_fault *f = (struct io_fault *)io;
  if (!step(f))
    return -EIO;
  struct mfile *m = file_find(f, path);
  if (m == NULL || !m->present)
    return -ENOENT;
  m->present = false;
  return 0;
}

static int fault_fsync_dir(struct io_backend *io, const char *path)
{
  struct io_fault *f = (struct io_fault *)io;
  if (!step(f))
    return -EIO;
  for (int i = 0; i < FAULT_MAX_FILES; i++) {
    struct mfile *m = f->files[i];
    if (m != NULL && name_in_dir(m->path, path) != NULL)
      m->stable_present = m->present;
  }
  return 0;
}

static int fault_submit(struct io_backend *io, struct io_req *req)
{
  struct io_fault *f = (struct io_fault *)io;
  req->next = NULL;
  if (f->tail != NULL)
    f->tail->next = req;
  else
    f->head = req;
  f->tail = req;
  f->queued++;
  return 0;
}

static int fault_flush(struct io_backend *io)
{
  return 0;
}

static void fault_run_one(struct io_fault *f, struct io_req *req)
{
  if (f->chain_failed)
    req->res = -ECANCELED;
  else if (req->op == IO_OP_PWRITE)
    req->res = (int32_t)fault_pwrite(&f->base, req->fd, req->buf, req->len, req->offset);
  else
    req->res = fault_fdatasync(&f->base, req->fd);

  bool failed = req->res < 0 || (req->op == IO_OP_PWRITE && (uint32_t)req->res != req->len);
  if (req->flags & IO_REQ_LINK)
    f->chain_failed = f->chain_failed || failed;
  else
    f->chain_failed = false;
}

static int fault_poll(struct io_backend *io, bool wait)
{
  struct io_fault *f = (struct io_fault *)io;
  struct io_req *list = f->head;
  f->head = f->tail = NULL;

  for (struct io_req *r = list; r != NULL; r = r->next)
    fault_run_one(f, r);

  int count = 0;
  while (list != NULL) {
    struct io_req *r = list;
    list = r->next;
    f->queued--;
    r->on_done(r);
    count++;
  }
  return count;
}

static unsigned fault_inflight(struct io_backend *io)
{
  return ((struct io_fault *)io)->queued;
}

static void fault_destroy(struct io_backend *io)
{
  struct io_fault *f = (struct io_fault *)io;
  for (int i = 0; i < FAULT_MAX_FILES; i++)
    if (f->files[i] != NULL)
      file_free(f->files[i]);
  free(f);
}

static const struct io_backend_ops fault_ops = {
  .name = "fault",
  .open = fault_open,
  .close = fault_close,
  .mkdir = fault_mkdir,
  .list_dir = fault_list_dir,
  .dio_align = fault_dio_align,
  .file_size = fault_file_size,
  .pread = fault_pread,
  .pwrite = fault_pwrite,
  .fdatasync = fault_fdatasync,
  .fallocate = fault_fallocate,
  .ftruncate = fault_ftruncate,
  .rename = fault_rename,
  .unlink = fault_unlink,
  .fsync_dir = fault_fsync_dir,
  .submit = fault_submit,
  .flush = fault_flush,
  .poll = fault_poll,
  .inflight = fault_inflight,
  .destroy = fault_destroy,
};

struct io_backend *io_fault_create(const struct io_fault_config *cfg)
{
  struct io_fault *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return NULL;
  f->base.ops = &fault_ops;
  f->cfg = *cfg;
  if (f->cfg.sector_size == 0)
    f->cfg.sector_size = 512;
  if (f->cfg.dio_align == 0)
    f->cfg.dio_align = 4096;
  f->rng = cfg->seed;
  return &f->base;
}

/* Resolves one pending write at the crash: kept, lost, or torn. */
static void crash_resolve_write(struct io_fault *f, struct mfile *m, struct pending_write *p)
{
  uint64_t r = rng_below(f, 3);
  if (r == 0) {
    memcpy(m->stable + p->offset, p->data, p->len);
  } else if (r == 1) {
    f->stats.lost++;
  } else {
    f->stats.torn++;
    uint32_t ss = f->cfg.sector_size;
    for (uint32_t off = 0; off < p->len; off += ss) {
      uint32_t n = p->len - off < ss ? p->len - off : ss;
      if (rng_below(f, 2))
        memcpy(m->stable + p->offset + off, p->data + off, n);
    }
  }
  if (r != 1 && p->offset + p->len > m->stable_size)
    m->stable_size = p->offset + p->len;
  if (r != 1 && p->offset + p->len > m->stable_extent)
    m->stable_extent = p->offset + p->len;
}

void io_fault_crash(struct io_backend *io)
{
  struct io_fault *f = (struct io_fault *)io;
  f->crashed = true;

  /* Requests still queued never reached the disk. */
  ASSERT(f->queued == 0);

  for (int i = 0; i < FAULT_MAX_FILES; i++) {
    struct mfile *m = f->files[i];
    if (m == NULL)
      continue;
    for (uint32_t w = 0; w < m->pending_count; w++) {
      crash_resolve_write(f, m, &m->pending[w]);
      free(m->pending[w].data);
    }
    m->pending_count = 0;

    /* An unsynced directory change may or may not have reached the disk. */
    if (m->present != m->stable_present && rng_below(f, 2))
      m->stable_present = m->present;
    m->present = m->stable_present;
    if (!m->present) {
      file_free(m);
      f->files[i] = NULL;
      continue;
    }
    if (m->cap > 0)
      memcpy(m->cur, m->stable, m->cap);
    m->cur_size = m->stable_size;
  }
}

void io_fault_restart(struct io_backend *io)
{
  struct io_fault *f = (struct io_fault *)io;
  ASSERT(f->queued == 0);
  memset(f->fds, 0, sizeof(f->fds));
  f->crashed = false;
  f->chain_failed = false;
  f->cfg.crash_at_step = 0;
  f->cfg.enospc_ppm = 0;
  f->cfg.eio_ppm = 0;
  f->cfg.misdirect_ppm = 0;
}

void io_fault_set_crash_step(struct io_backend *io, uint32_t step)
{
  struct io_fault *f = (struct io_fault *)io;
  ASSERT(step == 0 || step > f->steps);
  f->cfg.crash_at_step = step;
}

int io_fault_flip_bits(struct io_backend *io, const char *suffix, unsigned count)
{
  struct io_fault *f = (struct io_fault *)io;
  size_t slen = strlen(suffix);
  int flipped = 0;
  for (unsigned c = 0; c < count; c++) {
    struct mfile *cand[FAULT_MAX_FILES];
    int n = 0;
    for (int i = 0; i < FAULT_MAX_FILES; i++) {
      struct mfile *m = f->files[i];
      size_t plen = m != NULL ? strlen(m->path) : 0;
      if (m != NULL && m->stable_extent > 0 && plen >= slen && strcmp(m->path + plen - slen, suffix) == 0)
        cand[n++] = m;
    }
    if (n == 0)
      break;
    struct mfile *m = cand[rng_below(f, (uint64_t)n)];
    uint64_t bit = rng_below(f, m->stable_extent * 8);
    m->stable[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    m->cur[bit / 8] = m->stable[bit / 8];
    f->stats.flipped++;
    flipped++;
  }
  return flipped;
}

uint32_t io_fault_steps(struct io_backend *io)
{
  return ((struct io_fault *)io)->steps;
}

bool io_fault_crashed(struct io_backend *io)
{
  return ((struct io_fault *)io)->crashed;
}

void io_fault_stats(struct io_backend *io, struct io_fault_stats *out)
{
  *out = ((struct io_fault *)io)->stats;
}
