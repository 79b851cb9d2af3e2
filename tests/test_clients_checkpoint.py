"""Checkpoint and restore through the real clients (issue 13): `podman container
checkpoint/restore` with `--runtime` minirunc, and containerd 1.6's `ctr` with
`--runc-binary` minirunc.

The clients and their private roots are test_clients.py's (Podman, Containerd, the wrapper).
Both find CRIU on PATH: podman asks `criu` for its version itself, and the runtime the
containerd shim (or podman's conmon) calls runs `criu` from PATH as no `--criu` is given.
So a directory of our own holding `criu` (a symlink to build/criu/criu, Debian 13's CRIU
4.1.1 made by `make criu`) comes first on the PATH the clients get; nothing is installed.

Times of the client calls are printed (pytest -s), not asserted.

The counter container writes an increasing number to a file on a bind mount every ~0.1 s:
after the checkpoint it stands still, after the restore it counts on from where it stood.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import REPO, wait_for
from make_bundle import make_rootfs
from oci_image import write_oci_archive
from test_checkpoint import COUNTER, assert_counts_on_from, assert_stopped_counting, count
from test_clients import (Containerd, Podman, cgroup_tree_exists, host_snapshot,
                          write_wrapper)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CRIU = os.path.join(REPO, "build", "criu", "criu")
REQUIRED = os.environ.get("MINIRUNC_REQUIRE_BINARY") or os.environ.get("MINIRUNC_BIN")

if not os.access(CRIU, os.X_OK):
    if REQUIRED:
        raise RuntimeError("build/criu/criu is missing: `make criu` makes it (make test does)")
    pytest.skip("build/criu/criu is missing: run `make criu`", allow_module_level=True)

def criu_path(base):
    """PATH with a directory holding `criu` (-> build/criu/criu) first."""
    directory = os.path.join(base, "criu-bin")
    os.mkdir(directory)
    os.symlink(CRIU, os.path.join(directory, "criu"))
    return directory + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")


def runtime(base):
    """The wrapper running minirunc; MINIRUNC_CLIENTS_RUNTIME=/usr/sbin/runc runs the same
    tests with another runtime (to compare runc's times with the same CRIU)."""
    return os.environ.get("MINIRUNC_CLIENTS_RUNTIME") or write_wrapper(base)


def timed(what, started):
    """Print how long a client call took (seen with pytest -s; not asserted)."""
    print("%s: %.2f s" % (what, time.monotonic() - started))


def new_data_dir(base):
    data = tempfile.mkdtemp(prefix="data-", dir=base)
    os.chmod(data, 0o777)
    return data


# ------------------------------------------------------------------------- podman

@pytest.fixture(scope="module")
def podman():
    if not shutil.which("podman") or not shutil.which("unshare"):
        pytest.skip("podman is not installed (make test installs it)")
    before = host_snapshot()
    base = tempfile.mkdtemp(prefix="crcli-podman-")
    client = None
    try:
        client = Podman(base, runtime(base))
        client.env["PATH"] = criu_path(base)
        rootfs = os.path.join(base, "rootfs")
        make_rootfs(rootfs)
        client.import_image(rootfs)
        yield client
    finally:
        if client is not None:
            client.teardown()
        left_mounts = [l for l in open("/proc/self/mounts") if base in l]
        shutil.rmtree(base, ignore_errors=True)
        assert not left_mounts, left_mounts
        assert host_snapshot() == before
        assert client is None or not cgroup_tree_exists(client.parent)


def test_podman_checkpoint_restore_counts_on(podman):
    data = new_data_dir(podman.base)
    r = podman.run("-d", "-v", "%s:/data" % data, podman.image, "sh", "-c", COUNTER)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        assert wait_for(lambda: count(data) >= 3)
        started = time.monotonic()
        r = podman("container", "checkpoint", cid)
        timed("podman checkpoint", started)
        assert r.returncode == 0, r.stderr
        r = podman("inspect", "--format", "{{.State.Status}}", cid)
        assert r.stdout.strip() == "exited", (r.stdout, r.stderr)
        stood = assert_stopped_counting(data)

        started = time.monotonic()
        r = podman("container", "restore", cid)
        timed("podman restore", started)
        assert r.returncode == 0, r.stderr
        r = podman("inspect", "--format", "{{.State.Status}}", cid)
        assert r.stdout.strip() == "running", (r.stdout, r.stderr)
        assert_counts_on_from(data, stood)
    finally:
        r = podman("rm", "--force", "--time", "0", cid)
    assert r.returncode == 0, r.stderr
    assert podman("inspect", cid).returncode != 0


def test_podman_leave_running_export_and_import_as_a_new_container(podman):
    """`checkpoint --leave-running --export` keeps it counting; the archive restored with
    `restore --import --name` is a new container that counts on from the dump."""
    data = new_data_dir(podman.base)
    r = podman.run("-d", "-v", "%s:/data" % data, podman.image, "sh", "-c", COUNTER)
    assert r.returncode == 0, r.stderr
    cid, new = r.stdout.strip(), None
    archive = os.path.join(podman.base, "checkpoint-%s.tar.gz" % cid[:12])
    try:
        assert wait_for(lambda: count(data) >= 3)
        before = count(data)
        r = podman("container", "checkpoint", "--leave-running", "--export", archive, cid)
        assert r.returncode == 0, r.stderr
        assert os.path.getsize(archive) > 0
        r = podman("inspect", "--format", "{{.State.Status}}", cid)
        assert r.stdout.strip() == "running", (r.stdout, r.stderr)
        assert wait_for(lambda: count(data) > before + 3), "the counter stopped"
        r = podman("rm", "--force", "--time", "0", cid)
        assert r.returncode == 0, r.stderr
        stood = assert_stopped_counting(data)

        name = "restored-%s" % uuid.uuid4().hex[:8]
        r = podman("container", "restore", "--import", archive, "--name", name)
        assert r.returncode == 0, r.stderr
        new = name
        r = podman("inspect", "--format", "{{.State.Status}}", name)
        assert r.stdout.strip() == "running", (r.stdout, r.stderr)
        assert wait_for(lambda: count(data) != stood, timeout=10), "the counter did not resume"
        first = count(data)
        assert before < first <= stood + 5, (before, first, stood)
        assert wait_for(lambda: count(data) >= first + 3, timeout=10)
    finally:
        podman("rm", "--force", "--time", "0", cid)
        if new:
            assert podman("rm", "--force", "--time", "0", new).returncode == 0
        if os.path.exists(archive):
            os.unlink(archive)
    assert podman("inspect", cid).returncode != 0


# ---------------------------------------------------------------------- containerd

@pytest.fixture(scope="module")
def ctr():
    if not shutil.which("containerd") or not shutil.which("ctr") or not shutil.which("unshare") \
            or not shutil.which("nsenter"):
        pytest.skip("containerd is not installed (make test installs it)")
    before = host_snapshot()
    base = tempfile.mkdtemp(prefix="crcli-ctr-")
    client = Containerd(base, runtime(base))
    # containerd unpacks a checkpoint to restore into a temp dir of $XDG_RUNTIME_DIR (else
    # /tmp) and leaves it there: ours goes with the base
    xdg = os.path.join(base, "xdg")
    os.mkdir(xdg, 0o700)
    client.env = dict(os.environ, PATH=criu_path(base), XDG_RUNTIME_DIR=xdg)
    tmp_before = ctrd_temp_dirs()
    try:
        rootfs = os.path.join(base, "rootfs")
        make_rootfs(rootfs)
        archive = write_oci_archive(rootfs, os.path.join(base, "busybox-oci.tar"), client.image)
        client.start()
        r = client("image", "import", "--snapshotter", "native", archive)
        assert r.returncode == 0, r.stderr
        yield client
    finally:
        try:
            client.stop()
        finally:
            # a stop that failed half-way must not leave the daemon or a shim running
            if client.daemon is not None and client.daemon.poll() is None:
                client.daemon.kill()
                client.daemon.wait()
            for pid in client.shims():
                os.kill(pid, signal.SIGKILL)
        left_mounts = [l for l in open("/proc/self/mounts") if base in l]
        shutil.rmtree(base, ignore_errors=True)
        assert not left_mounts, left_mounts
        assert host_snapshot() == before
        assert ctrd_temp_dirs() <= tmp_before
        assert not cgroup_tree_exists(client.parent)


def ctrd_temp_dirs():
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("ctrd-checkpoint")}


def end_shim(ctr, cid):
    """After a failed restore the task stays CREATED with no process: its shim waits for
    an exit that never comes, and `ctr task delete --force` with it (ctr's own behaviour,
    whatever the runtime).  Ending that shim has containerd clean the task up."""
    for pid in ctr.shims():
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if cid.encode() in f.read().split(b"\0"):
                os.kill(pid, signal.SIGKILL)
    wait_for(lambda: ctr.task_status(cid) is None, timeout=15)


def in_daemon_ns(ctr, argv):
    """``argv`` run in containerd's mount namespace: `ctr container restore` has no
    --fifo-dir and puts its fifos in /run/containerd/fifo, which is the daemon's private
    tmpfs there (and where the shim looks for them)."""
    return ["nsenter", "--mount", "--target", str(ctr.daemon.pid)] + argv


def test_ctr_checkpoint_restore_counts_on(ctr):
    cid = "cr-%s" % uuid.uuid4().hex[:8]
    ref = "localhost/checkpoint-%s:1" % cid
    data = new_data_dir(ctr.base)
    r = ctr("run", "-d", "--mount", "type=bind,src=%s,dst=/data,options=rbind:rw" % data,
            *ctr.run_flags(cid), ctr.image, cid, "sh", "-c", COUNTER)
    assert r.returncode == 0, r.stderr
    restorer = None
    try:
        assert wait_for(lambda: count(data) >= 3)
        # ctr pauses the task, has it dumped with --leave-running, resumes it
        before = count(data)
        started = time.monotonic()
        r = ctr("container", "checkpoint", "--task", cid, ref)
        timed("ctr checkpoint", started)
        assert r.returncode == 0, r.stderr
        assert ctr.task_status(cid) == "RUNNING"
        assert wait_for(lambda: count(data) > before + 3), "the counter stopped"
        assert ctr("task", "kill", "--signal", "KILL", cid).returncode == 0
        assert wait_for(lambda: ctr.task_status(cid) == "STOPPED")
        assert ctr("task", "delete", cid).returncode == 0
        assert ctr("container", "rm", cid).returncode == 0
        stood = assert_stopped_counting(data)

        # `ctr container restore --live` makes the container (spec, runtime, and its
        # --runc-binary) from the checkpoint image and restores the task; it stays attached
        log = os.path.join(ctr.base, "restore-%s.log" % cid)
        with open(log, "w") as out:
            started = time.monotonic()
            restorer = subprocess.Popen(
                in_daemon_ns(ctr, ctr.cmd("container", "restore", "--live", cid, ref)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert wait_for(lambda: ctr.task_status(cid) == "RUNNING" or
                        restorer.poll() is not None, timeout=60), open(log).read()
        timed("ctr restore", started)
        assert ctr.task_status(cid) == "RUNNING", open(log).read()
        # it goes on from where the dump left it: after `before`, not from 1
        assert wait_for(lambda: count(data) != stood, timeout=10), "the counter did not resume"
        first = count(data)
        assert before < first <= stood + 5, (before, first, stood)
        assert wait_for(lambda: count(data) >= first + 3, timeout=10)
    finally:
        if ctr.task_status(cid) == "CREATED":
            end_shim(ctr, cid)
        if ctr.task_status(cid) is not None:
            ctr("task", "kill", "--signal", "KILL", cid)
            wait_for(lambda: ctr.task_status(cid) in (None, "STOPPED"))
        if restorer is not None:
            try:
                restorer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                restorer.kill()
                restorer.wait()
        if ctr.task_status(cid) is not None:
            ctr("task", "delete", "--force", cid)
        ctr("container", "rm", cid)
        ctr("image", "rm", ref)
    assert ctr("container", "info", cid).returncode != 0
    assert ctr.task_status(cid) is None
    assert not cgroup_tree_exists("%s/%s" % (ctr.parent, cid))


def test_ctr_task_checkpoint_exit_to_an_image_path(ctr):
    """`ctr task checkpoint --exit --image-path DIR`: CRIU's images in DIR, the task stops
    where it stood (containerd 1.6's ctr has no restore from a path: the restore above is
    the one ctr offers)."""
    cid = "crx-%s" % uuid.uuid4().hex[:8]
    data = new_data_dir(ctr.base)
    image = os.path.join(ctr.base, "image-%s" % cid)
    r = ctr("run", "-d", "--mount", "type=bind,src=%s,dst=/data,options=rbind:rw" % data,
            *ctr.run_flags(cid), ctr.image, cid, "sh", "-c", COUNTER)
    assert r.returncode == 0, r.stderr
    try:
        assert wait_for(lambda: count(data) >= 3)
        r = ctr("task", "checkpoint", "--exit", "--image-path", image, cid)
        assert r.returncode == 0, r.stderr
        assert os.path.isfile(os.path.join(image, "inventory.img"))
        assert ctr.task_status(cid) == "STOPPED"
        assert_stopped_counting(data)
    finally:
        if ctr.task_status(cid) is not None:
            ctr("task", "kill", "--signal", "KILL", cid)
            wait_for(lambda: ctr.task_status(cid) in (None, "STOPPED"))
            ctr("task", "delete", "--force", cid)
        ctr("container", "rm", cid)
    assert ctr("container", "info", cid).returncode != 0
    assert not cgroup_tree_exists("%s/%s" % (ctr.parent, cid))
