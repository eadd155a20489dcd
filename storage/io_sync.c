/* SPDX-License-Identifier: Apache-2.0 */
/* The plain storage backend for epoll shards: asynchronous requests are
 * queued by io_submit() and run as blocking pwrite/fdatasync syscalls, in
 * submission order, from io_poll(). */
#include <errno.h>
#include <stdlib.h>

#include "core/assert.h"
#include "storage/io_posix.h"

struct io_sync {
  struct io_backend base;
  struct io_req *head;
  struct io_req *tail;
  unsigned queued;
  bool chain_failed;       /* a linked request before the next one failed */
};

static int sync_submit(struct io_backend *io, struct io_req *req)
{
  struct io_sync *s = (struct io_sync *)io;
  ASSERT(req->op == IO_OP_PWRITE || req->op == IO_OP_FDATASYNC);

  req->next = NULL;
  if (s->tail != NULL)
    s->tail->next = req;
  else
    s->head = req;
  s->tail = req;
  s->queued++;
  return 0;
}

static int sync_flush(struct io_backend *io)
{
  return 0;
}

static void sync_run_one(struct io_sync *s, struct io_req *req)
{
  if (s->chain_failed) {
    req->res = -ECANCELED;
  } else if (req->op == IO_OP_PWRITE) {
    ssize_t n = io_posix_pwrite(&s->base, req->fd, req->buf, req->len, req->offset);
    req->res = (int32_t)n;
  } else {
    req->res = io_posix_fdatasync(&s->base, req->fd);
  }

  bool failed = req->res < 0 || (req->op == IO_OP_PWRITE && (uint32_t)req->res != req->len);
  if (req->flags & IO_REQ_LINK)
    s->chain_failed = s->chain_failed || failed;
  else
    s->chain_failed = false;
}

/* Runs every request queued before the call, then their callbacks. The
 * queue is detached first, so requests submitted from a callback wait for
 * the next poll and the loop is bounded by the queue length at entry. */
static int sync_poll(struct io_backend *io, bool wait)
{
  struct io_sync *s = (struct io_sync *)io;
  struct io_req *list = s->head;
  s->head = s->tail = NULL;

  for (struct io_req *r = list; r != NULL; r = r->next)
    sync_run_one(s, r);

  int count = 0;
  while (list != NULL) {
    struct io_req *r = list;
    list = r->next;
    s->queued--;
    r->on_done(r);
    count++;
  }
  return count;
}

static unsigned sync_inflight(struct io_backend *io)
{
  return ((struct io_sync *)io)->queued;
}

static void sync_destroy(struct io_backend *io)
{
  struct io_sync *s = (struct io_sync *)io;
  ASSERT(s->queued == 0);
  free(s);
}

static const struct io_backend_ops sync_ops = {
  .name = "sync",
  .open = io_posix_open,
  .close = io_posix_close,
  .mkdir = io_posix_mkdir,
  .list_dir = io_posix_list_dir,
  .dio_align = io_posix_dio_align,
  .file_size = io_posix_file_size,
  .pread = io_posix_pread,
  .pwrite = io_posix_pwrite,
  .fdatasync = io_posix_fdatasync,
  .fallocate = io_posix_fallocate,
  .ftruncate = io_posix_ftruncate,
  .rename = io_posix_rename,
  .unlink = io_posix_unlink,
  .fsync_dir = io_posix_fsync_dir,
  .submit = sync_submit,
  .flush = sync_flush,
  .poll = sync_poll,
  .inflight = sync_inflight,
  .destroy = sync_destroy,
};

struct io_backend *io_sync_create(void)
{
  struct io_sync *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->base.ops = &sync_ops;
  return &s->base;
}
