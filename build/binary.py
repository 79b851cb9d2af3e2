"""Build dist/minirunc: one executable that needs nothing but glibc.

Usage (from the repository root, after `make native`): ``.venv/bin/python build/binary.py``
(`make binary` does exactly that).

Route: a *standalone* Nuitka executable with a static libpython and every extension module
the runtime imports linked in as a built-in module (no onefile payload, nothing unpacked,
one process).  Steps:

1. Sources: CPython's Modules/ from Debian's python3.11 source package (orig tarball fetched
   with `apt-get source --download-only`, checked by sha256), and the sdist of the installed
   cffi (for _cffi_backend) from PyPI.
2. Compile the extension modules (BUILTINS below) with CPython's flags for built-in modules
   (-DPy_BUILD_CORE_BUILTIN, against the running interpreter's headers), _cffi_backend with
   -DFFI_BUILDING=1, and minirunc._native from the same cffi description native/build_native.py
   uses.  All objects plus Debian's static libffi go into build/binary/lib/libmrbuiltins.a.
3. Nuitka --standalone --static-libpython=yes, with the user plugin build/nuitka_builtins.py
   registering the modules in the inittab and linking the archive; every extension module of
   lib-dynload is excluded so that nothing is copied beside the executable; libm comes from
   libm.a.  A staged copy of src/ gets a generated _commit.py (src/ itself is not touched).
4. Check that the standalone folder holds the executable alone, strip it, seal it (seal(): the
   entry guard that refuses a damaged copy, build/exe_guard.c), copy to dist/minirunc,
   and check ldd and a `--version` run.

Rebuilds are fast: C objects are rebuilt only when missing (or their sources are newer) and
ccache, when installed, serves Nuitka's C compilations.
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import struct
import sys
import sysconfig
import tarfile
import time

from plumbum import FG, ProcessExecutionError, local

ROOT = local.path(__file__).dirname.dirname
WORK = ROOT / "build" / "binary"
SRC_CACHE = WORK / "sources"
OBJ = WORK / "obj"
LIB = WORK / "lib"
STAGE = WORK / "stage"
NUITKA_OUT = WORK / "nuitka"
DIST = ROOT / "dist"
OUTPUT = DIST / "minirunc"
PY = local[sys.executable]

# Debian 12's python3.11 source package: only Modules/ is used.
CPYTHON_ORIG = "python3.11_3.11.2.orig.tar.gz"
CPYTHON_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"
CPYTHON_DIR = "Python-3.11.2"

# (module name, sources under Modules/) -- what the runtime (and Nuitka's start-up, which
# imports inspect) imports, plus a few cheap ones the stdlib modules we ship may reach.
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
    ("binascii", ["binascii.c"]),   # without USE_ZLIB_CRC32: no libz
    ("_heapq", ["_heapqmodule.c"]),
    ("_bisect", ["_bisectmodule.c"]),
    ("_random", ["_randommodule.c"]),
    ("grp", ["grpmodule.c"]),
    ("resource", ["resource.c"]),
    ("_contextvars", ["_contextvarsmodule.c"]),
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
APT_PACKAGES = ["gcc", "patchelf", "libffi-dev", "ccache"]
LIBC_ONLY = ("linux-vdso.so", "libc.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2")


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


def fetch_cpython():
    """Modules/ of Debian's python3.11 orig tarball, extracted under build/binary/sources."""
    target = SRC_CACHE / CPYTHON_DIR / "Modules"
    if (target / "_struct.c").exists():
        return target
    SRC_CACHE.mkdir()
    tarball = SRC_CACHE / CPYTHON_ORIG
    if not tarball.exists() or sha256(tarball) != CPYTHON_SHA256:
        # Without deb-src URIs apt-cache exits 100 ("You must put some 'deb-src' URIs").
        rc, listed, _ = local["apt-cache"].run(["showsrc", "python3.11"], retcode=None)
        if rc != 0 or not listed.strip():
            say("adding deb-src entries (/etc/apt/sources.list.d/minirunc-deb-src.sources)")
            with open("/etc/apt/sources.list.d/minirunc-deb-src.sources", "w") as f:
                f.write(DEB_SRC)
            local["apt-get"]["update", "-qq"] & FG
        with local.cwd(SRC_CACHE):
            # The Debian part may 404 on a just-updated security archive; the orig tarball
            # is all we need, and it is checked by hash below.
            local["apt-get"].run(["source", "--download-only", "-qq", "python3.11"], retcode=None)
        if not tarball.exists() or sha256(tarball) != CPYTHON_SHA256:
            die("could not fetch %s with the expected sha256 (apt-get source python3.11)" % CPYTHON_ORIG)
    say("extracting Modules/ from %s" % CPYTHON_ORIG)
    prefix = CPYTHON_DIR + "/Modules/"
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(SRC_CACHE, members=members, filter="data")
    return target


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


def compiler():
    ccache = local.which("ccache") if shutil.which("ccache") else None
    return (local[ccache]["gcc"] if ccache else local["gcc"])


def compile_all(jobs):
    """jobs: [(source, object, [flags])] -> compile what is out of date, in parallel."""
    cc = compiler()

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


def python_includes():
    inc = sysconfig.get_paths()["include"]
    return ["-I" + inc, "-I" + os.path.join(inc, "internal")]


COMMON_FLAGS = ["-O2", "-g0", "-fPIE",   # linked into the PIE executable only
                "-fwrapv", "-DNDEBUG", "-std=c11", "-w"]


def build_native_source():
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
    out = WORK / "gen" / "minirunc._native.c"
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


def build_archive():
    modules_dir = fetch_cpython()
    cffi_dir, cffi_version = fetch_cffi()
    native_c, init_bin = build_native_source()
    py_flags = COMMON_FLAGS + python_includes()
    jobs, inits = [], []
    for name, sources in BUILTINS:
        for s in sources:
            jobs.append((modules_dir / s, OBJ / "cpython" / (s.replace("/", "_")[:-2] + ".o"),
                         py_flags + ["-I" + str(modules_dir), "-DPy_BUILD_CORE_BUILTIN"]))
        inits.append((name, "PyInit_" + name))
    jobs.append((cffi_dir / "_cffi_backend.c", OBJ / "cffi" / "_cffi_backend.o",
                 py_flags + ["-DFFI_BUILDING=1", "-DUSE__THREAD", "-DHAVE_SYNC_SYNCHRONIZE"]))
    inits.append(("_cffi_backend", "PyInit__cffi_backend"))
    native_obj = OBJ / "native" / "minirunc._native.o"
    if native_obj.exists() and native_obj.stat().st_mtime < init_bin.stat().st_mtime:
        native_obj.delete()   # .incbin: the object embeds the init binary
    jobs.append((native_c, native_obj, py_flags))
    inits.append(("minirunc._native", "PyInit__native"))

    t0 = time.monotonic()
    done = compile_all(jobs)
    say("compiled %d of %d objects in %.1f s" % (len(done), len(jobs), time.monotonic() - t0))

    # One archive: our objects plus the members of Debian's static libffi.
    LIB.mkdir()
    archive = LIB / "libmrbuiltins.a"
    ffi_dir = OBJ / "libffi"
    libffi_a = local.path("/usr/lib/x86_64-linux-gnu/libffi.a")
    if not libffi_a.exists():
        die("%s missing (install libffi-dev)" % libffi_a)
    if not ffi_dir.exists():
        ffi_dir.mkdir()
        with local.cwd(ffi_dir):
            local["ar"]("x", libffi_a)
    objs = [j[1] for j in jobs] + sorted(ffi_dir // "*.o")
    if archive.exists():
        archive.delete()
    local["ar"]("rcs", archive, *objs)
    # The static libpython again after our archive (for symbols only our modules use), and a
    # libm.a (glibc's linker script naming libm-2.36.a + libmvec.a) that shadows libm.so.
    for name, target in (("libmrpython.a", libpython_a()),
                         ("libm.a", local.path("/usr/lib/x86_64-linux-gnu/libm.a"))):
        link = LIB / name
        if link.exists() or link.is_symlink():
            link.delete()
        os.symlink(str(target), str(link))
    # glibc's libm.a, linked into a dynamically linked program, needs a few names that only
    # static glibc provides: give them (see LIBM_SHIM) in an archive after it.
    shim_c = WORK / "gen" / "libm_shim.c"
    if not shim_c.exists() or shim_c.read("utf-8") != LIBM_SHIM:
        shim_c.write(LIBM_SHIM, "utf-8")
    shim_o = OBJ / "libm_shim.o"
    compile_all([(shim_c, shim_o, COMMON_FLAGS)])
    shim_a = LIB / "libmrlibmshim.a"
    if shim_a.exists():
        shim_a.delete()
    local["ar"]("rcs", shim_a, shim_o)
    config = {"libdir": str(LIB), "libs": ["mrbuiltins", "mrpython", "m", "mrlibmshim"],
              "modules": inits, "cffi": cffi_version}
    config_path = WORK / "builtins.json"
    config_path.write(json.dumps(config, indent=1), "utf-8")
    return config_path, [name for name, _ in inits]


LIBM_SHIM = r"""/* Generated by build/binary.py.  glibc's static libm (libm-2.36.a) linked into a
 * dynamically linked program: it refers to libc's internal aliases __frexp/__ldexp/__scalbn
 * (exported by libc.so.6 under their public names only) and to _dl_x86_cpu_features, which
 * static glibc fills at start-up and its ifunc resolvers read to pick FMA/AVX2 variants.
 * Here it stays zero, so every resolver picks the baseline (SSE2) implementation: the same
 * results, and no dependency on libm.so.6 or on ld.so's private symbols.
 * libm.a also sets errno through the TLS symbol `errno`, which libc.so.6 exports only as
 * GLIBC_PRIVATE; it gets its own here.  CPython does not rely on libm setting errno: the
 * math module and float pow() derive domain and range errors from the results (NaN, inf,
 * HUGE_VAL), as they do on platforms whose libm never sets errno. */
#include <math.h>
double __frexp(double x, int *e) { return frexp(x, e); }
float __frexpf(float x, int *e) { return frexpf(x, e); }
long double __frexpl(long double x, int *e) { return frexpl(x, e); }
double __ldexp(double x, int e) { return ldexp(x, e); }
float __ldexpf(float x, int e) { return ldexpf(x, e); }
long double __ldexpl(long double x, int e) { return ldexpl(x, e); }
double __scalbn(double x, int e) { return scalbn(x, e); }
float __scalbnf(float x, int e) { return scalbnf(x, e); }
long double __scalbnl(long double x, int e) { return scalbnl(x, e); }
__attribute__((aligned(64))) unsigned char _dl_x86_cpu_features[4096];
__thread int errno;
"""


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


def build_guard():
    """build/exe_guard.c -> an object whose every reference is resolved at link time."""
    obj = OBJ / "exe_guard.o"
    compile_all([(ROOT / "build" / "exe_guard.c", obj, GUARD_FLAGS)])
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


def seal(path):
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
    if len(interp) != 1:
        die("%s: expected one PT_INTERP, found %d" % (path, len(interp)))
    struct.pack_into("<I", data, interp[0][0], PT_MINIRUNC_INTERP)
    loads = [p for p in phdrs if p[1] == PT_LOAD]
    guard = [p for p in loads if p[4] <= e_entry < p[4] + p[7]]
    if not guard or guard[0][3] + guard[0][6] > GUARD_MAX_OFFSET or e_phoff > GUARD_MAX_OFFSET:
        die("%s: the entry guard is not at the front of the file (see build/exe_guard.ld)" % path)
    file_end = max(p[3] + p[6] for p in loads)
    for p in loads:
        where, _, flags, offset, vaddr, _, filesz, memsz, _ = p
        end = vaddr + filesz
        if not (flags & PF_W) or memsz <= filesz or end % 4096 == 0:
            continue
        pad = min(4096 - end % 4096, memsz - filesz)
        at = offset + filesz
        if at != file_end:
            die("%s: a writable segment with .bss is not the last one in the file" % path)
        data[at:at] = bytes(pad)
        struct.pack_into("<Q", data, where + 32, filesz + pad)
        if e_shoff >= at:
            e_shoff += pad
            struct.pack_into("<Q", data, 40, e_shoff)
        for i in range(e_shnum):
            off = e_shoff + i * e_shentsize
            (sh_offset,) = struct.unpack_from("<Q", data, off + 24)
            if sh_offset >= at:
                struct.pack_into("<Q", data, off + 24, sh_offset + pad)
        for q in phdrs:
            if q[1] != PT_LOAD and q[3] >= at and q[6]:
                die("%s: segment type %#x lies after the padded data" % (path, q[1]))
        file_end = at + pad
    if data.count(GUARD_TAG) != 1:
        die("%s: the entry guard's size record is missing or not unique" % path)
    tag = data.index(GUARD_TAG)
    struct.pack_into("<Q", data, tag + len(GUARD_TAG), len(data))
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def libpython_a():
    ver = "%d.%d" % sys.version_info[:2]
    candidates = [
        local.path(sysconfig.get_config_var("LIBPL") or "/nonexistent") / ("libpython%s.a" % ver),
        local.path(sys.base_prefix) / "lib" / ("python" + ver) /
        ("config-%s-x86_64-linux-gnu" % ver) / ("libpython%s.a" % ver),
    ]
    for c in candidates:
        if c.exists():
            return c
    die("no static libpython (libpython%s.a) for %s" % (ver, sys.executable))


def commit_id():
    git = local["git"]
    with local.cwd(ROOT):
        rc, out, _ = git.run(["rev-parse", "--short=12", "HEAD"], retcode=None)
        if rc != 0:
            return "unknown"
        rc2, status, _ = git.run(["status", "--porcelain", "--untracked-files=no", "--", "src", "native"],
                                 retcode=None)
        return out.strip() + ("-dirty" if status.strip() else "")


def stage_sources():
    """A copy of src/minirunc with a generated _commit.py, and the entry script."""
    if STAGE.exists():
        STAGE.delete()
    pkg = STAGE / "minirunc"
    shutil.copytree(str(ROOT / "src" / "minirunc"), str(pkg),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "_commit.py"))
    (pkg / "_commit.py").write('COMMIT = "%s"\n' % commit_id(), "utf-8")
    entry = STAGE / "minirunc_main.py"
    entry.write("import sys\n\nfrom minirunc.cli import main\n\nsys.exit(main())\n", "utf-8")
    return entry


def dynload_modules():
    """Every extension module of the interpreter's lib-dynload (to keep out of the build)."""
    dynload = local.path(sysconfig.get_config_var("DESTSHARED"))
    if not (dynload // "*.so"):
        die("no extension modules found in %s" % dynload)
    return sorted({p.name.split(".")[0] for p in dynload // "*.so"})


def _imports(tree, module_level_only):
    """Absolute module names imported in an AST (module level only: not in function bodies)."""
    import ast
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
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


def run_nuitka(entry, config_path, builtin_names, guard_obj):
    excluded = sorted(set(dynload_modules()) | set(builtin_names))
    config = json.loads(config_path.read("utf-8"))
    # built-in ones too (they must not be copied either), and the trimmed stdlib modules
    config["excluded"] = excluded + TRIMMED_STDLIB + CJK_ENCODINGS
    config["bytecode"] = BYTECODE
    config_path.write(json.dumps(config, indent=1), "utf-8")
    args = [
        # -X utf8: Nuitka gives the binary the UTF-8 mode of the Python running it.  UTF-8
        # whatever the locale (surrogateescape for other bytes), and a LANG naming a locale
        # the host lacks (C.UTF-8 in a bare chroot) no longer aborts the start.
        "-X", "utf8",
        "-m", "nuitka", "--standalone", "--static-libpython=yes",
        "--user-plugin=%s" % (ROOT / "build" / "nuitka_builtins.py"),
        "--include-package=minirunc",
        "--output-dir=%s" % NUITKA_OUT, "--output-filename=minirunc-bin",
        "--assume-yes-for-downloads", "--quiet", "--no-progressbar",
        "--python-flag=no_docstrings",   # nothing reads __doc__; saves ~1 MB
        # Nuitka refuses an argv holding "-c" (a fork bomb guard for programs that run
        # sys.executable -c); `minirunc exec ID sh -c ...` and `exec -c CAP` need it.
        "--no-deployment-flag=self-execution",
    ] + ["--nofollow-import-to=%s" % m for m in excluded + TRIMMED_STDLIB + CJK_ENCODINGS] + [entry]
    env = {"MINIRUNC_BUILTINS": str(config_path), "PYTHONHASHSEED": "0",
           # the plugin's C file defines the no-op replacement (see nuitka_builtins.py)
           # no symbol of the static archives needs exporting: nothing is ever dlopen()ed
           # the entry guard: first in the file, first to run (see seal())
           "LDFLAGS": " ".join(["-Wl,--wrap=patchInspectModule", "-Wl,--exclude-libs,ALL",
                                str(guard_obj), "-Wl,-T,%s" % (ROOT / "build" / "exe_guard.ld"),
                                "-Wl,-e,minirunc_guard_entry"])}
    dist = NUITKA_OUT / (entry.stem + ".dist")
    if dist.exists():
        dist.delete()   # left-overs of an earlier build would hide what this one copied
    t0 = time.monotonic()
    with local.cwd(STAGE), local.env(**env):
        PY[args] & FG
    say("nuitka took %.1f s" % (time.monotonic() - t0))
    files = [p for p in dist.walk() if not p.is_dir()]
    extra = [str(p) for p in files if p.name != "minirunc-bin"]
    if extra:
        die("the standalone folder holds more than the executable: %s" % ", ".join(extra))
    return dist / "minirunc-bin"


def check(binary):
    ldd = local["ldd"](binary)
    bad = [line.strip() for line in ldd.splitlines()
           if line.strip() and not any(ok in line for ok in LIBC_ONLY)]
    if bad:
        die("%s needs more than glibc:\n%s" % (binary, ldd))
    if "GLIBC_PRIVATE" in local["objdump"]("-T", binary):
        die("%s refers to GLIBC_PRIVATE symbols" % binary)
    out = local[binary]("--version")
    if "minirunc version" not in out:
        die("%s --version printed %r" % (binary, out))
    return ldd, out


def main():
    t0 = time.monotonic()
    os.chdir(str(ROOT))
    ensure_apt()
    WORK.mkdir()
    check_trimmed_imports()
    config_path, names = build_archive()
    entry = stage_sources()
    built = run_nuitka(entry, config_path, names, build_guard())
    DIST.mkdir()
    tmp = DIST / ".minirunc.tmp"
    shutil.copy2(str(built), str(tmp))
    local["strip"]("--strip-unneeded", tmp)
    # Nuitka's standalone RPATH $ORIGIN would make ld.so load a libc.so.6 lying beside
    # the binary (a root-run program in a writable directory: code execution). Nothing
    # is loaded from there: every module is built in.
    local["patchelf"]("--remove-rpath", tmp)
    seal(str(tmp))
    tmp.chmod(0o755)
    os.replace(str(tmp), str(OUTPUT))
    try:
        ldd, version = check(OUTPUT)
    except ProcessExecutionError as e:
        die("running %s failed: %s" % (OUTPUT, e))
    say("built %s (%.1f MB) in %.0f s" % (OUTPUT, OUTPUT.stat().st_size / 1e6, time.monotonic() - t0))
    sys.stdout.write(ldd)
    sys.stdout.write(version)


if __name__ == "__main__":
    main()
