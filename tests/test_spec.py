"""spec.py: the default config.json matches runc's and passes minirunc's own validator."""

import json
import os
import shutil
import subprocess

import pytest

from minirunc import config as cfgmod
from minirunc import plan as planmod
from minirunc import planformat
from minirunc import spec

RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)


def runc_spec(tmp_path, *flags):
    subprocess.run([RUNC, "spec", *flags], cwd=str(tmp_path), check=True)
    return (tmp_path / "config.json").read_text()


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
@pytest.mark.parametrize("rootless", [False, True])
def test_matches_runc_byte_for_byte(tmp_path, rootless):
    version = subprocess.run([RUNC, "--version"], capture_output=True, text=True).stdout
    if "spec: 1.0.2-dev" not in version:
        pytest.skip("a runc other than 1.1.x is installed")
    expected = runc_spec(tmp_path, *(["--rootless"] if rootless else []))
    ours = spec.spec_text(rootless).replace('"hostname": "minirunc"', '"hostname": "runc"')
    assert ours == expected


def test_content():
    data = spec.default_spec()
    assert data["ociVersion"] == "1.0.2-dev"
    assert data["hostname"] == "minirunc"
    proc = data["process"]
    assert proc["terminal"] is True and proc["args"] == ["sh"] and proc["cwd"] == "/"
    assert list(proc["capabilities"]) == ["bounding", "effective", "permitted", "ambient"]
    assert proc["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert [ns["type"] for ns in data["linux"]["namespaces"]] == [
        "pid", "network", "ipc", "uts", "mount"]
    assert data["root"] == {"path": "rootfs", "readonly": True}


def test_rootless_content():
    data = spec.default_spec(rootless=True)
    linux = data["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    sysfs = [m for m in data["mounts"] if m["destination"] == "/sys"][0]
    assert sysfs["options"][0] == "rbind"


def test_fresh_copies():
    a = spec.default_spec()
    a["process"]["args"].append("x")
    assert spec.default_spec()["process"]["args"] == ["sh"]


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_passes_validator_and_plans(tmp_path, rootless):
    (tmp_path / "rootfs").mkdir()
    path = spec.write_spec(str(tmp_path), rootless=rootless)
    assert path == str(tmp_path / "config.json")
    config = cfgmod.load_bundle(str(tmp_path))
    assert config.hostname == "minirunc"
    assert config.process.terminal is True
    assert config.warnings == []
    if not rootless:
        # runc's default spec has a device cgroup rule: deny all (runc's defaults follow).
        assert config.linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}
    plan = planmod.build_plan(config)
    names = [name for name, _ in planformat.decode(plan.encode())]
    assert names[0] == "NS_NEW" and names[-1] == "ARG"
    assert plan.new_userns is rootless
    if rootless:
        assert plan.uid_mappings == [(0, os.geteuid(), 1)]


def test_write_spec_refuses_to_overwrite(tmp_path):
    spec.write_spec(str(tmp_path))
    with pytest.raises(FileExistsError):
        spec.write_spec(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text()) == spec.default_spec()
