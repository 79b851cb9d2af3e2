"""The C front door (issue 11, native/door.c): every verb it may serve, in every status and
with every damage, gives through the door exactly what the forced Python path
(MINIRUNC_NO_DOOR=1) gives: stdout, stderr, exit code and the state directory after.

The door lives in the single binary only: the tests run MINIRUNC_BIN (else dist/minirunc).
That the door really answered (and did not hand every case to Python, which would make
the comparison hollow) is seen with strace: the interpreter installs its SIGINT handler
as it starts, the door never touches SIGINT.
"""

import fcntl
import json
import os
import signal
import subprocess
import tempfile

import pytest

from conftest import REPO, runtime_env, wait_for
from host_leftovers import (describe, leftover_cgroups, leftover_processes,  # noqa: F401
                            own_cgroup_dirs, subreaper)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

BINARY = os.environ.get("MINIRUNC_BIN") or os.path.join(REPO, "dist", "minirunc")
if not os.path.exists(BINARY):
    if os.environ.get("MINIRUNC_REQUIRE_BINARY"):
        raise RuntimeError("%s is missing: run `make binary`" % BINARY)
    pytest.skip("no single binary (make binary) to test the door in", allow_module_level=True)
BINARY = os.path.abspath(BINARY)
STRACE = "/usr/bin/strace"


class Door:
    """Runs the binary with a private --root, through the door or forced to Python."""

    def __init__(self, root):
        self.root = str(root)
        self.ids = set()

    def cmd(self, *args, root=True):
        return [BINARY] + (["--root", self.root] if root else []) + [str(a) for a in args]

    def __call__(self, *args, python=False, env=None, root=True, trace=None):
        extra = dict(env or {})
        if python:
            extra["MINIRUNC_NO_DOOR"] = "1"
        cmd = self.cmd(*args, root=root)
        if trace:
            cmd = [STRACE, "-f", "-e", "trace=rt_sigaction", "-o", str(trace)] + cmd
        # Files, not pipes: a created container keeps the stdio it inherited.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(cmd, env=runtime_env(extra), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=60)
            out.seek(0)
            err.seek(0)
            return proc.returncode, out.read(), err.read()

    def new_id(self, prefix="door"):
        import uuid
        cid = "%s-%s" % (prefix, uuid.uuid4().hex[:10])
        self.ids.add(cid)
        return cid

    def create(self, bundle, start=False, prefix="door"):
        cid = self.new_id(prefix)
        r = self("create", "--bundle", bundle, cid, python=True)
        assert r[0] == 0, r
        if start:
            r = self("start", cid, python=True)
            assert r[0] == 0, r
        return cid

    def status(self, cid):
        r = self("state", cid, python=True)
        assert r[0] == 0, r
        return json.loads(r[1])["status"]


@pytest.fixture
def door(tmp_path):
    d = Door(tmp_path / "state")
    yield d
    for cid in d.ids:
        d("delete", "--force", cid, python=True)


def snapshot(door, cid):
    """What is on disk for the container: file names, and the bytes of the regular ones."""
    d = os.path.join(door.root, cid)
    if not os.path.isdir(d):
        return None
    out = {}
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                out[name] = f.read()
        else:
            out[name] = os.lstat(path).st_mode >> 12
    return out


def same(door, *args, cid=None, env=None, root=True):
    """Run through the door and through Python: same (code, stdout, stderr), and the door
    changed nothing on disk that Python would not have.  Returns the door's result."""
    before = snapshot(door, cid) if cid else None
    through_door = door(*args, env=env, root=root)
    after_door = snapshot(door, cid) if cid else None
    through_python = door(*args, python=True, env=env, root=root)
    assert through_door == through_python, (args, through_door, through_python)
    if cid:
        assert after_door == before, args
    return through_door


def served(door, tmp_path, *args, env=None):
    """(exit code, True when the door answered the command itself): the interpreter, when
    it starts, installs its SIGINT handler; the door never touches SIGINT."""
    trace = tmp_path / "trace"
    code = door(*args, env=env, trace=trace)[0]
    text = trace.read_text()
    assert "+++ exited with %d +++" % code in text, text[-300:]   # strace saw it all
    return code, "rt_sigaction(SIGINT" not in text


@pytest.fixture
def sleeper(make):
    return make(("sleep", "1000"))


def one_of_each_status(door, sleeper, make):
    """{status: id}: a created, a running, a paused and a stopped container."""
    made = {"created": door.create(sleeper), "running": door.create(sleeper, start=True),
            "paused": door.create(sleeper, start=True)}
    assert door("pause", made["paused"], python=True)[0] == 0
    made["stopped"] = door.create(make(("true",)), start=True)
    assert wait_for(lambda: door.status(made["stopped"]) == "stopped")
    return made


# -- what runs before the door ------------------------------------------------------

def opened(door, tmp_path, *args, env=None, python=False):
    """(exit code, paths the command opened), from strace."""
    trace = tmp_path / "opens"
    cmd = [STRACE, "-f", "-e", "trace=open,openat", "-o", str(trace)] + door.cmd(*args)
    extra = dict(env or {})
    if python:
        extra["MINIRUNC_NO_DOOR"] = "1"
    code = subprocess.run(cmd, env=runtime_env(extra), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode
    text = trace.read_text()
    assert "+++ exited with %d +++" % code in text, text[-300:]
    return code, [line.split('"')[1] for line in text.splitlines() if '"' in line]


def glibc_binary():
    out = subprocess.run(["readelf", "-dW", BINARY], capture_output=True, text=True).stdout
    return "libc.so.6" in out


def test_the_interpreter_s_set_up_waits_for_the_door(door, sleeper, tmp_path):
    """The interpreter's inittab and its locale check run only once the door has declined
    (build/nuitka_builtins.py __wrap_main, no constructors): a `state` the door serves with
    LANG=C.UTF-8 loads no locale; the same command forced to Python does, and works."""
    cid = door.create(sleeper)
    env = {"LANG": "C.UTF-8"}
    assert served(door, tmp_path, "state", cid, env=env) == (0, True)
    code, paths = opened(door, tmp_path, "state", cid, env=env)
    assert code == 0
    assert not [p for p in paths if "locale" in p or "gconv" in p], paths
    code, paths = opened(door, tmp_path, "state", cid, env=env, python=True)
    assert code == 0
    if glibc_binary():
        assert [p for p in paths if p.endswith("/LC_CTYPE")], paths


def test_setlocale_from_the_environment_loads_lc_ctype_only(door, tmp_path):
    """setlocale(LC_ALL, "") is wrapped to set LC_CTYPE alone (Nuitka decodes argv between
    it and a reset to "C"): the Python path opens no other category of the locale LANG
    names, and a non-ASCII argument still decodes (it comes back in the error)."""
    if not glibc_binary():
        pytest.skip("musl's setlocale reads no locale files")
    code, paths = opened(door, tmp_path, "state", "d\u00e9j\u00e0-vu", env={"LANG": "C.UTF-8"},
                         python=True)
    assert code == 1
    categories = {os.path.basename(p) for p in paths if "/locale/" in p and "/LC_" in p}
    assert categories == {"LC_CTYPE"}, paths
    r = door("state", "d\u00e9j\u00e0-vu", python=True, env={"LANG": "C.UTF-8"})
    assert r[0] == 1 and "d\u00e9j\u00e0-vu".encode() in r[2], r


# -- state ---------------------------------------------------------------------------

def test_state_every_status(door, sleeper, make, tmp_path):
    for status, cid in one_of_each_status(door, sleeper, make).items():
        code, out, err = same(door, "state", cid, cid=cid)
        assert code == 0 and err == b"", err
        doc = json.loads(out)
        assert doc["status"] == status and doc["id"] == cid
        assert (doc["pid"] == 0) == (status == "stopped")
        assert served(door, tmp_path, "state", cid) == (0, True)


def test_state_missing_and_odd_ids(door, tmp_path):
    os.makedirs(door.root)
    for cid in ("nope", "-", "a.b+c_d-e", "x" * 1025, "..", ".", "a/b", "é", "a b", ""):
        code, out, err = same(door, "state", cid)
        assert code != 0 and out == b"" and err.startswith(b"minirunc: "), (cid, err)


def test_state_command_lines(door, sleeper, tmp_path):
    """Global flags the door parses as cli.py does, and ones it leaves to Python."""
    cid = door.create(sleeper)
    log = tmp_path / "log"
    env_root = {"MINIRUNC_ROOT": door.root}
    lines = [
        ["--root", door.root, "state", cid], ["--root=" + door.root, "state", cid],
        ["-root", door.root, "state", cid], ["--root", "/nonexistent", "--root", door.root,
                                             "state", cid],
        ["--log", str(log), "state", cid], ["--log-format", "json", "--log", str(log),
                                            "state", cid],
        ["--log-format=json", "--root", door.root, "state", cid],
        ["--log-format", "xml", "--root", door.root, "state", cid],
        ["--debug", "--root", door.root, "state", cid], ["--root", door.root, "state", "--", cid],
        ["--root", door.root, "state", cid, "extra"], ["--root", door.root, "state"],
        ["--root", door.root, "state", "-h"], ["--root", door.root, "--help"],
        ["--root", door.root], ["--root"], ["--root", door.root, "statex", cid],
        ["--root", "", "state", cid],
        # go-runc (containerd) passes these to every command
        ["--root", door.root, "--log", str(log), "--log-format", "json", "--systemd-cgroup",
         "state", cid], ["--systemd-cgroup=TRUE", "--root", door.root, "state", cid],
        ["--systemd-cgroup=maybe", "--root", door.root, "state", cid],
        ["--rootless=true", "-rootless", "auto", "--root", door.root, "state", cid],
        ["--criu", "/nonexistent", "--root", door.root, "state", cid],
        ["--root", door.root, "--systemd-cgroup", "--criu"],
    ]
    for argv in lines:
        same(door, *argv, cid=cid, env=env_root, root=False)
    assert not log.exists() or log.read_text() == ""  # a served `state` logs nothing
    assert served(door, tmp_path, "state", cid)[1]
    assert served(door, tmp_path, "--systemd-cgroup", "--rootless=false", "state", cid)[1]
    # an empty --root means MINIRUNC_ROOT (cli.py), which the door reads the same way
    code, out, _ = door("--root", "", "state", cid, env=env_root, root=False)
    assert code == 0 and json.loads(out)["id"] == cid


def test_state_damage_goes_to_python(door, sleeper, tmp_path):
    """Any state.json or init record the door cannot verify: Python's words, byte for byte."""
    cid = door.create(sleeper)
    d = os.path.join(door.root, cid)
    state_path, record_path = os.path.join(d, "state.json"), os.path.join(d, "door")
    with open(state_path, "rb") as f:
        state = f.read()
    with open(record_path, "rb") as f:
        record = f.read()
    data = json.loads(state)
    other_pid = dict(data, pid=1)
    edited_record = record.replace(b'"ociVersion": ', b'"ociVersion":  ')
    damages = {
        "state truncated": (state[:len(state) // 2], record),
        "state empty": (b"", record),
        "state garbage": (bytes(range(256)), record),
        "state pid of another process": (json.dumps(other_pid).encode(), record),
        "state with an unknown key": (json.dumps(dict(data, extra=1)).encode(), record),
        "record torn": (state, record[:len(record) // 2]),
        "record without end": (state, record[:-len(b"end=1\n")]),
        "record edited": (state, edited_record),
        "record of another version": (state, record.replace(b"version=1", b"version=2", 1)),
        "record without its checksum": (state, b"".join(
            line for line in record.splitlines(True) if not line.startswith(b"record_sum"))),
        "record without the state document": (state, b"".join(
            line for line in record.splitlines(True) if not line.startswith(b"state_")))}
    for name, (state_bytes, record_bytes) in damages.items():
        with open(state_path, "wb") as f:
            f.write(state_bytes)
        with open(record_path, "wb") as f:
            f.write(record_bytes)
        code, out, err = same(door, "state", cid, cid=cid)
        assert served(door, tmp_path, "state", cid)[1] is False, name
    # (no door record: a container of an older minirunc, or one being created)
    init_path = os.path.join(d, "init")
    with open(init_path, "rb") as f:
        init = f.read()
    for missing in (state_path, record_path, init_path):
        for path, blob in ((state_path, state), (record_path, record), (init_path, init)):
            with open(path, "wb") as f:
                f.write(blob)
        os.unlink(missing)
        same(door, "state", cid, cid=cid)
        assert served(door, tmp_path, "state", cid)[1] is (missing == init_path)
    with open(init_path, "wb") as f:
        f.write(init)
    with open(state_path, "wb") as f:
        f.write(state)
    with open(record_path, "wb") as f:
        f.write(record)
    os.unlink(state_path)
    os.symlink(os.path.join(tmp_path, "elsewhere.json"), state_path)
    with open(os.path.join(tmp_path, "elsewhere.json"), "wb") as f:
        f.write(state)
    same(door, "state", cid, cid=cid)
    assert served(door, tmp_path, "state", cid)[1] is False   # a symlinked state.json


@pytest.mark.parametrize("verb", [("state",), ("kill", "0"), ("start",)])
def test_waits_for_the_lock(door, sleeper, tmp_path, verb):
    """A command holding the container's lock (a create, a delete) is waited for, by the
    door as by Python; then both give the same answer (`start`: one container each)."""
    a = door.create(sleeper)
    cids = [a, door.create(sleeper) if verb[0] == "start" else a]
    fds = [os.open(os.path.join(door.root, cid), os.O_RDONLY | os.O_DIRECTORY)
           for cid in sorted(set(cids))]
    try:
        for fd in fds:
            fcntl.flock(fd, fcntl.LOCK_EX)
        procs = [subprocess.Popen(door.cmd(verb[0], cid, *verb[1:]), env=runtime_env(
            {"MINIRUNC_NO_DOOR": "1"} if python else {}), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE) for cid, python in zip(cids, (False, True))]
        # /proc/locks names a file as MAJOR:MINOR:INODE (hex, hex, decimal); a waiter's
        # line has "->"
        files = {" %02x:%02x:%d " % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
                 for st in map(os.fstat, fds)}

        def waiting():
            with open("/proc/locks") as f:
                lines = [l for l in f.read().splitlines() if "->" in l]
            return sum(any(name in l for name in files) for l in lines) == 2

        assert wait_for(waiting), "both commands should wait on the lock"
        assert all(p.poll() is None for p in procs)
    finally:
        for fd in fds:
            os.close(fd)
    results = [p.communicate(timeout=30) + (p.returncode,) for p in procs]
    assert results[0] == results[1] and results[0][2] == 0, results
    if verb[0] == "start":
        assert door.status(cids[0]) == door.status(cids[1]) == "running"


def test_state_to_a_closed_or_gone_stdout(door, sleeper, tmp_path):
    """A reader gone (EPIPE): the quiet exit 141 of cli.py; stdout closed: Python's words."""
    cid = door.create(sleeper)
    results = []
    for python in (False, True):
        env = runtime_env({"MINIRUNC_NO_DOOR": "1"} if python else {})
        r, w = os.pipe()
        os.close(r)
        gone = subprocess.run(door.cmd("state", cid), stdout=w, stderr=subprocess.PIPE, env=env)
        os.close(w)
        closed = subprocess.run(["sh", "-c", 'exec >&-; exec "$@"', "sh"] + door.cmd("state", cid),
                                stderr=subprocess.PIPE, env=env)
        results.append(((gone.returncode, gone.stderr), (closed.returncode, closed.stderr)))
    assert results[0] == results[1], results
    assert results[0][0] == (141, b"")


def test_state_with_hooks(door, make, tmp_path):
    def hooks(config):
        config["hooks"] = {"poststart": [{"path": "/bin/true"}],
                           "poststop": [{"path": "/bin/true"}]}
    cid = door.create(make(("sleep", "1000"), edit=hooks))
    code, out, err = same(door, "state", cid, cid=cid)
    assert code == 0 and json.loads(out)["status"] == "created"
    assert served(door, tmp_path, "state", cid)[1]


# -- start -----------------------------------------------------------------------------

def test_start_created(door, sleeper, tmp_path):
    a, b = door.create(sleeper), door.create(sleeper)
    assert served(door, tmp_path, "start", a) == (0, True)
    assert door("start", b, python=True) == (0, b"", b"")
    assert door.status(a) == door.status(b) == "running"
    assert snapshot(door, a).keys() == snapshot(door, b).keys() == {"init", "state.json", "door"}
    # started twice, or not created: Python's words
    for cid in (a, b):
        code, _, err = same(door, "start", cid, cid=cid)
        assert code == 1 and b"cannot start a container that is running" in err


def test_start_not_created(door, sleeper, make, tmp_path):
    paused = door.create(sleeper, start=True)
    assert door("pause", paused, python=True)[0] == 0
    stopped = door.create(make(("true",)), start=True)
    assert wait_for(lambda: door.status(stopped) == "stopped")
    os.makedirs(door.root, exist_ok=True)
    for cid in (paused, stopped, "nope", "a/b"):
        code, out, err = same(door, "start", cid, cid=cid if "/" not in cid else None)
        assert code == 1 and out == b"" and err.startswith(b"minirunc: "), err


def test_start_with_hooks_goes_to_python(door, make, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def hooks(config):
        config["hooks"] = {"poststart": [{"path": "/bin/sh", "args": [
            "sh", "-c", "cat > %s/$$" % marks]}]}
    bundle = make(("sleep", "1000"), edit=hooks)
    a = door.create(bundle)
    assert served(door, tmp_path, "start", a) == (0, False)
    assert door.status(a) == "running"
    assert len(os.listdir(marks)) == 1     # the poststart hook ran once


def test_start_whose_exec_fails(door, make, tmp_path):
    """The init answers `E` after the door's `S`: the door hands what it got to Python,
    which says it as it would have; the start socket goes as with Python."""
    def no_execve(config):
        config["process"]["noNewPrivileges"] = True
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["execve"], "action": "SCMP_ACT_ERRNO"}]}
    bundle = make(("true",), edit=no_execve)
    a, b = door.create(bundle), door.create(bundle)
    r_a, r_b = door("start", a), door("start", b, python=True)
    assert r_a == r_b and r_a[0] == 1, (r_a, r_b)
    assert r_a[2] == b'minirunc: execve process.args[0] "/bin/true": operation not ' \
                     b'permitted (EPERM)\n'
    assert snapshot(door, a).keys() == snapshot(door, b).keys() == {"init", "state.json", "door"}
    assert door.status(a) == door.status(b) == "stopped"


# -- kill ------------------------------------------------------------------------------

def test_kill_null_signal_every_status(door, sleeper, make, tmp_path):
    for status, cid in one_of_each_status(door, sleeper, make).items():
        ok = status != "stopped"
        code, out, err = same(door, "kill", cid, "0", cid=cid)
        assert (code == 0) == ok and out == b"", (cid, err)
        assert served(door, tmp_path, "kill", cid, "0") == (0, True) or not ok



def test_kill_spellings(door, sleeper, tmp_path):
    """Every spelling of a signal the door parses is one it serves, with Python's result.
    The containers are paused: the signals wait in the frozen cgroup until delete."""
    a, b = door.create(sleeper, start=True), door.create(sleeper, start=True)
    for cid in (a, b):
        assert door("pause", cid, python=True)[0] == 0
    for spelling in ("term", "SIGTERM", "sigusr1", "Hup", "rtmin+3", "RTMAX-2", "RTMIN",
                     "SIGRTMAX", "64", "034", "0"):
        code, is_served = served(door, tmp_path, "kill", a, spelling)
        assert (code, is_served) == (0, True), spelling
        assert door("kill", b, spelling, python=True) == (0, b"", b""), spelling
    assert door.status(a) == door.status(b) == "paused"


def test_kill_bad_command_lines(door, sleeper):
    cid = door.create(sleeper, start=True)
    for argv in (["kill", cid, "FOO"], ["kill", cid, "99"], ["kill", cid, "9x"],
                 ["kill", cid, "RTMIN+31"], ["kill", cid, "RTMAX-"], ["kill", cid, "SIG"],
                 ["kill", cid, "0", "x"], ["kill", "nope", "0"], ["kill", "a/b", "0"],
                 ["kill"], ["kill", "--all", "nope"]):
        code, _, err = same(door, *argv, cid=cid)
        assert code != 0 and err.startswith(b"minirunc: "), (argv, err)
    assert door.status(cid) == "running"


@pytest.mark.parametrize("spelling", ["KILL", "sigkill", "9", "TERM", None])
def test_kill_signals_alike(door, sleeper, tmp_path, spelling):
    """The same signal through the door and through Python: same output, same end."""
    # (sleep as pid 1 ignores SIGTERM: the container runs on after TERM, as with Python)
    a, b = door.create(sleeper, start=True), door.create(sleeper, start=True)
    args = [spelling] if spelling else []
    code_a, served_a = served(door, tmp_path, "kill", a, *args)
    r_b = door("kill", b, *args, python=True)
    assert served_a and (code_a, r_b[0]) == (0, 0), r_b
    if spelling in ("KILL", "sigkill", "9"):
        assert wait_for(lambda: door.status(a) == "stopped")
        assert wait_for(lambda: door.status(b) == "stopped")
    else:
        assert door.status(a) == door.status(b) == "running"
    assert snapshot(door, a).keys() == snapshot(door, b).keys()


def test_kill_reaches_the_init(door, make, tmp_path):
    """A signal the door sends arrives: the container's shell traps USR1 and writes a file."""
    out = tmp_path / "out"
    out.mkdir()

    def edit(config):
        config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                 "options": ["rbind", "rw"]})
    bundle = make(("sh", "-c", "trap 'echo usr1 > /out/got; exit 0' USR1; "
                   "while :; do sleep 0.05; done"), edit=edit)
    cid = door.create(bundle, start=True)
    assert served(door, tmp_path, "kill", cid, "USR1") == (0, True)
    assert wait_for(lambda: (out / "got").exists())
    assert (out / "got").read_text() == "usr1\n"


# -- list ------------------------------------------------------------------------------

LIST_LINES = [["list"], ["list", "-q"], ["list", "--quiet"], ["list", "-quiet"],
              ["list", "--format", "json"], ["list", "-f", "json"], ["list", "--format=json"],
              ["list", "-format", "table"], ["list", "-f=table"], ["list", "-q", "-f", "json"],
              ["list", "--format", "xml"], ["list", "extra"], ["list", "--quiet=true"],
              ["list", "--format"], ["list", "-h"]]


def test_list_every_status(door, sleeper, make, tmp_path):
    """Every status, ids that sort by case and digit, bundle paths with spaces and
    non-ASCII letters (the table pads by characters), every spelling of the flags."""
    odd = tmp_path / "bündel mit Leerzeichen"
    odd.mkdir()
    odd_bundle = make(("sleep", "1000"))
    os.rename(odd_bundle, odd / "b")
    made = one_of_each_status(door, sleeper, make)
    for prefix in ("Z", "a", "0", "b.c+d_e"):
        made[prefix] = door.create(odd / "b", prefix=prefix)
    for argv in LIST_LINES:
        code, out, err = same(door, *argv)
        if argv in (["list"], ["list", "-q"], ["list", "--format", "json"]):
            assert code == 0 and err == b"", (argv, err)
            assert served(door, tmp_path, *argv) == (0, True), argv
    listed = json.loads(door("list", "--format", "json")[1])
    assert [c["id"] for c in listed] == sorted(made.values())
    assert {c["id"]: c["status"] for c in listed}[made["paused"]] == "paused"
    table = door("list")[1].decode().splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert any("bündel mit Leerzeichen" in line for line in table)


def test_list_empty_missing_and_damaged(door, sleeper, tmp_path):
    """No root, an empty root, a file in it; then a damaged container or one being created
    (Python warns, or skips it): the whole list is Python's."""
    for argv in (["list"], ["list", "-f", "json"], ["list", "-q"]):
        assert same(door, *argv)[0] == 0           # no root yet
        assert served(door, tmp_path, *argv) == (0, True)
    os.makedirs(door.root)
    open(os.path.join(door.root, "a-file"), "w").close()
    for argv in (["list"], ["list", "-f", "json"]):
        assert same(door, *argv)[0] == 0
        assert served(door, tmp_path, *argv) == (0, True)
    a = door.create(sleeper)
    b = door.create(sleeper)
    with open(os.path.join(door.root, b, "door"), "r+b") as f:
        f.truncate(50)
    code, out, err = same(door, "list")
    assert code == 0 and b"minirunc: " not in err and b.encode() in out   # record only: fine
    assert served(door, tmp_path, "list")[1] is False
    with open(os.path.join(door.root, b, "state.json"), "r+b") as f:
        f.truncate(20)
    code, out, err = same(door, "list")
    assert code == 0 and err.startswith(b"minirunc: ") and b"unknown" in out, err
    os.unlink(os.path.join(door.root, b, "state.json"))
    creating = os.open(os.path.join(door.root, b), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(creating, fcntl.LOCK_EX)     # as a create before state.json
        code, out, err = same(door, "list", "-q")
        assert (code, out, err) == (0, a.encode() + b"\n", b"")
        assert served(door, tmp_path, "list", "-q")[1] is False
    finally:
        os.close(creating)
    os.symlink(os.path.join(door.root, a), os.path.join(door.root, "link"))
    same(door, "list")
    assert served(door, tmp_path, "list")[1] is False


# -- delete ----------------------------------------------------------------------------

def alike(door, a, b, *args):
    """`args` with container a through the door and with b through Python: the same exit
    code, stdout and stderr (b's id written as a's), the same files left; the door's result."""
    through_door = door(*[a if x == "ID" else x for x in args])
    through_python = door(*[b if x == "ID" else x for x in args], python=True)
    swap = lambda r: (r[0], r[1].replace(b.encode(), a.encode()), r[2].replace(b.encode(), a.encode()))
    assert through_door == swap(through_python), (args, through_door, through_python)
    left_a, left_b = snapshot(door, a), snapshot(door, b)
    assert (left_a is None) == (left_b is None) and (left_a or {}).keys() == (left_b or {}).keys()
    return through_door


def stopped_pair(door, bundle):
    pair = [door.create(bundle, start=True) for _ in range(2)]
    assert wait_for(lambda: all(door.status(cid) == "stopped" for cid in pair))
    return pair


def default_sigint():
    """SIGINT as a terminal's shell leaves it: started from a background job (`nohup cmd &`)
    the tests inherit it ignored, and the interpreter leaves an ignored SIGINT alone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sigint_caught(pid):
    """The interpreter installs a SIGINT handler as it starts (unless SIGINT is ignored:
    default_sigint()); the door never does."""
    with open("/proc/%d/status" % pid) as f:
        caught = next(l for l in f if l.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.parametrize("force", [[], ["--force"], ["-f"], ["-force"]])
def test_delete_stopped(door, make, tmp_path, force):
    a, b = stopped_pair(door, make(("true",)))
    made = [d for d in own_cgroup_dirs(a) if os.path.isdir(d)]
    assert made                                     # there are cgroups to remove
    with open(os.path.join(door.root, a, "door")) as f:
        lines = f.read().splitlines()
    assert "delete=1" in lines
    assert set(made) <= {l.split("=", 1)[1] for l in lines if l.startswith("cgroup_dir=")}
    assert served(door, tmp_path, "delete", *force, a) == (0, True)
    assert door("delete", *force, b, python=True) == (0, b"", b"")
    for cid in (a, b):
        assert not os.path.exists(os.path.join(door.root, cid))
        assert not leftover_cgroups(cid)
    code, out, err = same(door, "delete", a)            # gone: Python's words
    assert code == 1 and b"does not exist" in err, err
    assert same(door, "delete", "--force", a)[0] == 0   # runc: a forced delete of nothing


def test_delete_not_stopped(door, sleeper, make, tmp_path):
    """Created, running, paused: Python's (a kill, or an error) and the same end."""
    pairs = [(door.create(sleeper), door.create(sleeper))]
    pairs.append((door.create(sleeper, start=True), door.create(sleeper, start=True)))
    pairs.append(tuple(door.create(sleeper, start=True) for _ in range(2)))
    for cid in pairs[2]:
        assert door("pause", cid, python=True)[0] == 0
    for a, b in pairs:
        status = door.status(a)
        code = alike(door, a, b, "delete", "ID")[0]
        assert served(door, tmp_path, "delete", a)[1] is False, status
        assert code == (0 if status == "created" else 1), status
        alike(door, a, b, "delete", "--force", "ID")
        assert not os.path.exists(os.path.join(door.root, a)), status
        assert not leftover_cgroups(a) and not leftover_cgroups(b)
    os.makedirs(door.root, exist_ok=True)
    for cid in ("nope", "..", "a/b", "x" * 1025):
        code, out, err = same(door, "delete", cid)
        assert code == 1 and err.startswith(b"minirunc: "), err
    for line in (["delete"], ["delete", "a", "b"], ["delete", "--force=true", "nope"],
                 ["delete", "--forcex", "nope"]):
        same(door, *line)


def cgroup_procs(cid):
    pids = set()
    for d in own_cgroup_dirs(cid):
        if os.path.exists(os.path.join(d, "cgroup.procs")):
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids |= set(f.read().split())
    return pids


def test_delete_handed_to_python(door, make, tmp_path, subreaper):
    """What the door leaves to Python, with Python's end: poststop hooks (run once), a
    process left in the cgroup (rmdir says EBUSY: Python kills it), a damaged record."""
    marks = tmp_path / "marks"
    marks.mkdir()

    def poststop(config):
        config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": [
            "sh", "-c", "cat > %s/$$" % marks]}]}

    def leftover(config):   # no pid namespace: the sleep outlives the init
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != "pid"]
        config["process"]["args"] = ["sh", "-c", "sleep 1000 >/dev/null 2>&1 & exit 0"]

    for name, bundle in (("poststop", make(("true",), edit=poststop)),
                         ("leftover", make(edit=leftover)), ("damaged", make(("true",)))):
        a, b = stopped_pair(door, bundle)
        if name == "leftover":
            assert cgroup_procs(a) and cgroup_procs(b), "no leftover process to test with"
        if name == "damaged":
            for cid in (a, b):
                with open(os.path.join(door.root, cid, "door"), "r+b") as f:
                    f.truncate(100)
        assert served(door, tmp_path, "delete", a) == (0, False), name
        assert door("delete", b, python=True) == (0, b"", b""), name
        for cid in (a, b):
            assert not os.path.exists(os.path.join(door.root, cid)), name
            assert not leftover_cgroups(cid), name
    assert len(os.listdir(marks)) == 2          # each poststop hook ran once
    assert not leftover_processes()


def test_delete_keeps_a_cgroup_that_was_there(door, make, tmp_path):
    """A cgroup directory that existed before the container is someone else's: the door
    record does not offer the delete, Python's keeps that directory, as before."""
    made = []
    try:
        cids = []
        for _ in range(2):
            name = "minirunc-door-kept-%s" % door.new_id()
            base = [d for d in own_cgroup_dirs(name) if "/pids/" in d][0]
            os.mkdir(base)
            made.append(base)
            cgroups_path = base.split("/pids", 1)[1]

            def edit(config, path=cgroups_path):
                config["linux"]["cgroupsPath"] = path
            cids.append(door.create(make(("true",), edit=edit), start=True))
        assert wait_for(lambda: all(door.status(cid) == "stopped" for cid in cids))
        with open(os.path.join(door.root, cids[0], "door")) as f:
            assert "delete=1" not in f.read().splitlines()
        assert served(door, tmp_path, "delete", cids[0]) == (0, False)
        assert door("delete", cids[1], python=True) == (0, b"", b"")
        assert all(os.path.isdir(d) for d in made)
    finally:
        for d in made:
            os.rmdir(d)


def stop_and_kill(door, tmp_path, step, *args):
    """Run `args` with MINIRUNC_TEST_STOP_AT=step, wait until it stops there, SIGKILL it;
    whether it was the door (not the interpreter) that stopped."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen(door.cmd(*args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=runtime_env({"MINIRUNC_TEST_STOP_AT": step,
                                             "MINIRUNC_TEST_STOP_MARKER": str(marker)}),
                            preexec_fn=default_sigint)

    def stopped():
        if not marker.exists() or not marker.read_text().strip():
            return False
        with open("/proc/%d/stat" % proc.pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"

    assert wait_for(stopped, 30), step
    assert marker.read_text() == "%d %s\n" % (proc.pid, step)
    by_the_door = not sigint_caught(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return by_the_door


def after_the_kill(door, cid):
    """What a killed delete left: `state` and `kill` through the door say what Python says,
    `delete --force` removes it all."""
    same(door, "state", cid, cid=cid)
    same(door, "kill", cid, "0", cid=cid)
    code, _, err = door("delete", "--force", cid)
    assert code == 0, err
    assert not os.path.exists(os.path.join(door.root, cid))
    assert not leftover_cgroups(cid)


@pytest.mark.parametrize("step", ["delete:locked", "delete:killed", "delete:cgroups-removed",
                                  "delete:state-removed"])
def test_delete_by_the_door_killed(door, make, tmp_path, step):
    """kill -9 of the door's own `delete` of a stopped container at each of Python's fault
    points: `state` and `kill` through the door say what Python says, and `delete --force`
    removes what is left."""
    cid = door.create(make(("true",)), start=True)
    assert wait_for(lambda: door.status(cid) == "stopped")
    assert stop_and_kill(door, tmp_path, step, "delete", cid)
    after_the_kill(door, cid)


@pytest.mark.parametrize("step", ["delete:locked", "delete:killed", "delete:cgroups-removed"])
def test_delete_killed_then_forced(door, sleeper, tmp_path, subreaper, step):
    """kill -9 of `delete --force` of a running container at each step (the door hands it
    to Python), then `state` through the door says what Python says, and `delete --force`
    removes everything."""
    cid = door.create(sleeper, start=True)
    with open(os.path.join(door.root, cid, "state.json")) as f:
        data = json.load(f)
    assert door.status(cid) == "running", describe(data["pid"])
    assert not stop_and_kill(door, tmp_path, step, "delete", "--force", cid)
    after_the_kill(door, cid)
    assert not leftover_processes()
    assert wait_for(lambda: start_time(data["pid"]) != data["pid_start"]), "the init survived"


def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])
