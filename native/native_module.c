/* C side of the cffi module minirunc._native (built by native/build_native.py).
 *
 * Holds the embedded init helper (minirunc-init, pulled in with .incbin) and the few
 * syscalls the Python runtime cannot make cheaply itself: a vfork-style spawn that
 * execs the init from its memfd, SOCK_SEQPACKET unix sockets, fd passing, and the cgroup v2
 * device filter (an eBPF program loaded and attached with raw bpf(2), at the end).
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
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
    char fd_path[32];   /* "/proc/self/fd/<top>", made by the parent (see spawn_child) */
};

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Close every fd >= `low`: close_range (Linux 5.9), else each fd /proc/self/fd lists
 * (read with getdents64: no malloc, the child shares our memory), else every number up
 * to the RLIMIT_NOFILE hard limit.  Only raw syscalls: safe in the vfork child. */
static int close_from(int low)
{
    if (syscall(SYS_close_range, low, ~0U, 0) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        char buf[4096];
        long n;
        /* Closing entries already read does not move the directory's offset (it is
         * by fd number): every open fd is seen. */
        while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
                off += d->d_reclen;
                int fd = 0;
                const char *c = d->d_name;
                if (*c < '0' || *c > '9')
                    continue;
                while (*c >= '0' && *c <= '9')
                    fd = fd * 10 + (*c++ - '0');
                if (fd >= low && fd != dir)
                    close(fd);
            }
        }
        int e = n < 0 ? errno : 0;
        close(dir);
        if (!e)
            return 0;
        errno = e;
        return -1;
    }
    /* No /proc: every number an fd can have (slow, but nothing may leak).  An fd can
     * sit above a lowered limit, so at least the default fs.nr_open (2^20). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    rlim_t end = rl.rlim_max > (1U << 20) ? rl.rlim_max : (1U << 20);
    if (end > 0x7fffffff)
        end = 0x7fffffff;
    for (rlim_t fd = low; fd < end; fd++)
        close((int)fd);
    return 0;
}

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
    if (close_from(top + 1) < 0)
        goto fail;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    syscall(SYS_execveat, top, "", a->argv, envp, AT_EMPTY_PATH);
    /* TOMOYO before upstream ada1986d0797 (Debian 11's 5.10.223 among others) looks the
     * program up as "/dev/fd/N" and answers ENOENT where /dev/fd does not exist (a host
     * without udev): the same file by its /proc name.  An ELF opens before close-on-exec. */
    if (errno == ENOENT) {
        int first = errno;
        execve(a->fd_path, a->argv, envp);
        errno = first;
    }
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
    snprintf(a.fd_path, sizeof a.fd_path, "/proc/self/fd/%d", first_fd + nfds);
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

#ifndef SYS_renameat2
#define SYS_renameat2 316
#endif
#define MR_RENAME_EXCHANGE 2   /* <linux/fs.h>; glibc 2.17 has no renameat2() */

/* Swap two existing paths atomically (renameat2 RENAME_EXCHANGE, Linux 3.15; not every
 * filesystem has it): 0, or -errno with nothing changed. */
int mr_rename_exchange(const char *a, const char *b)
{
    return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, MR_RENAME_EXCHANGE) < 0 ? -errno : 0;
}

/* 1 if the kernel lacks syscall `nr` (ENOSYS), 0 if it has it.  The arguments (-1 fds,
 * NULL pointers, zero sizes) are ones every syscall probed this way refuses. */
int mr_syscall_missing(long nr)
{
    long r = syscall(nr, -1, NULL, 0, NULL, 0);
    return r < 0 && errno == ENOSYS;
}

/* ------------------------------------------------------ cgroup v2 device filter
 *
 * cgroup v2 has no devices controller: device access is decided by eBPF programs of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (every attached program, and those of
 * the ancestors, must allow).  mr_device_filter emits one such program from a rule list,
 * loads it, attaches it to the container's cgroup directory with BPF_F_ALLOW_MULTI and then
 * detaches the programs this runtime attached there before (named MR_DEV_PROG_NAME), so that
 * `update` replaces the rules without a moment where none apply.
 *
 * Semantics (runc's devicefilter): the rules are tried from the LAST to the first; the first
 * one that matches decides (allow -> 1, deny -> 0); none matching -> default_allow.  A rule
 * matches an access when its type is 'a' or equal to the device's, its major and minor are
 * -1 or equal, and the requested access bits are a subset of the rule's "rwm" letters.
 *
 * The program only reads its context (struct bpf_cgroup_dev_ctx):
 *   r2 = access_type & 0xffff   (BPF_DEVCG_DEV_BLOCK / _CHAR)
 *   r3 = access_type >> 16      (BPF_DEVCG_ACC_MKNOD | _READ | _WRITE)
 *   r4 = major, r5 = minor
 * and per rule:  if (r2 != type) goto next; w1 = w3 & acc; if (w1 != w3) goto next;
 *                if (w4 != major) goto next; if (w5 != minor) goto next; r0 = allow; exit
 * (checks for wildcards are left out).  A rule that matches everything ends the program:
 * the verifier refuses unreachable instructions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <linux/bpf.h>

#define MR_DEV_PROG_NAME "minirunc_dev"
#define MR_DEV_MAX_RULES 4096
#define MR_DEV_MAX_OLD 64

struct mr_dev_rule {
    int type;          /* 'a' (any), 'b' or 'c' */
    int64_t major;     /* -1: any */
    int64_t minor;     /* -1: any */
    char access[4];    /* letters of "rwm", NUL-terminated */
    int allow;
};

/* Steps reported in *step when mr_device_filter fails. */
enum { MR_DEV_STEP_RULES = 1, MR_DEV_STEP_LOAD, MR_DEV_STEP_QUERY, MR_DEV_STEP_ATTACH,
       MR_DEV_STEP_DETACH };

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
    return i;
}

/* "if (w<dst> != imm or w<src>) goto <next>" (32-bit compare) at out[*n]. */
static void jne_next(struct bpf_insn *out, int *n, int srcmode, int dst, int src, int32_t imm,
                     int next)
{
    out[*n] = insn(BPF_JMP32 | BPF_JNE | srcmode, dst, src, (int16_t)(next - (*n + 1)), imm);
    (*n)++;
}

/* Emit the program for `rules` into `out` (room for 6 + 8 * nrules); returns its length,
 * or -EINVAL for a bad rule. */
static int dev_emit(const struct mr_dev_rule *rules, int nrules, int default_allow,
                    struct bpf_insn *out)
{
    int n = 0;
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0);
    out[n++] = insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xFFFF);
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0);
    out[n++] = insn(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0);
    out[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0);

    for (int i = nrules - 1; i >= 0; i--) {
        const struct mr_dev_rule *r = &rules[i];
        int32_t acc = 0, type;
        for (const char *p = r->access; *p; p++) {
            if (*p == 'r')
                acc |= BPF_DEVCG_ACC_READ;
            else if (*p == 'w')
                acc |= BPF_DEVCG_ACC_WRITE;
            else if (*p == 'm')
                acc |= BPF_DEVCG_ACC_MKNOD;
            else
                return -EINVAL;
        }
        if (r->type == 'c')
            type = BPF_DEVCG_DEV_CHAR;
        else if (r->type == 'b')
            type = BPF_DEVCG_DEV_BLOCK;
        else if (r->type == 'a')
            type = 0;
        else
            return -EINVAL;
        if (acc == 0 || r->major < -1 || r->major > UINT32_MAX || r->minor < -1 ||
            r->minor > UINT32_MAX)
            return -EINVAL;
        int all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
        int len = (type ? 1 : 0) + (acc != all ? 3 : 0) + (r->major >= 0) + (r->minor >= 0) + 2;
        int next = n + len;   /* index of the next rule's block */
        if (type)
            jne_next(out, &n, BPF_K, BPF_REG_2, 0, type, next);
        if (acc != all) {
            out[n++] = insn(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
            out[n++] = insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, acc);
            jne_next(out, &n, BPF_X, BPF_REG_1, BPF_REG_3, 0, next);
        }
        if (r->major >= 0)
            jne_next(out, &n, BPF_K, BPF_REG_4, 0, (int32_t)(uint32_t)r->major, next);
        if (r->minor >= 0)
            jne_next(out, &n, BPF_K, BPF_REG_5, 0, (int32_t)(uint32_t)r->minor, next);
        out[n++] = insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0);
        out[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        if (len == 2)          /* matches everything: what follows is unreachable */
            return n;
    }
    out[n++] = insn(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, default_allow ? 1 : 0);
    out[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    return n;
}

/* Load the program for `rules` (the caller closes the fd); on failure the verifier's log
 * goes to `log` (NUL-terminated) when log_size > 0. */
static int dev_load(const struct mr_dev_rule *rules, int nrules, int default_allow,
                    char *log, size_t log_size, int *step)
{
    *step = MR_DEV_STEP_RULES;
    if (nrules < 0 || nrules > MR_DEV_MAX_RULES)
        return -EINVAL;
    struct bpf_insn *prog = calloc(8 + 8 * (size_t)nrules, sizeof *prog);
    if (!prog)
        return -ENOMEM;
    int n = dev_emit(rules, nrules, default_allow, prog);
    if (n < 0) {
        free(prog);
        return n;
    }
    *step = MR_DEV_STEP_LOAD;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uintptr_t)prog;
    attr.insn_cnt = n;
    attr.license = (uintptr_t)"GPL";
    strncpy(attr.prog_name, MR_DEV_PROG_NAME, sizeof attr.prog_name - 1);
    int fd = sys_bpf(BPF_PROG_LOAD, &attr);
    int err = errno;
    if (fd < 0 && log && log_size > 1 && err != EPERM) {
        /* Again with the verifier's log, which is only wanted on failure. */
        memset(log, 0, log_size);
        attr.log_level = 1;
        attr.log_buf = (uintptr_t)log;
        attr.log_size = log_size > UINT32_MAX ? UINT32_MAX : (uint32_t)log_size;
        fd = sys_bpf(BPF_PROG_LOAD, &attr);
        err = errno;
        log[log_size - 1] = 0;
        if (fd >= 0) {        /* loaded the second time: keep it, the log says why */
            free(prog);
            return fd;
        }
    }
    free(prog);
    return fd < 0 ? -err : fd;
}

/* The ids of the programs named MR_DEV_PROG_NAME attached directly to the cgroup. */
static int dev_ours(int cgroup_fd, uint32_t *ids, int max)
{
    uint32_t all[MR_DEV_MAX_OLD];
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.query.target_fd = cgroup_fd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = (uintptr_t)all;
    attr.query.prog_cnt = MR_DEV_MAX_OLD;
    if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
        return -errno;
    int count = 0;
    for (uint32_t i = 0; i < attr.query.prog_cnt && i < MR_DEV_MAX_OLD; i++) {
        union bpf_attr a;
        memset(&a, 0, sizeof a);
        a.prog_id = all[i];
        int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
        if (fd < 0)
            continue;          /* gone meanwhile */
        struct bpf_prog_info info;
        memset(&info, 0, sizeof info);
        memset(&a, 0, sizeof a);
        a.info.bpf_fd = fd;
        a.info.info_len = sizeof info;
        a.info.info = (uintptr_t)&info;
        if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0 &&
            strncmp(info.name, MR_DEV_PROG_NAME, sizeof info.name) == 0 && count < max)
            ids[count++] = all[i];
        close(fd);
    }
    return count;
}

int mr_device_filter(int cgroup_fd, const struct mr_dev_rule *rules, int nrules,
                     int default_allow, char *log, size_t log_size, int *step)
{
    uint32_t old[MR_DEV_MAX_OLD];
    int prog = dev_load(rules, nrules, default_allow, log, log_size, step), r = 0;
    if (prog < 0)
        return prog;
    *step = MR_DEV_STEP_QUERY;
    int nold = dev_ours(cgroup_fd, old, MR_DEV_MAX_OLD);
    if (nold < 0) {
        close(prog);
        return nold;
    }
    *step = MR_DEV_STEP_ATTACH;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.target_fd = cgroup_fd;
    attr.attach_bpf_fd = prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0) {
        r = -errno;
        close(prog);
        return r;
    }
    close(prog);               /* the cgroup holds it now */
    /* The new program is in place: drop the ones it replaces. */
    *step = MR_DEV_STEP_DETACH;
    for (int i = 0; i < nold; i++) {
        union bpf_attr a;
        memset(&a, 0, sizeof a);
        a.prog_id = old[i];
        int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
        if (fd < 0)
            continue;
        memset(&a, 0, sizeof a);
        a.target_fd = cgroup_fd;
        a.attach_bpf_fd = fd;
        a.attach_type = BPF_CGROUP_DEVICE;
        if (sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT && r == 0)
            r = -errno;
        close(fd);
    }
    if (r == 0)
        *step = 0;
    return r;
}

/* The program mr_device_filter would load, for tests: its instructions as 8-byte records
 * in `out` (room for `max`); returns their number or -errno. */
int mr_device_filter_emit(const struct mr_dev_rule *rules, int nrules, int default_allow,
                          void *out, int max)
{
    if (nrules < 0 || nrules > MR_DEV_MAX_RULES || max < 8 + 8 * nrules)
        return -EINVAL;
    return dev_emit(rules, nrules, default_allow, out);
}
