"""How the init helper reaches its memfd (minirunc.native.init_memfd): the kernel copies its
bytes from the file that holds them (sendfile from /proc/self/map_files), so they never become
resident in the runtime; where the kernel cannot, they are written.  The memfd holds the same
bytes either way.  Also run through the single binaries (Makefile CONTAINER_TESTS)."""

import fcntl
import os
import re
import subprocess

import pytest

from conftest import runtime_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def test_run_has_the_kernel_copy_the_init(rt, make, tmp_path):
    trace = tmp_path / "trace"
    cid = rt.new_id()
    cmd = ["strace", "-f", "-e", "trace=sendfile,write", "-o", str(trace)] + \
        rt.cmd("run", "--bundle", make(("true",)), cid)
    proc = subprocess.run(cmd, env=runtime_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    text = trace.read_text()
    assert proc.returncode == 0, text[-2000:]
    sent = [(int(a), int(b)) for a, b in
            re.findall(r"sendfile\(\d+, \d+, \[\d+\] => \[\d+\], (\d+)\) = (\d+)", text)]
    assert len(sent) == 1 and sent[0][0] > 100000 and sent[0][0] == sent[0][1], sent
    big_writes = [int(n) for n in re.findall(r"write\(\d+, .*, (\d+)\) = \d+$", text, re.M)
                  if int(n) >= 65536]
    assert not big_writes, big_writes


@pytest.fixture
def native():
    from minirunc import native
    return native


def memfd_bytes(fd):
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS
        return os.pread(fd, os.fstat(fd).st_size + 1, 0)
    finally:
        os.close(fd)


def test_written_where_the_kernel_will_not_copy(native, tmp_path):
    data = os.urandom(300000)
    short = tmp_path / "short"
    short.write_bytes(data[:1000])
    fd_short = os.open(str(short), os.O_RDONLY)
    fd_dir = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        # none named; a bad fd; a file that ends early (part copied, then written over);
        # a directory (sendfile refuses it)
        for source in (None, (-1, 0), (fd_short, 0), (fd_dir, 0)):
            assert memfd_bytes(native._sealed_memfd("t", data, "test", source)) == data, source
    finally:
        os.close(fd_short)
        os.close(fd_dir)


def test_the_init_s_file_holds_its_bytes(native):
    ffi, lib = native._lib()
    address, size = int(ffi.cast("uintptr_t", lib.mr_init_data())), lib.mr_init_size()
    fd, offset = native._mapped_file(address, size)
    try:
        assert os.pread(fd, size, offset) == bytes(ffi.buffer(lib.mr_init_data(), size))
    finally:
        os.close(fd)
    assert memfd_bytes(native.init_memfd()) == bytes(ffi.buffer(lib.mr_init_data(), size))
    anonymous = ffi.new("char[]", 4096)
    assert native._mapped_file(int(ffi.cast("uintptr_t", anonymous)), 4096) is None
