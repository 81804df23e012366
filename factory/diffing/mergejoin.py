"""Streaming merge-join of two tars sorted by path: one pass, constant memory.

Our factory writes entries sorted by path bytes (string order, tried first);
`tar --sort=name` sorts each directory (component order, tried next).
Sortedness is checked as we go: an entry out of order raises OutOfOrder, and the
caller falls back to the on-disk index (tarindex.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from factory.diffing.content import ContentProbe, compare_streams
from factory.diffing.entries import has_content
from factory.diffing.tarstream import TarEntry, TarReader

SortKey = Callable[[str], tuple[str, ...]]


def component_key(path: str) -> tuple[str, ...]:
    """GNU tar --sort=name order: a directory's children follow it, sorted by name."""
    return tuple(path.split("/")) if path else ()


def string_key(path: str) -> tuple[str, ...]:
    """Plain sorted() order of the path strings."""
    return (path,)


class OutOfOrder(Exception):
    def __init__(self, path: str, still_sorted: tuple[SortKey, ...]) -> None:
        super().__init__(path)
        self.still_sorted = still_sorted  # orders that held for every entry read so far


KEYS: tuple[SortKey, ...] = (string_key, component_key)


class Sink(Protocol):
    def one(self, a: TarEntry | None, b: TarEntry | None) -> None: ...

    def pair(self, a: TarEntry, b: TarEntry) -> None: ...

    def content(self, a: TarEntry, b: TarEntry, probe: ContentProbe | None) -> None: ...


class _Sorted:
    """A TarReader whose paths must strictly increase under `key` (other orders watched)."""

    def __init__(self, reader: TarReader, key: SortKey) -> None:
        self.reader = reader
        self.key = key
        self.prev: dict[SortKey, tuple[str, ...]] = {}
        self.holding = set(KEYS)

    def next(self) -> tuple[TarEntry, tuple[str, ...]] | None:
        e = self.reader.next()
        if e is None:
            return None
        for k in KEYS:
            value = k(e.path)
            if k in self.prev and value <= self.prev[k]:
                self.holding.discard(k)
            self.prev[k] = value
        if self.key not in self.holding:
            raise OutOfOrder(e.path, tuple(k for k in KEYS if k in self.holding))
        return e, self.prev[self.key]


def merge_join(ra: TarReader, rb: TarReader, key: SortKey, sink: Sink) -> None:
    sa, sb = _Sorted(ra, key), _Sorted(rb, key)
    xa, xb = sa.next(), sb.next()
    while xa is not None or xb is not None:
        if xb is None or (xa is not None and xa[1] < xb[1]):
            assert xa is not None
            sink.one(xa[0], None)
            xa = sa.next()
        elif xa is None or xb[1] < xa[1]:
            sink.one(None, xb[0])
            xb = sb.next()
        else:
            ea, eb = xa[0], xb[0]
            sink.pair(ea, eb)
            if has_content(ea) and has_content(eb):
                probe = compare_streams(ra.read, rb.read, ea.size, eb.size)
                if probe is not None:
                    sink.content(ea, eb, probe)
            xa, xb = sa.next(), sb.next()
