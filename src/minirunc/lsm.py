"""Linux security modules: is AppArmor or SELinux active on this host, and what becomes of
``process.apparmorProfile``, ``process.selinuxLabel`` and ``linux.mountLabel`` (and
`exec --apparmor` / `--process-label`).

Where the module is active the label is applied: the plan carries an ``LSM_LABEL`` record
and the init writes ``exec <profile>`` (AppArmor) or the label (SELinux) into the
container's /proc/self/attr, checked to be a real procfs first (CVE-2019-16884); a
``mountLabel`` becomes a ``context="..."`` option on the mounts runc labels.  A label the
host would refuse (an AppArmor profile that is not loaded) is a config error.  Where the
module is absent, the label cannot be applied: a warning says which module and how that
was found out, and the process runs without it (runc refuses a selinuxLabel then; issue 8
keeps the warning).

Detection follows runc's packages: AppArmor is enabled when /sys/kernel/security/apparmor
exists and /sys/module/apparmor/parameters/enabled starts with "Y" (libcontainer/apparmor);
SELinux when selinuxfs is mounted (/sys/fs/selinux/enforce exists) and the process has a
label other than "kernel" in /proc/self/attr/current (go-selinux GetEnabled).  When
/sys/kernel/security/lsm is readable it must list the module too.

``detect(texts)`` is pure (file texts in, verdict out); ``read_host(root)`` reads those files
under a root directory.  Imported only when a config or `exec` names a label, so never on
the state/start/kill/delete path.
"""

import os

from minirunc.errors import ConfigError, shown

# What detection reads, relative to the root directory.
FILES = {
    "lsm": "sys/kernel/security/lsm",
    "apparmor_dir": "sys/kernel/security/apparmor",
    "apparmor_enabled": "sys/module/apparmor/parameters/enabled",
    "apparmor_profiles": "sys/kernel/security/apparmor/profiles",
    "selinux_enforce": "sys/fs/selinux/enforce",
    "attr_current": "proc/self/attr/current",
}

# The init writes a label in one go from a 4096-byte buffer, "exec " included.
MAX_LABEL = 4000

# LSM_LABEL record kinds (native/init.c apply_lsm_labels).
APPARMOR, SELINUX = 0, 1

# Mount types runc gives no context= option (proc and sysfs cannot be labeled; mqueue
# and cgroups are labeled otherwise or not at all).
UNLABELED_TYPES = ("proc", "sysfs", "mqueue", "cgroup", "cgroup2")


class Lsm:
    """The verdict of detect(): which module is active, and why not when it is not."""

    __slots__ = ("apparmor", "selinux", "apparmor_why", "selinux_why", "profiles")

    def __init__(self, apparmor=False, selinux=False, apparmor_why="", selinux_why="",
                 profiles=None):
        self.apparmor = apparmor
        self.selinux = selinux
        self.apparmor_why = apparmor_why    # how we know AppArmor is absent
        self.selinux_why = selinux_why
        self.profiles = profiles            # loaded AppArmor profile names, or None: unknown

    def __repr__(self):
        return "Lsm(apparmor=%r, selinux=%r)" % (self.apparmor, self.selinux)


def read_host(root="/"):
    """{FILES key: text} for the files under ``root``; None when a file cannot be read,
    "" for a directory that exists."""
    texts = {}
    for key, rel in FILES.items():
        path = os.path.join(root, rel)
        if os.path.isdir(path):
            texts[key] = ""
            continue
        try:
            with open(path, "rb") as f:
                texts[key] = f.read().decode(errors="replace")
        except OSError:
            texts[key] = None
    return texts


def detect(texts):
    """An Lsm from the file texts of read_host (missing keys count as unreadable files)."""
    listed = texts.get("lsm")
    modules = None if listed is None else [m for m in listed.strip().split(",") if m]
    lsm = Lsm()
    lsm.apparmor_why = _apparmor_absent(texts, modules)
    lsm.apparmor = not lsm.apparmor_why
    lsm.selinux_why = _selinux_absent(texts, modules)
    lsm.selinux = not lsm.selinux_why
    if lsm.apparmor and texts.get("apparmor_profiles") is not None:
        lsm.profiles = set(profile_names(texts["apparmor_profiles"]))
    return lsm


def _not_listed(modules, name):
    if modules is not None and name not in modules:
        return ("/sys/kernel/security/lsm lists %s, not %s"
                % (",".join(modules) or "nothing", name))
    return ""


def _apparmor_absent(texts, modules):
    enabled = texts.get("apparmor_enabled")
    if enabled is None:
        return "/sys/module/apparmor/parameters/enabled is missing: the kernel has no AppArmor"
    if not enabled.startswith("Y"):
        return '/sys/module/apparmor/parameters/enabled reads "%s"' % enabled.strip()
    if texts.get("apparmor_dir") is None:
        return ("/sys/kernel/security/apparmor is missing: AppArmor is not the active LSM, "
                "or securityfs is not mounted")
    return _not_listed(modules, "apparmor")


def _selinux_absent(texts, modules):
    if texts.get("selinux_enforce") is None:
        return "/sys/fs/selinux/enforce is missing: selinuxfs is not mounted"
    listed = _not_listed(modules, "selinux")
    if listed:
        return listed
    current = (texts.get("attr_current") or "").strip("\0\n ")
    if not current or current == "kernel":
        return ('/proc/self/attr/current holds no SELinux label (%s)'
                % ('"kernel"' if current else "unreadable or empty"))
    return ""


def profile_names(text):
    """Names from /sys/kernel/security/apparmor/profiles ("name (enforce)" per line)."""
    for line in text.splitlines():
        name = line.rsplit(" (", 1)[0].strip() if line.endswith(")") else line.strip()
        if name:
            yield name


_host = None


def host():
    """This host's Lsm, read once per process."""
    global _host
    if _host is None:
        _host = detect(read_host("/"))
    return _host


# kind -> (module, what is left undone when it is absent)
_KINDS = {
    "apparmor": ("AppArmor", "the process runs without the profile"),
    "selinux": ("SELinux", "the process runs without the label"),
    "mount": ("SELinux", "the mounts are not labeled"),
}


def check_label(kind, label, where, state=None):
    """A label of ``kind`` ("apparmor", "selinux" or "mount") at JSON path ``where``:
    the warning to print when its module is absent on this host, "" when it will be
    applied; ConfigError when the host would refuse it."""
    state = state or host()
    module, undone = _KINDS[kind]
    active = state.apparmor if kind == "apparmor" else state.selinux
    if not active:
        why = state.apparmor_why if kind == "apparmor" else state.selinux_why
        return "%s: %s is not supported on this host (%s); %s" % (where, module, why, undone)
    if "\n" in label:
        raise ConfigError(where, "must be one line (a label holds no newline)")
    if len(label.encode(errors="surrogatepass")) > MAX_LABEL:
        raise ConfigError(where, "is longer than %d bytes" % MAX_LABEL)
    if kind == "mount" and '"' in label:
        raise ConfigError(where, 'must not hold a double quote (it becomes context="..." '
                          "on the mounts)")
    if (kind == "apparmor" and state.profiles is not None and label != "unconfined"
            and label not in state.profiles):
        raise ConfigError(where, 'AppArmor profile "%s" is not loaded (see '
                          "/sys/kernel/security/apparmor/profiles; load it with "
                          "apparmor_parser)" % shown(label, 200))
    return ""


def label_records(process, state=None):
    """The LSM_LABEL records for ``process`` (a config.Process): one per label whose module
    is active; the others were warned about when the config was read."""
    state = state or host()
    records = []
    if process.apparmor_profile and state.apparmor:
        records.append(("LSM_LABEL", (APPARMOR, process.apparmor_profile)))
    if process.selinux_label and state.selinux:
        records.append(("LSM_LABEL", (SELINUX, process.selinux_label)))
    return records


def mount_context(mount_label, state=None):
    """The ``context="..."`` mount option for linux.mountLabel, or "" (no label, or no
    SELinux on this host)."""
    if not mount_label or not (state or host()).selinux:
        return ""
    return 'context="%s"' % mount_label


def with_context(fstype, data, context):
    """Mount data with ``context`` added, as runc's label.FormatMountLabel does for the
    mounts it labels (not proc, sysfs, mqueue or cgroups; not when data has one)."""
    if not context or fstype in UNLABELED_TYPES or "context=" in data:
        return data
    return data + "," + context if data else context
