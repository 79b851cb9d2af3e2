"""Container state on disk: `<root>/<id>/state.json`, the per-container lock, and live status.

state.json is written to a temporary file and renamed, so a reader sees the old or the
new state, never half of one (not fsync'd, as runc does not: see docs/design.md for what a
crash can leave). The status is not trusted from disk: it is derived
from the init process (pid plus its start time from /proc, which guards against pid
reuse), from the start socket, which exists until `start` succeeds (runc's exec fifo
plays the same role), and from the freezer file whose path state.json records (a frozen
cgroup is `paused`). Every command that changes a container holds an exclusive flock on
its directory, so two commands on one id never interleave.

state.json is checked for its shape when it is read (``check_state``): a damaged file
is one line naming the file and the JSON path of the bad field (``DamagedStateError``),
never a traceback.  Beside it, ``<root>/<id>/init`` (``INIT_RECORD``) is a small
key=value record of what `delete --force` needs to clean up (the init's pid and start
time, its pid namespace, the cgroup record), written before state.json on every save,
so it survives when state.json is lost or damaged; docs/design.md describes its format.
``<root>/<id>/door`` (``DOOR_RECORD``) is the same kind of record for the C front door,
written after state.json.
"""

import fcntl
import os
from stat import S_ISREG

from . import jsontext
from .errors import HostError, StateError

STATE_FILE = "state.json"
START_SOCKET = "start.sock"
INIT_RECORD = "init"
INIT_RECORD_VERSION = "1"
DOOR_RECORD = "door"
DOOR_RECORD_VERSION = "1"
MAX_ID_LENGTH = 1024
PID_MAX = 1 << 22           # the kernel's PID_MAX_LIMIT
U64_MAX = (1 << 64) - 1
CGROUP_DRIVERS = ("none", "v1", "v2", "hybrid")


class DamagedStateError(StateError):
    """state.json (or the init record beside it) cannot be read, is not JSON, or has the
    wrong shape: ``file`` and ``problem`` (which starts with the JSON path) say what."""

    def __init__(self, container_id, file, problem):
        self.file = file
        self.problem = problem
        super().__init__(container_id, "state file %s: %s; remove it with `minirunc delete "
                         "--force %s`" % (file, problem, container_id))


class _Bad(Exception):
    """A shape error at a JSON path (internal to the checks below)."""

    def __init__(self, where, problem):
        super().__init__("%s: %s" % (where, problem) if where else problem)


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


# -- the shape of state.json ----------------------------------------------
# Every field a command reads is checked here, so a damaged file is one line, not a
# traceback somewhere later.  Keys this version does not know are left alone (a newer
# minirunc may add some).

def _shown(value):
    """A short rendering of a bad value for the message (never the whole of a huge one)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(value) if -10**30 < value < 10**30 else "a %s number" % (
            "huge" if value > 0 else "hugely negative")
    if isinstance(value, float):
        return "the number %r" % value
    if isinstance(value, str):
        # JSON's escapes: no newline, control character or lone surrogate gets through.
        return jsontext.dumps(value[:40]) + ("..." if len(value) > 40 else "")
    return "a list" if isinstance(value, list) else "an object"


def _at(where, key):
    """``where.key`` as a JSON path; a key that is not a plain word is quoted and escaped."""
    if key and all(c.isascii() and (c.isalnum() or c in "_-=+:@/ ") for c in key):
        return "%s.%s" % (where, key) if where else key
    return '%s[%s]' % (where, jsontext.dumps(key[:40]))


def _want_text(value, where, path=False, os_string=False):
    """A string; ``os_string``: one the kernel can take (a file name, an argument: no NUL,
    and no lone surrogate but those of undecodable bytes, as Python maps them); ``path``:
    also an absolute, normalized path (the cgroup record's, which minirunc normalizes;
    paths from config.json are taken as they were written)."""
    if not isinstance(value, str):
        raise _Bad(where, "must be a string, found %s" % _shown(value))
    if path or os_string:
        if "\0" in value:
            raise _Bad(where, "must not contain a NUL character")
        try:
            os.fsencode(value)
        except UnicodeEncodeError:
            raise _Bad(where, "holds a lone surrogate: %s" % _shown(value)) from None
    if path and (not value.startswith("/") or os.path.normpath(value) != value):
        raise _Bad(where, "must be an absolute, normalized path, found %s" % _shown(value))
    return value


def _want_int(value, where, low, high):
    if type(value) is not int:
        raise _Bad(where, "must be an integer, found %s" % _shown(value))
    if not low <= value <= high:
        raise _Bad(where, "must be between %d and %d, found %s" % (low, high, _shown(value)))
    return value


def _want(value, kind, where):
    if not isinstance(value, kind):
        raise _Bad(where, "must be %s, found %s" % (
            "an object" if kind is dict else "a list" if kind is list else "a boolean",
            _shown(value)))
    return value


def _text_map(value, where):
    for key, item in _want(value, dict, where).items():
        _want_text(key, where)
        _want_text(item, _at(where, key))


def _text_list(value, where, path=False, os_string=False):
    for i, item in enumerate(_want(value, list, where)):
        _want_text(item, "%s[%d]" % (where, i), path, os_string)


def _check_hooks(value, where):
    for kind, entries in _want(value, dict, where).items():
        _want_text(kind, where)
        for i, hook in enumerate(_want(entries, list, _at(where, kind))):
            at = "%s[%d]" % (_at(where, kind), i)
            _want(hook, dict, at)
            for key in ("where", "path", "args", "env", "timeout"):
                if key not in hook:
                    raise _Bad("%s.%s" % (at, key), "is missing")
            _want_text(hook["where"], at + ".where")
            _want_text(hook["path"], at + ".path", os_string=True)
            _text_list(hook["args"], at + ".args", os_string=True)
            if hook["env"] is not None:
                _text_list(hook["env"], at + ".env", os_string=True)
                for j, entry in enumerate(hook["env"]):
                    if "=" not in entry:
                        raise _Bad("%s.env[%d]" % (at, j), "must be NAME=VALUE, found %s"
                                   % _shown(entry))
            if hook["timeout"] is not None:
                _want_int(hook["timeout"], at + ".timeout", 0, (1 << 32) - 1)


def check_cgroup(value, where="cgroup"):
    """The cgroup record (see cgroups/base.py ``record()``): the driver and its absolute
    directories, each strictly under one of the recorded cgroup mounts (so no damage can
    make `delete` remove a mount point or a directory elsewhere)."""
    if value is None:
        return
    _want(value, dict, where)
    driver = value.get("driver")
    if driver not in CGROUP_DRIVERS:
        raise _Bad(where + ".driver", "must be one of %s, found %s"
                   % (", ".join(CGROUP_DRIVERS), _shown(driver)))
    if driver == "none":
        return
    mounts = []
    if driver in ("v1", "hybrid"):
        for key in ("paths", "mounts"):
            _text_map(value.get(key), "%s.%s" % (where, key))
            for name, path in value[key].items():
                _want_text(path, _at("%s.%s" % (where, key), name), path=True)
        mounts += value["mounts"].values()
    if driver in ("v2", "hybrid"):
        for key in ("unified", "mount"):
            _want_text(value.get(key), "%s.%s" % (where, key), path=True)
        mounts.append(value["mount"])
    for mount in mounts:
        if mount == "/":
            raise _Bad(where + ".mount", 'must be a cgroup mount point, not "/"')
    dirs = [("%s.unified" % where, value.get("unified"))] if driver != "v1" else []
    dirs += [(_at(where + ".paths", k), v) for k, v in (value.get("paths") or {}).items()]
    if value.get("remove") is not None:
        _text_list(value["remove"], where + ".remove", path=True)
        dirs += [("%s.remove[%d]" % (where, i), d) for i, d in enumerate(value["remove"])]
    if value.get("freezer") is not None:
        freezer = _want_text(value["freezer"], where + ".freezer", path=True)
        if os.path.basename(freezer) not in ("freezer.state", "cgroup.freeze"):
            raise _Bad(where + ".freezer", "must name a freezer.state or cgroup.freeze file, "
                       "found %s" % _shown(freezer))
        dirs.append((where + ".freezer", os.path.dirname(freezer)))
    if value.get("keep") is not None:
        for d, before in _want(value["keep"], dict, where + ".keep").items():
            at = _at(where + ".keep", d)
            _want_text(d, at, path=True)
            dirs.append((at, d))
            if before is not None:
                _text_list(before, at, path=True)
                dirs += [("%s[%d]" % (at, i), sub) for i, sub in enumerate(before)]
    _check_owner(value.get("owner"), where + ".owner")
    for at, d in dirs:
        if d is None:
            continue
        if not any(d.startswith(m.rstrip("/") + "/") for m in mounts):
            raise _Bad(at, "%s is not under a recorded cgroup mount" % _shown(d))


def _check_owner(value, where):
    """cgroups/owner.py identity(): what tells the container's processes from others."""
    if value is None:
        return
    _want(value, dict, where)
    _want_int(value.get("pid"), where + ".pid", 1, PID_MAX)
    if value.get("start") is not None:
        _want_int(value["start"], where + ".start", 0, U64_MAX)
    for key in ("mntns", "pidns"):
        ns = value.get(key)
        if ns is None:
            continue
        at = "%s.%s" % (where, key)
        if len(_want(ns, list, at)) != 2:
            raise _Bad(at, "must be [device, inode], found %s" % _shown(ns))
        for i, number in enumerate(ns):
            _want_int(number, "%s[%d]" % (at, i), 0, U64_MAX)


def check_state(data, container_id):
    """Raise _Bad (JSON path: problem) unless ``data`` has the shape minirunc writes."""
    _want(data, dict, "")
    if "id" in data and data["id"] != container_id:
        _want_text(data["id"], "id")
        raise _Bad("id", "is %s, but the directory is that of container %s"
                   % (_shown(data["id"]), container_id))
    _want_int(data.get("pid"), "pid", 0, PID_MAX)
    if data.get("pid_start") is not None or data["pid"]:
        _want_int(data.get("pid_start"), "pid_start", 0, U64_MAX)
    for key in ("ociVersion", "bundle", "rootfs", "created", "owner"):
        if key in data:
            _want_text(data[key], key, os_string=key in ("bundle", "rootfs"))
    for key in ("creating", "noNewKeyring"):
        if key in data:
            _want(data[key], bool, key)
    if data.get("annotations") is not None:
        _text_map(data["annotations"], "annotations")
    if data.get("resources") is not None:
        _want(data["resources"], dict, "resources")
    if data.get("devicePaths") is not None:
        _text_list(data["devicePaths"], "devicePaths", os_string=True)
    if data.get("hooks") is not None:
        _check_hooks(data["hooks"], "hooks")
    check_cgroup(data.get("cgroup"))


# -- the init record ---------------------------------------------------------
# <root>/<id>/init: "key=value" lines, "version=1" first and "end=1" last (a reader that
# does not find both treats the record as torn).  Values are %-escaped (%, newline, NUL).
# Unknown keys are ignored, so the record can grow; a new meaning needs a new version.

def _escape(text):
    return text.replace("%", "%25").replace("\n", "%0A").replace("\0", "%00")


_UNESCAPES = {"25": "%", "0A": "\n", "00": "\0"}


def _unescape(text):
    if "%" not in text:
        return text
    parts = text.split("%")
    return parts[0] + "".join(_UNESCAPES.get(p[:2], "%" + p[:2]) + p[2:] for p in parts[1:])


def pid_namespace(pid):
    """The inode of the pid namespace of ``pid``, or None if it is gone."""
    try:
        return os.stat("/proc/%d/ns/pid" % pid).st_ino
    except OSError:
        return None


def init_record_text(data, pidns=None):
    """The init record for state ``data`` (and the init's pid namespace inode): what
    `delete --force` needs without state.json."""
    lines = ["version=" + INIT_RECORD_VERSION, "id=" + _escape(data.get("id", ""))]
    lines += _pid_lines(data, pidns)
    cgroup = data.get("cgroup")
    if cgroup is not None:
        if cgroup.get("freezer"):
            lines.append("freezer=" + _escape(cgroup["freezer"]))
        lines.append("cgroup=" + _escape(jsontext.dumps(cgroup)))
    if "poststop" in (data.get("hooks") or {}):
        lines.append("poststop=1")
    lines.append("end=1")
    return "\n".join(lines) + "\n"


def _pid_lines(data, pidns):
    if not data.get("pid"):
        return []
    lines = ["pid=%d" % data["pid"]]
    if data.get("pid_start") is not None:
        lines.append("pid_start=%d" % data["pid_start"])
    if pidns is not None:
        lines.append("pidns=%d" % pidns)
    return lines


# The `state` document with these two placeholders is cut around them for the door: a
# JSON string holds no raw newline, so this text can only be the document's own lines.
_DOOR_CUT = '\n  "pid": 0,\n  "status": ""'
# The same for `list --format json`'s compact documents: a quote inside a string is
# escaped, and the annotations (the only object) come after pid and status.
_DOOR_LIST_CUT = ',"pid":0,"status":""'


def door_record_text(data, pidns, state_blob):
    """<root>/<id>/door, what the C front door (native/door.c) reads instead of JSON
    (docs/design.md, "The front door"): the init record's layout with the pid fields, the
    freezer file, state_sum (ties it to the very state.json written before it: any other
    state.json sends the door to Python), the `state` output around `"pid": N,` and
    `"status": "S"`, starthooks (a case the door leaves to Python), and last but one the
    checksum of every byte above it."""
    import binascii
    head, cut, tail = jsontext.dumps(state_document(data, 0, ""), indent=2).partition(_DOOR_CUT)
    lines = ["version=" + DOOR_RECORD_VERSION, "id=" + _escape(data.get("id", ""))]
    lines += _pid_lines(data, pidns)
    freezer = (data.get("cgroup") or {}).get("freezer")
    if freezer:
        lines.append("freezer=" + _escape(freezer))
    lines.append("state_sum=%08x:%d" % (binascii.crc32(state_blob), len(state_blob)))
    if cut:
        lines += ["state_head=" + _escape(head), "state_tail=" + _escape(tail)]
    head, cut, tail = jsontext.dumps(state_document(data, 0, "")).partition(_DOOR_LIST_CUT)
    if cut:
        lines += ["list_head=" + _escape(head), "list_tail=" + _escape(tail)]
    # `list`'s table columns as commands._shown makes them
    lines += ["list_%s=%s" % (key, _escape(table_text(data.get(key, ""))))
              for key in ("bundle", "created", "owner")]
    hooks = data.get("hooks") or {}
    if "startContainer" in hooks or "poststart" in hooks:
        lines.append("starthooks=1")
    lines += _door_delete_lines(data)
    text = "\n".join(lines) + "\n"
    return text + "record_sum=%08x\nend=1\n" % binascii.crc32(
        text.encode("utf-8", "surrogateescape"))


def table_text(text):
    """A field of `list`'s table: a path of undecodable bytes (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode()


def _door_delete_lines(data):
    """What the door's `delete` of a stopped container removes besides the state directory
    (container.delete -> destroy_cgroup): ``delete=1`` when that is only rmdir of empty
    directories this container made — its cgroup directories in the driver's order
    (``cgroup_dir``: one that will not go sends the door to Python) and the parents made
    for them (``cgroup_parent``: removed if empty, as the driver's destroy does).  Nothing
    (Python's delete) with poststop hooks, or when a directory existed before the container
    (kept, with its sub-cgroups: the driver's rules) or the record does not say what it made."""
    if "poststop" in (data.get("hooks") or {}):
        return []
    record = data.get("cgroup")
    if not record or record.get("driver") in (None, "none"):
        return ["delete=1"]
    remove = record.get("remove")
    if not isinstance(remove, list):
        return []
    from .cgroups import driver_from_record
    dirs = driver_from_record(record).dirs()
    if not set(dirs) <= set(remove):
        return []
    return (["delete=1"] + ["cgroup_dir=" + _escape(d) for d in dirs] +
            ["cgroup_parent=" + _escape(d) for d in remove if d not in dirs])


def read_init_record(directory, container_id):
    """The init record as {"pid", "pid_start", "pidns", "cgroup", "poststop"} (absent
    fields are None), or None if there is none; DamagedStateError if it is torn or
    damaged."""
    path = os.path.join(directory, INIT_RECORD)
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        return None
    except OSError as e:
        from .errors import errno_text
        raise DamagedStateError(container_id, path, "cannot read it: " + errno_text(e.errno)) \
            from None
    try:
        return _parse_init_record(raw, container_id)
    except _Bad as e:
        raise DamagedStateError(container_id, path, str(e)) from None


def _parse_init_record(raw, container_id):
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise _Bad("", "is not UTF-8 text") from None
    if lines[:1] != ["version=" + INIT_RECORD_VERSION]:
        raise _Bad("version", "must be %s on the first line" % INIT_RECORD_VERSION)
    if lines[-2:] != ["end=1", ""]:
        raise _Bad("end", "the record is torn (no end=1 line at its end)")
    fields = {}
    for line in lines[1:-2]:
        key, eq, value = line.partition("=")
        if not eq:
            raise _Bad("", "line %s is not key=value" % _shown(line))
        fields[key] = _unescape(value)
    if fields.get("id") != container_id:
        raise _Bad("id", "is %s, not %s" % (_shown(fields.get("id")), container_id))
    record = {"pid": 0, "pid_start": None, "pidns": None, "cgroup": None,
              "poststop": fields.get("poststop") == "1"}
    for key, high in (("pid", PID_MAX), ("pid_start", U64_MAX), ("pidns", U64_MAX)):
        if key in fields:
            text = fields[key]
            if not text.isdigit() or len(text) > 20:
                raise _Bad(key, "must be a number, found %s" % _shown(text))
            record[key] = _want_int(int(text), key, 0, high)
    if "cgroup" in fields:
        try:
            record["cgroup"] = jsontext.loads(fields["cgroup"])
        except (ValueError, RecursionError) as e:
            raise _Bad("cgroup", "is not JSON (%s)" % e) from None
        check_cgroup(record["cgroup"])
    return record


def write_init_record(directory, text):
    """Write the init record atomically (temp file, rename)."""
    write_atomic(os.path.join(directory, INIT_RECORD), text.encode("utf-8", "surrogateescape"),
                 "write init record")


def write_atomic(path, blob, what, mode=0o600, tmp=None):
    """Write ``blob`` to ``path`` so that a reader sees the old file or the new one, never
    half of one: a temporary file renamed over it.  Not fsync'd: what these files describe
    (live processes, kernel cgroups) does not outlive a power loss, and an fsync costs
    1-4 ms on an ext4 /run (docs/design.md, "What a crash can leave").  A failure is a
    HostError naming ``what``."""
    tmp = tmp or "%s.tmp-%d" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            os.write(fd, blob)
        finally:
            os.close(fd)
        _replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise HostError(what, path, e.errno) from None


def _replace(tmp, path):
    """rename(tmp, path), but over an existing regular file the two are swapped
    (RENAME_EXCHANGE) and the old one unlinked: ext4 starts writeback of a file renamed
    over another (auto_da_alloc), ~0.2 ms per state write on an ext4 /run, and not of one
    exchanged with it (~0.02 ms).  Readers see the old file or the new one either way.  No
    file there yet, something else there (damage: a directory stays an error), or the
    exchange refused (a kernel or filesystem without it, a seccomp filter): a rename."""
    try:
        regular = S_ISREG(os.lstat(path).st_mode)
    except OSError:
        regular = False
    if regular:
        from . import native
        if native.rename_exchange(tmp, path) == 0:
            try:
                os.unlink(tmp)   # now the old file
            except OSError:
                pass             # a stale temp file, removed with the directory
            return
    os.rename(tmp, path)


def _remove_tree(path):
    """``rm -r`` that never follows a symlink (shutil is not in the single binary)."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(top, name))
            except OSError:
                pass
        for name in dirs:
            entry = os.path.join(top, name)
            try:
                os.rmdir(entry)
            except NotADirectoryError:      # a symlink to a directory: listed, not entered
                os.unlink(entry)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass

class Container:
    """The on-disk record of one container plus its live status."""

    def __init__(self, root, container_id):
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.data = None
        self._lock_fd = None
        self._record_text = None
        self._record_pid = self._record_pidns = None

    # -- locking ---------------------------------------------------------
    def lock(self, shared=False):
        """Take the container's flock; raise if the container does not exist."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StateError(self.id, "does not exist (see `minirunc list`)") from None
        except OSError as e:
            raise HostError("open the state directory", self.dir, e.errno) from None
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        # A delete may have removed the directory while we waited for the lock.
        if os.fstat(fd).st_nlink == 0:
            os.close(fd)
            raise StateError(self.id, "does not exist (see `minirunc list`)")
        self._lock_fd = fd
        return self

    def busy(self):
        """True while another command holds the container's lock exclusively (a create
        that has not written state.json yet, or a delete removing it)."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return True     # gone meanwhile: nothing to report
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def recorded_init(self):
        """(pid, error) of the init the init record names, pid 0 unless it is alive (for
        `list` of a damaged container); error is the record's own damage or None."""
        try:
            record = read_init_record(self.dir, self.id)
        except DamagedStateError as e:
            return 0, e
        if not record or not record["pid"]:
            return 0, None
        start = process_start_time(record["pid"])
        return (record["pid"] if start is not None and start == record["pid_start"] else 0), None

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
            path = os.path.join(self.dir, name)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                _remove_tree(path)  # only damage puts a directory here (say, at state.json)
            except OSError as e:
                raise HostError("remove", path, e.errno) from None
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise HostError("remove the state directory", self.dir, e.errno) from None

    # -- state.json -------------------------------------------------------
    def load(self):
        """Read state.json and check its shape and its agreement with the init record;
        any damage is a DamagedStateError (one line naming the file and the field)."""
        path = os.path.join(self.dir, STATE_FILE)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise StateError(self.id, "has no state file (creation did not finish); "
                             "remove it with `minirunc delete --force %s`" % self.id) from None
        except OSError as e:
            from .errors import errno_text
            raise DamagedStateError(self.id, path, "cannot read it: " + errno_text(e.errno)) \
                from None
        try:
            data = jsontext.loads(raw)
        except (ValueError, RecursionError) as e:
            raise DamagedStateError(self.id, path, "is not valid JSON (%s)"
                                    % str(e)[:200]) from None
        try:
            check_state(data, self.id)
        except _Bad as e:
            raise DamagedStateError(self.id, path, str(e)) from None
        self._check_record(data, path)
        self.data = data
        return self.data

    def _check_record(self, data, path):
        """state.json and the init record are written together: a disagreement about the
        init or its cgroups means one of them was damaged.  A record that is missing (a
        container of an older minirunc) or itself damaged is no reason to distrust a
        well-formed state.json."""
        try:
            record = read_init_record(self.dir, self.id)
        except DamagedStateError:
            return
        if record is None:
            return
        if data["pid"] == 0 and data.get("creating") and record["pid"]:
            # The creator died between the two writes of the pid: the record is the newer.
            data["pid"], data["pid_start"] = record["pid"], record["pid_start"]
            data["cgroup"] = record["cgroup"]
        init_record = os.path.join(self.dir, INIT_RECORD)
        for key in ("pid", "pid_start"):
            if data.get(key) != record[key]:
                raise DamagedStateError(self.id, path, "%s: is %s, but %s has %s"
                                        % (key, _shown(data.get(key)), init_record,
                                           _shown(record[key])))
        if data.get("cgroup") != record["cgroup"]:
            raise DamagedStateError(self.id, path, "cgroup: differs from the cgroup record "
                                    "in %s" % init_record)
        self._record_pid, self._record_pidns = record["pid"], record["pidns"]

    def save(self, data):
        """Write state.json atomically (temp file, rename), after the init record."""
        pid = data.get("pid")
        if pid and pid != self._record_pid:
            # The init's pid namespace goes into the record with its pid (a second check,
            # besides the start time, that a pid is still the container's init).
            self._record_pid, self._record_pidns = pid, pid_namespace(pid)
        pidns = self._record_pidns if pid else None
        record = init_record_text(data, pidns)
        if record != self._record_text:
            # First: if this process dies between the two writes, the record is the newer.
            write_init_record(self.dir, record)
            self._record_text = record
        blob = jsontext.dumps(data).encode()
        write_atomic(os.path.join(self.dir, STATE_FILE), blob, "write state file")
        if not data.get("creating"):
            # Last: the door checks it against state.json and leaves anything that does
            # not match to Python (so `creating` needs none).
            write_atomic(os.path.join(self.dir, DOOR_RECORD),
                         door_record_text(data, pidns, blob).encode("utf-8", "surrogateescape"),
                         "write door record")
        self.data = data

    # -- live status ------------------------------------------------------
    @property
    def pid(self):
        return self.data.get("pid", 0)

    def init_alive(self):
        pid = self.pid
        if not pid:
            return False
        start = process_start_time(pid)
        return start is not None and start == self.data.get("pid_start")

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
        return state_document(self.data, self.data.get("pid", 0) if status != "stopped" else 0,
                              status, self.id)


def state_document(d, pid, status, container_id=None):
    """The `state` document of state ``d`` with this pid and status (also pre-rendered
    into the door record, door_record_text)."""
    return {
        "ociVersion": d.get("ociVersion", ""),
        "id": d.get("id", "") if container_id is None else container_id,
        "pid": pid,
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
    write_atomic(path, str(pid).encode(), "write pid file", 0o644, tmp)
