"""terminal: true in the foreground (a pty relay) and with --console-socket."""

import fcntl
import os
import select
import socket
import struct
import subprocess
import termios
import time

from conftest import runtime_env


def read_until_exit(master, proc, timeout=20):
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            out += chunk
        if proc.poll() is not None and not ready:
            break
    return out.decode(errors="replace")


def test_foreground_terminal_size_and_restore(rt, make):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    before = termios.tcgetattr(slave)
    bundle = make(["sh", "-c", "tty; stty size; echo done"], terminal=True)
    proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, rt.new_id()), stdin=slave,
                            stdout=slave, stderr=slave, env=runtime_env(), start_new_session=True)
    try:
        out = read_until_exit(master, proc)
        assert proc.wait(timeout=20) == 0, out
        assert "/dev/pts/0" in out
        assert "33 101" in out
        assert "done" in out
        assert termios.tcgetattr(slave) == before  # raw mode undone
    finally:
        os.close(master)
        os.close(slave)


def test_console_socket_receives_the_pty_master(rt, make, tmp_path):
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    cid = rt.new_id()
    bundle = make(["sh", "-c", "echo via-console; tty"], terminal=True)
    proc = subprocess.Popen(rt.cmd("create", "--console-socket", path, "--bundle", bundle, cid),
                            env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listener.settimeout(20)
    conn, _ = listener.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    listener.close()
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    assert len(fds) == 1
    master = fds[0]
    assert rt("start", cid).returncode == 0
    out = b""
    end = time.monotonic() + 10
    while b"/dev/pts/0" not in out and time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
    os.close(master)
    assert b"via-console" in out and b"/dev/pts/0" in out


def test_run_detached_terminal_needs_console_socket(rt, make):
    r = rt("run", "-d", "--bundle", make(["true"], terminal=True), rt.new_id())
    assert r.returncode == 1
    assert "process.terminal" in r.stderr and "--console-socket" in r.stderr


def test_window_size_change_reaches_the_container(rt, make):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    script = "trap 'stty size' WINCH; echo ready; i=0; while [ $i -lt 60 ]; do sleep 0.1; i=$((i+1)); done"
    bundle = make(["sh", "-c", script], terminal=True)
    proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, rt.new_id()), stdin=slave,
                            stdout=slave, stderr=slave, env=runtime_env(), start_new_session=True)
    try:
        out = b""
        end = time.monotonic() + 20
        while b"ready" not in out and time.monotonic() < end:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 4096)
        assert b"ready" in out, out
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        proc.send_signal(28)  # SIGWINCH, as the terminal would send it
        while b"50 132" not in out and time.monotonic() < end:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 4096)
        assert b"50 132" in out, out
        proc.kill()
        proc.wait(timeout=10)
    finally:
        os.close(master)
        os.close(slave)


def test_pty_is_also_dev_console(rt, make):
    """As runc: with terminal: true, /dev/console is the container's pty, so what a
    program writes to the console reaches the caller's terminal."""
    master, slave = os.openpty()
    bundle = make(["sh", "-c", "stat -c '%t:%T' /dev/console /dev/pts/0; "
                   "echo to-the-console > /dev/console"], terminal=True)
    proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, rt.new_id()), stdin=slave,
                            stdout=slave, stderr=slave, env=runtime_env(), start_new_session=True)
    try:
        out = read_until_exit(master, proc)
        assert proc.wait(timeout=20) == 0, out
        lines = out.replace("\r", "").split("\n")
        assert lines[0] == lines[1] and lines[0].startswith("88:"), out   # devpts major 136
        assert "to-the-console" in out
    finally:
        os.close(master)
        os.close(slave)


def test_dev_console_on_a_readonly_root_without_dev_tmpfs(rt, make):
    def edit(config):   # /dev is the rootfs's own directory, and the root is read-only
        config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
        config["mounts"].append({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                                 "options": ["newinstance", "ptmxmode=0666"]})
        config["linux"]["devices"] = []
    master, slave = os.openpty()
    bundle = make(["sh", "-c", "echo on-console > /dev/console; touch /x || echo ro-root"],
                  edit=edit, terminal=True)
    proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, rt.new_id()), stdin=slave,
                            stdout=slave, stderr=slave, env=runtime_env(), start_new_session=True)
    try:
        out = read_until_exit(master, proc)
        assert proc.wait(timeout=20) == 0, out
        assert "on-console" in out and "ro-root" in out
    finally:
        os.close(master)
        os.close(slave)
