"""`minirunc spec` flags: a config for the common cases without editing JSON, and the one
default every config writer (spec, tests/make_bundle.py, the image bundles) edits."""

import json
import os

import pytest

from make_bundle import base_config
from minirunc import spec


def spec_bundle(rt, make, *flags):
    """A busybox bundle whose config.json is written by `minirunc spec FLAGS`."""
    bundle = make()
    (bundle / "config.json").unlink()
    r = rt("spec", "--bundle", bundle, *flags)
    assert r.returncode == 0, r.stderr
    return bundle, json.loads((bundle / "config.json").read_text())


def test_flags_make_a_config_that_runs_as_asked(rt, make, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("from the host\n")
    script = ("hostname; pwd; echo $GREETING; id -u; id -g; cat /data/note; "
              "touch /data/x 2>/dev/null || echo bind-ro; "
              "grep ' /scratch ' /proc/mounts | cut -d' ' -f3; touch /made && echo writable; "
              "cd /sys/fs/cgroup; cat memory.max 2>/dev/null || cat memory/memory.limit_in_bytes;"
              " cat pids.max 2>/dev/null || cat pids/pids.max; cat cpu.max 2>/dev/null || "
              "echo $(cat cpu/cpu.cfs_quota_us) $(cat cpu/cpu.cfs_period_us)")
    bundle, config = spec_bundle(
        rt, make, "--hostname", "blog", "--cwd", "/tmp", "--env", "GREETING=hello",
        "--bind", "%s:/data:ro" % shared, "--tmpfs", "/scratch", "--no-tty", "--writable",
        "--memory", "64m", "--pids", "32", "--cpus", "0.5", "--user", "65534:65534",
        "--", "sh", "-c", script)
    assert config["process"]["args"] == ["sh", "-c", script]
    (bundle / "rootfs" / "data").mkdir()
    (bundle / "rootfs" / "scratch").mkdir()
    os.chmod(bundle / "rootfs", 0o777)      # uid 65534 may write / (--writable)
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:13] == [
        "blog", "/tmp", "hello", "65534", "65534", "from the host", "bind-ro", "tmpfs",
        "writable", str(64 << 20), "32", "50000 100000", ""]
    assert not (shared / "x").exists()


def test_net_host_and_caps(rt, make):
    bundle, config = spec_bundle(rt, make, "--net", "host", "--cap", "+SYS_ADMIN",
                                 "--cap", "-CAP_KILL", "--no-tty", "--",
                                 "sh", "-c", "readlink /proc/self/ns/net; "
                                 "grep CapEff /proc/self/status")
    assert "network" not in [n["type"] for n in config["linux"]["namespaces"]]
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    net, caps = r.stdout.split("\n")[:2]
    assert net == os.readlink("/proc/self/ns/net")
    # AUDIT_WRITE(29) NET_BIND_SERVICE(10) SYS_ADMIN(21), not KILL(5)
    assert caps.split()[1] == "%016x" % ((1 << 29) | (1 << 10) | (1 << 21))


def test_no_flags_is_still_runcs_default(rt, tmp_path):
    r = rt("spec", "--bundle", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "config.json").read_text() == spec.spec_text() + "\n"


@pytest.mark.parametrize("flags,named", [
    (["--cap", "+SYS_ADMN"], "CAP_SYS_ADMIN"),
    (["--cap", "SYS_ADMIN"], "--cap"),
    (["--memory", "lots"], "--memory"),
    (["--pids", "0"], "--pids"),
    (["--cpus", "x"], "--cpus"),
    (["--bind", "/tmp"], "--bind"),
    (["--bind", "/tmp:rel"], "--bind"),
    (["--tmpfs", "run"], "--tmpfs"),
    (["--cwd", "tmp"], "--cwd"),
    (["--env", "NOVALUE"], "--env"),
    (["--user", "nobody"], "--user"),
    (["--net", "bridge"], "--net"),
    (["--tty", "--no-tty"], "--no-tty"),
    (["--", ""], "CMD"),
])
def test_bad_flag_values_are_one_line_and_write_nothing(rt, tmp_path, flags, named):
    r = rt("spec", "--bundle", tmp_path, *flags)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], lines
    assert not (tmp_path / "config.json").exists()


def test_edit_spec_memory_sizes():
    assert spec.parse_size("64m", "--memory") == 64 << 20
    assert spec.parse_size("1G", "--memory") == 1 << 30
    assert spec.parse_size("512KiB", "--memory") == 512 << 10
    assert spec.parse_size("4096", "--memory") == 4096


def test_test_bundles_are_the_default_plus_edits():
    config = base_config(["true"])
    default = spec.default_spec()
    assert config["linux"]["maskedPaths"] == default["linux"]["maskedPaths"]
    assert config["process"]["capabilities"] == default["process"]["capabilities"]
    assert [m["destination"] for m in config["mounts"]] == [
        m["destination"] for m in default["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    assert "resources" not in config["linux"] and config["process"]["terminal"] is False


def test_config_reference_is_generated_and_current():
    """docs/config-reference.md is what build/config_reference.py writes from config.py and
    cgroups/validate.py, and every field the parser reads is described."""
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(repo, "build", "config_reference.py"),
                        "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(repo, "docs", "config-reference.md")) as f:
        text = f.read()
    assert "(not described)" not in text
    for field in ("`process.args`", "`mounts[].options`", "`linux.namespaces[].type`",
                  "`hooks.<kind>[].path`", "`linux.resources.memory.limit`",
                  "`linux.seccomp.syscalls[].names`"):
        assert field in text
