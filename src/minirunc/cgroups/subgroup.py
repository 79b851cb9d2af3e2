"""`exec --cgroup [<controller>[,<controller>]:]<path>`: put the process into existing
sub-cgroups of the container's cgroups instead of the container's own (runc 1.1).

A path without a controller applies to every hierarchy (only one such argument is
allowed); ``ctrl:path`` to that v1 controller.  Paths are relative to the container's
cgroup and must already exist: exec never creates or removes cgroups."""

import os

from minirunc.cgroups.base import join
from minirunc.errors import UsageError

UNIFIED = ""   # the key of the cgroup2 directory (v2, or hybrid's unified tree)


def parse(specs):
    """{controller or "": relative path} from the --cgroup arguments."""
    paths = {}
    for spec in specs:
        controllers, sep, path = spec.rpartition(":")
        if not sep:
            if len(specs) != 1:
                raise UsageError("--cgroup %s names no controller; only a single such --cgroup "
                                 "is allowed (or use CONTROLLER:PATH for each)" % spec)
            controllers = UNIFIED
        rel = path.strip("/")
        if not rel or ".." in rel.split("/"):
            # runc's words ("... is not a sub cgroup path"), then ours
            raise UsageError("--cgroup %s: %s is not a sub cgroup path (it must name a "
                             "sub-cgroup inside the container's cgroup, without \"..\")"
                             % (spec, path))
        for controller in controllers.split(",") if controllers else [UNIFIED]:
            paths[controller] = rel
    return paths


def target_dirs(record, specs):
    """The directories the exec'd process joins, from the container's state.json cgroup
    ``record`` and the --cgroup arguments."""
    wanted = parse(specs)
    record = record or {}
    own = dict(record.get("paths") or {})
    if record.get("unified"):
        own[UNIFIED] = record["unified"]
    if not own:
        raise UsageError("--cgroup: the container has no cgroups (no cgroup filesystem is "
                         "mounted on this host)")
    unknown = sorted(c for c in wanted if c != UNIFIED and c not in own)
    if unknown:
        raise UsageError("--cgroup: controller %s is not one of the container's (%s)"
                         % (", ".join(unknown), ", ".join(sorted(c for c in own if c))
                            or "cgroup v2 only: give the path without a controller"))
    default = wanted.get(UNIFIED)
    dirs = []
    for controller, directory in sorted(own.items()):
        rel = wanted.get(controller, default)
        target = os.path.join(directory, rel) if rel else directory
        if target not in dirs:
            dirs.append(target)
        if rel and not os.path.isdir(target):
            raise UsageError("--cgroup: %s does not exist (exec joins an existing sub-cgroup; "
                             "create it first)" % target)
    return dirs


class SubgroupJoiner:
    """What exec's launch needs of a driver: dirs and add_pid, the chosen directories."""

    def __init__(self, dirs):
        self.targets = dirs

    def dirs(self):
        return self.targets

    def add_pid(self, pid, skip=()):
        join([d for d in self.targets if d not in skip], pid)
