"""A small ELF reader for `minirunc check`: the interpreter and the DT_NEEDED libraries.

Reads the program headers only (PT_INTERP, PT_DYNAMIC, PT_LOAD to map the string table's
address to a file offset), for 32- and 64-bit, either byte order.  Anything it cannot
read gives ``None`` (not an ELF file) or an ``Elf`` with what was found.
"""

import struct

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29
MAX_HEADERS = 256
MAX_DYNAMIC = 4096


class Elf:
    __slots__ = ("bits", "little", "machine", "interp", "needed", "rpath", "runpath")

    def __init__(self, bits, little, machine):
        self.bits = bits
        self.little = little
        self.machine = machine
        self.interp = None
        self.needed = []
        self.rpath = []
        self.runpath = []

    def same_kind(self, other):
        """Whether ld.so would load ``other`` into this program (class and machine)."""
        return (self.bits, self.little, self.machine) == (other.bits, other.little,
                                                          other.machine)


def read(path):
    """The Elf of the file at ``path``, or None if it is not an ELF file (or unreadable)."""
    try:
        with open(path, "rb") as f:
            return _read(f)
    except (OSError, struct.error, ValueError):
        return None


def _read(f):
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) \
            or ident[5] not in (1, 2):
        return None
    bits = 64 if ident[4] == 2 else 32
    order = "<" if ident[5] == 1 else ">"
    if bits == 64:
        head = struct.unpack(order + "HHIQQQIHHHHHH", f.read(48))
    else:
        head = struct.unpack(order + "HHIIIIIHHHHHH", f.read(36))
    machine, phoff, phentsize, phnum = head[1], head[4], head[8], head[9]
    elf = Elf(bits, order == "<", machine)
    headers = []
    for i in range(min(phnum, MAX_HEADERS)):
        f.seek(phoff + i * phentsize)
        if bits == 64:
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack(
                order + "IIQQQQQQ", f.read(56))
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = struct.unpack(
                order + "IIIIIIII", f.read(32))
        headers.append((p_type, p_offset, p_vaddr, p_filesz))
    for p_type, offset, _, size in headers:
        if p_type == PT_INTERP:
            f.seek(offset)
            elf.interp = f.read(min(size, 4096)).split(b"\0")[0].decode("utf-8", "replace")
    dynamic = next((h for h in headers if h[0] == PT_DYNAMIC), None)
    if dynamic:
        _read_dynamic(f, elf, order, dynamic, [h for h in headers if h[0] == PT_LOAD])
    return elf


def _read_dynamic(f, elf, order, dynamic, loads):
    entry = struct.Struct(order + ("qQ" if elf.bits == 64 else "iI"))
    f.seek(dynamic[1])
    raw = f.read(min(dynamic[3], MAX_DYNAMIC * entry.size))
    tags = []
    for i in range(len(raw) // entry.size):
        tag, value = entry.unpack_from(raw, i * entry.size)
        if tag == DT_NULL:
            break
        tags.append((tag, value))
    strtab = next((v for t, v in tags if t == DT_STRTAB), None)
    if strtab is None:
        return
    base = _offset(strtab, loads)
    if base is None:
        return

    def string(offset):
        f.seek(base + offset)
        return f.read(4096).split(b"\0")[0].decode("utf-8", "replace")

    for tag, value in tags:
        if tag == DT_NEEDED:
            elf.needed.append(string(value))
        elif tag == DT_RPATH:
            elf.rpath.extend(p for p in string(value).split(":") if p)
        elif tag == DT_RUNPATH:
            elf.runpath.extend(p for p in string(value).split(":") if p)


def _offset(vaddr, loads):
    """The file offset of a virtual address, through the PT_LOAD segments."""
    for _, offset, start, size in loads:
        if start <= vaddr < start + size:
            return vaddr - start + offset
    return None
