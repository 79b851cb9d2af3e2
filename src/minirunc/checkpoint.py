"""`checkpoint` and `restore` with CRIU, as runc 1.1 does them (libcontainer's Checkpoint
and Restore), as library calls; `commands.py` only maps runc's flags onto them.

What CRIU is told, and why (`criu.py` runs it, `criu_rpc.py` encodes the messages):
- ``root``: the container's rootfs; the image records mounts relative to it.
- External mounts: every bind mount of the plan (config binds and the cgroup binds of a
  v1/hybrid host) is dumped as external under its destination and mapped back onto its
  host source at restore; the masked files (binds of /dev/null) are dumped as the external
  `/dev/null`; device nodes that are binds (user namespaces) likewise.
- Namespaces: CRIU dumps the container's own; a network or pid namespace joined by path is
  declared external (`net[inode]:extRootNetNS`) and handed back as an fd at restore.
- Cgroups: the dump freezes through the container's freezer and records the cgroups; the
  restore makes the container's cgroups first (same driver and paths as `create`), puts
  CRIU in them and gives their paths as `cg_root`, so the processes land there.
- The console: the pty master is outside the dumped tree; with `orphan_pts_master` CRIU
  makes a new pair at restore and passes the master back, which goes to --console-socket
  (or is relayed by a foreground restore). `--shell-job` makes the tty CRIU's own stdin.
- Stdio pipes (containerd's) are recorded in descriptors.json in the image, as runc does,
  and re-attached to the restoring process's own stdio with `inherit_fd`.
- Seccomp, capabilities and masked/read-only mounts are part of the process and mount
  images; CRIU restores them as they were.

After a dump without --leave-running the container is gone (CRIU has killed it; the
cgroups, poststop hooks and state go as with `delete`).  A restore writes state.json with
the restored pid and its start time, and no start socket, so its status is `running`.
"""

import json
import os
import stat

from . import criu, log
from . import criu_rpc as rpc
from .errors import HostError, StateError, UsageError
from .state import Container, check_id, process_start_time, write_pid_file

DESCRIPTORS = "descriptors.json"     # runc's name: the init's fds 0-2 at dump time
EXTERNAL_STDIO = "minirunc-stdio.json"   # {fd: CRIU external-file id} of host stdio files
NS_EXTERNAL = {"network": ("net", "extRootNetNS"), "pid": ("pid", "extRootPidNS")}
DUMP_LOG, RESTORE_LOG = "dump.log", "restore.log"


class Options:
    """runc's CRIU options (its CriuOpts), from the command line."""

    def __init__(self, image_path=None, work_path=None, leave_running=False,
                 tcp_established=False, ext_unix_sk=False, shell_job=False, file_locks=False,
                 pre_dump=False, parent_path=None, manage_cgroups_mode=None, empty_ns=0,
                 auto_dedup=False):
        self.image_path = image_path
        self.work_path = work_path
        self.leave_running = leave_running
        self.tcp_established = tcp_established
        self.ext_unix_sk = ext_unix_sk
        self.shell_job = shell_job
        self.file_locks = file_locks
        self.pre_dump = pre_dump
        self.parent_path = parent_path
        self.manage_cgroups_mode = manage_cgroups_mode
        self.empty_ns = empty_ns
        self.auto_dedup = auto_dedup

    def common(self):
        """The request fields dump and restore share."""
        opts = {"shell_job": self.shell_job, "ext_unix_sk": self.ext_unix_sk,
                "tcp_established": self.tcp_established, "file_locks": self.file_locks,
                "auto_dedup": self.auto_dedup, "orphan_pts_master": True,
                "notify_scripts": True, "manage_cgroups": True, "log_level": 4}
        if self.empty_ns:
            opts["empty_ns"] = self.empty_ns
        if self.manage_cgroups_mode is not None:
            opts["manage_cgroups_mode"] = self.manage_cgroups_mode
        # CRIU locks the container's network while it works, with iptables-restore by
        # default; a host without iptables gets its nftables method (built into CRIU).
        if not criu.which("iptables-restore"):
            opts["network_lock"] = rpc.NETWORK_LOCK_NFTABLES
        return opts


def parse_cg_mode(text):
    """--manage-cgroups-mode: runc's names (soft, full, strict, ignore; props, none too)."""
    if text is None or text == "":
        return None
    try:
        return rpc.CG_MODES[text.lower()]
    except KeyError:
        raise UsageError("--manage-cgroups-mode must be one of %s, not %r"
                         % (", ".join(sorted(rpc.CG_MODES)), text)) from None


def parse_empty_ns(values):
    """--empty-ns NS (repeatable): namespaces CRIU should create empty; only network,
    as runc allows."""
    mask = 0
    for value in values or ():
        if value not in ("network", "net"):
            raise UsageError("--empty-ns: only 'network' is supported, not %r" % value)
        mask |= 0x40000000
    return mask


def _open_dir(path, flag, create):
    """An fd (inheritable, for CRIU) of an image or work directory given by ``flag``."""
    if create:
        try:
            os.makedirs(path, 0o700, exist_ok=True)
        except OSError as e:
            raise HostError("%s: create the directory" % flag, path, e.errno) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise UsageError("%s %s: no such directory%s" % (
            flag, path, " (make it with `minirunc checkpoint --image-path %s ID`)" % path
            if flag == "--image-path" else "")) from None
    except OSError as e:
        raise HostError("%s: open the directory" % flag, path, e.errno) from None
    os.set_inheritable(fd, True)
    return fd


def _ext_mounts(plan, dump):
    """ext_mnt entries: key = mount point in the container; at dump the value is the
    external name (the destination, or /dev/null for masked files), at restore the host
    path to mount there."""
    entries = []
    seen = set()

    def add(key, value):
        if key not in seen:
            seen.add(key)
            entries.append({"key": key, "val": value})

    for name, values in plan.records:
        if name == "MOUNT" and values[0] == 1:             # kind 1: a bind mount
            source, dest = values[1], values[2]
            add(dest, dest if dump else source)
        elif name == "DEVICE" and values[7]:              # a node that may be a host bind
            add(values[0], values[0])
    return entries


def _masked_files(pid, plan):
    """The masked paths that are files in the container (binds of /dev/null; masked
    directories are tmpfs mounts CRIU dumps itself)."""
    out = []
    for name, values in plan.records:
        if name != "MASKED":
            continue
        try:
            st = os.stat("/proc/%d/root%s" % (pid, values[0]))
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            out.append(values[0])
    return out


def _joined_namespaces(config):
    """[(criu name, key, path)] of the network/pid namespaces the container joined by path."""
    out = []
    for ns_type, (name, key) in NS_EXTERNAL.items():
        ns = config.linux.namespace(ns_type)
        if ns is not None and ns.path:
            out.append((name, key, ns.path))
    return out


def _absolute(path, flag):
    """CRIU wants absolute paths; a relative --image-path is taken from the cwd."""
    if not path:
        raise UsageError("%s must not be empty" % flag)
    return os.path.abspath(path)


def _make_mountpoints(config):
    """Create the mount points a fresh rootfs lacks, as runc's prepareCriuRestoreMounts
    does: CRIU mounts onto them but does not make them, and a restore may get a new rootfs
    (containerd restores into a new snapshot, where `run` had made /run, /data, ...).
    Not under tmpfs destinations (CRIU restores those trees itself).  Made through
    O_NOFOLLOW directory fds: a symlink in the rootfs is not followed (that mount point is
    left to CRIU, which reports it)."""
    tmpfs = [m.destination.rstrip("/") + "/" for m in config.mounts if m.type == "tmpfs"]
    for m in config.mounts:
        dest = os.path.normpath("/" + m.destination)
        if dest == "/" or any(dest.startswith(t) for t in tmpfs):
            continue
        _make_mountpoint(config.root_path, dest.strip("/").split("/"),
                         m.is_bind and not m.source_is_dir)


def _make_mountpoint(rootfs, parts, is_file):
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(rootfs, flags)
    except OSError:
        return
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            try:
                if last and is_file:
                    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW |
                                     os.O_CLOEXEC, 0o644, dir_fd=fd))
                    return
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(name, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as e:
        log.debug("restore: mount point /%s not made: %s" % ("/".join(parts), e))
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- checkpoint

def checkpoint(root, container_id, options, criu_path=None):
    """Dump a running container into ``options.image_path`` (runc's default: ./checkpoint).
    Without --leave-running (or with --pre-dump) the container is then removed."""
    from .config import load_bundle
    from .plan import build_plan
    check_id(container_id)
    binary = criu.find(criu_path)
    image_path = _absolute(options.image_path or "checkpoint", "--image-path")
    work_path = _absolute(options.work_path, "--work-path") if options.work_path else None
    with Container(root, container_id).lock() as c:
        c.load()
        status = c.status()
        if status not in ("running", "paused"):
            raise StateError(container_id, "cannot checkpoint a %s container (only a running "
                             "one can be checkpointed)" % status)
        config = load_bundle(c.data.get("bundle") or ".")
        plan = build_plan(config)
        pid = c.pid
        fds = [_open_dir(image_path, "--image-path", create=True)]
        thaw, resp = None, {}
        try:
            opts = options.common()
            opts.update(images_dir_fd=fds[0], pid=pid, root=c.data.get("rootfs"),
                        leave_running=options.leave_running or None,
                        log_file=DUMP_LOG)
            if work_path:
                fds.append(_open_dir(work_path, "--work-path", create=True))
                opts["work_dir_fd"] = fds[1]
            if options.parent_path:
                # CRIU reads it relative to the image directory, as runc passes it on.
                opts.update(parent_img=options.parent_path, track_mem=True)
            elif options.pre_dump:
                opts["track_mem"] = True
            freezer = ((c.data.get("cgroup") or {}).get("freezer"))
            if freezer:
                opts["freeze_cgroup"] = os.path.dirname(freezer)
                if status == "running" and not options.pre_dump:
                    # CRIU polls the freezer every 100 ms; frozen here first (polled
                    # every ms by the driver) it finds it done.  Thawed again below
                    # unless the container is gone.
                    thaw = _freeze(c)
            external = ["%s[%d]:%s" % (name, os.stat(path).st_ino, key)
                        for name, key, path in _joined_namespaces(config)]
            if not options.pre_dump:
                ext = _ext_mounts(plan, dump=True)
                ext += [{"key": p, "val": "/dev/null"} for p in _masked_files(pid, plan)]
                opts["ext_mnt"] = ext
                _write_descriptors(image_path, pid)
                stdio = _external_stdio(pid)
                _write_external_stdio(image_path, stdio)
                external += sorted({key for key, _ in stdio.values()})
            if external:
                opts["external"] = external
            request = {"type": rpc.PRE_DUMP if options.pre_dump else rpc.DUMP, "opts": opts}
            log_path = os.path.join(work_path or image_path, DUMP_LOG)
            session = criu.Session(binary, fds)
            try:
                criu.version(binary, session)
                if options.pre_dump:
                    _check_mem_track(binary, session)
                resp = criu.exchange(session, request, what="checkpoint")
            finally:
                session.close()
        finally:
            for fd in fds:
                os.close(fd)
            if thaw is not None and (options.leave_running or not resp.get("success")):
                thaw()
        if not resp.get("success"):
            gone = not c.init_alive()
            raise criu.CriuError("checkpoint of %s failed: %s%s%s" % (
                container_id, criu.failure_text(resp, log_path), criu.check_hint(binary),
                "; the container was stopped by CRIU (delete it)" if gone and not
                options.leave_running else "; the container is still %s" % status
                if not gone else ""))
        if options.leave_running or options.pre_dump:
            if options.pre_dump:
                log.debug("container %s: pre-dump in %s" % (container_id, image_path))
            return
        # CRIU has killed the processes; what is left is the container's record.
        from .container import _run_poststop, destroy_cgroup
        destroy_cgroup(c)
        _run_poststop(c.data)
        c.remove_dir()
    log.debug("container %s checkpointed into %s" % (container_id, image_path))


def _freeze(c):
    """Freeze the container's cgroup; returns the function that thaws it (None if this
    driver cannot freeze: CRIU then freezes, or stops the tasks with ptrace)."""
    from .cgroups import driver_from_record
    driver = driver_from_record(c.data.get("cgroup"))
    if not driver.can_freeze():
        return None
    driver.freeze()
    return driver.thaw


def _check_mem_track(binary, session):
    """--pre-dump needs the kernel's soft-dirty bits; ask CRIU first, as runc does."""
    resp = criu.exchange(session, {"type": rpc.FEATURE_CHECK, "keep_open": True,
                                   "features": {"mem_track": True}}, what="--pre-dump")
    if not resp.get("success") or not resp.get("features", {}).get("mem_track"):
        raise UsageError("--pre-dump: CRIU (%s) reports that this kernel cannot track memory "
                         "changes (no soft-dirty bits: CONFIG_MEM_SOFT_DIRTY); checkpoint "
                         "without --pre-dump" % binary)


def _write_descriptors(image_path, pid):
    """The init's stdio as /proc shows it ("pipe:[123]", "/dev/null"), runc's
    descriptors.json: the restore re-attaches pipes to its own stdio."""
    names = []
    for fd in range(3):
        try:
            names.append(os.readlink("/proc/%d/fd/%d" % (pid, fd)))
        except OSError:
            names.append("")
    path = os.path.join(image_path, DESCRIPTORS)
    try:
        with open(path, "w") as f:
            json.dump(names, f)
    except OSError as e:
        raise HostError("write", path, e.errno) from None


def _external_stdio(pid):
    """CRIU's external-file ids (``file[mnt_id:inode]``, hex) of the init's stdio files
    that live on a mount outside the container's view (a host log file, the host's
    /dev/null): CRIU cannot dump those unless they are declared external, and the
    restore hands it the restoring process's own fd of the same number instead.
    Returns {fd: (id, st_mode)}."""
    try:
        with open("/proc/%d/mountinfo" % pid) as f:
            visible = {line.split(None, 1)[0] for line in f}
    except OSError:
        return {}
    out = {}
    for fd in range(3):
        try:
            st = os.stat("/proc/%d/fd/%d" % (pid, fd))
            with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        mnt_id = fields.get("mnt_id", "").strip()
        # Only regular files and mem devices (null, zero...) are dumped as paths.
        is_file = stat.S_ISREG(st.st_mode) or (stat.S_ISCHR(st.st_mode)
                                               and os.major(st.st_rdev) == 1)
        if is_file and mnt_id.isdigit() and mnt_id not in visible:
            out[fd] = ("file[%x:%x]" % (int(mnt_id), st.st_ino), st.st_mode)
    return out


def _write_external_stdio(image_path, ids):
    path = os.path.join(image_path, EXTERNAL_STDIO)
    try:
        with open(path, "w") as f:
            json.dump({str(fd): {"id": key, "mode": mode} for fd, (key, mode) in ids.items()}, f)
    except OSError as e:
        raise HostError("write", path, e.errno) from None


def _read_external_stdio(image_path):
    """{fd: (id, st_mode)} as _external_stdio wrote them."""
    try:
        with open(os.path.join(image_path, EXTERNAL_STDIO)) as f:
            data = json.load(f)
        return {int(fd): (entry["id"], int(entry["mode"])) for fd, entry in data.items()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


_STDIO_NAMES = ("stdin", "stdout", "stderr")


def _check_stdio_kind(fd, mode):
    """CRIU reopens an external stdio file through our fd and insists on the mode the file
    had at the checkpoint (type and permissions): say so in one line before it fails."""
    try:
        ours = os.fstat(fd).st_mode
    except OSError:
        ours = None
    if ours == mode:
        return
    def kind(m):
        if m is None:
            return "closed"
        what = ("a regular file" if stat.S_ISREG(m) else "a character device"
                if stat.S_ISCHR(m) else "a pipe" if stat.S_ISFIFO(m) else "a socket"
                if stat.S_ISSOCK(m) else "another kind of file")
        return "%s (mode %04o)" % (what, stat.S_IMODE(m))
    raise UsageError("restore: the container's %s was %s at the checkpoint, but ours (fd %d) "
                     "is %s: CRIU reattaches it only to the same kind of file with the same "
                     "mode (e.g. run the restore with %s redirected to /dev/null if it was "
                     "/dev/null, or to a file like the one it was)"
                     % (_STDIO_NAMES[fd], kind(mode), fd, kind(ours), _STDIO_NAMES[fd]))


def _read_descriptors(image_path):
    try:
        with open(os.path.join(image_path, DESCRIPTORS)) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return []
    return names if isinstance(names, list) else []


# --------------------------------------------------------------------------- restore

def restore(root, container_id, bundle, options, criu_path=None, console_socket=None,
            pid_file=None, keep_terminal=False, systemd_cgroup=False):
    """Restore a checkpoint as a new running container ``container_id`` with the bundle's
    config.  Returns (pid, pty master or None); the master only when ``keep_terminal``
    (a foreground restore relays it) and there is no console socket.  On failure nothing
    is left: no state, no cgroup, no process."""
    from .config import load_bundle
    from .container import (_check_root, _choose_cgroup, _rfc3339_now, _send_console,
                            _setup_cgroup)
    from .plan import build_plan

    _check_root()
    check_id(container_id)
    binary = criu.find(criu_path)
    image_path = _absolute(options.image_path or "checkpoint", "--image-path")
    work_path = _absolute(options.work_path, "--work-path") if options.work_path else None
    if not os.path.isfile(os.path.join(image_path, "inventory.img")):
        raise UsageError("--image-path %s: %s" % (image_path, "no checkpoint there (no "
                         "inventory.img); make one with `minirunc checkpoint --image-path %s ID`"
                         % image_path if os.path.isdir(image_path) else "no such directory"))
    bundle = os.path.abspath(bundle)
    config = load_bundle(bundle)
    plan = build_plan(config)
    if plan.terminal and not options.shell_job and console_socket is None and not keep_terminal:
        raise UsageError("process.terminal is true: pass --console-socket PATH to receive the "
                         "restored terminal, --shell-job, or restore in the foreground")
    external_stdio = _read_external_stdio(image_path)
    for fd, (_, mode) in sorted(external_stdio.items()):
        _check_stdio_kind(fd, mode)

    container = Container(root, container_id).make_dir()
    state = {"ociVersion": config.oci_version, "id": container_id, "pid": 0, "pid_start": None,
             "bundle": bundle, "rootfs": config.root_path, "created": _rfc3339_now(),
             "owner": "", "annotations": config.annotations, "creating": True,
             "resources": config.linux.resources,
             "devicePaths": [d.path for d in config.linux.devices], "restored": True}
    if config.hooks:
        from . import hooks
        state["hooks"] = hooks.to_record(config.hooks)
    fds, cgroup, master, pid = [], None, None, 0
    try:
        _make_mountpoints(config)
        cgroup = _setup_cgroup(container, state, config,
                               _choose_cgroup(config, container_id, systemd_cgroup),
                               config.linux.resources)
        fds.append(_open_dir(image_path, "--image-path", create=False))
        opts = options.common()
        opts.update(images_dir_fd=fds[0], root=config.root_path, rst_sibling=True,
                    evasive_devices=True, log_file=RESTORE_LOG)
        if work_path:
            fds.append(_open_dir(work_path, "--work-path", create=True))
            opts["work_dir_fd"] = fds[-1]
        ext = _ext_mounts(plan, dump=False)
        if (any(name == "MASKED" for name, _ in plan.records)
                and not any(e["key"] == "/dev/null" for e in ext)):
            ext.append({"key": "/dev/null", "val": "/dev/null"})
        opts["ext_mnt"] = ext
        inherit = []
        for name, key, path in _joined_namespaces(config):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise HostError("open the namespace", path, e.errno) from None
            os.set_inheritable(fd, True)
            fds.append(fd)
            inherit.append({"key": key, "fd": fd})
        # The restored init's stdio pipes and external files become our own fds 0-2,
        # passed to CRIU under new numbers (its own stdout and stderr are /dev/null).
        keys, stdio = set(), {}

        def stdio_fd(fd):
            if fd not in stdio:
                stdio[fd] = os.dup(fd)
                os.set_inheritable(stdio[fd], True)
                fds.append(stdio[fd])
            return stdio[fd]

        for fd, name in enumerate(_read_descriptors(image_path)):
            if isinstance(name, str) and name.startswith("pipe:") and name not in keys:
                keys.add(name)
                inherit.append({"key": name, "fd": stdio_fd(fd)})
        for fd, (key, mode) in sorted(external_stdio.items()):
            if key not in keys:
                keys.add(key)
                inherit.append({"key": key, "fd": stdio_fd(fd)})
        if inherit:
            opts["inherit_fd"] = inherit

        def on_notify(script, notify_pid, fd):
            nonlocal master
            if script == "orphan-pts-master" and fd is not None:
                master = fd
            elif fd is not None:
                os.close(fd)
            if script == "setup-namespaces" and config.hooks:
                from . import hooks
                hooks.run(config.hooks.get("prestart", []) +
                          config.hooks.get("createRuntime", []),
                          hooks.state_json(dict(state, pid=notify_pid), "created"))   # as create's
            elif script == "post-restore" and notify_pid:
                # Only noted: a save (fsync) here would hold CRIU up; until the final
                # save, `delete --force` finds the process through the cgroups.
                state["pid"] = notify_pid

        log_path = os.path.join(work_path or image_path, RESTORE_LOG)
        session = criu.Session(binary, fds)
        try:
            criu.version(binary, session)
            if cgroup.name != "none":
                cgroup.add_pid(session.pid)
                opts["cg_root"] = _cgroup_roots(session.pid)
            resp = criu.exchange(session, {"type": rpc.RESTORE, "opts": opts}, on_notify,
                                 what="restore")
        finally:
            session.close()
        if not resp.get("success"):
            raise criu.CriuError("restore of %s from %s failed: %s%s%s" % (
                container_id, image_path, criu.failure_text(resp, log_path),
                criu.check_hint(binary),
                "; containers with a user namespace are not restorable with CRIU 4.1 (it "
                "reads its images and mounts from inside the namespace)"
                if plan.new_userns else ""))
        pid = resp.get("restore", {}).get("pid") or state["pid"]
        state["pid"] = pid
        state["pid_start"] = process_start_time(pid) if pid else None
        if state["pid_start"] is None:
            raise criu.CriuError("restore of %s: CRIU reported success but the restored "
                                 "process is gone (log: %s)" % (container_id, log_path))
        if master is not None and console_socket is not None:
            _send_console(console_socket, master)
            os.close(master)
            master = None
        elif master is not None and not keep_terminal:
            os.close(master)
            master = None
        del state["creating"]
        container.save(state)
        if pid_file:
            write_pid_file(pid_file, pid)
    except BaseException:
        if master is not None:
            os.close(master)
        _kill_restored(state.get("pid") or pid)
        if cgroup is not None:
            cgroup.destroy()
        from .container import _run_poststop
        _run_poststop(state)         # as a failed create: prestart hooks may have run
        container.remove_dir()
        raise
    finally:
        for fd in fds:
            os.close(fd)
        container.unlock()
    log.debug("container %s restored: init pid %d" % (container_id, pid))
    return pid, master


def _cgroup_roots(pid):
    """cg_root entries from /proc/<pid>/cgroup once CRIU is in the container's cgroups:
    one per v1 controller, and the cgroup2 path as the default for the rest."""
    roots = []
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise HostError("read", "/proc/%d/cgroup" % pid, e.errno) from None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            roots.append({"path": path})
            continue
        for controller in controllers.split(","):
            roots.append({"ctrl": controller, "path": path})
    return roots


def _kill_restored(pid):
    """After a failed restore: kill the restored init if it exists (our child, with
    rst_sibling) and reap it; the cgroup's destroy kills any other process."""
    if not pid:
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
