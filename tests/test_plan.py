"""plan.py and mountopts.py: the records a config turns into, decoded from the wire format."""

import json
import os

import pytest

from minirunc import config as cfgmod
from minirunc import mountopts as mo
from minirunc import plan as planmod
from minirunc import planformat
from minirunc.errors import ConfigError

# Hybrid v1 host (like the CI sandbox): controllers under /sys/fs/cgroup, cgroup2 at unified.
MOUNTINFO_V1 = """\
22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 /docker /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
CGROUP_V1 = """\
9:name=systemd:/user.slice
8:pids:/docker/abc
4:memory:/process_api/c0
2:cpu,cpuacct:/
0::/user.slice
"""
MOUNTINFO_V2 = """\
22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
CGROUP_V2 = "0::/user.slice/session-1.scope\n"


def minimal():
    return {
        "ociVersion": "1.1.0",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo hi"], "cwd": "/",
                    "env": ["PATH=/bin", "A=b"]},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def make_plan(bundle, data, **kwargs):
    (bundle / "config.json").write_text(json.dumps(data))
    config = cfgmod.load_bundle(str(bundle))
    kwargs.setdefault("mountinfo", MOUNTINFO_V1)
    kwargs.setdefault("proc_cgroup", CGROUP_V1)
    return planmod.build_plan(config, **kwargs)


def decoded(plan):
    return planformat.decode(plan.encode())


def records(plan, name):
    return [values for rec, values in decoded(plan) if rec == name]


def one(plan, name):
    found = records(plan, name)
    assert len(found) == 1, (name, found)
    return found[0]


# --------------------------------------------------------------- record order

ORDER = ["NS_JOIN", "NS_NEW", "HOSTNAME", "DOMAINNAME", "ROOTFS", "MOUNT", "DEV_SETUP",
         "DEVICE", "SYMLINK", "SYSCTL", "OOM_SCORE_ADJ", "MASKED", "READONLY", "TERMINAL",
         "RLIMIT", "PERSONALITY", "NO_NEW_PRIVS", "CAPS", "USER", "SECCOMP_INIT", "SECCOMP_ARCH",
         "SECCOMP_RULE", "PRESERVE_FDS", "CWD", "ENV", "ARG"]


def full_config():
    data = minimal()
    data["hostname"] = "box"
    data["domainname"] = "example.org"
    data["process"].update({
        "terminal": True, "consoleSize": {"height": 24, "width": 80},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
        "oomScoreAdj": 100, "noNewPrivileges": True,
        "capabilities": {"bounding": ["CAP_KILL"]},
    })
    data["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"},
                      {"destination": "/tmp", "type": "tmpfs", "options": ["nosuid", "size=1m"]}]
    data["linux"] = {
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/a"},
                       {"type": "mount"}, {"type": "uts"}, {"type": "ipc"},
                       {"type": "user", "path": "/proc/1/ns/user"}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
        "personality": {"domain": "LINUX"},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]},
    }
    return data


def test_record_order(bundle):
    plan = make_plan(bundle, full_config(), preserve_fds=2)
    names = [name for name, _ in decoded(plan)]
    # Each kind appears, in one block, in ORDER.
    blocks = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    assert blocks == ORDER
    assert names[-3:] == ["ARG", "ARG", "ARG"]
    assert plan.names() == names


def test_record_contents(bundle):
    plan = make_plan(bundle, full_config(), preserve_fds=2, no_pivot=True)
    assert records(plan, "NS_JOIN") == [
        {"clone_flag": 0x10000000, "path": "/proc/1/ns/user"},   # user first
        {"clone_flag": 0x40000000, "path": "/run/netns/a"},
    ]
    assert one(plan, "NS_NEW")["clone_flags"] == 0x20000000 | 0x20000 | 0x4000000 | 0x8000000
    assert plan.joined_namespaces == {"user": "/proc/1/ns/user", "network": "/run/netns/a"}
    assert plan.new_userns is False and plan.uid_mappings == []
    assert one(plan, "HOSTNAME") == {"name": "box"}
    assert one(plan, "DOMAINNAME") == {"name": "example.org"}
    assert one(plan, "ROOTFS") == {"path": os.path.realpath(str(bundle / "rootfs")),
                                   "readonly": 0, "propagation": 0, "no_pivot": 1}
    assert one(plan, "SYSCTL") == {"key": "net/ipv4/ip_forward", "value": "1"}
    assert one(plan, "OOM_SCORE_ADJ") == {"value": 100}
    assert one(plan, "TERMINAL") == {"rows": 24, "cols": 80}
    assert plan.terminal is True
    assert records(plan, "RLIMIT") == [{"resource": 7, "soft": 10, "hard": 20},
                                       {"resource": 4, "soft": 0, "hard": 0}]
    assert one(plan, "PERSONALITY") == {"domain": 0}
    assert one(plan, "NO_NEW_PRIVS") == {"enabled": 1}
    assert one(plan, "CAPS") == {"bounding": 1 << 5, "effective": 0, "permitted": 0,
                                 "inheritable": 0, "ambient": 0}
    assert one(plan, "USER") == {"uid": 0, "gid": 0, "umask": 0o022, "additional_gids": []}
    assert one(plan, "PRESERVE_FDS") == {"count": 2}
    assert one(plan, "CWD") == {"path": "/"}
    assert [r["entry"] for r in records(plan, "ENV")] == ["PATH=/bin", "A=b"]
    assert [r["arg"] for r in records(plan, "ARG")] == ["sh", "-c", "echo hi"]
    assert records(plan, "MASKED") == [{"path": "/proc/kcore"}]
    assert records(plan, "READONLY") == [{"path": "/proc/sys"}]


def test_minimal_plan_omits_optional_records(bundle):
    plan = make_plan(bundle, minimal())
    names = set(plan.names())
    for absent in ("HOSTNAME", "DOMAINNAME", "TERMINAL", "OOM_SCORE_ADJ", "PERSONALITY",
                   "SECCOMP_INIT", "RLIMIT", "NS_JOIN", "SYSCTL"):
        assert absent not in names
    assert one(plan, "CAPS") == dict.fromkeys(
        ("bounding", "effective", "permitted", "inheritable", "ambient"), 0)
    assert one(plan, "NO_NEW_PRIVS") == {"enabled": 0}
    assert plan.terminal is False
    assert plan.warnings == []


def test_user_umask_and_groups(bundle):
    data = minimal()
    data["process"]["user"] = {"uid": 1000, "gid": 100, "umask": 0o077, "additionalGids": [10, 20]}
    assert one(make_plan(bundle, data), "USER") == {
        "uid": 1000, "gid": 100, "umask": 0o077, "additional_gids": [10, 20]}


@pytest.mark.parametrize("value,flags", [
    ("", 0), ("rslave", mo.MS_SLAVE | mo.MS_REC), ("private", mo.MS_PRIVATE),
    ("rshared", mo.MS_SHARED | mo.MS_REC), ("runbindable", mo.MS_UNBINDABLE | mo.MS_REC),
])
def test_rootfs_propagation(bundle, value, flags):
    data = minimal()
    if value:
        data["linux"]["rootfsPropagation"] = value
    data["root"]["readonly"] = True
    rootfs = one(make_plan(bundle, data), "ROOTFS")
    assert rootfs["propagation"] == flags and rootfs["readonly"] == 1


def test_time_and_cgroup_namespace_flags(bundle):
    data = minimal()
    data["linux"]["namespaces"] += [{"type": "time"}, {"type": "cgroup"}]
    flags = one(make_plan(bundle, data), "NS_NEW")["clone_flags"]
    assert flags == 0x20000 | 0x20000000 | 0x80 | 0x2000000


# ------------------------------------------------------------ user namespace

def test_new_user_namespace_mappings(bundle):
    data = minimal()
    data["linux"]["namespaces"].append({"type": "user"})
    data["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    data["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000},
                                    {"containerID": 1000, "hostID": 5, "size": 1}]
    plan = make_plan(bundle, data)
    assert plan.new_userns is True
    assert plan.uid_mappings == [(0, 100000, 65536)]
    assert plan.gid_mappings == [(0, 200000, 1000), (1000, 5, 1)]
    assert one(plan, "NS_NEW")["clone_flags"] & 0x10000000


# ------------------------------------------------------------------- mounts

MS_DEFAULT = mo.MS_NOSUID | mo.MS_NODEV | mo.MS_NOEXEC

# (options, fstype) -> (flags, propagation, attr_set, attr_clr, data)
OPTION_TABLE = [
    ([], "tmpfs", (0, 0, 0, 0, [])),
    (["defaults"], "tmpfs", (0, 0, 0, 0, [])),
    (["ro"], "tmpfs", (mo.MS_RDONLY, 0, 0, 0, [])),
    (["ro", "rw"], "tmpfs", (0, 0, 0, 0, [])),
    (["nosuid", "suid"], "tmpfs", (0, 0, 0, 0, [])),
    (["nosuid", "nodev", "noexec"], "tmpfs", (MS_DEFAULT, 0, 0, 0, [])),
    (["noexec", "exec", "nodev", "dev"], "tmpfs", (0, 0, 0, 0, [])),
    (["sync"], "tmpfs", (mo.MS_SYNCHRONOUS, 0, 0, 0, [])),
    (["sync", "async"], "tmpfs", (0, 0, 0, 0, [])),
    (["dirsync"], "tmpfs", (mo.MS_DIRSYNC, 0, 0, 0, [])),
    (["remount"], "tmpfs", (mo.MS_REMOUNT, 0, 0, 0, [])),
    (["mand"], "tmpfs", (mo.MS_MANDLOCK, 0, 0, 0, [])),
    (["mand", "nomand"], "tmpfs", (0, 0, 0, 0, [])),
    (["noatime"], "tmpfs", (mo.MS_NOATIME, 0, 0, 0, [])),
    (["noatime", "atime"], "tmpfs", (0, 0, 0, 0, [])),
    (["nodiratime"], "tmpfs", (mo.MS_NODIRATIME, 0, 0, 0, [])),
    (["nodiratime", "diratime"], "tmpfs", (0, 0, 0, 0, [])),
    (["relatime"], "tmpfs", (mo.MS_RELATIME, 0, 0, 0, [])),
    (["relatime", "norelatime"], "tmpfs", (0, 0, 0, 0, [])),
    (["strictatime"], "tmpfs", (mo.MS_STRICTATIME, 0, 0, 0, [])),
    (["strictatime", "nostrictatime"], "tmpfs", (0, 0, 0, 0, [])),
    (["lazytime"], "tmpfs", (mo.MS_LAZYTIME, 0, 0, 0, [])),
    (["lazytime", "nolazytime"], "tmpfs", (0, 0, 0, 0, [])),
    (["iversion"], "tmpfs", (mo.MS_I_VERSION, 0, 0, 0, [])),
    (["iversion", "noiversion"], "tmpfs", (0, 0, 0, 0, [])),
    (["acl"], "tmpfs", (mo.MS_POSIXACL, 0, 0, 0, [])),
    (["acl", "noacl"], "tmpfs", (0, 0, 0, 0, [])),
    (["silent"], "tmpfs", (mo.MS_SILENT, 0, 0, 0, [])),
    (["silent", "loud"], "tmpfs", (0, 0, 0, 0, [])),
    (["nosymfollow"], "tmpfs", (mo.MS_NOSYMFOLLOW, 0, 0, 0, [])),
    (["nosymfollow", "symfollow"], "tmpfs", (0, 0, 0, 0, [])),
    (["bind"], "none", (mo.MS_BIND, 0, 0, 0, [])),
    (["rbind"], "none", (mo.MS_BIND | mo.MS_REC, 0, 0, 0, [])),
    ([], "bind", (mo.MS_BIND, 0, 0, 0, [])),
    (["rbind", "ro", "nosuid"], "bind", (mo.MS_BIND | mo.MS_REC | mo.MS_RDONLY | mo.MS_NOSUID,
                                         0, 0, 0, [])),
    (["private"], "tmpfs", (0, mo.MS_PRIVATE, 0, 0, [])),
    (["rprivate"], "tmpfs", (0, mo.MS_PRIVATE | mo.MS_REC, 0, 0, [])),
    (["shared"], "tmpfs", (0, mo.MS_SHARED, 0, 0, [])),
    (["rshared"], "tmpfs", (0, mo.MS_SHARED | mo.MS_REC, 0, 0, [])),
    (["slave"], "tmpfs", (0, mo.MS_SLAVE, 0, 0, [])),
    (["rslave"], "tmpfs", (0, mo.MS_SLAVE | mo.MS_REC, 0, 0, [])),
    (["unbindable"], "tmpfs", (0, mo.MS_UNBINDABLE, 0, 0, [])),
    (["runbindable"], "tmpfs", (0, mo.MS_UNBINDABLE | mo.MS_REC, 0, 0, [])),
    (["shared", "rslave"], "tmpfs", (0, mo.MS_SLAVE | mo.MS_REC, 0, 0, [])),
    (["rro"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_RDONLY, 0, [])),
    (["rro", "rrw"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_RDONLY, [])),
    (["rnosuid"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_NOSUID, 0, [])),
    (["rsuid"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_NOSUID, [])),
    (["rnodev"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_NODEV, 0, [])),
    (["rdev"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_NODEV, [])),
    (["rnoexec"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_NOEXEC, 0, [])),
    (["rexec"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_NOEXEC, [])),
    (["rnodiratime"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_NODIRATIME, 0, [])),
    (["rdiratime"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_NODIRATIME, [])),
    (["rrelatime"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR__ATIME, [])),
    (["rnorelatime"], "bind", (mo.MS_BIND, 0, 0, 0, [])),
    (["rnoatime"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_NOATIME, mo.MOUNT_ATTR__ATIME, [])),
    (["ratime"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_NOATIME, [])),
    (["rstrictatime"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_STRICTATIME, mo.MOUNT_ATTR__ATIME, [])),
    (["rnostrictatime"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_STRICTATIME, [])),
    (["rnosymfollow"], "bind", (mo.MS_BIND, 0, mo.MOUNT_ATTR_NOSYMFOLLOW, 0, [])),
    (["rsymfollow"], "bind", (mo.MS_BIND, 0, 0, mo.MOUNT_ATTR_NOSYMFOLLOW, [])),
    (["rro", "rnosuid", "rnodev"], "bind",
     (mo.MS_BIND, 0, mo.MOUNT_ATTR_RDONLY | mo.MOUNT_ATTR_NOSUID | mo.MOUNT_ATTR_NODEV, 0, [])),
    (["mode=755", "size=65536k", "nosuid"], "tmpfs", (mo.MS_NOSUID, 0, 0, 0,
                                                      ["mode=755", "size=65536k"])),
    (["newinstance", "ptmxmode=0666"], "devpts", (0, 0, 0, 0, ["newinstance", "ptmxmode=0666"])),
    (["lowerdir=/a", "upperdir=/b", "workdir=/c", "userxattr"], "overlay",
     (0, 0, 0, 0, ["lowerdir=/a", "upperdir=/b", "workdir=/c", "userxattr"])),
]


@pytest.mark.parametrize("options,fstype,expected", OPTION_TABLE,
                         ids=["%s:%s" % (t[1], ",".join(t[0])) for t in OPTION_TABLE])
def test_mount_option_table(options, fstype, expected):
    opts = mo.parse(options, fstype, "mounts[0].options")
    assert (opts.flags, opts.propagation, opts.attr_set, opts.attr_clr, opts.data) == expected
    assert opts.is_bind == (fstype == "bind" or "bind" in options or "rbind" in options)


def test_every_runc_option_is_known():
    words = ["defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync",
             "async", "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime",
             "nodiratime", "bind", "rbind", "relatime", "norelatime", "strictatime",
             "nostrictatime", "lazytime", "nolazytime", "iversion", "noiversion", "acl", "noacl",
             "silent", "loud", "nosymfollow", "symfollow"]
    assert sorted(words) == sorted(mo.FLAGS)
    assert len(mo.PROPAGATION) == 8 and len(mo.RECURSIVE) == 18


@pytest.mark.parametrize("word", ["nosuidd", "rbindd", "bogus"])
def test_unknown_option(word):
    with pytest.raises(ConfigError) as info:
        mo.parse(["ro", word], "tmpfs", "mounts[2].options")
    assert str(info.value) == 'mounts[2].options[1]: unknown mount option "%s"' % word


def test_copyup_only_on_tmpfs():
    assert mo.parse(["tmpcopyup"], "tmpfs", "mounts[0].options").copyup
    assert not mo.parse(["tmpcopyup", "notmpcopyup"], "tmpfs", "mounts[0].options").copyup
    assert not mo.parse(["bind", "tmpcopyup"], "bind", "mounts[0].options").copyup
    assert not mo.parse(["tmpcopyup"], "proc", "mounts[0].options").copyup


@pytest.mark.parametrize("word", ["idmap", "ridmap"])
def test_idmap_words(word):
    assert mo.parse(["bind", word], "bind", "mounts[0].options").idmap == word


def test_flag_names():
    assert mo.flag_names(mo.MS_NOSUID | mo.MS_NODEV | mo.MS_NOEXEC) == "MS_NODEV|MS_NOEXEC|MS_NOSUID"
    assert mo.flag_names(0) == "0"


def test_mount_records(bundle):
    (bundle / "data").mkdir()
    (bundle / "hosts").write_text("127.0.0.1 localhost\n")
    data = minimal()
    data["mounts"] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/data", "type": "bind", "source": "data",
         "options": ["rbind", "ro", "rprivate", "rnosuid"]},
        {"destination": "/etc/hosts", "type": "none", "source": "hosts", "options": ["bind"]},
    ]
    mounts = records(make_plan(bundle, data), "MOUNT")
    assert mounts == [
        {"kind": 0, "source": "proc", "dest": "/proc", "fstype": "proc", "flags": 0,
         "propagation": 0, "attr_set": 0, "attr_clr": 0, "data": "", "mkdir_kind": 0},
        {"kind": 0, "source": "shm", "dest": "/dev/shm", "fstype": "tmpfs", "flags": MS_DEFAULT,
         "propagation": 0, "attr_set": 0, "attr_clr": 0, "data": "mode=1777,size=65536k",
         "mkdir_kind": 0},
        {"kind": 1, "source": str(bundle / "data"), "dest": "/data", "fstype": "bind",
         "flags": mo.MS_BIND | mo.MS_REC | mo.MS_RDONLY, "propagation": mo.MS_PRIVATE | mo.MS_REC,
         "attr_set": mo.MOUNT_ATTR_NOSUID, "attr_clr": 0, "data": "", "mkdir_kind": 0},
        {"kind": 1, "source": str(bundle / "hosts"), "dest": "/etc/hosts", "fstype": "bind",
         "flags": mo.MS_BIND, "propagation": 0, "attr_set": 0, "attr_clr": 0, "data": "",
         "mkdir_kind": 1},
    ]


# ------------------------------------------------------------------ cgroups

def _cgroup_mount(options=("nosuid", "noexec", "nodev", "relatime", "ro"), index=6):
    opts = mo.parse(list(options), "cgroup", "mounts[%d].options" % index)
    return cfgmod.Mount("/sys/fs/cgroup", "cgroup", "cgroup", options, opts, index)


RO_FLAGS = MS_DEFAULT | mo.MS_RELATIME | mo.MS_RDONLY


def test_cgroup_v1_binds_own_cgroups():
    recs, warnings = planmod.cgroup_mount_records(_cgroup_mount(), MOUNTINFO_V1, CGROUP_V1)
    assert warnings == []
    bind = mo.MS_BIND | mo.MS_REC | RO_FLAGS
    assert recs == [
        ("MOUNT", (0, "tmpfs", "/sys/fs/cgroup", "tmpfs", MS_DEFAULT, 0, 0, 0, "mode=755", 0)),
        ("MOUNT", (1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "bind", bind,
                   0, 0, 0, "", 0)),
        # co-mounted: the same directory again under each controller name
        ("MOUNT", (1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu", "bind", bind,
                   0, 0, 0, "", 0)),
        ("MOUNT", (1, "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct", "bind", bind,
                   0, 0, 0, "", 0)),
        ("MOUNT", (1, "/sys/fs/cgroup/memory/process_api/c0", "/sys/fs/cgroup/memory", "bind",
                   bind, 0, 0, 0, "", 0)),
        # mount root /docker, own cgroup /docker/abc -> relative abc
        ("MOUNT", (1, "/sys/fs/cgroup/pids/abc", "/sys/fs/cgroup/pids", "bind", bind,
                   0, 0, 0, "", 0)),
        ("MOUNT", (1, "/sys/fs/cgroup/systemd/user.slice", "/sys/fs/cgroup/systemd", "bind",
                   bind, 0, 0, 0, "", 0)),
        ("MOUNT", (0, "tmpfs", "/sys/fs/cgroup", "tmpfs", RO_FLAGS | mo.MS_REMOUNT,
                   0, 0, 0, "", 0)),
    ]


def test_cgroup_v1_with_cgroup_namespace_mounts_hierarchies():
    recs, _ = planmod.cgroup_mount_records(_cgroup_mount(), MOUNTINFO_V1, CGROUP_V1, cgroupns=True)
    mounts = [r[1] for r in recs if r[0] == "MOUNT"][1:-1]
    assert [(m[1], m[2], m[3], m[4], m[8]) for m in mounts] == [
        ("cgroup", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", MS_DEFAULT | mo.MS_RDONLY, "cpu,cpuacct"),
        ("cgroup", "/sys/fs/cgroup/cpu", "cgroup", MS_DEFAULT | mo.MS_RDONLY, "cpu,cpuacct"),
        ("cgroup", "/sys/fs/cgroup/cpuacct", "cgroup", MS_DEFAULT | mo.MS_RDONLY, "cpu,cpuacct"),
        ("cgroup", "/sys/fs/cgroup/memory", "cgroup", MS_DEFAULT | mo.MS_RDONLY, "memory"),
        ("cgroup", "/sys/fs/cgroup/pids", "cgroup", MS_DEFAULT | mo.MS_RDONLY, "pids"),
        ("cgroup", "/sys/fs/cgroup/systemd", "cgroup", MS_DEFAULT | mo.MS_RDONLY, "name=systemd"),
    ]


def test_cgroup_v1_read_write_has_no_remount():
    mount = _cgroup_mount(("nosuid", "noexec", "nodev"))
    recs, _ = planmod.cgroup_mount_records(mount, MOUNTINFO_V1, CGROUP_V1)
    assert all(r[0] == "MOUNT" and not r[1][4] & mo.MS_REMOUNT for r in recs)
    assert recs[-1][1][2] == "/sys/fs/cgroup/systemd"


def test_cgroup_v2_unified():
    recs, warnings = planmod.cgroup_mount_records(_cgroup_mount(), MOUNTINFO_V2, CGROUP_V2)
    assert recs == [("MOUNT", (0, "cgroup", "/sys/fs/cgroup", "cgroup2", RO_FLAGS, 0, 0, 0, "", 0))]
    assert warnings == []


def test_cgroup_v2_in_new_user_namespace_binds_own_cgroup():
    recs, _ = planmod.cgroup_mount_records(_cgroup_mount(), MOUNTINFO_V2, CGROUP_V2,
                                           new_userns=True)
    assert recs == [("MOUNT", (1, "/sys/fs/cgroup/user.slice/session-1.scope", "/sys/fs/cgroup",
                               "bind", RO_FLAGS | mo.MS_BIND | mo.MS_REC, 0, 0, 0, "", 0))]


def test_no_cgroups_on_host_warns():
    recs, warnings = planmod.cgroup_mount_records(_cgroup_mount(), "", "")
    assert [r[1][3] for r in recs] == ["tmpfs", "tmpfs"]
    assert warnings == ["mounts[6]: no cgroup hierarchy is mounted on the host; /sys/fs/cgroup "
                        "is an empty tmpfs in the container"]


def test_mountinfo_unescapes_spaces():
    text = r"50 1 0:40 / /mnt/with\040space rw - cgroup cgroup rw,memory"
    assert planmod.parse_mountinfo(text) == [("/", "/mnt/with space", "cgroup", "rw,memory")]


def test_cgroup_mount_in_plan(bundle):
    data = minimal()
    data["mounts"] = [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["ro"]}]
    plan = make_plan(bundle, data, mountinfo=MOUNTINFO_V2, proc_cgroup=CGROUP_V2)
    assert records(plan, "MOUNT") == [{
        "kind": 0, "source": "cgroup", "dest": "/sys/fs/cgroup", "fstype": "cgroup2",
        "flags": mo.MS_RDONLY, "propagation": 0, "attr_set": 0, "attr_clr": 0, "data": "",
        "mkdir_kind": 0}]


# ------------------------------------------------------------------ devices

DEFAULT_NODES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                 ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]


def test_default_devices(bundle):
    plan = make_plan(bundle, minimal())
    assert one(plan, "DEV_SETUP") == {"enabled": 1}
    devices = records(plan, "DEVICE")
    assert [(d["path"], d["major"], d["minor"]) for d in devices] == DEFAULT_NODES
    assert all(d["type"] == ord("c") and d["mode"] == 0o666 and d["uid"] == 0 and d["gid"] == 0
               for d in devices)
    links = {(r["target"], r["linkpath"]) for r in records(plan, "SYMLINK")}
    assert {("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
            ("pts/ptmx", "/dev/ptmx")} <= links
    assert (("/proc/kcore", "/dev/core") in links) == os.path.exists("/proc/kcore")


def test_config_devices_follow_defaults_and_override(bundle):
    data = minimal()
    data["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600,
         "uid": 1, "gid": 2},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o644},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
        {"path": "/dev/kmsg2", "type": "u", "major": 1, "minor": 11},
        {"path": "/run/fifo", "type": "p"},
    ]
    devices = records(make_plan(bundle, data), "DEVICE")
    paths = [d["path"] for d in devices]
    assert paths == ["/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                     "/dev/fuse", "/dev/null", "/dev/sda", "/dev/kmsg2", "/run/fifo"]
    assert devices[5] == {"path": "/dev/fuse", "type": ord("c"), "major": 10, "minor": 229,
                          "mode": 0o600, "uid": 1, "gid": 2, "bind_fallback": 1}
    assert devices[6]["mode"] == 0o644
    assert [d["type"] for d in devices[7:]] == [ord("b"), ord("c"), ord("p")]


def test_no_devices_when_dev_is_bind_mounted(bundle):
    data = minimal()
    data["mounts"] = [{"destination": "/dev", "type": "bind", "source": "/dev",
                       "options": ["rbind"]}]
    data["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    plan = make_plan(bundle, data)
    assert one(plan, "DEV_SETUP") == {"enabled": 0}
    assert records(plan, "DEVICE") == [] and records(plan, "SYMLINK") == []
    assert any(w.startswith("linux.devices:") for w in plan.warnings)


def test_tmpfs_dev_keeps_devices(bundle):
    data = minimal()
    data["mounts"] = [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}]
    assert one(make_plan(bundle, data), "DEV_SETUP") == {"enabled": 1}


# ------------------------------------------------------------- capabilities

def test_capability_masks(bundle):
    data = minimal()
    data["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"],
        "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN", "CAP_KILL"],
        "inheritable": ["CAP_AUDIT_WRITE"], "ambient": []}
    assert one(make_plan(bundle, data), "CAPS") == {
        "bounding": (1 << 0) | (1 << 10) | (1 << 40), "effective": 1 << 21,
        "permitted": (1 << 21) | (1 << 5), "inheritable": 1 << 29, "ambient": 0}


# ------------------------------------------------------------------ seccomp

def _seccomp_plan(bundle, seccomp):
    data = minimal()
    data["linux"]["seccomp"] = seccomp
    plan = make_plan(bundle, data)
    return [(name, values) for name, values in decoded(plan) if name.startswith("SECCOMP")]


def test_seccomp_translation(bundle):
    recs = _seccomp_plan(bundle, {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 0xff, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
            {"names": ["kill"], "action": "SCMP_ACT_LOG"},
            {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRAP"},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["umount2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},  # == default
            {"names": ["setns"], "action": "SCMP_ACT_KILL_THREAD"},
        ],
    })
    assert recs == [
        ("SECCOMP_INIT", {"default_action": 0x00050000 | 38, "flags": 1 | 4}),
        ("SECCOMP_ARCH", {"name": "x86_64"}),
        ("SECCOMP_ARCH", {"name": "x86"}),
        ("SECCOMP_ARCH", {"name": "x32"}),
        ("SECCOMP_RULE", {"syscall": "read", "action": 0x7fff0000, "args": []}),
        ("SECCOMP_RULE", {"syscall": "write", "action": 0x7fff0000, "args": []}),
        ("SECCOMP_RULE", {"syscall": "personality", "action": 0x7fff0000,
                          "args": [0, 8, 0, 4, 1, 0xff, 3, 7]}),
        ("SECCOMP_RULE", {"syscall": "clone", "action": 0x7ff00000 | 5, "args": []}),
        ("SECCOMP_RULE", {"syscall": "kill", "action": 0x7ffc0000, "args": []}),
        ("SECCOMP_RULE", {"syscall": "reboot", "action": 0x80000000, "args": []}),
        ("SECCOMP_RULE", {"syscall": "ptrace", "action": 0x00030000, "args": []}),
        ("SECCOMP_RULE", {"syscall": "mount", "action": 0x00050000 | 1, "args": []}),
        ("SECCOMP_RULE", {"syscall": "setns", "action": 0, "args": []}),
    ]


def test_seccomp_same_argument_twice_splits_rules(bundle):
    recs = _seccomp_plan(bundle, {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                               {"index": 0, "value": 2, "op": "SCMP_CMP_NE"}]}]})
    assert recs[1:] == [
        ("SECCOMP_RULE", {"syscall": "clone", "action": 0x50001, "args": [0, 1, 0, 4]}),
        ("SECCOMP_RULE", {"syscall": "clone", "action": 0x50001, "args": [0, 2, 0, 1]}),
    ]


@pytest.mark.parametrize("op,number", sorted(planmod.SECCOMP_OPS.items()))
def test_seccomp_ops(op, number):
    assert number == {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
                      "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}[op]


def test_seccomp_kill_default(bundle):
    recs = _seccomp_plan(bundle, {"defaultAction": "SCMP_ACT_KILL"})
    assert recs == [("SECCOMP_INIT", {"default_action": 0, "flags": 0})]


# ------------------------------------------------------------------ warnings

def test_plan_carries_config_warnings(bundle):
    data = minimal()
    data["linux"]["resources"] = {"memory": {"kernelTCP": 10}}
    plan = make_plan(bundle, data)
    assert plan.warnings == ["linux.resources.memory.kernelTCP: kernel memory limits are "
                             "deprecated (the kernel dropped them); ignored"]


def test_encode_roundtrip(bundle):
    plan = make_plan(bundle, full_config())
    blob = plan.encode()
    assert blob.startswith(planformat.MAGIC)
    assert [name for name, _ in planformat.decode(blob)] == plan.names()


def test_add_env_goes_before_args(bundle):
    plan = make_plan(bundle, minimal(), preserve_fds=3)
    assert plan.preserve_fds == 3
    plan.add_env("LISTEN_FDS=3")
    names = plan.names()
    assert names[-4:] == ["ENV", "ARG", "ARG", "ARG"]
    assert [r["entry"] for r in records(plan, "ENV")] == ["PATH=/bin", "A=b", "LISTEN_FDS=3"]


def test_ambient_needs_inheritable_and_permitted(bundle):
    data = minimal()
    data["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    plan = make_plan(bundle, data)
    assert one(plan, "CAPS")["ambient"] == 1 << 5
    assert plan.warnings == []
    assert plan.notes == [
        "process.capabilities.ambient: CAP_CHOWN ignored: an ambient capability must also be "
        "permitted and inheritable (runc ignores these too)"]


def test_hooks_in_plan(bundle):
    data = minimal()
    data["hooks"] = {
        "createContainer": [{"path": "/hook", "args": ["hook", "a"], "env": ["X=1"],
                             "timeout": 3},
                            {"path": "/second"}],
        "startContainer": [{"path": "/in/container"}],
        "poststart": [{"path": "/runtime/side"}],
    }
    decoded = planformat.decode(make_plan(bundle, data).encode())
    hooks = [(name, values) for name, values in decoded if name.startswith("HOOK")]
    assert hooks == [
        ("HOOK_SYNC", {"enabled": 1}),
        ("HOOK", {"stage": 0, "where": "hooks.createContainer[0]", "path": "/hook",
                  "timeout": 3}),
        ("HOOK_ARG", {"arg": "hook"}), ("HOOK_ARG", {"arg": "a"}),
        ("HOOK_ENV", {"entry": "X=1"}),
        ("HOOK", {"stage": 0, "where": "hooks.createContainer[1]", "path": "/second",
                  "timeout": 0}),
        ("HOOK_ARG", {"arg": "/second"}),
        ("HOOK", {"stage": 1, "where": "hooks.startContainer[0]", "path": "/in/container",
                  "timeout": 0}),
        ("HOOK_ARG", {"arg": "/in/container"}),
    ]


@pytest.mark.parametrize("kinds,sync", [
    (("prestart",), True), (("createRuntime",), True), (("createContainer",), True),
    (("startContainer", "poststart", "poststop"), False), ((), False)])
def test_hook_sync_only_for_hooks_before_pivot(bundle, kinds, sync):
    data = minimal()
    data["hooks"] = {kind: [{"path": "/h"}] for kind in kinds}
    names = make_plan(bundle, data).names()
    assert ("HOOK_SYNC" in names) == sync
    # The runtime-side kinds never reach the init.
    assert names.count("HOOK") == sum(k in ("createContainer", "startContainer") for k in kinds)


@pytest.mark.parametrize("user_namespace,perm", [(False, 0x00080000), (True, 0x00000008)])
def test_session_keyring_record(bundle, user_namespace, perm):
    plan = make_plan(bundle, minimal())
    plan.add_session_keyring("web-1", user_namespace)
    assert records(plan, "SESSION_KEYRING") == [{"name": "_ses.web-1", "add_perm": perm}]


def test_time_offsets_follow_the_new_namespace(bundle):
    data = minimal()
    data["linux"]["namespaces"].append({"type": "time"})
    data["linux"]["timeOffsets"] = {"monotonic": {"secs": -5, "nanosecs": 7},
                                    "boottime": {"secs": 86400}}
    plan = make_plan(bundle, data)
    names = plan.names()
    assert names.index("TIME_OFFSET") == names.index("NS_NEW") + 1
    assert records(plan, "TIME_OFFSET") == [
        {"clock": "monotonic", "secs": -5, "nanosecs": 7},
        {"clock": "boottime", "secs": 86400, "nanosecs": 0}]


@pytest.mark.parametrize("options,recursive", [(["rbind"], 1), (["bind"], 0),
                                               (["rbind", "idmap"], 0), (["bind", "ridmap"], 1)])
def test_idmapped_mount_record_follows_its_mount(bundle, options, recursive):
    data = minimal()
    data["mounts"] = [{"destination": "/data", "type": "bind", "source": str(bundle),
                       "options": options,
                       "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10},
                                       {"containerID": 10, "hostID": 5000, "size": 1}],
                       "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}]}]
    decoded = planformat.decode(make_plan(bundle, data).encode())
    at = [name for name, _ in decoded].index("MOUNT_IDMAP")
    assert decoded[at - 1][0] == "MOUNT" and decoded[at - 1][1]["dest"] == "/data"
    assert decoded[at][1] == {"recursive": recursive, "uid_map": "0 1000 10\n10 5000 1\n",
                              "gid_map": "0 2000 1\n"}


def test_idmap_option_takes_the_user_namespace_mappings(bundle):
    data = minimal()
    data["linux"]["namespaces"].append({"type": "user"})
    data["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    data["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    data["mounts"] = [{"destination": "/data", "type": "bind", "source": str(bundle),
                       "options": ["bind", "idmap"]}]
    assert records(make_plan(bundle, data), "MOUNT_IDMAP") == [
        {"recursive": 0, "uid_map": "0 100000 65536\n", "gid_map": "0 200000 65536\n"}]


def test_exec_cpu_affinity_records(bundle):
    data = minimal()
    data["process"]["execCPUAffinity"] = {"initial": "0-1, 65", "final": "3"}
    assert records(make_plan(bundle, data), "CPU_AFFINITY") == [
        {"stage": 0, "mask": [0b11, 0b10]}, {"stage": 1, "mask": [0b1000]}]
