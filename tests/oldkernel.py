"""Run a command as if on an older kernel: every syscall newer than RELEASE fails with ENOSYS.

Usage: ``python tests/oldkernel.py [--tomoyo] [--refuse NR=ERRNO]... RELEASE -- COMMAND
[ARG...]`` (RELEASE such as 4.14 or 5.4).  ``--tomoyo`` also answers ENOENT to
execveat(fd, "", AT_EMPTY_PATH), as TOMOYO does on kernels without upstream ada1986d0797
(Debian 11's 5.10.223) where /dev/fd does not exist.  ``--refuse 316=22`` answers syscall
316 (renameat2) with EINVAL, as a filesystem without RENAME_EXCHANGE does.

A classic seccomp filter (raw BPF, installed with prctl through ctypes) is put on this
process and then COMMAND is exec'd, so everything it starts inherits the filter, as a
kernel of that release would answer: the syscall numbers x86_64 gained after RELEASE
(the table below), every unassigned number above 4.14's last one (statx, 332) and the
whole x32 range return ENOSYS.  As root no PR_SET_NO_NEW_PRIVS is needed (CAP_SYS_ADMIN),
so setuid programs and the container's own filters behave as usual.  x86_64 only.
"""

import ctypes
import os
import struct
import sys

LAST_OF_4_14 = 332   # statx (4.11); 4.14 added no syscall on x86_64

# x86_64 syscall number -> the release that added it (everything above 332).
ADDED = {
    333: (4, 18), 334: (4, 18),                                   # io_pgetevents, rseq
    424: (5, 1), 425: (5, 1), 426: (5, 1), 427: (5, 1),           # pidfd_send_signal, io_uring_*
    428: (5, 2), 429: (5, 2), 430: (5, 2), 431: (5, 2), 432: (5, 2), 433: (5, 2),  # open_tree..fspick
    434: (5, 3), 435: (5, 3),                                     # pidfd_open, clone3
    436: (5, 9),                                                  # close_range
    437: (5, 6), 438: (5, 6),                                     # openat2, pidfd_getfd
    439: (5, 8),                                                  # faccessat2
    440: (5, 10), 441: (5, 11), 442: (5, 12),                     # process_madvise, epoll_pwait2, mount_setattr
    443: (5, 14), 444: (5, 13), 445: (5, 13), 446: (5, 13),       # quotactl_fd, landlock_*
    447: (5, 14), 448: (5, 15), 449: (5, 16), 450: (5, 17),       # memfd_secret .. set_mempolicy_home_node
    451: (6, 5), 452: (6, 6), 453: (6, 6),                        # cachestat, fchmodat2, map_shadow_stack
    454: (6, 7), 455: (6, 7), 456: (6, 7),                        # futex_wake/wait/requeue
    457: (6, 8), 458: (6, 8), 459: (6, 8), 460: (6, 8), 461: (6, 8),  # statmount .. lsm_list_modules
    462: (6, 10),                                                 # mseal
}

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
ENOSYS = 38
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
ENOENT = 2
SYS_EXECVEAT = 322
AT_EMPTY_PATH = 0x1000
EXECVEAT_FLAGS = 16 + 8 * 4     # seccomp_data.args[4], its low 32 bits (little endian)
# BPF opcodes: ld word abs, jeq/jge/jgt/jset with k, ret k.
LD_ABS, JEQ, JGE, JGT, JSET, RET = 0x20, 0x15, 0x35, 0x25, 0x45, 0x06


def parse_release(text):
    try:
        major, minor = text.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        raise SystemExit("oldkernel: release %r is not MAJOR.MINOR (such as 4.14)" % text)


def allowed_numbers(release):
    return sorted(nr for nr, added in ADDED.items() if added <= release)


def program(release, tomoyo=False, refuse=()):
    """The filter as a list of (code, jt, jf, k); a jump goes to pc + 1 + offset.
    ``refuse``: (number, errno) pairs answered with that errno whatever the release (what a
    filesystem or a seccomp profile may answer)."""
    allowed = allowed_numbers(release)
    prog = [
        (LD_ABS, 0, 0, 4),                        # arch
        (JEQ, 1, 0, AUDIT_ARCH_X86_64),           # x86_64 -> the syscall number
        (RET, 0, 0, SECCOMP_RET_ALLOW),           # other arches (i386 compat) untouched
        (LD_ABS, 0, 0, 0),                        # the syscall number
    ]
    for nr, err in refuse:
        prog += [(JEQ, 0, 1, nr), (RET, 0, 0, SECCOMP_RET_ERRNO | err)]
    if tomoyo:
        prog += [
            (JEQ, 0, 4, SYS_EXECVEAT),            # not execveat -> on with the number
            (LD_ABS, 0, 0, EXECVEAT_FLAGS),
            (JSET, 0, 1, AT_EMPTY_PATH),
            (RET, 0, 0, SECCOMP_RET_ERRNO | ENOENT),
            (LD_ABS, 0, 0, 0),                    # the number again
        ]
    base = len(prog)
    deny = base + 3 + len(allowed)
    allow = deny + 1
    prog += [
        (JGE, deny - base - 1, 0, X32_SYSCALL_BIT),   # x32 -> deny
        (JGT, 1, 0, LAST_OF_4_14),                # newer than 4.14 -> the table below
        (RET, 0, 0, SECCOMP_RET_ALLOW),
    ]
    for at, nr in enumerate(allowed, start=base + 3):
        prog.append((JEQ, allow - at - 1, 0, nr))
    prog.append((RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS))
    prog.append((RET, 0, 0, SECCOMP_RET_ALLOW))
    return prog


def install(release, tomoyo=False, refuse=()):
    prog = program(release, tomoyo, refuse)
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise SystemExit("oldkernel: prctl(PR_SET_SECCOMP): %s (root needed)" % os.strerror(e))


def main(argv):
    tomoyo = argv[:1] == ["--tomoyo"]
    argv = argv[1:] if tomoyo else argv
    refuse = []
    while argv[:1] == ["--refuse"] and len(argv) > 1:
        nr, _, err = argv[1].partition("=")
        if not (nr.isdigit() and err.isdigit()):
            raise SystemExit("oldkernel: --refuse takes NUMBER=ERRNO, not %r" % argv[1])
        refuse.append((int(nr), int(err)))
        argv = argv[2:]
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: oldkernel.py [--tomoyo] [--refuse NR=ERRNO]... RELEASE -- "
                         "COMMAND [ARG...]")
    install(parse_release(argv[0]), tomoyo, refuse)
    try:
        os.execvp(argv[2], argv[2:])
    except OSError as e:
        raise SystemExit("oldkernel: exec %s: %s" % (argv[2], e.strerror))


if __name__ == "__main__":
    main(sys.argv[1:])
