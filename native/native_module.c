/* C side of the cffi module minirunc._native (built by native/build_native.py).
 *
 * Holds the embedded init helper (minirunc-init, pulled in with .incbin) and the few
 * syscalls the Python runtime cannot make cheaply itself: a vfork-style spawn that
 * execs the init from its memfd, SOCK_SEQPACKET unix sockets, fd passing.
 * Every function returns -errno on failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

__asm__(
    ".section .rodata\n"
    ".balign 16\n"
    "mr_init_blob_start:\n"
    ".incbin \"@INIT_BIN@\"\n"
    "mr_init_blob_end:\n"
    ".previous\n");
extern const unsigned char mr_init_blob_start[] __attribute__((visibility("hidden")));
extern const unsigned char mr_init_blob_end[] __attribute__((visibility("hidden")));

const unsigned char *mr_init_data(void) { return mr_init_blob_start; }
size_t mr_init_size(void) { return mr_init_blob_end - mr_init_blob_start; }

/* ------------------------------------------------------------------ spawn */

struct spawn_args {
    int exe_fd, nfds, first_fd;
    char *const *argv;
    const int *fds;
    volatile int err;   /* shared with the parent (CLONE_VM): errno of a failed child */
};

/* The child: runs on its own stack in the parent's memory until execveat.
 * Only raw syscalls here. */
static int spawn_child(void *p)
{
    struct spawn_args *a = p;
    char *const envp[] = { NULL };
    int top = a->first_fd + a->nfds, i, fl;
    sigset_t all;

    /* Default dispositions (Python ignores SIGPIPE), then unblock. */
    for (i = 1; i < 65; i++) {
        if (i == SIGKILL || i == SIGSTOP)
            continue;
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigaction(i, &sa, NULL);
    }
    /* Keep 0..first_fd-1 across exec. */
    for (i = 0; i < a->first_fd; i++)
        if ((fl = fcntl(i, F_GETFD)) >= 0 && (fl & FD_CLOEXEC))
            fcntl(i, F_SETFD, fl & ~FD_CLOEXEC);
    /* Park the helper's fds above every target slot, then put them in place. */
    int base = top + 1, parked[64];
    for (i = 0; i < a->nfds; i++) {
        if (a->fds[i] >= base)
            base = a->fds[i] + 1;
    }
    if (a->exe_fd >= base)
        base = a->exe_fd + 1;
    int exe = fcntl(a->exe_fd, F_DUPFD_CLOEXEC, base);
    if (exe < 0)
        goto fail;
    for (i = 0; i < a->nfds; i++)
        if ((parked[i] = fcntl(a->fds[i], F_DUPFD_CLOEXEC, base)) < 0)
            goto fail;
    /* Inherited by the init, which marks them close-on-exec itself at once. */
    for (i = 0; i < a->nfds; i++)
        if (dup3(parked[i], a->first_fd + i, 0) < 0)
            goto fail;
    if (dup3(exe, top, O_CLOEXEC) < 0)
        goto fail;
    syscall(SYS_close_range, top + 1, ~0U, 0);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    syscall(SYS_execveat, top, "", a->argv, envp, AT_EMPTY_PATH);
fail:
    a->err = errno;
    _exit(127);
}

int mr_spawn(int exe_fd, char *const argv[], const int *fds, int nfds, int first_fd)
{
    struct spawn_args a = { exe_fd, nfds, first_fd, argv, fds, 0 };
    const size_t stack_size = 64 * 1024;
    sigset_t all, old;
    if (nfds < 0 || nfds > 64 || first_fd < 0)
        return -EINVAL;
    /* A stack per call: cffi releases the GIL, so two threads may spawn at once. */
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -errno;
    /* Block signals so no Python-level handler runs in the child sharing our memory. */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    int pid = clone(spawn_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);   /* the child has exec'd or exited (CLONE_VFORK) */
    if (pid < 0)
        return -e;
    if (a.err) {   /* exec failed: reap the child, report its errno */
        waitpid(pid, NULL, 0);
        return -a.err;
    }
    return pid;
}

/* ---------------------------------------------------------------- sockets */

int mr_socketpair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0;
}

/* Fill sun_path; a path too long for it goes through /proc/self/fd/<dir fd>/name. */
static int unix_addr(const char *path, struct sockaddr_un *sa, int *dirfd)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    if (strlen(path) < sizeof sa->sun_path) {
        strcpy(sa->sun_path, path);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash || (size_t)(slash - path) >= sizeof dir)
        return -ENAMETOOLONG;
    memcpy(dir, path, slash - path);
    dir[slash - path] = 0;
    *dirfd = open(slash == path ? "/" : dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0)
        return -errno;
    int n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", *dirfd, slash + 1);
    if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
        close(*dirfd);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int unix_socket(const char *path, int listening)
{
    struct sockaddr_un sa;
    int dirfd, r = unix_addr(path, &sa, &dirfd);
    if (r < 0)
        return r;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s < 0)
        r = -errno;
    else if (listening && (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 16) < 0))
        r = -errno;
    else if (!listening && connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
        r = -errno;
    if (dirfd >= 0)
        close(dirfd);
    if (r < 0) {
        if (s >= 0)
            close(s);
        return r;
    }
    return s;
}

int mr_listen_unix(const char *path) { return unix_socket(path, 1); }
int mr_connect_unix(const char *path) { return unix_socket(path, 0); }

ssize_t mr_send(int sock, const void *buf, size_t len, int fd_or_minus1)
{
    struct iovec iov = { (void *)buf, len };
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cbuf;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd_or_minus1 >= 0) {
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.b;
        mh.msg_controllen = sizeof cbuf.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd_or_minus1, sizeof(int));
    }
    /* EINTR goes back to Python so that its signal handlers run; it retries. */
    ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL);
    return r < 0 ? -errno : r;
}

/* One packet; a passed fd arrives close-on-exec in *fd_out (else -1). */
ssize_t mr_recv(int sock, void *buf, size_t len, int *fd_out)
{
    struct iovec iov = { buf, len };
    union { char b[CMSG_SPACE(4 * sizeof(int))]; struct cmsghdr align; } cbuf;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
                         .msg_controllen = sizeof cbuf.b };
    *fd_out = -1;
    ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);   /* EINTR: Python retries */
    if (r < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), fds[4];
        memcpy(fds, CMSG_DATA(c), n * sizeof(int));
        for (int i = 0; i < n; i++) {
            if (*fd_out < 0)
                *fd_out = fds[i];
            else
                close(fds[i]);   /* only one fd is ever expected */
        }
    }
    if (mh.msg_flags & MSG_TRUNC)
        return -EMSGSIZE;
    return r;
}

int mr_set_dumpable(int flag)
{
    return prctl(PR_SET_DUMPABLE, flag, 0, 0, 0) < 0 ? -errno : 0;
}
