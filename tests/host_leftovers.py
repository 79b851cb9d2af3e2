"""What a container can leave on the host, seen from outside (issue 8's standing suites).

Used by test_fuzz_config.py, test_faults.py and test_concurrency.py: the state directory,
the cgroup directories named after the id, processes, mounts.  Processes are found by
making the test process a child subreaper: a container process orphaned by a runtime that
exited or was killed is then re-parented to the test, which sees it among its children.
"""

import ctypes
import os
import signal
import threading

import pytest

PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture
def subreaper():
    """Adopt what the runtime leaves behind for the length of a test; at the end, anything
    still adopted is killed and reaped (the test has said whether that was a failure).

    Like a host's init, a thread reaps adopted processes as soon as they are zombies: a
    pid namespace's init cannot finish dying while a zombie of its namespace waits for a
    parent outside it (an `exec`'d process whose runtime was killed), so delete would hang."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    done = threading.Event()
    reaper = threading.Thread(target=_reap_adopted, args=(done,), daemon=True)
    reaper.start()
    yield
    done.set()
    reaper.join()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    for pid in children():
        kill_and_reap(pid)


# The commands tests start themselves (subprocess reaps those; reaping one of them here
# would give subprocess a wrong exit status).
RUNTIME_COMMS = {"python", "python3", "minirunc", "minirunc-static"}


def _reap_adopted(done):
    while not done.wait(0.02):
        for pid in children():
            stat = _stat(pid)
            if stat is None or stat[1] not in ("Z", "X") or stat[0] in RUNTIME_COMMS:
                continue
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _stat(pid):
    """(comm, state letter) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = data[data.index(b"(") + 1:data.rindex(b")")].decode(errors="replace")
    return comm, data[data.rindex(b")") + 2:][:1].decode()


def children():
    """Pids of this process's children (every thread's list)."""
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/children" % tid) as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def kill_and_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def proc_state(pid):
    """The state letter of /proc/<pid>/stat (R, S, T, Z...), or None if it is gone."""
    stat = _stat(pid)
    return stat and stat[1]


def describe(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmdline = "?"
    return "%d (%s) %s" % (pid, proc_state(pid), cmdline[:100])


def leftover_processes(exclude=()):
    """Adopted children still alive; zombies are reaped and not counted.  Only call this
    when no other thread of the test is running subprocesses (it reaps their zombies)."""
    alive = []
    for pid in children() - set(exclude):
        state = proc_state(pid)
        if state is None:
            continue
        if state in ("Z", "X"):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            continue
        alive.append(describe(pid))
    return alive


def reap_zombies(exclude=()):
    leftover_processes(exclude)


def own_cgroup_dirs(name):
    """Where a cgroup called ``name`` is made by default: under this process's own cgroup
    (and under its parent: pure v2's choice) in every hierarchy."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                mounts[fields[4]] = (fstype, set(fields[-1].split(",")))
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path
    dirs = set()
    for mount, (fstype, options) in mounts.items():
        if fstype == "cgroup2":
            path = own.get("")
        else:
            path = next((p for c, p in own.items() if c and c in options), None)
        if path is None:
            continue
        for base in (path, os.path.dirname(path)):
            dirs.add(os.path.normpath(mount + "/" + base.lstrip("/") + "/" + name))
    return sorted(dirs)


def cgroup_dirs_named(name, top="/sys/fs/cgroup", depth=5):
    """Every directory called ``name`` in the cgroup trees (a walk, wherever it was made)."""
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        if dirpath.count("/") - top.count("/") >= depth:
            dirnames[:] = []
        found += [os.path.join(dirpath, d) for d in dirnames if d == name]
    return found


def leftover_cgroups(name):
    return [d for d in own_cgroup_dirs(name) if os.path.exists(d)]


def mounts_under(*dirs):
    """Host mount points at or below any of ``dirs``."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    dirs = [str(d) for d in dirs]
    return [p for p in points if any(p == d or p.startswith(d + "/") for d in dirs)]
