"""Build minirunc's native part: the static init helper and the cffi module that embeds it.

Usage (from the repository root): ``<python> native/build_native.py``

1. ``native/init.c`` (+ ``resolve.c``, ``musl_shims.c``) -> ``build/native/minirunc-init``:
   static, stripped, with musl by ``zig cc`` (the ziglang of build/requirements.txt) and
   Debian's libseccomp.a.  ~210 KB where glibc's static libc made it ~850 KB: the runtime
   copies it into a memfd and execs it at every create, run and exec.
2. ``minirunc._native`` (cffi API mode): the init's bytes are embedded with ``.incbin``, plus
   small helpers for spawning and SOCK_SEQPACKET sockets, and the cgroup v2 device filter
   (an eBPF program built, loaded and attached with raw bpf(2); see CDEF below).
3. The ``_native.cpython-*.so`` is copied into ``src/minirunc/``.

Idempotent: every run rebuilds from scratch into build/native/.  Off the container path, so
plain subprocess is fine here.
"""

import glob
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "native")
INIT_SRC = os.path.join(ROOT, "native", "init.c")
INIT_PARTS = [os.path.join(ROOT, "native", n) for n in ("resolve.c", "musl_shims.c")]
INIT_TARGET = "x86_64-linux-musl"
SECCOMP_HEADERS = ["seccomp.h", "seccomp-syscalls.h"]   # libseccomp-dev's, in /usr/include
ZIG_CACHE = os.path.join(ROOT, "build", "binary", "zig-cache")   # shared with build/binary.py
INIT_BIN = os.path.join(BUILD, "minirunc-init")
PKG = os.path.join(ROOT, "src", "minirunc")

CDEF = """
const unsigned char *mr_init_data(void);
size_t mr_init_size(void);
int mr_spawn(int exe_fd, char *const argv[], const int *fds, int nfds, int first_fd);
int mr_socketpair(int sv[2]);
int mr_listen_unix(const char *path);
int mr_connect_unix(const char *path);
ssize_t mr_send(int sock, const void *buf, size_t len, int fd_or_minus1);
ssize_t mr_recv(int sock, void *buf, size_t len, int *fd_out);
int mr_set_dumpable(int flag);
int mr_syscall_missing(long nr);
int mr_rename_exchange(const char *a, const char *b);
struct mr_dev_rule {
    int type;
    int64_t major;
    int64_t minor;
    char access[4];
    int allow;
};
int mr_device_filter(int cgroup_fd, const struct mr_dev_rule *rules, int nrules,
                     int default_allow, char *log, size_t log_size, int *step);
int mr_device_filter_emit(const struct mr_dev_rule *rules, int nrules, int default_allow,
                          void *out, int max);
"""


def die(message):
    sys.stderr.write("build_native: %s\n" % message)
    sys.exit(1)


def find_libseccomp():
    """The static libseccomp archive, as gcc would find it."""
    out = subprocess.run(["gcc", "-print-file-name=libseccomp.a"], capture_output=True, text=True)
    path = out.stdout.strip()
    if out.returncode != 0 or not os.path.isabs(path) or not os.path.exists(path):
        die("libseccomp.a not found (install libseccomp-dev)")
    return path


def build_init():
    """The init, static with musl.  zig brings musl and its kernel headers; of /usr/include
    only libseccomp's two headers are used (a copy: the rest is glibc's)."""
    if not all(os.path.exists("/usr/include/" + h) for h in SECCOMP_HEADERS):
        die("seccomp.h not found (install libseccomp-dev)")
    try:
        import ziglang  # noqa: F401  (build/requirements.txt)
    except ImportError:
        die("zig not found: install build/requirements.txt (make does)")
    libseccomp = find_libseccomp()
    include = os.path.join(BUILD, "seccomp-include")
    os.makedirs(include, exist_ok=True)
    for h in SECCOMP_HEADERS:
        shutil.copy2("/usr/include/" + h, include)
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", INIT_TARGET, "-static", "-O2", "-s",
           "-Wall", "-Wextra", "-isystem", include, "-o", INIT_BIN, INIT_SRC] + \
        INIT_PARTS + [libseccomp]
    env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=ZIG_CACHE, ZIG_LOCAL_CACHE_DIR=ZIG_CACHE)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0 or result.stderr.strip():
        sys.stderr.write(result.stderr)
        die("compiling %s failed: %s" % (INIT_SRC, " ".join(cmd)))


def c_source():
    """The extension's C code; the init binary is pulled in with .incbin."""
    with open(os.path.join(ROOT, "native", "native_module.c")) as f:
        body = f.read()
    incbin = INIT_BIN.replace("\\", "\\\\").replace('"', '\\"')
    return body.replace("@INIT_BIN@", incbin)


def build_module():
    try:
        import cffi
    except ImportError:
        die("cffi is not installed for %s" % sys.executable)
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("minirunc._native", c_source(), extra_compile_args=["-O2", "-Wall"])
    tmp = os.path.join(BUILD, "cffi")
    shutil.rmtree(tmp, ignore_errors=True)
    built = ffi.compile(tmpdir=tmp, verbose=False)
    for old in glob.glob(os.path.join(PKG, "_native.cpython-*.so")):
        os.unlink(old)
    dest = os.path.join(PKG, os.path.basename(built))
    shutil.copy2(built, dest)
    return dest


def main():
    os.chdir(ROOT)
    build_init()
    dest = build_module()
    print("built %s (%d bytes) and %s" % (INIT_BIN, os.path.getsize(INIT_BIN), dest))


if __name__ == "__main__":
    main()
