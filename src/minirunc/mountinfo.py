"""Reading /proc/self/mountinfo: used by the plan (cgroup mounts) and the cgroup drivers."""


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


def parse(text, fstypes=None):
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
