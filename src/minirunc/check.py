"""`minirunc check`: what would go wrong with a bundle, found before a run, each with its fix.

It reads config.json (the 2015 shapes converted as a run would), looks at the rootfs and
the bind sources on the host as the container would see them (symlinks resolved inside
the rootfs, bind mounts followed to their host source) and never changes anything.

Findings: the config does not load; args[0] missing, not executable, on a noexec host
filesystem; its ELF interpreter or DT_NEEDED libraries missing in the rootfs; a script
with CRLF line ends or a missing #! interpreter; cwd not a directory; bind sources
missing; a bind source or rootfs part that process.user cannot read or write because of
its owner or mode (with the uid, user-namespace and idmapped-mount fixes); mount option
typos (the nearest valid word, nearest.py); data options a bind mount ignores; no cgroup filesystem
on the host; a rootfs on the initramfs (the pivot_root fallback will be used); what the
kernel lacks for the config (below 4.14; idmapped mounts and recursive options before 5.12).

Each finding has a severity: "error" (the run fails), "warning" (it runs, but not as
written) or "note" (nothing to fix).  Exit 0 when there is no error or warning.
"""

import json
import os
import stat
import sys

from . import elfinfo
from . import mountopts
from .nearest import nearest

MAX_WALK = 5000          # entries looked at under one bind source
MAX_LINKS = 40           # symlinks followed in one path, as the kernel
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"
LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")
MULTIARCH = {62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 3: "i386-linux-gnu",
             40: "arm-linux-gnueabihf", 8: "mips-linux-gnu", 21: "powerpc64le-linux-gnu",
             22: "s390x-linux-gnu", 243: "riscv64-linux-gnu"}

# The data options (KEY=VALUE) of the filesystems minirunc knows; a key outside these is
# an EINVAL at mount time.  (A bind mount takes no data at all: the kernel ignores it.)
DATA_KEYS = {
    "tmpfs": ("size", "nr_blocks", "nr_inodes", "mode", "uid", "gid", "huge", "mpol"),
    "devpts": ("mode", "ptmxmode", "gid", "uid", "max"),
    "proc": ("hidepid", "subset", "gid"),
    "mqueue": (),
    "sysfs": (),
    "cgroup": ("name", "release_agent"),
    "cgroup2": (),
}
RAMFS_TYPES = ("rootfs", "ramfs")


class Finding:
    __slots__ = ("severity", "field", "problem", "fix")

    def __init__(self, severity, field, problem, fix=""):
        self.severity = severity
        self.field = field
        self.problem = problem
        self.fix = fix

    def as_dict(self):
        return {"severity": self.severity, "field": self.field, "problem": self.problem,
                "fix": self.fix}

    def text(self):
        line = "%s: %s: %s" % (self.severity, self.field, self.problem)
        return line + ("; fix: " + self.fix if self.fix else "")


# ---------------------------------------------------------------------------------------
# the container's view of paths

class View:
    """Container paths -> host paths: the rootfs, with bind mounts followed to their host
    source.  A path under another kind of mount (tmpfs, proc) is made at run time."""

    def __init__(self, rootfs, mounts):
        self.rootfs = rootfs
        self.mounts = mounts      # [(destination, host source or None)], in config order

    def locate(self, cpath):
        best = None
        for dest, source in self.mounts:
            if cpath == dest or cpath.startswith(dest.rstrip("/") + "/"):
                if best is None or len(dest) >= len(best[0]):
                    best = (dest, source)
        if best is None:
            return self.rootfs + cpath if cpath != "/" else self.rootfs
        if best[1] is None:
            return None
        rest = cpath[len(best[0].rstrip("/")):]
        return best[1] + rest

    def resolve(self, path, base="/"):
        """(container path, host path or None, problem or None, host dirs passed through).
        Symlinks are resolved inside the container's root, as the kernel will."""
        parts = [p for p in (path if path.startswith("/") else base + "/" + path).split("/")]
        parts.reverse()
        cur, passed, links = "/", [], 0
        while parts:
            part = parts.pop()
            if part in ("", "."):
                continue
            if part == "..":
                cur = os.path.dirname(cur)
                continue
            nxt = os.path.join(cur, part)
            host = self.locate(nxt)
            if host is None:
                return nxt, None, None, passed
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                return nxt, host, "missing", passed
            except OSError as e:
                return nxt, host, (e.strerror or str(e)).lower(), passed
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    return nxt, host, "too many levels of symbolic links", passed
                target = os.readlink(host)
                if target.startswith("/"):
                    cur = "/"
                parts.extend(reversed(target.split("/")))
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                return nxt, host, "not a directory (a path goes through it)", passed
            if parts:
                passed.append(host)
            cur = nxt
        return cur, self.locate(cur), None, passed


# ---------------------------------------------------------------------------------------
# who the process is, for permissions

class Access:
    """process.user as the host's permission checks will see it."""

    def __init__(self, raw_user, caps, uid_map, gid_map):
        self.uid = raw_user.get("uid", 0)
        self.gid = raw_user.get("gid", 0)
        self.gids = [self.gid] + list(raw_user.get("additionalGids") or [])
        self.caps = set(caps)
        self.uid_map, self.gid_map = uid_map, gid_map
        self.host_uid = _map(self.uid, uid_map)
        self.host_gids = [g for g in (_map(x, gid_map) for x in self.gids) if g is not None]

    def mapped(self, st):
        return not self.uid_map or _unmap(st.st_uid, self.uid_map) is not None

    def allowed(self, st, want):
        """Whether the process may have ``want`` ("r", "w", "x" letters) on ``st``."""
        is_dir = stat.S_ISDIR(st.st_mode)
        if CAP_DAC_OVERRIDE in self.caps and self.mapped(st):
            if "x" in want and not is_dir and not st.st_mode & 0o111:
                return False
            return True
        if CAP_DAC_READ_SEARCH in self.caps and self.mapped(st):
            want = want.replace("r", "")
            if is_dir:
                want = want.replace("x", "")
        if not want:
            return True
        if self.host_uid is not None and st.st_uid == self.host_uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in self.host_gids:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        need = (4 if "r" in want else 0) | (2 if "w" in want else 0) | (1 if "x" in want else 0)
        return bits & need == need

    def who(self):
        text = "uid %d" % self.uid
        if self.uid_map and self.host_uid != self.uid:
            text += " (host uid %s)" % self.host_uid
        if CAP_DAC_OVERRIDE not in self.caps:
            text += " without CAP_DAC_OVERRIDE"
        return text


def _map(cid, mappings):
    if not mappings:
        return cid
    for m in mappings:
        if m.get("containerID", 0) <= cid < m.get("containerID", 0) + m.get("size", 0):
            return m.get("hostID", 0) + cid - m.get("containerID", 0)
    return None


def _unmap(hid, mappings):
    for m in mappings:
        if m.get("hostID", 0) <= hid < m.get("hostID", 0) + m.get("size", 0):
            return m.get("containerID", 0) + hid - m.get("hostID", 0)
    return None


def _owner_fix(st, access):
    return ("run as the owner (process.user.uid %d, `minirunc spec --user %d`), map it with a "
            "user namespace (linux.uidMappings containerID %d hostID %d), or mount it with "
            "an idmapped bind mount (option \"idmap\" with uidMappings)"
            % (st.st_uid, st.st_uid, access.uid, st.st_uid))


# ---------------------------------------------------------------------------------------
# the checks

class Checker:
    def __init__(self, bundle):
        self.bundle = os.path.abspath(bundle)
        self.findings = []

    def add(self, severity, field, problem, fix=""):
        self.findings.append(Finding(severity, field, problem, fix))

    def covered(self, path):
        return any(path == f.field or path.startswith(f.field + ".")
                   or path.startswith(f.field + "[") or f.field.startswith(path + "[")
                   for f in self.findings)

    def run(self):
        data = self.load()
        if data is None:
            return self.findings
        root = data.get("root") or {}
        rootfs = os.path.normpath(os.path.join(self.bundle, root.get("path") or "rootfs"))
        if not os.path.isdir(rootfs):
            self.add("error", "root.path", "%s is not a directory" % rootfs,
                     "unpack the root filesystem there (`minirunc import IMAGE %s`) or point "
                     "root.path at it" % self.bundle)
            return self.findings
        mounts = self.check_mounts(data)
        view = View(os.path.realpath(rootfs), mounts)
        process = data.get("process") or {}
        linux = data.get("linux") or {}
        caps = ((process.get("capabilities") or {}).get("effective") or [])
        access = Access(process.get("user") or {}, caps, linux.get("uidMappings") or [],
                        linux.get("gidMappings") or [])
        self.check_args(view, process, access)
        self.check_cwd(view, process, access)
        self.check_bind_access(data, access)
        self.check_host(data, rootfs)
        self.check_loads(data)
        return self.findings

    def load(self):
        from . import config as cfg
        from .errors import ConfigError
        try:
            _, data = cfg.read_config_file(self.bundle)
        except ConfigError as e:
            self.add("error", "config.json", e.problem,
                     "write one with `minirunc spec` (flags for the common cases)")
            return None
        if "ociVersion" not in data and "version" in data:
            from . import legacy
            data, problems = legacy.convert(data, self.bundle)
            for line in problems:
                field, _, problem = line.partition(": ")
                self.add("error", field, problem, "edit config.json, then "
                         "`minirunc spec --upgrade`")
            self.add("note", "version", "config.json is in runc's 2015 format; it is converted "
                     "at each run", "`minirunc spec --upgrade` rewrites it (keeping "
                     "config.json.bak)")
        return data

    def check_loads(self, data):
        """Anything else the loader refuses (one message: the first it meets)."""
        from . import config as cfg
        from .errors import ConfigError
        try:
            config = cfg.parse_config(data, self.bundle, os.path.join(self.bundle, "config.json"))
        except ConfigError as e:
            if not self.covered(e.path or "config.json"):
                self.add("error", e.path or "config.json", e.problem)
        except Exception as e:       # a loader bug must not hide the other findings
            self.add("error", "config.json", "not loadable: %s" % e)
        else:
            self.check_kernel(config)

    def check_kernel(self, config):
        """What this kernel lacks that the config asks for (kernelfloor.py), as a run would
        refuse it: a kernel below the floor, mounts needing 5.12, a time namespace."""
        from . import kernelfloor
        from .errors import ConfigError, MiniruncError
        for probe in (kernelfloor.check_mounts, kernelfloor.check_namespaces):
            try:
                probe(config)
            except ConfigError as e:
                self.add("error", e.path, e.problem)   # the problem says the fix
            except MiniruncError as e:          # the native module could not be loaded
                self.add("warning", "config.json", "could not probe the kernel: %s" % e)
        try:
            kernelfloor.check_release()
        except MiniruncError as e:
            self.add("error", "kernel", str(e), "run it on Linux %d.%d or newer"
                     % kernelfloor.FLOOR)

    # -- mounts --------------------------------------------------------------------------

    def check_mounts(self, data):
        """Option typos, ignored data, missing bind sources; returns the View's mounts."""
        out = []
        for i, m in enumerate(data.get("mounts") or []):
            if not isinstance(m, dict):
                continue
            where = "mounts[%d]" % i
            fstype = m.get("type") or ""
            options = [o for o in (m.get("options") or []) if isinstance(o, str)]
            dest = "/" + os.path.normpath(m.get("destination") or "/").lstrip("/")
            bind = mountopts.is_bind(fstype, options)
            self.check_options(where, fstype, bind, options)
            if not bind:
                out.append((dest, None))
                continue
            source = os.path.normpath(os.path.join(self.bundle, m.get("source") or ""))
            if not os.path.exists(source):
                self.add("error", where + ".source", "bind source %s does not exist on the host"
                         % source, "create it (mkdir -p %s) or correct the path" % source)
                out.append((dest, None))
                continue
            out.append((dest, os.path.realpath(source)))
        return out

    def check_options(self, where, fstype, bind, options):
        known = set(mountopts.FLAGS) | set(mountopts.PROPAGATION) | set(mountopts.RECURSIVE) \
            | set(mountopts.IDMAP) | set(getattr(mountopts, "COPYUP", ()))
        words = mountopts.KNOWN_DATA_WORDS.get("bind" if bind else fstype)
        keys = () if bind else DATA_KEYS.get(fstype)
        for j, word in enumerate(options):
            field = "%s.options[%d]" % (where, j)
            key = word.split("=", 1)[0]
            if word in known or word in mountopts.UNSUPPORTED:
                continue
            if "=" in word:
                if bind:
                    self.add("warning", field, '"%s" is filesystem data, which a bind mount '
                             "ignores: it will not do anything" % word,
                             "drop it; for ownership use process.user, a user namespace or "
                             "an idmapped mount")
                elif keys is not None and key not in keys:
                    near = nearest(key, keys)
                    self.add("error", field, 'unknown %s option "%s" (the mount fails with '
                             "EINVAL)" % (fstype, key),
                             'did you mean "%s"?' % near if near else
                             "%s takes: %s" % (fstype, ", ".join(keys) or "no data options"))
                continue
            if words is None or word in words:
                continue
            near = nearest(word, known | set(words))
            self.add("error", field, 'unknown mount option "%s"' % word,
                     'did you mean "%s"?' % near if near else "see mount(8)")

    def check_bind_access(self, data, access):
        for i, m in enumerate(data.get("mounts") or []):
            if not isinstance(m, dict):
                continue
            options = [o for o in (m.get("options") or []) if isinstance(o, str)]
            if not mountopts.is_bind(m.get("type") or "", options):
                continue
            if "idmap" in options or "ridmap" in options or m.get("uidMappings"):
                continue
            source = os.path.normpath(os.path.join(self.bundle, m.get("source") or ""))
            if not os.path.exists(source):
                continue
            write = "ro" not in options
            self.check_tree(source, access, write, "mounts[%d].source" % i,
                            recursive="rbind" in options or m.get("type") == "bind")

    def check_tree(self, top, access, write, field, recursive):
        """Report the first entry (and how many) process.user cannot use under ``top``."""
        bad, first, seen = 0, None, 0
        for path in _walk(top, recursive):
            seen += 1
            if seen > MAX_WALK:
                break
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            # directories must take new files; files need only be readable (whether the
            # process rewrites them cannot be known)
            want = ("rwx" if write else "rx") if stat.S_ISDIR(st.st_mode) else "r"
            if not access.allowed(st, want):
                bad += 1
                first = first or (path, st, want)
        if first:
            path, st, want = first
            # the top itself unusable: the run will fail; deeper: some parts will
            self.add("error" if path == top else "warning", field,
                     "%s is owned by uid %d gid %d, mode %04o: process.user (%s) cannot %s it"
                     "%s" % (path, st.st_uid, st.st_gid, st.st_mode & 0o7777, access.who(),
                             "write" if "w" in want else "read",
                             " (%d entries like it)" % bad if bad > 1 else ""),
                     _owner_fix(st, access))

    # -- the process ---------------------------------------------------------------------

    def check_args(self, view, process, access):
        args = process.get("args") or []
        if not args or not isinstance(args[0], str) or not args[0]:
            self.add("error", "process.args", "no command", "`minirunc spec -- CMD ARG...`")
            return
        name = args[0]
        env = dict(e.split("=", 1) for e in process.get("env") or [] if "=" in e)
        if "/" in name:
            candidates = [name]
        else:
            path = env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            candidates = [os.path.join(d or "/", name) for d in path.split(":")]
        for cand in candidates:
            cpath, host, problem, passed = view.resolve(cand, process.get("cwd") or "/")
            if host is None and problem is None:
                return                  # under a tmpfs or similar: made at run time
            if problem is None and os.path.isfile(host):
                self.check_program("process.args[0]", name, cpath, host, passed, view, access,
                                   env)
                return
        where = name if "/" in name else "%s (PATH %s)" % (
            name, env.get("PATH", "the default"))
        self.add("error", "process.args[0]", "%s is not in the rootfs" % where,
                 "install it in %s, or give the program's path in the container"
                 % view.rootfs)

    def check_program(self, field, name, cpath, host, passed, view, access, env, depth=0):
        st = os.stat(host)
        for d in passed:
            dst = os.stat(d)
            if not access.allowed(dst, "x"):
                self.add("error", field, "%s: the directory %s (uid %d, mode %04o) cannot be "
                         "searched by process.user (%s)" % (name, d, dst.st_uid,
                                                            dst.st_mode & 0o7777, access.who()),
                         _owner_fix(dst, access))
                return
        if not st.st_mode & 0o111:
            self.add("error", field, "%s (%s) is not executable (mode %04o)"
                     % (name, cpath, st.st_mode & 0o7777), "chmod +x %s" % host)
            return
        if not access.allowed(st, "x"):
            self.add("error", field, "%s (%s) is owned by uid %d, mode %04o: process.user (%s) "
                     "cannot run it" % (name, cpath, st.st_uid, st.st_mode & 0o7777,
                                        access.who()), _owner_fix(st, access))
            return
        try:
            if os.statvfs(host).f_flag & os.ST_NOEXEC:
                self.add("error", field, "%s is on a host filesystem mounted noexec" % host,
                         "move the bundle to an exec filesystem, or remount it exec")
                return
        except OSError:
            pass
        elf = elfinfo.read(host)
        if elf is not None:
            self.check_elf(field, name, host, elf, view, env)
            return
        self.check_script(field, name, cpath, host, view, access, env, depth)

    def check_script(self, field, name, cpath, host, view, access, env, depth):
        try:
            with open(host, "rb") as f:
                head = f.read(4096)
        except OSError as e:
            self.add("error", field, "%s: cannot read %s: %s" % (name, host, e.strerror))
            return
        if not head.startswith(b"#!"):
            self.add("error", field, "%s (%s) is neither an ELF program nor a #! script (exec "
                     "fails with \"exec format error\")" % (name, cpath),
                     "add a first line such as #!/bin/sh, or run it as [\"sh\", \"%s\"]"
                     % cpath)
            return
        line = head[2:].split(b"\n", 1)[0]
        if line.endswith(b"\r") or b"\r\n" in head:
            self.add("error", field, "%s (%s) has CRLF (Windows) line ends: the kernel looks "
                     "for the interpreter \"%s\"" % (name, cpath,
                                                      line.strip(b" \t").decode(
                                                          "utf-8", "replace")
                                                      .replace("\r", "\\r")),
                     "convert it: sed -i 's/\\r$//' %s (or dos2unix)" % host)
            return
        words = line.decode("utf-8", "replace").split()
        if not words:
            self.add("error", field, "%s (%s): the #! line names no interpreter" % (name, cpath),
                     "write #!/bin/sh (or the interpreter it needs)")
            return
        interp = words[0]
        icpath, ihost, problem, passed = view.resolve(interp)
        if ihost is None and problem is None:
            return
        if problem or not os.path.isfile(ihost):
            self.add("error", field, "%s (%s): its interpreter %s is not in the rootfs"
                     % (name, cpath, interp), "install %s in the rootfs, or change the #! line"
                     % interp)
            return
        if depth < 2:
            self.check_program(field, "%s's interpreter %s" % (name, interp), icpath, ihost,
                               passed, view, access, env, depth + 1)

    def check_elf(self, field, name, host, elf, view, env):
        if elf.interp:
            _, ihost, problem, _ = view.resolve(elf.interp)
            if ihost is not None and (problem or not os.path.exists(ihost)):
                self.add("error", field, "%s needs the ELF interpreter %s, which is not in the "
                         "rootfs (exec fails with \"no such file or directory\")"
                         % (name, elf.interp),
                         "copy %s (and the libraries) into the rootfs, or use a static build"
                         % elf.interp)
                return
        missing = self.missing_libraries(host, elf, view, env)
        if missing:
            self.add("error", field, "%s needs librar%s missing in the rootfs: %s"
                     % (name, "y" if len(missing) == 1 else "ies", ", ".join(missing)),
                     "copy them into the rootfs's /lib or /usr/lib (`ldd %s` lists them on "
                     "the host)" % host)

    def missing_libraries(self, host, elf, view, env):
        dirs = self.library_dirs(elf, view, env)
        missing, done, todo = [], set(), [(host, elf)]
        while todo:
            path, program = todo.pop()
            origin = os.path.dirname(path)
            for lib in program.needed:
                if lib in done:
                    continue
                done.add(lib)
                found = self.find_library(lib, program, dirs, origin, view)
                if found is None:
                    missing.append(lib)
                elif found is not True:
                    todo.append(found)
        return missing

    def find_library(self, lib, program, dirs, origin, view):
        if "/" in lib:
            candidates = [lib]
        else:
            extra = [d.replace("$ORIGIN", "") for d in program.rpath + program.runpath]
            candidates = [os.path.join(d, lib) for d in extra + dirs]
        for cand in candidates:
            if "$ORIGIN" in cand or not cand.startswith("/"):
                continue
            _, host, problem, _ = view.resolve(cand)
            if host is None and problem is None:
                return True                       # made at run time: cannot tell
            if problem or not os.path.isfile(host):
                continue
            other = elfinfo.read(host)
            if other is not None and program.same_kind(other):
                return (host, other)
        # a library in the same directory through $ORIGIN
        if any("$ORIGIN" in d for d in program.rpath + program.runpath):
            near = os.path.join(origin, lib)
            if os.path.isfile(near):
                return True
        return None

    def library_dirs(self, elf, view, env):
        dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d]
        dirs += self.ld_so_conf(view, "/etc/ld.so.conf", 0)
        for name in _listdir(view.locate("/etc")):
            if name.startswith("ld-musl-") and name.endswith(".path"):
                dirs += _read_lines(os.path.join(view.locate("/etc"), name), ":")
        arch = MULTIARCH.get(elf.machine)
        if arch:
            dirs += ["/lib/" + arch, "/usr/lib/" + arch]
        return dirs + list(LIB_DIRS)

    def ld_so_conf(self, view, cpath, depth):
        _, host, problem, _ = view.resolve(cpath)
        if host is None or problem or depth > 3:
            return []
        dirs = []
        for line in _read_lines(host, None):
            if line.startswith("include "):
                import glob
                pattern = line.split(None, 1)[1]
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(cpath), pattern)
                for match in sorted(glob.glob(view.rootfs + pattern)):
                    dirs += self.ld_so_conf(view, match[len(view.rootfs):], depth + 1)
            elif line.startswith("/"):
                dirs.append(line)
        return dirs

    def check_cwd(self, view, process, access):
        cwd = process.get("cwd") or "/"
        cpath, host, problem, passed = view.resolve(cwd)
        if host is None and problem is None:
            return
        if problem == "missing":
            self.add("note", "process.cwd", "%s does not exist in the rootfs; it is created "
                     "at the start" % cwd, "create it in the rootfs if it should be there")
            return
        if problem or not os.path.isdir(host):
            self.add("error", "process.cwd", "%s is not a directory in the container (%s)"
                     % (cwd, problem or "a file"),
                     "point process.cwd at a directory (`minirunc spec --cwd DIR`)")
            return
        for d in passed + [host]:
            st = os.stat(d)
            if not access.allowed(st, "x"):
                self.add("error", "process.cwd", "%s: %s (uid %d, mode %04o) cannot be entered "
                         "by process.user (%s)" % (cwd, d, st.st_uid, st.st_mode & 0o7777,
                                                   access.who()), _owner_fix(st, access))
                return

    # -- the host ------------------------------------------------------------------------

    def check_host(self, data, rootfs):
        mounts = _host_mounts()
        if not any(fstype in ("cgroup", "cgroup2") for _, fstype in mounts):
            resources = (data.get("linux") or {}).get("resources")
            self.add("warning" if resources else "note", "linux.resources",
                     "no cgroup filesystem is mounted on the host: %s" %
                     ("the limits cannot be applied" if resources else
                      "the container gets no cgroup of its own"),
                     "mount -t cgroup2 none /sys/fs/cgroup")
        fstype = _fs_of(os.path.realpath(rootfs), mounts)
        if fstype in RAMFS_TYPES:
            self.add("note", "root.path", "%s is on the initramfs (%s): pivot_root(2) cannot "
                     "leave it, so minirunc uses its fallback (move mount + chroot)"
                     % (rootfs, fstype), "nothing needed; switch_root to a real root to get "
                     "pivot_root")


def _walk(top, recursive):
    yield top
    if not os.path.isdir(top) or os.path.islink(top):
        return
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            yield os.path.join(dirpath, name)
        if not recursive:
            break


def _listdir(path):
    try:
        return os.listdir(path) if path else []
    except OSError:
        return []


def _read_lines(path, sep):
    try:
        with open(path, errors="replace") as f:
            text = f.read(65536)
    except OSError:
        return []
    if sep:
        text = text.replace(sep, "\n")
    return [ln.split("#", 1)[0].strip() for ln in text.splitlines()
            if ln.split("#", 1)[0].strip()]


def _host_mounts():
    """[(mount point, fstype)] of /proc/self/mountinfo, in order."""
    out = []
    for line in _read_lines("/proc/self/mountinfo", None):
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        out.append((fields[4].replace("\\040", " "), fields[sep + 1]))
    return out


def _fs_of(path, mounts):
    best, fstype = "", None
    for point, kind in mounts:
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fstype = point, kind
    return fstype


# ---------------------------------------------------------------------------------------

def main(bundle, fmt):
    """`minirunc check`: print the findings; 0 when nothing needs fixing, else 1."""
    if fmt not in ("text", "json"):
        from .errors import UsageError
        raise UsageError("check: --format must be text or json, not %r" % fmt)
    findings = Checker(bundle).run()
    bad = [f for f in findings if f.severity in ("error", "warning")]
    if fmt == "json":
        sys.stdout.write(json.dumps({"bundle": os.path.abspath(bundle), "ok": not bad,
                                     "findings": [f.as_dict() for f in findings]}, indent=2)
                         + "\n")
    else:
        for f in findings:
            sys.stdout.write(f.text() + "\n")
        if bad:
            sys.stdout.write("%d problem(s) found in %s\n" % (len(bad), os.path.abspath(bundle)))
        else:
            sys.stdout.write("ok: nothing to fix in %s\n" % os.path.abspath(bundle))
    return 1 if bad else 0
