"""The background no-op migration that starts the kernel's cgroup grace period early."""

import subprocess
import sys

from conftest import runtime_env


def test_warm_up_finds_own_cgroup_and_leaves_the_process_where_it_was():
    code = ("from minirunc import cgroupwarm\n"
            "before = open('/proc/self/cgroup').read()\n"
            "path = cgroupwarm._own_procs_file()\n"
            "assert path and path.endswith('/cgroup.procs') and os.path.exists(path), path\n"
            "cgroupwarm.start(); cgroupwarm.wait()\n"
            "assert open('/proc/self/cgroup').read() == before\n"
            "assert str(os.getpid()) in open(path).read().split()\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", "import os\n" + code], env=runtime_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "ok\n", r.stderr


def test_without_cgroupfs_it_does_nothing(tmp_path):
    code = ("from minirunc import cgroupwarm\n"
            "assert cgroupwarm._own_procs_file() is None\n"
            "cgroupwarm.start(); cgroupwarm.wait(); print('ok')\n")
    script = "umount -R /sys/fs/cgroup && exec %s -c \"%s\"" % (sys.executable, code.replace('"', '\\"'))
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], env=runtime_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "ok\n", r.stderr
