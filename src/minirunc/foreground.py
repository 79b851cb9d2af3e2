"""A container in the foreground: signal forwarding, the terminal relay, the exit code.

Used by `run` without `-d`, by `exec` and by bare `minirunc`. The container's init is our
child (the helper clones it with CLONE_PARENT), so we reap it and turn its status into our
exit code: the container's exit code, or 128+N when signal N killed it.

Signals: until the container exists (while `create` reads config.json, runs hooks, mounts),
SIGHUP/SIGINT/SIGQUIT/SIGTERM abort: `Interrupted` is raised out of create, whose cleanup
removes what it made, and the CLI exits 128+N.  Afterwards every signal in FORWARDED is
passed on to the container's process.

The terminal relay is one poll loop over non-blocking fds with a bounded buffer per
direction: it never blocks on one direction while the other has data, so a container that
does not read its input cannot stop its output, nor signals, nor `run`'s end.
"""

import os
# The C module: `signal` wraps it in enums (importing enum costs ~1 ms per `run`/`create`).
import _signal as signal

# Signals a person or a supervisor sends to `run`; each is passed on to the container.
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGPIPE, signal.SIGALRM, signal.SIGTERM, signal.SIGCONT, signal.SIGTSTP,
             signal.SIGTTIN, signal.SIGTTOU, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGVTALRM,
             signal.SIGPROF, signal.SIGIO, signal.SIGPWR, signal.SIGSYS)

# Signals that mean "stop" while there is no container yet to pass them to.
ABORT = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)

# Bytes held per relay direction; a full buffer stops reading from that side.
BUFFER = 64 * 1024


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived before the container existed.  A KeyboardInterrupt, so that
    every cleanup that handles Ctrl-C (create's, subprocess's for a hook) handles it too;
    the CLI turns it into exit code 128+signum."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class SignalForwarder:
    """Catches signals from the moment it is made; forwards them once the pid is known.

    With ``abort``, the signals in ABORT raise Interrupted (once: a second one must not cut
    the cleanup short) until ``created()``; the others are queued.  With ``forward=False``
    (a detached run) only the abort handlers are installed.
    """

    def __init__(self, abort=False, forward=True):
        self.pid = None
        self.pending = []
        self.aborting = abort
        self.aborted = None
        self.reaped = False
        self.late = []          # signals that came after the process was reaped
        self.winch = False
        self.on_winch = None    # the relay's resize callback
        for sig in (FORWARDED if forward else ABORT):
            signal.signal(sig, self._handle)
        if forward:
            signal.signal(signal.SIGWINCH, self._resize)

    def _handle(self, signum, frame):
        if self.reaped:
            self.late.append(signum)   # the pid may be reused: never signal it again
            return
        if self.pid is None:
            if self.aborting and signum in ABORT:
                if self.aborted is None:
                    self.aborted = signum
                    raise Interrupted(signum)
                return
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _resize(self, signum, frame):
        self.winch = True
        if self.on_winch is not None:
            self.on_winch()

    def created(self):
        """The container exists: from now on signals are queued for it, not fatal."""
        self.aborting = False

    def attach(self, pid):
        self.aborting = False
        self.pid = pid
        for signum in self.pending:
            self._handle(signum, None)
        self.pending = []

    def done(self):
        """The process was reaped: its pid is no longer ours to signal."""
        self.reaped = True


def exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait(pid, forwarder=None):
    """Reap the init (retrying across forwarded signals) and return its exit code."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = None
            break
        except InterruptedError:
            continue
    if forwarder is not None:
        forwarder.done()
    return 255 if status is None else exit_code(status)


def copy_window_size(src_fd, master):
    import fcntl
    import termios
    try:
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def relay_terminal(master, pid, forwarder):
    """Relay between our stdio and the container's pty until the process exits; returns
    its exit code.  Used by `run` and `exec -t`.

    Our terminal goes to raw mode so that keys reach the container as typed, and our
    stdin/stdout become non-blocking; both are restored on every way out.  When our
    reader goes away (`run ... | head`), the write fails with EPIPE and the kernel sends
    us SIGPIPE, which the forwarder passes on to the container, as runc does: a program
    that keeps the default action ends with 141, the shell's code for it.  Then the pty
    is hung up (see _Relay._hang_up), so that it never hangs on a full pty either; the
    exit code is the container's.
    """
    import gc
    import termios
    gc.enable()     # a session can last for days (cli.main_exit turned it off)
    saved_mode = None
    if os.isatty(0):
        try:
            saved_mode = termios.tcgetattr(0)
            import tty
            tty.setraw(0, termios.TCSANOW)
        except termios.error:
            saved_mode = None
    saved_flags = {}
    relay = None
    try:
        saved_flags = _make_nonblocking((0, 1))
        os.set_blocking(master, False)
        relay = _Relay(master, pid, forwarder, 0 in saved_flags, 1 in saved_flags)
        if saved_mode is not None:
            forwarder.on_winch = relay.resize
        return exit_code(relay.run())
    finally:
        if relay is not None:
            master = relay.master       # None once the relay hung up the terminal
        forwarder.on_winch = None
        _restore_flags(saved_flags)
        if saved_mode is not None:
            try:
                # TCSANOW: a terminal that does not read must not hang us on the way out.
                termios.tcsetattr(0, termios.TCSANOW, saved_mode)
            except termios.error:
                pass
        if master is not None:
            os.close(master)


def _make_nonblocking(fds):
    """Set O_NONBLOCK on ``fds``; returns {fd: original flags} for the ones that are open.
    Every flag is read before any is set: stdin and stdout often share one open file."""
    import fcntl
    saved = {}
    for fd in fds:
        try:
            saved[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            pass
    for fd, flags in saved.items():
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    return saved


def _restore_flags(saved):
    import fcntl
    for fd, flags in saved.items():
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        except OSError:
            pass


class _Relay:
    """stdin -> pty master and pty master -> stdout, each through a buffer of at most
    BUFFER bytes, in one poll loop that also watches the process (a pidfd)."""

    def __init__(self, master, pid, forwarder, stdin_open, stdout_open):
        self.master = master
        self.pid = pid
        self.forwarder = forwarder
        self.to_master = bytearray()
        self.to_stdout = bytearray()
        self.stdin_open = stdin_open
        self.stdout_open = stdout_open     # False once our reader went away
        self.master_in = True              # the pty still has a writer (a slave fd is open)
        self.master_out = True             # the pty still takes input

    def resize(self):
        """SIGWINCH: our terminal's size goes to the container's."""
        if self.master is not None:
            copy_window_size(0, self.master)

    def run(self):
        """Relay until the process exits; returns its wait status."""
        import select
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            pidfd = None                    # old kernel: poll the status 5 times a second
        try:
            while True:
                poller = select.poll()
                for fd, events in self._interest().items():
                    poller.register(fd, events)
                if pidfd is not None:
                    poller.register(pidfd, select.POLLIN)
                ready = dict(poller.poll(None if pidfd is not None else 200))
                if pidfd is None or pidfd in ready:
                    try:
                        done, status = os.waitpid(self.pid, os.WNOHANG)
                    except ChildProcessError:   # reaped elsewhere: the status is lost
                        done, status = self.pid, 255 << 8
                    if done:
                        break
                self._move(ready)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        self.forwarder.done()
        self._drain()
        return status

    def _interest(self):
        import select
        events = {}

        def want(fd, event):
            events[fd] = events.get(fd, 0) | event
        if self.stdin_open and len(self.to_master) < BUFFER:
            want(0, select.POLLIN)
        if self.master_out and self.to_master:
            want(self.master, select.POLLOUT)
        if self.master_in and len(self.to_stdout) < BUFFER:
            want(self.master, select.POLLIN)
        if self.stdout_open and self.to_stdout:
            want(1, select.POLLOUT)
        return events

    def _move(self, ready):
        """One round: each side that poll reported is read or written once."""
        import select
        if ready.get(0):
            self._read_stdin()
        if ready.get(self.master):
            if ready[self.master] & select.POLLHUP:
                # No slave fd is open: nobody can read input (and the pty may still take
                # writes, which would spin this loop); what it holds is still read below.
                self.master_out = False
                self.to_master.clear()
            if self.to_master and self.master_out:
                self._write_master()
            if self.master_in and len(self.to_stdout) < BUFFER:
                self._read_master()
        if ready.get(1) and self.to_stdout:
            self._write_stdout()

    def _read_stdin(self):
        try:
            data = os.read(0, BUFFER - len(self.to_master))
        except BlockingIOError:
            return
        except OSError:          # EIO: our terminal hung up
            data = b""
        if not data:
            self.stdin_open = False
        elif self.master_out:
            self.to_master += data

    def _write_master(self):
        try:
            del self.to_master[:os.write(self.master, self.to_master)]
        except BlockingIOError:
            pass
        except OSError:          # the pty is gone: what is still queued has no reader
            self.master_out = False
            self.to_master.clear()

    def _read_master(self):
        try:
            data = os.read(self.master, BUFFER - len(self.to_stdout))
        except BlockingIOError:
            return
        except OSError:          # EIO: every slave fd is closed
            data = b""
        if not data:
            # Nobody holds the pty any more: nobody will read input either (and poll
            # would report the hangup for ever).
            self.master_in = self.master_out = False
            self.to_master.clear()
        elif self.stdout_open:
            self.to_stdout += data

    def _write_stdout(self):
        try:
            del self.to_stdout[:os.write(1, self.to_stdout)]
        except BlockingIOError:
            pass
        except OSError:          # EPIPE (SIGPIPE went to the container), EIO
            self.stdout_open = False
            self.to_stdout.clear()
            self._hang_up()

    def _hang_up(self):
        """Our reader is gone, as when a terminal window closes: close the pty master, so
        that the kernel hangs up the container's terminal (SIGHUP to its session, EIO on
        its reads and writes) and a program that ignores SIGPIPE still sees it."""
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.master_in = self.master_out = self.stdin_open = False
        self.to_master.clear()

    def _drain(self):
        """After the exit: copy what the process wrote just before it, while our reader
        takes it.  Bounded: a process left behind that keeps writing cannot hold us, and
        a signal to us now stops the wait (nobody else will read it)."""
        import select
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        budget = 4 * BUFFER
        while self.stdout_open and not self.forwarder.late:
            if self.master_in and budget > 0 and len(self.to_stdout) < BUFFER:
                before = len(self.to_stdout)
                self._read_master()
                got = len(self.to_stdout) - before
                budget -= got
                if not got:
                    self.master_in = False   # nothing more was written before the exit
            if not self.to_stdout:
                break
            if poller.poll(200):
                self._write_stdout()
