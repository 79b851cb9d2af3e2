"""config.py: reading config.json and every validation error with its JSON path."""

import json
import os

import pytest

from minirunc import config as cfgmod
from minirunc import mountopts
from minirunc.errors import ConfigError


def minimal():
    return {
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def write(bundle, data):
    (bundle / "config.json").write_text(json.dumps(data))


def load(bundle, data):
    write(bundle, data)
    return cfgmod.load_bundle(str(bundle))


def error_of(bundle, data):
    with pytest.raises(ConfigError) as info:
        load(bundle, data)
    return info.value


# ------------------------------------------------------------------ file level

def test_missing_config_names_file_and_hint(tmp_path):
    with pytest.raises(ConfigError) as info:
        cfgmod.load_bundle(str(tmp_path))
    message = str(info.value)
    assert str(tmp_path / "config.json") in message
    assert "minirunc spec" in message and "--bundle" in message


def test_invalid_json_gives_line_and_column(bundle):
    (bundle / "config.json").write_text('{\n  "ociVersion": "1.0.2",\n  oops\n}')
    with pytest.raises(ConfigError) as info:
        cfgmod.load_bundle(str(bundle))
    assert "line 3, column 3" in str(info.value)


def test_top_level_not_object(bundle):
    (bundle / "config.json").write_text("[]")
    with pytest.raises(ConfigError, match="top level must be a JSON object"):
        cfgmod.load_bundle(str(bundle))


def test_minimal_config_loads(bundle):
    config = load(bundle, minimal())
    assert config.bundle == str(bundle)
    assert config.root.host_path == os.path.realpath(str(bundle / "rootfs"))
    assert config.root_path == config.root.host_path
    assert config.process.args == ["sh"]
    assert config.process.terminal is False
    assert config.process.user.umask is None
    assert config.process.capabilities is None
    assert config.oci_version == "1.0.2"
    assert config.warnings == []
    assert config.annotations == {}


def test_unknown_keys_are_ignored(bundle):
    data = minimal()
    data["somethingNew"] = {"x": 1}
    data["process"]["futureField"] = 3
    load(bundle, data)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.0.0-rc5"])
def test_supported_versions(bundle, version):
    data = minimal()
    data["ociVersion"] = version
    assert load(bundle, data).oci_version == version


@pytest.mark.parametrize("version", ["2.0.0", "0.9", "1.3.0", "abc", ""])
def test_unsupported_versions(bundle, version):
    data = minimal()
    data["ociVersion"] = version
    err = error_of(bundle, data)
    assert err.path == "ociVersion"
    assert "1.0.x, 1.1.x and 1.2.x" in err.problem


def test_rootfs_missing_names_host_path(bundle):
    data = minimal()
    data["root"]["path"] = "nope"
    err = error_of(bundle, data)
    assert err.path == "root.path"
    assert str(bundle / "nope") in err.problem


def test_rootfs_not_a_directory(bundle):
    (bundle / "file").write_text("x")
    data = minimal()
    data["root"]["path"] = "file"
    err = error_of(bundle, data)
    assert "is not a directory" in err.problem and str(bundle / "file") in err.problem


def test_absolute_rootfs(bundle):
    data = minimal()
    data["root"] = {"path": str(bundle / "rootfs"), "readonly": True}
    config = load(bundle, data)
    assert config.root.readonly is True


# ------------------------------------------------------- table of error paths

def _set(path, value):
    """A mutator that sets data[a][b]... = value (value None deletes)."""
    def mutate(data):
        obj = data
        for key in path[:-1]:
            obj = obj[key]
        if value is None:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
    return mutate


NS = ["linux", "namespaces"]

ERROR_CASES = [
    (_set(["process", "args"], []), "process.args", "must be a non-empty list of strings"),
    (_set(["process", "args"], ["sh", 1]), "process.args", "must be a non-empty list of strings"),
    (_set(["process", "args"], "sh"), "process.args", "must be a non-empty list of strings"),
    (_set(["process", "args"], None), "process.args", "is required"),
    (_set(["process", "args"], [""]), "process.args[0]",
     "must not be empty (it names the program to run)"),
    (_set(["process", "cwd"], "tmp"), "process.cwd", "must be an absolute path"),
    (_set(["process", "cwd"], "/a/../b"), "process.cwd", '".." is not allowed'),
    (_set(["process", "cwd"], 5), "process.cwd", "must be a string"),
    (_set(["process", "terminal"], "yes"), "process.terminal", "must be a boolean (true or false)"),
    (_set(["process", "env"], ["A=1", "B"]), "process.env[1]",
     'must have the form NAME=value (no "=" in "B")'),
    (_set(["process", "env"], "A=1"), "process.env", "must be a list"),
    (_set(["process", "user"], {"uid": "root", "gid": 0}), "process.user.uid",
     "must be an integer from 0 to 2147483647"),
    (_set(["process", "user"], {"uid": -1, "gid": 0}), "process.user.uid",
     "must be an integer from 0 to 2147483647"),
    (_set(["process", "user"], {"uid": 1.0, "gid": 0}), "process.user.uid",
     "must be an integer from 0 to 2147483647"),
    (_set(["process", "user"], {"uid": True, "gid": 0}), "process.user.uid",
     "must be an integer from 0 to 2147483647"),
    (_set(["process", "user"], {"username": "root"}), "process.user.username",
     "user names are not supported on Linux; use uid and gid numbers"),
    (_set(["process", "user"], {"uid": 0, "gid": 0, "additionalGids": [1, "x"]}),
     "process.user.additionalGids[1]", "must be an integer from 0 to 2147483647"),
    (_set(["process", "user"], {"uid": 0, "gid": 0, "umask": 0o1000}), "process.user.umask",
     "must be an integer from 0 to 511"),
    (_set(["process", "capabilities"], {"bounding": ["CAP_KILL", "CAP_FLY"]}),
     "process.capabilities.bounding[1]", 'unknown capability "CAP_FLY"'),
    (_set(["process", "capabilities"], {"effective": "CAP_KILL"}),
     "process.capabilities.effective", "must be a list"),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type", 'unknown resource limit "RLIMIT_FOO"'),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                                   {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
     "process.rlimits[1].type", '"RLIMIT_NOFILE" is given more than once'),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 5, "hard": 1}]),
     "process.rlimits[0]", "soft limit 5 is above the hard limit 1"),
    (_set(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "hard": 1}]),
     "process.rlimits[0].soft", "is required"),
    (_set(["process", "oomScoreAdj"], 1001), "process.oomScoreAdj",
     "must be an integer from -1000 to 1000"),
    (_set(["process", "noNewPrivileges"], 1), "process.noNewPrivileges",
     "must be a boolean (true or false)"),
    (_set(["process", "consoleSize"], {"height": 10}), "process.consoleSize.width", "is required"),
    (_set(["process"], None), "process", "is required"),
    (_set(["process"], []), "process", "must be an object"),
    (_set(["root"], None), "root", "is required"),
    (_set(["root"], {"path": 3}), "root.path", "must be a string"),
    (_set(["root"], {"path": "rootfs", "readonly": "no"}), "root.readonly",
     "must be a boolean (true or false)"),
    (_set(["ociVersion"], None), "ociVersion", "is required"),
    (_set(["hostname"], 7), "hostname", "must be a string"),
    (_set(["annotations"], {"a": 1}), "annotations.a", "must be a string"),
    (_set(["annotations"], ["a"]), "annotations", "must be an object"),
    (_set(["mounts"], {}), "mounts", "must be a list"),
    (_set(["mounts"], [{"destination": "/proc", "type": "proc"}, {"destination": "tmp",
                                                                  "type": "tmpfs"}]),
     "mounts[1].destination", "must be an absolute path"),
    (_set(["mounts"], [{"destination": "/proc", "type": "proc"},
                       {"destination": "/a/../etc", "type": "tmpfs"}]),
     "mounts[1].destination", '".." is not allowed'),
    (_set(["mounts"], [{"destination": "/", "type": "tmpfs"}]), "mounts[0].destination",
     'cannot mount over "/" (the root filesystem is root.path)'),
    (_set(["mounts"], [{"type": "tmpfs"}]), "mounts[0].destination", "is required"),
    (_set(["mounts"], [{"destination": "/x"}]), "mounts[0].type",
     "is required (or add the bind or rbind option for a bind mount)"),
    (_set(["mounts"], [{"destination": "/x", "type": "tmpfs", "options": "ro"}]),
     "mounts[0].options", "must be a list"),
    (_set(["mounts"], [{"destination": "/x", "type": "tmpfs", "options": ["ro", 3]}]),
     "mounts[0].options[1]", "must be a string"),
    (_set(["mounts"], [{"destination": "/a", "type": "proc"}, {"destination": "/b", "type": "tmpfs"},
                       {"destination": "/x", "type": "tmpfs", "options": ["ro", "nosuidd"]}]),
     "mounts[2].options[1]", 'unknown mount option "nosuidd"'),
    (_set(["mounts"], [{"destination": "/x", "options": ["rbind"]}]),
     "mounts[0].source", "is required for a bind mount"),
    (_set(NS, [{"type": "mount"}, {"type": "pid"}, {"type": "process"}]),
     "linux.namespaces[2].type",
     'unknown value "process" (use one of: pid, network, mount, ipc, uts, user, cgroup, time)'),
    (_set(NS, [{"type": "mount"}, {"type": "pid"}, {"type": "pid"}]),
     "linux.namespaces[2].type", 'namespace "pid" is already listed at linux.namespaces[1]'),
    (_set(NS, [{"type": "mount"}, {"type": "net", "path": "x"}]),
     "linux.namespaces[1].type", 'unknown value "net" (use one of: pid, network, mount, ipc, '
     'uts, user, cgroup, time)'),
    (_set(NS, [{"type": "mount"}, {"type": "network", "path": "run/netns/x"}]),
     "linux.namespaces[1].path", "must be an absolute path"),
    (_set(["linux"], {"namespaces": [{"type": "pid"}], "maskedPaths": ["/proc/kcore"]}),
     "linux.maskedPaths", "unable to restrict sys entries without a private MNT namespace "
     '(add {"type": "mount"} to linux.namespaces)'),
    (_set(NS, [{"type": "mount", "path": "/proc/self/ns/mnt"}]), "linux.namespaces[0].path",
     "/proc/self/ns/mnt is the runtime's own mount namespace: preparing the rootfs there would "
     "change the host's mounts; leave the mount namespace out of linux.namespaces to share it"),
    (lambda d: d.update(linux={}, mounts=[{"destination": "/x", "type": "tmpfs"}]), "mounts",
     "needs a mount namespace of the container's own: without one it would change the runtime's "
     "mount namespace or the rootfs on disk, and outlive the container "
     '(add {"type": "mount"} to linux.namespaces)'),
    (_set(NS, [{"type": "mount"}, {"type": "user"}]), "linux.uidMappings",
     "a new user namespace needs at least one mapping"),
    (_set(["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.uidMappings",
     'id mappings need a user namespace (add {"type": "user"} to linux.namespaces)'),
    (_set(["linux", "gidMappings"], [{"containerID": 0, "hostID": 1000, "size": 0}]),
     "linux.gidMappings[0].size", "must be at least 1"),
    (_set(["linux", "gidMappings"], [{"containerID": 0, "size": 1}]),
     "linux.gidMappings[0].hostID", "is required"),
    (_set(["hostname"], "box"), "hostname",
     'cannot be set without a UTS namespace (add {"type": "uts"} to linux.namespaces)'),
    (_set(["domainname"], "example.org"), "domainname",
     'cannot be set without a UTS namespace (add {"type": "uts"} to linux.namespaces)'),
    (_set(["linux", "devices"], [{"path": "/dev/x", "type": "q", "major": 1, "minor": 2}]),
     "linux.devices[0].type", 'unknown value "q" (use one of: c, b, u, p)'),
    (_set(["linux", "devices"], [{"path": "/dev/x", "type": "c", "major": 1}]),
     "linux.devices[0].minor", "is required"),
    (_set(["linux", "devices"], [{"path": "dev/x", "type": "p"}]),
     "linux.devices[0].path", "must be an absolute path"),
    (_set(["linux", "devices"], [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1,
                                  "fileMode": "0666"}]),
     "linux.devices[0].fileMode", "must be an integer from 0 to 4294967295"),
    (_set(["linux", "sysctl"], {"kernel.pid_max": 5}), "linux.sysctl.kernel.pid_max",
     "must be a string"),
    (_set(["linux", "sysctl"], {"net.ipv4.ip_forward": "1"}), "linux.sysctl.net.ipv4.ip_forward",
     'not allowed in the host network namespace (add {"type": "network"} to linux.namespaces)'),
    (_set(["linux", "sysctl"], {"kernel.shmmax": "1"}), "linux.sysctl.kernel.shmmax",
     'not allowed in the host IPC namespace (add {"type": "ipc"} to linux.namespaces)'),
    (_set(["linux", "sysctl"], {"kernel..x": "1"}), "linux.sysctl.kernel..x",
     "invalid sysctl name"),
    (_set(["linux", "maskedPaths"], ["/proc/kcore", "proc/keys"]), "linux.maskedPaths[1]",
     "must be an absolute path"),
    (_set(["linux", "readonlyPaths"], ["/proc/../sys"]), "linux.readonlyPaths[0]",
     '".." is not allowed'),
    (_set(["linux", "rootfsPropagation"], "rshare"), "linux.rootfsPropagation",
     'unknown value "rshare" (use one of: shared, slave, private, unbindable, rshared, rslave, '
     'rprivate, runbindable)'),
    (_set(["linux", "personality"], {"domain": "LINUX64"}), "linux.personality.domain",
     'unknown value "LINUX64" (use one of: LINUX, LINUX32)'),
    (_set(["linux", "personality"], {"domain": "LINUX", "flags": ["X"]}),
     "linux.personality.flags", "personality flags are not supported"),
    (_set(["linux", "resources"], []), "linux.resources", "must be an object"),
    (_set(["linux", "timeOffsets"], {"realtime": {"secs": 1}}), "linux.timeOffsets.realtime",
     "unknown clock (the time namespace offsets monotonic and boottime)"),
    (_set(["linux", "timeOffsets"], {"boottime": {"nanosecs": 1000000000}}),
     "linux.timeOffsets.boottime.nanosecs", "must be an integer from 0 to 999999999"),
    (_set(["linux", "timeOffsets"], {"boottime": {"secs": 5}}), "linux.timeOffsets",
     'offsets need a new time namespace (add {"type": "time"} without a path to '
     'linux.namespaces)'),
    (_set(["process", "scheduler"], {"nice": 1}), "process.scheduler.policy", "is required"),
    (_set(["process", "scheduler"], {"policy": "SCHED_FAST"}), "process.scheduler.policy",
     'unknown value "SCHED_FAST" (use one of: SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, '
     'SCHED_ISO, SCHED_IDLE, SCHED_DEADLINE)'),
    (_set(["process", "scheduler"], {"policy": "SCHED_FIFO"}), "process.scheduler.priority",
     "must be from 1 to 99 for SCHED_FIFO"),
    (_set(["process", "scheduler"], {"policy": "SCHED_OTHER", "priority": 5}),
     "process.scheduler.priority", "must be 0 for SCHED_OTHER (only SCHED_FIFO and SCHED_RR "
     "have priorities)"),
    (_set(["process", "scheduler"], {"policy": "SCHED_OTHER", "nice": 20}),
     "process.scheduler.nice", "must be an integer from -20 to 19"),
    (_set(["process", "scheduler"], {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}),
     "process.scheduler.flags[0]", 'unknown value "SCHED_FLAG_X" (use one of: '
     'SCHED_FLAG_RESET_ON_FORK, SCHED_FLAG_RECLAIM, SCHED_FLAG_DL_OVERRUN, '
     'SCHED_FLAG_KEEP_POLICY, SCHED_FLAG_KEEP_PARAMS, SCHED_FLAG_UTIL_CLAMP_MIN, '
     'SCHED_FLAG_UTIL_CLAMP_MAX)'),
    (_set(["process", "scheduler"], {"policy": "SCHED_DEADLINE", "runtime": 10,
                                     "deadline": 5}),
     "process.scheduler", "SCHED_DEADLINE needs 0 < runtime <= deadline <= period "
     "(period 0 means deadline)"),
    (_set(["process", "ioPriority"], {"class": "IOPRIO_CLASS_BE", "priority": 8}),
     "process.ioPriority.priority", "must be an integer from 0 to 7"),
    (_set(["process", "ioPriority"], {"priority": 1}), "process.ioPriority.class",
     "is required"),
    (_set(["mounts"], [{"destination": "/t", "type": "tmpfs", "options": ["idmap"]}]),
     "mounts[0]", "only bind mounts can be idmapped (add the bind or rbind option)"),
    (_set(["mounts"], [{"destination": "/t", "type": "bind", "source": "/",
                        "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]),
     "mounts[0].gidMappings",
     "is required too: an idmapped mount needs both uidMappings and gidMappings"),
    (_set(["mounts"], [{"destination": "/t", "type": "bind", "source": "/",
                        "options": ["ridmap"]}]),
     "mounts[0].options", '"ridmap" without uidMappings and gidMappings takes the '
     "container's user namespace mappings, and this container has none"),
    (_set(["mounts"], [{"destination": "/t", "type": "bind", "source": "/",
                        "uidMappings": [{"containerID": 0, "hostID": 1}],
                        "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]),
     "mounts[0].uidMappings[0].size", "is required"),
    (_set(["process", "execCPUAffinity"], {"final": "0-x"}), "process.execCPUAffinity.final",
     'is not a CPU list like "0-3,7": "0-x"'),
    (_set(["process", "execCPUAffinity"], {"initial": "3-1"}), "process.execCPUAffinity.initial",
     'CPU range "3-1" must run upwards from 0 and stay below 8192'),
    (_set(["hooks"], []), "hooks", "must be an object"),
    (_set(["hooks"], {"prestart": {"path": "/x"}}), "hooks.prestart", "must be a list"),
    (_set(["hooks"], {"poststop": [{"args": ["x"]}]}), "hooks.poststop[0].path", "is required"),
    (_set(["hooks"], {"createRuntime": [{"path": "usr/bin/hook"}]}),
     "hooks.createRuntime[0].path", 'must be an absolute path (got "usr/bin/hook")'),
    (_set(["hooks"], {"poststart": [{"path": "/x", "args": "x"}]}), "hooks.poststart[0].args",
     "must be a list"),
    (_set(["hooks"], {"createContainer": [{"path": "/x", "env": ["NOEQUALS"]}]}),
     "hooks.createContainer[0].env[0]", 'must have the form NAME=value (no "=" in "NOEQUALS")'),
    (_set(["hooks"], {"startContainer": [{"path": "/x", "timeout": 0}]}),
     "hooks.startContainer[0].timeout",
     "must be a whole number of seconds, at least 1 (leave it out for no timeout)"),
    (_set(["hooks"], {"prestart": [{"path": "/x", "timeout": 1.5}]}),
     "hooks.prestart[0].timeout",
     "must be a whole number of seconds, at least 1 (leave it out for no timeout)"),
]


@pytest.mark.parametrize("mutate,path,problem", ERROR_CASES,
                         ids=[case[1] + ":" + case[2][:30] for case in ERROR_CASES])
def test_validation_errors(bundle, mutate, path, problem):
    data = minimal()
    mutate(data)
    err = error_of(bundle, data)
    assert (err.path, err.problem) == (path, problem)
    assert str(err) == "%s: %s" % (path, problem)


SECCOMP_CASES = [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction", 'unknown value "SCMP_ACT_NOPE"'),
    ({}, "linux.seccomp.defaultAction", "is required"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction",
     "SCMP_ACT_NOTIFY is not supported (it needs a seccomp agent at listenerPath)"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5}, "linux.seccomp.defaultErrnoRet",
     "is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]},
     "linux.seccomp.architectures[0]", 'unknown value "SCMP_ARCH_Z80"'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]},
     "linux.seccomp.flags[0]", 'unknown value "SECCOMP_FILTER_FLAG_X"'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names", "must not be empty"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]},
     "linux.seccomp.syscalls[0].action", "is required"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read", "wr ite"], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names[1]", 'invalid syscall name "wr ite"'),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].action", "SCMP_ACT_NOTIFY is not supported"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]},
     "linux.seccomp.syscalls[0].errnoRet", "is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index", "must be an integer from 0 to 5"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     "linux.seccomp.syscalls[0].args[0].op", 'unknown value "SCMP_CMP_XX"'),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].value", "must be an integer from 0 to"),
]


@pytest.mark.parametrize("seccomp,path,problem", SECCOMP_CASES)
def test_seccomp_errors(bundle, seccomp, path, problem):
    data = minimal()
    data["linux"]["seccomp"] = seccomp
    err = error_of(bundle, data)
    assert err.path == path
    assert err.problem.startswith(problem)


# ------------------------------------------------------------ accepted values

def full_config():
    data = minimal()
    data["hostname"] = "box"
    data["domainname"] = "example.org"
    data["annotations"] = {"org.example": "yes"}
    data["process"].update({
        "terminal": True,
        "consoleSize": {"height": 25, "width": 80},
        "user": {"uid": 1000, "gid": 1000, "umask": 0o077, "additionalGids": [5, 6]},
        "env": ["PATH=/bin", "EMPTY="],
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL", "CAP_CHECKPOINT_RESTORE"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
        "noNewPrivileges": True,
        "oomScoreAdj": -1000,
    })
    data["linux"] = {
        "namespaces": [{"type": t} for t in ("pid", "network", "mount", "ipc", "uts", "user",
                                              "cgroup", "time")],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                     "fileMode": 0o20666, "uid": 0, "gid": 0},
                    {"path": "/dev/fifo", "type": "p"}],
        "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "100"},
        "rootfsPropagation": "rslave",
        "personality": {"domain": "LINUX32"},
    }
    return data


def test_full_config(bundle):
    config = load(bundle, full_config())
    proc = config.process
    assert proc.terminal and (proc.console_rows, proc.console_cols) == (25, 80)
    assert (proc.user.uid, proc.user.gid, proc.user.umask) == (1000, 1000, 0o077)
    assert proc.user.additional_gids == [5, 6]
    assert proc.capabilities.effective == ["CAP_KILL", "CAP_CHECKPOINT_RESTORE"]
    assert proc.capabilities.permitted == []
    assert proc.rlimits[0].resource == 7
    assert proc.oom_score_adj == -1000
    linux = config.linux
    assert [ns.type for ns in linux.namespaces][-1] == "time"
    assert linux.uid_mappings[0].as_tuple() == (0, 100000, 65536)
    assert linux.devices[0].file_mode == 0o666
    assert linux.devices[1].type == "p" and linux.devices[1].major == 0
    assert linux.personality == 8
    assert config.annotations == {"org.example": "yes"}
    assert config.warnings == []


def test_joined_user_namespace_needs_no_mappings(bundle):
    data = minimal()
    data["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    config = load(bundle, data)
    assert config.linux.namespace("user").path == "/proc/1/ns/user"


def test_hostname_with_joined_uts(bundle):
    data = minimal()
    data["hostname"] = "x"
    data["linux"]["namespaces"].append({"type": "uts", "path": "/proc/1/ns/uts"})
    assert load(bundle, data).hostname == "x"


def test_nul_in_string_is_rejected(bundle):
    data = minimal()
    data["process"]["args"] = ["sh", "a\0b"]
    err = error_of(bundle, data)
    assert err.path == "process.args[1]" and "NUL" in err.problem


# ------------------------------------------------------------------ warnings

def test_resources_are_validated_not_warned(bundle):
    data = minimal()
    data["linux"]["resources"] = {"memory": {"limit": 1000, "kernel": 5}}
    config = load(bundle, data)
    assert config.linux.resources == {"memory": {"limit": 1000}}
    assert config.warnings == ["linux.resources.memory.kernel: kernel memory limits are "
                               "deprecated (the kernel dropped them); ignored"]


def test_empty_resources_do_not_warn(bundle):
    data = minimal()
    data["linux"]["resources"] = {}
    assert load(bundle, data).warnings == []


def test_unknown_hook_kind_and_labels_warn(bundle):
    data = minimal()
    data["hooks"] = {"prestart": [{"path": "/bin/true"}], "preflight": [{"path": "/bin/true"}]}
    data["process"]["apparmorProfile"] = "docker-default"
    data["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    data["linux"]["mountLabel"] = "x"
    warnings = load(bundle, data).warnings
    assert ("hooks.preflight: unknown hook kind (minirunc knows prestart, createRuntime, "
            "createContainer, startContainer, poststart, poststop); not run") in warnings
    assert any(w.startswith("process.apparmorProfile: AppArmor is not supported") for w in warnings)
    assert any(w.startswith("process.selinuxLabel: SELinux is not supported") for w in warnings)
    assert any(w.startswith("linux.mountLabel:") for w in warnings)
    assert len(warnings) == 4


def test_empty_hooks_do_not_warn(bundle):
    data = minimal()
    data["hooks"] = {"prestart": [], "poststop": None}
    config = load(bundle, data)
    assert config.warnings == [] and config.hooks == {}


def test_hooks_are_parsed(bundle):
    data = minimal()
    data["hooks"] = {"createRuntime": [{"path": "/usr/bin/nvidia-hook"},
                                       {"path": "/bin/sh", "args": ["sh", "-c", "x"],
                                        "env": ["A=1"], "timeout": 5}]}
    first, second = load(bundle, data).hooks["createRuntime"]
    # Without args, argv is the path alone (runc); without env, env stays None (inherit).
    assert (first.where, first.args, first.env, first.timeout) == \
        ("hooks.createRuntime[0]", ["/usr/bin/nvidia-hook"], None, 0)
    assert (second.where, second.path, second.args, second.env, second.timeout) == \
        ("hooks.createRuntime[1]", "/bin/sh", ["sh", "-c", "x"], ["A=1"], 5)


# -------------------------------------------------------------------- mounts

def test_bind_source_missing(bundle):
    data = minimal()
    data["mounts"] = [{"destination": "/a", "type": "tmpfs"}] * 4 + [
        {"destination": "/data", "type": "bind", "source": "/x/y", "options": ["rbind"]}]
    err = error_of(bundle, data)
    assert str(err) == "mounts[4].source: bind source /x/y does not exist on the host"


def test_bind_source_relative_to_bundle(bundle):
    (bundle / "data").mkdir()
    (bundle / "file.txt").write_text("x")
    data = minimal()
    data["mounts"] = [
        {"destination": "/data", "source": "data", "options": ["rbind", "ro"]},
        {"destination": "/etc/f", "type": "none", "source": "file.txt", "options": ["bind"]},
    ]
    mounts = load(bundle, data).mounts
    assert mounts[0].host_source == str(bundle / "data") and mounts[0].is_bind
    assert mounts[0].source_is_dir is True
    assert mounts[1].host_source == str(bundle / "file.txt")
    assert mounts[1].source_is_dir is False


def test_non_bind_source_defaults_to_type(bundle):
    data = minimal()
    data["mounts"] = [{"destination": "/proc", "type": "proc"}]
    assert load(bundle, data).mounts[0].source == "proc"


@pytest.mark.parametrize("fstype,word", [
    ("devpts", "newinstance"), ("cgroup2", "nsdelegate"), ("cgroup2", "memory_recursiveprot"),
    ("cgroup", "cpu"), ("cgroup", "name=systemd"), ("tmpfs", "inode64"), ("ext4", "nouuid"),
    ("overlay", "userxattr"), ("tmpfs", "size=1m"),
])
def test_bare_data_words_accepted(bundle, fstype, word):
    data = minimal()
    data["mounts"] = [{"destination": "/x", "type": fstype, "source": "none", "options": [word]}]
    assert load(bundle, data).mounts[0].opts.data == [word]


@pytest.mark.parametrize("fstype,word", [
    ("proc", "newinstance"), ("tmpfs", "nsdelegate"), ("sysfs", "foo"), ("mqueue", "x"),
    ("cgroup", "nsdelegate"), ("bind", "newinstance"),
])
def test_bare_data_words_rejected(bundle, fstype, word):
    (bundle / "src").mkdir()
    data = minimal()
    data["mounts"] = [{"destination": "/x", "type": fstype, "source": "src", "options": [word]}]
    err = error_of(bundle, data)
    assert str(err) == 'mounts[0].options[0]: unknown mount option "%s"' % word


def test_sysctl_file_names():
    assert cfgmod.sysctl_file("net.ipv4.ip_forward") == "net/ipv4/ip_forward"
    assert cfgmod.sysctl_file("net.ipv4.conf.eth0/100.rp_filter") == \
        "net/ipv4/conf/eth0.100/rp_filter"


def test_mountopts_parse_is_used(bundle):
    data = minimal()
    data["mounts"] = [{"destination": "/x", "type": "tmpfs", "options": ["ro", "nosuid"]}]
    opts = load(bundle, data).mounts[0].opts
    assert opts.flags == mountopts.MS_RDONLY | mountopts.MS_NOSUID


def test_intel_rdt_warns(bundle):
    data = minimal()
    data["linux"]["intelRdt"] = {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0"}
    assert load(bundle, data).warnings == [
        "linux.intelRdt: Intel RDT is not supported; it was NOT applied"]
