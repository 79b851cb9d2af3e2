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


def _sealed_memfd(name, data, step):
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
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except OSError as e:
        os.close(fd)
        raise HostError(step, "memfd " + name, e.errno) from None
    return fd


def init_memfd():
    """A sealed, close-on-exec memfd holding the init helper binary."""
    ffi, lib = _lib()
    blob = ffi.buffer(lib.mr_init_data(), lib.mr_init_size())
    return _sealed_memfd("minirunc-init", blob, "copy the init helper into")


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
