"""Eviction: the store's size under its cap, and the blobs that must not go meanwhile.

The store's size is kept here (``added`` after each new blob, ``drop`` for one
removed for another reason); above ``max_size`` the least recently used blobs go
(access times from ``AccessTimes``), one background pass at a time. Blobs in
flight are still temp files, so they cannot be evicted; a blob being opened for a
client is pinned (``pin``/``unpin``), and a blob being deleted cannot be pinned:
``pin`` returns its deletion to await, and the caller looks the file up again.

A failing pass (a sqlite or disk error) is reported in ``problems`` and the
metrics, never fatal: the next commit tries again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable

from cache_proxy.config import ProxyConfig
from cache_proxy.index import AccessTimes, AsyncIndex, Index
from cache_proxy.metrics import Metrics
from cache_proxy.pins import Pins
from cache_proxy.store import BlobStore

log = logging.getLogger("cache_proxy.eviction")

VICTIMS_PER_QUERY = 64


class Evictor:
    """Size accounting, pins and LRU eviction of the primary's store.

    ``on_remove(sha256)`` is called as a blob starts being deleted (memory forgets
    it); ``on_evicted()`` after each eviction pass (memory forgets everything that
    may name an evicted blob, hit workers are told).
    """

    def __init__(
        self,
        config: ProxyConfig,
        metrics: Metrics,
        index: AsyncIndex,
        store: BlobStore,
        atimes: AccessTimes,
        on_remove: Callable[[str], None],
        on_evicted: Callable[[], None],
        pins: Pins | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.index = index
        self.store = store
        self.atimes = atimes
        self.on_remove = on_remove
        self.on_evicted = on_evicted
        self.pins = pins if pins is not None else Pins(config.max_size)
        self.size = 0
        self.serving: Counter[str] = Counter()  # blobs being opened for a client: kept
        self._deleting: dict[str, asyncio.Future[None]] = {}  # blobs being removed
        self._evicting: asyncio.Task[None] | None = None
        self._error: str | None = None

    # -------------------------------------------------------------------- pins
    def pin(self, sha256: str) -> asyncio.Future[None] | None:
        """Keep ``sha256`` from eviction while it is served; unpin when its file is open.

        If it is being deleted right now, nothing is pinned and the deletion is
        returned to await: the caller then looks the file up again.
        """
        deleting = self._deleting.get(sha256)
        if deleting is not None:
            return deleting
        self.serving[sha256] += 1
        return None

    def unpin(self, sha256: str) -> None:
        self.serving[sha256] -= 1
        if self.serving[sha256] <= 0:
            del self.serving[sha256]

    def busy(self, sha256: str) -> bool:
        """Pinned by a client, or being deleted: not to be removed now."""
        return sha256 in self.serving or sha256 in self._deleting

    # ------------------------------------------------------------------- size
    def added(self, size: int) -> None:
        """A new blob of ``size`` bytes is committed; evict in the background if over cap."""
        self.size += size
        self.metrics.set("cache_bytes", self.size)
        self.metrics.inc("cache_blobs")
        cap = self.config.max_size
        if cap is None or self.size <= cap:
            return
        if self._evicting is None or self._evicting.done():
            self._evicting = asyncio.create_task(self._evict_reporting(cap))

    async def remove(self, sha256: str) -> None:
        """Delete a blob nobody has pinned; from the first line on nobody can pin it (they
        await its deletion and look the file up again)."""
        loop = asyncio.get_running_loop()
        self._deleting[sha256] = loop.create_future()
        self.on_remove(sha256)
        try:
            await self.index.call(Index.delete_blob, sha256)
            await loop.run_in_executor(None, self.store.remove, sha256)
        finally:
            self._deleting.pop(sha256).set_result(None)

    async def drop(self, sha256: str, size: int) -> None:
        """Remove one blob for another reason than its age (the scrub found it damaged)."""
        await self.remove(sha256)
        self.size -= size
        self.metrics.set("cache_bytes", self.size)
        self.metrics.inc("cache_blobs", -1)

    # --------------------------------------------------------------- eviction
    def problems(self) -> list[str]:
        return [f"eviction: {self._error}"] if self._error else []

    async def _evict_reporting(self, cap: int) -> None:
        """``_evict``, its failures reported, never fatal: the next commit tries again."""
        try:
            await self._evict(cap)
        except (sqlite3.Error, OSError) as exc:
            if self._error is None:
                log.warning("eviction failed: %s: %s", type(exc).__name__, exc)
            self._error = f"{type(exc).__name__}: {exc}"
            self.metrics.inc("background_errors_total", task="eviction")
            self.metrics.set("background_ok", 0, task="eviction")
        else:
            self._error = None
            self.metrics.set("background_ok", 1, task="eviction")

    async def _evict(self, cap: int) -> None:
        """Drop least recently used blobs until under the cap (in-flight ones are in tmp/)."""
        try:
            await self.atimes.flush()
        except (sqlite3.Error, OSError) as exc:  # LRU order from the last good write
            log.info("eviction: access times not written: %s", exc)
        while self.size > cap:
            keep = sorted(self.serving.keys() | self.pins.kept())
            victims = await self.index.call(Index.oldest, VICTIMS_PER_QUERY, keep)
            if not victims:
                break
            for sha, size in victims:
                if self.size <= cap:
                    break
                if sha in self.serving or self.pins.held(sha):  # pinned while we awaited
                    self.metrics.inc("evict_skipped_total")
                    continue
                await self.remove(sha)
                self.size -= size
                self.metrics.inc("evictions_total")
                self.metrics.inc("evicted_bytes_total", size)
                self.metrics.inc("cache_blobs", -1)
        self.on_evicted()
        self.metrics.set("cache_bytes", self.size)

    async def settled(self) -> None:
        """Return once no eviction pass is under way (at close: its blobs are not left
        half-removed; in tests: the store is under its cap again)."""
        if self._evicting:
            await asyncio.gather(self._evicting, return_exceptions=True)
