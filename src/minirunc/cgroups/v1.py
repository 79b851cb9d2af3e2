"""cgroup v1: one directory per mounted hierarchy (controllers co-mounted share one).

A new cpuset directory starts with empty cpuset.cpus/mems, and nothing can join it until
they are set: they are copied from the parent, as runc does.
"""

import os
import time

from . import translate
from .base import FileDriver, read_text, write_value
from ..errors import HostError, StateError

FREEZE_TIMEOUT = 5.0


class V1Driver(FileDriver):
    name = "v1"

    def __init__(self, paths, mounts, remove=None):
        super().__init__(remove)
        self.paths = dict(paths)       # controller or "name=x" -> directory
        self.mounts = dict(mounts)     # controller or "name=x" -> its hierarchy's mount point

    def plan_dirs(self):
        seen, out = set(), []
        for controller, d in sorted(self.paths.items()):
            if d not in seen:
                seen.add(d)
                out.append((d, self.mounts[controller]))
        return out

    def record(self):
        return {"driver": self.name, "paths": self.paths, "mounts": self.mounts,
                **self.common_record(),
                "freezer": self.freezer_file()}

    def freezer_file(self):
        d = self.paths.get("freezer")
        return os.path.join(d, "freezer.state") if d else None

    def create(self):
        super().create()
        cpuset = self.paths.get("cpuset")
        if cpuset:
            _fill_cpuset(cpuset)

    def current_swap(self):
        """memory.memsw.limit_in_bytes now (the memory writes are ordered by it), or None."""
        memory = self.paths.get("memory")
        if not memory:
            return None
        text = read_text(os.path.join(memory, "memory.memsw.limit_in_bytes"), "")
        return int(text) if text.strip().isdigit() else None

    def apply(self, resources, config_devices=(), current=None):
        writes, warnings = translate.v1_writes(resources, self.current_swap(), config_devices)
        self.write_all(writes, self.dir_for, warnings)
        return warnings

    def dir_for(self, controller):
        return self.paths.get(controller) if controller else None

    def pids(self):
        for controller in ("pids", "freezer", "memory", "cpu"):
            if controller in self.paths:
                from .base import read_procs
                return read_procs(self.paths[controller])
        return super().pids()

    # -- freezer
    def can_freeze(self):
        return "freezer" in self.paths

    def frozen(self):
        path = self.freezer_file()
        return bool(path) and read_text(path, "").strip() in ("FROZEN", "FREEZING")

    def freeze(self):
        _freeze_v1(self.freezer_file(), "FROZEN")

    def thaw(self):
        _freeze_v1(self.freezer_file(), "THAWED")

    def stats(self):
        from .stats import v1_stats
        return v1_stats(self.paths)

    def oom_count(self):
        memory = self.paths.get("memory")
        if not memory:
            return None
        fields = _flat_keyed(read_text(os.path.join(memory, "memory.oom_control"), ""))
        return fields.get("oom_kill", fields.get("under_oom"))


def _flat_keyed(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _freeze_v1(path, wanted):
    if not path:
        raise StateError(None, "this host has no freezer cgroup controller: pause and resume "
                         "are not possible")
    end = time.monotonic() + FREEZE_TIMEOUT
    while True:
        write_value(path, wanted)
        if read_text(path, "").strip() == wanted:
            return
        if time.monotonic() > end:
            raise HostError("%s the container: the freezer is still %s after %ds;"
                            % ("freeze" if wanted == "FROZEN" else "thaw",
                               read_text(path, "?").strip(), FREEZE_TIMEOUT), path)
        time.sleep(0.01)


def _fill_cpuset(directory):
    """Copy cpuset.cpus/mems down from the first ancestor that has them."""
    chain = []
    d = directory
    while (not read_text(os.path.join(d, "cpuset.cpus"), "").strip()
           and os.path.exists(os.path.join(os.path.dirname(d), "cpuset.cpus"))):
        chain.append(d)
        d = os.path.dirname(d)
    for d in reversed(chain):
        parent = os.path.dirname(d)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_text(os.path.join(d, name), "").strip():
                write_value(os.path.join(d, name), read_text(os.path.join(parent, name)).strip())
