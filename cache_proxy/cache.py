"""The cache: from a ``Target`` to a stored blob, or to the flight that will store it.

``Cache`` puts the parts together and walks a request through them; each part
has one job:

- ``lookup.Lookup``: what we have (runs, aliases, by-hash, index hashes; hits);
- ``fetch.Fetcher``: one single-flight download per missing file, redirects learnt;
- ``commit.Committer``: a body verified, committed to the store, aliased;
- ``learning.IndexLearner``: expected digests from signed Release/Packages indexes;
- ``eviction.Evictor``: the size cap, pins, LRU eviction;
- ``pins.Pins``: builds' leases on the blobs they fetched;
- ``scrubber.Scrubber``: the slow background scrub;
- ``recorder``: record mode's frozen suites, through the seams ``recorder.Freezer``.

The order of a lookup (no upstream request unless all fail) is ``Lookup``'s:
the alias under the resolved run, the hash in a by-hash path, the hash the run's
indexes list; then, for an index or pool file, first what would verify it (its
suite's Release, the index that lists it), then one verified download.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from cache_proxy import recorder, routing
from cache_proxy.commit import Committer
from cache_proxy.config import Mode, ProxyConfig
from cache_proxy.errors import UserError
from cache_proxy.eviction import Evictor
from cache_proxy.fetch import Fetcher, Job
from cache_proxy.flight import Flight
from cache_proxy.index import AccessTimes, AsyncIndex, BlobRow, Index, IndexDamaged
from cache_proxy.learning import IndexLearner
from cache_proxy.lookup import Lookup
from cache_proxy.metrics import Metrics
from cache_proxy.routing import Kind, Target
from cache_proxy.safety import logsafe
from cache_proxy.scrub import scrub_store, set_aside
from cache_proxy.scrubber import Scrubber
from cache_proxy.store import BlobStore
from cache_proxy.tasks import Tasks
from cache_proxy.upstream import NotFound, Upstream
from cache_proxy.verify import Expect

log = logging.getLogger("cache_proxy.cache")


class Cache:
    """The primary's cache. ``on_evict`` is called whenever blobs left the store (the
    front's memory of small blobs and the hit workers forget them)."""

    def __init__(
        self, config: ProxyConfig, metrics: Metrics, on_evict: Callable[[], None] | None = None
    ) -> None:
        self.on_evict = on_evict
        self.config = config
        self.metrics = metrics
        self.store = BlobStore(config.cache_dir)
        self.index = AsyncIndex(config.cache_dir / "index.sqlite")
        self.upstream = Upstream(config, metrics)
        self.atimes = AccessTimes(self.index, metrics)
        self.tasks = Tasks()
        self.learner = IndexLearner(self.index, self.store, self.tasks)
        self.known = Lookup(config, metrics, self.index, self.learner, self.atimes)
        self.evictor = Evictor(
            config, metrics, self.index, self.store, self.atimes, self.forget, self._evicted
        )
        self.pins = self.evictor.pins  # builds' leases (the /pins door)
        self.committer = Committer(
            config, metrics, self.store, self.index, self.upstream, self.known, self.evictor
        )
        self.fetcher = Fetcher(
            config,
            metrics,
            self.index,
            self.upstream,
            self.known,
            self.learner,
            self.committer,
            self.tasks,
        )
        self.flights = self.fetcher.flights.active  # key -> download in flight
        self.scrubber = Scrubber(
            config.scrub_rate, metrics, self.store, self.evictor, self._blobs_gone
        )

    # ----------------------------------------------------------------- lifecycle
    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.open)
        rebuild = await self._open_index()
        on_disk = await loop.run_in_executor(None, lambda: dict(self.store.scan()))
        await self.index.call(Index.reconcile, on_disk, time.time())
        if rebuild:
            # Every blob re-hashed: SHA-1s come back (so /file/ redirects find them) and
            # a blob damaged along with the index goes. Aliases are learnt again.
            report = await self.index.call(lambda ix: scrub_store(self.store, ix))
            log.warning("index rebuilt from the blobs: %s", report.line())
            on_disk = await loop.run_in_executor(None, lambda: dict(self.store.scan()))
        self.evictor.size = await self.index.call(Index.total_size)
        self.metrics.set("cache_bytes", self.evictor.size)
        self.metrics.set("cache_blobs", len(on_disk))
        await self.upstream.start()
        self.atimes.start()
        if self.config.scrub_rate:
            self.tasks.spawn(self.scrubber.run())

    async def _open_index(self) -> bool:
        """Open the index; a damaged one is set aside and a new one made (True), or, if it
        cannot be moved, the start is refused with one line."""
        path = self.config.cache_dir / "index.sqlite"
        try:
            await self.index.open()
            return False
        except IndexDamaged as exc:
            damage = str(exc)
        loop = asyncio.get_running_loop()
        try:
            aside = await loop.run_in_executor(None, set_aside, path)
        except OSError as exc:
            raise UserError(
                f"the cache index {path} is damaged ({damage}) and cannot be set aside: "
                f"{exc.strerror or exc}",
                hint="move it away by hand (the blobs are kept) or give another --cache-dir",
            ) from None
        log.warning(
            "cache index damaged (%s): kept as %s, rebuilding it from the blobs", damage, aside
        )
        self.metrics.inc("background_errors_total", task="index")
        await self.index.open()
        return True

    async def close(self) -> None:
        """Abandon downloads in flight (their temp files are removed) and close the index."""
        await self.tasks.cancel_all()
        await self.evictor.settled()
        await self.atimes.stop()
        await self.upstream.close()
        await self.index.close()

    # ------------------------------------------------- serving (app.HitSource)
    @property
    def size(self) -> int:
        """Bytes in the store."""
        return self.evictor.size

    def blob_path(self, sha256: str) -> Path:
        """Where a stored blob's bytes are (read-only)."""
        return self.store.path(sha256)

    def volatile(self, ts: str) -> bool:
        return self.known.volatile(ts)

    def touch(self, sha256: str) -> None:
        self.known.touch(sha256)

    def lookup_hot(self, target: Target) -> BlobRow | None:
        """A blob remembered in memory for an immutable target, or None (then ``lookup``)."""
        return self.known.lookup_hot(target)

    def pin(self, sha256: str) -> asyncio.Future[None] | None:
        """See ``Evictor.pin``: kept from eviction until ``unpin``, or its deletion."""
        return self.evictor.pin(sha256)

    def unpin(self, sha256: str) -> None:
        self.evictor.unpin(sha256)

    def forget(self, sha256: str) -> None:
        """Drop what memory says about a blob that is gone (the index is the truth)."""
        self.known.hot.forget(sha256)
        self.fetcher.flights.recent.forget(sha256)

    def problems(self) -> list[str]:
        return self.atimes.problems() + self.evictor.problems() + self.scrubber.problems()

    def _evicted(self) -> None:
        """After an eviction pass: forget everything that may name an evicted blob."""
        self.known.hot.clear()
        self.fetcher.flights.recent.clear()
        self.learner.forget()
        self._blobs_gone()

    def _blobs_gone(self) -> None:
        if self.on_evict is not None:
            self.on_evict()

    # ------------------------------------------------ seams (recorder.Freezer)
    async def cached(self, target: Target, run: str) -> BlobRow | None:
        """The blob stored for ``target`` under ``run``, without asking upstream."""
        return await self.known.cached(target, run)

    def upstream_urls(self, target: Target, ts: str, path: str) -> list[tuple[str, str]]:
        """(upstream base, URL) of ``path`` under ``ts`` on each upstream, in order."""
        return self.fetcher.urls(target, ts, path)

    async def store_bytes(self, target: Target, data: bytes, mtime: float | None) -> BlobRow:
        """Store a small verified body and alias it under ``target`` (record-mode freezing)."""
        return await self.committer.store_bytes(target, data, mtime)

    async def note_index(self, target: Target, run: str, row: BlobRow) -> None:
        """If ``row`` is a Release/Packages/Sources of (archive, run), learn its hashes."""
        await self.learner.note(target, run, row)

    # ------------------------------------------------------------------- lookup
    async def lookup(self, target: Target) -> BlobRow | Flight:
        """A stored blob, or the flight (new or joined) that will produce it."""
        if target.kind is Kind.SHA1:
            return await self._lookup_sha1(target)
        known = self.known
        run = await known.run_for(target)
        if run is not None and (row := await known.hit(target, run)) is not None:
            return row
        if (
            self.config.mode is Mode.SNAPSHOT
            and target.kind is Kind.INDEX
            and (run is None or not await self.learner.listed(target, run))
        ):
            # Verify indexes against their Release: learn it first if nobody asked for it.
            await self._ensure_release(target)
            run = await known.run_for(target)
            if run is not None and (row := await known.hit(target, run)) is not None:
                return row
        if self.config.mode is Mode.RECORD and target.kind in (Kind.RELEASE, Kind.INDEX):
            suite = target.suite
            assert suite is not None and run is not None
            if target.kind is Kind.RELEASE or not await self._suite_frozen(target, run):
                # The suite's roots are frozen together, then every waiter looks again.
                return self.fetcher.flights.start(
                    f"freeze:{target.archive}/{run}/{suite}",
                    lambda f: self._freeze(f, target.archive, run, suite),
                    refetch=True,
                )
        job = await self.fetcher.job(target, run)
        if (
            target.kind is Kind.FILE
            and run is not None
            and job.expect.sha256 is None
            and await self._find_listing(target, run)
        ):
            job = await self.fetcher.job(target, run)
        return self.fetcher.fetch(job)

    async def _lookup_sha1(self, target: Target) -> BlobRow | Flight:
        """``/file/<sha1>``: any blob with that SHA-1, else snapshot's own /file/ URL."""
        row = await self.known.sha1_hit(target)
        if row is not None:
            return row
        if self.config.mode is Mode.RECORD:
            raise NotFound(f"/file/{target.path} is not stored, and a plain mirror has no /file/")
        return self.fetcher.fetch(Job(target, "", Expect(sha1=target.path), volatile=False))

    async def _find_listing(self, target: Target, run: str) -> bool:
        """A pool file asked for before its Packages/Sources: fetch the index listing it.

        Only indexes of suites whose Release this run already has are tried (the
        Release is what makes them trustworthy). False: the file is checked by the
        SHA-1 of a ``/file/`` redirect if upstream sends one, else by its length
        alone, and ``unlisted_total`` counts it.
        """
        listed = await self.learner.release_listing(target.archive, run)
        for path in routing.listing_candidates(target.path, listed):
            index_target = Target(target.archive, run, path)
            try:
                found = await self.lookup(index_target)
                if isinstance(found, Flight):
                    await asyncio.shield(found.done)
            except Exception as exc:
                log.info("could not fetch %s to check %s: %s", path, logsafe(target.path), exc)
                continue
            await self.learner.parsed(target.archive, run)
            if await self.learner.listed(target, run):
                return True
        self.metrics.inc("unlisted_total")
        log.info(
            "%s/%s/%s is in no known index of its run", target.archive, run, logsafe(target.path)
        )
        return False

    async def _ensure_release(self, target: Target) -> None:
        """Fetch (or find) the suite's InRelease, else Release, through the cache."""
        for name in ("InRelease", "Release"):
            root = Target(target.archive, target.ts, f"dists/{target.suite}/{name}")
            try:
                found = await self.lookup(root)
                if isinstance(found, Flight):
                    await asyncio.shield(found.done)
                return
            except Exception as exc:  # no signed root: indexes get length checks only
                log.info("no %s for %s: %s", name, logsafe(target.path), exc)

    # ------------------------------------------------------------ record mode
    async def _suite_frozen(self, target: Target, run: str) -> bool:
        for name in ("InRelease", "Release"):
            t = Target(target.archive, run, f"dists/{target.suite}/{name}")
            row = await self.known.cached(t, run)
            if row is not None:
                await self.learner.note(t, run, row)
                return True
        return False

    async def _freeze(self, flight: Flight, archive: str, run: str, suite: str) -> None:
        await recorder.freeze_suite(self, archive, run, suite)
        flight.finish(None, from_attempt=False)
