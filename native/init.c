/* minirunc-init: the container init helper of minirunc (see docs/design.md).
 *
 * Python plans, this program executes.  Stage 1 (P1) reads the plan from a memfd,
 * joins namespaces and clones stage 2 (P2) with CLONE_PARENT, so P2 becomes a child
 * of the runtime.  P2 sets up the rootfs, pivots, drops privileges, reports `R` on
 * the sync socket, waits for `S` on the start socket and execs the container process.
 * Every failure is sent as `E<errno>\0<step>\0<detail>` and ends the process.
 *
 * Linked statically (musl, by zig cc, + Debian's libseccomp.a: native/build_native.py).
 * After the clone only syscalls and the string helpers below are used: no stdio, no
 * locale, no threads.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#ifndef MOUNT_ATTR_IDMAP   /* musl's <sys/mount.h> lacks the new mount API (glibc 2.36 has it) */
#include <linux/mount.h>
#endif
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#include "resolve.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* ------------------------------------------------------------------ plan */

/* Plan record tags; must match src/minirunc/planformat.py RECORDS. */
enum {
    T_NS_NEW = 1, T_NS_JOIN = 2, T_HOSTNAME = 4, T_DOMAINNAME = 5, T_ROOTFS = 6,
    T_MOUNT = 7, T_DEVICE = 8, T_SYMLINK = 9, T_MASKED = 10, T_READONLY = 11,
    T_SYSCTL = 12, T_RLIMIT = 13, T_CAPS = 14, T_USER = 15, T_NO_NEW_PRIVS = 16,
    T_OOM_SCORE_ADJ = 17, T_CWD = 18, T_ENV = 19, T_ARG = 20, T_TERMINAL = 21,
    T_SECCOMP_INIT = 22, T_SECCOMP_RULE = 23, T_PRESERVE_FDS = 24,
    T_SECCOMP_ARCH = 25, T_DEV_SETUP = 26, T_PERSONALITY = 27, T_HOOK_SYNC = 28,
    T_HOOK = 29, T_HOOK_ARG = 30, T_HOOK_ENV = 31, T_SESSION_KEYRING = 32,
    T_TIME_OFFSET = 33, T_SCHEDULER = 34, T_IO_PRIORITY = 35, T_MOUNT_IDMAP = 36,
    T_CPU_AFFINITY = 37, T_LSM_LABEL = 40, T_MOUNT_COPYUP = 41, T_SHARED_MOUNT_NS = 42,
    T_CGROUP_JOIN = 43, T_MAX = 44
};

/* Field kinds per tag: u = u64, i = i64, s = string, L = list of u64. */
static const char *const KINDS[T_MAX] = {
    [T_NS_NEW] = "u", [T_NS_JOIN] = "us", [T_HOSTNAME] = "s", [T_DOMAINNAME] = "s",
    [T_ROOTFS] = "suuu", [T_MOUNT] = "usssuuuusu", [T_DEVICE] = "suuuuuuu",
    [T_SYMLINK] = "ss", [T_MASKED] = "s", [T_READONLY] = "s", [T_SYSCTL] = "ss",
    [T_RLIMIT] = "uuu", [T_CAPS] = "uuuuu", [T_USER] = "uuuL", [T_NO_NEW_PRIVS] = "u",
    [T_OOM_SCORE_ADJ] = "i", [T_CWD] = "s", [T_ENV] = "s", [T_ARG] = "s",
    [T_TERMINAL] = "uu", [T_SECCOMP_INIT] = "uu", [T_SECCOMP_RULE] = "suL",
    [T_PRESERVE_FDS] = "u", [T_SECCOMP_ARCH] = "s", [T_DEV_SETUP] = "u",
    [T_PERSONALITY] = "u", [T_HOOK_SYNC] = "u", [T_HOOK] = "ussu", [T_HOOK_ARG] = "s",
    [T_HOOK_ENV] = "s", [T_SESSION_KEYRING] = "su",
    [T_TIME_OFFSET] = "siu", [T_SCHEDULER] = "uuiuuuu", [T_IO_PRIORITY] = "uu",
    [T_MOUNT_IDMAP] = "uss", [T_CPU_AFFINITY] = "uL",
    [T_LSM_LABEL] = "us", [T_MOUNT_COPYUP] = "u", [T_SHARED_MOUNT_NS] = "u",
    [T_CGROUP_JOIN] = "us",
};

#define MAXF 10
struct field { uint64_t u; char *s; uint32_t n; uint64_t *l; };
struct rec { uint32_t tag; struct field f[MAXF]; };

static struct rec *recs;
static size_t nrecs;

/* ------------------------------------------------------- messages, errors */

static int sync_fd = -1;

struct msg { char b[4096]; size_t n; };

static void m_add(struct msg *m, const char *s)
{
    while (s && *s && m->n < sizeof m->b - 1)
        m->b[m->n++] = *s++;
}

static void m_chr(struct msg *m, char c)
{
    if (m->n < sizeof m->b)
        m->b[m->n++] = c;
}

static void m_num(struct msg *m, long long v)
{
    char tmp[24];
    int i = 0;
    unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
    if (v < 0)
        m_chr(m, '-');
    do tmp[i++] = '0' + u % 10; while ((u /= 10) && i < 23);
    while (i)
        m_chr(m, tmp[--i]);
}

/* Send one packet, optionally passing an fd (SCM_RIGHTS). */
static int send_packet(int sock, const void *buf, size_t len, int fd)
{
    struct iovec iov = { (void *)buf, len };
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cbuf;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        mh.msg_control = cbuf.b;
        mh.msg_controllen = sizeof cbuf.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t r;
    do r = sendmsg(sock, &mh, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

/* Build `E<errno>\0<step>\0<detail...>` from a NULL-terminated list of strings. */
static void build_error(struct msg *m, int err, const char *step, va_list ap)
{
    const char *s;
    m->n = 0;
    m_chr(m, 'E');
    m_num(m, err);
    m_chr(m, 0);
    m_add(m, step);
    m_chr(m, 0);
    while ((s = va_arg(ap, const char *)))
        m_add(m, s);
}

/* Report a failed step on the sync socket and exit 1. */
static void __attribute__((noreturn, sentinel)) fail(int err, const char *step, ...)
{
    struct msg m;
    va_list ap;
    va_start(ap, step);
    build_error(&m, err, step, ap);
    va_end(ap);
    send_packet(sync_fd, m.b, m.n, -1);
    _exit(1);
}

/* Send a `K` step marker: what stage 2 does next.  If it dies without a word (killed by
 * the OOM killer of its cgroup, a signal), the runtime names this step in its message. */
static void step(const char *what)
{
    struct msg m = { .n = 0 };
    m_chr(&m, 'K');
    m_add(&m, what);
    send_packet(sync_fd, m.b, m.n, -1);
}

/* Send an `N` note (shown with --debug). */
static void __attribute__((sentinel)) note(const char *first, ...)
{
    struct msg m = { .n = 0 };
    const char *s;
    va_list ap;
    m_chr(&m, 'N');
    m_add(&m, first);
    va_start(ap, first);
    while ((s = va_arg(ap, const char *)))
        m_add(&m, s);
    va_end(ap);
    send_packet(sync_fd, m.b, m.n, -1);
}

static const char *num(char *buf, long long v)
{
    struct msg m = { .n = 0 };
    m_num(&m, v);
    memcpy(buf, m.b, m.n);
    buf[m.n] = 0;
    return buf;
}

static const char *hex(char *buf, unsigned long long v)
{
    int i = 0;
    char tmp[20];
    do tmp[i++] = "0123456789abcdef"[v & 15]; while ((v >>= 4));
    for (int j = 0; j < i; j++)
        buf[j] = tmp[i - 1 - j];
    buf[i] = 0;
    return buf;
}

/* A user value for a message: whole when short, else its first 60 bytes and
 * "... (N bytes)", as errors.shown() does on the Python side.  `buf` holds 128 bytes. */
static const char *cut(char *buf, const char *s)
{
    size_t n = strlen(s);
    if (n <= 60)
        return s;
    struct msg m = { .n = 0 };
    memcpy(m.b, s, 60);
    m.n = 60;
    m_add(&m, "... (");
    m_num(&m, (long long)n);
    m_add(&m, " bytes)");
    memcpy(buf, m.b, m.n);
    buf[m.n] = 0;
    return buf;
}

static const char *ns_name(int flag)
{
    switch (flag) {
    case CLONE_NEWUSER: return "user";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWNET: return "network";
    case CLONE_NEWPID: return "pid";
    case CLONE_NEWCGROUP: return "cgroup";
    case CLONE_NEWTIME: return "time";
    case CLONE_NEWNS: return "mount";
    }
    return "";
}

/* MS_* flags as `MS_BIND|MS_REC` for error messages. */
static const char *ms_text(char *buf, size_t size, unsigned long flags)
{
    static const struct { unsigned long f; const char *n; } T[] = {
        {MS_RDONLY, "MS_RDONLY"}, {MS_NOSUID, "MS_NOSUID"}, {MS_NODEV, "MS_NODEV"},
        {MS_NOEXEC, "MS_NOEXEC"}, {MS_SYNCHRONOUS, "MS_SYNCHRONOUS"},
        {MS_REMOUNT, "MS_REMOUNT"}, {MS_MANDLOCK, "MS_MANDLOCK"}, {MS_DIRSYNC, "MS_DIRSYNC"},
        {256, "MS_NOSYMFOLLOW"}, {MS_NOATIME, "MS_NOATIME"}, {MS_NODIRATIME, "MS_NODIRATIME"},
        {MS_BIND, "MS_BIND"}, {MS_MOVE, "MS_MOVE"}, {MS_REC, "MS_REC"}, {MS_SILENT, "MS_SILENT"},
        {MS_POSIXACL, "MS_POSIXACL"}, {MS_UNBINDABLE, "MS_UNBINDABLE"},
        {MS_PRIVATE, "MS_PRIVATE"}, {MS_SLAVE, "MS_SLAVE"}, {MS_SHARED, "MS_SHARED"},
        {MS_RELATIME, "MS_RELATIME"}, {MS_STRICTATIME, "MS_STRICTATIME"},
        {MS_LAZYTIME, "MS_LAZYTIME"},
    };
    struct msg m = { .n = 0 };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (!(flags & T[i].f))
            continue;
        if (m.n)
            m_chr(&m, '|');
        m_add(&m, T[i].n);
        flags &= ~T[i].f;
    }
    if (flags) {
        char hb[24];
        m_add(&m, m.n ? "|0x" : "0x");
        m_add(&m, hex(hb, flags));
    }
    if (!m.n)
        m_add(&m, "0");
    size_t n = m.n < size - 1 ? m.n : size - 1;
    memcpy(buf, m.b, n);
    buf[n] = 0;
    return buf;
}

/* ------------------------------------------------------------ plan parsing */

static int read_le32(const uint8_t *p, uint32_t *v, size_t left)
{
    if (left < 4)
        return -1;
    *v = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Decode one payload into r according to KINDS; -1 on a length mismatch. */
static int decode_fields(struct rec *r, const uint8_t *p, uint32_t len)
{
    const char *k = KINDS[r->tag];
    size_t pos = 0;
    for (int i = 0; k[i]; i++) {
        struct field *f = &r->f[i];
        uint32_t n;
        if (k[i] == 'u' || k[i] == 'i') {
            if (len - pos < 8)
                return -1;
            f->u = le64(p + pos);
            pos += 8;
            continue;
        }
        if (read_le32(p + pos, &n, len - pos))
            return -1;
        pos += 4;
        f->n = n;
        if (k[i] == 's') {
            if (len - pos < n || memchr(p + pos, 0, n))
                return -1;
            f->s = malloc(n + 1);
            if (!f->s)
                return -1;
            memcpy(f->s, p + pos, n);
            f->s[n] = 0;
            pos += n;
        } else {
            if ((len - pos) / 8 < n)
                return -1;
            f->l = calloc(n + 1, 8);
            if (!f->l)
                return -1;
            for (uint32_t j = 0; j < n; j++)
                f->l[j] = le64(p + pos + 8 * j);
            pos += 8 * (size_t)n;
        }
    }
    return pos == len ? 0 : -1;
}

/* Read the whole plan memfd (from offset 0) and decode every record. */
static void load_plan(int fd)
{
    struct stat st;
    char nb[24], nb2[24];
    if (fstat(fd, &st) < 0)
        fail(errno, "plan", "read the plan: fstat of fd ", num(nb, fd), NULL);
    size_t size = st.st_size;
    uint8_t *buf = malloc(size + 1);
    size_t got = 0;
    while (buf && got < size) {
        ssize_t r = pread(fd, buf + got, size - got, got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail(r < 0 ? errno : EIO, "plan", "read the plan from fd ", num(nb, fd), NULL);
        got += r;
    }
    if (!buf || size < 8 || memcmp(buf, "MRPLAN1\0", 8))
        fail(EINVAL, "plan", "the plan has a bad magic (not a minirunc plan)", NULL);
    recs = calloc(size / 8 + 1, sizeof *recs);   /* a record takes at least 8 bytes */
    for (size_t pos = 8; pos < size;) {
        uint32_t tag, len;
        if (read_le32(buf + pos, &tag, size - pos) || read_le32(buf + pos + 4, &len, size - pos - 4))
            fail(EINVAL, "plan", "truncated record header at offset ", num(nb, pos), NULL);
        pos += 8;
        if (tag >= T_MAX || !KINDS[tag])
            fail(EINVAL, "plan", "unknown plan record tag ", num(nb, tag),
                 " (runtime and init helper out of sync?)", NULL);
        if (len > size - pos)
            fail(EINVAL, "plan", "record tag ", num(nb, tag), " is longer than the plan", NULL);
        struct rec *r = &recs[nrecs++];
        r->tag = tag;
        if (decode_fields(r, buf + pos, len))
            fail(EINVAL, "plan", "record tag ", num(nb, tag), " at offset ", num(nb2, pos - 8),
                 ": length does not match its fields", NULL);
        pos += len;
    }
    free(buf);
}

static struct rec *find(uint32_t tag)
{
    for (size_t i = 0; i < nrecs; i++)
        if (recs[i].tag == tag)
            return &recs[i];
    return NULL;
}

#define FOR_EACH(r, t) for (struct rec *r = recs; r < recs + nrecs; r++) if (r->tag == (t))

/* ------------------------------------------------------- small fs helpers */

static int write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, len);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)len ? 0 : -1;
}

static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, size - 1);
    close(fd);
    if (r >= 0)
        buf[r] = 0;
    return r;
}

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

/* Write a /proc file only if it is on a real procfs: a bind mount over /proc or one of
 * its files would otherwise take the write (CVE-2019-16884).  -1 with errno when the file
 * cannot be opened or written; a file that is not on a procfs fails the step `step`. */
static int write_proc(const char *path, const char *data, size_t len, const char *step)
{
    struct statfs s;
    char hb[24];
    int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstatfs(fd, &s) < 0)
        fail(errno, step, "statfs ", path, NULL);
    if (s.f_type != PROC_SUPER_MAGIC)
        fail(0, step, path, " is not on a procfs (statfs type 0x", hex(hb, s.f_type),
             ", not PROC_SUPER_MAGIC 0x9fa0): refusing to write to it; something is mounted "
             "over /proc", NULL);
    ssize_t w = write(fd, data, len);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)len ? 0 : -1;
}

static const char *fdpath(char *buf, int fd)
{
    char nb[24];
    struct msg m = { .n = 0 };
    m_add(&m, "/proc/self/fd/");
    m_add(&m, num(nb, fd));
    memcpy(buf, m.b, m.n);
    buf[m.n] = 0;
    return buf;
}

/* Flags a remount must keep because they are locked (set by a more privileged
 * mount namespace); runc reads them with statfs the same way. */
static unsigned long locked_flags(const char *path, unsigned long wanted)
{
    struct statfs s;
    unsigned long f = 0;
    if (statfs(path, &s) < 0)
        return 0;
    if (s.f_flags & ST_NOSUID) f |= MS_NOSUID;
    if (s.f_flags & ST_NODEV) f |= MS_NODEV;
    if (s.f_flags & ST_NOEXEC) f |= MS_NOEXEC;
    if (s.f_flags & ST_RDONLY) f |= MS_RDONLY;
    if (!(wanted & (MS_NOATIME | MS_RELATIME | MS_STRICTATIME))) {
        if (s.f_flags & ST_NOATIME) f |= MS_NOATIME;
        if (s.f_flags & ST_RELATIME) f |= MS_RELATIME;
        if (s.f_flags & ST_NODIRATIME) f |= MS_NODIRATIME;
    }
    return f;
}

/* mount(2) or fail with `mount <src> on <shown> (<flags>)`. */
static void do_mount(const char *src, const char *target, const char *fstype,
                     unsigned long flags, const char *data, const char *shown)
{
    char fb[256];
    if (mount(src, target, fstype, flags, data) == 0)
        return;
    fail(errno, "mount", "mount ", src && *src ? src : fstype ? fstype : "none", " on ", shown,
         " (", ms_text(fb, sizeof fb, flags), ")", NULL);
}

/* MS_REMOUNT|MS_BIND|flags; on EPERM retry keeping the locked flags. */
static void remount(const char *target, unsigned long flags, const char *shown)
{
    flags |= MS_REMOUNT | MS_BIND;
    if (mount(NULL, target, NULL, flags, NULL) == 0)
        return;
    if (errno == EPERM) {
        flags |= locked_flags(target, flags);
        if (mount(NULL, target, NULL, flags, NULL) == 0)
            return;
    }
    char fb[256];
    fail(errno, "mount", "remount ", shown, " (", ms_text(fb, sizeof fb, flags), ")", NULL);
}

/* Read-only remount that keeps the mount's current flags (as runc's
 * readonlyPath does): MS_REMOUNT alone would clear nosuid/nodev/noexec. */
static void remount_ro_keep(const char *path)
{
    remount(path, MS_RDONLY | locked_flags(path, 0), path);
}

/* ------------------------------------------------- resolving under rootfs */

static int root_fd = -1;

static int follow_dangling(int parent, char *rel, char *comp, char *end, char saved,
                           int create, int depth);

/* `rel` under root_fd (resolve.c: openat2, or its walk before Linux 5.6, noted once). */
static int open_in_root(const char *rel)
{
    static int noted;
    int fd = in_root_open(root_fd, rel);
    if (in_root_walking() && !noted) {
        noted = 1;
        note("openat2 is not available (Linux < 5.6): paths in the rootfs are resolved "
             "component by component", NULL);
    }
    return fd;
}

/* Open `dest` (absolute inside the container) as an O_PATH fd under root_fd;
 * symlinks resolve inside the rootfs, never out of it.  With create >= 0
 * missing components are made: directories, and the last one a directory
 * (create 0) or an empty file (create 1); a dangling symlink on the way is
 * followed (inside the rootfs) and its target created, as runc's securejoin
 * does.  Returns -1 with errno. */
static int resolve_depth(const char *dest, int create, int depth)
{
    char path[4096];
    size_t len = strlen(dest);
    if (len >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dest, len + 1);
    char *rel = path;
    while (*rel == '/')
        rel++;
    int fd = open_in_root(rel);
    if (fd >= 0 || errno != ENOENT || create < 0)
        return fd;
    /* Walk the components, creating what is missing. */
    int parent = open_in_root("");
    char *p = rel;
    while (parent >= 0 && *p) {
        char *end = p;
        while (*end && *end != '/')
            end++;
        char saved = *end;
        int last = 1;
        for (char *q = end; *q; q++)
            if (*q != '/')
                last = 0;
        *end = 0;
        fd = open_in_root(rel);
        if (fd < 0 && errno == ENOENT) {
            int r;
            if (last && create == 1) {
                r = openat(parent, p, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (r >= 0)
                    close(r);
            } else {
                r = mkdirat(parent, p, 0755);
            }
            if (r < 0 && errno == EEXIST)
                return follow_dangling(parent, rel, p, end, saved, create, depth);
            if (r < 0) {
                int e = errno;
                close(parent);
                errno = e;
                return -1;
            }
            fd = open_in_root(rel);
        }
        close(parent);
        *end = saved;
        if (fd < 0 || last)
            return fd;
        parent = fd;
        p = end;
        while (*p == '/')
            p++;
    }
    return parent;
}

/* Component `comp` (in `rel`, ended at `end`) exists but cannot be opened: a
 * dangling symlink.  Splice its target into the path and resolve again. */
static int follow_dangling(int parent, char *rel, char *comp, char *end, char saved,
                           int create, int depth)
{
    char target[4096], next[4096];
    ssize_t n = readlinkat(parent, comp, target, sizeof target - 1);
    close(parent);
    if (n < 0 || depth >= 40) {
        errno = n < 0 ? ENOENT : ELOOP;
        return -1;
    }
    target[n] = 0;
    *end = saved;
    struct msg m = { .n = 0 };
    if (target[0] != '/') {   /* relative: keep the directory part before comp */
        m_chr(&m, '/');
        for (char *q = rel; q < comp; q++)
            m_chr(&m, *q);
    }
    m_add(&m, target);
    if (*end) {
        m_chr(&m, '/');
        m_add(&m, end);
    }
    if (m.n >= sizeof next - 1) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(next, m.b, m.n);
    next[m.n] = 0;
    return resolve_depth(next, create, depth + 1);
}

static int resolve(const char *dest, int create)
{
    return resolve_depth(dest, create, 0);
}

/* resolve() or fail naming the destination. */
static int resolve_or_fail(const char *dest, int create, const char *what)
{
    int fd = resolve(dest, create);
    if (fd < 0)
        fail(errno, "mkdir", "resolve ", what, " ", dest, " in the rootfs", NULL);
    return fd;
}

/* ------------------------------------------------------------ stage 2 steps */

static int new_userns;
static char *rootfs;
static struct rec *shared_root;   /* ROOTFS when the container shares the runtime's mount ns */
static struct stat host_mnt_ns;   /* the runtime's mount namespace (stage 1, before setns) */

/* The rootfs preparation changes the mount namespace it runs in (propagation of "/",
 * binds, pivot_root, which moves every process whose root is the old one): never the
 * runtime's own, even when a linux.namespaces path turns out to name it. */
static void check_own_mount_namespace(void)
{
    struct stat st;
    if (stat("/proc/self/ns/mnt", &st) < 0)
        fail(errno, "mount", "stat /proc/self/ns/mnt before preparing the rootfs", NULL);
    if (!host_mnt_ns.st_ino ||
        (st.st_dev == host_mnt_ns.st_dev && st.st_ino == host_mnt_ns.st_ino))
        fail(0, "mount", "the mount namespace the rootfs would be prepared in is the "
             "runtime's own (a linux.namespaces path naming it?); leave \"mount\" out of "
             "linux.namespaces to share it", NULL);
}

static void set_names(void)
{
    struct rec *r;
    char cb[128];
    if ((r = find(T_HOSTNAME)) && sethostname(r->f[0].s, r->f[0].n) < 0)
        fail(errno, "sethostname", "sethostname ", cut(cb, r->f[0].s), NULL);
    if ((r = find(T_DOMAINNAME)) && setdomainname(r->f[0].s, r->f[0].n) < 0)
        fail(errno, "setdomainname", "setdomainname ", cut(cb, r->f[0].s), NULL);
}

/* Apply propagation `flags` to the mount that holds `path`: walk up from
 * `path` to the first mount point (mount(2) says EINVAL for the others). */
static int propagate_up(const char *path, unsigned long flags)
{
    char buf[4096];
    strncpy(buf, path, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    for (;;) {
        if (mount(NULL, buf, NULL, flags, NULL) == 0)
            return 0;
        char *slash = strrchr(buf, '/');
        if (errno != EINVAL || !slash || !strcmp(buf, "/"))
            return -1;
        if (slash == buf)
            slash[1] = 0;
        else
            *slash = 0;
    }
}

static void prepare_rootfs(struct rec *root)
{
    unsigned long prop = root->f[2].u ? root->f[2].u : MS_SLAVE | MS_REC;
    char fb[128];
    rootfs = root->f[0].s;
    if (mount(NULL, "/", NULL, prop, NULL) < 0) {
        if (errno != EINVAL)
            do_mount(NULL, "/", NULL, prop, NULL, "/");
        /* Our root is not a mount point (a chroot): no container mount may
         * propagate out, so change the mount that holds the rootfs instead. */
        if (propagate_up(rootfs, prop) < 0)
            do_mount(NULL, rootfs, NULL, prop, NULL, rootfs);
        note("/ is not a mount point (chroot?): set ", ms_text(fb, sizeof fb, prop),
             " on the mount holding ", rootfs, " instead", NULL);
    }
    /* pivot_root needs the new root's parent mount to be non-shared, and so does the
     * MS_MOVE of --no-pivot (runc's rootfsParentMountPrivate, done for both).  For a
     * slave root, MS_SLAVE is enough and keeps the master: the rootfs bind made below
     * inherits it, so "slave"/"rslave" (and the default) reach the container's "/". */
    propagate_up(rootfs, (prop & MS_SLAVE) ? MS_SLAVE : MS_PRIVATE);
    do_mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL, rootfs);
    root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        fail(errno, "open", "open the rootfs ", rootfs, NULL);
}

/* ------------------------------------------- mounts over /proc (runc's checkProcMount) */

/* The files inside /proc a mount may cover (the ones lxcfs emulates): runc's
 * validProcMounts, the same list as src/minirunc/mountcheck.py PROC_ALLOWED. */
static const char *const proc_allowed[] = {
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
};

/* Where the resolved destination `fd` is inside the container ("/proc/sys"), from the
 * host path the kernel gives for it (canonical: no "//", ".", or symlink left). */
static void container_path(int fd, const char *dest, char *out, size_t size)
{
    char pb[64], host[4096];
    ssize_t n = readlink(fdpath(pb, fd), host, sizeof host - 1);
    if (n < 0)
        fail(errno, "mount", "find where mount destination ", dest, " resolves in the rootfs", NULL);
    host[n] = 0;
    size_t rl = strlen(rootfs);
    while (rl > 1 && rootfs[rl - 1] == '/')
        rl--;
    if (!strcmp(rootfs, "/"))
        rl = 0;
    if (strncmp(host, rootfs, rl) || (host[rl] && host[rl] != '/') || (size_t)n - rl >= size)
        fail(EXDEV, "mount", "mount destination ", dest, " resolves to ", host,
             ", outside the rootfs ", rootfs, NULL);
    strcpy(out, host[rl] ? host + rl : "/");
}

/* runc's checkProcMount on the destination as resolved (symlinks in the rootfs followed):
 * over /proc itself only a procfs, inside /proc only proc_allowed.  For a bind onto
 * /proc, returns an O_PATH fd of the source checked to be on a procfs (bind from that
 * fd, so the checked source is the one mounted); else -1. */
static int check_proc_dest(struct rec *r, int fd, int tree)
{
    const char *dest = r->f[2].s, *src = r->f[1].s;
    char where[4096], hb[24];
    struct statfs s;
    container_path(fd, dest, where, sizeof where);
    const char *via = strcmp(where, dest) ? "\" resolves in the rootfs to \"" : NULL;
    if (!strcmp(where, "/proc")) {
        if (r->f[0].u == 0) {
            if (!strcmp(r->f[3].s, "proc"))
                return -1;
            fail(0, "mount", "mount destination \"", dest, via ? via : "", via ? where : "",
                 "\": \"/proc\" cannot be mounted because it is not of type proc (type \"",
                 r->f[3].s, "\")", NULL);
        }
        int sfd = tree >= 0 ? tree : open(src, O_PATH | O_CLOEXEC);
        if (sfd < 0 || fstatfs(sfd, &s) < 0)
            fail(errno, "mount", "statfs the bind source ", src, " for /proc", NULL);
        if (s.f_type != PROC_SUPER_MAGIC)
            fail(0, "mount", "mount destination \"", dest, via ? via : "", via ? where : "",
                 "\": \"/proc\" cannot be mounted because it is not of type proc (the bind "
                 "source ", src, " is on a filesystem of type 0x", hex(hb, s.f_type),
                 ", not a procfs)", NULL);
        struct stat st;
        if (fstat(sfd, &st) == 0 && st.st_ino != 1)   /* runc warns about this too */
            note("the bind source ", src, " of /proc is on a procfs but is not its root", NULL);
        return tree >= 0 ? -1 : sfd;
    }
    if (strncmp(where, "/proc/", 6))
        return -1;
    for (size_t i = 0; i < sizeof proc_allowed / sizeof proc_allowed[0]; i++)
        if (!strcmp(where, proc_allowed[i]))
            return -1;
    fail(0, "mount", "mount destination \"", dest, via ? via : "", via ? where : "", "\": \"",
         where, "\" cannot be mounted because it is inside /proc", NULL);
}

/* Split `dest` into a resolved (and created) parent fd and its last name. */
static int parent_of(const char *dest, char *name, size_t size);

/* Checks on the fd a mount goes onto (so nothing can swap the path in between):
 * - proc and sysfs, and anything on /proc, /sys or /dev, must be mounted on an ordinary
 *   directory, not through a symlink in the rootfs (runc's check; rootfs/proc -> / would
 *   put them over the whole rootfs);
 * - no destination may resolve to the root of the rootfs itself: the mount would hide it
 *   all, and the container would fail later with a puzzling "executable file not found". */
static void check_destination(struct rec *r, int fd)
{
    const char *dest = r->f[2].s, *fstype = r->f[3].s;
    struct stat st, root, entry = { 0 };
    char name[256];
    if (fstat(fd, &st) < 0 || fstat(root_fd, &root) < 0)
        fail(errno, "mount", "stat the mount destination ", dest, NULL);
    int ordinary = (r->f[0].u == 0 && (!strcmp(fstype, "proc") || !strcmp(fstype, "sysfs"))) ||
                   !strcmp(dest, "/proc") || !strcmp(dest, "/sys") || !strcmp(dest, "/dev");
    if (ordinary && strcmp(dest, "/")) {
        int dir = parent_of(dest, name, sizeof name);
        int bad = fstatat(dir, name, &entry, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(entry.st_mode) ||
                  entry.st_dev != st.st_dev || entry.st_ino != st.st_ino;
        close(dir);
        if (bad)
            fail(0, "mount", "mount destination ", dest, ": ", rootfs, dest,
                 S_ISLNK(entry.st_mode) ? " is a symlink" : " is not a directory", "; ",
                 *fstype ? fstype : "it", " must be mounted on an ordinary directory", NULL);
    }
    if (st.st_dev == root.st_dev && st.st_ino == root.st_ino)
        fail(0, "mount", "mount destination ", dest, " resolves to the root of the rootfs ",
             rootfs, " (through a symlink such as ", rootfs, dest, "): a mount there would "
             "hide the whole rootfs", NULL);
}

/* ------------------------------------------------ tmpcopyup (runc's extension) */

/* A tmpfs with "tmpcopyup" starts as a copy of what the rootfs held at its destination
 * (runc's doTmpfsCopyUp).  The tmpfs is made detached (fsopen/fsmount: attached nowhere,
 * seen by nobody), filled from the covered directory through fds only (openat with
 * O_NOFOLLOW, fstatat with AT_SYMLINK_NOFOLLOW: a symlink is copied as a symlink and
 * never followed, so nothing outside the rootfs is read), then moved onto the
 * destination.  Copied: directories, files, symlinks, device nodes and fifos, with
 * owner, mode, times and, for files and directories, the extended attributes the
 * tmpfs accepts.  Sockets are left out (nothing listens on them in a copy). */

static char copy_buf[65536];
static char copy_rel[4096];   /* the entry being copied, relative to the destination */

static void __attribute__((noreturn)) copy_fail(int err, const char *dest, const char *what)
{
    fail(err, "tmpcopyup", "tmpcopyup of ", dest, ": ", what, " ", dest, *copy_rel ? "/" : "",
         copy_rel, NULL);
}

/* Owner, mode, extended attributes and times of `st` onto `to` (an open fd).  The owner
 * first (chown clears the set-id bits), the times last.  An xattr the tmpfs refuses
 * (trusted.* without the privilege, an LSM's own) is left out, as `cp -a` does. */
static void copy_meta(int from, int to, const struct stat *st, const char *dest)
{
    char names[4096];
    if (fchown(to, st->st_uid, st->st_gid) < 0)
        copy_fail(errno, dest, "chown");
    if (fchmod(to, st->st_mode & 07777) < 0)
        copy_fail(errno, dest, "chmod");
    ssize_t n = flistxattr(from, names, sizeof names);
    for (ssize_t i = 0; n > 0 && i < n; i += strlen(names + i) + 1) {
        ssize_t v = fgetxattr(from, names + i, copy_buf, sizeof copy_buf);
        if (v >= 0 && fsetxattr(to, names + i, copy_buf, v, 0) < 0 && errno != ENOTSUP &&
            errno != EPERM && errno != EOPNOTSUPP)
            copy_fail(errno, dest, "set an extended attribute on");
    }
    struct timespec ts[2] = { st->st_atim, st->st_mtim };
    if (futimens(to, ts) < 0)
        copy_fail(errno, dest, "set the times of");
}

static void copy_data(int from, int to, const char *dest)
{
    for (;;) {
        ssize_t r = read(from, copy_buf, sizeof copy_buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            copy_fail(errno, dest, "read");
        if (r == 0)
            return;
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(to, copy_buf + w, r - w);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                copy_fail(errno, dest, "write the copy of");
            w += k;
        }
    }
}

static void copy_tree(int from, int to, const char *dest, int depth);

/* Copy the entry `name` of directory fd `from` into directory fd `to`. */
static void copy_entry(int from, int to, const char *name, const char *dest, int depth)
{
    struct stat st, now;
    if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        copy_fail(errno, dest, "stat");
    struct timespec ts[2] = { st.st_atim, st.st_mtim };
    int s, d;
    switch (st.st_mode & S_IFMT) {
    case S_IFDIR:
        if ((s = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            copy_fail(errno, dest, "open");
        if (mkdirat(to, name, 0700) < 0 ||
            (d = openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            copy_fail(errno, dest, "make the directory");
        copy_tree(s, d, dest, depth + 1);
        copy_meta(s, d, &st, dest);   /* after the entries: they change its times */
        close(s);
        close(d);
        return;
    case S_IFREG:
        /* O_NONBLOCK: a fifo swapped in since the fstatat must not block the open */
        s = openat(from, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (s < 0 || fstat(s, &now) < 0 || !S_ISREG(now.st_mode))
            copy_fail(s < 0 ? errno : EINVAL, dest, "open");
        if ((d = openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
            copy_fail(errno, dest, "create the copy of");
        copy_data(s, d, dest);
        copy_meta(s, d, &now, dest);
        close(s);
        close(d);
        return;
    case S_IFLNK: {
        char target[4096];
        ssize_t n = readlinkat(from, name, target, sizeof target - 1);
        if (n < 0)
            copy_fail(errno, dest, "readlink");
        target[n] = 0;
        if (symlinkat(target, to, name) < 0)
            copy_fail(errno, dest, "make the symlink");
        break;
    }
    case S_IFCHR: case S_IFBLK: case S_IFIFO:
        if (mknodat(to, name, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0)
            copy_fail(errno, dest, "mknod");
        break;
    default:
        return;
    }
    /* By name, never opened: a node may be a device, a fifo would block. */
    if (fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        copy_fail(errno, dest, "chown");
    if (!S_ISLNK(st.st_mode) && fchmodat(to, name, st.st_mode & 07777, 0) < 0)
        copy_fail(errno, dest, "chmod");
    if (utimensat(to, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        copy_fail(errno, dest, "set the times of");
}

/* getdents64(2)'s record (musl declares neither the call nor struct dirent64) */
struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static void copy_tree(int from, int to, const char *dest, int depth)
{
    char buf[4096] __attribute__((aligned(8)));
    if (depth > 128)
        copy_fail(ELOOP, dest, "directories nested too deep (over 128) at");
    for (;;) {
        ssize_t n = syscall(SYS_getdents64, from, buf, sizeof buf);
        if (n < 0)
            copy_fail(errno, dest, "read the directory");
        if (n == 0)
            return;
        for (ssize_t off = 0; off < n;) {
            struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);
            off += e->d_reclen;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            size_t len = strlen(copy_rel), add = strlen(e->d_name);
            if (len + add + 2 >= sizeof copy_rel)
                copy_fail(ENAMETOOLONG, dest, "path too long:");
            if (len)
                copy_rel[len] = '/';
            memcpy(copy_rel + len + !!len, e->d_name, add + 1);
            copy_entry(from, to, e->d_name, dest, depth);
            copy_rel[len] = 0;
        }
    }
}

/* Is `word` (like "mode=") the start of one of the comma-separated options in `data`? */
static int has_option(const char *data, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = data; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, word, n))
            return 1;
    return 0;
}

/* The tmpfs superblock, configured from the MOUNT record's data and flags. */
static int tmpfs_context(const char *source, const char *data, unsigned long flags,
                         const char *dest)
{
    static const struct { unsigned long ms; const char *word; } sb[] = {
        {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"}, {MS_LAZYTIME, "lazytime"},
        {MS_MANDLOCK, "mand"},
    };
    char opt[4096], cb[128];
    int fs = syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0 && errno == ENOSYS)
        return -1;   /* Linux < 5.2: the caller mounts it the classic way */
    if (fs < 0)
        fail(errno, "tmpcopyup", "fsopen tmpfs for ", dest, NULL);
    if (*source && syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", source, 0) < 0)
        fail(errno, "tmpcopyup", "tmpfs source ", source, " for ", dest, NULL);
    for (size_t i = 0; i < sizeof sb / sizeof sb[0]; i++)
        if ((flags & sb[i].ms) && syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, sb[i].word, NULL, 0) < 0)
            fail(errno, "tmpcopyup", "tmpfs option ", sb[i].word, " for ", dest, NULL);
    if (strlen(data) >= sizeof opt)
        fail(E2BIG, "tmpcopyup", "tmpfs options for ", dest, " are too long", NULL);
    strcpy(opt, data);
    for (char *p = opt, *end; *p; p = end) {
        int quoted = 0;   /* a quoted value (an SELinux context) may hold commas */
        for (end = p; *end && (quoted || *end != ','); end++)
            quoted ^= *end == '"';
        if (*end)
            *end++ = 0;
        if (!*p)
            continue;
        char *eq = strchr(p, '=');
        if (eq)
            *eq = 0;
        if (syscall(SYS_fsconfig, fs, eq ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, p,
                    eq ? eq + 1 : NULL, 0) < 0)
            fail(errno, "tmpcopyup", "tmpfs option ", cut(cb, p), " for ", dest, NULL);
    }
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        fail(errno, "tmpcopyup", "create the tmpfs for ", dest, NULL);
    return fs;
}

/* The per-mount MS_* flags as MOUNT_ATTR_* bits for fsmount (read-only comes later). */
static unsigned mount_attrs(unsigned long f)
{
    unsigned a = 0;
    if (f & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
    if (f & MS_NODEV) a |= MOUNT_ATTR_NODEV;
    if (f & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
    if (f & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
    if (f & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
    else if (f & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
    if (f & 256) a |= MOUNT_ATTR_NOSYMFOLLOW;   /* MS_NOSYMFOLLOW */
    return a;
}

static int resolve_or_fail(const char *dest, int create, const char *what);

/* Mount the record's tmpfs on the resolved destination `dest_fd`, filled first.
 * Without fsopen (Linux < 5.2) the tmpfs is mounted on the destination at once and
 * filled there: `src`, opened before, still reads the directory it covers, and no
 * process of the container runs yet to see it half-filled. */
static void tmpfs_copyup(struct rec *r, int dest_fd, unsigned long flags)
{
    const char *dest = r->f[2].s, *data = r->f[8].s;
    struct stat st, made;
    int src = openat(dest_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0 || fstat(src, &st) < 0)
        fail(errno, "tmpcopyup", "open the directory ", dest, " to copy it", NULL);
    int fs = tmpfs_context(r->f[1].s, data, flags, dest), mnt = -1, top;
    if (fs >= 0) {
        mnt = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, mount_attrs(flags));
        if (mnt < 0)
            fail(errno, "tmpcopyup", "fsmount the tmpfs for ", dest, NULL);
        close(fs);
        top = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        char pb[64];
        note("fsopen is not available (Linux < 5.2): the tmpcopyup tmpfs for ", dest,
             " is mounted in place, then filled", NULL);
        do_mount(*r->f[1].s ? r->f[1].s : "tmpfs", fdpath(pb, dest_fd), "tmpfs", flags,
                 *data ? data : NULL, dest);
        int onto = resolve_or_fail(dest, -1, "mount destination");   /* the tmpfs on top */
        top = openat(onto, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(onto);
    }
    if (top < 0 || fstat(top, &made) < 0)
        fail(errno, "tmpcopyup", "open the new tmpfs for ", dest, NULL);
    copy_rel[0] = 0;
    copy_tree(src, top, dest, 0);
    /* The top takes the directory's owner and mode unless the options set them. */
    if (has_option(data, "uid="))
        st.st_uid = (uid_t)-1;
    if (has_option(data, "gid="))
        st.st_gid = (gid_t)-1;
    if (has_option(data, "mode="))
        st.st_mode = made.st_mode;
    copy_meta(src, top, &st, dest);
    close(top);
    close(src);
    if (mnt < 0)
        return;
    if (syscall(SYS_move_mount, mnt, "", dest_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        fail(errno, "tmpcopyup", "move the filled tmpfs onto ", dest, NULL);
    close(mnt);
}

/* ------------------------------------ read-only tmpfs and /dev: remounted at the end */

/* A read-only tmpfs, or /dev, is mounted read-write and made read-only only after its
 * submounts, device nodes, /dev/console and copies are in place (runc's finalizeRootfs;
 * a tmpfs /dev mounted "ro" at once fails with EROFS at mkdir /dev/pts).  By MOUNT
 * record index: an O_PATH fd of the mount, or -1. */
static int *ro_later;

static void defer_readonly(struct rec *r)
{
    if (!ro_later) {
        ro_later = malloc(nrecs * sizeof *ro_later);
        if (!ro_later)
            fail(ENOMEM, "mount", "allocate the read-only remount table", NULL);
        for (size_t k = 0; k < nrecs; k++)
            ro_later[k] = -1;
    }
    ro_later[r - recs] = resolve_or_fail(r->f[2].s, -1, "mount destination");
}

/* After pivot_root and the console: by fd (the paths are the container's now). */
static void remount_readonly_later(void)
{
    for (size_t i = 0; ro_later && i < nrecs; i++) {
        if (ro_later[i] < 0)
            continue;
        struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
        if (syscall(SYS_mount_setattr, ro_later[i], "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
            if (errno != ENOSYS)
                fail(errno, "mount", "remount ", recs[i].f[2].s, " read-only (after its "
                     "submounts and device nodes)", NULL);
            /* Linux < 5.12: a classic read-only bind remount of the same mount, reached
             * by fchdir to its fd (no /proc/self/fd path: the container may have no /proc). */
            int back = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (back < 0 || fchdir(ro_later[i]) < 0)
                fail(errno, "mount", "fchdir to ", recs[i].f[2].s, " to remount it read-only", NULL);
            remount(".", MS_RDONLY | locked_flags(".", 0), recs[i].f[2].s);
            if (fchdir(back) < 0)
                fail(errno, "mount", "fchdir back after remounting ", recs[i].f[2].s, NULL);
            close(back);
        }
        close(ro_later[i]);
    }
}

/* After the mount: the fd it went onto must still be under the rootfs, as the host
 * path the kernel gives for it says (/proc/self/fd).  A directory moved out of the
 * rootfs while the path was resolved would show here; the mount is then only in this
 * dying mount namespace. */
static void check_landed(int fd, const char *dest)
{
    char where[4096];
    container_path(fd, dest, where, sizeof where);
}

/* One MOUNT record: resolve+create dest, mount onto /proc/self/fd/N. */
/* Detached idmapped trees made by stage 1, by MOUNT record index (-1: none). */
static int *idmapped_tree;

static void do_one_mount(struct rec *r)
{
    uint64_t kind = r->f[0].u, flags = r->f[4].u, prop = r->f[5].u;
    const char *src = r->f[1].s, *dest = r->f[2].s, *fstype = r->f[3].s, *data = r->f[8].s;
    char pb[64];
    int fd = resolve_or_fail(dest, (int)r->f[9].u, "mount destination");
    check_destination(r, fd);
    int tree = idmapped_tree ? idmapped_tree[r - recs] : -1;
    char sb[64];
    int proc_src = check_proc_dest(r, fd, tree);
    if (proc_src >= 0)
        src = fdpath(sb, proc_src);
    if (tree >= 0) {
        /* The destination by its fd: move_mount refuses the /proc/self/fd magic link. */
        if (syscall(SYS_move_mount, tree, "", fd, "",
                    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            fail(errno, "idmap", "move the idmapped mount of ", src, " onto ", dest, NULL);
        close(tree);
    }
    int copyup = r + 1 < recs + nrecs && r[1].tag == T_MOUNT_COPYUP && r[1].f[0].u;
    int ro_last = (flags & MS_RDONLY) && !(flags & MS_REMOUNT) &&
                  (!strcmp(dest, "/dev") || (kind == 0 && !strcmp(fstype, "tmpfs")));
    if (ro_last)
        flags &= ~(uint64_t)MS_RDONLY;
    if (kind == 1) {
        if (tree < 0)
            do_mount(src, fdpath(pb, fd), NULL, flags & (MS_BIND | MS_REC), NULL, dest);
        if (proc_src >= 0)
            close(proc_src);
        unsigned long rest = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
        check_landed(fd, dest);
        close(fd);
        if (rest) {
            fd = resolve_or_fail(dest, -1, "mount destination");   /* the new mount on top */
            remount(fdpath(pb, fd), rest, dest);
            close(fd);
        }
    } else if (copyup && !strcmp(fstype, "tmpfs")) {
        tmpfs_copyup(r, fd, flags);
        check_landed(fd, dest);
        close(fd);
    } else {
        do_mount(src, fdpath(pb, fd), *fstype ? fstype : NULL, flags, *data ? data : NULL, dest);
        check_landed(fd, dest);
        close(fd);
    }
    if (ro_last)
        defer_readonly(r);
    if (!prop && !r->f[6].u && !r->f[7].u)
        return;
    fd = resolve_or_fail(dest, -1, "mount destination");
    if (prop)
        do_mount(NULL, fdpath(pb, fd), NULL, prop, NULL, dest);
    if (r->f[6].u || r->f[7].u) {
        struct mount_attr attr = { .attr_set = r->f[6].u, .attr_clr = r->f[7].u };
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
            fail(errno, "mount_setattr", "mount_setattr (recursive mount options) on ", dest,
                 errno == ENOSYS ? " (needs Linux 5.12)" : "", NULL);
    }
    close(fd);
}

/* Split `dest` into a resolved (and created) parent fd and its last name. */
static int parent_of(const char *dest, char *name, size_t size)
{
    char dir[4096];
    const char *slash = strrchr(dest, '/');
    if (!slash || strlen(slash + 1) >= size || (size_t)(slash - dest) >= sizeof dir)
        fail(EINVAL, "mkdir", "bad path ", dest, NULL);
    memcpy(dir, dest, slash - dest);
    dir[slash - dest] = 0;
    strcpy(name, slash + 1);
    return resolve_or_fail(dir, 0, "parent directory of");
}

static void bind_host_node(const char *path)
{
    char pb[64];
    int fd = resolve_or_fail(path, 1, "device");
    do_mount(path, fdpath(pb, fd), NULL, MS_BIND, NULL, path);
    close(fd);
}

static void make_device(struct rec *r)
{
    const char *path = r->f[0].s;
    char name[256], nb[24];
    mode_t type = r->f[1].u == 'c' ? S_IFCHR : r->f[1].u == 'b' ? S_IFBLK : S_IFIFO;
    if (new_userns)   /* mknod of devices is never allowed in a user namespace */
        return bind_host_node(path);
    int dir = parent_of(path, name, sizeof name);
    if (mknodat(dir, name, type | (r->f[4].u & 07777), makedev(r->f[2].u, r->f[3].u)) < 0) {
        int e = errno;
        close(dir);
        if (e == EEXIST)
            return;
        if (e == EPERM && r->f[7].u)
            return bind_host_node(path);
        fail(e, "mknod", "mknod ", path, " (type ", type == S_IFCHR ? "c" : type == S_IFBLK ? "b" : "p",
             " ", num(name, r->f[2].u), ":", num(nb, r->f[3].u), ")", NULL);
    }
    if (fchownat(dir, name, r->f[5].u, r->f[6].u, AT_SYMLINK_NOFOLLOW) < 0)
        fail(errno, "chown", "chown ", path, NULL);
    close(dir);
}

static void make_symlink(struct rec *r)
{
    char name[256];
    int dir = parent_of(r->f[1].s, name, sizeof name);
    if (symlinkat(r->f[0].s, dir, name) < 0 && errno != EEXIST)
        fail(errno, "symlink", "symlink ", r->f[1].s, " -> ", r->f[0].s, NULL);
    close(dir);
}

/* The runtime's own ipc, net and uts namespaces (stat of /proc/self/ns/X in stage 1
 * before any setns): a sysctl must never be written in one of them. */
static const char *const SYSCTL_NS[] = { "ipc", "net", "uts" };
static struct stat host_ns[3];

static void remember_host_namespaces(void)
{
    char path[32];
    if (stat("/proc/self/ns/mnt", &host_mnt_ns) < 0)
        host_mnt_ns.st_ino = 0;
    for (int i = 0; i < 3; i++) {
        strcpy(path, "/proc/self/ns/");
        strcat(path, SYSCTL_NS[i]);
        if (stat(path, &host_ns[i]) < 0)
            host_ns[i].st_ino = 0;
    }
}

/* Which of SYSCTL_NS holds the sysctl file `key` (net/..., kernel/shmmax...), or -1. */
static int sysctl_ns(const char *key)
{
    static const char *const ipc[] = { "kernel/msgmax", "kernel/msgmnb", "kernel/msgmni",
        "kernel/sem", "kernel/shmall", "kernel/shmmax", "kernel/shmmni",
        "kernel/shm_rmid_forced", NULL };
    if (!strncmp(key, "net/", 4))
        return 1;
    if (!strcmp(key, "kernel/hostname") || !strcmp(key, "kernel/domainname"))
        return 2;
    if (!strncmp(key, "fs/mqueue/", 10))
        return 0;
    for (int i = 0; ipc[i]; i++)
        if (!strcmp(key, ipc[i]))
            return 0;
    return -1;
}

/* config.py refuses these already; checked again here, where the write happens, against
 * the namespace we are really in (a joined path may turn out to be the host's). */
static void check_sysctl_namespace(const char *key)
{
    char path[32];
    struct stat st;
    int ns = sysctl_ns(key);
    if (ns < 0)
        fail(0, "sysctl", "sysctl ", key, " is not in a separate kernel namespace", NULL);
    strcpy(path, "/proc/self/ns/");
    strcat(path, SYSCTL_NS[ns]);
    if (stat(path, &st) < 0)
        fail(errno, "sysctl", "stat ", path, " before writing sysctl ", key, NULL);
    if (!host_ns[ns].st_ino ||
        (st.st_dev == host_ns[ns].st_dev && st.st_ino == host_ns[ns].st_ino))
        fail(0, "sysctl", "sysctl ", key, " would be written in the host's ", SYSCTL_NS[ns],
             " namespace", NULL);
}

/* Host /proc, before pivot: net/ipc/uts sysctls follow the writer's namespaces. */
static void write_sysctls(void)
{
    char path[4096];
    FOR_EACH(r, T_SYSCTL) {
        struct msg m = { .n = 0 };
        m_add(&m, "/proc/sys/");
        m_add(&m, r->f[0].s);
        memcpy(path, m.b, m.n);
        path[m.n] = 0;
        if (strstr(r->f[0].s, ".."))
            fail(EINVAL, "sysctl", "sysctl key ", r->f[0].s, " holds ..", NULL);
        check_sysctl_namespace(r->f[0].s);
        char cb[128];
        if (write_proc(path, r->f[1].s, r->f[1].n, "sysctl") < 0)
            fail(errno, "sysctl", "write ", cut(cb, r->f[1].s), " to ", path, NULL);
    }
    struct rec *o = find(T_OOM_SCORE_ADJ);
    if (o) {
        char nb[24];
        num(nb, (int64_t)o->f[0].u);
        if (write_proc("/proc/self/oom_score_adj", nb, strlen(nb), "oom_score_adj") < 0)
            fail(errno, "oom_score_adj", "write ", nb, " to /proc/self/oom_score_adj", NULL);
    }
}

/* Enter the rootfs: pivot_root, or move-mount + chroot when it cannot work. */
static void enter_rootfs(int no_pivot)
{
    close(root_fd);
    if (chdir(rootfs) < 0)
        fail(errno, "chdir", "chdir to the rootfs ", rootfs, NULL);
    if (!no_pivot) {
        if (syscall(SYS_pivot_root, ".", ".") == 0) {
            /* The old root is stacked on "."; detach it without propagating. */
            do_mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL, "the old root");
            if (umount2(".", MNT_DETACH) < 0)
                fail(errno, "umount", "umount the old root (MNT_DETACH)", NULL);
            if (chdir("/") < 0)
                fail(errno, "chdir", "chdir /", NULL);
            note("entered ", rootfs, " with pivot_root", NULL);
            return;
        }
        if (errno != EINVAL)
            fail(errno, "pivot_root", "pivot_root into ", rootfs, NULL);
        note("pivot_root into ", rootfs, " failed: invalid argument (EINVAL); "
             "host root is initramfs, using move-mount + chroot", NULL);
    } else {
        note("no_pivot set: entering ", rootfs, " with move-mount + chroot", NULL);
    }
    do_mount(rootfs, "/", NULL, MS_MOVE, NULL, "/");
    if (chroot(".") < 0)
        fail(errno, "chroot", "chroot into ", rootfs, NULL);
    if (chdir("/") < 0)
        fail(errno, "chdir", "chdir /", NULL);
}

/* linux.rootfsPropagation on the container's own "/", once it is the root (as crun, and
 * runc 1.2): before pivot_root the flags went to the namespace's old "/" (the mounts the
 * container inherits), but the new root is a bind under a parent made non-shared for
 * pivot_root.  0: not given, the root keeps what the bind inherited (rslave's). */
static void root_propagation(unsigned long flags)
{
    char fb[128];
    if (flags && mount(NULL, "/", NULL, flags, NULL) < 0)
        fail(errno, "mount", "apply linux.rootfsPropagation (", ms_text(fb, sizeof fb, flags),
             ") to the container's /", NULL);
}

/* No mount namespace of its own (none listed): the container shares the runtime's, in
 * which nothing is mounted or changed; it only gets the rootfs as its root (runc's
 * chroot for this case).  config.py refuses what would need mounts. */
static void chroot_shared(const char *path)
{
    if (chdir(path) < 0)
        fail(errno, "chdir", "chdir to the rootfs ", path, NULL);
    if (chroot(".") < 0)
        fail(errno, "chroot", "chroot into ", path, " (the container shares the runtime's "
             "mount namespace)", NULL);
    if (chdir("/") < 0)
        fail(errno, "chdir", "chdir /", NULL);
}

static void mask_paths(void)
{
    FOR_EACH(r, T_MASKED) {
        struct stat st;
        const char *p = r->f[0].s;
        if (stat(p, &st) < 0) {
            if (errno == ENOENT)
                continue;
            fail(errno, "mask", "stat masked path ", p, NULL);
        }
        if (S_ISDIR(st.st_mode))
            do_mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL, p);
        else
            do_mount("/dev/null", p, NULL, MS_BIND, NULL, p);
    }
    FOR_EACH(r, T_READONLY) {
        const char *p = r->f[0].s;
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT)
                continue;
            do_mount(p, p, NULL, MS_BIND | MS_REC, NULL, p);
        }
        remount_ro_keep(p);
    }
}

/* Make a pty inside the container, hand the master to the runtime (`T`),
 * and make the slave our controlling terminal on 0, 1, 2. */
/* As runc: the container's pty is also its /dev/console (inside the container, after
 * pivot_root; an existing node is mounted over, never opened: it may be a real console). */
static void mount_console(const char *slave_path)
{
    struct stat st;
    if (stat("/dev", &st) < 0)
        return;
    int fd = open("/dev/console", O_CREAT | O_EXCL | O_RDONLY | O_NOCTTY | O_CLOEXEC, 0);
    if (fd < 0 && errno != EEXIST)
        fail(errno, "terminal", "create /dev/console for the pty", NULL);
    if (fd >= 0)
        close(fd);
    if (mount(slave_path, "/dev/console", NULL, MS_BIND, NULL) < 0)
        fail(errno, "terminal", "bind ", slave_path, " onto /dev/console", NULL);
}

static void setup_terminal(struct rec *t, int console)
{
    char path[64], nb[24];
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), zero = 0;
    unsigned int n;
    if (master < 0)
        fail(errno, "terminal", "open /dev/ptmx in the container", NULL);
    if (ioctl(master, TIOCSPTLCK, &zero) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
        fail(errno, "terminal", "unlock the pty master (TIOCSPTLCK/TIOCGPTN)", NULL);
    struct msg m = { .n = 0 };
    m_add(&m, "/dev/pts/");
    m_add(&m, num(nb, n));
    memcpy(path, m.b, m.n);
    path[m.n] = 0;
    int slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        fail(errno, "terminal", "open ", path, NULL);
    if (t->f[0].u || t->f[1].u) {
        struct winsize ws = { .ws_row = t->f[0].u, .ws_col = t->f[1].u };
        if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
            fail(errno, "terminal", "set the window size of ", path, NULL);
    }
    if (console)
        mount_console(path);
    m.n = 0;
    m_chr(&m, 'T');
    m_add(&m, path);
    if (send_packet(sync_fd, m.b, m.n, master) < 0)
        fail(errno, "terminal", "send the pty master to the runtime", NULL);
    close(master);
    if (setsid() < 0)
        fail(errno, "setsid", "setsid", NULL);
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        fail(errno, "terminal", "make ", path, " the controlling terminal (TIOCSCTTY)", NULL);
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0)
            fail(errno, "terminal", "dup ", path, " onto stdio", NULL);
    if (slave > 2)
        close(slave);
}

static const char *rlimit_name(char *buf, uint64_t resource)
{
    static const char *const N[] = { "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA",
        "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME" };
    return resource < sizeof N / sizeof N[0] ? N[resource] : num(buf, resource);
}

static int seccomp_loaded;   /* a filter is in force: it may deny what comes after */

static void set_rlimit(struct rec *r, const struct rlimit *rl)
{
    char nb[24], sb[24], hb[24];
    if (setrlimit(r->f[0].u, rl) < 0)
        fail(errno, "setrlimit", "setrlimit process.rlimits ", rlimit_name(nb, r->f[0].u),
             " (soft ", num(sb, r->f[1].u), ", hard ", num(hb, r->f[2].u), ")",
             seccomp_loaded ? " after the seccomp filter was loaded (does it allow prlimit64?)"
             : "", NULL);
}

/* process.rlimits are set right before execve (apply_late_rlimits), so that a small
 * RLIMIT_NOFILE or RLIMIT_AS limits the container's process, not this helper while it
 * still opens sockets and maps memory (runc sets RLIMIT_NOFILE late too).  Here, while
 * we are still privileged, only raise a hard limit that must grow (CAP_SYS_RESOURCE);
 * RLIMIT_NPROC is set now, before setresuid, which checks it. */
static void early_rlimits(void)
{
    FOR_EACH(r, T_RLIMIT) {
        struct rlimit cur, rl = { r->f[1].u, r->f[2].u };
        if (r->f[0].u == RLIMIT_NPROC) {
            set_rlimit(r, &rl);
            continue;
        }
        if (getrlimit(r->f[0].u, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
            (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > cur.rlim_max)) {
            cur.rlim_max = rl.rlim_max;
            set_rlimit(r, &cur);
        }
    }
}

static void apply_late_rlimits(void)
{
    FOR_EACH(r, T_RLIMIT) {
        struct rlimit rl = { r->f[1].u, r->f[2].u };
        if (r->f[0].u != RLIMIT_NPROC)
            set_rlimit(r, &rl);
    }
}

static void limits_and_flags(void)
{
    char nb[24];
    early_rlimits();
    struct rec *p = find(T_PERSONALITY);
    if (p && personality(p->f[0].u) < 0)
        fail(errno, "personality", "personality ", num(nb, p->f[0].u), NULL);
    struct rec *n = find(T_NO_NEW_PRIVS);
    if (n && n->f[0].u && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(errno, "no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS)", NULL);
    /* While we still hold CAP_SYS_NICE / CAP_SYS_ADMIN: real-time classes need them. */
    struct rec *s = find(T_SCHEDULER);
    if (s) {
        struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t priority;
                 uint64_t runtime, deadline, period; } attr = {
            sizeof attr, s->f[0].u, s->f[1].u, (int32_t)s->f[2].u, s->f[3].u,
            s->f[4].u, s->f[5].u, s->f[6].u };
        static const char *const policies[] = { "SCHED_OTHER", "SCHED_FIFO", "SCHED_RR",
            "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE" };
        int rt = s->f[0].u == 1 || s->f[0].u == 2;
        if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
            fail(errno, "scheduler", "sched_setattr for process.scheduler (",
                 s->f[0].u < 7 ? policies[s->f[0].u] : num(nb, s->f[0].u), ")",
                 rt && errno == EPERM ? "; with real-time group scheduling the container's "
                 "cgroup needs linux.resources.cpu.realtimeRuntime" : "", NULL);
    }
    struct rec *io = find(T_IO_PRIORITY);
    if (io && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0,
                      (int)(io->f[0].u << 13 | io->f[1].u)) < 0)
        fail(errno, "ioprio", "ioprio_set for process.ioPriority", NULL);
}

/* ------------------------------------------------------------- seccomp */

static scmp_filter_ctx build_seccomp(void)
{
    struct rec *init = find(T_SECCOMP_INIT);
    if (!init)
        return NULL;
    scmp_filter_ctx ctx = seccomp_init(init->f[0].u);
    int rc;
    if (!ctx)
        fail(EINVAL, "seccomp", "seccomp_init with the default action", NULL);
    /* NNP is the runtime's decision, not libseccomp's. */
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
        fail(-rc, "seccomp", "seccomp attribute CTL_NNP", NULL);
    if ((init->f[1].u & 2) && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1)) < 0)
        fail(-rc, "seccomp", "seccomp flag SECCOMP_FILTER_FLAG_LOG", NULL);
    if ((init->f[1].u & 4) && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1)) < 0)
        fail(-rc, "seccomp", "seccomp flag SECCOMP_FILTER_FLAG_SPEC_ALLOW", NULL);
    FOR_EACH(r, T_SECCOMP_ARCH) {
        uint32_t arch = seccomp_arch_resolve_name(r->f[0].s);
        if (!arch)
            fail(EINVAL, "seccomp", "unknown seccomp architecture ", r->f[0].s, NULL);
        if ((rc = seccomp_arch_add(ctx, arch)) < 0 && rc != -EEXIST)
            fail(-rc, "seccomp", "seccomp_arch_add ", r->f[0].s, NULL);
    }
    FOR_EACH(r, T_SECCOMP_RULE) {
        int nr = seccomp_syscall_resolve_name(r->f[0].s);
        uint32_t action = r->f[1].u, nargs = r->f[2].n / 4;
        if (nr == __NR_SCMP_ERROR || action == init->f[0].u)
            continue;   /* unknown syscall: skipped, as runc does */
        struct scmp_arg_cmp cmp[6 * 4];
        int repeats = 0;
        if (nargs > sizeof cmp / sizeof cmp[0])
            fail(E2BIG, "seccomp", "too many argument conditions for ", r->f[0].s, NULL);
        for (uint32_t i = 0; i < nargs; i++) {
            uint64_t *q = r->f[2].l + 4 * i;
            cmp[i] = (struct scmp_arg_cmp){ .arg = q[0], .datum_a = q[1], .datum_b = q[2], .op = q[3] };
            for (uint32_t j = 0; j < i; j++)
                repeats |= cmp[j].arg == cmp[i].arg;
        }
        if (repeats) {   /* same argument twice: the conditions are ORed, one rule each */
            for (uint32_t i = 0; i < nargs && rc >= 0; i++)
                rc = seccomp_rule_add_array(ctx, action, nr, 1, &cmp[i]);
        } else {
            rc = seccomp_rule_add_array(ctx, action, nr, nargs, cmp);
        }
        if (rc < 0)
            fail(-rc, "seccomp", "add the seccomp rule for ", r->f[0].s, NULL);
    }
    return ctx;
}

static void load_seccomp(scmp_filter_ctx ctx, int fd)
{
    int rc;
    if (!ctx)
        return;
    if ((rc = seccomp_load(ctx)) < 0) {
        sync_fd = fd;
        fail(-rc, "seccomp", "load the seccomp filter (seccomp_load)",
             -rc == ENOMEM && find(T_RLIMIT) ? " under process.rlimits" : "", NULL);
    }
    seccomp_loaded = 1;
}

/* ---------------------------------------------------- capabilities, user */

static int last_cap = 40;

static void drop_privileges(void)
{
    struct rec *caps = find(T_CAPS), *user = find(T_USER);
    char nb[24];
    if (caps)
        for (int c = 0; c <= last_cap; c++)
            if (!(caps->f[0].u >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                fail(errno, "capabilities", "drop capability ", num(nb, c), " from the bounding set", NULL);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        fail(errno, "capabilities", "prctl(PR_SET_KEEPCAPS, 1)", NULL);
    if (user) {
        char sg[64] = "";
        /* (uid_t)-1 means "leave unchanged" to setresuid: the process would stay root.
         * config.py allows 0..2^31-1 only (runc's range); checked again where it matters. */
        if (user->f[0].u > 0x7fffffff || user->f[1].u > 0x7fffffff)
            fail(EINVAL, "user", "uid ", num(nb, user->f[0].u), " / gid ",
                 num(sg, user->f[1].u), ": ids must be from 0 to 2147483647", NULL);
        read_small("/proc/self/setgroups", sg, sizeof sg);
        if (!strstr(sg, "deny")) {
            /* The kernel takes up to NGROUPS_MAX (65536): pack the u64 list into gid_t's
             * in place (entry i moves down from byte 8i to 4i), no allocation. */
            uint32_t n = user->f[3].n;
            gid_t *gids = (gid_t *)user->f[3].l;
            if (n > 65536)
                fail(E2BIG, "setgroups", "more than 65536 additional gids", NULL);
            for (uint32_t i = 0; i < n; i++) {
                uint64_t g = user->f[3].l[i];
                if (g > 0x7fffffff)
                    fail(EINVAL, "setgroups", "additional gid ", num(nb, g),
                         ": ids must be from 0 to 2147483647", NULL);
                gids[i] = (gid_t)g;
            }
            if (setgroups(n, gids) < 0)
                fail(errno, "setgroups", "setgroups (", num(nb, n), " additional gids)", NULL);
        }
        if (setresgid(user->f[1].u, user->f[1].u, user->f[1].u) < 0)
            fail(errno, "setresgid", "setresgid ", num(nb, user->f[1].u), NULL);
        if (setresuid(user->f[0].u, user->f[0].u, user->f[0].u) < 0)
            fail(errno, "setresuid", "setresuid ", num(nb, user->f[0].u), NULL);
    }
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        fail(errno, "capabilities", "prctl(PR_SET_KEEPCAPS, 0)", NULL);
    if (caps) {
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        for (int i = 0; i < 2; i++) {
            d[i].effective = caps->f[1].u >> (32 * i);
            d[i].permitted = caps->f[2].u >> (32 * i);
            d[i].inheritable = caps->f[3].u >> (32 * i);
        }
        if (syscall(SYS_capset, &h, d) < 0)
            fail(errno, "capabilities", "capset (effective, permitted, inheritable)", NULL);
        for (int c = 0; c <= last_cap; c++)
            if ((caps->f[4].u >> c & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
                fail(errno, "capabilities", "raise ambient capability ", num(nb, c), NULL);
    }
    if (user && user->f[2].u != 0xFFFFFFFFu)
        umask(user->f[2].u & 0777);
}

/* ------------------------------------------------------------ LSM labels */

/* process.apparmorProfile / process.selinuxLabel (LSM_LABEL records, only planned when
 * that LSM is active): the label the process gets at execve.  Written to the container's
 * /proc, checked to be a procfs first (write_proc), while still privileged and before
 * no_new_privs (AppArmor refuses most onexec changes under it), as runc does. */
static void apply_lsm_labels(void)
{
    FOR_EACH(r, T_LSM_LABEL) {
        int apparmor = r->f[0].u == 0;
        const char *field = apparmor ? "process.apparmorProfile" : "process.selinuxLabel";
        const char *path = apparmor ? "/proc/self/attr/apparmor/exec" : "/proc/self/attr/exec";
        const char *step = apparmor ? "apparmor" : "selinux";
        struct msg m = { .n = 0 };
        if (apparmor)
            m_add(&m, "exec ");
        m_add(&m, r->f[1].s);
        if (apparmor && access(path, F_OK) < 0 && errno == ENOENT)   /* before Linux 5.1 */
            path = "/proc/self/attr/exec";
        if (write_proc(path, m.b, m.n, step) < 0)
            fail(errno, step, "apply ", field, " \"", r->f[1].s, "\": write to ", path,
                 errno == ENOENT && !apparmor ? " (is /proc mounted in the container?)" :
                 errno == ENOENT ? " (is the profile loaded, and /proc mounted?)" : "", NULL);
    }
}

/* ------------------------------------------------- args[0] and preflight */

static char **argv_c, **envp_c;
static char exe_path[4096];

/* Find args[0] on $PATH (from the container env) like execvp would. */
static void lookup_exe(void)
{
    const char *a0 = argv_c[0], *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    if (!a0)
        fail(EINVAL, "exec", "process.args is empty", NULL);
    char cb[128];
    if (strchr(a0, '/')) {
        if (strlen(a0) >= sizeof exe_path)   /* never exec a cut-off prefix of it */
            fail(ENAMETOOLONG, "exec", "process.args[0] \"", cut(cb, a0), "\"", NULL);
        strncpy(exe_path, a0, sizeof exe_path - 1);
        return;
    }
    for (char **e = envp_c; *e; e++)
        if (!strncmp(*e, "PATH=", 5))
            path = *e + 5;
    for (;;) {   /* an empty PATH entry means the current directory */
        const char *end = strchrnul(path, ':');
        struct msg m = { .n = 0 };
        struct stat st;
        size_t dl = end - path < 3000 ? (size_t)(end - path) : 3000;
        memcpy(m.b, path, dl);
        m.n = dl;
        if (dl)
            m_chr(&m, '/');
        m_add(&m, a0);
        m.b[m.n] = 0;
        if (stat(m.b, &st) == 0 && S_ISREG(st.st_mode) && access(m.b, X_OK) == 0) {
            memcpy(exe_path, m.b, m.n + 1);
            return;
        }
        if (!*end)
            break;
        path = end + 1;
    }
    fail(ENOENT, "exec", "process.args[0] \"", cut(cb, a0),
         "\": executable file not found in $PATH", NULL);
}

/* Check the ELF interpreter (PT_INTERP) exists in the rootfs. */
static void check_elf(int fd, const unsigned char *hdr, ssize_t n)
{
    char interp[256], cb[128];
    uint64_t off = 0, size = 0;
    if (n >= (ssize_t)sizeof(Elf64_Ehdr) && hdr[EI_CLASS] == ELFCLASS64) {
        const Elf64_Ehdr *eh = (const void *)hdr;
        for (int i = 0; i < eh->e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, eh->e_phoff + (uint64_t)i * eh->e_phentsize) != sizeof ph)
                return;
            if (ph.p_type == PT_INTERP) { off = ph.p_offset; size = ph.p_filesz; break; }
        }
    } else if (n >= (ssize_t)sizeof(Elf32_Ehdr) && hdr[EI_CLASS] == ELFCLASS32) {
        const Elf32_Ehdr *eh = (const void *)hdr;
        for (int i = 0; i < eh->e_phnum; i++) {
            Elf32_Phdr ph;
            if (pread(fd, &ph, sizeof ph, eh->e_phoff + (uint64_t)i * eh->e_phentsize) != sizeof ph)
                return;
            if (ph.p_type == PT_INTERP) { off = ph.p_offset; size = ph.p_filesz; break; }
        }
    }
    if (!size || size >= sizeof interp || pread(fd, interp, size, off) != (ssize_t)size)
        return;
    interp[size] = 0;
    if (access(interp, F_OK) < 0 && errno == ENOENT)
        fail(ENOENT, "exec", "process.args[0] \"", cut(cb, exe_path), "\": its ELF interpreter ",
             interp, " is missing in the rootfs", NULL);
}

/* Check a `#!` line: CRLF endings and a missing interpreter. */
static void check_shebang(const char *hdr, ssize_t n)
{
    char interp[256], cb[128];
    const char *p = hdr + 2, *eol = memchr(hdr, '\n', n);
    if (eol && eol > hdr && eol[-1] == '\r')
        fail(ENOENT, "exec", "process.args[0] \"", cut(cb, exe_path),
             "\": has Windows (CRLF) line endings in its #! line", NULL);
    while (p < hdr + n && (*p == ' ' || *p == '\t'))
        p++;
    size_t len = 0;
    while (p + len < hdr + n && !strchr(" \t\r\n", p[len]) && len < sizeof interp - 1)
        len++;
    memcpy(interp, p, len);
    interp[len] = 0;
    if (len && access(interp, F_OK) < 0 && errno == ENOENT)
        fail(ENOENT, "exec", "process.args[0] \"", cut(cb, exe_path), "\": its #! interpreter ",
             interp, " is missing in the rootfs", NULL);
}

/* Catch what would make execve fail with a puzzling ENOENT, before `R`. */
static void preflight(void)
{
    struct stat st;
    char cb[128];
    unsigned char hdr[256];
    if (stat(exe_path, &st) < 0)
        fail(errno, "exec", "process.args[0] \"", cut(cb, exe_path),
             "\": cannot stat the executable", NULL);
    if (S_ISDIR(st.st_mode))
        fail(EACCES, "exec", "process.args[0] \"", cut(cb, exe_path),
             "\": is a directory, not an executable", NULL);
    if (access(exe_path, X_OK) < 0)
        fail(errno, "exec", "process.args[0] \"", cut(cb, exe_path), "\": is not executable", NULL);
    int fd = open(exe_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;   /* execute-only files cannot be inspected; let execve decide */
    ssize_t n = pread(fd, hdr, sizeof hdr - 1, 0);
    if (n >= 4 && !memcmp(hdr, ELFMAG, SELFMAG))
        check_elf(fd, hdr, n);
    else if (n >= 2 && hdr[0] == '#' && hdr[1] == '!')
        check_shebang((const char *)hdr, n);
    close(fd);
}

/* ------------------------------------------------------- start and exec */

/* process.execCPUAffinity: `initial` before the clone (the process is then moved into its
 * cgroups), `final` right before execve. */
static void set_cpu_affinity(unsigned stage)
{
    FOR_EACH(r, T_CPU_AFFINITY) {
        if (r->f[0].u != stage)
            continue;
        cpu_set_t set;
        CPU_ZERO(&set);
        for (uint32_t w = 0; w < r->f[1].n; w++)
            for (int b = 0; b < 64; b++)
                if (r->f[1].l[w] >> b & 1 && w * 64 + b < CPU_SETSIZE)
                    CPU_SET(w * 64 + b, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            fail(errno, "affinity", "sched_setaffinity for process.execCPUAffinity.",
                 stage ? "final" : "initial", " (are those CPUs online and in the cpuset?)",
                 NULL);
    }
}

/* A HOOK record with the argv and envp of the HOOK_ARG/HOOK_ENV records after it;
 * built before the clone, like the process's own vectors. */
struct hook { struct rec *rec; char **argv; char **envp; };
static struct hook *hooks;
static size_t nhooks;
static mode_t hook_umask = 022;   /* the umask the init was started with */

static int build_hooks(void)
{
    FOR_EACH(r, T_HOOK) nhooks++;
    if (!nhooks)
        return 0;
    hooks = calloc(nhooks, sizeof *hooks);
    if (!hooks)
        return -1;
    size_t h = 0;
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].tag != T_HOOK)
            continue;
        size_t end = i + 1, na = 0, ne = 0;
        for (; end < nrecs && (recs[end].tag == T_HOOK_ARG || recs[end].tag == T_HOOK_ENV); end++)
            recs[end].tag == T_HOOK_ARG ? na++ : ne++;
        hooks[h].rec = &recs[i];
        hooks[h].argv = calloc(na + 1, sizeof(char *));
        hooks[h].envp = calloc(ne + 1, sizeof(char *));
        if (!hooks[h].argv || !hooks[h].envp)
            return -1;
        na = ne = 0;
        for (size_t k = i + 1; k < end; k++)
            if (recs[k].tag == T_HOOK_ARG)
                hooks[h].argv[na++] = recs[k].f[0].s;
            else
                hooks[h].envp[ne++] = recs[k].f[0].s;
        h++;
    }
    return 0;
}

static int build_vectors(void)
{
    size_t na = 0, ne = 0, i = 0, j = 0;
    FOR_EACH(r, T_ARG) na++;
    FOR_EACH(r, T_ENV) ne++;
    argv_c = calloc(na + 1, sizeof *argv_c);
    envp_c = calloc(ne + 1, sizeof *envp_c);
    if (!argv_c || !envp_c)
        return -1;
    FOR_EACH(r, T_ARG) argv_c[i++] = r->f[0].s;
    FOR_EACH(r, T_ENV) envp_c[j++] = r->f[0].s;
    return build_hooks();
}

/* ------------------------------------------------------------------ hooks */

/* Read one whole packet into fresh memory (the state JSON can be long); the caller
 * checks its first byte.  Returns the length, or -1. */
static ssize_t recv_whole(int fd, char **out)
{
    ssize_t n;
    do n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC); while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    char *buf = mmap(NULL, n + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -1;
    ssize_t got;
    do got = recv(fd, buf, n, 0); while (got < 0 && errno == EINTR);
    if (got != n)
        return -1;
    buf[n] = 0;
    *out = buf;
    return n;
}

/* Feed `state` to a hook's stdin through a pipe big enough to hold it all, so that
 * neither side can block on the other. */
static int state_pipe(const char *state, size_t len)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    if (len > 4096)
        fcntl(p[1], F_SETPIPE_SZ, (int)len);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(p[1], state + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(p[0]);
            close(p[1]);
            errno = w < 0 ? errno : EPIPE;
            return -1;
        }
        off += w;
    }
    close(p[1]);
    return p[0];
}

/* Wait for `pid`, at most `timeout` seconds (0: no limit); SIGCHLD is blocked.
 * Returns 0 with *status, or -1 on timeout (the hook is killed and reaped). */
static int wait_hook(pid_t pid, uint64_t timeout, const sigset_t *chld, int *status)
{
    struct timespec now, end;
    if (!timeout) {
        while (waitpid(pid, status, 0) < 0)
            if (errno != EINTR)
                return -1;
        return 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct timespec left = { end.tv_sec - now.tv_sec, end.tv_nsec - now.tv_nsec };
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (left.tv_sec < 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        sigtimedwait(chld, NULL, &left);
    }
}

/* The last line a hook printed (at most 300 bytes), for its error message. */
static const char *last_line(int fd, char *buf, size_t size)
{
    struct stat st;
    buf[0] = 0;
    if (fstat(fd, &st) < 0 || st.st_size == 0)
        return buf;
    off_t from = st.st_size > (off_t)size - 1 ? st.st_size - (off_t)size + 1 : 0;
    ssize_t n = pread(fd, buf, size - 1, from);
    if (n <= 0)
        return buf;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    buf[n] = 0;
    char *nl = memrchr(buf, '\n', n);
    return nl ? nl + 1 : buf;
}

/* Run one hook with `state` on its stdin and its output in a memfd (shown on failure,
 * like the runtime's own hooks); any failure ends the init with `E`.  `dir_fd` >= 0:
 * the hook's working directory (createContainer runs in the rootfs, as runc's does). */
static void run_hook(struct hook *h, const char *state, size_t len, const char *kind, int dir_fd)
{
    struct rec *r = h->rec;
    const char *where = r->f[1].s, *path = r->f[2].s;
    char nb[24], said[304];
    int in = state_pipe(state, len), report[2];
    if (in < 0)
        fail(errno, kind, where, " \"", path, "\": a pipe for the state on its stdin", NULL);
    if (pipe2(report, O_CLOEXEC) < 0)
        fail(errno, kind, where, " \"", path, "\": a pipe for its exec error", NULL);
    int out = memfd_create("minirunc-hook-output", MFD_CLOEXEC);
    if (out < 0)
        fail(errno, kind, where, " \"", path, "\": a memfd for its output", NULL);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t pid = fork();
    if (pid < 0)
        fail(errno, kind, where, " \"", path, "\": fork", NULL);
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        umask(hook_umask);   /* not the 0 the init uses while it makes devices */
        if ((dir_fd < 0 || fchdir(dir_fd) == 0) &&
            dup2(in, 0) == 0 && dup2(out, 1) == 1 && dup2(out, 2) == 2)
            execve(path, h->argv, h->envp);
        int e = errno;
        (void)!write(report[1], &e, sizeof e);
        _exit(127);
    }
    close(in);
    close(report[1]);
    int status = 0, exec_errno = 0;
    int waited = wait_hook(pid, r->f[3].u, &chld, &status);
    sigprocmask(SIG_SETMASK, &old, NULL);
    ssize_t got = read(report[0], &exec_errno, sizeof exec_errno);
    close(report[0]);
    if (waited < 0)
        fail(0, kind, where, " \"", path, "\": did not finish within its timeout of ",
             num(nb, r->f[3].u), " s (killed)", NULL);
    if (got == sizeof exec_errno)
        fail(exec_errno, kind, where, " \"", path, "\": cannot execute it", NULL);
    const char *tail = last_line(out, said, sizeof said);
    close(out);
    if (WIFSIGNALED(status))
        fail(0, kind, where, " \"", path, "\": killed by signal ", num(nb, WTERMSIG(status)),
             *tail ? ": " : "", tail, NULL);
    if (WEXITSTATUS(status))
        fail(0, kind, where, " \"", path, "\": exited with status ", num(nb, WEXITSTATUS(status)),
             *tail ? ": " : "", tail, NULL);
}

static void run_hooks(unsigned stage, const char *state, size_t len, const char *kind,
                      int dir_fd)
{
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i].rec->f[0].u == stage)
            run_hook(&hooks[i], state, len, kind, dir_fd);
}

/* After the mounts: let the runtime run prestart and createRuntime hooks (`H`), take
 * the state it sends back with `h`, and run the createContainer hooks. */
static void hook_sync(void)
{
    char *msg;
    if (send_packet(sync_fd, "H", 1, -1) < 0)
        _exit(1);
    ssize_t n = recv_whole(sync_fd, &msg);
    if (n < 1 || msg[0] != 'h')
        _exit(1);   /* the runtime failed its own hooks and is killing us */
    run_hooks(0, msg + 1, n - 1, "createContainer", root_fd);   /* cwd: the rootfs */
    munmap(msg, n + 1);
}

/* Block until `start` sends `S`, then exec.  Errors after this point go to
 * the start connection (the runtime that created us may be gone). */
static void __attribute__((noreturn)) wait_start_and_exec(int listen_fd, scmp_filter_ctx late)
{
    struct rec *pf = find(T_PRESERVE_FDS);
    int keep = 3 + (pf ? (int)pf->f[0].u : 0);
    if (send_packet(sync_fd, "R", 1, -1) < 0)
        _exit(1);
    int conn;
    do conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC); while (conn < 0 && errno == EINTR);
    if (conn < 0)
        fail(errno, "start", "accept on the start socket", NULL);
    close(sync_fd);
    sync_fd = conn;
    close(listen_fd);
    /* `S`, then the state JSON for the startContainer hooks. */
    char *msg;
    ssize_t n = recv_whole(conn, &msg);
    if (n < 1 || msg[0] != 'S')
        _exit(1);
    run_hooks(1, msg + 1, n - 1, "startContainer", -1);   /* cwd: process.cwd */
    set_cpu_affinity(1);
    apply_late_rlimits();
    load_seccomp(late, conn);
    for (int fd = 0; fd < keep; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && (fl & FD_CLOEXEC))
            fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
    execve(exe_path, argv_c, envp_c);
    int e = errno;
    struct msg m = { .n = 0 };
    m_chr(&m, 'E');
    m_num(&m, e);
    m_chr(&m, 0);
    m_add(&m, "exec");
    m_chr(&m, 0);
    m_add(&m, "execve process.args[0] \"");
    m_add(&m, exe_path);
    m_add(&m, "\"");
    if (e == ENOMEM && find(T_RLIMIT))
        m_add(&m, " under process.rlimits (is RLIMIT_AS, RLIMIT_DATA or RLIMIT_STACK too small?)");
    send_packet(conn, m.b, m.n, -1);
    _exit(127);
}

/* --------------------------------------------------------------- stages */

/* Leave the caller's session keyring for the container's own (runc does the same; a
 * kernel without keyrings only gets a note). */
static void join_session_keyring(void)
{
    struct rec *k = find(T_SESSION_KEYRING);
    char desc[512], nb[24];
    if (!k)
        return;
    long id = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, k->f[0].s);
    if (id < 0 && errno == ENOSYS) {
        note("this kernel has no keyrings: the session keyring ", k->f[0].s, " was not made", NULL);
        return;
    }
    if (id < 0)
        fail(errno, "keyring", "join the session keyring ", k->f[0].s,
             " (run with --no-new-keyring to keep the caller's)", NULL);
    /* "type;uid;gid;perm;description": the permissions are the fourth field, in hex. */
    long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, desc, sizeof desc - 1);
    if (n < 0)
        fail(errno, "keyring", "describe the session keyring ", k->f[0].s, NULL);
    desc[n < (long)sizeof desc ? n : (long)sizeof desc - 1] = 0;
    char *p = desc;
    for (int field = 0; field < 3 && p; field++)
        if ((p = strchr(p, ';')))
            p++;
    if (!p)
        fail(EINVAL, "keyring", "unexpected description of the session keyring: ", desc, NULL);
    unsigned long perm = strtoul(p, NULL, 16) | k->f[1].u;
    if (syscall(SYS_keyctl, KEYCTL_SETPERM, id, perm) < 0)
        fail(errno, "keyring", "set the permissions of the session keyring ", k->f[0].s,
             " to 0x", hex(nb, perm), NULL);
}

/* Stage 2: the container's pid 1, inside the new namespaces. */
/* ------------------------------------------------------------ cgroups */

/* The container's cgroups (CGROUP_JOIN records), opened by stage 1 before it joins any
 * namespace (the paths are the host's): v1 `tasks` files and one cgroup2 directory. */
#define MAX_TASKS_FILES 64
static int tasks_fd[MAX_TASKS_FILES];
static const char *tasks_path[MAX_TASKS_FILES];
static int ntasks;
static int cgroup2_fd = -1;

static void open_cgroups(void)
{
    FOR_EACH(r, T_CGROUP_JOIN) {
        if (r->f[0].u == 2) {
            if (cgroup2_fd >= 0)
                fail(EINVAL, "plan", "more than one cgroup2 directory to clone into", NULL);
            if ((cgroup2_fd = open(r->f[1].s, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                fail(errno, "cgroup", "open the cgroup directory ", r->f[1].s, NULL);
            continue;
        }
        if (ntasks == MAX_TASKS_FILES)
            fail(E2BIG, "plan", "too many cgroup tasks files", NULL);
        tasks_path[ntasks] = r->f[1].s;
        if ((tasks_fd[ntasks] = open(r->f[1].s, O_WRONLY | O_CLOEXEC)) < 0)
            fail(errno, "join cgroup", r->f[1].s, NULL);
        ntasks++;
    }
}

/* Stage 2, first thing: move this process (one thread) into each v1 cgroup.  "0" names
 * the writer's own thread, for which the kernel skips cgroup_threadgroup_rwsem, the lock
 * whose first writer waits for an RCU grace period (5-15 ms here). */
static void join_cgroups(void)
{
    if (cgroup2_fd >= 0)
        close(cgroup2_fd);
    for (int i = 0; i < ntasks; i++) {
        if (write(tasks_fd[i], "0", 1) != 1)
            fail(errno, "join cgroup", tasks_path[i], NULL);
        close(tasks_fd[i]);
    }
}

/* clone stage 2; into the cgroup2 directory when there is one and the kernel can
 * (clone3 with CLONE_INTO_CGROUP, 5.7).  *into says whether it did: if not (ENOSYS,
 * EINVAL, E2BIG from older kernels, or any refusal), a plain clone, and the runtime
 * moves the init, with its own error message should that fail too. */
static long clone_stage2(unsigned long flags, int *into)
{
    *into = 0;
    if (cgroup2_fd >= 0) {
        /* struct clone_args up to .cgroup (CLONE_ARGS_SIZE_VER2).  exit_signal stays 0:
         * clone3 refuses one with CLONE_PARENT; the child gets the parent's (SIGCHLD). */
        uint64_t args[11] = { 0 };
        args[0] = CLONE_PARENT | flags | CLONE_INTO_CGROUP;
        args[10] = (uint64_t)cgroup2_fd;
        long pid = syscall(SYS_clone3, args, sizeof args);
        if (pid >= 0) {
            *into = 1;
            return pid;
        }
    }
    return syscall(SYS_clone, SIGCHLD | CLONE_PARENT | flags, 0, NULL, NULL, 0);
}

static void __attribute__((noreturn)) stage2(int listen_fd, int join_user)
{
    join_cgroups();
    char c = 0;
    if (new_userns) {
        if (send_packet(sync_fd, "U", 1, -1) < 0)
            _exit(1);
        if (recv(sync_fd, &c, 1, 0) != 1 || c != 'u')
            fail(EPROTO, "userns", "waiting for the id maps: expected 'u' from the runtime", NULL);
    }
    if (new_userns || join_user) {
        if (setresgid(0, 0, 0) < 0)
            fail(errno, "setresgid", "setresgid 0 in the user namespace (is gid 0 mapped?)", NULL);
        if (setresuid(0, 0, 0) < 0)
            fail(errno, "setresuid", "setresuid 0 in the user namespace (is uid 0 mapped?)", NULL);
    }
    step("join the session keyring");
    join_session_keyring();
    mode_t old_umask = umask(0);   /* device modes and directories as planned */
    hook_umask = old_umask;
    set_names();
    struct rec *root = find(T_ROOTFS), *shared = find(T_SHARED_MOUNT_NS);
    if (shared && shared->f[0].u) {
        shared_root = root;   /* the runtime's mount namespace: change nothing in it */
        root = NULL;
    }
    if (root) {
        step("mount the rootfs and the mounts");
        check_own_mount_namespace();
        prepare_rootfs(root);
        FOR_EACH(r, T_MOUNT) do_one_mount(r);
        step("create the devices and links");
        FOR_EACH(r, T_DEVICE) make_device(r);
        FOR_EACH(r, T_SYMLINK) make_symlink(r);
    }
    if (find(T_HOOK_SYNC))
        hook_sync();
    step("write the sysctls");
    write_sysctls();
    if (root) {
        step("enter the rootfs (pivot_root) and mask paths");
        enter_rootfs(root->f[3].u);
        mask_paths();
    } else if (shared_root) {
        step("enter the rootfs (chroot)");
        chroot_shared(shared_root->f[0].s);
    }
    umask(old_umask);
    apply_lsm_labels();
    struct rec *term = find(T_TERMINAL);
    step("set up the terminal and the session");
    if (term)   /* exec gets no /dev/console of its own, nor a shared mount namespace */
        setup_terminal(term, root != NULL);
    else if (setsid() < 0)
        fail(errno, "setsid", "setsid", NULL);
    if (root)   /* after the binds of masked paths and /dev/console: "unbindable" forbids them */
        root_propagation(root->f[2].u);
    remount_readonly_later();   /* read-only tmpfs and /dev, after /dev/console */
    if (root && root->f[1].u)   /* after /dev/console, which may live on the root itself */
        remount_ro_keep("/");
    step("apply rlimits, personality, scheduler");
    limits_and_flags();
    struct rec *nnp = find(T_NO_NEW_PRIVS);
    int late = nnp && nnp->f[0].u;
    step("build the seccomp filter");
    scmp_filter_ctx ctx = build_seccomp();
    if (!late)   /* without NNP the filter must go in while we still have CAP_SYS_ADMIN */
        load_seccomp(ctx, sync_fd);
    step("drop capabilities and switch user");
    drop_privileges();
    step("change to process.cwd and check process.args[0]");
    struct rec *cwd = find(T_CWD);
    if (cwd && chdir(cwd->f[0].s) < 0) {
        int e = errno;
        char cb[128];
        fail(e, "cwd", "process.cwd \"", cut(cb, cwd->f[0].s), "\": ",
             e == ENOENT ? "does not exist in the container" :
             e == ENOTDIR ? "is not a directory" : "cannot chdir into it", NULL);
    }
    lookup_exe();
    preflight();
    wait_start_and_exec(listen_fd, late ? ctx : NULL);
}

static int parse_fd(const char *s)
{
    char *end;
    long v = s && *s ? strtol(s, &end, 10) : -1;
    if (v < 3 || v > 1 << 20 || *end || fcntl(v, F_GETFD) < 0)
        return -1;
    /* Our own fds must never reach the container process. */
    fcntl(v, F_SETFD, FD_CLOEXEC);
    return v;
}

/* A user namespace holding `uid_map`/`gid_map`, for mount_setattr(MOUNT_ATTR_IDMAP):
 * a child unshares it and waits while we write its maps and open it.  Returns its fd. */
static int idmap_userns(const char *uid_map, const char *gid_map, const char *dest)
{
    int ready[2], hold[2];
    char path[64], nb[24];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0)
        fail(errno, "idmap", "pipes for the user namespace of the idmapped mount on ", dest, NULL);
    pid_t pid = fork();
    if (pid < 0)
        fail(errno, "idmap", "fork for the user namespace of the idmapped mount on ", dest, NULL);
    if (pid == 0) {
        char c;
        close(ready[0]);
        close(hold[1]);
        if (unshare(CLONE_NEWUSER) < 0)
            _exit(1);
        (void)!write(ready[1], "r", 1);
        (void)!read(hold[0], &c, 1);   /* until stage 1 closes its end */
        _exit(0);
    }
    char c;
    close(ready[1]);
    close(hold[0]);
    int ok = read(ready[0], &c, 1) == 1;
    close(ready[0]);
    int fd = -1, err = EPERM;
    const char *what = "unshare a user namespace";
    if (ok) {
        memcpy(path, "/proc/", 6);
        strcpy(path + 6, num(nb, pid));
        size_t n = strlen(path);
        strcpy(path + n, "/uid_map");
        what = "write its uid_map";
        if (write_file(path, uid_map, strlen(uid_map)) == 0) {
            strcpy(path + n, "/gid_map");
            what = "write its gid_map";
            if (write_file(path, gid_map, strlen(gid_map)) == 0) {
                strcpy(path + n, "/ns/user");
                what = "open it";
                fd = open(path, O_RDONLY | O_CLOEXEC);
            }
        }
        err = errno;
    }
    close(hold[1]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (fd < 0)
        fail(err, "idmap", "user namespace for the idmapped mount on ", dest, ": ", what,
             " (check mounts[].uidMappings/gidMappings)", NULL);
    return fd;
}

/* Stage 1, still in the host's mount namespace: each idmapped bind becomes a detached
 * tree (open_tree), idmapped there (mount_setattr needs the host's privileges over the
 * filesystem), for stage 2 to move into the rootfs. */
static void prepare_idmapped_mounts(void)
{
    for (size_t i = 0; i + 1 < nrecs; i++) {
        struct rec *m = &recs[i], *id = &recs[i + 1];
        if (m->tag != T_MOUNT || id->tag != T_MOUNT_IDMAP)
            continue;
        if (!idmapped_tree) {
            idmapped_tree = malloc(nrecs * sizeof *idmapped_tree);
            if (!idmapped_tree)
                fail(ENOMEM, "idmap", "allocate the idmapped mount table", NULL);
            for (size_t k = 0; k < nrecs; k++)
                idmapped_tree[k] = -1;
        }
        const char *src = m->f[1].s, *dest = m->f[2].s;
        unsigned rec_flag = id->f[0].u ? AT_RECURSIVE : 0;
        int tree = syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec_flag);
        if (tree < 0)
            fail(errno, "idmap", "open_tree (clone) of the bind source ", src,
                 errno == ENOSYS ? " (idmapped mounts need Linux 5.12)" : "", NULL);
        int userns = idmap_userns(id->f[1].s, id->f[2].s, dest);
        struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = userns };
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | rec_flag, &attr, sizeof attr) < 0)
            fail(errno, "idmap", "idmap the bind of ", src, " for ", dest,
                 " (mount_setattr MOUNT_ATTR_IDMAP; the filesystem must support idmapped mounts)",
                 NULL);
        close(userns);
        idmapped_tree[i] = tree;
    }
}

/* A new time namespace cannot come from clone(): its flag shares bits with the exit
 * signal there.  unshare() it instead, so that the clone lands in it, and set its clock
 * offsets while nothing is inside yet. */
static void new_time_namespace(void)
{
    struct msg m = { .n = 0 };
    if (unshare(CLONE_NEWTIME) < 0)
        fail(errno, "unshare", "unshare a new time namespace", NULL);
    FOR_EACH(r, T_TIME_OFFSET) {
        m_add(&m, r->f[0].s);
        m_chr(&m, ' ');
        m_num(&m, (long long)r->f[1].u);
        m_chr(&m, ' ');
        m_num(&m, (long long)r->f[2].u);
        m_chr(&m, '\n');
    }
    if (m.n && write_file("/proc/self/timens_offsets", m.b, m.n) < 0)
        fail(errno, "timens", "write linux.timeOffsets to /proc/self/timens_offsets", NULL);
}

/* Stage 1: read the plan, join namespaces, clone stage 2. */
int main(int argc, char **argv)
{
    int plan_fd, listen_fd;
    char nb[24];
    if (argc != 4 || (sync_fd = parse_fd(argv[1])) < 0 || (plan_fd = parse_fd(argv[2])) < 0 ||
        (listen_fd = parse_fd(argv[3])) < 0) {
        static const char m[] = "minirunc-init: not started by minirunc\n";
        (void)!write(2, m, sizeof m - 1);
        return 127;
    }
    load_plan(plan_fd);
    close(plan_fd);
    if (build_vectors() < 0)
        fail(ENOMEM, "plan", "allocate argv/env", NULL);
    char cl[16];
    if (read_small("/proc/sys/kernel/cap_last_cap", cl, sizeof cl) > 0)
        last_cap = atoi(cl);

    remember_host_namespaces();
    open_cgroups();
    /* Open every namespace first (paths may live in a namespace we leave),
     * then join: user first (it grants the rights for the rest), mount last. */
    int join_fd[64], join_flag[64], nj = 0, join_user = 0;
    const char *join_path[64];
    FOR_EACH(r, T_NS_JOIN) {
        if (nj == 64)
            fail(E2BIG, "setns", "too many namespaces to join", NULL);
        join_flag[nj] = r->f[0].u;
        join_path[nj] = r->f[1].s;
        if (!ns_name(join_flag[nj])[0])
            fail(EINVAL, "setns", "namespace ", r->f[1].s, " has an unknown type 0x",
                 hex(nb, r->f[0].u), NULL);
        if ((join_fd[nj] = open(r->f[1].s, O_RDONLY | O_CLOEXEC)) < 0)
            fail(errno, "setns", "open namespace ", r->f[1].s, NULL);
        nj++;
    }
    static const int order[] = { CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET,
                                 CLONE_NEWPID, CLONE_NEWCGROUP, CLONE_NEWTIME, CLONE_NEWNS };
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
        for (int i = 0; i < nj; i++) {
            if (join_flag[i] != order[o])
                continue;
            if (setns(join_fd[i], join_flag[i]) < 0)
                fail(errno, "setns", "join namespace ", join_path[i], " (", ns_name(join_flag[i]), ")", NULL);
            join_user |= join_flag[i] == CLONE_NEWUSER;
            close(join_fd[i]);
        }

    prepare_idmapped_mounts();
    set_cpu_affinity(0);
    struct rec *ns = find(T_NS_NEW);
    unsigned long flags = ns ? ns->f[0].u : 0;
    new_userns = !!(flags & CLONE_NEWUSER);
    if (flags & CLONE_NEWTIME) {
        new_time_namespace();
        flags &= ~(unsigned long)CLONE_NEWTIME;
    }
    /* Stage 2 waits on this pipe until our `P` is sent, so the runtime always learns
     * the pid before any message of stage 2 (`U` needs it to write the maps). */
    int p_sent[2];
    if (pipe2(p_sent, O_CLOEXEC) < 0)
        fail(errno, "pipe", "pipe2 for the stage order", NULL);
    int into;
    long pid = clone_stage2(flags, &into);
    if (pid < 0)
        fail(errno, "clone", "clone the container init (flags 0x", hex(nb, flags), ")", NULL);
    if (pid == 0) {
        char c;
        close(p_sent[1]);
        if (read(p_sent[0], &c, 1) != 1)
            _exit(1);   /* stage 1 died before telling the runtime our pid */
        close(p_sent[0]);
        stage2(listen_fd, join_user);
    }
    struct msg m = { .n = 0 };
    m_chr(&m, 'P');
    m_num(&m, pid);
    m_chr(&m, '\0');
    m_chr(&m, into ? '1' : '0');   /* born in the cgroup2 directory */
    if (send_packet(sync_fd, m.b, m.n, -1) == 0)
        (void)!write(p_sent[1], "p", 1);
    _exit(0);
}
