"""The hooks the runtime runs itself: prestart, createRuntime, poststart and poststop.

They run in the runtime's namespaces with the container's state JSON on stdin
(runtime-spec config.md, "POSIX-platform Hooks"); without ``env`` they inherit the
runtime's environment, as runc's do.  Their working directory is the bundle (runc runs
them from there: it chdirs into the bundle for create and run), or the caller's when the
bundle is gone.  prestart and createRuntime (and createContainer) read status `created`,
as crun gives and the runtime-spec validation suite expects (runc 1.1 says `creating`).  createContainer and startContainer run inside the
container and are the C init's job (plan._add_hooks).  state.json keeps the hooks
(``to_record``) so that `start` and `delete` find them without the bundle.

Imported only for containers that have hooks: subprocess is not on the plain
container path.
"""

import os

from minirunc import jsontext, log
from minirunc.config import Hook
from minirunc.errors import HookError

# runtime-spec: pid is REQUIRED while the container's process exists.
_WITH_PID = ("creating", "created", "running")
_OUTPUT_SHOWN = 300


def state_json(state, status):
    """The OCI state document a hook reads on stdin (bytes)."""
    doc = {"ociVersion": state.get("ociVersion", ""), "id": state.get("id", ""),
           "status": status}
    if status in _WITH_PID and state.get("pid"):
        doc["pid"] = state["pid"]
    doc["bundle"] = state.get("bundle", "")
    doc["annotations"] = state.get("annotations") or {}
    return jsontext.dumps(doc).encode()


def to_record(hooks):
    """config.hooks ({kind: [Hook]}) as plain JSON for state.json."""
    return {kind: [{"where": h.where, "path": h.path, "args": h.args, "env": h.env,
                    "timeout": h.timeout} for h in entries]
            for kind, entries in hooks.items()}


def from_record(record, kind):
    """The Hooks of ``kind`` in a state.json ``hooks`` record (None or missing: none)."""
    return [Hook(h["where"], h["path"], h["args"], h["env"], h["timeout"])
            for h in (record or {}).get(kind, ())]


def run(hooks, state, fatal=True):
    """Run ``hooks`` one after the other with ``state`` (bytes) on stdin.  The first
    failure raises HookError when ``fatal``; otherwise each failure is a warning and
    the rest still run (poststart and poststop, as the spec asks)."""
    cwd = _bundle_dir(state) if hooks else None
    for hook in hooks:
        try:
            _run_one(hook, state, cwd)
        except HookError as e:
            if fatal:
                raise
            log.warning(str(e))


def _bundle_dir(state):
    """The bundle named in the state document, if it is still a directory (else None:
    the hook runs where the runtime was started)."""
    import json
    try:
        bundle = json.loads(state).get("bundle")
    except ValueError:
        return None
    return bundle if isinstance(bundle, str) and bundle and os.path.isdir(bundle) else None


def _run_one(hook, state, cwd=None):
    """Run one hook; its output is kept, and its last line shown if it fails (as runc
    shows a failed hook's output)."""
    import subprocess
    env = None if hook.env is None else dict(entry.split("=", 1) for entry in hook.env)
    try:
        done = subprocess.run(hook.args, executable=hook.path, input=state, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=hook.timeout or None, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise HookError(hook.where, hook.path, "did not finish within its timeout of %d s "
                        "(killed)" % hook.timeout) from None
    except OSError as e:
        raise HookError(hook.where, hook.path, "cannot execute it", e.errno) from None
    log.debug("%s %s: %s" % (hook.where, hook.path, _status_text(done.returncode)))
    if done.returncode:
        problem = _status_text(done.returncode)
        said = done.stdout.decode(errors="replace").strip()
        if said:
            problem += ": " + said.splitlines()[-1][-_OUTPUT_SHOWN:]
        raise HookError(hook.where, hook.path, problem)


def _status_text(returncode):
    if returncode < 0:
        return "killed by signal %d" % -returncode
    return "exited with status %d" % returncode
