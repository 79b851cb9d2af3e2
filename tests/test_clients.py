"""Real clients drive minirunc as their runtime (issue 10): podman 4.3 (`--runtime`) and
containerd 1.6 (`ctr run --runc-binary`), Debian's packages (the Makefile installs them).

Each client gets a private root, config and state under a temporary directory, so nothing of
the host's is used or left behind:
- podman: its own containers.conf (cgroupfs, file locks, no events, CNI config dir, tmp dir,
  default_ulimits within this machine's hard limits: no CAP_SYS_RESOURCE here) and
  storage.conf (vfs, graphroot/runroot in the temp dir); every container runs with
  `--network none` under a cgroup parent of our own; the image is `podman import`ed from a
  busybox rootfs (no registry is reachable).  The import runs with a private tmpfs over
  /var/lib: containers/image would otherwise create /var/lib/containers/cache.
- containerd: its own config, root, state and socket, started here and stopped afterwards,
  in a private mount namespace with a tmpfs over /run (the shims put their sockets in
  /run/containerd/s whatever the config says); ctr's fifos go to the temp dir
  (`--fifo-dir`); the image is an OCI archive built here and `ctr image import`ed.
minirunc runs from source through a small wrapper script (python -m minirunc), or as the
binary named by MINIRUNC_BIN.
"""

import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from conftest import SRC, wait_for
from make_bundle import make_rootfs
from oci_image import write_oci_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

HOST_PATHS = ("/var/lib/containers", "/run/libpod", "/run/containers", "/run/containerd",
              "/dev/shm/libpod_lock", "/var/lib/cni", "/run/minirunc")


def host_snapshot():
    """What the clients could leave on the host: their default places."""
    snapshot = {p: os.path.exists(p) for p in HOST_PATHS}
    snapshot["/etc/cni/net.d"] = sorted(os.listdir("/etc/cni/net.d")) \
        if os.path.isdir("/etc/cni/net.d") else None
    return snapshot


def cgroup_mountpoints():
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ")
            if post.split()[0] in ("cgroup", "cgroup2"):
                points.append(pre.split()[4])
    return points


def remove_cgroup_tree(parent):
    """rmdir every directory of ``parent`` (an absolute cgroup path of our own) in every
    hierarchy, deepest first."""
    for mountpoint in cgroup_mountpoints():
        top = os.path.join(mountpoint, parent.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(directory)
            except OSError:
                pass


def cgroup_tree_exists(parent):
    return [m for m in cgroup_mountpoints() if os.path.isdir(os.path.join(m, parent.lstrip("/")))]


def write_wrapper(directory):
    """The runtime the clients call: the binary (MINIRUNC_BIN) or the source tree."""
    path = os.path.join(directory, "minirunc")
    binary = os.environ.get("MINIRUNC_BIN")
    if binary:
        body = 'exec %s "$@"\n' % os.path.abspath(binary)
    else:
        body = 'PYTHONPATH=%s exec %s -m minirunc "$@"\n' % (SRC, sys.executable)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def run_in_pty(cmd, env=None, timeout=60):
    """Run ``cmd`` with a pty as stdin, stdout and stderr (ctr and podman -t want a
    console); returns (exit code, what it wrote)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:      # EIO: every slave end is closed
                    data = b""
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        os.close(master)


def cgroup_file(pid, controller, v1_name, v2_name):
    """The value of a cgroup file of process ``pid`` (v1 controller, else cgroup2)."""
    lines = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f.read().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(","):
                lines[c] = path
    with open("/proc/self/mountinfo") as f:
        mounts = [(l.split(" - ")[0].split(), l.split(" - ")[1].split()) for l in f]
    for pre, post in mounts:
        if post[0] == "cgroup" and controller in post[2].split(",") and controller in lines:
            return open(os.path.join(pre[4], lines[controller].lstrip("/"), v1_name)).read().strip()
    for pre, post in mounts:
        if post[0] == "cgroup2" and "" in lines:
            return open(os.path.join(pre[4], lines[""].lstrip("/"), v2_name)).read().strip()
    raise AssertionError("no %s cgroup for pid %d" % (controller, pid))


# ------------------------------------------------------------------------- podman

class Podman:
    def __init__(self, base, wrapper):
        self.base = base
        self.wrapper = wrapper
        self.parent = "/fidcli-podman-%s" % uuid.uuid4().hex[:8]
        self.image = "localhost/fidcli-busybox:latest"
        # podman asks for 1048576 by default; without CAP_SYS_RESOURCE a hard limit above
        # ours is refused (EPERM), so the defaults stay within this machine's
        nproc, nofile = (min(want, hard) if hard != resource.RLIM_INFINITY else want
                         for want, hard in ((4096, resource.getrlimit(resource.RLIMIT_NPROC)[1]),
                                            (20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
        for d in ("root", "runroot", "tmp", "cni"):
            os.makedirs(os.path.join(base, d))
        self.conf = os.path.join(base, "containers.conf")
        with open(self.conf, "w") as f:
            f.write("""[containers]
default_ulimits = ["nofile=%(nofile)d:%(nofile)d", "nproc=%(nproc)d:%(nproc)d"]
netns = "none"
log_driver = "k8s-file"
[network]
network_backend = "cni"
network_config_dir = "%(base)s/cni"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
lock_type = "file"
tmp_dir = "%(base)s/tmp"
runtime = "minirunc"
[engine.runtimes]
minirunc = ["%(wrapper)s"]
""" % {"base": base, "wrapper": wrapper, "nofile": nofile, "nproc": nproc})
        self.storage = os.path.join(base, "storage.conf")
        with open(self.storage, "w") as f:
            f.write('[storage]\ndriver = "vfs"\nrunroot = "%s/runroot"\ngraphroot = "%s/root"\n'
                    % (base, base))
        registries = os.path.join(base, "registries.conf")
        with open(registries, "w") as f:
            f.write("")
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf,
                        CONTAINERS_STORAGE_CONF=self.storage,
                        CONTAINERS_REGISTRIES_CONF=registries)
        self.env.pop("XDG_RUNTIME_DIR", None)

    def cmd(self, *args):
        return ["podman", "--root", os.path.join(self.base, "root"),
                "--runroot", os.path.join(self.base, "runroot"), "--storage-driver", "vfs",
                "--runtime", self.wrapper] + [str(a) for a in args]

    def __call__(self, *args, timeout=120):
        return subprocess.run(self.cmd(*args), env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def run(self, *args, **kw):
        """`podman run` with our cgroup parent and no network."""
        return self("run", "--network", "none", "--cgroup-parent", self.parent, *args, **kw)

    def import_image(self, rootfs):
        tarball = os.path.join(self.base, "busybox.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tarball, "."], check=True)
        # a private tmpfs over /var/lib: no /var/lib/containers/cache on the host
        script = ('mount -t tmpfs -o mode=755,size=16m fidcli-cache /var/lib && exec "$@"')
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            script, "sh"] + self.cmd("import", "--change", "CMD [\"sh\"]",
                                                     tarball, self.image),
                           env=self.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr

    def teardown(self):
        self("rm", "--all", "--force", "--time", "0")
        self("rmi", "--all", "--force")
        remove_cgroup_tree(self.parent)


@pytest.fixture(scope="module")
def podman():
    if not shutil.which("podman") or not shutil.which("unshare"):
        pytest.skip("podman is not installed (make test installs it)")
    before = host_snapshot()
    base = tempfile.mkdtemp(prefix="fidcli-podman-")
    client = None
    try:
        client = Podman(base, write_wrapper(base))
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


def inspect(podman, cid, fmt):
    r = podman("inspect", "--format", fmt, cid)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_podman_run_passes_exit_codes(podman):
    r = podman.run("--rm", podman.image, "sh", "-c", "echo hello; exit 3")
    assert (r.returncode, r.stdout) == (3, "hello\n"), r.stderr
    r = podman.run("--rm", podman.image, "true")
    assert r.returncode == 0, r.stderr
    # killed by a signal: podman reports 128+N (minirunc kill through podman kill)
    r = podman.run("-d", podman.image, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert podman("kill", "--signal", "KILL", cid).returncode == 0
    r = podman("wait", cid)
    assert (r.returncode, r.stdout) == (0, "137\n"), r.stderr
    assert podman("rm", cid).returncode == 0


def test_podman_missing_command_gives_127_and_not_executable_126(podman):
    r = podman.run("--rm", podman.image, "no-such-command")
    assert r.returncode == 127, r.stderr
    assert "executable file not found" in r.stderr
    r = podman.run("--rm", podman.image, "/etc")
    assert r.returncode == 126, r.stderr


def test_podman_detached_exec_top_stats_pause_stop_rm(podman):
    r = podman.run("-d", "--memory", "64m", "--pids-limit", "33", podman.image, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    pid = int(inspect(podman, cid, "{{.State.Pid}}"))
    assert inspect(podman, cid, "{{.State.Status}}") == "running"
    # the limits podman asked for are in the container's cgroup files
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert cgroup_file(pid, "pids", "pids.max", "pids.max") == "33"

    r = podman("exec", cid, "sh", "-c", "echo in-exec $(cat /proc/1/cmdline | tr '\\0' ' '); "
               "exit 5")
    assert (r.returncode, r.stdout) == (5, "in-exec sleep 1000\n"), r.stderr
    r = podman("exec", cid, "no-such-command")
    assert r.returncode == 127 and "executable file not found" in r.stderr, r.stderr

    r = podman("top", cid)
    assert r.returncode == 0 and "sleep 1000" in r.stdout, r.stderr
    r = podman("stats", "--no-stream", "--format", "json", cid)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats and stats[0]["id"] == cid[:12] and stats[0]["pids"] == "1", stats

    assert podman("pause", cid).returncode == 0
    assert inspect(podman, cid, "{{.State.Status}}") == "paused"
    assert podman("unpause", cid).returncode == 0
    assert inspect(podman, cid, "{{.State.Status}}") == "running"
    assert podman("exec", cid, "true").returncode == 0

    r = podman("stop", "--time", "1", cid)
    assert r.returncode == 0, r.stderr
    assert inspect(podman, cid, "{{.State.Status}}") == "exited"
    assert wait_for(lambda: not os.path.exists("/proc/%d" % pid))
    r = podman("rm", cid)
    assert r.returncode == 0, r.stderr
    assert podman("inspect", cid).returncode != 0


def test_podman_terminal_run_and_exec(podman):
    r = podman.run("--rm", "-t", podman.image, "sh", "-c", "tty; exit 4")
    assert r.returncode == 4, r.stderr
    assert r.stdout.replace("\r", "") == "/dev/pts/0\n"
    r = podman.run("-d", podman.image, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        r = podman("exec", "-t", cid, "sh", "-c", "tty; exit 6")
        assert r.returncode == 6, r.stderr
        assert r.stdout.replace("\r", "").startswith("/dev/pts/")
    finally:
        assert podman("rm", "--force", "--time", "0", cid).returncode == 0


def test_podman_volume(podman):
    shared = os.path.join(podman.base, "volume")
    os.mkdir(shared)
    with open(os.path.join(shared, "from-host"), "w") as f:
        f.write("host data\n")
    r = podman.run("--rm", "-v", "%s:/data" % shared, podman.image,
                   "sh", "-c", "cat /data/from-host; echo container data > /data/from-container")
    assert (r.returncode, r.stdout) == (0, "host data\n"), r.stderr
    with open(os.path.join(shared, "from-container")) as f:
        assert f.read() == "container data\n"


def test_podman_tmpfs(podman):
    r = podman.run("--rm", "--tmpfs", "/scratch", "--tmpfs", "/etc", podman.image, "sh", "-c",
                   "grep -w /scratch /proc/mounts | cut -d' ' -f3; "
                   "echo x > /scratch/f && cat /scratch/f; grep -c root /etc/passwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["tmpfs", "x", "1"]


def test_podman_read_only(podman):
    r = podman.run("--rm", "--read-only", podman.image, "sh", "-c",
                   "touch /new 2>/dev/null && echo wrote-root; touch /tmp/ok && echo tmp-ok")
    assert (r.returncode, r.stdout) == (0, "tmp-ok\n"), r.stderr


# ---------------------------------------------------------------------- containerd

class Containerd:
    def __init__(self, base, wrapper):
        self.base = base
        self.wrapper = wrapper
        self.namespace = "fidcli"
        self.parent = "/fidcli-ctr-%s" % uuid.uuid4().hex[:8]
        self.image = "docker.io/library/fidcli-busybox:latest"
        self.socket = os.path.join(base, "containerd.sock")
        self.fifo = os.path.join(base, "fifo")
        os.makedirs(self.fifo)
        self.config = os.path.join(base, "config.toml")
        with open(self.config, "w") as f:
            f.write("""version = 2
root = "%(base)s/root"
state = "%(base)s/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "%(sock)s"
[ttrpc]
  address = "%(sock)s.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
""" % {"base": base, "sock": self.socket})
        self.daemon = None
        self.log = None
        self.env = None          # the daemon's environment (None: ours)

    def start(self):
        self.log = open(os.path.join(self.base, "containerd.log"), "w")
        # Private mount namespace, tmpfs over /run: the shims' sockets (/run/containerd/s)
        # and the runtime's state (--root /run/containerd/runc/...) vanish with it.
        script = 'mount -t tmpfs -o mode=755,size=64m fidcli-run /run && exec containerd --config "$0"'
        self.daemon = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh",
                                        "-c", script, self.config],
                                       stdout=self.log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=self.env)
        assert wait_for(lambda: self("version").returncode == 0, timeout=30), self.log_text()

    def log_text(self):
        with open(os.path.join(self.base, "containerd.log")) as f:
            return f.read()[-2000:]

    def cmd(self, *args):
        return ["ctr", "--address", self.socket, "--namespace", self.namespace] + \
            [str(a) for a in args]

    def __call__(self, *args, timeout=120):
        return subprocess.run(self.cmd(*args), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def run_flags(self, cid):
        return ["--snapshotter", "native", "--fifo-dir", self.fifo, "--runc-binary",
                self.wrapper, "--cgroup", "%s/%s" % (self.parent, cid)]

    def task_status(self, cid):
        for line in self("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return None

    def shims(self):
        """Pids of the shims serving this daemon (their command line names its socket)."""
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"containerd-shim-runc-v2") and \
                    self.socket.encode() in args:
                pids.append(int(name))
        return pids

    def stop(self):
        if self.daemon is None:
            return
        for line in self("task", "ls").stdout.splitlines()[1:]:
            cid = line.split()[0]
            self("task", "kill", "--signal", "KILL", cid)
            wait_for(lambda: self.task_status(cid) in (None, "STOPPED"))
            self("task", "delete", "--force", cid)
        for line in self("container", "ls", "--quiet").stdout.split():
            self("container", "rm", line)
        self("image", "rm", self.image)
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.log.close()
        assert wait_for(lambda: not self.shims(), timeout=15), self.shims()
        remove_cgroup_tree(self.parent)


@pytest.fixture(scope="module")
def ctr():
    if not shutil.which("containerd") or not shutil.which("ctr") or not shutil.which("unshare"):
        pytest.skip("containerd is not installed (make test installs it)")
    before = host_snapshot()
    base = tempfile.mkdtemp(prefix="fidcli-ctr-")
    client = Containerd(base, write_wrapper(base))
    try:
        rootfs = os.path.join(base, "rootfs")
        make_rootfs(rootfs)
        archive = write_oci_archive(rootfs, os.path.join(base, "busybox-oci.tar"), client.image)
        client.start()
        r = client("image", "import", "--snapshotter", "native", archive)
        assert r.returncode == 0, r.stderr
        yield client
    finally:
        client.stop()
        left_mounts = [l for l in open("/proc/self/mounts") if base in l]
        shutil.rmtree(base, ignore_errors=True)
        assert not left_mounts, left_mounts
        assert host_snapshot() == before
        assert not cgroup_tree_exists(client.parent)


def test_ctr_run_rm_passes_the_exit_code(ctr):
    cid = "run-%s" % uuid.uuid4().hex[:8]
    r = ctr("run", "--rm", *ctr.run_flags(cid), ctr.image, cid, "sh", "-c", "echo hello; exit 3")
    assert (r.returncode, r.stdout) == (3, "hello\n"), r.stderr
    assert ctr("container", "info", cid).returncode != 0     # --rm removed it
    assert not cgroup_tree_exists("%s/%s" % (ctr.parent, cid))


def test_ctr_detached_exec_pause_resume_kill_delete(ctr):
    cid = "det-%s" % uuid.uuid4().hex[:8]
    r = ctr("run", "-d", *ctr.run_flags(cid), ctr.image, cid, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    assert ctr.task_status(cid) == "RUNNING"
    r = ctr("task", "exec", "--fifo-dir", ctr.fifo, "--exec-id", "e1", cid,
            "sh", "-c", "echo in-exec; exit 5")
    assert (r.returncode, r.stdout) == (5, "in-exec\n"), r.stderr
    r = ctr("task", "exec", "--fifo-dir", ctr.fifo, "--exec-id", "e2", cid, "no-such-command")
    assert r.returncode != 0 and "executable file not found" in r.stderr, r.stderr

    pid = int(ctr("task", "ls").stdout.split(cid)[1].split()[0])
    assert ctr("task", "pause", cid).returncode == 0
    assert ctr.task_status(cid) == "PAUSED"
    state = cgroup_file(pid, "freezer", "freezer.state", "cgroup.freeze")
    assert state in ("FROZEN", "1")
    assert ctr("task", "resume", cid).returncode == 0
    assert ctr.task_status(cid) == "RUNNING"

    r = ctr("task", "kill", "--signal", "KILL", cid)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: ctr.task_status(cid) == "STOPPED")
    r = ctr("task", "delete", cid)
    assert r.returncode == 0, r.stderr
    assert ctr.task_status(cid) is None
    assert ctr("container", "rm", cid).returncode == 0
    assert not cgroup_tree_exists("%s/%s" % (ctr.parent, cid))


def test_ctr_terminal(ctr):
    cid = "tty-%s" % uuid.uuid4().hex[:8]
    code, out = run_in_pty(ctr.cmd("run", "--rm", "-t", *ctr.run_flags(cid), ctr.image, cid,
                                   "sh", "-c", "tty; exit 4"))
    assert code == 4, out
    assert "/dev/pts/0" in out

    cid = "ttyx-%s" % uuid.uuid4().hex[:8]
    r = ctr("run", "-d", *ctr.run_flags(cid), ctr.image, cid, "sleep", "1000")
    assert r.returncode == 0, r.stderr
    code, out = run_in_pty(ctr.cmd("task", "exec", "-t", "--fifo-dir", ctr.fifo,
                                   "--exec-id", "t1", cid, "sh", "-c", "tty; exit 6"))
    assert code == 6, out
    assert "/dev/pts/" in out
    assert ctr("task", "kill", "--signal", "KILL", cid).returncode == 0
    assert wait_for(lambda: ctr.task_status(cid) == "STOPPED")
    assert ctr("task", "delete", cid).returncode == 0
    assert ctr("container", "rm", cid).returncode == 0
