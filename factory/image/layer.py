"""Canonical layer tar: re-serialise a root filesystem tar so its bytes are fixed.

Nondeterminism removed here, each with its reason:
- entry order: sorted by path bytes (filesystems and tar tools list in any order);
- header format: PAX chosen explicitly (GNU/ustar/PAX defaults differ by tool);
- owners: numeric only, no user/group names (name lookups depend on the host);
- mtimes: clamped to SOURCE_DATE_EPOCH (files touched at build time);
- atime/ctime and all xattrs but security.capability dropped (host-specific);
- device nodes dropped (the runtime provides /dev; their numbers are host facts);
- hard links kept, the first path in sort order carrying the data.
"""

from __future__ import annotations

import hashlib
import mmap
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from factory.image.compress import Compression

KEEP_XATTRS = ("SCHILY.xattr.security.capability",)


@dataclass(frozen=True)
class LayerResult:
    digest: str  # of the compressed blob
    diff_id: str  # of the uncompressed tar
    size: int  # compressed bytes
    uncompressed_size: int
    entries: int
    # where the time went (not part of the result's identity)
    tar_seconds: float = field(default=0.0, compare=False)
    compress_seconds: float = field(default=0.0, compare=False)


class _SpoolingSink:
    """File-like sink for tarfile: hashes the canonical tar and spools it to a file.

    The tar is spooled rather than compressed on the fly because the gzip compressor
    (libdeflate) only takes whole buffers; see factory.image.compress.
    """

    def __init__(self, spool: BinaryIO) -> None:
        self._spool = spool
        self.tar_hash = hashlib.sha256()
        self.tar_size = 0

    def write(self, data: bytes) -> int:
        self.tar_hash.update(data)
        self.tar_size += len(data)
        self._spool.write(data)
        return len(data)


def _compress_spool(spool: BinaryIO, out: BinaryIO, compression: Compression) -> tuple[str, int]:
    """Compress the spooled tar into out; the blob's digest and size."""
    spool.flush()
    blob_hash = hashlib.sha256()
    size = 0
    # An mmap, not a read(): the tar is handed to the compressor without a copy in memory.
    with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as mm, memoryview(mm) as view:
        for chunk in compression.encode(view):
            blob_hash.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return "sha256:" + blob_hash.hexdigest(), size


def _clean_name(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name.rstrip("/")


@dataclass
class Planned:
    header: tarfile.TarInfo
    data_from: tarfile.TarInfo | None  # the source member holding a regular file's bytes


def _key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def plan_entries(members: list[tarfile.TarInfo]) -> list[Planned]:
    """Pure ordering logic: the output entries, sorted, with where their data comes from.

    For each hard-link group the first path in sort order becomes the regular
    file (so a link always follows its target); the others link to it.
    """
    by_name: dict[str, tarfile.TarInfo] = {}
    for m in members:
        name = _clean_name(m.name)
        if name and not (m.ischr() or m.isblk()):
            by_name[name] = m
    root_of: dict[str, str] = {}
    for name, m in by_name.items():
        if m.islnk():
            root = _clean_name(m.linkname)
            while root in by_name and by_name[root].islnk() and root != name:
                root = _clean_name(by_name[root].linkname)
            root_of[name] = root
            root_of.setdefault(root, root)
    leader: dict[str, str] = {}
    for name, root in root_of.items():
        if root not in leader or _key(name) < _key(leader[root]):
            leader[root] = name
    out: list[Planned] = []
    for name in sorted(by_name, key=_key):
        m = by_name[name]
        root = root_of.get(name, "")
        if root not in by_name:
            out.append(Planned(_header(m, name), m if m.isreg() else None))
            continue
        original = by_name[root]
        header = _header(original, name)
        if name == leader[root]:
            out.append(Planned(header, original))
        else:
            header.type, header.linkname, header.size = tarfile.LNKTYPE, leader[root], 0
            out.append(Planned(header, None))
    return out


def _header(m: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type = m.type
    t.mode = m.mode & 0o7777
    t.uid, t.gid = m.uid, m.gid
    t.uname = t.gname = ""
    t.size = m.size if m.isreg() else 0
    t.linkname = m.linkname if m.issym() else _clean_name(m.linkname) if m.islnk() else ""
    t.mtime = int(m.mtime)
    t.pax_headers = {k: v for k, v in m.pax_headers.items() if k in KEEP_XATTRS}
    return t


def write_layer(src_tar: Path, out: Path, compression: Compression, epoch: int) -> LayerResult:
    """Read an uncompressed rootfs tar, write the canonical compressed layer blob."""
    with tarfile.open(src_tar, "r:") as src, out.open("wb") as fh:
        return write_layer_from(src, fh, compression, epoch, spool_dir=out.parent)


def write_layer_from(
    src: tarfile.TarFile,
    out: BinaryIO,
    compression: Compression,
    epoch: int,
    spool_dir: Path | None = None,
) -> LayerResult:
    """The canonical layer of an open tar, written to out (also used by the self-test)."""
    t0 = time.monotonic()
    plan = plan_entries(src.getmembers())
    # An unnamed temporary file: nothing is left behind, whatever happens.
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        sink = _SpoolingSink(spool)
        # Stream mode ("w|") writes through sink.write only; PAX chosen explicitly, and
        # UTF-8 with surrogateescape so that a name's bytes survive whatever the locale.
        dst = tarfile.open(  # noqa: SIM115
            fileobj=cast(IO[bytes], sink),
            mode="w|",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            errors="surrogateescape",
        )
        with dst:
            for entry in plan:
                entry.header.mtime = min(entry.header.mtime, epoch)
                data = src.extractfile(entry.data_from) if entry.data_from else None
                dst.addfile(entry.header, data)
        t1 = time.monotonic()
        digest, size = _compress_spool(spool, out, compression)
    return LayerResult(
        digest=digest,
        diff_id="sha256:" + sink.tar_hash.hexdigest(),
        size=size,
        uncompressed_size=sink.tar_size,
        entries=len(plan),
        tar_seconds=round(t1 - t0, 3),
        compress_seconds=round(time.monotonic() - t1, 3),
    )
