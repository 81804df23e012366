"""OCI image layout 1.1: writing and reading blobs, manifests and indexes.

Spec: https://github.com/opencontainers/image-spec (image-layout.md,
manifest.md, image-index.md, descriptor.md). Everything we write is canonical
JSON so that the digests are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common.canonical import canonical_json, sha256_digest
from factory.common.errors import UserError

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYOUT_VERSION = "1.0.0"  # the oci-layout file's imageLayoutVersion (unchanged in 1.1)
ANN_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform)
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        try:
            desc = cls(
                media_type=str(d["mediaType"]),
                digest=str(d["digest"]),
                size=int(d["size"]),
                annotations=dict(d.get("annotations") or {}),
                platform=dict(d["platform"]) if d.get("platform") else None,
                artifact_type=d.get("artifactType"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"malformed OCI descriptor {str(d)[:120]!r} ({type(exc).__name__}: {exc})",
                hint="the layout or registry holds a broken index or manifest",
            ) from None
        if desc.size < 0:
            raise UserError(f"malformed OCI descriptor {desc.digest}: negative size")
        return desc


def blob_path(layout: Path, digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
        raise UserError(f"unsupported or malformed digest {digest!r}")
    return layout / "blobs" / algo / hexd


def split_layout(text: str) -> tuple[Path, str | None]:
    """LAYOUT or LAYOUT:TAG: a layout directory, and the tag (org.opencontainers.image.ref.name
    in its index.json) naming one of its images, as in skopeo's oci:DIR:TAG."""
    path = Path(text)
    if path.is_dir():
        return path, None
    base, sep, tag = text.rpartition(":")
    if sep and tag and "/" not in tag and Path(base).is_dir():
        return Path(base), tag
    return path, None


def init_layout(layout: Path) -> None:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))


def write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = blob_path(layout, digest)
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return digest


def write_json_blob(layout: Path, obj: Any, media_type: str, **kw: Any) -> Descriptor:
    data = canonical_json(obj)
    digest = write_blob(layout, data)
    return Descriptor(media_type, digest, len(data), **kw)


def add_blob_file(layout: Path, src: Path, digest: str) -> None:
    """Move (or copy) an already-hashed file into the layout's blob store."""
    dst = blob_path(layout, digest)
    if dst.exists():  # e.g. two architectures with the same layer: leave no debris
        src.unlink(missing_ok=True)
        return
    try:
        os.replace(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


MAX_JSON_BLOB = 4 << 20  # an index, manifest or config; a bigger one is refused unread


def read_blob(layout: Path, digest: str, verify: bool = True, size: int | None = None) -> bytes:
    """A blob's bytes, checked against its digest (and its descriptor's size, if given)."""
    path = blob_path(layout, digest)
    try:
        if size is None and path.stat().st_size > MAX_JSON_BLOB:
            raise UserError(f"{layout}: blob {digest} is too large to read into memory")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{layout}: blob {digest} is missing from the layout") from None
    except OSError as exc:
        raise UserError(f"{layout}: cannot read blob {digest}: {exc.strerror or exc}") from None
    if size is not None and len(data) != size:
        raise UserError(
            f"{layout}: blob {digest} is corrupt ({len(data)} bytes, its descriptor says {size})"
        )
    if verify and sha256_digest(data) != digest:
        raise UserError(f"{layout}: blob {digest} is corrupt (its content has another digest)")
    return data


def read_json_blob(layout: Path, digest: str) -> dict[str, Any]:
    try:
        obj = json.loads(read_blob(layout, digest))
    except ValueError:
        raise UserError(f"{layout}: blob {digest} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise UserError(f"{layout}: blob {digest} is not a JSON object")
    return obj


def verify_blob(layout: Path, desc: Descriptor) -> Path:
    """The path of desc's blob after checking its size and SHA-256 (streamed, any size)."""
    path = blob_path(layout, desc.digest)
    try:
        actual = path.stat().st_size
        if actual != desc.size:
            raise UserError(
                f"{layout}: blob {desc.digest} is corrupt "
                f"({actual} bytes, its descriptor says {desc.size})",
                hint="rebuild or re-pull the image",
            )
        found = sha256_file(path)
    except FileNotFoundError:
        raise UserError(f"{layout}: blob {desc.digest} is missing from the layout") from None
    except OSError as exc:
        raise UserError(f"{layout}: cannot read blob {desc.digest}: {exc.strerror}") from None
    if found != desc.digest:
        raise UserError(
            f"{layout}: blob {desc.digest} is corrupt (its content has digest {found})",
            hint="rebuild or re-pull the image",
        )
    return path


def copy_blob(src: Path, desc: Descriptor, dst: Path) -> None:
    """Copy desc's blob from layout src to layout dst, verifying size and digest."""
    target = blob_path(dst, desc.digest)
    if target.exists() and target.stat().st_size == desc.size:
        return
    path = verify_blob(src, desc)
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # no .tmp left behind when the copy fails


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def read_index(layout: Path) -> dict[str, Any]:
    p = layout / "index.json"
    if not (layout / "oci-layout").is_file() or not p.is_file():
        raise UserError(
            f"{layout} is not an OCI image layout (no oci-layout or index.json)",
            hint="pass the directory given to 'reprobase build --output'",
        )
    try:
        obj = json.loads(p.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(
            f"{p} is not valid JSON ({exc})".replace("\n", " "),
            hint="the layout is damaged: rebuild it or re-pull it",
        ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("manifests", []), list):
        raise UserError(f"{p}: not an OCI image index", hint="the layout is damaged")
    for entry in obj.get("manifests", []):
        if not isinstance(entry, dict):
            raise UserError(f"{p}: a manifests entry is not a descriptor")
    return obj


def write_index(layout: Path, manifests: list[Descriptor], annotations: dict[str, str]) -> bytes:
    """Write index.json (the layout's entry point) and return its bytes."""
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [m.to_json() for m in manifests],
    }
    if annotations:
        index["annotations"] = annotations
    data = canonical_json(index)
    tmp = layout / "index.json.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, layout / "index.json")
    return data


def iter_manifests(
    layout: Path, index: dict[str, Any]
) -> Iterator[tuple[Descriptor, dict[str, Any]]]:
    """Yield (descriptor, manifest) for every image manifest, descending nested indexes."""
    for d in index.get("manifests", []):
        desc = Descriptor.from_json(d)
        if desc.media_type in (MT_INDEX, DOCKER_LIST):
            yield from iter_manifests(layout, read_json_blob(layout, desc.digest))
        elif desc.media_type in (MT_MANIFEST, DOCKER_MANIFEST):
            yield desc, read_json_blob(layout, desc.digest)


def reachable(layout: Path, top: Descriptor) -> list[Descriptor]:
    """Every descriptor an image needs, top first: indexes, manifests, configs, layers."""
    out: dict[str, Descriptor] = {}

    def walk(desc: Descriptor) -> None:
        if desc.digest in out:
            return
        out[desc.digest] = desc
        if desc.media_type in (MT_INDEX, DOCKER_LIST):
            for child in read_json_blob(layout, desc.digest).get("manifests", []):
                walk(Descriptor.from_json(child))
        elif desc.media_type in (MT_MANIFEST, DOCKER_MANIFEST):
            man = read_json_blob(layout, desc.digest)
            for child in [man.get("config"), *man.get("layers", [])]:
                if isinstance(child, dict):
                    walk(Descriptor.from_json(child))

    walk(top)
    return list(out.values())
