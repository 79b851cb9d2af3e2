"""Talking to CRIU: find the binary (`--criu`), start `criu swrk`, exchange RPC messages.

minirunc drives CRIU the way runc does, through its RPC service: `criu swrk <fd>` is
started with one end of a SOCK_SEQPACKET socket pair as that fd and answers one request
(`criu_rpc` encodes the messages).  The RPC rather than `criu dump/restore` on the command
line because only the RPC hands back what a runtime needs while the restore is under way:
the notifications (`setup-namespaces` for the hooks, `post-restore` with the pid), the
pty master of a restored terminal (`orphan-pts-master`, an fd over SCM_RIGHTS, which the
command line cannot give), the restored pid without a pid file, and the error as a field
(`cr_errmsg`) rather than a log to scrape.
"""

import os
import socket
import subprocess

from . import criu_rpc as rpc
from .errors import MiniruncError, UsageError

MIN_VERSION = (3, 0)   # the VERSION request, which runc 1.1 also requires


class CriuError(MiniruncError):
    """CRIU refused or failed a request; the message names the step and CRIU's reason."""


def which(name):
    """``name`` looked up on PATH (shutil is kept out of the single binary), or a path
    with a slash as it is; None if it is not an executable file."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name)
                      for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find(path=None):
    """The CRIU binary: ``--criu PATH`` (a name is looked up on PATH), default `criu`."""
    name = path or "criu"
    found = which(name)
    if not found:
        raise UsageError("--criu: %s not found%s: install CRIU 3.0 or newer (Debian: `apt-get "
                         "install criu`; on newer kernels Debian 13's criu 4.x, e.g. "
                         "`make build/criu/criu`), or pass --criu PATH"
                         % (name, " on PATH" if "/" not in name else ""))
    return os.path.abspath(found)


class Session:
    """One `criu swrk` process and its socket; ``fds`` are passed to it under the same
    numbers (the request's *_fd fields name them)."""

    def __init__(self, binary, fds=(), preexec=None):
        self.binary = binary
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = parent
        try:
            # stdin stays ours (--shell-job gives it to the restored tty); what CRIU says
            # before its log is open (and "Can't recv request" when we close a kept-open
            # session) would only clutter our one-line errors.
            self.proc = subprocess.Popen(
                [binary, "swrk", str(child.fileno())], pass_fds=(child.fileno(),) + tuple(fds),
                stdin=None, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True, preexec_fn=preexec)
        except OSError as e:
            parent.close()
            raise UsageError("--criu: cannot run %s: %s" % (binary, e.strerror)) from None
        finally:
            child.close()

    @property
    def pid(self):
        return self.proc.pid

    def send(self, values):
        self.sock.sendmsg([rpc.encode(rpc.REQ, values)])

    def receive(self):
        """The next response as a dict, plus an fd CRIU passed with it (or None)."""
        size = socket.CMSG_SPACE(4)
        data, ancillary, _, _ = self.sock.recvmsg(1 << 20, size)
        fd = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(payload) >= 4:
                fd = int.from_bytes(payload[:4], "little")
        if not data:
            return None, fd
        return rpc.decode(rpc.RESP, data), fd

    def close(self):
        self.sock.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def exchange(session, request, on_notify=None, what="CRIU"):
    """Send ``request``; answer notifications with ``on_notify(script, pid, fd)`` (an
    exception there fails the request) until the final response, which is returned."""
    session.send(request)
    while True:
        resp, fd = session.receive()
        if resp is None:
            code = session.proc.wait()
            raise CriuError("%s: CRIU (%s) exited with %s before it answered; see its log"
                            % (what, session.binary, _status_text(code)))
        if resp.get("type") == rpc.NOTIFY:
            ok = True
            try:
                if on_notify is not None:
                    on_notify(resp.get("notify", {}).get("script", ""),
                              resp.get("notify", {}).get("pid", 0), fd)
                elif fd is not None:
                    os.close(fd)
            except BaseException:
                ok = False
                session.send({"type": rpc.NOTIFY, "notify_success": False})
                raise
            finally:
                if ok:
                    session.send({"type": rpc.NOTIFY, "notify_success": True})
            continue
        if fd is not None:
            os.close(fd)
        return resp


def _status_text(code):
    return "signal %d" % -code if code < 0 else "status %d" % code


def version(binary, session=None):
    """CRIU's version as (major, minor, sublevel); one line naming --criu if it is too old.
    With ``session``, asked there with keep_open, so that the same `criu swrk` then serves
    the real request (each CRIU start costs tens of ms: it probes the kernel every time)."""
    own = session is None
    if own:
        session = Session(binary)
    try:
        request = {"type": rpc.VERSION, "keep_open": None if own else True}
        resp = exchange(session, request, what="version check")
    except (CriuError, OSError):
        resp = {}
    finally:
        if own:
            session.close()
    v = resp.get("version") if resp.get("success") else None
    if not v:
        if not own:
            session.close()
        raise UsageError("--criu: %s does not answer the VERSION request: CRIU 3.0 or newer is "
                         "needed (Debian 13's criu 4.x works on new kernels)" % binary)
    found = (v.get("major_number", 0), v.get("minor_number", 0), v.get("sublevel", 0))
    if found[:2] < MIN_VERSION:
        if not own:
            session.close()
        raise UsageError("--criu: %s is CRIU %d.%d.%d; 3.0 or newer is needed" % ((binary,) + found))
    return found


def check(binary):
    """`criu check`: (True, "") when CRIU works on this kernel, else (False, its last
    error line).  Tens of ms: used by `features` and to explain a failed request."""
    try:
        proc = subprocess.run([binary, "check"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    lines = proc.stdout.decode(errors="replace").splitlines()
    if proc.returncode == 0:
        return True, ""
    errors = [l.split("):", 1)[-1].strip() for l in lines if "Error (" in l]
    errors = [e for e in errors if not any(n in e for n in _NOISE)] or errors
    return False, (errors[0] if errors else (lines[-1] if lines else "exit status %d"
                                              % proc.returncode))


def available(path=None):
    """True when a CRIU is found, is 3.0 or newer and `criu check` passes."""
    try:
        binary = find(path)
        version(binary)
    except MiniruncError:
        return False
    return check(binary)[0]


def check_hint(binary):
    """A suffix for a failed request's message when this CRIU does not work on this
    kernel at all (Debian 12's 3.17 on newer kernels), naming --criu."""
    ok, reason = check(binary)
    if ok:
        return ""
    return ("; `%s check` fails too (%s): install a CRIU that supports this kernel (e.g. "
            "Debian 13's 4.x: `make criu`) and pass it with --criu PATH" % (binary, reason))


def failure_text(resp, log_path):
    """CRIU's reason for a failed request: the first telling error of its log (cr_errmsg
    is the first error of all, often a harmless one such as its own rlimit), else
    cr_errmsg."""
    message = last_log_error(log_path)
    if not message:
        message = (resp or {}).get("cr_errmsg", "").strip()
        message = "" if any(n in message for n in _NOISE) else message.split("):", 1)[-1].strip()
    errno_value = (resp or {}).get("cr_errno")
    if errno_value and not message:
        message = os.strerror(errno_value)
    text = message or "no reason given"
    if log_path:
        text += " (log: %s)" % log_path
    return text


# Error lines that are not the reason: CRIU's own rlimit, its probes for iptables tools
# (it falls back by itself), and the follow-ups of the real error.
_NOISE = ("rlimit:", "exited, status", "execvp(", "-V failed", "FAILED", "cgroupd:")


def last_log_error(log_path):
    """The first telling `Error (file:line): text` of a CRIU log (the cause comes first;
    what follows it is consequences), as `text`."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except (OSError, TypeError):
        return ""
    for line in lines:
        if "Error (" in line:
            text = line.split("):", 1)[-1].strip()
            if not any(n in text for n in _NOISE):
                return text
    return ""
