"""The oldest kernel minirunc runs on (4.14), and the newer features a config may ask for.

Everything newer than 4.14 that the runtime uses has a fallback (docs/design.md, "Older
kernels") except idmapped mounts and the recursive mount options (``rro``, ``rnosuid``...):
both need mount_setattr (Linux 5.12).  They are probed only when a mount asks for them
(the syscall called with arguments it refuses: ENOSYS means the kernel lacks it) and then
refused in one line naming the mount, before anything is set up; so is a time namespace
(5.6) where /proc/self/ns/time is missing.  The release check runs
at create/run/exec/restore only; it is one uname.
"""

import os

from .errors import ConfigError, HostError

FLOOR = (4, 14)
SYS_MOUNT_SETATTR = 442   # x86_64


def release(text=None):
    """(major, minor) of the running kernel (or of ``text``), None if unreadable."""
    text = os.uname().release if text is None else text
    try:
        major, minor = text.split(".")[:2]
        digits = ""
        for ch in minor:
            if not ch.isdigit():
                break
            digits += ch
        return int(major), int(digits)
    except ValueError:
        return None


def check_release(text=None):
    """One line when the kernel is older than the floor."""
    found = release(text)
    if found is not None and found < FLOOR:
        raise HostError("this kernel is Linux %s; minirunc needs Linux %d.%d or newer"
                        % (text or os.uname().release, FLOOR[0], FLOOR[1]))


def check_mounts(config):
    """Refuse the mounts that need mount_setattr when the kernel lacks it."""
    needs = [m for m in config.mounts if m.idmapped or m.opts.attr_set or m.opts.attr_clr]
    if not needs or not _missing(SYS_MOUNT_SETATTR):
        return
    from .mountopts import RECURSIVE
    mount = needs[0]
    if mount.idmapped:
        raise ConfigError("mounts[%d]" % mount.index, "an idmapped mount (of %s) needs Linux "
                          "5.12 (mount_setattr), which this kernel lacks: drop uidMappings/"
                          "gidMappings and idmap/ridmap, or use a newer kernel"
                          % mount.destination)
    words = [w for w in mount.options if w in RECURSIVE]
    raise ConfigError("mounts[%d].options" % mount.index, "%s (recursive mount attributes, on "
                      "%s) need Linux 5.12 (mount_setattr), which this kernel lacks: use the "
                      "plain option (ro, nosuid...) or a newer kernel"
                      % (", ".join('"%s"' % w for w in words), mount.destination))


def check_namespaces(config):
    """A time namespace (Linux 5.6) on a kernel without one: say so, not clone's EINVAL."""
    linux = config.linux
    if linux.namespace("time") is None or os.path.exists("/proc/self/ns/time"):
        return
    index = [ns.type for ns in linux.namespaces].index("time")
    raise ConfigError("linux.namespaces[%d]" % index, "a time namespace needs Linux 5.6, "
                      "which this kernel is older than: leave it out")


def _missing(nr):
    from . import native
    return native.syscall_missing(nr)
