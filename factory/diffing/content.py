"""Comparing file contents in bounded memory, and showing how they differ.

Contents are compared chunk by chunk; only the first HEAD bytes of each side and a
few bytes around the first difference are kept, for a unified diff (text, also
inside .gz) or a hex context (binary).
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Callable
from dataclasses import dataclass

HEAD = 1 << 20  # bytes of each side kept for the report
CONTEXT = 32  # bytes each side of the first difference in the hex context
MAX_DIFF_LINES = 120

Read = Callable[[int], bytes]


@dataclass(frozen=True)
class ContentProbe:
    """Two contents that differ: where, and enough bytes to show it."""

    offset: int  # first differing byte
    size_a: int
    size_b: int
    head_a: bytes
    head_b: bytes
    ctx_start: int
    ctx_a: bytes
    ctx_b: bytes


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by bisection over memcmp (no per-byte Python loop)."""
    if a == b:
        return len(a)
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # bytes comparison is memcmp; memoryview comparison is not
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def probe_at(
    base: int, chunk_a: bytes, chunk_b: bytes, sizes: tuple[int, int], heads: tuple[bytes, bytes]
) -> ContentProbe | None:
    """Probe for two chunks read at the same offset `base`, or None if they are equal."""
    i = common_prefix(chunk_a, chunk_b)
    if i == len(chunk_a) == len(chunk_b):
        return None
    lo = max(i - CONTEXT, 0)
    return ContentProbe(
        offset=base + i,
        size_a=sizes[0],
        size_b=sizes[1],
        head_a=heads[0],
        head_b=heads[1],
        ctx_start=base + lo,
        ctx_a=chunk_a[lo : i + CONTEXT],
        ctx_b=chunk_b[lo : i + CONTEXT],
    )


def compare_streams(read_a: Read, read_b: Read, size_a: int, size_b: int) -> ContentProbe | None:
    """Read both contents to the end in aligned chunks; None if they are equal."""
    found: ContentProbe | None = None
    heads = (b"", b"")
    base = 0
    while True:
        chunk_a, chunk_b = read_a(HEAD), read_b(HEAD)
        if not chunk_a and not chunk_b:
            return found
        if base == 0:
            heads = (chunk_a, chunk_b)
        if found is None:
            found = probe_at(base, chunk_a, chunk_b, (size_a, size_b), heads)
        base += HEAD


# --- showing a difference -------------------------------------------------------


def is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data[: len(data) - 4].decode("utf-8") if len(data) > 4 else data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def gunzip_head(data: bytes) -> bytes | None:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, HEAD)
    except zlib.error:
        return None


def unified(path: str, a: bytes, b: bytes, truncated: bool) -> str:
    lines_a = a.decode("utf-8", "replace").splitlines(keepends=True)
    lines_b = b.decode("utf-8", "replace").splitlines(keepends=True)
    diff = list(difflib.unified_diff(lines_a, lines_b, "a" + path, "b" + path, n=3))
    out = [
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff
    ]
    text = "".join(out).splitlines()
    if len(text) > MAX_DIFF_LINES:
        text = [*text[:MAX_DIFF_LINES], f"... ({len(text) - MAX_DIFF_LINES} more diff lines)"]
    if truncated:
        text.append(f"(diff of the first {HEAD} bytes only)")
    return "\n".join(text)


def hexdump(start: int, data: bytes) -> list[str]:
    rows = []
    first = start - start % 16
    for row in range(first, start + len(data), 16):
        cells = []
        for pos in range(row, row + 16):
            cells.append(f"{data[pos - start]:02x}" if start <= pos < start + len(data) else "  ")
        text = "".join(
            chr(data[p - start])
            if start <= p < start + len(data) and 32 <= data[p - start] < 127
            else "."
            if start <= p < start + len(data)
            else " "
            for p in range(row, row + 16)
        )
        rows.append(f"{row:08x}  {' '.join(cells)}  |{text}|")
    return rows


def hex_context(probe: ContentProbe) -> str:
    lines = [f"first difference at byte {probe.offset} (sizes {probe.size_a} / {probe.size_b})"]
    lines += ["a:", *("  " + r for r in hexdump(probe.ctx_start, probe.ctx_a))]
    lines += ["b:", *("  " + r for r in hexdump(probe.ctx_start, probe.ctx_b))]
    return "\n".join(lines)


def describe(path: str, probe: ContentProbe) -> str:
    """A unified diff (text, or text inside .gz) or a hex context (binary)."""
    a, b = probe.head_a, probe.head_b
    truncated = max(probe.size_a, probe.size_b) > HEAD
    if path.endswith(".gz") and a[:2] == b[:2] == b"\x1f\x8b":
        da, db = gunzip_head(a), gunzip_head(b)
        if da is not None and db is not None:
            if da == db and not truncated:
                return "decompressed contents are equal: only the gzip header or encoding differs"
            if is_text(da) and is_text(db):
                return "(decompressed)\n" + unified(path[:-3], da, db, truncated)
    if is_text(a) and is_text(b) and probe.offset < HEAD:
        return unified(path, a, b, truncated)
    return hex_context(probe)
