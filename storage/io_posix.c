/* SPDX-License-Identifier: Apache-2.0 */
/* Synchronous file operations on real files, shared by the plain and
 * io_uring storage backends. Each returns a count or zero, or -errno. */
#include "storage/io_posix.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

/* Opens path read-write. With IO_OPEN_DIRECT the file must live on a file
 * system that honours O_DIRECT with real storage behind it: tmpfs and ramfs
 * accept the flag since Linux 6.6 but keep the data in memory only, so they
 * are rejected with -EOPNOTSUPP. */
int io_posix_open(struct io_backend *io, const char *path, unsigned flags)
{
  int oflags = O_RDWR | O_CLOEXEC;
  if (flags & IO_OPEN_CREATE)
    oflags |= O_CREAT | O_EXCL;
  if (flags & IO_OPEN_DIRECT)
    oflags |= O_DIRECT;

  int fd = open(path, oflags, 0640);
  if (fd < 0)
    return -errno;

  if (flags & IO_OPEN_DIRECT) {
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0) {
      int err = -errno;
      close(fd);
      return err;
    }
    if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC) {
      close(fd);
      return -EOPNOTSUPP;
    }
  }
  return fd;
}

int io_posix_close(struct io_backend *io, int fd)
{
  return close(fd) == 0 ? 0 : -errno;
}

int io_posix_mkdir(struct io_backend *io, const char *path)
{
  return mkdir(path, 0750) == 0 ? 0 : -errno;
}

int io_posix_list_dir(struct io_backend *io, const char *path, io_list_fn fn, void *ctx)
{
  DIR *d = opendir(path);
  if (d == NULL)
    return -errno;

  /* Bounded by the directory's entry count. */
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] != '.')
      fn(ctx, de->d_name);
  }
  closedir(d);
  return 0;
}

/* Largest file system block size taken as the write alignment. */
#define DIO_ALIGN_BLKSIZE_MAX 65536

/* Returns the write alignment for O_DIRECT on the file: the larger of the
 * direct-I/O offset alignment from statx(STATX_DIOALIGN), 4096 when the
 * kernel or file system does not report one, and the file system's block
 * size. O_DIRECT accepts writes at the offset alignment, often 512, but
 * ext4 handles a write that starts inside one of its 4096-byte blocks on a
 * slow path: a 4 MiB write at 512-byte alignment took 35 to 50 ms, against
 * 10 ms at 4096 (shoal-store-bench, ext4 on a virtio disk). */
int io_posix_dio_align(struct io_backend *io, int fd)
{
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN | STATX_BASIC_STATS, &sx) != 0)
    return 4096;
  uint32_t align = 4096;
  if ((sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align != 0)
    align = sx.stx_dio_offset_align;
  uint32_t blksize = sx.stx_blksize;
  bool power_of_two = blksize != 0 && (blksize & (blksize - 1)) == 0;
  if (power_of_two && blksize > align && blksize <= DIO_ALIGN_BLKSIZE_MAX)
    align = blksize;
  return (int)align;
}

int64_t io_posix_file_size(struct io_backend *io, int fd)
{
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -errno;
  return st.st_size;
}

/* Reads until len bytes or end of file; returns the bytes read. */
ssize_t io_posix_pread(struct io_backend *io, int fd, void *buf, size_t len, uint64_t offset)
{
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

ssize_t io_posix_pwrite(struct io_backend *io, int fd, const void *buf, size_t len, uint64_t offset)
{
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return -EIO;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

int io_posix_fdatasync(struct io_backend *io, int fd)
{
  return fdatasync(fd) == 0 ? 0 : -errno;
}

int io_posix_fallocate(struct io_backend *io, int fd, uint64_t offset, uint64_t len)
{
  return fallocate(fd, 0, (off_t)offset, (off_t)len) == 0 ? 0 : -errno;
}

int io_posix_ftruncate(struct io_backend *io, int fd, uint64_t len)
{
  return ftruncate(fd, (off_t)len) == 0 ? 0 : -errno;
}

int io_posix_rename(struct io_backend *io, const char *from, const char *to)
{
  return rename(from, to) == 0 ? 0 : -errno;
}

int io_posix_unlink(struct io_backend *io, const char *path)
{
  return unlink(path) == 0 ? 0 : -errno;
}

/* Makes the directory's entries (created, renamed, removed files) durable. */
int io_posix_fsync_dir(struct io_backend *io, const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}
