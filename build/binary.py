"""Build dist/minirunc (glibc >= 2.17) or dist/minirunc-static (no C library needed at all).

Usage (from the repository root, after `make native`):
``.venv/bin/python build/binary.py [--target gnu|musl]`` (`make binary` builds gnu, `make
binary-static` musl).  One pipeline for both; a target only names zig's target triple, the
output file and what the result is checked for (TARGETS below).

Route: a *standalone* Nuitka executable with a static libpython and every extension module
the runtime imports linked in as a built-in module (no onefile payload, nothing unpacked,
one process).  Every piece of C is compiled by zig (`ziglang` from PyPI, pinned in
build/requirements.txt) for the target: `x86_64-linux-gnu.2.17` links against glibc 2.17's
symbol set, `x86_64-linux-musl` against musl, statically.  Steps:

1. Sources: Debian's python3.11 and zlib orig tarballs (`apt-get source --download-only`,
   checked by sha256) and the sdist of the installed cffi (for _cffi_backend) from PyPI.
   zlib is compiled with zig for the target into a static archive (zlib_parts()); both
   binaries' math functions are musl's, from Debian's musl-dev (musl_math()).
2. CPython 3.11.2 built with zig for the target (configure + make, -O3; build_cpython()):
   the stdlib C modules the runtime needs (BUILTINS) and those Nuitka needs to run
   (NUITKA_ONLY) are built in (Modules/Setup.local), everything else is disabled.  This
   interpreter runs Nuitka (its headers and libpython3.11.a are what the binary is built
   from); the installed libpython3.11.a gets a config.o whose inittab lists only the core
   modules, so that NUITKA_ONLY modules stay out of the binary.
3. _cffi_backend (-DFFI_BUILDING=1, with Debian's static libffi) and minirunc._native (the
   cffi description native/build_native.py uses) compiled with zig against that interpreter's
   headers, into build/binary/<target>/lib/libmrbuiltins.a.
4. Nuitka --standalone --static-libpython=yes with zig as its C compiler, with the user plugin
   build/nuitka_builtins.py registering BUILTINS and the archive's modules in the inittab.
   A staged copy of src/ gets a generated _commit.py (src/ itself is not touched).
5. Check that the standalone folder holds the executable alone, strip it, seal it (seal(): the
   entry guard that refuses a damaged copy, build/exe_guard.c), copy it to dist/, and check
   it (ldd/readelf: the glibc floor, or no interpreter and no DT_NEEDED) and a `--version` run.
   A copy that keeps its symbols goes to build/binary/<target>/minirunc-symbols
   (build/hot_functions.py traces it; the functions it lists lead .text, hot_text_script()).

Rebuilds are fast: CPython is rebuilt only when its recipe changes (a stamp), C objects only
when missing or older than their sources; zig's cache lives in build/binary/zig-cache.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tarfile
import time

from plumbum import FG, ProcessExecutionError, local

ROOT = local.path(__file__).dirname.dirname
WORK = ROOT / "build" / "binary"
SRC_CACHE = WORK / "sources"
ZIG_CACHE = WORK / "zig-cache"
PYLIB = WORK / "pylib"          # only the nuitka package, for the interpreters built here
DIST = ROOT / "dist"
PY = local[sys.executable]      # this script's interpreter (the venv): pip, cffi, plumbum

# What differs between the two binaries: zig's target triple, the output file, and what the
# result is checked for.  Everything else is one pipeline.
TARGETS = {
    # glibc >= 2.17 (CentOS 7, Debian 8, Ubuntu 14.04 and everything later)
    "gnu": {"triple": "x86_64-linux-gnu.2.17", "output": "minirunc", "static": False,
            "glibc_floor": (2, 17), "configure": [],   # + glibc_compat()
            # position-dependent, like the static twin: no relative relocations for ld.so to
            # apply before main() (docs/binary.md, "Position-dependent")
            "pie": False},
    # no C library needed on the host: musl linked in, no ELF interpreter, no DT_NEEDED
    "musl": {"triple": "x86_64-linux-musl", "output": "minirunc-static", "static": True,
             "glibc_floor": None, "configure": ["LDFLAGS=-static"],
             # static and position-dependent (as runc's static release binaries)
             "pie": False},
}

# Debian 12's python3.11 source package: the interpreter is built from it.
CPYTHON_ORIG = "python3.11_3.11.2.orig.tar.gz"
CPYTHON_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
CPYTHON_DIR = "Python-3.11.2"
# Debian 12's zlib source package (CPython 3.11's tarball ships no zlib): the library behind
# the zlib module (gzip'd layers for `import`) and binascii's crc32, compiled by zig for each
# target like everything else (zlib_parts()).  1:1.2.13.dfsg-1's patches touch only Debian's
# own build (minizip's CFLAGS, the shared library), so its orig tarball is what Debian's libz
# is built from.  bookworm-security's +deb12u1 has the same orig tarball, but a mirror may
# lack that revision's files (this one answers 404): bookworm's is then asked for by version.
ZLIB_ORIG = "zlib_1.2.13.dfsg.orig.tar.bz2"
ZLIB_SHA256 = "71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1"
ZLIB_DIR = "zlib-1.2.13.dfsg"
ZLIB_VERSIONS = ("", "=1:1.2.13.dfsg-1")

# (module name, sources under Modules/) -- the stdlib C modules built into the binary: what
# the runtime (and the stdlib code it imports) imports, plus a few cheap ones the stdlib
# modules we ship may reach.  Built into the interpreter (Modules/Setup.local) and registered
# in the binary's inittab by build/nuitka_builtins.py.
BUILTINS = [
    ("_struct", ["_struct.c"]),
    ("fcntl", ["fcntlmodule.c"]),
    ("select", ["selectmodule.c"]),
    ("math", ["mathmodule.c"]),
    ("_socket", ["socketmodule.c"]),
    ("termios", ["termios.c"]),
    ("_json", ["_json.c"]),
    ("_opcode", ["_opcode.c"]),
    ("_typing", ["_typingmodule.c"]),
    ("array", ["arraymodule.c"]),
    ("_posixsubprocess", ["_posixsubprocess.c"]),
    ("binascii", ["binascii.c"]),   # crc32 from zlib (setup_local())
    ("_heapq", ["_heapqmodule.c"]),
    ("_bisect", ["_bisectmodule.c"]),
    ("_random", ["_randommodule.c"]),
    ("grp", ["grpmodule.c"]),
    ("resource", ["resource.c"]),
    ("_contextvars", ["_contextvarsmodule.c"]),
    ("_sha256", ["sha256module.c"]),    # `import` checks layer digests with it
    ("zlib", ["zlibmodule.c"]),         # `import` undoes gzip'd layers and archives
]
# Built into the interpreter only, for Nuitka itself (hashes for its caches, pickle, ...):
# not in the binary's inittab, hence not linked into it.
NUITKA_ONLY = [
    ("_pickle", ["_pickle.c"]),
    ("_datetime", ["_datetimemodule.c"]),
    ("_queue", ["_queuemodule.c"]),
    ("_csv", ["_csv.c"]),
    ("unicodedata", ["unicodedata.c"]),
    ("_md5", ["md5module.c"]),
    ("_sha1", ["sha1module.c"]),
    ("_sha512", ["sha512module.c"]),
    ("_sha3", ["_sha3/sha3module.c"]),
    ("_blake2", ["_blake2/blake2module.c", "_blake2/blake2b_impl.c", "_blake2/blake2s_impl.c"]),
    # Nuitka imports every `encodings` module to find the interpreter's early imports
    ("_multibytecodec", ["cjkcodecs/multibytecodec.c"]),
] + [("_codecs_" + c, ["cjkcodecs/_codecs_%s.c" % c]) for c in ("cn", "hk", "iso2022", "jp", "kr", "tw")] + [
    # nuitka.utils imports ctypes at module level; linked with Debian's static libffi (see
    # libffi_parts())
    ("_ctypes", ["_ctypes/_ctypes.c", "_ctypes/callbacks.c", "_ctypes/callproc.c",
                 "_ctypes/stgdict.c", "_ctypes/cfield.c", "-DHAVE_FFI_PREP_CIF_VAR",
                 "-DHAVE_FFI_PREP_CLOSURE_LOC", "-DHAVE_FFI_CLOSURE_ALLOC"]),
]
# Modules setup.py would otherwise try to build as shared libraries against the host's
# headers (zig's -target does not see them; nothing would load them anyway).
SETUP_PY_MODULES = ["readline", "_curses", "_curses_panel", "_dbm", "_tkinter"]
# Options the interpreter is configured with.  -O3 without PGO: zig's clang has no profile
# runtime (see docs/binary.md for the measurements).  openpty/forkpty/login_tty would add
# libutil.so.1 on glibc < 2.34: os.openpty() then uses /dev/ptmx (posix_openpt), as CPython
# does wherever openpty() is missing; os.forkpty() and os.login_tty() are absent (minirunc
# uses none of them).
CPYTHON_CONFIGURE = [
    "--disable-shared", "--without-ensurepip", "--disable-test-modules", "--with-pkg-config=no",
    "OPT=-DNDEBUG -fwrapv -O3 -Wall -ffunction-sections",   # + CFLAGS (build_cpython())
    "ac_cv_func_openpty=no", "ac_cv_lib_util_openpty=no", "ac_cv_lib_bsd_openpty=no",
    "ac_cv_func_forkpty=no", "ac_cv_lib_util_forkpty=no", "ac_cv_lib_bsd_forkpty=no",
    "ac_cv_search_login_tty=no",
]
# Standard-library modules that Nuitka would pull in through lazy imports inside stdlib code
# (dis -> argparse, warnings -> tracemalloc -> pickle, shutil ->
# tarfile/zipfile...) but that minirunc never imports: kept out of the binary (~0.8 MB).
# check_trimmed_imports() fails the build if minirunc's own code imports one of them.
TRIMMED_STDLIB = [
    "argparse", "tarfile", "zipfile", "pickle", "_compat_pickle", "tracemalloc", "ipaddress",
    "pathlib", "shutil", "gzip", "bz2", "lzma", "_compression", "py_compile", "urllib",
    "gettext", "quopri", "email", "http",
    "xml", "unittest", "pydoc", "doctest", "asyncio", "concurrent", "multiprocessing",
    "logging", "sqlite3", "ssl", "hashlib", "random", "tempfile", "datetime", "decimal",
    # Nuitka's start-up imports these only to patch inspect, which this build skips
    # (see nuitka_builtins.py): ~250 kB.
    "inspect", "ast", "dis",
    # Only functools.singledispatch's register() imports it, and nothing here uses that:
    # ~120 kB of bytecode.
    "typing",
]
# Modules CPython 3.11 deep-freezes into libpython (Tools/scripts/freeze_modules.py), left out
# of Nuitka's bytecode table so that the interpreter's own frozen copies answer the import
# (nuitka_builtins.FROZEN_STDLIB_ON): no unmarshalling or interning at every start.
FROZEN_STDLIB = ["os", "posixpath", "genericpath", "stat", "_collections_abc", "abc", "codecs",
                 "io", "importlib.util", "importlib.machinery"]

# The CJK codecs' Python halves: their C halves (_codecs_jp, _multibytecodec...) are not
# built in, so these could only fail.
CJK_ENCODINGS = ["encodings." + n for n in (
    "big5", "big5hkscs", "cp932", "cp949", "cp950", "euc_jis_2004", "euc_jisx0213", "euc_jp",
    "euc_kr", "gb18030", "gb2312", "gbk", "hz", "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2",
    "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext", "iso2022_kr", "johab", "shift_jis",
    "shift_jis_2004", "shift_jisx0213")]

# Python code shipped as bytecode (run by the interpreter) rather than compiled to C by
# Nuitka: Nuitka's C for minirunc is ~1.3 MB of machine code, its bytecode ~0.2 MB, and
# starting up costs the same either way (see docs/benchmarks.md).
BYTECODE = ["minirunc"]
# The modules shipped as bytecode that a `run` imports, in the order it imports them: laid
# out first and together in the binary (nuitka_builtins.lay_out_bytecode), their pages are
# the few 64 KB fault-around windows a start maps.  On cgroup v2 and hybrid hosts the v2
# and hybrid modules stand in for v1.  tests/test_binary.py checks the list against what a
# `run` imports; a module missing here only costs memory.
RUN_PATH_MODULES = [
    "encodings", "encodings.aliases", "encodings.utf_8", "warnings", "importlib",
    "minirunc", "minirunc.errors", "minirunc.cli", "minirunc.log", "minirunc.commands",
    "minirunc.procfs", "minirunc.cgroupwarm", "minirunc.kernelfloor", "minirunc.faults",
    "minirunc.jsontext", "minirunc.state", "minirunc.container", "minirunc.foreground",
    "minirunc.caps", "minirunc.mountopts", "minirunc.config", "struct", "minirunc.planformat",
    "minirunc.plan", "minirunc.mountcheck", "minirunc.cgroups", "minirunc.cgroups.paths",
    "minirunc.cgroups.validate", "minirunc.cgroups.translate", "minirunc.cgroups.base",
    "minirunc.cgroups.v1", "minirunc.cgroups.v2", "minirunc.cgroups.hybrid",
    "minirunc.cgroups.owner", "minirunc.native",
]
# gcc: the entry guard (freestanding, no libc); make: CPython's build.
# musl-dev: both binaries' math functions (musl_math()).
APT_PACKAGES = ["gcc", "make", "patchelf", "libffi-dev", "musl-dev"]
# What the gnu binary may load: glibc without its libm (musl_math()).
GLIBC_LIBS = ("linux-vdso.so", "libc.so.6", "libpthread.so.0", "libdl.so.2",
              "ld-linux-x86-64.so.2")


def say(message):
    print("binary: %s" % message, flush=True)


def die(message):
    sys.stderr.write("binary: error: %s\n" % message)
    sys.exit(1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_apt():
    dpkg_query = local["dpkg-query"]
    missing = [p for p in APT_PACKAGES
               if "install ok installed" not in dpkg_query.run(["-W", "-f=${Status}", p], retcode=None)[1]]
    if missing:
        say("installing Debian packages: %s" % " ".join(missing))
        local["apt-get"]["update", "-qq"] & FG
        with local.env(DEBIAN_FRONTEND="noninteractive"):
            local["apt-get"]["install", "-y", "-qq", *missing] & FG


DEB_SRC = """\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def fetch_debian_source(package, orig, digest, directory, probe, versions=("",)):
    """Debian's orig tarball of a source package (`apt-get source --download-only`, checked
    by sha256), extracted under build/binary/sources; probe: a file the extracted tree has.
    versions: tried in order ("" = the newest Debian knows, "=V" = that one)."""
    target = SRC_CACHE / directory
    if (target / probe).exists():
        return target
    SRC_CACHE.mkdir()
    tarball = SRC_CACHE / orig
    if not tarball.exists() or sha256(tarball) != digest:
        # Without deb-src URIs apt-cache exits 100 ("You must put some 'deb-src' URIs").
        rc, listed, _ = local["apt-cache"].run(["showsrc", package], retcode=None)
        if rc != 0 or not listed.strip():
            say("adding deb-src entries (/etc/apt/sources.list.d/minirunc-deb-src.sources)")
            with open("/etc/apt/sources.list.d/minirunc-deb-src.sources", "w") as f:
                f.write(DEB_SRC)
            local["apt-get"]["update", "-qq"] & FG
        for version in versions:
            with local.cwd(SRC_CACHE):
                # The Debian part (or, for a version only in the security archive, all of
                # it) may 404 on a just-updated mirror; the orig tarball is all we need,
                # and it is checked by hash below.
                local["apt-get"].run(["source", "--download-only", "-qq", package + version],
                                     retcode=None)
            if tarball.exists() and sha256(tarball) == digest:
                break
        else:
            die("could not fetch %s with the expected sha256 (apt-get source %s)" % (orig, package))
    say("extracting %s" % orig)
    if target.exists():
        target.delete()
    with tarfile.open(tarball) as tar:
        tar.extractall(SRC_CACHE, filter="data")
    return target


def fetch_cpython():
    return fetch_debian_source("python3.11", CPYTHON_ORIG, CPYTHON_SHA256, CPYTHON_DIR,
                               "Modules/_struct.c")


# CPython 3.11.2's BuiltinImporter finds no built-in submodule (`minirunc._native`): it
# returns None whenever a package path is given.  3.11.5 dropped that test (gh-102567?); the
# same change, applied to the extracted sources (the frozen importlib is rebuilt from them).
BUILTIN_SUBMODULE_PATCH = ("""    def find_spec(cls, fullname, path=None, target=None):
        if path is not None:
            return None
        if _imp.is_builtin(fullname):""", """    def find_spec(cls, fullname, path=None, target=None):
        if _imp.is_builtin(fullname):""")


# CPython's deep-frozen stdlib (Tools/scripts/deepfreeze.py, which makes
# Python/deepfreeze/deepfreeze.c) interns the strings of all 27 frozen modules in
# _Py_Deepfreeze_Init, at every start (0.9 ms here), though a command imports about half of
# them (never site, runpy, ntpath, _sitebuiltins, __hello__...).  Patched: each module's
# strings are interned when it is first fetched (its _Py_get_<name>_toplevel), as
# nuitka_builtins.deepfreeze_source does for minirunc's own modules.
DEEPFREEZE_LAZY_PATCHES = [("""        module = module.replace(".", "_")
        self.generate(f"{module}_toplevel", code)
        with self.block(f"static void {module}_do_patchups(void)"):
            for p in self.patchups:
                self.write(p)
        self.patchups.clear()""", """        module = module.replace(".", "_")
        interns = len(self.interns)
        self.generate(f"{module}_toplevel", code)
        with self.block(f"static void {module}_do_patchups(void)"):
            for p in self.patchups:
                self.write(p)
            for p in self.interns[interns:]:   # minirunc: interned when first imported
                self.write(f'if ({p} < 0) Py_FatalError("cannot intern a frozen string");')
        del self.interns[interns:]
        self.patchups.clear()"""), ("""{
    %%NAME%%_do_patchups();
    return""", """{
    static int done;
    if (!done) {
        %%NAME%%_do_patchups();
        done = 1;
    }
    return""")]


def patch_cpython(src):
    for path, patches, what in (
            (src / "Lib" / "importlib" / "_bootstrap.py", [BUILTIN_SUBMODULE_PATCH],
             "BuiltinImporter.find_spec"),
            (src / "Tools" / "scripts" / "deepfreeze.py", DEEPFREEZE_LAZY_PATCHES,
             "Printer.generate_file and EPILOGUE")):
        text = path.read("utf-8")
        for old, new in patches:
            if old in text:
                text = text.replace(old, new)
            elif new not in text:
                die("%s: %s is not as expected" % (path, what))
        if text != path.read("utf-8"):
            path.write(text, "utf-8")


def fetch_cffi():
    """src/c of the sdist of the cffi installed in this interpreter."""
    import cffi
    version = cffi.__version__
    target = SRC_CACHE / ("cffi-%s" % version) / "src" / "c"
    if (target / "_cffi_backend.c").exists():
        return target, version
    SRC_CACHE.mkdir()
    sdist = SRC_CACHE / ("cffi-%s.tar.gz" % version)
    if not sdist.exists():
        say("downloading the cffi %s sdist" % version)
        PY["-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
           "--no-binary", ":all:", "cffi==%s" % version, "-d", SRC_CACHE] & FG
    with tarfile.open(sdist) as tar:
        tar.extractall(SRC_CACHE, filter="data")
    return target, version


class Toolchain:
    """zig for one target: wrapper scripts (`zig-cc` for configure, `zig` for Nuitka, whose
    zig mode calls `$CC cc ...`), with zig's cache inside the build tree."""

    def __init__(self, name):
        import ziglang
        self.name = name
        self.target = TARGETS[name]
        self.triple = self.target["triple"]
        self.zig = local.path(ziglang.__file__).dirname / "zig"
        if not self.zig.exists():
            die("%s is missing (pip install -r build/requirements.txt)" % self.zig)
        self.dir = WORK / name
        self.bin = self.dir / "toolchain"
        self.bin.mkdir()
        ZIG_CACHE.mkdir()
        env = "export ZIG_GLOBAL_CACHE_DIR='%s' ZIG_LOCAL_CACHE_DIR='%s'\n" % (ZIG_CACHE, ZIG_CACHE)
        # `-dumpversion`/`--version` with a glibc-versioned triple is an error in zig 0.17
        # ("version '.2.17' in target triple is invalid"): asked without the target.
        # Nuitka links with -Wl,--export-dynamic (for extension modules that a dlopen() would
        # bind to the executable's libpython): every module is built in and nothing is
        # dlopen()ed, and the ~1,800 exported symbols cost ld.so lookups and page-ins at every
        # start (docs/binary.md, "Start-up of the gnu binary").  zig has no
        # --no-export-dynamic, so Nuitka's wrapper drops the flag.  It drops -s too: main()
        # strips what it ships and keeps a copy with symbols (symbols_copy()).
        scripts = {
            "zig-cc": '#!/bin/sh\n%scase "$1" in -dumpversion|--version) exec "%s" cc "$@";; esac\n'
                      'exec "%s" cc -target %s "$@"\n' % (env, self.zig, self.zig, self.triple),
            "zig-ar": '#!/bin/sh\n%sexec "%s" ar "$@"\n' % (env, self.zig),
            "zig-ranlib": '#!/bin/sh\n%sexec "%s" ranlib "$@"\n' % (env, self.zig),
            "zig": '#!/bin/sh\n%scase "$1" in\n'
                   '  cc|c++) tool=$1; shift; case "$1" in -dumpversion|--version) exec "%s" "$tool" "$@";; esac\n'
                   '          for a do shift; case "$a" in -Wl,--export-dynamic|-s) ;; *) set -- "$@" "$a";; esac; done\n'
                   '          exec "%s" "$tool" -target %s "$@";;\n'
                   'esac\nexec "%s" "$@"\n' % (env, self.zig, self.zig, self.triple, self.zig),
        }
        for name_, text in scripts.items():
            path = self.bin / name_
            if not path.exists() or path.read("utf-8") != text:
                path.write(text, "utf-8")
                path.chmod(0o755)
        self.cc = local[self.bin / "zig-cc"]
        self.ar = local[self.bin / "zig-ar"]
        self.env = {"ZIG_GLOBAL_CACHE_DIR": str(ZIG_CACHE), "ZIG_LOCAL_CACHE_DIR": str(ZIG_CACHE)}

    def version(self):
        return local[self.zig]("version").strip()

    def archive(self, path, objects):
        """A new static archive of `objects` at `path` (`ar r` would add to an old one)."""
        path.dirname.mkdir()
        if path.exists():
            path.delete()
        self.ar("rcs", path, *objects)


def compile_all(cc, jobs):
    """jobs: [(source, object, [flags])] -> compile what is out of date, in parallel."""

    def one(job):
        src, obj, flags = job
        stamp = obj.with_suffix(".flags")   # the flags an object was built with
        wanted = " ".join(map(str, flags))
        if obj.exists() and obj.stat().st_mtime >= src.stat().st_mtime and \
                stamp.exists() and stamp.read("utf-8") == wanted:
            return None
        obj.dirname.mkdir()
        cc(*flags, "-c", src, "-o", obj)
        stamp.write(wanted, "utf-8")
        return src.name

    workers = max(1, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        done = [n for n in pool.map(one, jobs) if n]
    return done


def setup_local(ffi, zlib):
    """Modules/Setup.local: BUILTINS + NUITKA_ONLY built in, every other module disabled.
    The modules that need a library get its headers and archive (makesetup puts a *.a on
    the link line): _ctypes libffi, zlib and binascii (its crc32) zlib."""
    static = BUILTINS + NUITKA_ONLY
    with_zlib = ["-I" + str(zlib["include"])] + ZLIB_DEFINES + [str(zlib["archive"])]
    extra = {"_ctypes": ["-I" + str(ffi["include"]), str(ffi["libffi"])] +
             ([str(ffi["compat"][2])] if ffi["compat"] else []),
             "zlib": with_zlib, "binascii": ["-DUSE_ZLIB_CRC32"] + with_zlib}
    lines = ["# Generated by build/binary.py", "*static*"]
    for name, srcs in static:
        lines.append("%s %s" % (name, " ".join(srcs + extra.get(name, []))))
    return "\n".join(lines) + "\n"


def stale_module_objects(build, old_setup, new_setup):
    """The objects of modules whose Setup.local line changed: make rebuilds a module's object
    when its source changes, not its flags (binascii.o without -DUSE_ZLIB_CRC32 would stay)."""
    old = {line.split()[0]: line for line in old_setup.splitlines() if line and line[0] not in "#*"}
    stale = []
    for line in new_setup.splitlines():
        if not line or line[0] in "#*":
            continue
        name = line.split()[0]
        if old.get(name) != line:   # changed, or new (an object of an earlier recipe)
            stale += [build / "Modules" / (src[:-2] + ".o") for src in line.split()[1:]
                      if src.endswith(".c")]
    return [obj for obj in stale if obj.exists()]


def disabled_modules(src):
    names = {name for name, _ in BUILTINS + NUITKA_ONLY}
    stdlib = (src / "Modules" / "Setup.stdlib.in").read("utf-8")
    found = set()
    for line in stdlib.splitlines():
        if line.startswith("@MODULE_") and "_TRUE@" in line:
            found.add(line.split("@", 2)[2].split()[0])
    return sorted((found | set(SETUP_PY_MODULES)) - names)


class Interpreter:
    """The CPython built for a target: prefix, executable, headers, static libpython."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.python = prefix / "bin" / "python3.11"
        self.include = prefix / "include" / "python3.11"
        # `make altinstall` installs two copies; Nuitka links lib/libpython3.11.a
        self.libpython = prefix / "lib" / "libpython3.11.a"
        if not self.libpython.exists():
            self.libpython = None
        self.libpythons = [self.libpython] + list(prefix.glob("lib/python3.11/config-3.11*/libpython3.11.a"))


def build_cpython(tc, src):
    """CPython from Debian's orig tarball, built with zig for tc's target, installed under
    build/binary/<target>/python.  Rebuilt only when the recipe (a stamp) changes."""
    prefix = tc.dir / "python"
    build = tc.dir / "cpython"
    setup = setup_local(libffi_parts(tc), zlib_parts(tc)) + "\n*disabled*\n" + \
        "\n".join(disabled_modules(src)) + "\n"
    configure = ["--prefix=%s" % prefix, "CC=%s" % (tc.bin / "zig-cc"),
                 "AR=%s" % (tc.bin / "zig-ar"), "RANLIB=%s" % (tc.bin / "zig-ranlib")] + \
        CPYTHON_CONFIGURE + tc.target["configure"] + \
        ["CFLAGS=-Wno-error=date-time" + (" -fPIE" if tc.target["pie"] else "")]
    compat = glibc_compat(tc)
    if compat:
        # CFLAGS_NODIST: not in configure's own tests (its preprocessor checks would see it)
        configure += ["CFLAGS_NODIST=-include %s" % compat[0], "LIBS=%s" % compat[2],
                      "ac_cv_func_memfd_create=yes", "ac_cv_func_copy_file_range=yes"]
    configured = json.dumps({"configure": configure, "zig": tc.version(), "source": CPYTHON_SHA256},
                            indent=1)
    recipe = json.dumps({"configured": configured, "setup": setup,
                         "zlib": [ZLIB_SHA256] + ZLIB_FLAGS,
                         "core_config": CORE_CONFIG_VERSION,
                         "patch": [BUILTIN_SUBMODULE_PATCH] + DEEPFREEZE_LAZY_PATCHES},
                        indent=1)
    stamp, configure_stamp = tc.dir / "python.stamp", tc.dir / "configure.stamp"
    interp = Interpreter(prefix)
    if stamp.exists() and stamp.read("utf-8") == recipe and interp.python.exists() and interp.libpython:
        return interp
    t0 = time.monotonic()
    # Only the module set changed: make picks up the new Setup.local, configure is not rerun.
    reconfigure = not (configure_stamp.exists() and configure_stamp.read("utf-8") == configured
                       and (build / "Makefile").exists())
    say("building CPython %s with zig for %s (%s)" % (
        CPYTHON_DIR, tc.triple, "a few minutes; once" if reconfigure else "the module set changed"))
    for d in ([build] if reconfigure else []) + [prefix]:
        if d.exists():
            d.delete()
    old_setup = build / "Modules" / "Setup.local"
    if not reconfigure and old_setup.exists():
        for obj in stale_module_objects(build, old_setup.read("utf-8"), setup):
            obj.delete()
    if stamp.exists():
        stamp.delete()
    (build / "Modules").mkdir()
    (build / "Modules" / "Setup.local").write(setup, "utf-8")
    jobs = str(max(1, os.cpu_count() or 1))
    log = tc.dir / "cpython-build.log"
    steps = ([[src / "configure"] + configure] if reconfigure else []) + \
        [["make", "-j" + jobs], ["make", "altinstall"]]
    with local.cwd(build), local.env(**tc.env), open(str(log), "a") as out:
        for cmd in steps:
            t1 = time.monotonic()
            rc = local[cmd[0]].run(cmd[1:], retcode=None, stdout=out, stderr=out)[0]
            say("  %s: %.0f s" % (os.path.basename(str(cmd[0])) + (" " + cmd[1] if cmd[0] == "make" else ""),
                                  time.monotonic() - t1))
            if rc != 0:
                die("building CPython failed (%s exited %d); see %s" % (cmd[0], rc, log))
            if cmd[0] != "make":
                configure_stamp.write(configured, "utf-8")
    interp = Interpreter(prefix)
    if not interp.libpython:
        die("no libpython3.11.a under %s" % prefix)
    core_config(tc, src, build, interp)
    stamp.write(recipe, "utf-8")
    say("CPython for %s built in %.0f s" % (tc.triple, time.monotonic() - t0))
    return interp


CORE_CONFIG_VERSION = 4


def core_config(tc, src, build, interp):
    """Give the installed libpython3.11.a a config.o whose inittab lists only the core
    modules: the python executable (Nuitka's) keeps everything, the binary links only what
    its own inittab (build/nuitka_builtins.py) names."""
    names = {name for name, _ in BUILTINS + NUITKA_ONLY}
    text = (build / "Modules" / "config.c").read("utf-8")
    kept = [line for line in text.splitlines()
            if not any(("PyInit_%s(" % n) in line or ("PyInit_%s}" % n) in line for n in names)]
    core_c = tc.dir / "config-core.c"
    core_c.write("\n".join(kept) + "\n", "utf-8")
    obj = build / "config.o"     # the archive member's name
    tc.cc("-c", "-O2", "-DPy_BUILD_CORE", "-I" + str(src / "Include"),
          "-I" + str(src / "Include" / "internal"), "-I" + str(build), core_c, "-o", obj)
    if any(("PyInit_%s" % n) in local["nm"](obj) for n in names):
        die("config-core.c still names a non-core module")
    for archive in interp.libpythons:
        tc.ar("r", archive, obj)


COMMON_FLAGS = ["-O2", "-g0", "-fPIE",   # linked into the PIE executable only
                "-fwrapv", "-DNDEBUG", "-std=c11", "-w",
                "-ffunction-sections"]   # for the hot text (hot_text_script())


def build_native_source(tc):
    """minirunc._native's C code, from native/build_native.py's own description."""
    init_bin = ROOT / "build" / "native" / "minirunc-init"
    if not init_bin.exists():
        die("%s is missing: run `make native` first" % init_bin)
    sys.path.insert(0, str(ROOT / "native"))
    try:
        import build_native
    finally:
        sys.path.pop(0)
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(build_native.CDEF)
    ffi.set_source("minirunc._native", build_native.c_source())
    out = tc.dir / "gen" / "minirunc._native.c"   # per target: `make -j` builds both at once
    out.dirname.mkdir()
    tmp = out.with_suffix(".tmp")
    ffi.emit_c_code(str(tmp))
    # Keep the mtime when nothing changed, so the object is not rebuilt.
    if out.exists() and out.read("utf-8") == tmp.read("utf-8") and \
            out.stat().st_mtime >= init_bin.stat().st_mtime:
        tmp.delete()
    else:
        tmp.move(out)
    return out, init_bin


# glibc 2.17 lacks functions the runtime needs from the os module (os.memfd_create, glibc
# 2.27) or that Debian's libffi.a calls (memfd_create), and zig's headers for 2.17 do not
# declare them: declared in a header forced into every compilation of the gnu interpreter,
# defined as the system calls they wrap (ENOSYS on a kernel without them: memfd_create 3.17,
# copy_file_range 4.5).  musl has them all.
GLIBC_COMPAT_H = r"""/* Generated by build/binary.py: what glibc 2.17 lacks (see glibc_compat.c). */
#ifndef MINIRUNC_GLIBC_COMPAT_H
#define MINIRUNC_GLIBC_COMPAT_H
/* Forced in front of every file: no libc header here (it would fix the feature macros
 * before pyconfig.h sets them).  The kernel's header for the MFD_* flags is neutral. */
#include <linux/memfd.h>
int memfd_create(const char *name, unsigned int flags);
long copy_file_range(int fd_in, long *off_in, int fd_out, long *off_out, unsigned long len,
                     unsigned int flags);
/* os.openpty()'s /dev/ptmx path pushes STREAMS modules (EINVAL on Linux) with I_PUSH from
 * <stropts.h>, which zig's glibc headers (2.30+) no longer have. */
#define I_PUSH 0x5302
#endif
"""
GLIBC_COMPAT_C = r"""/* Generated by build/binary.py: what glibc 2.17 lacks, as system calls. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>
#include "glibc_compat.h"
int memfd_create(const char *name, unsigned int flags)
{
    return (int)syscall(SYS_memfd_create, name, flags);
}
long copy_file_range(int fd_in, long *off_in, int fd_out, long *off_out, unsigned long len,
                     unsigned int flags)
{
    return syscall(SYS_copy_file_range, fd_in, off_in, fd_out, off_out, len, flags);
}
"""


def glibc_compat(tc):
    """-> (header, object, archive) for the gnu target (see GLIBC_COMPAT_H), or None for
    musl.  The archive (not the object) goes on CPython's link lines: it may be named twice."""
    if tc.target["static"]:
        return None
    gen = tc.dir / "gen"
    gen.mkdir()
    for name, text in (("glibc_compat.h", GLIBC_COMPAT_H), ("glibc_compat.c", GLIBC_COMPAT_C)):
        if not (gen / name).exists() or (gen / name).read("utf-8") != text:
            (gen / name).write(text, "utf-8")
    obj = tc.dir / "obj" / "glibc_compat.o"
    if obj.exists() and obj.stat().st_mtime < (gen / "glibc_compat.h").stat().st_mtime:
        obj.delete()
    archive = tc.dir / "lib" / "libmrcompat.a"
    if compile_all(tc.cc, [(gen / "glibc_compat.c", obj, COMMON_FLAGS)]) or not archive.exists():
        tc.archive(archive, [obj])
    return gen / "glibc_compat.h", obj, archive


def libffi_parts(tc):
    """Debian's static libffi for tc's target: its headers alone (zig must not see the host's
    other headers), the archive, and for glibc < 2.27 the memfd_create() shim object."""
    ffi_inc = tc.dir / "ffi-include"
    ffi_inc.mkdir()
    for h in ("ffi.h", "ffitarget.h"):
        hsrc = local.path("/usr/include/x86_64-linux-gnu") / h
        if not hsrc.exists():
            die("%s missing (install libffi-dev)" % hsrc)
        if not (ffi_inc / h).exists() or (ffi_inc / h).read("utf-8") != hsrc.read("utf-8"):
            shutil.copy2(str(hsrc), str(ffi_inc / h))
    libffi_a = local.path("/usr/lib/x86_64-linux-gnu/libffi.a")
    if not libffi_a.exists():
        die("%s missing (install libffi-dev)" % libffi_a)
    compat = glibc_compat(tc)
    return {"include": ffi_inc, "libffi": libffi_a, "compat": compat}


# zlib's library as its configure builds it on Linux (-O3; zconf.h's <unistd.h> and <stdarg.h>
# branches on, which the zlib module is compiled with too; internal symbols hidden), without
# the gz* file functions (neither module uses them).
ZLIB_SOURCES = ["adler32.c", "crc32.c", "deflate.c", "infback.c", "inffast.c", "inflate.c",
                "inftrees.c", "trees.c", "zutil.c", "compress.c", "uncompr.c"]
ZLIB_DEFINES = ["-DHAVE_UNISTD_H", "-DHAVE_STDARG_H"]
ZLIB_FLAGS = ["-O3", "-g0", "-fPIE", "-DNDEBUG", "-w", "-DHAVE_HIDDEN"] + ZLIB_DEFINES


def zlib_parts(tc):
    """zlib from Debian's source package, compiled by zig for tc's target: its two public
    headers alone (as libffi_parts() does) and build/binary/<target>/lib/libmrz.a."""
    src = fetch_debian_source("zlib", ZLIB_ORIG, ZLIB_SHA256, ZLIB_DIR, "inflate.c", ZLIB_VERSIONS)
    inc = tc.dir / "zlib-include"
    inc.mkdir()
    for h in ("zlib.h", "zconf.h"):
        if not (inc / h).exists() or (inc / h).read("utf-8") != (src / h).read("utf-8"):
            shutil.copy2(str(src / h), str(inc / h))
    objs = [tc.dir / "obj" / "zlib" / (name[:-2] + ".o") for name in ZLIB_SOURCES]
    done = compile_all(tc.cc, [(src / name, obj, ZLIB_FLAGS)
                               for name, obj in zip(ZLIB_SOURCES, objs)])
    archive = tc.dir / "lib" / "libmrz.a"
    if done or not archive.exists():
        tc.archive(archive, objs)
    return {"include": inc, "archive": archive}


# Both binaries' math functions (sin, pow, fmod, ... : the 37 that CPython and Nuitka's code
# call) are musl's, linked in from Debian's musl-dev, and the gnu binary loads no libm.so.6:
# libm cost every gnu command ~0.3 MB of memory and its IFUNC resolvers at each start, math or
# not (docs/binary.md, "libm").  The static twin takes the same objects rather than zig's
# compiler-rt versions (whose log2 and log10 are off by up to 6e5 ulp for subnormal
# arguments): one math in both, held to glibc's results by tests/test_math.py, mended where it
# differs (build/math_fixes.c).  musl's libm sets no errno; CPython's math module and float
# operations check the results themselves.
MUSL_LIBC_A = "/usr/lib/x86_64-linux-musl/libc.a"
GLIBC_LIBM = "/lib/x86_64-linux-gnu/libm.so.6"
# What musl's math objects may refer to outside themselves: glibc's stack-protector failure
# (both keep the canary at %fs:0x28), the linker's GOT symbol and compiler-rt's complex
# multiplications (zig links compiler-rt into every executable).
MUSL_MATH_EXTERNAL = {"__stack_chk_fail", "_GLOBAL_OFFSET_TABLE_", "__muldc3", "__mulsc3",
                      "__mulxc3"}
# The math functions build/math_fixes.c wraps (its __wrap_<name>), in both binaries.
MATH_FIXES = ["acosh"]


def dynamic_symbols(library):
    """Names a shared library defines, without their versions."""
    out = local["nm"]("-D", "--defined-only", library)
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if len(line.split()) == 3}


def archive_symbols(archive):
    """-> ({symbol: the first member defining it}, {member: symbols it refers to}), from nm."""
    defined, undefined = {}, {}
    for line in local["nm"]("-A", archive).splitlines():
        where, _, rest = line.rpartition(":")
        member, fields = where.rpartition(":")[2], rest.split()
        undefined.setdefault(member, set())
        if len(fields) == 2 and fields[0] in ("U", "w"):
            undefined[member].add(fields[1])
        elif len(fields) == 3 and fields[1] in "TDRBWVCi":
            defined.setdefault(fields[2], member)
    return defined, undefined


def musl_math_members(libc_a):
    """The members of musl's libc.a that define what glibc's libm.so.6 has (frexp and ldexp
    too, which glibc's libc.so.6 has as well: libm comes first on the link line), with every
    member they need; build errors if one needs more than MUSL_MATH_EXTERNAL or two members
    have one name (`ar x` could not tell them apart)."""
    defined, undefined = archive_symbols(libc_a)
    wanted = dynamic_symbols(GLIBC_LIBM) & set(defined)
    members, todo = set(), sorted(wanted)
    while todo:
        symbol = todo.pop()
        if symbol in MUSL_MATH_EXTERNAL:
            continue
        if symbol not in defined:
            users = sorted(m for m in members if symbol in undefined[m])
            die("musl's math in %s refers to %s (in %s), which is neither in it nor in "
                "MUSL_MATH_EXTERNAL (build/binary.py)" % (libc_a, symbol, ", ".join(users)))
        if defined[symbol] not in members:
            members.add(defined[symbol])
            todo.extend(undefined[defined[symbol]])
    names = local["ar"]("t", libc_a).split()
    twice = sorted(m for m in members if names.count(m) > 1)
    if twice:
        die("%s holds more than one member named %s" % (libc_a, ", ".join(twice)))
    return sorted(members)


def musl_math(tc):
    """-> build/binary/<target>/lib/libmrm.a: the math objects of Debian's musl libc.a (see
    MUSL_LIBC_A), named on the link line before libm and the C library, so that the linker
    takes every math function from it (and, --as-needed, drops libm.so.6 from the gnu binary;
    check() makes sure it did)."""
    libc_a = local.path(MUSL_LIBC_A)
    if not libc_a.exists():
        die("%s missing (install musl-dev)" % libc_a)
    archive = tc.dir / "lib" / "libmrm.a"
    if archive.exists() and archive.stat().st_mtime >= libc_a.stat().st_mtime and \
            archive.stat().st_mtime >= local.path(__file__).stat().st_mtime:
        return archive
    members = musl_math_members(libc_a)
    obj_dir = tc.dir / "obj" / "musl-math"
    if obj_dir.exists():
        obj_dir.delete()
    obj_dir.mkdir()
    with local.cwd(obj_dir):
        local["ar"]("x", libc_a, *members)
    tc.archive(archive, [obj_dir / m for m in members])
    say("musl's math: %d objects from %s" % (len(members), libc_a))
    return archive


def glibc_strerror_source():
    """musl words many errno messages differently from glibc ("Filename too long", "Resource
    busy"...), and minirunc's messages (and runc's, which it matches) use glibc's: the static
    binary links strerror() wrapped (-Wl,--wrap=strerror) to glibc's table, taken here from
    the build host's glibc; numbers it lacks go to musl's own."""
    table = []
    for num in range(1, 134):
        text = os.strerror(num)
        if not text.startswith("Unknown error"):
            table.append('    case %d: return (char *)"%s";' % (num, text.replace('"', '\\"')))
    return ("/* Generated by build/binary.py from glibc's strerror(): see glibc_strerror_source(). */\n"
            "char *__real_strerror(int);\n"
            "char *__wrap_strerror(int e)\n{\n    switch (e) {\n" + "\n".join(table) +
            "\n    default: return __real_strerror(e);\n    }\n}\n")


def build_archive(tc, interp):
    cffi_dir, cffi_version = fetch_cffi()
    native_c, init_bin = build_native_source(tc)
    obj_dir, lib = tc.dir / "obj", tc.dir / "lib"
    ffi = libffi_parts(tc)
    ffi_inc = ffi["include"]
    py_flags = COMMON_FLAGS + ["-I" + str(interp.include), "-I" + str(interp.include / "internal")]
    jobs, inits = [], [(name, "PyInit_" + name) for name, _ in BUILTINS]
    jobs.append((cffi_dir / "_cffi_backend.c", obj_dir / "cffi" / "_cffi_backend.o",
                 py_flags + ["-I" + str(ffi_inc), "-DFFI_BUILDING=1", "-DUSE__THREAD",
                             "-DHAVE_SYNC_SYNCHRONIZE"]))
    inits.append(("_cffi_backend", "PyInit__cffi_backend"))
    native_obj = obj_dir / "native" / "minirunc._native.o"
    if native_obj.exists() and native_obj.stat().st_mtime < init_bin.stat().st_mtime:
        native_obj.delete()   # .incbin: the object embeds the init binary
    jobs.append((native_c, native_obj, py_flags))
    if tc.target["static"]:
        strerror_c = tc.dir / "gen" / "glibc_strerror.c"
        strerror_c.dirname.mkdir()
        text = glibc_strerror_source()
        if not strerror_c.exists() or strerror_c.read("utf-8") != text:
            strerror_c.write(text, "utf-8")
        jobs.append((strerror_c, obj_dir / "glibc_strerror.o", COMMON_FLAGS))
    inits.append(("minirunc._native", "PyInit__native"))
    # musl's math functions, in both binaries, mended where they differ from glibc's
    jobs.append((ROOT / "build" / "math_fixes.c", obj_dir / "math_fixes.o", COMMON_FLAGS))
    # The front door (native/door.c): main() is wrapped (run_nuitka()) to try it first.
    door_obj = obj_dir / "door.o"
    if door_obj.exists() and door_obj.stat().st_mtime < (ROOT / "native" / "door.h").stat().st_mtime:
        door_obj.delete()
    jobs.append((ROOT / "native" / "door.c", door_obj, COMMON_FLAGS))

    t0 = time.monotonic()
    done = compile_all(tc.cc, jobs)
    say("compiled %d of %d objects in %.1f s" % (len(done), len(jobs), time.monotonic() - t0))

    # One archive: our objects plus the members of Debian's static libffi.
    lib.mkdir()
    archive = lib / "libmrbuiltins.a"
    ffi_dir = obj_dir / "libffi"
    libffi_a = ffi["libffi"]
    if not ffi_dir.exists():
        ffi_dir.mkdir()
        with local.cwd(ffi_dir):
            local["ar"]("x", libffi_a)
    objs = [j[1] for j in jobs] + ([ffi["compat"][1]] if ffi["compat"] else []) + \
        sorted(ffi_dir // "*.o")
    tc.archive(archive, objs)
    # The static libpython again after our archive, for symbols only our modules use.
    link = lib / "libmrpython.a"
    if link.exists() or link.is_symlink():
        link.delete()
    os.symlink(str(interp.libpython), str(link))
    zlib_parts(tc)   # lib/libmrz.a, for the zlib and binascii objects of libpython
    musl_math(tc)    # lib/libmrm.a
    config = {"libdir": str(lib), "libs": ["mrbuiltins", "mrpython", "mrz", "mrm", "m"],
              "modules": inits, "cffi": cffi_version}
    config_path = tc.dir / "builtins.json"
    config_path.write(json.dumps(config, indent=1), "utf-8")
    return config_path, [name for name, _ in inits]


# The entry guard (build/exe_guard.c, placed by build/exe_guard.ld): compiled with flags of its
# own, since it runs before the dynamic loader: no stack protector (no TLS yet), no calls to
# memset/memcpy that GCC may invent (no PLT yet), no unwind tables, no jump tables.
GUARD_FLAGS = ["-O2", "-g0", "-fPIE", "-ffreestanding", "-fno-builtin", "-fno-stack-protector",
               "-fno-tree-loop-distribute-patterns", "-fno-asynchronous-unwind-tables",
               "-fno-unwind-tables", "-fcf-protection=none", "-fno-jump-tables", "-Wall", "-Werror"]
GUARD_TAG = b"\0MINIRUNC-SIZE\0\0"   # + 8 bytes: the file size, written by seal()
PT_INTERP, PT_LOAD, PF_W = 3, 1, 2
PT_MINIRUNC_INTERP = 0x6D720003     # as in build/exe_guard.c
GUARD_MAX_OFFSET = 64 * 1024        # what a copy must hold for the guard to run (< 1% of it)


def build_guard(tc):
    """build/exe_guard.c -> an object whose every reference is resolved at link time.
    Compiled by gcc: freestanding code (no libc, no TLS), the same for every target."""
    obj = tc.dir / "obj" / "exe_guard.o"
    compile_all(local["gcc"], [(ROOT / "build" / "exe_guard.c", obj, GUARD_FLAGS)])
    relocs = local["readelf"]("-rW", obj)
    bad = [line for line in relocs.splitlines()
           if "R_X86_64_" in line and not any(t in line for t in ("R_X86_64_PC32", "R_X86_64_PLT32"))]
    if bad:
        die("build/exe_guard.c needs relocations that only the dynamic loader could apply:\n" +
            "\n".join(bad))
    undefined = set(local["nm"]("-u", obj).split()) - {"U"}
    if undefined - {"_start", "__ehdr_start"}:
        die("build/exe_guard.c refers to %s" % ", ".join(sorted(undefined)))
    return obj


def seal(path, static=False):
    """Finish the executable so that a damaged copy is refused before anything reads it (see
    build/exe_guard.c and docs/binary.md):

    - PT_INTERP becomes PT_MINIRUNC_INTERP: the kernel then starts the guard at once (the guard
      maps the dynamic loader itself and turns the header back into PT_INTERP in memory);
    - the file part of a writable segment followed by .bss is padded with zeros to a page
      boundary: execve() zeroes the rest of that page and, if the file is cut before it, fails
      past the point of no return (SIGSEGV, no message);
    - the size of the finished file is written after GUARD_TAG, for the guard to compare."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        die("%s is not a little-endian ELF64 file" % path)
    e_entry, e_phoff, e_shoff = struct.unpack_from("<QQQ", data, 24)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 54)
    phdrs = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        phdrs.append([off] + list(struct.unpack_from("<IIQQQQQQ", data, off)))
    # [where, p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align]
    interp = [p for p in phdrs if p[1] == PT_INTERP]
    if len(interp) != (0 if static else 1):
        die("%s: expected %d PT_INTERP, found %d" % (path, 0 if static else 1, len(interp)))
    for p in interp:   # a static binary has none: the guard then jumps to _start itself
        struct.pack_into("<I", data, p[0], PT_MINIRUNC_INTERP)
    loads = [p for p in phdrs if p[1] == PT_LOAD]
    guard = [p for p in loads if p[4] <= e_entry < p[4] + p[7]]
    if not guard or guard[0][3] + guard[0][6] > GUARD_MAX_OFFSET or e_phoff > GUARD_MAX_OFFSET:
        die("%s: the entry guard is not at the front of the file (see build/exe_guard.ld)" % path)
    # Each writable segment whose file part ends inside a page that .bss (or lld's
    # .relro_padding) shares: its file part is padded with zeros up to the page boundary.  In
    # the last segment that just grows the file; before another segment, a whole page is
    # inserted (file offsets stay congruent with addresses) and what follows moves up.
    while True:
        phdrs = []
        for i in range(e_phnum):
            off = e_phoff + i * e_phentsize
            phdrs.append([off] + list(struct.unpack_from("<IIQQQQQQ", data, off)))
        loads = [p for p in phdrs if p[1] == PT_LOAD]
        file_end = max(p[3] + p[6] for p in loads)
        todo = [p for p in sorted(loads, key=lambda p: p[3])
                if p[2] & PF_W and p[7] > p[6] and (p[4] + p[6]) % 4096]
        if not todo:
            break
        where, _, flags, offset, vaddr, _, filesz, memsz, _ = todo[0]
        pad = min(4096 - (vaddr + filesz) % 4096, memsz - filesz)
        at = offset + filesz
        shift = pad if at == file_end else 4096
        data[at:at] = bytes(shift)
        struct.pack_into("<Q", data, where + 32, filesz + pad)
        for q in phdrs:
            if q[0] != where and q[3] >= at and (q[6] or q[1] == PT_LOAD):
                struct.pack_into("<Q", data, q[0] + 8, q[3] + shift)
        if e_shoff >= at:
            e_shoff += shift
            struct.pack_into("<Q", data, 40, e_shoff)
        for i in range(e_shnum):
            off = e_shoff + i * e_shentsize
            (sh_offset,) = struct.unpack_from("<Q", data, off + 24)
            if sh_offset >= at:
                struct.pack_into("<Q", data, off + 24, sh_offset + shift)
    if data.count(GUARD_TAG) != 1:
        die("%s: the entry guard's size record is missing or not unique" % path)
    tag = data.index(GUARD_TAG)
    struct.pack_into("<Q", data, tag + len(GUARD_TAG), len(data))
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def commit_id():
    git = local["git"]
    with local.cwd(ROOT):
        rc, out, _ = git.run(["rev-parse", "--short=12", "HEAD"], retcode=None)
        if rc != 0:
            return "unknown"
        rc2, status, _ = git.run(["status", "--porcelain", "--untracked-files=no", "--", "src", "native"],
                                 retcode=None)
        return out.strip() + ("-dirty" if status.strip() else "")


def stage_sources(tc):
    """A copy of src/minirunc with a generated _commit.py, and the entry script."""
    STAGE = tc.dir / "stage"
    if STAGE.exists():
        STAGE.delete()
    pkg = STAGE / "minirunc"
    shutil.copytree(str(ROOT / "src" / "minirunc"), str(pkg),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "_commit.py"))
    (pkg / "_commit.py").write('COMMIT = "%s"\n' % commit_id(), "utf-8")
    entry = STAGE / "minirunc_main.py"
    entry.write("from minirunc.cli import main_exit\n\nmain_exit()\n", "utf-8")
    return entry


def _imports(tree, module_level_only):
    """Absolute module names imported in an AST (module level only: not in function bodies).
    Imports in the body of a `try` that catches ImportError are optional: not counted."""
    import ast
    found = []

    def optional(node):
        names = set()
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            names.update(k.id for k in kinds if isinstance(k, ast.Name))
        return bool(names & {"ImportError", "ModuleNotFoundError"})

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Try) and optional(child):
                for handler in child.handlers:
                    visit(handler)
                visit(ast.Module(body=child.orelse + child.finalbody, type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, child.lineno))
                found.extend((child.module + "." + a.name, child.lineno) for a in child.names)
            visit(child)

    visit(tree)
    return found


def check_trimmed_imports():
    """Fail if minirunc imports, directly or through the module-level imports of the stdlib
    modules it imports, a module TRIMMED_STDLIB keeps out of the binary."""
    import ast
    import importlib.util
    trimmed = set(TRIMMED_STDLIB)
    bad, seen, queue = [], set(), []
    for path in sorted((ROOT / "src" / "minirunc").walk(filter=lambda p: p.suffix == ".py")):
        for name, line in _imports(ast.parse(path.read("utf-8"), str(path)), False):
            queue.append((name, "%s:%d" % (path, line)))
    while queue:
        name, where = queue.pop()
        if name in seen or name.split(".")[0] == "minirunc":
            continue
        seen.add(name)
        if name.split(".")[0] in trimmed:
            bad.append("%s imports %s" % (where, name))
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None   # "from pkg import function": not a module
        if spec is None or not (spec.origin or "").endswith(".py"):
            continue
        with open(spec.origin, "rb") as f:
            tree = ast.parse(f.read(), spec.origin)
        for sub, line in _imports(tree, True):
            queue.append((sub, "%s (via %s:%d)" % (where, name, line)))
    if bad:
        die("minirunc needs modules that build/binary.py leaves out of the binary "
            "(take them out of TRIMMED_STDLIB):\n  " + "\n  ".join(sorted(bad)))


def nuitka_pylib():
    """build/binary/pylib: the venv's nuitka package alone, for an interpreter built here."""
    import nuitka
    link = PYLIB / "nuitka"
    target = local.path(nuitka.__file__).dirname
    PYLIB.mkdir()
    if not link.is_symlink() or os.readlink(str(link)) != str(target):
        if link.is_symlink():
            os.unlink(str(link))   # plumbum's delete() would rmtree() it, and refuses a link
        elif link.exists():
            link.delete()
        os.symlink(str(target), str(link))
    return PYLIB


def hot_text_script():
    """The functions build/hot_functions.txt lists (those the hot commands call, in the order
    they first call them), in a section of their own ahead of the rest of .text.  Scattered
    as the compiler left them, the 0.8 MB a `run` executes lay in 41 of the 44 64 KB windows
    of .text that the kernel maps on a page fault; together, a `run` touches 15.  A name the
    build does not have matches nothing; a function missing from the list stays in .text."""
    names = [line.strip() for line in (ROOT / "build" / "hot_functions.txt").read("utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    rows = "".join("    *(.text.%s)\n" % name for name in names)
    return ("/* build/binary.py hot_text_script(): build/hot_functions.txt */\n"
            "SECTIONS\n{\n  .text.minirunc_hot : {\n%s  }\n}\nINSERT BEFORE .text;\n" % rows)


def run_nuitka(tc, src, interp, runner, entry, config_path, builtin_names, guard_obj):
    """Nuitka compiles against interp (headers, libpython3.11.a: its sys.prefix) and runs on
    runner: for musl, the gnu interpreter with PYTHONHOME pointing at the musl one (a static
    interpreter cannot dlopen(), and Nuitka calls libc through ctypes).  Both are the same
    CPython built with the same options and modules."""
    # What the interpreter has built in but the binary's inittab lacks: never followed.
    excluded = sorted({name for name, _ in NUITKA_ONLY} | set(builtin_names))
    config = json.loads(config_path.read("utf-8"))
    # built-in ones too (they must not be copied either), and the trimmed stdlib modules
    config["excluded"] = excluded + TRIMMED_STDLIB + CJK_ENCODINGS + FROZEN_STDLIB
    config["bytecode"] = BYTECODE
    config["bytecode_first"] = RUN_PATH_MODULES
    # ... and deep-frozen (nuitka_builtins.deepfreeze_source), by the interpreter's own tool
    config["deepfreeze"] = RUN_PATH_MODULES
    config["deepfreeze_tools"] = str(src / "Tools" / "scripts")
    config_path.write(json.dumps(config, indent=1), "utf-8")
    nuitka_out = tc.dir / "nuitka"
    args = [
        # -X utf8: Nuitka gives the binary the UTF-8 mode of the Python running it.  UTF-8
        # whatever the locale (surrogateescape for other bytes), and a LANG naming a locale
        # the host lacks (C.UTF-8 in a bare chroot) no longer aborts the start.
        "-X", "utf8",
        "-m", "nuitka", "--standalone", "--static-libpython=yes",
        "--user-plugin=%s" % (ROOT / "build" / "nuitka_builtins.py"),
        "--include-package=minirunc",
        "--output-dir=%s" % nuitka_out, "--output-filename=minirunc-bin",
        "--assume-yes-for-downloads", "--quiet", "--no-progressbar",
        "--python-flag=no_docstrings",   # nothing reads __doc__; saves ~1 MB
        # Nuitka refuses an argv holding "-c" (a fork bomb guard for programs that run
        # sys.executable -c); `minirunc exec ID sh -c ...` and `exec -c CAP` need it.
        "--no-deployment-flag=self-execution",
    ] + ["--nofollow-import-to=%s" % m
         for m in excluded + TRIMMED_STDLIB + CJK_ENCODINGS + FROZEN_STDLIB] + [entry]
    # build/exe_guard.ld goes after .interp; a static binary has none, and lld puts the
    # read-only data first: there, before .rodata.
    guard_ld = tc.dir / "exe_guard.ld"
    text = (ROOT / "build" / "exe_guard.ld").read("utf-8")
    if tc.target["static"]:
        text = text.replace("INSERT AFTER .interp;", "INSERT BEFORE .rodata;")
    guard_ld.write(text + hot_text_script(), "utf-8")
    ldflags = ["-Wl,--wrap=patchInspectModule",   # the plugin's no-op replacement
               # the plugin's __wrap_main: the C front door, then Nuitka's main()
               "-Wl,--wrap=main",
               # the plugin's: CPython's frozen stdlib back on (FROZEN_STDLIB), and no
               # PYTHON* environment (FROZEN_STDLIB_ON)
               "-Wl,--wrap=Py_InitializeFromConfig", "-Wl,--wrap=Py_PreInitialize",
               # the plugin's: setlocale(LC_ALL, "") loads LC_CTYPE only (SETLOCALE_CTYPE_ONLY)
               "-Wl,--wrap=setlocale",
               # the plugin's: the bytecode index (nuitka_builtins.bytecode_items)
               "-Wl,--wrap=loadConstantsBlob",
               # the plugin's: the run path's modules deep-frozen (DEEPFREEZE_WRAP)
               "-Wl,--wrap=PyMarshal_ReadObjectFromString",
               # the entry guard: first in the file, first to run (see seal())
               str(guard_obj), "-Wl,-T,%s" % guard_ld, "-Wl,-e,minirunc_guard_entry"]
    ldflags += ["-Wl,--wrap=%s" % name for name in MATH_FIXES]   # build/math_fixes.c
    if tc.target["static"]:
        ldflags += ["-static", "-Wl,--wrap=strerror"]   # glibc's messages (build_archive())
    if tc.target["pie"]:
        ldflags.append("-pie")
    env = dict(tc.env, MINIRUNC_BUILTINS=str(config_path), PYTHONHASHSEED="0",
               PYTHONHOME=str(interp.prefix),
               PYTHONPATH=str(nuitka_pylib()),
               # zig mode (Nuitka calls `$CC cc ...`): the wrapper adds the target
               CC=str(tc.bin / "zig"),
               NUITKA_CACHE_DIR=str(tc.dir / "nuitka-cache"),
               LDFLAGS=" ".join(ldflags))
    # a section per function, which exe_guard.ld's hot text can pick out (hot_text_script())
    env["CCFLAGS"] = "-ffunction-sections" + (" -fPIE" if tc.target["pie"] else "")
    dist = nuitka_out / (entry.stem + ".dist")
    if dist.exists():
        dist.delete()   # left-overs of an earlier build would hide what this one copied
    t0 = time.monotonic()
    with local.cwd(entry.dirname), local.env(**env):
        local[runner.python][args] & FG
    say("nuitka took %.1f s" % (time.monotonic() - t0))
    files = [p for p in dist.walk() if not p.is_dir()]
    extra = [str(p) for p in files if p.name != "minirunc-bin"]
    if extra:
        die("the standalone folder holds more than the executable: %s" % ", ".join(extra))
    return dist / "minirunc-bin"


def glibc_versions(binary):
    symbols = local["objdump"]("-T", binary)
    return symbols, sorted({tuple(int(p) for p in v.split("."))
                            for v in re.findall(r"GLIBC_([0-9][0-9.]*)", symbols)})


def check(binary, target):
    readelf_l = local["readelf"]("-lW", binary)
    readelf_d = local["readelf"]("-dW", binary)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf_d)
    if target["static"]:
        # seal() renamed a PT_INTERP, if any, to PT_MINIRUNC_INTERP: there must be none
        if "INTERP" in readelf_l or "0x6d720003" in readelf_l or needed:
            die("%s is not fully static:\n%s\n%s" % (binary, readelf_l, readelf_d))
        report = "static: no ELF interpreter, no DT_NEEDED\n"
    else:
        if "libm.so.6" in needed:
            undefined = {line.split()[-1] for line in local["objdump"]("-T", binary).splitlines()
                         if "*UND*" in line}
            libm = sorted(undefined & dynamic_symbols(GLIBC_LIBM))
            die("%s still loads libm.so.6, for %s: the gnu binary takes its math from musl's "
                "libc.a (%s, musl_math())" % (binary, ", ".join(libm) or "no symbol of libm's",
                                               MUSL_LIBC_A))
        ldd = local["ldd"](binary)
        bad = [line.strip() for line in ldd.splitlines()
               if line.strip() and not any(ok in line for ok in GLIBC_LIBS)]
        if bad:
            die("%s needs more than glibc:\n%s" % (binary, ldd))
        symbols, versions = glibc_versions(binary)
        if "GLIBC_PRIVATE" in symbols:
            die("%s refers to GLIBC_PRIVATE symbols" % binary)
        if not versions or versions[-1] > target["glibc_floor"]:
            die("%s asks for GLIBC_%s (the floor is %s)" % (
                binary, ".".join(map(str, versions[-1])), ".".join(map(str, target["glibc_floor"]))))
        report = ldd + "newest symbol version: GLIBC_%s\n" % ".".join(map(str, versions[-1]))
    out = local[binary]("--version")
    if "minirunc version" not in out:
        die("%s --version printed %r" % (binary, out))
    return report, out


def symbols_copy(target):
    """The finished executable of `target` that keeps its symbols (finish(), --strip-debug)."""
    return WORK / target / "minirunc-symbols"


def finish(built, tmp, output, tc, strip):
    """Nuitka's executable, stripped (`strip`: the strip option), made safe and sealed, to
    output (atomically)."""
    shutil.copy2(str(built), str(tmp))
    local["strip"](strip, tmp)
    # Nuitka's standalone RPATH $ORIGIN would make ld.so load a libc.so.6 lying beside
    # the binary (a root-run program in a writable directory: code execution). Nothing
    # is loaded from there: every module is built in.
    if "PATH" in local["readelf"]("-dW", tmp):
        local["patchelf"]("--remove-rpath", tmp)
    seal(str(tmp), static=tc.target["static"])
    tmp.chmod(0o755)
    os.replace(str(tmp), str(output))


def main():
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="gnu")
    parser.add_argument("--python-only", action="store_true",
                        help="build the target's interpreter only (for measurements)")
    args = parser.parse_args()
    t0 = time.monotonic()
    os.chdir(str(ROOT))
    ensure_apt()
    WORK.mkdir()
    tc = Toolchain(args.target)
    src = fetch_cpython()
    patch_cpython(src)
    interp = build_cpython(tc, src)
    if args.python_only:
        say("%s" % interp.python)
        return
    runner = build_cpython(Toolchain("gnu"), src) if tc.target["static"] else interp
    check_trimmed_imports()
    config_path, names = build_archive(tc, interp)
    entry = stage_sources(tc)
    built = run_nuitka(tc, src, interp, runner, entry, config_path, names, build_guard(tc))
    DIST.mkdir()
    output = DIST / tc.target["output"]
    finish(built, DIST / (".%s.tmp" % tc.target["output"]), output, tc, "--strip-unneeded")
    # The same executable with its symbol table, for build/hot_functions.py and the tests
    finish(built, tc.dir / ".symbols.tmp", symbols_copy(tc.name), tc, "--strip-debug")
    try:
        report, version = check(output, tc.target)
    except ProcessExecutionError as e:
        die("running %s failed: %s" % (output, e))
    say("built %s (%.1f MB) in %.0f s" % (output, output.stat().st_size / 1e6, time.monotonic() - t0))
    sys.stdout.write(report)
    sys.stdout.write(version)


if __name__ == "__main__":
    main()
