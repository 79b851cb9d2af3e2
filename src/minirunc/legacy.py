"""Configs written for runc's first releases (2015), converted to the current shape.

Two old shapes are recognised by a ``"version"`` key where ``ociVersion`` belongs:

* the single-file shape of runc 0.0.1-0.0.4 (``"version": "pre-draft"``, then
  ``0.1.x``): mounts as ``{type, source, destination, options}`` with the options in ONE
  comma-separated string, ``linux.namespaces`` types ``process``/``network``/... with
  ``"path": ""`` for "new", ``linux.capabilities`` as names without ``CAP_`` (one list for
  every set), ``linux.devices`` as names, ``uidMapping``/``gidMapping``, ``rlimits``,
  ``sysctl`` (earlier ``systemProperties``) and ``resources`` where 0, -1 and "" mean
  "not set";
* the split of specs 0.2-0.5 (runc 0.0.5-0.0.9): config.json names its mounts
  (``{name, path}``) and runtime.json next to it holds them (``mounts: {name: {type,
  source, options}}``) with the host-specific part of ``linux`` (namespaces, resources,
  devices as objects, rlimits, sysctl, id mappings, seccomp) and ``hooks``.

``convert`` returns the current-format dict and a list of problems, one line each
naming the field and what it would need.  ``upgrade_in_memory`` is what the config
loader calls: a notice line on stderr, or a ConfigError for the first problem.
Imported only when a config lacks ``ociVersion``.
"""

import os
import re

from .errors import ConfigError, shown

OCI_VERSION = "1.0.2"

NAMESPACES = {"process": "pid", "pid": "pid", "network": "network", "ipc": "ipc",
              "uts": "uts", "mount": "mount", "user": "user", "cgroup": "cgroup"}

# The devices every OCI runtime creates anyway; a 2015 list naming them changes nothing.
DEFAULT_DEVICES = ("null", "random", "full", "tty", "zero", "urandom")
# Other names runc's 2015 device table knew (libcontainer/configs/device_defaults.go):
# name -> (path, type, major, minor)
NAMED_DEVICES = {"fuse": ("/dev/fuse", "c", 10, 229), "tun": ("/dev/net/tun", "c", 10, 200),
                 "kvm": ("/dev/kvm", "c", 10, 232)}

# What runc 0.0.x put in every container although the config did not say it (spec.go
# createLibcontainerConfig): /proc/kcore hidden and these /proc parts read-only.
MASKED_PATHS = ["/proc/kcore"]
READONLY_PATHS = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"]

# rlimit numbers (the pre-draft Rlimit.Type was an int) -> names
RLIMIT_NAMES = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
                "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
                "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
                "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]

CAP_SETS = ("bounding", "effective", "permitted", "inheritable")


def is_legacy(data):
    """Whether a parsed config.json is one of runc's 2015 shapes."""
    return isinstance(data, dict) and "ociVersion" not in data and "version" in data


def upgrade_in_memory(data, bundle):
    """The config loader's hook: the converted dict, after one notice line on stderr.
    A field that cannot be converted is a ConfigError naming it."""
    if not is_legacy(data):
        return data
    new, problems = convert(data, bundle)
    if problems:
        more = (" (and %d more: `minirunc spec --upgrade` lists them)" % (len(problems) - 1)
                if len(problems) > 1 else "")
        raise ConfigError("", problems[0] + more, file=os.path.join(bundle, "config.json"))
    from . import log
    log.warning("config.json is in runc's 2015 format (version \"%s\"); converted in memory "
                "(`minirunc spec --upgrade` rewrites the file)" % shown(str(data.get("version"))))
    return new


def convert(data, bundle):
    """(current-format dict, problems) for an old config; reads runtime.json when the
    config names its mounts."""
    problems = []
    runtime = {}
    mounts = data.get("mounts") or []
    split = (isinstance(mounts, list) and any(isinstance(m, dict) and "name" in m
                                              for m in mounts)) \
        or os.path.exists(os.path.join(bundle, "runtime.json"))
    if split:
        runtime = _read_runtime(bundle, problems)
    new = {"ociVersion": OCI_VERSION}
    _platform(data.get("platform"), problems)
    new["process"] = _process(data.get("process"), problems)
    root = data.get("root") or {}
    new["root"] = {"path": root.get("path") or "rootfs", "readonly": bool(root.get("readonly"))}
    if data.get("hostname"):
        new["hostname"] = data["hostname"]
    new["mounts"] = _mounts(mounts, runtime.get("mounts"), problems)
    linux = _linux(data.get("linux") or {}, runtime.get("linux") or {}, new["process"], problems)
    new["linux"] = linux
    hooks = _hooks(runtime.get("hooks") or data.get("hooks"), problems)
    if hooks:
        new["hooks"] = hooks
    return new, problems


def _read_runtime(bundle, problems):
    import json
    path = os.path.join(bundle, "runtime.json")
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read())
    except FileNotFoundError:
        problems.append("mounts: the mounts are named (the 2015 config.json + runtime.json "
                        "split) but %s is missing: put the runtime.json written with this "
                        "config.json beside it" % path)
        return {}
    except (OSError, ValueError) as e:
        problems.append("%s: cannot read: %s" % (path, shown(str(e), 200)))
        return {}
    if not isinstance(value, dict):
        problems.append("%s: the top level must be a JSON object" % path)
        return {}
    return value


def _platform(platform, problems):
    if isinstance(platform, dict) and platform.get("os") not in (None, "", "linux"):
        problems.append('platform.os: "%s" is not linux: minirunc runs Linux containers only'
                        % shown(str(platform.get("os"))))


def _process(old, problems):
    old = old or {}
    user = old.get("user") or {}
    process = {"terminal": bool(old.get("terminal")),
               "user": {"uid": user.get("uid") or 0, "gid": user.get("gid") or 0},
               "args": old.get("args") or [],
               "env": old.get("env") or [],
               "cwd": old.get("cwd") or "/"}
    if user.get("additionalGids"):
        process["user"]["additionalGids"] = list(user["additionalGids"])
    if user.get("username"):
        problems.append('process.user.username: "%s" cannot be resolved before the rootfs is '
                        "read: give process.user.uid and gid instead" % shown(user["username"]))
    if not process["args"]:
        problems.append("process.args: empty: the 2015 runc ran nothing either; give the "
                        "command to run (e.g. [\"sh\"])")
    for key in ("apparmorProfile", "selinuxLabel"):
        if old.get(key):
            process[key] = old[key]
    return process


def _split_options(value, where, problems):
    if value is None:
        return []
    if isinstance(value, str):
        return [o.strip() for o in value.split(",") if o.strip()]
    if isinstance(value, list):
        return [str(o) for o in value]
    problems.append("%s: neither a comma-separated string nor a list: write the options as "
                    'a list of strings (["nosuid", "ro"])' % where)
    return []


def _mounts(mounts, runtime_mounts, problems):
    if not isinstance(mounts, list):
        problems.append("mounts: not a list: write it as a list of {type, source, destination,"
                        " options}")
        return []
    out = []
    for i, m in enumerate(mounts):
        where = "mounts[%d]" % i
        if not isinstance(m, dict):
            problems.append("%s: not an object" % where)
            continue
        if "name" in m:            # config.json + runtime.json split
            name = m.get("name")
            found = (runtime_mounts or {}).get(name)
            if not isinstance(found, dict):
                problems.append('%s: names mount "%s", which runtime.json does not define: add '
                                '"mounts": {"%s": {"type", "source", "options"}} there'
                                % (where, shown(str(name)), shown(str(name))))
                continue
            entry = {"destination": m.get("path") or "", "type": found.get("type") or "none",
                     "source": found.get("source") or found.get("type") or "none"}
            options = _split_options(found.get("options"), where + ".options", problems)
        else:
            entry = {"destination": m.get("destination") or "", "type": m.get("type") or "none",
                     "source": m.get("source") or m.get("type") or "none"}
            options = _split_options(m.get("options"), where + ".options", problems)
        if options:
            entry["options"] = options
        out.append(entry)
    return out


def _capabilities(caps, problems):
    names = []
    for i, cap in enumerate(caps or []):
        if not isinstance(cap, str) or not cap:
            problems.append("linux.capabilities[%d]: not a capability name" % i)
            continue
        cap = cap.upper()
        names.append(cap if cap.startswith("CAP_") else "CAP_" + cap)
    return {name: list(names) for name in CAP_SETS}


def _namespaces(items, problems):
    out = []
    for i, ns in enumerate(items or []):
        kind = ns.get("type") if isinstance(ns, dict) else None
        if kind not in NAMESPACES:
            problems.append('linux.namespaces[%d].type: "%s" is unknown: use one of process, '
                            "network, ipc, uts, mount, user" % (i, shown(str(kind))))
            continue
        entry = {"type": NAMESPACES[kind]}
        if ns.get("path"):
            entry["path"] = ns["path"]
        out.append(entry)
    return out


def _mappings(value):
    return [{"containerID": m.get("containerID", 0), "hostID": m.get("hostID", 0),
             "size": m.get("size", 0)} for m in value or [] if isinstance(m, dict)]


def _rlimits(value, problems):
    out = []
    for i, r in enumerate(value or []):
        kind = r.get("type") if isinstance(r, dict) else None
        if isinstance(kind, int) and 0 <= kind < len(RLIMIT_NAMES):
            kind = RLIMIT_NAMES[kind]
        if not isinstance(kind, str):
            problems.append("linux.rlimits[%d].type: %s is not an rlimit: use a name such as "
                            "RLIMIT_NOFILE" % (i, shown(str(kind))))
            continue
        out.append({"type": kind, "hard": r.get("hard", 0), "soft": r.get("soft", 0)})
    return out


def _devices(value, problems):
    """(linux.devices, linux.resources.devices allow rules) from a 2015 device list."""
    devices, rules = [], []
    for i, d in enumerate(value or []):
        where = "linux.devices[%d]" % i
        if isinstance(d, str):
            if d in DEFAULT_DEVICES:
                continue
            if d in NAMED_DEVICES:
                path, kind, major, minor = NAMED_DEVICES[d]
                devices.append({"path": path, "type": kind, "major": major, "minor": minor,
                                "fileMode": 0o666, "uid": 0, "gid": 0})
                rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                              "access": "rwm"})
                continue
            problems.append('%s: "%s" is not a device runc knew by name: write it as {"path", '
                            '"type", "major", "minor"} in linux.devices' % (where, shown(d)))
            continue
        if not isinstance(d, dict) or not d.get("path"):
            problems.append("%s: neither a device name nor an object with a path" % where)
            continue
        kind = d.get("type")
        if isinstance(kind, int):        # a Go rune: 99 = 'c'
            kind = chr(kind) if 0 < kind < 128 else "?"
        if kind not in ("c", "b", "u", "p"):
            problems.append("%s.type: %s is not c, b, u or p" % (where, shown(str(kind))))
            continue
        if os.path.basename(d["path"]) in DEFAULT_DEVICES and d["path"].count("/") == 2:
            continue
        entry = {"path": d["path"], "type": kind, "major": d.get("major", 0),
                 "minor": d.get("minor", 0)}
        for key in ("fileMode", "uid", "gid"):
            if d.get(key) is not None:
                entry[key] = d[key]
        devices.append(entry)
        if d.get("permissions"):
            rules.append({"allow": True, "type": kind, "major": entry["major"],
                          "minor": entry["minor"], "access": d["permissions"]})
    return devices, rules


def _set(value):
    """A 2015 resource value, or None where it means "not set" (0, -1, "", null)."""
    if value in (None, 0, -1, "") or value is False:
        return None
    return value


_DEVICE_LINE = re.compile(r"^\s*(\d+):(\d+)\s+(\d+)\s*$")


def _device_strings(text, where, problems):
    """``"8:0 1048576"`` lines (what libcontainer wrote to the blkio file) -> entries."""
    if isinstance(text, list):   # the later shape is already a list of objects
        return [dict(e) for e in text if isinstance(e, dict)]
    out = []
    for line in str(text).replace(",", "\n").splitlines():
        if not line.strip():
            continue
        match = _DEVICE_LINE.match(line)
        if not match:
            problems.append('%s: "%s" is not "MAJOR:MINOR VALUE": write it as {"major", '
                            '"minor", "rate"} entries' % (where, shown(line.strip())))
            continue
        out.append({"major": int(match.group(1)), "minor": int(match.group(2)),
                    "value": int(match.group(3))})
    return out


def _resources(old, problems):
    new = {}
    old = old or {}
    where = "linux.resources"
    mem = {}
    for src, dst in (("limit", "limit"), ("reservation", "reservation"), ("swap", "swap"),
                     ("kernel", "kernel"), ("swappiness", "swappiness")):
        value = _set((old.get("memory") or {}).get(src))
        if value is not None:
            mem[dst] = value
    if old.get("disableOOMKiller"):
        mem["disableOOMKiller"] = True
    if mem:
        new["memory"] = mem
    cpu = {}
    for key in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"):
        value = _set((old.get("cpu") or {}).get(key))
        if value is not None:
            cpu[key] = value
    if cpu:
        new["cpu"] = cpu
    pids = old.get("pids")
    if isinstance(pids, dict) and _set(pids.get("limit")) is not None:
        new["pids"] = {"limit": pids["limit"]}
    blkio, block = old.get("blockIO") or {}, {}
    for src, dst in (("blkioWeight", "weight"), ("blkioLeafWeight", "leafWeight"),
                     ("weight", "weight"), ("leafWeight", "leafWeight")):
        if _set(blkio.get(src)) is not None:
            block[dst] = blkio[src]
    for src, dst in (("blkioWeightDevice", "weightDevice"),
                     ("blkioThrottleReadBpsDevice", "throttleReadBpsDevice"),
                     ("blkioThrottleWriteBpsDevice", "throttleWriteBpsDevice"),
                     ("blkioThrottleReadIopsDevice", "throttleReadIOPSDevice"),
                     ("blkioThrottleWriteIopsDevice", "throttleWriteIOPSDevice")):
        if _set(blkio.get(src)) is None:
            continue
        entries = _device_strings(blkio[src], "%s.blockIO.%s" % (where, src), problems)
        key = "weight" if dst == "weightDevice" else "rate"
        block[dst] = [{"major": e["major"], "minor": e["minor"], key: e.get("value", e.get(key))}
                      for e in entries]
    if block:
        new["blockIO"] = block
    pages = [{"pageSize": h.get("pageSize"), "limit": h.get("limit")}
             for h in old.get("hugepageLimits") or [] if isinstance(h, dict)]
    if pages:
        new["hugepageLimits"] = pages
    net, network = old.get("network") or {}, {}
    class_id = _set(net.get("classId", net.get("classID")))
    if class_id is not None:
        try:
            network["classID"] = int(str(class_id), 0)
        except ValueError:
            problems.append('%s.network.classId: "%s" is not a number: write the class as '
                            "0xMMMMmmmm" % (where, shown(str(class_id))))
    if net.get("priorities"):
        network["priorities"] = [{"name": p.get("name"), "priority": p.get("priority")}
                                 for p in net["priorities"] if isinstance(p, dict)]
    if network:
        new["network"] = network
    return new


def _seccomp(old, problems):
    if not isinstance(old, dict) or not old.get("defaultAction"):
        return None
    new = {"defaultAction": old["defaultAction"]}
    if old.get("architectures"):
        new["architectures"] = list(old["architectures"])
    rules = []
    for i, rule in enumerate(old.get("syscalls") or []):
        if not isinstance(rule, dict) or not (rule.get("name") or rule.get("names")):
            problems.append("linux.seccomp.syscalls[%d]: no syscall name" % i)
            continue
        names = rule.get("names") or [rule["name"]]
        entry = {"names": list(names), "action": rule.get("action") or old["defaultAction"]}
        if rule.get("args"):
            entry["args"] = rule["args"]
        rules.append(entry)
    if rules:
        new["syscalls"] = rules
    return new


def _linux(old, runtime, process, problems):
    """linux from config.json's linux (+ runtime.json's linux in the split shape)."""
    both = dict(old)
    both.update({k: v for k, v in runtime.items() if v is not None})
    linux = {}
    caps = both.get("capabilities")
    if caps is not None:
        process["capabilities"] = _capabilities(caps, problems)
    linux["namespaces"] = _namespaces(both.get("namespaces"), problems)
    uid = both.get("uidMappings", both.get("uidMapping"))
    gid = both.get("gidMappings", both.get("gidMapping"))
    if uid:
        linux["uidMappings"] = _mappings(uid)
    if gid:
        linux["gidMappings"] = _mappings(gid)
    rlimits = _rlimits(both.get("rlimits"), problems)
    if rlimits:
        process["rlimits"] = rlimits
    sysctl = both.get("sysctl") or both.get("systemProperties")
    if sysctl:
        linux["sysctl"] = {str(k): str(v) for k, v in sysctl.items()}
    devices, rules = _devices(both.get("devices"), problems)
    if devices:
        linux["devices"] = devices
    resources = _resources(both.get("resources"), problems)
    if rules:
        resources["devices"] = rules
    if resources:
        linux["resources"] = resources
    seccomp = _seccomp(both.get("seccomp"), problems)
    if seccomp:
        linux["seccomp"] = seccomp
    if both.get("rootfsPropagation"):
        linux["rootfsPropagation"] = both["rootfsPropagation"]
    for src, dst in (("apparmorProfile", "apparmorProfile"),
                     ("selinuxProcessLabel", "selinuxLabel")):
        if both.get(src):
            process[dst] = both[src]
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    return linux


def _hooks(old, problems):
    if not isinstance(old, dict):
        return {}
    hooks = {}
    for kind in ("prestart", "poststart", "poststop"):
        entries = []
        for i, hook in enumerate(old.get(kind) or []):
            if not isinstance(hook, dict) or not hook.get("path"):
                problems.append("hooks.%s[%d]: no path: give the hook's absolute path" % (kind, i))
                continue
            entry = {"path": hook["path"]}
            for key in ("args", "env"):
                if hook.get(key):
                    entry[key] = list(hook[key])
            entries.append(entry)
        if entries:
            hooks[kind] = entries
    return hooks


def upgrade_file(bundle):
    """``minirunc spec --upgrade``: rewrite <bundle>/config.json in the current format,
    the old file kept as config.json.bak.  Returns the problems (nothing is written when
    there are any); the new file is validated before it replaces the old one."""
    import json
    from . import config as cfg
    from .errors import HostError, UsageError
    bundle = os.path.abspath(bundle)
    path, data = cfg.read_config_file(bundle)
    if not is_legacy(data):
        raise UsageError("%s is already in the current format (ociVersion %s): nothing to "
                         "upgrade" % (path, shown(str(data.get("ociVersion")))))
    new, problems = convert(data, bundle)
    if problems:
        return problems
    cfg.parse_config(new, bundle, path)          # the result must load, or nothing changes
    backup = path + ".bak"
    if os.path.lexists(backup):
        raise UsageError("%s exists already: move it away first (it would be overwritten by "
                         "the old config.json)" % backup)
    text = json.dumps(new, indent="\t") + "\n"
    tmp = path + ".upgrade.tmp"
    try:
        mode = os.stat(path).st_mode & 0o7777
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(path, backup)
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise HostError("write", e.filename or path, e.errno) from None
    return []
