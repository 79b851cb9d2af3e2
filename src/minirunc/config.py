"""config.json of an OCI bundle: read, type-check and validate into a small model.

``load_bundle(bundle_dir)`` returns a ``Config``; every problem is a
``ConfigError`` carrying the JSON path (``linux.namespaces[2].type``).  Unknown
keys are ignored (newer spec versions add fields), but a known key of the wrong
type is an error.  linux.resources is checked strictly by cgroups/validate.py
(unknown keys there are errors).  Features minirunc does not apply (Intel RDT, hook kinds
newer than the spec it knows, AppArmor/SELinux labels on a host without that LSM: lsm.py)
are accepted and leave a sentence in ``Config.warnings``: the CLI prints them, so nothing
is dropped silently.

Only os, stat and our own small modules are imported: this runs on every
``create``/``run`` and start-up time matters.
"""

import os
import stat

from minirunc import jsontext
from minirunc import caps
from minirunc import mountopts
from minirunc.errors import ConfigError, UsageError, shown

SUPPORTED_VERSIONS = ((1, 0), (1, 1), (1, 2))
SUPPORTED_TEXT = "1.0.x, 1.1.x and 1.2.x"

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

PROPAGATIONS = ("shared", "slave", "private", "unbindable",
                "rshared", "rslave", "rprivate", "runbindable")

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}

SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)
SECCOMP_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
               "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
SECCOMP_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 8,
}
# OCI name -> libseccomp name (seccomp_arch_resolve_name)
SECCOMP_ARCHES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_LOONGARCH64": "loongarch64",
}

DEVICE_TYPES = ("c", "b", "u", "p")
CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
# The kernel accepts at most this many lines in uid_map/gid_map (since 4.15).
MAX_ID_MAPPINGS = 340
U32_MAX = 0xFFFFFFFF
# The kernel refuses longer paths (ENAMETOOLONG) in every call the init makes with them.
PATH_MAX = 4096
# uids and gids: runc's range.  4294967295 is (uid_t)-1, which setresuid/setresgid read as
# "leave unchanged" (the process would stay root), and ids above 2^31-1 are negative for
# much of userspace.
ID_MAX = 2147483647
# The kernel's NGROUPS_MAX: setgroups takes at most this many additional gids.
NGROUPS_MAX = 65536
U64_MAX = 0xFFFFFFFFFFFFFFFF

# Hook kinds in the order of the lifecycle (runtime-spec config.md, "POSIX-platform Hooks").
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


# ---------------------------------------------------------------- the model

class _Model:
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join("%s=%r" % (name, getattr(self, name)) for name in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)


class User(_Model):
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, uid=0, gid=0, umask=None, additional_gids=()):
        self.uid = uid
        self.gid = gid
        self.umask = umask          # None: not set in config.json
        self.additional_gids = list(additional_gids)


class Rlimit(_Model):
    __slots__ = ("type", "resource", "soft", "hard")

    def __init__(self, type, soft, hard):
        self.type = type
        self.resource = RLIMITS[type]
        self.soft = soft
        self.hard = hard


class Capabilities(_Model):
    """Each set is a list of names (CAP_*)."""

    __slots__ = CAP_SETS

    def __init__(self, **sets):
        for name in CAP_SETS:
            setattr(self, name, list(sets.get(name, ())))


class Process(_Model):
    __slots__ = ("terminal", "console_rows", "console_cols", "user", "args", "env", "cwd",
                 "capabilities", "rlimits", "no_new_privileges", "oom_score_adj",
                 "apparmor_profile", "selinux_label", "scheduler", "io_priority",
                 "cpu_affinity")

    def __init__(self):
        self.terminal = False
        self.console_rows = 0
        self.console_cols = 0
        self.user = User()
        self.args = []
        self.env = []
        self.cwd = "/"
        self.capabilities = None    # None: absent from config.json (all sets empty)
        self.rlimits = []
        self.no_new_privileges = False
        self.oom_score_adj = None
        self.apparmor_profile = ""
        self.selinux_label = ""
        self.scheduler = None       # Scheduler, or None: leave the runtime's
        self.io_priority = None     # (class number, priority), or None
        self.cpu_affinity = {}      # execCPUAffinity: "initial"/"final" -> [cpu numbers]


class Hook(_Model):
    """One hook; ``env`` None means absent from config.json; ``timeout`` 0 means none."""

    __slots__ = ("where", "path", "args", "env", "timeout")

    def __init__(self, where, path, args, env, timeout):
        self.where = where          # "hooks.createRuntime[0]", for messages
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout


class Scheduler(_Model):
    """process.scheduler as sched_setattr(2) takes it (numbers)."""

    __slots__ = ("policy", "flags", "nice", "priority", "runtime", "deadline", "period")

    def __init__(self, policy, flags, nice, priority, runtime, deadline, period):
        self.policy = policy
        self.flags = flags
        self.nice = nice
        self.priority = priority
        self.runtime = runtime
        self.deadline = deadline
        self.period = period


class Root(_Model):
    __slots__ = ("path", "host_path", "readonly")

    def __init__(self, path, host_path, readonly=False):
        self.path = path            # as written in config.json
        self.host_path = host_path  # absolute, symlinks resolved
        self.readonly = readonly


class Mount(_Model):
    """One entry of ``mounts``; ``opts`` is the parsed mountopts.MountOptions."""

    __slots__ = ("destination", "type", "source", "options", "opts", "host_source",
                 "source_is_dir", "index", "uid_mappings", "gid_mappings")

    def __init__(self, destination, type, source, options, opts, index=0,
                 host_source=None, source_is_dir=True):
        self.uid_mappings = []              # idmapped bind mounts: [IdMapping]
        self.gid_mappings = []
        self.destination = destination
        self.type = type
        self.source = source
        self.options = list(options)
        self.opts = opts
        self.index = index
        self.host_source = host_source      # bind mounts: absolute host path
        self.source_is_dir = source_is_dir

    @property
    def is_bind(self):
        return self.opts.is_bind

    @property
    def idmapped(self):
        return bool(self.uid_mappings or self.opts.idmap)

    @property
    def idmap_recursive(self):
        """ridmap maps the submounts too; without either word, an rbind does."""
        if self.opts.idmap:
            return self.opts.idmap == "ridmap"
        return "rbind" in self.options


class Namespace(_Model):
    __slots__ = ("type", "path")

    def __init__(self, type, path=""):
        self.type = type
        self.path = path


class IdMapping(_Model):
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, container_id, host_id, size):
        self.container_id = container_id
        self.host_id = host_id
        self.size = size

    def as_tuple(self):
        return (self.container_id, self.host_id, self.size)


class Device(_Model):
    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, path, type, major=0, minor=0, file_mode=0o666, uid=0, gid=0):
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid


class SeccompArg(_Model):
    __slots__ = ("index", "value", "value_two", "op")

    def __init__(self, index, value, value_two, op):
        self.index = index
        self.value = value
        self.value_two = value_two
        self.op = op


class SyscallRule(_Model):
    __slots__ = ("names", "action", "errno_ret", "args")

    def __init__(self, names, action, errno_ret=None, args=()):
        self.names = list(names)
        self.action = action
        self.errno_ret = errno_ret
        self.args = list(args)


class Seccomp(_Model):
    __slots__ = ("default_action", "default_errno_ret", "architectures", "flags", "syscalls")

    def __init__(self, default_action, default_errno_ret=None, architectures=(), flags=(),
                 syscalls=()):
        self.default_action = default_action
        self.default_errno_ret = default_errno_ret
        self.architectures = list(architectures)
        self.flags = list(flags)
        self.syscalls = list(syscalls)


class Linux(_Model):
    __slots__ = ("namespaces", "uid_mappings", "gid_mappings", "devices", "sysctl",
                 "masked_paths", "readonly_paths", "rootfs_propagation", "seccomp",
                 "resources", "cgroups_path", "personality", "mount_label", "time_offsets")

    def __init__(self):
        self.namespaces = []
        self.uid_mappings = []
        self.gid_mappings = []
        self.devices = []
        self.sysctl = {}            # key as written (dots) -> value, config order
        self.masked_paths = []
        self.readonly_paths = []
        self.rootfs_propagation = ""
        self.seccomp = None
        self.resources = {}         # validated dict (cgroups/validate.py), applied by a driver
        self.cgroups_path = ""
        self.personality = None     # domain number, or None
        self.mount_label = ""
        self.time_offsets = {}      # "monotonic"/"boottime" -> (secs, nanosecs)

    def namespace(self, type):
        """The Namespace of that type, or None."""
        for ns in self.namespaces:
            if ns.type == type:
                return ns
        return None


class Config(_Model):
    __slots__ = ("bundle", "config_path", "oci_version", "process", "root", "hostname",
                 "domainname", "mounts", "linux", "annotations", "hooks", "warnings", "raw")

    def __init__(self, bundle, config_path, raw):
        self.bundle = bundle
        self.config_path = config_path
        self.raw = raw
        self.oci_version = ""
        self.process = None
        self.root = None
        self.hostname = ""
        self.domainname = ""
        self.mounts = []
        self.linux = Linux()
        self.annotations = {}
        self.hooks = {}             # kind -> [Hook], only kinds that have hooks
        self.warnings = []

    @property
    def root_path(self):
        return self.root.host_path


# ------------------------------------------------------------ type checks

def _at(path, key):
    key = shown(key, 100)   # keys come from config.json too (sysctl names, annotations)
    return "%s.%s" % (path, key) if path else key


def _item(path, index):
    return "%s[%d]" % (path, index)


def _want_object(value, path):
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    return value


def _want_list(value, path):
    if not isinstance(value, list):
        raise ConfigError(path, "must be a list")
    return value


def _want_string(value, path):
    if not isinstance(value, str):
        raise ConfigError(path, "must be a string")
    if "\0" in value:
        raise ConfigError(path, "must not contain a NUL character")
    return value


def _want_bool(value, path):
    if not isinstance(value, bool):
        raise ConfigError(path, "must be a boolean (true or false)")
    return value


def _want_int(value, path, low, high):
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(path, "must be an integer from %d to %d" % (low, high))
    return value


def _want_u32(value, path):
    return _want_int(value, path, 0, U32_MAX)


def _want_u64(value, path):
    return _want_int(value, path, 0, U64_MAX)


def _want_id(value, path):
    """A uid or gid (0 to 2147483647, as runc)."""
    return _want_int(value, path, 0, ID_MAX)


def _want_strings(value, path):
    _want_list(value, path)
    for i, entry in enumerate(value):
        _want_string(entry, _item(path, i))
    return value


def _want_abs_path(value, path):
    _want_string(value, path)
    if not value.startswith("/"):
        raise ConfigError(path, "must be an absolute path")
    if ".." in value.split("/"):
        raise ConfigError(path, '".." is not allowed')
    return _want_path_size(value, path)


def _want_path_size(value, path):
    size = len(value.encode("utf-8", "surrogatepass"))   # (--cwd may hold escaped bytes)
    if size >= PATH_MAX:
        raise ConfigError(path, "is %d bytes long; a path must be shorter than %d bytes (the "
                          "kernel's PATH_MAX)" % (size, PATH_MAX))
    return value


def _want_one_of(value, path, allowed):
    _want_string(value, path)
    if value not in allowed:
        raise ConfigError(path, 'unknown value "%s" (use one of: %s)'
                          % (shown(value), ", ".join(allowed)))
    return value


def _get(obj, key, path, check, default=None, *extra):
    """obj[key] checked with ``check`` (JSON null counts as absent), or default."""
    value = obj.get(key)
    if value is None:
        return default
    return check(value, _at(path, key), *extra)


def _require(obj, key, path, check, *extra):
    value = obj.get(key)
    if value is None:
        raise ConfigError(_at(path, key), "is required")
    return check(value, _at(path, key), *extra)


# ---------------------------------------------------------------- reading

def read_config_file(bundle_dir):
    """The parsed JSON of <bundle>/config.json."""
    path = os.path.join(bundle_dir, "config.json")
    return path, _read_json_object(path, "no such file; run `minirunc spec` to create one, or "
                                   "pass --bundle with the bundle directory")


def _read_json_object(path, missing):
    """The parsed JSON object in ``path``; ``missing`` is the problem when it does not exist."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("", missing, file=path) from None
    except OSError as e:
        raise ConfigError("", "cannot read: %s" % (e.strerror or e).lower(), file=path) from None
    try:
        data = jsontext.loads(text)
    except UnicodeDecodeError:
        raise ConfigError("", "invalid JSON: not UTF-8 text", file=path) from None
    except jsontext.LimitError as e:  # too deep, too many digits, a lone surrogate
        raise ConfigError(e.path, e.problem, file=path) from None
    except ValueError as e:  # json.JSONDecodeError
        if not hasattr(e, "lineno"):
            raise ConfigError("", "invalid JSON: %s" % e, file=path) from None
        raise ConfigError("", "invalid JSON at line %d, column %d: %s" % (e.lineno, e.colno, e.msg),
                          file=path) from None
    if not isinstance(data, dict):
        raise ConfigError("", "invalid config: the top level must be a JSON object", file=path)
    return data


def load_bundle(bundle_dir):
    """Read and validate <bundle_dir>/config.json; return a Config."""
    bundle = os.path.abspath(bundle_dir)
    path, data = read_config_file(bundle)
    return parse_config(data, bundle, path)


def parse_config(data, bundle, config_path="config.json"):
    """Validate an already parsed config.json (``bundle`` is absolute)."""
    if "ociVersion" not in data and "version" in data:  # runc 2015 shapes: see legacy.py
        from .legacy import upgrade_in_memory; data = upgrade_in_memory(data, bundle)  # noqa: E702
    config = Config(bundle, config_path, data)
    config.oci_version = _parse_version(data)
    config.root = _require(data, "root", "", _parse_root, bundle)
    config.process = _require(data, "process", "", _parse_process, config.warnings)
    config.hostname = _get(data, "hostname", "", _want_uts_name, "")
    config.domainname = _get(data, "domainname", "", _want_uts_name, "")
    config.annotations = _get(data, "annotations", "", _parse_annotations, {})
    config.linux = _get(data, "linux", "", _parse_linux, None, config.warnings) or Linux()
    config.mounts = _get(data, "mounts", "", _parse_mounts, [], bundle)
    config.hooks = _get(data, "hooks", "", _parse_hooks, {}, config.warnings)
    _check_namespaces(config)
    return config


# The kernel's __NEW_UTS_LEN: sethostname/setdomainname refuse longer names.
UTS_NAME_MAX = 64


def _want_uts_name(value, path):
    _want_string(value, path)
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > UTS_NAME_MAX:
        raise ConfigError(path, "must be at most %d bytes (the kernel's limit), not %d"
                          % (UTS_NAME_MAX, size))
    return value


def _parse_version(data):
    version = _require(data, "ociVersion", "", _want_string)
    parts = version.split("-")[0].split(".")
    try:
        major_minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        major_minor = None
    if major_minor not in SUPPORTED_VERSIONS:
        raise ConfigError("ociVersion", 'unsupported version "%s" (minirunc supports %s)'
                          % (shown(version), SUPPORTED_TEXT))
    return version


def _parse_root(value, path, bundle):
    _want_object(value, path)
    rel = _require(value, "path", path, _want_string)
    if not rel:
        raise ConfigError(_at(path, "path"), "must not be empty")
    host = os.path.realpath(os.path.join(bundle, rel))
    try:
        st = os.stat(host)
    except OSError:
        raise ConfigError(_at(path, "path"), "rootfs %s does not exist" % host) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(_at(path, "path"), "rootfs %s is not a directory" % host)
    readonly = _get(value, "readonly", path, _want_bool, False)
    return Root(rel, host, readonly)


def _parse_hooks(value, path, warnings):
    _want_object(value, path)
    hooks = {}
    for kind, entries in value.items():
        where = _at(path, kind)
        if kind not in HOOK_KINDS:
            if entries:
                warnings.append("%s: unknown hook kind (minirunc knows %s); not run"
                                % (where, ", ".join(HOOK_KINDS)))
            continue
        if entries is None:
            continue
        _want_list(entries, where)
        parsed = [_parse_hook(entry, _item(where, i)) for i, entry in enumerate(entries)]
        if parsed:
            hooks[kind] = parsed
    return hooks


def _parse_hook(value, path):
    _want_object(value, path)
    hook_path = _require(value, "path", path, _want_string)
    if not hook_path.startswith("/"):
        raise ConfigError(_at(path, "path"), 'must be an absolute path (got "%s")'
                          % shown(hook_path))
    _want_path_size(hook_path, _at(path, "path"))
    args = _get(value, "args", path, _want_strings, None)
    env = _get(value, "env", path, _parse_env, None)
    timeout = 0
    if value.get("timeout") is not None:
        timeout = value["timeout"]
        if type(timeout) is not int or not 1 <= timeout <= U32_MAX:
            raise ConfigError(_at(path, "timeout"), "must be a whole number of seconds, "
                              "at least 1 (leave it out for no timeout)")
    # runc: without args, argv[0] is the path.
    return Hook(path, hook_path, list(args) if args else [hook_path], env, timeout)


def _parse_annotations(value, path):
    _want_object(value, path)
    for key, entry in value.items():
        _want_string(entry, _at(path, key))
    return dict(value)


# ---------------------------------------------------------------- process

def _parse_process(value, path, warnings):
    _want_object(value, path)
    proc = Process()
    proc.terminal = _get(value, "terminal", path, _want_bool, False)
    size = _get(value, "consoleSize", path, _want_object)
    if size is not None:
        size_path = _at(path, "consoleSize")
        proc.console_rows = _require(size, "height", size_path, _want_u32)
        proc.console_cols = _require(size, "width", size_path, _want_u32)
    proc.user = _get(value, "user", path, _parse_user, User())
    proc.args = _require(value, "args", path, _parse_args)
    proc.env = _get(value, "env", path, _parse_env, [])
    proc.cwd = _require(value, "cwd", path, _want_abs_path)
    proc.capabilities = _get(value, "capabilities", path, _parse_capabilities)
    proc.rlimits = _get(value, "rlimits", path, _parse_rlimits, [], warnings)
    proc.no_new_privileges = _get(value, "noNewPrivileges", path, _want_bool, False)
    proc.oom_score_adj = _get(value, "oomScoreAdj", path, _want_int, None, -1000, 1000)
    for key, attr in (("apparmorProfile", "apparmor_profile"), ("selinuxLabel", "selinux_label")):
        label = _get(value, key, path, _want_string, "")
        setattr(proc, attr, label)
        if label:
            from minirunc import lsm   # applied where the LSM is active (lsm.py), else a warning
            warning = lsm.check_label(attr.split("_")[0], label, _at(path, key))
            if warning:
                warnings.append(warning)
    proc.scheduler = _get(value, "scheduler", path, _parse_scheduler)
    proc.io_priority = _get(value, "ioPriority", path, _parse_io_priority)
    proc.cpu_affinity = _get(value, "execCPUAffinity", path, _parse_cpu_affinity, {})
    return proc


MAX_CPUS = 8192


def _parse_cpu_affinity(value, path):
    _want_object(value, path)
    affinity = {}
    for key in ("initial", "final"):
        text = _get(value, key, path, _want_string, "")
        if text:
            affinity[key] = _parse_cpu_list(text, _at(path, key))
    return affinity


def _parse_cpu_list(text, path):
    """"0-3,7" -> [0, 1, 2, 3, 7] (the kernel's cpu list format)."""
    cpus = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(path, 'is not a CPU list like "0-3,7": "%s"'
                              % shown(text)) from None
        if not 0 <= first <= last < MAX_CPUS:
            raise ConfigError(path, 'CPU range "%s" must run upwards from 0 and stay below %d'
                              % (shown(part.strip()), MAX_CPUS))
        cpus.update(range(first, last + 1))
    return sorted(cpus)


SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _parse_scheduler(value, path):
    _want_object(value, path)
    policy = _require(value, "policy", path, _want_one_of, tuple(SCHED_POLICIES))
    flags = 0
    for i, name in enumerate(_get(value, "flags", path, _want_strings, [])):
        flags |= SCHED_FLAGS[_want_one_of(name, _item(_at(path, "flags"), i), tuple(SCHED_FLAGS))]
    nice = _get(value, "nice", path, _want_int, 0, -20, 19)
    priority = _get(value, "priority", path, _want_int, 0, 0, 99)
    # The kernel's rules (sched_setattr(2)), said with the field's name before it refuses.
    if policy in ("SCHED_FIFO", "SCHED_RR") and priority < 1:
        raise ConfigError(_at(path, "priority"), "must be from 1 to 99 for %s" % policy)
    if policy not in ("SCHED_FIFO", "SCHED_RR") and priority:
        raise ConfigError(_at(path, "priority"), "must be 0 for %s (only SCHED_FIFO and "
                          "SCHED_RR have priorities)" % policy)
    times = [_get(value, key, path, _want_u64, 0) for key in ("runtime", "deadline", "period")]
    if policy == "SCHED_DEADLINE":
        runtime, deadline, period = times
        if not 0 < runtime <= deadline <= (period or deadline):
            raise ConfigError(path, "SCHED_DEADLINE needs 0 < runtime <= deadline <= period "
                              "(period 0 means deadline)")
    return Scheduler(SCHED_POLICIES[policy], flags, nice, priority, *times)


def _parse_io_priority(value, path):
    _want_object(value, path)
    klass = _require(value, "class", path, _want_one_of, tuple(IOPRIO_CLASSES))
    priority = _get(value, "priority", path, _want_int, 0, 0, 7)
    return IOPRIO_CLASSES[klass], priority


# ------------------------------------------------------ exec's process

def load_process_file(path, warnings):
    """``exec --process FILE``: an OCI process object, checked like config.json's process.
    Errors name the file and the JSON path inside it (``p.json: args: must be ...``)."""
    data = _read_json_object(path, "no such file (--process names a JSON file holding an OCI "
                             "process object)")
    try:
        return _parse_process(data, "", warnings)
    except ConfigError as e:
        raise ConfigError("%s: %s" % (path, e.path) if e.path else path, e.problem) from None


def _copy_process(base):
    proc = Process()
    for name in Process.__slots__:
        setattr(proc, name, getattr(base, name))
    u = base.user
    proc.user = User(u.uid, u.gid, u.umask, u.additional_gids)
    if base.capabilities is not None:
        proc.capabilities = Capabilities(**{n: getattr(base.capabilities, n) for n in CAP_SETS})
    proc.args = list(base.args)
    proc.env = list(base.env)
    proc.rlimits = list(base.rlimits)
    return proc


def _cap_name(text):
    name = text.strip().upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in caps.NUMBERS:
        raise UsageError('--cap "%s": unknown capability (use names such as CAP_NET_ADMIN)'
                         % shown(text))
    return name


def _id_flag(text, flag, what, given=None, hint=""):
    """A uid or gid given on the command line (0 to 2147483647, as in config.json)."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not 0 <= value <= ID_MAX:
        raise UsageError('%s "%s": %s must be a number from 0 to %d%s'
                         % (flag, shown(text if given is None else given), what, ID_MAX, hint))
    return value


def exec_process(base, args, cwd=None, env=(), user=None, additional_gids=(), cap_add=(),
                 no_new_privs=False, terminal=False):
    """The process `exec COMMAND` runs: the container's own process (``base``) with runc's
    overrides: args replaced, --cwd, --env (a NAME given again replaces the old entry),
    --user UID[:GID], --additional-gids and --cap added (to every set but ambient, as
    runc 1.1), --no-new-privs, and the terminal off unless --tty."""
    proc = _copy_process(base)
    proc.args = _parse_args(list(args), "COMMAND")
    proc.terminal = bool(terminal)
    if cwd is not None:
        proc.cwd = _want_abs_path(cwd, "--cwd")
    for entry in env:
        if "=" not in entry or entry.startswith("="):
            raise UsageError('--env "%s": must have the form NAME=value' % shown(entry))
        if "\0" in entry:
            raise UsageError("--env: must not contain a NUL character")
        name = entry.split("=", 1)[0] + "="
        proc.env = [e for e in proc.env if not e.startswith(name)] + [entry]
    if user is not None:
        uid, sep, gid = user.partition(":")
        hint = " (the form is UID[:GID]; user names are not supported)"
        proc.user.uid = _id_flag(uid, "--user", "the uid", user, hint)
        if sep:
            proc.user.gid = _id_flag(gid, "--user", "the gid", user, hint)
    for gid in additional_gids:
        proc.user.additional_gids.append(_id_flag(gid, "--additional-gids", "a gid"))
    if len(proc.user.additional_gids) > NGROUPS_MAX:
        raise UsageError("--additional-gids: at most %d additional gids are allowed in all "
                         "(the kernel's NGROUPS_MAX), with process.user.additionalGids %d"
                         % (NGROUPS_MAX, len(proc.user.additional_gids)))
    names = [_cap_name(c) for c in cap_add]
    if names:
        if proc.capabilities is None:
            proc.capabilities = Capabilities()
        for set_name in ("bounding", "effective", "permitted", "inheritable"):
            current = getattr(proc.capabilities, set_name)
            current.extend(n for n in names if n not in current)
    if no_new_privs:
        proc.no_new_privileges = True
    return proc


def _parse_args(value, path):
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise ConfigError(path, "must be a non-empty list of strings")
    for i, arg in enumerate(value):
        _want_string(arg, _item(path, i))
    if not value[0]:
        raise ConfigError(_item(path, 0), "must not be empty (it names the program to run)")
    return list(value)


def _parse_env(value, path):
    _want_strings(value, path)
    for i, entry in enumerate(value):
        if "=" not in entry:
            raise ConfigError(_item(path, i),
                              'must have the form NAME=value (no "=" in "%s")' % shown(entry))
        if entry.startswith("="):
            raise ConfigError(_item(path, i), 'must have the form NAME=value (the name is empty '
                              'in "%s")' % shown(entry))
    return list(value)


def _parse_user(value, path):
    _want_object(value, path)
    if value.get("username") is not None:
        raise ConfigError(_at(path, "username"),
                          "user names are not supported on Linux; use uid and gid numbers")
    user = User()
    user.uid = _get(value, "uid", path, _want_id, 0)
    user.gid = _get(value, "gid", path, _want_id, 0)
    user.umask = _get(value, "umask", path, _want_int, None, 0, 0o777)
    gids = _get(value, "additionalGids", path, _want_list, [])
    if len(gids) > NGROUPS_MAX:
        raise ConfigError(_at(path, "additionalGids"), "at most %d gids are allowed (the "
                          "kernel's NGROUPS_MAX), not %d" % (NGROUPS_MAX, len(gids)))
    for i, gid in enumerate(gids):
        _want_id(gid, _item(_at(path, "additionalGids"), i))
    user.additional_gids = list(gids)
    return user


def _parse_capabilities(value, path):
    _want_object(value, path)
    sets = {}
    for name in CAP_SETS:
        names = _get(value, name, path, _want_strings, [])
        for i, cap in enumerate(names):
            if cap not in caps.NUMBERS:
                raise ConfigError(_item(_at(path, name), i),
                                  'unknown capability "%s"' % shown(cap))
        sets[name] = names
    return Capabilities(**sets)


# Below this much address space no program can start: execve alone maps a 128 KiB stack,
# the vdso and the program itself (the kernel takes the limit, then kills it with SIGSEGV).
MIN_ADDRESS_SPACE = 1 << 20


def _parse_rlimits(value, path, warnings):
    _want_list(value, path)
    result = []
    seen = set()
    for i, entry in enumerate(value):
        where = _item(path, i)
        _want_object(entry, where)
        kind = _require(entry, "type", where, _want_string)
        if kind not in RLIMITS:
            raise ConfigError(_at(where, "type"), 'unknown resource limit "%s"' % shown(kind))
        if kind in seen:
            raise ConfigError(_at(where, "type"), '"%s" is given more than once' % kind)
        seen.add(kind)
        soft = _require(entry, "soft", where, _want_u64)
        hard = _require(entry, "hard", where, _want_u64)
        if soft > hard:
            raise ConfigError(where, "soft limit %d is above the hard limit %d" % (soft, hard))
        if kind == "RLIMIT_AS" and soft < MIN_ADDRESS_SPACE:
            warnings.append("%s: RLIMIT_AS %d bytes leaves no room to start a program (it is "
                            "set right before execve, which then fails or the process is killed "
                            "with SIGSEGV)" % (where, soft))
        result.append(Rlimit(kind, soft, hard))
    return result


# ---------------------------------------------------------------- mounts

def _parse_mounts(value, path, bundle):
    _want_list(value, path)
    mounts = [_parse_mount(entry, _item(path, i), i, bundle) for i, entry in enumerate(value)]
    from minirunc import mountcheck   # runc's checkProcMount: nothing fake over /proc
    mountcheck.check_mounts(mounts)
    return mounts


def _parse_mount(value, path, index, bundle):
    _want_object(value, path)
    given = _require(value, "destination", path, _want_abs_path)
    dest = clean_destination(given)
    if dest == "/":
        said = "" if given == "/" else '"%s" is "/": ' % shown(given)
        raise ConfigError(_at(path, "destination"),
                          said + 'cannot mount over "/" (the root filesystem is root.path)')
    fstype = _get(value, "type", path, _want_string, "")
    options = _get(value, "options", path, _want_strings, [])
    opts = mountopts.parse(options, fstype, _at(path, "options"))
    uid_mappings = _get(value, "uidMappings", path, _parse_mappings, [])
    gid_mappings = _get(value, "gidMappings", path, _parse_mappings, [])
    if bool(uid_mappings) != bool(gid_mappings):
        missing = "gidMappings" if uid_mappings else "uidMappings"
        raise ConfigError(_at(path, missing), "is required too: an idmapped mount needs both "
                          "uidMappings and gidMappings")
    source = _get(value, "source", path, _want_string, "")
    if not opts.is_bind:
        if uid_mappings or opts.idmap:
            raise ConfigError(path, "only bind mounts can be idmapped (add the bind or rbind "
                              "option)")
        if not fstype:
            raise ConfigError(_at(path, "type"),
                              "is required (or add the bind or rbind option for a bind mount)")
        return Mount(dest, fstype, source or fstype, options, opts, index)
    mount = _bind_mount(value, path, index, bundle, dest, fstype, source, options, opts)
    mount.uid_mappings = uid_mappings
    mount.gid_mappings = gid_mappings
    return mount


def clean_destination(dest):
    """``//``, ``///x/``, ``/./x`` -> ``/``, ``/x``, ``/x``: the path the init resolves.
    (os.path.normpath keeps a leading ``//``, which POSIX leaves implementation-defined.)"""
    return "/" + os.path.normpath(dest).lstrip("/")


def _bind_mount(value, path, index, bundle, dest, fstype, source, options, opts):
    if not source:
        raise ConfigError(_at(path, "source"), "is required for a bind mount")
    host = os.path.normpath(os.path.join(bundle, source))
    try:
        st = os.stat(host)
    except OSError:
        raise ConfigError(_at(path, "source"),
                          "bind source %s does not exist on the host" % host) from None
    return Mount(dest, fstype or "bind", source, options, opts, index,
                 host_source=host, source_is_dir=stat.S_ISDIR(st.st_mode))


# ---------------------------------------------------------------- linux

def _parse_linux(value, path, warnings):
    _want_object(value, path)
    linux = Linux()
    linux.namespaces = _get(value, "namespaces", path, _parse_namespaces, [])
    linux.uid_mappings = _get(value, "uidMappings", path, _parse_mappings, [])
    linux.gid_mappings = _get(value, "gidMappings", path, _parse_mappings, [])
    linux.devices = _get(value, "devices", path, _parse_devices, [])
    linux.sysctl = _get(value, "sysctl", path, _parse_sysctl, {})
    linux.masked_paths = _get(value, "maskedPaths", path, _parse_paths, [])
    linux.readonly_paths = _get(value, "readonlyPaths", path, _parse_paths, [])
    linux.rootfs_propagation = _get(value, "rootfsPropagation", path, _want_one_of, "",
                                    PROPAGATIONS)
    linux.seccomp = _get(value, "seccomp", path, _parse_seccomp)
    linux.cgroups_path = _get(value, "cgroupsPath", path, _parse_cgroups_path, "")
    resources = _get(value, "resources", path, _want_object)
    if resources:
        from minirunc.cgroups.validate import check_resources
        linux.resources, notes = check_resources(resources, _at(path, "resources"))
        warnings.extend(notes)
    linux.personality = _get(value, "personality", path, _parse_personality)
    linux.mount_label = _get(value, "mountLabel", path, _want_string, "")
    if linux.mount_label:
        from minirunc import lsm
        warning = lsm.check_label("mount", linux.mount_label, _at(path, "mountLabel"))
        if warning:
            warnings.append(warning)
    linux.time_offsets = _get(value, "timeOffsets", path, _parse_time_offsets, {})
    if value.get("intelRdt") is not None:
        warnings.append("linux.intelRdt: Intel RDT is not supported; it was NOT applied")
    return linux


TIME_CLOCKS = ("monotonic", "boottime")
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def _parse_time_offsets(value, path):
    _want_object(value, path)
    offsets = {}
    for clock, entry in value.items():
        where = _at(path, clock)
        if clock not in TIME_CLOCKS:
            raise ConfigError(where, "unknown clock (the time namespace offsets %s)"
                              % " and ".join(TIME_CLOCKS))
        _want_object(entry, where)
        offsets[clock] = (_get(entry, "secs", where, _want_int, 0, I64_MIN, I64_MAX),
                          _get(entry, "nanosecs", where, _want_int, 0, 0, 999999999))
    return offsets


def _parse_cgroups_path(value, path):
    _want_string(value, path)
    from minirunc.cgroups.paths import check_cgroups_path
    return check_cgroups_path(value)


def _parse_namespaces(value, path):
    _want_list(value, path)
    result = []
    seen = {}
    for i, entry in enumerate(value):
        where = _item(path, i)
        _want_object(entry, where)
        kind = _require(entry, "type", where, _want_one_of, NAMESPACE_TYPES)
        if kind in seen:
            raise ConfigError(_at(where, "type"), 'namespace "%s" is already listed at %s'
                              % (kind, _item(path, seen[kind])))
        seen[kind] = i
        ns_path = _get(entry, "path", where, _want_abs_path, "")
        result.append(Namespace(kind, ns_path))
    return result


def _parse_mappings(value, path):
    _want_list(value, path)
    if len(value) > MAX_ID_MAPPINGS:
        raise ConfigError(path, "at most %d mappings are allowed" % MAX_ID_MAPPINGS)
    result = []
    for i, entry in enumerate(value):
        where = _item(path, i)
        _want_object(entry, where)
        mapping = IdMapping(_require(entry, "containerID", where, _want_id),
                            _require(entry, "hostID", where, _want_id),
                            _require(entry, "size", where, _want_u32))
        if mapping.size == 0:
            raise ConfigError(_at(where, "size"), "must be at least 1")
        for key, first in (("containerID", mapping.container_id), ("hostID", mapping.host_id)):
            if first + mapping.size - 1 > ID_MAX:
                raise ConfigError(_at(where, "size"), "%d ids from %s %d run past %d, the "
                                  "highest id allowed" % (mapping.size, key, first, ID_MAX))
        result.append(mapping)
    return result


def _parse_devices(value, path):
    _want_list(value, path)
    result = []
    for i, entry in enumerate(value):
        where = _item(path, i)
        _want_object(entry, where)
        dev_path = _require(entry, "path", where, _want_abs_path)
        kind = _require(entry, "type", where, _want_one_of, DEVICE_TYPES)
        device = Device(dev_path, kind)
        if kind == "p":
            device.major = _get(entry, "major", where, _want_u32, 0)
            device.minor = _get(entry, "minor", where, _want_u32, 0)
        else:
            device.major = _require(entry, "major", where, _want_u32)
            device.minor = _require(entry, "minor", where, _want_u32)
        mode = _get(entry, "fileMode", where, _want_u32, 0o666)
        device.file_mode = mode & 0o7777
        device.uid = _get(entry, "uid", where, _want_id, 0)
        device.gid = _get(entry, "gid", where, _want_id, 0)
        result.append(device)
    return result


def _parse_sysctl(value, path):
    _want_object(value, path)
    for key, entry in value.items():
        where = _at(path, key)
        _want_string(entry, where)
        parts = sysctl_file(key).split("/")
        if not key or "" in parts or "." in parts or ".." in parts or "\0" in key:
            raise ConfigError(where, "invalid sysctl name")
    return dict(value)


def sysctl_dotted(key):
    """The dotted form of a sysctl name, as runc reads it: ``net/ipv4/ip_forward`` (slashes
    first) -> ``net.ipv4.ip_forward``; a name whose first separator is a "." is kept."""
    for c in key:
        if c == ".":
            return key
        if c == "/":
            return key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return key


def sysctl_file(key):
    """``net.ipv4.ip_forward`` -> ``net/ipv4/ip_forward`` (a "/" in the dotted form is a ".")."""
    return sysctl_dotted(key).replace(".", "\0").replace("/", ".").replace("\0", "/")


def _parse_paths(value, path):
    _want_list(value, path)
    for i, entry in enumerate(value):
        _want_abs_path(entry, _item(path, i))
    return list(value)


def _parse_personality(value, path):
    _want_object(value, path)
    domain = _require(value, "domain", path, _want_one_of, tuple(PERSONALITY_DOMAINS))
    if _get(value, "flags", path, _want_strings, []):
        raise ConfigError(_at(path, "flags"), "personality flags are not supported")
    return PERSONALITY_DOMAINS[domain]


def _parse_seccomp(value, path):
    _want_object(value, path)
    default = _require(value, "defaultAction", path, _parse_action)
    seccomp = Seccomp(default)
    seccomp.default_errno_ret = _get(value, "defaultErrnoRet", path, _want_u32)
    _check_errno_ret(default, seccomp.default_errno_ret, _at(path, "defaultErrnoRet"))
    arches = _get(value, "architectures", path, _want_strings, [])
    for i, arch in enumerate(arches):
        _want_one_of(arch, _item(_at(path, "architectures"), i), tuple(SECCOMP_ARCHES))
    seccomp.architectures = arches
    flags = _get(value, "flags", path, _want_strings, [])
    for i, flag in enumerate(flags):
        _want_one_of(flag, _item(_at(path, "flags"), i), tuple(SECCOMP_FLAGS))
    seccomp.flags = flags
    rules = _get(value, "syscalls", path, _want_list, [])
    seccomp.syscalls = [_parse_syscall(rule, _item(_at(path, "syscalls"), i))
                        for i, rule in enumerate(rules)]
    return seccomp


def _parse_action(value, path):
    _want_one_of(value, path, SECCOMP_ACTIONS)
    if value == "SCMP_ACT_NOTIFY":
        raise ConfigError(path, "SCMP_ACT_NOTIFY is not supported (it needs a seccomp agent at "
                          "listenerPath)")
    return value


def _check_errno_ret(action, errno_ret, path):
    if errno_ret is not None and action not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        raise ConfigError(path, "is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE")


def _valid_syscall_name(name):
    return bool(name) and all(c.isalnum() or c == "_" for c in name) and name.isascii()


def _parse_syscall(value, path):
    _want_object(value, path)
    names = _require(value, "names", path, _want_strings)
    if not names:
        raise ConfigError(_at(path, "names"), "must not be empty")
    for i, name in enumerate(names):
        if not _valid_syscall_name(name):
            raise ConfigError(_item(_at(path, "names"), i),
                              'invalid syscall name "%s"' % shown(name))
    action = _require(value, "action", path, _parse_action)
    errno_ret = _get(value, "errnoRet", path, _want_u32)
    _check_errno_ret(action, errno_ret, _at(path, "errnoRet"))
    args = _get(value, "args", path, _want_list, [])
    parsed = [_parse_seccomp_arg(arg, _item(_at(path, "args"), i)) for i, arg in enumerate(args)]
    return SyscallRule(names, action, errno_ret, parsed)


def _parse_seccomp_arg(value, path):
    _want_object(value, path)
    return SeccompArg(_require(value, "index", path, _want_int, 0, 5),
                      _require(value, "value", path, _want_u64),
                      _get(value, "valueTwo", path, _want_u64, 0),
                      _require(value, "op", path, _want_one_of, SECCOMP_OPS))


# ------------------------------------------------------- cross-field checks

def _check_namespaces(config):
    linux = config.linux
    mount_ns = linux.namespace("mount")
    if mount_ns is None:
        _check_shared_mount_namespace(config)
    elif mount_ns.path:
        _check_joined_mount_namespace(linux, mount_ns)
    _check_user_namespace(config)
    for key in ("hostname", "domainname"):
        if getattr(config, key) and linux.namespace("uts") is None:
            raise ConfigError(key, "cannot be set without a UTS namespace "
                              '(add {"type": "uts"} to linux.namespaces)')
    _check_sysctl_namespaces(config)
    _check_time_namespace(linux)
    _check_idmapped_mounts(config)


ADD_MOUNT_NS = '(add {"type": "mount"} to linux.namespaces)'


def _check_shared_mount_namespace(config):
    """No mount namespace listed: the container shares the runtime's (the spec's "inherit"),
    and gets only a chroot into its rootfs.  runc then still makes its mounts, device nodes
    and "/" propagation in that namespace, where they change the host and outlive the
    container; minirunc refuses what needs them, and masked/readonly paths in runc's words."""
    linux = config.linux
    if linux.masked_paths or linux.readonly_paths:
        key = "maskedPaths" if linux.masked_paths else "readonlyPaths"
        raise ConfigError("linux." + key, "unable to restrict sys entries without a private "
                          "MNT namespace " + ADD_MOUNT_NS)
    fields = (("mounts", bool(config.mounts)), ("root.readonly", config.root.readonly),
              ("linux.rootfsPropagation", bool(linux.rootfs_propagation)),
              ("linux.devices", bool(linux.devices)))
    for key, given in fields:
        if given:
            raise ConfigError(key, "needs a mount namespace of the container's own: without one "
                              "it would change the runtime's mount namespace or the rootfs on "
                              "disk, and outlive the container " + ADD_MOUNT_NS)


def _check_joined_mount_namespace(linux, mount_ns):
    """A mount namespace joined by path is prepared like a new one (as runc: "/" made
    rslave, the rootfs bound, mounts, pivot_root, which takes every process whose root
    was the namespace's old one along).  The runtime's own namespace never: that is the
    host's mount table and every process on it (the init checks again)."""
    where = "linux.namespaces[%d].path" % linux.namespaces.index(mount_ns)
    try:
        mine, theirs = os.stat("/proc/self/ns/mnt"), os.stat(mount_ns.path)
    except OSError:
        return   # the init fails to open it, naming the path
    if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
        raise ConfigError(where, "%s is the runtime's own mount namespace: preparing the "
                          "rootfs there would change the host's mounts; leave the mount "
                          "namespace out of linux.namespaces to share it" % mount_ns.path)


def _check_user_namespace(config):
    linux = config.linux
    user_ns = linux.namespace("user")
    has_maps = bool(linux.uid_mappings or linux.gid_mappings)
    if user_ns is None:
        if has_maps:
            key = "uidMappings" if linux.uid_mappings else "gidMappings"
            raise ConfigError("linux." + key, "id mappings need a user namespace "
                              '(add {"type": "user"} to linux.namespaces)')
        return
    if user_ns.path:
        if has_maps:
            config.warnings.append("linux.uidMappings: ignored; the existing user namespace %s "
                                   "has its own mappings" % user_ns.path)
        return
    for key, maps in (("uidMappings", linux.uid_mappings), ("gidMappings", linux.gid_mappings)):
        if not maps:
            raise ConfigError("linux." + key, "a new user namespace needs at least one mapping")


def _check_idmapped_mounts(config):
    """An "idmap"/"ridmap" mount without mappings of its own takes the container's user
    namespace mappings (runtime-spec 1.2, as runc and crun do)."""
    linux = config.linux
    for mount in config.mounts:
        if not mount.opts.idmap or mount.uid_mappings:
            continue
        user = linux.namespace("user")
        if user is None or user.path or not linux.uid_mappings or not linux.gid_mappings:
            raise ConfigError("mounts[%d].options" % mount.index, '"%s" without uidMappings and '
                              "gidMappings takes the container's user namespace mappings, and "
                              "this container has none" % mount.opts.idmap)
        mount.uid_mappings = list(linux.uid_mappings)
        mount.gid_mappings = list(linux.gid_mappings)


def _check_time_namespace(linux):
    time_ns = linux.namespace("time")
    if linux.time_offsets and (time_ns is None or time_ns.path):
        raise ConfigError("linux.timeOffsets", "offsets need a new time namespace (add "
                          '{"type": "time"} without a path to linux.namespaces)')


# Sysctls that belong to a namespace (runc's list): anything else is the host's own.
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
UTS_SYSCTLS = {"kernel.hostname": "hostname", "kernel.domainname": "domainname"}
NS_TITLES = {"ipc": "IPC", "network": "network", "uts": "UTS"}


def sysctl_namespace(name):
    """The namespace type that owns the dotted sysctl ``name``, or None (a host-wide one)."""
    if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return "ipc"
    if name.startswith("net."):
        return "network"
    if name in UTS_SYSCTLS:
        return "uts"
    return None


def _check_sysctl_namespaces(config):
    """As runc's validator: a sysctl is written through the init's /proc/sys, so only a key
    of a namespace the container does not share with the host may be set; every other key
    would change the host (fs.lease-break-time, kernel.core_pattern, kernel.modprobe...)."""
    linux = config.linux
    checked = {}
    for key in linux.sysctl:
        where = _at("linux.sysctl", key)
        name = sysctl_dotted(key)
        kind = sysctl_namespace(name)
        if kind is None:
            raise ConfigError(where, 'sysctl "%s" is not in a separate kernel namespace'
                              % shown(name))
        if kind not in checked:
            checked[kind] = _host_namespace_problem(linux, kind)
        if checked[kind]:
            raise ConfigError(where, checked[kind])
        field = UTS_SYSCTLS.get(name)
        if field and getattr(config, field):
            raise ConfigError(where, 'conflicts with the "%s" field (set one of them)' % field)


def _host_namespace_problem(linux, kind):
    """Why the container's ``kind`` namespace is the host's (None when it is its own): none
    is listed, or its path names the runtime's own namespace (runc's isHostNetNS)."""
    ns = linux.namespace(kind)
    title = NS_TITLES[kind]
    if ns is None:
        return ('not allowed in the host %s namespace (add {"type": "%s"} to '
                "linux.namespaces)" % (title, kind))
    if not ns.path:
        return None
    where = "linux.namespaces[%d].path" % linux.namespaces.index(ns)
    own = "/proc/self/ns/" + {"network": "net"}.get(kind, kind)
    try:
        mine, theirs = os.stat(own), os.stat(ns.path)
    except OSError:
        return None   # the init fails to open it, and checks the namespace it wrote in itself
    if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
        return ("not allowed in the host %s namespace (%s %s is the runtime's own)"
                % (title, where, ns.path))
    return None
