"""Hybrid: the v1 hierarchies plus the cgroup2 tree (usually /sys/fs/cgroup/unified).

As runc does, the container also gets a directory in the v2 tree and joins it.  Resources
go to the v1 controllers; a controller the v1 side lacks but the v2 tree offers (hugetlb on
some hosts) is enabled there and written in its v2 form.  ``unified`` keys are refused, as
runc refuses them on any host with v1 hierarchies (validate.check_unified_allowed).
Device rules go to the v1 devices controller (as runc does); only a host without it gets
the cgroup v2 eBPF device program on the container's cgroup2 directory.
"""

import os

from . import translate
from ..errors import ConfigError
from .v1 import V1Driver
from .v2 import (available, device_program, enable_controllers, freeze_v2,
                 load_device_program, v2_frozen)


class HybridDriver(V1Driver):
    name = "hybrid"

    def __init__(self, paths, unified, mount, mounts=None, remove=None):
        super().__init__(paths, mounts or {}, remove)
        self.unified = unified
        self.mount = mount

    def plan_dirs(self):
        return super().plan_dirs() + [(self.unified, self.mount)]

    def record(self):
        record = super().record()
        record.update(unified=self.unified, mount=self.mount,
                      freezer=self.freezer_file() or os.path.join(self.unified, "cgroup.freeze"))
        return record

    def apply(self, resources, config_devices=(), current=None):
        writes, warnings = translate.v1_writes(resources, self.current_swap(), config_devices)
        devices = None
        if "devices" not in self.paths:
            # No v1 devices hierarchy: the cgroup2 directory gets the eBPF program instead.
            writes = [w for w in writes if w[0] != "devices"]
            devices = device_program(resources, config_devices)
        offered = available(self.mount)
        v2_by_key = {}
        needs_v2 = any(c not in self.paths for c, _, _, _, _ in writes)
        if needs_v2:
            for w in translate.v2_writes(resources)[0]:
                v2_by_key.setdefault(w[3], []).append(w)
        routed, enable = [], set()
        for w in writes:
            controller, files, value, key, optional = w
            if controller in self.paths:
                routed.append(w)
                continue
            if controller == "":
                enable.add(files[0].split(".")[0])
                routed.append(w)
                continue
            v2 = [x for x in v2_by_key.get(key, ()) if x[0] in offered]
            if not v2:
                raise ConfigError(key, "this host has no %s cgroup controller (neither in v1 "
                                  "nor in the cgroup2 tree %s)" % (controller, self.mount))
            for x in v2:
                if x not in routed:
                    enable.add(x[0])
                    routed.append(("",) + x[1:])
        if enable:
            enable_controllers(self.unified, self.mount, enable)
        self.write_all(routed, self.dir_for, warnings)
        if devices:
            load_device_program(self.unified, devices)
        return warnings

    def dir_for(self, controller):
        return self.paths.get(controller) if controller else self.unified

    def can_freeze(self):
        return "freezer" in self.paths or os.path.exists(os.path.join(self.unified,
                                                                      "cgroup.freeze"))

    def frozen(self):
        if "freezer" in self.paths:
            return super().frozen()
        return v2_frozen(self.unified)

    def freeze(self):
        if "freezer" in self.paths:
            return super().freeze()
        freeze_v2(self.unified, True)

    def thaw(self):
        if "freezer" in self.paths:
            return super().thaw()
        freeze_v2(self.unified, False)

    def stats(self):
        from .stats import v1_stats, v2_hugetlb
        stats = v1_stats(self.paths)
        if "hugetlb" not in self.paths and "hugetlb" in available(self.unified):
            stats["hugetlb"] = v2_hugetlb(self.unified)
        return stats
