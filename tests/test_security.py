"""Capabilities, users, seccomp, fd hygiene and the /proc/self/exe (CVE-2019-5736) attacks."""

import glob
import hashlib
import os
import subprocess
import sys

from conftest import runtime_env

CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE = 5, 10, 29
DEFAULT_MASK = (1 << CAP_KILL) | (1 << CAP_NET_BIND_SERVICE) | (1 << CAP_AUDIT_WRITE)


def status_fields(text):
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_capabilities_and_no_new_privs(rt, make):
    r = rt.run(make(["cat", "/proc/self/status"]))
    assert r.returncode == 0, r.stderr
    st = status_fields(r.stdout)
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[field], 16) == DEFAULT_MASK, field
    # runc's default spec lists ambient caps without inheritable ones; the kernel refuses
    # those, and runc (checked here: 1.1.5) ends up with none, as we do.
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"].strip() == "1"
    # No filter of the container's own; under MINIRUNC_KERNEL the wrapper's one is inherited.
    assert st["Seccomp"].strip() == ("2" if os.environ.get("MINIRUNC_KERNEL") else "0")


def test_all_five_capability_sets(rt, make):
    def edit(c):
        c["process"]["capabilities"] = {
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "inheritable": ["CAP_KILL", "CAP_CHOWN"],
            "ambient": ["CAP_KILL"],
        }
        c["process"]["noNewPrivileges"] = False
        c["process"]["user"] = {"uid": 1000, "gid": 1000}
    r = rt.run(make(["cat", "/proc/self/status"], edit=edit))
    assert r.returncode == 0, r.stderr
    st = status_fields(r.stdout)
    # After execve as a non-root user, permitted/effective come from the ambient set.
    assert int(st["CapBnd"], 16) == (1 << 5) | (1 << 0) | (1 << 13)
    assert int(st["CapInh"], 16) == (1 << 5) | (1 << 0)
    assert int(st["CapAmb"], 16) == 1 << 5
    assert int(st["CapPrm"], 16) == 1 << 5
    assert int(st["CapEff"], 16) == 1 << 5
    assert st["NoNewPrivs"].strip() == "0"


def test_user_groups_and_umask(rt, make):
    def edit(c):
        c["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027}
        c["root"]["readonly"] = False
    r = rt.run(make(["sh", "-c", "id -u; id -g; id -G; umask; touch /tmp/f; stat -c '%u %g %a' /tmp/f"],
                    edit=edit))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0:2] == ["1000", "1001"]
    assert sorted(lines[2].split()) == ["10", "1001", "20"]
    assert lines[3] == "0027"
    assert lines[4] == "1000 1001 640"


def test_seccomp_errno_rule(rt, make):
    def edit(c):
        c["root"]["readonly"] = False
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["no_such_syscall_name"], "action": "SCMP_ACT_KILL"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0xdead, "op": "SCMP_CMP_EQ"}]},
            ],
        }
    r = rt.run(make(["sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/x; echo rc=$?"],
                    edit=edit))
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t2" in r.stdout
    assert "rc=1" in r.stdout and "Permission denied" in r.stderr


def test_seccomp_default_errno_blocks_unlisted(rt, make):
    def edit(c):
        # An allow-list without mkdir/mkdirat: mkdir must fail with the default errno.
        allowed = ["read", "write", "exit", "exit_group", "execve", "brk", "mmap", "munmap",
                   "arch_prctl", "set_tid_address", "rt_sigaction", "rt_sigprocmask",
                   "getpid", "getuid", "geteuid", "ioctl", "fstat", "newfstatat", "close",
                   "prctl", "getppid", "set_robust_list", "rseq", "prlimit64", "mprotect",
                   "getrandom", "openat", "readlinkat", "umask", "stat", "lstat"]
        c["root"]["readonly"] = False
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                                 "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    bundle = make(["mkdir", "/tmp/made"], edit=edit)
    r = rt.run(bundle)
    assert r.returncode != 0
    assert "not implemented" in r.stderr.lower()
    assert not (bundle / "rootfs" / "tmp" / "made").exists()


def test_only_stdio_fds_reach_the_container(rt, make):
    r_fd, w_fd = os.pipe()
    os.set_inheritable(r_fd, True)
    os.set_inheritable(w_fd, True)
    try:
        bundle = make(["sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd"])
        r = subprocess.run(rt.cmd("run", "--bundle", bundle, rt.new_id()), env=runtime_env(),
                           capture_output=True, text=True, pass_fds=(r_fd, w_fd), timeout=30)
    finally:
        os.close(r_fd)
        os.close(w_fd)
    assert r.returncode == 0, r.stderr
    fds = r.stdout.split()[:-1]
    # ls itself holds one fd for the directory it lists.
    assert set(fds) <= {"0", "1", "2", "3"} and len(fds) == 4
    assert r.stdout.split()[-1] == "/"


def test_preserve_fds(rt, make, tmp_path):
    secret = tmp_path / "passed.txt"
    secret.write_text("passed-through\n")
    bundle = make(["sh", "-c", "cat /proc/self/fd/3; ls /proc/self/fd/4 2>&1 || echo no-fd-4"])
    # The shell opens fd 3 and 4 for minirunc; only fd 3 is asked to be preserved.
    cmd = ["sh", "-c", 'exec 3<"$0" 4<"$0"; exec "$@"', str(secret)]
    cmd += rt.cmd("run", "--preserve-fds", "1", "--bundle", bundle, rt.new_id())
    r = subprocess.run(cmd, env=runtime_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("passed-through\n")
    assert "no-fd-4" in r.stdout


def runtime_files():
    """The files a container would have to rewrite to take over the host runtime."""
    files = [os.path.realpath(sys.executable)]
    files += glob.glob(os.path.join(os.path.dirname(__file__), "..", "src", "minirunc", "_native*.so"))
    if os.environ.get("MINIRUNC_BIN"):
        files.append(os.environ["MINIRUNC_BIN"])
    return {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files}


def test_proc_self_exe_shebang_runs_only_the_sealed_init(rt, make):
    before = runtime_files()
    bundle = make(["/evil"], edit=lambda c: c["root"].update(readonly=False))
    evil = bundle / "rootfs" / "evil"
    evil.write_text("#!/proc/self/exe\n")
    evil.chmod(0o755)
    r = rt.run(bundle)
    assert r.returncode == 127
    assert "not started by minirunc" in r.stderr
    assert runtime_files() == before


def test_waiting_init_exe_is_a_sealed_memfd(rt, make):
    before = runtime_files()
    first = rt.new_id()
    assert rt("create", "--bundle", make(["true"]), first).returncode == 0
    pid = rt.state(first)["pid"]

    def edit(c):
        c["linux"]["namespaces"] = [n if n["type"] != "pid" else {"type": "pid", "path": "/proc/%d/ns/pid" % pid}
                                    for n in c["linux"]["namespaces"]]
        c["process"]["capabilities"] = {k: ["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN"]
                                        for k in ("bounding", "effective", "permitted")}
    script = ("readlink /proc/1/exe; echo pwned >> /proc/1/exe; echo rc=$?; "
              "exec 3>/proc/1/exe && echo pwned >&3; echo rc2=$?")
    r = rt.run(make(["sh", "-c", script], edit=edit))
    assert r.stdout.startswith("/memfd:minirunc-init"), r.stdout + r.stderr
    assert "rc=0" not in r.stdout and "rc2=0" not in r.stdout
    assert runtime_files() == before
    assert rt("start", first).returncode == 0


def test_runtime_exe_is_out_of_reach_while_it_waits(rt, make):
    """A container in the host pid namespace sees the waiting `run` as its parent, but
    /proc/<runtime>/exe cannot be read or opened from inside: the runtime is not dumpable
    and holds capabilities the container lacks."""
    before = runtime_files()

    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]
        c["mounts"].append({"destination": "/proc", "type": "bind", "source": "/proc",
                            "options": ["rbind", "nosuid", "noexec", "nodev"]})
        c["linux"]["maskedPaths"] = []
        c["linux"]["readonlyPaths"] = []
    script = ("cat /proc/$PPID/comm; readlink /proc/$PPID/exe || echo readlink-denied; "
              "echo pwned >> /proc/$PPID/exe; echo rc=$?")
    r = rt.run(make(["sh", "-c", script], edit=edit))
    lines = r.stdout.split("\n")
    # really the runtime (its comm: python, minirunc or minirunc-static)
    assert lines[0] == "python" or lines[0].startswith("minirunc"), r.stdout + r.stderr
    assert "readlink-denied" in r.stdout and "rc=0" not in r.stdout, r.stdout
    assert runtime_files() == before


def _session_keyrings(text, name):
    """Lines of a /proc/keys listing for keyrings called ``name``: [(perm, line)]."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 8 and fields[7] == "keyring" and fields[8] == name + ":":
            found.append((int(fields[4], 16), line))
    return found


def _host_keys():
    with open("/proc/keys") as f:
        return f.read()


def _unmask_proc_keys(config):
    config["linux"]["maskedPaths"].remove("/proc/keys")


def test_container_gets_its_own_session_keyring(rt, make):
    """Like runc: not the caller's session keyring but `_ses.<id>`, searchable by the
    container's user, and `exec` joins that same keyring instead of making another."""
    cid = rt.new_id("key")
    bundle = make(["sleep", "100"], edit=_unmask_proc_keys)
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    rings = _session_keyrings(_host_keys(), "_ses." + cid)
    assert len(rings) == 1, _host_keys()
    assert rings[0][0] & 0x00080000   # KEY_USR_SEARCH
    r = rt("exec", cid, "cat", "/proc/keys")
    assert r.returncode == 0, r.stderr
    assert len(_session_keyrings(r.stdout, "_ses." + cid)) == 1, r.stdout
    assert len(_session_keyrings(_host_keys(), "_ses." + cid)) == 1


def test_no_new_keyring_keeps_the_callers(rt, make):
    cid = rt.new_id("key")
    bundle = make(["sleep", "100"], edit=_unmask_proc_keys)
    assert rt("run", "-d", "--no-new-keyring", "--bundle", bundle, cid).returncode == 0
    r = rt("exec", cid, "cat", "/proc/keys")
    assert r.returncode == 0, r.stderr
    assert _session_keyrings(r.stdout, "_ses." + cid) == []
    assert _session_keyrings(_host_keys(), "_ses." + cid) == []
