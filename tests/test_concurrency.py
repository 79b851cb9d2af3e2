"""Concurrency (issue 8): many runtime commands at once.

- 200 create/start/kill/delete sequences on distinct ids, 16 at a time: every command
  succeeds (the ids share nothing but the --root and the parent cgroups).
- 50 mixed operations on ONE id (create, start, state, kill, delete, pause, resume, exec)
  in a fixed random order, 16 at a time: each succeeds or fails with one clear line, and
  state.json is never seen half written while they run.
After each, a final `delete --force`: no state directory, cgroup, process or mount left.
"""

import concurrent.futures
import json
import os
import random
import signal
import threading

import pytest

from host_leftovers import (leftover_cgroups, leftover_processes, mounts_under,
                            subreaper)  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

WORKERS = 16
DISTINCT = 200
ON_ONE_ID = 50


def check_output(result):
    """Exit 0, or one line of error (warnings are lines of their own); never a traceback."""
    text = result.stderr
    assert "Traceback" not in text and "Exception" not in text, text
    lines = [l for l in text.splitlines() if l.strip()]
    assert all(l.startswith("minirunc: ") for l in lines), text
    if result.returncode != 0:
        errors = [l for l in lines if not l.startswith("minirunc: warning: ")]
        if not errors and result.args[-3] == "exec" and result.returncode == 128 + signal.SIGKILL:
            return   # its process died with the container (a kill or delete --force at once):
            #          exec exits with the process's status and no message, as runc's does
        assert len(errors) == 1, "%s: %r" % (result.args[-3:], text)


def nothing_left(rt, ids, tmp_path):
    left = [cid for cid in ids if os.path.exists(os.path.join(rt.root, cid))]
    assert not left, "state directories left: %s" % left[:10]
    cgroups = [d for cid in ids for d in leftover_cgroups(cid)]
    assert not cgroups, "cgroups left: %s" % cgroups[:10]
    processes = leftover_processes()
    assert not processes, "processes left: %s" % processes[:10]
    assert not mounts_under(tmp_path, rt.root), "mounts left"


def lifecycle(rt, bundle, cid):
    """create, start, kill -KILL, wait until stopped, delete: the results in order."""
    results = []
    for args in (("create", "--bundle", bundle, cid), ("start", cid), ("kill", cid, "KILL")):
        results.append(rt(*args, timeout=120))
        if results[-1].returncode != 0:
            return results
    for _ in range(200):
        r = rt("state", cid, timeout=120)
        if r.returncode != 0 or json.loads(r.stdout)["status"] == "stopped":
            break
    results.append(r)
    results.append(rt("delete", cid, timeout=120))
    return results


def test_distinct_ids_in_parallel(rt, make, tmp_path, subreaper):
    bundle = make(["sleep", "1000"])
    ids = [rt.new_id("par%03d" % i) for i in range(DISTINCT)]
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        runs = list(pool.map(lambda cid: lifecycle(rt, bundle, cid), ids))
    failures = []
    for cid, results in zip(ids, runs):
        for r in results:
            check_output(r)
            if r.returncode != 0:
                failures.append("%s %s: %s" % (cid, r.args[-3:], r.stderr.strip()))
    assert not failures, "%d failures, e.g. %s" % (len(failures), failures[:5])
    assert all(len(results) == 5 for results in runs)
    nothing_left(rt, ids, tmp_path)


def operations(bundle, cid, count, seed=8):
    """``count`` operations on ``cid`` in a fixed random order."""
    rng = random.Random(seed)
    kinds = {
        "create": lambda: ("create", "--bundle", bundle, cid),
        "start": lambda: ("start", cid),
        "state": lambda: ("state", cid),
        "kill": lambda: ("kill", cid, rng.choice(["KILL", "TERM", "0"])),
        "delete": lambda: ("delete", "--force", cid) if rng.random() < 0.5 else ("delete", cid),
        "pause": lambda: ("pause", cid),
        "resume": lambda: ("resume", cid),
        "exec": lambda: ("exec", cid, "true"),
    }
    weights = {"create": 9, "start": 8, "state": 8, "kill": 5, "delete": 6, "pause": 4,
               "resume": 4, "exec": 6}
    names = [name for name, n in weights.items() for _ in range(n)]
    assert len(names) == count
    rng.shuffle(names)
    return [(name, kinds[name]()) for name in names]


class StateWatcher(threading.Thread):
    """Reads <root>/<id>/state.json in a loop: whenever it exists, it must be whole JSON."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.reads = 0
        self.torn = []

    def run(self):
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                self.stop.wait(0.002)   # leave the CPU to the commands
                continue
            self.reads += 1
            try:
                json.loads(data)
            except ValueError as e:
                self.torn.append("%s: %r" % (e, data[:200]))


def test_mixed_operations_on_one_id(rt, make, tmp_path, subreaper):
    bundle = make(["sleep", "1000"])
    cid = rt.new_id("one")
    ops = operations(bundle, cid, ON_ONE_ID)
    watcher = StateWatcher(os.path.join(rt.root, cid, "state.json"))
    watcher.start()
    pool = concurrent.futures.ThreadPoolExecutor(WORKERS)
    try:
        futures = {pool.submit(rt, *args, timeout=120): name for name, args in ops}
        done, pending = concurrent.futures.wait(futures, timeout=60)
        # An exec whose process joined the container while a pause froze it waits (like
        # runc's) until the container is resumed or killed: the final cleanup does both.
        assert all(futures[f] == "exec" for f in pending), [futures[f] for f in pending]
        rt("resume", cid)
        final = rt("delete", "--force", cid, timeout=60)
        done, pending = concurrent.futures.wait(futures, timeout=60)
        assert not pending, "commands still running after delete --force: %s" % (
            [futures[f] for f in pending])
    finally:
        watcher.stop.set()
        watcher.join()
        pool.shutdown(wait=True)
    outcomes = {}
    for future, name in futures.items():
        r = future.result()
        check_output(r)
        outcomes.setdefault(name, [0, 0])[r.returncode != 0] += 1
        if name == "state" and r.returncode == 0:
            assert json.loads(r.stdout)["id"] == cid
    print("operations on one id (ok, failed):", outcomes, "state.json reads:", watcher.reads)
    assert not watcher.torn, watcher.torn[:3]
    check_output(final)
    assert final.returncode == 0, final.stderr
    assert outcomes["create"][0] >= 1, outcomes   # the sequence did make a container
    nothing_left(rt, [cid], tmp_path)
