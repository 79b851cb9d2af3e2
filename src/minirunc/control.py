"""Commands on a live container's cgroups: pause, resume, update, events, ps.

Each loads the container under its lock, rebuilds the cgroup driver from the record in
state.json (no host detection needed) and works through it.  `events` holds the lock only
while it reads the state, so it never blocks other commands.
"""

import sys
import time

from . import jsontext, log
from .errors import ConfigError, StateError, UsageError
from .state import Container, check_id, process_start_time


def _driver(c):
    from .cgroups import driver_from_record
    return driver_from_record(c.data.get("cgroup"))


def _require_cgroups(c, what):
    driver = _driver(c)
    if driver.name == "none":
        raise StateError(c.id, "runs without cgroups (none were mounted when it was created); "
                         "%s needs them" % what)
    return driver


def pause(root, container_id):
    check_id(container_id)
    with Container(root, container_id).lock() as c:
        c.load()
        status = c.status()
        if status not in ("running", "created"):
            raise StateError(container_id, "cannot pause a container that is %s (only a running "
                             "or created one)" % status)
        driver = _require_cgroups(c, "pause")
        if not driver.can_freeze():
            raise StateError(container_id, "its cgroups have no freezer: pause is not possible")
        driver.freeze()


def resume(root, container_id):
    check_id(container_id)
    with Container(root, container_id).lock() as c:
        c.load()
        status = c.status()
        if status != "paused":
            raise StateError(container_id, "cannot resume a container that is %s (only a paused "
                             "one)" % status)
        _driver(c).thaw()


# ------------------------------------------------------------------ update

def _merge(current, delta):
    merged = dict(current)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = dict(merged[key], **value)
        else:
            merged[key] = value
    return merged


def update(root, container_id, delta):
    """Apply ``delta`` (a linux.resources object, already validated) to a live container."""
    from .cgroups.validate import check_resources
    check_id(container_id)
    with Container(root, container_id).lock() as c:
        c.load()
        status = c.status()
        if status in ("stopped", "creating"):
            raise StateError(container_id, "cannot update a container that is %s" % status)
        driver = _require_cgroups(c, "update")
        current = c.data.get("resources") or {}
        merged = _merge(current, delta)
        merged, _ = check_resources(merged)
        # Write whole groups that changed, so v2's cpu.max gets both quota and period.
        changed = {key: merged[key] for key in delta}
        # linux.devices paths: a default device rule they shadow stays left out (runc).
        for warning in driver.apply(changed, c.data.get("devicePaths") or (), current):
            log.warning(warning)
        data = dict(c.data, resources=merged)
        c.save(data)


# ------------------------------------------------------------------ events

def _stats_event(container_id, driver, pid):
    from .cgroups.stats import network_stats
    data = driver.stats()
    data["intel_rdt"] = {}
    data["network_interfaces"] = network_stats(pid) if pid else None
    return {"type": "stats", "id": container_id, "data": data}


def _emit(event):
    sys.stdout.write(jsontext.dumps(event) + "\n")
    sys.stdout.flush()


def parse_interval(text):
    """runc's Go duration for --interval: 5s, 500ms, 1m, 1.5s (a bare number is seconds)."""
    units = (("ms", 0.001), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0),
             ("h", 3600.0))
    text = text.strip()
    for suffix, scale in units:
        if text.endswith(suffix):
            number = text[:-len(suffix)]
            break
    else:
        number, scale = text, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise UsageError("--interval: %r is not a duration like 5s or 500ms" % text) from None
    if value <= 0:
        raise UsageError("--interval must be positive")
    return value


def events(root, container_id, interval=5.0, stats_only=False):
    """Print one stats record (--stats), or a stream: stats every ``interval`` and an oom
    record whenever the OOM killer acts in the container's cgroup.  Ends when it stops."""
    check_id(container_id)
    with Container(root, container_id).lock(shared=True) as c:
        c.load()
        if c.status() == "stopped":
            raise StateError(container_id, "is not running (status stopped)")
        driver = _require_cgroups(c, "events")
        pid, pid_start = c.pid, c.data.get("pid_start")
    if stats_only:
        _emit(_stats_event(container_id, driver, pid))
        return
    last_oom = driver.oom_count() or 0
    next_stats = time.monotonic()
    poll = min(0.1, interval)
    while True:
        alive = process_start_time(pid) == pid_start
        oom = driver.oom_count() or 0
        if oom > last_oom:
            for _ in range(oom - last_oom):
                _emit({"type": "oom", "id": container_id})
            last_oom = oom
        if not alive:
            return
        if time.monotonic() >= next_stats:
            _emit(_stats_event(container_id, driver, pid))
            next_stats += interval
        time.sleep(poll)


# ------------------------------------------------------------------ ps

def ps(root, container_id, fmt="table", ps_args=()):
    from .container import container_pids
    check_id(container_id)
    if fmt not in ("table", "json"):
        raise UsageError("ps: --format must be table or json, not %r" % fmt)
    with Container(root, container_id).lock(shared=True) as c:
        c.load()
        # A stopped container may still have processes in its cgroups (its init's orphans).
        stopped_without_cgroups = c.status() == "stopped" and not c.data.get("cgroup")
        pids = [] if stopped_without_cgroups else container_pids(c)
    if fmt == "json":
        if ps_args:
            raise UsageError("ps: options for ps cannot be combined with --format json")
        sys.stdout.write(jsontext.dumps(sorted(pids)) + "\n")
        return
    _ps_table(pids, list(ps_args) or ["-ef"])


def _ps_table(pids, args):
    import subprocess
    try:
        out = subprocess.run(["ps"] + args, capture_output=True, text=True)
    except OSError as e:
        raise UsageError("ps: cannot run ps: %s" % e.strerror) from None
    if out.returncode != 0:
        raise UsageError("ps %s failed: %s" % (" ".join(args), out.stderr.strip()))
    lines = out.stdout.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise UsageError("ps %s: its output has no PID column (add -o pid,... )" % " ".join(args))
    column = header.index("PID")
    wanted = set(pids)
    rows = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            rows.append(line)
    sys.stdout.write("\n".join(rows) + "\n")


# ------------------------------------------------------------------ update's flags

def parse_bytes(text, flag):
    """runc's RAMInBytes: 512m, 1g, 1024k, 100 (bytes); -1 is unlimited."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    scale = 1
    for suffix, factor in (("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("tb", 1 << 40),
                           ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40),
                           ("b", 1)):
        if t.endswith(suffix):
            t, scale = t[:-len(suffix)], factor
            break
    try:
        value = float(t)
    except ValueError:
        raise UsageError("--%s: %r is not a size like 512m or 1g" % (flag, text)) from None
    if value < 0:
        raise UsageError("--%s must not be negative (use -1 for unlimited)" % flag)
    return int(value * scale)


def _int_flag(text, flag):
    try:
        return int(text)
    except ValueError:
        raise UsageError("--%s must be a number, not %r" % (flag, text)) from None


# flag -> (group, key, parser)
UPDATE_FLAGS = {
    "memory": ("memory", "limit", parse_bytes),
    "memory-reservation": ("memory", "reservation", parse_bytes),
    "memory-swap": ("memory", "swap", parse_bytes),
    "kernel-memory": ("memory", "kernel", parse_bytes),
    "kernel-memory-tcp": ("memory", "kernelTCP", parse_bytes),
    "cpu-shares": ("cpu", "shares", _int_flag),
    "cpu-quota": ("cpu", "quota", _int_flag),
    "cpu-period": ("cpu", "period", _int_flag),
    "cpu-rt-period": ("cpu", "realtimePeriod", _int_flag),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", _int_flag),
    "cpuset-cpus": ("cpu", "cpus", lambda v, f: v),
    "cpuset-mems": ("cpu", "mems", lambda v, f: v),
    "pids-limit": ("pids", "limit", _int_flag),
    "blkio-weight": ("blockIO", "weight", _int_flag),
}


def update_delta(options, stdin=None):
    """The linux.resources object `update` applies: --resources FILE|- then the flags."""
    from .cgroups.validate import check_resources
    delta = {}
    source = options.get("resources")
    if source:
        try:
            if source == "-":
                text = (stdin or sys.stdin).read()
            else:
                with open(source) as f:
                    text = f.read()
            delta = jsontext.loads(text)
        except OSError as e:
            raise UsageError("--resources %s: %s" % (source, e.strerror)) from None
        except ValueError as e:
            raise ConfigError("", "invalid JSON: %s" % e, file=source) from None
        if not isinstance(delta, dict):
            raise ConfigError("", "must be a JSON object (linux.resources)", file=source)
    for flag, (group, key, parse) in UPDATE_FLAGS.items():
        if options.get(flag) is not None:
            delta.setdefault(group, {})
            delta[group] = dict(delta[group], **{key: parse(options[flag], flag)})
    if not delta:
        raise UsageError("update: nothing to change (give --resources FILE or a flag such as "
                         "--memory)")
    delta, warnings = check_resources(delta)
    for warning in warnings:
        log.warning(warning)
    return delta
