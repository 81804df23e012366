"""Comparing two tars that are not sorted alike: an on-disk index, never contents in memory.

Pass 1 streams each tar once and records every entry's header and a hash per 64 KiB
block of its content in a temporary SQLite database. The join by path then finds
the differences; pass 2 re-reads only the differing files' first bytes and first
differing block, for the report.
"""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from factory.diffing.content import HEAD, ContentProbe, probe_at
from factory.diffing.entries import has_content
from factory.diffing.mergejoin import Sink
from factory.diffing.streams import Opener, TarFacts, open_layer
from factory.diffing.tarstream import TarEntry, TarReader

BLOCK = 64 << 10
HASH = 16
MAX_PROBES = 200  # differing files shown with bytes; more are listed without

SCHEMA = """
CREATE TABLE e (side INTEGER, path TEXT, seq INTEGER, meta BLOB, blocks BLOB,
                PRIMARY KEY (side, path));
"""
JOIN = """
SELECT a.path AS p, a.meta, a.blocks, b.meta, b.blocks
  FROM e a LEFT JOIN e b ON b.side = 1 AND b.path = a.path WHERE a.side = 0
UNION ALL
SELECT b.path AS p, NULL, NULL, b.meta, b.blocks FROM e b
 WHERE b.side = 1 AND NOT EXISTS (SELECT 1 FROM e a WHERE a.side = 0 AND a.path = b.path)
ORDER BY p
"""
ORDER = """
SELECT path FROM e WHERE side = ? AND path IN (SELECT path FROM e WHERE side = ?) ORDER BY seq
"""


def _block_hashes(reader: TarReader) -> bytes:
    out = bytearray()
    while chunk := reader.read(BLOCK):
        out += hashlib.blake2b(chunk, digest_size=HASH).digest()
    return bytes(out)


def index_side(db: sqlite3.Connection, side: int, reader: TarReader) -> None:
    rows: list[tuple[int, str, int, bytes, bytes]] = []
    seq = 0
    while (e := reader.next()) is not None:
        blocks = _block_hashes(reader) if has_content(e) else b""
        rows.append((side, e.path, seq, pickle.dumps(e), blocks))
        seq += 1
        if len(rows) >= 2000:
            db.executemany("INSERT OR REPLACE INTO e VALUES (?, ?, ?, ?, ?)", rows)
            rows.clear()
    db.executemany("INSERT OR REPLACE INTO e VALUES (?, ?, ?, ?, ?)", rows)
    reader.drain()


def first_block(a: bytes, b: bytes) -> int:
    for i in range(0, min(len(a), len(b)), HASH):
        if a[i : i + HASH] != b[i : i + HASH]:
            return i // HASH
    return min(len(a), len(b)) // HASH


@dataclass
class _Pending:
    a: TarEntry
    b: TarEntry
    block: int


def _load(blob: bytes | None) -> TarEntry | None:
    return None if blob is None else pickle.loads(blob)  # our own temp file, written above


def join(db: sqlite3.Connection, sink: Sink) -> list[_Pending]:
    pending: list[_Pending] = []
    for _path, ma, ba, mb, bb in db.execute(JOIN):
        a, b = _load(ma), _load(mb)
        if a is None or b is None:
            sink.one(a, b)
            continue
        sink.pair(a, b)
        if has_content(a) and has_content(b) and (ba != bb or a.size != b.size):
            if len(pending) < MAX_PROBES:
                pending.append(_Pending(a, b, first_block(ba, bb)))
            else:
                sink.content(a, b, None)
    return pending


def capture(opener: Opener, label: str, wanted: dict[int, int]) -> dict[int, tuple[bytes, bytes]]:
    """Pass 2: for data offsets in `wanted` (offset -> block), the head and that block."""
    got: dict[int, tuple[bytes, bytes]] = {}
    with open_layer(opener) as layer:
        reader = TarReader(layer.reader, label)
        while len(got) < len(wanted) and (e := reader.next()) is not None:
            if e.data_offset not in wanted:
                continue
            head = reader.read(HEAD)
            start = wanted[e.data_offset] * BLOCK
            if start + BLOCK <= HEAD:
                block = head[start : start + BLOCK]
            else:
                skip = start - len(head)
                while skip > 0 and (chunk := reader.read(min(skip, HEAD))):
                    skip -= len(chunk)
                block = reader.read(BLOCK)
            got[e.data_offset] = (head, block)
    return got


def order_difference(db: sqlite3.Connection) -> str | None:
    """The first common path at which the two tars' entry orders diverge."""
    ca, cb = db.execute(ORDER, (0, 1)), db.cursor().execute(ORDER, (1, 0))
    for i, ((pa,), (pb,)) in enumerate(zip(ca, cb, strict=False)):
        if pa != pb:
            return f"entry {i}: /{pa} in A, /{pb} in B"
    return None


def compare_indexed(
    open_a: Opener, open_b: Opener, labels: tuple[str, str], sink: Sink, tmp: Path
) -> tuple[str | None, TarFacts, TarFacts]:
    """Compare two tars via the index: where entry order differs (if it does), and facts."""
    facts: list[TarFacts] = []
    with closing(sqlite3.connect(tmp / "index.sqlite")) as db:
        db.executescript(SCHEMA)
        for side, opener in enumerate((open_a, open_b)):
            with open_layer(opener) as layer:
                reader = TarReader(layer.reader, labels[side])
                index_side(db, side, reader)
                facts.append(layer.facts(reader.formats))
        db.commit()
        pending = join(db, sink)
        order = order_difference(db)
    _probe_pending(open_a, open_b, labels, pending, sink)
    return order, facts[0], facts[1]


def _probe_pending(
    open_a: Opener, open_b: Opener, labels: tuple[str, str], pending: list[_Pending], sink: Sink
) -> None:
    got_a = capture(open_a, labels[0], {p.a.data_offset: p.block for p in pending})
    got_b = capture(open_b, labels[1], {p.b.data_offset: p.block for p in pending})
    for p in pending:
        head_a, block_a = got_a.get(p.a.data_offset, (b"", b""))
        head_b, block_b = got_b.get(p.b.data_offset, (b"", b""))
        sizes, heads = (p.a.size, p.b.size), (head_a, head_b)
        probe: ContentProbe | None = probe_at(p.block * BLOCK, block_a, block_b, sizes, heads)
        sink.content(p.a, p.b, probe)
