"""Start the kernel's wait for cgroup migrations early, in the background.

The first write to any cgroup.procs waits for an RCU grace period (~10 ms here) while the
kernel switches cgroup_threadgroup_rwsem to writer mode; writes within the next few ms are
~0.1 ms. `create` and `run` migrate the init only after imports, config, plan and spawn, so
a no-op migration of this process into the cgroup it is already in, started in a thread as
the command begins, lets that wait overlap with the work. It is only an optimization:
every failure is ignored.

From Linux 5.7 on there is nothing to start: the init joins its cgroups itself without
that lock (native/init.c: "0" into v1 `tasks` files, clone3 CLONE_INTO_CGROUP for
cgroup2), and a no-op migration would only hold cgroup_mutex, which the mkdirs need,
through a grace period.
"""

import _thread
import os

from .procfs import write_file

_done = None


def _own_procs_file():
    """cgroup.procs of the cgroup this process is in, in one mounted hierarchy, or None."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers and not controllers.startswith("name="):
            mount = "/sys/fs/cgroup/" + controllers.split(",")[0]
        elif not controllers:
            mount = "/sys/fs/cgroup/unified"
            if not os.path.isdir(mount):
                mount = "/sys/fs/cgroup"
        else:
            continue
        procs = mount + path.rstrip("/") + "/cgroup.procs"
        if os.path.exists(procs):
            return procs
    return None


def _write(path):
    try:
        write_file(path, b"%d" % os.getpid())
    except OSError:
        pass
    finally:
        _done.release()


def start():
    """Begin the no-op migration in a thread (once per process)."""
    global _done
    if _done is not None:
        return
    from .kernelfloor import release
    if (release() or (0, 0)) >= (5, 7):
        return
    path = _own_procs_file()
    if path is None:
        return
    _done = _thread.allocate_lock()
    _done.acquire()
    _thread.start_new_thread(_write, (path,))


def wait():
    """Block until the background write is over; call before migrating anything for real,
    so that it cannot move this process back after a real migration."""
    if _done is not None:
        _done.acquire()
        _done.release()
