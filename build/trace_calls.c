/* trace_calls ADDRESSES OUT PROGRAM [ARG...]: which of the functions at ADDRESSES (hex, one a
 * line) PROGRAM calls, in the order it first calls them, written to OUT (hex, one a line).
 *
 * build/hot_functions.py's tracer.  Once PROGRAM is exec'd, every listed address gets a
 * breakpoint (int3); the first hit of each is recorded, the byte put back and the function
 * run on.  Forked and cloned children are followed (their copies of the code hold the
 * breakpoints too); one that execs something else (the container's init) is let go.
 * A development tool: it runs as root beside the build, never inside the binary. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long *address;
static unsigned char *original;
static char *called;
static int count;

static int compare(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

static int find(unsigned long a)
{
    int lo = 0, hi = count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (address[mid] == a)
            return mid;
        if (address[mid] < a)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* the first byte at `a` in `pid` becomes `b`; the old one, or -1 */
static int set_byte(pid_t pid, unsigned long a, unsigned char b)
{
    errno = 0;
    long word = ptrace(PTRACE_PEEKDATA, pid, (void *)a, 0);
    if (errno)
        return -1;
    unsigned char old = ((unsigned char *)&word)[0];
    ((unsigned char *)&word)[0] = b;
    return ptrace(PTRACE_POKEDATA, pid, (void *)a, (void *)word) ? -1 : old;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fputs("usage: trace_calls ADDRESSES OUT PROGRAM [ARG...]\n", stderr);
        return 2;
    }
    FILE *in = fopen(argv[1], "r"), *out = fopen(argv[2], "w");
    if (!in || !out)
        die("trace_calls: open");
    int cap = 1024;
    address = malloc(cap * sizeof *address);
    unsigned long a;
    while (address && fscanf(in, "%lx", &a) == 1) {
        if (count == cap)
            address = realloc(address, (cap *= 2) * sizeof *address);
        if (address)
            address[count++] = a;
    }
    original = malloc(count + 1);
    called = calloc(count + 1, 1);
    if (!address || !original || !called)
        die("trace_calls: malloc");
    qsort(address, count, sizeof *address, compare);

    pid_t program = fork();
    if (program < 0)
        die("trace_calls: fork");
    if (program == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execv(argv[3], argv + 3);
        _exit(127);
    }
    int status, armed = 0, calls = 0, code = 1;
    if (waitpid(program, &status, 0) < 0 ||
        ptrace(PTRACE_SETOPTIONS, program, 0,
               (void *)(long)(PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                              PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL)))
        die("trace_calls: ptrace");
    ptrace(PTRACE_CONT, program, 0, 0);
    for (;;) {
        pid_t pid = waitpid(-1, &status, __WALL);
        if (pid < 0)
            break;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (pid == program) {
                code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            continue;
        }
        int sig = WSTOPSIG(status), event = status >> 16;
        long deliver = 0;
        if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
            if (pid != program || armed) {          /* the init, or whatever it runs */
                ptrace(PTRACE_DETACH, pid, 0, 0);
                continue;
            }
            for (int i = 0; i < count; i++) {
                int old = set_byte(pid, address[i], 0xCC);
                if (old < 0) {
                    fprintf(stderr, "trace_calls: no code at %lx\n", address[i]);
                    exit(2);
                }
                original[i] = (unsigned char)old;
            }
            armed = 1;
        } else if (sig == SIGTRAP && event == 0) {
            struct user_regs_struct regs;
            ptrace(PTRACE_GETREGS, pid, 0, &regs);
            int i = find(regs.rip - 1);
            if (i >= 0) {
                if (!called[i]) {
                    called[i] = 1;
                    calls++;
                    fprintf(out, "%lx\n", address[i]);
                }
                set_byte(pid, address[i], original[i]);   /* this process's copy */
                regs.rip -= 1;
                ptrace(PTRACE_SETREGS, pid, 0, &regs);
            } else {
                deliver = sig;
            }
        } else if (sig != SIGTRAP && sig != SIGSTOP) {
            deliver = sig;                              /* the program's own signals */
        }
        ptrace(PTRACE_CONT, pid, 0, (void *)deliver);
    }
    if (fclose(out))
        die("trace_calls: write");
    fprintf(stderr, "trace_calls: %d of %d functions called; exit %d\n", calls, count, code);
    return code;
}
