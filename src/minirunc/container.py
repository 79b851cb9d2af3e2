"""The container lifecycle as library calls: create, start, signal, delete, wait.

`create` builds the plan, starts the C init from a sealed memfd and follows it over the
sync channel until it is ready and waiting for `start`. Every failure on the way kills
what was started and removes the state directory, so a bad config leaves nothing behind.
The CLI (`commands.py`) only turns runc's command line into these calls.
"""

import os
import time

from . import cgroupwarm, faults, log
from .errors import ConfigError, ContainerSetupError, HostError, MiniruncError, StateError, UsageError
from .state import Container, check_id, process_start_time, write_pid_file
from .procfs import write_file

SIGKILL = 9
EACCES = 13
ECONNRESET = 104
EPIPE = 32
CLONE_NEWCGROUP = 0x02000000
# Written only after the runtime's visit of a new cgroup namespace's cgroups (see
# _spawn_in_cgroup): they would count the runtime too.
LATE_RESOURCES = ("pids", "memory")
CLONE_NEWPID = 0x20000000


def _host_root(mappings):
    for container_id, host_id, size in mappings:
        if container_id == 0:
            return host_id
    return -1


def _rfc3339_now():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%09dZ" % (ns % 10**9)


def _check_root():
    """Containers need root (here, or in the user namespace minirunc runs in) and Linux
    4.14 or newer: say so before anything else fails on a cgroup, namespace or syscall."""
    if os.geteuid() != 0:
        raise UsageError("minirunc runs containers as root only (rootless containers are not "
                         "supported): run it as root, e.g. with sudo")
    from .kernelfloor import check_release
    check_release()


def _check_inherited_fds(count):
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError("fd %d is not open, but --preserve-fds/LISTEN_FDS asks to pass "
                             "fds 3 to %d to the container" % (fd, 2 + count)) from None


def _write_id_maps(pid, plan):
    from .plan import map_text
    for name, mappings in (("uid_map", plan.uid_mappings), ("gid_map", plan.gid_mappings)):
        path = "/proc/%d/%s" % (pid, name)
        text = map_text(mappings)
        try:
            write_file(path, text.encode())
        except OSError as e:
            raise HostError("write %s" % name.replace("_", " "), path, e.errno,
                            hint="check linux.%s in config.json" %
                            ("uidMappings" if name == "uid_map" else "gidMappings")) from None


def _kill_and_reap(pid):
    """Kill a half-made container init (our child thanks to CLONE_PARENT) and reap it."""
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _describe_exit(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            import signal
            return "killed by signal %d (%s)" % (sig, signal.Signals(sig).name)
        except ValueError:
            return "killed by signal %d" % sig
    return "exit status %d" % os.WEXITSTATUS(status)


def _launch_init(plan, listen_path, cgroup, on_pid=None, spawn_wrapper=None, on_hooks=None):
    """Start the C init for ``plan`` and follow it until it is ready; returns (pid, pty
    master or None).  Shared by create and exec: the init listens for `S` at
    ``listen_path``; when its `P` arrives, ``on_pid(pid)`` runs (create records the pid)
    and the process joins ``cgroup`` (a driver, or None).  ``spawn_wrapper(spawn)`` may
    run the spawn in other surroundings (create's visit of a new cgroup namespace).
    When the init stops for hooks (`H`), ``on_hooks()`` runs the runtime's own and
    returns the state JSON for the init's.  On any failure the init is killed and reaped."""
    from . import native
    native.set_dumpable(False)
    joins = []
    if cgroup is not None:
        from .cgroups.base import self_join_records
        joins = self_join_records(cgroup.dirs())
        for kind, path in joins:
            plan.add("CGROUP_JOIN", kind, path)
    fds = []
    sock = None
    try:
        fds.append(native.init_memfd())
        fds.append(native.plan_memfd(plan.encode()))
        sock, child_sock = native.socketpair()
        fds.append(child_sock)
        fds.append(native.listen_unix(listen_path))
        exe_fd, plan_fd, _, listen_fd = fds
        first_fd = 3 + plan.preserve_fds
        argv = ["minirunc-init", str(first_fd), str(first_fd + 1), str(first_fd + 2)]

        def spawn():
            return native.spawn(exe_fd, argv, [child_sock, plan_fd, listen_fd], first_fd)

        helper_pid = spawn_wrapper(spawn) if spawn_wrapper else spawn()
    except BaseException:
        if sock is not None:
            os.close(sock)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    try:
        return _follow_init(plan, sock, helper_pid, cgroup, on_pid, on_hooks, joins)
    finally:
        os.close(sock)


def _follow_init(plan, sock, helper_pid, cgroup, on_pid, on_hooks=None, joins=()):
    """Read the init's messages until it is ready; returns (pid, pty master or None).

    ``joins``: the CGROUP_JOIN records of the plan.  Stage 2 joins the v1 ones itself; the
    cgroup2 one only when `P` says it was born there; this process moves it into the rest.

    Stage 2 sends a `K` marker before each step; when the init dies without an `E`
    (the OOM killer of its cgroup, a signal), the message names that step and how it died."""
    from . import native
    pid, master = None, None
    helper_reaped = False
    doing = "start (stage 1: join namespaces, clone)"
    try:
        while True:
            data, fd = _recv_or_eof(native, sock)
            if not data:
                if not helper_reaped:
                    status = os.waitpid(helper_pid, 0)[1]
                    helper_reaped = True
                elif pid:
                    status = os.waitpid(pid, 0)[1]
                    pid = None
                else:
                    status = None
                raise ContainerSetupError("init", _died_text(status, doing, cgroup))
            kind, fields = native.parse_message(data)
            # Stage 1's P always comes first: stage 2 waits for it before it says anything.
            if kind == "P":
                pid = int(fields[0])
                os.waitpid(helper_pid, 0)
                helper_reaped = True
                doing = "start stage 2 in the new namespaces"
                if on_pid is not None:
                    on_pid(pid)
                    faults.point("create:pid-recorded")
                # The init cannot exec the user's process before `S`: joining here is
                # in time for everything the process will run.
                if cgroup is not None:
                    born_in = len(fields) > 1 and fields[1] == "1"
                    joined = [path if kind == 2 else os.path.dirname(path)
                              for kind, path in joins if kind == 1 or born_in]
                    if any(d not in joined for d in cgroup.dirs()):
                        cgroupwarm.wait()
                        cgroup.add_pid(pid, skip=joined)
            elif kind == "K":
                doing = fields[0] if fields else doing
            elif kind == "U":
                doing = "wait for its user namespace id maps"
                _write_id_maps(pid, plan)
                _send_unless_gone(native, sock, b"u")
            elif kind == "H" and on_hooks is not None:
                doing = "wait while the runtime runs the prestart and createRuntime hooks"
                if _send_unless_gone(native, sock, b"h" + on_hooks()):
                    doing = "run the createContainer hooks"
            elif kind == "N":
                log.debug(fields[0])
            elif kind == "T":
                master = fd
            elif kind == "R":
                return pid, master
            elif kind == "E":
                err, step, detail = int(fields[0] or 0), fields[1], fields[2]
                if step == "join cgroup":   # stage 2 writing "0" to a `tasks` file
                    from .cgroups.base import join_error
                    raise join_error(pid, detail, err)
                if err == EACCES and plan.new_userns and plan.uid_mappings:
                    detail += (" [in the user namespace, root is host uid %d: it must be able to "
                               "reach this path]" % _host_root(plan.uid_mappings))
                raise ContainerSetupError(step, detail, err)
            else:
                raise ContainerSetupError("sync", "unexpected message %r from the init" % data[:40])
    except BaseException:
        if master is not None:
            os.close(master)
        if pid:
            _kill_and_reap(pid)
        if not helper_reaped:
            _kill_and_reap(helper_pid)
        raise


def _recv_or_eof(native, sock):
    """One sync packet; b"" when the init is gone.  A peer that dies with data unread in
    its queue shows as ECONNRESET: that is the same end, and its exit status says why."""
    try:
        return native.recv(sock)
    except HostError as e:
        if e.errno == ECONNRESET:
            return b"", None
        raise


def _send_unless_gone(native, sock, data):
    """Send to the init; False if it is gone (EPIPE, ECONNRESET): the next receive then
    sees the end and says how it died."""
    try:
        native.send(sock, data)
    except HostError as e:
        if e.errno not in (EPIPE, ECONNRESET):
            raise
        return False
    return True


def _died_text(status, doing, cgroup):
    """Why the init ended without a word: its exit status, the step it was doing, and the
    cgroup's OOM kills when it was SIGKILLed (a memory limit too small to set it up)."""
    if status is None:
        text = "the container's init exited before it was ready"
    elif os.WIFSIGNALED(status):
        text = "the container's init was %s before it was ready" % _describe_exit(status)
    else:
        text = "the container's init ended (%s) before it was ready" % _describe_exit(status)
    text += ", while it was doing: %s" % doing
    if status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == SIGKILL:
        ooms = None
        if cgroup is not None:
            try:
                ooms = cgroup.oom_count()
            except (OSError, ValueError, MiniruncError):
                ooms = None
        text += _oom_sentence(ooms)
    return text


def _oom_sentence(ooms):
    """runc's words for an init that the OOM killer of its cgroup took, or "" (no kills)."""
    if not ooms:
        return ""
    return ("; container init was OOM-killed (memory limit too low?): its cgroup counts %d "
            "oom_kill events, check linux.resources.memory.limit" % ooms)


def _choose_cgroup(config, container_id, systemd):
    """The container's cgroup driver (its directories: the plan's cgroup mounts bind them)."""
    from .cgroups import driver_for_create
    cgroup, notices = driver_for_create(config.linux, container_id, systemd)
    for notice in notices:
        log.warning(notice)
    return cgroup


def _setup_cgroup(container, state, config, cgroup, resources):
    """Check that the driver's cgroup holds no processes (or warn), record its directories
    in state.json, make them and write the resources.  Returns the driver (the caller
    destroys it if anything later fails)."""
    if cgroup.name != "none":
        from .cgroups.owner import check_nonempty, check_not_frozen
        check_nonempty(cgroup, config.annotations, log.warning)
        check_not_frozen(cgroup)
        cgroup.prepare()
    state["cgroup"] = cgroup.record()
    container.save(state)
    faults.point("create:cgroup-recorded")
    cgroup.create()
    for warning in cgroup.apply(resources, config.linux.devices):
        log.warning(warning)
    faults.point("create:cgroups-made")
    return cgroup


def _spawn_in_cgroup(cgroup, plan, resources, spawn):
    """Spawn the init.  With a new cgroup namespace the init must be born in the container's
    cgroups (the namespace's root is fixed at clone time): this process visits them for the
    spawn, and the pids and memory limits, which would count it too (a tiny memory limit
    would get the runtime itself OOM-killed there), are written after it left."""
    if not plan.clone_flags & CLONE_NEWCGROUP or cgroup.name == "none":
        return _spawned(spawn())
    cgroupwarm.wait()
    cgroup.visit()
    try:
        return _spawned(spawn())
    finally:
        cgroup.leave()
        late = {k: resources[k] for k in LATE_RESOURCES if resources.get(k)}
        if late:
            for warning in cgroup.apply(late):
                log.warning(warning)


def _spawned(helper_pid):
    faults.point("create:init-spawned")
    return helper_pid


def destroy_cgroup(c):
    """Remove a container's cgroups (killing what is left in them); warn if one stays."""
    faults.point("delete:killed")   # delete calls this right after killing the init
    record = (c.data or {}).get("cgroup")
    if not record or record.get("driver") == "none":
        return
    from .cgroups import driver_from_record
    cgroup = driver_from_record(record)
    if not cgroup.destroy():
        log.warning("container %s: could not remove every cgroup directory (%s)"
                    % (c.id, ", ".join(cgroup.leftover_dirs())))


def _check_terminal(plan, console_socket, keep_terminal, exec_flags=False):
    if plan.terminal and console_socket is None and not keep_terminal:
        raise ConfigError("process.terminal", "is true, but there is no terminal to attach: pass "
                          "--console-socket PATH, or set process.terminal to false")
    if console_socket is not None and not plan.terminal:
        raise UsageError("--console-socket was given but %s" %
                         ("the process has no terminal (add --tty)" if exec_flags else
                          "process.terminal is false in config.json"))


def create(root, container_id, bundle, console_socket=None, pid_file=None, no_pivot=False,
           preserve_fds=0, keep_terminal=False, systemd_cgroup=False, no_new_keyring=False,
           keep_locked=False):
    """Create a container whose init waits for `start`.

    Returns (Container, pid, pty master fd or None); the master is returned only when
    `keep_terminal` (a foreground `run` relays it) and no console socket was given.  With
    `keep_locked` (`run`) the Container comes back still locked, for start(created=...).
    """
    from .config import load_bundle
    from .plan import build_plan

    _check_root()
    check_id(container_id)
    bundle = os.path.abspath(bundle)
    config = load_bundle(bundle)
    from .kernelfloor import check_mounts, check_namespaces
    check_mounts(config)
    check_namespaces(config)
    listen_fds = int(os.environ.get("LISTEN_FDS", "0") or "0")
    driver = _choose_cgroup(config, container_id, systemd_cgroup)
    plan = build_plan(config, no_pivot=no_pivot, preserve_fds=preserve_fds + listen_fds,
                      cgroup_dirs=driver.by_controller())
    if listen_fds:
        plan.add_env("LISTEN_FDS=%d" % listen_fds)
        plan.add_env("LISTEN_PID=1")
    if not no_new_keyring:
        plan.add_session_keyring(container_id, config.linux.namespace("user") is not None)
    _check_terminal(plan, console_socket, keep_terminal)
    _check_inherited_fds(preserve_fds + listen_fds)
    for warning in plan.warnings:
        log.warning(warning)

    container = Container(root, container_id).make_dir()
    faults.point("create:state-dir-made")
    state = {"ociVersion": config.oci_version, "id": container_id, "pid": 0, "pid_start": None,
             "bundle": bundle, "rootfs": config.root_path, "created": _rfc3339_now(),
             "owner": "", "annotations": config.annotations, "creating": True,
             "resources": config.linux.resources,
             "devicePaths": [d.path for d in config.linux.devices]}
    if config.hooks:
        from . import hooks
        state["hooks"] = hooks.to_record(config.hooks)
    if no_new_keyring:
        state["noNewKeyring"] = True     # exec then keeps the caller's keyring too
    cgroup = None
    try:
        resources = config.linux.resources
        cgroupns = plan.clone_flags & CLONE_NEWCGROUP
        cgroup = _setup_cgroup(container, state, config, driver,
                               {k: v for k, v in resources.items()
                                if not (cgroupns and k in LATE_RESOURCES)})

        def record_pid(pid):
            # Recorded at once so that `delete --force` can find the init even if this
            # process dies before the container is ready.
            state["pid"] = pid
            state["pid_start"] = process_start_time(pid)
            if cgroup.name != "none":
                # What tells the container's processes from others in a shared cgroup.
                from .cgroups.owner import identity
                cgroup.owner = identity(pid, bool(plan.clone_flags & CLONE_NEWPID))
                state["cgroup"] = cgroup.record()
            container.save(state)

        def run_create_hooks():
            # prestart (deprecated, same moment) and createRuntime: in our namespaces,
            # while the init waits after its mounts.  Status `created`, as crun and the
            # runtime-spec validation suite have it (createContainer gets the same).
            from . import hooks
            document = hooks.state_json(state, "created")
            hooks.run(config.hooks.get("prestart", []) + config.hooks.get("createRuntime", []),
                      document)
            faults.point("create:hooks-run")
            return document

        pid, master = _launch_init(
            plan, container.start_socket_path(), cgroup, record_pid,
            lambda spawn: _spawn_in_cgroup(cgroup, plan, resources, spawn), run_create_hooks)
        faults.point("create:ready")
        try:
            if master is not None and console_socket is not None:
                _send_console(console_socket, master)
                os.close(master)
                master = None
            del state["creating"]
            container.save(state)
            faults.point("create:state-saved")
            if pid_file:
                write_pid_file(pid_file, pid)
        except BaseException:
            if master is not None:
                os.close(master)
            _kill_and_reap(pid)
            raise
    except BaseException:
        try:
            if cgroup is not None:
                cgroup.destroy()
            elif state.get("cgroup"):
                destroy_cgroup(container)
            _run_poststop(state)
            container.remove_dir()
        finally:
            container.unlock()
        raise
    if not keep_locked:
        container.unlock()
    log.debug("container %s created: init pid %d" % (container_id, pid))
    return container, pid, master


def _send_console(path, master):
    """Hand the pty master to the caller's --console-socket (a unix stream socket, as
    runc's callers listen on), with the pty's name as the message, like runc."""
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise HostError("send the terminal to --console-socket", path, e.errno) from None


def start(root, container_id, created=None):
    """Let a created container's init exec the user process.  `created`: the Container
    that create(keep_locked=True) returned, still locked; its state is the one it saved."""
    from . import native
    check_id(container_id)
    handed = _door_start(container_id)
    with created or Container(root, container_id).lock() as c:
        faults.point("start:locked")
        if created is None:
            c.load()
        if handed is not None:
            # The C front door checked the status and sent `S` (its init has acted on
            # it since): only its answer is left to report, in the words below.
            _started(c, handed.answer, None, b"S")
            return
        status = c.status()
        if status == "paused":
            # A created container is paused only when its cgroup was frozen behind our back
            # (or by `pause`): runc's words, then ours.
            raise StateError(container_id, "container's cgroup unexpectedly frozen: cannot start "
                             "a container that is paused (thaw it with `minirunc resume %s`)"
                             % container_id)
        if status != "created":
            raise StateError(container_id, "cannot start a container that is %s (only a created "
                             "container can be started)" % status)
        path = c.start_socket_path()
        try:
            sock = native.connect_unix(path)
        except HostError as e:
            raise StateError(container_id, "its init process is gone (%s); delete it"
                             % e.errno) from None
        message = b"S"
        record = c.data.get("hooks")
        if record and "startContainer" in record:
            from . import hooks
            message += hooks.state_json(c.data, "created")
        _started(c, None, sock, message)


def _started(c, answer, sock, message):
    """Send `S` (or take the door's ``answer``), remove the start socket and report."""
    path = c.start_socket_path()
    try:
        data = _send_start(sock, message, answer)
    except ContainerSetupError as e:
        raise ContainerSetupError(e.step, e.detail + _oom_text(c.data), e.errno) from None
    os.unlink(path)
    faults.point("start:start-sent")
    _check_start_answer(data)
    log.debug("container %s started" % c.id)
    record = c.data.get("hooks")
    if record and "poststart" in record:
        from . import hooks
        hooks.run(hooks.from_record(record, "poststart"), hooks.state_json(c.data, "running"),
                  fatal=False)


# Set by native/door.c for the interpreter of its own process: "ID\tsend|recv\tERRNO" or
# "ID\tanswer\tHEX" (docs/design.md, "The front door").
DOOR_START_ENV = "MINIRUNC_DOOR_START"


class _DoorAnswer:
    def __init__(self, kind, value):
        self.kind, self.value = kind, value

    def answer(self):
        """The init's answer the door received, or the HostError its send/recv met."""
        if self.kind == "answer":
            return self.value
        raise HostError("send on the sync socket" if self.kind == "send"
                        else "receive on the sync socket", None, self.value)


def _door_start(container_id):
    """What the front door got on its start connection when the init did not simply
    exec (then the door has sent `S` and left the rest to us), or None."""
    text = os.environ.pop(DOOR_START_ENV, None)
    if text is None:
        return None
    parts = text.split("\t")
    if len(parts) != 3 or parts[0] != container_id:
        return None
    kind, value = parts[1], parts[2]
    try:
        if kind == "answer" and value:   # the door never hands over an empty answer
            return _DoorAnswer(kind, bytes.fromhex(value))
        if kind in ("send", "recv") and value.isdigit() and len(value) < 6:
            return _DoorAnswer(kind, int(value))
    except ValueError:
        pass
    return None


def _send_start(sock, message=b"S", door_answer=None):
    """Send `S` (and the state JSON for startContainer hooks) on a connection to an init's
    start socket; returns its answer (b"": the init has exec'd).  Closes the socket.
    ``door_answer`` (no socket): the front door's exchange, already made."""
    from . import native
    try:
        if door_answer is not None:
            return door_answer()
        native.send(sock, message)
        data, _ = native.recv(sock)
    except HostError as e:
        # The init died with `S` unread (ECONNRESET) or before it was sent (EPIPE).
        if e.errno not in (ECONNRESET, EPIPE):
            raise
        raise ContainerSetupError("start", "the container's init died before it could execute "
                                  "process.args (it did not read the start message)") from None
    finally:
        if sock is not None:
            os.close(sock)
    return data


def _oom_text(data):
    """``; container init was OOM-killed ...`` when the container's cgroup counts OOM kills
    (a memory limit too small for the init to read `S` or exec), else ""."""
    record = (data or {}).get("cgroup")
    if not record or record.get("driver") == "none":
        return ""
    try:
        from .cgroups import driver_from_record
        ooms = driver_from_record(record).oom_count()
    except (OSError, ValueError, MiniruncError):
        return ""
    return _oom_sentence(ooms)


def _check_start_answer(data):
    from . import native
    if data:
        kind, fields = native.parse_message(data)
        if kind == "E":
            raise ContainerSetupError(fields[1], fields[2], int(fields[0] or 0))
        raise ContainerSetupError("start", "unexpected answer %r from the init" % data[:40])


def _init_namespaces(container_id, pid):
    """{type: /proc/<pid>/ns/<name>} of the init's namespaces that are not the runtime's
    own (joining an identical one is harmless, but pointless)."""
    from .plan import JOIN_ORDER, NS_FILES
    result = {}
    for ns_type in JOIN_ORDER:
        name = NS_FILES[ns_type]
        try:
            ours = os.stat("/proc/self/ns/" + name)
        except FileNotFoundError:
            continue    # this kernel has no such namespace
        path = "/proc/%d/ns/%s" % (pid, name)
        try:
            theirs = os.stat(path)
        except (FileNotFoundError, ProcessLookupError):
            raise StateError(container_id, "is not running (its init has exited)") from None
        except OSError as e:
            raise HostError("read the namespace", path, e.errno) from None
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            result[ns_type] = path
    return result


def exec_process(root, container_id, make_process, console_socket=None, pid_file=None,
                 preserve_fds=0, keep_terminal=False, exec_flags=True, sub_cgroups=(),
                 ignore_paused=False):
    """Start another process in a created or running container (runc's `exec`).

    ``make_process(config)`` returns the config.Process to run, given the container's
    Config (read from the bundle recorded in state.json).  The container's lock is held
    only while its state is read.  The process joins the init's namespaces and cgroups;
    it is our child (CLONE_PARENT).  Returns (pid, pty master or None), the master only
    when ``keep_terminal`` and no console socket.  ``sub_cgroups``: runc's --cgroup
    arguments; ``ignore_paused``: exec into a paused container (the process stays frozen
    with it until `resume`, as with runc).
    """
    from . import native
    from .config import load_bundle
    from .plan import build_exec_plan

    _check_root()
    check_id(container_id)
    with Container(root, container_id).lock(shared=True) as c:
        c.load()
        status = c.status()
        allowed = ("running", "created", "paused") if ignore_paused else ("running", "created")
        if status not in allowed:
            hint = " (resume it first, or pass --ignore-paused)" if status == "paused" else ""
            raise StateError(container_id, "cannot exec in a %s container%s"
                             % (status, hint))
        namespaces = _init_namespaces(container_id, c.pid)
        record = c.data.get("cgroup")
        bundle = c.data.get("bundle") or ""
        state_dir = c.dir
        new_keyring = not c.data.get("noNewKeyring")
    config = load_bundle(bundle)
    process = make_process(config)
    shared_root = config.root_path if config.linux.namespace("mount") is None else None
    plan = build_exec_plan(process, config.linux.seccomp, namespaces, preserve_fds, shared_root)
    if new_keyring:
        plan.add_session_keyring(container_id, config.linux.namespace("user") is not None)
    _check_terminal(plan, console_socket, keep_terminal, exec_flags)
    _check_inherited_fds(preserve_fds)
    for warning in plan.warnings:
        log.warning(warning)
    cgroup = None
    if sub_cgroups:
        from .cgroups.subgroup import SubgroupJoiner, target_dirs
        cgroup = SubgroupJoiner(target_dirs(record, sub_cgroups))
    elif record and record.get("driver") not in (None, "none"):
        from .cgroups import driver_from_record
        cgroup = driver_from_record(record)

    path = os.path.join(state_dir, "exec-%s.sock" % os.urandom(8).hex())
    pid = master = None
    try:
        pid, master = _launch_init(plan, path, cgroup)
        faults.point("exec:spawned")
        sock = native.connect_unix(path)
        os.unlink(path)
        if master is not None and console_socket is not None:
            _send_console(console_socket, master)
            os.close(master)
            master = None
        if master is not None and os.isatty(0):
            from .foreground import copy_window_size
            copy_window_size(0, master)   # before `S`: the process sees its size at once
        _check_start_answer(_send_start(sock))
        faults.point("exec:started")
        if pid_file:
            write_pid_file(pid_file, pid)
    except BaseException:
        if master is not None:
            os.close(master)
        if pid:
            _kill_and_reap(pid)
        raise
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    log.debug("container %s: exec'd pid %d" % (container_id, pid))
    return pid, master


def load(root, container_id):
    """A locked-then-released snapshot of a container's state (for `state`)."""
    check_id(container_id)
    with Container(root, container_id).lock(shared=True) as c:
        c.load()
        return c.public_state()


def container_pids(c):
    """Host pids of the container's processes (for kill --all and ps): its own ones in
    its cgroup when it has one (never a foreign process sharing the cgroup), else the
    processes in its own pid namespace."""
    record = c.data.get("cgroup")
    if record and record.get("driver") not in (None, "none"):
        from .cgroups import driver_from_record
        pids = driver_from_record(record).own_processes()
        if pids or c.pid == 0:
            return pids
    try:
        own = os.stat("/proc/self/ns/pid")
        ns = os.stat("/proc/%d/ns/pid" % c.pid)
    except OSError:
        return [c.pid]
    if (own.st_dev, own.st_ino) == (ns.st_dev, ns.st_ino):
        log.warning("container %s shares the host pid namespace; without cgroups only its "
                    "init can be signalled" % c.id)
        return [c.pid]
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            st = os.stat("/proc/%s/ns/pid" % name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
            pids.append(int(name))
    return pids


def _init_handle(c):
    """A handle on the init (prochandle: a pidfd, or the pid with its start time), checked
    against the recorded start time (pid reuse) and, when recorded, its pid namespace."""
    from .prochandle import Process
    from .state import pid_namespace
    if not c.pid or c.data.get("pid_start") is None:
        return None
    proc = Process.open(c.pid, c.data.get("pid_start"))
    if proc is None:
        return None
    pidns = c.data.get("pidns")
    if pidns is not None and pid_namespace(c.pid) != pidns:
        proc.close()
        return None
    return proc


def signal_container(root, container_id, signum, all_processes=False):
    """Send ``signum`` to the init (and with ``all_processes`` to every process of the
    container).  Signal 0 sends nothing: it succeeds while the init lives (created,
    running or paused) and fails once it is stopped, as runc's.  ``--all`` on a stopped
    container signals what is left in its cgroups and succeeds (runc 1.1 exits 0)."""
    check_id(container_id)
    with Container(root, container_id).lock() as c:
        c.load()
        stopped = c.status() == "stopped"
        init = None if stopped else _init_handle(c)
        if init is None:
            if all_processes:
                _signal_leftovers(c, signum)
                return
            if stopped:
                raise StateError(container_id, "is not running (status stopped); nothing to "
                                 "signal")
            raise StateError(container_id, "is not running (its init has exited)")
        try:
            if all_processes:
                for pid in container_pids(c):
                    try:
                        os.kill(pid, signum)
                    except ProcessLookupError:
                        pass
            init.send(signum)
        except ProcessLookupError:
            pass
        except OSError as e:
            raise HostError("send signal %d to pid" % signum, str(c.pid), e.errno) from None
        finally:
            init.close()


def _signal_leftovers(c, signum):
    """kill --all of a container whose init is gone: the container's own processes still in
    its cgroups (ones that outlived an init sharing the host's pid namespace).  Never the
    recorded init pid, which may belong to someone else by now; without cgroups, nothing."""
    record = c.data.get("cgroup")
    if not record or record.get("driver") in (None, "none"):
        return
    from .cgroups import driver_from_record
    for pid in driver_from_record(record).own_processes():
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        except OSError as e:
            raise HostError("send signal %d to pid" % signum, str(pid), e.errno) from None


def delete(root, container_id, force=False):
    check_id(container_id)
    c = Container(root, container_id)
    try:
        c.lock()
    except StateError:
        if force:
            return  # runc: a forced delete of a container that is gone succeeds
        raise
    with c:
        faults.point("delete:locked")
        try:
            c.load()
        except StateError as e:
            if not force:
                raise
            _delete_damaged(c, e)
            return
        status = c.status()
        paused = status == "paused"
        if status in ("running", "paused") and not force:
            raise StateError(container_id, "cannot delete a %s container: stop it first, or use "
                             "`minirunc delete --force %s`" % (status, container_id))
        if status != "stopped":
            _kill_init(c, paused)
        elif not c.pid:
            # The creator died before it learnt the pid: its init may wait on its socket.
            _kill_socket_inits_warning(c)
        destroy_cgroup(c)
        faults.point("delete:cgroups-removed")
        _run_poststop(c.data)
        c.remove_dir()
        faults.point("delete:state-removed")
    log.debug("container %s deleted" % container_id)


def _kill_init(c, paused):
    """SIGKILL the recorded init (thawing it if paused) and wait until it is gone; False
    if it had already exited (or the pid is another process now)."""
    init = _init_handle(c)
    if init is None:
        return False
    try:
        init.send(SIGKILL)
        if paused:
            _thaw(c)   # a frozen process cannot die until it is thawed
        if not init.wait_gone():
            raise StateError(c.id, "init pid %d did not die after SIGKILL" % c.pid)
    except ProcessLookupError:
        return False
    finally:
        init.close()
    return True


def _delete_damaged(c, error):
    """`delete --force` of a container whose state.json is missing or damaged: remove
    what the init record ties to it (its init, checked by start time and pid namespace,
    and its cgroups); without a record, what its sockets and the default cgroup path
    tie to it.  One warning per thing found or not done; the state directory stays only
    when processes that may be the container's are left (the error says which)."""
    from .state import INIT_RECORD, DamagedStateError, read_init_record
    where = os.path.join(c.dir, INIT_RECORD)
    if isinstance(error, DamagedStateError):
        log.warning("container %s: state file %s: %s" % (c.id, error.file, error.problem))
    else:
        log.warning("container %s: state file %s is missing" % (c.id, os.path.join(
            c.dir, "state.json")))
    try:
        record = read_init_record(c.dir, c.id)
    except DamagedStateError as e:
        log.warning("container %s: init record %s: %s" % (c.id, where, e.problem))
        record = None
    if record is None:
        _delete_untracked(c, where)
        return
    c.data = {"id": c.id, "pid": record["pid"], "pid_start": record["pid_start"],
              "pidns": record["pidns"], "cgroup": record["cgroup"]}
    if _kill_init(c, c.frozen()):
        log.warning("container %s: killed init pid %d found from %s" % (c.id, c.pid, where))
    elif not record["pid"]:
        _kill_socket_inits_warning(c)   # the creator died before it learnt the pid
    if record["cgroup"] is None:
        log.warning("container %s: could not find its cgroups (%s records none)" % (c.id, where))
    else:
        destroy_cgroup(c)
    if record["poststop"]:
        log.warning("container %s: its poststop hooks were not run (only the damaged state "
                    "file had them)" % c.id)
    c.remove_dir()


def _delete_untracked(c, where):
    """Neither state.json nor the init record: kill the inits still waiting on a socket in
    the container's directory (nothing else can be tied to it), then look at the default
    cgroup path of the id; processes there that cannot be tied to it are left alone."""
    if not _kill_socket_inits_warning(c):
        log.warning("container %s: could not find its init (no init record %s, and no init "
                    "waiting on a socket in %s)" % (c.id, where, c.dir))
    cgroup = _default_cgroup(c.id)
    dirs = [d for d in cgroup.dirs() if os.path.isdir(d)] if cgroup else []
    if not dirs:
        log.warning("container %s: could not find its cgroups (no init record %s, and none at "
                    "the default path for its id)" % (c.id, where))
        c.remove_dir()
        return
    left = _cgroup_procs(dirs)
    if left:
        raise StateError(c.id, "state and init record are gone; processes %s in %s cannot be "
                         "tied to it and were left alone: stop them, then run `minirunc delete "
                         "--force %s` again" % (",".join(map(str, left[:20])), dirs[0], c.id))
    if not cgroup.destroy():
        log.warning("container %s: could not remove every cgroup directory (%s)"
                    % (c.id, ", ".join(d for d in dirs if os.path.isdir(d))))
    c.remove_dir()


def _kill_socket_inits_warning(c):
    killed = _kill_socket_inits(c.dir)
    for pid in killed:
        log.warning("container %s: killed init pid %d found by its socket in %s"
                    % (c.id, pid, c.dir))
    return killed


def _default_cgroup(container_id):
    """The cgroup driver a container with this id and no linux.cgroupsPath gets, or None."""
    from .cgroups import driver_for_create
    try:
        driver, _ = driver_for_create(None, container_id)
    except MiniruncError:
        return None
    return None if driver.name == "none" else driver


def _cgroup_procs(dirs):
    """Every pid in ``dirs`` and their sub-cgroups."""
    pids = set()
    for top in dirs:
        for d, _, _ in os.walk(top):
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids.update(int(x) for x in f.read().split())
            except (OSError, ValueError):
                pass
    return sorted(pids)


def _socket_inodes(directory):
    """Inodes of the unix sockets bound to a path in ``directory`` (start.sock, exec-*.sock)."""
    prefix = directory.rstrip("/") + "/"
    inodes = set()
    try:
        with open("/proc/net/unix") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return inodes
    for line in lines:
        parts = line.split(None, 7)
        if len(parts) == 8 and parts[7].startswith(prefix):
            inodes.add("socket:[%s]" % parts[6])
    return inodes


def _holds_socket(pid, inodes):
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                return True
        except OSError:
            pass
    return False


def _kill_socket_inits(directory):
    """SIGKILL every minirunc init (the sealed memfd, not yet exec'd) that holds a socket
    bound in ``directory``: only such a process is surely this container's.  Returns
    the pids killed."""
    from .prochandle import Process
    inodes = _socket_inodes(directory)
    killed = []
    if not inodes:
        return killed
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            proc = Process.open(pid)
        except OSError:
            continue
        if proc is None:
            continue
        try:
            # Checked after the handle is open: a pid reused meanwhile gets no signal.
            if not os.readlink("/proc/%d/exe" % pid).startswith("/memfd:minirunc-init"):
                continue
            if not _holds_socket(pid, inodes):
                continue
            proc.send(SIGKILL)
            proc.wait_gone()
            killed.append(pid)
        except OSError:
            continue
        finally:
            proc.close()
    return killed


def _run_poststop(state):
    """poststop hooks: after the container is gone, before delete returns; a failure is
    a warning (runtime-spec)."""
    record = state.get("hooks")
    if record and "poststop" in record:
        from . import hooks
        hooks.run(hooks.from_record(record, "poststop"), hooks.state_json(state, "stopped"),
                  fatal=False)


def _thaw(c):
    from .cgroups import driver_from_record
    try:
        driver_from_record(c.data.get("cgroup")).thaw()
    except MiniruncError as e:
        log.warning("container %s: %s" % (c.id, e))


def remove_after_run(root, container_id):
    """Delete the state of a container whose init `run` has just reaped."""
    c = Container(root, container_id)
    try:
        with c.lock():
            try:
                c.load()
                destroy_cgroup(c)
                _run_poststop(c.data)
            except MiniruncError:
                pass
            c.remove_dir()
    except MiniruncError:
        pass
