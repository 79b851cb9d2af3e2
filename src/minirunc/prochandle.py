"""A handle on a process whose pid may be reused: a pidfd (Linux 5.3), else the pid and
its start time, checked again before every signal.

A pidfd can only ever signal the process it was opened for.  Without one (pidfd_open
answers ENOSYS, decided once), the handle keeps the start time of /proc/<pid>/stat and
reads it again right before each kill(2): a pid reused by another process has another
start time and gets nothing.  What remains is the race runc lives with too (a reuse
between that read and the kill, which needs the whole pid space to wrap meanwhile).
Waiting for the end polls the start time (gone, or a zombie: done).
"""

import errno
import os
import time

from .state import process_start_time

_pidfd_works = None   # None until the first pidfd_open answers


class Process:
    __slots__ = ("pid", "start", "fd")

    def __init__(self, pid, start, fd):
        self.pid, self.start, self.fd = pid, start, fd

    @classmethod
    def open(cls, pid, start=None):
        """A handle on ``pid``, or None if it is gone, a zombie, or (with ``start``)
        another process than the one that started then."""
        global _pidfd_works
        fd = None
        if _pidfd_works is not False:
            try:
                fd = os.pidfd_open(pid)
                _pidfd_works = True
            except ProcessLookupError:
                return None
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
                _pidfd_works = False
        now = process_start_time(pid)
        if now is None or (start is not None and now != start):
            if fd is not None:
                os.close(fd)
            return None
        return cls(pid, now, fd)

    def send(self, signum):
        """Signal the process; ProcessLookupError once it is gone."""
        if self.fd is not None:
            import signal
            signal.pidfd_send_signal(self.fd, signum)
            return
        if process_start_time(self.pid) != self.start:
            raise ProcessLookupError(errno.ESRCH, "process %d is gone" % self.pid)
        os.kill(self.pid, signum)

    def wait_gone(self, timeout=10.0):
        """True once the process has exited (within ``timeout`` seconds)."""
        if self.fd is not None:
            import select
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            return bool(poller.poll(int(timeout * 1000)))
        end = time.monotonic() + timeout
        pause = 0.001
        while process_start_time(self.pid) == self.start:
            if time.monotonic() >= end:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
