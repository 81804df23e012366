"""Where an image's blobs come from: a layout directory, an archive tar, a docker save.

Every store answers the same three questions: the top-level index, a JSON blob by
digest (verified), and how to open a layer blob as a stream. Archive members are read
in place (seek + length), never extracted.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Protocol

from factory.common.canonical import sha256_digest
from factory.common.errors import UserError
from factory.diffing.streams import CHUNK, Opener
from factory.image import oci


class BlobSource(Protocol):
    label: str

    def index(self) -> dict[str, Any]: ...

    def read_json(self, digest: str) -> dict[str, Any]: ...

    def opener(self, digest: str) -> Opener: ...

    def verify(self, desc: dict[str, Any]) -> None:
        """Raise UserError naming the blob unless its size and digest are desc's."""
        ...


def parse_json(label: str, what: str, data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise UserError(f"{label}: {what} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{label}: {what} is not a JSON object")
    return obj


class LayoutStore:
    """An OCI image layout directory (image-layout.md), through factory.image.oci."""

    def __init__(self, path: Path, label: str, tag: str | None = None) -> None:
        self.path = path
        self.label = label
        self.tag = tag  # LAYOUT:TAG: only the image index.json names so

    def index(self) -> dict[str, Any]:
        index = oci.read_index(self.path)
        if self.tag is None:
            return index
        entries = [
            e
            for e in index.get("manifests", [])
            if (e.get("annotations") or {}).get(oci.ANN_REF_NAME) == self.tag
        ]
        if not entries:
            raise UserError(
                f"{self.path}: no image tagged {self.tag!r}",
                hint="the tags are the org.opencontainers.image.ref.name of index.json's entries",
            )
        return {**index, "manifests": entries}

    def read_json(self, digest: str) -> dict[str, Any]:
        return oci.read_json_blob(self.path, digest)

    def opener(self, digest: str) -> Opener:
        path = oci.blob_path(self.path, digest)
        if not path.is_file():
            raise UserError(f"{self.label}: blob {digest} is missing from the layout")
        return lambda: io.BufferedReader(io.FileIO(path), CHUNK)

    def verify(self, desc: dict[str, Any]) -> None:
        oci.verify_blob(self.path, oci.Descriptor.from_json(desc))


class SubFile(io.RawIOBase):
    """A read-only window [offset, offset+size) of a file."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self.f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.f.seek(offset)
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.f.readinto(memoryview(buf)[: min(len(buf), self.left)]) or 0
        self.left -= n
        return n

    def close(self) -> None:
        self.f.close()
        super().close()


class TarTree:
    """Members of an uncompressed tar archive, read in place."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(path, "r:") as tf:
                for m in tf:
                    self.members[_norm(m.name)] = m
        except tarfile.TarError as exc:
            raise UserError(f"{label}: not a readable tar archive ({exc})") from None

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str) -> tarfile.TarInfo:
        for _ in range(16):  # follow links between members (older docker save)
            m = self.members.get(name)
            if m is None:
                raise UserError(f"{self.label}: archive has no member {name!r}")
            if not (m.issym() or m.islnk()):
                return m
            base = name.rsplit("/", 1)[0] + "/" if m.issym() and "/" in name else ""
            name = _norm(base + m.linkname if m.issym() else m.linkname)
        raise UserError(f"{self.label}: too many links at archive member {name!r}")

    def size(self, name: str) -> int:
        return self._member(name).size

    def opener(self, name: str) -> Opener:
        m = self._member(name)
        return lambda: io.BufferedReader(SubFile(self.path, m.offset_data, m.size), CHUNK)

    def read(self, name: str) -> bytes:
        with self.opener(name)() as f:
            return f.read()


def _norm(name: str) -> str:
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


class ArchiveLayoutStore:
    """An OCI archive: a tar of an image layout (skopeo's oci-archive:, docker save ≥ 25)."""

    def __init__(self, tree: TarTree) -> None:
        self.tree = tree
        self.label = tree.label

    def index(self) -> dict[str, Any]:
        return parse_json(self.label, "index.json", self.tree.read("index.json"))

    def _name(self, digest: str) -> str:
        return oci.blob_path(Path("."), digest).as_posix()

    def read_json(self, digest: str) -> dict[str, Any]:
        data = self.tree.read(self._name(digest))
        if sha256_digest(data) != digest:
            raise UserError(
                f"{self.label}: blob {digest} is corrupt (its content has another digest)"
            )
        return parse_json(self.label, f"blob {digest}", data)

    def opener(self, digest: str) -> Opener:
        return self.tree.opener(self._name(digest))

    def verify(self, desc: dict[str, Any]) -> None:
        d = oci.Descriptor.from_json(desc)
        name = self._name(d.digest)
        if not self.tree.has(name):
            raise UserError(f"{self.label}: blob {d.digest} is missing from the archive")
        size = self.tree.size(name)
        if size != d.size:
            raise UserError(
                f"{self.label}: blob {d.digest} is corrupt "
                f"({size} bytes, its descriptor says {d.size})",
                hint="write the archive again",
            )
        found, _ = hash_stream(self.opener(d.digest))
        if found != d.digest:
            raise UserError(
                f"{self.label}: blob {d.digest} is corrupt (its content has digest {found})",
                hint="write the archive again",
            )


def hash_stream(opener: Opener) -> tuple[str, bytes]:
    """sha256 of a member and its first bytes (to sniff the compression)."""
    h = hashlib.sha256()
    with opener() as f:
        head = f.peek(64)[:64]
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), head


INDEX_TYPES = (oci.MT_INDEX, oci.DOCKER_LIST)
MANIFEST_TYPES = (oci.MT_MANIFEST, oci.DOCKER_MANIFEST)


def verify_tree(store: BlobSource) -> None:
    """Check every blob the store's index reaches (manifests, configs, layers) against
    its descriptor's size and digest, so that a truncated layer is an error, never
    "identical" because both sides name the same digest."""
    seen: set[str] = set()

    def walk(desc: dict[str, Any]) -> None:
        digest = str(desc.get("digest"))
        if digest in seen:
            return
        seen.add(digest)
        store.verify(desc)
        media_type = desc.get("mediaType")
        if media_type in INDEX_TYPES:
            for child in store.read_json(digest).get("manifests") or []:
                walk(child)
        elif media_type in MANIFEST_TYPES:
            man = store.read_json(digest)
            for child in [man.get("config") or {}, *(man.get("layers") or [])]:
                if child:
                    walk(child)

    for entry in store.index().get("manifests") or []:
        walk(entry)
