"""Write docs/config-reference.md: every config.json field minirunc reads, from the code.

Usage (repository root): ``.venv/bin/python build/config_reference.py [--check]``.

The fields are not listed by hand: they are read from src/minirunc/config.py (each
``_get``/``_require`` call: key, the check that validates it and the default it is given,
followed into the ``_parse_*`` function that parses the value) and from the schema tables of
src/minirunc/cgroups/validate.py (linux.resources).  What a field does comes from
DESCRIPTIONS below; a field the code reads that has none is listed with "(not described)",
and ``--check`` fails when the file on disk is not what this script writes (the test suite
runs it), so the reference cannot drift from the parser.
"""

import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "src", "minirunc", "config.py")
OUT = os.path.join(ROOT, "docs", "config-reference.md")

TYPES = {"_want_string": "string", "_want_bool": "boolean", "_want_int": "integer",
         "_want_u32": "uint32", "_want_u64": "uint64", "_want_id": "uid/gid (uint32)",
         "_want_strings": "array of strings", "_want_abs_path": "string (absolute path)",
         "_want_one_of": "string (one of a set)", "_want_object": "object",
         "_want_list": "array", "_want_uts_name": "string (at most 64 bytes)",
         "_parse_args": "array of strings (non-empty)", "_parse_env": "array of \"KEY=VALUE\"",
         "_parse_paths": "array of absolute paths", "_parse_sysctl": "object of strings",
         "_parse_annotations": "object of strings", "_parse_cgroups_path": "string",
         "_parse_action": "string (SCMP_ACT_*)",
         "_parse_mappings": "array of {containerID, hostID, size}"}
# Parsers followed into, whose type the _want_list test would get wrong.
PARSED_TYPES = {"_parse_hooks": "object: kind -> array of hooks"}

# Fields read without _get/_require (value.get, or warned about and ignored).
EXTRA = {
    "hooks.<kind>[].timeout": ("integer (seconds)", False, None),
    "linux.intelRdt": ("object", False, None),
}

DESCRIPTIONS = {
    "ociVersion": "runtime-spec version of the config (1.0.x, 1.1.x, 1.2.x); a config without "
                  "it but with runc 2015's \"version\" is converted (legacy.py)",
    "root": "the container's root filesystem",
    "root.path": "the rootfs directory, relative to the bundle or absolute",
    "root.readonly": "mount the rootfs read-only",
    "process": "the container's first process",
    "process.terminal": "give the process a pseudo-terminal (with --console-socket, or the "
                        "caller's terminal in the foreground)",
    "process.consoleSize": "initial size of that terminal",
    "process.consoleSize.height": "rows",
    "process.consoleSize.width": "columns",
    "process.user": "the ids the process runs as (numbers: the rootfs's passwd is not read)",
    "process.user.uid": "user id in the container",
    "process.user.gid": "group id in the container",
    "process.user.umask": "umask of the process",
    "process.user.additionalGids": "supplementary group ids (array of uint32)",
    "process.args": "the program and its arguments; args[0] is looked up in the process's "
                    "PATH inside the container",
    "process.env": "the environment",
    "process.cwd": "working directory in the container (created if missing)",
    "process.capabilities": "capability sets; absent means none",
    "process.capabilities.bounding": "bounding set (CAP_* names)",
    "process.capabilities.effective": "effective set",
    "process.capabilities.permitted": "permitted set",
    "process.capabilities.inheritable": "inheritable set",
    "process.capabilities.ambient": "ambient set (kept across execve by a non-root user)",
    "process.rlimits": "resource limits (setrlimit)",
    "process.rlimits[].type": "RLIMIT_* name",
    "process.rlimits[].soft": "soft limit",
    "process.rlimits[].hard": "hard limit",
    "process.noNewPrivileges": "set no_new_privs (no privilege gain through execve)",
    "process.oomScoreAdj": "oom_score_adj of the process (-1000..1000)",
    "process.apparmorProfile": "AppArmor profile (warned about: not applied unless "
                               "supported by the host)",
    "process.selinuxLabel": "SELinux label (as apparmorProfile)",
    "process.scheduler": "scheduling policy (sched_setattr)",
    "process.scheduler.policy": "SCHED_* policy",
    "process.scheduler.flags": "SCHED_FLAG_* flags",
    "process.scheduler.nice": "nice value (-20..19)",
    "process.scheduler.priority": "static priority for the real-time policies (0..99)",
    "process.scheduler.runtime": "SCHED_DEADLINE runtime (ns)",
    "process.scheduler.deadline": "SCHED_DEADLINE deadline (ns)",
    "process.scheduler.period": "SCHED_DEADLINE period (ns)",
    "process.ioPriority": "I/O priority (ioprio_set)",
    "process.ioPriority.class": "IOPRIO_CLASS_* class",
    "process.ioPriority.priority": "priority within the class (0..7)",
    "process.execCPUAffinity": "CPUs the process may run on",
    "process.execCPUAffinity.initial": "CPU list while the runtime sets the process up",
    "process.execCPUAffinity.final": "CPU list from execve on",
    "hostname": "host name in a new UTS namespace",
    "domainname": "domain name in a new UTS namespace",
    "annotations": "free-form metadata, echoed in `state`",
    "mounts": "mounts made in the container, in order, after the rootfs",
    "mounts[].destination": "mount point in the container (created if missing)",
    "mounts[].type": "filesystem type (bind for a bind mount)",
    "mounts[].source": "device, filesystem name, or for a bind mount the host path "
                       "(relative to the bundle)",
    "mounts[].options": "mount(8) words: flags (ro, nosuid...), propagation, r* recursive "
                        "attributes, idmap/ridmap, KEY=VALUE filesystem data; `minirunc "
                        "check` names typos",
    "mounts[].uidMappings": "idmapped bind mount: user id mapping",
    "mounts[].gidMappings": "idmapped bind mount: group id mapping",
    "hooks": "programs the runtime runs: prestart, createRuntime, createContainer, "
             "startContainer, poststart, poststop",
    "hooks.<kind>[].path": "absolute path of the hook program (on the host)",
    "hooks.<kind>[].args": "its arguments (argv[0] included)",
    "hooks.<kind>[].env": "its environment",
    "linux": "Linux-specific settings",
    "linux.namespaces": "namespaces to create (or join with a path); a missing network "
                        "namespace means the host's network",
    "linux.namespaces[].type": "pid, network, mount, ipc, uts, user, cgroup or time",
    "linux.namespaces[].path": "join this namespace (a /proc/PID/ns/* path) instead",
    "linux.uidMappings": "user namespace uid mapping",
    "linux.gidMappings": "user namespace gid mapping",
    "linux.devices": "device nodes to create in the container's /dev",
    "linux.devices[].path": "path in the container",
    "linux.devices[].type": "c, b, u or p",
    "linux.devices[].major": "major number",
    "linux.devices[].minor": "minor number",
    "linux.devices[].fileMode": "permission bits",
    "linux.devices[].uid": "owner",
    "linux.devices[].gid": "group",
    "linux.sysctl": "kernel parameters set in the container's namespaces",
    "linux.maskedPaths": "paths hidden (an empty read-only mount over them)",
    "linux.readonlyPaths": "paths made read-only",
    "linux.rootfsPropagation": "propagation of the rootfs mount",
    "linux.seccomp": "a seccomp filter",
    "linux.seccomp.defaultAction": "action for syscalls no rule matches",
    "linux.seccomp.defaultErrnoRet": "errno for SCMP_ACT_ERRNO as the default",
    "linux.seccomp.architectures": "SCMP_ARCH_* the filter covers",
    "linux.seccomp.flags": "SECCOMP_FILTER_FLAG_* flags",
    "linux.seccomp.syscalls": "rules",
    "linux.cgroupsPath": "the container's cgroup (default: the id under the runtime's own)",
    "linux.resources": "cgroup limits (see below)",
    "linux.personality": "execution domain (personality(2))",
    "linux.personality.domain": "LINUX or LINUX32",
    "linux.personality.flags": "flags (none supported)",
    "linux.mountLabel": "SELinux mount label",
    "linux.timeOffsets": "time namespace offsets (monotonic, boottime)",
    "linux.timeOffsets.<kind>.secs": "offset in seconds",
    "linux.timeOffsets.<kind>.nanosecs": "and nanoseconds",
    "linux.intelRdt": "not supported: warned about, not applied",
    "hooks.<kind>[].timeout": "seconds before the hook is killed and counted as failed",
    "linux.seccomp.syscalls[].names": "syscall names the rule matches",
    "linux.seccomp.syscalls[].action": "SCMP_ACT_* for them",
    "linux.seccomp.syscalls[].errnoRet": "errno for SCMP_ACT_ERRNO",
    "linux.seccomp.syscalls[].args": "argument comparisons (all must match)",
    "linux.seccomp.syscalls[].args[].index": "argument number (0..5)",
    "linux.seccomp.syscalls[].args[].value": "value compared",
    "linux.seccomp.syscalls[].args[].valueTwo": "second value (SCMP_CMP_MASKED_EQ)",
    "linux.seccomp.syscalls[].args[].op": "SCMP_CMP_* operator",
}


def _literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return None


class Walker:
    """Follows parse_config through the _parse_* functions of config.py."""

    def __init__(self, tree):
        self.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self.constants = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                value = _literal(node.value)
                if isinstance(value, (tuple, list, dict)):
                    self.constants[node.targets[0].id] = list(value)
        self.fields = {}
        self.seen = set()

    def walk(self, name, prefix):
        if (name, prefix) in self.seen or name not in self.functions:
            return
        self.seen.add((name, prefix))
        func = self.functions[name]
        first = func.args.args[0].arg if func.args.args else None
        bound = {first: prefix} if first else {}
        loops = {}
        for _ in range(2):          # an assignment may bind what a loop walks, and back
            for node in ast.walk(func):
                if isinstance(node, (ast.For, ast.comprehension)):
                    self._bind_loop(node, bound, loops)
            for node in ast.walk(func):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    self._assign(node, bound, loops)
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                self._call(node, bound, loops)

    def _bind_loop(self, node, bound, loops):
        target, iterator = node.target, node.iter
        if isinstance(iterator, ast.Call) and isinstance(iterator.func, ast.Name) \
                and iterator.func.id == "enumerate" and isinstance(target, ast.Tuple):
            source = iterator.args[0]
            if isinstance(source, ast.Name) and source.id in bound:
                bound[target.elts[1].id] = bound[source.id] + "[]"
            return
        if isinstance(iterator, ast.Call) and isinstance(iterator.func, ast.Attribute) \
                and iterator.func.attr == "items" and isinstance(target, ast.Tuple):
            owner = iterator.func.value
            if isinstance(owner, ast.Name) and owner.id in bound:
                bound[target.elts[1].id] = bound[owner.id] + ".<kind>"
            return
        if isinstance(target, ast.Tuple) and target.elts and isinstance(target.elts[0], ast.Name):
            rows = _literal(iterator)           # for key, attr in (("a", "x"), ("b", "y"))
            if isinstance(rows, (list, tuple)) and all(
                    isinstance(r, tuple) and r and isinstance(r[0], str) for r in rows):
                loops[target.elts[0].id] = [r[0] for r in rows]
            return
        if isinstance(target, ast.Name):
            keys = _literal(iterator)
            if keys is None and isinstance(iterator, ast.Name):
                keys = self.constants.get(iterator.id)
            if isinstance(keys, (list, tuple)) and all(isinstance(k, str) for k in keys):
                loops[target.id] = list(keys)
            elif isinstance(iterator, ast.Name) and iterator.id in bound:
                bound[target.id] = bound[iterator.id] + "[]"

    def _keys(self, node, loops):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name) and node.id in loops:
            return loops[node.id]
        return []

    def _assign(self, node, bound, loops):
        call = node.value
        if isinstance(call.func, ast.Name) and call.func.id in ("_get", "_require") \
                and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            owner = call.args[0]
            keys = self._keys(call.args[1], loops)
            if isinstance(owner, ast.Name) and owner.id in bound and len(keys) == 1:
                bound[node.targets[0].id] = _join(bound[owner.id], keys[0])

    def _call(self, node, bound, loops):
        name = node.func.id
        if name in ("_get", "_require") and len(node.args) >= 4:
            owner = node.args[0]
            if not (isinstance(owner, ast.Name) and owner.id in bound):
                return
            check = _check_name(node)
            default = _literal(node.args[4]) if name == "_get" and len(node.args) > 4 else None
            for key in self._keys(node.args[1], loops):
                path = _join(bound[owner.id], key)
                self.fields[path] = (self._type(check), name == "_require", default)
                if check and check.startswith("_parse_") and check not in TYPES:
                    self.walk(check, path)
        elif name.startswith("_parse_") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Name) and arg.id in bound:
                self.walk(name, bound[arg.id])

    def _type(self, check):
        if check in TYPES or check in PARSED_TYPES:
            return TYPES.get(check) or PARSED_TYPES[check]
        func = self.functions.get(check)
        if func is not None:
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                        and node.func.id == "_want_list":
                    return "array of objects"
        return "object"


def _check_name(call):
    check = call.args[3] if len(call.args) > 3 else None
    return check.id if isinstance(check, ast.Name) else None


def _join(prefix, key):
    return "%s.%s" % (prefix, key) if prefix else key


def resource_fields():
    """linux.resources.* from the schema tables of cgroups/validate.py."""
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from minirunc.cgroups import validate
    tables = {"memory": validate.MEMORY, "cpu": validate.CPU, "blockIO": validate.BLOCK_IO,
              "pids": {"limit": validate._i64},
              "network": {"classID": validate._u32, "priorities": None}}
    fields = {}

    def add(path, check, table=None):
        schema = _closure_schema(check)
        fields[path] = "array of objects" if schema else (
            "object" if table is not None else _resource_type(check))
        for sub, subcheck in (schema or table or {}).items():
            add("%s%s.%s" % (path, "[]" if schema else "", sub), subcheck,
                tables.get(sub) if path == "linux.resources" else None)
    add("linux.resources", None, validate.RESOURCES)
    del fields["linux.resources"]
    fields["linux.resources.rdma"] = "object: device -> {hcaHandles, hcaObjects}"
    fields["linux.resources.unified"] = "object: cgroup v2 file -> value"
    return fields


def _closure_schema(check):
    for cell in getattr(check, "__closure__", None) or ():
        if isinstance(cell.cell_contents, dict):
            return cell.cell_contents
    return None


def _resource_type(check):
    if check is None:
        return "array of objects"
    if _closure_schema(check):
        return "array of objects"
    name = getattr(check, "__name__", "")
    return {"_bytes": "integer (bytes; -1 = unlimited)", "_bool": "boolean",
            "_u32": "uint32", "_u64": "uint64", "_i64": "int64", "_cpu_list": "string (CPU list)",
            "_weight": "uint16 (10..1000)", "_swappiness": "uint64 (0..100)",
            "_period": "uint64 (µs)", "_quota": "int64 (µs; -1 = unlimited)",
            "_shares": "uint64", "_device_type": "a, c or b", "_device_number": "int64 (-1 = any)",
            "_access": "string of r, w, m", "_page_size": "string (2MB...)",
            "_string": "string", "<lambda>": "integer (0 or 1)"}.get(name, "value")


def render():
    with open(CONFIG) as f:
        tree = ast.parse(f.read(), CONFIG)
    walker = Walker(tree)
    walker.walk("parse_config", "")
    walker.walk("_parse_version", "")
    walker.fields.update(EXTRA)
    lines = ["# config.json reference", "",
             "Generated by build/config_reference.py from src/minirunc/config.py and "
             "src/minirunc/cgroups/validate.py: every field minirunc reads, its type, whether "
             "it is required, the default when absent, and what it does. Do not edit by "
             "hand.", "",
             "| field | type | required | default | what it does |",
             "|---|---|---|---|---|"]
    for path in sorted(walker.fields, key=_order):
        kind, required, default = walker.fields[path]
        lines.append("| `%s` | %s | %s | %s | %s |" % (
            path, kind, "yes" if required else "", _show(default) if not required else "",
            DESCRIPTIONS.get(path, "(not described)")))
    lines += ["", "## linux.resources", "",
              "cgroup limits; a field that is absent or null is not set. The same keys as "
              "runc reads; `minirunc update` changes them on a running container.", "",
              "| field | type |", "|---|---|"]
    for path, kind in resource_fields().items():
        lines.append("| `%s` | %s |" % (path, kind))
    return "\n".join(lines) + "\n"


def _order(path):
    top = ["ociVersion", "root", "process", "hostname", "domainname", "annotations", "mounts",
           "hooks", "linux"]
    head = path.split(".")[0].split("[")[0]
    return (top.index(head) if head in top else len(top), path)


def _show(value):
    if value is None:
        return ""
    if value == [] or value == {} or value == "":
        return "`%s`" % ("[]" if value == [] else "{}" if value == {} else '""')
    if isinstance(value, bool):
        return "`%s`" % str(value).lower()
    if isinstance(value, int) and value > 7 and value & 0o777 == value and value in (0o666,):
        return "`0%o`" % value
    return "`%s`" % value


def main(argv):
    text = render()
    if "--check" in argv:
        with open(OUT) as f:
            if f.read() != text:
                sys.stderr.write("config_reference: %s is out of date: run "
                                 "build/config_reference.py\n" % OUT)
                return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s" % OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
