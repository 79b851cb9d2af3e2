"""cgroup v2: one directory in the unified tree.

Controllers reach a cgroup only when every ancestor lists them in cgroup.subtree_control:
``create`` enables what each level offers, as runc does (a level that holds processes
refuses, which is why a relative cgroupsPath goes under the parent of our own cgroup).

v2 has no devices controller: linux.resources.devices becomes an eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE, built, loaded and attached by the native module
(``native.device_filter``) from the rules runc's devicefilter would use (``translate.
device_filter_rules``: runc's v1 emulation, then a default action and exceptions).
"""

import os
import time

from . import translate
from .base import FileDriver, read_procs, read_text, write_value
from ..errors import HostError

FREEZE_TIMEOUT = 5.0


def available(directory):
    return read_text(os.path.join(directory, "cgroup.controllers"), "").split()


def enable_controllers(directory, mountpoint, wanted=None):
    """Enable controllers (all that are offered, or ``wanted``) from the mount point down to
    the parent of ``directory``.  Refusals are left for the writes to report."""
    levels = []
    d = os.path.dirname(directory)
    while len(d) >= len(mountpoint):
        levels.append(d)
        if d == mountpoint:
            break
        d = os.path.dirname(d)
    for level in reversed(levels):
        offered = available(level)
        names = [c for c in offered if wanted is None or c in wanted]
        enabled = read_text(os.path.join(level, "cgroup.subtree_control"), "").split()
        names = [c for c in names if c not in enabled]
        if not names:
            continue
        path = os.path.join(level, "cgroup.subtree_control")
        try:
            write_value(path, " ".join("+" + c for c in names))
        except HostError:
            for c in names:
                try:
                    write_value(path, "+" + c)
                except HostError:
                    pass


def freeze_v2(directory, on):
    write_value(os.path.join(directory, "cgroup.freeze"), "1" if on else "0")
    end = time.monotonic() + FREEZE_TIMEOUT
    want = "frozen %d" % (1 if on else 0)
    while want not in read_text(os.path.join(directory, "cgroup.events"), "").splitlines():
        if time.monotonic() > end:
            raise HostError("%s the container: cgroup.events does not say %r after %ds;"
                            % ("freeze" if on else "thaw", want, FREEZE_TIMEOUT), directory)
        time.sleep(0.01)


def v2_frozen(directory):
    return read_text(os.path.join(directory, "cgroup.freeze"), "0").strip() == "1"


def oom_count_v2(directory):
    for line in read_text(os.path.join(directory, "memory.events"), "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "oom_kill":
            return int(parts[1])
    return None


def device_program(resources, config_devices=()):
    """(default_allow, rules) of the eBPF device program for linux.resources.devices, or None
    when the config has no device rules (as on v1, nothing is restricted then)."""
    if not resources.get("devices"):
        return None
    return translate.device_filter_rules(resources["devices"], config_devices)


def load_device_program(directory, program):
    """Attach the program to the cgroup (replacing ours from before, for `update`)."""
    from .. import native
    default_allow, rules = program
    native.device_filter(directory, rules, default_allow)


class V2Driver(FileDriver):
    name = "v2"

    def __init__(self, unified, mount, remove=None):
        super().__init__(remove)
        self.unified = unified
        self.mount = mount

    def plan_dirs(self):
        return [(self.unified, self.mount)]

    def record(self):
        return {"driver": self.name, "unified": self.unified, "mount": self.mount,
                **self.common_record(), "freezer": os.path.join(self.unified, "cgroup.freeze")}

    def create(self):
        enable_controllers(self.unified, self.mount)
        super().create()

    def apply(self, resources, config_devices=(), current=None):
        writes, warnings = translate.v2_writes(resources)
        writes = translate.v2_fix_bfq(
            writes, lambda name: os.path.exists(os.path.join(self.unified, name)))
        devices = device_program(resources, config_devices)   # a bad rule stops us here
        offered = available(self.unified)
        self.write_all(writes, lambda c: self.unified if c in offered else None, warnings)
        if devices:
            load_device_program(self.unified, devices)
        return warnings

    def pids(self):
        return read_procs(self.unified)

    def can_freeze(self):
        return os.path.exists(os.path.join(self.unified, "cgroup.freeze"))

    def frozen(self):
        return v2_frozen(self.unified)

    def freeze(self):
        freeze_v2(self.unified, True)

    def thaw(self):
        freeze_v2(self.unified, False)

    def stats(self):
        from .stats import v2_stats
        return v2_stats(self.unified)

    def oom_count(self):
        return oom_count_v2(self.unified)
