"""JSON in and out through CPython's `_json` accelerator, without importing `json`.

`import json` pulls in `re` and `enum` and costs 3-5 ms of every command; config.json
and state.json only need what the C scanner and string encoder already do. Output
matches `json.dumps` (ASCII-escaped strings, `indent`, the same separators). On bad
input we let `json` itself produce its message (line and column), so errors stay exact.
"""

import _json

_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_ScannerContext())


def loads(text):
    """Parse a JSON document; raises json.JSONDecodeError (a ValueError) when invalid."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # SystemError: the scanner reports errors through json.decoder, which is not loaded
        value, end = None, -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        import json  # only on the error path: its message names line and column
        return json.loads(text)
    return value


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
