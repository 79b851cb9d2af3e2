"""checkpoint and restore with CRIU (build/criu/criu, made by `make criu`).

The counter container writes an increasing number to a bind-mounted host file every
~0.1 s: a checkpoint stops it, a restore makes it count on from where it stood.  Its
stdio is /dev/null (a host file outside its view: declared external at dump and
re-attached at restore).
"""

import fcntl
import json
import os
import select
import socket
import subprocess
import tempfile
import termios
import threading
import time

import pytest

from conftest import REPO, runtime_env, wait_for

CRIU = os.path.join(REPO, "build", "criu", "criu")
REQUIRED = os.environ.get("MINIRUNC_REQUIRE_BINARY") or os.environ.get("MINIRUNC_BIN")

if not os.access(CRIU, os.X_OK):
    if REQUIRED:
        raise RuntimeError("build/criu/criu is missing: `make criu` makes it (make test does)")
    pytest.skip("build/criu/criu is missing: run `make criu` (Debian 13's CRIU 4.1.1; "
                "Debian 12's 3.17 fails on this kernel)", allow_module_level=True)

COUNTER = ("i=0; while true; do i=$((i+1)); echo $i > /data/count; "
           "sleep 0.1; done")


def criu(rt, *args, cwd=None):
    """minirunc --criu build/criu/criu ARGS, with stdio the restored container may keep:
    /dev/null and files opened plainly.  CRIU reopens an external file through
    /proc/self/fd with its original flags, so a file opened with O_NOFOLLOW (Python's
    tempfile, which the `rt` fixture uses for output) cannot be restored (ELOOP)."""
    directory = tempfile.mkdtemp(prefix="criu-io-")
    paths = [os.path.join(directory, name) for name in ("out", "err")]
    fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) for p in paths]
    try:
        proc = subprocess.run(rt.cmd("--criu", CRIU, *args), cwd=cwd, env=runtime_env(),
                              stdin=subprocess.DEVNULL, stdout=fds[0], stderr=fds[1],
                              timeout=120)
        out, err = (open(p, errors="replace").read() for p in paths)
    finally:
        for fd, path in zip(fds, paths):
            os.close(fd)
            os.unlink(path)
        os.rmdir(directory)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def counter(make, tmp_path):
    """(bundle, data dir): the counter container's bundle and its bind-mounted host dir."""
    data = tmp_path / "data"
    data.mkdir()

    def edit(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                 "options": ["rbind", "rw"]})
    return make(["sh", "-c", COUNTER], edit=edit), data


def count(data):
    """The counter's number; the shell truncates the file before it writes, so an empty
    read is retried."""
    for _ in range(50):
        try:
            with open(os.path.join(data, "count")) as f:
                text = f.read().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return 0


def start_counter(rt, bundle, data, cid=None):
    cid = cid or rt.new_id("cr")
    r = criu(rt, "run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: count(data) >= 3)
    return cid


def cgroup_dirs(cid):
    """Every cgroup directory named after the container (v1 hierarchies and cgroup2)."""
    found = []
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if cid in dirs:
            found.append(os.path.join(base, cid))
        if base.count("/") > 4:
            dirs[:] = []
    return found


def assert_stopped_counting(data):
    before = count(data)
    time.sleep(0.4)
    assert count(data) == before, "the counter still runs after the checkpoint"
    return before


def assert_counts_on_from(data, stood):
    """After a restore the counter goes on from ``stood`` (not from 1)."""
    assert wait_for(lambda: count(data) != stood, timeout=10), "the counter did not resume"
    first = count(data)
    assert stood < first <= stood + 5, (stood, first)
    assert wait_for(lambda: count(data) >= first + 3, timeout=10)


def test_checkpoint_removes_and_restore_counts_on(rt, counter, tmp_path):
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    pid = rt.state(cid)["pid"]
    image = tmp_path / "image"
    started = time.monotonic()
    r = criu(rt, "checkpoint", "--image-path", image, cid)
    dumped = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert (image / "inventory.img").exists()
    # gone: no state, no cgroup, no process
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert cgroup_dirs(cid) == []
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    assert rt("state", cid).returncode == 1
    stood = assert_stopped_counting(data)

    started = time.monotonic()
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    restored = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    state = rt.state(cid)
    assert state["status"] == "running" and state["pid"] > 0
    assert cgroup_dirs(cid)
    assert_counts_on_from(data, stood)
    # the restored container is an ordinary one: exec, kill, delete
    r = rt("exec", cid, "cat", "/data/count")
    assert r.returncode == 0 and int(r.stdout) > stood
    assert rt("delete", "--force", cid).returncode == 0
    assert cgroup_dirs(cid) == []
    assert not os.path.exists(os.path.join(rt.root, cid))
    print("checkpoint %.3f s, restore %.3f s" % (dumped, restored))


def test_restore_runs_the_runtime_hooks_with_status_created(rt, counter, tmp_path):
    """prestart and createRuntime hooks of a restore read the state as create's do: status
    `created` and the restored process's pid."""
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    assert criu(rt, "checkpoint", "--image-path", image, cid).returncode == 0
    log = tmp_path / "hooks.log"
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "cat >> %s; echo >> %s"
                                                             % (log, log)]}]
                       for kind in ("prestart", "createRuntime")}
    with open(config_path, "w") as f:
        json.dump(config, f)
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(s["id"], s["status"]) for s in seen] == [(cid, "created")] * 2
    assert seen[0]["pid"] > 0 and seen[0]["pid"] == seen[1]["pid"]
    assert_counts_on_from(data, count(data))
    assert rt("delete", "--force", cid).returncode == 0


def test_relative_image_path_and_work_path(rt, counter, tmp_path):
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    r = criu(rt, "checkpoint", "--image-path", "img", "--work-path", "work", cid, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "img" / "inventory.img").exists()
    assert (tmp_path / "work" / "dump.log").exists()
    stood = assert_stopped_counting(data)
    r = criu(rt, "restore", "-d", "--image-path", "img", "--work-path", "work",
             "--bundle", bundle, cid, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "work" / "restore.log").exists()
    assert_counts_on_from(data, stood)


def test_leave_running_then_restore_same_id_after_delete(rt, counter, tmp_path):
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    r = criu(rt, "checkpoint", "--leave-running", "--image-path", image, cid)
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "running"
    now = count(data)
    assert wait_for(lambda: count(data) >= now + 3), "--leave-running stopped the counter"
    assert rt("delete", "--force", cid).returncode == 0
    stood = assert_stopped_counting(data)
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "running"
    # the image's counter stood lower than where the deleted one stopped
    assert wait_for(lambda: count(data) < stood, timeout=10)
    assert wait_for(lambda: count(data) >= 3)


def test_foreground_restore_waits_and_exits_with_the_code(rt, counter, tmp_path):
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    assert criu(rt, "checkpoint", "--image-path", image, cid).returncode == 0
    # The counter's stdout and stderr were plain files: the restore's must be files too
    # (CRIU checks that an external file is of the same kind).
    out = os.open(str(tmp_path / "fg.out"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    proc = subprocess.Popen(rt.cmd("--criu", CRIU, "restore", "--image-path", image,
                                   "--bundle", bundle, cid),
                            env=runtime_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    os.close(out)
    try:
        assert wait_for(lambda: rt("state", cid).returncode == 0 and
                        rt.state(cid)["status"] == "running", timeout=20), \
            (tmp_path / "fg.out").read_text()
        assert proc.poll() is None
        assert rt("kill", cid, "KILL").returncode == 0
        assert proc.wait(timeout=20) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.exists(os.path.join(rt.root, cid))   # removed like `run`
    assert cgroup_dirs(cid) == []


def _console_listener(path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(30)
    got = {}

    def accept():
        try:
            conn, _ = listener.accept()
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
            conn.close()
            got["fd"] = fds[0] if fds else None
        except OSError as e:
            got["error"] = e
        finally:
            listener.close()

    thread = threading.Thread(target=accept)
    thread.start()
    return thread, got


def _talk(master, line, want, timeout=10):
    os.write(master, line)
    out = b""
    end = time.monotonic() + timeout
    while want not in out and time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
    return out


def test_terminal_container_restored_with_a_console_socket(rt, make, tmp_path):
    bundle = make(["sh"], terminal=True)
    cid = rt.new_id("crt")
    thread, got = _console_listener(tmp_path / "c1.sock")
    r = rt("run", "-d", "--console-socket", tmp_path / "c1.sock", "--bundle", bundle, cid)
    thread.join()
    assert r.returncode == 0, r.stderr
    master = got["fd"]
    assert b"42" in _talk(master, b"x=40; echo $((x+2))\n", b"42")
    image = tmp_path / "image"
    r = criu(rt, "checkpoint", "--image-path", image, cid)
    os.close(master)
    assert r.returncode == 0, r.stderr
    assert rt("state", cid).returncode == 1

    thread, got = _console_listener(tmp_path / "c2.sock")
    r = criu(rt, "restore", "-d", "--console-socket", tmp_path / "c2.sock",
             "--image-path", image, "--bundle", bundle, cid)
    thread.join()
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "running"
    master = got["fd"]
    try:
        # the shell kept its variable: the same process, restored
        assert b"43" in _talk(master, b"echo $((x+3))\n", b"43")
    finally:
        os.close(master)


def test_terminal_container_restored_as_a_shell_job(rt, make, tmp_path):
    """--shell-job: the container's tty is external; the restore gives it the restoring
    process's own terminal (stdin), and the foreground restore exits with its code."""
    bundle = make(["sh"], terminal=True)
    cid = rt.new_id("crs")
    thread, got = _console_listener(tmp_path / "c1.sock")
    r = rt("run", "-d", "--console-socket", tmp_path / "c1.sock", "--bundle", bundle, cid)
    thread.join()
    assert r.returncode == 0, r.stderr
    master = got["fd"]
    _talk(master, b"x=40\n", b"x=40")
    image = tmp_path / "image"
    r = criu(rt, "checkpoint", "--shell-job", "--image-path", image, cid)
    os.close(master)
    assert r.returncode == 0, r.stderr

    # A foreground restore from a shell: its terminal (here a new pty) is the controlling
    # tty of its session, which the restored shell joins.
    new_master, slave = os.openpty()

    def session_with_tty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(rt.cmd("--criu", CRIU, "restore", "--shell-job",
                                   "--image-path", image, "--bundle", bundle, cid),
                            env=runtime_env(), stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=session_with_tty)
    os.close(slave)
    try:
        assert wait_for(lambda: rt("state", cid).returncode == 0 and
                        rt.state(cid)["status"] == "running", timeout=20)
        assert b"43" in _talk(new_master, b"echo $((x+3))\n", b"43")
        os.write(new_master, b"exit 7\n")
        assert proc.wait(timeout=20) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(new_master)
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_pre_dump_gives_one_clear_line(rt, counter, tmp_path):
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    r = criu(rt, "checkpoint", "--pre-dump", "--image-path", tmp_path / "pre", cid)
    if r.returncode == 0:
        pytest.skip("this kernel tracks memory changes: --pre-dump works here")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--pre-dump" in r.stderr and "soft-dirty" in r.stderr
    assert rt.state(cid)["status"] == "running"


def test_bad_inputs_give_one_clear_line(rt, counter, tmp_path, make):
    bundle, data = counter

    def one_line(r, *words):
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        for word in words:
            assert word in lines[0], lines[0]

    # restore from an image path that does not exist
    one_line(criu(rt, "restore", "-d", "--image-path", tmp_path / "nope", "--bundle", bundle,
                  rt.new_id()), "--image-path", "nope")
    # containerd's spelling of the flags (one dash) is accepted
    one_line(criu(rt, "restore", "-detach", "-no-subreaper", "-image-path", tmp_path / "nope",
                  "-bundle", bundle, rt.new_id()), "--image-path", "nope")
    # restore from an empty directory
    (tmp_path / "empty").mkdir()
    one_line(criu(rt, "restore", "-d", "--image-path", tmp_path / "empty", "--bundle", bundle,
                  rt.new_id()), "--image-path", "inventory.img")
    # checkpoint of a container that does not exist
    one_line(criu(rt, "checkpoint", "--image-path", tmp_path / "i0", "nope-id"), "nope-id")
    # a CRIU that is not there
    cid = start_counter(rt, bundle, data)
    one_line(rt("--criu", tmp_path / "no-criu", "checkpoint", "--image-path", tmp_path / "i1",
                cid), "--criu")
    assert rt.state(cid)["status"] == "running"
    # restore under an id that exists
    image = tmp_path / "image"
    assert criu(rt, "checkpoint", "--leave-running", "--image-path", image, cid).returncode == 0
    one_line(criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid),
             cid, "already exists")
    assert rt.state(cid)["status"] == "running"
    # checkpoint of a stopped container
    done = make(["true"])
    stopped = rt.new_id()
    assert rt("run", "-d", "--bundle", done, stopped).returncode == 0
    assert wait_for(lambda: rt.state(stopped)["status"] == "stopped")
    one_line(criu(rt, "checkpoint", "--image-path", tmp_path / "i2", stopped),
             stopped, "stopped")
    # a wrong --manage-cgroups-mode
    one_line(criu(rt, "checkpoint", "--manage-cgroups-mode", "loose", "--image-path",
                  tmp_path / "i3", cid), "--manage-cgroups-mode", "loose")


def test_restore_with_other_stdio_says_which(rt, counter, tmp_path):
    """The counter's stdout was a file at the checkpoint; a restore whose stdout is
    /dev/null gets one line naming stdout, before anything is made."""
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    assert criu(rt, "checkpoint", "--image-path", image, cid).returncode == 0
    proc = subprocess.run(rt.cmd("--criu", CRIU, "restore", "-d", "--image-path", image,
                                 "--bundle", bundle, cid), env=runtime_env(),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert "stdout" in err and "a regular file" in err and "a character device" in err
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_failed_restore_leaves_nothing(rt, counter, tmp_path):
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    assert criu(rt, "checkpoint", "--image-path", image, cid).returncode == 0
    os.unlink(image / "inventory.img")
    # a damaged image: restore fails, nothing of the new container stays
    (image / "inventory.img").write_bytes(b"\0" * 16)
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "restore" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert cgroup_dirs(cid) == []


def test_features_says_checkpoint_is_available(rt, tmp_path):
    r = criu(rt, "features")
    assert r.returncode == 0, r.stderr
    annotations = json.loads(r.stdout).get("annotations", {})
    assert annotations.get("org.opencontainers.runc.checkpoint.enabled") == "true"
    r = rt("--criu", tmp_path / "no-criu", "features")
    assert r.returncode == 0
    annotations = json.loads(r.stdout).get("annotations", {})
    assert "org.opencontainers.runc.checkpoint.enabled" not in annotations


def _round_trip(rt, bundle, data, tmp_path):
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    r = criu(rt, "checkpoint", "--image-path", image, cid)
    assert r.returncode == 0, r.stderr
    stood = assert_stopped_counting(data)
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "running"
    assert_counts_on_from(data, stood)
    assert rt("delete", "--force", cid).returncode == 0


def test_container_with_cgroup_mount_and_masked_files(rt, make, tmp_path):
    """/sys/fs/cgroup (binds of the container's cgroups on a v1 or hybrid host) and the
    masked files (binds of /dev/null) are external mounts, mapped back at restore."""
    data = tmp_path / "data"
    data.mkdir()

    def edit(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                 "options": ["rbind", "rw"]})
        config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup",
                                 "source": "cgroup", "options": ["nosuid", "noexec", "nodev",
                                                                 "relatime", "ro"]})
    _round_trip(rt, make(["sh", "-c", COUNTER], edit=edit), data, tmp_path)


def test_container_in_a_user_namespace_dumps_but_restore_says_why(rt, make, tmp_path):
    """CRIU 4.1 dumps a container with a user namespace, but its restore fails (it opens
    its images and the external mounts from inside the new namespace; CRIU issue #2938,
    runc meets the same): one line that says so, and nothing left behind."""
    from make_bundle import in_user_namespace, reachable_by_mapped_root
    data = tmp_path / "data"
    data.mkdir()
    reachable_by_mapped_root(data)
    os.chown(data, 100000, 100000)

    def edit(config):
        in_user_namespace(config)
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                 "options": ["rbind", "rw"]})
    bundle = make(["sh", "-c", COUNTER], edit=edit)
    (bundle / "rootfs" / "data").mkdir()     # the mapped root cannot make it
    reachable_by_mapped_root(bundle)
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    r = criu(rt, "checkpoint", "--image-path", image, cid)
    assert r.returncode == 0, r.stderr
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    if r.returncode == 0:
        assert rt.state(cid)["status"] == "running"
        return                                # a CRIU that can: fine
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "user namespace" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert cgroup_dirs(cid) == []


def test_a_criu_that_fails_on_this_kernel_is_named(rt, counter, tmp_path):
    """Debian 12's criu 3.17 answers VERSION but cannot dump on newer kernels: the one
    line names --criu and what to install, and the container keeps running."""
    old = "/usr/sbin/criu"
    if not os.access(old, os.X_OK):
        pytest.skip("no system criu to compare")
    if subprocess.run([old, "check"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode == 0:
        pytest.skip("the system's criu works on this kernel")
    bundle, data = counter
    cid = start_counter(rt, bundle, data)
    r = rt("--criu", old, "checkpoint", "--image-path", tmp_path / "image", cid)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--criu" in r.stderr and "check" in r.stderr and "still running" in r.stderr
    now = count(data)
    assert wait_for(lambda: count(data) >= now + 3)
    r = rt("--criu", old, "features")
    assert "checkpoint.enabled" not in r.stdout


def test_network_namespace_joined_by_path_stays_external(rt, make, tmp_path):
    """A network namespace joined by path is not the container's to dump: it is declared
    external and the restored container joins the same one again."""
    holder = rt.new_id("net")
    r = criu(rt, "run", "-d", "--bundle", make(["sleep", "1000"]), holder)
    assert r.returncode == 0, r.stderr
    ns_path = "/proc/%d/ns/net" % rt.state(holder)["pid"]
    data = tmp_path / "data"
    data.mkdir()

    def edit(config):
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                 "options": ["rbind", "rw"]})
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = ns_path
    bundle = make(["sh", "-c", COUNTER], edit=edit)
    cid = start_counter(rt, bundle, data)
    image = tmp_path / "image"
    r = criu(rt, "checkpoint", "--image-path", image, cid)
    assert r.returncode == 0, r.stderr
    stood = assert_stopped_counting(data)
    r = criu(rt, "restore", "-d", "--image-path", image, "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    assert_counts_on_from(data, stood)
    pid = rt.state(cid)["pid"]
    assert os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat(ns_path).st_ino
