"""The sqlite index: what each URL, SHA-1 and by-hash name maps to, and what to expect.

All sqlite work happens on one dedicated thread (``AsyncIndex``), never on the
event loop. Tables:

- ``blobs``: one row per stored blob (size, SHA-1, Last-Modified, type, last access).
- ``aliases``: ``url:<archive>/<run>/<path>`` -> blob; ``expires`` NULL = forever.
- ``tsmap``: (archive, requested timestamp) -> snapshot run it resolves to.
- ``entries``/``run_indexes``: hashes listed by parsed Release/Packages/Sources blobs,
  and which of those indexes belong to an (archive, run); this is how a pool path
  under any timestamp maps to a SHA-256 without asking upstream.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from cache_proxy.debindex import Entries
from cache_proxy.metrics import Metrics

log = logging.getLogger("cache_proxy.index")

_SCHEMA: Final = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA journal_size_limit=1048576;
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, sha1 TEXT NOT NULL,
    mtime REAL NOT NULL, ctype TEXT NOT NULL, atime REAL NOT NULL);
CREATE INDEX IF NOT EXISTS blobs_sha1 ON blobs(sha1);
CREATE INDEX IF NOT EXISTS blobs_atime ON blobs(atime);
CREATE TABLE IF NOT EXISTS aliases (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, expires REAL);
CREATE TABLE IF NOT EXISTS tsmap (
    archive TEXT NOT NULL, ts TEXT NOT NULL, run TEXT NOT NULL, expires REAL,
    PRIMARY KEY (archive, ts));
CREATE TABLE IF NOT EXISTS indexes (sha256 TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    index_sha256 TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (index_sha256, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_indexes (
    archive TEXT NOT NULL, run TEXT NOT NULL, index_sha256 TEXT NOT NULL,
    PRIMARY KEY (archive, run, index_sha256)) WITHOUT ROWID;
"""

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class BlobRow:
    sha256: str
    size: int
    sha1: str
    mtime: float  # upstream Last-Modified (epoch seconds)
    ctype: str


class IndexDamaged(Exception):
    """The sqlite file is not a database, or fails sqlite's own integrity check."""


class Index:
    """Synchronous index; use from one thread only (see ``AsyncIndex``)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.executescript(_SCHEMA)

    @classmethod
    def open_checked(cls, path: Path) -> Index:
        """Open, create the schema, and run ``PRAGMA quick_check`` (O(pages), no index
        comparison); raise ``IndexDamaged`` with sqlite's words if any of it fails."""
        try:
            index = cls(path)
        except sqlite3.DatabaseError as exc:
            raise IndexDamaged(str(exc)) from None
        try:
            verdict = [str(r[0]) for r in index.db.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            index.close()
            raise IndexDamaged(str(exc)) from None
        if verdict != ["ok"]:
            index.close()
            raise IndexDamaged("; ".join(verdict[:3]))
        return index

    def adopt(self, sha256: str, size: int, sha1: str, now: float) -> None:
        """A verified blob: give it a row if it has none, and its SHA-1 if that was lost."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, 0, 'application/octet-stream', ?)",
                (sha256, size, sha1, now),
            )
            self.db.execute("UPDATE blobs SET sha1=? WHERE sha256=? AND sha1=''", (sha1, sha256))

    def close(self) -> None:
        self.db.close()

    def _row(self, r: tuple[str, int, str, float, str] | None) -> BlobRow | None:
        return BlobRow(*r) if r else None

    def blob(self, sha256: str) -> BlobRow | None:
        return self._row(
            self.db.execute(
                "SELECT sha256, size, sha1, mtime, ctype FROM blobs WHERE sha256=?", (sha256,)
            ).fetchone()
        )

    def blob_by_sha1(self, sha1: str) -> BlobRow | None:
        return self._row(
            self.db.execute(
                "SELECT sha256, size, sha1, mtime, ctype FROM blobs WHERE sha1=? LIMIT 1", (sha1,)
            ).fetchone()
        )

    def alias(self, key: str, now: float) -> BlobRow | None:
        return self._row(
            self.db.execute(
                "SELECT b.sha256, b.size, b.sha1, b.mtime, b.ctype FROM aliases a "
                "JOIN blobs b ON b.sha256 = a.sha256 "
                "WHERE a.key=? AND (a.expires IS NULL OR a.expires > ?)",
                (key, now),
            ).fetchone()
        )

    def add_blob(
        self, row: BlobRow, keys: Iterable[str], expires: float | None, now: float
    ) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?, ?)",
                (row.sha256, row.size, row.sha1, row.mtime, row.ctype, now),
            )
            for key in keys:
                # First verified answer wins: a frozen or immutable alias never moves.
                self.db.execute(
                    "INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "sha256=excluded.sha256, expires=excluded.expires "
                    "WHERE aliases.expires IS NOT NULL",
                    (key, row.sha256, expires),
                )

    def run_for(self, archive: str, ts: str, now: float) -> str | None:
        r = self.db.execute(
            "SELECT run FROM tsmap WHERE archive=? AND ts=? AND (expires IS NULL OR expires > ?)",
            (archive, ts, now),
        ).fetchone()
        return str(r[0]) if r else None

    def set_run(self, archive: str, ts: str, run: str, expires: float | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tsmap VALUES (?, ?, ?, ?)", (archive, ts, run, expires)
        )

    def expectation(self, archive: str, run: str, path: str) -> tuple[int, str] | None:
        r = self.db.execute(
            "SELECT e.size, e.sha256 FROM run_indexes r JOIN entries e "
            "ON e.index_sha256 = r.index_sha256 "
            "WHERE r.archive=? AND r.run=? AND e.path=? LIMIT 1",
            (archive, run, path),
        ).fetchone()
        return (int(r[0]), str(r[1])) if r else None

    def release_listing(self, archive: str, run: str) -> list[str]:
        """Every path the Release files linked to (archive, run) list."""
        return [
            str(r[0])
            for r in self.db.execute(
                "SELECT e.path FROM run_indexes r JOIN indexes i ON i.sha256 = r.index_sha256 "
                "JOIN entries e ON e.index_sha256 = r.index_sha256 "
                "WHERE r.archive=? AND r.run=? AND i.kind='Release' ORDER BY e.path",
                (archive, run),
            )
        ]

    def entry_path(self, archive: str, run: str, sha256: str) -> str | None:
        """The logical path (e.g. .../Packages.xz) of a hash listed for a run."""
        r = self.db.execute(
            "SELECT e.path FROM run_indexes r JOIN entries e ON e.index_sha256 = r.index_sha256 "
            "WHERE r.archive=? AND r.run=? AND e.sha256=? LIMIT 1",
            (archive, run, sha256),
        ).fetchone()
        return str(r[0]) if r else None

    def has_index(self, sha256: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM indexes WHERE sha256=?", (sha256,)).fetchone()
            is not None
        )

    def add_index(self, sha256: str, kind: str, entries: Entries) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR IGNORE INTO indexes VALUES (?, ?)", (sha256, kind))
            self.db.executemany(
                "INSERT OR IGNORE INTO entries VALUES (?, ?, ?, ?)",
                ((sha256, p, size, h) for p, (size, h) in entries.items()),
            )

    def link_run_index(self, archive: str, run: str, index_sha256: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO run_indexes VALUES (?, ?, ?)", (archive, run, index_sha256)
        )

    def touch(self, atimes: dict[str, float]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "UPDATE blobs SET atime=? WHERE sha256=?", ((t, s) for s, t in atimes.items())
            )

    def total_size(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0])

    def oldest(self, limit: int, keep: Iterable[str] = ()) -> list[tuple[str, int]]:
        """The ``limit`` least recently used blobs, those in ``keep`` left out."""
        kept = set(keep)
        rows = self.db.execute(
            "SELECT sha256, size FROM blobs ORDER BY atime LIMIT ?", (limit + len(kept),)
        )
        return [(str(s), int(n)) for s, n in rows if s not in kept][:limit]

    def delete_blob(self, sha256: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM blobs WHERE sha256=?", (sha256,))
            self.db.execute("DELETE FROM aliases WHERE sha256=?", (sha256,))

    def reconcile(self, on_disk: dict[str, int], now: float) -> None:
        """Make rows match files: forget rows without a file, adopt files without a row."""
        known = {str(r[0]) for r in self.db.execute("SELECT sha256 FROM blobs")}
        with self.db:
            self.db.execute("BEGIN")
            for sha in known - on_disk.keys():
                self.db.execute("DELETE FROM blobs WHERE sha256=?", (sha,))
                self.db.execute("DELETE FROM aliases WHERE sha256=?", (sha,))
        for sha in on_disk.keys() - known:
            # A crash between rename and index insert: the blob is complete and
            # verified (it is named by its hash), so keep it. SHA-1 is filled lazily.
            self.db.execute(
                "INSERT OR IGNORE INTO blobs VALUES (?, ?, '', 0, 'application/octet-stream', ?)",
                (sha, on_disk[sha], now),
            )


class AsyncIndex:
    """Runs every ``Index`` call on one dedicated thread."""

    def __init__(self, path: Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")
        self._path = path
        self._index: Index | None = None

    async def open(self) -> None:
        self._index = await self._run_raw(Index.open_checked, self._path)

    async def _run_raw(self, fn: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kw))

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """``await idx.call(Index.alias, key, now)``."""
        assert self._index is not None
        index = self._index
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(index, *args))

    async def close(self) -> None:
        if self._index is not None:
            await self._run_raw(self._index.close)
        self._pool.shutdown(wait=True)


class AccessTimes:
    """Last-access times batched in memory and written to the index every few seconds.

    Every process that answers hits keeps one, so eviction stays least-recently-used
    without an index write per request.
    """

    FLUSH_SECONDS: Final = 5.0
    MAX_PENDING: Final = 1 << 20  # while the index refuses writes, keep at most this many
    TASK: Final = "access_times"

    def __init__(self, index: AsyncIndex, metrics: Metrics | None = None) -> None:
        self.index = index
        self.metrics = metrics
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = None  # the last failure, until a write succeeds again
        self.flush_seconds = self.FLUSH_SECONDS

    def touch(self, sha256: str) -> None:
        self._pending[sha256] = time.time()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())
        self._report(None)

    def problems(self) -> list[str]:
        return [f"access-time writer: {self.error}"] if self.error else []

    def _report(self, error: str | None) -> None:
        if error is not None and self.error is None:
            log.warning("access-time writer: %s (LRU order is kept in memory meanwhile)", error)
        elif error is None and self.error is not None:
            log.warning("access-time writer: writing again")
        self.error = error
        if self.metrics is not None:
            self.metrics.set("background_ok", 0 if error else 1, task=self.TASK)
            if error:
                self.metrics.inc("background_errors_total", task=self.TASK)

    async def flush(self) -> None:
        """Write pending access times; on a sqlite error (disk full, locked, damaged) keep
        them for the next round and raise."""
        if self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self.index.call(Index.touch, batch)
            except BaseException:
                for sha, t in batch.items():  # newer touches meanwhile win
                    self._pending.setdefault(sha, t)
                if len(self._pending) > self.MAX_PENDING:
                    self._pending.clear()  # bounded memory; LRU order is only a hint
                raise

    async def _loop(self) -> None:
        """Survives every error but cancellation: a full disk must not freeze LRU order."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except (sqlite3.Error, OSError) as exc:
                self._report(f"{type(exc).__name__}: {exc}")
            else:
                if self.error is not None:
                    self._report(None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except (sqlite3.Error, OSError) as exc:
            log.warning("access-time writer: last batch lost: %s", exc)
