/* SPDX-License-Identifier: Apache-2.0 */
/* The io_uring storage backend: journal writes and fdatasync go through the
 * owning shard's ring, so a group commit costs no syscall of its own. The
 * shard hands storage CQEs back through storage_uring_complete(). The only
 * storage file that includes liburing. */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#include "core/assert.h"
#include "storage/io_posix.h"

/* Entries of the private ring made when the caller passes none. */
#define URING_PRIVATE_ENTRIES 64

struct io_uring_be {
  struct io_backend base;
  struct io_uring *ring;
  struct io_uring own_ring;
  bool owns_ring;
  struct io_req *done_head;   /* completed, callback not run yet */
  struct io_req *done_tail;
  unsigned inflight;          /* submitted, callback not run yet */
};

static int uring_submit(struct io_backend *io, struct io_req *req)
{
  struct io_uring_be *u = (struct io_uring_be *)io;
  ASSERT(((uintptr_t)req & ~STORAGE_URING_PTR_MASK) == 0);

  struct io_uring_sqe *sqe = io_uring_get_sqe(u->ring);
  if (sqe == NULL) {
    /* The SQ is full: push it to the kernel to make room, once. */
    io_uring_submit(u->ring);
    sqe = io_uring_get_sqe(u->ring);
    if (sqe == NULL)
      return -EBUSY;
  }

  switch (req->op) {
  case IO_OP_PWRITE:
    io_uring_prep_write(sqe, req->fd, req->buf, req->len, req->offset);
    break;
  case IO_OP_FDATASYNC:
    io_uring_prep_fsync(sqe, req->fd, IORING_FSYNC_DATASYNC);
    break;
  default:
    ASSERT(!"unknown storage op");
  }
  if (req->flags & IO_REQ_LINK)
    sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe_set_data64(sqe, (STORAGE_URING_TAG << STORAGE_URING_TAG_SHIFT) | (uintptr_t)req);
  u->inflight++;
  return 0;
}

bool storage_uring_complete(const struct io_uring_cqe *cqe)
{
  if (!storage_uring_owns(cqe->user_data))
    return false;

  struct io_req *req = (struct io_req *)(uintptr_t)(cqe->user_data & STORAGE_URING_PTR_MASK);
  struct io_uring_be *u = (struct io_uring_be *)req->io;
  req->res = cqe->res;
  req->next = NULL;
  if (u->done_tail != NULL)
    u->done_tail->next = req;
  else
    u->done_head = req;
  u->done_tail = req;
  return true;
}

static int uring_flush(struct io_backend *io)
{
  struct io_uring_be *u = (struct io_uring_be *)io;
  if (!u->owns_ring)
    return 0;
  int rc = io_uring_submit(u->ring);
  return rc < 0 ? rc : 0;
}

/* Reaps the private ring. Only storage requests use it, so every CQE is
 * ours. */
static void uring_reap_private(struct io_uring_be *u, bool wait)
{
  if (wait && u->done_head == NULL && u->inflight > 0) {
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait(u->ring, 1);
    if (rc < 0 && rc != -EINTR)
      rc = io_uring_wait_cqe(u->ring, &cqe);
  }

  unsigned head, seen = 0;
  struct io_uring_cqe *cqe;
  io_uring_for_each_cqe(u->ring, head, cqe) {
    bool ours = storage_uring_complete(cqe);
    ASSERT(ours);
    seen++;
  }
  io_uring_cq_advance(u->ring, seen);
}

/* Runs the callbacks of completed requests, detaching the list first so a
 * callback that submits more work does not extend this loop. */
static int uring_poll(struct io_backend *io, bool wait)
{
  struct io_uring_be *u = (struct io_uring_be *)io;
  if (u->owns_ring)
    uring_reap_private(u, wait);

  struct io_req *list = u->done_head;
  u->done_head = u->done_tail = NULL;
  int count = 0;
  while (list != NULL) {
    struct io_req *r = list;
    list = r->next;
    ASSERT(u->inflight > 0);
    u->inflight--;
    r->on_done(r);
    count++;
  }
  return count;
}

static unsigned uring_inflight(struct io_backend *io)
{
  return ((struct io_uring_be *)io)->inflight;
}

static void uring_destroy(struct io_backend *io)
{
  struct io_uring_be *u = (struct io_uring_be *)io;
  ASSERT(u->inflight == 0);
  if (u->owns_ring)
    io_uring_queue_exit(&u->own_ring);
  free(u);
}

static const struct io_backend_ops uring_ops = {
  .name = "io_uring",
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
  .submit = uring_submit,
  .flush = uring_flush,
  .poll = uring_poll,
  .inflight = uring_inflight,
  .destroy = uring_destroy,
};

struct io_backend *io_uring_backend_create(struct io_uring *ring, int *err)
{
  struct io_uring_be *u = calloc(1, sizeof(*u));
  if (u == NULL) {
    if (err != NULL)
      *err = -ENOMEM;
    return NULL;
  }
  u->base.ops = &uring_ops;

  if (ring == NULL) {
    int rc = io_uring_queue_init(URING_PRIVATE_ENTRIES, &u->own_ring, 0);
    if (rc < 0) {
      if (err != NULL)
        *err = rc;
      free(u);
      return NULL;
    }
    ring = &u->own_ring;
    u->owns_ring = true;
  }
  u->ring = ring;
  return &u->base;
}
