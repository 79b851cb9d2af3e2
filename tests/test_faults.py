"""Faults (issue 8): kill -9 of the runtime at each named step of create, start, exec and
delete, then `delete --force`: nothing may be left on the host.

The runtime stops itself at a step when MINIRUNC_TEST_STOP_AT names it (src/minirunc/
faults.py): it writes its pid to MINIRUNC_TEST_STOP_MARKER and SIGSTOPs itself; the test
waits for the stopped state, SIGKILLs it and looks for what is left: the state directory,
cgroup directories named after the id, processes (the test is a child subreaper, so a
container process orphaned by the killed runtime becomes its child), mounts under the
test's directories.
"""

import json
import os
import signal
import subprocess

import pytest

from conftest import runtime_env, wait_for
from host_leftovers import (kill_and_reap, leftover_cgroups, leftover_processes, mounts_under,
                            proc_state, subreaper)  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CREATE_STEPS = ["create:state-dir-made", "create:cgroup-recorded", "create:cgroups-made",
                "create:init-spawned", "create:pid-recorded", "create:hooks-run",
                "create:ready", "create:state-saved"]
START_STEPS = ["start:locked", "start:start-sent"]
EXEC_STEPS = ["exec:spawned", "exec:started"]
DELETE_STEPS = ["delete:locked", "delete:killed", "delete:cgroups-removed",
                "delete:state-removed"]


def with_hooks(config):
    # A prestart hook makes the init stop after its mounts (the create:hooks-run step).
    config["hooks"] = {"prestart": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true"}]}


def with_cgroupns(config):
    # The runtime spawns the init from inside the container's cgroups (cgroup namespace).
    config["linux"]["namespaces"].append({"type": "cgroup"})


VARIANTS = {"hooks": with_hooks, "plain": None, "cgroupns": with_cgroupns}


@pytest.fixture
def bundle(make):
    return make(["sleep", "1000"], edit=with_hooks)


class Stopped:
    """A runtime command stopped at a step; ``pid`` is the runtime's own (from the marker)."""

    def __init__(self, proc, pid, out):
        self.proc = proc
        self.pid = pid
        self.out = out

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        if self.pid != self.proc.pid:
            kill_and_reap(self.pid)


def stop_at(rt, tmp_path, step, *args):
    """Run ``minirunc *args`` until it stops itself at ``step``; returns a Stopped."""
    marker = tmp_path / ("stopped-" + step.replace(":", "-"))
    out = open(tmp_path / ("out-" + step.replace(":", "-")), "w+")
    proc = subprocess.Popen(rt.cmd(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                            env=runtime_env({"MINIRUNC_TEST_STOP_AT": step,
                                             "MINIRUNC_TEST_STOP_MARKER": str(marker)}))

    def stopped():
        if proc.poll() is not None:
            return True
        if not marker.exists():
            return False
        text = marker.read_text().split()
        return len(text) == 2 and proc_state(int(text[0])) == "T"

    try:
        assert wait_for(stopped, timeout=60), "%s did not reach %s" % (args[0], step)
        if proc.poll() is not None:
            out.seek(0)
            pytest.fail("%s exited (%d) before %s: %s" % (args[0], proc.returncode, step,
                                                          out.read()[-2000:]))
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    pid, reached = marker.read_text().split()
    assert reached == step
    return Stopped(proc, int(pid), out)


def check_one_line_or_ok(result, what):
    assert "Traceback" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert all(l.startswith("minirunc: ") for l in lines), "%s: %r" % (what, result.stderr)
    if result.returncode != 0:
        assert len([l for l in lines if not l.startswith("minirunc: warning:")]) == 1, \
            result.stderr


def delete_leaves_nothing(rt, cid, tmp_path):
    """`delete --force` after a kill: exit 0, then nothing of the container on the host."""
    init = recorded_pid(rt, cid)
    r = rt("delete", "--force", cid, timeout=60)
    check_one_line_or_ok(r, "delete --force")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid)), "state directory left"
    assert not leftover_cgroups(cid), "cgroups left: %s" % leftover_cgroups(cid)
    if init:
        assert proc_state(init) in (None, "Z", "X"), "init %d is alive" % init
    left = leftover_processes()
    assert not left, "processes left: %s" % left
    assert not mounts_under(tmp_path, rt.root), "mounts left: %s" % mounts_under(tmp_path, rt.root)
    rt.ids.discard(cid)


def recorded_pid(rt, cid):
    """The init's pid from state.json, if the killed command got as far as recording it."""
    try:
        with open(os.path.join(rt.root, cid, "state.json")) as f:
            return json.load(f).get("pid") or None
    except (OSError, ValueError):
        return None


def created(rt, bundle, cid, start=False):
    r = rt("create", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    if start:
        r = rt("start", cid)
        assert r.returncode == 0, r.stderr


# Without a hook or a user namespace to wait for (and born outside the container's
# cgroups), the init goes on while the runtime is stopped at create:init-spawned: it reports
# ready and waits on its start socket before its pid is known; delete --force finds it by
# that socket (it was left running before harm-state's fix).


def create_cases():
    for variant in VARIANTS:
        for step in CREATE_STEPS:
            if step == "create:hooks-run" and variant != "hooks":
                continue   # no hooks: the step is never reached
            yield pytest.param(variant, step, id="%s-%s" % (variant, step))


@pytest.mark.parametrize("variant,step", list(create_cases()))
def test_kill_during_create(variant, step, rt, make, tmp_path, subreaper):
    bundle = make(["sleep", "1000"], edit=VARIANTS[variant])
    cid = rt.new_id("fault")
    stop_at(rt, tmp_path, step, "create", "--bundle", bundle, cid).kill()
    delete_leaves_nothing(rt, cid, tmp_path)


@pytest.mark.parametrize("step", START_STEPS)
def test_kill_during_start(step, rt, bundle, tmp_path, subreaper):
    cid = rt.new_id("fault")
    created(rt, bundle, cid)
    stop_at(rt, tmp_path, step, "start", cid).kill()
    delete_leaves_nothing(rt, cid, tmp_path)


@pytest.mark.parametrize("step", EXEC_STEPS)
def test_kill_during_exec(step, rt, bundle, tmp_path, subreaper):
    cid = rt.new_id("fault")
    created(rt, bundle, cid, start=True)
    stop_at(rt, tmp_path, step, "exec", cid, "sleep", "1000").kill()
    # The exec'd process outlives the killed runtime: the container's delete ends it.
    delete_leaves_nothing(rt, cid, tmp_path)


@pytest.mark.parametrize("step", DELETE_STEPS)
def test_kill_during_delete(step, rt, bundle, tmp_path, subreaper):
    cid = rt.new_id("fault")
    created(rt, bundle, cid, start=True)
    stop_at(rt, tmp_path, step, "delete", "--force", cid).kill()
    delete_leaves_nothing(rt, cid, tmp_path)


def test_every_step_of_the_runtime_is_tested():
    """The list above is faults.STEPS: a step added to the runtime gets its test."""
    from minirunc import faults
    assert CREATE_STEPS + START_STEPS + EXEC_STEPS + DELETE_STEPS == list(faults.STEPS)


def test_stop_point_is_inert_without_the_variable(rt, bundle, tmp_path, subreaper):
    """A step that is not named does nothing: the whole lifecycle runs through every point."""
    cid = rt.new_id("fault")
    r = rt("create", "--bundle", bundle, cid, env={"MINIRUNC_TEST_STOP_AT": "no:such-step"})
    assert r.returncode == 0, r.stderr
    delete_leaves_nothing(rt, cid, tmp_path)
