"""Counters shared by the proxy's processes, in one shared memory page set.

Hit workers (see ``workers``) answer most requests themselves; the primary
renders ``/metrics``. Rather than a message per request, each worker owns one
row of int64 counters in a ``memfd`` mapping that every process maps: a worker
only ever writes its own row, the primary only reads them, and aligned 8-byte
stores are never torn on the platforms we run on. Slot 0 is the eviction
generation: the primary bumps it after deleting blobs, and a worker that sees it
change forgets what it remembered about stored blobs. Slot 1 is 1 while a build's
pin lease is open (``pins``): then a worker relays pinning clients' requests to
the primary, which alone holds pins.
"""

from __future__ import annotations

import mmap
import os
from typing import Final

STATUS_MIN: Final = 100
STATUS_MAX: Final = 599
_HITS: Final = 0
_SERVED: Final = 1
_STATUS0: Final = 2
ROW_SLOTS: Final = _STATUS0 + STATUS_MAX - STATUS_MIN + 1
_SLOT: Final = 8
_HEADER: Final = 2  # generation, pins active

Series = dict[str, dict[tuple[tuple[str, str], ...], float]]


class Board:
    """The shared mapping: header slots, then one row per worker."""

    def __init__(self, fd: int, rows: int) -> None:
        self.fd = fd
        self.rows = rows
        self._map = mmap.mmap(fd, self.size_for(rows))
        self._q = memoryview(self._map).cast("q")

    @staticmethod
    def size_for(rows: int) -> int:
        return _SLOT * (_HEADER + rows * ROW_SLOTS)

    @classmethod
    def create(cls, rows: int) -> Board:
        """A new zeroed board whose fd can be passed to worker processes."""
        fd = os.memfd_create("reprobase-proxy-board")  # workers get it through pass_fds
        os.ftruncate(fd, cls.size_for(rows))
        return cls(fd, rows)

    def close(self) -> None:
        self._q.release()
        self._map.close()
        os.close(self.fd)

    @property
    def generation(self) -> int:
        return int(self._q[0])

    def bump_generation(self) -> None:
        self._q[0] += 1

    @property
    def pinning(self) -> bool:
        return bool(self._q[1])

    def set_pinning(self, active: bool) -> None:
        self._q[1] = int(active)

    def row(self, index: int) -> BoardRow:
        if not 0 <= index < self.rows:
            raise ValueError(f"board has no row {index}")
        return BoardRow(self._q, _HEADER + index * ROW_SLOTS)

    def totals(self) -> Series:
        """Every row summed, as ``Metrics`` series (only non-zero ones)."""
        q = self._q
        hits = served = 0
        statuses: dict[tuple[tuple[str, str], ...], float] = {}
        for r in range(self.rows):
            base = _HEADER + r * ROW_SLOTS
            hits += q[base + _HITS]
            served += q[base + _SERVED]
            for i in range(STATUS_MAX - STATUS_MIN + 1):
                n = q[base + _STATUS0 + i]
                if n:
                    key = (("status", str(STATUS_MIN + i)),)
                    statuses[key] = statuses.get(key, 0) + n
        out: Series = {"requests_total": statuses}
        if hits:
            out["hits_total"] = {(): float(hits)}
        if served:
            out["served_bytes_total"] = {(): float(served)}
        return out


class BoardRow:
    """One worker's counters; only that worker writes them."""

    def __init__(self, q: memoryview, base: int) -> None:
        self._q = q
        self._base = base

    def hit(self) -> None:
        self._q[self._base + _HITS] += 1

    def response(self, status: int, body_bytes: int) -> None:
        q, base = self._q, self._base
        q[base + _SERVED] += body_bytes
        if STATUS_MIN <= status <= STATUS_MAX:
            q[base + _STATUS0 + status - STATUS_MIN] += 1
