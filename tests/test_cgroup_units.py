"""Cgroups without root: host layouts, cgroupsPath -> directories, resources -> files and
values, validation errors, and the command-line pieces of update/events/ps."""

import pytest

from minirunc import cli
from minirunc.cgroups import paths, translate
from minirunc.cgroups.validate import check_resources
from minirunc.control import parse_bytes, parse_interval
from minirunc.errors import ConfigError, UsageError

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_SELF = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
"""
V1_COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""
V1_SELF = "3:cpu,cpuacct:/user/1\n2:memory:/user/1\n"
V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V2_SELF = "0::/user.slice/user-0.slice/session-1.scope\n"
NONE = "23 1 0:21 / /sys rw - sysfs sysfs rw\n"


def choose(mountinfo, own, cgroups_path="", cid="c1", systemd=False):
    class Linux:
        pass
    linux = Linux()
    linux.cgroups_path = cgroups_path
    return paths.choose_driver(linux, cid, systemd, mountinfo, own)


# ------------------------------------------------------------------ layouts and paths

def test_layout_modes():
    assert paths.host_layout(HYBRID, HYBRID_SELF).mode == "hybrid"
    assert paths.host_layout(V1_COMOUNTED, V1_SELF).mode == "v1"
    assert paths.host_layout(V2, V2_SELF).mode == "v2"
    assert paths.host_layout(NONE, "").mode == "none"
    assert paths.host_layout("", "").mode == "none"


def test_default_path_is_the_id_under_our_own_cgroup_as_runc():
    driver, notices = choose(HYBRID, HYBRID_SELF)
    assert notices == []
    assert driver.name == "hybrid"
    assert driver.paths["memory"] == "/sys/fs/cgroup/memory/process_api/abc/c1"
    assert driver.paths["cpu"] == "/sys/fs/cgroup/cpu/c1"
    assert driver.paths["name=systemd"] == "/sys/fs/cgroup/systemd/c1"
    assert driver.unified == "/sys/fs/cgroup/unified/c1"


def test_comounted_controllers_share_a_directory():
    driver, _ = choose(V1_COMOUNTED, V1_SELF, "/pods/x")
    assert driver.name == "v1"
    assert driver.paths["cpu"] == driver.paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/pods/x"
    assert [d for d, _ in driver.plan_dirs()] == ["/sys/fs/cgroup/cpu,cpuacct/pods/x",
                                                  "/sys/fs/cgroup/memory/pods/x"]


def test_relative_path_on_v2_goes_under_the_parent_of_our_cgroup():
    driver, _ = choose(V2, V2_SELF, "ctr/x")
    assert driver.name == "v2"
    assert driver.unified == "/sys/fs/cgroup/user.slice/user-0.slice/ctr/x"
    driver, _ = choose(V2, V2_SELF, "/abs/x")
    assert driver.unified == "/sys/fs/cgroup/abs/x"


def test_none_driver_when_nothing_is_mounted():
    driver, _ = choose(NONE, "")
    assert driver.name == "none"
    warnings = driver.apply({"memory": {"limit": 5}, "pids": {"limit": 3}, "cpu": {}})
    assert warnings == ["linux.resources: no cgroup filesystem is mounted on this host; "
                        "memory, pids NOT applied"]
    assert driver.apply({}) == []


@pytest.mark.parametrize("value", ["../x", "/a/../../b", "a/..", "s.slice:p:.."])
def test_dotdot_is_refused(value):
    with pytest.raises(ConfigError) as info:
        paths.check_cgroups_path(value)
    assert info.value.path == "linux.cgroupsPath" and ".." in str(info.value)


def test_root_of_hierarchy_is_refused():
    with pytest.raises(ConfigError):
        choose(HYBRID, HYBRID_SELF, "/")


def test_systemd_forms():
    assert paths.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert paths.expand_slice("-.slice") == "/"
    assert paths.inner_path("system.slice:docker:abc", "abc")[0] == "/system.slice/docker-abc.scope"
    assert paths.inner_path(":runc:abc", "abc")[0] == "/system.slice/runc-abc.scope"
    path, notice = paths.inner_path("", "abc", systemd=True)
    assert path == "/system.slice/minirunc-abc.scope" and "--systemd-cgroup" in notice
    with pytest.raises(ConfigError):
        paths.inner_path("/plain/path", "abc", systemd=True)
    with pytest.raises(ConfigError):
        paths.expand_slice("a--b.slice")
    assert paths.inner_path("/a/b", "x") == ("/a/b", None)
    assert paths.inner_path("", "x") == ("x", None)


# ------------------------------------------------------------------ translation

def files(writes):
    return [(c, f[0], v) for c, f, v, _, _ in writes]


def test_v1_memory_and_swap_order():
    res = {"memory": {"limit": 100, "swap": 200, "reservation": 50, "swappiness": 10,
                      "disableOOMKiller": True}}
    writes, _ = translate.v1_writes(res, current_swap=translate.UNLIMITED_V1)
    assert files(writes) == [("memory", "memory.limit_in_bytes", "100"),
                             ("memory", "memory.memsw.limit_in_bytes", "200"),
                             ("memory", "memory.soft_limit_in_bytes", "50"),
                             ("memory", "memory.swappiness", "10"),
                             ("memory", "memory.oom_control", "1")]
    # raising memsw above the current one: memsw first, or the kernel refuses the limit
    writes, _ = translate.v1_writes({"memory": {"limit": 300, "swap": 400}}, current_swap=200)
    assert [f for _, f, _ in files(writes)] == ["memory.memsw.limit_in_bytes",
                                                "memory.limit_in_bytes"]


def test_v1_cpu_pids_hugetlb_net():
    res = {"cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0-1", "mems": "0"},
           "pids": {"limit": -1}, "hugepageLimits": [{"pageSize": "2MB", "limit": 4096}],
           "network": {"classID": 7, "priorities": [{"name": "eth0", "priority": 3}]}}
    writes, _ = translate.v1_writes(res)
    assert files(writes) == [
        ("cpu", "cpu.shares", "512"), ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "20000"), ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"), ("pids", "pids.max", "max"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4096"), ("net_cls", "net_cls.classid", "7"),
        ("net_prio", "net_prio.ifpriomap", "eth0 3")]


def test_v1_blkio_prefers_bfq_and_marks_optional():
    res = {"blockIO": {"weight": 500, "throttleReadBpsDevice": [
        {"major": 8, "minor": 0, "rate": 1048576}]}}
    writes, _ = translate.v1_writes(res)
    assert writes[0] == ("blkio", ("blkio.bfq.weight", "blkio.weight"), "500",
                         "linux.resources.blockIO.weight", True)
    assert writes[1][1:3] == (("blkio.throttle.read_bps_device",), "8:0 1048576")


def test_v1_device_rules_keep_runc_defaults():
    class Dev:
        path, type, major, minor = "/dev/fuse", "c", 10, 229
    rules = translate.device_rules([{"allow": False, "access": "rwm"},
                                    {"allow": True, "type": "c", "major": 1, "access": "r"}],
                                   [Dev()])
    assert rules[0] == ("devices.deny", "a")
    assert rules[1] == ("devices.allow", "c 1:* r")
    assert ("devices.allow", "c 1:3 rwm") in rules and ("devices.allow", "c 136:* rwm") in rules
    # as with runc, linux.devices adds no rule: the config allows its devices itself
    assert rules[-1] == ("devices.allow", "c 10:200 rwm")
    assert not any("10:229" in text for _, text in rules)


def test_a_linux_devices_path_replaces_runcs_default_rule_for_it():
    rules = translate.device_rule_list([{"allow": False}], ["/dev/null", "/dev/mine"])
    assert rules[0] == ("a", -1, -1, "rwm", False)
    assert ("c", 1, 3, "rwm", True) not in rules
    assert ("c", 1, 5, "rwm", True) in rules and ("c", -1, -1, "m", True) in rules
    assert len(rules) == 1 + len(translate.DEFAULT_DEVICES) - 1


DENY_ALL = [{"allow": False, "access": "rwm"}]
RUNC_DEFAULTS = [("b", -1, -1, "m"), ("c", -1, -1, "m"), ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"),
                 ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"),
                 ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"), ("c", 136, -1, "rwm")]


def test_device_filter_rules_deny_all_keeps_runcs_defaults_as_exceptions():
    default, rules = translate.device_filter_rules(DENY_ALL)
    assert default is False
    assert [r[:4] for r in rules] == RUNC_DEFAULTS    # sorted by (major, minor, type)
    assert all(r[4] is True for r in rules)
    # no rules at all: v1's deny-all start (runc's emulator starts there too)
    assert translate.device_filter_rules([]) == (default, rules)


def test_device_filter_rules_follow_v1_semantics():
    # the defaults come last, so a config cannot deny /dev/null without listing it in
    # linux.devices (runc then drops its default rule for that path)
    deny_null = DENY_ALL + [{"allow": False, "type": "c", "major": 1, "minor": 3,
                             "access": "rwm"}]
    _, rules = translate.device_filter_rules(deny_null)
    assert ("c", 1, 3, "rwm", True) in rules
    _, rules = translate.device_filter_rules(deny_null, ["/dev/null"])
    assert not any(r[1:3] == (1, 3) for r in rules)
    # "a" resets: allow-all with deny exceptions
    default, rules = translate.device_filter_rules(
        [{"allow": True}, {"allow": False, "type": "b", "major": 8, "access": "w"}],
        ["/dev/null", "/dev/random", "/dev/full", "/dev/tty", "/dev/zero", "/dev/urandom"])
    assert default is True
    assert rules == [("b", 8, -1, "w", False)]   # the defaults remove nothing (no such deny)
    # same type/major/minor merge their access; a deny of that kind takes letters away
    _, rules = translate.device_filter_rules(DENY_ALL + [
        {"allow": True, "type": "c", "major": 99, "minor": 1, "access": "r"},
        {"allow": True, "type": "c", "major": 99, "minor": 1, "access": "mw"},
        {"allow": False, "type": "c", "major": 99, "minor": 1, "access": "m"}])
    assert ("c", 99, 1, "rw", True) in rules


def test_device_filter_rules_refuse_a_hole_in_a_wildcard_as_runc():
    with pytest.raises(ConfigError) as info:
        translate.device_filter_rules(DENY_ALL + [
            {"allow": True, "type": "c", "major": 1, "access": "rw"},
            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}])
    assert info.value.path == "linux.resources.devices"
    assert "c 1:3 w" in str(info.value) and "c 1:* rw" in str(info.value)


def _prog(rules, default):
    from minirunc import native
    try:
        return native.device_filter_program(rules, default)
    except Exception as e:   # the cffi module is not built
        pytest.skip("native module: %s" % e)


def _run(prog, kind, major, minor, access):
    """Interpret the few instructions the device program uses (for a tree-free check)."""
    ctx = [{"c": 2, "b": 1}[kind] | access << 16, major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        code, dst, src, off, imm = prog[pc]
        pc += 1
        if code == 0x61:                               # ldxw dst, [src + off]
            regs[dst] = ctx[off // 4]
        elif code in (0x54, 0xb4, 0xbc, 0x74):         # and32 / mov32 imm / mov32 reg / rsh32
            value = regs[src] if code == 0xbc else imm & 0xFFFFFFFF
            regs[dst] = {0x54: regs[dst] & value, 0xb4: value, 0xbc: value,
                         0x74: regs[dst] >> value}[code]
        elif code in (0x56, 0x5e):                     # jne32 imm / reg
            other = imm & 0xFFFFFFFF if code == 0x56 else regs[src]
            if regs[dst] & 0xFFFFFFFF != other & 0xFFFFFFFF:
                pc += off
        elif code == 0x95:                             # exit
            return regs[0]
        else:
            raise AssertionError("unexpected opcode %#x" % code)


R, W, M = 2, 4, 1


def test_device_program_last_matching_rule_wins():
    rules = [("a", -1, -1, "rwm", True), ("c", 1, -1, "rwm", False), ("c", 1, 3, "r", True),
             ("b", -1, 5, "w", False)]
    prog = _prog(rules, False)
    assert _run(prog, "c", 1, 3, R) == 1          # the last rule for it allows
    assert _run(prog, "c", 1, 3, W) == 0          # w is not in "r": c 1:* denies
    assert _run(prog, "c", 1, 3, R | W) == 0      # a subset of the rule's access is needed
    assert _run(prog, "c", 1, 9, R) == 0
    assert _run(prog, "c", 2, 9, R) == 1          # "a" allows the rest
    assert _run(prog, "b", 7, 5, W) == 0 and _run(prog, "b", 7, 5, R) == 1
    # the first rule matches everything: the program ends there (no unreachable code)
    assert prog[-1][0] == 0x95 and prog[-2][:1] == (0xb4,) and prog[-2][4] == 1
    assert _run(_prog([], True), "c", 1, 1, R) == 1
    assert _run(_prog([], False), "c", 1, 1, R) == 0
    # runc's deny-all ruleset: /dev/null yes, /dev/sda no, mknod of anything yes
    default, clean = translate.device_filter_rules(DENY_ALL)
    prog = _prog(clean, default)
    assert _run(prog, "c", 1, 3, R | W) == 1
    assert _run(prog, "b", 8, 0, R) == 0 and _run(prog, "b", 8, 0, M) == 1
    assert _run(prog, "c", 136, 7, W) == 1 and _run(prog, "c", 137, 7, W) == 0


def test_device_program_rejects_bad_rules():
    from minirunc.errors import HostError
    from minirunc import native
    _prog([], False)
    for bad in (("x", 1, 1, "r", True), ("c", 1, 1, "q", True), ("c", -2, 1, "r", True),
                ("c", 1 << 32, 1, "r", True)):
        with pytest.raises(HostError):
            native.device_filter_program([bad], False)


def test_v2_conversions():
    assert translate.shares_to_weight(2) == 1
    assert translate.shares_to_weight(1024) == 39
    assert translate.shares_to_weight(262144) == 10000
    assert translate.blkio_to_io_weight(10) == 1
    assert translate.blkio_to_io_weight(1000) == 10000
    assert translate.swap_v2(200, 100) == 100
    assert translate.swap_v2(-1, 100) == -1
    assert translate.swap_v2(0, -1) == -1
    with pytest.raises(ValueError):
        translate.swap_v2(50, 100)
    res = {"memory": {"limit": 100, "swap": 300, "reservation": -1},
           "cpu": {"shares": 1024, "quota": 20000, "period": 100000}, "pids": {"limit": 7},
           "hugepageLimits": [{"pageSize": "1GB", "limit": 0}], "unified": {"memory.high": "90"}}
    writes, warnings = translate.v2_writes(res)
    assert files(writes) == [
        ("memory", "memory.swap.max", "200"), ("memory", "memory.max", "100"),
        ("memory", "memory.low", "max"), ("cpu", "cpu.weight", "39"),
        ("cpu", "cpu.max", "20000 100000"), ("pids", "pids.max", "7"),
        ("hugetlb", "hugetlb.1GB.max", "0"), ("memory", "memory.high", "90")]
    assert warnings == []
    writes, _ = translate.v2_writes({"cpu": {"period": 50000}})
    assert files(writes) == [("cpu", "cpu.max", "max 50000")]


def test_v2_warns_for_what_it_cannot_do():
    _, warnings = translate.v2_writes({"memory": {"swappiness": 5},
                                       "network": {"classID": 1},
                                       "devices": [{"allow": False}],
                                       "cpu": {"realtimeRuntime": 5}})
    text = "\n".join(warnings)
    for key in ("memory.swappiness", "network", "cpu.realtimeRuntime"):
        assert "linux.resources." + key in text
    assert "devices" not in text          # the eBPF device program does them


def test_v2_swap_without_limit_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        translate.v2_writes({"memory": {"swap": 100}})
    assert info.value.path == "linux.resources.memory.swap"


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("resources, where", [
    ({"memroy": {}}, "linux.resources.memroy"),
    ({"memory": {"limt": 1}}, "linux.resources.memory.limt"),
    ({"memory": {"limit": -2}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"cpu": {"quota": -3}}, "linux.resources.cpu.quota"),
    ({"cpu": {"period": 10}}, "linux.resources.cpu.period"),
    ({"cpu": {"cpus": "0-"}}, "linux.resources.cpu.cpus"),
    ({"pids": {}}, "linux.resources.pids.limit"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"access": "r"}]}, "linux.resources.devices[0].allow"),
    ({"unified": {"../memory.max": "1"}}, "linux.resources.unified.../memory.max"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs"),
    ({"network": {"classID": -1}}, "linux.resources.network.classID"),
])
def test_bad_resources(resources, where):
    with pytest.raises(ConfigError) as info:
        check_resources(resources)
    assert info.value.path == where


def test_deprecated_kernel_limits_warn_and_are_dropped():
    res, warnings = check_resources({"memory": {"limit": 10, "kernel": 5, "kernelTCP": 1}})
    assert res == {"memory": {"limit": 10}}
    assert len(warnings) == 2 and "deprecated" in warnings[0]


# ------------------------------------------------------------------ command line

def test_ps_takes_trailing_ps_options():
    command, options, positionals = cli.parse_command(["ps", "--format", "table", "c1", "-o", "pid"])
    assert command == "ps" and options == {"format": "table"}
    assert positionals == ["c1", ("-o", "pid")]
    assert cli.parse_command(["ps", "c1"])[2] == ["c1"]
    with pytest.raises(UsageError):
        cli.parse_command(["ps"])


def test_update_flags_and_sizes():
    _, options, positionals = cli.parse_command(["update", "--memory", "64m", "--cpu-share", "512",
                                                 "--pids-limit=9", "c1"])
    assert options == {"memory": "64m", "cpu-shares": "512", "pids-limit": "9"}
    assert parse_bytes("64m", "memory") == 64 << 20
    assert parse_bytes("1G", "memory") == 1 << 30
    assert parse_bytes("512kb", "memory") == 512 << 10
    assert parse_bytes("-1", "memory") == -1
    with pytest.raises(UsageError):
        parse_bytes("lots", "memory")
    from minirunc.control import update_delta
    assert update_delta(options) == {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512},
                                     "pids": {"limit": 9}}


def test_interval():
    assert parse_interval("5s") == 5.0
    assert parse_interval("250ms") == 0.25
    assert parse_interval("1m") == 60.0
    assert parse_interval("2") == 2.0
    with pytest.raises(UsageError):
        parse_interval("soon")


def test_pause_and_friends_are_commands_now():
    from minirunc.commands import LATER
    for name in ("pause", "resume", "update", "events", "ps"):
        assert name in cli.COMMANDS and name not in LATER
