"""Lookup: what the cache has for a ``Target``, found without any upstream request.

Lookup order:
1. the alias of the file under its resolved snapshot run;
2. by-hash paths: the hash in the path names the blob;
3. the hash the run's own Release/Packages/Sources lists for the path.

A blob found by 2 or 3 is aliased under the file's key, so the next request is a
step-1 hit. What is immutable (a past run) is also remembered in memory, so a warm
hit needs no index query at all (``lookup_hot``). Memory is only a shortcut: the
index is the truth, and ``forget``/``clear`` drop what may name a blob that is gone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Final

from cache_proxy import timestamps
from cache_proxy.config import Mode, ProxyConfig
from cache_proxy.index import AccessTimes, AsyncIndex, BlobRow, Index
from cache_proxy.learning import IndexLearner
from cache_proxy.metrics import Metrics
from cache_proxy.routing import Kind, Target

HOT_ENTRIES: Final = 65536


class RowMemo:
    """A bounded LRU of key → BlobRow: recently used entries stay, the oldest go first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._rows: OrderedDict[str, BlobRow] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> BlobRow | None:
        return self._rows.get(key)

    def put(self, key: str, row: BlobRow) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        if len(self._rows) > self.limit:
            self._rows.popitem(last=False)

    def forget(self, sha256: str) -> None:
        """Drop every entry naming the blob ``sha256``."""
        for key in [k for k, row in self._rows.items() if row.sha256 == sha256]:
            del self._rows[key]

    def clear(self) -> None:
        self._rows.clear()


class Runs:
    """Which snapshot run each (archive, timestamp) resolves to, as far as memory knows.

    A resolution under a volatile timestamp expires (``expires``, a wall-clock time);
    one under a past timestamp never does, and only those serve ``forever``.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], tuple[str, float | None]] = {}

    def get(self, archive: str, ts: str, now: float) -> str | None:
        hit = self._known.get((archive, ts))
        if hit and (hit[1] is None or hit[1] > now):
            return hit[0]
        return None

    def forever(self, archive: str, ts: str) -> str | None:
        hit = self._known.get((archive, ts))
        return hit[0] if hit and hit[1] is None else None

    def set(self, archive: str, ts: str, run: str, expires: float | None) -> None:
        self._known[(archive, ts)] = (run, expires)


class Lookup:
    """What we have, and answering hits (counted, touched for LRU, their indexes learnt)."""

    def __init__(
        self,
        config: ProxyConfig,
        metrics: Metrics,
        index: AsyncIndex,
        learner: IndexLearner,
        atimes: AccessTimes,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.index = index
        self.learner = learner
        self.atimes = atimes
        self.hot = RowMemo(HOT_ENTRIES)
        self.runs = Runs()
        self._volatility = timestamps.Volatility(config.volatile_window)

    # ---------------------------------------------------------------- timestamps
    def volatile(self, ts: str) -> bool:
        """Is ``ts`` so recent that what it names may still change?"""
        return self._volatility(ts)

    def expires(self, ts: str) -> float | None:
        """When an alias or run learnt under ``ts`` must be asked again (None: never)."""
        return time.time() + self.config.volatile_ttl if self.volatile(ts) else None

    async def run_for(self, target: Target) -> str | None:
        """The snapshot run ``target.ts`` resolves to, if known (always itself when recording)."""
        if self.config.mode is Mode.RECORD:
            return target.ts
        now = time.time()
        run = self.runs.get(target.archive, target.ts, now)
        if run is not None:
            return run
        run = await self.index.call(Index.run_for, target.archive, target.ts, now)
        if run is not None:
            self.runs.set(target.archive, target.ts, run, None)
        return run

    async def learn_run(self, archive: str, ts: str, run: str) -> None:
        """Upstream said ``ts`` is served by ``run`` (a redirect, or ``ts`` itself)."""
        expires = self.expires(ts)
        self.runs.set(archive, ts, run, expires)
        await self.index.call(Index.set_run, archive, ts, run, expires)

    # ---------------------------------------------------------------------- hits
    def lookup_hot(self, target: Target) -> BlobRow | None:
        """A blob remembered in memory for an immutable target, or None (then ``cached``)."""
        if self.config.mode is Mode.RECORD:
            run: str | None = target.ts
        else:
            run = self.runs.forever(target.archive, target.ts)
        return self.hot.get(target.key(run)) if run is not None else None

    async def cached(self, target: Target, run: str) -> BlobRow | None:
        """Steps 1-3 of the lookup order, without any upstream request."""
        key = target.key(run)
        row = self.hot.get(key)
        if row is not None:
            return row
        now = time.time()
        row = await self.index.call(Index.alias, key, now)
        if row is None:
            sha = await self._named_blob(target, run)
            if sha is not None:
                row = await self.index.call(Index.blob, sha)
                if row is not None:
                    expires = self.expires(run)
                    await self.index.call(Index.add_blob, row, [key], expires, now)
        if row is not None and not self.volatile(run):
            self.hot.put(key, row)
        return row

    async def _named_blob(self, target: Target, run: str) -> str | None:
        """Steps 2 and 3: the SHA-256 the path itself, or the run's indexes, name."""
        bh = target.by_hash
        if bh and bh[0] == "SHA256":
            return bh[1]
        if bh and bh[0] == "SHA1":
            found = await self.index.call(Index.blob_by_sha1, bh[1])
            return found.sha256 if found else None
        if target.kind is Kind.FILE:
            await self.learner.parsed(target.archive, run)
        exp = await self.learner.expectation(target.archive, run, target.path)
        return exp[1] if exp else None

    async def hit(self, target: Target, run: str) -> BlobRow | None:
        """``cached``, and if found, answered as a hit: counted, touched, its index learnt."""
        row = await self.cached(target, run)
        if row is not None:
            self.touch(row.sha256)
            await self.learner.note(target, run, row)
            self.metrics.inc("hits_total")
        return row

    async def sha1_hit(self, target: Target) -> BlobRow | None:
        """``/file/<sha1>``: any stored blob with that SHA-1, answered as a hit."""
        key = target.key()
        row = self.hot.get(key) or await self.index.call(Index.blob_by_sha1, target.path)
        if row is not None:
            self.hot.put(key, row)
            self.touch(row.sha256)
            self.metrics.inc("hits_total")
        return row

    def touch(self, sha256: str) -> None:
        """Note a use of the blob (eviction order; written to the index in batches)."""
        self.atimes.touch(sha256)
