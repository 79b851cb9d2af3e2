"""The hand-encoded CRIU RPC messages (criu_rpc.py) and CRIU log/lookup helpers.

The expected bytes were produced by the official protobuf encoder (Debian's python3-protobuf
with pycriu's rpc_pb2) for the same messages, so the encoder is byte-identical to it.
"""

from minirunc import criu, criu_rpc as rpc

RESTORE_REQUEST = bytes.fromhex(
    "0802129e01080510ffffffffffffffffff0138004804520b726573746f72652e6c6f676a092f746d702f726f"
    "6f74ba01120a052f6461746112092f746d702f64617461ba01160a092f6465762f6e756c6c12092f6465762f"
    "6e756c6cc00101ca010b0a047069647312032f6331ca010512032f6331d00101da010e0a0a706970653a5b31"
    "32335d1001900203aa020a66696c655b31383a335db0028080808004900301")


def test_request_is_byte_identical_to_protobuf():
    got = rpc.encode(rpc.REQ, {"type": rpc.RESTORE, "opts": {
        "images_dir_fd": 5, "log_level": 4, "log_file": "restore.log", "root": "/tmp/root",
        "rst_sibling": True, "manage_cgroups": True, "shell_job": False,
        "orphan_pts_master": True, "manage_cgroups_mode": rpc.CG_MODES["soft"],
        "empty_ns": 0x40000000,
        "ext_mnt": [{"key": "/data", "val": "/tmp/data"},
                    {"key": "/dev/null", "val": "/dev/null"}],
        "inherit_fd": [{"key": "pipe:[123]", "fd": 1}],
        "cg_root": [{"ctrl": "pids", "path": "/c1"}, {"path": "/c1"}],
        "external": ["file[18:3]"], "pid": -1}})
    assert got == RESTORE_REQUEST


def test_none_values_are_left_out_and_order_follows_field_numbers():
    assert rpc.encode(rpc.REQ, {"notify_success": True, "type": rpc.NOTIFY, "opts": None}) == \
        bytes([0x08, 0x06, 0x18, 0x01])


def test_responses_decode():
    notify = bytes.fromhex("080610012a110a0c706f73742d726573746f7265109221")
    assert rpc.decode(rpc.RESP, notify) == {
        "type": rpc.NOTIFY, "success": True, "notify": {"script": "post-restore", "pid": 4242}}
    failed = bytes.fromhex("080110002202084d38feffffffffffffffff01420208004a04626f6f6d520408041001")
    assert rpc.decode(rpc.RESP, failed) == {
        "type": rpc.DUMP, "success": False, "restore": {"pid": 77}, "cr_errno": -2,
        "features": {"mem_track": False}, "cr_errmsg": "boom",
        "version": {"major_number": 4, "minor_number": 1}}


def test_unknown_fields_are_skipped_and_truncation_is_an_error():
    # field 15 (varint) and field 16 (bytes) are not in the schema
    data = bytes([0x08, 0x02, 0x78, 0x05, 0x82, 0x01, 0x02, 0x61, 0x62, 0x10, 0x01])
    assert rpc.decode(rpc.RESP, data) == {"type": 2, "success": True}
    for bad in (bytes([0x08]), bytes([0x4a, 0x05, 0x61])):
        try:
            rpc.decode(rpc.RESP, bad)
        except ValueError:
            continue
        raise AssertionError("no error for %r" % bad)


def test_log_error_skips_noise_and_takes_the_cause(tmp_path):
    log = tmp_path / "restore.log"
    log.write_text(
        "(00.01) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: EPERM\n"
        "Error (criu/util.c:641): execvp(\"iptables-restore\", ...) failed: No such file\n"
        "(00.02)      1: Error (criu/util.c:1722): iptables-restore -V failed\n"
        "(00.03)      1: Error (criu/files-reg.c:2353): Can't open file fd/1 on restore: ELOOP\n"
        "(00.04)      1: Error (criu/files.c:1221): Unable to open fd=1 id=0x3\n"
        "(00.05) Error (criu/cr-restore.c:2320): Restoring FAILED.\n"
        "(00.06) Error (criu/cgroup.c:1998): cg: cgroupd: recv req error: ENOENT\n")
    assert criu.last_log_error(str(log)) == "Can't open file fd/1 on restore: ELOOP"
    text = criu.failure_text({"cr_errmsg": "rlimit: ..."}, str(log))
    assert text.startswith("Can't open file fd/1") and str(log) in text
    assert criu.failure_text({"cr_errmsg": "boom"}, str(tmp_path / "none.log")).startswith("boom")


def test_find_names_the_flag(tmp_path):
    try:
        criu.find(str(tmp_path / "criu"))
    except criu.UsageError as e:
        assert "--criu" in str(e) and "install" in str(e)
    else:
        raise AssertionError("no error")
    assert criu.which("sh")
    assert not criu.available(str(tmp_path / "criu"))
