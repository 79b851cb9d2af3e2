"""Every command and state transition, driven through the real CLI with real containers."""

import fcntl
import json
import os
import signal
import subprocess
import time

from conftest import runtime_env, wait_for


def test_run_true_exits_zero_and_leaves_nothing(rt, make):
    r = rt.run(make(["true"]))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert rt("list", "-q").stdout == ""


def test_run_passes_output_and_exit_code(rt, make):
    r = rt.run(make(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_create_start_state_kill_delete(rt, make, tmp_path):
    bundle = make(["sleep", "100"])
    cid = rt.new_id()
    pid_file = tmp_path / "pid"
    r = rt("create", "--bundle", bundle, "--pid-file", pid_file, cid)
    assert r.returncode == 0, r.stderr
    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["bundle"] == str(bundle)
    assert st["ociVersion"] and st["created"].endswith("Z")
    assert st["pid"] == int(pid_file.read_text()) > 0
    assert os.readlink("/proc/%d/exe" % st["pid"]).startswith("/memfd:minirunc-init")

    assert rt("start", cid).returncode == 0
    st = rt.state(cid)
    assert st["status"] == "running"
    assert os.readlink("/proc/%d/exe" % st["pid"]).endswith("busybox")

    r = rt("start", cid)
    assert r.returncode != 0 and "cannot start a container that is running" in r.stderr

    r = rt("delete", cid)
    assert r.returncode != 0 and "--force" in r.stderr

    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    assert rt.state(cid)["pid"] == 0
    r = rt("kill", cid, "KILL")
    assert r.returncode != 0 and "not running" in r.stderr
    assert rt("delete", cid).returncode == 0
    r = rt("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_delete_of_created_container_kills_its_init(rt, make):
    cid = rt.new_id()
    assert rt("create", "--bundle", make(["true"]), cid).returncode == 0
    pid = rt.state(cid)["pid"]
    assert rt("delete", cid).returncode == 0
    assert wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                    open("/proc/%d/stat" % pid).read().split(")")[1].split()[0] == "Z")


def test_delete_force_running(rt, make):
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", make(["sleep", "100"]), cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    assert rt("delete", "--force", cid).returncode == 0
    assert rt("list", "-q").stdout == ""


def test_list_formats(rt, make):
    cid = rt.new_id()
    assert rt("list", "--format", "json").stdout.strip() == "null"
    assert rt("create", "--bundle", make(["true"]), cid).returncode == 0
    table = rt("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == cid and table[1].split()[2] == "created"
    listed = json.loads(rt("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [cid]
    assert rt("list", "-q").stdout == cid + "\n"


def test_kill_signal_spellings(rt, make):
    script = ("trap 'echo got-usr1' USR1; trap 'echo got-usr2' USR2; trap 'echo got-hup' HUP; "
              "echo ready; while true; do sleep 0.05; done")
    bundle = make(["sh", "-c", script])
    cid = rt.new_id()
    out = bundle / "out.txt"
    with open(out, "w") as f:
        r = subprocess.run(rt.cmd("run", "-d", "--bundle", bundle, cid), stdout=f,
                           stderr=subprocess.STDOUT, env=runtime_env(), timeout=30)
    assert r.returncode == 0, out.read_text()
    assert wait_for(lambda: "ready" in out.read_text())
    for spelling in ("USR1", "SIGUSR2", "1"):
        assert rt("kill", cid, spelling).returncode == 0
    assert wait_for(lambda: all(w in out.read_text() for w in ("got-usr1", "got-usr2", "got-hup")))
    r = rt("kill", cid, "NOPE")
    assert r.returncode != 0 and "unknown signal" in r.stderr
    assert rt("kill", cid, "9").returncode == 0
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")


def test_run_exit_code_when_killed(rt, make):
    cid = rt.new_id()
    proc = subprocess.Popen(rt.cmd("run", "--bundle", make(["sleep", "100"]), cid),
                            env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: rt("state", cid).returncode == 0 and rt.state(cid)["status"] == "running")
    assert rt("kill", cid, "SIGKILL").returncode == 0
    assert proc.wait(timeout=20) == 128 + 9
    assert rt("list", "-q").stdout == ""  # run deletes its container


def test_run_forwards_signals(rt, make):
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done"
    cid = rt.new_id()
    proc = subprocess.Popen(rt.cmd("run", "--bundle", make(["sh", "-c", script]), cid),
                            env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 7
    assert proc.stdout.read() == "got-term\n"


def test_create_returns_while_stdout_is_a_pipe(rt, make):
    cid = rt.new_id()
    proc = subprocess.Popen(rt.cmd("create", "--bundle", make(["sh", "-c", "echo hi; sleep 100"]),
                                   cid), env=runtime_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    # The container's init holds the pipe open; create itself must still return.
    assert proc.wait(timeout=20) == 0
    assert rt.state(cid)["status"] == "created"
    assert rt("start", cid).returncode == 0
    assert proc.stdout.readline() == b"hi\n"
    rt("delete", "--force", cid)


def test_run_detached_returns_with_pipe(rt, make):
    cid = rt.new_id()
    proc = subprocess.Popen(rt.cmd("run", "-d", "--bundle", make(["sleep", "100"]), cid),
                            env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.wait(timeout=20) == 0
    assert rt.state(cid)["status"] == "running"


def test_bare_minirunc_runs_the_bundle_in_cwd(rt, make, tmp_path):
    bundle = make(["sh", "-c", "echo hello from $(hostname)"])
    named = tmp_path / "myblog"
    os.rename(bundle, named)
    r = rt(cwd=named)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from minirunc\n"


def test_bare_minirunc_outside_a_bundle(rt, tmp_path):
    r = rt(cwd=tmp_path)
    assert r.returncode == 1
    assert "no config.json in %s" % tmp_path in r.stderr


def test_commands_on_one_container_are_serialized(rt, make):
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", make(["sleep", "100"]), cid).returncode == 0
    fd = os.open(os.path.join(rt.root, cid), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = subprocess.Popen(rt.cmd("delete", "--force", cid), env=runtime_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert proc.poll() is None, "delete ran while another command held the lock"
    finally:
        os.close(fd)
    assert proc.wait(timeout=20) == 0
    assert rt("list", "-q").stdout == ""


def test_state_file_is_atomic_json_with_start_time(rt, make):
    cid = rt.new_id()
    assert rt("create", "--bundle", make(["true"]), cid).returncode == 0
    path = os.path.join(rt.root, cid, "state.json")
    data = json.load(open(path))
    assert data["pid_start"] > 0
    assert [n for n in os.listdir(os.path.join(rt.root, cid)) if ".tmp" in n] == []
    # A recorded start time that does not match the live process means pid reuse: stopped.
    # (state.json and the init record beside it both record it; they must agree.)
    record_path = os.path.join(rt.root, cid, "init")
    record = open(record_path).read()
    for delta in (1, 0):
        with open(path, "w") as f:
            json.dump(dict(data, pid_start=data["pid_start"] + delta), f)
        with open(record_path, "w") as f:
            f.write(record.replace("pid_start=%d\n" % data["pid_start"],
                                   "pid_start=%d\n" % (data["pid_start"] + delta)))
        assert rt.state(cid)["status"] == ("stopped" if delta else "created")


def test_version_has_three_lines(rt):
    r = rt("--version")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 3
    assert lines[0].startswith("minirunc version ")
    assert lines[1].startswith("commit: ") and lines[2].startswith("spec: 1.")


def test_log_file_json(rt, tmp_path):
    log = tmp_path / "log.json"
    r = rt("--log", log, "--log-format", "json", "state", "nope")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nope" in entry["msg"] and entry["time"]


def test_log_file_gets_command_line_errors_too(rt, tmp_path):
    # containerd reads --log to explain a failed call, even a wrong command line
    log = tmp_path / "log.json"
    r = rt("--log", log, "--log-format", "json", "checkpoint", "--no-such-flag", "some-id")
    assert r.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "unknown flag --no-such-flag" in entry["msg"]
