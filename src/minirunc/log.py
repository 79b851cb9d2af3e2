"""Messages to the person and to the caller's log file (`--log`, `--log-format text|json`).

Warnings and errors always go to stderr as one line; debug lines only with `--debug`.
With `--log FILE` every message is also appended there, in runc's shapes: text
`time="..." level=error msg="..."` or JSON `{"level":"error","msg":"...","time":"..."}`
(containerd reads that file when a runtime call fails).
"""

import os
import sys
import time

_debug = False
_log_path = None
_log_json = False


def configure(debug=False, log_path=None, log_format="text"):
    global _debug, _log_path, _log_json
    _debug = debug
    _log_path = log_path
    _log_json = log_format == "json"


def debug_enabled():
    return _debug


def _timestamp():
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int(now % 1 * 1e6)


def _to_file(level, msg):
    if not _log_path:
        return
    if _log_json:
        from .jsontext import dumps
        line = dumps({"level": level, "msg": msg, "time": _timestamp()})
    else:
        line = 'time="%s" level=%s msg="%s"' % (_timestamp(), level, msg.replace('"', '\\"'))
    try:
        fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        sys.stderr.write("minirunc: cannot write log file %s: %s\n" % (_log_path, e.strerror))


def debug(msg):
    if _debug:
        _to_file("debug", msg)
        if not _log_path:
            sys.stderr.write("minirunc: debug: %s\n" % msg)


def warning(msg):
    _to_file("warning", msg)
    sys.stderr.write("minirunc: warning: %s\n" % msg)


def error(msg):
    _to_file("error", msg)
    sys.stderr.write("minirunc: %s\n" % msg)
