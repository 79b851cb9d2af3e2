"""Validated linux.resources -> the cgroup files to write, for v1 and for v2 (pure).

A write is ``(controller, files, value, key, optional)``: ``files`` is a tuple of
alternatives (the first one the kernel has is written, as runc prefers ``blkio.bfq.weight``
to ``blkio.weight``), ``key`` the JSON path it comes from (for errors), ``optional`` says
that a missing file is a warning rather than an error.  Controller "" is the v2 tree.
Conversions follow runc: shares -> cpu.weight, blkio weight -> io.weight, memory+swap ->
memory.swap.max.
"""

P = "linux.resources"
UNLIMITED_V1 = 9223372036854771712


def _w(controller, files, value, key, optional=False):
    if isinstance(files, str):
        files = (files,)
    return (controller, files, str(value), key, optional)


def shares_to_weight(shares):
    """runc's cpu.shares (2..262144) -> cpu.weight (1..10000)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight):
    """runc's blkio.weight (10..1000) -> io.weight (1..10000)."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_v2(swap, limit):
    """OCI memory.swap (memory + swap) -> memory.swap.max, as runc converts it."""
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise ValueError("a swap limit needs a memory limit")
    if swap < limit:
        raise ValueError("memory+swap (%d) must not be below the memory limit (%d)" % (swap, limit))
    return swap - limit


def _dev(entry):
    return "%d:%d" % (entry["major"], entry["minor"])


THROTTLES = (("throttleReadBpsDevice", "read_bps_device", "rbps"),
             ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
             ("throttleReadIOPSDevice", "read_iops_device", "riops"),
             ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))

# runc's default allowed devices (libcontainer/specconv AllowedDevices), appended after the
# config's rules: (type, major, minor, access, path).  A default with a path is left out when
# linux.devices lists that path (runc: "the spec one takes priority"); linux.devices entries
# themselves add no rule (as with runc: a config allows them in linux.resources.devices).
DEFAULT_DEVICES = (
    ("c", -1, -1, "m", None), ("b", -1, -1, "m", None),
    ("c", 1, 3, "rwm", "/dev/null"), ("c", 1, 8, "rwm", "/dev/random"),
    ("c", 1, 7, "rwm", "/dev/full"), ("c", 5, 0, "rwm", "/dev/tty"),
    ("c", 1, 5, "rwm", "/dev/zero"), ("c", 1, 9, "rwm", "/dev/urandom"),
    ("c", 136, -1, "rwm", None), ("c", 5, 2, "rwm", None), ("c", 10, 200, "rwm", None))


def _num(n):
    return "*" if n is None or n == -1 else str(n)


def _device_paths(config_devices):
    """linux.devices as paths (config Device objects or the paths kept in state.json)."""
    return set(getattr(d, "path", d) for d in config_devices or ())


def device_rule_list(rules, config_devices=()):
    """The device rules in runc's order, as (type, major, minor, access, allow) with -1 for
    "any": linux.resources.devices, then runc's default allowed devices (those whose path
    linux.devices lists left out)."""
    out = []
    for rule in rules:
        major, minor = rule.get("major"), rule.get("minor")
        out.append((rule.get("type") or "a", -1 if major is None else major,
                    -1 if minor is None else minor, rule.get("access") or "rwm",
                    bool(rule["allow"])))
    given = _device_paths(config_devices)
    for kind, major, minor, access, path in DEFAULT_DEVICES:
        if path is None or path not in given:
            out.append((kind, major, minor, access, True))
    return out


def device_rules(rules, config_devices=()):
    """[(file, rule)] for the v1 devices controller (the kernel keeps the exceptions)."""
    out = []
    for kind, major, minor, access, allow in device_rule_list(rules, config_devices):
        text = "a" if kind == "a" else "%s %s:%s %s" % (kind, _num(major), _num(minor), access)
        out.append(("devices.allow" if allow else "devices.deny", text))
    return out


def _perms(text):
    return "".join(c for c in "rwm" if c in text)


def device_filter_rules(rules, config_devices=(), key=P + ".devices"):
    """The v1 devices controller emulated, as runc's devicefilter does before it builds the
    cgroup v2 program: (default_allow, [(type, major, minor, access, allow)]).

    Every rule goes through v1's semantics: "a" resets to allow-all or deny-all; otherwise a
    rule of the default's kind removes access from the exception with exactly its type,
    major and minor, and a rule of the other kind adds access to it.  Removing access that a
    wider (wildcard) exception still grants is refused, as runc refuses it (v1 would ignore it
    silently).  The result's exceptions all carry the non-default action, so the order in
    which the program tries them does not matter."""
    from ..errors import ConfigError
    default_allow, exceptions = False, {}
    for kind, major, minor, access, allow in device_rule_list(rules, config_devices):
        if kind == "a":
            default_allow, exceptions = allow, {}
            continue
        meta = (kind, major, minor)
        if allow != default_allow:
            exceptions[meta] = _perms(exceptions.get(meta, "") + access)
            continue
        for wider in ((kind, -1, minor), (kind, major, -1), (kind, -1, -1)):
            overlap = _perms("".join(c for c in access if c in exceptions.get(wider, "")))
            if wider != meta and overlap:
                raise ConfigError(key, "%s %s:%s %s cannot be %s: it would punch a hole in the "
                                  "wider rule %s %s:%s %s (runc refuses this too)"
                                  % (kind, _num(major), _num(minor), access,
                                     "allowed" if allow else "denied", kind, _num(wider[1]),
                                     _num(wider[2]), exceptions[wider]))
        left = "".join(c for c in exceptions.get(meta, "") if c not in access)
        if left:
            exceptions[meta] = left
        else:
            exceptions.pop(meta, None)
    ordered = sorted(exceptions.items(), key=lambda e: (e[0][1], e[0][2], e[0][0]))
    return default_allow, [(kind, major, minor, access, not default_allow)
                           for (kind, major, minor), access in ordered]


# ------------------------------------------------------------------ v1

def v1_writes(res, current_swap=None, config_devices=()):
    """(writes, warnings) for cgroup v1; ``current_swap`` is memory.memsw.limit_in_bytes now."""
    writes, warnings = [], []
    mem = res.get("memory") or {}
    key = P + ".memory."
    mem_writes = []
    if mem.get("limit"):
        mem_writes.append(_w("memory", "memory.limit_in_bytes", mem["limit"], key + "limit"))
    if mem.get("swap"):
        swap = _w("memory", "memory.memsw.limit_in_bytes", mem["swap"], key + "swap")
        # memsw must stay >= the memory limit: raise it first, lower it last.
        if mem["swap"] == -1 or (current_swap is not None and mem["swap"] > current_swap):
            mem_writes.insert(0, swap)
        else:
            mem_writes.append(swap)
    writes += mem_writes
    if mem.get("reservation"):
        writes.append(_w("memory", "memory.soft_limit_in_bytes", mem["reservation"],
                         key + "reservation"))
    if mem.get("swappiness") is not None:
        writes.append(_w("memory", "memory.swappiness", mem["swappiness"], key + "swappiness"))
    if mem.get("disableOOMKiller"):
        writes.append(_w("memory", "memory.oom_control", 1, key + "disableOOMKiller"))

    cpu = res.get("cpu") or {}
    key = P + ".cpu."
    if cpu.get("shares"):
        writes.append(_w("cpu", "cpu.shares", cpu["shares"], key + "shares"))
    if cpu.get("period"):
        writes.append(_w("cpu", "cpu.cfs_period_us", cpu["period"], key + "period"))
    if cpu.get("quota"):
        writes.append(_w("cpu", "cpu.cfs_quota_us", cpu["quota"], key + "quota"))
    if cpu.get("burst") is not None:
        writes.append(_w("cpu", "cpu.cfs_burst_us", cpu["burst"], key + "burst", True))
    if cpu.get("realtimePeriod"):
        writes.append(_w("cpu", "cpu.rt_period_us", cpu["realtimePeriod"],
                         key + "realtimePeriod", True))
    if cpu.get("realtimeRuntime"):
        writes.append(_w("cpu", "cpu.rt_runtime_us", cpu["realtimeRuntime"],
                         key + "realtimeRuntime", True))
    if cpu.get("idle") is not None:
        writes.append(_w("cpu", "cpu.idle", cpu["idle"], key + "idle", True))
    writes += _cpuset(cpu)
    writes += _pids(res)

    blkio = res.get("blockIO") or {}
    key = P + ".blockIO."
    if blkio.get("weight"):
        writes.append(_w("blkio", ("blkio.bfq.weight", "blkio.weight"), blkio["weight"],
                         key + "weight", True))
    if blkio.get("leafWeight"):
        writes.append(_w("blkio", "blkio.leaf_weight", blkio["leafWeight"],
                         key + "leafWeight", True))
    for i, entry in enumerate(blkio.get("weightDevice") or ()):
        where = "%sweightDevice[%d]" % (key, i)
        if entry.get("weight"):
            writes.append(_w("blkio", ("blkio.bfq.weight_device", "blkio.weight_device"),
                             "%s %d" % (_dev(entry), entry["weight"]), where, True))
        if entry.get("leafWeight"):
            writes.append(_w("blkio", "blkio.leaf_weight_device",
                             "%s %d" % (_dev(entry), entry["leafWeight"]), where, True))
    for name, file, _ in THROTTLES:
        for i, entry in enumerate(blkio.get(name) or ()):
            writes.append(_w("blkio", "blkio.throttle." + file,
                             "%s %d" % (_dev(entry), entry["rate"]),
                             "%s%s[%d]" % (key, name, i), True))

    for i, entry in enumerate(res.get("hugepageLimits") or ()):
        writes.append(_w("hugetlb", "hugetlb.%s.limit_in_bytes" % entry["pageSize"],
                         entry["limit"], "%s.hugepageLimits[%d]" % (P, i)))

    net = res.get("network") or {}
    if net.get("classID") is not None:
        writes.append(_w("net_cls", "net_cls.classid", net["classID"], P + ".network.classID"))
    for i, entry in enumerate(net.get("priorities") or ()):
        writes.append(_w("net_prio", "net_prio.ifpriomap",
                         "%s %d" % (entry["name"], entry["priority"]),
                         "%s.network.priorities[%d]" % (P, i)))
    writes += _rdma(res, "rdma")
    if res.get("devices"):
        for i, (file, rule) in enumerate(device_rules(res["devices"], config_devices)):
            writes.append(_w("devices", file, rule, P + ".devices"))
    if res.get("unified"):
        from .validate import check_unified_allowed
        check_unified_allowed(res, "v1")    # `update` of a v1 or hybrid container
    return writes, warnings


def _cpuset(cpu):
    out = []
    for name in ("cpus", "mems"):
        if cpu.get(name):
            out.append(_w("cpuset", "cpuset." + name, cpu[name], P + ".cpu." + name))
    return out


def _pids(res):
    limit = (res.get("pids") or {}).get("limit", 0)
    if not limit:
        return []
    return [_w("pids", "pids.max", limit if limit > 0 else "max", P + ".pids.limit")]


def _rdma(res, controller):
    out = []
    for name, entry in (res.get("rdma") or {}).items():
        parts = [name]
        if entry.get("hcaHandles") is not None:
            parts.append("hca_handle=%d" % entry["hcaHandles"])
        if entry.get("hcaObjects") is not None:
            parts.append("hca_object=%d" % entry["hcaObjects"])
        if len(parts) > 1:
            out.append(_w(controller, "rdma.max", " ".join(parts), "%s.rdma.%s" % (P, name)))
    return out


# ------------------------------------------------------------------ v2

def _max(value):
    return "max" if value == -1 else value


def v2_writes(res):
    """(writes, warnings) for cgroup v2 (every controller lives in the one tree)."""
    from ..errors import ConfigError
    writes, warnings = [], []
    mem = res.get("memory") or {}
    key = P + ".memory."
    limit, swap = mem.get("limit", 0), mem.get("swap", 0)
    try:
        swap_max = swap_v2(swap, limit)
    except ValueError as e:
        raise ConfigError(key + "swap", str(e)) from None
    if swap_max:
        writes.append(_w("memory", "memory.swap.max", _max(swap_max), key + "swap"))
    if limit:
        writes.append(_w("memory", "memory.max", _max(limit), key + "limit"))
    if mem.get("reservation"):
        writes.append(_w("memory", "memory.low", _max(mem["reservation"]), key + "reservation"))
    for name in ("swappiness", "disableOOMKiller"):
        if mem.get(name):
            warnings.append("%s%s: cgroup v2 has no such setting; NOT applied" % (key, name))

    cpu = res.get("cpu") or {}
    key = P + ".cpu."
    if cpu.get("shares"):
        writes.append(_w("cpu", "cpu.weight", shares_to_weight(cpu["shares"]), key + "shares"))
    if cpu.get("quota") or cpu.get("period"):
        text = str(cpu["quota"]) if cpu.get("quota", 0) > 0 else "max"
        if cpu.get("period"):
            text += " %d" % cpu["period"]
        writes.append(_w("cpu", "cpu.max", text, key + ("quota" if cpu.get("quota") else "period")))
    if cpu.get("burst") is not None:
        writes.append(_w("cpu", "cpu.max.burst", cpu["burst"], key + "burst", True))
    if cpu.get("idle") is not None:
        writes.append(_w("cpu", "cpu.idle", cpu["idle"], key + "idle", True))
    for name in ("realtimePeriod", "realtimeRuntime"):
        if cpu.get(name):
            warnings.append("%s%s: cgroup v2 has no realtime cpu controller; NOT applied"
                            % (key, name))
    writes += _cpuset(cpu)
    writes += _pids(res)

    blkio = res.get("blockIO") or {}
    key = P + ".blockIO."
    if blkio.get("weight"):
        writes.append(_w("io", ("io.bfq.weight", "io.weight"), blkio["weight"], key + "weight",
                         True))
    for i, entry in enumerate(blkio.get("weightDevice") or ()):
        if entry.get("weight"):
            writes.append(_w("io", ("io.bfq.weight",), "%s %d" % (_dev(entry), entry["weight"]),
                             "%sweightDevice[%d]" % (key, i), True))
    if blkio.get("leafWeight") or any(e.get("leafWeight") for e in blkio.get("weightDevice") or ()):
        warnings.append(key + "leafWeight: cgroup v2 has no leaf weights; NOT applied")
    for name, _, v2name in THROTTLES:
        for i, entry in enumerate(blkio.get(name) or ()):
            writes.append(_w("io", "io.max", "%s %s=%d" % (_dev(entry), v2name, entry["rate"]),
                             "%s%s[%d]" % (key, name, i), True))

    for i, entry in enumerate(res.get("hugepageLimits") or ()):
        writes.append(_w("hugetlb", "hugetlb.%s.max" % entry["pageSize"], entry["limit"],
                         "%s.hugepageLimits[%d]" % (P, i)))
    if res.get("network"):
        warnings.append(P + ".network: classID and priorities need the cgroup v1 net_cls and "
                        "net_prio controllers; NOT applied")
    writes += _rdma(res, "rdma")
    for name, value in (res.get("unified") or {}).items():
        writes.append(_w(name.split(".")[0], name, value, "%s.unified.%s" % (P, name)))
    return writes, warnings


def v2_fix_bfq(writes, has_file):
    """io.bfq.weight is on runc's scale; io.weight needs the converted value."""
    out = []
    for controller, files, value, key, optional in writes:
        if files == ("io.bfq.weight", "io.weight") and not has_file("io.bfq.weight"):
            value = str(blkio_to_io_weight(int(value)))
            files = ("io.weight",)
        out.append((controller, files, value, key, optional))
    return out
