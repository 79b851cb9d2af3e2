"""The one syscall seam between the Python runtime and the native part.

Wraps the cffi module ``minirunc._native`` (built by native/build_native.py): the sealed
memfd holding the init helper, the plan memfd, spawning the init, SOCK_SEQPACKET sockets
with fd passing, and the parser of the sync protocol (docs/design.md).  Every failure
becomes ``HostError(step, path, errno)``.  The ``socket`` module is deliberately not
imported: it costs start-up time and we need only a handful of calls.
"""

import errno
import fcntl
import os

from .errors import HostError

_MFD_EXEC = 0x0010   # kernel >= 6.3: say explicitly that this memfd is executable
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_RECV_SIZE = 65536

_mod = None


def _lib():
    """(ffi, lib), imported on first use so that `state`/`list` never load it."""
    global _mod
    if _mod is None:
        try:
            from . import _native
        except ImportError as e:
            raise HostError("load the native module minirunc._native", None, 0,
                            "build it with native/build_native.py: %s" % e) from None
        _mod = (_native.ffi, _native.lib)
    return _mod


def _retry(call, *args):
    """Call again on EINTR, after Python has run its signal handlers (PEP 475 style)."""
    while True:
        result = call(*args)
        if result != -errno.EINTR:
            return result


def _check(result, step, path=None):
    if result < 0:
        raise HostError(step, path, -result)
    return result


def _sealed_memfd(name, data, step, source=None):
    """A sealed memfd holding data; source=(fd, offset) names a file holding the same bytes,
    which the kernel then copies (sendfile) without this process reading them."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create(name, flags | _MFD_EXEC)
    except OSError as e:
        if e.errno != errno.EINVAL:   # older kernels do not know MFD_EXEC
            raise HostError(step, "memfd_create " + name, e.errno) from None
        try:
            fd = os.memfd_create(name, flags)
        except OSError as e2:
            raise HostError(step, "memfd_create " + name, e2.errno) from None
    try:
        if source is None or not _sendfile_all(fd, source[0], source[1], len(data)):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except OSError as e:
        os.close(fd)
        raise HostError(step, "memfd " + name, e.errno) from None
    return fd


def _sendfile_all(fd, source, offset, size):
    """Copies size bytes of source at offset into fd; False when the kernel would not."""
    done = 0
    try:
        while done < size:
            n = os.sendfile(fd, source, offset + done, size - done)
            if n <= 0:
                return False
            done += n
    except OSError:
        return False
    return True


def _mapped_file(address, size):
    """(fd, offset): the file whose mapping holds [address, address + size), opened through
    /proc/self/map_files (the very file mapped, even if replaced since), or None."""
    try:
        with open("/proc/self/maps", "rb") as f:
            for line in f:
                fields = line.split()
                start, _, end = fields[0].partition(b"-")
                start, end = int(start, 16), int(end, 16)
                if start <= address < end:
                    if address + size > end or len(fields) < 6 or not fields[5].startswith(b"/"):
                        return None
                    fd = os.open("/proc/self/map_files/%x-%x" % (start, end),
                                 os.O_RDONLY | os.O_CLOEXEC)
                    return fd, int(fields[2], 16) + address - start
    except (OSError, ValueError, IndexError):
        return None
    return None


def init_memfd():
    """A sealed, close-on-exec memfd holding the init helper binary.  The kernel copies the
    init's bytes from the file that holds them (the binary, or the extension module), so
    its ~210 KB never become resident in the runtime; where it cannot, they are written."""
    ffi, lib = _lib()
    address, size = int(ffi.cast("uintptr_t", lib.mr_init_data())), lib.mr_init_size()
    blob = ffi.buffer(lib.mr_init_data(), size)
    source = _mapped_file(address, size)
    try:
        return _sealed_memfd("minirunc-init", blob, "copy the init helper into", source)
    finally:
        if source is not None:
            os.close(source[0])


def plan_memfd(data):
    """A sealed memfd holding the encoded plan (the init preads it from offset 0)."""
    return _sealed_memfd("minirunc-plan", data, "write the plan into")


def spawn(exe_fd, argv, fds, first_fd):
    """Fork and execveat(exe_fd): the child keeps 0..first_fd-1, gets ``fds`` at first_fd.."""
    ffi, lib = _lib()
    args = [ffi.new("char[]", os.fsencode(a)) for a in argv]
    c_argv = ffi.new("char *[]", args + [ffi.NULL])
    c_fds = ffi.new("int[]", list(fds) or [0])
    return _check(lib.mr_spawn(exe_fd, c_argv, c_fds, len(fds), first_fd),
                  "spawn the init helper", argv[0] if argv else None)


def socketpair():
    """A SOCK_SEQPACKET, close-on-exec unix socket pair."""
    ffi, lib = _lib()
    sv = ffi.new("int[2]")
    _check(lib.mr_socketpair(sv), "socketpair (AF_UNIX, SOCK_SEQPACKET)")
    return sv[0], sv[1]


def listen_unix(path):
    """A listening SOCK_SEQPACKET socket bound at ``path`` (long paths are fine)."""
    _, lib = _lib()
    return _check(lib.mr_listen_unix(os.fsencode(path)), "listen on unix socket", path)


def connect_unix(path):
    _, lib = _lib()
    return _check(_retry(lib.mr_connect_unix, os.fsencode(path)), "connect to unix socket", path)


def send(sock, data, fd=-1):
    """Send one packet, optionally passing ``fd`` (SCM_RIGHTS)."""
    _, lib = _lib()
    return _check(_retry(lib.mr_send, sock, data, len(data), fd), "send on the sync socket")


def recv(sock):
    """One packet as (bytes, passed fd or None); b"" means the peer closed."""
    ffi, lib = _lib()
    buf = ffi.new("char[]", _RECV_SIZE)
    fd = ffi.new("int *")
    n = _check(_retry(lib.mr_recv, sock, buf, _RECV_SIZE, fd), "receive on the sync socket")
    return ffi.buffer(buf, n)[:], (fd[0] if fd[0] >= 0 else None)


def syscall_missing(nr):
    """True if the kernel answers ENOSYS to syscall ``nr`` (called with arguments every
    kernel that has it refuses: -1 fds, NULL pointers, zero sizes)."""
    _, lib = _lib()
    return lib.mr_syscall_missing(nr) == 1


def rename_exchange(a, b):
    """Swap the existing paths ``a`` and ``b`` in one step; 0, or the errno (nothing
    changed) where the kernel or the filesystem has no RENAME_EXCHANGE or ``b`` is missing."""
    _, lib = _lib()
    return -lib.mr_rename_exchange(os.fsencode(a), os.fsencode(b))


def set_dumpable(flag):
    _, lib = _lib()
    _check(lib.mr_set_dumpable(1 if flag else 0), "prctl(PR_SET_DUMPABLE)")


def parse_message(data):
    """A sync packet as (type character, [fields as str]); fields are NUL-separated."""
    if not data:
        raise ValueError("empty sync message")
    kind = chr(data[0])
    rest = data[1:]
    fields = [f.decode(errors="surrogateescape") for f in rest.split(b"\0")] if rest else []
    return kind, fields


# ---------------------------------------------------------------- cgroup v2 device filter

_DEV_STEPS = {1: "build the device filter program for",
              2: "load the device filter (bpf BPF_PROG_LOAD) for",
              3: "list the device filters (bpf BPF_PROG_QUERY) of",
              4: "attach the device filter (bpf BPF_PROG_ATTACH) to",
              5: "detach the replaced device filter (bpf BPF_PROG_DETACH) from"}
_DEV_LOG_SIZE = 1 << 16


def _dev_rules(ffi, rules):
    """``rules``: [(type 'a'|'b'|'c', major or -1, minor or -1, access "rwm" letters, allow)]."""
    c_rules = ffi.new("struct mr_dev_rule[]", max(len(rules), 1))
    for i, (kind, major, minor, access, allow) in enumerate(rules):
        r = c_rules[i]
        r.type = ord(kind)
        r.major = -1 if major is None else major
        r.minor = -1 if minor is None else minor
        r.access = access.encode()[:3]
        r.allow = 1 if allow else 0
    return c_rules


def device_filter(cgroup_dir, rules, default_allow):
    """Attach an eBPF device program for ``rules`` (the last matching rule decides, none
    matching -> ``default_allow``) to the cgroup v2 directory, replacing the one this runtime
    attached there before."""
    ffi, lib = _lib()
    c_rules = _dev_rules(ffi, rules)
    log = ffi.new("char[]", _DEV_LOG_SIZE)
    step = ffi.new("int *")
    try:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise HostError("open the cgroup directory", cgroup_dir, e.errno) from None
    try:
        result = lib.mr_device_filter(fd, c_rules, len(rules), 1 if default_allow else 0,
                                      log, _DEV_LOG_SIZE, step)
    finally:
        os.close(fd)
    if result < 0:
        text = ffi.string(log).decode(errors="replace").strip()
        hint = None
        if text and step[0] == 2:
            hint = "verifier: " + text.splitlines()[0]
        elif -result == errno.EPERM and step[0] in (2, 4):
            hint = "needs CAP_SYS_ADMIN (and CAP_BPF) and a kernel with CONFIG_CGROUP_BPF"
        if step[0] in (2, 3, 4):
            from .kernelfloor import release
            if (release() or (99, 0)) < (4, 15):   # BPF_PROG_TYPE_CGROUP_DEVICE came in 4.15
                hint = ("the cgroup v2 device program (linux.devices, linux.resources.devices) "
                        "needs Linux 4.15; this kernel is older")
        raise HostError(_DEV_STEPS.get(step[0], "set the device filter of"), cgroup_dir,
                        -result, hint)


def device_filter_program(rules, default_allow):
    """The instructions device_filter would load, as (code, dst, src, off, imm) tuples."""
    import struct
    ffi, lib = _lib()
    room = 8 + 8 * len(rules)
    out = ffi.new("char[]", 8 * room)
    n = lib.mr_device_filter_emit(_dev_rules(ffi, rules), len(rules),
                                  1 if default_allow else 0, out, room)
    _check(n, "build the device filter program")
    raw = ffi.buffer(out, 8 * n)[:]
    insns = []
    for i in range(n):
        code, regs, off, imm = struct.unpack_from("<BBhi", raw, 8 * i)
        insns.append((code, regs & 0xF, regs >> 4, off, imm))
    return insns
