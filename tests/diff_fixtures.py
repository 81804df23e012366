"""Small OCI images with synthetic layers, for the diff tests and benchmark.

Everything is deterministic (fixed mtimes, gzip through libdeflate, canonical
JSON) so that golden reports can name digests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import deflate
import zstandard
from isal import igzip

from factory.common.canonical import canonical_json
from factory.image import oci

SDE = 1_700_000_000  # 2023-11-14T22:13:20Z


@dataclass(frozen=True)
class F:
    path: str
    data: bytes = b""
    type: str = "file"  # file, dir, symlink, hardlink
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    uname: str = "root"
    gname: str = "root"
    mtime: float = SDE
    linkname: str = ""
    xattrs: tuple[tuple[str, str], ...] = ()

    def but(self, **kw: Any) -> F:
        return replace(self, **kw)


TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE}  # fmt: skip


def gz(data: bytes, mtime: int = 0) -> bytes:
    """gzip through the pinned compressor (libdeflate), so that the golden reports' layer
    digests are the same on every CPU (isal's are not); MTIME set in the RFC 1952 header."""
    blob = bytearray(deflate.gzip_compress(data, 6))
    blob[4:8] = mtime.to_bytes(4, "little")
    return bytes(blob)


def shadow(day: int) -> bytes:
    return (
        f"root:*:{day}:0:99999:7:::\ndaemon:*:{day}:0:99999:7:::\napp:!:{day}:0:99999:7:::\n"
    ).encode()


def base_files() -> list[F]:
    """A tiny rootfs-like tree."""
    changelog = b"".join(
        f"pkg ({i}.0) stable; urgency=low\n  * change {i}\n".encode() for i in range(40)
    )
    return [
        F("etc", type="dir", mode=0o755),
        F("etc/hostname", b"reprobase\n"),
        F("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
        F("etc/shadow", shadow(19675), mode=0o640, gid=42, gname="shadow"),
        F("usr", type="dir", mode=0o755),
        F("usr/bin", type="dir", mode=0o755),
        F("usr/bin/tool", bytes(range(256)) * 64, mode=0o755),
        F("usr/bin/tool-link", type="symlink", linkname="tool", mode=0o777),
        F("usr/share", type="dir", mode=0o755),
        F("usr/share/doc", type="dir", mode=0o755),
        F("usr/share/doc/pkg", type="dir", mode=0o755),
        F("usr/share/doc/pkg/changelog.gz", gz(changelog)),
        F("var", type="dir", mode=0o755),
        F("var/log", type="dir", mode=0o755),
    ]


def tarinfo(f: F) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(f.path + ("/" if f.type == "dir" else ""))
    ti.type = TYPES[f.type]
    ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = f.mode, f.uid, f.gid, f.uname, f.gname
    ti.mtime = f.mtime
    ti.linkname = f.linkname
    ti.size = len(f.data) if f.type == "file" else 0
    if f.xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in f.xattrs}
    return ti


def write_tar(out: BinaryIO, files: Iterable[F], fmt: int = tarfile.PAX_FORMAT) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=fmt) as tf:
        for f in files:
            ti = tarinfo(f)
            tf.addfile(ti, io.BytesIO(f.data) if f.type == "file" else None)


def make_tar(files: Iterable[F], fmt: int = tarfile.PAX_FORMAT, sort: bool = True) -> bytes:
    items = sorted(files, key=lambda f: f.path.split("/")) if sort else list(files)
    buf = io.BytesIO()
    write_tar(buf, items, fmt)
    return buf.getvalue()


def compress(data: bytes, comp: str) -> bytes:
    if comp == "gzip":
        return gz(data)
    if comp == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


MEDIA = {"gzip": oci.MT_LAYER_GZIP, "zstd": oci.MT_LAYER_ZSTD, "none": oci.MT_LAYER_TAR}


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Layer:
    blob: bytes  # compressed
    diff_id: str
    media_type: str


def layer(tar: bytes, comp: str = "gzip") -> Layer:
    return Layer(compress(tar, comp), "sha256:" + hashlib.sha256(tar).hexdigest(), MEDIA[comp])


@dataclass(frozen=True)
class Image:
    layers: tuple[Layer, ...]
    created: int = SDE
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    labels: dict[str, str] = field(default_factory=dict)
    history: str = "reprobase build images/bookworm.toml"
    arch: str = "amd64"
    annotations: dict[str, str] = field(default_factory=dict)


def write_image(layout: Path, img: Image) -> oci.Descriptor:
    """Write config, layers and manifest blobs; return the manifest's descriptor."""
    descs = []
    for lay in img.layers:
        digest = oci.write_blob(layout, lay.blob)
        descs.append(oci.Descriptor(lay.media_type, digest, len(lay.blob)))
    config = {
        "architecture": img.arch,
        "os": "linux",
        "created": iso(img.created),
        "config": {"Env": list(img.env), "Labels": dict(img.labels)},
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in img.layers]},
        "history": [{"created": iso(img.created), "created_by": img.history}],
    }
    cfg = oci.write_json_blob(layout, config, oci.MT_CONFIG)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": oci.MT_MANIFEST,
        "config": cfg.to_json(),
        "layers": [d.to_json() for d in descs],
    }
    if img.annotations:
        manifest["annotations"] = dict(img.annotations)
    platform = {"architecture": img.arch, "os": "linux"}
    if img.arch == "arm64":
        platform["variant"] = "v8"
    return oci.write_json_blob(layout, manifest, oci.MT_MANIFEST, platform=platform)


def write_layout(
    layout: Path,
    images: Iterable[Image],
    *,
    nested: bool = False,
    annotations: dict[str, str] | None = None,
) -> Path:
    """index.json → manifests, or (nested) index.json → image index → manifests."""
    oci.init_layout(layout)
    manifests = [write_image(layout, img) for img in images]
    ann = annotations or {}
    if nested:
        inner = {"schemaVersion": 2, "mediaType": oci.MT_INDEX,
                 "manifests": [m.to_json() for m in manifests]}  # fmt: skip
        if ann:
            inner["annotations"] = ann
        desc = oci.write_json_blob(
            layout, inner, oci.MT_INDEX, annotations={oci.ANN_REF_NAME: "latest"}
        )
        oci.write_index(layout, [desc], {})
    else:
        oci.write_index(layout, manifests, ann)
    return layout


def simple(layout: Path, files: Iterable[F], comp: str = "gzip", **kw: Any) -> Path:
    return write_layout(layout, [Image((layer(make_tar(files), comp),), **kw)])


def layout_to_archive(layout: Path, out: Path) -> Path:
    """An OCI archive (what skopeo writes for oci-archive:)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(layout.rglob("*")):
            ti = tf.gettarinfo(p, p.relative_to(layout).as_posix())
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
            with p.open("rb") if p.is_file() else io.BytesIO() as f:
                tf.addfile(ti, f if p.is_file() else None)
    return out


def docker_archive(out: Path, img: Image, tag: str = "example:latest") -> Path:
    """A `docker save` archive: manifest.json, <config>.json, <id>/layer.tar (uncompressed)."""
    config = canonical_json({
        "architecture": img.arch, "os": "linux", "created": iso(img.created),
        "config": {"Env": list(img.env)},
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in img.layers]},
    })  # fmt: skip
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_names = []
    members: list[tuple[str, bytes]] = [(cfg_name, config)]
    for lay in img.layers:
        tar = igzip.decompress(lay.blob) if lay.blob[:2] == b"\x1f\x8b" else lay.blob
        name = lay.diff_id.split(":")[1] + "/layer.tar"
        layer_names.append(name)
        members.append((name, tar))
    manifest = [{"Config": cfg_name, "RepoTags": [tag], "Layers": layer_names}]
    members.insert(0, ("manifest.json", json.dumps(manifest).encode()))
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return out


# --- big synthetic layers (memory test, benchmark) --------------------------------


def rootfs_like(
    total: int, seed: int = 1, change: str | None = None, shuffled: bool = False
) -> Iterator[F]:
    """About `total` bytes of a rootfs-like tree, sorted (or not: files of each directory
    in reverse order); `change` alters one file (same size)."""
    import random

    rng = random.Random(seed)
    yield F("usr", type="dir", mode=0o755)
    size = 0
    d = 0
    while size < total:
        dname = f"usr/lib/pkg{d:04d}"
        if d == 0:
            yield F("usr/lib", type="dir", mode=0o755)
        yield F(dname, type="dir", mode=0o755)
        batch = []
        for i in range(40):
            n = int(rng.lognormvariate(8.5, 1.5)) % (2 << 20)
            text = i % 3 == 0
            data = (b"line of text %d\n" * (n // 16 + 1))[:n] if text else rng.randbytes(n)
            path = f"{dname}/f{i:03d}" + (".txt" if text else ".so")
            if path == change:
                data = data[: len(data) // 2] + b"CHANGED" + data[len(data) // 2 + 7 :]
            batch.append(F(path, data, mode=0o644 if text else 0o755))
            size += n
        yield from reversed(batch) if shuffled else batch
        d += 1


class _HashingWriter(io.RawIOBase):
    """Hashes what tarfile writes (the diff_id) and passes it to the compressor."""

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self.out = out
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.sha.update(b)
        self.out.write(b)
        return len(b)


def big_layout(layout: Path, files: Iterable[F], arch: str = "amd64") -> Path:
    """A one-layer layout whose (gzip) layer is streamed to disk, never held in memory."""
    oci.init_layout(layout)
    tmp = layout / "layer.tmp"
    with (
        tmp.open("wb") as raw,
        igzip.IGzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as z,
    ):
        tee = _HashingWriter(z)  # type: ignore[arg-type]
        write_tar(tee, files)  # type: ignore[arg-type]
    digest = oci.sha256_file(tmp)
    oci.add_blob_file(layout, tmp, digest)
    lay = _BigLayer(digest, tmp_size(layout, digest), "sha256:" + tee.sha.hexdigest())
    img = Image((), arch=arch)
    config = {
        "architecture": arch, "os": "linux", "created": iso(img.created),
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id]},
    }  # fmt: skip
    cfg = oci.write_json_blob(layout, config, oci.MT_CONFIG)
    manifest = {
        "schemaVersion": 2, "mediaType": oci.MT_MANIFEST, "config": cfg.to_json(),
        "layers": [{"mediaType": oci.MT_LAYER_GZIP, "digest": lay.digest, "size": lay.size}],
    }  # fmt: skip
    platform = {"architecture": arch, "os": "linux"}
    desc = oci.write_json_blob(layout, manifest, oci.MT_MANIFEST, platform=platform)
    oci.write_index(layout, [desc], {})
    return layout


@dataclass(frozen=True)
class _BigLayer:
    digest: str
    size: int
    diff_id: str


def tmp_size(layout: Path, digest: str) -> int:
    return oci.blob_path(layout, digest).stat().st_size
