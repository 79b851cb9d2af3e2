"""Issue 8, item 3 (and 9's last part): a cgroup that is not the container's own is left
alone.  A victim process the test starts sits in a cgroup that exists before a container
uses it (by linux.cgroupsPath, or by the container id under the runtime's own cgroup); after
`run` ends, `delete --force`, a failed create, `kill --all` and `ps`, the victim is alive,
still in its cgroup, and the cgroup directory still exists.  runc 1.1's warning says the
cgroup holds processes; the annotation or the environment variable can make it a refusal
that touches nothing.  A second container sharing a cgroupsPath does not kill the first.
And a v1 cgroup mount inside a container shows the container's own cgroup, not its
siblings."""

import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup"),
                                reason="needs root and a cgroup filesystem")

ANNOTATION = "run.minirunc.cgroup-nonempty"
NOT_EMPTY = "container's cgroup is not empty: 1 process(es) found"


# ------------------------------------------------------------------ host layout

def _mounts():
    """[(mount root, mount point, fstype, super options)] of the host's cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] in ("cgroup", "cgroup2"):
                out.append((fields[3], fields[4], fields[sep + 1], fields[sep + 3]))
    return out


def _own_cgroups():
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path
    return own


def hierarchy_roots():
    """The mount point of every cgroup hierarchy (one per v1 hierarchy, and cgroup2)."""
    return sorted(set(mountpoint for _, mountpoint, _, _ in _mounts()))


def pids_hierarchy():
    """(mount point, the runtime's own cgroup directory in it): the v1 pids hierarchy, or
    cgroup2 on a pure v2 host (where a relative path goes under the parent of our own)."""
    own = _own_cgroups()
    mounts = _mounts()
    for root, mountpoint, fstype, options in mounts:
        if fstype == "cgroup" and "pids" in options.split(","):
            return mountpoint, os.path.normpath(
                os.path.join(mountpoint, os.path.relpath(own.get("pids", "/"), root)))
    for root, mountpoint, fstype, _ in mounts:
        if fstype == "cgroup2" and mountpoint == "/sys/fs/cgroup":
            base = os.path.normpath(os.path.join(mountpoint, os.path.relpath(own[""], root)))
            return mountpoint, base if base == mountpoint else os.path.dirname(base)
    pytest.skip("no pids hierarchy on this host")


def default_dir(cid):
    """Where the container `cid` without linux.cgroupsPath gets its pids cgroup."""
    return os.path.join(pids_hierarchy()[1], cid)


def read(path):
    with open(path) as f:
        return f.read().strip()


def procs(directory):
    try:
        return [int(p) for p in read(os.path.join(directory, "cgroup.procs")).split()]
    except OSError:
        return []


def find_dirs(name, top="/sys/fs/cgroup", depth=5):
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        if dirpath.count("/") - top.count("/") >= depth:
            dirnames[:] = []
        found += [os.path.join(dirpath, d) for d in dirnames if d == name]
    return sorted(found)


def gone(pid):
    try:
        return read("/proc/%d/stat" % pid).split(")")[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# ------------------------------------------------------------------ the victim

class Victim:
    """A `sleep` the test starts in cgroups it makes (the host's processes a careless
    runtime would kill); ``cleanup`` kills it and removes what the test made."""

    def __init__(self):
        self.made = []
        self.dirs = []
        self.proc = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL)

    def make(self, path):
        """Make the cgroup ``path`` (and its parents) and remember them for cleanup."""
        missing = []
        d = path
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            os.mkdir(d)
            self.made.append(d)
            for name in ("cpuset.cpus", "cpuset.mems"):     # a new v1 cpuset starts empty
                if os.path.exists(os.path.join(d, name)):
                    with open(os.path.join(d, name), "w") as f:
                        f.write(read(os.path.join(os.path.dirname(d), name)))
        return path

    def join(self, path):
        """Put the victim into the cgroup ``path`` (made if needed)."""
        self.make(path)
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(self.proc.pid))
        self.dirs.append(path)

    def assert_unharmed(self):
        assert self.proc.poll() is None, "the victim was killed"
        for d in self.dirs:
            assert os.path.isdir(d), d + " was removed"
            assert self.proc.pid in procs(d), "the victim left " + d
        for d in self.made:
            assert os.path.isdir(d), d + " was removed"

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for d in sorted(self.made, key=lambda p: -p.count("/")):
            for sub, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count("/")):
                wait_for(lambda: _rmdir(sub), timeout=5)


def _rmdir(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


@pytest.fixture
def victim():
    v = Victim()
    try:
        yield v
    finally:
        v.cleanup()


def everywhere(victim, name):
    """The victim joins the cgroup ``name`` (absolute) in every hierarchy; returns name."""
    for mountpoint in hierarchy_roots():
        victim.join(mountpoint + name)
    return name


def edit(cgroups_path=None, annotations=None, resources=None, no_pidns=False):
    def change(config):
        if cgroups_path is not None:
            config["linux"]["cgroupsPath"] = cgroups_path
        if annotations:
            config["annotations"] = annotations
        if resources:
            config["linux"]["resources"] = resources
        if no_pidns:
            config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                             if n["type"] != "pid"]
    return change


def unique(prefix="mr-harm"):
    return "/%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ------------------------------------------------------------------ the tests

@pytest.mark.parametrize("where", ["cgroupsPath", "default"])
def test_run_warns_and_spares_a_victim_in_an_existing_cgroup(rt, make, victim, where):
    cid = rt.new_id()
    if where == "cgroupsPath":
        change = edit(everywhere(victim, unique()))
    else:
        victim.join(default_dir(cid))     # the id under the runtime's own cgroup
        change = edit()
    before = find_dirs(cid)
    r = rt.run(make(["true"], edit=change), cid=cid)
    assert r.returncode == 0, r.stderr
    assert NOT_EMPTY in r.stderr and ANNOTATION in r.stderr, r.stderr
    victim.assert_unharmed()
    assert find_dirs(cid) == before


def test_delete_force_ps_and_kill_all_spare_the_victim(rt, make, victim):
    path = everywhere(victim, unique())
    bundle = make(["sh", "-c", "sleep 101 & sleep 102 & wait"], edit=edit(path))
    first, second = rt.new_id(), rt.new_id()
    for cid in (first, second):
        r = rt("run", "-d", "--bundle", bundle, cid)
        assert r.returncode == 0 and NOT_EMPTY.split(":")[0] in r.stderr, r.stderr
    init = rt.state(first)["pid"]
    assert wait_for(lambda: len(json.loads(rt("ps", "--format", "json", first).stdout)) == 3)
    listed = json.loads(rt("ps", "--format", "json", first).stdout)
    assert init in listed and victim.proc.pid not in listed
    # the second container's processes share the cgroup, but are not the first's
    assert not set(listed) & set(json.loads(rt("ps", "--format", "json", second).stdout))

    assert rt("kill", "--all", second, "KILL").returncode == 0
    assert wait_for(lambda: rt.state(second)["status"] == "stopped")
    victim.assert_unharmed()
    assert rt.state(first)["status"] == "running"

    for cid in (first, second):
        r = rt("delete", "--force", cid)
        assert r.returncode == 0, r.stderr
    assert all(wait_for(lambda: gone(p)) for p in listed)
    victim.assert_unharmed()
    assert rt("state", first).returncode != 0


@pytest.mark.parametrize("where", ["cgroupsPath", "default"])
def test_failed_create_spares_the_victim(rt, make, victim, where):
    cid = rt.new_id()
    if where == "cgroupsPath":
        change = edit(everywhere(victim, unique()))
    else:
        victim.join(default_dir(cid))     # only this hierarchy's directory exists before
        change = edit()
    before = find_dirs(cid)
    r = rt.run(make(["/no/such/program"], edit=change), cid=cid)
    assert r.returncode != 0 and "/no/such/program" in r.stderr, r.stderr
    assert NOT_EMPTY in r.stderr
    victim.assert_unharmed()
    assert rt("state", cid).returncode != 0
    # the directories the container made in the other hierarchies are gone again
    assert find_dirs(cid) == before


@pytest.mark.parametrize("knob", ["annotation", "environment"])
def test_refusal_names_the_cgroup_and_the_knob_and_touches_nothing(rt, make, victim, knob):
    cid = rt.new_id()
    mine = default_dir(cid)
    victim.join(mine)
    if knob == "annotation":
        bundle, env, name = make(["true"], edit=edit(annotations={ANNOTATION: "refuse"})), None, ANNOTATION
    else:
        bundle, env, name = make(["true"]), {"MINIRUNC_CGROUP_NONEMPTY": "refuse"}, \
            "MINIRUNC_CGROUP_NONEMPTY"
    before = find_dirs(cid)
    r = rt("run", "--bundle", bundle, cid, env=env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and NOT_EMPTY in lines[0], r.stderr
    assert mine in lines[0] and name + "=refuse" in lines[0], r.stderr
    victim.assert_unharmed()
    assert find_dirs(cid) == before == [mine]
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_refuse_runs_in_an_empty_existing_cgroup_and_keeps_it(rt, make, victim):
    path = unique()
    dirs = [victim.make(m + path) for m in hierarchy_roots()]
    r = rt.run(make(["true"], edit=edit(path, annotations={ANNOTATION: "refuse"})))
    assert r.returncode == 0 and "not empty" not in r.stderr, r.stderr
    assert all(os.path.isdir(d) for d in dirs)


def test_a_bad_knob_value_is_one_line_naming_it(rt, make):
    r = rt.run(make(["true"], edit=edit(annotations={ANNOTATION: "maybe"})))
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        'minirunc: annotations.%s: must be "warn" or "refuse", not \'maybe\'' % ANNOTATION]
    r = rt.run(make(["true"]), env={"MINIRUNC_CGROUP_NONEMPTY": "yes"})
    assert r.returncode == 1 and "MINIRUNC_CGROUP_NONEMPTY" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("second_pidns", ["own", "host"])
def test_deleting_the_second_of_two_sharing_a_path_leaves_the_first(rt, make, victim,
                                                                    second_pidns):
    path = unique("mr-share")
    first, second = rt.new_id(), rt.new_id()
    r = rt("run", "-d", "--bundle", make(["sleep", "1000"], edit=edit(path)), first)
    assert r.returncode == 0 and "not empty" not in r.stderr, r.stderr
    dirs = [m + path for m in hierarchy_roots()]
    victim.made += [d for d in dirs if os.path.isdir(d)]     # cleanup if the test fails
    init = rt.state(first)["pid"]
    # the second one in the host's pid namespace: its own processes are its init's
    # descendants and those in its mount namespace, not everything in the cgroup
    bundle = make(["sh", "-c", "sleep 1001 & sleep 1002 & wait"],
                  edit=edit(path, no_pidns=second_pidns == "host"))
    r = rt("run", "-d", "--bundle", bundle, second)
    assert r.returncode == 0 and NOT_EMPTY in r.stderr, r.stderr
    assert wait_for(lambda: len(json.loads(rt("ps", "--format", "json", second).stdout)) == 3)
    theirs = json.loads(rt("ps", "--format", "json", second).stdout)
    assert init not in theirs
    r = rt("delete", "--force", second)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert all(wait_for(lambda: gone(p)) for p in theirs)
    assert rt.state(first)["status"] == "running" and not gone(init)
    assert all(os.path.isdir(d) and init in procs(d) for d in dirs)
    # the first made the directories: its delete removes them all
    r = rt("delete", "--force", first)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert not any(os.path.exists(d) for d in dirs)


def test_sub_cgroups_made_in_an_existing_cgroup_go_and_its_own_stay(rt, make, victim):
    cid = rt.new_id()
    mine = default_dir(cid)
    kept = os.path.join(mine, "kept")
    victim.make(kept)                  # existed before the container: someone else's
    r = rt("run", "-d", "--bundle", make(["sleep", "1000"]), cid)
    assert r.returncode == 0, r.stderr
    made = os.path.join(mine, "made")
    os.mkdir(made)                     # after create: as `exec --cgroup` users do
    r = rt("exec", "-d", "--cgroup", "pids:made", cid, "sleep", "1003")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: len(procs(made)) == 1)
    execd = procs(made)[0]
    assert rt("delete", "--force", cid).returncode == 0
    assert wait_for(lambda: gone(execd))
    assert os.path.isdir(mine) and os.path.isdir(kept) and not os.path.exists(made)


def test_a_container_removes_every_directory_it_made(rt, make):
    cid = rt.new_id()
    r = rt("run", "-d", "--bundle", make(["sleep", "1000"]), cid)
    assert r.returncode == 0, r.stderr
    mine = default_dir(cid)
    made = os.path.join(mine, "sub")
    os.mkdir(made)
    assert rt("exec", "-d", "--cgroup", "pids:sub", cid, "sleep", "1004").returncode == 0
    assert wait_for(lambda: len(procs(made)) == 1)
    execd = procs(made)[0]
    dirs = find_dirs(cid)
    assert mine in dirs
    assert rt("delete", "--force", cid).returncode == 0
    assert wait_for(lambda: gone(execd))
    assert not any(os.path.exists(d) for d in dirs)


CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}


def test_v1_cgroup_mount_shows_the_container_cgroup_only(rt, make, victim):
    mountpoint, own = pids_hierarchy()
    if mountpoint == "/sys/fs/cgroup":
        pytest.skip("cgroup v2 only: the mount is a cgroup2 mount, not binds")
    sibling = os.path.join(own, "mr-sibling-%s" % uuid.uuid4().hex[:10])
    victim.join(sibling)
    script = ("cat /sys/fs/cgroup/pids/pids.max; echo ==; ls /sys/fs/cgroup/pids; echo ==; "
              "cat /sys/fs/cgroup/pids/tasks; echo ==; ls /sys/fs/cgroup/memory; echo ==; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo ==; "
              "cat /sys/fs/cgroup/memory/cgroup.procs; echo ==; echo $$")

    def change(config):
        config["mounts"].append(CGROUP_MOUNT)
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != "pid"]    # host pids in tasks
        config["linux"]["resources"] = {"pids": {"limit": 77}, "memory": {"limit": 50 << 20}}
    cid = rt.new_id()
    r = rt.run(make(["sh", "-c", script], edit=change), cid=cid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    limit, listing, tasks, memory, memory_limit, memory_procs, shell = \
        [p.split() for p in out.split("==")]
    assert limit == ["77"] and memory_limit == [str(50 << 20)], out
    assert os.path.basename(sibling) not in listing and cid not in listing, out
    assert "cgroup.procs" in listing and "memory.limit_in_bytes" in memory, out
    # only the container's sh and cat: not the victim next door, not the runtime
    assert tasks and str(victim.proc.pid) not in tasks and len(tasks) <= 2, out
    assert shell[0] in tasks and shell[0] in memory_procs and len(memory_procs) <= 2, out
    victim.assert_unharmed()


# ------------------------------------------------------------------ pure parts

MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PROC_CGROUP = "4:pids:/\n3:cpu,cpuacct:/\n2:memory:/process_api/c0\n0::/\n"


def test_the_plan_binds_the_directories_the_driver_makes():
    from minirunc import mountopts
    from minirunc.cgroups.paths import choose_driver
    from minirunc.config import Mount
    from minirunc.plan import cgroup_mount_records
    driver, _ = choose_driver(None, "c1", mountinfo=MOUNTINFO, proc_cgroup=PROC_CGROUP)
    options = ["nosuid", "noexec", "nodev", "ro"]
    mount = Mount("/sys/fs/cgroup", "cgroup", "cgroup", options,
                  mountopts.parse(options, "cgroup", "mounts[0].options"), 0)
    records, _ = cgroup_mount_records(mount, MOUNTINFO, PROC_CGROUP,
                                      container_dirs=driver.by_controller())
    binds = {r[1][2]: r[1][1] for r in records if r[1][0] == 1}
    assert binds == {
        "/sys/fs/cgroup/pids": "/sys/fs/cgroup/pids/c1",
        "/sys/fs/cgroup/cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/c1",
        "/sys/fs/cgroup/cpu": "/sys/fs/cgroup/cpu,cpuacct/c1",
        "/sys/fs/cgroup/cpuacct": "/sys/fs/cgroup/cpu,cpuacct/c1",
        "/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/process_api/c0/c1",
    }
    assert set(binds.values()) <= set(driver.dirs())


def test_knob_annotation_wins_over_the_environment():
    from minirunc.cgroups.owner import nonempty_policy
    assert nonempty_policy({}, {})[0] == "warn"
    assert nonempty_policy({}, {"MINIRUNC_CGROUP_NONEMPTY": "refuse"})[0] == "refuse"
    assert nonempty_policy({ANNOTATION: "warn"}, {"MINIRUNC_CGROUP_NONEMPTY": "refuse"}) == \
        ("warn", "annotation %s=warn" % ANNOTATION)


def test_prepare_records_only_what_it_will_make_and_destroy_keeps_the_rest(tmp_path):
    """Plain directories stand in for two hierarchies: in one the container's directory
    exists (with a sub-cgroup), in the other its parent is missing too."""
    from minirunc.cgroups.v1 import V1Driver
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "x" / "c1" / "before").mkdir(parents=True)
    b.mkdir()
    driver = V1Driver({"pids": str(a / "x" / "c1"), "memory": str(b / "x" / "c1")},
                      {"pids": str(a), "memory": str(b)})
    driver.prepare()
    assert driver.remove == [str(b / "x" / "c1"), str(b / "x")]
    driver.create()
    (a / "x" / "c1" / "after").mkdir()
    (b / "x" / "c1" / "sub").mkdir()
    assert driver.destroy()
    assert (a / "x" / "c1" / "before").is_dir() and not (a / "x" / "c1" / "after").exists()
    assert not (b / "x").exists()
