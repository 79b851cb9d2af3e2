"""Issue 8, item 9: runc's hardening of /proc mounts and the LSM labels.

- Mounts over /proc are refused as runc's checkProcMount refuses them (the preconditions
  of CVE-2019-16884 and CVE-2023-27561): /proc must be a procfs, nothing inside /proc may
  be covered but the files lxcfs emulates; destinations are normalized, and a symlink in
  the rootfs cannot lead a mount into /proc (the init checks the resolved destination).
- process.apparmorProfile / selinuxLabel / linux.mountLabel (and exec --apparmor /
  --process-label) are applied where the LSM is active, warned about where it is absent.
  This host has no LSM, so the warning path runs end to end through the CLI, the decision
  is unit-tested with file texts, and the init's write of the label is driven with a
  hand-made plan (its procfs check and its error report).

Container tests drive the CLI and check that a refused container leaves nothing: no state
directory, no cgroup directory, no mount under the test's directories.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import one_error_line, runtime_env
from host_leftovers import cgroup_dirs_named
from minirunc import config as cfgmod
from minirunc import lsm, mountcheck, planformat
from minirunc import plan as planmod
from minirunc.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# ------------------------------------------------------------------ helpers

def host_mount_points():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def assert_nothing_left(rt, cid, tmp_path):
    """No state directory, cgroup directory or host mount left by container ``cid``."""
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert cgroup_dirs_named(cid) == []
    assert [p for p in host_mount_points() if p.startswith(str(tmp_path))] == []


def fake_proc_tree(path):
    """An ordinary directory tree dressed up as /proc."""
    (path / "self" / "attr").mkdir(parents=True)
    (path / "self" / "attr" / "current").write_text("unconfined\n")
    (path / "self" / "attr" / "exec").write_text("")
    (path / "sys" / "kernel").mkdir(parents=True)
    (path / "sys" / "kernel" / "core_pattern").write_text("|/tmp/evil\n")
    return path


def tree_snapshot(path):
    return {str(p.relative_to(path)): (p.read_text() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def with_mount(mount, at=None):
    def edit(config):
        config["root"]["readonly"] = False
        if at is None:
            config["mounts"].append(mount)
        else:
            config["mounts"][at] = mount
    return edit


# ------------------------------------------------------- pure: mountcheck

@pytest.mark.parametrize("dest, norm, place", [
    ("/proc", "/proc", "proc"),
    ("//proc", "/proc", "proc"),
    ("/proc/", "/proc", "proc"),
    ("/proc/./sys/", "/proc/sys", "inside"),
    ("//proc//self/attr/current", "/proc/self/attr/current", "inside"),
    ("/proc/uptime", "/proc/uptime", "allowed"),
    ("/proc/./sys/kernel/ns_last_pid", "/proc/sys/kernel/ns_last_pid", "allowed"),
    ("/proc/net/dev", "/proc/net/dev", "allowed"),
    ("/proc/net/dev/x", "/proc/net/dev/x", "inside"),
    ("/procfs", "/procfs", "outside"),
    ("/sys/proc", "/sys/proc", "outside"),
])
def test_destination_normalization_and_place(dest, norm, place):
    assert mountcheck.normalize(dest) == norm
    assert mountcheck.proc_place(norm) == place


def test_allowed_list_is_the_same_in_the_init():
    with open(os.path.join(REPO, "native", "init.c")) as f:
        source = f.read()
    block = re.search(r"proc_allowed\[\] = \{(.*?)\};", source, re.S).group(1)
    assert tuple(re.findall(r'"([^"]+)"', block)) == mountcheck.PROC_ALLOWED
    assert "/proc/uptime" in mountcheck.PROC_ALLOWED and len(mountcheck.PROC_ALLOWED) == 11


MOUNTINFO = """\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
24 23 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw
25 22 0:41 / /srv/fake rw - tmpfs tmpfs rw
26 25 0:42 / /srv/fake rw - proc proc rw
"""


def test_fstype_of_the_mount_holding_a_path():
    from minirunc.procfs import parse_mountinfo
    mounts = parse_mountinfo(MOUNTINFO)
    assert mountcheck.fstype_of("/proc", mounts) == "proc"
    assert mountcheck.fstype_of("/proc/self", mounts) == "proc"
    assert mountcheck.fstype_of("/proc/sys/fs/binfmt_misc", mounts) == "binfmt_misc"
    assert mountcheck.fstype_of("/procx", mounts) == "ext4"
    assert mountcheck.fstype_of("/srv/fake/1", mounts) == "proc"     # the later one is on top
    assert mountcheck.bind_source_problem("/proc", MOUNTINFO) == ""
    assert mountcheck.bind_source_problem("/home/x", MOUNTINFO) == \
        "the bind source /home/x is on ext4, not on a procfs"


def minimal(mounts):
    return {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "mounts": mounts,
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "fake").mkdir()
    (tmp_path / "uptime").write_text("1.00 1.00\n")
    return tmp_path


def config_error(bundle, mounts):
    with pytest.raises(ConfigError) as info:
        cfgmod.parse_config(minimal(mounts), str(bundle))
    return str(info.value)


PROC = {"destination": "/proc", "type": "proc", "source": "proc"}


@pytest.mark.parametrize("mount, message", [
    ({"destination": "/proc", "type": "bind", "source": "fake", "options": ["rbind"]},
     'mounts[1].destination: "/proc" cannot be mounted because it is not of type proc: the '
     "bind source %(b)s/fake is on "),
    ({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"},
     'mounts[1].destination: "/proc" cannot be mounted because it is not of type proc '
     '(type is "tmpfs"; use type proc)'),
    ({"destination": "//proc", "type": "sysfs", "source": "sysfs"},
     'mounts[1].destination: "/proc" cannot be mounted because it is not of type proc'),
    ({"destination": "/proc/sys", "type": "bind", "source": "fake", "options": ["bind"]},
     'mounts[1].destination: "/proc/sys" cannot be mounted because it is inside /proc'),
    ({"destination": "/proc/./self/attr/current", "type": "bind", "source": "uptime",
      "options": ["bind"]},
     'mounts[1].destination: "/proc/self/attr/current" cannot be mounted because it is '
     "inside /proc"),
    ({"destination": "//proc/1/attr/exec", "type": "tmpfs", "source": "tmpfs"},
     'mounts[1].destination: "/proc/1/attr/exec" cannot be mounted because it is inside /proc'),
    ({"destination": "/proc/sys/kernel/core_pattern", "type": "bind", "source": "uptime",
      "options": ["bind"]},
     'mounts[1].destination: "/proc/sys/kernel/core_pattern" cannot be mounted because it is '
     "inside /proc"),
])
def test_config_refuses_mounts_over_proc(bundle, mount, message):
    assert config_error(bundle, [PROC, mount]).startswith(message % {"b": bundle})


@pytest.mark.parametrize("mount", [
    PROC,
    {"destination": "//proc/", "type": "proc", "source": "proc"},
    {"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]},
    {"destination": "/proc/uptime", "type": "bind", "source": "uptime", "options": ["bind"]},
    {"destination": "/proc/sys/kernel/ns_last_pid", "type": "bind", "source": "uptime",
     "options": ["bind"]},
    {"destination": "/procfs", "type": "tmpfs", "source": "tmpfs"},
])
def test_config_accepts_what_runc_accepts(bundle, mount):
    cfgmod.parse_config(minimal([PROC, mount]), str(bundle))


# ------------------------------------------------------------- pure: LSM

NO_LSM = dict.fromkeys(lsm.FILES)       # every file unreadable, as on this host
APPARMOR_HOST = dict(NO_LSM, lsm="lockdown,capability,yama,apparmor", apparmor_dir="",
                     apparmor_enabled="Y\n",
                     apparmor_profiles="docker-default (enforce)\n/usr/bin/man (enforce)\n")
SELINUX_HOST = dict(NO_LSM, lsm="capability,selinux", selinux_enforce="1",
                    attr_current="unconfined_u:unconfined_r:unconfined_t:s0\0")


def test_detect_nothing():
    state = lsm.detect(NO_LSM)
    assert not state.apparmor and not state.selinux
    assert state.apparmor_why == ("/sys/module/apparmor/parameters/enabled is missing: the "
                                  "kernel has no AppArmor")
    assert state.selinux_why == "/sys/fs/selinux/enforce is missing: selinuxfs is not mounted"


def test_detect_apparmor():
    state = lsm.detect(APPARMOR_HOST)
    assert state.apparmor and not state.selinux
    assert state.profiles == {"docker-default", "/usr/bin/man"}
    # runc: both the securityfs directory and the module parameter.
    assert not lsm.detect(dict(APPARMOR_HOST, apparmor_dir=None)).apparmor
    off = lsm.detect(dict(APPARMOR_HOST, apparmor_enabled="N\n"))
    assert not off.apparmor and off.apparmor_why.endswith('enabled reads "N"')
    other = lsm.detect(dict(APPARMOR_HOST, lsm="capability,selinux"))
    assert other.apparmor_why == "/sys/kernel/security/lsm lists capability,selinux, not apparmor"
    # Without a readable profile list, nothing is pre-checked.
    assert lsm.detect(dict(APPARMOR_HOST, apparmor_profiles=None)).profiles is None


def test_detect_selinux():
    state = lsm.detect(SELINUX_HOST)
    assert state.selinux and not state.apparmor
    kernel = lsm.detect(dict(SELINUX_HOST, attr_current="kernel\0"))
    assert not kernel.selinux and '"kernel"' in kernel.selinux_why
    assert not lsm.detect(dict(SELINUX_HOST, lsm="apparmor")).selinux


def test_read_host_reads_under_a_root(tmp_path):
    for rel, text in (("sys/kernel/security/lsm", "capability,apparmor"),
                      ("sys/module/apparmor/parameters/enabled", "Y\n"),
                      ("sys/kernel/security/apparmor/profiles", "p1 (complain)\n")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    texts = lsm.read_host(str(tmp_path))
    assert texts["apparmor_dir"] == "" and texts["selinux_enforce"] is None
    state = lsm.detect(texts)
    assert state.apparmor and state.profiles == {"p1"}
    assert not lsm.detect(lsm.read_host(str(tmp_path / "nothing"))).apparmor


def test_label_decisions():
    none, aa, se = lsm.detect(NO_LSM), lsm.detect(APPARMOR_HOST), lsm.detect(SELINUX_HOST)
    warning = lsm.check_label("apparmor", "docker-default", "process.apparmorProfile", none)
    assert warning == ("process.apparmorProfile: AppArmor is not supported on this host "
                       "(/sys/module/apparmor/parameters/enabled is missing: the kernel has no "
                       "AppArmor); the process runs without the profile")
    assert lsm.check_label("mount", "x", "linux.mountLabel", aa).startswith(
        "linux.mountLabel: SELinux is not supported on this host (/sys/fs/selinux/enforce")
    assert lsm.check_label("apparmor", "docker-default", "process.apparmorProfile", aa) == ""
    assert lsm.check_label("apparmor", "unconfined", "process.apparmorProfile", aa) == ""
    with pytest.raises(ConfigError) as info:
        lsm.check_label("apparmor", "nope", "process.apparmorProfile", aa)
    assert str(info.value).startswith('process.apparmorProfile: AppArmor profile "nope" is not '
                                      "loaded")
    assert lsm.check_label("selinux", "a:b:c:s0", "--process-label", se) == ""
    with pytest.raises(ConfigError):
        lsm.check_label("mount", 'a"b', "linux.mountLabel", se)
    with pytest.raises(ConfigError):
        lsm.check_label("selinux", "a\nb", "process.selinuxLabel", se)


LABELS = {"apparmorProfile": "docker-default", "selinuxLabel": "u:r:container_t:s0"}
MOUNT_LABEL = "u:object_r:container_file_t:s0:c1,c2"


def labeled_plan(bundle, monkeypatch, texts):
    monkeypatch.setattr(lsm, "_host", lsm.detect(texts))
    data = minimal([PROC,
                    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                     "options": ["mode=755"]},
                    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
                    {"destination": "/data", "type": "bind", "source": "fake",
                     "options": ["bind"]}])
    data["process"].update(LABELS)
    data["linux"]["mountLabel"] = MOUNT_LABEL
    config = cfgmod.parse_config(data, str(bundle))
    plan = planmod.build_plan(config)
    decoded = planformat.decode(plan.encode())
    labels = [(v["lsm"], v["label"]) for n, v in decoded if n == "LSM_LABEL"]
    data_of = {v["dest"]: v["data"] for n, v in decoded if n == "MOUNT"}
    return config, plan, labels, data_of


def test_plan_carries_labels_where_the_lsm_is_active(bundle, monkeypatch):
    config, plan, labels, data_of = labeled_plan(bundle, monkeypatch, SELINUX_HOST)
    assert labels == [(lsm.SELINUX, "u:r:container_t:s0")]
    context = 'context="%s"' % MOUNT_LABEL
    assert data_of["/dev"] == "mode=755," + context          # runc labels tmpfs and the like
    assert data_of["/proc"] == "" and data_of["/dev/mqueue"] == "" and data_of["/data"] == ""
    # AppArmor was not active there: its warning, and no record for it.
    assert [w.split(":")[0] for w in config.warnings] == ["process.apparmorProfile"]

    config, plan, labels, data_of = labeled_plan(bundle, monkeypatch, APPARMOR_HOST)
    assert labels == [(lsm.APPARMOR, "docker-default")]
    assert data_of["/dev"] == "mode=755"
    assert sorted(w.split(":")[0] for w in config.warnings) == ["linux.mountLabel",
                                                                "process.selinuxLabel"]
    # exec runs the container's process with the same labels.
    exec_plan = planmod.build_exec_plan(config.process, None, {"mount": "/proc/1/ns/mnt"})
    assert ("LSM_LABEL", (lsm.APPARMOR, "docker-default")) in exec_plan.records


def test_plan_carries_no_label_without_the_lsm(bundle, monkeypatch):
    config, plan, labels, data_of = labeled_plan(bundle, monkeypatch, NO_LSM)
    assert labels == [] and data_of["/dev"] == "mode=755"
    assert sorted(w.split(":")[0] for w in config.warnings) == [
        "linux.mountLabel", "process.apparmorProfile", "process.selinuxLabel"]


def test_unloaded_profile_is_refused_at_validation(bundle, monkeypatch):
    monkeypatch.setattr(lsm, "_host", lsm.detect(APPARMOR_HOST))
    data = minimal([PROC])
    data["process"]["apparmorProfile"] = "not-loaded"
    with pytest.raises(ConfigError) as info:
        cfgmod.parse_config(data, str(bundle))
    assert str(info.value).startswith('process.apparmorProfile: AppArmor profile "not-loaded"')


def test_lsm_detection_stays_off_the_state_start_kill_delete_path(rt, make):
    cid = rt.new_id("hm")
    def edit(config):
        config["process"].update(LABELS)
    r = rt("create", "--bundle", make(["sleep", "30"], edit=edit), cid)
    assert r.returncode == 0, r.stderr
    code = ("import sys\nfrom minirunc.cli import main\ncodes = []\n"
            "for argv in (['state'], ['start'], ['kill'], ['kill', 'KILL'], ['delete', '-f']):\n"
            "    codes.append(main(['--root', %r, argv[0], %r] + argv[1:]))\n"
            "print(codes, sorted(m for m in sys.modules if m in ('minirunc.lsm', "
            "'minirunc.mountcheck')))\n" % (rt.root, cid))
    out = subprocess.run([sys.executable, "-c", code], env=runtime_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0, 0] []"
    assert not os.path.exists(os.path.join(rt.root, cid))


# ------------------------------------------------------ containers (CLI)

@needs_root
@pytest.mark.parametrize("from_bundle", [False, True])
def test_fake_tree_bound_onto_proc_is_refused(rt, make, tmp_path, from_bundle):
    fake = fake_proc_tree(tmp_path / "fakeproc")
    before = tree_snapshot(fake)
    source = "../fakeproc" if from_bundle else str(fake)
    bundle = make(["cat", "/proc/self/attr/current"],
                  edit=with_mount({"destination": "/proc", "type": "bind", "source": source,
                                   "options": ["rbind"]}, at=0))
    cid = rt.new_id("hm")
    line = one_error_line(rt.run(bundle, cid=cid))
    assert ('mounts[0].destination: "/proc" cannot be mounted because it is not of type proc: '
            "the bind source %s is on " % fake) in line
    assert tree_snapshot(fake) == before
    assert_nothing_left(rt, cid, tmp_path)


@needs_root
@pytest.mark.parametrize("dest, shown", [
    ("/proc/self/attr/current", "/proc/self/attr/current"),
    ("/proc/sys", "/proc/sys"),
    ("//proc/./sys/kernel", "/proc/sys/kernel"),
    ("/proc/self/attr/apparmor/exec", "/proc/self/attr/apparmor/exec"),
])
def test_bind_inside_proc_is_refused(rt, make, tmp_path, dest, shown):
    fake = fake_proc_tree(tmp_path / "fakeproc")
    source = fake / "self" / "attr" / "current" if dest.endswith(("current", "exec")) else fake
    before = tree_snapshot(fake)
    bundle = make(["true"], edit=with_mount({"destination": dest, "type": "bind",
                                             "source": str(source), "options": ["bind"]}))
    cid = rt.new_id("hm")
    line = one_error_line(rt.run(bundle, cid=cid))
    assert line.endswith('mounts[6].destination: "%s" cannot be mounted because it is inside '
                         "/proc (only /proc/cpuinfo, /proc/meminfo, /proc/uptime and the other "
                         "files lxcfs emulates may be mounted over)" % shown)
    assert tree_snapshot(fake) == before
    assert_nothing_left(rt, cid, tmp_path)


@needs_root
def test_allowed_proc_files_can_be_mounted_over(rt, make, tmp_path):
    # As runc: /proc/uptime and the other lxcfs files take a bind, from a real procfs file
    # or from any file (lxcfs's are FUSE files).
    fake_uptime = tmp_path / "uptime"
    fake_uptime.write_text("4242.00 1.00\n")

    def edit(config):
        config["mounts"] += [
            {"destination": "/proc/uptime", "type": "bind", "source": str(fake_uptime),
             "options": ["bind", "ro"]},
            {"destination": "/proc/loadavg", "type": "bind", "source": "/proc/loadavg",
             "options": ["bind"]},
        ]
    script = ("cat /proc/uptime; grep -E ' /proc/(uptime|loadavg) ' /proc/self/mountinfo "
              "| awk '{print $5, $(NF-2)}'")
    cid = rt.new_id("hm")
    r = rt.run(make(["sh", "-c", script], edit=edit), cid=cid)
    assert r.returncode == 0, r.stderr
    from minirunc.procfs import parse_mountinfo
    with open("/proc/self/mountinfo") as f:
        fstype = mountcheck.fstype_of(os.path.realpath(str(fake_uptime)),
                                      parse_mountinfo(f.read()))
    lines = r.stdout.splitlines()
    assert lines[0] == "4242.00 1.00"
    assert sorted(lines[1:]) == ["/proc/loadavg proc", "/proc/uptime " + fstype]
    assert_nothing_left(rt, cid, tmp_path)


@needs_root
def test_real_procfs_bound_onto_proc_works(rt, make, tmp_path):
    # runc allows a bind whose source is a procfs; the init checks it with statfs on the
    # source it mounts (an O_PATH fd), not by the config's type string.
    cid = rt.new_id("hm")
    bundle = make(["sh", "-c", "grep ' /proc ' /proc/self/mountinfo | awk '{print $(NF-2)}'; "
                   "test -r /proc/self/status && echo status-ok"],
                  edit=with_mount({"destination": "/proc", "type": "bind", "source": "/proc",
                                   "options": ["bind"]}, at=0))
    r = rt.run(bundle, cid=cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["proc", "status-ok"]
    assert_nothing_left(rt, cid, tmp_path)


@needs_root
@pytest.mark.parametrize("link, target, mount, expected", [
    # an absolute symlink resolves inside the rootfs: into its /proc
    ("mnt/sys", "/proc/sys", {"type": "tmpfs", "source": "tmpfs", "destination": "/mnt/sys"},
     '"/mnt/sys" resolves in the rootfs to "/proc/sys": "/proc/sys" cannot be mounted '
     "because it is inside /proc"),
    ("mnt/self", "/proc/self", {"type": "bind", "destination": "/mnt/self/attr",
                                "options": ["rbind"]},
     '"/mnt/self/attr" resolves in the rootfs to "/proc/1/attr": "/proc/1/attr" cannot be '
     "mounted because it is inside /proc"),
    ("mnt/p", "../proc", {"type": "bind", "destination": "/mnt/p", "options": ["rbind"]},
     '"/mnt/p" resolves in the rootfs to "/proc": "/proc" cannot be mounted because it is '
     "not of type proc (the bind source %(fake)s is on a filesystem of type 0x"),
])
def test_symlink_into_proc_is_refused(rt, make, tmp_path, link, target, mount, expected):
    fake = fake_proc_tree(tmp_path / "fakeproc")
    before = tree_snapshot(fake)
    if mount["type"] == "bind":
        mount = dict(mount, source=str(fake / "self" / "attr" if "attr" in
                                       mount["destination"] else fake))
    bundle = make(["true"], edit=with_mount(mount))
    os.makedirs(os.path.dirname(str(bundle / "rootfs" / link)), exist_ok=True)
    os.symlink(target, str(bundle / "rootfs" / link))
    cid = rt.new_id("hm")
    line = one_error_line(rt.run(bundle, cid=cid))
    source = mount.get("source", "")
    assert ("mount destination " + expected % {"fake": source}) in line
    assert tree_snapshot(fake) == before
    assert_nothing_left(rt, cid, tmp_path)


@needs_root
def test_normal_container_is_unaffected(rt, make, tmp_path):
    # The default mounts, masked and read-only /proc paths, and the /proc writes the init
    # now checks (oom_score_adj, a sysctl) all work as before.
    def edit(config):
        config["process"]["oomScoreAdj"] = 123
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    script = ("grep ' /proc ' /proc/self/mountinfo | awk '{print $(NF-2)}'; "
              "cat /proc/self/oom_score_adj /proc/sys/net/ipv4/ip_forward; "
              "test -e /proc/sys/kernel && echo sys-ok")
    cid = rt.new_id("hm")
    r = rt.run(make(["sh", "-c", script], edit=edit), cid=cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["proc", "123", "1", "sys-ok"]
    assert r.stderr == ""
    assert_nothing_left(rt, cid, tmp_path)


# ------------------------------------------------- LSM labels on this host

def no_lsm_here():
    state = lsm.detect(lsm.read_host("/"))
    return not state.apparmor and not state.selinux


needs_no_lsm = pytest.mark.skipif(not no_lsm_here(), reason="an LSM is active on this host")


@needs_root
@needs_no_lsm
def test_labels_warn_and_run_without_an_lsm(rt, make, tmp_path):
    def edit(config):
        config["process"].update(LABELS)
        config["linux"]["mountLabel"] = MOUNT_LABEL
    cid = rt.new_id("hm")
    r = rt.run(make(["sh", "-c", "grep ' /dev ' /proc/self/mountinfo; echo ran"], edit=edit),
               cid=cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "ran" and "context=" not in r.stdout
    warnings = r.stderr.strip().splitlines()
    assert warnings == [
        "minirunc: warning: process.apparmorProfile: AppArmor is not supported on this host "
        "(/sys/module/apparmor/parameters/enabled is missing: the kernel has no AppArmor); "
        "the process runs without the profile",
        "minirunc: warning: process.selinuxLabel: SELinux is not supported on this host "
        "(/sys/fs/selinux/enforce is missing: selinuxfs is not mounted); the process runs "
        "without the label",
        "minirunc: warning: linux.mountLabel: SELinux is not supported on this host "
        "(/sys/fs/selinux/enforce is missing: selinuxfs is not mounted); the mounts are not "
        "labeled",
    ]
    assert_nothing_left(rt, cid, tmp_path)


@needs_root
@needs_no_lsm
def test_exec_label_flags_warn_without_an_lsm(rt, make, tmp_path):
    cid = rt.new_id("hm")
    r = rt("run", "-d", "--bundle", make(["sleep", "60"]), cid)
    assert r.returncode == 0, r.stderr
    r = rt("exec", "--apparmor", "docker-default", "--process-label", "u:r:t:s0", cid,
           "echo", "exec-ran")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exec-ran\n"
    assert r.stderr.strip().splitlines() == [
        "minirunc: warning: --apparmor: AppArmor is not supported on this host "
        "(/sys/module/apparmor/parameters/enabled is missing: the kernel has no AppArmor); "
        "the process runs without the profile",
        "minirunc: warning: --process-label: SELinux is not supported on this host "
        "(/sys/fs/selinux/enforce is missing: selinuxfs is not mounted); the process runs "
        "without the label",
    ]
    assert rt("delete", "--force", cid).returncode == 0
    assert_nothing_left(rt, cid, tmp_path)


# ------------------------------- the init's label write (hand-made plans)

@pytest.fixture
def native_rootfs():
    import shutil
    import native_helpers as h
    root = h.make_rootfs()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def label_plan(rootfs, lsm_kind, label, with_proc=True):
    import native_helpers as h
    records = h.base_records(rootfs, ["true"], after=[("LSM_LABEL", (lsm_kind, label))])
    if not with_proc:
        records = [r for r in records if not (r[0] == "MOUNT" and r[1][2] == "/proc")]
    return records


@needs_root
@needs_no_lsm
@pytest.mark.parametrize("kind, step", [(lsm.APPARMOR, "apparmor"), (lsm.SELINUX, "selinux")])
def test_init_writes_the_label_to_the_real_procfs(native_rootfs, tmp_path, kind, step):
    # Without an LSM the kernel refuses the write (EINVAL): the init got as far as the
    # container's real /proc/self/attr/exec and says which field and file failed.
    import errno
    from native_helpers import run_plan
    res = run_plan(label_plan(native_rootfs, kind, "prof"), tmp_path)
    assert res.error is not None, res.text
    err, got_step, detail = res.error
    assert (err, got_step) == (errno.EINVAL, step)
    field = "apparmorProfile" if kind == lsm.APPARMOR else "selinuxLabel"
    assert detail == 'apply process.%s "prof": write to /proc/self/attr/exec' % field


@needs_root
@pytest.mark.parametrize("kind, step", [(lsm.APPARMOR, "apparmor"), (lsm.SELINUX, "selinux")])
def test_init_refuses_to_write_the_label_into_a_fake_proc(native_rootfs, tmp_path, kind,
                                                          step):
    # CVE-2019-16884: no procfs at /proc, the rootfs brings its own /proc/self/attr files.
    attr = os.path.join(native_rootfs, "proc", "self", "attr")
    os.makedirs(os.path.join(attr, "apparmor"))
    for name in ("exec", "apparmor/exec"):
        open(os.path.join(attr, name), "w").close()
    from native_helpers import run_plan
    res = run_plan(label_plan(native_rootfs, kind, "prof", with_proc=False), tmp_path)
    assert res.error is not None, res.text
    err, got_step, detail = res.error
    path = "/proc/self/attr/apparmor/exec" if kind == lsm.APPARMOR else "/proc/self/attr/exec"
    assert (err, got_step) == (0, step)
    assert detail.startswith(path + " is not on a procfs (statfs type 0x")
    assert detail.endswith("refusing to write to it; something is mounted over /proc")
    for name in ("exec", "apparmor/exec"):
        assert os.path.getsize(os.path.join(attr, name)) == 0


def test_long_values_are_cut_in_messages(bundle, monkeypatch):
    # (a path of PATH_MAX or more is refused for its length before the /proc check)
    for long_dest in ("/proc/" + "x" * 100000, "/proc/" + "x/" * 2000):
        message = config_error(bundle, [PROC, {"destination": long_dest, "type": "tmpfs"}])
        assert len(message) < 500 and message.startswith("mounts[1].destination: "), message
    assert '"/proc/x/x/x/' in message and "inside /proc" in message, message
    with pytest.raises(ConfigError) as info:
        lsm.check_label("apparmor", "p" * 100000, "process.apparmorProfile",
                        lsm.detect(APPARMOR_HOST))
    assert len(str(info.value)) < 500
    with pytest.raises(ConfigError) as info:
        lsm.check_label("selinux", "s" * 5000, "process.selinuxLabel", lsm.detect(SELINUX_HOST))
    assert str(info.value) == "process.selinuxLabel: is longer than 4000 bytes"
