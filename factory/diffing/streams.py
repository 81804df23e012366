"""Opening a layer blob as an uncompressed, hashed, buffered stream.

StreamCodec is sniffed from the magic bytes (RFC 1952 gzip 1f 8b; RFC 8878 zstd
28 b5 2f fd), not trusted from the media type. gzip goes through isal (several times
faster than zlib), zstd through zstandard's stream reader. The uncompressed bytes are
hashed on the way (the layer's diff_id) without ever being held in memory.
"""

from __future__ import annotations

import enum
import hashlib
import io
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, cast

import zstandard
from isal import igzip

CHUNK = 1 << 20


class StreamCodec(enum.Enum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"

    @classmethod
    def sniff(cls, head: bytes) -> StreamCodec:
        if head[:2] == b"\x1f\x8b":
            return cls.GZIP
        if head[:4] == b"\x28\xb5\x2f\xfd":
            return cls.ZSTD
        return cls.NONE

    def decompress(self, raw: BinaryIO) -> BinaryIO:
        if self is StreamCodec.GZIP:
            return cast(BinaryIO, igzip.IGzipFile(fileobj=raw, mode="rb"))  # type: ignore[no-untyped-call]
        if self is StreamCodec.ZSTD:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            return cast(BinaryIO, reader)
        return raw


@dataclass(frozen=True)
class GzipHeader:
    """RFC 1952 §2.3 member header: MTIME and OS are classic sources of non-reproducibility."""

    mtime: int
    xfl: int
    os: int
    name: str | None

    @classmethod
    def parse(cls, head: bytes) -> GzipHeader | None:
        if len(head) < 10 or head[:2] != b"\x1f\x8b":
            return None
        flags, mtime, xfl, os_byte = head[3], *struct.unpack("<IBB", head[4:10])
        name = None
        pos = 10
        if flags & 4 and len(head) >= 12:  # FEXTRA
            pos += 2 + struct.unpack("<H", head[10:12])[0]
        if flags & 8:  # FNAME
            end = head.find(b"\0", pos)
            name = head[pos:end].decode("latin-1") if end >= 0 else None
        return cls(mtime, xfl, os_byte, name)

    def describe(self) -> str:
        parts = [f"mtime {self.mtime}", f"OS {self.os}", f"XFL {self.xfl}"]
        if self.name is not None:
            parts.append(f"name {self.name!r}")
        return ", ".join(parts)


class HashingReader(io.RawIOBase):
    """Raw reader over a decompressor that hashes and counts what passes through."""

    def __init__(self, inner: BinaryIO, enabled: bool = True) -> None:
        super().__init__()
        self.inner = inner
        self.sha = hashlib.sha256()
        self.enabled = enabled
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buf))
        n = len(data)
        buf[:n] = data
        if self.enabled:
            self.sha.update(data)
        self.count += n
        return n


@dataclass
class LayerStream:
    reader: BinaryIO  # buffered uncompressed tar
    compression: StreamCodec
    gzip_header: GzipHeader | None
    hasher: HashingReader
    declared: str | None = None  # the config's diff_id, trusted instead of hashing

    def diff_id(self) -> str:
        return self.declared or "sha256:" + self.hasher.sha.hexdigest()

    def facts(self, formats: Iterable[str]) -> TarFacts:
        """Call after the stream was read to its end."""
        return TarFacts(self.compression, self.gzip_header, self.diff_id(), tuple(sorted(formats)))


@dataclass(frozen=True)
class TarFacts:
    """What one pass over a layer learned about its encoding."""

    compression: StreamCodec
    gzip_header: GzipHeader | None
    diff_id: str
    formats: tuple[str, ...]  # tar header formats seen


Opener = Callable[[], io.BufferedReader]  # opens the (compressed) blob


@contextmanager
def open_layer(opener: Opener, declared: str | None = None) -> Iterator[LayerStream]:
    """The uncompressed tar; hashed on the way unless the config `declared` its digest."""
    raw = opener()
    try:
        head = raw.peek(64)[:64]
        comp = StreamCodec.sniff(head)
        hasher = HashingReader(comp.decompress(raw), enabled=declared is None)
        reader = cast(BinaryIO, io.BufferedReader(hasher, CHUNK))
        yield LayerStream(reader, comp, GzipHeader.parse(head), hasher, declared)
    finally:
        raw.close()


def uncompressed_digest(opener: Opener) -> str:
    """sha256 of the uncompressed stream (the layer's true diff_id)."""
    with open_layer(opener) as layer:
        while layer.reader.read(CHUNK):
            pass
        return layer.diff_id()
