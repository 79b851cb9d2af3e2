/* The C front door: `state`, `kill`, `start` and `delete` without the interpreter (see
 * door.h, and docs/design.md "The front door" for the contract with state.py).
 *
 * Rules, so that the door can never change what a command does:
 * - it prints only the output of a success; every error, and every case it does not
 *   know (a flag, a hook, `creating`, a record it cannot verify), is PY: nothing done,
 *   nothing printed, every fd it opened closed, and Python runs the command from the start;
 * - it reads only the door record and state.json of <root>/<id>, under the container's
 *   flock taken as Python takes it, and trusts the record only when its own checksum and
 *   the checksum of state.json it names both match (so it never acts on a record or a
 *   state.json that differs from what Python wrote together);
 * - it changes only what Python's command would, in Python's order: the unlink of
 *   start.sock after a successful start; for `delete` of a stopped container, the rmdir
 *   of the empty cgroup directories the record names and the removal of the state
 *   directory — handing over at the first step that fails, when every step done so far
 *   is one Python's delete does too (so it finds the same end).  Python stays the one
 *   writer of state;
 * - no heap: fixed buffers, one record of at most 1 MiB (Python's own reading limit).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "door.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define PY DOOR_PYTHON
#define RECORD_MAX (1 << 20)       /* state.py read_init_record reads at most this */
#define MAX_ID 1024                /* state.MAX_ID_LENGTH */
#define PID_MAX (1L << 22)         /* state.PID_MAX */
#define SIGPIPE_EXIT (128 + 13)    /* cli.SIGPIPE_EXIT */
#define MAX_CGROUP_DIRS 256        /* cgroup_dir + cgroup_parent lines: more is Python's */
#define CGROUP_SUPER_MAGIC 0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270

static char record[RECORD_MAX + 1];
static char out[RECORD_MAX + 128];

/* ---- CRC-32 (zlib's, as Python's binascii.crc32) ------------------------------------ */
static uint32_t crc_table[256];

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    if (crc_table[1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    }
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- small parsers -------------------------------------------------------------------- */
/* A decimal of 1..20 digits (state.py: `text.isdigit() and len(text) <= 20`). */
static int parse_u64(const char *s, size_t n, unsigned long long *value)
{
    unsigned long long v = 0;
    if (n == 0 || n > 19)     /* 20 digits may overflow: leave those to Python */
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *value = v;
    return 0;
}

static int parse_hex32(const char *s, size_t n, uint32_t *value)
{
    uint32_t v = 0;
    if (n != 8)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *value = v;
    return 0;
}

/* state.py _unescape, in place: %25 %0A %00; any other % stays as written. */
static size_t unescape(char *s, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        if (s[r] == '%' && n - r >= 3) {
            char a = s[r + 1], b = s[r + 2];
            char c = a == '2' && b == '5' ? '%' : a == '0' && b == 'A' ? '\n' :
                     a == '0' && b == '0' ? '\0' : 'x';
            if (c != 'x') {
                s[w++] = c;
                r += 3;
                continue;
            }
        }
        s[w++] = s[r++];
    }
    return w;
}

/* state.check_id: 1..1024 of [A-Za-z0-9_+.-], not "." or "..". */
/* Read fd until EOF, an error or `cap` bytes: the count read; *failed set on an error. */
static size_t read_full(int fd, char *buf, size_t cap, int *failed)
{
    size_t n = 0;
    *failed = 0;
    while (n < cap) {
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            *failed = 1;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    return n;
}

static int good_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > MAX_ID || !strcmp(id, ".") || !strcmp(id, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int path_ok(const char *path, size_t n)
{
    /* absolute, normalized (no //, /./, /../ or trailing /), no NUL: as check_cgroup */
    if (n == 0 || path[0] != '/' || memchr(path, '\0', n) || path[n - 1] == '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (path[i] != '/')
            continue;
        size_t j = i + 1;
        if (j < n && path[j] == '/')
            return 0;
        if (j < n && path[j] == '.' && (j + 1 == n || path[j + 1] == '/'))
            return 0;
        if (j + 1 < n && path[j] == '.' && path[j + 1] == '.' && (j + 2 == n || path[j + 2] == '/'))
            return 0;
    }
    return 1;
}

/* ---- the door record (state.door_record_text) ------------------------------------------ */
struct record {
    const char *id, *freezer, *head, *tail;
    size_t id_len, freezer_len, head_len, tail_len;
    /* list: the compact document around pid and status, and the table's columns */
    const char *list_head, *list_tail, *list_col[3];
    size_t list_head_len, list_tail_len, list_col_len[3];
    unsigned long long pid, pid_start, pidns, state_len;
    uint32_t state_sum;
    int has_pid_start, has_pidns, has_sum, starthooks, deletable;
    /* delete: the cgroup directories (NUL-terminated in `record`), then the parents */
    const char *cgroup[MAX_CGROUP_DIRS];
    int cgroup_is_dir[MAX_CGROUP_DIRS];
    int ncgroups;
};

/* Read <dir>/door (dirfd) into `record` and parse it; 0, or PY for anything unexpected. */
static int read_record(int dirfd, const char *id, struct record *r)
{
    int fd = openat(dirfd, "door", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return PY;
    int failed;
    size_t n = read_full(fd, record, RECORD_MAX + 1, &failed);
    close(fd);
    if (failed || n > RECORD_MAX)
        return PY;

    /* "...\nrecord_sum=XXXXXXXX\nend=1\n": the checksum of every byte before its line. */
    static const char tail[] = "\nend=1\n";
    const size_t sum_line = sizeof "record_sum=" - 1 + 8;
    size_t tl = sizeof tail - 1;
    if (n < tl + sum_line + 1 || memcmp(record + n - tl, tail, tl))
        return PY;
    size_t sum_at = n - tl - sum_line;
    if (record[sum_at - 1] != '\n' || memcmp(record + sum_at, "record_sum=", 11))
        return PY;
    uint32_t want;
    if (parse_hex32(record + sum_at + 11, 8, &want) ||
        crc32_update(0, (const unsigned char *)record, sum_at) != want)
        return PY;
    if (strncmp(record, "version=1\n", 10))
        return PY;

    memset(r, 0, sizeof *r);
    int has_id = 0, has_pid = 0;
    for (size_t at = 10; at < sum_at;) {
        char *line = record + at, *nl = memchr(line, '\n', sum_at - at);
        if (!nl)
            return PY;
        at = (size_t)(nl - record) + 1;
        char *eq = memchr(line, '=', (size_t)(nl - line));
        if (!eq)
            return PY;
        size_t klen = (size_t)(eq - line), vlen = (size_t)(nl - eq - 1);
        char *v = eq + 1;
#define KEY(k) (klen == sizeof k - 1 && !memcmp(line, k, klen))
        if (KEY("id")) {
            r->id = v;
            r->id_len = unescape(v, vlen);
            has_id = 1;
        } else if (KEY("pid")) {
            if (parse_u64(v, vlen, &r->pid) || r->pid == 0 || r->pid > (unsigned long long)PID_MAX)
                return PY;
            has_pid = 1;
        } else if (KEY("pid_start")) {
            if (parse_u64(v, vlen, &r->pid_start))
                return PY;
            r->has_pid_start = 1;
        } else if (KEY("pidns")) {
            if (parse_u64(v, vlen, &r->pidns))
                return PY;
            r->has_pidns = 1;
        } else if (KEY("freezer")) {
            r->freezer = v;
            r->freezer_len = unescape(v, vlen);
        } else if (KEY("state_sum")) {
            char *colon = memchr(v, ':', vlen);
            if (!colon || parse_hex32(v, (size_t)(colon - v), &r->state_sum) ||
                parse_u64(colon + 1, vlen - (size_t)(colon - v) - 1, &r->state_len))
                return PY;
            r->has_sum = 1;
        } else if (KEY("state_head")) {
            r->head = v;
            r->head_len = unescape(v, vlen);
        } else if (KEY("state_tail")) {
            r->tail = v;
            r->tail_len = unescape(v, vlen);
        } else if (KEY("list_head")) {
            r->list_head = v;
            r->list_head_len = unescape(v, vlen);
        } else if (KEY("list_tail")) {
            r->list_tail = v;
            r->list_tail_len = unescape(v, vlen);
        } else if (KEY("list_bundle") || KEY("list_created") || KEY("list_owner")) {
            int col = KEY("list_bundle") ? 0 : KEY("list_created") ? 1 : 2;
            r->list_col[col] = v;
            r->list_col_len[col] = unescape(v, vlen);
        } else if (KEY("starthooks")) {
            r->starthooks = 1;
        } else if (KEY("delete")) {
            r->deletable = 1;
        } else if (KEY("cgroup_dir") || KEY("cgroup_parent")) {
            /* NUL-terminated in place: unescaping only shortens, the line's \n is past it */
            size_t len = unescape(v, vlen);
            if (r->ncgroups == MAX_CGROUP_DIRS || !path_ok(v, len))
                return PY;
            v[len] = '\0';
            r->cgroup_is_dir[r->ncgroups] = KEY("cgroup_dir");
            r->cgroup[r->ncgroups++] = v;
        }
#undef KEY
    }
    if (!has_id || r->id_len != strlen(id) || memcmp(r->id, id, r->id_len) || !r->has_sum ||
        !r->head || !r->tail || (has_pid && !r->has_pid_start))
        return PY;
    return 0;
}

/* state.json must be the very file written with the record: its CRC-32 and length. */
static char chunk[65536];

static int check_state_file(int dirfd, const struct record *r)
{
    int fd = openat(dirfd, "state.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return PY;
    uint32_t crc = 0;
    unsigned long long len = 0;
    for (;;) {
        int failed;
        size_t got = read_full(fd, chunk, sizeof chunk, &failed);
        if (failed) {
            close(fd);
            return PY;
        }
        crc = crc32_update(crc, (const unsigned char *)chunk, got);
        len += got;
        if (got < sizeof chunk)
            break;
    }
    close(fd);
    return crc == r->state_sum && len == r->state_len ? 0 : PY;
}

/* ---- live status (state.py Container.status) ------------------------------------------ */
/* Field 22 of /proc/<pid>/stat: 1 and *start when alive, 0 when gone or a zombie. */
static int start_time(unsigned long long pid, unsigned long long *start)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%llu/stat", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? 0 : PY;
    ssize_t n;
    do n = read(fd, buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return errno == ESRCH ? 0 : PY;
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ')
        return PY;
    char *f = paren + 2;
    if (*f == 'Z' || *f == 'X')
        return 0;
    for (int field = 3; field < 22; field++) {       /* f is at field 3 (state) */
        f = strchr(f, ' ');
        if (!f)
            return PY;
        f++;
    }
    size_t digits = strspn(f, "0123456789");
    if (parse_u64(f, digits, start))
        return PY;
    return 1;
}

/* 1 when the freezer file says FROZEN (v1) or 1 (v2), 0 otherwise or unreadable; PY when
 * the recorded path is not what state.py would have written. */
static int frozen(const struct record *r)
{
    char path[4096], buf[4097];
    if (!r->freezer)
        return 0;
    if (r->freezer_len >= sizeof path || !path_ok(r->freezer, r->freezer_len))
        return PY;
    memcpy(path, r->freezer, r->freezer_len);
    path[r->freezer_len] = '\0';
    const char *base = strrchr(path, '/') + 1;
    if (strcmp(base, "freezer.state") && strcmp(base, "cgroup.freeze"))
        return PY;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    int failed;   /* a read error ends the text (what was read is judged) */
    size_t n = read_full(fd, buf, sizeof buf, &failed);
    close(fd);
    if (n == sizeof buf)
        return PY;
    /* bytes.strip(): ASCII whitespace */
    size_t a = 0;
    while (a < n && strchr(" \t\n\r\v\f", buf[a]) && buf[a])
        a++;
    while (n > a && strchr(" \t\n\r\v\f", buf[n - 1]) && buf[n - 1])
        n--;
    return (n - a == 6 && !memcmp(buf + a, "FROZEN", 6)) || (n - a == 1 && buf[a] == '1');
}

enum { STOPPED, CREATED, RUNNING, PAUSED };
static const char *const STATUS[] = { "stopped", "created", "running", "paused" };

static int status(int dirfd, const struct record *r)
{
    unsigned long long start;
    if (!r->pid)
        return STOPPED;
    int alive = start_time(r->pid, &start);
    if (alive == PY)
        return PY;
    if (!alive || start != r->pid_start)
        return STOPPED;
    int f = frozen(r);
    if (f == PY)
        return PY;
    if (f)
        return PAUSED;
    struct stat st;
    if (fstatat(dirfd, "start.sock", &st, 0) == 0)
        return CREATED;
    return errno == ENOENT || errno == ENOTDIR ? RUNNING : PY;
}

/* ---- the container: lock and record --------------------------------------------------- */
struct container {
    int dirfd;
    char dir[8192];            /* os.path.join(root, id) */
    struct record rec;
};

/* lock: LOCK_SH or LOCK_EX as Python takes it, or 0 (list, which takes none) */
static int open_container(const char *root, const char *id, int lock, struct container *c)
{
    char *dir = c->dir;
    size_t rl = strlen(root), il = strlen(id);
    if (rl + il + 2 > sizeof c->dir)
        return PY;
    memcpy(dir, root, rl);
    /* os.path.join(root, id): a "/" unless root already ends in one */
    if (rl && root[rl - 1] != '/')
        dir[rl++] = '/';
    memcpy(dir + rl, id, il + 1);
    c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dirfd < 0)
        return PY;
    struct stat st;
    int rc = 0;
    while (lock && (rc = flock(c->dirfd, lock)) < 0 && errno == EINTR)
        ;
    if (rc < 0 || fstat(c->dirfd, &st) < 0 || st.st_nlink == 0 ||
        read_record(c->dirfd, id, &c->rec) || check_state_file(c->dirfd, &c->rec)) {
        close(c->dirfd);
        return PY;
    }
    return 0;
}

/* ---- output --------------------------------------------------------------------------- */
static size_t put(size_t at, const char *s, size_t n)
{
    memcpy(out + at, s, n);
    return at + n;
}

static int write_out(size_t n)
{
    /* As the interpreter: SIGPIPE ignored, EPIPE is a quiet exit 141 (cli.main). */
    signal(SIGPIPE, SIG_IGN);
    for (size_t done = 0; done < n;) {
        ssize_t w = write(1, out + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EPIPE)
            return SIGPIPE_EXIT;
        if (w < 0)   /* stdout closed or failing: nothing shown yet, so Python's words */
            return done ? 1 : PY;
        done += (size_t)w;
    }
    return 0;
}

/* ---- the verbs -------------------------------------------------------------------------- */
static int door_state(const char *root, const char *id)
{
    struct container c;
    if (open_container(root, id, LOCK_SH, &c))
        return PY;
    int s = status(c.dirfd, &c.rec);
    close(c.dirfd);            /* the lock goes with it, as Python's snapshot */
    if (s == PY)
        return PY;
    char pid[24], *p = pid + sizeof pid;
    unsigned long long v = s == STOPPED ? 0 : c.rec.pid;
    do { *--p = (char)('0' + v % 10); v /= 10; } while (v);
    size_t n = put(0, c.rec.head, c.rec.head_len);
    n = put(n, "\n  \"pid\": ", 10);
    n = put(n, p, (size_t)(pid + sizeof pid - p));
    n = put(n, ",\n  \"status\": \"", 15);
    n = put(n, STATUS[s], strlen(STATUS[s]));
    n = put(n, "\"", 1);
    n = put(n, c.rec.tail, c.rec.tail_len);
    n = put(n, "\n", 1);
    return write_out(n);
}

/* signals.parse_signal for the plain forms; -1 (Python's words) for anything else. */
static int parse_signal(const char *text)
{
    static const struct { const char *name; int num; } names[] = {
        {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"ILL", 4}, {"TRAP", 5}, {"ABRT", 6}, {"IOT", 6},
        {"BUS", 7}, {"FPE", 8}, {"KILL", 9}, {"USR1", 10}, {"SEGV", 11}, {"USR2", 12},
        {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15}, {"STKFLT", 16}, {"CHLD", 17}, {"CONT", 18},
        {"STOP", 19}, {"TSTP", 20}, {"TTIN", 21}, {"TTOU", 22}, {"URG", 23}, {"XCPU", 24},
        {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27}, {"WINCH", 28}, {"IO", 29}, {"POLL", 29},
        {"PWR", 30}, {"SYS", 31},
    };
    char name[16];
    size_t n = strlen(text);
    unsigned long long num;
    if (n == 0 || n >= sizeof name)
        return -1;
    for (size_t i = 0; i < n; i++) {       /* ASCII letters, digits, + and - only */
        char ch = text[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '-'))
            return -1;
        name[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    name[n] = '\0';
    if (strspn(name, "0123456789") == n)
        return n <= 3 && !parse_u64(name, n, &num) && num <= 64 ? (int)num : -1;
    const char *s = strncmp(name, "SIG", 3) ? name : name + 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name))
            return names[i].num;
    for (int rt = 0; rt < 2; rt++) {
        const char *base = rt ? "RTMAX" : "RTMIN";
        int value = rt ? 64 : 34;
        if (strncmp(s, base, 5))
            continue;
        if (s[5] == '\0')
            return value;
        if (s[5] == '+' || s[5] == '-') {
            size_t d = strlen(s + 6);
            if (d == 0 || d > 3 || strspn(s + 6, "0123456789") != d || parse_u64(s + 6, d, &num))
                continue;
            long sig = value + (s[5] == '+' ? (long)num : -(long)num);
            if (sig >= 34 && sig <= 64)
                return (int)sig;
        }
    }
    return -1;
}

static int door_kill(const char *root, const char *id, const char *signal_text)
{
    int sig = parse_signal(signal_text);
    if (sig < 0)
        return PY;
    struct container c;
    if (open_container(root, id, LOCK_EX, &c))
        return PY;
    int result = PY;
    unsigned long long start;
    int s = status(c.dirfd, &c.rec);
    if (s == PY || s == STOPPED) {     /* stopped: Python's error */
        close(c.dirfd);
        return PY;
    }
    /* container._pidfd_for: the pidfd first, then the start time (and the pid
     * namespace): a pid reused meanwhile gets no signal. */
    int pidfd = (int)syscall(SYS_pidfd_open, (int)c.rec.pid, 0);
    if (pidfd >= 0) {
        struct stat st;
        char ns[64];
        snprintf(ns, sizeof ns, "/proc/%llu/ns/pid", c.rec.pid);
        if (start_time(c.rec.pid, &start) == 1 && start == c.rec.pid_start &&
            (!c.rec.has_pidns || (stat(ns, &st) == 0 && st.st_ino == c.rec.pidns))) {
            if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0 || errno == ESRCH)
                result = 0;        /* sent, or the init died meanwhile (Python: no error) */
        }
        close(pidfd);
    }
    close(c.dirfd);
    return result;
}

/* `start`: only a created container without startContainer/poststart hooks.  Until the
 * `S` is sent nothing has happened (Python's, on any doubt); after it, a clean EOF (the
 * init exec'd) is success and start.sock is removed, as Python does; anything else —
 * the send or receive failing, an `E` message — cannot be undone, so the door hands
 * what it got to Python in DOOR_START_ENV ("ID<tab>send|recv<tab>errno" or
 * "ID<tab>answer<tab>hex bytes"), and Python's start words it (container._door_start). */
static char answer[65536];                       /* native.py _RECV_SIZE */
static char handover[2 * sizeof answer + MAX_ID + 32];

static int hand_start(const char *id, const char *kind, int err, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t at = (size_t)snprintf(handover, sizeof handover, "%s\t%s\t", id, kind);
    if (err) {
        snprintf(handover + at, sizeof handover - at, "%d", err);
    } else {
        for (size_t i = 0; i < n; i++) {
            handover[at++] = hex[(unsigned char)answer[i] >> 4];
            handover[at++] = hex[(unsigned char)answer[i] & 15];
        }
        handover[at] = '\0';
    }
    return setenv(DOOR_START_ENV, handover, 1) == 0 ? PY : 1;
}

static int door_start(const char *root, const char *id)
{
    const char *stop = getenv("MINIRUNC_TEST_STOP_AT");   /* faults.py: Python's steps */
    if (stop && !strncmp(stop, "start:", 6))
        return PY;
    struct container c;
    if (open_container(root, id, LOCK_EX, &c))
        return PY;
    if (c.rec.starthooks || status(c.dirfd, &c.rec) != CREATED) {
        close(c.dirfd);
        return PY;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/start.sock", c.dirfd);
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc;
    if (sock < 0) {
        close(c.dirfd);
        return PY;
    }
    do rc = connect(sock, (struct sockaddr *)&sa, sizeof sa); while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        close(sock);
        close(c.dirfd);
        return PY;
    }
    ssize_t n;
    do n = send(sock, "S", 1, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    int result;
    if (n < 0) {
        result = hand_start(id, "send", errno, 0);
    } else {
        struct iovec iov = { answer, sizeof answer };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
        if (n < 0)
            result = hand_start(id, "recv", errno, 0);
        else if (mh.msg_flags & MSG_TRUNC)
            result = hand_start(id, "recv", EMSGSIZE, 0);
        else if (n > 0)
            result = hand_start(id, "answer", 0, (size_t)n);
        else
            result = unlinkat(c.dirfd, "start.sock", 0) == 0 ? 0 : 1;
    }
    close(sock);
    close(c.dirfd);
    return result;
}

/* What getdents64 returns (the libc's struct dirent differs between glibc and musl). */
struct dirent64_raw {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* ---- delete ----------------------------------------------------------------------------- */
/* faults.point for the delete steps: with MINIRUNC_TEST_STOP_AT naming `step`, write
 * "<pid> <step>" to MINIRUNC_TEST_STOP_MARKER and SIGSTOP (the test kills us there). */
static void fault_point(const char *step)
{
    const char *want = getenv("MINIRUNC_TEST_STOP_AT");
    if (!want || strcmp(want, step))
        return;
    const char *marker = getenv("MINIRUNC_TEST_STOP_MARKER");
    if (marker) {
        int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dprintf(fd, "%d %s\n", (int)getpid(), step);
            close(fd);
        }
    }
    kill(getpid(), SIGSTOP);
}

/* Every recorded cgroup directory is on a cgroup file system, or gone already. */
static int cgroups_on_cgroupfs(const struct record *r)
{
    for (int i = 0; i < r->ncgroups; i++) {
        struct statfs fs;
        if (statfs(r->cgroup[i], &fs) == 0) {
            if (fs.f_type != CGROUP_SUPER_MAGIC && fs.f_type != CGROUP2_SUPER_MAGIC)
                return 0;
        } else if (errno != ENOENT) {
            return 0;
        }
    }
    return 1;
}

/* driver.destroy for a container that made every one of its cgroups: rmdir each container
 * directory (one that will not go — processes left, a sub-cgroup — is Python's, which
 * kills what is the container's and words what stays), then each parent made for them
 * if it is empty now (a failure there is none of ours, as in the driver). */
static int remove_cgroups(const struct record *r)
{
    for (int i = 0; i < r->ncgroups; i++)
        if (r->cgroup_is_dir[i] && rmdir(r->cgroup[i]) < 0 && errno != ENOENT)
            return PY;
    for (int i = 0; i < r->ncgroups; i++)
        if (!r->cgroup_is_dir[i])
            rmdir(r->cgroup[i]);
    return 0;
}

/* Container.remove_dir: unlink every entry, state.json last, then rmdir the directory.
 * A directory entry (only damage puts one there) or any failure before state.json goes is
 * Python's, which redoes the rest; after it, Python reports the directory that stayed. */
static char names[65536];

static int remove_state_dir(struct container *c)
{
    int fd = openat(c->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return PY;
    size_t used = 0;
    char buf[8192];
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return PY;
        }
        if (n == 0)
            break;
        for (long at = 0; at < n;) {
            const struct dirent64_raw *d = (const void *)(buf + at);
            at += d->reclen;
            size_t len = strlen(d->name);
            if (!strcmp(d->name, ".") || !strcmp(d->name, "..") || !strcmp(d->name, "state.json"))
                continue;
            if (used + len + 1 > sizeof names) {
                close(fd);
                return PY;
            }
            memcpy(names + used, d->name, len + 1);
            used += len + 1;
        }
    }
    close(fd);
    for (size_t at = 0; at < used; at += strlen(names + at) + 1)
        if (unlinkat(c->dirfd, names + at, 0) < 0 && errno != ENOENT)
            return PY;
    if (unlinkat(c->dirfd, "state.json", 0) < 0 && errno != ENOENT)
        return PY;
    return rmdir(c->dir) == 0 || errno == ENOENT ? 0 : PY;
}

/* `delete [--force] ID` of a stopped container whose record says the door may (`delete=1`:
 * no poststop hooks, every cgroup directory made by the container): container.delete's
 * steps in its order, with its fault points.  Every other status — --force of a live init
 * included —, a pid the record does not know (the socket inits), a frozen cgroup (destroy
 * thaws it first) is Python's. */
static int door_delete(const char *root, const char *id)
{
    struct container c;
    if (open_container(root, id, LOCK_EX, &c))
        return PY;
    if (!c.rec.deletable || !c.rec.pid || status(c.dirfd, &c.rec) != STOPPED ||
        frozen(&c.rec) != 0 || !cgroups_on_cgroupfs(&c.rec)) {
        close(c.dirfd);
        return PY;
    }
    fault_point("delete:locked");
    fault_point("delete:killed");
    int result = remove_cgroups(&c.rec);
    if (result == 0) {
        fault_point("delete:cgroups-removed");
        result = remove_state_dir(&c);
    }
    if (result == 0)
        fault_point("delete:state-removed");
    close(c.dirfd);
    return result;
}

/* ---- list ------------------------------------------------------------------------------- */
/* commands.cmd_list: every directory of the root in sorted order (state.list_ids), each
 * loaded without a lock; a damaged or unverifiable one (Python warns and shows `unknown`),
 * one being created (Python skips it after a busy check), any name that is not an id or an
 * entry that is not plainly a directory sends the whole command to Python. */
#define MAX_LIST 4096
static char list_ids_text[1 << 20];
static const char *list_id[MAX_LIST];
static char row_text[RECORD_MAX];
static struct { size_t at[6], len[6]; } rows[MAX_LIST];

/* ids in list_id, sorted (bytes: ids are ASCII, so Python's str order); the count or PY */
static int read_ids(const char *root)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : PY;      /* list_ids: no root, no containers */
    int n = 0;
    size_t used = 0;
    char buf[8192];
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            close(fd);
            if (got < 0)
                return PY;
            break;
        }
        for (long at = 0; at < got;) {
            const struct dirent64_raw *d = (const void *)(buf + at);
            at += d->reclen;
            if (!strcmp(d->name, ".") || !strcmp(d->name, ".."))
                continue;
            if (d->type != DT_DIR) {
                if (d->type == DT_LNK || d->type == DT_UNKNOWN) {   /* isdir() follows */
                    close(fd);
                    return PY;
                }
                continue;                     /* a file: not a container (list_ids) */
            }
            size_t len = strlen(d->name);
            if (!good_id(d->name) || n == MAX_LIST || used + len + 1 > sizeof list_ids_text) {
                close(fd);
                return PY;
            }
            list_id[n++] = memcpy(list_ids_text + used, d->name, len + 1);
            used += len + 1;
        }
    }
    for (int i = 1; i < n; i++) {             /* insertion sort: a few hundred at most */
        const char *id = list_id[i];
        int j = i;
        for (; j > 0 && strcmp(list_id[j - 1], id) > 0; j--)
            list_id[j] = list_id[j - 1];
        list_id[j] = id;
    }
    return n;
}

static size_t row_used;

static int keep_text(int row, int col, const char *text, size_t n)
{
    if (row_used + n > sizeof row_text)
        return PY;
    memcpy(row_text + row_used, text, n);
    rows[row].at[col] = row_used;
    rows[row].len[col] = n;
    row_used += n;
    return 0;
}

/* len() of the UTF-8 text: the bytes that do not continue a character */
static size_t chars(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

static int door_list(const char *root, int json, int quiet)
{
    int n = read_ids(root);
    if (n == PY)
        return PY;
    row_used = 0;
    for (int i = 0; i < n; i++) {
        struct container c;
        if (open_container(root, list_id[i], 0, &c))
            return PY;
        const struct record *r = &c.rec;
        int s = status(c.dirfd, r);
        close(c.dirfd);
        if (s == PY || !r->list_head || !r->list_tail || !r->list_col[0] || !r->list_col[1] ||
            !r->list_col[2])
            return PY;
        char pid[24];
        int pid_len = snprintf(pid, sizeof pid, "%llu", s == STOPPED ? 0 : r->pid);
        if (json) {                            /* the compact document, whole */
            size_t at = row_used;
            if (keep_text(i, 0, r->list_head, r->list_head_len) ||
                keep_text(i, 0, ",\"pid\":", 7) || keep_text(i, 0, pid, (size_t)pid_len) ||
                keep_text(i, 0, ",\"status\":\"", 11) ||
                keep_text(i, 0, STATUS[s], strlen(STATUS[s])) || keep_text(i, 0, "\"", 1) ||
                keep_text(i, 0, r->list_tail, r->list_tail_len))
                return PY;
            rows[i].at[0] = at;
            rows[i].len[0] = row_used - at;
        } else if (keep_text(i, 0, r->id, r->id_len) || keep_text(i, 1, pid, (size_t)pid_len) ||
                   keep_text(i, 2, STATUS[s], strlen(STATUS[s])) ||
                   keep_text(i, 3, r->list_col[0], r->list_col_len[0]) ||
                   keep_text(i, 4, r->list_col[1], r->list_col_len[1]) ||
                   keep_text(i, 5, r->list_col[2], r->list_col_len[2])) {
            return PY;
        }
    }
#define ROOM(k) if (len + (k) > sizeof out) return PY
    size_t len = 0;
    if (quiet) {
        for (int i = 0; i < n; i++) {
            size_t idl = strlen(list_id[i]);
            ROOM(idl + 1);
            len = put(put(len, list_id[i], idl), "\n", 1);
        }
    } else if (json) {
        if (n == 0)
            len = put(0, "null", 4);           /* runc prints null for none */
        for (int i = 0; i < n; i++) {
            ROOM(rows[i].len[0] + 2);
            len = put(len, i ? "," : "[", 1);
            len = put(len, row_text + rows[i].at[0], rows[i].len[0]);
        }
        if (n)
            len = put(len, "]", 1);
        len = put(len, "\n", 1);
    } else {
        static const char *const header[6] = { "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER" };
        size_t width[6];
        for (int col = 0; col < 6; col++) {
            width[col] = strlen(header[col]);
            for (int i = 0; i < n; i++) {
                size_t w = chars(row_text + rows[i].at[col], rows[i].len[col]);
                width[col] = w > width[col] ? w : width[col];
            }
        }
        for (int i = -1; i < n; i++) {         /* "   ".join(v.ljust(w)).rstrip() */
            size_t start = len;
            for (int col = 0; col < 6; col++) {
                const char *v = i < 0 ? header[col] : row_text + rows[i].at[col];
                size_t vl = i < 0 ? strlen(header[col]) : rows[i].len[col], w = chars(v, vl);
                ROOM(vl + width[col] - w + 4);
                if (col)
                    len = put(len, "   ", 3);
                len = put(len, v, vl);
                for (; w < width[col]; w++)
                    out[len++] = ' ';
            }
            while (len > start && strchr(" \t\n\r\v\f\x1c\x1d\x1e\x1f", out[len - 1]) && out[len - 1])
                len--;
            if (len > start && (unsigned char)out[len - 1] >= 0x80)
                return PY;                     /* maybe a Unicode space rstrip() would take */
            out[len++] = '\n';
        }
    }
#undef ROOM
    return write_out(len);
}

/* ---- the command line (cli.py's parser, for the spellings served here) ------------------ */
/* A global flag: 0 and *name, *value for those that change nothing the door serves or
 * that it reads (cli.GLOBAL_FLAGS: --root, --log, --log-format; --systemd-cgroup,
 * --rootless and --criu only matter to create, run, restore and checkpoint, and containerd's
 * go-runc passes them to every command), also as -flag and --flag=value; PY otherwise. */
static int global_flag(char **argv, int argc, int *i, const char **name, const char **value)
{
    const char *arg = argv[*i];
    const char *flag = arg[1] == '-' ? arg + 2 : arg + 1;
    static const char *const known[] = { "root", "log", "log-format", "rootless", "criu",
                                         "systemd-cgroup" };
    for (int k = 0; k < 6; k++) {
        size_t n = strlen(known[k]);
        int takes_value = k < 5;
        if (strncmp(flag, known[k], n))
            continue;
        if (flag[n] == '=') {
            *value = flag + n + 1;
            /* a bool's value: one cli.py takes (true, false, 1, 0 in any case) */
            if (!takes_value && strcasecmp(*value, "true") && strcasecmp(*value, "false") &&
                strcmp(*value, "1") && strcmp(*value, "0"))
                return PY;
        } else if (flag[n] == '\0') {
            if (takes_value && *i + 1 >= argc)
                return PY;
            *value = takes_value ? argv[++*i] : "true";
        } else {
            continue;
        }
        *name = known[k];
        return 0;
    }
    return PY;
}

/* `list` [--format table|json | -f ... | --format=...] [--quiet | -q]: anything else,
 * a positional included, is Python's. */
static int list_command(const char *root, char **args, int n)
{
    const char *format = "table";
    int quiet = 0;
    for (int i = 0; i < n; i++) {
        const char *a = args[i];
        if (!strcmp(a, "--quiet") || !strcmp(a, "-quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        const char *f = !strncmp(a, "--format", 8) ? a + 8 : !strncmp(a, "-format", 7) ? a + 7 :
                        !strncmp(a, "-f", 2) ? a + 2 : NULL;
        if (f && *f == '=')
            format = f + 1;
        else if (f && !*f && i + 1 < n)
            format = args[++i];
        else
            return PY;
    }
    if (strcmp(format, "table") && strcmp(format, "json"))
        return PY;
    return door_list(root, !strcmp(format, "json"), quiet);
}

int minirunc_door(int argc, char **argv)
{
    const char *off = getenv(DOOR_OFF_ENV);
    if (off && *off && strcmp(off, "0"))
        return PY;
    const char *root = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *name, *value;
        if (!strcmp(argv[i], "--") || global_flag(argv, argc, &i, &name, &value))
            return PY;
        if (!strcmp(name, "root"))
            root = value;
        else if (!strcmp(name, "log-format") && strcmp(value, "text") && strcmp(value, "json"))
            return PY;             /* Python's error */
        /* --log: nothing is logged on the paths served here; the rest change nothing */
    }
    if (i >= argc)
        return PY;
    const char *command = argv[i++];
    if (!root || !*root) {
        root = getenv("MINIRUNC_ROOT");
        if (!root || !*root)
            root = "/run/minirunc";
    }
    if (!strcmp(command, "list"))
        return list_command(root, argv + i, argc - i);
    const char *positional[3];
    int npos = 0;
    for (; i < argc; i++) {
        /* delete's --force changes nothing for the stopped container the door deletes */
        if (!strcmp(command, "delete") && (!strcmp(argv[i], "--force") ||
                                           !strcmp(argv[i], "-force") || !strcmp(argv[i], "-f")))
            continue;
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return PY;             /* a command flag, `--`, --help...: Python's */
        if (npos == 3)
            return PY;
        positional[npos++] = argv[i];
    }
    if (npos < 1 || !good_id(positional[0]))
        return PY;
    if (!strcmp(command, "state") && npos == 1)
        return door_state(root, positional[0]);
    if (!strcmp(command, "start") && npos == 1)
        return door_start(root, positional[0]);
    if (!strcmp(command, "delete") && npos == 1)
        return door_delete(root, positional[0]);
    if (!strcmp(command, "kill") && npos <= 2)
        return door_kill(root, positional[0], npos == 2 ? positional[1] : "TERM");
    return PY;
}
