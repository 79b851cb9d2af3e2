"""The config.json that ``minirunc spec`` writes: runc 1.1's ``runc spec`` output.

Same content and key order as runc 1.1.5 (ociVersion 1.0.2-dev), except the
hostname, which is "minirunc".  ``--rootless`` makes the same changes as runc's:
no network namespace, a user namespace mapping root to the caller, /sys bind-mounted,
no devpts gid option and no resources.

Every config minirunc's tools write is ``default_spec()`` plus ``edit_spec()``: the
`spec` flags (--hostname, --bind, --memory, ...), the test bundles (tests/make_bundle.py)
and the image bundles (build/images/imagebuild.py).  ``edit_spec`` raises ValueError
with a one-line message naming the flag for a value it cannot use.
"""

import json
import os

OCI_VERSION = "1.0.2-dev"
HOSTNAME = "minirunc"
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _process():
    return {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {name: list(DEFAULT_CAPS)
                         for name in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def _mounts(rootless):
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts.append("gid=5")
    if rootless:
        sysfs = {"destination": "/sys", "type": "none", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    else:
        sysfs = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]}
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        sysfs,
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def _linux(rootless):
    linux = {}
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        names = ["pid", "ipc", "uts", "mount", "user"]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        names = ["pid", "network", "ipc", "uts", "mount"]
    linux["namespaces"] = [{"type": name} for name in names]
    linux["maskedPaths"] = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi",
    ]
    linux["readonlyPaths"] = [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]
    return linux


def default_spec(rootless=False):
    """A fresh dict of the default config.json."""
    return {
        "ociVersion": OCI_VERSION,
        "process": _process(),
        "root": {"path": "rootfs", "readonly": True},
        "hostname": HOSTNAME,
        "mounts": _mounts(rootless),
        "linux": _linux(rootless),
    }


def spec_text(rootless=False):
    """The JSON text as runc writes it (tab indentation, no final newline)."""
    return json.dumps(default_spec(rootless), indent="\t")


def write_spec(bundle_dir, rootless=False):
    """Write <bundle_dir>/config.json; refuses to overwrite, like runc.

    Returns the path written.  FileExistsError when config.json exists.
    """
    path = os.path.join(bundle_dir, "config.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    with os.fdopen(fd, "w") as f:
        f.write(spec_text(rootless))
    return path


# What `--tmpfs DST` and `--bind SRC:DST[:ro]` add (the image bundles' /tmp and /hexo).
TMPFS_OPTIONS = ["nosuid", "nodev", "mode=1777"]
CPU_PERIOD = 100000
_SUFFIXES = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text, flag):
    """``64m`` / ``1G`` / ``1048576`` -> bytes."""
    value = str(text).strip().lower()
    if value.endswith("ib"):
        value = value[:-2]
    elif value.endswith("b") and len(value) > 1 and not value[-2].isdigit():
        value = value[:-1]
    number, suffix = (value[:-1], value[-1]) if value[-1:] in _SUFFIXES else (value, "")
    try:
        size = int(float(number) * _SUFFIXES[suffix])
    except ValueError:
        raise ValueError("%s: %r is not a size (a number of bytes, or with k, m or g)"
                         % (flag, text)) from None
    if size <= 0:
        raise ValueError("%s: %r must be more than 0" % (flag, text))
    return size


def _cap_name(text):
    from .caps import NUMBERS
    name = text.upper()
    name = name if name.startswith("CAP_") else "CAP_" + name
    if name not in NUMBERS:
        from .nearest import nearest
        near = nearest(name, NUMBERS)
        raise ValueError("--cap: %s is not a capability%s" % (
            text, " (did you mean %s?)" % near if near else ""))
    return name


def _set_env(env, item):
    if "=" not in item or item.startswith("="):
        raise ValueError("--env: %r is not KEY=VALUE" % item)
    key = item.split("=", 1)[0] + "="
    for i, old in enumerate(env):
        if old.startswith(key):
            env[i] = item
            return
    env.append(item)


def _bind(text):
    parts = text.split(":")
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        source, dest, mode = parts
    elif len(parts) == 2:
        (source, dest), mode = parts, "rw"
    else:
        raise ValueError("--bind: %r is not SRC:DST or SRC:DST:ro" % text)
    if not dest.startswith("/") or not source:
        raise ValueError("--bind: %r: DST must be an absolute path in the container and SRC "
                         "a host path" % text)
    return {"destination": dest, "type": "bind", "source": source, "options": ["rbind", mode]}


def _user(text):
    uid, _, gid = str(text).partition(":")
    try:
        user = {"uid": int(uid), "gid": int(gid) if gid else int(uid)}
    except ValueError:
        raise ValueError("--user: %r is not UID or UID:GID (numbers: the rootfs's "
                         "/etc/passwd is not read)" % text) from None
    if min(user.values()) < 0:
        raise ValueError("--user: %r: ids cannot be negative" % text)
    return user


def edit_spec(config, args=None, rootfs=None, hostname=None, cwd=None, env=(), binds=(),
              tmpfs=(), net=None, terminal=None, writable=False, memory=None, pids=None,
              cpus=None, user=None, caps=(), without_mounts=(), resources=True):
    """Change a config made by default_spec() in place (and return it).

    ``binds`` are "SRC:DST[:ro]" texts, ``tmpfs`` destinations, ``caps`` "+NAME"/"-NAME"
    (to and from every capability set), ``env`` "K=V" (replacing K where it is set),
    ``net="host"`` drops the network namespace, ``without_mounts`` drops the mounts at
    those destinations and ``resources=False`` the default device rule."""
    process, linux = config["process"], config["linux"]
    if args is not None:
        if not args or not args[0]:
            raise ValueError("-- CMD: the command is empty")
        process["args"] = list(args)
    if terminal is not None:
        process["terminal"] = bool(terminal)
    if rootfs is not None:
        config["root"]["path"] = rootfs
    if writable:
        config["root"]["readonly"] = False
    if hostname is not None:
        config["hostname"] = hostname
    if cwd is not None:
        if not cwd.startswith("/"):
            raise ValueError("--cwd: %r must be an absolute path in the container" % cwd)
        process["cwd"] = cwd
    for item in env:
        _set_env(process["env"], item)
    if user is not None:
        process["user"] = _user(user)
    for item in caps:
        if item[:1] not in ("+", "-"):
            raise ValueError("--cap: %r must start with + (add) or - (drop)" % item)
        name = _cap_name(item[1:])
        for names in process["capabilities"].values():
            if item[0] == "+" and name not in names:
                names.append(name)
            elif item[0] == "-" and name in names:
                names.remove(name)
    if without_mounts:
        config["mounts"] = [m for m in config["mounts"] if m["destination"] not in without_mounts]
    for dest in tmpfs:
        if not dest.startswith("/"):
            raise ValueError("--tmpfs: %r must be an absolute path in the container" % dest)
        config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                 "options": list(TMPFS_OPTIONS)})
    for text in binds:
        config["mounts"].append(_bind(text))
    if net is not None:
        if net != "host":
            raise ValueError("--net: only \"host\" is known (the default is a new, empty "
                             "network namespace)")
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
    if not resources:
        linux.pop("resources", None)
    _edit_resources(linux, memory, pids, cpus)
    return config


def _edit_resources(linux, memory, pids, cpus):
    limits = {}
    if memory is not None:
        limits["memory"] = {"limit": parse_size(memory, "--memory")}
    if pids is not None:
        try:
            limit = int(pids)
        except ValueError:
            raise ValueError("--pids: %r is not a number of processes" % pids) from None
        if limit <= 0:
            raise ValueError("--pids: %r must be more than 0" % pids)
        limits["pids"] = {"limit": limit}
    if cpus is not None:
        try:
            share = float(cpus)
        except ValueError:
            raise ValueError("--cpus: %r is not a number of CPUs (1.5 = one and a half)"
                             % cpus) from None
        if not 0.01 <= share <= 8192:
            raise ValueError("--cpus: %r must be between 0.01 and 8192" % cpus)
        limits["cpu"] = {"quota": int(share * CPU_PERIOD), "period": CPU_PERIOD}
    if limits:
        linux.setdefault("resources", {}).update(limits)
