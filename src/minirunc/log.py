"""Messages to the person and to the caller's log file (`--log`, `--log-format text|json`).

Warnings and errors always go to stderr as one line; debug lines only with `--debug`.
With `--log FILE` every message is also appended there, in runc's shapes: text
`time="..." level=error msg="..."` or JSON `{"level":"error","msg":"...","time":"..."}`
(containerd reads that file when a runtime call fails).  With `--debug` and no `--log`,
debug records go to stderr in that same text shape, as runc's do, so tools that read
runc's debug output read ours; warnings and errors keep minirunc's one-line form.

The text shape is logrus's TextFormatter (what runc uses): `key=value` pairs, a value
quoted Go-style (`%q`) unless it is only letters, digits and `-._/@^+`; the time is
RFC 3339 in UTC to the second.
"""

import os
import sys
import time

from .errors import printable

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


# logrus needsQuoting: these characters (and letters and digits) go unquoted.
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text):
    """``text`` as Go's strconv.Quote writes it (what logrus's %q gives)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        elif ord(ch) < 0x10000:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append("\\U%08x" % ord(ch))
    return '"%s"' % "".join(out)


def _text_value(text):
    if all(ch in _BARE for ch in text):     # "" too: logrus writes `msg=`
        return text
    return go_quote(text)


def text_record(level, msg, when=None):
    """One record in logrus's text shape: ``time="..." level=debug msg="..."``."""
    when = time.time() if when is None else when
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return "time=%s level=%s msg=%s" % (_text_value(stamp), level, _text_value(msg))


def _to_file(level, msg):
    if not _log_path:
        return
    if _log_json:
        from .jsontext import dumps
        line = dumps({"level": level, "msg": msg, "time": _timestamp()})
    else:
        line = text_record(level, msg)
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
            sys.stderr.write(text_record("debug", msg) + "\n")


def warning(msg):
    msg = printable(msg)   # one line, whatever it echoes
    _to_file("warning", msg)
    sys.stderr.write("minirunc: warning: %s\n" % msg)


def error(msg):
    msg = printable(msg)   # one line, whatever it echoes
    _to_file("error", msg)
    sys.stderr.write("minirunc: %s\n" % msg)
