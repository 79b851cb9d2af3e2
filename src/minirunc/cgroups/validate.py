"""linux.resources checked against the runtime spec (1.2): types, ranges, unknown keys.

Pure; every problem is a ConfigError with the JSON path.  ``check_resources`` returns the
resources to apply (deprecated kernel memory limits removed) and the warnings to print.
Unknown keys are errors here (unlike elsewhere in config.json): a misspelt limit that is
silently dropped is a limit that is not there.
"""

from ..errors import ConfigError, shown

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
_PAGE_UNITS = ("KB", "MB", "GB", "TB", "PB")


# Plain string checks, not `re`: it (and the enum it imports) costs ~1.5 ms on every create.
def _number(text):
    return text.isascii() and text.isdigit()


def _is_list(text):
    """``0-2,4``: numbers and ranges, comma-separated."""
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not _number(low) or (dash and not _number(high)):
            return False
    return True


def _is_page_size(text):
    """``2MB``: a number and a unit."""
    return text[-2:] in _PAGE_UNITS and _number(text[:-2])


def _at(path, key):
    return "%s.%s" % (path, key)


def _int(value, path, low, high, what=""):
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(path, "must be an integer from %d to %d%s" % (low, high, what))
    return value


def _i64(value, path):
    return _int(value, path, I64_MIN, I64_MAX)


def _u64(value, path):
    return _int(value, path, 0, U64_MAX)


def _u32(value, path):
    return _int(value, path, 0, U32_MAX)


def _bytes(value, path):
    """A memory amount: -1 (unlimited), 0 (not set) or a positive number of bytes."""
    if type(value) is not int or value < -1 or value > I64_MAX:
        raise ConfigError(path, "must be -1 (unlimited), 0 (not set) or a positive number of "
                          "bytes, not %s" % shown(repr(value)))
    return value


def _bool(value, path):
    if not isinstance(value, bool):
        raise ConfigError(path, "must be a boolean (true or false)")
    return value


def _string(value, path):
    if not isinstance(value, str) or "\0" in value:
        raise ConfigError(path, "must be a string")
    return value


def _cpu_list(value, path):
    _string(value, path)
    if value and not _is_list(value.replace(" ", "")):
        raise ConfigError(path, '"%s" is not a list like "0-2,4"' % shown(value))
    return value


def _weight(value, path):
    if type(value) is not int or not (value == 0 or 10 <= value <= 1000):
        raise ConfigError(path, "must be from 10 to 1000 (or 0: not set), not %s" % shown(repr(value)))
    return value


def _object(value, path):
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    return value


def _list(value, path):
    if not isinstance(value, list):
        raise ConfigError(path, "must be a list")
    return value


def _fields(value, path, schema, required=()):
    """Check each key of the object ``value`` with ``schema[key]``; unknown keys are errors."""
    _object(value, path)
    for key, entry in value.items():
        if key not in schema:
            raise ConfigError(_at(path, key), "unknown key (known: %s)" % ", ".join(schema))
        if entry is not None:
            schema[key](entry, _at(path, key))
    for key in required:
        if value.get(key) is None:
            raise ConfigError(_at(path, key), "is required")
    return value


def _entries(schema, required=()):
    def check(value, path):
        _list(value, path)
        for i, entry in enumerate(value):
            _fields(entry, "%s[%d]" % (path, i), schema, required)
        return value
    return check


def _swappiness(value, path):
    return _int(value, path, 0, 100)


def _period(value, path):
    if type(value) is not int or not (value == 0 or 1000 <= value <= 1000000):
        raise ConfigError(path, "must be from 1000 to 1000000 microseconds (or 0: not set)")
    return value


def _quota(value, path):
    if type(value) is not int or not (value in (-1, 0) or 1000 <= value <= I64_MAX):
        raise ConfigError(path, "must be -1 (unlimited), 0 (not set) or at least 1000 "
                          "microseconds, not %s" % shown(repr(value)))
    return value


def _shares(value, path):
    if type(value) is not int or not (value == 0 or 2 <= value <= 262144):
        raise ConfigError(path, "must be from 2 to 262144 (or 0: not set), not %s" % shown(repr(value)))
    return value


def _access(value, path):
    _string(value, path)
    if not value or set(value) - set("rwm"):
        raise ConfigError(path, '"%s": use one or more of r, w, m' % shown(value))
    return value


def _device_type(value, path):
    if value not in ("a", "b", "c"):
        raise ConfigError(path, 'unknown device type "%s" (use a, b or c)' % shown(value))
    return value


def _device_number(value, path):
    return _int(value, path, -1, U32_MAX, " (-1: any)")


def _page_size(value, path):
    _string(value, path)
    if not _is_page_size(value):
        raise ConfigError(path, '"%s" is not a page size like "2MB" or "1GB"' % shown(value))
    return value


def _unified(value, path):
    _object(value, path)
    for key, entry in value.items():
        where = _at(path, key)
        if "/" in key or key.startswith(".") or "." not in key or "\0" in key:
            raise ConfigError(where, "is not a cgroup v2 file name (controller.file)")
        if key.startswith("cgroup."):
            raise ConfigError(where, "cgroup.* files are managed by the runtime")
        _string(entry, where)
    return value


def _rdma(value, path):
    _object(value, path)
    for key, entry in value.items():
        _fields(entry, _at(path, key), {"hcaHandles": _u32, "hcaObjects": _u32})
    return value


MEMORY = {"limit": _bytes, "reservation": _bytes, "swap": _bytes, "kernel": _bytes,
          "kernelTCP": _bytes, "swappiness": _swappiness, "disableOOMKiller": _bool,
          "useHierarchy": _bool, "checkBeforeUpdate": _bool}
CPU = {"shares": _shares, "quota": _quota, "burst": _u64, "period": _period,
       "realtimeRuntime": _i64, "realtimePeriod": _u64, "cpus": _cpu_list, "mems": _cpu_list,
       "idle": lambda v, p: _int(v, p, 0, 1)}
_THROTTLE = _entries({"major": _u32, "minor": _u32, "rate": _u64}, ("major", "minor", "rate"))
BLOCK_IO = {"weight": _weight, "leafWeight": _weight,
            "weightDevice": _entries({"major": _u32, "minor": _u32, "weight": _weight,
                                      "leafWeight": _weight}, ("major", "minor")),
            "throttleReadBpsDevice": _THROTTLE, "throttleWriteBpsDevice": _THROTTLE,
            "throttleReadIOPSDevice": _THROTTLE, "throttleWriteIOPSDevice": _THROTTLE}
RESOURCES = {
    "devices": _entries({"allow": _bool, "type": _device_type, "major": _device_number,
                         "minor": _device_number, "access": _access}, ("allow",)),
    "memory": lambda v, p: _fields(v, p, MEMORY),
    "cpu": lambda v, p: _fields(v, p, CPU),
    "pids": lambda v, p: _fields(v, p, {"limit": _i64}, ("limit",)),
    "blockIO": lambda v, p: _fields(v, p, BLOCK_IO),
    "hugepageLimits": _entries({"pageSize": _page_size, "limit": _u64}, ("pageSize", "limit")),
    "network": lambda v, p: _fields(v, p, {
        "classID": _u32,
        "priorities": _entries({"name": _string, "priority": _u32}, ("name", "priority"))}),
    "rdma": _rdma,
    "unified": _unified,
}


def check_resources(value, path="linux.resources"):
    """(resources to apply, warnings) for a linux.resources object."""
    _fields(value, path, RESOURCES)
    warnings = []
    resources = {k: v for k, v in value.items() if v is not None}
    memory = resources.get("memory")
    if memory:
        memory = dict(memory)
        for key in ("kernel", "kernelTCP"):
            if memory.pop(key, None) is not None:
                warnings.append("%s.memory.%s: kernel memory limits are deprecated (the kernel "
                                "dropped them); ignored" % (path, key))
        resources["memory"] = memory
    return resources, warnings


def check_unified_allowed(resources, mode, path="linux.resources"):
    """``unified`` keys are cgroup v2 files: on a v1 or hybrid host runc refuses them
    before it touches any cgroup ("invalid configuration: cannot use unified on cgroup
    v1"), even though a hybrid host has a cgroup2 tree.  Same words here, then ours."""
    if mode in ("v1", "hybrid") and (resources or {}).get("unified"):
        raise ConfigError(path + ".unified", "invalid configuration: cannot use unified on "
                          "cgroup v1 (this host %s; unified resources need a cgroup v2 host: "
                          "use the cgroup v1 keys of linux.resources instead)"
                          % ("mounts cgroup v1 and v2 side by side (hybrid)" if mode == "hybrid"
                             else "uses cgroup v1"))


def requested(resources):
    """The resource groups that ask for something (for warnings and checks)."""
    return [key for key, value in resources.items() if value not in (None, {}, [])]
