/* in_root_open: openat2(RESOLVE_IN_ROOT), or the same resolution by hand on kernels
 * before 5.6 (what runc's filepath-securejoin does, but on fds, not on path strings).
 *
 * The walk keeps a stack of O_PATH fds, one per directory below the root, and opens one
 * component at a time with O_NOFOLLOW, so the kernel never follows a link for us:
 * - a symlink is read (readlinkat on its O_PATH fd) and its target spliced in front of
 *   the rest of the path; an absolute target restarts at the root;
 * - ".." pops the stack and at the root stays there (the fd's own ".." is never opened);
 * - more than 40 links (as the kernel's limit) is ELOOP; a missing component ENOENT, a
 *   non-directory in the middle ENOTDIR.
 * Every fd the walk opens is reached from the root by names looked up in directories
 * it already holds, so nothing outside the root is opened.  A directory renamed out of
 * the root by another process while the walk runs could still be reached (openat2
 * would say EAGAIN): callers check where the fd they mount on ended up through
 * /proc/self/fd, after the mount.  Only syscalls: safe in the init after clone. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "resolve.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define MAX_LINKS 40
#define MAX_DEPTH 512

static int walking;   /* 0: not known yet or openat2 works; 1: openat2 is ENOSYS */

int in_root_walking(void)
{
    return walking;
}

/* Close every fd on the stack above the root (slot 0 is the caller's root fd). */
static void unwind(int *stack, int *depth)
{
    while (*depth > 0)
        close(stack[(*depth)--]);
}

/* Put `head` + `tail` into `out` (`tail` is the rest of the path, "" or starting with
 * "/"; it may point into `out`'s old content). */
static int join_rest(char *out, size_t size, const char *head, size_t hl, const char *tail)
{
    char tmp[4096];
    size_t tl = strlen(tail);
    if (hl + tl + 1 > sizeof tmp || hl + tl + 1 > size)
        return -1;
    memcpy(tmp, head, hl);
    memcpy(tmp + hl, tail, tl + 1);
    memcpy(out, tmp, hl + tl + 1);
    return 0;
}

static int walk(int root, const char *rel)
{
    char path[4096], target[4096];
    int stack[MAX_DEPTH + 1], depth = 0, links = 0, e;
    size_t len = strlen(rel);
    if (len >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, rel, len + 1);
    stack[0] = root;
    char *p = path;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *end = p;
        while (*end && *end != '/')
            end++;
        size_t n = end - p;
        char name[256];
        if (n >= sizeof name) {
            e = ENAMETOOLONG;
            goto fail;
        }
        memcpy(name, p, n);
        name[n] = 0;
        p = end;
        if (!strcmp(name, "."))
            continue;
        if (!strcmp(name, "..")) {   /* the parent we came through; the root is its own */
            if (depth > 0)
                close(stack[depth--]);
            continue;
        }
        int fd = openat(stack[depth], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            e = errno;
            if (fd >= 0)
                close(fd);
            goto fail;
        }
        if (S_ISLNK(st.st_mode)) {
            ssize_t tl = readlinkat(fd, "", target, sizeof target - 1);
            e = errno;
            close(fd);
            if (tl < 0)
                goto fail;
            if (++links > MAX_LINKS) {
                e = ELOOP;
                goto fail;
            }
            target[tl] = 0;
            if (target[0] == '/')   /* absolute: from the root again */
                unwind(stack, &depth);
            if (join_rest(path, sizeof path, target, tl, p) < 0) {
                e = ENAMETOOLONG;
                goto fail;
            }
            p = path;
            continue;
        }
        int more = 0;
        for (char *q = p; *q; q++)
            if (*q != '/')
                more = 1;
        if ((more || *p == '/') && !S_ISDIR(st.st_mode)) {   /* "file/x" or "file/" */
            close(fd);
            e = ENOTDIR;
            goto fail;
        }
        if (depth == MAX_DEPTH) {
            close(fd);
            e = ENAMETOOLONG;
            goto fail;
        }
        stack[++depth] = fd;
    }
    if (depth == 0)
        return fcntl(root, F_DUPFD_CLOEXEC, 0);
    int fd = stack[depth--];
    unwind(stack, &depth);
    return fd;
fail:
    unwind(stack, &depth);
    errno = e;
    return -1;
}

int in_root_open(int root, const char *rel)
{
    if (!walking) {
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
        int fd = syscall(SYS_openat2, root, *rel ? rel : ".", &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS)
            return fd;
        walking = 1;
    }
    return walk(root, rel);
}
