"""Re-hash stored blobs: a flipped bit on disk must not be served for ever.

A blob is named by its SHA-256 and was verified before it was stored, so checking
it needs nothing but its own bytes. ``check_blob`` is the sync core (it runs on a
thread); ``scrub_store`` walks the whole store for ``reprobase proxy scrub`` and
for rebuilding a damaged index; ``Cache`` runs a slow background pass with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cache_proxy.index import Index
from cache_proxy.store import BlobStore

log = logging.getLogger("cache_proxy.scrub")

CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class Checked:
    sha256: str
    size: int
    sha1: str
    ok: bool  # the bytes hash to the name


def check_blob(path: Path, sha256: str, pace: Callable[[int], None] | None = None) -> Checked:
    """Hash the file at ``path`` (blocking); ``pace(n)`` is called after each chunk read."""
    h256, h1 = hashlib.sha256(), hashlib.sha1()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            h256.update(chunk)
            h1.update(chunk)
            size += len(chunk)
            if pace is not None:
                pace(len(chunk))
    return Checked(sha256, size, h1.hexdigest(), h256.hexdigest() == sha256)


@dataclass
class ScrubReport:
    checked: int = 0
    bytes: int = 0
    dropped: int = 0
    vanished: int = 0  # evicted while we looked: not damage

    def line(self) -> str:
        mib = self.bytes / (1 << 20)
        return (
            f"scrub: {self.checked} blobs ({mib:.1f} MiB) re-hashed, "
            f"{self.dropped} damaged and dropped"
        )


def scrub_store(store: BlobStore, index: Index, rate: float | None = None) -> ScrubReport:
    """Re-hash every blob (blocking); drop damaged ones from disk and index, and fill in
    the SHA-1 of rows adopted without one. ``rate``: at most this many bytes/s."""
    report = ScrubReport()
    start = time.monotonic()

    def pace(n: int) -> None:
        report.bytes += n
        if rate:
            ahead = report.bytes / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    for sha, _size in list(store.scan()):
        try:
            got = check_blob(store.path(sha), sha, pace)
        except FileNotFoundError:
            report.vanished += 1
            continue
        report.checked += 1
        if got.ok:
            index.adopt(got.sha256, got.size, got.sha1, time.time())
            continue
        report.dropped += 1
        log.warning("scrub: blob %s does not hash to its name: dropped", sha)
        index.delete_blob(sha)
        store.remove(sha)
    return report


def set_aside(path: Path) -> Path:
    """Move a damaged index (and its WAL files) out of the way; the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    return aside
