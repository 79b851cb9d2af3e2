"""Real containers run through the native init (native/init.c) via minirunc.native.

Plans are encoded by hand with planformat; no config.json, no CLI.  Needs root and
a built minirunc._native (native/build_native.py).
"""

import errno
import os
import shutil
import stat

import pytest

import native_helpers as h
from native_helpers import base_records, run_plan

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def rootfs():
    root = h.make_rootfs()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def sh(rootfs, script, **kw):
    return base_records(rootfs, ["sh", "-c", script], **kw)


def test_hostname_pid1_and_proc(rootfs, tmp_path):
    res = run_plan(sh(rootfs, "hostname; echo pid=$$; grep ' /proc ' /proc/self/mountinfo",
                      extra=[("HOSTNAME", ("minitest",))]), tmp_path)
    assert res.error is None and res.exit_code == 0, (res.error, res.text)
    lines = res.text.splitlines()
    assert lines[0] == "minitest"
    assert lines[1] == "pid=1"
    assert " - proc proc " in lines[2] and "nosuid,nodev,noexec" in lines[2]


def test_readonly_bind_refuses_writes(rootfs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from host\n")
    bind = ("MOUNT", (1, str(data), "/data", "", h.MS_BIND | h.MS_REC | h.MS_RDONLY,
                      0, 0, 0, "", 0))
    res = run_plan(sh(rootfs, "cat /data/hello; echo x > /data/new || echo write-failed",
                      extra=[bind]), tmp_path)
    assert res.error is None, res.error
    assert "from host" in res.text
    assert "Read-only file system" in res.text and "write-failed" in res.text
    assert not (data / "new").exists()


def test_file_bind_creates_empty_file_target(rootfs, tmp_path):
    src = tmp_path / "conf"
    src.write_text("conf-data\n")
    bind = ("MOUNT", (1, str(src), "/etc/deep/conf", "", h.MS_BIND, 0, 0, 0, "", 1))
    res = run_plan(sh(rootfs, "cat /etc/deep/conf", extra=[bind]), tmp_path)
    assert res.error is None, res.error
    assert res.text == "conf-data\n"


def test_mount_dest_symlink_stays_in_rootfs(rootfs, tmp_path):
    # /escape -> /tmp/../../../<tmp_path>: resolved inside the rootfs, never on the host.
    link = os.path.join(rootfs, "escape")
    target = "/../../.." + str(tmp_path / "victim")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)
    tmpfs = ("MOUNT", (0, "tmpfs", "/escape", "tmpfs", 0, 0, 0, 0, "", 0))
    res = run_plan(sh(rootfs, "grep ' /escape\\| /tmp/' /proc/self/mountinfo | head -1",
                      extra=[tmpfs]), tmp_path)
    assert res.error is None, res.error
    assert not (tmp_path / "victim").exists()
    assert os.path.isdir(os.path.join(rootfs, str(tmp_path).lstrip("/"), "victim"))


def test_no_pivot_fallback_sends_note(rootfs, tmp_path):
    res = run_plan(sh(rootfs, "echo ok; cat /proc/self/mountinfo", no_pivot=1), tmp_path)
    assert res.error is None, res.error
    assert res.text.startswith("ok\n")
    assert any("move-mount + chroot" in n for n in res.notes), res.notes


def test_missing_args0(rootfs, tmp_path):
    res = run_plan(base_records(rootfs, ["nosuchcmd"]), tmp_path)
    assert res.error == (errno.ENOENT, "exec",
                         'process.args[0] "nosuchcmd": executable file not found in $PATH')


def test_missing_elf_interpreter(rootfs, tmp_path):
    shutil.copy2("/bin/ls", os.path.join(rootfs, "bin", "dynls"))
    res = run_plan(base_records(rootfs, ["dynls"]), tmp_path)
    assert res.error is not None
    err, step, detail = res.error
    assert err == errno.ENOENT and step == "exec"
    assert detail.startswith('process.args[0] "/bin/dynls": its ELF interpreter /lib64/')
    assert detail.endswith(" is missing in the rootfs")


def test_crlf_shebang(rootfs, tmp_path):
    script = os.path.join(rootfs, "bin", "crlf.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\r\necho hi\r\n")
    os.chmod(script, 0o755)
    res = run_plan(base_records(rootfs, ["/bin/crlf.sh"]), tmp_path)
    assert res.error == (errno.ENOENT, "exec", 'process.args[0] "/bin/crlf.sh": has Windows '
                                               "(CRLF) line endings in its #! line")


def test_missing_shebang_interpreter(rootfs, tmp_path):
    script = os.path.join(rootfs, "bin", "bash-script")
    with open(script, "w") as f:
        f.write("#!/bin/bash -e\necho hi\n")
    os.chmod(script, 0o755)
    res = run_plan(base_records(rootfs, ["bash-script"]), tmp_path)
    assert res.error is not None and res.error[0] == errno.ENOENT
    assert "its #! interpreter /bin/bash is missing in the rootfs" in res.error[2]


def test_cwd_missing_is_named(rootfs, tmp_path):
    res = run_plan(base_records(rootfs, ["sh"], after=[("CWD", ("/nope",))]), tmp_path)
    assert res.error[0] == errno.ENOENT and "process.cwd" in res.error[2]


def test_user_namespace_uid_map(rootfs, tmp_path):
    ns = h.CLONE_NEWNS | h.CLONE_NEWUTS | h.CLONE_NEWPID | h.CLONE_NEWIPC | h.CLONE_NEWUSER
    res = run_plan(sh(rootfs, "cat /proc/self/uid_map; id; echo > /dev/null && echo devnull-ok",
                      ns=ns), tmp_path)
    assert res.error is None, res.error
    fields = res.text.split()
    assert fields[:3] == ["0", "100000", "65536"]
    assert "uid=0 gid=0" in res.text
    assert "devnull-ok" in res.text


def test_caps_nnp_seccomp_and_user(rootfs, tmp_path):
    caps = (1 << 0) | (1 << 5) | (1 << 10)   # CHOWN, KILL, NET_BIND_SERVICE
    extra = [
        # uid 1000 keeps capabilities across execve only as ambient ones.
        ("CAPS", (caps, caps, caps, caps, caps)),
        ("USER", (1000, 1000, 0o22, [10, 20])),
        ("NO_NEW_PRIVS", (1,)),
        ("SECCOMP_INIT", (h.SCMP_ACT_ALLOW, 0)),
        ("SECCOMP_ARCH", ("x86_64",)),
        ("SECCOMP_RULE", ("nosuchsyscall_xyz", h.scmp_act_errno(1), [])),
        ("SECCOMP_RULE", ("getpid", h.SCMP_ACT_ALLOW, [])),
    ]
    res = run_plan(sh(rootfs, "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; id",
                      after=extra), tmp_path)
    assert res.error is None, res.error
    status = dict(line.split(":\t") for line in res.text.splitlines() if ":\t" in line)
    assert status["CapBnd"] == "%016x" % caps
    assert status["CapEff"] == "%016x" % caps
    assert status["CapPrm"] == "%016x" % caps
    assert status["CapInh"] == "%016x" % caps
    assert status["CapAmb"] == "%016x" % caps
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    assert "uid=1000 gid=1000 groups=10,20" in res.text


@pytest.mark.parametrize("nnp", [0, 1])
def test_seccomp_errno_rule(rootfs, tmp_path, nnp):
    act = h.scmp_act_errno(errno.EROFS)
    extra = [
        ("NO_NEW_PRIVS", (nnp,)),
        ("SECCOMP_INIT", (h.SCMP_ACT_ALLOW, 0)),
        ("SECCOMP_ARCH", ("x86_64",)),
        ("SECCOMP_RULE", ("mkdir", act, [])),
        ("SECCOMP_RULE", ("mkdirat", act, [])),
    ]
    res = run_plan(sh(rootfs, "mkdir /tmp/x$$ || echo mkdir-failed", after=extra), tmp_path)
    assert res.error is None, res.error
    assert "Read-only file system" in res.text and "mkdir-failed" in res.text


def test_seccomp_arg_rules(rootfs, tmp_path):
    # kill(pid, ...): op 4 = SCMP_CMP_EQ.  One rule with arg 0 twice is an OR of both.
    eperm = h.scmp_act_errno(errno.EPERM)
    extra = [
        ("SECCOMP_INIT", (h.SCMP_ACT_ALLOW, 0)),
        ("SECCOMP_RULE", ("kill", eperm, [0, 12345, 0, 4, 0, 23456, 0, 4])),
        ("SECCOMP_RULE", ("kill", eperm, [0, 777, 0, 4, 1, 0, 0, 4])),   # AND: pid 777, sig 0
    ]
    script = ("for p in 12345 23456 34567; do kill -0 $p; done; kill -0 777; kill -15 777; "
              "kill -0 1 && echo self-ok")
    res = run_plan(sh(rootfs, script + " 2>&1", after=extra), tmp_path)
    assert res.error is None, res.error
    lines = res.text.splitlines()
    assert "12345" in lines[0] and "not permitted" in lines[0]
    assert "23456" in lines[1] and "not permitted" in lines[1]
    assert "34567" in lines[2] and "No such process" in lines[2]
    assert "not permitted" in lines[3]
    assert "No such process" in lines[4]
    assert lines[5] == "self-ok"


def test_masked_and_readonly_paths(rootfs, tmp_path):
    extra = [("MASKED", ("/proc/kcore",)), ("MASKED", ("/proc/scsi",)),
             ("MASKED", ("/does/not/exist",)), ("READONLY", ("/proc/sys",)),
             ("READONLY", ("/nope",))]
    res = run_plan(sh(rootfs, "wc -c < /proc/kcore 2>&1; cat /proc/kcore | head -c 10; "
                              "echo 1 > /proc/sys/kernel/domainname || echo ro-ok",
                      after=extra), tmp_path)
    assert res.error is None, res.error
    assert "ro-ok" in res.text


def test_readonly_rootfs(rootfs, tmp_path):
    res = run_plan(sh(rootfs, "touch /x 2>&1 || echo > /x || echo rootfs-ro", readonly=1),
                   tmp_path)
    assert res.error is None, res.error
    assert "rootfs-ro" in res.text


def test_sysctl_and_rlimit(rootfs, tmp_path):
    extra = [("SYSCTL", ("kernel/domainname", "minidomain")), ("RLIMIT", (7, 256, 512))]
    res = run_plan(sh(rootfs, "cat /proc/sys/kernel/domainname; grep 'open files' "
                              "/proc/self/limits", after=extra), tmp_path)
    assert res.error is None, res.error
    lines = res.text.splitlines()
    assert lines[0] == "minidomain"
    assert lines[1].split()[3:5] == ["256", "512"]


def test_init_exe_is_sealed_memfd(rootfs, tmp_path):
    seen = {}

    def on_ready(pid):
        seen["exe"] = os.readlink("/proc/%d/exe" % pid)
        try:
            with open("/proc/%d/exe" % pid, "r+b") as f:
                f.write(b"x")
        except OSError as e:
            seen["write_errno"] = e.errno

    res = run_plan(base_records(rootfs, ["echo", "done"]), tmp_path,
                   on_ready=on_ready)
    assert res.error is None, res.error
    assert seen["exe"].startswith("/memfd:minirunc-init"), seen
    assert seen["write_errno"] in (errno.EPERM, errno.ETXTBSY, errno.EACCES)
    assert res.text == "done\n"


def test_proc_self_exe_shebang_is_harmless(rootfs, tmp_path):
    script = os.path.join(rootfs, "bin", "selfexe")
    with open(script, "w") as f:
        f.write("#!/proc/self/exe\n")
    os.chmod(script, 0o755)
    res = run_plan(base_records(rootfs, ["/bin/selfexe"]), tmp_path)
    assert res.error is None, res.error
    assert "minirunc-init: not started by minirunc" in res.text
    assert res.exit_code == 127


def test_exec_failure_reported_on_start_connection(rootfs, tmp_path):
    # Passes the preflight (a readable, executable file) but the kernel refuses the format.
    bad = os.path.join(rootfs, "bin", "garbage")
    with open(bad, "wb") as f:
        f.write(b"\x00\x01\x02\x03 not a program")
    os.chmod(bad, 0o755)
    res = run_plan(base_records(rootfs, ["/bin/garbage"]), tmp_path)
    assert res.error is None
    assert res.exec_error is not None and res.exec_error[0] == errno.ENOEXEC
    assert res.exit_code == 127


def test_bad_mount_error_names_flags(rootfs, tmp_path):
    bad = ("MOUNT", (0, "nosuchfs", "/mnt", "nosuchfs", h.MS_NOSUID | h.MS_NODEV, 0, 0, 0, "", 0))
    res = run_plan(sh(rootfs, "true", extra=[bad]), tmp_path)
    assert res.error == (errno.ENODEV, "mount",
                         "mount nosuchfs on /mnt (MS_NOSUID|MS_NODEV)")


def test_preserve_fds_and_no_leaks(rootfs, tmp_path):
    res = run_plan(sh(rootfs, "ls /proc/self/fd | sort -n | tr '\\n' ' '"), tmp_path)
    assert res.error is None, res.error
    # ls's own directory fd (3) is the only one beyond stdio.
    assert res.text.split() == ["0", "1", "2", "3"]


def test_unknown_plan_tag_rejected(tmp_path):
    from minirunc import planformat
    import struct
    records = [("ARG", ("x",))]
    res = run_plan(planformat.encode(records) + struct.pack("<II", 999, 0), tmp_path)
    assert res.error is not None and res.error[1] == "plan"
    assert "unknown plan record tag 999" in res.error[2]


def test_bad_magic_and_bad_length(tmp_path):
    from minirunc import planformat
    import struct
    res = run_plan(b"NOTAPLAN", tmp_path)
    assert res.error[1] == "plan" and "bad magic" in res.error[2]
    res = run_plan(planformat.MAGIC + struct.pack("<IIQ", 1, 4, 0), tmp_path)   # NS_NEW, short
    assert res.error[1] == "plan"


def test_not_started_by_minirunc(tmp_path):
    from minirunc import native
    fd = native.init_memfd()
    try:
        path = "/proc/self/fd/%d" % fd
        import subprocess
        r = subprocess.run([path], capture_output=True, text=True, pass_fds=(fd,),
                           executable="/proc/%d/fd/%d" % (os.getpid(), fd))
    finally:
        os.close(fd)
    assert r.returncode == 127
    assert r.stderr == "minirunc-init: not started by minirunc\n"
    assert stat.S_ISREG(os.stat("/bin/busybox").st_mode)


def pty_records():
    devpts = ("MOUNT", (0, "devpts", "/dev/pts", "devpts", h.MS_NOSUID | h.MS_NOEXEC, 0, 0, 0,
                        "newinstance,ptmxmode=0666,mode=0620", 0))
    return [devpts, ("SYMLINK", ("pts/ptmx", "/dev/ptmx"))]


def test_terminal(rootfs, tmp_path):
    res = run_plan(sh(rootfs, "tty; stty size; ls -l /proc/self/fd/0",
                      extra=pty_records(), after=[("TERMINAL", (33, 101))]), tmp_path)
    assert res.error is None, res.error
    assert res.pty is not None and res.pty[0] == "/dev/pts/0"
    text = res.text.replace("\r", "")
    assert "/dev/pts/0\n33 101\n" in text
    assert "/proc/self/fd/0 -> /dev/pts/0" in text


def test_preserve_fds(rootfs, tmp_path):
    r, w = os.pipe()
    try:
        res = run_plan(sh(rootfs, "echo via-fd3 >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '",
                          after=[("PRESERVE_FDS", (1,))]), tmp_path, preserve_fd=w)
        os.close(w)
        w = None
        assert res.error is None, res.error
        assert os.read(r, 100) == b"via-fd3\n"
        assert res.text.split() == ["0", "1", "2", "3", "4"]   # 4: ls's directory fd
    finally:
        os.close(r)
        if w is not None:
            os.close(w)


def test_user_namespace_locked_flags_and_ro_bind(rootfs, tmp_path):
    ns = h.CLONE_NEWNS | h.CLONE_NEWUTS | h.CLONE_NEWPID | h.CLONE_NEWIPC | h.CLONE_NEWUSER
    import tempfile
    data = tempfile.mkdtemp(prefix="minirunc-udata-", dir="/tmp")   # traversable by uid 100000
    os.chmod(data, 0o755)
    # The rootfs belongs to host root, unmapped here: the namespace's root cannot mkdir in it.
    os.makedirs(os.path.join(rootfs, "udata"), exist_ok=True)
    bind = ("MOUNT", (1, str(data), "/udata", "", h.MS_BIND | h.MS_REC | h.MS_RDONLY,
                      0, 0, 0, "", 0))
    extra = [("MASKED", ("/proc/kcore",)), ("READONLY", ("/proc/sys",))]
    res = run_plan(sh(rootfs, "echo > /udata/x || echo bind-ro; echo 1 > /proc/sys/kernel/"
                              "domainname || echo sys-ro; grep ' /proc/sys ' /proc/self/mountinfo",
                      ns=ns, extra=[bind], after=extra), tmp_path)
    assert res.error is None, res.error
    assert "bind-ro" in res.text and "sys-ro" in res.text
    assert "ro,nosuid,nodev,noexec" in res.text
    assert not os.path.exists(os.path.join(data, "x"))
    os.rmdir(data)


def test_args0_not_executable_or_directory(rootfs, tmp_path):
    plain = os.path.join(rootfs, "bin", "plainfile")
    with open(plain, "w") as f:
        f.write("echo hi\n")
    os.chmod(plain, 0o644)
    res = run_plan(base_records(rootfs, ["/bin/plainfile"]), tmp_path)
    assert res.error[0] == errno.EACCES and "is not executable" in res.error[2]
    res = run_plan(base_records(rootfs, ["/bin"]), tmp_path)
    assert res.error[1] == "exec" and "is a directory" in res.error[2]


PIVOT_EINVAL_SCRIPT = r"""
set -e
mount --make-rprivate /
top=$(mktemp -d /tmp/minirunc-chroot-XXXXXX)
mount -t tmpfs none "$top"
mkdir "$top/r"
for d in usr lib lib64 bin sbin etc root tmp proc dev $TOPS; do
    [ -e "/$d" ] && [ ! -e "$top/r/$d" ] || continue
    if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$top/r/$d"; continue; fi
    mkdir "$top/r/$d"
    mount --rbind "/$d" "$top/r/$d"
done
# $top/r is a plain directory, not a mount point: pivot_root must fail with EINVAL.
rc=0
chroot "$top/r" "$PY" -c "$CODE" || rc=$?
umount -l "$top"
rmdir "$top"
exit $rc
"""

PIVOT_EINVAL_CODE = r"""
import json, sys, tempfile
sys.path[:0] = [%(src)r, %(tests)r]
import native_helpers as h
res = h.run_plan(h.base_records(%(rootfs)r, ["echo", "inside"]), tempfile.mkdtemp())
print(json.dumps({"notes": res.notes, "error": res.error, "out": res.text, "code": res.exit_code}))
"""


def test_pivot_root_einval_falls_back(rootfs, tmp_path):
    import json
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    code = PIVOT_EINVAL_CODE % {"src": os.path.join(os.path.dirname(here), "src"),
                                "tests": here, "rootfs": rootfs}
    # The chroot needs the interpreter, the checkout and the rootfs, wherever they live
    # (CI clones somewhere else than a session's checkout).
    needed = [sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix,
              here, rootfs]
    tops = sorted({p.split("/")[1] for p in needed})
    env = dict(os.environ, PY=sys.executable, CODE=code, TOPS=" ".join(tops))
    r = subprocess.run(["unshare", "-m", "sh", "-c", PIVOT_EINVAL_SCRIPT], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["error"] is None, result
    assert result["out"] == "inside\n" and result["code"] == 0
    assert any("failed: invalid argument (EINVAL); host root is initramfs, using move-mount + "
               "chroot" in n for n in result["notes"]), result["notes"]
