"""Helpers for driving the native init directly (tests/test_native_init.py).

A busybox rootfs builder, a base plan, and `run_plan`: it runs the init through
minirunc.native exactly as the runtime does (sync socketpair, plan memfd, start socket,
spawn, P/U/N/T/R handling, `S`) and collects the container's output and messages.
"""

import os
import shutil
import signal
import tempfile

from minirunc import native, planformat

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_STRICTATIME = 4096, 16384, 1 << 24

SCMP_ACT_ALLOW = 0x7FFF0000
APPLETS = ["sh", "echo", "cat", "id", "hostname", "ls", "readlink", "sleep", "grep", "mkdir",
           "tty", "stty", "touch", "wc", "head", "sort", "tr", "kill", "true"]


def scmp_act_errno(err):
    return 0x00050000 | (err & 0xFFFF)


def make_rootfs():
    """A world-traversable busybox rootfs under /tmp (usable from a user namespace too)."""
    root = tempfile.mkdtemp(prefix="minirunc-rootfs-", dir="/tmp")
    os.chmod(root, 0o755)
    for d in ("bin", "proc", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    return root


def base_records(rootfs, args, ns=CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWIPC,
                 no_pivot=0, readonly=0, extra=(), after=()):
    """A plan like the runtime's default: proc, /dev tmpfs with a few devices, PATH."""
    userns = bool(ns & CLONE_NEWUSER)
    records = [
        ("NS_NEW", (ns,)),
        ("ROOTFS", (rootfs, readonly, 0, no_pivot)),
        ("MOUNT", (0, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, 0, 0, "", 0)),
        ("MOUNT", (0, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, 0, 0, 0,
                   "mode=755,size=65536k", 0)),
    ]
    for name, minor in (("null", 3), ("zero", 5)):
        records.append(("DEVICE", ("/dev/" + name, ord("c"), 1, minor, 0o666, 0, 0, 1)))
    records.append(("SYMLINK", ("/proc/self/fd", "/dev/fd")))
    records.extend(extra)
    records.append(("ENV", ("PATH=/bin",)))
    records.append(("ENV", ("HOME=/",)))
    records.extend(after)
    records.extend(("ARG", (a,)) for a in args)
    assert userns or True
    return records


class Result:
    def __init__(self):
        self.status = None       # waitpid status of the container process
        self.output = b""        # its stdout+stderr
        self.notes = []          # `N` texts
        self.steps = []          # `K` step markers
        self.error = None        # (errno, step, detail) from an `E` message
        self.exec_error = None   # `E` from the start connection
        self.pid = None
        self.helper_status = None
        self.pty = None          # (slave path, master fd) from a `T` message

    @property
    def text(self):
        return self.output.decode(errors="replace")

    @property
    def exit_code(self):
        return os.waitstatus_to_exitcode(self.status) if self.status is not None else None


def _write_maps(pid, uid_map, gid_map):
    with open("/proc/%d/uid_map" % pid, "w") as f:
        f.write(uid_map)
    with open("/proc/%d/gid_map" % pid, "w") as f:
        f.write(gid_map)


def _alarm(signum, frame):
    raise TimeoutError("the native init did not finish in time")


def run_plan(records, tmpdir, uid_map="0 100000 65536\n", gid_map="0 100000 65536\n",
             on_ready=None, timeout=20, preserve_fd=None):
    """Run a plan through the init like the runtime does; see Result.

    ``preserve_fd`` is placed at fd 3 (for a PRESERVE_FDS 1 plan); the helper's own fds
    then start at 4.  ``records`` may also be raw plan bytes (for malformed plans)."""
    res = Result()
    exe = native.init_memfd()
    data = records if isinstance(records, bytes) else planformat.encode(records)
    plan = native.plan_memfd(data)
    sock, child_sock = native.socketpair()
    start_path = os.path.join(str(tmpdir), "start.sock")
    listen = native.listen_unix(start_path)
    r, w = os.pipe()
    saved = os.dup(1), os.dup(2), os.dup(3)
    first = 3 if preserve_fd is None else 4
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        # The init's stdio are our fds 0..2 (the runtime's convention): point 1 and 2 at a pipe.
        os.dup2(w, 1)
        os.dup2(w, 2)
        if preserve_fd is not None:
            os.dup2(preserve_fd, 3)
        try:
            helper = native.spawn(exe, ["minirunc-init"] + [str(first + i) for i in range(3)],
                                  [child_sock, plan, listen], first)
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.dup2(saved[2], 3)
        for fd in (w, child_sock, plan, listen, exe):
            os.close(fd)
        _follow(res, sock, helper, start_path, uid_map, gid_map, on_ready)
        if res.pid:
            res.status = os.waitpid(res.pid, 0)[1]
        res.output = _read_all(r)
        if res.pty:
            res.output += _read_all(res.pty[1])
            os.close(res.pty[1])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        for fd in (sock, r) + saved:
            os.close(fd)
        if os.path.exists(start_path):   # as `start` does
            os.unlink(start_path)
    return res


def _read_all(fd):
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:   # a pty master whose slave is gone: EIO
            data = b""
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _follow(res, sock, helper, start_path, uid_map, gid_map, on_ready):
    while True:
        data, fd = native.recv(sock)
        if not data:   # the init died without a message
            if res.helper_status is None:
                res.helper_status = os.waitpid(helper, 0)[1]
            return
        kind, fields = native.parse_message(data)
        if kind == "P":
            res.pid = int(fields[0])
            res.helper_status = os.waitpid(helper, 0)[1]
        elif kind == "U":
            _write_maps(res.pid, uid_map, gid_map)
            native.send(sock, b"u")
        elif kind == "N":
            res.notes.append(fields[0])
        elif kind == "K":   # a step marker (what stage 2 does next)
            res.steps.append(fields[0])
        elif kind == "T":
            res.pty = (fields[0], fd)
        elif kind == "E":
            res.error = (int(fields[0]), fields[1], fields[2])
            return
        elif kind == "R":
            if on_ready:
                on_ready(res.pid)
            _start(res, start_path)
            return
        else:
            raise AssertionError("unexpected sync message %r" % data)


def _start(res, start_path):
    conn = native.connect_unix(start_path)
    try:
        native.send(conn, b"S")
        data, _ = native.recv(conn)
    finally:
        os.close(conn)
    if data:
        kind, fields = native.parse_message(data)
        assert kind == "E", data
        res.exec_error = (int(fields[0]), fields[1], fields[2])
