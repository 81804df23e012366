"""The new layer as *what changed on the base*, decided by us, not by buildah's store.

buildah's layer is the diff its storage driver computed, and drivers disagree: overlay
lists every file that was only copied up (opened for writing, rewritten with the same
bytes, a lock file touched) and every directory whose mtime moved, vfs does not; a
removed directory is one opaque whiteout from overlay and a whiteout per entry from vfs.
So the same steps would give other bytes on a machine whose kernel lacks overlay. Here
the layer is reduced to the changes against the base's own tree, by one rule:
- a file, symlink or special entry is kept when it is new, or differs from the base's in
  type, mode, owner, size, content, link target, capability or mtime (clamped to
  SOURCE_DATE_EPOCH, as the layer writer will);
- a directory is kept when it is new or its mode, owner or capability changed (its mtime
  moves whenever an entry is made or removed in it: not a change of its own);
- a hard link is always kept, with its target;
- deletions are one `.wh.NAME` per topmost deleted path (an opaque directory becomes the
  whiteouts of what it hid), nothing for a path the base never had;
- the parents of every kept entry are kept too (a layer lists the directories it writes in).
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

WH = ".wh."
OPAQUE = ".wh..wh..opq"
CAP = "SCHILY.xattr.security.capability"


def clean(name: str) -> str:
    n = name.lstrip("/")
    while n.startswith("./"):
        n = n[2:]
    return n.rstrip("/")


def parent(name: str) -> str:
    p = str(PurePosixPath(name).parent)
    return "" if p == "." else p


def join(d: str, name: str) -> str:
    return f"{d}/{name}" if d else name


@dataclass
class Entry:
    info: tarfile.TarInfo
    source: Path  # the tar holding its bytes
    _digest: str | None = field(default=None, repr=False)

    def digest(self) -> str:
        if self._digest is None:
            h = hashlib.sha256()
            with self.source.open("rb") as fh:
                fh.seek(self.info.offset_data)
                left = self.info.size
                while left:
                    chunk = fh.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    h.update(chunk)
                    left -= len(chunk)
            self._digest = h.hexdigest()
        return self._digest


class BaseTree:
    """The base image's file tree: its layers (plain tars, lowest first) applied in order."""

    def __init__(self, layers: Iterable[Path]) -> None:
        self.entries: dict[str, Entry] = {}
        for path in layers:
            with tarfile.open(path, "r:") as tf:
                for m in tf:
                    self._apply(m, path)
        self.children: dict[str, list[str]] = {}
        for name in self.entries:
            self.children.setdefault(parent(name), []).append(name)

    def _apply(self, m: tarfile.TarInfo, path: Path) -> None:
        name = clean(m.name)
        base = PurePosixPath(name).name
        if base == OPAQUE:
            d = parent(name)
            for k in [k for k in self.entries if k.startswith(d + "/")]:
                del self.entries[k]
        elif base.startswith(WH):
            gone = join(parent(name), base[len(WH) :])
            for k in [k for k in self.entries if k == gone or k.startswith(gone + "/")]:
                del self.entries[k]
        elif name:
            old = self.entries.get(name)
            if old is not None and old.info.isdir() and not m.isdir():  # replaces a directory
                for k in [k for k in self.entries if k.startswith(name + "/")]:
                    del self.entries[k]
            self.entries[name] = Entry(m, path)

    def under(self, d: str) -> list[str]:
        """Every base path below directory d (recursively)."""
        out, todo = [], list(self.children.get(d, []))
        while todo:
            n = todo.pop()
            out.append(n)
            todo.extend(self.children.get(n, []))
        return out


def _meta(m: tarfile.TarInfo, epoch: int) -> tuple[object, ...]:
    caps = m.pax_headers.get(CAP)
    if m.isdir():
        return ("dir", m.mode & 0o7777, m.uid, m.gid, caps)
    return (m.type, m.mode & 0o7777, m.uid, m.gid, m.size, m.linkname, caps, min(m.mtime, epoch))


def same_as_base(e: Entry, b: Entry | None, epoch: int, data_digest: str | None) -> bool:
    """Pure but for hashing: is the layer's entry e what the base already has?"""
    if b is None or e.info.islnk() or b.info.islnk():
        return False
    if _meta(e.info, epoch) != _meta(b.info, epoch):
        return False
    if e.info.isreg():
        return (data_digest or e.digest()) == b.digest()
    return True


@dataclass(frozen=True)
class Plan:
    keep: tuple[str, ...]  # layer entries to write, as they are
    whiteouts: tuple[str, ...]  # paths deleted from the base (a .wh. entry each)
    parents: tuple[str, ...]  # directories added from the base as parents of kept entries
    unchanged: int  # layer entries dropped because the base already has them


def plan(
    layer: dict[str, Entry],
    base: BaseTree,
    epoch: int,
    digests: dict[str, str] | None = None,
) -> Plan:
    """What the canonical layer holds. layer: buildah's entries by clean name (already
    normalised: dropped entries absent); digests: content hashes of rewritten files."""
    digests = digests or {}
    present = {n for n in layer if not PurePosixPath(n).name.startswith(WH)}
    deleted: set[str] = set()
    for n in layer:
        b = PurePosixPath(n).name
        if b == OPAQUE:
            d = parent(n)
            deleted |= {p for p in base.under(d) if p not in present}
        elif b.startswith(WH):
            gone = join(parent(n), b[len(WH) :])
            if gone in base.entries and gone not in present:
                deleted.add(gone)
                deleted |= {p for p in base.under(gone) if p not in present}
    for n in present:  # a non-directory replacing a base directory hides what was below
        if not layer[n].info.isdir() and n in base.entries and base.entries[n].info.isdir():
            deleted |= {p for p in base.under(n) if p not in present}
    topmost = sorted(p for p in deleted if parent(p) not in deleted)
    keep: set[str] = set()
    unchanged = 0
    for n in sorted(present):
        e = layer[n]
        if same_as_base(e, base.entries.get(n), epoch, digests.get(n)):
            unchanged += 1
            continue
        keep.add(n)
        if e.info.islnk():
            keep.add(clean(e.info.linkname))
    need = set()
    for n in [*keep, *topmost]:
        p = parent(n)
        while p and p not in keep and p not in need:
            need.add(p)
            p = parent(p)
    from_layer = {p for p in need if p in layer}
    keep |= from_layer
    return Plan(
        tuple(sorted(keep)),
        tuple(topmost),
        tuple(sorted(need - from_layer)),
        unchanged,
    )


def whiteout_info(path: str, epoch: int) -> tarfile.TarInfo:
    """An OCI whiteout entry (image-spec layer.md, Whiteouts) for path."""
    t = tarfile.TarInfo(join(parent(path), WH + PurePosixPath(path).name))
    t.mode, t.mtime, t.size = 0o644, epoch, 0
    return t


def read_from(e: Entry) -> BinaryIO:
    fh = e.source.open("rb")
    fh.seek(e.info.offset_data)
    return fh
