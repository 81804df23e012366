"""Layer compressors whose bytes depend on their pinned version and nothing else.

Two ways a compressor can make an image irreproducible, and what we do about each:
- the host's library: the standard library's zlib is whatever the system ships
  (Fedora's zlib-ng gives other bytes for the same level), so the compressors come
  from wheels pinned exactly in pyproject.toml and recorded inside every image;
- the host's CPU: a library may choose SIMD kernels at run time that emit another
  stream. ISA-L (python-isal) does: gzip level 3 gave three different streams on
  AVX-512, AVX2 and SSE4.2/baseline CPUs (docs/compression.md). libdeflate, our gzip,
  dispatches on the CPU only in its checksums (crc32/adler32, whose values are
  defined by the format) and its decompressor; its matchfinder's SIMD is chosen at
  compile time and only fills or rebases tables. zstd at level 3 (the double-fast
  strategy) gave the same bytes on every CPU model and on arm64 as well.
The golden digests in tests/ and the known-answer self-test in factory/image/selftest.py
check this on every machine that builds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from importlib import metadata

from factory.image import oci

_ZSTD_STEP = 1 << 20


class Compression(enum.Enum):
    # value: (name, OCI media type, python distribution that pins the bytes, level)
    # gzip level 4 of libdeflate: as fast as isal level 3 was and 5% smaller (measured in
    # benchmarks/bench_compress.py; the table is in docs/compression.md).
    GZIP = ("gzip", oci.MT_LAYER_GZIP, "deflate", 4)
    ZSTD = ("zstd", oci.MT_LAYER_ZSTD, "zstandard", 3)

    @property
    def format(self) -> str:
        return str(self.value[0])

    @property
    def media_type(self) -> str:
        return str(self.value[1])

    @property
    def distribution(self) -> str:
        return str(self.value[2])

    @property
    def level(self) -> int:
        return int(self.value[3])

    def describe(self) -> str:
        """E.g. 'gzip level 4 (deflate 0.9.0)': recorded in the image."""
        dist = self.distribution
        return f"{self.format} level {self.level} ({dist} {metadata.version(dist)})"

    def encode(self, data: memoryview) -> Iterator[bytes | bytearray]:
        """The compressed stream of the whole of data, in pieces.

        libdeflate compresses whole buffers only (no streaming API), so the caller hands
        it the complete tar (an mmap of a spooled file, not a copy in memory).
        """
        if self is Compression.GZIP:
            import deflate

            # One gzip member: MTIME 0, no file name, OS 255 ("unknown") in the header,
            # whatever the host. A single member keeps every gzip reader happy (some
            # stop after the first member of a concatenation).
            yield deflate.gzip_compress(data, self.level)
            return
        import zstandard

        # No content size or checksum frames that depend on how the data was fed.
        cctx = zstandard.ZstdCompressor(level=self.level, write_content_size=False, threads=0)
        obj = cctx.compressobj()
        for start in range(0, len(data), _ZSTD_STEP):
            chunk = obj.compress(data[start : start + _ZSTD_STEP])
            if chunk:
                yield chunk
        yield obj.flush()

    @classmethod
    def parse(cls, name: str) -> Compression:
        for c in cls:
            if c.format == name:
                return c
        raise ValueError(name)
