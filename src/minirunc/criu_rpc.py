"""CRIU's RPC messages (criu/images/rpc.proto), hand-encoded: the few fields minirunc uses.

The protobuf wire format needed here is small: varints (wire type 0) for ints, bools and
enums, and length-delimited fields (wire type 2) for strings and nested messages.
Repeated fields are written one per occurrence (proto2, unpacked), as CRIU expects.
Pulling in a protobuf library for a dozen fields would cost more than this module.

``encode(schema, values)`` writes a message from a dict; ``decode(schema, data)`` reads
one into a dict (unknown fields are skipped, repeated ones become lists).  A schema maps a
field name to (number, kind), kind being "int", "bool", "str", a nested schema (dict), or
a 1-tuple of either for a repeated field.
"""

# criu_req_type
EMPTY, DUMP, RESTORE, CHECK, PRE_DUMP, NOTIFY, FEATURE_CHECK, VERSION = 0, 1, 2, 3, 4, 6, 9, 10
REQ_TYPES = {0: "EMPTY", 1: "DUMP", 2: "RESTORE", 3: "CHECK", 4: "PRE_DUMP", 5: "PAGE_SERVER",
             6: "NOTIFY", 9: "FEATURE_CHECK", 10: "VERSION"}

# criu_cg_mode, the values of --manage-cgroups-mode
CG_MODES = {"ignore": 0, "none": 1, "props": 2, "soft": 3, "full": 4, "strict": 5}

EXT_MOUNT_MAP = {"key": (1, "str"), "val": (2, "str")}
INHERIT_FD = {"key": (1, "str"), "fd": (2, "int")}
CGROUP_ROOT = {"ctrl": (1, "str"), "path": (2, "str")}

OPTS = {
    "images_dir_fd": (1, "int"),
    "pid": (2, "int"),
    "leave_running": (3, "bool"),
    "ext_unix_sk": (4, "bool"),
    "tcp_established": (5, "bool"),
    "evasive_devices": (6, "bool"),
    "shell_job": (7, "bool"),
    "file_locks": (8, "bool"),
    "log_level": (9, "int"),
    "log_file": (10, "str"),
    "notify_scripts": (12, "bool"),
    "root": (13, "str"),
    "parent_img": (14, "str"),
    "track_mem": (15, "bool"),
    "auto_dedup": (16, "bool"),
    "work_dir_fd": (17, "int"),
    "ext_mnt": (23, (EXT_MOUNT_MAP,)),
    "manage_cgroups": (24, "bool"),
    "cg_root": (25, (CGROUP_ROOT,)),
    "rst_sibling": (26, "bool"),
    "inherit_fd": (27, (INHERIT_FD,)),
    "manage_cgroups_mode": (34, "int"),
    "external": (37, ("str",)),
    "empty_ns": (38, "int"),
    "freeze_cgroup": (44, "str"),
    "orphan_pts_master": (50, "bool"),
    "network_lock": (64, "int"),
}

# criu_network_lock_method
NETWORK_LOCK_IPTABLES, NETWORK_LOCK_NFTABLES = 1, 2

FEATURES = {"mem_track": (1, "bool"), "lazy_pages": (2, "bool"), "pidfd_store": (3, "bool")}

REQ = {
    "type": (1, "int"),
    "opts": (2, OPTS),
    "notify_success": (3, "bool"),
    "keep_open": (4, "bool"),
    "features": (5, FEATURES),
}

VERSION_MSG = {"major_number": (1, "int"), "minor_number": (2, "int"), "gitid": (3, "str"),
               "sublevel": (4, "int"), "extra": (5, "int"), "name": (6, "str")}

RESP = {
    "type": (1, "int"),
    "success": (2, "bool"),
    "dump": (3, {"restored": (1, "bool")}),
    "restore": (4, {"pid": (1, "int")}),
    "notify": (5, {"script": (1, "str"), "pid": (2, "int")}),
    "cr_errno": (7, "int"),
    "features": (8, FEATURES),
    "cr_errmsg": (9, "str"),
    "version": (10, VERSION_MSG),
    "status": (11, "int"),
}


def _varint(value):
    if value < 0:
        value += 1 << 64          # int32/int64 negatives: ten-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, kind, value):
    if isinstance(kind, dict):
        body = encode(kind, value)
        return _varint(number << 3 | 2) + _varint(len(body)) + body
    if kind == "str":
        body = value.encode() if isinstance(value, str) else bytes(value)
        return _varint(number << 3 | 2) + _varint(len(body)) + body
    if kind == "bool":
        return _varint(number << 3) + _varint(1 if value else 0)
    return _varint(number << 3) + _varint(int(value))


def encode(schema, values):
    """One message as bytes; fields in number order, None values left out."""
    out = []
    for name, value in values.items():
        if value is None:
            continue
        number, kind = schema[name]
        if isinstance(kind, tuple):
            out.extend((number, _field(number, kind[0], v)) for v in value)
        else:
            out.append((number, _field(number, kind, value)))
    out.sort(key=lambda pair: pair[0])
    return b"".join(blob for _, blob in out)


def _read_varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode(schema, data):
    """One message from bytes into a dict (field names of ``schema``)."""
    by_number = {number: (name, kind) for name, (number, kind) in schema.items()}
    result = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            raw, pos = _read_varint(data, pos)
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field %d" % number)
            raw, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            raw, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            raw, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        if number not in by_number:
            continue
        name, kind = by_number[number]
        repeated = isinstance(kind, tuple)
        base = kind[0] if repeated else kind
        if isinstance(base, dict):
            value = decode(base, raw)
        elif base == "str":
            value = bytes(raw).decode(errors="replace")
        elif base == "bool":
            value = bool(raw)
        else:
            value = raw - (1 << 64) if raw >= 1 << 63 else raw
        if repeated:
            result.setdefault(name, []).append(value)
        else:
            result[name] = value
    return result
