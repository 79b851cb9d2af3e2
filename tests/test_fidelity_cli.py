"""Issue 10 (items 4, 5, 6, 8, 9): what runc's callers see and rely on, through the CLI.

Hook status and working directories, `kill 0` and `kill --all` of a stopped container,
exec's exit code 255 for its own failures, runc's words for unified resources on a v1
host, a frozen cgroup and `--cgroup ..`, and `--debug` records in logrus's text shape.
"""

import json
import os
import re
import signal
import uuid

import pytest

from conftest import wait_for

MIB = 1 << 20
LOGRUS = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=(debug|info|warning|error) '
                    r'msg=("(?:[^"\\]|\\.)*"|[A-Za-z0-9._/@^+-]*)$')


def running(rt, make, args=("sleep", "1000"), edit=None):
    cid = rt.new_id("fc")
    r = rt("run", "-d", "--bundle", make(list(args), edit=edit), cid)
    assert r.returncode == 0, r.stderr
    return cid


def state_record(rt, cid):
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        return json.load(f)


def cgroup_dirs(record):
    cgroup = record.get("cgroup") or {}
    dirs = set((cgroup.get("paths") or {}).values())
    if cgroup.get("unified"):
        dirs.add(cgroup["unified"])
    return sorted(dirs)


def procs(directory):
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def cgroup_mounts():
    """[(mount point, root, fstype, super options)] of the host's cgroup filesystems."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ")
            fields, after = pre.split(), post.split()
            if after[0] in ("cgroup", "cgroup2"):
                mounts.append((fields[4], fields[3], after[0], after[2]))
    return mounts


def cgroup_mode():
    kinds = {m[2] for m in cgroup_mounts()}
    if "cgroup" in kinds:
        return "hybrid" if "cgroup2" in kinds else "v1"
    return "v2" if kinds else "none"


def freezer_file(cgroups_path):
    """The file that freezes ``cgroups_path`` (absolute linux.cgroupsPath), or None."""
    for mountpoint, root, fstype, options in cgroup_mounts():
        if fstype == "cgroup" and "freezer" in options.split(",") and root == "/":
            return os.path.join(mountpoint, cgroups_path.lstrip("/"), "freezer.state")
    if cgroup_mode() == "v2":
        for mountpoint, root, fstype, _ in cgroup_mounts():
            if fstype == "cgroup2" and root == "/":
                return os.path.join(mountpoint, cgroups_path.lstrip("/"), "cgroup.freeze")
    return None


def set_frozen(path, frozen):
    with open(path, "w") as f:
        if path.endswith("freezer.state"):
            f.write("FROZEN" if frozen else "THAWED")
        else:
            f.write("1" if frozen else "0")


def read(path):
    with open(path) as f:
        return f.read().strip()


# --------------------------------------------------------------- item 4: hooks

HOOK = 'echo "$1 $(pwd) $(cat)" >> "$LOG"'
CREATE_CONTAINER = ('echo "$1 $(pwd) $(cat)" >> "$LOG"; mkdir -p lib && echo made > lib/hook-made')


def test_hooks_read_status_created_and_run_where_runc_runs_them(rt, make, tmp_path):
    log = tmp_path / "hooks.log"
    env = ["LOG=%s" % log, "PATH=/usr/bin:/bin"]

    def hook(kind, script=HOOK):
        return [{"path": "/bin/sh", "args": ["sh", "-c", script, "sh", kind], "env": env}]

    def edit(config):
        config["root"]["readonly"] = False
        config["hooks"] = {kind: hook(kind) for kind in
                           ("prestart", "createRuntime", "poststart", "poststop")}
        config["hooks"]["createContainer"] = hook("createContainer", CREATE_CONTAINER)

    bundle = make(["true"], edit=edit)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cid = rt.new_id("hk")
    assert rt("create", "--bundle", bundle, cid, cwd=elsewhere).returncode == 0
    r = rt("start", cid, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    assert rt("delete", cid, cwd=elsewhere).returncode == 0

    entries = {}
    for line in log.read_text().splitlines():
        kind, cwd, state = line.split(" ", 2)
        entries[kind] = (cwd, json.loads(state))
    assert list(entries) == ["prestart", "createRuntime", "createContainer", "poststart",
                             "poststop"]
    # runc runs the runtime's hooks in the bundle, createContainer in the rootfs
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert entries[kind][0] == str(bundle), kind
    assert entries["createContainer"][0] == str(bundle / "rootfs")
    # a createContainer hook writing relative paths writes into the rootfs (runc does so)
    assert (bundle / "rootfs" / "lib" / "hook-made").read_text() == "made\n"
    assert not (elsewhere / "lib").exists()
    # status: created before start (crun, the validation suite), then running, stopped
    statuses = {kind: entries[kind][1]["status"] for kind in entries}
    assert statuses == {"prestart": "created", "createRuntime": "created",
                        "createContainer": "created", "poststart": "running",
                        "poststop": "stopped"}


def test_poststop_runs_where_the_caller_is_when_the_bundle_is_gone(rt, make, tmp_path):
    log = tmp_path / "hooks.log"
    bundle = make(["true"], edit=lambda c: c.update(hooks={"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", 'pwd >> "$0"', str(log)]}]}))
    cid = rt.new_id("hk")
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    moved = tmp_path / "moved-away"
    os.rename(bundle, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = rt("delete", "--force", cid, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert log.read_text() == "%s\n" % elsewhere


# --------------------------------------------------------------- item 5: kill

def test_kill_0_tells_whether_the_container_is_alive(rt, make):
    cid = rt.new_id("k0")
    assert rt("create", "--bundle", make(["sleep", "1000"]), cid).returncode == 0
    r = rt("kill", cid, "0")
    assert (r.returncode, r.stderr) == (0, "")
    assert rt.state(cid)["status"] == "created"           # nothing was sent
    assert rt("start", cid).returncode == 0
    assert (rt("kill", cid, "0").returncode, rt.state(cid)["status"]) == (0, "running")
    if rt("pause", cid).returncode == 0:
        assert rt("kill", cid, "0").returncode == 0
        assert rt.state(cid)["status"] == "paused"
        assert rt("resume", cid).returncode == 0
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    r = rt("kill", cid, "0")
    assert r.returncode == 1 and "is not running" in r.stderr and len(r.stderr.splitlines()) == 1
    r = rt("kill", cid, "65")
    assert r.returncode == 1 and "numbers go from 0" in r.stderr


def test_kill_all_of_a_stopped_container_succeeds_and_reaches_leftovers(rt, make):
    if cgroup_mode() == "none":
        pytest.skip("no cgroup filesystem")
    # No pid namespace: the init's child outlives it, left in the container's cgroup.
    edit = lambda c: c["linux"].update(namespaces=[n for n in c["linux"]["namespaces"]
                                                   if n["type"] != "pid"])
    cid = running(rt, make, ["sh", "-c", "sleep 1003 & exit 0"], edit=edit)
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    dirs = cgroup_dirs(state_record(rt, cid))
    assert wait_for(lambda: any(procs(d) for d in dirs))
    leftover = sorted(set(p for d in dirs for p in procs(d)))
    assert len(leftover) == 1
    r = rt("kill", cid, "KILL")                      # the init is gone: an error, as runc
    assert r.returncode == 1 and "not running" in r.stderr
    assert alive(leftover[0])
    r = rt("kill", "--all", cid, "KILL")             # runc 1.1: exit 0
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert wait_for(lambda: not alive(leftover[0]))
    r = rt("kill", "--all", cid, "TERM")             # nothing left: still 0
    assert (r.returncode, r.stderr) == (0, "")


def test_kill_all_of_a_stopped_container_never_signals_the_recorded_pid(rt, make):
    cid = running(rt, make, ["true"])
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    # Someone else may hold the dead init's pid by now: pretend so with our own pid.
    # (state.json and the init record beside it both record the pid; they must agree.)
    record = state_record(rt, cid)
    init_path = os.path.join(rt.root, cid, "init")
    init_record = open(init_path).read()
    assert "\npid=%d\n" % record["pid"] in init_record
    with open(init_path, "w") as f:
        f.write(init_record.replace("\npid=%d\n" % record["pid"], "\npid=%d\n" % os.getpid()))
    record["pid"] = os.getpid()
    with open(os.path.join(rt.root, cid, "state.json"), "w") as f:
        json.dump(record, f)
    old = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        r = rt("kill", "--all", cid, "USR1")         # would kill this test if sent to us
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------- item 6: exec

def test_exec_failures_exit_255_and_the_process_code_passes_through(rt, make, tmp_path):
    cid = running(rt, make)
    init = rt.state(cid)["pid"]

    def own_pids():
        return sorted(json.loads(rt("ps", "--format", "json", cid).stdout))

    assert rt("exec", cid, "sh", "-c", "exit 7").returncode == 7
    assert rt("exec", cid, "sh", "-c", "kill -9 $$").returncode == 128 + 9
    assert rt("exec", cid, "sh", "-c", "exit 255").returncode == 255
    for args, text in (
            ([cid, "/no/such/binary"], "no such file or directory"),
            ([cid, "no-such-command"], "executable file not found in $PATH"),
            (["--pid-file", str(tmp_path / "no-dir" / "pid"), cid, "sleep", "1001"],
             "write pid file"),
            (["--cwd", "/no/such/dir", cid, "true"], "process.cwd"),
            (["-u", "abc", cid, "true"], "--user"),
            (["--cgroup", "../up", cid, "true"], "../up is not a sub cgroup path"),
            ([cid], "missing COMMAND"),
            (["no-such-container", "true"], "does not exist")):
        r = rt("exec", *args)
        assert r.returncode == 255, (args, r.returncode, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and text in r.stderr, (args, r.stderr)
    # the process started for the bad --pid-file is gone again; nothing else is left
    assert wait_for(lambda: own_pids() == [init])
    assert not [n for n in os.listdir(os.path.join(rt.root, cid)) if n.startswith("exec-")]
    # the parser's errors stay 1, as runc's
    assert rt("exec", "--no-such-flag", cid, "true").returncode == 1
    assert rt("exec").returncode == 1

    if rt("pause", cid).returncode == 0:
        r = rt("exec", cid, "true")
        assert r.returncode == 255 and "paused" in r.stderr
        assert rt("resume", cid).returncode == 0
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    r = rt("exec", cid, "true")
    assert r.returncode == 255 and "stopped" in r.stderr


def test_exec_detached_failure_is_255_too(rt, make):
    cid = running(rt, make)
    assert rt("exec", "-d", cid, "sleep", "1002").returncode == 0
    r = rt("exec", "-d", cid, "/no/such/binary")
    assert r.returncode == 255 and "no such file or directory" in r.stderr


# ------------------------------------------------ item 8: words runc's users grep for

def test_unified_resources_on_a_v1_host_are_an_invalid_configuration(rt, make):
    mode = cgroup_mode()
    if mode not in ("v1", "hybrid"):
        pytest.skip("a cgroup v2-only host takes linux.resources.unified")
    name = "fidcli-%s" % uuid.uuid4().hex[:10]
    cid = rt.new_id("uv")
    bundle = make(["true"], edit=lambda c: c["linux"].update(
        cgroupsPath="/" + name, resources={"unified": {"pids.max": "10"}}))
    r = rt("run", "--bundle", bundle, cid)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [r.stderr.rstrip("\n")]
    assert ("linux.resources.unified: invalid configuration: cannot use unified on cgroup v1"
            in r.stderr)
    # refused before anything was made: no cgroup directory, v1 or cgroup2, no state
    for mountpoint, _, _, _ in cgroup_mounts():
        assert not os.path.exists(os.path.join(mountpoint, name)), mountpoint
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_update_with_unified_resources_on_a_v1_host_is_refused(rt, make, tmp_path):
    if cgroup_mode() not in ("v1", "hybrid"):
        pytest.skip("a cgroup v2-only host takes linux.resources.unified")
    cid = running(rt, make, edit=lambda c: c["linux"].update(resources={"pids": {"limit": 50}}))
    record = state_record(rt, cid)["cgroup"]
    pids_max = os.path.join(record["paths"]["pids"], "pids.max")
    resources = tmp_path / "r.json"
    resources.write_text(json.dumps({"unified": {"pids.max": "7"}}))
    r = rt("update", "--resources", resources, cid)
    assert r.returncode == 1 and "cannot use unified on cgroup v1" in r.stderr, r.stderr
    assert read(pids_max) == "50"
    assert rt.state(cid)["status"] == "running"


@pytest.fixture
def frozen_cgroup():
    """A cgroup made and frozen outside minirunc (what a container then finds); thawed and
    removed afterwards in every hierarchy."""
    made = []

    def factory():
        path = "/fidcli-%s/ct" % uuid.uuid4().hex[:10]
        freezer = freezer_file(path)
        if freezer is None:
            pytest.skip("no cgroup freezer here")
        os.makedirs(os.path.dirname(freezer))
        made.append(freezer)
        set_frozen(freezer, True)
        return path, freezer

    yield factory
    for freezer in made:
        if os.path.exists(freezer):
            set_frozen(freezer, False)
        name = freezer.split("/fidcli-")[1].split("/")[0]
        for mountpoint, _, _, _ in cgroup_mounts():
            top = os.path.join(mountpoint, "fidcli-" + name)
            for d in (os.path.join(top, "ct"), top):
                if os.path.isdir(d):
                    os.rmdir(d)


def test_create_in_a_frozen_cgroup_says_unexpectedly_frozen(rt, make, frozen_cgroup):
    path, freezer = frozen_cgroup()
    for verb in ("run", "create"):
        cid = rt.new_id("fz")
        r = rt(verb, "--bundle", make(["true"], edit=lambda c: c["linux"].update(
            cgroupsPath=path)), cid, timeout=30)
        assert r.returncode == 1, r.stderr
        assert r.stderr.splitlines() == [r.stderr.rstrip("\n")]
        assert "container's cgroup unexpectedly frozen" in r.stderr and freezer in r.stderr
        assert not os.path.exists(os.path.join(rt.root, cid))
    # not ours to thaw or remove
    assert os.path.isdir(os.path.dirname(freezer))
    assert read(freezer) in ("FROZEN", "1")
    assert procs(os.path.dirname(freezer)) == []


def test_start_of_a_container_whose_cgroup_was_frozen_says_so(rt, make):
    if freezer_file("/x") is None:
        pytest.skip("no cgroup freezer here")
    cid = rt.new_id("fz")
    assert rt("create", "--bundle", make(["echo", "started"]), cid).returncode == 0
    record = state_record(rt, cid)["cgroup"]
    freezer = record["freezer"]
    set_frozen(freezer, True)
    try:
        assert wait_for(lambda: rt.state(cid)["status"] == "paused")
        r = rt("start", cid)
        assert r.returncode == 1
        assert "container's cgroup unexpectedly frozen" in r.stderr and "resume" in r.stderr
        assert rt.state(cid)["status"] == "paused"
    finally:
        set_frozen(freezer, False)
    assert wait_for(lambda: rt.state(cid)["status"] == "created")
    assert rt("start", cid).returncode == 0


# --------------------------------------------------------------- item 9: --debug

def test_debug_records_go_to_stderr_in_runcs_text_format(rt, make, tmp_path):
    cid = rt.new_id("dbg")
    r = rt("--debug", "run", "--bundle", make(["true"]), cid)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines and all(LOGRUS.match(line) for line in lines), r.stderr
    assert any(('msg="container %s created: init pid ' % cid) in line for line in lines)
    assert all(" level=debug " in line for line in lines)

    # with --log the records go to the file only, in the same shape
    log = tmp_path / "runtime.log"
    r = rt("--debug", "--log", log, "run", "--bundle", make(["true"]), rt.new_id("dbg"))
    assert (r.returncode, r.stderr) == (0, "")
    logged = log.read_text().splitlines()
    assert logged and all(LOGRUS.match(line) for line in logged), logged

    # without --debug: nothing
    r = rt("run", "--bundle", make(["true"]), rt.new_id("dbg"))
    assert (r.returncode, r.stderr) == (0, "")


def test_logrus_quoting_rules():
    from minirunc import log
    when = 0
    assert log.text_record("debug", "ok", when) == 'time="1970-01-01T00:00:00Z" level=debug msg=ok'
    assert log.text_record("debug", "", when).endswith(" msg=")
    assert log.text_record("debug", "a-b.c_d/e@f^g+h", when).endswith(" msg=a-b.c_d/e@f^g+h")
    assert log.text_record("warning", 'say "hi"\\now\n\t', when).endswith(
        r' level=warning msg="say \"hi\"\\now\n\t"')
    assert log.go_quote("\x01\x7f é \u200b") == r'"\x01\x7f é \u200b"'
