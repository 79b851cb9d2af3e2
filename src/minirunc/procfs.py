"""Kernel files: reading /proc/self/mountinfo and /proc/self/cgroup (for the plan's cgroup
mounts and the cgroup drivers), and writing /proc and cgroupfs files."""

import os


def unescape(field):
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text, fstypes=None):
    """[(root, mount point, fstype, super options)], optionally only of the given fstypes."""
    result = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 4:
            continue
        if fstypes is not None and fields[sep + 1] not in fstypes:
            continue
        result.append((unescape(fields[3]), unescape(fields[4]), fields[sep + 1],
                       fields[sep + 3]))
    return result


def parse_cgroup(text):
    """{controller, "name=x", or "" (v2): path} from /proc/self/cgroup text."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def write_file(path, data):
    """Write ``data`` (bytes) to an existing kernel file (/proc, cgroupfs); OSError on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_text(path):
    """The text of a /proc file, or "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
