"""The binaries on hosts older and smaller than the build machine (issue 9).

- dist/minirunc asks for nothing newer than GLIBC_2.17 and runs a container in a chroot whose
  only C library is Debian 11's glibc 2.31 (libc6 from bullseye, unpacked by
  build/bullseye_libc.sh into build/bullseye/root: `make test` fetches it once);
- dist/minirunc-static has no ELF interpreter and no DT_NEEDED, and runs a container in a
  chroot that holds no C library at all.

Skipped when a binary (or the bullseye libc) is missing, unless MINIRUNC_REQUIRE_BINARY is set
(then it is a failure).  Root and real containers.
"""

import os
import re
import shutil
import subprocess

import pytest

from make_bundle import make_bundle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GNU = os.path.join(REPO, "dist", "minirunc")
STATIC = os.path.join(REPO, "dist", "minirunc-static")
BULLSEYE = os.path.join(REPO, "build", "bullseye", "root")
GLIBC_LIBS = {"libc.so.6", "libpthread.so.0", "libdl.so.2", "ld-linux-x86-64.so.2"}   # no libm


def need(path, what):
    if not os.path.exists(path):
        if os.environ.get("MINIRUNC_REQUIRE_BINARY"):
            pytest.fail("%s is missing and MINIRUNC_REQUIRE_BINARY is set: %s" % (path, what))
        pytest.skip("%s is missing: %s" % (path, what))
    return path


@pytest.fixture(scope="module")
def gnu():
    return need(GNU, "run `make binary`")


@pytest.fixture(scope="module")
def static():
    return need(STATIC, "run `make binary-static`")


@pytest.fixture(scope="module")
def bullseye():
    need(os.path.join(BULLSEYE, "lib", "x86_64-linux-gnu", "libc.so.6"), "run `sh build/bullseye_libc.sh`")
    return BULLSEYE


def run(cmd, timeout=60, **kw):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LISTEN_FDS", "LISTEN_PID", "MINIRUNC_ROOT", "HOME")}
    env["LANG"] = "C.UTF-8"
    return subprocess.run(cmd, timeout=timeout, capture_output=True, text=True, env=env, **kw)


def test_glibc_floor_is_2_17(gnu):
    symbols = run(["objdump", "-T", gnu]).stdout
    versions = sorted({tuple(int(p) for p in v.split("."))
                       for v in re.findall(r"GLIBC_([0-9][0-9.]*)", symbols)})
    assert versions and versions[-1] <= (2, 17), versions[-3:]
    assert "GLIBC_PRIVATE" not in symbols
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", gnu]).stdout))
    assert needed <= GLIBC_LIBS, needed


def test_static_binary_needs_no_c_library(static):
    headers = run(["readelf", "-lW", static]).stdout
    # seal() renames a PT_INTERP to 0x6d720003: neither may be there
    assert "INTERP" not in headers and "0x6d720003" not in headers, headers
    dynamic = run(["readelf", "-dW", static]).stdout
    assert "NEEDED" not in dynamic, dynamic
    assert os.path.getsize(static) <= 10 * 1024 * 1024
    r = run([static, "--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("minirunc version ")


def test_static_binary_refuses_a_damaged_copy(static, tmp_path):
    with open(static, "rb") as f:
        data = f.read()
    copy = tmp_path / "minirunc"
    copy.write_bytes(data[:len(data) // 2])
    copy.chmod(0o755)
    r = run([str(copy), "--version"], timeout=20)
    assert r.returncode == 127, r.stderr
    assert r.stderr == "minirunc: %s is damaged (%d of %d bytes): copy it again\n" % (
        copy, len(data) // 2, len(data))


def make_chroot(root, binary, libc_root=None):
    """busybox (static), the binary, a bundle and /etc/passwd+group; the C library only if
    libc_root is given (its lib/ and lib64/ trees)."""
    for d in ("bin", "proc", "tmp", "run", "dev", "sys", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    shutil.copy2(binary, os.path.join(root, "bin", "minirunc"))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    if libc_root:
        for d in ("lib", "lib64"):
            shutil.copytree(os.path.join(libc_root, d), os.path.join(root, d), symlinks=True)
    make_bundle(os.path.join(root, "bundle"), ["sh", "-c", "echo hello from the chroot"])


def run_in_chroot(root, script):
    # The chroot's root is made a mount point (as a container runtime's / always is).
    return run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" "$0" && exec chroot "$0" /bin/busybox sh -c "$1"', root, script])


CONTAINER = ("/bin/busybox mount -t proc proc /proc && "
             "/bin/minirunc --version && "
             "/bin/minirunc --root /run/minirunc run --bundle /bundle c1 && "
             "/bin/minirunc --root /run/minirunc list")


def test_gnu_binary_runs_on_glibc_2_31(gnu, bullseye, tmp_path):
    root = str(tmp_path / "chroot")
    make_chroot(root, gnu, bullseye)
    # the chroot's C library is bullseye's, and it is the only one there
    libc = run(["chroot", root, "/lib/x86_64-linux-gnu/libc.so.6"])
    assert "release version 2.31" in libc.stdout, libc.stdout + libc.stderr
    r = run_in_chroot(root, CONTAINER)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "minirunc version" in r.stdout
    assert "hello from the chroot" in r.stdout


def test_static_binary_runs_without_a_c_library(static, tmp_path):
    root = str(tmp_path / "chroot")
    make_chroot(root, static)
    libs = [p for p in ("lib", "lib64", "usr/lib") if os.path.exists(os.path.join(root, p))]
    assert libs == []
    r = run_in_chroot(root, CONTAINER)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "minirunc version" in r.stdout
    assert "hello from the chroot" in r.stdout
