"""JSON in and out through CPython's `_json` accelerator, without importing `json`.

`import json` pulls in `re` and `enum` and costs 3-5 ms of every command; config.json
and state.json only need what the C scanner and string encoder already do. Output
matches `json.dumps` (ASCII-escaped strings, `indent`, the same separators). On bad
input we let `json` itself produce its message (line and column), so errors stay exact.

Valid JSON can still be beyond what the runtime should read (issue 8: the fuzzer found
tracebacks): nesting deeper than MAX_DEPTH (the C scanner recurses; past ~1000 levels it
raises RecursionError), an integer of more digits than Python converts
(sys.get_int_max_str_digits, 4300), or a lone UTF-16 surrogate such as "\\ud800", which
cannot be encoded to UTF-8 for the C init, a host path or a log file.  These raise
LimitError (a ValueError) with the JSON path of the culprit.
"""

import _json

_WHITESPACE = " \t\n\r"
# Far beyond any real config (runc's default spec is 5 deep), far below the interpreter's
# recursion limit, so the same documents are refused from any call depth.
MAX_DEPTH = 200


class LimitError(ValueError):
    """Valid JSON that minirunc refuses to read; ``path`` is the JSON path ("" = the
    whole document), ``problem`` the sentence."""

    def __init__(self, path, problem):
        self.path = path
        self.problem = problem
        super().__init__("%s: %s" % (path, problem) if path else problem)


class _HugeInt:
    """What the scanner returns for an integer of too many digits; loads() then names
    its JSON path (the scanner itself knows no position)."""
    seen = 0

    def __init__(self, text):
        _HugeInt.seen += 1
        self.digits = len(text.lstrip("-"))


def _parse_int(text):
    try:
        return int(text)
    except ValueError:   # more digits than sys.get_int_max_str_digits()
        return _HugeInt(text)


class _ScannerContext:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = staticmethod(_parse_int)

    @staticmethod
    def parse_constant(name):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_ScannerContext())


def loads(text):
    """Parse a JSON document; raises json.JSONDecodeError (a ValueError) when invalid,
    LimitError (a ValueError) when too deep, too big a number or a lone surrogate."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    huge = _HugeInt.seen
    try:
        value, end = _scan(text, start)
    except RecursionError:
        raise _too_deep() from None
    except (StopIteration, ValueError, SystemError):
        # SystemError: the scanner reports errors through json.decoder, which is not loaded
        value, end = None, -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json  # only on the error path: its message names line and column
        try:
            value = json.loads(text, parse_int=_parse_int)
        except RecursionError:
            raise _too_deep() from None
    # Cheap guards first (C-speed counts); the walk runs only when one could be true.
    leaves = _HugeInt.seen != huge or "\\ud" in text or "\\uD" in text
    if leaves or text.count("[") + text.count("{") > MAX_DEPTH:
        _check_limits(value, leaves)
    return value


def _too_deep():
    return LimitError("", "nested more than %d levels deep" % MAX_DEPTH)


def _bad_text(text):
    """True if ``text`` holds a lone surrogate (it cannot be encoded to UTF-8)."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _path_text(where):
    """The JSON path (``a.b[2]``) of a (parent, key-or-index) chain; printable."""
    parts = []
    while where is not None:
        where, key = where
        if isinstance(key, int):
            parts.append("[%d]" % key)
        else:
            parts.append("." + key.encode("utf-8", "backslashreplace").decode())
    return "".join(reversed(parts)).lstrip(".")


def _check_limits(value, leaves):
    """Walk the document (iteratively: it may be deep) for the LimitError cases; without
    ``leaves`` only the nesting (strings and numbers are not visited)."""
    stack = [(value, None, 0)]
    while stack:
        value, where, depth = stack.pop()
        kind = type(value)
        if kind is str:
            if _bad_text(value):
                raise _surrogate(where)
        elif kind is _HugeInt:
            raise LimitError(_path_text(where), "has %d digits; numbers of more than %d digits "
                             "are not read" % (value.digits, _max_digits()))
        elif kind is dict or kind is list:
            if depth >= MAX_DEPTH:
                raise _too_deep()
            items = enumerate(value) if kind is list else value.items()
            for key, item in items:
                if leaves:
                    if kind is dict and _bad_text(key):
                        raise _surrogate((where, key))
                elif type(item) is not dict and type(item) is not list:
                    continue
                stack.append((item, (where, key), depth + 1))


def _surrogate(where):
    return LimitError(_path_text(where), "is not valid UTF-8 text (it holds a lone surrogate "
                      "such as \"\\ud800\"); fix the string")


def _max_digits():
    import sys
    return sys.get_int_max_str_digits() or 4300


_encode_str = _json.encode_basestring_ascii


def _float(value):
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _encode(value, indent, level, out):
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        _container(((_encode_str(str(k)) + ": " if indent is not None else _encode_str(str(k)) + ":",
                     v) for k, v in value.items()), "{", "}", bool(value), indent, level, out)
    elif isinstance(value, (list, tuple)):
        _container((("", v) for v in value), "[", "]", bool(value), indent, level, out)
    else:
        raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def _container(items, opening, closing, non_empty, indent, level, out):
    if not non_empty:
        out.append(opening + closing)
        return
    out.append(opening)
    if indent is None:
        separator, inner, outer = ",", "", ""
    else:
        inner = "\n" + indent * (level + 1)
        outer = "\n" + indent * level
        separator = "," + inner
        out.append(inner)
    first = True
    for prefix, item in items:
        if not first:
            out.append(separator)
        first = False
        out.append(prefix)
        _encode(item, indent, level + 1, out)
    out.append(outer + closing)


def dumps(value, indent=None):
    """`json.dumps(value, indent=indent)`; compact (no spaces) when indent is None."""
    if isinstance(indent, int):
        indent = " " * indent
    out = []
    _encode(value, indent, 0, out)
    return "".join(out)
