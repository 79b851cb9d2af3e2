"""The driver interface and the file work every driver shares.

A driver knows the container's cgroup directories and does: ``create`` (mkdir), ``apply``
(write resources), ``add_pid`` (join), ``freeze``/``thaw``/``frozen``, ``pids``, ``stats``,
``oom_count`` and ``destroy`` (kill what is left, rmdir).  ``record()`` is what state.json
keeps, saved before any directory is made, so ``delete --force`` after a crash at any point
finds every directory (``from_record`` rebuilds the driver from it).
"""

import os
import time

from ..errors import ConfigError, HostError, errno_text
from ..procfs import write_file

EBUSY = 16
EINVAL = 22
ENOSPC = 28
SIGKILL = 9


def read_text(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        if default is None:
            raise
        return default


def write_value(path, value, key=None):
    """Write one value to a cgroup file; a refusal names the file, the value and the key."""
    try:
        write_file(path, value.encode())
    except OSError as e:
        if key:
            raise ConfigError(key, "the kernel refused %r in %s: %s"
                              % (value, path, errno_text(e.errno))) from None
        raise HostError("write %r to" % value, path, e.errno) from None


def read_procs(directory):
    text = read_text(os.path.join(directory, "cgroup.procs"), "")
    return [int(x) for x in text.split()]


def missing_dirs(path, mountpoint):
    """The directories from ``mountpoint`` (excluded) down to ``path`` that do not exist yet,
    deepest first (the order to remove them in)."""
    out = []
    while path != mountpoint and len(path) > len(mountpoint) and not os.path.isdir(path):
        out.append(path)
        path = os.path.dirname(path)
    return out


def make_dirs(path):
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except OSError as e:
        raise HostError("create cgroup", path, e.errno) from None


def join(dirs, pid):
    """Write ``pid`` into cgroup.procs of each of ``dirs`` (the container's, or exec's
    sub-cgroups); a refusal names the file and, where the kernel's reason is known, the fix."""
    for d in dirs:
        path = os.path.join(d, "cgroup.procs")
        try:
            write_value(path, str(pid))
        except HostError as e:
            raise HostError("move process %d into cgroup" % pid, path, e.errno,
                            _join_hint(d, e.errno)) from None


def _join_hint(directory, err):
    if err == EINVAL and os.path.exists(os.path.join(directory, "cpu.rt_runtime_us")):
        return ("a real-time process (process.scheduler) needs "
                "linux.resources.cpu.realtimeRuntime on this host")
    if err == ENOSPC and os.path.exists(os.path.join(directory, "cpuset.cpus")):
        return "a new v1 cpuset cgroup needs cpuset.cpus and cpuset.mems written"
    return None


def remove_dir(path, timeout=2.0):
    """Kill what is left in the cgroup and remove it, its sub-cgroups first (the container
    or `exec --cgroup` may have made some; runc removes them too); False if one stays busy."""
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        children = []
    removed = [remove_dir(child, timeout) for child in children]
    if not all(removed):
        return False
    end = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != EBUSY or time.monotonic() > end:
                return False
        for pid in read_procs(path):
            try:
                os.kill(pid, SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


class Driver:
    """The interface; ``NoneDriver`` implements it doing nothing."""

    name = "?"

    def record(self):
        raise NotImplementedError

    def create(self):
        """Make the directories (their paths are already in state.json)."""

    def apply(self, resources, config_devices=(), current=None):
        """Write the resources; returns warnings.  ``current``: the resources applied before."""
        return []

    def add_pid(self, pid):
        """Move ``pid`` into the container's cgroups."""

    def visit(self):
        """Move this process into the container's cgroups until ``leave``."""

    def leave(self):
        pass

    def freeze(self):
        raise NotImplementedError

    def thaw(self):
        raise NotImplementedError

    def frozen(self):
        return False

    def can_freeze(self):
        return False

    def pids(self):
        return []

    def stats(self):
        return {}

    def oom_count(self):
        return None

    def destroy(self):
        """Kill any process left and remove every directory; True if all are gone."""
        return True

    def dirs(self):
        return []


class FileDriver(Driver):
    """Shared work of the drivers that have directories: join, destroy, apply's checks."""

    def __init__(self, remove=None):
        self.remove = list(remove) if remove is not None else None
        self.home = []      # the runtime's own cgroups (set by choose_driver)

    def plan_dirs(self):
        """[(dir, mountpoint)] of every cgroup directory of the container."""
        raise NotImplementedError

    def dirs(self):
        return [d for d, _ in self.plan_dirs()]

    def prepare(self):
        """Work out which directories will be made (call before record() and create())."""
        remove = []
        for d, mountpoint in self.plan_dirs():
            for m in missing_dirs(d, mountpoint):
                if m not in remove:
                    remove.append(m)
        for d in self.dirs():
            if d not in remove:
                remove.insert(0, d)    # existed already: still ours to remove at the end
        self.remove = sorted(remove, key=lambda p: -p.count("/"))

    def create(self):
        for d in self.dirs():
            make_dirs(d)

    def add_pid(self, pid):
        join(self.dirs(), pid)

    def pids(self):
        return read_procs(self.dirs()[0]) if self.dirs() else []

    def visit(self):
        """Move this process into the container's cgroups, so that what it forks (the init,
        its new cgroup namespace) starts there; ``leave`` comes back."""
        if self.home:
            self.add_pid(os.getpid())

    def leave(self):
        for home in self.home:
            write_value(os.path.join(home, "cgroup.procs"), str(os.getpid()))

    def destroy(self):
        if self.can_freeze() and self.frozen():
            try:
                self.thaw()
            except Exception:
                pass
        ok = True
        for d in self.remove or self.dirs():
            ok = remove_dir(d) and ok
        return ok

    def write_all(self, writes, dir_for, warnings):
        """Check every write's controller and file, then write them all in order."""
        todo = []
        for controller, files, value, key, optional in writes:
            directory = dir_for(controller)
            if directory is None:
                raise ConfigError(key, "this host has no %s cgroup controller%s"
                                  % (controller or "cgroup v2", "" if controller else " tree"))
            for name in files:
                if os.path.exists(os.path.join(directory, name)):
                    todo.append((os.path.join(directory, name), value, key))
                    break
            else:
                if optional:
                    warnings.append("%s: the kernel has no %s; NOT applied" % (key, files[-1]))
                else:
                    raise ConfigError(key, "the kernel has no %s (in %s)" % (files[-1], directory))
        for path, value, key in todo:
            write_value(path, value, key)


def from_record(record):
    if not record or record.get("driver") in (None, "none"):
        from .none import NoneDriver
        return NoneDriver()
    kind = record["driver"]
    if kind == "v1":
        from .v1 import V1Driver
        return V1Driver(record["paths"], record.get("mounts") or {}, record.get("remove"))
    if kind == "v2":
        from .v2 import V2Driver
        return V2Driver(record["unified"], record["mount"], record.get("remove"))
    from .hybrid import HybridDriver
    return HybridDriver(record["paths"], record["unified"], record["mount"],
                        record.get("mounts") or {}, record.get("remove"))
