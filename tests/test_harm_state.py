"""Damaged state (issue 8, item 4): a container whose state.json is truncated, garbage,
gone or of the wrong shape gets one clear line from every command, `list` still shows it
(status unknown) and its neighbours, and `delete --force` still kills its init and
removes its cgroups and state directory.  The standing state.json fuzzer is near the end;
last, how a state file is replaced (an exchange, or a rename where that is refused).
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import OLDKERNEL, Runtime, runtime_env, wait_for


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
    for args in (("state", h.id), ("start", h.id), ("kill", h.id, "KILL"), ("kill", "--all", h.id, "KILL"),
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


def test_damaged_paused_container(rt, sleeper):
    """A paused container with garbage for state: delete --force still thaws and kills it
    (a frozen process cannot die), from the freezer its init record names."""
    h = Healthy(rt, sleeper, start=True)
    if not h.state["cgroup"].get("freezer"):
        pytest.skip("no freezer on this host")
    assert rt("pause", h.id).returncode == 0
    damage_garbage(h)
    r = rt("list")
    assert r.returncode == 0 and "unknown" in r.stdout, r
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0 and "killed init pid %d" % h.pid in r.stderr, r.stderr
    h.assert_removed()


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
    try:
        r = rt("delete", "--force", h.id)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        line = r.stderr.splitlines()[-1]
        assert str(h.pid) in line and "left alone" in line, line
        assert alive(h.pid, h.start), "an untied process was killed"
        r = rt("list")
        assert r.returncode == 0 and h.id in r.stdout and "unknown" in r.stdout, r
    finally:
        if alive(h.pid, h.start):
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


# ---------------------------------------------------------------- the state.json fuzzer
# A standing suite: mutations of a real state.json at every JSON path (types, ranges, NUL,
# lone surrogates, huge and deeply nested values, deleted and added keys) and of its
# bytes.  Every command ends with exit 0 or one clear line, never a traceback or a hang;
# the init survives unless a command removed the container, and then nothing is left.
# MINIRUNC_FUZZ_EXAMPLES=N runs N cases instead of the default (the config.json fuzzer
# reads the same variable).

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("MINIRUNC_FUZZ_EXAMPLES") or 0)
FUZZ_SETTINGS = dict(deadline=None, database=None, derandomize=not FUZZ_EXAMPLES,
                     suppress_health_check=list(HealthCheck))
DEEP = "__minirunc_fuzz_deep__"
HUGE = "__minirunc_fuzz_huge__"

TEXTS = st.one_of(
    st.sampled_from(["", "\0", "a\0b", "\ud800", "x\udcff", "\udc80", "/", "//", "/..",
                     "../x", "/sys/fs/cgroup", "/sys/fs/cgroup/pids", "\n", "%", "=", "%0A",
                     "\u2028", "end=1", "abc", "12", "-1", "true", "null"]),
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0xd800, max_codepoint=0xdfff), min_size=1,
            max_size=3))
INTS = st.one_of(st.sampled_from([0, 1, -1, 2 ** 22, 2 ** 22 + 1, 2 ** 31, 2 ** 32, 2 ** 63,
                                  2 ** 64, -2 ** 63, 10 ** 100, 10 ** 4000]),
                 st.integers())
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(), TEXTS,
                    st.sampled_from([DEEP, HUGE]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXTS, inner, max_size=3), max_leaves=6)


def json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from json_paths(item, prefix + (i,))


def mutated(state, path, action, value):
    """state with ``value`` at ``path`` (replace), the key removed, or a key added."""
    copy = json.loads(json.dumps(state))
    if not path:
        return value if action == "replace" else copy
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent[path[-1]], dict):
        parent[path[-1]]["fuzz\0" if isinstance(value, bool) else "fuzz"] = value
    else:
        parent[path[-1]] = value
    return copy


def render(document, depth):
    text = json.dumps(document)
    text = text.replace('"%s"' % DEEP, "[" * depth + "]" * depth)
    return text.replace('"%s"' % HUGE, '"%s"' % ("x" * (1 << 20)))


@st.composite
def damages(draw, template):
    """A damage to apply to a healthy state.json: a function state -> bytes.  Paths are
    drawn from ``template`` (every container's state has its shape), byte positions as
    fractions, so one damage applies to whichever container a case uses."""
    if draw(st.sampled_from(["value", "value", "value", "bytes"])) == "bytes":
        ops = draw(st.lists(st.tuples(st.sampled_from(["cut", "flip", "insert"]),
                                      st.floats(0, 1), st.integers(1, 255),
                                      st.binary(min_size=1, max_size=8)),
                            min_size=1, max_size=4))

        def bytes_damage(state):
            data = bytearray(json.dumps(state).encode())
            for op, where, xor, extra in ops:
                at = int(where * len(data))
                if op == "cut":
                    del data[at:]
                elif op == "flip" and at < len(data):
                    data[at] ^= xor
                else:
                    data[at:at] = extra
            return bytes(data)
        return bytes_damage
    path = draw(st.sampled_from(list(json_paths(template))))
    action = draw(st.sampled_from(["replace", "replace", "same type", "delete", "add"]))
    value = draw(VALUES)
    if action == "same type":
        # A value of the kind that belongs there: past the shape check, into the commands.
        old = template
        for key in path:
            old = old[key]
        same = {str: TEXTS, bool: st.booleans(), int: INTS}.get(type(old))
        value, action = (draw(same) if same is not None else value), "replace"
    depth = draw(st.sampled_from([2, 100, 999, 1001, 5000, 100000]))
    return lambda state: render(mutated(state, path, action, value), depth).encode()


def quiet_or_one_line(r, what):
    assert "Traceback" not in r.stderr, (what, r.stderr)
    if r.returncode != 0:
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("minirunc: "), (what, r.stderr)


class FuzzTarget:
    """One running container whose state.json the cases rewrite, recreated when a case
    ends with its removal."""

    def __init__(self, rt, bundle):
        self.rt, self.bundle = rt, bundle
        self.h = Healthy(rt, bundle, start=True)
        self.cases = self.recreated = 0

    def run(self, damage):
        h, rt = self.h, self.rt
        self.cases += 1
        blob = damage(h.state)
        with open(h.state_path, "wb") as f:
            f.write(blob)
        # At once, as callers do: each takes the container's lock as it needs.
        results = rt.parallel([("state", h.id), ("list",), ("kill", h.id, "CONT"),
                               ("delete", h.id)])
        for r in results:
            quiet_or_one_line(r, r.args)
        r = results[1]
        assert r.returncode == 0, r.stderr
        assert len([l for l in r.stderr.splitlines() if l.strip()]) <= 1, r.stderr
        if os.path.exists(h.dir):
            assert h.id in r.stdout, r.stdout
            h.restore()
            assert alive(h.pid, h.start), "init died: %r" % blob[:200]
        else:
            # A state the commands took as valid and not running (say, "creating": true)
            # lets a plain delete remove the container: then completely.
            h.assert_removed()
            self.h = Healthy(rt, self.bundle, start=True)
            self.recreated += 1


class FuzzRuntime(Runtime):
    def parallel(self, commands, timeout=30):
        """Run several commands at once; their CompletedProcesses, in order."""
        import tempfile
        from conftest import runtime_env
        procs = []
        for args in commands:
            out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            procs.append((args, out, err, subprocess.Popen(
                self.cmd(*args), env=runtime_env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=err)))
        results = []
        for args, out, err, proc in procs:
            code = proc.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            results.append(subprocess.CompletedProcess(args, code,
                                                       out.read().decode(errors="replace"),
                                                       err.read().decode(errors="replace")))
            out.close()
            err.close()
        return results


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory):
    from make_bundle import base_config, make_bundle
    base = tmp_path_factory.mktemp("fuzzstate")
    bundle = base / "bundle"
    make_bundle(str(bundle), config=base_config(("sleep", "1000")))
    runtime = FuzzRuntime(base / "state")
    yield runtime, bundle
    runtime.cleanup()


def test_fuzz_state_json(fuzz_runtime):
    rt, bundle = fuzz_runtime
    target = FuzzTarget(rt, bundle)
    healthy = target.h.state

    @settings(max_examples=FUZZ_EXAMPLES or 300, **FUZZ_SETTINGS)
    @given(damages(healthy))
    def case(damage):
        target.run(damage)

    case()
    rt("delete", "--force", target.h.id)
    target.h.assert_removed()
    print("state.json fuzzer: %d cases, %d recreations" % (target.cases, target.recreated))


def test_fuzz_state_json_delete_force(fuzz_runtime):
    """`delete --force` on a fuzzed state.json: exit 0, and no init, state or cgroup left."""
    rt, bundle = fuzz_runtime
    healthy = Healthy(rt, bundle).state
    rt("delete", "--force", healthy["id"])

    @settings(max_examples=max(FUZZ_EXAMPLES // 10, 30), **FUZZ_SETTINGS)
    @given(damages(healthy))
    def case(damage):
        h = Healthy(rt, bundle, start=True)
        blob = damage(h.state)
        with open(h.state_path, "wb") as f:
            f.write(blob)
        r = rt("delete", "--force", h.id, timeout=30)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (r.stderr, blob[:300])
        h.assert_removed()

    case()


# ---------------------------------------------------------------- pure functions

def _state_module():
    import sys
    from conftest import SRC
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    from minirunc import state
    return state


CGROUP = {"driver": "v2", "unified": "/sys/fs/cgroup/a%b\nc", "mount": "/sys/fs/cgroup",
          "remove": ["/sys/fs/cgroup/a%b\nc"], "freezer": "/sys/fs/cgroup/a%b\nc/cgroup.freeze"}


def test_init_record_round_trip(tmp_path):
    state = _state_module()
    data = {"id": "c1", "pid": 42, "pid_start": 7, "cgroup": CGROUP,
            "hooks": {"poststop": []}}
    state.write_init_record(str(tmp_path), state.init_record_text(data, 4026531836))
    record = state.read_init_record(str(tmp_path), "c1")
    assert record == {"pid": 42, "pid_start": 7, "pidns": 4026531836, "cgroup": CGROUP,
                      "poststop": True}
    text = (tmp_path / "init").read_text()
    assert "freezer=/sys/fs/cgroup/a%25b%0Ac/cgroup.freeze\n" in text   # one line per key
    assert state.read_init_record(str(tmp_path / "none"), "c1") is None


@pytest.mark.parametrize("text, needle", [
    ("version=1\nid=c1\npid=4\n", "torn"),
    ("version=2\nid=c1\nend=1\n", "version"),
    ("version=1\nid=c2\nend=1\n", "id"),
    ("version=1\nid=c1\npid=-4\nend=1\n", "pid"),
    ("version=1\nid=c1\npid=99999999999\nend=1\n", "pid"),
    ("version=1\nid=c1\ncgroup={\"driver\": 1}\nend=1\n", "cgroup.driver"),
    ("version=1\nid=c1\nnonsense\nend=1\n", "key=value"),
])
def test_init_record_damage(tmp_path, text, needle):
    state = _state_module()
    (tmp_path / "init").write_text(text)
    with pytest.raises(state.DamagedStateError) as e:
        state.read_init_record(str(tmp_path), "c1")
    assert needle in e.value.problem and str(tmp_path / "init") in str(e.value)


@pytest.mark.parametrize("record, where", [
    (dict(CGROUP, mount="/"), "cgroup.mount"),
    (dict(CGROUP, remove=["/sys/fs/cgroup"]), "cgroup.remove[0]"),
    (dict(CGROUP, unified="/etc"), "cgroup.unified"),
    (dict(CGROUP, unified="/sys/fs/cgroup/x/../.."), "cgroup.unified"),
    (dict(CGROUP, freezer="/sys/fs/cgroup/x/cgroup.procs"), "cgroup.freezer"),
    ({"driver": "hybrid", "paths": [], "mounts": {}}, "cgroup.paths"),
    ({"driver": "v1", "paths": {"pids": "/sys/fs/cgroup/pids/x\0"},
      "mounts": {"pids": "/sys/fs/cgroup/pids"}}, "cgroup.paths.pids"),
    (dict(CGROUP, keep=["/sys/fs/cgroup/x"]), "cgroup.keep"),
    (dict(CGROUP, keep={"/etc": None}), "cgroup.keep./etc"),
    (dict(CGROUP, keep={"/sys/fs/cgroup/x": ["/etc/y"]}), "cgroup.keep./sys/fs/cgroup/x[0]"),
    (dict(CGROUP, owner=[1]), "cgroup.owner"),
    (dict(CGROUP, owner={"pid": "1"}), "cgroup.owner.pid"),
    (dict(CGROUP, owner={"pid": 7, "start": -1}), "cgroup.owner.start"),
    (dict(CGROUP, owner={"pid": 7, "mntns": [1, 2, 3]}), "cgroup.owner.mntns"),
    (dict(CGROUP, owner={"pid": 7, "pidns": [1, "x"]}), "cgroup.owner.pidns[1]"),
])
def test_cgroup_record_shape(record, where):
    state = _state_module()
    with pytest.raises(state._Bad) as e:
        state.check_cgroup(record)
    assert str(e.value).startswith(where + ":"), str(e.value)



def test_creator_died_between_the_writes(rt, sleeper):
    """The record is written first: a creator killed before state.json got the pid leaves
    the record's pid, which `state` and `delete` use."""
    h = Healthy(rt, sleeper)
    h.write(json.dumps(dict(h.state, pid=0, pid_start=None, creating=True)))
    state = rt.state(h.id)
    assert state["pid"] == h.pid and state["status"] == "creating"
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0 and not r.stderr, r.stderr
    h.assert_removed()


def test_record_without_pid(rt, sleeper):
    """A creator that died before it learnt the init's pid leaves a record with its cgroups
    only: delete --force finds the init by its start socket and removes the cgroups."""
    h = Healthy(rt, sleeper)
    path = os.path.join(h.dir, "init")
    with open(path) as f:
        lines = [l for l in f if not l.startswith(("pid=", "pid_start=", "pidns="))]
    with open(path, "w") as f:
        f.writelines(lines)
    os.unlink(h.state_path)
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0, r.stderr
    assert "killed init pid %d found by its socket" % h.pid in r.stderr, r.stderr
    h.assert_removed()


def test_damaged_state_with_poststop_hook(rt, make, tmp_path):
    """The poststop hooks were recorded only in state.json: delete --force of a damaged
    container cannot run them, and says so (the rest is cleaned up)."""
    marker = tmp_path / "poststop-ran"

    def edit(config):
        config["hooks"] = {"poststop": [{"path": "/bin/sh",
                                         "args": ["sh", "-c", "touch %s" % marker]}]}
    h = Healthy(rt, make(("sleep", "1000"), edit=edit))
    damage_garbage(h)
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0, r.stderr
    assert "poststop hooks were not run" in r.stderr, r.stderr
    assert not marker.exists()
    h.assert_removed()


def test_creator_died_before_the_pid(rt, sleeper):
    """A valid state.json (creating, pid 0) and a record without a pid, as a create killed
    right after the spawn leaves them: delete --force finds the init by its socket."""
    h = Healthy(rt, sleeper)
    path = os.path.join(h.dir, "init")
    with open(path) as f:
        lines = [l for l in f if not l.startswith(("pid=", "pid_start=", "pidns="))]
    with open(path, "w") as f:
        f.writelines(lines)
    h.write(json.dumps(dict(h.state, pid=0, pid_start=None, creating=True)))
    assert rt.state(h.id)["status"] == "stopped"
    r = rt("delete", "--force", h.id)
    assert r.returncode == 0, r.stderr
    assert "killed init pid %d found by its socket" % h.pid in r.stderr, r.stderr
    h.assert_removed()


# ------------------------------------------------ how a state file is replaced

WRITE_TWICE = """
import sys
from minirunc.state import write_atomic
write_atomic(sys.argv[1], b"one", "write")
write_atomic(sys.argv[1], b"two", "write")
"""


def test_a_state_file_is_replaced_by_exchange(tmp_path):
    """write_atomic over an existing file swaps the two (renameat2 RENAME_EXCHANGE: ext4
    flushes a file renamed over another, not one exchanged with it) and unlinks the old
    one; the first write, with nothing there yet, is a plain rename."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make deps installs it)")
    path = tmp_path / "state.json"
    r = subprocess.run(["strace", "-f", "-e", "trace=rename,renameat,renameat2", sys.executable,
                        "-c", WRITE_TWICE, str(path)], capture_output=True, text=True,
                       timeout=60, env=runtime_env())
    assert r.returncode == 0, r.stderr
    calls = [line for line in r.stderr.splitlines() if "rename" in line]
    assert len(calls) == 2, calls
    assert calls[0].startswith("rename(") and calls[0].endswith("= 0"), calls
    assert "RENAME_EXCHANGE) = 0" in calls[1], calls
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["state.json"]   # no temp file left


def test_replacing_keeps_rename_semantics(tmp_path):
    """A directory where state.json belongs (damage) stays an error naming the file; a
    symlink there is replaced itself, its target untouched (as rename does)."""
    state = _state_module()
    (tmp_path / "dir").mkdir()
    with pytest.raises(state.HostError) as e:
        state.write_atomic(str(tmp_path / "dir"), b"x", "write state file")
    assert "write state file" in str(e.value) and str(tmp_path / "dir") in str(e.value)
    assert (tmp_path / "dir").is_dir() and sorted(os.listdir(tmp_path)) == ["dir"]
    (tmp_path / "target").write_bytes(b"kept")
    os.symlink("target", tmp_path / "link")
    state.write_atomic(str(tmp_path / "link"), b"new", "write")
    assert not os.path.islink(tmp_path / "link") and (tmp_path / "link").read_bytes() == b"new"
    assert (tmp_path / "target").read_bytes() == b"kept"


class NoExchangeRuntime(Runtime):
    """Every command under tests/oldkernel.py answering renameat2 with EINVAL, as a
    filesystem without RENAME_EXCHANGE does (at the running kernel's own release)."""

    def cmd(self, *args):
        release = ".".join(os.uname().release.split(".")[:2]).split("-")[0]
        return [sys.executable, OLDKERNEL, "--refuse", "316=22", release, "--"] + \
            super().cmd(*args)


def test_lifecycle_where_rename_exchange_is_refused(tmp_path, sleeper):
    """Where the exchange is refused, every state write is a plain rename: create, state,
    start, kill and delete work as ever and leave no temp file."""
    rt = NoExchangeRuntime(tmp_path / "noexchange")
    cid = rt.new_id("nx")
    try:
        r = rt("create", "--bundle", sleeper, cid)
        assert r.returncode == 0, r.stderr
        assert not [n for n in os.listdir(os.path.join(rt.root, cid)) if ".tmp-" in n]
        assert rt.state(cid)["status"] == "created"
        assert rt("start", cid).returncode == 0
        assert rt.state(cid)["status"] == "running"
        assert rt("kill", cid, "KILL").returncode == 0
        assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
        r = rt("delete", cid)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(os.path.join(rt.root, cid))
    finally:
        rt.cleanup()
