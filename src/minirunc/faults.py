"""Test-only stop points (issue 8, "Faults"): kill -9 the runtime at a named step.

``MINIRUNC_TEST_STOP_AT=<step>`` (e.g. ``create:cgroups-made``) makes the runtime, when it
reaches that step, write ``<pid> <step>`` to the file named by
``MINIRUNC_TEST_STOP_MARKER`` (if set) and SIGSTOP itself.  A test waits until the process
is stopped (state ``T`` in /proc/<pid>/stat), SIGKILLs it there and checks that
``delete --force`` leaves nothing on the host.  Without the variable a step costs one
dict lookup.  The steps are listed in STEPS, in the order each command reaches them;
docs/design.md ("Fault points") says where each one is.
"""

import os

STEPS = (
    "create:state-dir-made", "create:cgroup-recorded", "create:cgroups-made",
    "create:init-spawned", "create:pid-recorded", "create:hooks-run", "create:ready",
    "create:state-saved",
    "start:locked", "start:start-sent",
    "exec:spawned", "exec:started",
    "delete:locked", "delete:killed", "delete:cgroups-removed", "delete:state-removed",
)


def point(step):
    """Stop here when MINIRUNC_TEST_STOP_AT names ``step``."""
    if os.environ.get("MINIRUNC_TEST_STOP_AT") == step:
        _stop(step)


def _stop(step):
    marker = os.environ.get("MINIRUNC_TEST_STOP_MARKER")
    if marker:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"%d %s\n" % (os.getpid(), step.encode()))
        finally:
            os.close(fd)
    os.kill(os.getpid(), 19)   # SIGSTOP: the test kills us here (or SIGCONTs us)
