"""Damaged state (issue 8, item 4): a container whose state.json is truncated, garbage,
gone or of the wrong shape gets one clear line from every command, `list` still shows it
(status unknown) and its neighbours, and `delete --force` still kills its init and
removes its cgroups and state directory.  The standing state.json fuzzer is at the end.
"""

import json
import os
import signal
import subprocess

import pytest

from conftest import Runtime, wait_for


def start_time(pid):
    """Field 22 of /proc/<pid>/stat, or None if the pid is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def alive(pid, start):
    return start_time(pid) == start


def gone(pid, start):
    """The process (pid, start) is dead; waits for its reaping by whoever reaps it."""
    return wait_for(lambda: not alive(pid, start))


def cgroup_dirs(state):
    """Every cgroup directory a healthy state.json records for its container."""
    record = state.get("cgroup") or {}
    dirs = list((record.get("paths") or {}).values()) + list(record.get("remove") or [])
    if record.get("unified"):
        dirs.append(record["unified"])
    return sorted(set(dirs))


def one_line(r):
    """A failed command's stderr: exactly one line, no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0 and len(lines) == 1, (r.returncode, r.stderr)
    return lines[0]


class Healthy:
    """A created (or started) container and what its healthy state recorded."""

    def __init__(self, rt, bundle, start=False):
        self.rt = rt
        self.id = rt.new_id("hs")
        r = rt("create", "--bundle", bundle, self.id)
        assert r.returncode == 0, r.stderr
        if start:
            r = rt("start", self.id)
            assert r.returncode == 0, r.stderr
        self.dir = os.path.join(rt.root, self.id)
        self.state_path = os.path.join(self.dir, "state.json")
        with open(self.state_path) as f:
            self.text = f.read()
        self.state = json.loads(self.text)
        self.pid, self.start = self.state["pid"], self.state["pid_start"]
        assert alive(self.pid, self.start)
        self.cgroups = cgroup_dirs(self.state)

    def write(self, text):
        if os.path.isdir(self.state_path):
            os.rmdir(self.state_path)
        with open(self.state_path, "w") as f:
            f.write(text)

    def restore(self):
        self.write(self.text)

    def assert_removed(self):
        """After `delete --force`: no init, no state directory, no cgroup directory."""
        assert gone(self.pid, self.start), "init pid %d survived" % self.pid
        assert not os.path.exists(self.dir), os.listdir(self.dir)
        left = [d for d in self.cgroups if os.path.exists(d)]
        assert not left, left

    def assert_intact(self):
        assert alive(self.pid, self.start)
        assert all(os.path.isdir(d) for d in self.cgroups)


@pytest.fixture
def sleeper(make):
    return make(("sleep", "1000"))


def damage_half(h):
    h.write(h.text[:len(h.text) // 2])


def damage_garbage(h):
    with open(h.state_path, "wb") as f:
        f.write(bytes(range(256)) * 4)


def damage_empty(h):
    h.write("")


def damage_removed(h):
    os.unlink(h.state_path)


def damage_pid_text(h):
    h.write('{"pid": "abc"}')


def damage_pid_text_full(h):
    h.write(json.dumps(dict(h.state, pid="abc")))


def damage_list(h):
    h.write(json.dumps([h.state]))


def damage_directory(h):
    os.unlink(h.state_path)
    os.mkdir(h.state_path)


def damage_other_pid(h):
    # A live process that is not the container's, with a start time that is not its own.
    h.write(json.dumps(dict(h.state, pid=os.getpid(), pid_start=h.start + 12345)))


def damage_cgroup_type(h):
    h.write(json.dumps(dict(h.state, cgroup="/sys/fs/cgroup")))


def damage_cgroup_paths_type(h):
    record = dict(h.state["cgroup"], paths=["/sys/fs/cgroup/pids"], remove="x")
    h.write(json.dumps(dict(h.state, cgroup=record)))


def damage_cgroup_mount_root(h):
    # The shape is right, but the directory is the hierarchy itself: never remove that.
    record = dict(h.state["cgroup"])
    record["remove"] = ["/sys/fs/cgroup/pids"]
    h.write(json.dumps(dict(h.state, cgroup=record)))


def damage_hooks_type(h):
    h.write(json.dumps(dict(h.state, hooks={"poststop": [{"path": 5}]})))


def damage_annotations(h):
    h.write(json.dumps(dict(h.state, annotations={"a": ["nested", {"x": 1}]})))


DAMAGES = [damage_half, damage_garbage, damage_empty, damage_removed, damage_pid_text,
           damage_pid_text_full, damage_list, damage_directory, damage_other_pid,
           damage_cgroup_type, damage_cgroup_paths_type, damage_cgroup_mount_root,
           damage_hooks_type, damage_annotations]


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.__name__[7:] for d in DAMAGES])
def test_damaged_state(rt, sleeper, damage):
    """Every command on a damaged container: one line, exit 1; `list` goes on; `delete
    --force` leaves no init, no state and no cgroup of it, and the neighbour runs on."""
    neighbour = Healthy(rt, sleeper, start=True)
    h = Healthy(rt, sleeper)
    damage(h)
    for args in (("state", h.id), ("kill", h.id, "KILL"), ("kill", "--all", h.id, "KILL"),
                 ("delete", h.id), ("pause", h.id), ("resume", h.id), ("ps", h.id),
                 ("events", "--stats", h.id), ("exec", h.id, "true"),
                 ("update", "--pids-limit", "10", h.id)):
        line = one_line(rt(*args))
        assert h.id in line, line
    h.assert_intact()

    r = rt("list")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines()[1:]}
    assert rows[neighbour.id][2] == "running"
    assert rows[h.id][2] == "unknown" and rows[h.id][1] in ("0", str(h.pid)), rows[h.id]
    warnings = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(warnings) == 1 and h.id in warnings[0], r.stderr
    r = rt("list", "--format", "json")
    assert r.returncode == 0, r.stderr
    by_id = {s["id"]: s for s in json.loads(r.stdout)}
    assert by_id[h.id]["status"] == "unknown" and by_id[neighbour.id]["status"] == "running"
    r = rt("list", "-q")
    assert r.returncode == 0 and set(r.stdout.split()) == {h.id, neighbour.id}, r

    r = rt("delete", "--force", h.id)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "killed init pid %d" % h.pid in r.stderr, r.stderr
    h.assert_removed()
    neighbour.assert_intact()
    assert rt.state(neighbour.id)["status"] == "running"


def test_neighbours_init_in_damaged_state(rt, sleeper):
    """state.json naming another container's live init (right pid and start time) must not
    make any command of this container signal it or delete its cgroups."""
    neighbour = Healthy(rt, sleeper, start=True)
    h = Healthy(rt, sleeper)
    h.write(json.dumps(dict(h.state, pid=neighbour.pid, pid_start=neighbour.start)))
    for args in (("kill", h.id, "KILL"), ("delete", h.id)):
        assert "init" in one_line(rt(*args))
    assert rt("delete", "--force", h.id).returncode == 0
    h.assert_removed()
    neighbour.assert_intact()


def test_state_and_record_gone_created(rt, sleeper):
    """Neither state.json nor the init record: the created init is still found by the
    socket it waits on in the container's directory, and the default cgroups go."""
    h = Healthy(rt, sleeper)
    os.unlink(h.state_path)
    os.unlink(os.path.join(h.dir, "init"))
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0, r.stderr
    assert "killed init pid %d" % h.pid in r.stderr, r.stderr
    h.assert_removed()


def test_state_and_record_gone_running(rt, sleeper):
    """A started container with neither file: its processes cannot be told from others
    in its cgroup, so they are left alone and named; once they are gone, delete works."""
    h = Healthy(rt, sleeper, start=True)
    os.unlink(h.state_path)
    os.unlink(os.path.join(h.dir, "init"))
    if not h.cgroups:
        pytest.skip("no cgroups on this host")
    r = rt("delete", "--force", h.id)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.splitlines()[-1]
    assert str(h.pid) in line and "left alone" in line, line
    assert alive(h.pid, h.start), "an untied process was killed"
    r = rt("list")
    assert r.returncode == 0 and h.id in r.stdout and "unknown" in r.stdout, r
    os.kill(h.pid, signal.SIGKILL)
    assert gone(h.pid, h.start)
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0, r.stderr
    h.assert_removed()


def test_damaged_record_with_good_state(rt, sleeper):
    """A damaged init record beside a good state.json: commands work, delete cleans up."""
    h = Healthy(rt, sleeper)
    with open(os.path.join(h.dir, "init"), "w") as f:
        f.write("version=1\npid=1\n")          # torn: no end line
    assert rt.state(h.id)["status"] == "created"
    assert rt("delete", "--force", h.id).returncode == 0
    h.assert_removed()


def test_record_written_apart(rt, sleeper):
    """The init record: key=value lines, version first, end last, the init's pid and start
    time (what a reader without a JSON parser needs)."""
    h = Healthy(rt, sleeper)
    with open(os.path.join(h.dir, "init")) as f:
        lines = f.read().splitlines()
    assert lines[0] == "version=1" and lines[-1] == "end=1"
    fields = dict(l.split("=", 1) for l in lines)
    assert fields["id"] == h.id
    assert int(fields["pid"]) == h.pid and int(fields["pid_start"]) == h.start
    assert int(fields["pidns"]) == os.stat("/proc/%d/ns/pid" % h.pid).st_ino
    if h.cgroups:
        assert json.loads(fields["cgroup"]) == h.state["cgroup"]
