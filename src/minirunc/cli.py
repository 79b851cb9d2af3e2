"""runc's command line: flags, names and exit codes, kept apart from the work itself.

The parser is hand-written (argparse alone costs ~2 ms of every container start) and
accepts runc's spellings: `--flag value`, `--flag=value`, single-dash long flags
(`-bundle`, containerd's `-no-subreaper`) and the short aliases. Each command maps to a
function in `commands.py`, imported only when that command runs.
"""

import gc
import os
import sys

from . import __version__, SPEC_VERSION
from .errors import MiniruncError, UsageError

# flag spec: canonical name -> (aliases, takes a value); "list" collects every use of a
# repeatable flag (`-e A=1 -e B=2`) into a list
GLOBAL_FLAGS = {
    "root": (("--root",), True),
    "debug": (("--debug",), False),
    "log": (("--log",), True),
    "log-format": (("--log-format",), True),
    "systemd-cgroup": (("--systemd-cgroup",), False),
    "criu": (("--criu",), True),
    "rootless": (("--rootless",), True),
    "help": (("--help", "-h"), False),
    "version": (("--version", "-v"), False),
}

_BUNDLE = (("--bundle", "-b"), True)
_CONSOLE = (("--console-socket",), True)
_PIDFILE = (("--pid-file",), True)
_NOPIVOT = (("--no-pivot",), False)
_NOKEYRING = (("--no-new-keyring",), False)
_PRESERVE = (("--preserve-fds",), True)
# checkpoint and restore (CRIU): the flags both take, as runc 1.1
_CRIU_SHARED = {"tcp-established": (("--tcp-established",), False),
                "ext-unix-sk": (("--ext-unix-sk",), False),
                "shell-job": (("--shell-job",), False),
                "file-locks": (("--file-locks",), False),
                "manage-cgroups-mode": (("--manage-cgroups-mode",), True),
                "empty-ns": (("--empty-ns",), "list"),
                "auto-dedup": (("--auto-dedup",), False),
                "image-path": (("--image-path",), True),
                "work-path": (("--work-path",), True),
                "lazy-pages": (("--lazy-pages",), False)}

# command -> (flags, positional names (a trailing "?" marks an optional one), summary)
COMMANDS = {
    "create": ({"bundle": _BUNDLE, "console-socket": _CONSOLE, "pid-file": _PIDFILE,
                "no-pivot": _NOPIVOT, "no-new-keyring": _NOKEYRING, "preserve-fds": _PRESERVE},
               ("id",), "create a container; its process waits for `start`"),
    "start": ({}, ("id",), "run the user process of a created container"),
    "run": ({"bundle": _BUNDLE, "console-socket": _CONSOLE, "pid-file": _PIDFILE,
             "no-pivot": _NOPIVOT, "no-new-keyring": _NOKEYRING, "preserve-fds": _PRESERVE,
             "detach": (("--detach", "-d"), False), "no-subreaper": (("--no-subreaper",), False),
             "keep": (("--keep",), False)},
            ("id",), "create and start a container, wait for it and delete it"),
    "state": ({}, ("id",), "print the state of a container as JSON"),
    "kill": ({"all": (("--all", "-a"), False)}, ("id", "signal?"),
             "send a signal (default TERM) to the container's init"),
    "delete": ({"force": (("--force", "-f"), False)}, ("id",),
               "delete a stopped container (--force kills it first)"),
    "list": ({"format": (("--format", "-f"), True), "quiet": (("--quiet", "-q"), False)}, (),
             "list containers"),
    "spec": ({"bundle": _BUNDLE, "rootless": (("--rootless",), False),
              "upgrade": (("--upgrade",), False),
              "rootfs": (("--rootfs",), True), "hostname": (("--hostname",), True),
              "cwd": (("--cwd",), True), "env": (("--env", "-e"), "list"),
              "bind": (("--bind",), "list"), "tmpfs": (("--tmpfs",), "list"),
              "net": (("--net",), True), "tty": (("--tty", "-t"), False),
              "no-tty": (("--no-tty",), False), "writable": (("--writable",), False),
              "memory": (("--memory", "-m"), True), "pids": (("--pids",), True),
              "cpus": (("--cpus",), True), "user": (("--user", "-u"), True),
              "cap": (("--cap",), "list")}, ("command*",),
             "write a config.json: runc's default, edited by the flags; -- CMD [ARG...] "
             "(--upgrade: rewrite a 2015 runc one)"),
    "check": ({"bundle": _BUNDLE, "format": (("--format", "-f"), True)}, (),
              "find what would go wrong with a bundle before running it (changes nothing)"),
    "import": ({}, ("source", "dir"),
               "make a bundle DIR from a docker export/save tar or an OCI layout (SOURCE[:TAG])"),
    "features": ({}, (), "print what this build implements as JSON (runtime-spec features)"),
    "pause": ({}, ("id",), "freeze every process of the container (cgroup freezer)"),
    "resume": ({}, ("id",), "thaw a paused container"),
    "update": ({"resources": (("--resources", "-r"), True),
                "memory": (("--memory",), True),
                "memory-reservation": (("--memory-reservation",), True),
                "memory-swap": (("--memory-swap",), True),
                "kernel-memory": (("--kernel-memory",), True),
                "kernel-memory-tcp": (("--kernel-memory-tcp",), True),
                "cpu-shares": (("--cpu-shares", "--cpu-share"), True),
                "cpu-quota": (("--cpu-quota",), True),
                "cpu-period": (("--cpu-period",), True),
                "cpu-rt-period": (("--cpu-rt-period",), True),
                "cpu-rt-runtime": (("--cpu-rt-runtime",), True),
                "cpuset-cpus": (("--cpuset-cpus",), True),
                "cpuset-mems": (("--cpuset-mems",), True),
                "pids-limit": (("--pids-limit",), True),
                "blkio-weight": (("--blkio-weight",), True)},
               ("id",), "change the resource limits of a container"),
    "events": ({"stats": (("--stats",), False), "interval": (("--interval",), True)}, ("id",),
               "print stats every --interval and OOM events as JSON (--stats: once)"),
    "exec": ({"process": (("--process", "-p"), True), "tty": (("--tty", "-t"), False),
              "console-socket": _CONSOLE, "detach": (("--detach", "-d"), False),
              "pid-file": _PIDFILE, "cwd": (("--cwd",), True), "env": (("--env", "-e"), "list"),
              "user": (("--user", "-u"), True),
              "additional-gids": (("--additional-gids", "-g"), "list"),
              "cap": (("--cap", "-c"), "list"), "no-new-privs": (("--no-new-privs",), False),
              "preserve-fds": _PRESERVE, "process-label": (("--process-label",), True),
              "apparmor": (("--apparmor",), True), "cgroup": (("--cgroup",), "list"),
              "ignore-paused": (("--ignore-paused",), False)},
             ("id", "command*"),
             "run another process in a running container (COMMAND [ARG...] or --process)"),
    "ps": ({"format": (("--format", "-f"), True)}, ("id", "ps-options*"),
           "list the container's processes (ps options may follow the id)"),
    "checkpoint": (dict(_CRIU_SHARED, **{
                       "leave-running": (("--leave-running",), False),
                       "pre-dump": (("--pre-dump",), False),
                       "parent-path": (("--parent-path",), True),
                       "page-server": (("--page-server",), True),
                       "status-fd": (("--status-fd",), True)}),
                   ("id",), "dump a running container with CRIU (gone unless --leave-running)"),
    "restore": (dict(_CRIU_SHARED, **{
                    "bundle": _BUNDLE, "detach": (("--detach", "-d"), False),
                    "pid-file": _PIDFILE, "console-socket": _CONSOLE,
                    "no-subreaper": (("--no-subreaper",), False), "no-pivot": _NOPIVOT,
                    "lsm-profile": (("--lsm-profile",), True),
                    "lsm-mount-context": (("--lsm-mount-context",), True)}),
                ("id",), "restore a checkpoint as a running container (waits unless -d)"),
}

USAGE = """minirunc - a small OCI container runtime with runc's command line

usage: minirunc [global options] COMMAND [options] [arguments]
       minirunc              (inside a bundle directory: run it in the foreground)

commands:
%s
global options:
  --root DIR          state directory (default /run/minirunc)
  --debug             debug output and error traces
  --log FILE          also write messages to FILE
  --log-format FMT    text or json
  --criu PATH         CRIU for checkpoint/restore (default: criu on PATH)
  --version, -v       print the version
"""


def usage_text():
    lines = "".join("  %-8s %s\n" % (name, spec[2]) for name, spec in COMMANDS.items())
    return USAGE % lines


def version_text():
    try:
        from ._commit import COMMIT
    except ImportError:
        COMMIT = "unknown"
    return "minirunc version %s\ncommit: %s\nspec: %s\n" % (__version__, COMMIT, SPEC_VERSION)


def _alias_table(flags):
    table = {}
    for name, (aliases, takes_value) in flags.items():
        for alias in aliases:
            table[alias] = (name, takes_value)
            if alias.startswith("--"):
                table[alias[1:]] = (name, takes_value)  # urfave/cli accepts -flag too
    return table


def _parse_flags(args, flags, where, stop_at_positional):
    """Parse flags from args; return (options, positionals)."""
    table = _alias_table(flags)
    options, positionals = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positionals.extend(args[i + 1:])
            break
        if arg.startswith("-") and arg != "-":
            key, eq, value = arg.partition("=")
            if key not in table:
                raise UsageError("%s: unknown flag %s (see `minirunc %s--help`)"
                                 % (where, key, "" if where == "minirunc" else where + " "))
            name, takes_value = table[key]
            if takes_value:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise UsageError("%s: flag %s needs a value" % (where, key))
                    value = args[i]
                if takes_value == "list":
                    options.setdefault(name, []).append(value)
                else:
                    options[name] = value
            else:
                if eq and value.lower() not in ("true", "false", "1", "0"):
                    raise UsageError("%s: flag %s takes no value" % (where, key))
                options[name] = not eq or value.lower() in ("true", "1")
        else:
            if stop_at_positional:
                positionals.extend(args[i:])
                break
            positionals.append(arg)
        i += 1
    return options, positionals


def parse_globals(argv):
    """The global flags before the command, and the rest of argv (command first)."""
    return _parse_flags(argv, GLOBAL_FLAGS, "minirunc", stop_at_positional=True)


def parse_command(rest):
    """The rest of argv -> (command or None, options, positionals)."""
    if not rest:
        return None, {}, rest
    command = rest[0]
    if command not in COMMANDS:
        from .commands import LATER
        if command in LATER:
            raise UsageError("`%s` is not supported yet: %s" % (command, LATER[command]))
        raise UsageError("unknown command %r (see `minirunc --help`)" % command)
    flags, names, _ = COMMANDS[command]
    flags = dict(flags, help=(("--help", "-h"), False))
    varargs = bool(names) and names[-1].endswith("*")
    # With trailing options for another program (ps), flags end at the first positional.
    options, positionals = _parse_flags(rest[1:], flags, command, stop_at_positional=varargs)
    if options.get("help"):
        return command, options, positionals
    if varargs:
        names = names[:-1]
        if len(positionals) > len(names):
            positionals = positionals[:len(names)] + [tuple(positionals[len(names):])]
        names = names + ("...?",)
    required = [n for n in names if not n.endswith("?")]
    if len(positionals) < len(required):
        raise UsageError("%s: missing %s (usage: minirunc %s [options] %s)"
                         % (command, required[len(positionals)].upper(), command,
                            " ".join(n.rstrip("?").upper() for n in names)))
    if len(positionals) > len(names):
        raise UsageError("%s: unexpected argument %r" % (command, positionals[len(names)]))
    return command, options, positionals


# Commands that end within milliseconds of their work, or wait without allocating (a
# foreground run/exec blocks in waitpid): no cyclic garbage collector (main_exit).
SHORT_COMMANDS = frozenset(("create", "run", "exec", "start", "state", "kill", "delete",
                            "list", "pause", "resume"))


def _dispatch(argv):
    """Parse argv and run the command; returns its exit code (errors are raised)."""
    glob, rest = parse_globals(argv)
    from . import log
    # The log is set up before the command is parsed: callers such as containerd read
    # --log for the reason of any failure, a wrong command line included.
    log.configure(debug=bool(glob.get("debug")), log_path=glob.get("log"),
                  log_format=glob.get("log-format", "text"))
    if glob.get("log-format", "text") not in ("text", "json"):
        raise UsageError("--log-format must be text or json, not %r" % glob["log-format"])
    if glob.get("version"):
        sys.stdout.write(version_text())
        return 0
    command, options, positionals = (None, {}, rest) if glob.get("help") else parse_command(rest)
    if glob.get("help") or options.get("help"):
        sys.stdout.write(usage_text())
        return 0
    from . import commands
    root = glob.get("root") or os.environ.get("MINIRUNC_ROOT") or "/run/minirunc"
    if glob.get("systemd-cgroup"):
        options["systemd-cgroup"] = True
    if glob.get("criu"):
        options["criu"] = glob["criu"]
    if command not in SHORT_COMMANDS:
        gc.enable()
    if command is None:
        if positionals:
            raise UsageError("unknown command %r (see `minirunc --help`)" % positionals[0])
        return commands.run_here(root)
    return getattr(commands, "cmd_" + command)(root, options, *positionals)


def main(argv=None):
    """The exit code of the command line ``argv``.  Whatever happens, the output is at most
    one line on stderr (the trace only with --debug)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or "-debug" in argv
    try:
        code = _dispatch(argv)
        sys.stdout.flush()   # here, not at exit: a closed pipe is then seen below
        return code
    except MiniruncError as e:
        from . import log
        if debug:
            import traceback
            traceback.print_exc()
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt as e:
        # Ctrl-C, or (foreground.Interrupted) a stop signal while the container was made
        signum = getattr(e, "signum", None)
        if signum is not None:
            from . import log
            from .signals import SIGNALS
            name = next((n for n, v in SIGNALS.items() if v == signum), str(signum))
            log.error("interrupted by SIG%s before the container's process was running; what "
                      "had been made is removed" % name)
        return 128 + (signum or 2)
    except BrokenPipeError:
        if _stdout_reader_gone():
            return _quiet_exit_on_closed_stdout()
        return _internal_error(debug)
    except Exception:
        return _internal_error(debug)


# CPython's exit code when it cannot flush stdout at exit (Py_FinalizeEx's 120).
FLUSH_FAILED_EXIT = 120


def main_exit():
    """End the process with main()'s exit code without the interpreter's finalization, which
    frees every module and object one by one: ~1.2 ms of plain `python3 -c 'import os'` here,
    more in a command that imported the runtime (docs/startup.md).  Nothing a command leaves
    needs it: minirunc writes files in `with` blocks or with os.write, and its one thread
    (cgroupwarm, a _thread) is not waited for at exit anyway.  Both streams are flushed first,
    as finalization would.

    The cyclic garbage collector is off for the commands in SHORT_COMMANDS: its passes over
    every object the imports made cost ~0.6-1 ms of a `run` and free nothing such a
    command would miss (reference counting frees the rest).  _dispatch turns it back on for
    every other command, foreground.relay_terminal for its loop."""
    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:      # None: the fd was closed when we started
                stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout:
                code = code or FLUSH_FAILED_EXIT
    os._exit(code if isinstance(code, int) else 1)


# The shell's code for a process killed by SIGPIPE, and what runc's Go runtime gives when
# its stdout reader goes away (`runc list | head -1`).
SIGPIPE_EXIT = 128 + 13


def _stdout_reader_gone():
    """Whether stdout is a pipe or socket whose reader has gone (poll reports an error)."""
    import select
    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(revents & (select.POLLERR | select.POLLHUP)
                   for _, revents in poller.poll(0))
    except (OSError, ValueError):
        return False


def _quiet_exit_on_closed_stdout():
    """Nobody reads our output any more: end without a word.  stdout is pointed at
    /dev/null so that the interpreter's flush at exit does not print "Exception ignored"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
    return SIGPIPE_EXIT


_SHOWN = 300   # characters of an unexpected exception's message


def _internal_error(debug):
    """The last resort for a bug: one line (the trace only with --debug), exit code 1 (or
    the one the command put on the exception: exec's 255)."""
    from . import log
    kind, value, _ = sys.exc_info()
    text = " ".join(str(value).split())
    if len(text) > _SHOWN:
        text = text[:_SHOWN] + "..."
    try:
        if debug:
            import traceback
            traceback.print_exc()
        log.error("internal error: %s: %s%s" % (kind.__name__, text, "" if debug else
                                                " (run with --debug for the trace)"))
    except OSError:
        pass     # stderr is gone too: the exit code is all that is left
    return getattr(value, "exit_code", 1)
