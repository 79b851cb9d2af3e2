"""spec, kill --all, warnings, --debug, LISTEN_FDS and the cgroup mount, through the CLI."""

import json
import os
import subprocess
import time

from conftest import runtime_env, wait_for


def test_spec_writes_runc_like_default_and_refuses_overwrite(rt, tmp_path):
    r = rt("spec", "--bundle", tmp_path)
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["process"]["noNewPrivileges"] is True
    assert sorted(config["process"]["capabilities"]["bounding"]) == [
        "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    kinds = {n["type"] for n in config["linux"]["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= kinds
    r = rt("spec", "--bundle", tmp_path)
    assert r.returncode == 1 and "exists already" in r.stderr


def test_spec_in_cwd_then_bare_minirunc(rt, tmp_path):
    """The 2015 way: spec in a directory with a rootfs, switch terminal off, type minirunc."""
    from make_bundle import make_rootfs
    bundle = tmp_path / "site"
    bundle.mkdir()
    make_rootfs(str(bundle / "rootfs"))
    assert rt("spec", cwd=bundle).returncode == 0
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    (bundle / "config.json").write_text(json.dumps(config))
    r = rt(cwd=bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "spec-ok\n"


def test_resources_are_applied_without_warning(rt, make):
    bundle = make(["sh", "-c", "cat /proc/self/cgroup"],
                  edit=lambda c: c["linux"].update(resources={"memory": {"limit": 1 << 26}}))
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr


def test_kill_all_reaches_every_process(rt, make):
    cid = rt.new_id()
    # pid 1 (sh, no TERM handler) ignores TERM; its two sleeps do not.
    assert rt("run", "-d", "--bundle", make(["sh", "-c", "sleep 101 & sleep 102; echo done"]), cid).returncode == 0
    assert rt("kill", cid, "TERM").returncode == 0
    time.sleep(0.5)
    assert rt.state(cid)["status"] == "running"
    assert rt("kill", "--all", cid, "TERM").returncode == 0
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")


def test_debug_prints_trace_on_error(rt):
    r = rt("--debug", "state", "nope")
    assert r.returncode == 1
    assert "Traceback" in r.stderr
    assert r.stderr.rstrip().endswith("minirunc: container nope: does not exist (see `minirunc list`)")


def test_listen_fds_are_passed_with_env(rt, make, tmp_path):
    passed = tmp_path / "sock-stand-in"
    passed.write_text("listen-fd\n")
    bundle = make(["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat /proc/self/fd/3"])
    cmd = ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(passed)] + rt.cmd("run", "--bundle", bundle, rt.new_id())
    r = subprocess.run(cmd, env=runtime_env({"LISTEN_FDS": "1"}), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1 1\nlisten-fd\n"


def test_cgroup_mount_shows_the_hierarchy(rt, make):
    def edit(c):
        c["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    r = rt.run(make(["sh", "-c", "ls /sys/fs/cgroup; touch /sys/fs/cgroup/x"], edit=edit))
    host = set(os.listdir("/sys/fs/cgroup"))
    inside = set(r.stdout.split())
    assert inside, r.stderr
    assert inside & host and "memory" in inside
    assert "Read-only file system" in r.stderr


def test_command_help(rt):
    r = rt("create", "--help")
    assert r.returncode == 0 and "create" in r.stdout
    r = rt("--help")
    assert r.returncode == 0 and all(v in r.stdout for v in ("create", "start", "delete", "spec"))


def test_features_lists_what_the_config_accepts(rt, tmp_path):
    """`features` (runc's JSON shape) names only what a config.json may really use."""
    from minirunc import config as cfgmod
    from minirunc import plan as planmod
    from make_bundle import base_config
    r = rt("features")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["ociVersionMin"], doc["ociVersionMax"]) == ("1.0.0", "1.2.0")
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                            "poststart", "poststop"]
    linux = doc["linux"]
    assert {"rro", "rbind", "nosymfollow", "rprivate"} <= set(doc["mountOptions"])
    assert {"tmpcopyup", "notmpcopyup"} <= set(doc["mountOptions"])
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}
    assert "SCMP_ACT_NOTIFY" not in linux["seccomp"]["actions"]
    # supported by the runtime (lsm.py), whatever this host has loaded: as runc reports them
    assert linux["apparmor"] == {"enabled": True} and linux["selinux"] == {"enabled": True}
    assert "CAP_CHECKPOINT_RESTORE" in linux["capabilities"]

    (tmp_path / "rootfs").mkdir()
    config = base_config(["true"])
    # Every option on a bind mount (idmap needs mappings there), then on a tmpfs.
    mapping = [{"containerID": 0, "hostID": 100000, "size": 1}]
    config["mounts"] = [{"destination": "/b%d" % i, "type": "bind", "source": str(tmp_path),
                         "options": [option], "uidMappings": mapping, "gidMappings": mapping}
                        for i, option in enumerate(doc["mountOptions"])]
    config["mounts"] += [{"destination": "/t%d" % i, "type": "tmpfs", "source": "tmpfs",
                          "options": [option]} for i, option in enumerate(doc["mountOptions"])
                         if option not in ("idmap", "ridmap", "bind", "rbind")]
    config["linux"]["namespaces"] = [{"type": t} for t in linux["namespaces"]]
    config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 100000, "size": 1}]
    config["process"]["capabilities"] = {"bounding": linux["capabilities"]}
    seccomp = linux["seccomp"]
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": seccomp["archs"],
        "flags": seccomp["supportedFlags"],
        "syscalls": [{"names": ["getcwd"], "action": action,
                      "args": [{"index": 0, "value": 1, "op": op}]}
                     for action in seccomp["actions"] if action != "SCMP_ACT_ALLOW"
                     for op in seccomp["operators"]]}
    parsed = cfgmod.parse_config(config, str(tmp_path))
    plan = planmod.build_plan(parsed)
    assert plan.names().count("SECCOMP_RULE") == \
        (len(seccomp["actions"]) - 1) * len(seccomp["operators"])
    assert not [w for w in parsed.warnings if "not" in w], parsed.warnings
