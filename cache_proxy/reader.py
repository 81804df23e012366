"""Read-only lookups for hit workers: is this file stored, and under which blob?

A worker answers from the store only what the primary has already stored and
aliased (``aliases`` rows under a resolved run); anything else (a miss, a
by-hash or pool path not yet aliased under this run, an unknown timestamp) goes
to the primary, which alone downloads, verifies and writes. What a worker
remembers in memory is dropped whenever the primary evicts blobs (the board's
generation changes), so it never names a blob that is gone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Final

from cache_proxy import timestamps
from cache_proxy.board import Board
from cache_proxy.config import Mode, ProxyConfig
from cache_proxy.index import AccessTimes, AsyncIndex, BlobRow, Index
from cache_proxy.routing import Kind, Target
from cache_proxy.store import BlobStore

HOT_ENTRIES: Final = 65536


class StoreReader:
    def __init__(self, config: ProxyConfig, board: Board) -> None:
        self.config = config
        self.board = board
        self.store = BlobStore(config.cache_dir)
        self.index = AsyncIndex(config.cache_dir / "index.sqlite")
        self.volatile = timestamps.Volatility(config.volatile_window)
        self._generation = board.generation
        self._hot: OrderedDict[str, BlobRow] = OrderedDict()
        self._runs: dict[tuple[str, str], str] = {}
        self.atimes = AccessTimes(self.index)

    async def open(self) -> None:
        await self.index.open()
        self.atimes.start()

    async def close(self) -> None:
        await self.atimes.stop()
        await self.index.close()

    def blob_path(self, sha256: str) -> Path:
        return self.store.path(sha256)

    def touch(self, sha256: str) -> None:
        self.atimes.touch(sha256)

    def current(self) -> bool:
        """False (once) if blobs were evicted since we last looked: then forget them."""
        generation = self.board.generation
        if generation == self._generation:
            return True
        self._generation = generation
        self._hot.clear()
        return False

    def _run_known(self, target: Target) -> str | None:
        if self.config.mode is Mode.RECORD:
            return target.ts
        return self._runs.get((target.archive, target.ts))

    def lookup_hot(self, target: Target) -> BlobRow | None:
        run = self._run_known(target)
        return self._hot.get(target.key(run)) if run is not None else None

    async def lookup(self, target: Target) -> BlobRow | None:
        """The blob stored for ``target`` under its resolved run, if the primary aliased it."""
        if target.kind is Kind.SHA1:
            return await self.index.call(Index.blob_by_sha1, target.path)
        now = time.time()
        run = self._run_known(target)
        if run is None:
            run = await self.index.call(Index.run_for, target.archive, target.ts, now)
            if run is None:
                return None
            if not self.volatile(target.ts):
                self._runs[(target.archive, target.ts)] = run
        key = target.key(run)
        row = self._hot.get(key)
        if row is not None:
            return row
        row = await self.index.call(Index.alias, key, now)
        if row is not None and not self.volatile(run):
            self._hot[key] = row
            if len(self._hot) > HOT_ENTRIES:
                self._hot.popitem(last=False)
        return row
