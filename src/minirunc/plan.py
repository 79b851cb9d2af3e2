"""From a validated Config to a Plan: the records the C init helper executes.

Pure: the only contact with the host is stat of a few host paths and reading
/proc/self/{mountinfo,cgroup} when a ``cgroup`` mount has to be translated (both
can be passed in, for tests).  Records come in execution order; docs/design.md
describes each one and planformat.py their wire format.
"""

import os

from minirunc import caps
from minirunc import mountopts
from minirunc import planformat
from minirunc.procfs import parse_cgroup, parse_mountinfo, read_text
from minirunc.config import SECCOMP_ARCHES, SECCOMP_FLAGS, sysctl_file

CLONE_FLAGS = {
    "pid": 0x20000000,
    "network": 0x40000000,
    "mount": 0x00020000,
    "ipc": 0x08000000,
    "uts": 0x04000000,
    "user": 0x10000000,
    "cgroup": 0x02000000,
    "time": 0x00000080,
}

DEFAULT_UMASK = 0o022
KEY_USR_SEARCH = 0x00080000
KEY_OTH_SEARCH = 0x00000008
EPERM = 1

# libseccomp's SCMP_ACT_* values; ERRNO and TRACE carry a 16-bit number.
SECCOMP_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7ff00000,
    "SCMP_ACT_LOG": 0x7ffc0000,
    "SCMP_ACT_ALLOW": 0x7fff0000,
}
SECCOMP_OPS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# (path, major, minor): runc's default devices, char, mode 0666, owned by root.
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

# HOOK stages: where the init runs a container-side hook.
HOOK_STAGES = {"createContainer": 0, "startContainer": 1}
# Hooks the runtime runs while the init waits after its mounts: they make the `h` sync.
HOOKS_BEFORE_PIVOT = ("prestart", "createRuntime", "createContainer")

# The tmpfs runc puts under a cgroup v1 mount.
CGROUP_TMPFS_FLAGS = mountopts.MS_NOEXEC | mountopts.MS_NOSUID | mountopts.MS_NODEV


class Plan:
    """The records plus what the Python side itself needs (id maps, terminal)."""

    __slots__ = ("records", "new_userns", "uid_mappings", "gid_mappings", "terminal",
                 "warnings", "notes", "clone_flags", "joined_namespaces", "preserve_fds")

    def __init__(self):
        self.records = []
        self.new_userns = False
        self.uid_mappings = []      # (containerID, hostID, size)
        self.gid_mappings = []
        self.terminal = False
        self.warnings = []
        self.notes = []             # for --debug: harmless differences (runc is silent too)
        self.clone_flags = 0
        self.joined_namespaces = {}  # type -> path, for namespaces joined with setns
        self.preserve_fds = 0

    def add(self, name, *values):
        self.records.append((name, values))

    def add_env(self, entry):
        """Add an ENV record ("K=V") after the others, before the ARG records."""
        names = self.names()
        at = names.index("ARG") if "ARG" in names else len(names)
        self.records.insert(at, ("ENV", (entry,)))

    def add_session_keyring(self, container_id, user_namespace):
        """A session keyring of the container's own instead of the caller's, named so that
        `exec` joins the same one (runc's `_ses.<id>`); searchable by the container's
        root: 'other' search inside a user namespace, 'user' search without one."""
        self.add("SESSION_KEYRING", "_ses." + container_id,
                 KEY_OTH_SEARCH if user_namespace else KEY_USR_SEARCH)

    def encode(self):
        return planformat.encode(self.records)

    def names(self):
        """The record names in order (handy in tests and --debug)."""
        return [name for name, _ in self.records]


def build_plan(config, no_pivot=False, preserve_fds=0, mountinfo=None, proc_cgroup=None,
               cgroup_dirs=None):
    """The Plan for ``config``.

    ``mountinfo``/``proc_cgroup`` are the texts of /proc/self/mountinfo and
    /proc/self/cgroup; they are read from the host when None and needed.
    ``cgroup_dirs``: {controller or "" (cgroup2): host directory} of the container's own
    cgroups (the driver's, from cgroups/paths.py), which a cgroup mount binds.
    """
    plan = Plan()
    plan.warnings.extend(config.warnings)
    plan.terminal = config.process.terminal
    plan.preserve_fds = preserve_fds
    host = _HostText(mountinfo, proc_cgroup)
    _add_namespaces(plan, config.linux)
    if config.hostname:
        plan.add("HOSTNAME", config.hostname)
    if config.domainname:
        plan.add("DOMAINNAME", config.domainname)
    _add_rootfs(plan, config, no_pivot)
    _add_mounts(plan, config, host, cgroup_dirs)
    _add_devices(plan, config)
    for key, value in config.linux.sysctl.items():
        plan.add("SYSCTL", sysctl_file(key), value)
    _add_hooks(plan, config.hooks)
    _add_process_setup(plan, config, preserve_fds)
    return plan


def _add_hooks(plan, hooks):
    """The container-side hooks, run by the init itself: createContainer after the mounts
    (paths resolve on the host, before pivot_root), startContainer after `start` (paths
    resolve in the container).  Without ``env`` they get an empty environment, as runc's
    init gives them; the runtime-side hooks are run by hooks.py."""
    if any(kind in hooks for kind in HOOKS_BEFORE_PIVOT):
        plan.add("HOOK_SYNC", 1)
    for kind, stage in HOOK_STAGES.items():
        for hook in hooks.get(kind, ()):
            plan.add("HOOK", stage, hook.where, hook.path, hook.timeout)
            for arg in hook.args:
                plan.add("HOOK_ARG", arg)
            for entry in hook.env or ():
                plan.add("HOOK_ENV", entry)


# ------------------------------------------------------------------- exec

# The order the init joins namespaces in (user first: it grants the rights over the rest;
# mount last: the paths of the others may not be reachable from the container's mounts).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")
# linux.namespaces type -> the name of its file in /proc/<pid>/ns
NS_FILES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
            "cgroup": "cgroup", "time": "time", "mount": "mnt"}


def build_exec_plan(process, seccomp, namespaces, preserve_fds=0, shared_root=None):
    """The Plan of `exec`: join ``namespaces`` ({type: path}, those of the container's init
    that differ from the runtime's own), then set up ``process`` (a config.Process) as
    create would, with the container's ``seccomp`` (or None).  No rootfs, mounts, devices,
    sysctls or new namespaces: the container has them already.  ``shared_root``: the
    rootfs of a container that shares the runtime's mount namespace (none listed); the
    process is chrooted into it as the init was (setns gives no root then)."""
    plan = Plan()
    if shared_root and "mount" not in namespaces:
        plan.add("ROOTFS", shared_root, 0, 0, 0)
        plan.add("SHARED_MOUNT_NS", 1)
    plan.terminal = process.terminal
    plan.preserve_fds = preserve_fds
    for ns_type in JOIN_ORDER:
        path = namespaces.get(ns_type)
        if path:
            plan.add("NS_JOIN", CLONE_FLAGS[ns_type], path)
            plan.joined_namespaces[ns_type] = path
    unknown = set(namespaces) - set(JOIN_ORDER)
    if unknown:
        raise ValueError("unknown namespace type(s): %s" % ", ".join(sorted(unknown)))
    if process.oom_score_adj is not None:
        plan.add("OOM_SCORE_ADJ", process.oom_score_adj)
    _add_process(plan, process, seccomp, preserve_fds)
    return plan


# ------------------------------------------------------------- namespaces

def _add_namespaces(plan, linux):
    # Join the user namespace first: it grants the rights over the others.
    joined = sorted((ns for ns in linux.namespaces if ns.path), key=lambda ns: ns.type != "user")
    for ns in joined:
        plan.add("NS_JOIN", CLONE_FLAGS[ns.type], ns.path)
        plan.joined_namespaces[ns.type] = ns.path
    for ns in linux.namespaces:
        if not ns.path:
            plan.clone_flags |= CLONE_FLAGS[ns.type]
    plan.add("NS_NEW", plan.clone_flags)
    for clock, (secs, nanosecs) in linux.time_offsets.items():
        plan.add("TIME_OFFSET", clock, secs, nanosecs)
    user = linux.namespace("user")
    plan.new_userns = user is not None and not user.path
    if plan.new_userns:
        plan.uid_mappings = [m.as_tuple() for m in linux.uid_mappings]
        plan.gid_mappings = [m.as_tuple() for m in linux.gid_mappings]


def _add_rootfs(plan, config, no_pivot):
    propagation = mountopts.PROPAGATION.get(config.linux.rootfs_propagation, 0)
    if no_pivot and propagation & mountopts.MS_PRIVATE:
        from minirunc.errors import ConfigError
        raise ConfigError("linux.rootfsPropagation", "rootfsPropagation of [r]private is not "
                          "safe without pivot_root (--no-pivot was given)")
    plan.add("ROOTFS", config.root.host_path, int(config.root.readonly), propagation,
             int(bool(no_pivot)))
    if config.linux.namespace("mount") is None:
        plan.add("SHARED_MOUNT_NS", 1)


# ------------------------------------------------------------------ mounts

def _add_mounts(plan, config, host, cgroup_dirs=None):
    cgroupns = bool(plan.clone_flags & CLONE_FLAGS["cgroup"])
    for mount in config.mounts:
        if mount.type == "cgroup" and not mount.is_bind:
            records, warnings = cgroup_mount_records(
                mount, host.mountinfo(), host.proc_cgroup(), cgroupns, plan.new_userns,
                cgroup_dirs)
            plan.records.extend(records)
            plan.warnings.extend(warnings)
        else:
            plan.records.append(mount_record(mount, _mount_context(config)))
            if mount.opts.copyup:
                plan.add("MOUNT_COPYUP", 1)
            if mount.idmapped:
                plan.add("MOUNT_IDMAP", int(mount.idmap_recursive),
                         map_text(m.as_tuple() for m in mount.uid_mappings),
                         map_text(m.as_tuple() for m in mount.gid_mappings))


def map_text(mappings):
    """uid_map/gid_map text from (containerID, hostID, size) tuples, one line each."""
    return "".join("%d %d %d\n" % tuple(m) for m in mappings)


def _mount_context(config):
    """linux.mountLabel as a context= option, when SELinux is active (lsm.py)."""
    if not config.linux.mount_label:
        return ""
    from minirunc import lsm
    return lsm.mount_context(config.linux.mount_label)


def mount_record(mount, context=""):
    """The MOUNT record of one config mount (not a cgroup one); ``context`` is the SELinux
    context= option of linux.mountLabel, added to the mounts runc labels."""
    opts = mount.opts
    data = ",".join(opts.data)
    if context and not mount.is_bind:
        from minirunc.lsm import with_context
        data = with_context(mount.type, data, context)
    if mount.is_bind:
        return ("MOUNT", (1, mount.host_source, mount.destination, "bind", opts.flags,
                          opts.propagation, opts.attr_set, opts.attr_clr, data,
                          0 if mount.source_is_dir else 1))
    return ("MOUNT", (0, mount.source, mount.destination, mount.type, opts.flags,
                      opts.propagation, opts.attr_set, opts.attr_clr, data, 0))


class _HostText:
    """The host's /proc texts, read once and only when a cgroup mount needs them."""

    __slots__ = ("_mountinfo", "_cgroup")

    def __init__(self, mountinfo, proc_cgroup):
        self._mountinfo = mountinfo
        self._cgroup = proc_cgroup

    def mountinfo(self):
        if self._mountinfo is None:
            self._mountinfo = read_text("/proc/self/mountinfo")
        return self._mountinfo

    def proc_cgroup(self):
        if self._cgroup is None:
            self._cgroup = read_text("/proc/self/cgroup")
        return self._cgroup


def _v1_subsystems(super_options):
    return [o for o in super_options.split(",")
            if o in mountopts.KNOWN_DATA_WORDS["cgroup"] - {"all", "none", "noprefix", "xattr",
                                                           "clone_children", "cpuset_v2_mode"}
            or o.startswith("name=")]


def _join(base, rel):
    return os.path.normpath(os.path.join(base, rel.lstrip("/")))


def cgroup_mount_records(mount, mountinfo_text, cgroup_text, cgroupns=False, new_userns=False,
                         container_dirs=None):
    """Translate a ``cgroup`` mount the way runc does; returns (records, warnings).

    cgroup2 at /sys/fs/cgroup on the host: one cgroup2 mount (in a new user
    namespace without a cgroup namespace the kernel refuses that, so bind the
    container's cgroup directory instead, runc's fallback).  Otherwise (v1 or
    hybrid): a tmpfs at the destination, then per v1 hierarchy a read-only rbind
    of the container's own cgroup directory in it, as runc does (or, in a new
    cgroup namespace, a fresh cgroup mount of that hierarchy), again under each
    name of co-mounted controllers (runc makes symlinks), and finally the tmpfs
    remounted with the mount's flags (read-only) like runc.

    ``container_dirs``: {controller or "": host directory} of the container's cgroups
    (they exist before the init mounts); without it (a plan built apart from a
    container), the runtime's own cgroup of each hierarchy is bound.
    """
    opts = mount.opts
    dest = os.path.normpath(mount.destination)
    mounts = parse_mountinfo(mountinfo_text)
    own = parse_cgroup(cgroup_text)
    flags = opts.flags & ~(mountopts.MS_BIND | mountopts.MS_REC)
    if any(m[1] == "/sys/fs/cgroup" and m[2] == "cgroup2" for m in mounts):
        if new_userns and not cgroupns:
            source = (container_dirs or {}).get("") or _join("/sys/fs/cgroup", own.get("", "/"))
            bind = flags | mountopts.MS_BIND | mountopts.MS_REC
            return [("MOUNT", (1, source, dest, "bind", bind, opts.propagation,
                               opts.attr_set, opts.attr_clr, "", 0))], []
        return [("MOUNT", (0, "cgroup", dest, "cgroup2", flags, opts.propagation,
                           opts.attr_set, opts.attr_clr, "", 0))], []
    records = [("MOUNT", (0, "tmpfs", dest, "tmpfs", CGROUP_TMPFS_FLAGS, opts.propagation,
                          0, 0, "mode=755", 0))]
    seen = set()
    for root, mountpoint, fstype, super_options in mounts:
        if fstype != "cgroup":
            continue
        subsystems = _v1_subsystems(super_options)
        key = ",".join(sorted(subsystems))
        if not subsystems or key in seen:
            continue
        seen.add(key)
        if container_dirs is not None:
            host_dir = next((container_dirs[s] for s in subsystems if s in container_dirs),
                            None)
        else:
            path = next((own[s] for s in subsystems if s in own), None)
            host_dir = None if path is None else _join(mountpoint, os.path.relpath(path, root))
        if host_dir is None:
            continue
        name = os.path.basename(mountpoint)
        # runc links each co-mounted controller to the "cpu,cpuacct" directory;
        # the init makes all mounts before any symlink (and the tmpfs is read-only
        # by then), so mount the hierarchy again under each name instead.
        for sub_name in [name] + [s for s in name.split(",") if s != name]:
            records.append(_v1_record(mount, flags, _join(dest, sub_name), subsystems,
                                      host_dir, cgroupns))
    warnings = []
    if not seen:
        warnings.append("mounts[%d]: no cgroup hierarchy is mounted on the host; %s is an empty "
                        "tmpfs in the container" % (mount.index, dest))
    if flags & mountopts.MS_RDONLY:
        records.append(("MOUNT", (0, "tmpfs", dest, "tmpfs", flags | mountopts.MS_REMOUNT,
                                  0, 0, 0, "", 0)))
    return records, warnings


def _v1_record(mount, flags, dest, subsystems, host_dir, cgroupns):
    opts = mount.opts
    if cgroupns:
        # In a new cgroup namespace a fresh mount shows the namespace's root, as runc does.
        return ("MOUNT", (0, "cgroup", dest, "cgroup",
                          CGROUP_TMPFS_FLAGS | (flags & mountopts.MS_RDONLY),
                          opts.propagation, 0, 0, ",".join(subsystems), 0))
    return ("MOUNT", (1, host_dir, dest, "bind", flags | mountopts.MS_BIND | mountopts.MS_REC,
                      opts.propagation, opts.attr_set, opts.attr_clr, "", 0))


# ----------------------------------------------------------------- devices

def dev_is_bind_mounted(config):
    """True when /dev comes from a bind mount: then runc creates no device nodes."""
    return any(m.is_bind and os.path.normpath(m.destination) == "/dev" for m in config.mounts)


def _device_type(kind):
    return ord("c") if kind == "u" else ord(kind)


def _add_devices(plan, config):
    if config.linux.namespace("mount") is None:
        # Sharing the runtime's mount namespace: no node is made in the rootfs on the
        # host's disk (config.py refuses linux.devices then).
        plan.add("DEV_SETUP", 0)
        plan.notes.append("no mount namespace: the container shares the runtime's; no "
                          "mounts, device nodes or pivot_root, only a chroot into the rootfs")
        return
    if dev_is_bind_mounted(config):
        plan.add("DEV_SETUP", 0)
        if config.linux.devices:
            plan.warnings.append("linux.devices: /dev is bind-mounted from the host, so no "
                                 "device nodes were created (as runc)")
        return
    plan.add("DEV_SETUP", 1)
    given = set(d.path for d in config.linux.devices)
    for path, major, minor in DEFAULT_DEVICES:
        if path not in given:
            plan.add("DEVICE", path, ord("c"), major, minor, 0o666, 0, 0, 1)
    for d in config.linux.devices:
        plan.add("DEVICE", d.path, _device_type(d.type), d.major, d.minor, d.file_mode,
                 d.uid, d.gid, 1)
    plan.add("SYMLINK", "pts/ptmx", "/dev/ptmx")
    if os.path.exists("/proc/kcore"):
        plan.add("SYMLINK", "/proc/kcore", "/dev/core")
    for target, link in DEV_SYMLINKS:
        plan.add("SYMLINK", target, link)


# ----------------------------------------------------------------- process

def _add_process_setup(plan, config, preserve_fds):
    proc = config.process
    linux = config.linux
    if proc.oom_score_adj is not None:
        plan.add("OOM_SCORE_ADJ", proc.oom_score_adj)
    for path in linux.masked_paths:
        plan.add("MASKED", path)
    for path in linux.readonly_paths:
        plan.add("READONLY", path)
    _add_process(plan, proc, linux.seccomp, preserve_fds, linux.personality)


def _add_process(plan, proc, seccomp, preserve_fds, personality=None):
    """The records of the process itself, shared by create and exec: terminal, rlimits,
    no_new_privs, capabilities, user, seccomp, fds, cwd, env and args."""
    if proc.terminal:
        plan.add("TERMINAL", proc.console_rows, proc.console_cols)
    for rlimit in proc.rlimits:
        plan.add("RLIMIT", rlimit.resource, rlimit.soft, rlimit.hard)
    if personality is not None:
        plan.add("PERSONALITY", personality)
    if proc.scheduler is not None:
        s = proc.scheduler
        plan.add("SCHEDULER", s.policy, s.flags, s.nice, s.priority, s.runtime, s.deadline,
                 s.period)
    if proc.io_priority is not None:
        plan.add("IO_PRIORITY", *proc.io_priority)
    for stage, key in enumerate(("initial", "final")):
        if key in proc.cpu_affinity:
            plan.add("CPU_AFFINITY", stage, cpu_mask_words(proc.cpu_affinity[key]))
    plan.add("NO_NEW_PRIVS", int(proc.no_new_privileges))
    masks = capability_masks(proc.capabilities)
    plan.add("CAPS", *masks)
    if proc.capabilities is not None:
        dropped = [c for c in proc.capabilities.ambient if not masks[4] >> caps.NUMBERS[c] & 1]
        if dropped:
            plan.notes.append("process.capabilities.ambient: %s ignored: an ambient capability "
                              "must also be permitted and inheritable (runc ignores these too)"
                              % ", ".join(dropped))
    user = proc.user
    umask = DEFAULT_UMASK if user.umask is None else user.umask
    plan.add("USER", user.uid, user.gid, umask, list(user.additional_gids))
    if proc.apparmor_profile or proc.selinux_label:
        from minirunc import lsm   # only with a label: detection reads /sys
        plan.records.extend(lsm.label_records(proc))
    if seccomp is not None:
        plan.records.extend(seccomp_records(seccomp))
    plan.add("PRESERVE_FDS", preserve_fds)
    plan.add("CWD", proc.cwd)
    for entry in proc.env:
        plan.add("ENV", entry)
    for arg in proc.args:
        plan.add("ARG", arg)


def cpu_mask_words(cpus):
    """A cpu_set_t as 64-bit words."""
    words = [0] * (max(cpus) // 64 + 1)
    for cpu in cpus:
        words[cpu // 64] |= 1 << (cpu % 64)
    return words


def capability_masks(capabilities):
    """(bounding, effective, permitted, inheritable, ambient); all 0 when absent (as runc).

    The kernel refuses an ambient capability that is not also permitted and
    inheritable; runc's own default spec asks for such ones, and runc has always
    ignored the failure (gocapability dropped the error; runc 1.2 filters them
    with a warning), so they are left out of the mask here.
    """
    if capabilities is None:
        return (0, 0, 0, 0, 0)
    inheritable = caps.mask(capabilities.inheritable)
    permitted = caps.mask(capabilities.permitted)
    return (caps.mask(capabilities.bounding), caps.mask(capabilities.effective), permitted,
            inheritable, caps.mask(capabilities.ambient) & inheritable & permitted)


# ----------------------------------------------------------------- seccomp

def seccomp_action(name, errno_ret=None):
    """libseccomp's action value; ERRNO and TRACE default to EPERM as in runc."""
    value = SECCOMP_ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


def _rule_arg_sets(args):
    quads = [(a.index, a.value, a.value_two, SECCOMP_OPS[a.op]) for a in args]
    indexes = [q[0] for q in quads]
    if len(set(indexes)) == len(indexes):
        return [quads]
    # libseccomp refuses two conditions on one argument in a rule: as runc, make
    # one rule per condition (so they OR instead of AND).
    return [[q] for q in quads]


def seccomp_records(seccomp):
    """SECCOMP_INIT, SECCOMP_ARCH... and SECCOMP_RULE records of a Seccomp."""
    default = seccomp_action(seccomp.default_action, seccomp.default_errno_ret)
    flags = 0
    for flag in seccomp.flags:
        flags |= SECCOMP_FLAGS[flag]
    records = [("SECCOMP_INIT", (default, flags))]
    for arch in seccomp.architectures:
        records.append(("SECCOMP_ARCH", (SECCOMP_ARCHES[arch],)))
    for rule in seccomp.syscalls:
        action = seccomp_action(rule.action, rule.errno_ret)
        if action == default:
            continue  # libseccomp rejects a rule that repeats the default action
        for args in _rule_arg_sets(rule.args):
            flat = [v for quad in args for v in quad]
            for name in rule.names:
                records.append(("SECCOMP_RULE", (name, action, flat)))
    return records
