"""Pinned compressors: layer bytes must not depend on the host's zlib.

The standard library's zlib is whatever the system ships (Fedora's zlib-ng
gives other bytes for the same level), so layers are compressed with
python-isal (gzip) or python-zstandard (zstd), whose bytes are fixed by their
exact versions, pinned in pyproject.toml and recorded inside every image.
"""

from __future__ import annotations

import enum
from importlib import metadata
from typing import Protocol

from factory import oci


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Compression(enum.Enum):
    # value: (name, OCI media type, python distribution that pins the bytes, level)
    GZIP = ("gzip", oci.MT_LAYER_GZIP, "isal", 3)
    ZSTD = ("zstd", oci.MT_LAYER_ZSTD, "zstandard", 3)

    @property
    def media_type(self) -> str:
        return str(self.value[1])

    @property
    def level(self) -> int:
        return int(self.value[3])

    def describe(self) -> str:
        """E.g. 'gzip level 3 (isal 1.9.1)': recorded in the image."""
        dist = str(self.value[2])
        return f"{self.value[0]} level {self.level} ({dist} {metadata.version(dist)})"

    def compressor(self) -> _Compressor:
        if self is Compression.GZIP:
            from isal import isal_zlib

            # wbits=31: gzip wrapper; isal writes mtime 0 and no file name.
            return isal_zlib.compressobj(self.level, isal_zlib.DEFLATED, 31)
        import zstandard

        # No content size or checksum frames that depend on how the data was fed.
        cctx = zstandard.ZstdCompressor(level=self.level, write_content_size=False, threads=0)
        return cctx.compressobj()

    @classmethod
    def parse(cls, name: str) -> Compression:
        for c in cls:
            if c.value[0] == name:
                return c
        raise ValueError(name)
