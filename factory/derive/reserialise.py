"""buildah's new layer -> our canonical layer: normalised, re-serialised, compressed by us.

The tar buildah writes is read for its entries and bytes only; the blob in the image
is written by factory.image.layer (order, PAX headers, owners, mtimes clamped to
SOURCE_DATE_EPOCH, xattrs) and compressed by factory.image.compress, so a buildah
release that orders, times or compresses its tar differently changes nothing.

Before that, the same normalisation as a base image (factory.rootfs.normalize), applied
to what the steps left behind, each rule for the nondeterminism it removes:
- DROP: logs with timestamps, apt's lists (named after the build-time URL) and caches
  (mmap dumps, downloaded .debs), dpkg/shadow backups of intermediate states;
- PLACEHOLDER: the empty /etc/hosts, /etc/hostname, /etc/resolv.conf that buildah
  leaves where it bind-mounted the host's versions during RUN;
- MOUNTPOINT: build B's libfaketime mount point;
- SHADOW: /etc/shadow's last-change days clamped to SOURCE_DATE_EPOCH's day.
Then only what changed on the base is kept (factory.derive.changes): buildah's storage
drivers disagree on what a layer lists.
And a leak check: a file holding the build-time proxy's address is refused.
"""

from __future__ import annotations

import enum
import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from factory.common.errors import UserError
from factory.derive.buildah import MOUNT_FAKETIME
from factory.derive.changes import BaseTree, Entry, Plan, plan, read_from, whiteout_info
from factory.image.compress import Compression
from factory.image.layer import LayerResult, write_layer
from factory.rootfs.normalize import EMPTY_DIRS, REMOVE_FILES, clamp_shadow

PLACEHOLDERS = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
EXTRA_LOGS = ("var/log/apt/",)  # everything apt logs, under any name


class Rule(enum.Enum):
    KEEP = "kept"
    DROP = "a log, cache or backup"
    PLACEHOLDER = "buildah's empty bind-mount placeholder"
    MOUNTPOINT = "build B's libfaketime mount point"
    SHADOW = "/etc/shadow, last-change days clamped"

    @property
    def dropped(self) -> bool:
        return self in (Rule.DROP, Rule.PLACEHOLDER, Rule.MOUNTPOINT)


def _name(m: tarfile.TarInfo) -> str:
    n = m.name.lstrip("/")
    while n.startswith("./"):
        n = n[2:]
    return n.rstrip("/")


def rule_for(m: tarfile.TarInfo) -> Rule:
    """Pure: what happens to one entry of buildah's layer."""
    name = _name(m)
    if name == MOUNTPOINT_NAME and m.isdir():
        return Rule.MOUNTPOINT
    if name in PLACEHOLDERS and m.isreg() and m.size == 0:
        return Rule.PLACEHOLDER
    if name in REMOVE_FILES or any(name.startswith(p) for p in EXTRA_LOGS):
        return Rule.DROP if not m.isdir() else Rule.KEEP
    for d in EMPTY_DIRS:
        if name.startswith(d + "/") and not m.isdir() and Path(name).name != "lock":
            return Rule.DROP
    if name == "etc/shadow" and m.isreg():
        return Rule.SHADOW
    return Rule.KEEP


MOUNTPOINT_NAME = MOUNT_FAKETIME.lstrip("/")


@dataclass(frozen=True)
class Normalised:
    layer: LayerResult
    dropped: tuple[str, ...]  # paths left out by a rule, sorted (for the build report)
    unchanged: int = 0  # entries buildah listed that the base already has


def _leak_check(name: str, data: bytes, needles: Iterable[bytes]) -> None:
    for needle in needles:
        if needle and needle in data:
            raise UserError(
                f"/{name} holds the build-time proxy address {needle.decode()!r}: "
                "the image would leak it",
                hint="do not write $http_proxy into files in RUN steps",
            )


def normalise_tar(
    src: Path, dst: Path, epoch: int, needles: tuple[bytes, ...], base: BaseTree
) -> tuple[list[str], Plan]:
    """buildah's layer tar -> the normalised changes on the base, as a tar (in any order:
    write_layer sorts it). Returns the paths dropped by a rule, and the plan."""
    dropped: list[str] = []
    layer: dict[str, Entry] = {}
    rewritten: dict[str, bytes] = {}  # /etc/shadow, clamped
    digests: dict[str, str] = {}
    day = epoch // 86400
    with tarfile.open(src, "r:") as tin:
        for m in tin:
            name = _name(m)
            rule = rule_for(m)
            if not name or rule.dropped:
                if name:
                    dropped.append(name)
                continue
            layer[name] = Entry(m, src)
            if not m.isreg():
                continue
            fh = tin.extractfile(m)
            data = fh.read() if fh is not None else b""
            _leak_check(name, data, needles)
            if rule is Rule.SHADOW:
                text = data.decode("utf-8", "surrogateescape")
                data = clamp_shadow(text, day).encode("utf-8", "surrogateescape")
                rewritten[name] = data
                m.size = len(data)
            digests[name] = hashlib.sha256(data).hexdigest()
    p = plan(layer, base, epoch, digests)
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for name in p.keep:
            e = layer[name]
            if not e.info.isreg():
                tout.addfile(e.info)
            elif name in rewritten:
                tout.addfile(e.info, io.BytesIO(rewritten[name]))
            else:
                with read_from(e) as fh:
                    tout.addfile(e.info, fh)
        for name in p.parents:  # the base's directory, or a plain one if it has none
            tout.addfile(base.entries[name].info if name in base.entries else _dir(name))
        for name in p.whiteouts:
            tout.addfile(whiteout_info(name, epoch), io.BytesIO(b""))
    return sorted(dropped), p


def _dir(name: str) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type, t.mode = tarfile.DIRTYPE, 0o755
    return t


def reserialise(
    src: Path,
    out_blob: Path,
    compression: Compression,
    epoch: int,
    proxy: str | None,
    base: BaseTree | None = None,
) -> Normalised:
    """Our canonical, compressed layer blob from buildah's layer tar."""
    needles = _needles(proxy)
    tmp = out_blob.with_name(out_blob.name + ".normalised.tar")
    try:
        dropped, p = normalise_tar(src, tmp, epoch, needles, base or BaseTree([]))
        layer = write_layer(tmp, out_blob, compression, epoch)
    finally:
        tmp.unlink(missing_ok=True)
    return Normalised(layer, tuple(dropped), p.unchanged)


def _needles(proxy: str | None) -> tuple[bytes, ...]:
    """Pure: the proxy's host:port as it could appear in a file."""
    if not proxy:
        return ()
    import urllib.parse

    parts = urllib.parse.urlsplit(proxy)
    hostport = f"{parts.hostname}:{parts.port}" if parts.port else ""
    return (hostport.encode(),) if hostport else ()
