/* The entry point of dist/minirunc: refuses a damaged copy before anything reads it.
 *
 * Built by build/binary.py with its own flags (no stack protector, no libc, no builtins) and
 * linked into the front of the file by build/exe_guard.ld; build/binary.py's seal() then
 * finishes the file (see docs/binary.md, "A damaged copy").  Why it exists: a copy of the
 * executable cut short anywhere inside its loaded part used to die with SIGSEGV and no message,
 * in the kernel (execve() zeroes the end of the writable segment, at the end of the file) or in
 * the dynamic loader (relocations touch all of .data, at the end of the file), before a single
 * instruction of ours ran.
 *
 * So the file carries no PT_INTERP (seal() renames it PT_MINIRUNC_INTERP), the kernel maps the
 * program and jumps here at once, and this code, which touches only the first pages of the file
 * (headers, itself) and the stack:
 *   1. compares the size of /proc/self/exe (AT_EXECFN without /proc) with the size seal() recorded
 *      below; a mismatch prints one line naming the file and exits 127;
 *   2. does what the kernel does for PT_INTERP: maps the dynamic loader named by the renamed
 *      header, sets AT_BASE and AT_ENTRY (= _start) in the auxiliary vector, turns the header
 *      back into PT_INTERP in memory (ld.so finds its own name there), and jumps to the loader's
 *      entry with the stack as the kernel left it.
 * When the dynamic loader already ran (`ld.so dist/minirunc`: the thread pointer is set), step 2
 * is skipped and _start follows the check (of argv[0]: /proc/self/exe is then ld.so).
 *
 * Runs before relocation: every reference here is PC-relative (checked by build/binary.py),
 * only raw system calls, no libc, no writable data. */

#include <elf.h>
#include <stddef.h>

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_fstat 5
#define SYS_mmap 9
#define SYS_mprotect 10
#define SYS_munmap 11
#define SYS_pread64 17
#define SYS_readlink 89
#define SYS_arch_prctl 158
#define SYS_exit_group 231
#define ARCH_GET_FS 0x1003
#define O_RDONLY 0
#define O_CLOEXEC 02000000
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define PAGE 4096UL
#define PT_MINIRUNC_INTERP 0x6d720003   /* keep in step with build/binary.py */
#define EXIT_DAMAGED 127

/* seal() finds the 16-byte tag and writes the file's final size after it (little endian);
 * defined in the assembly below (a volatile C object would land in a writable section). */
extern const volatile unsigned char minirunc_size_record[24] __attribute__((visibility("hidden")));

extern const Elf64_Ehdr __ehdr_start __attribute__((visibility("hidden")));
extern char _start[] __attribute__((visibility("hidden")));

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* Appends s (at most room - *len bytes) to buf. */
static void put(char *buf, unsigned long *len, unsigned long room, const char *s)
{
    while (*s && *len < room)
        buf[(*len)++] = *s++;
}

static void put_num(char *buf, unsigned long *len, unsigned long room, unsigned long long v)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && *len < room)
        buf[(*len)++] = digits[--n];
}

/* "minirunc: <a><b>[ (<have> of <want> bytes)]<tail>" on stderr, then exit. */
static __attribute__((noreturn)) void die(const char *a, const char *b, long long have,
                                          unsigned long long want, const char *tail)
{
    char msg[4400];
    unsigned long len = 0, room = sizeof msg - 1;
    put(msg, &len, room, "minirunc: ");
    put(msg, &len, room, a);
    put(msg, &len, room, b);
    if (have >= 0) {
        put(msg, &len, room, " (");
        put_num(msg, &len, room, (unsigned long long)have);
        put(msg, &len, room, " of ");
        put_num(msg, &len, room, want);
        put(msg, &len, room, " bytes)");
    }
    put(msg, &len, room, tail);
    msg[len++] = '\n';
    sys3(SYS_write, 2, msg, len);
    for (;;)
        sys3(SYS_exit_group, EXIT_DAMAGED, 0, 0);
}

/* self: the file to check, NULL for /proc/self/exe (else AT_EXECFN, if /proc is missing). */
static void check_size(const char *self, const char *execfn)
{
    char path[4096];
    long long st[18];   /* struct stat (x86-64, 144 bytes): st_size at offset 48 */
    unsigned long long want = 0;
    for (int i = 7; i >= 0; i--)
        want = (want << 8) | minirunc_size_record[16 + i];
    long n = -1, fd = -1, proc = 0;
    if (self == NULL) {
        fd = sys3(SYS_open, "/proc/self/exe", O_RDONLY | O_CLOEXEC, 0);
        proc = fd >= 0;
        self = execfn;
    }
    if (fd < 0 && self != NULL)
        fd = sys3(SYS_open, self, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return;   /* nothing to check against */
    long rc = sys3(SYS_fstat, fd, st, 0);
    sys3(SYS_close, fd, 0, 0);
    long long have = st[6];
    if (rc < 0 || (unsigned long long)have == want)
        return;
    if (proc)
        n = sys3(SYS_readlink, "/proc/self/exe", path, sizeof path - 1);
    if (n > 0)
        path[n] = '\0';
    die(n > 0 ? path : self ? self : "this executable", " is damaged", have, want,
        ": copy it again");
}

static __attribute__((noreturn)) void no_loader(const char *interp, long err)
{
    (void)err;
    die("cannot load the dynamic loader ", interp, -1, 0, "");
}

/* The kernel's load_elf_interp(), for the loader named in PT_INTERP: returns its load bias
 * (AT_BASE) and sets *entry. */
static unsigned long map_loader(const char *interp, unsigned long *entry)
{
    unsigned char buf[1024] __attribute__((aligned(8)));
    long fd = sys3(SYS_open, interp, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        no_loader(interp, fd);
    long n = sys6(SYS_pread64, fd, (long)buf, sizeof buf, 0, 0, 0);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
    if (n < (long)sizeof *eh || eh->e_ident[0] != 0x7f || eh->e_ident[1] != 'E' ||
        eh->e_ident[2] != 'L' || eh->e_ident[3] != 'F' || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_type != ET_DYN || eh->e_machine != EM_X86_64 ||
        eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff + eh->e_phnum * sizeof(Elf64_Phdr) > (unsigned long)n)
        no_loader(interp, -8);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(buf + eh->e_phoff);
    unsigned long lo = ~0UL, hi = 0, align = PAGE;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if ((ph[i].p_vaddr & ~(PAGE - 1)) < lo)
            lo = ph[i].p_vaddr & ~(PAGE - 1);
        if (ph[i].p_vaddr + ph[i].p_memsz > hi)
            hi = ph[i].p_vaddr + ph[i].p_memsz;
        if (ph[i].p_align > align)
            align = ph[i].p_align;
    }
    if (hi <= lo || (align & (align - 1)))
        no_loader(interp, -8);
    hi = (hi + PAGE - 1) & ~(PAGE - 1);
    long span = (long)(hi - lo);
    long res = sys6(SYS_mmap, 0, span + (long)align - (long)PAGE, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (res < 0 && res > -4096)
        no_loader(interp, res);
    unsigned long start = ((unsigned long)res + align - 1) & ~(align - 1);
    if (start > (unsigned long)res)
        sys3(SYS_munmap, res, start - (unsigned long)res, 0);
    if ((unsigned long)res + span + align - PAGE > start + span)
        sys3(SYS_munmap, start + span, (unsigned long)res + span + align - PAGE - (start + span), 0);
    unsigned long bias = start - lo;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *p = &ph[i];
        if (p->p_type != PT_LOAD)
            continue;
        int prot = ((p->p_flags & PF_R) ? PROT_READ : 0) | ((p->p_flags & PF_W) ? PROT_WRITE : 0) |
                   ((p->p_flags & PF_X) ? PROT_EXEC : 0);
        unsigned long va = bias + p->p_vaddr, page = va & ~(PAGE - 1);
        if (p->p_filesz) {
            long m = sys6(SYS_mmap, (long)page, (long)(va - page + p->p_filesz), prot,
                          MAP_PRIVATE | MAP_FIXED, fd, (long)(p->p_offset - (va - page)));
            if (m < 0 && m > -4096)
                no_loader(interp, m);
        }
        if (p->p_memsz > p->p_filesz) {
            /* .bss: zero the rest of the last file page, to its end as the kernel does (ld.so's
             * early malloc takes memory from there and counts on it being zero), then map
             * anonymous pages. */
            unsigned long zero = va + p->p_filesz, end = va + p->p_memsz;
            unsigned long zpage = (zero + PAGE - 1) & ~(PAGE - 1);
            if (p->p_filesz && (zero & (PAGE - 1))) {
                if (!(prot & PROT_WRITE))
                    sys3(SYS_mprotect, zero & ~(PAGE - 1), PAGE, prot | PROT_WRITE);
                for (volatile char *z = (volatile char *)zero; z < (volatile char *)zpage; z++)
                    *z = 0;
                if (!(prot & PROT_WRITE))
                    sys3(SYS_mprotect, zero & ~(PAGE - 1), PAGE, prot);
            }
            unsigned long from = p->p_filesz ? zpage : page;
            if (end > from) {
                long m = sys6(SYS_mmap, (long)from, (long)(end - from), prot,
                              MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
                if (m < 0 && m > -4096)
                    no_loader(interp, m);
            }
        }
    }
    sys3(SYS_close, fd, 0, 0);
    *entry = bias + eh->e_entry;
    return bias;
}

/* Called by minirunc_guard_entry with the initial stack (argc, argv, envp, auxv); returns
 * where to jump with that stack. */
__attribute__((visibility("hidden"), used)) unsigned long minirunc_guard(unsigned long *sp)
{
    char **envp = (char **)(sp + 1 + sp[0] + 1);
    while (*envp)
        envp++;
    Elf64_auxv_t *auxv = (Elf64_auxv_t *)(envp + 1);
    const char *execfn = NULL;
    Elf64_auxv_t *at_base = NULL, *at_entry = NULL;
    for (Elf64_auxv_t *a = auxv; a->a_type != AT_NULL; a++) {
        if (a->a_type == AT_EXECFN)
            execfn = (const char *)a->a_un.a_val;
        else if (a->a_type == AT_BASE)
            at_base = a;
        else if (a->a_type == AT_ENTRY)
            at_entry = a;
    }
    /* Run by the kernel, the thread pointer is still 0; run by the dynamic loader
     * (`ld.so dist/minirunc`: /proc/self/exe is ld.so, argv[0] names this file), it is set
     * and the loader has done the rest. */
    unsigned long fs = 0;
    sys3(SYS_arch_prctl, ARCH_GET_FS, &fs, 0);
    check_size(fs ? (const char *)sp[1] : NULL, execfn);
    if (fs != 0)
        return (unsigned long)_start;

    const unsigned char *base = (const unsigned char *)&__ehdr_start;
    Elf64_Phdr *ph = (Elf64_Phdr *)(base + __ehdr_start.e_phoff);
    Elf64_Phdr *interp = NULL;
    /* The load bias: the file's headers (offset 0) are mapped at __ehdr_start, the first
     * PT_LOAD's address plus the bias (0 in a position-dependent executable). */
    unsigned long lowest = ~0UL;
    for (int i = 0; i < __ehdr_start.e_phnum; i++) {
        if (ph[i].p_type == PT_MINIRUNC_INTERP)
            interp = &ph[i];
        else if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0 && ph[i].p_vaddr < lowest)
            lowest = ph[i].p_vaddr;
    }
    if (interp == NULL)   /* static, or a plain build (the kernel has loaded the loader) */
        return (unsigned long)_start;
    const char *name = (const char *)((unsigned long)base - lowest + interp->p_vaddr);
    unsigned long entry, bias = map_loader(name, &entry);
    if (at_base)
        at_base->a_un.a_val = bias;
    if (at_entry)
        at_entry->a_un.a_val = (unsigned long)_start;
    /* ld.so learns its own name from the program's PT_INTERP. */
    unsigned long p0 = (unsigned long)&interp->p_type & ~(PAGE - 1);
    unsigned long p1 = ((unsigned long)(&interp->p_type + 1) + PAGE - 1) & ~(PAGE - 1);
    sys3(SYS_mprotect, p0, p1 - p0, PROT_READ | PROT_WRITE);
    *(volatile Elf64_Word *)&interp->p_type = PT_INTERP;
    sys3(SYS_mprotect, p0, p1 - p0, PROT_READ);
    return entry;
}

/* The ELF entry point (-Wl,-e,minirunc_guard_entry).  %rdx (the loader's exit hook when the
 * loader came first, 0 from the kernel) and the stack are handed on untouched. */
__asm__(".section .rodata.minirunc_size,\"a\",@progbits\n"
        ".balign 8\n"
        ".hidden minirunc_size_record\n"
        "minirunc_size_record:\n"
        "    .ascii \"\\0MINIRUNC-SIZE\\0\\0\"\n"
        "    .quad 0\n"
        ".text\n"
        ".globl minirunc_guard_entry\n"
        ".hidden minirunc_guard_entry\n"
        ".type minirunc_guard_entry,@function\n"
        "minirunc_guard_entry:\n"
        "    mov %rdx, %r12\n"
        "    mov %rsp, %r13\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call minirunc_guard\n"
        "    mov %r13, %rsp\n"
        "    mov %r12, %rdx\n"
        "    xor %r12d, %r12d\n"
        "    xor %r13d, %r13d\n"
        "    jmp *%rax\n"
        ".size minirunc_guard_entry, .-minirunc_guard_entry\n");
