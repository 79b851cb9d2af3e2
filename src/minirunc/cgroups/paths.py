"""The host's cgroup layout and the directories a container's cgroup gets.

Pure: every function takes the texts of /proc/self/mountinfo and /proc/self/cgroup
(read from the host only when not given), so tests can describe any host.

``linux.cgroupsPath`` as runc reads it with its cgroupfs driver:
- absolute (``/a/b``): that path under each hierarchy's mount point;
- relative (``a/b``): under the runtime's own cgroup of each hierarchy (on pure v2, under
  the parent of that cgroup, as runc does: a cgroup holding processes cannot delegate);
- empty: the container id, relative (runc's default: ``<own cgroup>/<id>``);
- ``slice:prefix:name`` (systemd's form, or any path with ``--systemd-cgroup``): mapped to
  the cgroupfs path systemd would use, ``/slice.slice/prefix-name.scope``, with a notice:
  minirunc does not talk to systemd.
A ``..`` component is refused: it could leave the hierarchy.
"""

import os

from ..errors import ConfigError
from ..procfs import parse_cgroup, parse_mountinfo, read_text

CONTROLLERS_V1 = frozenset((
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
    "net_cls", "net_prio", "perf_event", "rdma", "misc"))
SYSTEMD_DEFAULT_SLICE = "system.slice"
SYSTEMD_PREFIX = "minirunc"
WHERE = "linux.cgroupsPath"


def cgroup_mounts(mountinfo_text):
    """[(mount root, mount point, fstype, super options)] of the cgroup/cgroup2 mounts."""
    return parse_mountinfo(mountinfo_text, ("cgroup", "cgroup2"))


class Layout:
    """What the host has mounted: v1 hierarchies, the cgroup2 mount, our own cgroups."""

    __slots__ = ("v1", "unified", "own")

    def __init__(self, v1, unified, own):
        self.v1 = v1            # controller or "name=x" -> (mount point, mount root)
        self.unified = unified  # (mount point, mount root) of cgroup2, or None
        self.own = own          # parse_cgroup of the runtime itself

    @property
    def mode(self):
        if self.v1:
            return "hybrid" if self.unified else "v1"
        return "v2" if self.unified else "none"


def host_layout(mountinfo_text=None, proc_cgroup_text=None):
    if mountinfo_text is None:
        mountinfo_text = read_text("/proc/self/mountinfo")
    if proc_cgroup_text is None:
        proc_cgroup_text = read_text("/proc/self/cgroup")
    v1, unified = {}, None
    for root, mountpoint, fstype, options in cgroup_mounts(mountinfo_text):
        if fstype == "cgroup2":
            # Prefer the canonical places when cgroup2 is mounted more than once.
            if unified is None or mountpoint in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                if unified is None or unified[0] != "/sys/fs/cgroup":
                    unified = (mountpoint, root)
            continue
        for word in options.split(","):
            if (word in CONTROLLERS_V1 or word.startswith("name=")) and word not in v1:
                v1[word] = (mountpoint, root)
    return Layout(v1, unified, parse_cgroup(proc_cgroup_text))


# ------------------------------------------------------------ cgroupsPath

def check_cgroups_path(value):
    """Config-time check of linux.cgroupsPath (a ConfigError for a ".." component)."""
    if "\0" in value:
        raise ConfigError(WHERE, "must not contain a NUL character")
    for part in value.replace(":", "/").split("/"):
        if part == "..":
            raise ConfigError(WHERE, '"%s": ".." is not allowed (it could leave the cgroup '
                              "hierarchy)" % value)
    return value


def expand_slice(name):
    """systemd's slice nesting: ``a-b.slice`` -> ``/a.slice/a-b.slice``; ``-.slice`` -> ``/``."""
    if not name.endswith(".slice") or "/" in name:
        raise ConfigError(WHERE, '"%s" is not a systemd slice name (NAME.slice)' % name)
    stem = name[:-len(".slice")]
    if stem == "-":
        return "/"
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise ConfigError(WHERE, 'invalid systemd slice name "%s"' % name)
    parts = stem.split("-")
    return "/" + "/".join("-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def is_systemd_form(value):
    return value.count(":") == 2 and not value.startswith("/")


def systemd_path(value, container_id):
    """``slice:prefix:name`` (runc's systemd form) -> the cgroupfs path systemd would use."""
    if not value:
        return "/%s/%s-%s.scope" % (SYSTEMD_DEFAULT_SLICE, SYSTEMD_PREFIX, container_id)
    parts = value.split(":")
    if len(parts) != 3:
        raise ConfigError(WHERE, '"%s": with --systemd-cgroup the form is slice:prefix:name '
                          "(for example system.slice:minirunc:%s)" % (value, container_id))
    slice_name, prefix, name = parts
    parent = expand_slice(slice_name or SYSTEMD_DEFAULT_SLICE)
    if not name:
        raise ConfigError(WHERE, '"%s": the name part of slice:prefix:name is empty' % value)
    if name.endswith(".slice"):
        unit = name
    else:
        unit = ("%s-%s.scope" % (prefix, name)) if prefix else name + ".scope"
    return os.path.join(parent, unit)


def inner_path(cgroups_path, container_id, systemd=False):
    """(path, notice): an absolute path, or a relative one (under our own cgroup)."""
    check_cgroups_path(cgroups_path)
    if systemd or is_systemd_form(cgroups_path):
        path = systemd_path(cgroups_path, container_id)
        return path, ("cgroups: minirunc has no systemd driver; %s is used as the cgroupfs path "
                      "%s" % ('--systemd-cgroup' if systemd and not cgroups_path
                              else '"%s"' % cgroups_path, path))
    if not cgroups_path:
        return container_id, None
    if cgroups_path.startswith("/"):
        return os.path.normpath(cgroups_path), None
    return os.path.normpath(cgroups_path), None


def controller_dir(mountpoint, mount_root, own, inner, parent_of_own=False):
    """The host directory of the container's cgroup in one hierarchy."""
    if inner.startswith("/"):
        base = mountpoint
    else:
        rel = "."
        if own is not None and (own == mount_root or own.startswith(mount_root.rstrip("/") + "/")):
            rel = os.path.relpath(own, mount_root)
        if parent_of_own and rel != ".":
            rel = os.path.dirname(rel) or "."
        base = os.path.normpath(os.path.join(mountpoint, rel))
    path = os.path.normpath(os.path.join(base, inner.lstrip("/")))
    if path == mountpoint or not path.startswith(mountpoint.rstrip("/") + "/"):
        raise ConfigError(WHERE, '"%s" names the root of the hierarchy %s or a path outside it'
                          % (inner, mountpoint))
    return path


def container_dirs(layout, inner):
    """(v1 dirs {controller: dir}, unified dir or None) for the container's cgroup."""
    v1 = {}
    for controller, (mountpoint, root) in layout.v1.items():
        v1[controller] = controller_dir(mountpoint, root, layout.own.get(controller), inner)
    unified = None
    if layout.unified:
        mountpoint, root = layout.unified
        unified = controller_dir(mountpoint, root, layout.own.get(""), inner,
                                 parent_of_own=layout.mode == "v2")
    return v1, unified


def choose_driver(linux, container_id, systemd=False, mountinfo=None, proc_cgroup=None):
    """(driver, notices) for a new container on this host."""
    layout = host_layout(mountinfo, proc_cgroup)
    mode = layout.mode
    if mode == "none":
        from .none import NoneDriver
        return NoneDriver(), []
    if linux and mode in ("v1", "hybrid"):
        from .validate import check_unified_allowed
        check_unified_allowed(getattr(linux, "resources", None), mode)  # before any mkdir
    inner, notice = inner_path(linux.cgroups_path if linux else "", container_id, systemd)
    notices = [notice] if notice else []
    v1, unified = container_dirs(layout, inner)
    if mode == "v2":
        from .v2 import V2Driver
        driver = V2Driver(unified, layout.unified[0])
    else:
        mounts = {controller: mount[0] for controller, mount in layout.v1.items()}
        if mode == "v1":
            from .v1 import V1Driver
            driver = V1Driver(v1, mounts)
        else:
            from .hybrid import HybridDriver
            driver = HybridDriver(v1, unified, layout.unified[0], mounts)
    driver.home = own_dirs(layout)
    return driver, notices


def own_dirs(layout):
    """The runtime's own cgroup directories (to come back to after a visit)."""
    homes = []
    for controller, (mountpoint, root) in sorted(layout.v1.items()):
        homes.append(_own_dir(mountpoint, root, layout.own.get(controller)))
    if layout.unified:
        homes.append(_own_dir(layout.unified[0], layout.unified[1], layout.own.get("")))
    return sorted(set(h for h in homes if h))


def _own_dir(mountpoint, root, own):
    if own is None:
        return None
    if own != root and not own.startswith(root.rstrip("/") + "/"):
        return None
    return os.path.normpath(os.path.join(mountpoint, os.path.relpath(own, root)))
