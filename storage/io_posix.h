/* SPDX-License-Identifier: Apache-2.0 */
/* The synchronous file operations shared by the plain and io_uring storage
 * backends: thin wrappers over the syscalls that return -errno instead of
 * setting errno. Private to storage/. */
#ifndef SHOAL_STORAGE_IO_POSIX_H
#define SHOAL_STORAGE_IO_POSIX_H

#include "storage/io.h"

int io_posix_open(struct io_backend *io, const char *path, unsigned flags);
int io_posix_close(struct io_backend *io, int fd);
int io_posix_mkdir(struct io_backend *io, const char *path);
int io_posix_list_dir(struct io_backend *io, const char *path, io_list_fn fn, void *ctx);
int io_posix_dio_align(struct io_backend *io, int fd);
int64_t io_posix_file_size(struct io_backend *io, int fd);
ssize_t io_posix_pread(struct io_backend *io, int fd, void *buf, size_t len, uint64_t offset);
ssize_t io_posix_pwrite(struct io_backend *io, int fd, const void *buf, size_t len, uint64_t offset);
int io_posix_fdatasync(struct io_backend *io, int fd);
int io_posix_fallocate(struct io_backend *io, int fd, uint64_t offset, uint64_t len);
int io_posix_ftruncate(struct io_backend *io, int fd, uint64_t len);
int io_posix_rename(struct io_backend *io, const char *from, const char *to);
int io_posix_unlink(struct io_backend *io, const char *path);
int io_posix_fsync_dir(struct io_backend *io, const char *path);

#endif
