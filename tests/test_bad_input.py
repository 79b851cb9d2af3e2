"""Bad input: one clear line, a non-zero exit, and nothing left behind."""

import os
import shutil
import tempfile

import pytest



def host_mounts(*own):
    """The host's mount points, leaving out other processes' scratch mounts under the
    temporary directory (a test judges what it owns; parallel runs of other suites mount
    and unmount there), but keeping everything under the test's own directories."""
    tmp = os.path.realpath(tempfile.gettempdir()).rstrip("/") + "/"
    tops = [os.path.realpath(str(d)).rstrip("/") + "/" for d in own]
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points
                  if not (p + "/").startswith(tmp) or any((p + "/").startswith(t) for t in tops))


@pytest.fixture
def fails(rt):
    """fails(bundle, *needles): create must fail with one line holding every needle."""
    def check(bundle, *needles, command="create"):
        before = host_mounts(bundle, rt.root)
        cid = rt.new_id()
        args = ("run", "--bundle", bundle, cid) if command == "run" else ("create", "--bundle", bundle, cid)
        r = rt(*args)
        assert r.returncode != 0, r.stdout
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1, r.stderr
        for needle in needles:
            assert needle in lines[0], lines[0]
        assert not os.path.exists(os.path.join(rt.root, cid)), "state left behind"
        assert host_mounts(bundle, rt.root) == before, "mount left on the host"
        return lines[0]
    return check


def test_invalid_json(make, fails):
    bundle = make()
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2",\n  "process": {,}\n}')
    fails(bundle, "config.json", "line 2", "column")


def test_missing_config(tmp_path, fails):
    fails(tmp_path, "config.json", str(tmp_path))


def test_missing_rootfs(make, fails):
    bundle = make()
    shutil.rmtree(bundle / "rootfs")
    fails(bundle, "root.path", "rootfs")


def test_unsupported_oci_version(make, fails):
    fails(make(edit=lambda c: c.update(ociVersion="9.9.9")), "ociVersion", "9.9.9", "1.0")


def test_relative_mount_destination(make, fails):
    fails(make(edit=lambda c: c["mounts"].append({"destination": "data", "type": "tmpfs",
                                                  "source": "tmpfs"})),
          "mounts[6].destination", "absolute")


def test_escaping_mount_destination(make, fails):
    fails(make(edit=lambda c: c["mounts"].append({"destination": "/../../etc", "type": "tmpfs",
                                                  "source": "tmpfs"})),
          "mounts[6].destination", "..")


def test_unknown_namespace(make, fails):
    fails(make(edit=lambda c: c["linux"]["namespaces"].append({"type": "process"})),
          "linux.namespaces[5].type", '"process"')


def test_unknown_mount_option(make, fails):
    fails(make(edit=lambda c: c["mounts"][1]["options"].append("nosuidd")),
          "mounts[1].options[4]", '"nosuidd"')


def test_missing_bind_source(make, fails, tmp_path):
    fails(make(edit=lambda c: c["mounts"].append({"destination": "/data", "type": "bind",
                                                  "source": str(tmp_path / "nope"),
                                                  "options": ["rbind"]})),
          "mounts[6].source", str(tmp_path / "nope"))


def test_missing_args0(make, fails):
    fails(make(["no-such-program"]), "process.args[0]", "no-such-program", "not found")


def test_cwd_is_a_file(make, fails):
    fails(make(edit=lambda c: c["process"].update(cwd="/etc/passwd")), "process.cwd",
          "/etc/passwd", "not a directory")


def test_empty_args(make, fails):
    fails(make(edit=lambda c: c["process"].update(args=[])), "process.args")


def test_terminal_without_console_socket(make, fails):
    fails(make(terminal=True), "process.terminal", "--console-socket")


def test_missing_elf_interpreter(make, fails):
    bundle = make(["/bin/dynamic-ls"])
    shutil.copy("/bin/ls", bundle / "rootfs" / "bin" / "dynamic-ls")
    fails(bundle, "process.args[0]", "ELF interpreter", "missing in the rootfs")


def test_crlf_shebang(make, fails):
    bundle = make(["/script"])
    script = bundle / "rootfs" / "script"
    script.write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    script.chmod(0o755)
    fails(bundle, "process.args[0]", "CRLF")


def test_duplicate_id(rt, make):
    cid = rt.new_id()
    assert rt("create", "--bundle", make(), cid).returncode == 0
    pid = rt.state(cid)["pid"]
    r = rt("create", "--bundle", make(), cid)
    assert r.returncode != 0 and "already exists" in r.stderr
    assert rt.state(cid)["pid"] == pid and rt.state(cid)["status"] == "created"


@pytest.mark.parametrize("command", [["state"], ["kill"], ["delete"], ["start"], ["kill", "--all"]])
def test_nonexistent_id(rt, command):
    r = rt(*command, "no-such-container")
    assert r.returncode == 1
    assert r.stderr == "minirunc: container no-such-container: does not exist (see `minirunc list`)\n"


def test_delete_force_of_nonexistent_id_succeeds_like_runc(rt):
    # containerd relies on this: a forced delete of what is already gone is not an error.
    r = rt("delete", "--force", "no-such-container")
    assert (r.returncode, r.stderr) == (0, "")


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", "x" * 1025, "a b"])
def test_bad_ids(rt, make, bad):
    r = rt("create", "--bundle", make(), bad)
    assert r.returncode != 0 and ("invalid container id" in r.stderr or "container id" in r.stderr)
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []


def test_unknown_command_and_flag(rt):
    r = rt("frobnicate")
    assert r.returncode == 1 and "unknown command 'frobnicate'" in r.stderr
    r = rt("create", "--nope", "x")
    assert r.returncode == 1 and "unknown flag --nope" in r.stderr
    r = rt("create")
    assert r.returncode == 1 and "missing ID" in r.stderr


def test_not_root(rt, make):
    """As another user: one line saying root is needed, before any cgroup or state."""
    import subprocess
    from conftest import runtime_env
    as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    probe = subprocess.run(as_nobody + rt.cmd("--version"), env=runtime_env(),
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:   # e.g. a checkout in a directory only root may enter
        pytest.skip("user nobody cannot start minirunc here: %s" % probe.stderr.strip())
    bundle = make()   # never read: the check comes first
    cid = rt.new_id()
    r = subprocess.run(as_nobody + rt.cmd("run", "--bundle", bundle, cid), env=runtime_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == ("minirunc: minirunc runs containers as root only (rootless "
                                "containers are not supported): run it as root, e.g. with sudo")
    assert not os.path.exists(os.path.join(rt.root, cid))
