"""The exception family: one type per layer, each carrying the context a person needs.

The CLI prints ``str(error)`` as one line (``--debug`` adds the trace), so every
message names the thing (JSON path, container id, host path, step) and, where it
helps, what to do.
"""

import errno as _errno
import os


# A value echoed into a message is cut to this many characters: a 1 MB string from
# config.json must not become a 1 MB line.
SHOWN_CHARS = 60


def shown(value, limit=SHOWN_CHARS):
    """``value`` as text for a message: whole when short, else its first ``limit``
    characters and ``... (N characters)``.  Every message that echoes user input uses it."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return "%s... (%d characters)" % (text[:limit], len(text))


def errno_text(err):
    """``permission denied (EACCES)`` for an errno number."""
    if not err:
        return ""
    name = _errno.errorcode.get(err, "E%d" % err)
    return "%s (%s)" % (os.strerror(err).lower(), name)


class MiniruncError(Exception):
    """Base of every error minirunc reports to a person."""

    exit_code = 1

    def __str__(self):
        # Messages echo keys and values from config.json, state.json and the command
        # line: a newline there must not break the one line the CLI prints.
        return printable(super().__str__())


# Control characters and the line separators str.splitlines() knows, as escapes.
_ESCAPES = {c: "\\x%02x" % c for c in list(range(32)) + [127, 0x85]}
_ESCAPES.update({0x0a: "\\n", 0x0d: "\\r", 0x09: "\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def printable(text):
    """``text`` as one printable line: control characters and line separators escaped
    (``\\n``), and a lone surrogate (not encodable for a UTF-8 log) as ``\\udXXX``."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode()
        # (a surrogateescape'd byte becomes "\\udcff"; everything else is kept)
    elif text.isprintable():
        return text
    return text.translate(_ESCAPES)


class UsageError(MiniruncError):
    """Wrong command line: unknown flag, missing argument."""


class ConfigError(MiniruncError):
    """config.json is missing, unreadable or invalid.

    ``path`` is the JSON path (``process.args[0]``) or empty for file-level errors.
    """

    def __init__(self, path, problem, file=None):
        self.path = path
        self.problem = problem
        self.file = file
        where = path if path else (file or "config.json")
        # A backstop: the callers cut the values they echo; no message may grow unbounded.
        super().__init__("%s: %s" % (shown(where, 1000), shown(problem, 1000)))


class StateError(MiniruncError):
    """A container id does not exist, exists already, or is in the wrong state."""

    def __init__(self, container_id, problem):
        self.container_id = container_id
        super().__init__("container %s: %s" % (container_id, problem) if container_id else problem)


class HostError(MiniruncError):
    """A system call made by the runtime on the host failed."""

    def __init__(self, step, path=None, err=0, hint=None):
        self.step = step
        self.host_path = path
        self.errno = err
        text = step if path is None else "%s %s" % (step, path)
        if err:
            text += ": " + errno_text(err)
        if hint:
            text += " (%s)" % hint
        super().__init__(text)


class ContainerSetupError(MiniruncError):
    """The init helper failed inside the new namespaces; reported over the sync channel."""

    def __init__(self, step, detail, err=0):
        self.step = step
        self.detail = _cut_words(detail)
        self.errno = err
        super().__init__(self.detail + (": " + errno_text(err) if err else ""))


def _cut_words(text, limit=200):
    """The init echoes paths of up to PATH_MAX whole: in a long message, cut each long
    word, so the step and the reason around them stay readable."""
    if len(text) <= 1000:
        return text
    return " ".join(shown(word, limit) for word in text.split(" "))


class HookError(MiniruncError):
    """A hook the runtime ran failed: ``where`` is its JSON path (hooks.prestart[0])."""

    def __init__(self, where, path, problem, err=0):
        self.where = where
        self.hook_path = path
        self.errno = err
        text = '%s "%s": %s' % (where, path, problem)
        if err:
            text += ": " + errno_text(err)
        super().__init__(text)
