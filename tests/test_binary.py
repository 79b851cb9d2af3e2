"""The single binary dist/minirunc (built by `make binary`, see build/binary.py).

Skipped when dist/minirunc is missing, unless MINIRUNC_REQUIRE_BINARY is set (then it is a
failure).  MINIRUNC_BINARY names another binary to test.  Root and real containers.
"""

import concurrent.futures
import json
import os
import re
import shutil
import struct
import subprocess
import time
import uuid
import warnings

import pytest

from conftest import build_constant
from make_bundle import make_bundle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("MINIRUNC_BINARY") or os.path.join(REPO, "dist", "minirunc")
# no libm.so.6: the math functions are built in (build/binary.py musl_math(), tests/test_math.py)
ALLOWED_LIBS = ("linux-vdso.so.1", "libc.so.6", "libpthread.so.0", "libdl.so.2",
                "ld-linux-x86-64.so.2")
GLIBC_CORE = ("libc.so.6", "libpthread.so.0", "libdl.so.2")


@pytest.fixture(scope="module")
def binary():
    if not os.path.exists(BINARY):
        if os.environ.get("MINIRUNC_REQUIRE_BINARY"):
            pytest.fail("%s is missing and MINIRUNC_REQUIRE_BINARY is set: run `make binary`" % BINARY)
        pytest.skip("%s is missing: run `make binary`" % BINARY)
    return BINARY


def clean_env(**changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LISTEN_FDS", "LISTEN_PID", "MINIRUNC_ROOT")}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(cmd, timeout=60, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("env", clean_env())
    return subprocess.run(cmd, timeout=timeout, **kw)


@pytest.fixture
def hello_bundle(tmp_path):
    path = tmp_path / "bundle"
    make_bundle(str(path), ["sh", "-c", "echo hello from $(hostname)"])
    return path


def test_needs_nothing_but_glibc(binary):
    ldd = run(["ldd", binary])
    assert ldd.returncode == 0, ldd.stderr
    libs = [line.split()[0] for line in ldd.stdout.splitlines() if line.strip()]
    assert libs and all(os.path.basename(lib) in ALLOWED_LIBS for lib in libs), ldd.stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        run(["readelf", "-d", binary]).stdout)
    assert set(needed) <= {"libc.so.6", "libpthread.so.0", "libdl.so.2",
                           "ld-linux-x86-64.so.2"}, needed
    symbols = run(["objdump", "-T", binary]).stdout
    assert "GLIBC_PRIVATE" not in symbols
    versions = {tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_([0-9.]+)", symbols)}
    assert max(versions) <= (2, 17), sorted(versions)[-3:]   # the floor (issue 9)
    assert os.path.getsize(binary) <= 10 * 1024 * 1024


def test_no_library_is_loaded_from_beside_the_binary(binary, tmp_path):
    """No RPATH/RUNPATH: a libc.so.6 planted next to a copy (say in a writable directory)
    is never loaded by a binary that runs as root."""
    dynamic = run(["readelf", "-d", binary]).stdout
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
    copy = tmp_path / "minirunc"
    shutil.copy2(binary, copy)
    (tmp_path / "libc.so.6").write_bytes(b"not a library")
    (tmp_path / "libpthread.so.0").write_bytes(b"not a library")
    r = run([str(copy), "--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("minirunc version ")


def test_version_and_spec(binary, tmp_path):
    r = run([binary, "--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("minirunc version ")
    assert re.search(r"^commit: [0-9a-f]{7,}", r.stdout, re.M), r.stdout
    r = run([binary, "spec"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "config.json").read_text())["ociVersion"]


def make_chroot(root, binary):
    """busybox, glibc's core files, the binary and a bundle: nothing else."""
    for d in ("bin", "lib64", "lib/x86_64-linux-gnu", "proc", "tmp", "run", "dev", "sys"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    shutil.copy2(binary, os.path.join(root, "bin", "minirunc"))
    shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"),
                os.path.join(root, "lib64", "ld-linux-x86-64.so.2"))
    for lib in GLIBC_CORE:
        shutil.copy(os.path.realpath(os.path.join("/lib/x86_64-linux-gnu", lib)),
                    os.path.join(root, "lib/x86_64-linux-gnu", lib))
    make_bundle(os.path.join(root, "bundle"), ["sh", "-c", "echo hello from the chroot"])


def test_runs_in_a_busybox_only_chroot(binary, tmp_path):
    root = str(tmp_path / "chroot")
    make_chroot(root, binary)
    script = ("/bin/busybox mount -t proc proc /proc && "
              "/bin/minirunc --version && "
              "cd /tmp && /bin/minirunc spec && "
              "/bin/minirunc --root /run/minirunc run --bundle /bundle c1")
    # The chroot's root is made a mount point (as a container runtime's / always is).
    r = run(["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" "$0" && exec chroot "$0" /bin/busybox sh -c "$1"', root, script],
            env=clean_env(HOME=None, LANG="C.UTF-8"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "minirunc version" in r.stdout
    assert "hello from the chroot" in r.stdout
    assert json.loads(open(os.path.join(root, "tmp", "config.json")).read())["process"]


def test_home_unset(binary, tmp_path, hello_bundle):
    env = clean_env(HOME=None, XDG_CACHE_HOME=None, XDG_RUNTIME_DIR=None, TMPDIR=None)
    assert run([binary, "--version"], env=env).returncode == 0
    r = run([binary, "spec"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    r = run([binary, "--root", str(tmp_path / "state"), "run", "--bundle", str(hello_bundle),
             "home-" + uuid.uuid4().hex[:8]], env=env)
    assert r.returncode == 0, r.stderr
    assert "hello from minirunc" in r.stdout


def test_readonly_tmp(binary, hello_bundle):
    state = "/run/minirunc-test-%s" % uuid.uuid4().hex[:10]
    script = ('mount -o bind,ro /tmp /tmp && ! touch /tmp/.minirunc-rw-probe 2>/dev/null && '
              'exec "$0" --root "$1" run --bundle "$2" "$3"')
    try:
        r = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                 binary, state, str(hello_bundle), "rotmp"], env=clean_env(TMPDIR=None, HOME=None))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello from minirunc" in r.stdout


def test_parallel_runs(binary, tmp_path, hello_bundle):
    root = str(tmp_path / "state")

    def one(i):
        return run([binary, "--root", root, "run", "--bundle", str(hello_bundle), "par-%d" % i])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "hello from minirunc" in r.stdout


def test_create_then_start_from_another_invocation(binary, tmp_path):
    bundle = tmp_path / "bundle"
    make_bundle(str(bundle), ["sh", "-c", "echo started as pid $$"])
    root = str(tmp_path / "state")
    cid = "cs-" + uuid.uuid4().hex[:8]
    out_path = tmp_path / "out"
    try:
        # The container keeps the stdio it is created with: files, not pipes, so that
        # `create` is seen to return on its own.
        with open(out_path, "w") as out, open(tmp_path / "err", "w") as err:
            create = subprocess.run([binary, "--root", root, "create", "--bundle", str(bundle), cid],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    timeout=60, env=clean_env())
        assert create.returncode == 0, (tmp_path / "err").read_text()
        # The creating command has exited; the container waits for `start`.
        state = json.loads(run([binary, "--root", root, "state", cid]).stdout)
        assert state["status"] == "created"
        assert state["pid"] > 0
        r = run([binary, "--root", root, "start", cid])
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if json.loads(run([binary, "--root", root, "state", cid]).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert out_path.read_text().strip() == "started as pid 1"
    finally:
        run([binary, "--root", root, "delete", "--force", cid])


def damaged_copy(binary, path, size=None, append=b""):
    with open(binary, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:size] if size is not None else data)
        f.write(append)
    os.chmod(path, 0o755)
    return str(path)


# Cut at these fractions of the file (and one byte short, and grown): each copy must stop
# before running anything, with one line naming it, whatever part of the file is missing.
CUTS = [0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99]


@pytest.mark.parametrize("damage", ["cut-%g%%" % (f * 100) for f in CUTS] + ["one-byte-short", "grown"])
def test_damaged_copy_fails_clearly(binary, tmp_path, damage):
    size = os.path.getsize(binary)
    if damage == "grown":
        copy = damaged_copy(binary, tmp_path / "minirunc", append=b"\0" * 10)
        have = size + 10
    else:
        have = size - 1 if damage == "one-byte-short" else int(size * float(damage[4:-1]) / 100)
        copy = damaged_copy(binary, tmp_path / "minirunc", size=have)
    r = run([copy, "--version"], timeout=20)
    assert r.returncode == 127, (damage, r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0] == "minirunc: %s is damaged (%d of %d bytes): copy it again" % (copy, have, size)


def test_damage_guard_is_at_the_front(binary):
    """What must be intact for the guard to run (headers, guard) is the first pages; the file
    has no PT_INTERP for the kernel (the guard loads ld.so) and its writable segment's file part
    ends on a page boundary (execve() would otherwise touch the end of the file)."""
    headers = run(["readelf", "-lhW", binary]).stdout
    entry = int(re.search(r"Entry point address:\s+0x([0-9a-f]+)", headers).group(1), 16)
    loads = [tuple(int(x, 16) for x in m.groups()) for m in re.finditer(
        r"^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) 0x([0-9a-f]+) ",
        headers, re.M)]
    guard = [(off, vaddr, filesz) for off, vaddr, filesz, memsz in loads if vaddr <= entry < vaddr + filesz]
    assert guard and guard[0][0] + guard[0][2] < os.path.getsize(binary) // 100, headers
    assert not re.search(r"^\s+INTERP\s", headers, re.M), headers
    for off, vaddr, filesz, memsz in loads:
        if memsz > filesz:
            assert (vaddr + filesz) % 4096 == 0, headers


def test_started_through_the_dynamic_loader(binary):
    """`ld.so dist/minirunc`: the guard then checks argv[0] and goes straight to _start."""
    r = run(["/lib64/ld-linux-x86-64.so.2", binary, "--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("minirunc version ")


def sections_of(path):
    """{name: (address, file offset, size)} of an ELF file's sections."""
    out = {}
    for m in re.finditer(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
                         run(["readelf", "-SW", path]).stdout, re.M):
        out[m.group(1)] = tuple(int(m.group(i), 16) for i in (2, 3, 4))
    return out


def test_what_the_door_runs_lies_at_the_front(binary):
    """build/exe_guard.ld: the start code, __wrap_main and the door's code and read-only data
    lie in the file's first 64 KB (read anyway as the program starts), and nothing runs
    before main() (no .init_array, .ctors or .preinit_array: a constructor would run before
    the door on every command)."""
    sections = {name: (offset, size) for name, (_, offset, size) in sections_of(binary).items()}
    for name in (".minirunc_guard", ".minirunc_door", ".minirunc_door_rodata"):
        assert name in sections, sorted(sections)
        offset, size = sections[name]
        assert size > 0 and offset + size <= 64 * 1024, (name, sections[name])
    assert sections[".minirunc_door"][1] > 8192, "the door's code is not in its section"
    offset, size = sections[".minirunc_door_rodata"]
    with open(binary, "rb") as f:
        f.seek(offset)
        assert b"/proc/%llu/stat" in f.read(size), "native/door.c's strings are elsewhere"
    assert not {".init_array", ".ctors", ".preinit_array"} & set(sections), sorted(sections)


def plugin_module():
    """build/nuitka_builtins.py (it needs Nuitka, which `make binary` installed)."""
    pytest.importorskip("nuitka")
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "nuitka_builtins", os.path.join(REPO, "build", "nuitka_builtins.py"))
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # Nuitka's own `import imp`
        spec.loader.exec_module(module)
    return module


def test_bytecode_items_of_a_blob():
    """The parser of the constants blob's ".bytecode" entry: two modules (one whose size
    takes two bytes of variable length), then the end tag; a damaged entry is an error."""
    plugin = plugin_module()
    items = b"X\x03abc" + b"X\x81\x01" + b"m" * 129
    body = struct.pack("<H", 2) + items + b"."
    blob = b".bytecode\0" + struct.pack("<I", len(body)) + body + b"rest"
    assert plugin.bytecode_items(blob) == (len(body), [(16, 18, 21), (21, 24, 24 + 129)])
    assert blob[18:21] == b"abc" and blob[24:24 + 129] == b"m" * 129
    for damaged in (blob.replace(b"X\x81", b"Y\x81"), blob.replace(b"m.", b"mm"),
                    b".constants\0" + blob[10:]):
        with pytest.raises(RuntimeError):
            plugin.bytecode_items(damaged)


LOADER_ROWS = """
    "alpha", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 3, NUITKA_BYTECODE_FLAG
    "beta.gamma", NULL, NULL, NULL, NULL, NULL, &entry_x, NULL, NULL, NULL, NULL, 1, 129, NUITKA_BYTECODE_FLAG | NUITKA_PACKAGE_FLAG
    "os", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NUITKA_EXCLUDED_MODULE_FLAG
"""


def test_modules_laid_out_first_keep_their_index():
    """lay_out_bytecode: the named module's item moves to the front, every index still finds
    its own bytes, the entry keeps its size and stays parseable; a loader table that does
    not fit the blob (a size, a name or a count off) is refused (the build then stops)."""
    plugin = plugin_module()
    body = struct.pack("<H", 2) + b"X\x03abc" + b"X\x81\x01" + b"m" * 129 + b"."
    blob = b".bytecode\0" + struct.pack("<I", len(body)) + body + b"rest"
    size, items = plugin.bytecode_items(blob)
    modules = plugin.bytecode_modules(LOADER_ROWS, items)
    assert modules == {"alpha": 0, "beta.gamma": 1}
    laid_out, offsets = plugin.lay_out_bytecode(blob, items, [modules["beta.gamma"]])
    assert len(laid_out) == len(blob) and laid_out.endswith(b".rest")
    assert laid_out[offsets[0]:offsets[0] + 3] == b"abc"
    assert laid_out[offsets[1]:offsets[1] + 129] == b"m" * 129
    assert offsets[1] < offsets[0]
    assert plugin.bytecode_items(laid_out)[0] == size
    assert plugin.lay_out_bytecode(blob, items, []) == (blob, [18, 24])
    assert plugin.bytecode_modules(LOADER_ROWS.replace(", 129,", ", 128,"), items) is None
    assert plugin.bytecode_modules(LOADER_ROWS.replace('"alpha"', '"beta.gamma"'), items) is None
    assert plugin.bytecode_modules(LOADER_ROWS, items + [(0, 0, 0)]) is None


def build_dir(binary):
    """build/binary/<target> of the tree that built `binary`, or skip."""
    target = "musl" if os.path.basename(binary).endswith("-static") else "gnu"
    if os.path.realpath(binary) != os.path.realpath(os.path.join(REPO, "dist", os.path.basename(binary))):
        pytest.skip("not the binary of this tree's build directory")
    return os.path.join(REPO, "build", "binary", target)


def built_bytecode(binary):
    """What the build of `binary` left in Nuitka's build directory: the plugins' C files'
    directory, the laid-out constants blob, and {module: (index, size)} from __loader.c with
    the offset table of the bytecode index (nuitka_builtins.bytecode_index_source)."""
    plugin = plugin_module()
    build = os.path.join(build_dir(binary), "nuitka", "minirunc_main.build")
    plugins = os.path.join(build, "plugins")
    with open(os.path.join(build, "blobs", "__constant.bin"), "rb") as f:
        blob = f.read()
    with open(os.path.join(build, "__loader.c")) as f:
        sizes = {name: (int(i), int(n)) for name, i, n in plugin.LOADER_BYTECODE_ENTRY.findall(f.read())}
    with open(os.path.join(plugins, "plugin.minirunc-builtins.bytecode_index.c")) as f:
        table = [int(n) for n in re.search(r"offsets\[\d+\] = \{([^}]*)\}", f.read()).group(1).split(",")
                 if n.strip()]
    return plugin, plugins, blob, sizes, table


def test_each_module_finds_its_own_bytecode(binary):
    """The table the loader uses instead of walking the blob (nuitka_builtins.
    bytecode_index_source) was made from the very blob inside the binary, and each module's
    entry points at bytecode that unmarshals to that module's code (the blob is laid out
    run path first, so a wrong entry would run another module); the run path's modules lie
    at the front, one after the other."""
    import marshal
    plugin, plugins, blob, sizes, table = built_bytecode(binary)
    size, items = plugin.bytecode_items(blob)
    assert len(table) == len(items) > 100
    assert len(sizes) == len(items)
    for name, (i, n) in sizes.items():
        code = marshal.loads(blob[table[i]:table[i] + n])
        path = name.replace(".", "/")
        assert code.co_filename.endswith((path + ".py", path + "/__init__.py")), (name, code.co_filename)
    with open(os.path.join(plugins, "plugin.minirunc-builtins.bytecode_index.c")) as f:
        assert f.read() == plugin.bytecode_index_source(size, table, True)
    from_front = sorted((table[sizes[m][0]], m) for m in sizes)
    first = [m for _, m in from_front[:12]]
    assert first[0] == "encodings" and "minirunc.cli" in first, first
    with open(binary, "rb") as f:
        data = f.read()
    at = data.find(blob[:16])   # the name, the size and the count
    assert at > 0 and data[at:at + len(blob)] == blob


FROZEN_ROW = re.compile(r"^    \{(\d+), (\d+), \(PyObject \*\)[^,]+, minirunc_frozen_\d+_intern, 0\},$", re.M)


def test_the_run_path_is_deep_frozen_from_its_own_bytecode(binary):
    """nuitka_builtins.deepfreeze_source: every module of RUN_PATH_MODULES that the binary
    ships as bytecode has a static code object, keyed by where its bytecode lies in the
    laid-out blob and its size, and the C the binary was built from is what CPython's
    deepfreeze.py makes of exactly those bytes."""
    plugin, plugins, blob, sizes, table = built_bytecode(binary)
    listed = [m for m in build_constant("RUN_PATH_MODULES") if m in sizes]
    assert "minirunc.container" in listed and "encodings" in listed
    with open(os.path.join(plugins, "plugin.minirunc-builtins.deepfreeze.c")) as f:
        source = f.read()
    where = [(table[sizes[m][0]], sizes[m][1]) for m in listed]
    assert [(int(o), int(n)) for o, n in FROZEN_ROW.findall(source)] == where
    frozen = [(m, at, blob[at:at + n]) for m, (at, n) in zip(listed, where)]
    tools = os.path.join(REPO, "build", "binary", "sources", "Python-3.11.2", "Tools", "scripts")
    assert plugin.deepfreeze_source(tools, frozen) == source


def gdb_callers(program, args, functions, tmp_path):
    """{function: [the caller of each call]} of `program` for one run under gdb."""
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed (make deps installs it)")
    script = tmp_path / "count.gdb"
    lines = ["set pagination off", "set breakpoint pending off"]
    for f in functions:
        lines += ["break %s" % f, "commands", "silent", 'printf "CALLED %s\\n"' % f, "bt 2",
                  "continue", "end"]
    script.write_text("\n".join(lines + ["run", "quit"]) + "\n")
    r = run(["gdb", "-q", "-batch", "-x", str(script), "--args", program] + args, timeout=120)
    assert "Breakpoint %d at" % len(functions) in r.stdout, r.stdout + r.stderr
    calls = re.findall(r"^CALLED (\S+)\n#0 [^\n]*\n#1 +(?:0x[0-9a-f]+ in )?(\w+)", r.stdout, re.M)
    assert len(calls) == r.stdout.count("CALLED "), r.stdout
    return {f: [caller for name, caller in calls if name == f] for f in functions}


@pytest.mark.skipif(os.geteuid() != 0, reason="runs a container")
def test_a_run_unmarshals_none_of_its_modules(binary, with_symbols, tmp_path):
    """Nuitka's loader (and CPython's, for the modules Nuitka lists as frozen) asks
    PyMarshal_ReadObjectFromString for each module it imports; in a `run` each such call
    is answered with the deep-frozen code object (the wrap), so the real unmarshaller is
    entered only for CPython's own getpath (in libpython, run once at start-up)."""
    bundle = tmp_path / "bundle"
    make_bundle(str(bundle), ["true"])
    calls = gdb_callers(with_symbols, ["--root", str(tmp_path / "state"), "run", "--bundle",
                                       str(bundle), "frozen-%s" % uuid.uuid4().hex[:8]],
                        ["__wrap_PyMarshal_ReadObjectFromString", "PyMarshal_ReadObjectFromString"],
                        tmp_path)
    assert len(calls["__wrap_PyMarshal_ReadObjectFromString"]) >= 25, calls
    assert calls["PyMarshal_ReadObjectFromString"] == ["_PyConfig_InitPathConfig"], calls


def test_the_run_path_modules_are_what_a_run_imports(tmp_path):
    """build/binary.py RUN_PATH_MODULES (laid out first in the blob) names every minirunc
    module a `run` imports from source."""
    listed = build_constant("RUN_PATH_MODULES")
    bundle = tmp_path / "bundle"
    make_bundle(str(bundle), ["true"])
    r = run([os.path.join(REPO, ".venv", "bin", "python"), "-X", "importtime", "-m", "minirunc",
             "--root", str(tmp_path / "state"), "run", "--bundle", str(bundle), "imports"],
            env=clean_env(PYTHONPATH=os.path.join(REPO, "src")))
    assert r.returncode == 0, r.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    imported = {m for m in imported if m.startswith("minirunc")} - {"minirunc.__main__",
                                                                    "minirunc._native"}
    assert "minirunc.container" in imported
    assert imported <= set(listed), sorted(imported - set(listed))


def hot_functions_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "hot_functions", os.path.join(REPO, "build", "hot_functions.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def with_symbols(binary):
    """The build's copy of `binary` that keeps its symbols (build/binary.py symbols_copy()):
    the very same sections."""
    path = os.path.join(build_dir(binary), "minirunc-symbols")
    assert os.path.exists(path), path
    ours, theirs = sections_of(binary), sections_of(path)
    for name in (".text", ".text.minirunc_hot", ".rodata", ".data"):
        assert ours[name][::2] == theirs[name][::2], name   # address and size
    return path


def test_the_hot_functions_lie_together_at_the_front_of_text(with_symbols):
    """build/hot_functions.txt's functions fill .text.minirunc_hot, right before .text."""
    hot = hot_functions_module()
    sections = sections_of(with_symbols)
    start, _, size = sections[".text.minirunc_hot"]
    assert sections[".text"][0] - (start + size) < 64, "the hot text is not right before .text"
    with open(hot.LIST) as f:
        listed = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    door = [sections[n][::2] for n in (".minirunc_guard", ".minirunc_door")]
    inside = outside = 0
    for address, (name, length) in hot.function_symbols(with_symbols).items():
        in_hot = start <= address < start + size
        in_door = any(a <= address < a + n for a, n in door)
        if name in listed and not in_door:
            inside += in_hot
            outside += not in_hot
        elif in_hot:
            pytest.fail("%s is in the hot text but not in the list" % name)
    assert inside > 1000 and outside <= inside // 50, (inside, outside)


@pytest.mark.skipif(os.geteuid() != 0, reason="the traced commands run containers")
def test_the_hot_functions_are_what_the_hot_commands_call(binary, with_symbols):
    """What `run`, `exec`, `state` and `delete` call (traced: build/trace_calls.c) lies in the
    hot text, nearly all of it: else the list is stale (`make hot-functions`)."""
    if os.path.basename(binary).endswith("-static"):
        pytest.skip("the list is the gnu binary's (musl's libc functions are not in it)")
    hot = hot_functions_module()
    sections = sections_of(with_symbols)
    start, _, size = sections[".text.minirunc_hot"]
    text_start, _, text_size = sections[".text"]
    functions = hot.function_symbols(with_symbols)
    names = set(hot.called_functions(with_symbols))
    called = [(a, n) for a, (name, n) in functions.items() if name in names]
    hot_bytes = sum(n for a, n in called if start <= a < start + size)
    cold_bytes = sum(n for a, n in called if text_start <= a < text_start + text_size)
    assert hot_bytes > 500 * 1024, hot_bytes
    assert cold_bytes <= hot_bytes // 20, ("%d bytes of called code outside the hot text: "
                                           "run `make hot-functions`" % cold_bytes)


PYTHON_ENVIRONMENT = {"PYTHONDEVMODE": "1", "PYTHONMALLOC": "debug", "PYTHONIOENCODING": "bogus",
                      "PYTHONWARNINGS": "error", "PYTHONVERBOSE": "1", "PYTHONPATH": "/nonexistent",
                      "PYTHONHOME": "/nonexistent", "PYTHONPROFILEIMPORTTIME": "1",
                      "PYTHONOPTIMIZE": "2", "PYTHONINSPECT": "1"}


@pytest.mark.parametrize("name", sorted(PYTHON_ENVIRONMENT))
def test_the_python_environment_does_not_reach_the_interpreter(binary, tmp_path, name):
    """The interpreter inside the binary ignores PYTHON* (build/nuitka_builtins.py
    FROZEN_STDLIB_ON): PYTHONDEVMODE=1 and PYTHONMALLOC=debug used to crash every command,
    a bad PYTHONIOENCODING to stop it with a fatal error.  The interpreter's path gives what
    it gives without the variable."""
    args = [binary, "--root", str(tmp_path / "state"), "state", "nosuch"]
    plain = run(args, env=clean_env(MINIRUNC_NO_DOOR="1"))
    assert plain.returncode == 1 and "does not exist" in plain.stderr, plain
    r = run(args, env=clean_env(MINIRUNC_NO_DOOR="1", **{name: PYTHON_ENVIRONMENT[name]}))
    assert (r.returncode, r.stdout, r.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_a_container_runs_whatever_the_python_environment(binary, tmp_path, hello_bundle):
    r = run([binary, "--root", str(tmp_path / "state"), "run", "--bundle", str(hello_bundle),
             "pyenv"], env=clean_env(**PYTHON_ENVIRONMENT))
    assert r.returncode == 0 and r.stdout.startswith("hello from "), r
