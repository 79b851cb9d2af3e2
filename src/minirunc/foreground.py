"""A container in the foreground: signal forwarding, the terminal relay, the exit code.

Used by `run` without `-d` and by bare `minirunc`. The container's init is our child
(the helper clones it with CLONE_PARENT), so we reap it and turn its status into our
exit code: the container's exit code, or 128+N when signal N killed it.
"""

import os
import signal

# Signals a person or a supervisor sends to `run`; each is passed on to the container.
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGPIPE, signal.SIGALRM, signal.SIGTERM, signal.SIGCONT, signal.SIGTSTP,
             signal.SIGTTIN, signal.SIGTTOU, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGVTALRM,
             signal.SIGPROF, signal.SIGIO, signal.SIGPWR, signal.SIGSYS)


class SignalForwarder:
    """Catches signals from the moment it is made; forwards them once the pid is known."""

    def __init__(self):
        self.pid = None
        self.pending = []
        self.winch = False
        for sig in FORWARDED:
            signal.signal(sig, self._handle)
        signal.signal(signal.SIGWINCH, self._resize)

    def _handle(self, signum, frame):
        if self.pid is None:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _resize(self, signum, frame):
        self.winch = True

    def attach(self, pid):
        self.pid = pid
        for signum in self.pending:
            self._handle(signum, None)
        self.pending = []


def exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait(pid):
    """Reap the init (retrying across forwarded signals) and return its exit code."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_code(status)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue


def copy_window_size(src_fd, master):
    import fcntl
    import termios
    try:
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def relay_terminal(master, pid, forwarder):
    """Relay between our stdio and the container's pty until the init exits.

    Our terminal goes to raw mode so that keys reach the container as typed; it is
    restored on every way out.
    """
    import select
    import termios
    import tty
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        tty.setraw(0, termios.TCSANOW)
    try:
        inputs = [master, 0]
        status = None
        while status is None:
            if forwarder.winch and stdin_tty:
                forwarder.winch = False
                copy_window_size(0, master)
            try:
                readable, _, _ = select.select(inputs, [], [], 0.2)
            except InterruptedError:
                continue
            if 0 in readable:
                data = os.read(0, 4096)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(0)
            if master in readable:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    inputs.remove(master)
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
        _drain(master)
        return exit_code(status)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _drain(master):
    """Copy what the container wrote just before it exited."""
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(1, data)
