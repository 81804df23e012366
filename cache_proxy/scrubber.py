"""The slow background scrub (``--scrub-rate``): every stored blob re-hashed, again daily.

A blob that no longer hashes to its name is dropped as eviction would drop it
(``Evictor.drop``), never one being served or deleted; a pass that fails on a disk
or sqlite error is reported (``problems``, metrics) and tried again a minute later.
The one-shot pass over the whole store (``reprobase proxy scrub``, the index
rebuild) is ``scrub.scrub_store``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Final

from cache_proxy.eviction import Evictor
from cache_proxy.metrics import Metrics
from cache_proxy.scrub import check_blob
from cache_proxy.store import BlobStore

log = logging.getLogger("cache_proxy.scrubber")

SCRUB_PAUSE: Final = 24 * 3600.0  # between two background scrub passes
SCRUB_RETRY: Final = 60.0  # after a pass that failed (disk or sqlite error)


class Scrubber:
    """``on_dropped()`` is called after a damaged blob is gone (hit workers forget it)."""

    def __init__(
        self,
        rate: float,
        metrics: Metrics,
        store: BlobStore,
        evictor: Evictor,
        on_dropped: Callable[[], None],
    ) -> None:
        self.rate = rate
        self.metrics = metrics
        self.store = store
        self.evictor = evictor
        self.on_dropped = on_dropped
        self._error: str | None = None

    def problems(self) -> list[str]:
        return [f"background scrub: {self._error}"] if self._error else []

    async def run(self) -> None:
        """Scrub forever at ``rate`` bytes/s (cancel the task to stop)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                blobs = await loop.run_in_executor(None, lambda: list(self.store.scan()))
                for sha, _size in blobs:
                    await self.scrub_one(sha)
                self.metrics.set("background_ok", 1, task="scrub")
                self._error = None
            except (OSError, sqlite3.Error) as exc:
                log.warning("background scrub: %s: %s", type(exc).__name__, exc)
                self._error = f"{type(exc).__name__}: {exc}"
                self.metrics.inc("background_errors_total", task="scrub")
                self.metrics.set("background_ok", 0, task="scrub")
            await asyncio.sleep(SCRUB_PAUSE if self._error is None else SCRUB_RETRY)

    async def scrub_one(self, sha: str) -> None:
        """Re-hash one blob, drop it if damaged, then sleep so as to keep to the rate."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            got = await loop.run_in_executor(None, check_blob, self.store.path(sha), sha)
        except FileNotFoundError:
            return  # evicted meanwhile
        self.metrics.inc("scrubbed_blobs_total")
        if not got.ok and not self.evictor.busy(sha):
            log.warning("background scrub: blob %s does not hash to its name: dropped", sha)
            await self.evictor.drop(sha, got.size)
            self.metrics.inc("scrub_dropped_total")
            self.on_dropped()  # memory and hit workers forget it
        await asyncio.sleep(max(0.0, got.size / self.rate - (loop.time() - started)))
