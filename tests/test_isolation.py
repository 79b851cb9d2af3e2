"""Namespaces, mounts and devices, each checked from inside a real container."""

import json
import os
import subprocess

import pytest

from conftest import runtime_env
from make_bundle import in_user_namespace, reachable_by_mapped_root


def run_ok(rt, bundle, *extra):
    r = rt.run(bundle, *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


def mountinfo_line(text, mountpoint):
    for line in text.splitlines():
        fields = line.split()
        if fields[4] == mountpoint:
            return line
    raise AssertionError("%s not mounted:\n%s" % (mountpoint, text))


# -- namespaces --------------------------------------------------------------

def test_hostname_pid_one_and_only_lo(rt, make):
    out = run_ok(rt, make(["sh", "-c", "hostname; echo $$; ls /sys/class/net"]))
    assert out.split("\n")[:3] == ["minirunc", "1", "lo"]


def test_domainname(rt, make):
    out = run_ok(rt, make(["cat", "/proc/sys/kernel/domainname"],
                          edit=lambda c: c.update(domainname="example.org")))
    assert out == "example.org\n"


def test_namespaces_differ_from_host(rt, make):
    kinds = ("pid", "net", "ipc", "uts", "mnt")
    out = run_ok(rt, make(["sh", "-c", " ".join("readlink /proc/self/ns/%s;" % k for k in kinds)]))
    inside = out.split()
    for kind, value in zip(kinds, inside):
        assert value != os.readlink("/proc/self/ns/%s" % kind), kind


def test_time_namespace_with_offsets(rt, make):
    """A new time namespace really is one (legacy clone() cannot make it), with the
    boottime and monotonic offsets of linux.timeOffsets; exec lands in it too."""
    ten_days = 10 * 86400

    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": ten_days},
                                     "monotonic": {"secs": ten_days, "nanosecs": 5}}
    cid = rt.new_id("time")
    r = rt("run", "-d", "--bundle", make(["sleep", "100"], edit=edit), cid)
    assert r.returncode == 0, r.stderr
    r = rt("exec", cid, "sh", "-c", "readlink /proc/self/ns/time; cat /proc/uptime")
    assert r.returncode == 0, r.stderr
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    ns, uptime = r.stdout.split()[:2]
    assert ns != os.readlink("/proc/self/ns/time")
    assert ns == os.readlink("/proc/%d/ns/time" % rt.state(cid)["pid"])
    assert ten_days - 60 < float(uptime) - host_uptime < ten_days + 60


def test_time_namespace_on_a_kernel_without_one(rt, make):
    """Where /proc/self/ns/time is missing (Linux < 5.6), a time namespace is refused in one
    line naming the field, before anything is set up.  Such a kernel is made here by an
    empty tmpfs over the runtime's own /proc/<pid>/ns, in a mount namespace of its own."""
    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})
    cid = rt.new_id("notime")
    bundle = make(["true"], edit=edit)
    with open(os.path.join(bundle, "config.json")) as f:
        index = [ns["type"] for ns in json.load(f)["linux"]["namespaces"]].index("time")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs none /proc/$$/ns && test ! -e /proc/self/ns/time && exec "$@"',
                        "sh"] + rt.cmd("run", "--bundle", bundle, cid),
                       capture_output=True, text=True, timeout=60, env=runtime_env())
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.splitlines() == [
        "minirunc: linux.namespaces[%d]: a time namespace needs Linux 5.6, which this kernel "
        "is older than: leave it out" % index], r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid)), "state left behind"


def test_user_namespace_uid_map(rt, make):
    bundle = make(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"],
                  edit=in_user_namespace)
    out = run_ok(rt, reachable_by_mapped_root(bundle))
    lines = [l.split() for l in out.splitlines()]
    assert lines[0] == ["0", "100000", "65536"]
    assert lines[1] == ["0", "100000", "65536"]
    assert lines[2] == ["0"]


def test_join_network_namespace_by_path(rt, make):
    first = rt.new_id()
    assert rt("run", "-d", "--bundle", make(["sleep", "100"]), first).returncode == 0
    pid = rt.state(first)["pid"]
    ns_path = "/proc/%d/ns/net" % pid

    def edit(c):
        c["linux"]["namespaces"] = [n if n["type"] != "network" else {"type": "network", "path": ns_path}
                                    for n in c["linux"]["namespaces"]]
    out = run_ok(rt, make(["readlink", "/proc/self/ns/net"], edit=edit))
    assert out.strip() == os.readlink(ns_path)


# -- mounts ----------------------------------------------------------------

def test_standard_mounts_in_mountinfo(rt, make):
    info = run_ok(rt, make(["cat", "/proc/self/mountinfo"]))
    assert " - proc " in mountinfo_line(info, "/proc")
    dev = mountinfo_line(info, "/dev")
    assert " - tmpfs " in dev and "nosuid" in dev.split()[5]
    assert " - devpts " in mountinfo_line(info, "/dev/pts")
    assert " - mqueue " in mountinfo_line(info, "/dev/mqueue")
    sysfs = mountinfo_line(info, "/sys")
    assert sysfs.split()[5].startswith("ro,")
    assert mountinfo_line(info, "/").split()[5].startswith("ro")  # root.readonly


def _owned_files(tmp_path):
    """A host directory holding files of uid/gid 0 and 1000."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "by-root").write_text("")
    (data / "by-1000").write_text("")
    os.chown(data / "by-1000", 1000, 1000)
    return data


def _owners(listing):
    """{name: (uid, gid)} from `ls -ln` output."""
    owners = {}
    for line in listing.splitlines():
        fields = line.split()
        if line.startswith("-") and len(fields) >= 9:
            owners[fields[-1].rsplit("/", 1)[-1]] = (int(fields[2]), int(fields[3]))
    return owners


# Idmapped mounts under a MINIRUNC_KERNEL (tests/oldkernel.py) older than 5.12 are refused
# by name instead (tests/test_oldkernel.py checks that).
needs_mount_setattr = pytest.mark.skipif(
    os.environ.get("MINIRUNC_KERNEL") is not None and
    tuple(map(int, os.environ.get("MINIRUNC_KERNEL", "0.0").split(".")[:2])) < (5, 12),
    reason="idmapped mounts need Linux 5.12 (MINIRUNC_KERNEL is older)")


@needs_mount_setattr
def test_idmapped_mount_in_a_user_namespace(rt, make, tmp_path):
    """"idmap" without mappings takes the container's: host files keep their owners inside
    the user namespace, and what container root writes is owned by host root."""
    data = _owned_files(tmp_path)

    def edit(c):
        in_user_namespace(c)
        c["mounts"] += [
            {"destination": "/tmp/idmapped", "type": "bind", "source": str(data),
             "options": ["bind", "idmap"]},
            {"destination": "/tmp/plain", "type": "bind", "source": str(data),
             "options": ["bind"]}]
    reachable_by_mapped_root(data)
    bundle = make(["sh", "-c", "ls -ln /tmp/idmapped; echo ==; ls -ln /tmp/plain; "
                               "touch /tmp/idmapped/made-inside"], edit=edit)
    out = run_ok(rt, reachable_by_mapped_root(bundle))
    idmapped, plain = out.split("==\n")
    assert _owners(idmapped) == {"by-root": (0, 0), "by-1000": (1000, 1000)}
    assert _owners(plain) == {"by-root": (65534, 65534), "by-1000": (65534, 65534)}
    made = os.stat(data / "made-inside")
    assert (made.st_uid, made.st_gid) == (0, 0)


@needs_mount_setattr
def test_idmapped_mount_with_its_own_mappings(rt, make, tmp_path):
    """Mappings on the mount itself, no user namespace: on-disk uid 1000 is shown as 0."""
    data = _owned_files(tmp_path)

    def edit(c):
        c["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                            "options": ["rbind", "ro"],
                            "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
                            "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}]})
    out = run_ok(rt, make(["sh", "-c", "ls -ln /data; echo ==; cat /proc/self/mountinfo; "
                                       "touch /data/x 2>&1 || true"], edit=edit))
    listing, mounts = out.split("==\n")
    assert _owners(listing)["by-1000"] == (0, 0)
    assert _owners(listing)["by-root"] == (65534, 65534)   # on-disk 0 has no mapping
    assert "idmapped" in mountinfo_line(mounts.split("touch:")[0], "/data")
    assert "Read-only file system" in out


def test_readonly_root_refuses_writes(rt, make):
    r = rt.run(make(["touch", "/newfile"]))
    assert r.returncode != 0 and "Read-only file system" in r.stderr


def test_writable_root(rt, make):
    bundle = make(["sh", "-c", "echo data > /newfile"],
                  edit=lambda c: c["root"].update(readonly=False))
    run_ok(rt, bundle)
    assert (bundle / "rootfs" / "newfile").read_text() == "data\n"


def test_bind_mounts_rw_and_ro(rt, make, tmp_path):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "file").write_text("host\n")

    def edit(c):
        c["mounts"] += [
            {"destination": "/rw", "type": "bind", "source": str(rw), "options": ["rbind", "rw"]},
            {"destination": "/ro", "type": "bind", "source": str(ro), "options": ["bind", "ro"]},
        ]
    r = rt.run(make(["sh", "-c", "echo inside > /rw/out; cat /ro/file; echo x > /ro/file"],
                    edit=edit))
    assert (rw / "out").read_text() == "inside\n"
    assert r.stdout == "host\n"
    assert "Read-only file system" in r.stderr and r.returncode != 0
    assert (ro / "file").read_text() == "host\n"


def test_tmpfs_options_and_masked_readonly_paths(rt, make):
    def edit(c):
        c["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "size=1m", "mode=700"]})
    script = ("cat /proc/self/mountinfo; stat -c '%a' /scratch; "
              "cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/domainname && echo WROTE")
    r = rt.run(make(["sh", "-c", script], edit=edit))
    info = r.stdout
    scratch = mountinfo_line(info, "/scratch")
    assert "size=1024k" in scratch and "nosuid" in scratch.split()[5]
    assert "\n700\n" in info
    assert "\n0\n" in info  # /proc/kcore is masked by /dev/null
    assert mountinfo_line(info, "/proc/sys").split()[5].startswith("ro")
    assert "WROTE" not in info


def test_mount_destination_symlink_cannot_escape_rootfs(rt, make, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    bundle = make(["sh", "-c", "ls -d /escape/sub && echo inside-ok"],
                  edit=lambda c: c["mounts"].append(
                      {"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"}))
    os.symlink(str(outside), bundle / "rootfs" / "escape")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert "inside-ok" in r.stdout
    assert not (outside / "sub").exists()
    # The symlink was resolved inside the rootfs instead.
    assert (bundle / "rootfs" / str(outside).lstrip("/") / "sub").is_dir()


def test_no_pivot(rt, make):
    r = rt.run(make(["sh", "-c", "ls /; cat /proc/self/mountinfo"]), "--no-pivot")
    assert r.returncode == 0, r.stderr
    assert "busybox" not in r.stdout.split("\n")[0:1]
    assert "bin" in r.stdout.split()


def test_how_the_rootfs_was_entered_is_reported_under_debug(rt, make):
    r = rt("--debug", "run", "--no-pivot", "--bundle", make(["true"]), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert "move-mount + chroot" in r.stderr and "with pivot_root" not in r.stderr
    r = rt("--debug", "run", "--bundle", make(["true"]), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert "with pivot_root" in r.stderr and "chroot" not in r.stderr


def test_rootfs_propagation_private(rt, make):
    info = run_ok(rt, make(["cat", "/proc/self/mountinfo"],
                           edit=lambda c: c["linux"].update(rootfsPropagation="private")))
    root = mountinfo_line(info, "/")
    assert "shared:" not in root and "master:" not in root


def test_sysctl_in_new_network_namespace(rt, make):
    out = run_ok(rt, make(["cat", "/proc/sys/net/ipv4/ip_forward"],
                          edit=lambda c: c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"})))
    assert out == "1\n"


# -- devices -----------------------------------------------------------------

def test_default_devices_and_links(rt, make):
    script = ("for d in null zero full random urandom tty; do stat -c '%n %t:%T %F' /dev/$d; done; "
              "readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx; echo x > /dev/null && head -c 4 /dev/zero | wc -c; "
              "ls -d /dev/shm")
    out = run_ok(rt, make(["sh", "-c", script]))
    for name, dev in (("null", "1:3"), ("zero", "1:5"), ("full", "1:7"), ("random", "1:8"),
                      ("urandom", "1:9"), ("tty", "5:0")):
        assert "/dev/%s %s character special file" % (name, dev) in out
    assert "/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n4\n/dev/shm\n" in out


def test_linux_devices(rt, make):
    def edit(c):
        c["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                  "fileMode": 0o600, "uid": 0, "gid": 0}]
    out = run_ok(rt, make(["stat", "-c", "%t:%T %a %F", "/dev/mynull"], edit=edit))
    assert out == "1:3 600 character special file\n"


def test_rlimits(rt, make):
    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                                   {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
    out = run_ok(rt, make(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"], edit=edit))
    assert out.split() == ["256", "512", "100"]


def test_cwd_env_and_path_lookup(rt, make):
    def edit(c):
        c["process"]["cwd"] = "/tmp"
        c["process"]["env"].append("GREETING=hi there")
    out = run_ok(rt, make(["sh", "-c", "pwd; echo $GREETING; which sleep"], edit=edit))
    assert out == "/tmp\nhi there\n/bin/sleep\n"


def test_oom_score_adj(rt, make):
    out = run_ok(rt, make(["cat", "/proc/self/oom_score_adj"],
                          edit=lambda c: c["process"].update(oomScoreAdj=500)))
    assert out == "500\n"


def _stat_fields(text):
    """/proc/<pid>/stat split after the command name (field 3 is index 0)."""
    return text[text.rindex(")") + 2:].split()


def test_scheduler_and_io_priority(rt, make):
    def edit(c):
        c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    out = run_ok(rt, make(["sh", "-c", "cat /proc/1/stat; ionice -p 1"], edit=edit))
    stat, ionice = out.splitlines()
    fields = _stat_fields(stat)
    assert (int(fields[16]), int(fields[38])) == (7, 3)    # nice, policy SCHED_BATCH
    assert ionice.strip() == "best-effort: prio 6"


def test_real_time_scheduler(rt, make):
    def edit(c):
        c["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10,
                                     "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
        # With v1 real-time group scheduling (this host) the cgroup needs a budget.
        c["linux"]["resources"] = {"cpu": {"realtimeRuntime": 10000,
                                           "realtimePeriod": 1000000}}
    out = run_ok(rt, make(["sh", "-c", "cat /proc/self/stat; cat /proc/1/stat"], edit=edit))
    child, init = (_stat_fields(line) for line in out.splitlines())
    assert (int(init[37]), int(init[38])) == (10, 1)       # rt_priority, SCHED_FIFO
    assert int(child[38]) == 0                             # reset on fork: SCHED_OTHER


def test_scheduler_refused_by_the_kernel_names_the_field(rt, make):
    def edit(c):   # in the spec, but mainline kernels never implemented it
        c["process"]["scheduler"] = {"policy": "SCHED_ISO"}
    r = rt.run(make(["true"], edit=edit))
    assert r.returncode == 1
    assert r.stderr.strip() == ("minirunc: sched_setattr for process.scheduler (SCHED_ISO): "
                                "invalid argument (EINVAL)"), r.stderr
