"""Configs written for runc's first releases (2015) run, and `spec --upgrade` rewrites them.

The configs below are what `runc spec` of runc 0.0.1-0.0.4 wrote ("pre-draft", later
0.1.x: one file, options as one comma-separated string, namespaces `process`, capability
names without CAP_, devices by name) and the config.json + runtime.json split of runc
0.0.5-0.0.9, with the hand edits people made then (a bind mount, a cwd).
"""

import json
import os

from minirunc import legacy


def predraft_config(args, **edits):
    """The config.json of runc 0.0.x's `runc spec` (July 2015), terminal off."""
    config = {
        "version": "pre-draft",
        "platform": {"os": "linux", "arch": "amd64"},
        "process": {"terminal": False,
                    "user": {"uid": 0, "gid": 0, "additionalGids": None},
                    "args": list(args),
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "TERM=xterm"],
                    "cwd": ""},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "shell",
        "mounts": [
            {"type": "proc", "source": "proc", "destination": "/proc", "options": ""},
            {"type": "tmpfs", "source": "tmpfs", "destination": "/dev",
             "options": "nosuid,strictatime,mode=755,size=65536k"},
            {"type": "devpts", "source": "devpts", "destination": "/dev/pts",
             "options": "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"},
            {"type": "tmpfs", "source": "shm", "destination": "/dev/shm",
             "options": "nosuid,noexec,nodev,mode=1777,size=65536k"},
            {"type": "mqueue", "source": "mqueue", "destination": "/dev/mqueue",
             "options": "nosuid,noexec,nodev"},
            {"type": "sysfs", "source": "sysfs", "destination": "/sys",
             "options": "nosuid,noexec,nodev"},
        ],
        "linux": {
            "uidMapping": None, "gidMapping": None, "rlimits": None, "sysctl": None,
            "resources": {
                "disableOOMKiller": False,
                "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0,
                           "swappiness": -1},
                "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                        "realtimePeriod": 0, "cpus": "", "mems": ""},
                "blockIO": {"blkioWeight": 0, "blkioWeightDevice": "",
                            "blkioThrottleReadBpsDevice": "",
                            "blkioThrottleWriteBpsDevice": "",
                            "blkioThrottleReadIopsDevice": "",
                            "blkioThrottleWriteIopsDevice": ""},
                "hugepageLimits": None,
                "network": {"classId": "", "priorities": None}},
            "namespaces": [{"type": t, "path": ""}
                           for t in ("process", "network", "ipc", "uts", "mount")],
            "capabilities": ["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"],
            "devices": ["null", "random", "full", "tty", "zero", "urandom"],
        },
    }
    config.update(edits)
    return config


def split_configs(args):
    """config.json + runtime.json as runc 0.0.5 (specs 0.2) wrote them."""
    config = {
        "version": "0.2.0",
        "platform": {"os": "linux", "arch": "amd64"},
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0, "additionalGids": None},
                    "args": list(args), "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                    "cwd": "/"},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "split",
        "mounts": [{"name": "proc", "path": "/proc"}, {"name": "dev", "path": "/dev"},
                   {"name": "sys", "path": "/sys"}],
        "linux": {"capabilities": ["CAP_AUDIT_WRITE", "CAP_KILL"],
                  "selinuxProcessLabel": ""},
    }
    runtime = {
        "mounts": {"proc": {"type": "proc", "source": "proc", "options": None},
                   "dev": {"type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                   "sys": {"type": "sysfs", "source": "sysfs",
                           "options": ["nosuid", "noexec", "nodev"]}},
        "hooks": {"prestart": None, "poststop": None},
        "linux": {"uidMappings": None, "gidMappings": None,
                  "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                  "sysctl": None,
                  "resources": {"memory": {"limit": 0}, "pids": {"limit": 0}},
                  "namespaces": [{"type": t, "path": ""}
                                 for t in ("pid", "ipc", "uts", "mount")],
                  "devices": [{"path": "/dev/null", "type": 99, "major": 1, "minor": 3,
                               "permissions": "rwm", "fileMode": 438, "uid": 0, "gid": 0}],
                  "apparmorProfile": "", "rootfsPropagation": ""},
    }
    return config, runtime


def old_bundle(make, config, runtime=None):
    path = make()
    (path / "config.json").write_text(json.dumps(config, indent="\t"))
    if runtime is not None:
        (path / "runtime.json").write_text(json.dumps(runtime))
    return path


def test_predraft_config_runs_with_one_notice(rt, make):
    script = ("hostname; grep CapEff /proc/self/status; "
              "touch /x 2>/dev/null || echo readonly; ls /dev/null /dev/urandom")
    bundle = old_bundle(make, predraft_config(["sh", "-c", script]))
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "shell"
    # AUDIT_WRITE(29) KILL(5) NET_BIND_SERVICE(10)
    assert lines[1].split()[1] == "%016x" % ((1 << 29) | (1 << 5) | (1 << 10))
    assert "readonly" in lines
    assert "/dev/null" in r.stdout and "/dev/urandom" in r.stdout
    notices = [ln for ln in r.stderr.splitlines() if ln]
    assert len(notices) == 1 and "2015 format" in notices[0] and "pre-draft" in notices[0]
    # the file itself is untouched by a run
    assert json.loads((bundle / "config.json").read_text())["version"] == "pre-draft"


def test_predraft_bind_mount_and_cwd_the_hexo_way(rt, make, tmp_path):
    blog = tmp_path / "blog"
    blog.mkdir()
    (blog / "_config.yml").write_text("title: blog\n")
    config = predraft_config(["sh", "-c", "pwd; cat _config.yml; echo made > out"])
    config["process"]["cwd"] = "/hexo"
    config["root"]["readonly"] = False
    config["mounts"].insert(0, {"type": "bind", "source": str(blog), "destination": "/hexo",
                                "options": "rbind,rw"})
    bundle = old_bundle(make, config)
    (bundle / "rootfs" / "hexo").mkdir()
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["/hexo", "title: blog"]
    assert (blog / "out").read_text() == "made\n"


def test_missing_network_namespace_means_host_network(rt, make):
    config = predraft_config(["readlink", "/proc/self/ns/net"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "network"]
    r = rt.run(old_bundle(make, config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.readlink("/proc/self/ns/net")


def test_resources_set_in_2015_shape_are_applied(rt, make):
    config = predraft_config(["sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"
                              " 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"])
    config["linux"]["resources"]["memory"]["limit"] = 64 * 1024 * 1024
    config["mounts"].append({"type": "cgroup", "source": "cgroup",
                             "destination": "/sys/fs/cgroup", "options": "nosuid,noexec,ro"})
    r = rt.run(old_bundle(make, config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == str(64 * 1024 * 1024)


def test_split_config_and_runtime_json_run(rt, make):
    config, runtime = split_configs(["sh", "-c", "hostname; ulimit -n; ls /sys/kernel >/dev/null"
                                     " && echo sys"])
    r = rt.run(old_bundle(make, config, runtime))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["split", "1024", "sys"]
    assert "0.2.0" in r.stderr


def test_split_config_without_runtime_json_is_one_line(rt, make):
    config, _ = split_configs(["true"])
    r = rt.run(old_bundle(make, config))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "runtime.json" in lines[0] and "mounts" in lines[0]


def test_unconvertible_field_is_one_line_naming_it(rt, make):
    config = predraft_config(["true"])
    config["linux"]["devices"].append("sound")
    r = rt.run(old_bundle(make, config))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "linux.devices[6]" in lines[0] and '"sound"' in lines[0] and "major" in lines[0]


def test_spec_upgrade_writes_a_valid_config_and_keeps_the_old(rt, make):
    old = predraft_config(["sh", "-c", "echo upgraded; hostname"])
    bundle = old_bundle(make, old)
    r = rt("spec", "--upgrade", "--bundle", bundle)
    assert r.returncode == 0, r.stderr
    assert json.loads((bundle / "config.json.bak").read_text()) == old
    new = json.loads((bundle / "config.json").read_text())
    assert new["ociVersion"].startswith("1.0")
    assert new["mounts"][1]["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert "options" not in new["mounts"][0]
    assert new["process"]["capabilities"]["bounding"] == [
        "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert [n["type"] for n in new["linux"]["namespaces"]] == [
        "pid", "network", "ipc", "uts", "mount"]
    assert "resources" not in new["linux"]          # every 2015 value meant "not set"
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["upgraded", "shell"]
    assert r.stderr == ""                            # no notice: the file is current now
    # a second upgrade has nothing to do and changes nothing
    before = (bundle / "config.json").read_text()
    r = rt("spec", "--upgrade", "--bundle", bundle)
    assert r.returncode != 0 and "already in the current format" in r.stderr
    assert (bundle / "config.json").read_text() == before


def test_spec_upgrade_refuses_unconvertible_and_writes_nothing(rt, make):
    config = predraft_config(["true"])
    config["linux"]["resources"]["blockIO"]["blkioWeightDevice"] = "sda 500"
    config["platform"]["os"] = "windows"
    bundle = old_bundle(make, config)
    before = (bundle / "config.json").read_text()
    r = rt("spec", "--upgrade", "--bundle", bundle)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert any(ln.startswith("minirunc: platform.os:") for ln in lines)
    assert any("linux.resources.blockIO.blkioWeightDevice" in ln and "MAJOR:MINOR" in ln
               for ln in lines)
    assert len(lines) == 3
    assert (bundle / "config.json").read_text() == before
    assert not (bundle / "config.json.bak").exists()


def test_convert_resources_unit():
    config = predraft_config(["true"])
    res = config["linux"]["resources"]
    res["memory"].update(limit=1 << 26, swappiness=10)
    res["cpu"].update(shares=512, cpus="0")
    res["blockIO"].update(blkioWeight=300, blkioThrottleReadBpsDevice="8:0 1048576")
    res["network"] = {"classId": "0x100001", "priorities": [{"name": "eth0", "priority": 5}]}
    res["hugepageLimits"] = [{"pageSize": "2MB", "limit": 1 << 21}]
    config["linux"]["rlimits"] = [{"type": 7, "hard": 100, "soft": 50}]
    config["linux"]["uidMapping"] = [{"hostID": 1000, "containerID": 0, "size": 1}]
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    new, problems = legacy.convert(config, "/nonexistent")
    assert problems == []
    r = new["linux"]["resources"]
    assert r["memory"] == {"limit": 1 << 26, "swappiness": 10}
    assert r["cpu"] == {"shares": 512, "cpus": "0"}
    assert r["blockIO"] == {"weight": 300, "throttleReadBpsDevice": [
        {"major": 8, "minor": 0, "rate": 1048576}]}
    assert r["network"] == {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]}
    assert r["hugepageLimits"] == [{"pageSize": "2MB", "limit": 1 << 21}]
    assert new["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 50}]
    assert new["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert new["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
