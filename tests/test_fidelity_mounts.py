"""Issue 10, items 1, 2, 3 and 7: what runc's tests, the spec's validation suite and podman
catch on the container side.

1. tmpcopyup / notmpcopyup (podman puts tmpcopyup on every tmpfs): the tmpfs starts as a
   copy of what the rootfs held there (modes, owners, symlinks, times, xattrs, fifos and
   device nodes), made in the init through fds that never follow a symlink.
2. linux.rootfsPropagation reaches the container's own "/" (after pivot_root).
3. Namespaces: a mount namespace not listed is the runtime's (shared: nothing mounted in it,
   only a chroot), one listed with a path is joined and prepared like a new one; the
   combinations that would change the runtime's mount namespace are one line each.
7. A read-only tmpfs /dev gets its submounts and nodes first, then becomes read-only.

Container tests drive the CLI and check that nothing is left: no state directory, no cgroup
directory, no host mount under the test's directories.
"""

import json
import os
import signal
import subprocess

import pytest

from conftest import one_error_line, wait_for
from host_leftovers import cgroup_dirs_named

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# ------------------------------------------------------------------ helpers

def mountinfo(path="/proc/self/mountinfo"):
    """[(mount point, mount options, optional fields, fstype)] of a mountinfo file."""
    rows = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            rows.append((fields[4], fields[5], fields[6:sep], fields[sep + 1]))
    return rows


def host_mounts_under(path):
    return sorted(row for row in mountinfo() if row[0].startswith(str(path)))


def assert_nothing_left(rt, cid, tmp_path, mounts_before=()):
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert cgroup_dirs_named(cid) == []
    assert host_mounts_under(tmp_path) == sorted(mounts_before)


def started(rt, bundle):
    """create + start a bundle whose process stays up; returns (id, pid)."""
    cid = rt.new_id()
    r = rt("create", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    r = rt("start", cid)
    assert r.returncode == 0, r.stderr
    return cid, rt.state(cid)["pid"]


def deleted(rt, cid):
    r = rt("delete", "--force", cid)
    assert r.returncode == 0, r.stderr


def umount(path):
    subprocess.run(["umount", "-l", str(path)], check=True)


# ------------------------------------------------------------ 1. tmpcopyup

def copyup_tree(rootfs):
    """Entries of every kind under rootfs/etc, with owners, modes, times and an xattr."""
    etc = rootfs / "etc"
    (etc / "link").symlink_to("passwd")
    (etc / "escape").symlink_to("/etc/hostname")       # copied as a link, never followed
    sub = etc / "sub"
    sub.mkdir()
    (sub / "secret").write_text("s3cret\n")
    os.chown(sub / "secret", 123, 456)
    os.chmod(sub / "secret", 0o4750)
    os.chown(sub, 1000, 1001)
    os.chmod(sub, 0o750)
    os.mkfifo(etc / "fifo", 0o620)
    os.mknod(etc / "null", 0o640 | 0o020000, os.makedev(1, 3))
    os.setxattr(etc / "passwd", "trusted.minirunc", b"copied")
    os.utime(sub / "secret", (1000000000, 1000000000))
    os.utime(sub, (1100000000, 1100000000))
    os.chmod(etc, 0o751)


def test_tmpcopyup_copies_the_rootfs_directory(rt, make, tmp_path):
    def edit(c):
        c["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "tmpcopyup"]})
    bundle = make(["sleep", "1000"], edit)
    rootfs = bundle / "rootfs"
    copyup_tree(rootfs)
    cid, pid = started(rt, bundle)
    inside = "/proc/%d/root/etc" % pid
    rows = [row for row in mountinfo("/proc/%d/mountinfo" % pid) if row[0] == "/etc"]
    assert len(rows) == 1 and rows[0][3] == "tmpfs", rows
    for rel in ("", "passwd", "group", "link", "escape", "sub", "sub/secret", "fifo", "null"):
        want, got = os.lstat(rootfs / "etc" / rel), os.lstat(os.path.join(inside, rel))
        assert (got.st_mode, got.st_uid, got.st_gid) == (want.st_mode, want.st_uid, want.st_gid), rel
        if rel in ("sub", "sub/secret", "passwd"):
            assert got.st_mtime_ns == want.st_mtime_ns, rel
    assert os.lstat(os.path.join(inside, "null")).st_rdev == os.makedev(1, 3)
    assert os.readlink(os.path.join(inside, "escape")) == "/etc/hostname"
    assert open(os.path.join(inside, "sub/secret")).read() == "s3cret\n"
    assert open(os.path.join(inside, "passwd")).read().startswith("root:x:0:0:")
    assert os.getxattr(os.path.join(inside, "passwd"), "trusted.minirunc") == b"copied"
    # A copy: what the container writes stays in its tmpfs.
    r = rt("exec", cid, "sh", "-c", "echo new > /etc/new && cat /etc/group")
    assert r.returncode == 0 and r.stdout.startswith("root:x:0:"), r.stderr
    assert not (rootfs / "etc" / "new").exists()
    deleted(rt, cid)
    assert_nothing_left(rt, cid, tmp_path)


def test_tmpcopyup_through_a_symlinked_destination_stays_in_the_rootfs(rt, make, tmp_path):
    """rootfs/data -> /etc resolves to the rootfs's /etc, never the host's."""
    def edit(c):
        c["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup", "mode=700"]})
    bundle = make(["cat", "/data/passwd"], edit)
    (bundle / "rootfs" / "data").symlink_to("/etc")
    cid = rt.new_id()
    r = rt.run(bundle, cid=cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (bundle / "rootfs" / "etc" / "passwd").read_text()
    assert_nothing_left(rt, cid, tmp_path)


def test_tmpcopyup_read_only_tmpfs_and_notmpcopyup(rt, make, tmp_path):
    """podman --read-only: a read-only tmpfs with tmpcopyup is filled, then read-only;
    notmpcopyup after it leaves the tmpfs empty."""
    def edit(c):
        c["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                            "options": ["ro", "tmpcopyup"]})
        c["mounts"].append({"destination": "/var", "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup", "notmpcopyup"]})
    script = ("cat /etc/group; ls -A /var | wc -l; grep ' /etc ' /proc/self/mountinfo; "
              "touch /etc/x 2>&1")
    bundle = make(["sh", "-c", script], edit)
    (bundle / "rootfs" / "var" / "kept").write_text("x")
    cid = rt.new_id()
    r = rt.run(bundle, cid=cid)
    lines = r.stdout.splitlines()
    assert lines[:3] == ["root:x:0:", "nogroup:x:65534:", "0"], (r.stdout, r.stderr)
    assert lines[3].split()[5].split(",")[0] == "ro", lines[3]
    assert "Read-only file system" in lines[4]
    assert_nothing_left(rt, cid, tmp_path)


def test_tmpcopyup_failure_is_one_line_naming_the_path(rt, make, tmp_path):
    def edit(c):
        c["mounts"].append({"destination": "/var", "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup", "size=8k"]})
    bundle = make(["true"], edit)
    (bundle / "rootfs" / "var" / "big").write_bytes(b"x" * (256 * 1024))
    cid = rt.new_id()
    line = one_error_line(rt.run(bundle, cid=cid))
    assert "tmpcopyup of /var" in line and "/var/big" in line, line
    assert "no space left on device" in line.lower(), line
    assert_nothing_left(rt, cid, tmp_path)


# ------------------------------------------------------- 2. rootfsPropagation

def root_line(text):
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == "/":
            return fields[6:fields.index("-")]
    raise AssertionError("no / in\n" + text)


@pytest.mark.parametrize("propagation, tags", [
    ("shared", ["shared"]), ("rshared", ["shared"]), ("private", []), ("rprivate", []),
    ("unbindable", ["unbindable"]), ("runbindable", ["unbindable"]),
])
def test_rootfs_propagation_reaches_the_root(rt, make, tmp_path, propagation, tags):
    def edit(c):
        c["linux"]["rootfsPropagation"] = propagation
    bundle = make(["cat", "/proc/self/mountinfo"], edit)
    cid = rt.new_id()
    r = rt.run(bundle, cid=cid)
    assert r.returncode == 0, r.stderr
    assert [f.split(":")[0] for f in root_line(r.stdout)] == tags
    assert_nothing_left(rt, cid, tmp_path)


@pytest.mark.parametrize("propagation", ["slave", "rslave", None])
def test_slave_root_keeps_its_master(rt, make, tmp_path, propagation):
    """A rootfs under a shared mount: a slave "/" (asked for, or runc's default rslave)
    still receives the host's mounts, as with runc; it was private before."""
    def edit(c):
        if propagation is not None:
            c["linux"]["rootfsPropagation"] = propagation
    bundle = make(["cat", "/proc/self/mountinfo"], edit)
    subprocess.run(["mount", "--bind", str(bundle), str(bundle)], check=True)
    cid = rt.new_id()
    try:
        subprocess.run(["mount", "--make-shared", str(bundle)], check=True)
        r = rt.run(bundle, cid=cid)
        assert r.returncode == 0, r.stderr
        assert [f.split(":")[0] for f in root_line(r.stdout)] == ["master"]
    finally:
        umount(bundle)
    assert_nothing_left(rt, cid, tmp_path)


@pytest.mark.parametrize("propagation", ["private", "rprivate"])
def test_private_root_without_pivot_root_is_refused_as_runc(rt, make, tmp_path, propagation):
    def edit(c):
        c["linux"]["rootfsPropagation"] = propagation
    cid = rt.new_id()
    line = one_error_line(rt.run(make(["true"], edit), "--no-pivot", cid=cid))
    assert "linux.rootfsPropagation: rootfsPropagation of [r]private is not safe without " \
           "pivot_root" in line, line
    assert_nothing_left(rt, cid, tmp_path)


def test_shared_root_with_no_pivot(rt, make, tmp_path):
    def edit(c):
        c["linux"]["rootfsPropagation"] = "shared"
    cid = rt.new_id()
    r = rt.run(make(["cat", "/proc/self/mountinfo"], edit), "--no-pivot", cid=cid)
    assert r.returncode == 0, r.stderr
    assert [f.split(":")[0] for f in root_line(r.stdout)] == ["shared"]
    assert_nothing_left(rt, cid, tmp_path)


@pytest.mark.parametrize("propagation, seen", [("rslave", True), ("rshared", True),
                                               ("rprivate", False)])
def test_host_mount_propagates_into_a_shared_bind(rt, make, tmp_path, propagation, seen):
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        before = host_mounts_under(tmp_path)

        def edit(c):
            c["linux"]["rootfsPropagation"] = propagation
            c["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                                "options": ["rbind"]})
        cid, pid = started(rt, make(["sleep", "1000"], edit))
        (src / "sub").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
        (src / "sub" / "marker").write_text("host")
        try:
            assert os.path.exists("/proc/%d/root/mnt/sub/marker" % pid) == seen
        finally:
            umount(src / "sub")
        deleted(rt, cid)
        assert_nothing_left(rt, cid, tmp_path, before)
    finally:
        umount(src)


# ------------------------------------------------------------- 3. namespaces

def without_mount_namespace(c):
    c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"] if ns["type"] != "mount"]
    c["mounts"] = []
    del c["linux"]["maskedPaths"], c["linux"]["readonlyPaths"]
    c["root"]["readonly"] = False


def test_no_mount_namespace_shares_the_runtimes(rt, make, tmp_path):
    bundle = make(["sh", "-c", "cat /mnt/marker > /seen; exec sleep 1000"],
                  without_mount_namespace)
    rootfs = bundle / "rootfs"
    (rootfs / "mnt").mkdir()
    before = host_mounts_under(tmp_path)
    cid = rt.new_id()
    r = rt("create", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    # Mounted on the host after create: the container sees it, being in the same namespace.
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(rootfs / "mnt")], check=True)
    try:
        (rootfs / "mnt" / "marker").write_text("from the host\n")
        r = rt("start", cid)
        assert r.returncode == 0, r.stderr
        pid = rt.state(cid)["pid"]
        assert wait_for(lambda: (rootfs / "seen").exists()
                        and (rootfs / "seen").read_text() == "from the host\n")
        mine, theirs = os.stat("/proc/self/ns/mnt"), os.stat("/proc/%d/ns/mnt" % pid)
        assert (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
        assert os.readlink("/proc/%d/root" % pid) == str(rootfs)
        # exec gets the same root (setns gives none: the namespace is the runtime's).
        assert not os.path.exists("/seen")
        r = rt("exec", cid, "cat", "/seen")
        assert (r.returncode, r.stdout) == (0, "from the host\n"), r.stderr
        deleted(rt, cid)
    finally:
        umount(rootfs / "mnt")
    assert not (rootfs / "dev" / "null").exists()     # no device node made on disk
    assert_nothing_left(rt, cid, tmp_path, before)


@pytest.mark.parametrize("edit, where", [
    (lambda c: c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
     "mounts: needs a mount namespace of the container's own"),
    (lambda c: c["linux"].update(maskedPaths=["/proc/kcore"]),
     "linux.maskedPaths: unable to restrict sys entries without a private MNT namespace"),
    (lambda c: c["root"].update(readonly=True),
     "root.readonly: needs a mount namespace"),
    (lambda c: c["linux"].update(rootfsPropagation="shared"),
     "linux.rootfsPropagation: needs a mount namespace"),
    (lambda c: c["linux"].update(namespaces=[{"type": "mount", "path": "/proc/self/ns/mnt"}]),
     "/proc/self/ns/mnt is the runtime's own mount namespace"),
])
def test_mount_namespace_refusals_are_one_line(rt, make, tmp_path, edit, where):
    def both(c):
        without_mount_namespace(c)
        edit(c)
    cid = rt.new_id()
    line = one_error_line(rt.run(make(["true"], both), cid=cid))
    assert where in line, line
    assert_nothing_left(rt, cid, tmp_path)


def test_join_a_mount_namespace_by_path(rt, make, tmp_path):
    bundle = make(["cat", "/mnt/marker"])
    mnt = bundle / "rootfs" / "mnt"
    mnt.mkdir()
    before = host_mounts_under(tmp_path)
    script = ("mount -t tmpfs tmpfs %s && echo joined > %s/marker && exec sleep 1000"
              % (mnt, mnt))
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    try:
        seen = "/proc/%d/root%s/marker" % (holder.pid, mnt)
        assert wait_for(lambda: os.path.exists(seen))
        assert not (mnt / "marker").exists()      # the marker mount is the namespace's own

        def join(c):
            c["linux"]["namespaces"] = [ns for ns in c["linux"]["namespaces"]
                                        if ns["type"] != "mount"]
            c["linux"]["namespaces"].append({"type": "mount",
                                             "path": "/proc/%d/ns/mnt" % holder.pid})
        from make_bundle import write_config
        config = json.loads((bundle / "config.json").read_text())
        join(config)
        write_config(str(bundle), config)
        cid = rt.new_id()
        r = rt.run(bundle, cid=cid)
        assert (r.returncode, r.stdout) == (0, "joined\n"), r.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert_nothing_left(rt, cid, tmp_path, before)


# ---------------------------------------------------------- 7. read-only /dev

def test_read_only_dev_gets_its_submounts_first(rt, make, tmp_path):
    def edit(c):
        for m in c["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")
    script = ("grep -E ' /dev(/pts)? ' /proc/self/mountinfo; echo hi > /dev/null && echo null-ok; "
              "echo x > /dev/x 2>&1; ls /dev/null /dev/zero /dev/pts/ptmx")
    cid = rt.new_id()
    r = rt.run(make(["sh", "-c", script], edit), cid=cid)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    dev = [line.split() for line in lines if " /dev " in line]
    pts = [line.split() for line in lines if " /dev/pts " in line]
    assert len(dev) == 1 and dev[0][5].split(",")[0] == "ro", lines
    assert len(pts) == 1 and pts[0][5].split(",")[0] == "rw", lines
    assert "null-ok" in lines
    assert "Read-only file system" in r.stdout + r.stderr
    assert {"/dev/null", "/dev/zero", "/dev/pts/ptmx"} <= set(lines)
    assert_nothing_left(rt, cid, tmp_path)


def test_read_only_dev_with_a_terminal_has_its_console(rt, make, tmp_path):
    """/dev/console is made (a file to bind the pty onto) before /dev becomes read-only."""
    import select
    import time
    from conftest import runtime_env

    def edit(c):
        for m in c["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")
    bundle = make(["sh", "-c", "echo on-console > /dev/console; touch /dev/y || echo dev-ro"],
                  edit, terminal=True)
    master, slave = os.openpty()
    cid = rt.new_id()
    proc = subprocess.Popen(rt.cmd("run", "--bundle", bundle, cid), stdin=slave, stdout=slave,
                            stderr=slave, env=runtime_env(), start_new_session=True)
    out = b""
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=20) == 0, out
    finally:
        os.close(master)
        os.close(slave)
    assert b"on-console" in out and b"dev-ro" in out, out
    assert_nothing_left(rt, cid, tmp_path)


def test_tmpcopyup_in_a_user_namespace(rt, make, tmp_path):
    from make_bundle import in_user_namespace, reachable_by_mapped_root

    def edit(c):
        in_user_namespace(c)
        c["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup"]})
    bundle = make(["sh", "-c", "cat /etc/passwd; stat -c '%a %u' /etc/sub /etc/sub/f"], edit)
    sub = bundle / "rootfs" / "etc" / "sub"
    sub.mkdir()
    (sub / "f").write_text("f")
    os.chown(sub, 101000, 101000)          # container uid 1000
    os.chown(sub / "f", 100005, 100005)    # container uid 5
    os.chmod(sub, 0o711)
    cid = rt.new_id()
    r = rt.run(reachable_by_mapped_root(bundle), cid=cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == ["711 1000", "644 5"], r.stdout
    assert r.stdout.startswith("root:x:0:0:")
    assert_nothing_left(rt, cid, tmp_path)
