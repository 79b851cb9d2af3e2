"""`minirunc import SOURCE DIR`: a bundle (rootfs/ + config.json) from an image archive.

SOURCE is a `docker export` tar (one flattened root), a `docker save` archive
(manifest.json, one tar per layer) or an OCI image layout (a directory or a tar holding
oci-layout and index.json); ``SOURCE:TAG`` picks an image where it holds several.  The
archives may be gzip-compressed; layers may be tar or tar+gzip.

The layers are applied in order with the OCI whiteouts (``.wh.NAME`` removes NAME from
the layers below, ``.wh..wh..opq`` empties a directory of them), hardlinks, symlinks,
device nodes (only as root), owners (only as root) and modes.  Every member is created
through directory file descriptors opened with O_NOFOLLOW, so no member can land outside
the rootfs: an absolute name, a ``..`` component or a parent that is a symlink (made by
an earlier member) is refused, naming the member.  Every blob is checked against its
digest (and size), and each layer against the image config's diff_id.

Everything is written into a temporary directory beside DIR and renamed to DIR at the
end; on any failure (a corrupt or truncated archive, a digest mismatch, an unknown media
type, a full disk) the temporary directory is removed, DIR is left as it was and the
error is one line naming the file, layer or member.

The image config becomes process.args (Entrypoint + Cmd), env, cwd (WorkingDir) and
user; the rest of config.json is `minirunc spec`'s default (spec.edit_spec).
"""

import errno
import json
import os
import stat
import sys
import time
import zlib

from . import tarstream
from .errors import MiniruncError, errno_text

OCI_INDEX = ("application/vnd.oci.image.index.v1+json",
             "application/vnd.docker.distribution.manifest.list.v2+json")
OCI_MANIFEST = ("application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json")
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
}
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
CHUNK = 1 << 20
MAX_FDS = 256            # directory fds kept open between members
GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
DEVICE_TYPES = {tarstream.CHAR: stat.S_IFCHR, tarstream.BLOCK: stat.S_IFBLK,
                tarstream.FIFO: stat.S_IFIFO}
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class ImportError_(MiniruncError):
    """One line naming the file, layer or member."""


def _sha256():
    """A SHA-256 object from the C implementation (hashlib itself is left out of the
    single binary; the from-source runtime has _sha256)."""
    try:
        from _sha256 import sha256
    except ImportError:
        try:
            from _sha2 import sha256
        except ImportError:
            raise ImportError_("import: this build has no SHA-256 implementation to check "
                               "digests with; run `python -m minirunc import` from the "
                               "source tree") from None
    return sha256()


# ---------------------------------------------------------------------------------------
# byte streams: file slices, decompression, hashing

class Slice:
    """``size`` bytes of ``f`` from ``offset`` (a member of an outer tar, or a whole file)."""

    def __init__(self, f, offset, size):
        self.f, self.pos, self.left = f, offset, size

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.f.seek(self.pos)
        data = self.f.read(n)
        self.pos += len(data)
        self.left -= len(data)
        return data


class Hashing:
    """Reads through ``raw``, hashing and counting what passes (for digests and progress)."""

    def __init__(self, raw, progress=None):
        self.raw, self.hash, self.count, self.progress = raw, _sha256(), 0, progress

    def read(self, n=-1):
        data = self.raw.read(n)
        self.hash.update(data)
        self.count += len(data)
        if self.progress:
            self.progress.advance(len(data))
        return data


class Gunzip:
    """gzip (also several members back to back) decompressed as a stream.  Output comes in
    pieces of at most CHUNK bytes (a run of zeros cannot fill memory), and a read takes
    its bytes from the piece by offset: the tar reader's 512-byte reads copy 512 bytes, not
    the rest of the piece (which made a layer of many small files quadratic)."""

    def __init__(self, raw, where):
        self.raw, self.where = raw, where
        self.d = zlib.decompressobj(wbits=31)
        self.buf, self.pos, self.eof = b"", 0, False

    def _output(self):
        """The next piece of decompressed data, b"" at the end of the last member."""
        while True:
            if self.d.eof:
                src = self.d.unused_data or self.raw.read(CHUNK)
                if not src:
                    return b""
                self.d = zlib.decompressobj(wbits=31)       # a next gzip member
            else:
                src = self.d.unconsumed_tail or self.raw.read(CHUNK)
                if not src:
                    raise ImportError_("%s: truncated gzip data" % self.where)
            try:
                out = self.d.decompress(src, CHUNK)
            except zlib.error as e:
                raise ImportError_("%s: corrupt gzip data (%s)" % (self.where, e)) from None
            if out:
                return out

    def read(self, n=-1):
        everything = n is None or n < 0
        while (everything or len(self.buf) - self.pos < n) and not self.eof:
            out = self._output()
            if not out:
                self.eof = True
                break
            self.buf, self.pos = self.buf[self.pos:] + out, 0
        end = len(self.buf) if everything else self.pos + n
        data, self.pos = self.buf[self.pos:end], min(end, len(self.buf))
        return data


class Peek:
    """A stream whose first bytes can be looked at (to tell gzip from tar)."""

    def __init__(self, raw):
        self.raw, self.head = raw, raw.read(4)

    def read(self, n=-1):
        if self.head:
            data, self.head = self.head, b""
            if n is None or n < 0:
                return data + self.raw.read()
            if n <= len(data):
                data, self.head = data[:n], data[n:]
                return data
            return data + self.raw.read(n - len(data))
        return self.raw.read(n)


def decompressed(raw, where, declared=None):
    """``raw`` as a tar stream: gzip undone by magic (whatever the media type says)."""
    peek = Peek(raw)
    if peek.head.startswith(GZIP_MAGIC):
        return Gunzip(peek, where)
    if peek.head.startswith(ZSTD_MAGIC) or declared == "zstd":
        raise ImportError_("%s: zstd-compressed; this runtime reads tar and tar+gzip layers "
                           "(decompress it with `zstd -d` first)" % where)
    return peek


# ---------------------------------------------------------------------------------------
# progress

class Progress:
    """A bar on a terminal (bytes and layers), plain lines otherwise; on stderr."""

    def __init__(self, total_bytes, layers, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total, self.layers = total_bytes, layers
        self.done, self.layer, self.last = 0, 0, 0.0

    def start_layer(self, index, name, size):
        self.layer = index
        if not self.tty:
            self.stream.write("layer %d/%d %s (%s)\n" % (index, self.layers, name, _mb(size)))
            self.stream.flush()

    def advance(self, n):
        self.done += n
        if self.tty and time.monotonic() - self.last > 0.1:
            self.last = time.monotonic()
            self.draw()

    def draw(self):
        share = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "#" * int(share * 30)
        self.stream.write("\r[%-30s] %s / %s  layer %d/%d " % (
            bar, _mb(self.done), _mb(self.total), self.layer, self.layers))
        self.stream.flush()

    def finish(self):
        if self.tty:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


def _mb(n):
    return "%.1f MB" % (n / 1e6)


# ---------------------------------------------------------------------------------------
# the sources

class Archive:
    """The members of a tar file by name (for docker save and OCI layout tars)."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        self.members = {}
        reader = tarstream.Reader(self.f, path)
        try:
            for m in reader:
                name = _clean(m.name)
                if m.type == tarstream.REGULAR:
                    self.members[name] = (reader.offset, m.size)
                elif m.type == tarstream.SYMLINK:
                    self.members.setdefault(name, ("link", m.linkname))
                m.skip()
        except tarstream.TarError as e:
            raise ImportError_(str(e)) from None
        end = os.fstat(self.f.fileno()).st_size
        for name, entry in self.members.items():
            if entry[0] != "link" and entry[0] + entry[1] > end:
                raise ImportError_("%s: truncated in member %s (the archive ends at byte %d)"
                                   % (path, name, end))

    def exists(self, name):
        return _clean(name) in self.members

    def open(self, name, depth=0):
        entry = self.members.get(_clean(name))
        if entry is None:
            raise ImportError_("%s: no member %s" % (self.path, name))
        if entry[0] == "link":
            if depth > 8:
                raise ImportError_("%s: member %s: too many symlinks" % (self.path, name))
            return self.open(os.path.join(os.path.dirname(_clean(name)), entry[1]), depth + 1)
        return Slice(self.f, entry[0], entry[1])

    def size(self, name):
        entry = self.members.get(_clean(name))
        return entry[1] if entry and entry[0] != "link" else 0

    def close(self):
        self.f.close()


class Directory:
    """The same interface over an OCI layout directory."""

    def __init__(self, path):
        self.path = path
        self.files = []

    def _full(self, name):
        name = _clean(name)
        if name.startswith("../") or name == "..":
            raise ImportError_("%s: %s points outside the layout" % (self.path, name))
        return os.path.join(self.path, name)

    def exists(self, name):
        return os.path.isfile(self._full(name))

    def open(self, name):
        try:
            f = open(self._full(name), "rb")
        except OSError as e:
            raise ImportError_("%s: cannot read %s: %s" % (self.path, name,
                                                           (e.strerror or "").lower())) from None
        self.files.append(f)
        return Slice(f, 0, os.fstat(f.fileno()).st_size)

    def size(self, name):
        try:
            return os.path.getsize(self._full(name))
        except OSError:
            return 0

    def close(self):
        for f in self.files:
            f.close()


def _clean(name):
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return os.path.normpath(name) if name else "."


class Layer:
    __slots__ = ("name", "open", "size", "digest", "diff_id", "kind")

    def __init__(self, name, open, size, digest=None, diff_id=None, kind=None):
        self.name, self.open, self.size = name, open, size
        self.digest, self.diff_id, self.kind = digest, diff_id, kind


def _read_json(store, name, where, digest=None):
    raw = store.open(name).read()
    if digest:
        _verify(raw, digest, where)
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ImportError_("%s: invalid JSON (%s)" % (where, e)) from None
    if not isinstance(value, dict):
        raise ImportError_("%s: not a JSON object" % where)
    return value


def _verify(raw, digest, where):
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256":
        raise ImportError_("%s: digest algorithm %s is not supported (sha256 only)"
                           % (where, algo))
    h = _sha256()
    h.update(raw)
    if h.hexdigest() != hexdigest:
        raise ImportError_("%s: digest mismatch: the content is sha256:%s, not %s"
                           % (where, h.hexdigest(), digest))


def _blob(digest):
    algo, _, hexdigest = str(digest).partition(":")
    if not hexdigest or "/" in hexdigest or "/" in algo:
        raise ImportError_("invalid digest %r" % digest)
    return "blobs/%s/%s" % (algo, hexdigest)


def open_source(source):
    """(store, kind, tag) for SOURCE or SOURCE:TAG."""
    path, tag = source, None
    if not os.path.exists(path):
        # the first ":" after which the rest names an existing path: tags hold ":" too
        for i, c in enumerate(source):
            if c == ":" and os.path.exists(source[:i]):
                path, tag = source[:i], source[i + 1:]
                break
    if not os.path.exists(path):
        raise ImportError_("import: %s does not exist" % source)
    if os.path.isdir(path):
        store = Directory(path)
    else:
        plain = _plain_tar(path)
        store = Archive(plain or path)
        if plain:
            os.unlink(plain)         # the open file stays readable
    if store.exists("oci-layout") and store.exists("index.json"):
        return store, "oci", tag
    if store.exists("manifest.json"):
        return store, "docker-save", tag
    if isinstance(store, Directory):
        raise ImportError_("%s: a directory without oci-layout and index.json is not an OCI "
                           "image layout" % path)
    return store, "export", tag


def _plain_tar(path):
    """A compressed archive decompressed into a temporary file (it must be read at random
    for docker save and OCI layouts); None when ``path`` is a plain tar."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(GZIP_MAGIC):
        if head.startswith(ZSTD_MAGIC):
            raise ImportError_("%s: zstd-compressed; decompress it with `zstd -d` first" % path)
        return None
    out_path = "%s.%d.tar.tmp" % (path, os.getpid())
    directory = os.path.dirname(os.path.abspath(path))
    if not os.access(directory, os.W_OK):
        out_path = os.path.join("/tmp", ".minirunc-import-%d.tar" % os.getpid())
    with open(path, "rb") as f, open(out_path, "wb") as out:
        stream = Gunzip(f, path)
        try:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        except BaseException:
            os.unlink(out_path)
            raise
    return out_path


def image_layers(store, kind, tag, source):
    """(layers, image config dict) of the image chosen in the source."""
    if kind == "export":
        # the archive already scanned (decompressed once if it was compressed)
        size = os.fstat(store.f.fileno()).st_size
        return [Layer(os.path.basename(source), lambda: Slice(store.f, 0, size), size)], {}
    if kind == "docker-save":
        return _docker_save(store, tag, source)
    return _oci(store, tag, source)


def _docker_save(store, tag, source):
    manifest = json.loads(store.open("manifest.json").read() or b"null")
    if not isinstance(manifest, list) or not manifest:
        raise ImportError_("%s: manifest.json lists no image" % source)
    entry = _choose(manifest, tag, source, lambda e: e.get("RepoTags") or [])
    config_name = entry.get("Config") or ""
    digest = None
    base = os.path.basename(config_name)
    if base.endswith(".json") and len(base) == 69:
        digest = "sha256:" + base[:-5]
    elif config_name.startswith("blobs/sha256/"):
        digest = "sha256:" + base
    config = _read_json(store, config_name, "%s: %s" % (source, config_name), digest)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = []
    names = entry.get("Layers") or []
    if diff_ids and len(diff_ids) != len(names):
        raise ImportError_("%s: the image config lists %d layers, manifest.json %d"
                           % (source, len(diff_ids), len(names)))
    for i, name in enumerate(names):
        blob = "sha256:" + os.path.basename(name) if name.startswith("blobs/sha256/") else None
        layers.append(Layer(name, lambda n=name: store.open(n), store.size(name), blob,
                            diff_ids[i] if diff_ids else None))
    return layers, config


def _choose(entries, tag, source, tags_of):
    if tag is None:
        if len(entries) > 1:
            names = [t for e in entries for t in tags_of(e)]
            raise ImportError_("%s holds %d images: choose one with %s:TAG (%s)"
                               % (source, len(entries), source, ", ".join(names) or "untagged"))
        return entries[0]
    for e in entries:
        for t in tags_of(e):
            if t == tag or t.rsplit(":", 1)[-1] == tag:
                return e
    names = [t for e in entries for t in tags_of(e)]
    raise ImportError_("%s has no image tagged %s (it has: %s)"
                       % (source, tag, ", ".join(names) or "none tagged"))


def _oci(store, tag, source):
    layout = _read_json(store, "oci-layout", "%s: oci-layout" % source)
    if not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise ImportError_("%s: oci-layout: imageLayoutVersion %r is not 1.x"
                           % (source, layout.get("imageLayoutVersion")))
    index = _read_json(store, "index.json", "%s: index.json" % source)
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if not manifests:
        raise ImportError_("%s: index.json lists no manifest" % source)

    def names(m):
        annotations = m.get("annotations") or {}
        return [n for n in (annotations.get("org.opencontainers.image.ref.name"),
                            annotations.get("io.containerd.image.name")) if n]
    desc = _choose(manifests, tag, source, names)
    for _ in range(4):                       # nested indexes: the platform of this host
        media = desc.get("mediaType")
        where = "%s: %s" % (source, _blob(desc.get("digest")))
        if media in OCI_MANIFEST:
            break
        if media not in OCI_INDEX:
            raise ImportError_("%s: unknown manifest media type %r" % (where, media))
        nested = _read_json(store, _blob(desc["digest"]), where, desc["digest"])
        desc = _platform(nested.get("manifests") or [], where)
    manifest = _read_json(store, _blob(desc["digest"]), where, desc["digest"])
    cdesc = manifest.get("config") or {}
    config = _read_json(store, _blob(cdesc.get("digest")), "%s: config %s"
                        % (source, cdesc.get("digest")), cdesc.get("digest"))
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = []
    for i, ldesc in enumerate(manifest.get("layers") or []):
        media = ldesc.get("mediaType")
        name = _blob(ldesc.get("digest"))
        if media not in LAYER_TYPES:
            raise ImportError_("%s: layer %d (%s): unknown media type %r"
                               % (source, i + 1, ldesc.get("digest"), media))
        if not store.exists(name):
            raise ImportError_("%s: layer %d: blob %s is missing" % (source, i + 1, name))
        if ldesc.get("size") is not None and store.size(name) != ldesc["size"]:
            raise ImportError_("%s: layer %d (%s): %d bytes, the manifest says %d"
                               % (source, i + 1, name, store.size(name), ldesc["size"]))
        layers.append(Layer(name, lambda n=name: store.open(n), store.size(name),
                            ldesc.get("digest"), diff_ids[i] if i < len(diff_ids) else None,
                            LAYER_TYPES[media]))
    return layers, config


def _platform(manifests, where):
    arch = GOARCH.get(os.uname().machine, os.uname().machine)
    for m in manifests:
        platform = m.get("platform") or {}
        if platform.get("os", "linux") == "linux" and platform.get("architecture", arch) == arch:
            return m
    raise ImportError_("%s: no image for linux/%s in the index" % (where, arch))


# ---------------------------------------------------------------------------------------
# applying a layer

class Extractor:
    """Creates members under ``root`` through O_NOFOLLOW directory fds."""

    def __init__(self, root):
        self.root = root
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.fds = {}
        self.as_root = os.geteuid() == 0
        self.dirs = {}                   # path -> (mode, uid, gid, mtime), applied at the end
        self.skipped_devices = 0
        self.layer_made = set()

    def close(self):
        self._drop_fds()
        os.close(self.root_fd)

    def _drop_fds(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def dir_fd(self, parts, member, create=True):
        """The fd of the directory ``parts`` (a tuple) under the root."""
        if not parts:
            return self.root_fd
        fd = self.fds.get(parts)
        if fd is not None:
            return fd
        parent = self.dir_fd(parts[:-1], member, create)
        name = parts[-1]
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.lstat(name, dir_fd=parent)
                if stat.S_ISLNK(st.st_mode):
                    raise ImportError_("member %s: refused: it would be written through the "
                                       "symlink %s made by an earlier member"
                                       % (member, "/".join(parts))) from None
                raise ImportError_("member %s: %s is not a directory"
                                   % (member, "/".join(parts))) from None
            raise
        self.fds[parts] = fd
        return fd

    def apply(self, stream, where, whiteouts):
        self.layer_made = set()
        reader = tarstream.Reader(stream, where)
        for m in reader:
            try:
                self.member(m, whiteouts)
            except OSError as e:
                problem = "the disk is full" if e.errno == errno.ENOSPC else \
                    errno_text(e.errno) or str(e)
                raise ImportError_("member %s: %s" % (m.name, problem)) from None

    def member(self, m, whiteouts):
        if len(self.fds) > MAX_FDS:      # here, while no fd of the cache is in use
            self._drop_fds()
        parts = _parts(m.name)
        if parts is None:
            raise ImportError_("member %s: refused: it would land outside the rootfs (an "
                               "absolute path or a .. component)" % m.name)
        if not parts:
            if m.type == tarstream.DIRECTORY:          # "./" itself: the root's owner/mode
                self.dirs[()] = (m.mode, m.uid, m.gid, m.mtime)
            return
        base = parts[-1]
        if whiteouts and base.startswith(WHITEOUT):
            self.whiteout(parts, m.name)
            return
        parent = self.dir_fd(parts[:-1], m.name)
        self.layer_made.add(parts)
        if m.type == tarstream.DIRECTORY:
            self.make_dir(parent, base, parts, m)
            return
        self.remove(parent, base, parts)
        if m.type == tarstream.REGULAR:
            self.make_file(parent, base, m)
        elif m.type == tarstream.SYMLINK:
            os.symlink(m.linkname, base, dir_fd=parent)
            self.owner(parent, base, m)
            self.times(parent, base, m, follow=False)
        elif m.type == tarstream.HARDLINK:
            self.make_link(parent, base, m)
        elif m.type in DEVICE_TYPES:
            if m.type != tarstream.FIFO and not self.as_root:
                self.skipped_devices += 1
                return
            os.mknod(base, DEVICE_TYPES[m.type] | (m.mode & 0o7777),
                     os.makedev(m.devmajor, m.devminor), dir_fd=parent)
            self.owner(parent, base, m)
            os.chmod(base, m.mode & 0o7777, dir_fd=parent)
            self.times(parent, base, m)
        else:
            m.skip()                          # sparse, volume labels...: not for a rootfs

    def make_dir(self, parent, base, parts, m):
        try:
            st = os.lstat(base, dir_fd=parent)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(parent, base, parts)
                os.mkdir(base, 0o700, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(base, 0o700, dir_fd=parent)
        os.chmod(base, 0o700, dir_fd=parent, follow_symlinks=False)
        self.owner(parent, base, m)
        self.xattrs(parent, base, m)
        self.dirs[parts] = (m.mode, m.uid, m.gid, m.mtime)

    def make_file(self, parent, base, m):
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            while True:
                chunk = m.read_data(CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            if self.as_root:
                os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
            for key, value in m.xattrs.items():
                self._setxattr(fd, key, value)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def make_link(self, parent, base, m):
        target = _parts(m.linkname)
        if not target:
            raise ImportError_("member %s: refused: hardlink to %s, outside the rootfs"
                               % (m.name, m.linkname))
        try:
            tparent = self.dir_fd(target[:-1], m.name, create=False)
            os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        except FileNotFoundError:
            raise ImportError_("member %s: hardlink to %s, which no earlier member made"
                               % (m.name, m.linkname)) from None

    def owner(self, parent, base, m):
        if self.as_root:
            os.chown(base, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)

    def times(self, parent, base, m, follow=True):
        try:
            os.utime(base, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=follow)
        except (OSError, NotImplementedError):
            pass

    def xattrs(self, parent, base, m):
        if not m.xattrs:
            return
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            for key, value in m.xattrs.items():
                self._setxattr(fd, key, value)
        finally:
            os.close(fd)

    def _setxattr(self, fd, key, value):
        if not self.as_root and not key.startswith("user."):
            return
        try:
            os.setxattr(fd, key, value if isinstance(value, bytes) else value.encode())
        except OSError:
            pass                           # a filesystem without xattrs: as tar does

    def remove(self, parent, base, parts):
        """Whatever the lower layers have at ``base`` goes (a directory only for a
        non-directory; a directory entry over a directory merges)."""
        try:
            st = os.lstat(base, dir_fd=parent)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._forget(parts)
            _rmtree_at(parent, base)
        else:
            os.unlink(base, dir_fd=parent)

    def _forget(self, parts):
        """A directory tree about to go: its cached fds and pending modes go with it."""
        n = len(parts)
        for key in [k for k in self.fds if k[:n] == parts]:
            os.close(self.fds.pop(key))
        for key in [k for k in self.dirs if k[:n] == parts]:
            del self.dirs[key]

    def whiteout(self, parts, name):
        parent_parts = parts[:-1]
        try:
            parent = self.dir_fd(parent_parts, name, create=False)
        except FileNotFoundError:
            return
        if parts[-1] == OPAQUE:
            for entry in os.listdir(parent):
                if parent_parts + (entry,) not in self.layer_made:
                    self.remove(parent, entry, parent_parts + (entry,))
            return
        victim = parts[-1][len(WHITEOUT):]
        if victim:
            self.remove(parent, victim, parent_parts + (victim,))

    def finish(self):
        """Directory owners, modes and times, deepest first (a 0555 directory must not stop
        the members written into it)."""
        self._drop_fds()
        for parts in sorted(self.dirs, key=len, reverse=True):
            mode, uid, gid, mtime = self.dirs[parts]
            path = "/".join(parts) if parts else "."
            try:
                if parts and self.as_root:
                    os.chown(path, uid, gid, dir_fd=self.root_fd, follow_symlinks=False)
                os.chmod(path, mode & 0o7777, dir_fd=self.root_fd, follow_symlinks=False)
                os.utime(path, (mtime, mtime), dir_fd=self.root_fd, follow_symlinks=False)
            except (FileNotFoundError, NotImplementedError):
                pass


def _parts(name):
    """The components of a member name, None when it would leave the root."""
    if name.startswith("/"):
        return None
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return tuple(parts)


def _rmtree_at(parent_fd, name):
    """Remove ``name`` (a directory tree) under ``parent_fd``, never following symlinks."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=parent_fd)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _rmtree_at(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def rmtree(path):
    """Remove a directory tree we made (our own: shutil is left out of the single binary)."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        parent = os.open(os.path.dirname(os.path.abspath(path)) or "/",
                         os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _chmod_tree(path)
            _rmtree_at(parent, os.path.basename(os.path.abspath(path)))
        finally:
            os.close(parent)
    else:
        os.unlink(path)


def _chmod_tree(path):
    """Without CAP_DAC_OVERRIDE, a 0555 directory we extracted would stop the removal."""
    if os.geteuid() == 0:
        return
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o700)


# ---------------------------------------------------------------------------------------
# the config

def image_config(config, rootfs, source_kind):
    """config.json for the bundle: spec's default with the image's process."""
    from .spec import default_spec, edit_spec
    c = config.get("config") or config.get("container_config") or {}
    spec = default_spec()
    args = list(c.get("Entrypoint") or []) + list(c.get("Cmd") or [])
    env = [e for e in c.get("Env") or [] if isinstance(e, str) and "=" in e]
    user = _user(c.get("User") or "", rootfs)
    return edit_spec(spec, args=args or None, env=env, cwd=c.get("WorkingDir") or None,
                     user=user, terminal=False if source_kind != "export" else None)


def _user(text, rootfs):
    """Docker's User (name, uid, name:group, uid:gid) as "UID:GID", read from the
    rootfs's /etc/passwd and /etc/group."""
    if not text:
        return None
    name, _, group = text.partition(":")
    uid, gid = _lookup(os.path.join(rootfs, "etc/passwd"), name, 2, "user", text)
    if group:
        gid = _lookup(os.path.join(rootfs, "etc/group"), group, 2, "group", text)[0]
    return "%d:%d" % (uid, gid if gid is not None else uid)


def _lookup(path, name, field, what, text):
    if name.isdigit():
        number = int(name)
        for line in _lines(path):
            parts = line.split(":")
            if len(parts) > 3 and parts[field] == name:
                return number, int(parts[3]) if parts[3].isdigit() else None
        return number, None
    for line in _lines(path):
        parts = line.split(":")
        if parts[0] == name and len(parts) > 3 and parts[field].isdigit():
            return int(parts[field]), int(parts[3]) if parts[3].isdigit() else None
    raise ImportError_("image config: User %r: no %s %r in the image's %s"
                       % (text, what, name, "/" + os.path.relpath(path, os.path.dirname(
                           os.path.dirname(path)))))


def _lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


# ---------------------------------------------------------------------------------------

def run(source, target):
    """`minirunc import SOURCE DIR`; returns the exit code."""
    target = os.path.abspath(target)
    if os.path.lexists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise ImportError_("import: %s exists and is not an empty directory: choose a new DIR"
                           % target)
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise ImportError_("import: %s does not exist: create it first" % parent)
    store, kind, tag = open_source(source)
    staging = os.path.join(parent, ".%s.import-%d" % (os.path.basename(target), os.getpid()))
    try:
        os.mkdir(staging, 0o700)
        rootfs = os.path.join(staging, "rootfs")
        os.mkdir(rootfs, 0o755)
        layers, config = image_layers(store, kind, tag, source)
        progress = Progress(sum(layer.size for layer in layers), len(layers))
        extractor = Extractor(rootfs)
        try:
            for i, layer in enumerate(layers, 1):
                progress.start_layer(i, layer.name, layer.size)
                apply_layer(extractor, layer, i, source, kind, progress)
            extractor.finish()
        finally:
            extractor.close()
        progress.finish()
        text = json.dumps(image_config(config, rootfs, kind), indent="\t") + "\n"
        with open(os.path.join(staging, "config.json"), "w") as f:
            f.write(text)
        os.chmod(staging, 0o755)
        os.rename(staging, target)
    except OSError as e:
        rmtree(staging)
        raise ImportError_("import: %s: %s%s" % (
            e.filename or staging, (e.strerror or str(e)).lower(),
            "; %s is left as it was" % target)) from None
    except BaseException:
        rmtree(staging)
        raise
    finally:
        store.close()
    if extractor.skipped_devices:
        sys.stderr.write("minirunc: import: %d device node(s) skipped: only root can make "
                         "them\n" % extractor.skipped_devices)
    sys.stdout.write("imported %s into %s: %d layer(s), %s\n"
                     % (source, target, len(layers), _mb(progress.done)))
    return 0


def apply_layer(extractor, layer, index, source, kind, progress):
    where = "%s: layer %d (%s)" % (source, index, layer.name) if kind != "export" else source
    raw = layer.open()
    blob = Hashing(raw, progress)
    stream = decompressed(blob, where, layer.kind)
    diff = Hashing(stream)
    try:
        extractor.apply(diff, where, whiteouts=kind != "export")
        while diff.read(CHUNK):          # the rest (padding) counts for the digests
            pass
    except tarstream.TarError as e:
        raise ImportError_(str(e)) from None
    except ImportError_ as e:
        if str(e).startswith(where):
            raise
        raise ImportError_("%s: %s" % (where, e)) from None
    if layer.digest and "sha256:" + blob.hash.hexdigest() != layer.digest:
        raise ImportError_("%s: digest mismatch: the blob is sha256:%s, the manifest says "
                           "%s" % (where, blob.hash.hexdigest(), layer.digest))
    if layer.diff_id and "sha256:" + diff.hash.hexdigest() != layer.diff_id:
        raise ImportError_("%s: digest mismatch: the uncompressed layer is sha256:%s, the "
                           "image config's diff_id is %s"
                           % (where, diff.hash.hexdigest(), layer.diff_id))
