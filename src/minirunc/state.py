"""Container state on disk: `<root>/<id>/state.json`, the per-container lock, and live status.

state.json is written to a temporary file, fsync'd and renamed, so a reader sees the old
or the new state, never half of one. The status is not trusted from disk: it is derived
from the init process (pid plus its start time from /proc, which guards against pid
reuse), from the start socket, which exists until `start` succeeds (runc's exec fifo
plays the same role), and from the freezer file whose path state.json records (a frozen
cgroup is `paused`). Every command that changes a container holds an exclusive flock on
its directory, so two commands on one id never interleave.
"""

import fcntl
import os

from . import jsontext
from .errors import HostError, StateError

STATE_FILE = "state.json"
START_SOCKET = "start.sock"
MAX_ID_LENGTH = 1024


def check_id(container_id):
    """Reject ids that could name a path outside the root or break state files."""
    if not container_id:
        raise StateError(None, "container id cannot be empty")
    if len(container_id) > MAX_ID_LENGTH:
        raise StateError(None, "container id is %d characters long; at most %d are allowed"
                         % (len(container_id), MAX_ID_LENGTH))
    if container_id in (".", "..") or "/" in container_id or "\0" in container_id:
        raise StateError(None, "invalid container id %r: it must not be '.', '..' or contain '/'"
                         % container_id)
    bad = [c for c in container_id if not (c.isalnum() or c in "_+-.") or ord(c) > 127]
    if bad:
        raise StateError(None, "invalid container id %r: use only letters, digits, '_', '+', '-' "
                         "and '.' (found %r)" % (container_id, bad[0]))


def process_start_time(pid):
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None if the pid is gone
    or a zombie (a zombie has finished running: the container is stopped)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class Container:
    """The on-disk record of one container plus its live status."""

    def __init__(self, root, container_id):
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.data = None
        self._lock_fd = None

    # -- locking ---------------------------------------------------------
    def lock(self, shared=False):
        """Take the container's flock; raise if the container does not exist."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StateError(self.id, "does not exist (see `minirunc list`)") from None
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        # A delete may have removed the directory while we waited for the lock.
        if os.fstat(fd).st_nlink == 0:
            os.close(fd)
            raise StateError(self.id, "does not exist (see `minirunc list`)")
        self._lock_fd = fd
        return self

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unlock()

    # -- creation and removal -------------------------------------------
    def make_dir(self):
        """Create and lock the container directory; a second create of the id fails here."""
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as e:
            raise HostError("create state root", self.root, e.errno) from None
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError:
            raise StateError(self.id, "already exists: delete it first or choose another id") from None
        except OSError as e:
            raise HostError("create state directory", self.dir, e.errno) from None
        return self.lock()

    def remove_dir(self):
        """Remove the container directory and everything in it (we hold the lock)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # -- state.json -------------------------------------------------------
    def load(self):
        path = os.path.join(self.dir, STATE_FILE)
        try:
            with open(path, "rb") as f:
                self.data = jsontext.loads(f.read())
        except FileNotFoundError:
            raise StateError(self.id, "has no state file (creation did not finish); "
                             "remove it with `minirunc delete --force %s`" % self.id) from None
        except ValueError as e:
            raise StateError(self.id, "state file %s is corrupt (%s); remove it with "
                             "`minirunc delete --force %s`" % (path, e, self.id)) from None
        return self.data

    def save(self, data):
        """Write state.json atomically: temp file, fsync, rename, fsync the directory."""
        path = os.path.join(self.dir, STATE_FILE)
        tmp = "%s.tmp-%d" % (path, os.getpid())
        blob = jsontext.dumps(data).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, blob)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise HostError("write state file", path, e.errno) from None
        self.data = data

    # -- live status ------------------------------------------------------
    @property
    def pid(self):
        return self.data.get("pid", 0)

    def init_alive(self):
        pid = self.pid
        return bool(pid) and process_start_time(pid) == self.data.get("pid_start")

    def status(self):
        """creating, created, running, paused or stopped, derived from the live init process
        and the cgroup freezer."""
        if not self.init_alive():
            return "stopped"
        if self.data.get("creating"):
            return "creating"
        if self.frozen():
            return "paused"
        if os.path.exists(os.path.join(self.dir, START_SOCKET)):
            return "created"
        return "running"

    def frozen(self):
        """True when the container's freezer (v1 freezer.state or v2 cgroup.freeze) is set."""
        path = (self.data.get("cgroup") or {}).get("freezer")
        if not path:
            return False
        try:
            with open(path, "rb") as f:
                value = f.read().strip()
        except OSError:
            return False
        return value in (b"FROZEN", b"1")

    def start_socket_path(self):
        return os.path.join(self.dir, START_SOCKET)

    def public_state(self):
        """The `state` document: OCI fields plus runc's rootfs, created and owner."""
        status = self.status()
        d = self.data
        return {
            "ociVersion": d.get("ociVersion", ""),
            "id": self.id,
            "pid": d.get("pid", 0) if status != "stopped" else 0,
            "status": status,
            "bundle": d.get("bundle", ""),
            "rootfs": d.get("rootfs", ""),
            "created": d.get("created", ""),
            "owner": d.get("owner", ""),
            "annotations": d.get("annotations") or {},
        }


def list_ids(root):
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise HostError("list state root", root, e.errno) from None
    return [n for n in names if os.path.isdir(os.path.join(root, n))]


def write_pid_file(path, pid):
    """Write the pid file atomically, as runc does (containerd reads it right away)."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        raise HostError("write pid file", path, e.errno) from None
