"""`minirunc import SOURCE DIR`: bundles from docker export/save tars and OCI layouts, built
here with tarfile (no registry is reachable), then run as real containers.  Bad archives
and hostile members are one line each, and DIR is left as it was."""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from make_bundle import make_rootfs


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries, gz=False):
    """entries: (name, kind, extra dict); kind is file/dir/symlink/hardlink/char/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mode = extra.get("mode", 0o755 if kind == "dir" else 0o644)
            info.uid, info.gid = extra.get("uid", 0), extra.get("gid", 0)
            info.mtime = 1436000000
            data = extra.get("data", b"")
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, extra["target"]
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, extra["target"]
            elif kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def rootfs_tar(tmp_path, gz=False):
    """A `docker export`-like tar of the busybox rootfs."""
    root = tmp_path / "src-rootfs"
    make_rootfs(str(root))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        tar.add(str(root), arcname=".")
    return buf.getvalue()


UPPER = [
    ("etc/.wh.group", "file", {}),                    # whiteout: /etc/group goes
    ("var", "dir", {}),
    ("var/.wh..wh..opq", "file", {}),                 # opaque: the lower /var emptied
    ("var/kept", "file", {"data": b"upper\n"}),
    ("opt", "dir", {"mode": 0o755}),
    ("opt/owned", "file", {"data": b"mine\n", "uid": 1000, "gid": 1000, "mode": 0o4755}),
    ("opt/hard", "hardlink", {"target": "opt/owned"}),
    ("opt/soft", "symlink", {"target": "owned"}),
    ("opt/null", "char", {"mode": 0o666}),
    ("opt/pipe", "fifo", {}),
    ("opt/locked", "dir", {"mode": 0o555}),
    ("opt/locked/inside", "file", {"data": b"in\n"}),
]
LOWER_EXTRA = [("var/old", "file", {"data": b"lower\n"})]

IMAGE_CONFIG = {
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["sh", "-c"],
               "Cmd": ["echo $GREETING; pwd; id -u; id -g; cat kept 2>/dev/null; "
                       "cat /var/kept; ls /var; cat /opt/hard; ls /etc/group || echo gone"],
               "Env": ["PATH=/bin:/usr/bin", "GREETING=hello"],
               "WorkingDir": "/opt", "User": "nobody"},
}


def base_layer(tmp_path):
    raw = rootfs_tar(tmp_path)
    # the lower layer also has /var/old (the opaque upper /var must hide it)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None)
                   for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
        for name, kind, extra in LOWER_EXTRA:
            info = tarfile.TarInfo(name)
            info.size = len(extra["data"])
            tar.addfile(info, io.BytesIO(extra["data"]))
    return buf.getvalue()


def docker_save(tmp_path, layers, config=IMAGE_CONFIG, tags=("app:1",)):
    cfg = dict(config, rootfs={"type": "layers", "diff_ids": [sha(x) for x in layers]})
    cfg_raw = json.dumps(cfg).encode()
    cfg_name = hashlib.sha256(cfg_raw).hexdigest() + ".json"
    files = {cfg_name: cfg_raw}
    names = []
    for i, layer in enumerate(layers):
        names.append("layer%d/layer.tar" % i)
        files[names[-1]] = layer
    files["manifest.json"] = json.dumps([{"Config": cfg_name, "RepoTags": list(tags),
                                          "Layers": names}]).encode()
    path = tmp_path / "save.tar"
    path.write_bytes(tar_bytes([(n, "file", {"data": d}) for n, d in files.items()]))
    return path


def oci_layout(where, images, as_tar=False):
    """images: {tag: [layer bytes]} (gzip layers); a directory (or its tar)."""
    blobs, manifests = {}, []
    for tag, layers in images.items():
        gz = [gzip.compress(x, mtime=0) for x in layers]
        cfg = json.dumps(dict(IMAGE_CONFIG, rootfs={"type": "layers",
                                                    "diff_ids": [sha(x) for x in layers]}))
        cfg = cfg.encode()
        blobs[sha(cfg)] = cfg
        for g in gz:
            blobs[sha(g)] = g
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(cfg), "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha(g), "size": len(g)} for g in gz]}).encode()
        blobs[sha(manifest)] = manifest
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": sha(manifest), "size": len(manifest),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
             "index.json": json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()}
    for digest, data in blobs.items():
        files["blobs/sha256/" + digest.split(":")[1]] = data
    if as_tar:
        where.write_bytes(tar_bytes([(n, "file", {"data": d}) for n, d in files.items()]))
    else:
        for name, data in files.items():
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            (where / name).write_bytes(data)
    return where


def assert_untouched(target, existed):
    parent = target.parent
    assert not [n for n in os.listdir(parent) if ".import-" in n], os.listdir(parent)
    if existed:
        assert target.is_dir() and os.listdir(target) == []
    else:
        assert not os.path.lexists(target)


def run_bundle(rt, bundle, args=None):
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    if args:
        config["process"]["args"] = args
    config["process"]["terminal"] = False
    path.write_text(json.dumps(config))
    return rt.run(bundle)


def test_docker_export_tar(rt, tmp_path):
    source = tmp_path / "export.tar.gz"
    source.write_bytes(rootfs_tar(tmp_path, gz=True))
    target = tmp_path / "bundle"
    r = rt("import", source, target)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("layer 1/1 ")               # not a terminal: plain lines
    config = json.loads((target / "config.json").read_text())
    assert config["process"]["args"] == ["sh"] and config["root"]["path"] == "rootfs"
    r = run_bundle(rt, target, ["sh", "-c", "ls /bin/busybox && echo ran"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["/bin/busybox", "ran"]


def test_gzip_members_truncated_and_corrupt(rt, tmp_path):
    """gzip is undone by the runtime itself (zlib is built into both single binaries): an
    export compressed as two gzip members back to back (pigz, concatenated files) imports
    whole; a truncated or corrupt one is one line naming it, and nothing is left in DIR or
    beside the archive (where the decompressed copy is written)."""
    raw = rootfs_tar(tmp_path)
    half = len(raw) // 2
    source = tmp_path / "two-members.tar.gz"
    source.write_bytes(gzip.compress(raw[:half], mtime=0) + gzip.compress(raw[half:], mtime=0))
    target = tmp_path / "bundle"
    r = rt("import", source, target)
    assert r.returncode == 0, r.stderr
    busybox = (tmp_path / "src-rootfs" / "bin" / "busybox").read_bytes()
    assert (target / "rootfs" / "bin" / "busybox").read_bytes() == busybox
    whole = gzip.compress(raw, mtime=0)
    flipped = whole[:20] + bytes(b ^ 0xFF for b in whole[20:60]) + whole[60:]
    for name, data, words in [("cut.tar.gz", whole[:len(whole) // 2], "truncated gzip data"),
                              ("corrupt.tar.gz", flipped, "corrupt gzip data")]:
        bad = tmp_path / name
        bad.write_bytes(data)
        bad_target = tmp_path / ("bundle-" + name)
        r = rt("import", bad, bad_target)
        assert r.returncode != 0
        lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("layer ")]
        assert len(lines) == 1 and str(bad) in lines[0] and words in lines[0], lines
        assert_untouched(bad_target, existed=False)
        assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], os.listdir(tmp_path)


def test_docker_save_layers_whiteouts_links_owners(rt, tmp_path):
    source = docker_save(tmp_path, [base_layer(tmp_path), tar_bytes(UPPER)])
    target = tmp_path / "bundle"
    r = rt("import", source, target)
    assert r.returncode == 0, r.stderr
    root = target / "rootfs"
    assert not (root / "etc" / "group").exists() and (root / "etc" / "passwd").exists()
    assert sorted(os.listdir(root / "var")) == ["kept"]
    owned = os.lstat(root / "opt" / "owned")
    assert (owned.st_uid, owned.st_gid, owned.st_mode & 0o7777) == (1000, 1000, 0o4755)
    assert os.lstat(root / "opt" / "hard").st_ino == owned.st_ino
    assert os.readlink(root / "opt" / "soft") == "owned"
    null = os.lstat(root / "opt" / "null")
    assert os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert os.lstat(root / "opt" / "locked").st_mode & 0o7777 == 0o555
    assert (root / "opt" / "locked" / "inside").read_text() == "in\n"
    config = json.loads((target / "config.json").read_text())
    process = config["process"]
    assert process["args"] == IMAGE_CONFIG["config"]["Entrypoint"] + IMAGE_CONFIG["config"]["Cmd"]
    assert process["cwd"] == "/opt" and process["user"] == {"uid": 65534, "gid": 65534}
    assert "GREETING=hello" in process["env"] and "PATH=/bin:/usr/bin" in process["env"]
    assert process["terminal"] is False
    r = rt.run(target)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:8] == ["hello", "/opt", "65534", "65534", "upper", "kept",
                                        "mine", "gone"]


def test_oci_layout_dir_and_tar_with_tags(rt, tmp_path):
    layers = [base_layer(tmp_path), tar_bytes(UPPER)]
    layout = tmp_path / "layout"
    layout.mkdir()
    oci_layout(layout, {"app:1": layers, "app:2": layers[:1]})
    target = tmp_path / "bundle"
    r = rt("import", layout, target)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "app:1, app:2" in r.stderr
    assert_untouched(target, existed=False)
    r = rt("import", "%s:app:1" % layout, target)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("layer ") == 2
    r = rt.run(target)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "hello"
    tar_source = oci_layout(tmp_path / "layout.tar", {"app:2": layers[:1]}, as_tar=True)
    target2 = tmp_path / "bundle2"
    r = rt("import", tar_source, target2)
    assert r.returncode == 0, r.stderr
    assert (target2 / "rootfs" / "var" / "old").read_text() == "lower\n"


@pytest.mark.parametrize("hostile,named", [
    ([("../evil", "file", {"data": b"x"})], "../evil"),
    (["/abs-evil"], "/abs-evil"),
    ([("link", "symlink", {"target": "/"}), ("link/evil-through-link", "file", {})],
     "link/evil-through-link"),
    ([("up", "symlink", {"target": ".."}), ("up/evil-up", "file", {})], "up/evil-up"),
    ([("hard", "hardlink", {"target": "../../etc/passwd"})], "hard"),
])
def test_members_outside_dir_are_refused(rt, tmp_path, hostile, named):
    entries = [("etc", "dir", {})]
    for item in hostile:
        entries.append((item, "file", {"data": b"x"}) if isinstance(item, str) else item)
    raw = tar_bytes(entries)
    if named == "/abs-evil":                 # tarfile strips the leading slash: put it back
        raw = raw.replace(b"abs-evil\0", b"/abs-evil")
        raw = _fix_checksums(raw)
    source = tmp_path / "hostile.tar"
    source.write_bytes(raw)
    target = tmp_path / "sub" / "bundle"
    target.parent.mkdir()
    r = rt("import", source, target)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("layer ")]
    assert len(lines) == 1 and named in lines[0] and "refused" in lines[0], lines
    assert_untouched(target, existed=False)
    for name in ("evil", "abs-evil", "evil-through-link", "evil-up"):
        assert not (tmp_path / name).exists() and not os.path.exists("/" + name)
        assert not (tmp_path / "sub" / name).exists()


def _fix_checksums(raw):
    out = bytearray(raw)
    for off in range(0, len(out) - 512, 512):
        block = out[off:off + 512]
        if block[257:262] == b"ustar":
            block[148:156] = b" " * 8
            block[148:155] = b"%06o\0" % sum(block)      # the 8th byte stays a space
            out[off:off + 512] = block
    return bytes(out)


def test_bad_archives_are_one_line_and_dir_untouched(rt, tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()                            # an empty DIR: still empty afterwards
    layers = [base_layer(tmp_path)]

    def expect(source, *words):
        r = rt("import", source, target)
        assert r.returncode != 0
        lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("layer ")]
        assert len(lines) == 1, lines
        for word in words:
            assert word in lines[0], lines[0]
        assert_untouched(target, existed=True)

    good = docker_save(tmp_path, layers)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    expect(truncated, "truncated.tar", "truncated")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 40)
    expect(garbage, "garbage.tar", "corrupt")
    # a layer whose bytes do not match the config's diff_id
    tampered = bytearray(layers[0])
    pos = layers[0].find(b"root:x:0:0")
    tampered[pos] = ord("R")
    bad = docker_save(tmp_path, [layers[0]])
    raw = bad.read_bytes().replace(layers[0], bytes(tampered))
    (tmp_path / "tampered.tar").write_bytes(raw)
    expect(tmp_path / "tampered.tar", "layer 1", "digest mismatch")
    # OCI: a blob changed after the manifest was written; an unknown layer media type
    (tmp_path / "l1").mkdir()
    layout = oci_layout(tmp_path / "l1", {"x": layers})
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    expect(layout, "layer 1", manifest["layers"][0]["digest"].split(":")[1][:12])
    layout2 = tmp_path / "l2"
    layout2.mkdir()
    oci_layout(layout2, {"x": layers})
    index = json.loads((layout2 / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"]
    mpath = layout2 / "blobs" / "sha256" / mdigest.split(":")[1]
    manifest = json.loads(mpath.read_text())
    manifest["layers"][0]["mediaType"] = "application/vnd.example.squashfs"
    new = json.dumps(manifest).encode()
    (layout2 / "blobs" / "sha256" / sha(new).split(":")[1]).write_bytes(new)
    index["manifests"][0].update(digest=sha(new), size=len(new))
    (layout2 / "index.json").write_text(json.dumps(index))
    expect(layout2, "layer 1", "unknown media type", "squashfs")


def test_existing_dir_is_refused(rt, tmp_path):
    source = tmp_path / "export.tar"
    source.write_bytes(rootfs_tar(tmp_path))
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "mine").write_text("keep\n")
    r = rt("import", source, target)
    assert r.returncode != 0 and "not an empty directory" in r.stderr
    assert os.listdir(target) == ["mine"]


def test_progress_bar_on_a_terminal():
    from minirunc.imageimport import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    out = Terminal()
    progress = Progress(4_000_000, 2, stream=out)
    progress.start_layer(1, "sha256:aaaa", 3_000_000)
    progress.advance(3_000_000)
    progress.start_layer(2, "sha256:bbbb", 1_000_000)
    progress.advance(1_000_000)
    progress.finish()
    text = out.getvalue()
    assert text.startswith("\r[") and "4.0 MB / 4.0 MB  layer 2/2" in text
    assert text.endswith("\n") and "#" * 30 in text


def test_devices_and_owners_only_as_root(tmp_path):
    from minirunc import imageimport
    root = tmp_path / "rootfs"
    root.mkdir()
    extractor = imageimport.Extractor(str(root))
    extractor.as_root = False
    raw = tar_bytes([("dev", "dir", {}), ("dev/null", "char", {}), ("p", "fifo", {}),
                     ("f", "file", {"data": b"x", "uid": 1234})])
    extractor.apply(io.BytesIO(raw), "t.tar", whiteouts=True)
    extractor.finish()
    extractor.close()
    assert extractor.skipped_devices == 1 and not (root / "dev" / "null").exists()
    assert os.path.exists(root / "p") and os.stat(root / "f").st_uid == os.geteuid()


def test_full_disk_is_one_line_naming_the_member(rt, tmp_path):
    """DIR's filesystem fills up in the middle of a member: one line naming it, and the
    temporary directory is gone (a 1 MB tmpfs of the test's own, unmounted afterwards)."""
    import subprocess
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        source = tmp_path / "big.tar"
        source.write_bytes(tar_bytes([("etc", "dir", {}),
                                      ("etc/big", "file", {"data": os.urandom(3 << 20)})]))
        target = small / "bundle"
        r = rt("import", source, target)
        assert r.returncode != 0
        lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("layer ")]
        assert len(lines) == 1 and "etc/big" in lines[0] and "disk is full" in lines[0], lines
        assert_untouched(target, existed=False)
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_gunzip_reads_by_offset_in_bounded_pieces():
    """The stream the tar reader reads from: any read sizes give the bytes back across gzip
    members, and a member of 64 MB of zeros (64 kB gzip'd) is never held whole."""
    from minirunc import imageimport
    raw = b"".join(os.urandom(n % 3000) + bytes(n % 5000) for n in range(0, 3_000_000, 977))
    data = gzip.compress(raw[:100_000]) + gzip.compress(raw[100_000:]) + gzip.compress(b"")
    for sizes in ([512], [1, 7, 100_000], [1 << 20], [-1]):
        stream, out, i = imageimport.Gunzip(io.BytesIO(data), "t"), [], 0
        while True:
            piece = stream.read(sizes[i % len(sizes)])
            i += 1
            if not piece:
                break
            out.append(piece)
        assert b"".join(out) == raw, sizes
    zeros = imageimport.Gunzip(io.BytesIO(gzip.compress(bytes(64 << 20))), "z")
    total = 0
    while True:
        piece = zeros.read(512 if total < 4096 else 1 << 20)
        if not piece:
            break
        assert len(zeros.buf) < 2 * imageimport.CHUNK     # the rest of a piece + the next
        total += len(piece)
    assert total == 64 << 20
