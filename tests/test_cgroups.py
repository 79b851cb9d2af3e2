"""Cgroups with real containers: limits seen from outside, pause/resume, update, events, ps,
the none driver, and cleanup after a runtime killed in the middle of create."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import runtime_env, wait_for
from minirunc.kernelfloor import release

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup"),
                                reason="needs root and a cgroup filesystem")

MIB = 1 << 20


def with_resources(resources, **linux):
    def edit(config):
        config["linux"]["resources"] = resources
        config["linux"].update(linux)
    return edit


def cgroup_dirs(rt, cid):
    """The container's cgroup directories, as recorded in its state.json."""
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        record = json.load(f)["cgroup"]
    dirs = set((record.get("paths") or {}).values())
    if record.get("unified"):
        dirs.add(record["unified"])
    return record, sorted(dirs)


def controller_file(rt, cid, controller, name):
    record, _ = cgroup_dirs(rt, cid)
    if controller in (record.get("paths") or {}):
        return os.path.join(record["paths"][controller], name)
    return os.path.join(record["unified"], name)


def read(path):
    with open(path) as f:
        return f.read().strip()


def start_detached(rt, make, args, resources, **linux):
    cid = rt.new_id("cg")
    r = rt("run", "-d", "--bundle", make(args, edit=with_resources(resources, **linux)), cid)
    assert r.returncode == 0, r.stderr
    return cid, r


def cpu_usage_ns(rt, cid):
    """The cgroup's own cpu counter (cpuacct.usage on v1, cpu.stat usage_usec on v2)."""
    record, _ = cgroup_dirs(rt, cid)
    paths = record.get("paths") or {}
    if "cpuacct" in paths:
        return int(read(os.path.join(paths["cpuacct"], "cpuacct.usage")))
    for line in read(os.path.join(record["unified"], "cpu.stat")).splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) * 1000
    raise AssertionError("no cpu counter")


def test_limits_are_written_where_runc_puts_them(rt, make):
    cid, _ = start_detached(rt, make, ["sleep", "100"], {
        "memory": {"limit": 32 * MIB, "swap": 32 * MIB}, "pids": {"limit": 20},
        "cpu": {"quota": 20000, "period": 100000, "shares": 512}})
    record, dirs = cgroup_dirs(rt, cid)
    pid = rt.state(cid)["pid"]
    own = open("/proc/%d/cgroup" % pid).read()
    for d in dirs:
        assert os.path.isdir(d) and d.endswith("/" + cid)
        assert str(pid) in read(os.path.join(d, "cgroup.procs")).split()
    assert cid in own
    if record["driver"] in ("v1", "hybrid"):
        assert read(controller_file(rt, cid, "memory", "memory.limit_in_bytes")) == str(32 * MIB)
        assert read(controller_file(rt, cid, "cpu", "cpu.cfs_quota_us")) == "20000"
        assert read(controller_file(rt, cid, "cpu", "cpu.shares")) == "512"
    else:
        assert read(controller_file(rt, cid, "memory", "memory.max")) == str(32 * MIB)
        assert read(controller_file(rt, cid, "cpu", "cpu.max")) == "20000 100000"
    assert read(controller_file(rt, cid, "pids", "pids.max")) == "20"
    assert rt("delete", "--force", cid).returncode == 0
    assert not any(os.path.exists(d) for d in dirs)


def test_memory_hog_is_oom_killed_and_events_report_it(rt, make, tmp_path):
    cid = rt.new_id("cg")
    bundle = make(["sh", "-c", "sleep 0.3; dd if=/dev/zero bs=1M 2>/dev/null | tail; "
                   "echo hog-status $?; sleep 100"],
                  edit=with_resources({"memory": {"limit": 32 * MIB, "swap": 32 * MIB}}))
    out = tmp_path / "out"
    with open(out, "w") as f:
        r = subprocess.run(rt.cmd("create", "--bundle", bundle, cid), env=runtime_env(),
                           stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=30)
    assert r.returncode == 0, out.read_text()
    events_out = tmp_path / "events"
    with open(events_out, "w") as f:
        events = subprocess.Popen(rt.cmd("events", "--interval", "5s", cid), env=runtime_env(),
                                  stdout=f, stderr=subprocess.STDOUT)
    try:
        assert rt("start", cid).returncode == 0
        assert wait_for(lambda: '"oom"' in events_out.read_text(), timeout=15), \
            events_out.read_text()
    finally:
        events.kill()
        events.wait()
    lines = [json.loads(line) for line in events_out.read_text().splitlines()]
    assert {"type": "oom", "id": cid} in lines
    assert lines[0]["type"] == "stats" and lines[0]["data"]["memory"]["usage"]["limit"] == 32 * MIB
    assert wait_for(lambda: "hog-status 137" in out.read_text())


def test_fork_loop_stops_at_pids_max(rt, make, tmp_path):
    # The list comes from a here-document, not a pipe: a `seq` still exiting when the limit
    # is hit would leave the group one below it. xargs keeps waiting for its sleeps after the
    # refused fork, so the count stays at the limit.
    listing = "\n".join(str(i) for i in range(30))
    script = "xargs -n1 -P30 sleep 100 <<EOF\n%s\nEOF\n" % listing
    cid, r = start_detached(rt, make, ["sh", "-c", script], {"pids": {"limit": 6}})
    current = controller_file(rt, cid, "pids", "pids.current")
    assert wait_for(lambda: read(current) == "6"), read(current)
    refused = controller_file(rt, cid, "pids", "pids.events")
    assert wait_for(lambda: int(read(refused).split()[1]) > 0), read(refused)
    time.sleep(0.3)
    assert read(current) == "6"
    pids = json.loads(rt("ps", "--format", "json", cid).stdout)
    assert len(pids) == 6


def test_cpu_quota_of_20_percent(rt, make):
    cid, _ = start_detached(rt, make, ["sh", "-c", "while :; do :; done"],
                            {"cpu": {"quota": 20000, "period": 100000}})
    time.sleep(0.3)
    shares = []
    # A busy host (2 cores, builds next door) can starve the loop below its quota: measure
    # again then; above the quota it must never go.
    for _ in range(3):
        used0, t0 = cpu_usage_ns(rt, cid), time.monotonic()
        time.sleep(2)
        used1, t1 = cpu_usage_ns(rt, cid), time.monotonic()
        shares.append((used1 - used0) / ((t1 - t0) * 1e9))
        assert shares[-1] < 0.30, shares
        if shares[-1] > 0.10:
            break
    assert 0.10 < shares[-1] < 0.30, shares
    stats = json.loads(rt("events", "--stats", cid).stdout)
    assert stats["type"] == "stats" and stats["data"]["cpu"]["usage"]["total"] >= used1
    assert stats["data"]["cpu"]["throttling"]["throttled_periods"] > 0


def _counter(pid):
    try:
        return int(open("/proc/%d/root/dev/shm/n" % pid).read() or 0)
    except (OSError, ValueError):
        return 0


def test_pause_stops_a_counter_and_resume_continues(rt, make):
    cid, _ = start_detached(rt, make, ["sh", "-c", "i=0; while :; do i=$((i+1)); "
                                       "echo $i > /dev/shm/n; done"], {})
    pid = rt.state(cid)["pid"]
    assert wait_for(lambda: _counter(pid) > 10)
    assert rt("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    assert "paused" in rt("list").stdout
    frozen = _counter(pid)
    time.sleep(0.4)
    assert _counter(pid) == frozen
    r = rt("pause", cid)
    assert r.returncode != 0 and "paused" in r.stderr
    assert rt("resume", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    assert wait_for(lambda: _counter(pid) > frozen + 10)
    r = rt("resume", cid)
    assert r.returncode != 0 and "only a paused" in r.stderr
    rt("pause", cid)
    assert rt("delete", "--force", cid).returncode == 0   # a paused container can be deleted


def test_update_raises_a_limit_the_container_then_uses(rt, make, tmp_path):
    # 20 MiB in one line: tail is OOM-killed under 16 MiB, and succeeds once raised to 64.
    cid, _ = start_detached(rt, make, ["sh", "-c", "while :; do dd if=/dev/zero bs=1M count=20 "
                                       "2>/dev/null | tail >/dev/null && echo ok >/dev/shm/r; "
                                       "sleep 0.05; done"],
                            {"memory": {"limit": 16 * MIB, "swap": 16 * MIB}})
    pid = rt.state(cid)["pid"]
    record, _ = cgroup_dirs(rt, cid)
    v2 = record["driver"] == "v2"
    limit_file = controller_file(rt, cid, "memory", "memory.max" if v2 else "memory.limit_in_bytes")
    time.sleep(0.5)
    assert not os.path.exists("/proc/%d/root/dev/shm/r" % pid)
    r = rt("update", "--memory", "64m", "--memory-swap", "64m", cid)
    assert r.returncode == 0, r.stderr
    assert read(limit_file) == str(64 * MIB)
    assert wait_for(lambda: os.path.exists("/proc/%d/root/dev/shm/r" % pid))
    peak = controller_file(rt, cid, "memory", "memory.peak" if v2 else "memory.max_usage_in_bytes")
    if os.path.exists(peak):
        assert int(read(peak)) > 16 * MIB
    resources = tmp_path / "r.json"
    resources.write_text(json.dumps({"pids": {"limit": 42}}))
    r = rt("update", "--resources", resources, cid)
    assert r.returncode == 0, r.stderr
    assert read(controller_file(rt, cid, "pids", "pids.max")) == "42"
    r = rt("update", "--memory", "12x", cid)
    assert r.returncode != 0 and "--memory" in r.stderr
    r = rt("update", "--cpu-period", "5", cid)
    assert r.returncode != 0 and "linux.resources.cpu.period" in r.stderr


def test_ps_lists_the_container_processes(rt, make):
    cid, _ = start_detached(rt, make, ["sh", "-c", "sleep 101 & sleep 102 & wait"], {})
    pid = rt.state(cid)["pid"]
    assert wait_for(lambda: len(json.loads(rt("ps", "--format", "json", cid).stdout)) == 3)
    pids = json.loads(rt("ps", "--format", "json", cid).stdout)
    assert pid in pids
    table = rt("ps", cid).stdout.splitlines()
    assert table[0].split()[:2] == ["UID", "PID"]
    assert len(table) == 4 and any("sleep 101" in line for line in table)
    custom = rt("ps", cid, "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and len(custom) == 4
    r = rt("kill", "--all", cid, "KILL")
    assert r.returncode == 0
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    for p in pids:
        assert wait_for(lambda: not os.path.exists("/proc/%d" % p) or
                        open("/proc/%d/stat" % p).read().split(")")[1].split()[0] == "Z")


def test_none_driver_runs_and_warns_once(rt, make):
    bundle = make(["sh", "-c", "echo ran"], edit=with_resources(
        {"memory": {"limit": 32 * MIB}, "pids": {"limit": 10}}))
    cid = rt.new_id("cg")
    script = ('umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup; '
              'exec "$@"')
    command = ["unshare", "-m", "sh", "-c", script, "sh"] + rt.cmd("run", "--bundle", bundle, cid)
    r = subprocess.run(command, env=runtime_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, r.stderr
    assert "no cgroup filesystem" in warnings[0] and "memory, pids" in warnings[0]


def test_delete_force_after_runtime_killed_during_create(rt, make, tmp_path):
    # The console socket's backlog is full: create blocks in connect() at its very end,
    # with the cgroups made and the init inside them.  Then the runtime is killed.
    sock_path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.connect(sock_path)
    cid = rt.new_id("cg")
    bundle = make(["sleep", "100"], terminal=True,
                  edit=with_resources({"memory": {"limit": 64 * MIB}, "pids": {"limit": 50}},
                                      cgroupsPath="/minirunc-test/" + cid))
    proc = subprocess.Popen(rt.cmd("create", "--console-socket", sock_path, "--bundle", bundle,
                                   cid), env=runtime_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = os.path.join(rt.root, cid, "state.json")

    def init_joined():
        try:
            with open(state_path) as f:
                pid = json.load(f).get("pid")
            with open("/proc/%d/cgroup" % pid) as f:
                return ("/minirunc-test/" + cid) in f.read()
        except (OSError, ValueError, TypeError):
            return False
    try:
        assert wait_for(init_joined, timeout=15)
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        filler.close()
        listener.close()
    record, dirs = cgroup_dirs(rt, cid)
    pid = json.load(open(state_path))["pid"]
    assert dirs and all(os.path.isdir(d) for d in dirs)
    if record["driver"] == "hybrid":
        assert record["unified"] in dirs and len(dirs) > 1
    assert rt("state", cid).returncode == 0
    r = rt("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not any(os.path.exists(d) for d in dirs)
    # the parent the runtime made for the absolute cgroupsPath is gone too
    assert not any(os.path.exists(os.path.dirname(d)) for d in dirs)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                    open("/proc/%d/stat" % pid).read().split(")")[1].split()[0] == "Z")


def cgroup_dirs_named(names, top="/sys/fs/cgroup", depth=4):
    """Directories under the cgroup mounts whose name is one of ``names`` (other runtimes
    may be busy in the same trees, so look for ours only)."""
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        if dirpath.count("/") - top.count("/") >= depth:
            dirnames[:] = []
        found += [os.path.join(dirpath, d) for d in dirnames if d in names]
    return found


def test_bad_resources_leave_nothing_behind(rt, make):
    cases = [
        ({"memroy": {"limit": 1}}, "linux.resources.memroy: unknown key"),
        ({"memory": {"limit": -5}}, "linux.resources.memory.limit"),
        ({"cpu": {"cpus": "0-1,x"}}, "linux.resources.cpu.cpus"),
        ({"cpu": {"cpus": "63"}}, "cpuset.cpus"),      # the kernel refuses it
    ]
    ids = []
    for resources, message in cases:
        cid = rt.new_id("cg")
        ids.append(cid)
        r = rt("run", "--bundle", make(["true"], edit=with_resources(resources)), cid)
        assert r.returncode != 0 and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert rt("state", cid).returncode != 0
    cid = rt.new_id("cg")
    r = rt("run", "--bundle", make(["true"], edit=with_resources({}, cgroupsPath="../x")), cid)
    assert r.returncode != 0 and "linux.cgroupsPath" in r.stderr and ".." in r.stderr
    assert cgroup_dirs_named(set(ids)) == []


def test_missing_kernel_file_is_a_warning_naming_it(rt, make):
    # Current kernels dropped CFQ, hence blkio.leaf_weight; the weight goes to bfq.
    cid, r = start_detached(rt, make, ["sleep", "100"],
                            {"blockIO": {"weight": 500, "leafWeight": 300}})
    record, _ = cgroup_dirs(rt, cid)
    if record["driver"] == "v2":
        assert "linux.resources.blockIO.leafWeight" in r.stderr
        return
    blkio = record["paths"]["blkio"]
    if os.path.exists(os.path.join(blkio, "blkio.leaf_weight")):
        pytest.skip("this kernel still has blkio.leaf_weight")
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    leaf = [w for w in warnings if "linux.resources.blockIO.leafWeight" in w]
    assert len(leaf) == 1 and "blkio.leaf_weight" in leaf[0], r.stderr
    # The weight goes to the first of bfq's and CFQ's files there is; a disk without
    # either scheduler (no bfq loaded) has neither, and that is a warning of its own.
    weight_files = [n for n in ("blkio.bfq.weight", "blkio.weight")
                    if os.path.exists(os.path.join(blkio, n))]
    if weight_files:
        assert read(os.path.join(blkio, weight_files[0])).split()[-1] == "500"
        assert warnings == leaf, r.stderr
    else:
        assert sorted(warnings) == sorted(leaf + [
            "minirunc: warning: linux.resources.blockIO.weight: the kernel has no "
            "blkio.bfq.weight or blkio.weight; NOT applied"]), r.stderr


def test_systemd_form_maps_to_cgroupfs(rt, make):
    cid = rt.new_id("cg")
    bundle = make(["sleep", "100"], edit=with_resources(
        {"pids": {"limit": 10}}, cgroupsPath="minirunc-test.slice:mr:" + cid))
    r = rt("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    assert "cgroupfs path /minirunc.slice/minirunc-test.slice/mr-%s.scope" % cid in r.stderr
    _, dirs = cgroup_dirs(rt, cid)
    assert all(d.endswith("/minirunc.slice/minirunc-test.slice/mr-%s.scope" % cid) for d in dirs)
    assert rt("delete", "--force", cid).returncode == 0
    assert not any(os.path.exists(os.path.dirname(os.path.dirname(d))) for d in dirs)


def _in_private_cgroup2(rt, script, timeout=30):
    """Run ``script`` (sh) where only cgroup2 is mounted at /sys/fs/cgroup, in a private mount
    namespace; $M is the runtime command line."""
    prologue = ("umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup; "
                "mount -t cgroup2 cgroup2 /sys/fs/cgroup || exit 99; ")
    command = ["unshare", "-m", "sh", "-c", prologue + script, "sh"] + rt.cmd()
    return subprocess.run(command, env=runtime_env(dict(M=" ".join(rt.cmd()))),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def test_v2_driver_pause_ps_delete(rt, make):
    bundle = make(["sleep", "100"])
    cid = rt.new_id("cg")
    r = _in_private_cgroup2(rt, (
        'set -e; $M run -d --bundle %(b)s %(c)s; pid=$($M ps --format json %(c)s | tr -dc 0-9); '
        'echo "pid=$pid"; grep "^0::" /proc/$pid/cgroup; '
        'test -d /sys/fs/cgroup/%(c)s && echo dir-made; '
        '$M pause %(c)s; $M state %(c)s | grep -o paused; cat /sys/fs/cgroup/%(c)s/cgroup.freeze; '
        '$M resume %(c)s; $M state %(c)s | grep -o running; '
        '$M events --stats %(c)s | grep -o \'"type":"stats"\'; '
        '$M delete --force %(c)s; test ! -e /sys/fs/cgroup/%(c)s && echo dir-gone'
    ) % {"b": bundle, "c": cid})
    if r.returncode == 99:
        pytest.skip("cannot mount cgroup2 here")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split()
    assert "0::/%s" % cid in lines
    for word in ("dir-made", "paused", "1", "running", '"type":"stats"', "dir-gone"):
        assert word in lines, r.stdout


def test_v2_missing_controller_is_one_error_and_nothing_is_left(rt, make):
    bundle = make(["true"], edit=with_resources({"cpu": {"cpus": "0"}}))
    cid = rt.new_id("cg")
    r = _in_private_cgroup2(rt, (
        'grep -qw cpuset /sys/fs/cgroup/cgroup.controllers && exit 98; '
        '$M run --bundle %(b)s %(c)s; echo "rc=$?"; test ! -e /sys/fs/cgroup/%(c)s && echo gone'
    ) % {"b": bundle, "c": cid})
    if r.returncode in (98, 99):
        pytest.skip("cgroup2 here has the cpuset controller, or cannot be mounted")
    assert "rc=1" in r.stdout and "gone" in r.stdout, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        "minirunc: linux.resources.cpu.cpus: this host has no cpuset cgroup controller"]


def test_cgroup_namespace_is_rooted_at_the_container_cgroup(rt, make):
    def edit(config):
        config["linux"]["namespaces"].append({"type": "cgroup"})
        config["linux"]["resources"] = {"pids": {"limit": 5}}
    bundle = make(["sh", "-c", "cat /proc/self/cgroup; sleep 1"], edit=edit)
    cid = rt.new_id("cg")
    proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, cid), env=runtime_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    own_before = open("/proc/self/cgroup").read()
    assert wait_for(lambda: os.path.exists(os.path.join(rt.root, cid, "state.json")) and
                    rt("state", cid).stdout.count('"running"') == 1)
    # the runtime went back to its own cgroups after the spawn
    assert open("/proc/%d/cgroup" % proc.pid).read() == own_before
    assert read(controller_file(rt, cid, "pids", "pids.max")) == "5"
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    paths = [line.split(":", 2)[2] for line in out.splitlines()]
    assert paths and set(paths) == {"/"}, out


# -- cgroup v2 device rules: the eBPF program --------------------------------------------

NULL_DEVICE = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
               "uid": 0, "gid": 0}
DENY_ALL = {"allow": False, "access": "rwm"}
DENY_NULL = [DENY_ALL, {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
ALLOW_NULL = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]


def _devices(rules):
    # linux.devices lists /dev/null: runc then leaves out its default rule for that path,
    # which would otherwise (coming after the config's rules) allow it again
    def edit(config):
        config["linux"]["resources"] = {"devices": rules}
        config["linux"]["devices"] = [NULL_DEVICE]
    return edit


def test_v2_device_program_denies_dev_null_and_update_replaces_it(rt, make, tmp_path):
    probe = "echo x > /dev/null && echo null-write-ok; head -c 4 /dev/zero | wc -c; echo done"
    denied = make(["sh", "-c", probe], edit=_devices(DENY_NULL))
    allowed = make(["sh", "-c", probe], edit=_devices(ALLOW_NULL))
    loop = make(["sh", "-c", "while :; do rm -f /dev/shm/r; echo x 2>/dev/shm/e >/dev/null && "
                 "echo ok > /dev/shm/r; sleep 0.05; done"], edit=_devices(DENY_NULL))
    allow_file, deny_file = tmp_path / "allow.json", tmp_path / "deny.json"
    allow_file.write_text(json.dumps({"devices": ALLOW_NULL}))
    deny_file.write_text(json.dumps({"devices": DENY_NULL}))
    c1, c2, c3 = rt.new_id("cg"), rt.new_id("cg"), rt.new_id("cg")
    seen = 'r() { test -e /proc/$pid/root/dev/shm/r && echo yes || echo no; }; '
    wait = ('w() { i=0; while [ $i -lt 50 ] && [ "$(r)" != "$1" ]; do sleep 0.1; '
            'i=$((i+1)); done; r; }; ')
    r = _in_private_cgroup2(rt, seen + wait + (
        'echo "== denied"; $M run --bundle %(d)s %(c1)s 2>&1; '
        'echo "== allowed"; $M run --bundle %(a)s %(c2)s 2>&1; '
        'echo "== update"; $M run -d --bundle %(l)s %(c3)s || exit 1; '
        'pid=$($M state %(c3)s | tr , "\\n" | grep \'"pid"\' | tr -dc 0-9); '
        'sleep 0.5; echo "before=$(r)"; '
        '$M update --resources %(af)s %(c3)s && echo "allowed=$(w yes)"; '
        '$M update --resources %(df)s %(c3)s && sleep 0.3 && echo "denied=$(w no)"; '
        '$M delete --force %(c3)s') % {
            "d": denied, "a": allowed, "l": loop, "c1": c1, "c2": c2, "c3": c3,
            "af": allow_file, "df": deny_file})
    if r.returncode == 99:
        pytest.skip("cannot mount cgroup2 here")
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    first, rest = out.split("== allowed")
    second, third = rest.split("== update")
    assert "Operation not permitted" in first and "null-write-ok" not in first, out
    assert "\n4\n" in first and "done" in first, out               # /dev/zero still reads
    assert "null-write-ok\n4\n" in second and "not permitted" not in second, out
    assert "before=no" in third and "allowed=yes" in third and "denied=no" in third, out


def test_v2_device_rule_punching_a_wildcard_is_one_error(rt, make):
    rules = [DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    bundle = make(["true"], edit=_devices(rules))
    cid = rt.new_id("cg")
    r = _in_private_cgroup2(rt, '$M run --bundle %s %s; echo "rc=$?"' % (bundle, cid))
    if r.returncode == 99:
        pytest.skip("cannot mount cgroup2 here")
    assert "rc=1" in r.stdout, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "linux.resources.devices" in lines[0] and "c 1:*" in lines[0], \
        r.stderr


def test_device_filter_errors_name_the_step_and_the_directory(tmp_path):
    from minirunc import native
    from minirunc.errors import HostError
    with pytest.raises(HostError) as info:
        native.device_filter(str(tmp_path), [("c", 1, 3, "rwm", True)], False)
    assert info.value.host_path == str(tmp_path) and info.value.errno
    assert "device filter" in str(info.value) and "bpf BPF_PROG_" in str(info.value)


def test_stats_record_has_runc_shape(rt, make):
    cid, _ = start_detached(rt, make, ["sh", "-c", "sleep 100 & sleep 101; true"],
                            {"pids": {"limit": 50}, "memory": {"limit": 64 * MIB}})
    assert wait_for(lambda: len(json.loads(rt("ps", "--format", "json", cid).stdout)) == 3)
    stats = json.loads(rt("events", "--stats", cid).stdout)
    assert stats["type"] == "stats" and stats["id"] == cid
    data = stats["data"]
    for group in ("cpu", "memory", "pids", "blkio", "hugetlb"):
        assert group in data, group
    assert data["pids"]["current"] == 3 and data["pids"]["limit"] == 50
    assert data["memory"]["usage"]["limit"] == 64 * MIB and data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    # Counters come from the container's own network namespace, lo left out: a new one
    # has nothing else.
    assert data["network_interfaces"] == []
    rt("delete", "--force", cid)


def test_stats_count_the_interfaces_of_a_shared_network_namespace(rt, make):
    def edit(config):
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != "network"]
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"]
    cid = rt.new_id("cg")
    assert rt("run", "-d", "--bundle", make(["sleep", "100"], edit=edit), cid).returncode == 0
    stats = json.loads(rt("events", "--stats", cid).stdout)
    with open("/proc/net/dev") as f:
        host = sorted(l.split(":")[0].strip() for l in f.read().splitlines()[2:])
    names = sorted(i["name"] for i in stats["data"]["network_interfaces"])
    assert names and names == [n for n in host if n != "lo"]
    assert all(i["rx_bytes"] >= 0 and "tx_packets" in i for i in stats["data"]["network_interfaces"])
    rt("delete", "--force", cid)


def test_pure_v1_layout(rt, make):
    """This host without its cgroup2 mount is a plain v1 host: the v1 driver alone."""
    bundle = make(["sleep", "100"], edit=with_resources({"pids": {"limit": 7},
                                                         "memory": {"limit": 48 * MIB}}))
    cid = rt.new_id("cg")
    script = ("umount /sys/fs/cgroup/unified || exit 99; set -e; "
              "$M run -d --bundle %s %s </dev/null >/dev/null 2>&1; $M pause %s; $M state %s | grep -o paused; "
              "$M resume %s" % (bundle, cid, cid, cid, cid))
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], env=runtime_env(dict(M=" ".join(rt.cmd()))),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if r.returncode == 99:
        pytest.skip("no cgroup2 mount to take away")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "paused" in r.stdout
    record, dirs = cgroup_dirs(rt, cid)
    assert record["driver"] == "v1" and not record.get("unified")
    assert read(controller_file(rt, cid, "pids", "pids.max")) == "7"
    assert read(controller_file(rt, cid, "memory", "memory.limit_in_bytes")) == str(48 * MIB)
    pid = rt.state(cid)["pid"]
    assert str(pid) in read(controller_file(rt, cid, "pids", "cgroup.procs")).split()
    assert rt("delete", "--force", cid).returncode == 0
    assert not any(os.path.exists(d) for d in dirs)


def _strace_calls(lines):
    """[pid, call] for each traced call of `strace -f` output, the halves of a call that
    another process's line interrupted (`<unfinished ...>`, `<... NAME resumed>`) joined."""
    calls, pending = [], {}
    for line in lines:
        pid, _, text = line.partition(" ")
        text = text.lstrip()
        if text.startswith("+++") or text.startswith("---"):
            continue
        if text.endswith(" <unfinished ...>"):
            pending[pid] = text[:-len(" <unfinished ...>")]
            continue
        if text.startswith("<... ") and pid in pending:
            text = pending.pop(pid) + text.split(" resumed>", 1)[1]
        call, sep, result = text.rpartition(") ")
        if sep and result.lstrip().startswith("= "):
            text = call + ") " + result.lstrip()   # strace pads a resumed call's result
        calls.append([pid, text])
    return calls


def test_the_init_joins_its_cgroups_itself(rt, make, tmp_path):
    """No cgroup.procs migration of the init (its first one waits for an RCU grace period):
    stage 1 opens every v1 `tasks` file, stage 2 writes "0" (itself) into each, and is
    cloned into the cgroup2 directory with clone3(CLONE_INTO_CGROUP).  Where clone3 is
    missing (the 4.14 pass; kernels before 5.7) the runtime moves it into cgroup2."""
    cid = rt.new_id("cg")
    bundle = make(["sleep", "100"])
    trace = tmp_path / "trace"
    with open(str(tmp_path / "out"), "w") as out:
        # strace would follow the created init for as long as it lives: once the runtime
        # has exited, SIGINT makes it detach (-I 2: with -o it would ignore SIGINT).
        strace = subprocess.Popen(["/usr/bin/strace", "-f", "-q", "-I", "2", "-y", "-s", "64",
                                   "-o", str(trace), "-e", "trace=clone3,write",
                                   "-e", "signal=none"]
                                  + rt.cmd("create", "--bundle", bundle, cid),
                                  env=runtime_env(), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=out)
        try:
            def runtime_exited():
                lines = trace.read_text().splitlines() if trace.exists() else []
                return bool(lines) and any(
                    line.split(None, 1) == [lines[0].split()[0], "+++ exited with 0 +++"]
                    for line in lines)
            assert wait_for(runtime_exited, 60), (tmp_path / "out").read_text()
        finally:
            strace.send_signal(signal.SIGINT)
            strace.wait(30)
    lines = trace.read_text().splitlines()
    state = rt.state(cid)
    assert state["status"] == "created", (tmp_path / "out").read_text()
    pid = state["pid"]
    record, _ = cgroup_dirs(rt, cid)
    unified = record.get("unified")
    v1 = sorted({os.path.realpath(d) for d in (record.get("paths") or {}).values()}
                - {unified})
    assert v1 or unified, record
    calls = _strace_calls(lines)
    by_init = [call for who, call in calls if who == str(pid)]
    for d in v1:
        assert any(
            call.startswith("write(") and call.endswith('<%s/tasks>, "0", 1) = 1' % d)
            for call in by_init), (d, by_init)
        assert str(pid) in read(os.path.join(d, "tasks")).split()
    procs_writes = [call for _, call in calls if 'cgroup.procs>, "%d", ' % pid in call]
    if unified:
        kernel = release()
        emulated = os.environ.get("MINIRUNC_KERNEL")
        # tests/oldkernel.py refuses syscalls by number only: from "5.3" on, clone3 is there
        # and the real kernel decides about CLONE_INTO_CGROUP.
        if emulated and release(emulated) < (5, 3):
            kernel = release(emulated)
        clone3 = [call for _, call in calls if call.startswith("clone3(")]
        if kernel >= (5, 7):
            # (the cgroup= fd is not decoded to a path: that it is the container's
            # shows below, with nobody writing the pid into a cgroup.procs)
            born = [call for call in clone3 if "CLONE_INTO_CGROUP" in call
                    and call.endswith("= %d" % pid)]
            assert len(born) == 1, clone3
            assert procs_writes == [], procs_writes
        else:
            assert [call for call in procs_writes
                    if call.startswith("write(") and "<%s/cgroup.procs>" % unified in call] \
                == procs_writes and len(procs_writes) == 1, (procs_writes, clone3)
        assert str(pid) in read(os.path.join(unified, "cgroup.procs")).split()
    else:
        assert procs_writes == [], procs_writes
