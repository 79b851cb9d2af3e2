"""Which processes in a container's cgroup are the container's own.

A cgroup can be shared: ``linux.cgroupsPath`` (or the id under our own cgroup) may name a
cgroup that existed before, holds other processes, or that a second container uses too.
So `delete`, `run`'s end, a failed create, `kill --all` and `ps` never take "everything in
the cgroup": they take the processes that belong to the container.

At create, when the init's pid is known, ``identity(pid)`` records in state.json what
identifies the container's processes even after the init has died:
- its mount namespace (always new for a container; `exec` joins it);
- its pid namespace, when the container has a new one (not the host's, not joined by path:
  a joined pid namespace is shared with whoever made it);
- the init's pid and start time: while the init lives, its descendants are the container's
  (the only test left for a process that unshared its mount namespace in a host pid ns).
Namespace inode numbers are reused only after the namespace is gone, and a match is
asked only of a process that also sits in the container's cgroup.
"""

import os


def _ns_id(pid, name):
    try:
        st = os.stat("/proc/%d/ns/%s" % (pid, name))
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def _stat_fields(pid):
    """(ppid, start time) from /proc/<pid>/stat, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[1]), int(fields[19])


def identity(pid, own_pidns):
    """What state.json keeps to recognise the container's processes (see the docstring).
    ``own_pidns``: the container has a new pid namespace of its own."""
    stat = _stat_fields(pid)
    return {"pid": pid, "start": stat[1] if stat else None,
            "mntns": _ns_id(pid, "mnt"), "pidns": _ns_id(pid, "pid") if own_pidns else None}


class Owner:
    """``owns(pid)``: is this process one of the container's?  Built from the ``owner``
    record; ``fallback`` answers when there is none (a runtime killed before the init's
    pid was known, or a state.json from before the record existed)."""

    def __init__(self, record, fallback=False):
        self.record = record if isinstance(record, dict) else None
        self.fallback = fallback
        self._init_alive = None

    def owns(self, pid):
        record = self.record
        if record is None:
            return self.fallback
        for key, name in (("mntns", "mnt"), ("pidns", "pid")):
            if record.get(key) and _ns_id(pid, name) == record[key]:
                return True
        return self._descends_from_init(pid)

    def filter(self, pids):
        return [p for p in pids if self.owns(p)]

    def _descends_from_init(self, pid):
        init = self.record.get("pid")
        if not isinstance(init, int) or init <= 0:
            return False
        if self._init_alive is None:
            stat = _stat_fields(init)
            self._init_alive = bool(stat) and stat[1] == self.record.get("start")
        if not self._init_alive:
            return False
        for _ in range(4096):      # a ppid chain is short; the bound guards against loops
            if pid == init:
                return True
            if pid <= 1:
                return False
            stat = _stat_fields(pid)
            if stat is None:
                return False
            pid = stat[0]
        return False


# ------------------------------------------------ a cgroup that already holds processes

NONEMPTY_ANNOTATION = "run.minirunc.cgroup-nonempty"
NONEMPTY_ENV = "MINIRUNC_CGROUP_NONEMPTY"
NONEMPTY_CHOICES = ("warn", "refuse")


def nonempty_policy(annotations, environ=None):
    """"warn" (runc 1.1, the default) or "refuse" (runc 1.2 always refuses), and where it
    came from: the annotation (podman, containerd and Kubernetes pass annotations through)
    wins over the environment variable (for wrappers)."""
    from ..errors import ConfigError, UsageError
    value = (annotations or {}).get(NONEMPTY_ANNOTATION)
    if value is not None:
        if value not in NONEMPTY_CHOICES:
            raise ConfigError("annotations.%s" % NONEMPTY_ANNOTATION,
                              'must be "warn" or "refuse", not %.40r' % value)
        return value, "annotation %s=%s" % (NONEMPTY_ANNOTATION, value)
    environ = os.environ if environ is None else environ
    value = environ.get(NONEMPTY_ENV)
    if value:
        if value not in NONEMPTY_CHOICES:
            raise UsageError('%s=%.40r: must be "warn" or "refuse"' % (NONEMPTY_ENV, value))
        return value, "%s=%s" % (NONEMPTY_ENV, value)
    return "warn", None


def check_nonempty(driver, annotations, warn):
    """Before the container's cgroups are made: if one holds processes already, warn in
    runc 1.1's words, or refuse (one line naming the directory and the knob).  Nothing is
    touched either way."""
    from ..errors import HostError
    policy, source = nonempty_policy(annotations)
    found = driver.found_pids()
    if not found:
        return
    count = len(set(p for pids in found.values() for p in pids))
    directory = sorted(found)[0]
    if policy == "refuse":
        raise HostError("container's cgroup is not empty: %d process(es) found in" % count,
                        directory, hint="refused by %s; pick another linux.cgroupsPath or "
                        "container id, or set %s to warn to share it" % (source, source.split("=")[0]))
    warn("container's cgroup is not empty: %d process(es) found (in %s; they are not the "
         "container's and are left alone; annotation %s=refuse or %s=refuse refuses this)"
         % (count, directory, NONEMPTY_ANNOTATION, NONEMPTY_ENV))


def check_not_frozen(driver):
    """Before the container's cgroups are made: a cgroup that exists already and is frozen
    would freeze the init halfway through its set-up.  runc 1.1 refuses it with
    "container's cgroup unexpectedly frozen"; so do we, naming the file to thaw."""
    from ..errors import HostError
    if not driver.can_freeze() or not driver.frozen():
        return
    path = driver.record().get("freezer") or "(its freezer)"
    raise HostError("container's cgroup unexpectedly frozen:", path,
                    hint="it exists already and is frozen; thaw it (write %s to it) or pick "
                    "another linux.cgroupsPath" % ("THAWED" if path.endswith("freezer.state")
                                                    else "0"))
