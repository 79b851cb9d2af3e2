"""Mount options of config.json turned into mount(2) flags, as runc reads them.

runc's table (libcontainer/specconv) maps each option word to MS_* flags it sets
or clears, a propagation type, or a MOUNT_ATTR_* bit for the recursive ``r*``
forms applied with mount_setattr(AT_RECURSIVE).  A word with ``=`` is filesystem
data.  runc passes any other bare word on as data too; minirunc only does that
for filesystems it does not know, or for the few bare data words the known
ones accept, so that a typo such as ``nosuidd`` is an error instead of a
mount that fails later with EINVAL (or silently means nothing).
"""

from minirunc.errors import ConfigError, shown

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_POSIXACL = 0x10000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# word -> (clear, MS_* flag)
FLAGS = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID),
    "nosuid": (False, MS_NOSUID),
    "dev": (True, MS_NODEV),
    "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC),
    "noexec": (False, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME),
    "noatime": (False, MS_NOATIME),
    "diratime": (True, MS_NODIRATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION),
    "acl": (False, MS_POSIXACL),
    "noacl": (True, MS_POSIXACL),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
}

PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# word -> (clear, MOUNT_ATTR_* bit)
RECURSIVE = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

UNSUPPORTED = ()
# runc's extension: the tmpfs starts as a copy of what the rootfs holds at its
# destination (podman adds it to every tmpfs); "notmpcopyup" undoes it.  runc accepts
# both on any mount and ignores them but on a tmpfs; so does minirunc.
COPYUP = {"tmpcopyup": True, "notmpcopyup": False}
# An idmapped bind mount: "idmap" maps the mount itself, "ridmap" its submounts too.
IDMAP = ("idmap", "ridmap")

_CGROUP_V1_WORDS = frozenset((
    "all", "none", "noprefix", "xattr", "clone_children", "cpuset_v2_mode",
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
    "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc", "debug",
))

# Filesystems minirunc knows: the bare data words each accepts.  Any other
# type (ext4, overlay, 9p...) may take any bare word as data.
KNOWN_DATA_WORDS = {
    "bind": frozenset(),
    "proc": frozenset(),
    "sysfs": frozenset(),
    "mqueue": frozenset(),
    "tmpfs": frozenset(("inode32", "inode64", "noswap", "quota", "usrquota", "grpquota")),
    "devpts": frozenset(("newinstance",)),
    "cgroup": _CGROUP_V1_WORDS,
    "cgroup2": frozenset(("nsdelegate", "memory_recursiveprot", "memory_localevents",
                          "favordynmods", "memory_hugetlb_accounting")),
}


class MountOptions:
    """The options of one mount, parsed."""

    __slots__ = ("flags", "propagation", "attr_set", "attr_clr", "data", "is_bind", "idmap",
                 "copyup")

    def __init__(self):
        self.flags = 0
        self.propagation = 0
        self.attr_set = 0
        self.attr_clr = 0
        self.data = []
        self.is_bind = False
        self.idmap = None           # "idmap", "ridmap" or None
        self.copyup = False         # tmpcopyup (tmpfs only)

    def __repr__(self):
        return "MountOptions(flags=%#x, propagation=%#x, attr_set=%#x, attr_clr=%#x, data=%r)" % (
            self.flags, self.propagation, self.attr_set, self.attr_clr, self.data)


def is_bind(fstype, options):
    """A bind mount is type "bind" or options holding bind/rbind (as runc)."""
    return fstype == "bind" or "bind" in options or "rbind" in options


def _apply_recursive(result, word):
    clear, bit = RECURSIVE[word]
    if clear:
        result.attr_clr |= bit
        result.attr_set &= ~bit
    else:
        result.attr_set |= bit
        result.attr_clr &= ~bit
        # The atime modes are one field: setting one needs the whole field cleared
        # (mount_setattr(2)); relatime is 0, so it always takes this branch.
        if bit & MOUNT_ATTR__ATIME == bit:
            result.attr_clr |= MOUNT_ATTR__ATIME


def _accepts_bare_word(fstype, bind, word):
    if bind:
        return False
    allowed = KNOWN_DATA_WORDS.get(fstype)
    return allowed is None or word in allowed


def parse(options, fstype, path):
    """Parse a list of option words; ``path`` is the JSON path of the list.

    The caller has checked that every option is a string.
    """
    result = MountOptions()
    bind = is_bind(fstype, options)
    result.is_bind = bind
    for i, word in enumerate(options):
        if word in FLAGS:
            clear, flag = FLAGS[word]
            if clear:
                result.flags &= ~flag
            else:
                result.flags |= flag
        elif word in PROPAGATION:
            # runc applies each in turn: the last one is what remains.
            result.propagation = PROPAGATION[word]
        elif word in RECURSIVE:
            _apply_recursive(result, word)
        elif word in IDMAP:
            result.idmap = word
        elif word in COPYUP:
            # As runc: accepted on any mount, acted on for a tmpfs only.
            result.copyup = COPYUP[word] and fstype == "tmpfs" and not bind
        elif word in UNSUPPORTED:
            raise ConfigError("%s[%d]" % (path, i), 'mount option "%s" is not supported'
                              % shown(word))
        elif "=" in word or _accepts_bare_word(fstype, bind, word):
            result.data.append(word)
        else:
            raise ConfigError("%s[%d]" % (path, i), 'unknown mount option "%s"' % shown(word))
    if bind:
        result.flags |= MS_BIND
    return result


def flag_names(flags):
    """``MS_NOSUID|MS_NODEV`` for a flags value (for messages and --debug)."""
    names = []
    for name, value in sorted(globals().items()):
        if name.startswith("MS_") and value and flags & value == value:
            names.append(name)
    return "|".join(names) if names else "0"
