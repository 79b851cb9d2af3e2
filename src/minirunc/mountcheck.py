"""Mounts over /proc, refused as runc's checkProcMount refuses them.

A fake /proc (a bind of an ordinary tree, a tmpfs), or a mount over a file inside the
real one (/proc/self/attr/*, /proc/sys/...), is the precondition of CVE-2019-16884 (the
runtime writes the AppArmor/SELinux label into a file the config controls, and the
process runs unconfined) and of the /proc tricks behind CVE-2023-27561.  The rules, as in
runc 1.1.5 and later:

- a mount whose destination is /proc must be a procfs: a fresh mount of type ``proc``, or
  a bind whose source is on a procfs;
- a mount whose destination is inside /proc is refused, except over the few files lxcfs
  emulates (``PROC_ALLOWED``, runc's validProcMounts; any source, as runc).

config.py runs these rules on the destinations as written (normalized: ``//proc/./sys``
is ``/proc/sys``), naming ``mounts[N].destination``.  The init runs them again on the
destination as resolved under the rootfs (native/init.c, ``check_proc_dest``), so a
symlink in the rootfs cannot lead a mount into /proc, and checks a bind onto /proc with
statfs (PROC_SUPER_MAGIC) on the source it actually mounts.

Pure, except that a bind onto /proc reads /proc/self/mountinfo (or the text given) to
find the filesystem of its source.
"""

import posixpath

from minirunc.errors import ConfigError, shown

# runc's validProcMounts (libcontainer/rootfs_linux.go); native/init.c has the same list.
PROC_ALLOWED = (
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
)


def normalize(path):
    """``//proc/./sys/`` -> ``/proc/sys``: the path the kernel would reach (config.py has
    already refused ".." components)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def proc_place(dest):
    """Where a normalized destination lies: "proc" (/proc itself), "allowed" (a file of
    PROC_ALLOWED), "inside" (anything else under /proc) or "outside"."""
    if dest == "/proc":
        return "proc"
    if dest.startswith("/proc/"):
        return "allowed" if dest in PROC_ALLOWED else "inside"
    return "outside"


def check_mounts(mounts, mountinfo=None):
    """Raise ConfigError for the first mount of ``mounts`` (config.Mount) runc would refuse."""
    for mount in mounts:
        check_mount(mount, mountinfo)


def check_mount(mount, mountinfo=None):
    dest = normalize(mount.destination)
    where = "mounts[%d].destination" % mount.index
    place = proc_place(dest)
    if place == "inside":
        raise ConfigError(where, '"%s" cannot be mounted because it is inside /proc (only '
                          "/proc/cpuinfo, /proc/meminfo, /proc/uptime and the other files "
                          "lxcfs emulates may be mounted over)" % shown(dest, 200))
    if place != "proc":
        return
    if mount.is_bind:
        problem = bind_source_problem(mount.host_source, mountinfo)
        if problem:
            raise ConfigError(where, '"/proc" cannot be mounted because it is not of type '
                              "proc: %s (bind a procfs, or use type proc)" % problem)
    elif mount.type != "proc":
        raise ConfigError(where, '"/proc" cannot be mounted because it is not of type proc '
                          '(type is "%s"; use type proc)' % shown(mount.type, 200))


def bind_source_problem(host_source, mountinfo=None):
    """Why the bind source ``host_source`` is not on a procfs, or "" when it is (or when
    mountinfo does not say: the init checks it with statfs anyway)."""
    import os
    from minirunc.procfs import parse_mountinfo, read_text

    if mountinfo is None:
        mountinfo = read_text("/proc/self/mountinfo")
    fstype = fstype_of(os.path.realpath(host_source), parse_mountinfo(mountinfo))
    if fstype is None or fstype == "proc":
        return ""
    return "the bind source %s is on %s, not on a procfs" % (shown(host_source, 200), fstype)


def fstype_of(path, mounts):
    """The fstype of the mount holding ``path`` (absolute, resolved), from parse_mountinfo
    rows; the deepest mount point wins, and the later of two on one point (it is on top)."""
    best, best_len = None, -1
    for _root, point, fstype, _options in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best_len:
            best, best_len = fstype, len(point)
    return best
