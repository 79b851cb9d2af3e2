"""Hooks with real containers: every kind runs at its moment, in its namespaces, with the
state on stdin; a failing, missing or slow hook stops create/start with one line and
leaves nothing behind; poststart and poststop failures only warn."""

import json
import os

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

ALL_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop")
HOST_SIDE = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")

# A host-side hook: appends "<kind> <mount ns> <hostname> <host marker seen> <stdin>" to $LOG.
RECORDER = """#!/bin/sh
seen=no
[ -e "$MARKER" ] && seen=yes
echo "$1 $(readlink /proc/self/ns/mnt) $(hostname) $seen $(cat)" >> "$LOG"
"""


def recorder(tmp_path):
    script = tmp_path / "record.sh"
    script.write_text(RECORDER)
    marker = tmp_path / "host-marker"
    marker.write_text("")
    env = ["LOG=%s" % (tmp_path / "hooks.log"), "MARKER=%s" % marker]
    return lambda kind: {"path": "/bin/sh", "args": ["sh", str(script), kind], "env": env}


def with_hooks(hooks):
    def edit(config):
        config["hooks"] = hooks
        config["annotations"] = {"org.example.hooked": "yes"}
    return edit


def log_lines(tmp_path):
    path = tmp_path / "hooks.log"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        kind, mnt, hostname, seen, state = line.split(" ", 4)
        entries.append({"kind": kind, "mnt": mnt, "hostname": hostname, "seen_host": seen,
                        "state": json.loads(state)})
    return entries


def host_ns():
    return os.readlink("/proc/self/ns/mnt")


def state_dirs(rt):
    return os.listdir(rt.root) if os.path.isdir(rt.root) else []


# A startContainer hook: its path resolves in the container; it leaves its findings in
# the container's /dev/shm for the process to print.
START_HOOK = {"path": "/bin/sh",
              "args": ["sh", "-c", "echo start-hook $(hostname) $(cat) > /dev/shm/hook; "
                       "[ -e \"$MARKER\" ] && echo start-hook-sees-host >> /dev/shm/hook; "
                       "true"]}


def test_every_kind_runs_in_order_with_the_state(rt, make, tmp_path):
    hook = recorder(tmp_path)
    hooks = {kind: [hook(kind)] for kind in HOST_SIDE}
    start = dict(START_HOOK, env=["MARKER=%s" % (tmp_path / "host-marker")])
    hooks["startContainer"] = [start]
    cid = rt.new_id("hk")
    r = rt.run(make(["sh", "-c", "cat /dev/shm/hook; echo container-runs"],
                    edit=with_hooks(hooks)), cid=cid)
    assert r.returncode == 0, r.stderr

    entries = log_lines(tmp_path)
    assert [e["kind"] for e in entries] == list(HOST_SIDE)
    by_kind = {e["kind"]: e for e in entries}
    pid = by_kind["prestart"]["state"]["pid"]
    assert pid > 1
    for kind, status in (("prestart", "created"), ("createRuntime", "created"),
                         ("createContainer", "created"), ("poststart", "running"),
                         ("poststop", "stopped")):
        state = by_kind[kind]["state"]
        assert state["id"] == cid and state["status"] == status, (kind, state)
        assert state["bundle"] == str(tmp_path / "bundle1")
        assert state["annotations"] == {"org.example.hooked": "yes"}
        assert state["ociVersion"] == "1.0.2"
        if status != "stopped":
            assert state["pid"] == pid, (kind, state)
    assert "pid" not in by_kind["poststop"]["state"]

    # Runtime namespace for the runtime's hooks; the container's mount and uts namespaces,
    # with host paths still resolving (before pivot_root), for createContainer.
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert by_kind[kind]["mnt"] == host_ns() and by_kind[kind]["hostname"] != "minirunc"
    assert by_kind["createContainer"]["mnt"] != host_ns()
    assert by_kind["createContainer"]["hostname"] == "minirunc"
    assert by_kind["createContainer"]["seen_host"] == "yes"

    # startContainer: inside the container after pivot_root (the host marker is out of
    # sight), status created, before the process itself.
    lines = r.stdout.splitlines()
    assert lines[0].startswith("start-hook minirunc {"), r.stdout
    start_state = json.loads(lines[0].split(" ", 2)[2])
    assert start_state["status"] == "created" and start_state["pid"] == pid
    assert "start-hook-sees-host" not in r.stdout
    assert lines[-1] == "container-runs"


def test_create_start_delete_run_each_kind_once(rt, make, tmp_path):
    hook = recorder(tmp_path)
    hooks = {kind: [hook(kind)] for kind in HOST_SIDE}
    cid = rt.new_id("hk")
    bundle = make(["sleep", "30"], edit=with_hooks(hooks))
    assert rt("create", "--bundle", bundle, cid).returncode == 0
    assert [e["kind"] for e in log_lines(tmp_path)] == ["prestart", "createRuntime",
                                                          "createContainer"]
    assert rt("start", cid).returncode == 0
    assert [e["kind"] for e in log_lines(tmp_path)][-1] == "poststart"
    assert rt("state", cid).returncode == 0   # state runs no hook
    assert rt("kill", cid, "KILL").returncode == 0
    r = rt("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert [e["kind"] for e in log_lines(tmp_path)] == list(HOST_SIDE)


def test_hooks_run_in_config_order_with_args_and_env(rt, make, tmp_path):
    out = tmp_path / "out"
    hooks = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", 'echo "first $0 $1 $GREETING" >> %s' % out,
                                     "zero", "one"], "env": ["GREETING=hello"]},
        {"path": "/bin/sh", "args": ["sh", "-c", 'echo "second env=$(env | grep -c .)" >> %s'
                                     % out], "env": []},
    ]}
    r = rt.run(make(["true"], edit=with_hooks(hooks)))
    assert r.returncode == 0, r.stderr
    first, second = out.read_text().splitlines()
    assert first == "first zero one hello"
    # An explicit empty env is an empty environment (sh adds PWD, SHLVL and the like itself).
    assert int(second.split("=")[1]) <= 3


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_stops_create_and_leaves_nothing(rt, make, tmp_path, kind):
    hook = recorder(tmp_path)
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo no gpu here >&2; exit 3"]}
    hooks = {kind: [failing], "poststop": [hook("poststop")]}
    cid = rt.new_id("hk")
    r = rt("create", "--bundle", make(["true"], edit=with_hooks(hooks)), cid)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1, r.stderr
    assert 'hooks.%s[0] "/bin/sh": exited with status 3' % kind in line
    assert line.endswith("exited with status 3: no gpu here")
    assert state_dirs(rt) == []
    assert not any(cid in p for p in open("/proc/self/mountinfo").read().split())
    # runc runs poststop after a failed create: the container was created, then deleted.
    assert [e["kind"] for e in log_lines(tmp_path)] == ["poststop"]


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_hook_timeout_kills_the_hook(rt, make, kind):
    hooks = {kind: [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    cid = rt.new_id("hk")
    # Well below the hook's 30 s: the timeout, not the hook, ended create.
    r = rt("create", "--bundle", make(["true"], edit=with_hooks(hooks)), cid, timeout=20)
    assert r.returncode == 1
    assert ('hooks.%s[0] "/bin/sleep": did not finish within its timeout of 1 s (killed)'
            % kind) in r.stderr
    assert state_dirs(rt) == []


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_missing_hook_executable(rt, make, tmp_path, kind):
    missing = str(tmp_path / "no-such-hook")
    cid = rt.new_id("hk")
    r = rt("create", "--bundle", make(["true"], edit=with_hooks({kind: [{"path": missing}]})),
           cid)
    assert r.returncode == 1
    assert ('hooks.%s[0] "%s": cannot execute it: no such file or directory (ENOENT)'
            % (kind, missing)) in r.stderr
    assert state_dirs(rt) == []


def test_failing_start_container_hook_fails_start(rt, make, tmp_path):
    hook = recorder(tmp_path)
    hooks = {"startContainer": [{"path": "/bin/false"}], "poststop": [hook("poststop")]}
    cid = rt.new_id("hk")
    assert rt("create", "--bundle", make(["true"], edit=with_hooks(hooks)), cid).returncode == 0
    r = rt("start", cid)
    assert r.returncode == 1
    assert 'hooks.startContainer[0] "/bin/false": exited with status 1' in r.stderr
    assert rt.state(cid)["status"] == "stopped"
    assert rt("delete", cid).returncode == 0
    assert [e["kind"] for e in log_lines(tmp_path)] == ["poststop"]


def test_failing_poststart_and_poststop_only_warn(rt, make, tmp_path):
    hook = recorder(tmp_path)
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 2"]}
    hooks = {"poststart": [failing, hook("poststart")], "poststop": [failing, hook("poststop")]}
    r = rt.run(make(["sh", "-c", "echo ran"], edit=with_hooks(hooks)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"
    assert 'hooks.poststart[0] "/bin/sh": exited with status 2: oops' in r.stderr
    assert 'hooks.poststop[0] "/bin/sh": exited with status 2: oops' in r.stderr
    # The hooks after a failed one still ran.
    assert [e["kind"] for e in log_lines(tmp_path)] == ["poststart", "poststop"]
    assert state_dirs(rt) == []


def test_runtime_hooks_see_no_runtime_fds(rt, make, tmp_path):
    out = tmp_path / "fds"
    hooks = {"createRuntime": [{"path": "/bin/sh",
                                "args": ["sh", "-c", "ls /proc/self/fd > %s" % out]}],
             "createContainer": [{"path": "/bin/sh",
                                  "args": ["sh", "-c", "ls /proc/self/fd >> %s" % out]}]}
    r = rt.run(make(["true"], edit=with_hooks(hooks)))
    assert r.returncode == 0, r.stderr
    # 0-2 and the directory ls reads (3): nothing of the runtime's or the init's.
    listed = out.read_text().split()
    assert listed.count("0") == 2 and set(listed) <= {"0", "1", "2", "3"}, listed
