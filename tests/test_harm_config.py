"""Issue 8, items 1, 2 and 8: configs that harmed the host or named the wrong cause.

- linux.sysctl: only keys of a namespace the container does not share with the host
  (IPC keys with an IPC namespace, net.* with a network namespace, kernel.hostname and
  kernel.domainname with a UTS namespace); every other key is refused before anything is
  written, and the host's value stays.
- uids and gids: 0..2147483647 everywhere an id enters (4294967295 is (uid_t)-1, which
  setresuid reads as "unchanged": the process stayed root).
- errors that named the wrong cause: "//" destinations, rootfs/proc|sys|dev symlinked to
  "/", a tiny memory limit or RLIMIT_AS, RLIMIT_NOFILE 3, 1 MB values echoed whole,
  additionalGids past 1024 dropped, env entries with an empty name.

Container tests drive the CLI (they also run through MINIRUNC_BIN); the pure helpers and
the init's own sysctl check (a plan run through the native init) are tested directly.
"""

import json
import os
import subprocess

import pytest

from make_bundle import base_config, in_user_namespace
from minirunc import config as cfgmod
from minirunc.errors import shown

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def mounts_under(path):
    """The host's mount points under ``path`` (a test's own directory: other tests may
    mount elsewhere at the same time)."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return sorted(p for p in (line.split()[4] for line in f) if p.startswith(prefix))


def read_sysctl(name):
    """The host's value of a dotted sysctl, or None where this kernel lacks it."""
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def other_value(current, choices):
    """A value from ``choices`` that differs from the host's ``current`` one."""
    return next(c for c in choices if c != current)


@pytest.fixture
def refused(rt, tmp_path):
    """refused(bundle, line, command="create"): the command fails with exactly ``line``
    (after "minirunc: ") as its only line, and leaves no state and no mount behind (under
    the test's directory, which holds the bundles and the state root)."""
    def check(bundle, line, command="create"):
        before = mounts_under(tmp_path)
        cid = rt.new_id()
        r = rt(command, "--bundle", bundle, cid)
        assert r.returncode != 0, r.stdout
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert lines == ["minirunc: " + line], r.stderr
        assert not os.path.exists(os.path.join(rt.root, cid)), "state left behind"
        assert mounts_under(tmp_path) == before, "mount left on the host"
        return lines[0]
    return check


def with_sysctl(sysctl, drop=()):
    def edit(config):
        config["linux"]["sysctl"] = sysctl
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] not in drop]
    return edit


def running(rt, make, edit=None):
    bundle = make(["sleep", "1000"], edit=edit)
    cid = rt.new_id()
    r = rt("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    return cid


# ------------------------------------------------------------------ 1. sysctls

def test_host_sysctl_is_refused_and_the_host_keeps_its_value(rt, make, refused):
    before = read_sysctl("fs.lease-break-time")
    value = other_value(before, ("46", "47"))
    bundle = make(edit=with_sysctl({"fs.lease-break-time": value}))
    for command in ("create", "run"):
        refused(bundle, 'linux.sysctl.fs.lease-break-time: sysctl "fs.lease-break-time" is not '
                'in a separate kernel namespace', command)
    assert read_sysctl("fs.lease-break-time") == before


@pytest.mark.parametrize("key", ["kernel.core_pattern", "kernel.modprobe", "vm.overcommit_memory",
                                 "kernel/core_pattern", "kernel.pid_max"])
def test_host_wide_sysctls_are_refused(rt, make, refused, key):
    dotted = cfgmod.sysctl_dotted(key)
    before = read_sysctl(dotted)
    bundle = make(edit=with_sysctl({key: "|/tmp/pwned %p"}))
    refused(bundle, 'linux.sysctl.%s: sysctl "%s" is not in a separate kernel namespace'
            % (key, dotted))
    assert read_sysctl(dotted) == before


def test_namespaced_sysctls_take_effect_inside_only(rt, make):
    keys = ("kernel.shmmax", "net.ipv4.ip_forward", "kernel.domainname", "fs.mqueue.msg_max")
    before = {k: read_sysctl(k) for k in keys}
    wanted = {"kernel.shmmax": other_value(before["kernel.shmmax"], ("123456", "654321")),
              "net.ipv4.ip_forward": other_value(before["net.ipv4.ip_forward"], ("1", "0")),
              "kernel.domainname": other_value(before["kernel.domainname"],
                                               ("harm.example", "other.example")),
              "fs.mqueue.msg_max": other_value(before["fs.mqueue.msg_max"], ("17", "18"))}
    script = "; ".join("cat /proc/sys/" + k.replace(".", "/") for k in keys)
    bundle = make(["sh", "-c", script], edit=with_sysctl(wanted))
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [wanted[k] for k in keys]
    assert {k: read_sysctl(k) for k in keys} == before


def test_slash_form_sysctl_reaches_its_file(rt, make):
    bundle = make(["cat", "/proc/sys/net/ipv4/ip_forward"],
                  edit=with_sysctl({"net/ipv4/ip_forward": "1"}))
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


@pytest.mark.parametrize("key,ns,kind", [
    ("kernel.shmmax", "ipc", "IPC"), ("fs.mqueue.msg_max", "ipc", "IPC"),
    ("net.ipv4.ip_forward", "network", "network"), ("kernel.domainname", "uts", "UTS")])
def test_namespaced_sysctl_without_its_namespace_is_refused(rt, make, refused, key, ns, kind):
    before = read_sysctl(key)
    edit = with_sysctl({key: "1"}, drop=(ns,))

    def drop_names(config):
        edit(config)
        config.pop("hostname", None)
    refused(make(edit=drop_names), 'linux.sysctl.%s: not allowed in the host %s namespace '
            '(add {"type": "%s"} to linux.namespaces)' % (key, kind, ns))
    assert read_sysctl(key) == before


def test_joined_namespace_that_is_the_hosts_counts_as_the_hosts(rt, make, refused, tmp_path):
    # A bind of the runtime's own network namespace, joined by path.
    target = tmp_path / "hostnet"
    target.touch()
    subprocess.run(["mount", "--bind", "/proc/self/ns/net", str(target)], check=True)
    try:
        before = read_sysctl("net.ipv4.ip_forward")

        def edit(config):
            config["linux"]["namespaces"] = [
                {"type": "network", "path": str(target)} if n["type"] == "network" else n
                for n in config["linux"]["namespaces"]]
            config["linux"]["sysctl"] = {"net.ipv4.ip_forward":
                                         other_value(before, ("1", "0"))}
        names = [n["type"] for n in base_config(["true"])["linux"]["namespaces"]]
        index = names.index("network")
        refused(make(edit=edit), "linux.sysctl.net.ipv4.ip_forward: not allowed in the host "
                "network namespace (linux.namespaces[%d].path %s is the runtime's own)"
                % (index, target))
        assert read_sysctl("net.ipv4.ip_forward") == before
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_kernel_hostname_sysctl_with_a_uts_namespace(rt, make, refused):
    before = read_sysctl("kernel.hostname")

    def edit(config):
        config.pop("hostname")
        config["linux"]["sysctl"] = {"kernel.hostname": "from-sysctl"}
    r = rt.run(make(["hostname"], edit=edit))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "from-sysctl"
    assert read_sysctl("kernel.hostname") == before
    # With the hostname field too, the two would fight: say so.
    refused(make(edit=with_sysctl({"kernel.hostname": "x"})),
            'linux.sysctl.kernel.hostname: conflicts with the "hostname" field (set one of them)')


def test_init_checks_the_namespace_it_writes_in(tmp_path):
    """Behind config.py, the init itself refuses a sysctl outside a namespace of its own
    (a plan run through the native init, as tests/test_native_init.py does)."""
    import shutil
    import native_helpers as h
    root = h.make_rootfs()
    try:
        before = {k: read_sysctl(k) for k in ("fs.lease-break-time", "net.ipv4.ip_forward")}
        for record, text in (
                (("fs/lease-break-time", "46"),
                 "sysctl fs/lease-break-time is not in a separate kernel namespace"),
                (("net/ipv4/ip_forward", other_value(before["net.ipv4.ip_forward"], "10")),
                 "sysctl net/ipv4/ip_forward would be written in the host's net namespace")):
            plan = h.base_records(root, ["true"], after=[("SYSCTL", record)])
            res = h.run_plan(plan, tmp_path)   # the default plan has no network namespace
            assert res.error is not None and res.error[2] == text, res.error
        assert {k: read_sysctl(k) for k in before} == before
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------- 2. ids

def _set_user(**user):
    def edit(config):
        config["process"]["user"].update(user)
    return edit


def _userns(config):
    in_user_namespace(config)


@pytest.mark.parametrize("edit,line", [
    (_set_user(uid=4294967295, gid=4294967295),
     "process.user.uid: must be an integer from 0 to 2147483647"),
    (_set_user(gid=4294967295), "process.user.gid: must be an integer from 0 to 2147483647"),
    (_set_user(uid=2147483648), "process.user.uid: must be an integer from 0 to 2147483647"),
    (_set_user(additionalGids=[5, 4294967295]),
     "process.user.additionalGids[1]: must be an integer from 0 to 2147483647"),
    (lambda c: (_userns(c), c["linux"]["uidMappings"][0].update(hostID=4294967295)),
     "linux.uidMappings[0].hostID: must be an integer from 0 to 2147483647"),
    (lambda c: (_userns(c), c["linux"]["gidMappings"][0].update(containerID=4294967295)),
     "linux.gidMappings[0].containerID: must be an integer from 0 to 2147483647"),
    (lambda c: (_userns(c), c["linux"]["uidMappings"][0].update(size=4294967295)),
     "linux.uidMappings[0].size: 4294967295 ids from containerID 0 run past 2147483647, "
     "the highest id allowed"),
    (lambda c: (_userns(c), c["linux"]["gidMappings"][0].update(hostID=2147483600)),
     "linux.gidMappings[0].size: 65536 ids from hostID 2147483600 run past 2147483647, "
     "the highest id allowed"),
    (lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 1,
                                           "minor": 3, "uid": 4294967295}]),
     "linux.devices[0].uid: must be an integer from 0 to 2147483647"),
    (lambda c: c["mounts"].append({"destination": "/m", "type": "bind", "source": "/tmp",
                                   "options": ["bind"],
                                   "uidMappings": [{"containerID": 0, "hostID": 4294967295,
                                                    "size": 1}],
                                   "gidMappings": [{"containerID": 0, "hostID": 0,
                                                    "size": 1}]}),
     "mounts[6].uidMappings[0].hostID: must be an integer from 0 to 2147483647"),
])
def test_ids_out_of_range_are_refused(rt, make, refused, edit, line):
    refused(make(["id"], edit=edit), line, "run")


def test_highest_ids_still_work(rt, make):
    r = rt.run(make(["sh", "-c", "id -u; id -g; id -G"],
                    edit=_set_user(uid=2147483647, gid=2147483647, additionalGids=[65534])))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2147483647", "2147483647", "2147483647", "65534"]


def test_exec_ids_out_of_range_are_refused(rt, make, tmp_path):
    cid = running(rt, make)
    process = tmp_path / "p.json"
    process.write_text(json.dumps({"args": ["id", "-u"], "cwd": "/",
                                   "user": {"uid": 4294967295, "gid": 0}}))
    cases = [
        (["-u", "4294967295"], '--user "4294967295": the uid must be a number from 0 to '
         "2147483647 (the form is UID[:GID]; user names are not supported)"),
        (["-u", "0:4294967295"], '--user "0:4294967295": the gid must be a number from 0 to '
         "2147483647 (the form is UID[:GID]; user names are not supported)"),
        (["-g", "4294967295"], '--additional-gids "4294967295": a gid must be a number from 0 '
         "to 2147483647"),
        (["--process", str(process)], "%s: user.uid: must be an integer from 0 to 2147483647"
         % process),
    ]
    for flags, line in cases:
        command = ["exec"] + flags + [cid] + ([] if "--process" in flags else ["id", "-u"])
        r = rt(*command)
        assert r.returncode == 255, (flags, r.stdout)
        assert r.stderr.splitlines() == ["minirunc: " + line], r.stderr
        assert not [n for n in os.listdir(os.path.join(rt.root, cid)) if n.startswith("exec-")]
    r = rt("exec", "-u", "65534:65534", "-g", "2147483647", cid, "sh", "-c", "id -u; id -G")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["65534", "65534", "2147483647"]


# ------------------------------------------------- 8. errors that named the wrong cause

def _mount_at(dest):
    def edit(config):
        config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
    return edit


@pytest.mark.parametrize("dest", ["//", "///", "/./", "/x/.."])
def test_destination_that_is_root_is_refused(rt, make, refused, dest):
    if ".." in dest:
        line = 'mounts[6].destination: ".." is not allowed'
    else:
        line = ('mounts[6].destination: "%s" is "/": cannot mount over "/" (the root '
                "filesystem is root.path)" % dest)
    refused(make(edit=_mount_at(dest)), line, "run")


@pytest.mark.parametrize("dest", ["///x", "/./x", "//x/", "/x//"])
def test_destination_is_normalized(rt, make, dest):
    r = rt.run(make(["sh", "-c", "grep -c ' /x rw' /proc/self/mountinfo"],
                    edit=_mount_at(dest)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


@pytest.mark.parametrize("name,fstype", [("proc", "proc"), ("sys", "sysfs"), ("dev", "tmpfs")])
@pytest.mark.parametrize("target", ["/", ".", "/tmp"])
def test_proc_sys_dev_symlinks_are_refused(rt, make, refused, name, fstype, target):
    bundle = make()
    link = os.path.join(str(bundle), "rootfs", name)
    os.rmdir(link)
    os.symlink(target, link)
    refused(bundle, "mount destination /%s: %s is a symlink; %s must be mounted on an "
            "ordinary directory" % (name, link, fstype), "run")


def test_destination_resolving_to_the_rootfs_root_is_refused(rt, make, refused):
    bundle = make(edit=_mount_at("/x/y"))   # x -> "." and y -> "/": both the root
    rootfs = os.path.join(str(bundle), "rootfs")
    os.symlink(".", os.path.join(rootfs, "x"))
    os.symlink("/", os.path.join(rootfs, "y"))
    refused(bundle, "mount destination /x/y resolves to the root of the rootfs %s (through a "
            "symlink such as %s/x/y): a mount there would hide the whole rootfs"
            % (rootfs, rootfs), "run")


def test_symlinked_destination_inside_the_rootfs_still_works(rt, make):
    # As runc: other destinations follow symlinks, inside the rootfs.
    bundle = make(["sh", "-c", "grep -c ' /tmp/real rw' /proc/self/mountinfo"],
                  edit=_mount_at("/link"))
    rootfs = os.path.join(str(bundle), "rootfs")
    os.mkdir(os.path.join(rootfs, "tmp", "real"))
    os.symlink("/tmp/real", os.path.join(rootfs, "link"))
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def _memory_cgroup():
    with open("/proc/self/cgroup") as f:
        text = f.read()
    return "memory" in text or os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@pytest.mark.skipif(not _memory_cgroup(), reason="no memory cgroup controller")
def test_tiny_memory_limit_names_the_oom_kill(rt, make):
    bundle = make(edit=lambda c: c["linux"].update(resources={"memory": {"limit": 1}}))
    cid = rt.new_id()
    r = rt.run(bundle, cid=cid)
    assert r.returncode == 1, r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "ECONNRESET" not in lines[0]
    assert "container init was OOM-killed (memory limit too low?)" in lines[0], lines[0]
    assert "linux.resources.memory.limit" in lines[0]
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_tiny_memory_limit_with_a_cgroup_namespace_spares_the_runtime(rt, make):
    """With a new cgroup namespace the runtime visits the container's cgroups to spawn the
    init: the memory limit is written after it left, or the runtime itself was OOM-killed
    there (create ended by SIGKILL without a word, its state left behind)."""
    def edit(c):
        c["linux"]["resources"] = {"memory": {"limit": 1}}
        c["linux"]["namespaces"].append({"type": "cgroup"})
    cid = rt.new_id()
    r = rt("create", "--bundle", make(["true"], edit=edit), cid)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "linux.resources.memory.limit" in lines[0], r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def _rlimits(*limits):
    def edit(config):
        config["process"]["rlimits"] = [{"type": t, "soft": s, "hard": h} for t, s, h in limits]
    return edit


def test_tiny_rlimit_as_limits_the_process_not_the_init(rt, make):
    cid = rt.new_id()
    r = rt.run(make(["true"], edit=_rlimits(("RLIMIT_AS", 4096, 4096))), cid=cid)
    lines = r.stderr.splitlines()
    assert lines[0] == ("minirunc: warning: process.rlimits[0]: RLIMIT_AS 4096 bytes leaves no "
                        "room to start a program (it is set right before execve, which then "
                        "fails or the process is killed with SIGSEGV)"), r.stderr
    assert "ECONNRESET" not in r.stderr
    # Either execve refused (one line naming it) or the kernel killed the new image.
    if r.returncode == 1:
        assert len(lines) == 2 and "under process.rlimits" in lines[1], r.stderr
    else:
        assert r.returncode == 128 + 11 and len(lines) == 1, (r.returncode, r.stderr)
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_reasonable_rlimit_as_is_applied(rt, make):
    r = rt.run(make(["sh", "-c", "ulimit -v"],
                    edit=_rlimits(("RLIMIT_AS", 64 << 20, 64 << 20))))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(64 << 10)   # ulimit -v counts KiB


def test_rlimit_nofile_3_limits_the_process_not_the_init(rt, make):
    edit = _rlimits(("RLIMIT_NOFILE", 3, 3))
    r = rt.run(make(["sh", "-c", "ulimit -n; ulimit -Hn"], edit=edit))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "3"]
    cid = running(rt, make, edit)
    r = rt("exec", cid, "sh", "-c", "ulimit -n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"


def test_rlimit_above_the_runtimes_hard_limit_is_raised(rt, make):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = min(hard * 2, 1 << 20)
    if want <= hard:
        pytest.skip("the runtime's hard RLIMIT_NOFILE is already at the maximum")
    with open("/proc/self/status") as f:
        effective = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
    if not effective >> 24 & 1:   # CAP_SYS_RESOURCE
        pytest.skip("no CAP_SYS_RESOURCE here: a hard limit cannot be raised at all")
    r = rt.run(make(["sh", "-c", "ulimit -Hn"], edit=_rlimits(("RLIMIT_NOFILE", 64, want))))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(want)


def test_huge_values_are_cut_in_messages(rt, make, refused):
    big = "x" * 1000000
    refused(make(edit=lambda c: c["process"]["env"].append(big)),
            'process.env[2]: must have the form NAME=value (no "=" in "%s... (1000000 '
            'characters)")' % ("x" * 60))
    refused(make(edit=lambda c: c["linux"].update(sysctl={"kernel." + big: "1"})),
            'linux.sysctl.%s... (1000007 characters): sysctl "%s... (1000007 characters)" is '
            "not in a separate kernel namespace" % (("kernel." + big)[:100], ("kernel." + big)[:60]))
    refused(make(edit=lambda c: c["mounts"][0].update(options=[big])),
            'mounts[0].options[0]: unknown mount option "%s... (1000000 characters)"'
            % ("x" * 60))


def test_many_additional_gids_all_reach_the_process(rt, make):
    gids = list(range(10000, 12000))
    r = rt.run(make(["sh", "-c", "grep Groups: /proc/self/status"],
                    edit=_set_user(additionalGids=gids)))
    assert r.returncode == 0, r.stderr
    assert sorted(int(g) for g in r.stdout.split()[1:]) == gids


def test_too_many_additional_gids_are_refused(rt, make, refused):
    refused(make(edit=_set_user(additionalGids=list(range(65537)))),
            "process.user.additionalGids: at most 65536 gids are allowed (the kernel's "
            "NGROUPS_MAX), not 65537")


def test_env_with_an_empty_name_is_refused(rt, make, refused, tmp_path):
    refused(make(edit=lambda c: c["process"]["env"].append("=x")),
            'process.env[2]: must have the form NAME=value (the name is empty in "=x")')
    cid = running(rt, make)
    process = tmp_path / "p.json"
    process.write_text(json.dumps({"args": ["true"], "cwd": "/", "env": ["=x"]}))
    for flags, line in ((["-e", "=x", cid, "true"], '--env "=x": must have the form NAME=value'),
                        (["--process", str(process), cid],
                         '%s: env[0]: must have the form NAME=value (the name is empty in "=x")'
                         % process)):
        r = rt("exec", *flags)
        assert r.returncode == 255, r.stdout
        assert r.stderr.splitlines() == ["minirunc: " + line], r.stderr


# ------------------------------------------------------------- pure helpers

def test_shown_cuts_long_values():
    assert shown("abc") == "abc"
    assert shown("y" * 60) == "y" * 60
    assert shown("y" * 61) == "y" * 60 + "... (61 characters)"
    assert shown(12345, limit=3) == "123... (5 characters)"


@pytest.mark.parametrize("given,clean", [("//", "/"), ("///", "/"), ("/./", "/"), ("///x", "/x"),
                                         ("/./x", "/x"), ("//x//y/", "/x/y"), ("/x", "/x")])
def test_clean_destination(given, clean):
    assert cfgmod.clean_destination(given) == clean


@pytest.mark.parametrize("key,dotted,namespace", [
    ("net.ipv4.ip_forward", "net.ipv4.ip_forward", "network"),
    ("net/ipv4/ip_forward", "net.ipv4.ip_forward", "network"),
    ("net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter", "network"),
    ("kernel.shm_rmid_forced", "kernel.shm_rmid_forced", "ipc"),
    ("fs.mqueue.queues_max", "fs.mqueue.queues_max", "ipc"),
    ("kernel.domainname", "kernel.domainname", "uts"),
    ("kernel/hostname", "kernel.hostname", "uts"),
    ("kernel.shmmaxx", "kernel.shmmaxx", None),
    ("kernel.core_pattern", "kernel.core_pattern", None),
    ("fs.mqueue", "fs.mqueue", None),
    ("netfilter.x", "netfilter.x", None),
])
def test_sysctl_namespaces(key, dotted, namespace):
    assert cfgmod.sysctl_dotted(key) == dotted
    assert cfgmod.sysctl_namespace(dotted) == namespace


def test_init_killed_during_create_names_the_step_and_signal(rt, make):
    """An init that dies without a word (here SIGKILLed by a createRuntime hook while it
    waits) is described by how it died and what it was doing, not by ECONNRESET/EPIPE."""
    # Kill it and wait until it is a zombie (its sockets closed), so the end is certain.
    kill = ["/bin/sh", "-c", "pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); kill -9 $pid; "
            "until grep -q '^[0-9]* (.*) Z' /proc/$pid/stat; do sleep 0.01; done"]
    bundle = make(edit=lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/sh",
                                                                    "args": kill}]}))
    cid = rt.new_id()
    r = rt("create", "--bundle", bundle, cid)
    assert r.returncode == 1, r.stdout
    assert r.stderr.splitlines() == [
        "minirunc: the container's init was killed by signal 9 (SIGKILL) before it was ready, "
        "while it was doing: wait while the runtime runs the prestart and createRuntime hooks"
    ], r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_long_values_the_init_echoes_are_cut(rt, make, refused):
    refused(make(["/" + "a" * 5000]), 'process.args[0] "/%s... (5001 bytes)": file name too '
            "long (ENAMETOOLONG)" % ("a" * 59), "run")
    refused(make(["a" * 300]), 'process.args[0] "%s... (300 bytes)": executable file not '
            "found in $PATH: no such file or directory (ENOENT)" % ("a" * 60), "run")
    refused(make(edit=lambda c: c["process"].update(cwd="/" + "b" * 300)),
            'process.cwd "/%s... (301 bytes)": cannot chdir into it: file name too long '
            "(ENAMETOOLONG)" % ("b" * 59), "run")
    refused(make(edit=lambda c: c.update(hostname="h" * 100000)),
            "hostname: must be at most 64 bytes (the kernel's limit), not 100000")
