"""Build the Busybox and Puppy-style test hosts for minirunc (issue 4) and their hexo bundles.

Usage (repository root): ``.venv/bin/python build/images/imagebuild.py [STEP ...] [--binary F]``
with STEP among kernel, bundles, busybox, puppy, all (default: all); ``make images`` runs it.

Steps (each cached under build/images/cache or build/images/out, rebuilt when its inputs'
fingerprint changes, and written to a temporary name then renamed, so that a half-built
artefact is never taken for a good one):

- kernel:  Debian's linux-image-<ver>-amd64 fetched with ``apt-get download`` and unpacked with
           ``dpkg-deb -x`` into a temporary folder (never installed); the uncompressed ELF
           vmlinux is cut out of the bzImage payload (PVH boot), and the modules for
           squashfs, overlay, loop and virtio blk/pci (plus their dependencies, read from
           each module's .modinfo) are kept with a modules.dep from ``busybox depmod``.
           Two kernels (KERNELS): the one the system's apt index names (Debian 12: 6.1),
           and Debian 11's 5.10, named by a private index of bullseye (build/debian_apt.sh,
           refreshed daily; the system's apt state is not touched).
- bundles: hexo-lite (busybox rootfs, `hexo` is busybox sh/awk + httpd) and hexo (the host's
           node, stripped, with the libraries ldd names, and a real Hexo 8 blog whose
           node_modules come from ``npm ci`` out of a local cache).  Each bundle's
           config.json runs `hexo g`; serve/config.json (same rootfs and blog) runs `hexo s`.
- busybox: one uncompressed initramfs: busybox-static and its applets, glibc's core files,
           minirunc, the bundles, /init.  Booted with the default kernel (image busybox)
           and with 5.10 (image busybox-5.10, hexo-lite only: OLD_KERNEL_HOSTS).
- puppy:   a small initrd (busybox, the modules, /init that mounts main.sfs under a tmpfs
           overlay and switch_roots) and main.sfs (the host root as a squashfs).

A failing step stops the build with one line: ``imagebuild: <step> failed: <cause>``.
"""

import argparse
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import time
import zlib

from plumbum import ProcessExecutionError, local
from plumbum.commands.processes import CommandNotFound

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(REPO, "busybox-image")
GUEST = os.path.join(SRC, "guest")
# Overridable (the bad-input tests point them at broken copies and a scratch work folder).
BLOG_SRC = os.environ.get("MINIRUNC_BLOG_SRC") or os.path.join(SRC, "hexo-blog")
LITE_SRC = os.path.join(SRC, "hexo-lite")
WORK = os.environ.get("MINIRUNC_IMAGES_DIR") or os.path.join(REPO, "build", "images")
CACHE = os.path.join(WORK, "cache")
OUT = os.path.join(WORK, "out")
MANIFEST = os.path.join(OUT, "images.json")
DEFAULT_BINARY = os.path.join(REPO, "dist", "minirunc")

BUSYBOX = "/bin/busybox"
NODE = "/usr/bin/node"
# glibc's core files for the hosts (minirunc needs libc only; the rest for busybox' friends).
GLIBC_CORE = ["ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2"]
LIBDIR = "/lib/x86_64-linux-gnu"
WANTED_MODULES = ["squashfs", "overlay", "loop", "virtio_blk", "virtio_pci"]
# The kernels the hosts boot: name -> (Debian suite, series). "default" is what the system's
# apt index names (Debian 12: 6.1); "5.10" is Debian 11's, from a private index of bullseye.
KERNELS = {"default": (None, None), "5.10": ("bullseye", "5.10")}
# The Busybox host boots each of these kernels too, running only the named bundles (the
# steps read minirunc.bundles= from /proc/cmdline): image name -> (kernel, bundles).
OLD_KERNEL_HOSTS = {"busybox-5.10": ("5.10", "hexo-lite")}
DEBIAN_APT = os.path.join(REPO, "build", "debian_apt.sh")
INDEX_MAX_AGE = 24 * 3600   # seconds before a private suite index is fetched again
CMDLINE = "console=ttyS0 panic=-1 quiet rdinit=/init"
POST_TITLE = "Hello from minirunc"
VERSION = 3          # bump to invalidate every cached artefact

_log_t0 = time.monotonic()


def log(msg):
    print("imagebuild [%5.1fs] %s" % (time.monotonic() - _log_t0, msg), flush=True)


class StepError(Exception):
    def __init__(self, step, cause):
        super().__init__("%s failed: %s" % (step, cause))
        self.step = step
        self.cause = cause


def one_line(exc):
    """A one-line cause for any exception (a failed command: its last stderr line)."""
    if isinstance(exc, ProcessExecutionError):
        lines = [l.strip() for l in (exc.stderr or exc.stdout or "").splitlines() if l.strip()]
        cmd = os.path.basename(str(exc.argv[0])) if exc.argv else "command"
        detail = lines[-1] if lines else "no output"
        return "%s exited with %s: %s" % (cmd, exc.retcode, detail)
    if isinstance(exc, CommandNotFound):
        return "command not found: %s" % exc.program
    if isinstance(exc, OSError) and exc.filename:
        return "%s: %s" % (exc.strerror or exc, exc.filename)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class step:
    """Context manager naming the step for errors: ``with step("kernel"): ...``."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        if exc is None or isinstance(exc, StepError):
            return False
        if isinstance(exc, KeyboardInterrupt):
            return False
        raise StepError(self.name, one_line(exc)) from exc


# ---------------------------------------------------------------------------------------
# fingerprints and atomic outputs

def fingerprint(*items):
    """sha256 of strings and files/trees (names, modes, link targets, contents)."""
    h = hashlib.sha256(str(VERSION).encode())
    for item in items:
        if isinstance(item, str) and os.path.lexists(item) and os.path.isabs(item):
            _hash_path(h, item)
        else:
            h.update(b"S" + repr(item).encode() + b"\0")
    return h.hexdigest()


def _hash_path(h, path):
    if os.path.islink(path):
        h.update(b"L" + os.readlink(path).encode() + b"\0")
    elif os.path.isdir(path):
        h.update(b"D\0")
        for name in sorted(os.listdir(path)):
            if name in ("node_modules", "public", "db.json", ".hexo-lite"):
                continue
            h.update(name.encode() + b"\0")
            _hash_path(h, os.path.join(path, name))
    else:
        st = os.stat(path)
        h.update(b"F%o\0" % (st.st_mode & 0o7777))
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)


def up_to_date(path, fp):
    stamp = path + ".inputs"
    try:
        with open(stamp) as f:
            return os.path.exists(path) and f.read().strip() == fp
    except OSError:
        return False


def bundle_inputs(bundles):
    """What an image takes from each bundle for its fingerprint: the bundle's own inputs
    stamp, or its path when it has none."""
    return [open(b + ".inputs").read() if os.path.exists(b + ".inputs") else b
            for b in bundles]


def publish(tmp, path, fp):
    """Rename a finished tmp file/dir over path, then write the inputs stamp."""
    stamp = path + ".inputs"
    if os.path.exists(stamp):
        os.unlink(stamp)
    if os.path.isdir(path) and not os.path.islink(path):
        old = path + ".old.%d" % os.getpid()
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    with open(stamp + ".tmp", "w") as f:
        f.write(fp + "\n")
    os.replace(stamp + ".tmp", stamp)


def tmp_name(path):
    return "%s.tmp.%d" % (path, os.getpid())


def clean_tmp(path):
    """Remove leftovers of an earlier, interrupted build of path."""
    d, base = os.path.split(path)
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        if name.startswith(base + ".tmp.") or name.startswith(base + ".old."):
            p = os.path.join(d, name)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)


def tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    seen, total = set(), 0
    for d, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(d, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0


# ---------------------------------------------------------------------------------------
# kernel

def kernel_package(suite=None, series=None):
    """The linux-image-<abi>-amd64 that linux-image-amd64 depends on: in the system's apt
    index (the default kernel), or in another suite's index (a kernel of that series)."""
    pkg = os.environ.get("MINIRUNC_KERNEL_PACKAGE") if suite is None else None
    if pkg:
        return pkg
    if suite is not None:
        refresh_index(suite)
    out = apt_tool("apt-cache", suite)("depends", "linux-image-amd64")
    m = re.search(r"Depends:\s*(linux-image-\S+-amd64)", out)
    if not m:
        raise RuntimeError("apt-cache names no linux-image-*-amd64 for linux-image-amd64 "
                           "(run apt-get update)" if suite is None else
                           "Debian %s's index names no linux-image-*-amd64 for "
                           "linux-image-amd64" % suite)
    if series and not m.group(1).startswith("linux-image-%s." % series):
        raise RuntimeError("Debian %s's linux-image-amd64 depends on %s, not a %s kernel "
                           "(fix KERNELS in imagebuild.py)" % (suite, m.group(1), series))
    return m.group(1)


def apt_tool(tool, suite=None):
    """apt-get/apt-cache: the system's, or one against a Debian suite with a private state
    under the cache (build/debian_apt.sh; the system's apt state is not touched)."""
    if suite is None:
        return local[tool]
    return local["sh"][DEBIAN_APT, os.path.join(CACHE, "apt-" + suite), suite, tool]


def refresh_index(suite):
    """apt-get update of a suite's private index when it is missing or a day old (a kernel
    already cached for the package it names is used without any download)."""
    stamp = os.path.join(CACHE, "apt-" + suite, "updated")
    if os.path.exists(stamp) and time.time() - os.path.getmtime(stamp) < INDEX_MAX_AGE:
        return
    log("kernel: apt-get update (Debian %s, private state in %s)" %
        (suite, os.path.relpath(os.path.dirname(stamp), REPO)))
    try:
        apt_tool("apt-get", suite)("-qq", "update")
    except ProcessExecutionError as e:   # apt's first error names the URL and the cause
        errs = [l[2:].strip() for l in (e.stderr or "").splitlines() if l.startswith("E:")]
        raise RuntimeError("apt-get update of Debian %s: %s" %
                           (suite, errs[0] if errs else one_line(e).split(": ", 1)[-1]))
    with open(stamp, "w"):
        pass


def extract_vmlinux(bzimage):
    """The uncompressed ELF kernel from a bzImage (boot protocol >= 2.08 header)."""
    with open(bzimage, "rb") as f:
        data = f.read()
    if data[0x202:0x206] != b"HdrS":
        raise RuntimeError("%s is not a bzImage (no HdrS header)" % bzimage)
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        raw = (local["zstd"]["-dc"] << payload)()
        raw = raw.encode("latin-1") if isinstance(raw, str) else raw
    elif payload.startswith(b"\x5d\x00\x00"):
        raw = lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    else:
        raise RuntimeError("unknown bzImage payload compression (magic %s)" % payload[:6].hex())
    if not raw.startswith(b"\x7fELF"):
        raise RuntimeError("bzImage payload is not an ELF vmlinux")
    return raw


def modinfo_depends(path):
    with open(path, "rb") as f:
        data = f.read()
    m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def build_kernel(name="default"):
    """Fetch and unpack KERNELS[name] into the cache (once per package); its facts."""
    suite, series = KERNELS[name]
    with step("kernel"):
        pkg = kernel_package(suite, series)
        dest = os.path.join(CACHE, "kernel", pkg)
        fp = fingerprint(pkg, WANTED_MODULES)
        if up_to_date(dest, fp):
            log("kernel: %s cached" % pkg)
            return load_kernel(dest)
        clean_tmp(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = tmp_name(dest)
        with tempfile.TemporaryDirectory(prefix="kernel-", dir=os.path.dirname(dest)) as work:
            log("kernel: apt-get download %s%s" % (pkg, " (Debian %s)" % suite if suite else ""))
            try:
                with local.cwd(work):
                    apt_tool("apt-get", suite)("download", pkg)
            except ProcessExecutionError as e:
                raise RuntimeError("apt-get download %s: %s" % (pkg, one_line(e).split(": ", 1)[-1]))
            debs = [n for n in os.listdir(work) if n.endswith(".deb")]
            if not debs:
                raise RuntimeError("apt-get download %s left no .deb" % pkg)
            root = os.path.join(work, "x")
            local["dpkg-deb"]("-x", os.path.join(work, debs[0]), root)
            boot = os.path.join(root, "boot")
            vmlinuz = [n for n in os.listdir(boot) if n.startswith("vmlinuz-")]
            if not vmlinuz:
                raise RuntimeError("%s holds no boot/vmlinuz-*" % debs[0])
            kver = vmlinuz[0][len("vmlinuz-"):]
            os.makedirs(tmp)
            shutil.copy2(os.path.join(boot, vmlinuz[0]), os.path.join(tmp, "vmlinuz"))
            shutil.copy2(os.path.join(boot, "config-" + kver), os.path.join(tmp, "config"))
            if kconfig(os.path.join(tmp, "config")).get("CONFIG_PVH") != "y":
                raise RuntimeError("%s has no CONFIG_PVH: QEMU cannot boot its vmlinux" % pkg)
            log("kernel: extracting vmlinux from %s" % vmlinuz[0])
            with open(os.path.join(tmp, "vmlinux"), "wb") as f:
                f.write(extract_vmlinux(os.path.join(boot, vmlinuz[0])))
            copy_modules(os.path.join(root, "lib", "modules", kver),
                         os.path.join(tmp, "lib", "modules", kver))
            local[BUSYBOX]("depmod", "-b", tmp, kver)
            if not os.path.getsize(os.path.join(tmp, "lib", "modules", kver, "modules.dep")):
                raise RuntimeError("busybox depmod wrote an empty modules.dep")
            with open(os.path.join(tmp, "kernel.json"), "w") as f:
                json.dump({"package": pkg, "version": kver, "suite": suite}, f)
        publish(tmp, dest, fp)
        return load_kernel(dest)


def kconfig(path):
    """A kernel .config as {CONFIG_X: value} (options set to y, m or a value)."""
    with open(path) as f:
        return dict(l.strip().split("=", 1) for l in f if l.startswith("CONFIG_") and "=" in l)


def copy_modules(src, dst):
    index = {}
    for d, _dirs, files in os.walk(os.path.join(src, "kernel")):
        for name in files:
            if name.endswith(".ko"):
                index[name[:-3].replace("-", "_")] = os.path.join(d, name)
    todo, done = list(WANTED_MODULES), set()
    while todo:
        mod = todo.pop().replace("-", "_")
        if mod in done:
            continue
        if mod not in index:
            raise RuntimeError("module %s not in the kernel package" % mod)
        done.add(mod)
        todo.extend(modinfo_depends(index[mod]))
    for mod in sorted(done):
        rel = os.path.relpath(index[mod], src)
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        shutil.copy2(index[mod], os.path.join(dst, rel))
    for name in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    log("kernel: modules %s" % " ".join(sorted(done)))


def load_kernel(dest):
    with open(os.path.join(dest, "kernel.json")) as f:
        info = json.load(f)
    info.update(dir=dest, vmlinux=os.path.join(dest, "vmlinux"),
                vmlinuz=os.path.join(dest, "vmlinuz"),
                modules=os.path.join(dest, "lib", "modules", info["version"]),
                fingerprint=open(dest + ".inputs").read().strip())
    return info


# ---------------------------------------------------------------------------------------
# file-system helpers

def busybox_applets():
    return [a for a in local[BUSYBOX]("--list").split() if a != "busybox"]


def install_busybox(root, applets=None):
    """bin/busybox plus links (all applets by default) in bin/."""
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in (busybox_applets() if applets is None else applets):
        link = os.path.join(root, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)


def base_dirs(root, dirs=("proc", "sys", "dev", "run", "tmp", "etc", "root", "usr/bin",
                          "usr/sbin", "sbin", "var")):
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    if os.path.isdir(os.path.join(root, "tmp")):
        os.chmod(os.path.join(root, "tmp"), 0o1777)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def copy_lib(root, path):
    """Copy a shared library (symlinks resolved) to the same path under root."""
    real = os.path.realpath(path)
    for target in {path, os.path.join(LIBDIR, os.path.basename(path))}:
        if target.startswith("/lib64/") or target.startswith(LIBDIR):
            dst = root + target
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.exists(dst):
                shutil.copy2(real, dst)


def install_glibc_core(root):
    for name in GLIBC_CORE:
        src = os.path.join(LIBDIR, name)
        if not os.path.exists(src):
            raise RuntimeError("glibc file %s missing" % src)
        copy_lib(root, src)
    os.makedirs(os.path.join(root, "lib64"), exist_ok=True)
    dst = os.path.join(root, "lib64", "ld-linux-x86-64.so.2")
    if not os.path.exists(dst):
        shutil.copy2(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), dst)


def ldd_libs(binary):
    libs = []
    for line in local["ldd"](binary).splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def passwd(root):
    write(os.path.join(root, "etc", "passwd"),
          "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    write(os.path.join(root, "etc", "group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")


def mknod_console(root):
    os.makedirs(os.path.join(root, "dev"), exist_ok=True)
    for name, minor_dev in (("console", os.makedev(5, 1)), ("null", os.makedev(1, 3))):
        path = os.path.join(root, "dev", name)
        if not os.path.exists(path):
            os.mknod(path, 0o600 | stat.S_IFCHR if name == "console" else 0o666 | stat.S_IFCHR,
                     minor_dev)


def make_cpio(staging, out, compress=None):
    find = local["find"][".", "-print0"]
    sort = local["sort"]["-z"]
    cpio = local["cpio"]["--null", "--quiet", "-o", "-H", "newc", "-R", "0:0"]
    with local.cwd(staging):
        chain = find | sort | cpio
        if compress == "gzip":
            chain = chain | local["gzip"]["-6", "-n"]
        (chain > out)()


# ---------------------------------------------------------------------------------------
# bundles

def bundle_config(args, readonly=True, root_path="rootfs", blog="blog", extra_path=""):
    """minirunc's default spec with the hexo edits: no terminal, /tmp a tmpfs, the blog
    bound at /hexo, and no network namespace (the host's network: hexo s on port 4000)."""
    if os.path.join(REPO, "src") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "src"))
    from minirunc.spec import default_spec, edit_spec
    config = edit_spec(default_spec(), args=args, terminal=False, rootfs=root_path,
                       writable=not readonly, hostname="hexo", cwd="/hexo", tmpfs=["/tmp"],
                       binds=["%s:/hexo" % blog], net="host", resources=False,
                       without_mounts=("/dev/mqueue", "/sys/fs/cgroup"))
    config["ociVersion"] = "1.0.2"
    path = "%s/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % extra_path
    config["process"]["env"] = ["PATH=" + path, "HOME=/root", "TERM=xterm",
                                "NODE_ENV=production"]
    config["mounts"][2]["options"].remove("gid=5")    # as the fingerprints have it
    return config


def write_bundle_configs(bundle, gen_args, serve_args, extra_path=""):
    write(os.path.join(bundle, "config.json"),
          json.dumps(bundle_config(gen_args, extra_path=extra_path), indent=2) + "\n")
    write(os.path.join(bundle, "serve", "config.json"),
          json.dumps(bundle_config(serve_args, root_path="../rootfs", blog="../blog",
                                   extra_path=extra_path), indent=2) + "\n")


def copy_blog_sources(blog):
    os.makedirs(blog, exist_ok=True)
    for name in ("_config.yml", "source"):
        src = os.path.join(BLOG_SRC, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(blog, name))
        else:
            shutil.copy2(src, os.path.join(blog, name))


def build_lite_bundle():
    with step("bundle hexo-lite"):
        dest = os.path.join(OUT, "bundles", "hexo-lite")
        fp = fingerprint(BUSYBOX, LITE_SRC, os.path.join(BLOG_SRC, "_config.yml"),
                         os.path.join(BLOG_SRC, "source"), json.dumps(bundle_config(["x"])))
        if up_to_date(dest, fp):
            log("bundle hexo-lite: cached")
            return dest
        clean_tmp(dest)
        tmp = tmp_name(dest)
        rootfs = os.path.join(tmp, "rootfs")
        install_busybox(rootfs)
        base_dirs(rootfs, ("proc", "sys", "dev", "tmp", "etc", "root", "usr/bin", "hexo"))
        passwd(rootfs)
        shutil.copy2(os.path.join(LITE_SRC, "hexo"), os.path.join(rootfs, "usr", "bin", "hexo"))
        os.chmod(os.path.join(rootfs, "usr", "bin", "hexo"), 0o755)
        copy_blog_sources(os.path.join(tmp, "blog"))
        write_bundle_configs(tmp, ["hexo", "g"], ["hexo", "s"])
        publish(tmp, dest, fp)
        log("bundle hexo-lite: built")
        return dest


def node_modules():
    """node_modules for the blog, from `npm ci` with a local cache (keyed on the lockfile)."""
    with step("npm ci"):
        lock = os.path.join(BLOG_SRC, "package-lock.json")
        if not os.path.exists(lock):
            raise RuntimeError("%s missing (commit the lockfile)" % lock)
        fp = fingerprint(os.path.join(BLOG_SRC, "package.json"), lock,
                         local["node"]("--version").strip())
        dest = os.path.join(CACHE, "node_modules")
        if up_to_date(dest, fp):
            log("npm ci: node_modules cached")
            return os.path.join(dest, "node_modules")
        clean_tmp(dest)
        tmp = tmp_name(dest)
        os.makedirs(tmp)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(os.path.join(BLOG_SRC, name), os.path.join(tmp, name))
        npm_cache = os.path.join(CACHE, "npm")
        log("npm ci (cache %s)" % os.path.relpath(npm_cache, REPO))
        npm = local["npm"]["ci", "--cache", npm_cache, "--prefer-offline", "--no-audit",
                           "--no-fund", "--ignore-scripts", "--loglevel=error"]
        try:
            with local.cwd(tmp):
                npm()
        except ProcessExecutionError as e:
            raise RuntimeError(npm_cause(e))
        if not os.path.exists(os.path.join(tmp, "node_modules", "hexo", "package.json")):
            raise RuntimeError("npm ci left no node_modules/hexo")
        publish(tmp, dest, fp)
        return os.path.join(dest, "node_modules")


def npm_cause(e):
    """One line from a failed npm: its error code and first real message."""
    errs = [l[len("npm error"):].strip() for l in (e.stderr or "").splitlines()
            if l.startswith("npm error")]
    code = next((l.split()[1] for l in errs if l.startswith("code ")), None)
    msg = next((l for l in errs if l and not re.match(
        r"(code|errno|syscall|path|A complete log|Log files were not written)\b", l)),
        "no message")
    return "npm ci exited with %s%s: %s" % (e.retcode, " (%s)" % code if code else "", msg)


def build_hexo_bundle():
    modules = node_modules()
    with step("bundle hexo"):
        dest = os.path.join(OUT, "bundles", "hexo")
        fp = fingerprint(NODE, BUSYBOX, BLOG_SRC, open(os.path.join(CACHE, "node_modules.inputs")).read(),
                         json.dumps(bundle_config(["x"])))
        if up_to_date(dest, fp):
            log("bundle hexo: cached")
            return dest
        clean_tmp(dest)
        tmp = tmp_name(dest)
        rootfs = os.path.join(tmp, "rootfs")
        base_dirs(rootfs, ("proc", "sys", "dev", "tmp", "etc", "root", "usr/bin", "bin", "hexo"))
        passwd(rootfs)
        try:
            local["strip"]("-o", os.path.join(rootfs, "usr", "bin", "node"), NODE)
        except CommandNotFound:
            shutil.copy2(NODE, os.path.join(rootfs, "usr", "bin", "node"))
        for lib in ldd_libs(NODE):
            copy_lib(rootfs, lib)
        # node_modules/.bin/* start with "#!/usr/bin/env node"; sh for npm-style scripts.
        install_busybox(rootfs, applets=["sh", "env"])
        os.symlink("/bin/busybox", os.path.join(rootfs, "usr", "bin", "env"))
        blog = os.path.join(tmp, "blog")
        copy_blog_sources(blog)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(os.path.join(BLOG_SRC, name), os.path.join(blog, name))
        local["cp"]("-a", modules, os.path.join(blog, "node_modules"))
        write_bundle_configs(tmp, ["hexo", "generate"], ["hexo", "server"],
                             extra_path="/hexo/node_modules/.bin:")
        publish(tmp, dest, fp)
        log("bundle hexo: built")
        return dest


def check_bundle(path):
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise RuntimeError("bundle %s has no config.json" % path)
    if not os.path.isdir(os.path.join(path, "rootfs")):
        raise RuntimeError("bundle %s has no rootfs/" % path)


def build_bundles():
    """hexo-lite and hexo, plus any bundle named in MINIRUNC_EXTRA_BUNDLES (colon-separated)."""
    extra = [os.path.abspath(p) for p in os.environ.get("MINIRUNC_EXTRA_BUNDLES", "").split(":")
             if p]
    for b in extra:
        with step("bundle %s" % os.path.basename(b)):
            check_bundle(b)
    bundles = [build_lite_bundle(), build_hexo_bundle()]
    for b in bundles:
        with step("bundle %s" % os.path.basename(b)):
            check_bundle(b)
    return bundles + extra


# ---------------------------------------------------------------------------------------
# hosts

def host_root(staging, kind, binary, bundles):
    """The common host root: busybox, glibc core, minirunc, bundles, init scripts."""
    install_busybox(staging)
    base_dirs(staging)
    install_glibc_core(staging)
    passwd(staging)
    write(os.path.join(staging, "etc", "hostname"), "%s-host\n" % kind)
    write(os.path.join(staging, "etc", "minirunc-host"), kind + "\n")
    shutil.copy2(os.path.join(GUEST, "steps.sh"), os.path.join(staging, "etc", "minirunc-steps.sh"))
    if binary:
        shutil.copy2(binary, os.path.join(staging, "usr", "bin", "minirunc"))
        os.chmod(os.path.join(staging, "usr", "bin", "minirunc"), 0o755)
    os.makedirs(os.path.join(staging, "bundles"))
    for b in bundles:
        local["cp"]("-a", b, os.path.join(staging, "bundles", os.path.basename(b)))
    mknod_console(staging)


def build_busybox_host(kernel, bundles, binary):
    with step("busybox initramfs"):
        dest = os.path.join(OUT, "busybox", "initramfs.cpio")
        fp = fingerprint("busybox", BUSYBOX, GUEST, binary or "no-binary",
                         *bundle_inputs(bundles))
        if up_to_date(dest, fp):
            log("busybox initramfs: cached")
            return dest
        clean_tmp(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = tmp_name(dest)
        with tempfile.TemporaryDirectory(prefix="busybox-root-", dir=os.path.dirname(dest)) as st:
            host_root(st, "busybox", binary, bundles)
            shutil.copy2(os.path.join(GUEST, "host-init"), os.path.join(st, "init"))
            log("busybox initramfs: cpio")
            make_cpio(st, tmp)
        publish(tmp, dest, fp)
        return dest


def build_puppy_host(kernel, bundles, binary):
    with step("puppy initrd"):
        initrd = os.path.join(OUT, "puppy", "initrd.cpio.gz")
        fp = fingerprint("puppy-initrd", BUSYBOX, os.path.join(GUEST, "initrd-init"),
                         kernel["fingerprint"])
        if up_to_date(initrd, fp):
            log("puppy initrd: cached")
        else:
            clean_tmp(initrd)
            os.makedirs(os.path.dirname(initrd), exist_ok=True)
            tmp = tmp_name(initrd)
            with tempfile.TemporaryDirectory(prefix="initrd-", dir=os.path.dirname(initrd)) as st:
                install_busybox(st)
                base_dirs(st, ("proc", "sys", "dev", "sbin", "newroot", "sfs", "rw"))
                os.makedirs(os.path.join(st, "lib", "modules"))
                local["cp"]("-a", kernel["modules"],
                            os.path.join(st, "lib", "modules", kernel["version"]))
                shutil.copy2(os.path.join(GUEST, "initrd-init"), os.path.join(st, "init"))
                mknod_console(st)
                make_cpio(st, tmp, compress="gzip")
            publish(tmp, initrd, fp)
    with step("puppy main.sfs"):
        sfs = os.path.join(OUT, "puppy", "main.sfs")
        fp = fingerprint("puppy-sfs", BUSYBOX, GUEST, binary or "no-binary",
                         *bundle_inputs(bundles))
        if up_to_date(sfs, fp):
            log("puppy main.sfs: cached")
        else:
            clean_tmp(sfs)
            tmp = tmp_name(sfs)
            with tempfile.TemporaryDirectory(prefix="sfs-root-", dir=os.path.dirname(sfs)) as st:
                host_root(st, "puppy", binary, bundles)
                shutil.copy2(os.path.join(GUEST, "host-init"), os.path.join(st, "sbin", "init"))
                os.makedirs(os.path.join(st, "initrd"))
                log("puppy main.sfs: mksquashfs")
                local["mksquashfs"](st, tmp, "-noappend", "-all-root", "-quiet", "-no-progress",
                                    "-comp", "lz4", "-b", "256K")
            publish(tmp, sfs, fp)
    return initrd, sfs


# ---------------------------------------------------------------------------------------

def binary_path(arg):
    path = arg or DEFAULT_BINARY
    if os.path.exists(path):
        return os.path.abspath(path)
    if arg:
        raise StepError("binary", "%s does not exist" % arg)
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("steps", nargs="*", metavar="STEP",
                    help="all (default), kernel, bundles, busybox, puppy")
    ap.add_argument("--binary", help="minirunc binary to put in the images "
                    "(default dist/minirunc if it exists; images are built without it if not)")
    args = ap.parse_args(argv)
    steps = set(args.steps or ["all"])
    unknown = steps - {"all", "kernel", "bundles", "busybox", "puppy"}
    if unknown:
        ap.error("unknown step(s): %s" % " ".join(sorted(unknown)))
    if "all" in steps:
        steps = {"kernel", "bundles", "busybox", "puppy"}
    try:
        with step("tools"):
            for tool in ("apt-get", "dpkg-deb", "cpio", "mksquashfs", "npm", "node", "ldd"):
                if tool not in local:
                    raise RuntimeError("%s not installed (make images-deps installs it)" % tool)
        binary = binary_path(args.binary)
        manifest = {}
        if os.path.exists(MANIFEST):
            with open(MANIFEST) as f:
                manifest = json.load(f)
        kernel = bundles = None
        old_kernels = {}
        if steps & {"kernel", "busybox", "puppy"}:
            kernel = build_kernel()
            manifest["kernel"] = kernel_facts(kernel)
        if steps & {"kernel", "busybox"}:
            for name in sorted({k for k, _b in OLD_KERNEL_HOSTS.values()}):
                old_kernels[name] = build_kernel(name)
                manifest["kernel-" + name] = kernel_facts(old_kernels[name])
        if steps & {"bundles", "busybox", "puppy"}:
            bundles = build_bundles()
            manifest["bundles"] = bundles
        if "busybox" in steps:
            initrd = build_busybox_host(kernel, bundles, binary)
            manifest["busybox"] = {"kernel": kernel["vmlinux"], "initrd": initrd,
                                   "binary": binary, "cmdline": CMDLINE}
            # the same initramfs (it needs no modules) on the older kernels
            for image, (name, only) in OLD_KERNEL_HOSTS.items():
                manifest[image] = {"kernel": old_kernels[name]["vmlinux"], "initrd": initrd,
                                   "binary": binary,
                                   "cmdline": CMDLINE + " minirunc.bundles=" + only}
        if "puppy" in steps:
            initrd, sfs = build_puppy_host(kernel, bundles, binary)
            manifest["puppy"] = {"kernel": kernel["vmlinux"], "initrd": initrd, "disk": sfs,
                                 "binary": binary, "cmdline": CMDLINE}
        os.makedirs(OUT, exist_ok=True)
        with open(MANIFEST + ".tmp", "w") as f:
            json.dump(manifest, f, indent=2)
        os.replace(MANIFEST + ".tmp", MANIFEST)
    except StepError as e:
        print("imagebuild: %s" % e, file=sys.stderr, flush=True)
        return 1
    print_sizes(manifest, binary)
    return 0


def kernel_facts(kernel):
    return {k: kernel[k] for k in ("package", "version", "vmlinux", "vmlinuz")}


def print_sizes(manifest, binary):
    rows = []
    for key in ["kernel"] + ["kernel-" + k for k, _b in OLD_KERNEL_HOSTS.values()]:
        if key in manifest:
            k = manifest[key]
            rows.append(("kernel vmlinux (PVH, %s)" % k["version"], k["vmlinux"]))
            rows.append(("kernel vmlinuz (bzImage)", k["vmlinuz"]))
    if "busybox" in manifest:
        rows.append(("busybox initramfs (uncompressed cpio)", manifest["busybox"]["initrd"]))
    if "puppy" in manifest:
        rows.append(("puppy initrd (cpio.gz)", manifest["puppy"]["initrd"]))
        rows.append(("puppy main.sfs (squashfs, lz4)", manifest["puppy"]["disk"]))
    for b in manifest.get("bundles", []):
        rows.append(("bundle %s" % os.path.basename(b), b))
        for part in ("rootfs", "blog"):
            rows.append(("  %s/" % part, os.path.join(b, part)))
    if binary:
        rows.append(("minirunc binary", binary))
    print("sizes:")
    for label, path in rows:
        if os.path.exists(path):
            print("  %-40s %10s  %s" % (label, human(tree_size(path)), os.path.relpath(path, REPO)))
    if not binary:
        print("note: dist/minirunc does not exist yet: the images hold no minirunc "
              "(their steps print @@SKIP)")


if __name__ == "__main__":
    sys.exit(main())
