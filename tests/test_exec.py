"""`exec`: another process in a running container (real containers through the CLI), and
the pure parts: build_exec_plan, the flag overrides, the command-line parsing."""

import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import time

import pytest

from conftest import runtime_env, wait_for
from minirunc import cli
from minirunc import config as cfgmod
from minirunc import plan as planmod
from minirunc.errors import ConfigError, UsageError

from make_bundle import base_config, in_user_namespace, reachable_by_mapped_root


def running(rt, make, args=("sleep", "1000"), edit=None):
    """A detached container running ``args``; returns (id, bundle, init pid)."""
    bundle = make(list(args), edit=edit)
    cid = rt.new_id()
    r = rt("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    return cid, bundle, rt.state(cid)["pid"]


def no_exec_sockets(rt, cid):
    return not [n for n in os.listdir(os.path.join(rt.root, cid)) if n.startswith("exec-")]


# ------------------------------------------------------------ real containers

def test_exec_joins_the_containers_namespaces_and_mounts(rt, make):
    cid, bundle, init = running(rt, make)
    (bundle / "rootfs" / "etc" / "only-in-container").write_text("inside\n")
    names = ("net", "pid", "mnt", "uts", "ipc")
    script = ("hostname; echo pid=$$; tr '\\0' ' ' </proc/1/cmdline; echo; "
              "cat /etc/only-in-container; for n in %s; do readlink /proc/self/ns/$n; done"
              % " ".join(names))
    r = rt("exec", cid, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "minirunc"
    assert lines[1].startswith("pid=") and lines[1] != "pid=1"
    assert lines[2].strip() == "sleep 1000"
    assert lines[3] == "inside"
    assert lines[4:] == [os.readlink("/proc/%d/ns/%s" % (init, n)) for n in names]
    assert os.readlink("/proc/self/ns/net") not in lines[4:]
    assert no_exec_sockets(rt, cid)


def test_exec_exit_codes(rt, make):
    cid, _, _ = running(rt, make)
    assert rt("exec", cid, "sh", "-c", "exit 7").returncode == 7
    assert rt("exec", cid, "sh", "-c", "kill -9 $$").returncode == 128 + 9
    assert rt("exec", cid, "true").returncode == 0


def test_exec_flags_reach_the_process(rt, make):
    cid, _, _ = running(rt, make)
    r = rt("exec", "--env", "FOO=bar", "-e", "TERM=dumb", "--cwd", "/tmp", "-c", "NET_ADMIN",
           cid, "sh", "-c", "echo $FOO $TERM; pwd; id; grep CapEff /proc/self/status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["bar dumb", "/tmp", "uid=0(root) gid=0(root)"]
    # the bundle's caps (AUDIT_WRITE, KILL, NET_BIND_SERVICE) plus NET_ADMIN (12)
    assert lines[3].split() == ["CapEff:", "%016x" % (1 << 29 | 1 << 5 | 1 << 10 | 1 << 12)]
    r = rt("exec", "-u", "1000:1001", "-g", "5", "-g", "6", cid, "id")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["uid=1000", "gid=1001", "groups=5,6"]
    r = rt("exec", cid, "sh", "-c", "echo $TERM; grep NoNewPrivs /proc/self/status")
    assert r.stdout.split() == ["xterm", "NoNewPrivs:", "1"]   # the config's own process


def test_exec_joins_the_containers_cgroup(rt, make):
    cid, _, init = running(rt, make)
    r = rt("exec", cid, "cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    with open("/proc/%d/cgroup" % init) as f:
        assert r.stdout == f.read()


def test_exec_detached_with_pid_file(rt, make, tmp_path):
    cid, _, init = running(rt, make)
    pid_file = tmp_path / "exec.pid"
    r = rt("exec", "-d", "--pid-file", pid_file, cid, "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    pid = int(pid_file.read_text())
    assert os.readlink("/proc/%d/exe" % pid).endswith("busybox")
    for ns in ("pid", "mnt", "net"):
        assert os.readlink("/proc/%d/ns/%s" % (pid, ns)) == os.readlink("/proc/%d/ns/%s" % (init, ns))
    with open("/proc/%d/cgroup" % pid) as a, open("/proc/%d/cgroup" % init) as b:
        assert a.read() == b.read()
    assert no_exec_sockets(rt, cid)
    r = rt("ps", "--format", "json", cid)
    assert pid in json.loads(r.stdout)


def test_exec_process_file(rt, make, tmp_path):
    cid, _, _ = running(rt, make)
    process = {"args": ["sh", "-c", "echo $X; id -u; pwd"], "cwd": "/tmp",
               "env": ["X=from-file", "PATH=/bin"], "user": {"uid": 7, "gid": 7}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    r = rt("exec", "--process", path, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["from-file", "7", "/tmp"]
    path.write_text(json.dumps(dict(process, args=[])))
    r = rt("exec", "-p", path, cid)
    assert r.returncode == 255
    assert r.stderr.strip() == "minirunc: %s: args: must be a non-empty list of strings" % path


def test_exec_errors_are_one_line_and_leave_nothing(rt, make):
    cid, _, _ = running(rt, make)
    for args, text in ((["nope"], 'process.args[0] "nope": executable file not found in $PATH'),
                       (["-u", "abc", cid, "true"], '--user "abc"'),
                       (["-c", "CAP_NOPE", cid, "true"], '--cap "CAP_NOPE": unknown capability'),
                       (["--cwd", "rel", cid, "true"], "--cwd: must be an absolute path"),
                       (["-t", "-d", cid, "true"], "--console-socket"),
                       (["--cwd", "/nowhere", cid, "true"], 'process.cwd "/nowhere"')):
        r = rt("exec", *(args if args[0].startswith("-") else [cid] + args))
        assert r.returncode == 255, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and text in r.stderr, (args, r.stderr)
        assert no_exec_sockets(rt, cid)
    assert rt.state(cid)["status"] == "running"


def test_exec_in_stopped_paused_and_missing_containers(rt, make):
    cid, _, _ = running(rt, make, args=("true",))
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    r = rt("exec", cid, "true")
    assert r.returncode == 255
    assert r.stderr.strip() == "minirunc: container %s: cannot exec in a stopped container" % cid
    r = rt("exec", "nonexistent", "true")
    assert r.returncode == 255 and len(r.stderr.splitlines()) == 1 and "does not exist" in r.stderr

    cid, _, _ = running(rt, make)
    if rt("pause", cid).returncode == 0:
        r = rt("exec", cid, "true")
        assert r.returncode == 255 and "cannot exec in a paused container" in r.stderr
        assert rt("resume", cid).returncode == 0
    assert rt("exec", cid, "true").returncode == 0


def test_exec_tty_in_the_foreground(rt, make):
    cid, _, _ = running(rt, make)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(rt.cmd("exec", "-t", cid, "sh", "-c", "tty; stty size; exit 3"),
                            stdin=slave, stdout=slave, stderr=slave, env=runtime_env(),
                            start_new_session=True)
    try:
        out = b""
        end = time.monotonic() + 20
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=20) == 3, out
        assert b"/dev/pts/" in out and b"33 101" in out, out
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_exec_in_a_user_namespace(rt, make):
    bundle = reachable_by_mapped_root(make(["sleep", "1000"], edit=in_user_namespace))
    cid = rt.new_id()
    r = rt("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    init = rt.state(cid)["pid"]
    r = rt("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] == os.readlink("/proc/%d/ns/user" % init)


# ------------------------------------------------------------------ pure parts

def _config(tmp_path, **process):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    data = base_config(["sleep", "1"])
    data["process"].update(process)
    data["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    return cfgmod.parse_config(data, str(tmp_path))


def test_build_exec_plan_records(tmp_path):
    config = _config(tmp_path)
    proc = cfgmod.exec_process(config.process, ["ls", "-l"], cwd="/tmp", env=["A=1"])
    namespaces = {"mount": "/proc/9/ns/mnt", "user": "/proc/9/ns/user", "pid": "/proc/9/ns/pid",
                  "network": "/proc/9/ns/net"}
    plan = planmod.build_exec_plan(proc, config.linux.seccomp, namespaces, preserve_fds=2)
    names = plan.names()
    joins = [values for name, values in plan.records if name == "NS_JOIN"]
    assert joins == [(planmod.CLONE_FLAGS["user"], "/proc/9/ns/user"),
                     (planmod.CLONE_FLAGS["network"], "/proc/9/ns/net"),
                     (planmod.CLONE_FLAGS["pid"], "/proc/9/ns/pid"),
                     (planmod.CLONE_FLAGS["mount"], "/proc/9/ns/mnt")]
    for absent in ("NS_NEW", "ROOTFS", "MOUNT", "DEVICE", "DEV_SETUP", "SYMLINK", "SYSCTL",
                   "MASKED", "READONLY", "HOSTNAME", "TERMINAL"):
        assert absent not in names
    for present in ("RLIMIT", "CAPS", "USER", "NO_NEW_PRIVS", "SECCOMP_INIT", "SECCOMP_RULE",
                    "CWD", "PRESERVE_FDS"):
        assert present in names
    assert not plan.new_userns and not plan.clone_flags and not plan.terminal
    record = dict((n, v) for n, v in plan.records if n in ("CWD", "PRESERVE_FDS"))
    assert record == {"CWD": ("/tmp",), "PRESERVE_FDS": (2,)}
    assert [v[0] for n, v in plan.records if n == "ARG"] == ["ls", "-l"]
    assert [v[0] for n, v in plan.records if n == "ENV"][-1] == "A=1"
    assert plan.preserve_fds == 2
    plan.encode()   # the wire format accepts it


def test_build_exec_plan_terminal_and_no_namespaces(tmp_path):
    config = _config(tmp_path)
    proc = cfgmod.exec_process(config.process, ["sh"], terminal=True)
    plan = planmod.build_exec_plan(proc, None, {})
    assert plan.terminal and "TERMINAL" in plan.names()
    assert "NS_JOIN" not in plan.names() and "SECCOMP_INIT" not in plan.names()
    with pytest.raises(ValueError):
        planmod.build_exec_plan(proc, None, {"bogus": "/x"})


def test_exec_process_overrides(tmp_path):
    config = _config(tmp_path, terminal=True)
    base = config.process
    proc = cfgmod.exec_process(base, ["id"], env=["TERM=dumb", "NEW=1"], user="5:6",
                               additional_gids=["7"], cap_add=["net_admin", "CAP_SYS_TIME"],
                               no_new_privs=True)
    assert proc.args == ["id"] and not proc.terminal
    assert proc.env == [base.env[0], "TERM=dumb", "NEW=1"]
    assert (proc.user.uid, proc.user.gid, proc.user.additional_gids) == (5, 6, [7])
    for name in ("bounding", "effective", "permitted", "inheritable"):
        assert {"CAP_NET_ADMIN", "CAP_SYS_TIME"} <= set(getattr(proc.capabilities, name))
    assert "CAP_NET_ADMIN" not in proc.capabilities.ambient
    assert proc.no_new_privileges
    # the container's own process is untouched
    assert base.args == ["sleep", "1"] and base.terminal and base.user.uid == 0
    assert "CAP_NET_ADMIN" not in base.capabilities.bounding and base.env[-1] == "TERM=xterm"
    assert cfgmod.exec_process(base, ["id"], user="9").user.gid == 0
    for kwargs, text in (({"user": "x"}, '--user "x"'), ({"user": "1:-2"}, '--user "1:-2"'),
                         ({"additional_gids": ["a"]}, "--additional-gids"),
                         ({"cap_add": ["CAP_NOPE"]}, "--cap"), ({"env": ["NOEQ"]}, "--env")):
        with pytest.raises(UsageError) as e:
            cfgmod.exec_process(base, ["id"], **kwargs)
        assert text in str(e.value)
    with pytest.raises(ConfigError) as e:
        cfgmod.exec_process(base, ["id"], cwd="rel")
    assert str(e.value) == "--cwd: must be an absolute path"


def test_load_process_file_errors_name_the_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": "/", "user": {"uid": -1}}))
    with pytest.raises(ConfigError) as e:
        cfgmod.load_process_file(str(path), [])
    assert str(e.value).startswith("%s: user.uid: must be an integer" % path)
    with pytest.raises(ConfigError) as e:
        cfgmod.load_process_file(str(tmp_path / "missing.json"), [])
    assert "missing.json" in str(e.value) and "no such file" in str(e.value)


def test_exec_command_line():
    command, options, positionals = cli.parse_command(
        ["exec", "-e", "A=1", "--env=B=2", "-g", "5", "-t", "cid", "sh", "-c", "echo -e x"])
    assert command == "exec"
    assert options == {"env": ["A=1", "B=2"], "additional-gids": ["5"], "tty": True}
    assert positionals == ["cid", ("sh", "-c", "echo -e x")]
    assert cli.parse_command(["exec", "cid"])[2] == ["cid"]
    with pytest.raises(UsageError):
        cli.parse_command(["exec"])


def test_exec_forwards_signals_in_the_foreground(rt, make, tmp_path):
    cid, _, _ = running(rt, make)
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen(rt.cmd("exec", cid, "sh", "-c",
                                       "trap 'echo got-usr1' USR1; echo ready; "
                                       "while true; do sleep 0.05; done"),
                                stdout=f, stderr=subprocess.STDOUT, env=runtime_env())
    try:
        assert wait_for(lambda: "ready" in out.read_text()), out.read_text()
        proc.send_signal(10)   # USR1: trapped inside
        assert wait_for(lambda: "got-usr1" in out.read_text())
        proc.terminate()
        assert proc.wait(timeout=10) == 128 + 15
    finally:
        proc.kill()


def test_exec_in_a_created_container(rt, make):
    cid = rt.new_id()
    assert rt("create", "--bundle", make(["sleep", "1000"]), cid).returncode == 0
    r = rt("exec", cid, "hostname")
    assert r.returncode == 0 and r.stdout == "minirunc\n", r.stderr
    assert rt.state(cid)["status"] == "created"


def _cgroup_record(rt, cid):
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        return json.load(f)["cgroup"]


def _cgroup_lines(pid):
    """{controllers field: path} of /proc/<pid>/cgroup ("" is the cgroup2 line)."""
    with open("/proc/%d/cgroup" % pid) as f:
        return {fields[1]: fields[2] for fields in
                (line.split(":", 2) for line in f.read().splitlines())}


def _procs(directory):
    with open(os.path.join(directory, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def _make_sub_cgroup(parent, name):
    """What a caller does before `exec --cgroup`: make the sub-cgroup (a v1 cpuset one
    starts with no cpus and mems)."""
    sub = os.path.join(parent, name)
    os.mkdir(sub)
    for key in ("cpuset.cpus", "cpuset.mems"):
        if os.path.exists(os.path.join(sub, key)):
            with open(os.path.join(parent, key)) as f:
                value = f.read().strip()
            with open(os.path.join(sub, key), "w") as f:
                f.write(value)


def test_exec_into_a_sub_cgroup(rt, make, tmp_path):
    cid, _, init = running(rt, make)
    record = _cgroup_record(rt, cid)
    if record.get("driver") in (None, "none"):
        pytest.skip("no cgroup filesystem on this host")
    paths = record.get("paths") or {}
    dirs = sorted(set(paths.values()) | ({record["unified"]} if record.get("unified") else set()))
    for d in dirs:
        _make_sub_cgroup(d, "sub")
    pid_file = tmp_path / "exec.pid"
    r = rt("exec", "-d", "--cgroup", "sub", "--pid-file", pid_file, cid, "sleep", "300")
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    for d in dirs:   # every hierarchy of the container: its sub-cgroup, not the container's
        assert pid in _procs(os.path.join(d, "sub")), d
        assert pid not in _procs(d)
    init_lines, exec_lines = _cgroup_lines(init), _cgroup_lines(pid)
    assert [k for k in init_lines if exec_lines[k] == init_lines[k] + "/sub"]

    if "memory" in paths and "pids" in paths:
        _make_sub_cgroup(paths["memory"], "only")
        pid_file.unlink()
        r = rt("exec", "-d", "--cgroup", "memory:only", "--pid-file", pid_file, cid,
               "sleep", "300")
        assert r.returncode == 0, r.stderr
        pid = int(pid_file.read_text())
        assert pid in _procs(os.path.join(paths["memory"], "only"))
        assert pid in _procs(paths["pids"])    # the other hierarchies: the container's own

    # delete removes the sub-cgroups with the container's (runc does too)
    r = rt("delete", "--force", cid)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert not [d for d in dirs if os.path.exists(d)]


def test_exec_cgroup_errors(rt, make):
    cid, _, _ = running(rt, make)
    record = _cgroup_record(rt, cid)
    if record.get("driver") in (None, "none"):
        pytest.skip("no cgroup filesystem on this host")
    before = sorted(json.loads(rt("ps", "--format", "json", cid).stdout))
    for args, problem in (
            (["--cgroup", "nosuch"], "does not exist (exec joins an existing sub-cgroup; "
                                     "create it first)"),
            (["--cgroup", "../escape"], 'must name a sub-cgroup inside the container\'s cgroup'),
            (["--cgroup", "bogus:sub"], "controller bogus is not one of the container's"),
            (["--cgroup", "a", "--cgroup", "b"], "only a single such --cgroup is allowed")):
        r = rt("exec", *args, cid, "true")
        assert r.returncode == 255, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and problem in r.stderr, (args, r.stderr)
    assert no_exec_sockets(rt, cid)
    assert sorted(json.loads(rt("ps", "--format", "json", cid).stdout)) == before


def test_exec_ignore_paused_runs_after_resume(rt, make, tmp_path):
    cid, _, _ = running(rt, make)
    if rt("pause", cid).returncode != 0:
        pytest.skip("no freezer on this host")
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen(rt.cmd("exec", "--ignore-paused", cid, "echo", "after-resume"),
                                env=runtime_env(), stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)
    try:
        time.sleep(1)
        # It joined the frozen cgroup: nothing ran yet.
        assert proc.poll() is None and out.read_text() == ""
        assert rt.state(cid)["status"] == "paused"
        assert rt("resume", cid).returncode == 0
        assert proc.wait(timeout=30) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.read_text() == "after-resume\n"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_exec_cpu_affinity_final(rt, make):
    """process.execCPUAffinity.final holds for the init and for what exec starts."""
    def edit(config):
        config["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}
    cid, _, init = running(rt, make, edit=edit)
    with open("/proc/%d/status" % init) as f:
        assert "Cpus_allowed_list:\t1\n" in f.read()
    r = rt("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Cpus_allowed_list:", "1"]
