"""Counters of a container's cgroups in runc's `events --stats` shape.

Every reader tolerates a missing file (a controller the host lacks reads as empty), so
stats work the same on v1, v2 and hybrid hosts.
"""

import os

from .base import read_text

USER_HZ = 100
NS_PER_TICK = 10 ** 9 // USER_HZ


def _int(path, default=0):
    text = read_text(path, "").strip()
    if text == "max":
        return 0
    try:
        return int(text)
    except ValueError:
        return default


def _keyed(path):
    out = {}
    for line in read_text(path, "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _ints(path):
    return [int(x) for x in read_text(path, "").split() if x.lstrip("-").isdigit()]


def network_stats(pid):
    """runc's network_interfaces from /proc/<pid>/net/dev (the container's net namespace)."""
    names = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets",
             "tx_errors", "tx_dropped")
    out = []
    for line in read_text("/proc/%d/net/dev" % pid, "").splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if name == "lo" or len(values) < 16:
            continue
        v = [int(x) for x in values]
        out.append(dict(zip(("name",) + names, [name] + v[0:4] + v[8:12])))
    return out


# ------------------------------------------------------------------ v1

def _blkio_v1(path):
    entries = []
    for line in read_text(path, "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                            "value": int(parts[2])})
    return entries


def _mem_v1(d, prefix):
    return {"limit": _int(os.path.join(d, prefix + "limit_in_bytes")),
            "usage": _int(os.path.join(d, prefix + "usage_in_bytes")),
            "max": _int(os.path.join(d, prefix + "max_usage_in_bytes")),
            "failcnt": _int(os.path.join(d, prefix + "failcnt"))}


def _hugetlb_v1(d):
    out = {}
    for name in sorted(os.listdir(d)) if d and os.path.isdir(d) else ():
        if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
            size = name.split(".")[1]
            base = os.path.join(d, "hugetlb.%s." % size)
            out[size] = {"usage": _int(base + "usage_in_bytes"),
                         "max": _int(base + "max_usage_in_bytes"),
                         "failcnt": _int(base + "failcnt")}
    return out


def v1_stats(paths):
    cpu, cpuacct = paths.get("cpu"), paths.get("cpuacct") or paths.get("cpu")
    stats = {}
    if cpuacct:
        j = lambda name: os.path.join(cpuacct, name)
        ticks = _keyed(j("cpuacct.stat"))
        stats["cpu"] = {"usage": {"total": _int(j("cpuacct.usage")),
                                  "percpu": _ints(j("cpuacct.usage_percpu")),
                                  "percpu_kernel": _ints(j("cpuacct.usage_percpu_sys")),
                                  "percpu_user": _ints(j("cpuacct.usage_percpu_user")),
                                  "kernel": ticks.get("system", 0) * NS_PER_TICK,
                                  "user": ticks.get("user", 0) * NS_PER_TICK}}
    if cpu:
        t = _keyed(os.path.join(cpu, "cpu.stat"))
        stats.setdefault("cpu", {})["throttling"] = {
            "periods": t.get("nr_periods", 0), "throttled_periods": t.get("nr_throttled", 0),
            "throttled_time": t.get("throttled_time", 0)}
    mem = paths.get("memory")
    if mem:
        stats["memory"] = {"usage": _mem_v1(mem, "memory."), "swap": _mem_v1(mem, "memory.memsw."),
                           "kernel": _mem_v1(mem, "memory.kmem."),
                           "kernelTCP": _mem_v1(mem, "memory.kmem.tcp."),
                           "raw": _keyed(os.path.join(mem, "memory.stat"))}
    pids = paths.get("pids")
    if pids:
        stats["pids"] = {"current": _int(os.path.join(pids, "pids.current")),
                         "limit": _int(os.path.join(pids, "pids.max"))}
    blkio = paths.get("blkio")
    stats["blkio"] = {}
    if blkio:
        for key, name in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                          ("ioServicedRecursive", "io_serviced_recursive")):
            stats["blkio"][key] = _blkio_v1(os.path.join(blkio, "blkio.throttle." + name))
    stats["hugetlb"] = _hugetlb_v1(paths.get("hugetlb"))
    return stats


# ------------------------------------------------------------------ v2

def v2_hugetlb(d):
    out = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else ():
        if name.startswith("hugetlb.") and name.endswith(".current") and "rsvd" not in name:
            size = name.split(".")[1]
            base = os.path.join(d, "hugetlb.%s." % size)
            out[size] = {"usage": _int(base + "current"), "max": _int(base + "max"),
                         "failcnt": _keyed(base + "events").get("max", 0)}
    return out


def _io_v2(d):
    service, serviced = [], []
    for line in read_text(os.path.join(d, "io.stat"), "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        values = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for op, b, n in (("Read", "rbytes", "rios"), ("Write", "wbytes", "wios")):
            service.append({"major": major, "minor": minor, "op": op,
                            "value": int(values.get(b, 0))})
            serviced.append({"major": major, "minor": minor, "op": op,
                             "value": int(values.get(n, 0))})
    return {"ioServiceBytesRecursive": service, "ioServicedRecursive": serviced}


def v2_stats(d):
    j = lambda name: os.path.join(d, name)
    c = _keyed(j("cpu.stat"))
    stats = {"cpu": {"usage": {"total": c.get("usage_usec", 0) * 1000,
                               "kernel": c.get("system_usec", 0) * 1000,
                               "user": c.get("user_usec", 0) * 1000},
                     "throttling": {"periods": c.get("nr_periods", 0),
                                    "throttled_periods": c.get("nr_throttled", 0),
                                    "throttled_time": c.get("throttled_usec", 0) * 1000}}}
    events = _keyed(j("memory.events"))
    stats["memory"] = {"usage": {"limit": _int(j("memory.max")), "usage": _int(j("memory.current")),
                                 "max": _int(j("memory.peak")), "failcnt": events.get("max", 0)},
                       "swap": {"limit": _int(j("memory.swap.max")),
                                "usage": _int(j("memory.swap.current"))},
                       "raw": _keyed(j("memory.stat"))}
    stats["pids"] = {"current": _int(j("pids.current")), "limit": _int(j("pids.max"))}
    stats["blkio"] = _io_v2(d)
    stats["hugetlb"] = v2_hugetlb(d)
    return stats
