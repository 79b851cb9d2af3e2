"""Build a busybox bundle (config.json + rootfs/) from Debian's busybox-static.

Used by the tests (imported) and by `make demo` (run as a script). Nothing is downloaded:
the rootfs is /bin/busybox plus one symlink per applet.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "src"))
from minirunc.spec import default_spec, edit_spec  # noqa: E402  (the one default config)

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
    """runc's default spec (minirunc's spec.default_spec) with terminal off and the given
    args; no /sys/fs/cgroup mount and no default device rule, ociVersion 1.0.2."""
    config = edit_spec(default_spec(), args=args, terminal=terminal,
                       without_mounts=("/sys/fs/cgroup",), resources=False)
    config["ociVersion"] = "1.0.2"
    # the tests' ptys belong to group 0: the busybox rootfs has no tty group (5)
    config["mounts"][2]["options"].remove("gid=5")
    return config


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
