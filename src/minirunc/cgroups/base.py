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
            raise join_error(pid, path, e.errno) from None


def join_error(pid, path, err):
    """The error of a refused move of ``pid`` through ``path`` (cgroup.procs or tasks)."""
    return HostError("move process %d into cgroup" % pid, path, err,
                     _join_hint(os.path.dirname(path), err))


def move_self(dirs):
    """Move this process into ``dirs``.  In v1, "0" written to `tasks` moves the calling
    thread, the one that spawns the init (the runtime's only one, but for a finished
    cgroupwarm thread), and for that the kernel takes no global lock, so it waits for no
    RCU grace period; cgroup2 has only cgroup.procs."""
    for d in dirs:
        tasks = os.path.join(d, "tasks")
        if os.path.exists(tasks):
            try:
                write_file(tasks, b"0")
            except OSError as e:
                raise join_error(os.getpid(), tasks, e.errno) from None
        else:
            join([d], os.getpid())


def self_join_records(dirs):
    """CGROUP_JOIN plan records (kind, path) with which the init joins ``dirs`` itself,
    without the runtime's migration (planformat.py): 1 and the `tasks` file of each v1
    directory, 2 and the first cgroup2 directory (a host has one cgroup2 hierarchy)."""
    records, cgroup2 = [], False
    for d in dirs:
        tasks = os.path.join(d, "tasks")
        if os.path.exists(tasks):
            records.append((1, tasks))
        elif not cgroup2:
            records.append((2, d))
            cgroup2 = True
    return records


def _join_hint(directory, err):
    if err == EINVAL and os.path.exists(os.path.join(directory, "cpu.rt_runtime_us")):
        return ("a real-time process (process.scheduler) needs "
                "linux.resources.cpu.realtimeRuntime on this host")
    if err == ENOSPC and os.path.exists(os.path.join(directory, "cpuset.cpus")):
        return "a new v1 cpuset cgroup needs cpuset.cpus and cpuset.mems written"
    return None


KEEP_LIMIT = 4096     # sub-cgroups of a pre-existing cgroup recorded one by one


def sub_cgroups(path):
    try:
        return [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def tree_pids(path):
    """Every pid in the cgroup and its sub-cgroups (runc's GetAllPids)."""
    pids = []
    for dirpath, _, _ in os.walk(path):
        pids += [p for p in read_procs(dirpath) if p not in pids]
    return pids


def existing_tree(path):
    """The cgroup and its sub-cgroups as they are now (what a pre-existing cgroup keeps),
    or None when there are too many to record (then every one is kept)."""
    found = []
    for dirpath, _, _ in os.walk(path):
        found.append(dirpath)
        if len(found) > KEEP_LIMIT:
            return None
    return found


def kill_owned(path, owns):
    """SIGKILL the container's own processes in one cgroup; True if there were some."""
    mine = [p for p in read_procs(path) if owns(p)]
    for pid in mine:
        try:
            os.kill(pid, SIGKILL)
        except OSError:
            pass
    return bool(mine)


def _exiting(pid):
    """A process on its way out has dropped its namespaces but may still be listed in
    cgroup.procs: it cannot be told apart, but it will be gone in a moment."""
    return not os.path.exists("/proc/%d/ns/mnt" % pid)


def remove_tree(path, owns, kept=lambda d: False, timeout=2.0, stayed=None):
    """Kill the container's own processes (``owns``) in the cgroup and its sub-cgroups, and
    remove the sub-cgroups and the cgroup itself, deepest first, except those ``kept``
    (they existed before the container: someone else's).  A foreign process is never
    signalled; the cgroup holding one stays.  False if one stays (appended to ``stayed``)."""
    if not kept(path):
        # Mostly the container's processes are gone and it made no sub-cgroups: then one
        # rmdir does it.  A cgroup with either refuses (EBUSY): the walk below.
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            pass
    removed = [remove_tree(child, owns, kept, timeout, stayed) for child in sub_cgroups(path)]
    if kept(path):
        kill_owned(path, owns)
        return all(removed)
    if not all(removed) or not _rmdir_killing(path, owns, timeout):
        kill_owned(path, owns)
        if stayed is not None:
            stayed.append(path)
        return False
    return True


def _rmdir_killing(path, owns, timeout):
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
        left = read_procs(path)
        if not kill_owned(path, owns) and left and not any(_exiting(p) for p in left):
            return False      # only foreign processes are left in it
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

    def add_pid(self, pid, skip=()):
        """Move ``pid`` into the container's cgroups (but not those in ``skip``)."""

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

    def found_pids(self):
        return {}

    def by_controller(self):
        """{controller or "" (cgroup2): the container's directory}, or None without cgroups."""
        return None

    def own_processes(self):
        return []


class FileDriver(Driver):
    """Shared work of the drivers that have directories: join, destroy, apply's checks."""

    def __init__(self, remove=None):
        # The directories this container made (deepest first); None: unknown, all of dirs().
        self.remove = list(remove) if remove is not None else None
        self.keep = {}      # container dir that existed before -> its sub-cgroups then, or None
        self.owner = None   # owner.identity() of the init, once its pid is known
        self.home = []      # the runtime's own cgroups (set by choose_driver)

    def plan_dirs(self):
        """[(dir, mountpoint)] of every cgroup directory of the container."""
        raise NotImplementedError

    def dirs(self):
        return [d for d, _ in self.plan_dirs()]

    def prepare(self):
        """Work out which directories will be made (call before record() and create()).
        Only those are removed at the end; a container directory that exists already is
        someone else's (or shared): it and its sub-cgroups of now are kept."""
        remove = []
        for d, mountpoint in self.plan_dirs():
            for m in missing_dirs(d, mountpoint):
                if m not in remove:
                    remove.append(m)
        self.remove = sorted(remove, key=lambda p: -p.count("/"))
        self.keep = {d: existing_tree(d) for d in self.dirs() if d not in remove}

    def common_record(self):
        return {"remove": self.remove, "keep": self.keep, "owner": self.owner}

    def found_pids(self):
        """{directory: pids} of the container's directories that hold processes now (in
        them or their sub-cgroups): the cgroup is not empty."""
        found = {}
        for d in self.dirs():
            pids = tree_pids(d) if os.path.isdir(d) else []
            if pids:
                found[d] = pids
        return found

    def create(self):
        for d in self.dirs():
            make_dirs(d)

    def add_pid(self, pid, skip=()):
        join([d for d in self.dirs() if d not in skip], pid)

    def pids(self):
        return read_procs(self.dirs()[0]) if self.dirs() else []

    def ours(self, directory):
        """Did this container make ``directory`` (or is that unknown: a record without)?"""
        return self.remove is None or directory in self.remove

    def owner_test(self, directory):
        """owns(pid) for the processes of one of the container's directories.  Without an
        owner record (the init's pid was never known) everything in a directory the
        container made is its own, nothing in one that existed before."""
        from .owner import Owner
        return Owner(self.owner, fallback=self.ours(directory)).owns

    def own_processes(self):
        """The container's own processes in its cgroup (not a foreign one sharing it)."""
        dirs = self.dirs()
        if not dirs:
            return []
        owns = self.owner_test(dirs[0])
        return [p for p in self.pids() if owns(p)]

    def by_controller(self):
        out = dict(getattr(self, "paths", None) or {})
        if getattr(self, "unified", None):
            out[""] = self.unified
        return out

    def visit(self):
        """Move this process into the container's cgroups, so that what it forks (the init,
        its new cgroup namespace) starts there; ``leave`` comes back."""
        if self.home:
            move_self(self.dirs())

    def leave(self):
        move_self(self.home)

    def destroy(self):
        if self.can_freeze() and self.frozen():
            try:
                self.thaw()
            except Exception:
                pass
        ok = True
        dirs = self.dirs()
        self.stayed = []
        for d in dirs:
            ok = remove_tree(d, self.owner_test(d), self._kept(d), stayed=self.stayed) and ok
        for d in self.remove or ():
            if d not in dirs:
                # A parent made for the path: removed once empty; another container's
                # cgroup may sit in it now, which is no failure of ours.
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        return ok

    def _kept(self, directory):
        """kept(path) for remove_tree: nothing, if we made ``directory``; else it and the
        sub-cgroups it had at create (all of them when there were too many to record)."""
        if self.ours(directory):
            return lambda path: False
        before = self.keep.get(directory) if isinstance(self.keep, dict) else None
        if before is None:
            return lambda path: True
        before = set(before) | {directory}
        return lambda path: path in before

    def leftover_dirs(self):
        """The directories the last destroy should have removed but could not."""
        return list(getattr(self, "stayed", ()))

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
                names = " or ".join(files)     # every file that would have done
                if optional:
                    warnings.append("%s: the kernel has no %s; NOT applied" % (key, names))
                else:
                    raise ConfigError(key, "the kernel has no %s (in %s)" % (names, directory))
        for path, value, key in todo:
            write_value(path, value, key)


def from_record(record):
    if not record or record.get("driver") in (None, "none"):
        from .none import NoneDriver
        return NoneDriver()
    kind = record["driver"]
    if kind == "v1":
        from .v1 import V1Driver
        driver = V1Driver(record["paths"], record.get("mounts") or {}, record.get("remove"))
    elif kind == "v2":
        from .v2 import V2Driver
        driver = V2Driver(record["unified"], record["mount"], record.get("remove"))
    else:
        from .hybrid import HybridDriver
        driver = HybridDriver(record["paths"], record["unified"], record["mount"],
                              record.get("mounts") or {}, record.get("remove"))
    driver.keep = record.get("keep") or {}
    driver.owner = record.get("owner")
    return driver
