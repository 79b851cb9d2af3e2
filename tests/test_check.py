"""`minirunc check`: the findings a run would hit, each with its fix; exit 1 when any;
nothing in the bundle changes.  Where a finding predicts a failure, the test runs the
container too and sees the failure, then applies the fix and sees it run."""

import hashlib
import json
import os
import shutil
import subprocess

from minirunc import check, elfinfo


def check_json(rt, bundle):
    r = rt("check", "--bundle", bundle, "--format", "json")
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] == (r.returncode == 0)
    return r.returncode, {f["field"]: f for f in report["findings"]}


def tree_digest(path):
    """Names, modes, owners, mtimes and contents of everything under ``path``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(path)):
        dirnames.sort()
        for name in sorted(dirnames + filenames) + [""]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            digest.update(("%s %o %d %d %d\n" % (full, st.st_mode, st.st_uid, st.st_gid,
                                                 st.st_mtime_ns)).encode())
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def edit_config(bundle, change):
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def test_clean_bundle_is_ok(rt, make):
    bundle = make(["true"])
    r = rt("check", "--bundle", bundle)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("ok: nothing to fix")


def test_every_finding_has_its_fix_and_nothing_changes(rt, make, tmp_path):
    def edit(config):
        config["process"]["cwd"] = "/bin/sh"
        config["mounts"][1]["options"] += ["nosuidd", "mdoe=755"]
        config["mounts"].append({"destination": "/x", "type": "bind",
                                 "source": str(tmp_path / "absent"), "options": ["rbind"]})
        config["mounts"].append({"destination": "/y", "type": "bind", "source": "/tmp",
                                 "options": ["rbind", "ro", "uid=1000"]})
    bundle = make(["nosuchprogram"], edit=edit)
    before = tree_digest(bundle)
    code, found = check_json(rt, bundle)
    assert code == 1
    assert found["mounts[1].options[4]"]["fix"] == 'did you mean "nosuid"?'
    assert found["mounts[1].options[5]"]["fix"] == 'did you mean "mode"?'
    assert found["mounts[6].source"]["severity"] == "error"
    assert "does not exist" in found["mounts[6].source"]["problem"]
    assert found["mounts[7].options[2]"]["severity"] == "warning"
    assert "ignores" in found["mounts[7].options[2]"]["problem"]
    assert "nosuchprogram" in found["process.args[0]"]["problem"]
    assert "not a directory" in found["process.cwd"]["problem"]
    assert all(f["fix"] for f in found.values())
    assert tree_digest(bundle) == before
    text = rt("check", "--bundle", bundle)
    assert text.returncode == 1
    lines = text.stdout.strip().splitlines()
    assert len(lines) == len(found) + 1 and "problem(s) found" in lines[-1]


def test_rsynced_blog_owner_trap_and_its_fixes(rt, make, tmp_path):
    """A blog copied with its owner (uid 1000): root without CAP_DAC_OVERRIDE cannot
    write it.  check says so; a run fails; the suggested user-namespace mapping works."""
    blog = tmp_path / "blog"
    (blog / "public").mkdir(parents=True)
    (blog / "_config.yml").write_text("title: x\n")
    for path in (blog, blog / "public", blog / "_config.yml"):
        os.chown(path, 1000, 1000)
    os.chmod(tmp_path, 0o755)

    def edit(config):
        config["mounts"].append({"destination": "/hexo", "type": "bind", "source": str(blog),
                                 "options": ["rbind", "rw"]})
        config["process"]["cwd"] = "/hexo"
    bundle = make(["sh", "-c", "touch public/index.html && echo written"], edit=edit)
    (bundle / "rootfs" / "hexo").mkdir()
    code, found = check_json(rt, bundle)
    assert code == 1
    trap = found["mounts[6].source"]
    assert "uid 1000" in trap["problem"] and "CAP_DAC_OVERRIDE" in trap["problem"]
    assert "process.user.uid 1000" in trap["fix"] and "hostID 1000" in trap["fix"]
    assert "idmap" in trap["fix"]
    r = rt.run(bundle)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert not (blog / "public" / "index.html").exists()

    # the first fix: run as the owner
    edit_config(bundle, lambda c: c["process"]["user"].update(uid=1000, gid=1000))
    os.chmod(bundle, 0o755)
    code, found = check_json(rt, bundle)
    assert code == 0, found
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "written\n"
    assert os.stat(blog / "public" / "index.html").st_uid == 1000


def test_dynamic_program_without_its_libraries(rt, make):
    bundle = make(["myls", "/"])
    shutil.copy("/bin/ls", bundle / "rootfs" / "bin" / "myls")
    elf = elfinfo.read("/bin/ls")
    code, found = check_json(rt, bundle)
    assert code == 1
    problem = found["process.args[0]"]["problem"]
    assert "ELF interpreter %s" % elf.interp in problem
    assert rt.run(bundle).returncode != 0
    # the interpreter copied: now the libraries are named
    interp = bundle / "rootfs" / elf.interp.lstrip("/")
    interp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.realpath(elf.interp), interp)
    code, found = check_json(rt, bundle)
    problem = found["process.args[0]"]["problem"]
    for lib in elf.needed:
        assert lib in problem
    # the libraries ldd names copied: clean, and it runs
    out = subprocess.run(["ldd", "/bin/ls"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].split() and parts[1].split()[0].startswith("/"):
            dest = bundle / "rootfs" / "lib" / os.path.basename(parts[1].split()[0])
            dest.parent.mkdir(exist_ok=True)
            shutil.copy(parts[1].split()[0], dest)
    code, found = check_json(rt, bundle)
    assert code == 0, found
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert "bin" in r.stdout.split()


def test_scripts_crlf_missing_interpreter_not_executable(rt, make):
    bundle = make(["crlf"])
    bin_dir = bundle / "rootfs" / "bin"
    (bin_dir / "crlf").write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    (bin_dir / "py").write_text("#!/usr/bin/python3\nprint(1)\n")
    (bin_dir / "plain").write_text("echo no shebang\n")
    (bin_dir / "noexec").write_text("#!/bin/sh\necho\n")
    for name in ("crlf", "py", "plain"):
        os.chmod(bin_dir / name, 0o755)
    os.chmod(bin_dir / "noexec", 0o644)
    expect = {"crlf": ("CRLF", "sed -i"), "py": ("/usr/bin/python3 is not in the rootfs",
                                               "install"),
              "plain": ("neither an ELF program nor a #! script", "#!/bin/sh"),
              "noexec": ("not executable", "chmod +x")}
    for name, (problem, fix) in expect.items():
        edit_config(bundle, lambda c: c["process"].update(args=[name]))
        code, found = check_json(rt, bundle)
        assert code == 1
        assert problem in found["process.args[0]"]["problem"], (name, found)
        assert fix in found["process.args[0]"]["fix"]
        assert rt.run(bundle).returncode != 0, name


def test_legacy_config_is_a_note(rt, make):
    bundle = make(["true"])
    config = {"version": "0.1.0", "platform": {"os": "linux", "arch": "amd64"},
              "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["true"],
                          "env": ["PATH=/bin"], "cwd": ""},
              "root": {"path": "rootfs", "readonly": True}, "hostname": "old",
              "mounts": [{"type": "proc", "source": "proc", "destination": "/proc",
                          "options": ""}],
              "linux": {"namespaces": [{"type": "process", "path": ""},
                                       {"type": "uts", "path": ""},
                                       {"type": "mount", "path": ""}],
                        "capabilities": ["KILL"], "devices": ["null"]}}
    (bundle / "config.json").write_text(json.dumps(config))
    code, found = check_json(rt, bundle)
    assert code == 0, found
    assert found["version"]["severity"] == "note" and "--upgrade" in found["version"]["fix"]


def test_missing_config_and_bad_format(rt, tmp_path):
    r = rt("check", "--bundle", tmp_path)
    assert r.returncode == 1 and r.stdout.startswith("error: config.json:")
    r = rt("check", "--bundle", tmp_path, "--format", "yaml")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1


def test_host_findings_cgroup_and_initramfs(tmp_path, monkeypatch):
    (tmp_path / "rootfs").mkdir()
    checker = check.Checker(str(tmp_path))
    monkeypatch.setattr(check, "_host_mounts", lambda: [("/", "rootfs"), ("/proc", "proc")])
    checker.check_host({"linux": {"resources": {"pids": {"limit": 5}}}},
                       str(tmp_path / "rootfs"))
    found = {f.field: f for f in checker.findings}
    assert found["linux.resources"].severity == "warning"
    assert "mount -t cgroup2" in found["linux.resources"].fix
    assert found["root.path"].severity == "note" and "fallback" in found["root.path"].problem


def test_elf_reader():
    elf = elfinfo.read("/bin/ls")
    assert elf.bits == 64 and elf.interp and "libc.so.6" in elf.needed
    assert elfinfo.read("/bin/busybox").needed == []
    assert elfinfo.read("/etc/passwd") is None
