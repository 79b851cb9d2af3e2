/* Opening a path under a root directory fd without leaving it (see resolve.c). */
#ifndef MINIRUNC_RESOLVE_H
#define MINIRUNC_RESOLVE_H

/* An O_PATH|O_CLOEXEC fd of `rel` (relative to `root`; "" is the root itself) resolved as
 * openat2(RESOLVE_IN_ROOT) does: symlinks are followed inside `root`, absolute targets and
 * ".." at the top stay at `root`.  openat2 when the kernel has it (5.6), else a walk
 * component by component.  Returns -1 with errno (ELOOP after 40 links). */
int in_root_open(int root, const char *rel);

/* 1 once openat2 answered ENOSYS and the walk is in use (decided on the first call). */
int in_root_walking(void);

#endif
