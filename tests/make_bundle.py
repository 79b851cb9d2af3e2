"""Build a busybox bundle (config.json + rootfs/) from Debian's busybox-static.

Used by the tests (imported) and by `make demo` (run as a script). Nothing is downloaded:
the rootfs is /bin/busybox plus one symlink per applet.
"""

import json
import os
import shutil
import subprocess
import sys

BUSYBOX = "/bin/busybox"
_applets = None


def applets():
    global _applets
    if _applets is None:
        out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
        _applets = [a for a in out.split() if a != "busybox"]
    return _applets


def make_rootfs(rootfs):
    """A minimal root: busybox, its applets in /bin, and the usual empty directories."""
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
    for applet in applets():
        link = os.path.join(rootfs, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    for d in ("proc", "sys", "dev", "tmp", "etc", "root", "usr/bin", "var"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")


DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def base_config(args, terminal=False):
    """runc's default spec, with terminal off and the given args."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in
                             ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "minirunc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


def in_user_namespace(config):
    """Edit a config: a user namespace whose root is host uid/gid 100000 (sysfs bound from
    the host: a new sysfs needs a network namespace owned by the user namespace)."""
    linux = config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"]
    config["mounts"].append({"destination": "/sys", "type": "bind", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})


def reachable_by_mapped_root(path):
    """Let the mapped root of in_user_namespace (host uid 100000) reach ``path`` (a
    pathlib.Path under /tmp); returns it."""
    for parent in [path] + list(path.parents):
        if str(parent) == "/tmp":
            break
        parent.chmod(parent.stat().st_mode | 0o111)
    return path


def make_bundle(path, args=("sh",), config=None, terminal=False):
    """Create `path` with rootfs/ and config.json; returns the config dict written."""
    os.makedirs(path, exist_ok=True)
    make_rootfs(os.path.join(path, "rootfs"))
    config = config if config is not None else base_config(args, terminal)
    write_config(path, config)
    return config


def write_config(path, config):
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


if __name__ == "__main__":
    target = sys.argv[1]
    args = sys.argv[sys.argv.index("--args") + 1:] if "--args" in sys.argv else ["sh"]
    if os.path.exists(target):
        shutil.rmtree(target)
    make_bundle(target, args)
    print("bundle ready: %s (args: %s)" % (target, " ".join(args)))
