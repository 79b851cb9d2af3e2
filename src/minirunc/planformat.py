"""The wire format of a plan: what Python hands the C init helper.

A plan is the magic ``MRPLAN1\\0`` followed by records.  A record is
``u32 tag, u32 payload length, payload``; a payload is a fixed sequence of
fields per tag.  Field kinds: ``u`` an unsigned 64-bit integer, ``i`` a signed
64-bit integer, ``s`` a string (u32 length + bytes, no NUL), ``L`` a list of
u64 (u32 count + that many u64).  Everything is little-endian.  native/init.c
reads the same layout; docs/design.md describes each record.

Kept free of any import beyond ``struct`` so that the plan can be built and
decoded in unit tests without root or the native module.
"""

import struct

MAGIC = b"MRPLAN1\0"

# tag -> (name, field kinds, field names).  Tags are part of the protocol with
# native/init.c: never renumber, only append.
RECORDS = {
    1: ("NS_NEW", "u", ("clone_flags",)),
    2: ("NS_JOIN", "us", ("clone_flag", "path")),
    4: ("HOSTNAME", "s", ("name",)),
    5: ("DOMAINNAME", "s", ("name",)),
    6: ("ROOTFS", "suuu", ("path", "readonly", "propagation", "no_pivot")),
    7: ("MOUNT", "usssuuuusu",
        ("kind", "source", "dest", "fstype", "flags", "propagation",
         "attr_set", "attr_clr", "data", "mkdir_kind")),
    8: ("DEVICE", "suuuuuuu",
        ("path", "type", "major", "minor", "mode", "uid", "gid", "bind_fallback")),
    9: ("SYMLINK", "ss", ("target", "linkpath")),
    10: ("MASKED", "s", ("path",)),
    11: ("READONLY", "s", ("path",)),
    12: ("SYSCTL", "ss", ("key", "value")),
    13: ("RLIMIT", "uuu", ("resource", "soft", "hard")),
    14: ("CAPS", "uuuuu", ("bounding", "effective", "permitted", "inheritable", "ambient")),
    15: ("USER", "uuuL", ("uid", "gid", "umask", "additional_gids")),
    16: ("NO_NEW_PRIVS", "u", ("enabled",)),
    17: ("OOM_SCORE_ADJ", "i", ("value",)),
    18: ("CWD", "s", ("path",)),
    19: ("ENV", "s", ("entry",)),
    20: ("ARG", "s", ("arg",)),
    21: ("TERMINAL", "uu", ("rows", "cols")),
    22: ("SECCOMP_INIT", "uu", ("default_action", "flags")),
    # args: flattened (index, value, value_two, op) quadruples
    23: ("SECCOMP_RULE", "suL", ("syscall", "action", "args")),
    24: ("PRESERVE_FDS", "u", ("count",)),
    25: ("SECCOMP_ARCH", "s", ("name",)),
    26: ("DEV_SETUP", "u", ("enabled",)),
    27: ("PERSONALITY", "u", ("domain",)),
    # Stop after the mounts (before pivot_root) and wait for the runtime's `h`, which
    # carries the state JSON for the container-side hooks.
    28: ("HOOK_SYNC", "u", ("enabled",)),
    # A hook the init runs itself; the HOOK_ARG and HOOK_ENV records after it are its own.
    29: ("HOOK", "ussu", ("stage", "where", "path", "timeout")),
    30: ("HOOK_ARG", "s", ("arg",)),
    31: ("HOOK_ENV", "s", ("entry",)),
    # Join (or create) this session keyring and add `add_perm` to its permissions.
    32: ("SESSION_KEYRING", "su", ("name", "add_perm")),
    # An offset of the new time namespace's clock (written before anything enters it).
    33: ("TIME_OFFSET", "siu", ("clock", "secs", "nanosecs")),
    34: ("SCHEDULER", "uuiuuuu",
         ("policy", "flags", "nice", "priority", "runtime", "deadline", "period")),
    35: ("IO_PRIORITY", "uu", ("class", "priority")),
    # Follows the MOUNT (a bind) it applies to: stage 1 makes that bind as a detached
    # idmapped tree (open_tree + mount_setattr), stage 2 moves it into place.
    36: ("MOUNT_IDMAP", "uss", ("recursive", "uid_map", "gid_map")),
    # process.execCPUAffinity: stage 0 (initial) before the clone, 1 (final) before execve.
    37: ("CPU_AFFINITY", "uL", ("stage", "mask")),
    # process.apparmorProfile (lsm 0) / selinuxLabel (lsm 1), only when that LSM is active:
    # written to the container's /proc/self/attr (checked to be a procfs) for the execve.
    40: ("LSM_LABEL", "us", ("lsm", "label")),
    # Follows the tmpfs MOUNT it applies to (runc's "tmpcopyup"): the tmpfs is filled with
    # a copy of what the rootfs holds at the destination before it is moved there.
    41: ("MOUNT_COPYUP", "u", ("enabled",)),
    # No mount namespace listed: the container shares the runtime's.  The init changes
    # nothing in it (no propagation, binds, mounts, devices, pivot_root) and only
    # chroots into the ROOTFS path.
    42: ("SHARED_MOUNT_NS", "u", ("enabled",)),
    # A cgroup the init joins by itself, opened by stage 1 before it joins any namespace:
    # kind 1, a cgroup v1 `tasks` file stage 2 writes "0" to first thing (a thread moving
    # itself: the kernel takes no global lock, so no RCU grace period); kind 2, a cgroup2
    # directory stage 1 clones stage 2 into (clone3 CLONE_INTO_CGROUP, Linux 5.7; the
    # `P` message says whether it did, else the runtime moves the init there).
    43: ("CGROUP_JOIN", "us", ("kind", "path")),
}
TAGS = {name: tag for tag, (name, _, _) in RECORDS.items()}

_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_HDR = struct.Struct("<II")


def _encode_field(kind, value, out):
    if kind == "u":
        out.append(_U64.pack(value))
    elif kind == "i":
        out.append(_I64.pack(value))
    elif kind == "s":
        # surrogateescape: a command-line argument of non-UTF-8 bytes (exec's args, --env,
        # --cwd) goes back to C as the bytes it was; config.json refuses lone surrogates.
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        if b"\0" in raw:
            raise ValueError("plan string holds a NUL byte: %r" % (value,))
        out.append(_U32.pack(len(raw)))
        out.append(raw)
    elif kind == "L":
        out.append(_U32.pack(len(value)))
        out.extend(_U64.pack(v) for v in value)
    else:  # pragma: no cover - schema error
        raise AssertionError(kind)


def encode_record(name, *values):
    """Encode one record; ``values`` follow the field order of RECORDS."""
    tag = TAGS[name]
    kinds = RECORDS[tag][1]
    if len(values) != len(kinds):
        raise TypeError("%s takes %d fields, got %d" % (name, len(kinds), len(values)))
    parts = []
    for kind, value in zip(kinds, values):
        _encode_field(kind, value, parts)
    payload = b"".join(parts)
    return _HDR.pack(tag, len(payload)) + payload


def encode(records):
    """``records`` is an iterable of (name, values-tuple)."""
    return MAGIC + b"".join(encode_record(name, *values) for name, values in records)


def decode(blob):
    """Inverse of encode: a list of (name, {field: value}) in order."""
    if not blob.startswith(MAGIC):
        raise ValueError("not a minirunc plan (bad magic)")
    pos = len(MAGIC)
    result = []
    while pos < len(blob):
        tag, length = _HDR.unpack_from(blob, pos)
        pos += _HDR.size
        end = pos + length
        name, kinds, fields = RECORDS[tag]
        values = {}
        for kind, field in zip(kinds, fields):
            if kind == "u":
                values[field] = _U64.unpack_from(blob, pos)[0]
                pos += 8
            elif kind == "i":
                values[field] = _I64.unpack_from(blob, pos)[0]
                pos += 8
            elif kind == "s":
                n = _U32.unpack_from(blob, pos)[0]
                pos += 4
                values[field] = blob[pos:pos + n].decode(errors="surrogateescape")
                pos += n
            else:
                n = _U32.unpack_from(blob, pos)[0]
                pos += 4
                values[field] = [_U64.unpack_from(blob, pos + 8 * i)[0] for i in range(n)]
                pos += 8 * n
        if pos != end:
            raise ValueError("record %s: length %d does not match its fields" % (name, length))
        result.append((name, values))
    return result
