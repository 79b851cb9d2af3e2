"""Shared fixtures: a runtime driver with its own state root, and busybox bundles.

Tests drive the real command line (`python -m minirunc`, or the binary named by
MINIRUNC_BIN) against real bundles and read back what happened inside the container.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from make_bundle import base_config, make_bundle, write_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(REPO, "src")


def build_constant(name):
    """The value of a top-level constant of build/binary.py (read, not imported: importing it
    needs plumbum and sets up the build)."""
    import ast
    with open(os.path.join(REPO, "build", "binary.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError("build/binary.py has no %s" % name)


def wait_for(predicate, timeout=10.0):
    """Poll ``predicate`` every 50 ms until it is true (True) or ``timeout`` passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def one_error_line(r):
    """The run failed with exactly one line on stderr (no traceback); returns it."""
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


OLDKERNEL = os.path.join(REPO, "tests", "oldkernel.py")


def minirunc_command():
    """The runtime's command line: the binary named by MINIRUNC_BIN or the source tree;
    with MINIRUNC_KERNEL=4.14 (a release), run under tests/oldkernel.py, as if on that
    kernel (every newer syscall fails with ENOSYS)."""
    binary = os.environ.get("MINIRUNC_BIN")
    cmd = [os.path.abspath(binary)] if binary else [sys.executable, "-m", "minirunc"]
    kernel = os.environ.get("MINIRUNC_KERNEL")
    if kernel:
        cmd = [sys.executable, OLDKERNEL, kernel, "--"] + cmd
    return cmd


def runtime_env(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("LISTEN_FDS", None)
    if extra:
        env.update(extra)
    return env


class Runtime:
    """Runs minirunc with a private --root; remembers ids so the fixture can clean up."""

    def __init__(self, root):
        self.root = str(root)
        self.ids = set()

    def cmd(self, *args):
        return minirunc_command() + ["--root", self.root] + [str(a) for a in args]

    def __call__(self, *args, timeout=60, cwd=None, env=None):
        """Run minirunc; returns (returncode, stdout, stderr) as a CompletedProcess.

        Output goes to files, not pipes: a created or detached container keeps the
        stdio it inherited, so a pipe would not see EOF until the container exits.
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(self.cmd(*args), timeout=timeout, cwd=cwd, env=runtime_env(env),
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode,
                                               out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))

    def new_id(self, prefix="t"):
        cid = "%s-%s" % (prefix, uuid.uuid4().hex[:10])
        self.ids.add(cid)
        return cid

    def state(self, cid):
        r = self("state", cid)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def run(self, bundle, *extra, cid=None, **kw):
        """`run` a bundle in the foreground; returns the CompletedProcess."""
        cid = cid or self.new_id()
        return self("run", "--bundle", bundle, *extra, cid, **kw)

    def cleanup(self):
        for cid in self.ids:
            self("delete", "--force", cid)


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(tmp_path / "state")
    yield runtime
    runtime.cleanup()


@pytest.fixture
def make(tmp_path):
    """make(args, edit=None): a bundle whose config `edit(config)` may change in place."""
    counter = [0]

    def factory(args=("true",), edit=None, terminal=False):
        counter[0] += 1
        path = tmp_path / ("bundle%d" % counter[0])
        config = base_config(args, terminal)
        if edit:
            edit(config)
        make_bundle(str(path), config=config)
        return path

    return factory


__all__ = ["Runtime", "base_config", "make_bundle", "write_config", "minirunc_command",
           "wait_for"]
