"""Blobs on disk, named by SHA-256; partial downloads live only under ``tmp/``.

A blob appears under ``blobs/`` only by ``os.replace`` of a fully written, fsynced
and verified temp file (then the directory is fsynced too), so a crash at any
point leaves either no blob or a complete one. ``tmp/`` is emptied at start.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.tmp = root / "tmp"

    def open(self) -> None:
        """Create the layout and drop partial downloads of an earlier run (blocking)."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def new_tmp(self) -> Path:
        return self.tmp / f"dl-{uuid.uuid4().hex}"

    def commit(self, tmp: Path, sha256: str) -> Path:
        """Move a verified, fsynced temp file into place, durably (blocking)."""
        dest = self.path(sha256)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)
        fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return dest

    def discard(self, tmp: Path) -> None:
        tmp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def scan(self) -> Iterator[tuple[str, int]]:
        """(sha256, size) of every blob on disk (blocking)."""
        for sub in self.blobs.iterdir():
            if not sub.is_dir():
                continue
            with os.scandir(sub) as it:
                for entry in it:
                    if entry.is_file() and len(entry.name) == 64:
                        yield entry.name, entry.stat().st_size
