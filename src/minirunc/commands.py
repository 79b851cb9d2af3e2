"""One function per runc verb: turns parsed options into library calls and prints results.

Each function takes (state root, options dict, positional arguments) and returns the
exit code. Heavy modules are imported inside the function that needs them, so `state`
never pays for what `run` uses.
"""

import os
import sys

from .errors import ConfigError, MiniruncError, StateError, UsageError

# Verbs of runc that later issues add; named here so the error says why.
LATER = {}


def _int_option(options, name, default=0):
    value = options.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise UsageError("--%s must be a number, not %r" % (name, value)) from None
    if number < 0:
        raise UsageError("--%s must not be negative" % name)
    return number


def _print_json(obj):
    from .jsontext import dumps
    sys.stdout.write(dumps(obj, indent=2) + "\n")


def cmd_create(root, options, container_id):
    from . import cgroupwarm
    cgroupwarm.start()
    from .container import create
    from .foreground import SignalForwarder
    # SIGINT/TERM/HUP/QUIT abort the create; its cleanup removes what it made.
    SignalForwarder(abort=True, forward=False)
    create(root, container_id, options.get("bundle") or ".",
           console_socket=options.get("console-socket"), pid_file=options.get("pid-file"),
           no_pivot=options.get("no-pivot", False),
           preserve_fds=_int_option(options, "preserve-fds"),
           systemd_cgroup=options.get("systemd-cgroup", False),
           no_new_keyring=options.get("no-new-keyring", False))
    return 0


def cmd_start(root, options, container_id):
    from .container import start
    start(root, container_id)
    return 0


def cmd_run(root, options, container_id):
    from . import cgroupwarm
    cgroupwarm.start()
    from . import container
    detach = options.get("detach", False)
    console_socket = options.get("console-socket")
    from .foreground import SignalForwarder
    # Until create returns, SIGINT/TERM/HUP/QUIT abort it (its cleanup removes what it
    # made); afterwards signals are queued for the container's process.  A detached run
    # has no process to pass them to: they abort it until start returns (see below).
    forwarder = SignalForwarder(abort=True, forward=not detach)
    # Still locked when it returns: no other command can come between create and start,
    # so start need not read back what create has just written.
    created, pid, master = container.create(
        root, container_id, options.get("bundle") or ".", console_socket=console_socket,
        pid_file=options.get("pid-file"), no_pivot=options.get("no-pivot", False),
        preserve_fds=_int_option(options, "preserve-fds"), keep_terminal=not detach,
        systemd_cgroup=options.get("systemd-cgroup", False),
        no_new_keyring=options.get("no-new-keyring", False), keep_locked=True)
    if not detach:
        forwarder.created()
    if master is not None and os.isatty(0):
        from .foreground import copy_window_size
        copy_window_size(0, master)  # before start, so the process sees its size at once
    try:
        container.start(root, container_id, created=created)
    except BaseException:
        created.unlock()
        if master is not None:
            os.close(master)
        container.delete(root, container_id, force=True)
        raise
    if detach:
        forwarder.created()     # it runs now: a signal must not claim it was removed
        return 0
    return _in_foreground(root, container_id, pid, master, forwarder,
                          remove=not options.get("keep"))


def _in_foreground(root, container_id, pid, master, forwarder, remove=True):
    """Relay the terminal (or wait) until the container's init exits, forwarding signals;
    then remove the container (unless ``remove`` is false).  Returns the exit code."""
    from . import container, foreground
    forwarder.attach(pid)
    try:
        if master is not None:
            return foreground.relay_terminal(master, pid, forwarder)
        return foreground.wait(pid, forwarder)
    finally:
        if remove:
            container.remove_after_run(root, container_id)


# runc exits 255 when exec fails on its side (`fatalWithCode(..., 255)` for any error after
# its argument check), so callers tell it from the exit code of the process itself.
EXEC_FAILED = 255


def cmd_exec(root, options, container_id, command=()):
    """runc's `exec`: the process's exit code (128+N for a signal), 0 with --detach, or
    255 when the exec itself fails (bad container, state, flags, --pid-file, args[0]...).
    A wrong command line that the parser catches (unknown flag, no ID) stays 1."""
    try:
        return _exec(root, options, container_id, command)
    except MiniruncError as e:
        e.exit_code = EXEC_FAILED
        raise
    except Exception as e:
        e.exit_code = EXEC_FAILED      # runc's 255 covers its own bugs too (cli._internal_error)
        raise


def _exec(root, options, container_id, command):
    from . import cgroupwarm
    cgroupwarm.start()
    from . import container, log
    if command and command[0] == "--":
        command = command[1:]
    process_file = options.get("process")
    if process_file is None and not command:
        raise UsageError("exec: missing COMMAND (usage: minirunc exec [options] ID COMMAND "
                         "[ARG...], or --process FILE)")
    if process_file is not None and command:
        raise UsageError("exec: give either --process FILE or a COMMAND, not both")
    preserve_fds = _int_option(options, "preserve-fds")

    def make_process(config):
        from . import config as cfg
        if process_file is not None:
            warnings = []
            process = cfg.load_process_file(process_file, warnings)
            for warning in warnings:
                log.warning(warning)
        else:
            process = cfg.exec_process(config.process, command, cwd=options.get("cwd"),
                                       env=options.get("env", ()), user=options.get("user"),
                                       additional_gids=options.get("additional-gids", ()),
                                       cap_add=options.get("cap", ()),
                                       no_new_privs=options.get("no-new-privs", False),
                                       terminal=options.get("tty", False))
        _exec_labels(process, options)
        return process

    detach = options.get("detach", False)
    from .foreground import SignalForwarder
    # As for run: a stop signal before the process runs aborts (exec_process kills it).
    forwarder = SignalForwarder(abort=True, forward=not detach)
    pid, master = container.exec_process(
        root, container_id, make_process, console_socket=options.get("console-socket"),
        pid_file=options.get("pid-file"), preserve_fds=preserve_fds, keep_terminal=not detach,
        exec_flags=process_file is None, sub_cgroups=options.get("cgroup", ()),
        ignore_paused=options.get("ignore-paused", False))
    forwarder.created()         # the process runs: signals are for it from now on
    if detach:
        return 0
    from . import foreground
    forwarder.attach(pid)
    if master is not None:
        return foreground.relay_terminal(master, pid, forwarder)
    return foreground.wait(pid, forwarder)


def _exec_labels(process, options):
    """--apparmor and --process-label override the process's labels, as in runc: applied
    where that LSM is active, else a warning (lsm.py)."""
    for flag, attr in (("apparmor", "apparmor_profile"), ("process-label", "selinux_label")):
        label = options.get(flag)
        if not label:
            continue
        from . import log, lsm
        try:
            warning = lsm.check_label(attr.split("_")[0], label, "--" + flag)
        except ConfigError as e:
            raise UsageError(str(e)) from None
        if warning:
            log.warning(warning)
        setattr(process, attr, label)


def run_here(root):
    """Bare `minirunc` in a bundle directory: run it in the foreground, id = directory name."""
    bundle = os.getcwd()
    if not os.path.exists(os.path.join(bundle, "config.json")):
        raise ConfigError("", "no config.json in %s: cd into a bundle directory (config.json + "
                          "rootfs/), or see `minirunc --help`" % bundle, file="config.json")
    container_id = os.path.basename(bundle)
    from .state import check_id
    try:
        check_id(container_id)
    except StateError:
        raise UsageError("the directory name %r is not a valid container id; use "
                         "`minirunc run ID` instead" % container_id) from None
    return cmd_run(root, {"bundle": bundle}, container_id)


def cmd_state(root, options, container_id):
    from .container import load
    _print_json(load(root, container_id))
    return 0


def cmd_kill(root, options, container_id, signal_text="TERM"):
    from .container import signal_container
    from .signals import parse_signal
    signal_container(root, container_id, parse_signal(signal_text), options.get("all", False))
    return 0


def cmd_delete(root, options, container_id):
    from .container import delete
    delete(root, container_id, force=options.get("force", False))
    return 0


def cmd_list(root, options):
    from .state import Container, DamagedStateError, list_ids, table_text as shown
    fmt = options.get("format", "table")
    if fmt not in ("table", "json"):
        raise UsageError("list: --format must be table or json, not %r" % fmt)
    states = []
    for container_id in list_ids(root):
        c = Container(root, container_id)
        try:
            c.load()
        except StateError as e:
            if not isinstance(e, DamagedStateError) and c.busy():
                continue    # no state.json while being created or deleted: not damaged
            states.append(_unknown_state(c, e))
            continue
        states.append(c.public_state())
    if options.get("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif fmt == "json":
        from .jsontext import dumps
        sys.stdout.write(dumps(states or None) + "\n")  # runc prints null for none
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], shown(s["bundle"]), shown(s["created"]),
                  shown(s["owner"])) for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    return 0


def _unknown_state(c, error):
    """The `list` entry of a container whose state cannot be read: status unknown, the
    init record's pid if that process is alive, and one warning saying why."""
    from . import log
    pid, _ = c.recorded_init()
    log.warning(str(error))
    return {"ociVersion": "", "id": c.id, "pid": pid, "status": "unknown", "bundle": "",
            "rootfs": "", "created": "", "owner": "", "annotations": {}}


def cmd_pause(root, options, container_id):
    from .control import pause
    pause(root, container_id)
    return 0


def cmd_resume(root, options, container_id):
    from .control import resume
    resume(root, container_id)
    return 0


def cmd_update(root, options, container_id):
    from .control import update, update_delta
    update(root, container_id, update_delta(options))
    return 0


def cmd_events(root, options, container_id):
    from .control import events, parse_interval
    interval = parse_interval(options.get("interval") or "5s")
    try:
        events(root, container_id, interval, stats_only=options.get("stats", False))
    except BrokenPipeError:
        pass
    return 0


def cmd_ps(root, options, container_id, ps_options=()):
    from .control import ps
    if ps_options and ps_options[0] == "--":
        ps_options = ps_options[1:]
    ps(root, container_id, options.get("format") or "table", ps_options)
    return 0


def cmd_features(root, options):
    from .features import features
    from .jsontext import dumps
    sys.stdout.write(dumps(features(options.get("criu")), indent=4) + "\n")
    return 0


def cmd_spec(root, options, command=()):
    import json
    from .spec import default_spec, edit_spec
    bundle = options.get("bundle") or "."
    if options.get("upgrade"):
        if command or len(options) > 1 + ("bundle" in options):
            raise UsageError("spec --upgrade takes only --bundle")
        return _spec_upgrade(bundle)
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise UsageError("%s exists already: remove it first, or pass --bundle DIR" % path)
    if options.get("tty") and options.get("no-tty"):
        raise UsageError("spec: --tty and --no-tty contradict each other")
    terminal = True if options.get("tty") else False if options.get("no-tty") else None
    try:
        config = edit_spec(
            default_spec(rootless=bool(options.get("rootless"))),
            args=list(command) if command else None, rootfs=options.get("rootfs"),
            hostname=options.get("hostname"), cwd=options.get("cwd"),
            env=options.get("env", ()), binds=options.get("bind", ()),
            tmpfs=options.get("tmpfs", ()), net=options.get("net"), terminal=terminal,
            writable=bool(options.get("writable")), memory=options.get("memory"),
            pids=options.get("pids"), cpus=options.get("cpus"), user=options.get("user"),
            caps=options.get("cap", ()))
    except ValueError as e:
        raise UsageError("spec %s" % e) from None
    data = json.dumps(config, indent="\t") + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(data)
    except OSError as e:
        from .errors import HostError
        raise HostError("write", path, e.errno) from None
    return 0


def cmd_check(root, options):
    from .check import main
    return main(options.get("bundle") or ".", options.get("format") or "text")


def cmd_import(root, options, source, target):
    from .imageimport import run
    return run(source, target)


def _spec_upgrade(bundle):
    """`spec --upgrade`: a 2015 runc config.json rewritten in the current format."""
    from . import log
    from .legacy import upgrade_file
    problems = upgrade_file(bundle)
    for line in problems:
        log.error(line)
    if problems:
        log.error("%s/config.json: not upgraded (%d field(s) above cannot be converted)"
                  % (bundle, len(problems)))
        return 1
    sys.stderr.write("minirunc: %s/config.json: upgraded to the current format; the old "
                     "file is config.json.bak\n" % bundle)
    return 0


def _criu_options(options):
    from .checkpoint import Options, parse_cg_mode, parse_empty_ns
    for flag in ("lsm-profile", "lsm-mount-context"):
        if options.get(flag):
            from . import log
            log.warning("--%s: AppArmor/SELinux are not supported; restoring without it" % flag)
    for flag in ("page-server", "lazy-pages", "status-fd"):
        if options.get(flag):
            raise UsageError("--%s is not supported (CRIU's page server and lazy pages are "
                             "not driven by minirunc)" % flag)
    return Options(image_path=options.get("image-path"), work_path=options.get("work-path"),
                   leave_running=options.get("leave-running", False),
                   tcp_established=options.get("tcp-established", False),
                   ext_unix_sk=options.get("ext-unix-sk", False),
                   shell_job=options.get("shell-job", False),
                   file_locks=options.get("file-locks", False),
                   pre_dump=options.get("pre-dump", False),
                   parent_path=options.get("parent-path"),
                   manage_cgroups_mode=parse_cg_mode(options.get("manage-cgroups-mode")),
                   empty_ns=parse_empty_ns(options.get("empty-ns")),
                   auto_dedup=options.get("auto-dedup", False))


def cmd_checkpoint(root, options, container_id):
    from .checkpoint import checkpoint
    checkpoint(root, container_id, _criu_options(options), options.get("criu"))
    return 0


def cmd_restore(root, options, container_id):
    from . import checkpoint
    criu_options = _criu_options(options)
    detach = options.get("detach", False)
    from .foreground import SignalForwarder
    # As run: until the container exists, SIGINT/TERM/HUP/QUIT abort the restore (its
    # cleanup removes what it made); afterwards they are queued for the restored init.
    forwarder = SignalForwarder(abort=True, forward=not detach)
    # --no-pivot and --no-subreaper change nothing here: CRIU sets up the root itself, and
    # the restored init is our child (CRIU restores it as its sibling).
    pid, master = checkpoint.restore(
        root, container_id, options.get("bundle") or ".", criu_options, options.get("criu"),
        console_socket=options.get("console-socket"), pid_file=options.get("pid-file"),
        keep_terminal=not detach, systemd_cgroup=options.get("systemd-cgroup", False))
    forwarder.created()
    if detach:
        if master is not None:
            os.close(master)
        return 0
    return _in_foreground(root, container_id, pid, master, forwarder)
