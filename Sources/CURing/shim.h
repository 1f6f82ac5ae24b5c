#ifndef BLOCKSCOPE_CURING_SHIM_H
#define BLOCKSCOPE_CURING_SHIM_H
/* liburing 2.3 defines _XOPEN_SOURCE/_GNU_SOURCE itself; these headers must come
   first or Clang's module import fails on fd_set. */
#include <signal.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <sys/eventfd.h>
#include <liburing.h>
#include <fcntl.h>
#include <errno.h>

/* Flag macros that do not import into Swift as constants. */
static inline unsigned bs_fsync_datasync(void) { return IORING_FSYNC_DATASYNC; }
static inline int bs_uring_setup_cqsize(void) { return IORING_SETUP_CQSIZE; }
static inline int bs_o_direct(void) { return __O_DIRECT; }
static inline int bs_fallocate(int fd, int mode, long long off, long long len) { return fallocate(fd, mode, (off_t)off, (off_t)len); }
#endif
