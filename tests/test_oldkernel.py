"""minirunc on older kernels (floor 4.14), simulated with tests/oldkernel.py: every syscall
newer than the release fails with ENOSYS, in minirunc and everything it starts.

At 4.14 and 5.4: the fallbacks are taken (openat2 -> the walk of native/resolve.c,
close_range -> /proc/self/fd, pidfd -> pid + start time, fsopen -> a classic tmpfs mount,
mount_setattr -> a classic read-only remount), and keep the fast path's guarantees: no
symlink leads out of the rootfs, only fds 0-2 reach the container.  The features with no
fallback (idmapped mounts, recursive mount options: Linux 5.12) say so in one line that
names the mount.  The core suites run under the wrapper too (Makefile: MINIRUNC_KERNEL).
Root and real containers.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import OLDKERNEL, Runtime, one_error_line, runtime_env, wait_for
from host_leftovers import cgroup_dirs_named

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

RELEASES = ["4.14", "5.4"]
WALK_NOTE = "openat2 is not available (Linux < 5.6)"
FSOPEN_NOTE = "fsopen is not available (Linux < 5.2)"


class OldRuntime(Runtime):
    """A Runtime whose every minirunc command runs under oldkernel.py at ``release``."""

    def __init__(self, root, release, tomoyo=False):
        super().__init__(root)
        self.release = release
        self.tomoyo = tomoyo

    def cmd(self, *args):
        inner = super().cmd(*args)
        if inner[:3] == [sys.executable, OLDKERNEL, self.release] and not self.tomoyo:
            return inner      # MINIRUNC_KERNEL already wraps it at this release
        return [sys.executable, OLDKERNEL] + ["--tomoyo"] * self.tomoyo + [self.release, "--"] + inner


@pytest.fixture(params=RELEASES)
def old(request, tmp_path):
    runtime = OldRuntime(tmp_path / "state", request.param)
    yield runtime
    runtime.cleanup()


def debug_notes(r):
    return [line for line in r.stderr.splitlines() if "level=debug" in line]


# ------------------------------------------------------------- the wrapper itself

PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
for nr in map(int, sys.argv[1:]):
    libc.syscall(nr, -1, 0, 0, 0, 0)
    print(nr, ctypes.get_errno())
"""


@pytest.mark.parametrize("release, missing, present", [
    ("4.14", [333, 334, 424, 434, 435, 436, 437, 442, 0x40000000 + 2], [332, 3]),
    ("5.4", [436, 437, 438, 439, 442, 0x40000000 + 2], [332, 424, 428, 434, 435]),
])
def test_wrapper_answers_enosys_for_newer_syscalls(release, missing, present):
    r = subprocess.run([sys.executable, OLDKERNEL, release, "--", sys.executable, "-c", PROBE] +
                       [str(n) for n in missing + present], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    errs = dict(map(int, line.split()) for line in r.stdout.splitlines())
    assert all(errs[n] == 38 for n in missing), errs          # ENOSYS
    assert all(errs[n] != 38 for n in present), errs          # EBADF, EFAULT, EINVAL...


# ------------------------------------------------------------- lifecycle, exec, kill

def test_lifecycle_exec_kill_delete(old, make):
    bundle = make(["sleep", "100"])
    cid = old.new_id("ok")
    assert old("kill", cid, "0").returncode != 0
    r = old("--debug", "create", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    assert any(WALK_NOTE in line for line in debug_notes(r)), r.stderr   # the walk, not openat2
    assert old.state(cid)["status"] == "created"
    assert old("start", cid).returncode == 0
    assert old.state(cid)["status"] == "running"
    r = old("exec", cid, "sh", "-c", "echo exec-ok; ls /proc/self/fd")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "exec-ok"
    assert set(r.stdout.split()[1:]) == {"0", "1", "2", "3"}   # ls holds 3 for the listing
    assert old("kill", cid, "0").returncode == 0
    assert old("kill", cid, "KILL").returncode == 0
    assert wait_for(lambda: old.state(cid)["status"] == "stopped")
    r = old("kill", cid, "KILL")
    assert r.returncode != 0 and "not running" in r.stderr
    assert old("delete", cid).returncode == 0
    assert not os.path.exists(os.path.join(old.root, cid))
    assert cgroup_dirs_named(cid) == []


def test_init_starts_where_tomoyo_refuses_execveat(make, tmp_path):
    """Debian 11's 5.10 with TOMOYO and no /dev/fd: execveat(AT_EMPTY_PATH) says ENOENT;
    the spawn execs the sealed memfd as /proc/self/fd/N instead, for run and exec."""
    runtime = OldRuntime(tmp_path / "state", "5.10", tomoyo=True)
    try:
        cid = runtime.new_id("tomoyo")
        r = runtime("run", "-d", "--bundle", make(["sleep", "100"]), cid)
        assert r.returncode == 0, r.stderr
        r = runtime("exec", cid, "echo", "exec-ok")
        assert (r.returncode, r.stdout) == (0, "exec-ok\n"), r.stderr
        assert runtime("delete", "--force", cid).returncode == 0
    finally:
        runtime.cleanup()


def test_tomoyo_simulation_refuses_execveat_with_an_empty_path():
    """The wrapper's --tomoyo answers ENOENT to execveat(fd, "", AT_EMPTY_PATH) only."""
    probe = ("import ctypes, os\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             "fd = os.open('/bin/true', os.O_RDONLY)\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    argv = (ctypes.c_char_p * 2)(b'true', None)\n"
             "    libc.syscall(322, fd, b'', argv, None, 0x1000)\n"
             "    os._exit(100 + ctypes.get_errno())\n"
             "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    for flags, expected in ((["--tomoyo"], "102"), ([], "0")):
        r = subprocess.run([sys.executable, OLDKERNEL] + flags + ["5.10", "--", sys.executable,
                            "-c", probe], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == expected, (flags, r.stdout, r.stderr)


def test_delete_force_kills_a_running_init(old, make):
    cid = old.new_id("df")
    assert old("run", "-d", "--bundle", make(["sleep", "100"]), cid).returncode == 0
    pid = old.state(cid)["pid"]
    start = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[19]
    r = old("delete", "--force", cid)
    assert r.returncode == 0, r.stderr

    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return True
        return fields[0] in ("Z", "X") or fields[19] != start
    assert gone()   # delete waited for the end (polling, without a pidfd at 4.14)
    assert cgroup_dirs_named(cid) == []


def test_only_stdio_fds_reach_the_container(old, make):
    # Non-close-on-exec fds of the caller: close_range is ENOSYS at both releases, so the
    # spawn closes what /proc/self/fd lists.
    r_fd, w_fd = os.pipe()
    os.set_inheritable(r_fd, True)
    os.set_inheritable(w_fd, True)
    try:
        bundle = make(["sh", "-c", "ls /proc/self/fd"])
        r = subprocess.run(old.cmd("run", "--bundle", bundle, old.new_id("fd")),
                           env=runtime_env(), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, pass_fds=(r_fd, w_fd), timeout=60)
    finally:
        os.close(r_fd)
        os.close(w_fd)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["0", "1", "2", "3"]


def cgroup_values(pid, controller, names):
    """The contents of the files ``names`` of ``controller`` in the cgroup of ``pid``
    (v1: /sys/fs/cgroup/<controller>/..., v2: /sys/fs/cgroup[/unified]/...)."""
    values = set()
    for line in open("/proc/%d/cgroup" % pid).read().splitlines():
        _, controllers, rel = line.split(":", 2)
        if controllers:
            bases = ["/sys/fs/cgroup/" + c for c in controllers.split(",") if c == controller]
        else:
            bases = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        for base in bases:
            for name in names:
                path = base + rel + "/" + name
                if os.path.isfile(path):
                    values.add(open(path).read().strip())
    return values


def test_cgroup_limits_apply(old, make):
    def edit(config):
        config["linux"]["resources"] = {"pids": {"limit": 42}, "memory": {"limit": 64 << 20}}
    cid = old.new_id("cg")
    assert old("run", "-d", "--bundle", make(["sleep", "100"], edit=edit), cid).returncode == 0
    pid = old.state(cid)["pid"]
    assert cgroup_values(pid, "pids", ["pids.max"]) == {"42"}
    assert cgroup_values(pid, "memory", ["memory.limit_in_bytes", "memory.max"]) == \
        {str(64 << 20)}
    assert old("delete", "--force", cid).returncode == 0
    assert cgroup_dirs_named(cid) == []


# ------------------------------------------------------------- the walk's guarantees

def bind_marker(tmp_path, destination):
    """A host directory holding a marker file, bind-mounted at ``destination``."""
    src = tmp_path / ("src-%d" % abs(hash(destination)))
    src.mkdir()
    (src / "marker").write_text("marker\n")
    return {"destination": destination, "type": "bind", "source": str(src),
            "options": ["rbind"]}


def run_with_links(old, make, tmp_path, links, mount, args, debug=True):
    """Run ``args`` with ``links`` ({path in rootfs: target}) made and ``mount`` added
    (with --debug: it shows which way paths were resolved)."""
    def edit(config):
        config["root"]["readonly"] = False
        config["mounts"].append(mount)
    bundle = make(args, edit=edit)
    rootfs = bundle / "rootfs"
    for path, target in links.items():
        os.makedirs(os.path.dirname(str(rootfs / path)), exist_ok=True)
        os.symlink(target, str(rootfs / path))
    flags = ["--debug"] if debug else []
    return old(*flags, "run", "--bundle", bundle, old.new_id("wk")), rootfs


@pytest.mark.parametrize("case", ["absolute", "relative", "dotdot"])
def test_symlinks_out_of_the_rootfs_land_inside(old, make, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    depth = len(str(tmp_path).strip("/").split("/")) + 3
    if case == "absolute":
        links, dest = {"esc": str(outside)}, "/esc/sub"
    elif case == "relative":
        links, dest = {"esc": "../" * depth + str(outside).lstrip("/")}, "/esc/sub"
    else:   # ".." chains from deeper down and after an absolute restart stay at the root
        links = {"d1/d2/esc": "/bin/../" + "../" * depth + str(outside).lstrip("/")}
        dest = "/d1/d2/esc/sub"
    mount = bind_marker(tmp_path, dest)
    r, rootfs = run_with_links(old, make, tmp_path, links, mount,
                               ["cat", str(outside) + "/sub/marker"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "marker\n"
    assert any(WALK_NOTE in line for line in debug_notes(r)), r.stderr
    assert os.listdir(str(outside)) == []                    # nothing made or mounted outside
    assert (rootfs / str(outside).lstrip("/") / "sub").is_dir()   # made inside instead


def test_dangling_symlink_is_created_inside(old, make, tmp_path):
    target = tmp_path / "not-there" / "deep"
    mount = bind_marker(tmp_path, "/dang/x")
    r, rootfs = run_with_links(old, make, tmp_path, {"dang": str(target)}, mount,
                               ["cat", str(target) + "/x/marker"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "marker\n"
    assert not (tmp_path / "not-there").exists()
    assert (rootfs / str(target).lstrip("/") / "x").is_dir()


def test_symlink_loop_is_eloop(old, make, tmp_path):
    mount = {"destination": "/loop1/x", "type": "tmpfs", "source": "tmpfs"}
    r, rootfs = run_with_links(old, make, tmp_path, {"loop1": "loop2", "loop2": "/loop1"},
                               mount, ["true"], debug=False)
    line = one_error_line(r)
    assert "resolve mount destination /loop1/x in the rootfs" in line and "(ELOOP)" in line


def test_component_that_is_a_symlink_to_proc(old, make, tmp_path):
    # mnt/p -> /proc is the rootfs's /proc: a mount at /mnt/p/sys lands inside /proc and
    # is refused there, as on the openat2 path.
    mount = {"destination": "/mnt/p/sys", "type": "tmpfs", "source": "tmpfs"}
    r, rootfs = run_with_links(old, make, tmp_path, {"mnt/p": "/proc"}, mount, ["true"],
                               debug=False)
    assert ('mount destination "/mnt/p/sys" resolves in the rootfs to "/proc/sys": '
            '"/proc/sys" cannot be mounted because it is inside /proc') in one_error_line(r)


# ------------------------------------------------------- features newer than the release

def test_tmpcopyup_and_read_only_tmpfs(old, make, tmp_path):
    def edit(config):
        config["root"]["readonly"] = False
        config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["tmpcopyup", "nosuid"]})
        config["mounts"].append({"destination": "/ro", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["ro", "nodev"]})
    bundle = make(["sh", "-c", "cat /etc/passwd | head -1; touch /etc/new && echo etc-rw; "
                               "touch /ro/x 2>/dev/null || echo ro-refused; "
                               "grep ' /ro ' /proc/self/mountinfo"], edit=edit)
    r = old("--debug", "run", "--bundle", bundle, old.new_id("cu"))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("root:x:0:0:")      # the copy of the rootfs's /etc
    assert out[1:3] == ["etc-rw", "ro-refused"]
    assert out[3].split()[5].split(",")[:2] == ["ro", "nodev"]   # flags kept
    assert not (bundle / "rootfs" / "etc" / "new").exists()
    took_fallback = any(FSOPEN_NOTE in line for line in debug_notes(r))
    assert took_fallback == (old.release == "4.14"), r.stderr    # fsopen is 5.2


def refused_mount(old, make, mount):
    """`run` of `true` with ``mount`` after the default mounts: (the one error line, the
    mount's index); nothing of the container is left."""
    positions = []

    def edit(config):
        positions.append(len(config["mounts"]))
        config["mounts"].append(mount)
    cid = old.new_id("mnt")
    line = one_error_line(old("run", "--bundle", make(["true"], edit=edit), cid))
    assert not os.path.exists(os.path.join(old.root, cid))
    return line, positions[0]


@pytest.mark.parametrize("option", ["rro", "rnosuid"])
def test_recursive_mount_options_need_5_12(old, make, tmp_path, option):
    mount = bind_marker(tmp_path, "/data")
    mount["options"] = ["rbind", option]
    line, index = refused_mount(old, make, mount)
    assert ("mounts[%d].options" % index) in line, line
    assert '"%s"' % option in line and "Linux 5.12" in line and "/data" in line, line


def test_idmapped_mount_needs_5_12(old, make, tmp_path):
    mount = bind_marker(tmp_path, "/data")
    mount["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    mount["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    line, index = refused_mount(old, make, mount)
    assert line.startswith("minirunc: ") and ("mounts[%d]" % index) in line, line
    assert "idmapped" in line and "Linux 5.12" in line, line


# ------------------------------------------------------------------ the floor itself

def test_a_kernel_below_the_floor_is_named():
    sys.path.insert(0, os.path.join(os.path.dirname(OLDKERNEL), "..", "src"))
    from minirunc.errors import HostError
    from minirunc.kernelfloor import check_release, release
    assert release("4.14.336-foo") == (4, 14) and release("6.1.0-28-amd64") == (6, 1)
    check_release("4.14.0")
    check_release("5.10.0-30-amd64")
    with pytest.raises(HostError) as e:
        check_release("4.9.337")
    assert str(e.value) == "this kernel is Linux 4.9.337; minirunc needs Linux 4.14 or newer"
    with pytest.raises(HostError):
        check_release("3.19.8")


def test_check_names_what_the_kernel_lacks(old, make, tmp_path):
    mount = bind_marker(tmp_path, "/data")
    mount["options"] = ["rbind", "rro"]
    positions = []

    def edit(config):
        positions.append(len(config["mounts"]))
        config["mounts"].append(mount)
    r = old("check", "--bundle", make(["true"], edit=edit), "--format", "json")
    assert r.returncode != 0
    findings = json.loads(r.stdout)
    findings = findings.get("findings", findings) if isinstance(findings, dict) else findings
    kernel = [f for f in findings if "Linux 5.12" in f["problem"]]
    assert [(f["severity"], f["field"]) for f in kernel] == \
        [("error", "mounts[%d].options" % positions[0])]
