"""A one-layer OCI image archive (oci-layout, index.json, blobs) from a rootfs directory,
for `ctr image import` and `podman load`: no registry is reachable, so the client tests
make their busybox image themselves."""

import hashlib
import io
import json
import os
import tarfile


def _blob(blobs, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def _layer(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    return buf.getvalue()


def write_oci_archive(rootfs, path, name, cmd=("sh",)):
    """Write an OCI image archive of ``rootfs`` to ``path``; ``name`` (docker.io/library/
    x:tag) is the name containerd gives it on import."""
    blobs = {}
    layer = _layer(rootfs)
    layer_desc = dict(_blob(blobs, layer), mediaType="application/vnd.oci.image.layer.v1.tar")
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = dict(_blob(blobs, json.dumps(config).encode()),
                       mediaType="application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = dict(_blob(blobs, json.dumps(manifest).encode()),
                         mediaType="application/vnd.oci.image.manifest.v1+json",
                         annotations={"io.containerd.image.name": name,
                                      "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest_desc]}
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index).encode()}
    for digest, data in blobs.items():
        files["blobs/sha256/" + digest.split(":")[1]] = data
    with tarfile.open(path, "w") as tar:
        for dirname in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for fname, data in files.items():
            info = tarfile.TarInfo(fname)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path
