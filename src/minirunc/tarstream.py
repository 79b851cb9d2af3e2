"""A small streaming tar reader for `minirunc import` (ustar, GNU long names, PAX).

Not the stdlib's tarfile: the single binary leaves tarfile out, and `import` wants every
member's raw facts (names as bytes-safe text, owners, device numbers, link names, PAX
xattrs) with the header checksum verified and a truncated archive reported as such.
Members are read in order from any object with ``read(n)``; ``Member.read_data`` must be
used (or ``skip``) before the next member.
"""

REGULAR, HARDLINK, SYMLINK, CHAR, BLOCK, DIRECTORY, FIFO = "0", "1", "2", "3", "4", "5", "6"
CONTIGUOUS = "7"
BLOCK_SIZE = 512
MAX_META = 1 << 20          # a long name or PAX header bigger than this is not believed


class TarError(Exception):
    """A corrupt or truncated archive; the message names the member where it can."""


class Member:
    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "linkname",
                 "devmajor", "devminor", "xattrs", "_reader", "_left")

    def __init__(self):
        self.xattrs = {}

    def read_data(self, n=1 << 20):
        """Up to ``n`` bytes of the member's data; b"" at its end."""
        if self._left <= 0:
            return b""
        chunk = self._reader.read_exact(min(n, self._left), self.name)
        self._left -= len(chunk)
        if self._left == 0:
            self._reader.skip_padding(self.size)
        return chunk

    def skip(self):
        if self._left > 0 and self._reader.seekable:
            self._reader.raw.seek(self._left, 1)
            self._reader.offset += self._left
            self._left = 0
            self._reader.skip_padding(self.size)
        while self._left > 0:
            self.read_data(1 << 20)


class Reader:
    """Iterate the members of the tar stream ``raw``."""

    def __init__(self, raw, where="archive"):
        self.raw = raw
        self.where = where
        self.offset = 0
        self._pending = None
        try:
            self.seekable = raw.seekable()
        except AttributeError:
            self.seekable = False

    def read_exact(self, n, member=None):
        parts, want = [], n
        while want:
            chunk = self.raw.read(want)
            if not chunk:
                raise TarError("%s: truncated%s (ends at byte %d)" % (
                    self.where, " in member %s" % member if member else "", self.offset))
            parts.append(chunk)
            want -= len(chunk)
            self.offset += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def skip_padding(self, size):
        pad = -size % BLOCK_SIZE
        if pad:
            self.read_exact(pad)

    def __iter__(self):
        pax_global = {}
        while True:
            if self._pending is not None:
                self._pending.skip()
                self._pending = None
            long_name = long_link = None
            pax = {}
            while True:
                block = self.raw.read(BLOCK_SIZE)
                if len(block) < BLOCK_SIZE:
                    if not block:
                        return              # no end-of-archive blocks: accepted, as tar does
                    block += self.raw.read(BLOCK_SIZE - len(block))
                    if len(block) < BLOCK_SIZE:
                        raise TarError("%s: truncated header at byte %d"
                                       % (self.where, self.offset))
                self.offset += BLOCK_SIZE
                if block == bytes(BLOCK_SIZE):
                    return
                header = _parse_header(block, self.where, self.offset - BLOCK_SIZE)
                kind = header["type"]
                if kind in ("L", "K", "x", "g"):
                    if header["size"] > MAX_META:
                        raise TarError("%s: a %d-byte metadata entry at byte %d"
                                       % (self.where, header["size"], self.offset))
                    data = self.read_exact(header["size"])
                    self.skip_padding(header["size"])
                    if kind == "L":
                        long_name = _text(data.split(b"\0", 1)[0])
                    elif kind == "K":
                        long_link = _text(data.split(b"\0", 1)[0])
                    elif kind == "x":
                        pax.update(_parse_pax(data, self.where))
                    else:
                        pax_global.update(_parse_pax(data, self.where))
                    continue
                break
            values = dict(pax_global)
            values.update(pax)
            member = Member()
            member.name = values.get("path") or long_name or header["name"]
            member.linkname = values.get("linkpath") or long_link or header["linkname"]
            member.type = REGULAR if kind in ("\0", "", CONTIGUOUS) else kind
            member.mode = header["mode"]
            member.uid = int(values["uid"]) if "uid" in values else header["uid"]
            member.gid = int(values["gid"]) if "gid" in values else header["gid"]
            member.size = int(values["size"]) if "size" in values else header["size"]
            member.mtime = float(values["mtime"]) if "mtime" in values else header["mtime"]
            member.devmajor, member.devminor = header["devmajor"], header["devminor"]
            member.xattrs = {k[len("SCHILY.xattr."):]: v for k, v in pax.items()
                             if k.startswith("SCHILY.xattr.")}
            if member.type in (HARDLINK, SYMLINK, CHAR, BLOCK, DIRECTORY, FIFO):
                member.size = 0             # no data follows these (as GNU tar writes them)
            member._reader = self
            member._left = member.size
            self._pending = member
            yield member


def _text(raw):
    return raw.decode("utf-8", "surrogateescape")


def _number(field, what, where, offset):
    if field and field[0] & 0x80:            # base-256 (GNU) for big or negative values
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError("%s: the header at byte %d is corrupt (%s %r)"
                       % (where, offset, what, text[:20])) from None


def _parse_header(block, where, offset):
    stored = _number(block[148:156], "checksum", where, offset)
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    if stored != unsigned and stored != _signed_sum(block):
        raise TarError("%s: the header at byte %d is corrupt (checksum mismatch): not a tar "
                       "archive, or damaged" % (where, offset))
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return {"name": _text(name), "mode": _number(block[100:108], "mode", where, offset),
            "uid": _number(block[108:116], "uid", where, offset),
            "gid": _number(block[116:124], "gid", where, offset),
            "size": _number(block[124:136], "size", where, offset),
            "mtime": _number(block[136:148], "mtime", where, offset),
            "type": chr(block[156]) if block[156] else "0",
            "linkname": _text(block[157:257].split(b"\0", 1)[0]),
            "devmajor": _number(block[329:337], "devmajor", where, offset),
            "devminor": _number(block[337:345], "devminor", where, offset)}


def _signed_sum(block):
    """The checksum some old tars wrote, with the bytes taken as signed chars."""
    return sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256


def _parse_pax(data, where):
    """``"%d %s=%s\\n"`` records."""
    values, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarError("%s: a corrupt PAX header" % where) from None
        if length <= 0:
            raise TarError("%s: a corrupt PAX header" % where)
        record = data[space + 1:pos + length - 1]
        key, _, value = record.partition(b"=")
        key = key.decode("utf-8", "replace")
        values[key] = value if key.startswith("SCHILY.xattr.") else _text(value)
        pos += length
    return values
