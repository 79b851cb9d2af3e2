"""Issue 8, items 5-7: `run` in the foreground must not hang, ignore signals or leave things
behind, and the CLI never prints a traceback.

- a terminal container that does not read its input, flooded on stdin, still relays its
  output, ends, and is cleaned up (run and exec -t share the relay);
- SIGTERM during the flood reaches the container; a reader that goes away (`| head`) ends
  `run` quietly;
- SIGINT/SIGTERM while `run` is creating (a FIFO config.json, a hook that never ends)
  abort it: exit 128+N, and nothing is left (state dir, cgroup, init, hook process);
- an unexpected exception is one line (the trace with --debug), a closed stdout is quiet.
"""

import json
import os
import select
import signal
import subprocess
import tempfile
import termios
import time

import pytest

from conftest import runtime_env, wait_for

CHUNK = b"0123456789abcdef0123456789abcde\n" * 2048     # 64 KiB of complete lines
FLOOD = 8 * 1024 * 1024
HANG_GUARD = 60     # seconds: only so that a regression fails instead of hanging the suite


def record_of(rt, cid):
    """state.json of a container while it exists (None before it is written)."""
    try:
        with open(os.path.join(rt.root, cid, "state.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if data.get("pid") and data.get("cgroup") else None


def cgroup_dirs(record):
    cgroup = record["cgroup"]
    dirs = set((cgroup.get("paths") or {}).values())
    if cgroup.get("unified"):
        dirs.add(cgroup["unified"])
    return sorted(dirs)


def pid_alive(pid, start=None):
    """Whether ``pid`` still names the process that had this start time (pids are reused)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    if fields[0] == "Z":
        return False
    return start is None or int(fields[19]) == start


def start_time(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def assert_nothing_left(rt, cid, record):
    """The container's state dir, cgroup directories and init are gone."""
    state_dir = os.path.join(rt.root, cid)
    assert not os.path.exists(state_dir), "state dir left: %s" % os.listdir(state_dir)
    leftover = [d for d in cgroup_dirs(record) if os.path.isdir(d)]
    assert leftover == [], "cgroups left: %s" % leftover
    assert not pid_alive(record["pid"], record.get("pid_start")), "init %d left" % record["pid"]


def no_traceback(text):
    assert "Traceback" not in text and "Exception ignored" not in text, text
    assert "BrokenPipeError" not in text, text


def flood(master, proc, until=None):
    """Write up to FLOOD bytes of lines into ``master`` (the runtime's stdin) while reading
    what comes out, until ``proc`` exits (or ``until(output, refused)`` is true).  Returns
    (output, bytes written, whether a write was ever refused: the flood outran the
    container)."""
    os.set_blocking(master, False)
    out, written, refused = b"", 0, False
    end = time.monotonic() + HANG_GUARD
    while time.monotonic() < end:
        if proc.poll() is not None or (until is not None and until(out, refused)):
            break
        want_write = [master] if written < FLOOD else []
        readable, writable, _ = select.select([master], want_write, [], 0.1)
        if readable:
            try:
                out += os.read(master, 65536)
            except (BlockingIOError, OSError):
                pass
        if writable:
            try:
                taken = os.write(master, CHUNK)
            except BlockingIOError:
                taken = 0
            written += taken
            refused = refused or taken < len(CHUNK)
    return out, written, refused


def finish(master, proc):
    """Wait for the runtime (bounded by the hang guard) and collect its last output."""
    out = b""
    end = time.monotonic() + HANG_GUARD
    while proc.poll() is None and time.monotonic() < end:
        if select.select([master], [], [], 0.1)[0]:
            try:
                out += os.read(master, 65536)
            except (BlockingIOError, OSError):
                pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        pytest.fail("the runtime did not end (the relay is stuck)")
    while select.select([master], [], [], 0)[0]:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out


def start_on_pty(rt, args, stderr):
    """Start minirunc ``args`` with a new pty as stdin and stdout; returns (proc, master,
    slave, the slave's terminal mode before)."""
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(rt.cmd(*args), stdin=slave, stdout=slave, stderr=stderr,
                            env=runtime_env(), start_new_session=True)
    return proc, master, slave, before


def raw(slave):
    """The runtime has put our pty in raw mode: its relay is running (before that, the pty
    would echo and edit the flood itself)."""
    return not termios.tcgetattr(slave)[3] & termios.ECHO


def assert_terminal_restored(slave, before):
    assert termios.tcgetattr(slave) == before          # raw mode undone
    import fcntl
    assert not fcntl.fcntl(slave, fcntl.F_GETFL) & os.O_NONBLOCK   # blocking again


def test_flood_on_stdin_of_a_container_that_does_not_read(rt, make):
    """Before: run wrote stdin into the full pty and blocked for good (0 bytes out)."""
    cid = rt.new_id()
    bundle = make(["sh", "-c", "sleep 5; echo done"], terminal=True)
    with tempfile.TemporaryFile() as err:
        proc, master, slave, before = start_on_pty(rt, ("run", "--bundle", bundle, cid), err)
        try:
            assert wait_for(lambda: proc.poll() is not None or raw(slave), HANG_GUARD)
            record = record_of(rt, cid)
            out, written, refused = flood(master, proc)
            out += finish(master, proc)
            err.seek(0)
            errors = err.read().decode(errors="replace")
            assert refused, "the flood never outran the container (%d bytes taken)" % written
            assert proc.returncode == 0, errors
            assert b"done" in out
            no_traceback(errors)
            assert record is not None
            assert_nothing_left(rt, cid, record)
            assert_terminal_restored(slave, before)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            os.close(slave)


def test_input_still_reaches_the_container(rt, make):
    """The relay's other direction: what is typed reaches the process, its answer comes
    back; stdin at EOF afterwards does not end or stall anything."""
    cid = rt.new_id()
    bundle = make(["sh", "-c", "read line; echo got:$line; sleep 1; echo bye"], terminal=True)
    with tempfile.TemporaryFile() as err:
        proc, master, slave, before = start_on_pty(rt, ("run", "--bundle", bundle, cid), err)
        try:
            assert wait_for(lambda: proc.poll() is not None or raw(slave), HANG_GUARD)
            os.write(master, b"hello\r")
            out = finish(master, proc)
            err.seek(0)
            assert proc.returncode == 0, err.read()
            assert b"got:hello" in out and b"bye" in out
            assert_terminal_restored(slave, before)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            os.close(slave)


def test_sigterm_during_the_flood_reaches_the_container(rt, make):
    """Before: SIGTERM was forwarded, but run stayed blocked in its write; the container
    was left behind."""
    cid = rt.new_id()
    script = "trap 'echo got-term; exit 7' TERM; echo trap-set; sleep 600 & wait; echo not-reached"
    bundle = make(["sh", "-c", script], terminal=True)
    with tempfile.TemporaryFile() as err:
        proc, master, slave, before = start_on_pty(rt, ("run", "--bundle", bundle, cid), err)
        try:
            assert wait_for(lambda: proc.poll() is not None or
                            (raw(slave) and record_of(rt, cid) is not None), HANG_GUARD)
            record = record_of(rt, cid)
            assert record is not None
            # the signal goes once the trap is set (pid 1 ignores an unhandled SIGTERM)
            out, _, refused = flood(master, proc,
                                    until=lambda out, refused: refused and b"trap-set" in out)
            assert refused and b"trap-set" in out and proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            out += finish(master, proc)
            err.seek(0)
            errors = err.read().decode(errors="replace")
            assert proc.returncode == 7, errors          # the container's own exit code
            assert b"got-term" in out and b"not-reached" not in out
            no_traceback(errors)
            assert_nothing_left(rt, cid, record)
            assert_terminal_restored(slave, before)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            os.close(slave)


def test_exec_tty_uses_the_same_relay(rt, make):
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", make(["sleep", "600"]), cid).returncode == 0
    with tempfile.TemporaryFile() as err:
        proc, master, slave, before = start_on_pty(
            rt, ("exec", "-t", cid, "sh", "-c", "sleep 3; echo exec-done; exit 4"), err)
        try:
            assert wait_for(lambda: proc.poll() is not None or raw(slave), HANG_GUARD)
            out, written, refused = flood(master, proc)
            out += finish(master, proc)
            err.seek(0)
            errors = err.read().decode(errors="replace")
            assert refused, "the flood never outran the process (%d bytes taken)" % written
            assert proc.returncode == 4, errors
            assert b"exec-done" in out
            no_traceback(errors)
            assert_terminal_restored(slave, before)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
            os.close(slave)
    assert rt("delete", "--force", cid).returncode == 0


@pytest.mark.parametrize("args,code", [
    # SIGPIPE is passed on to the container, as runc does: this one traps it
    (["sh", "-c", "trap 'exit 3' PIPE; while :; do echo line; done"], 3),
    # pid 1 ignores SIGPIPE (no handler): the terminal's hangup ends it (write error)
    (["yes", "line"], 1),
])
def test_reader_that_goes_away_ends_run_quietly(rt, make, args, code):
    """`minirunc run ... | head -c 10`: run ends with the container's exit code, without a
    BrokenPipeError trace, and nothing is left."""
    cid = rt.new_id()
    bundle = make(args, terminal=True)
    read_end, write_end = os.pipe()
    master, slave = os.openpty()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, cid), stdin=slave,
                                stdout=write_end, stderr=err, env=runtime_env(),
                                start_new_session=True)
        os.close(write_end)
        try:
            assert wait_for(lambda: proc.poll() is not None or record_of(rt, cid) is not None,
                            HANG_GUARD)
            record = record_of(rt, cid)
            head = b""
            while len(head) < 10:
                chunk = os.read(read_end, 10 - len(head))
                assert chunk, "no output from the container"
                head += chunk
            os.close(read_end)          # what `head -c 10` does
            read_end = None
            proc.wait(timeout=HANG_GUARD)
            err.seek(0)
            errors = err.read().decode(errors="replace")
            assert proc.returncode == code, errors
            assert head.startswith(b"line")
            no_traceback(errors)
            assert errors == ""
            assert record is not None
            assert_nothing_left(rt, cid, record)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if read_end is not None:
                os.close(read_end)
            os.close(master)
            os.close(slave)


def in_fifo_open(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read().strip() in ("wait_for_partner", "fifo_open")
    except OSError:
        return False


@pytest.mark.parametrize("verb", [["run"], ["run", "-d"], ["create"]])
def test_sigterm_while_config_json_is_a_fifo(rt, make, verb):
    """Before: the signal was queued until a pid existed, so run stayed blocked for good
    (and create died at once, leaving its state directory)."""
    cid = rt.new_id()
    bundle = make(["true"])
    config = os.path.join(str(bundle), "config.json")
    os.remove(config)
    os.mkfifo(config)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(rt.cmd(*verb, "--bundle", bundle, cid),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=runtime_env())
        try:
            assert wait_for(lambda: proc.poll() is not None or in_fifo_open(proc.pid),
                            HANG_GUARD)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=HANG_GUARD)
            err.seek(0)
            errors = err.read().decode(errors="replace")
            assert proc.returncode == 128 + signal.SIGTERM, errors
            assert errors.count("\n") == 1 and "interrupted by SIGTERM" in errors, errors
            assert not os.path.exists(os.path.join(rt.root, cid))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


HOOK = """#!/bin/sh
echo $$ > "%s"
exec sleep 100000
"""


@pytest.mark.parametrize("kind,signum", [("createRuntime", signal.SIGINT),
                                         ("prestart", signal.SIGTERM)])
def test_signal_during_a_hook_without_timeout(rt, make, tmp_path, kind, signum):
    """Before: run waited for the hook for ever; the signals were queued."""
    cid = rt.new_id()
    pid_file = tmp_path / "hook.pid"
    script = tmp_path / "hook.sh"
    script.write_text(HOOK % pid_file)
    script.chmod(0o755)

    def edit(config):
        config["hooks"] = {kind: [{"path": str(script)}]}
    bundle = make(["true"], edit=edit)
    hook_pid = hook_start = None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, cid), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=runtime_env())
        try:
            assert wait_for(lambda: proc.poll() is not None or
                            (pid_file.exists() and pid_file.read_text().strip() != "" and
                             record_of(rt, cid) is not None), HANG_GUARD)
            record = record_of(rt, cid)
            hook_pid = int(pid_file.read_text())
            hook_start = start_time(hook_pid)
            assert pid_alive(record["pid"], record.get("pid_start"))
            if record["cgroup"].get("driver") != "none":     # made, so that "gone" means it
                assert [d for d in cgroup_dirs(record) if os.path.isdir(d)]
            proc.send_signal(signum)
            proc.wait(timeout=HANG_GUARD)
            err.seek(0)
            errors = err.read().decode(errors="replace")
            assert proc.returncode == 128 + signum, errors
            no_traceback(errors)
            # SIGKILL'd by run's cleanup; its death is not instant on a busy machine
            assert wait_for(lambda: not pid_alive(hook_pid, hook_start), 5)
            assert_nothing_left(rt, cid, record)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if hook_start is not None and pid_alive(hook_pid, hook_start):
                os.kill(hook_pid, signal.SIGKILL)     # a failed run must not leave it


@pytest.mark.parametrize("args", [["features"], ["--help"], ["list"], ["--version"]])
def test_closed_stdout_ends_quietly(rt, args):
    """`minirunc features | head -c 1` with the reader already gone: no trace, no
    "Exception ignored", the exit code of a process killed by SIGPIPE (as runc's)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(rt.cmd(*args), stdin=subprocess.DEVNULL, stdout=write_end,
                              stderr=err, env=runtime_env(), timeout=HANG_GUARD)
        os.close(write_end)
        err.seek(0)
        errors = err.read().decode(errors="replace")
    assert errors == ""
    assert proc.returncode == 141


# --- the CLI layer, in this process (no container involved) ---

def test_unexpected_exception_is_one_line(monkeypatch, capsys, tmp_path):
    from minirunc import cli, commands

    def broken(root, options):
        raise RuntimeError("boom\nsecond line")
    monkeypatch.setattr(commands, "cmd_features", broken)
    log_file = tmp_path / "log"
    assert cli.main(["--log", str(log_file), "features"]) == 1
    err = capsys.readouterr().err
    assert err == ("minirunc: internal error: RuntimeError: boom second line "
                   "(run with --debug for the trace)\n")
    logged = log_file.read_text()
    assert "level=error" in logged and "internal error: RuntimeError: boom" in logged

    assert cli.main(["--debug", "--log", str(log_file), "features"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "in broken" in err
    assert err.splitlines()[-1] == "minirunc: internal error: RuntimeError: boom second line"


def test_unexpected_exception_in_exec_exits_255(monkeypatch, capsys, tmp_path):
    """runc's exec exits 255 for any failure on its side, its own bugs included."""
    from minirunc import cli, commands

    def broken(root, options, container_id, command):
        raise KeyError("boom")
    monkeypatch.setattr(commands, "_exec", broken)
    assert cli.main(["--root", str(tmp_path), "exec", "c1", "true"]) == 255
    assert capsys.readouterr().err == ("minirunc: internal error: KeyError: 'boom' "
                                       "(run with --debug for the trace)\n")


def test_unexpected_exception_message_is_cut(monkeypatch, capsys):
    from minirunc import cli, commands

    def broken(root, options):
        raise ValueError("x" * 100000)
    monkeypatch.setattr(commands, "cmd_features", broken)
    assert cli.main(["features"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500


def test_interrupts_keep_their_exit_codes(monkeypatch, capsys):
    from minirunc import cli, commands
    from minirunc.foreground import Interrupted

    def ctrl_c(root, options):
        raise KeyboardInterrupt

    def term(root, options):
        raise Interrupted(signal.SIGTERM)
    monkeypatch.setattr(commands, "cmd_features", ctrl_c)
    assert cli.main(["features"]) == 130
    monkeypatch.setattr(commands, "cmd_features", term)
    assert cli.main(["features"]) == 143
    assert "interrupted by SIGTERM" in capsys.readouterr().err
