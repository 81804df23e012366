"""Fetch: one single-flight download per missing file, learning from upstream on the way.

``Flights`` is the single-flight table: the first lookup of a key starts a flight
on its own task (no client owns it, so none can cancel it), the others join it.
``Fetcher`` plans a download (``Job``: what is expected of the file, from its
by-hash path and its run's indexes), asks the upstreams in order, learns from
snapshot's redirects (a timestamp's run from ``/archive/`` ones, the SHA-1 from
``/file/`` ones, which may make the download moot) and hands the body to the
``Committer``, which verifies and stores it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import aiohttp
from yarl import URL

from cache_proxy import routing, timestamps
from cache_proxy.commit import Committer
from cache_proxy.config import Mode, ProxyConfig
from cache_proxy.flight import Flight
from cache_proxy.index import AsyncIndex, BlobRow, Index
from cache_proxy.learning import IndexLearner
from cache_proxy.lookup import Lookup, RowMemo
from cache_proxy.metrics import Metrics
from cache_proxy.routing import Kind, Target
from cache_proxy.tasks import Tasks
from cache_proxy.upstream import NotFound, Upstream, UpstreamError
from cache_proxy.verify import Expect

RECENT_ENTRIES: Final = 4096
_ARCHIVE_REDIRECT: Final = "/archive/"


@dataclass
class Job:
    """One file to fetch and what is known about it; redirects add to it."""

    target: Target
    run: str | None
    expect: Expect
    volatile: bool
    keys: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        """The single-flight key: the file under its run (or as asked, if unresolved)."""
        return self.target.key(self.run)


class Flights:
    """The single-flight table: at most one flight per key, shared by every waiter.

    ``active`` maps a key to its flight while it runs; ``recent`` keeps the results
    of flights that ended, for a lookup that was awaiting the index meanwhile.
    """

    def __init__(self, metrics: Metrics, tasks: Tasks) -> None:
        self.metrics = metrics
        self.tasks = tasks
        self.active: dict[str, Flight] = {}
        self.recent = RowMemo(RECENT_ENTRIES)

    def start(
        self, key: str, body: Callable[[Flight], Awaitable[None]], refetch: bool = False
    ) -> Flight | BlobRow:
        """Join the flight for ``key``, or answer its fresh result, or start ``body``."""
        flight = self.active.get(key)
        if flight is not None:
            flight.waiters += 1
            self.metrics.inc("coalesced_total")
            return flight
        recent = self.recent.get(key)
        if recent is not None:
            # A flight for this key ended while our lookup was awaiting the index.
            self.metrics.inc("hits_total")
            return recent
        self.metrics.inc("misses_total")
        flight = Flight(key, refetch=refetch)
        flight.waiters = 1
        self.active[key] = flight
        self.tasks.spawn(self._run(flight, body))
        return flight

    async def _run(self, flight: Flight, body: Callable[[Flight], Awaitable[None]]) -> None:
        self.metrics.set("inflight_downloads", len(self.active))
        try:
            await body(flight)
            done = flight.done
            row = done.result() if done.done() and done.exception() is None else None
            if row is not None:
                self.recent.put(flight.key, row)
        except asyncio.CancelledError:
            flight.fail(UpstreamError("proxy shutting down", 503))
            raise
        except Exception as exc:  # every failure reaches the waiting clients
            flight.fail(exc)
        finally:
            self.active.pop(flight.key, None)
            self.metrics.set("inflight_downloads", len(self.active))


class Fetcher:
    def __init__(
        self,
        config: ProxyConfig,
        metrics: Metrics,
        index: AsyncIndex,
        upstream: Upstream,
        lookup: Lookup,
        learner: IndexLearner,
        committer: Committer,
        tasks: Tasks,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.index = index
        self.upstream = upstream
        self.lookup = lookup
        self.learner = learner
        self.committer = committer
        self.flights = Flights(metrics, tasks)

    async def job(self, target: Target, run: str | None) -> Job:
        """What a download of ``target`` under ``run`` must be, as far as is known now."""
        expect = Expect(by_hash=target.by_hash)
        if run is not None and target.kind in (Kind.INDEX, Kind.FILE):
            exp = await self.learner.expectation(target.archive, run, target.path)
            if exp is not None:
                expect = expect.merge(size=exp[0], sha256=exp[1])
        return Job(target, run, expect, self.lookup.volatile(target.ts))

    def fetch(self, job: Job) -> Flight | BlobRow:
        """The flight (new or joined) that downloads ``job``, or its result just in."""
        return self.flights.start(job.key, lambda f: self._download(f, job))

    def urls(self, target: Target, ts: str, path: str) -> list[tuple[str, str]]:
        """(upstream base, URL) of ``path`` under ``ts`` on each upstream, in the order
        to ask them; a ``/file/<sha1>`` only on snapshot-like upstreams."""
        mode = self.config.mode
        if target.kind is Kind.SHA1:
            found = [(b, routing.file_url(b, target.path)) for b in self.upstream.mirror_order()]
            urls = [(b, u) for b, u in found if u is not None]
            if not urls:
                raise NotFound("no upstream is laid out like snapshot.debian.org/archive/")
            return urls
        return [
            (base, mode.upstream_url(base, target.archive, ts, path))
            for base in self.upstream.mirror_order()
        ]

    async def _download(self, flight: Flight, job: Job) -> None:
        t = job.target
        path = t.quoted_path
        if self.config.mode is Mode.RECORD and job.expect.sha256 and t.kind is Kind.INDEX:
            # Freeze consistently: fetch the exact bytes the frozen Release lists.
            path = f"{path.rsplit('/', 1)[0]}/by-hash/SHA256/{job.expect.sha256}"
        urls = self.urls(t, job.run or t.ts, path)

        async def on_redirect(url: URL) -> BlobRow | None:
            return await self._redirected(job, url)

        async def on_body(resp: aiohttp.ClientResponse) -> BlobRow:
            return await self.committer.receive(flight, job.target.path, job.expect, resp)

        try:
            row = await self.upstream.fetch(urls, on_body, on_redirect)
        except Exception:
            if job.expect.sha256 and path != t.quoted_path:  # mirror without by-hash
                urls = self.urls(t, job.run or t.ts, t.quoted_path)
                row = await self.upstream.fetch(urls, on_body, on_redirect)
            else:
                raise
        run = job.run or t.ts
        if job.run is None and self.config.mode is Mode.SNAPSHOT:
            await self.lookup.learn_run(t.archive, t.ts, run)
        await self.committer.alias({job.target.key(run), *job.keys}, row, run)
        await self.learner.note(t.with_ts(run), run, row)
        flight.finish(row, from_attempt=True)

    async def _redirected(self, job: Job, url: URL) -> BlobRow | None:
        """Learn from an upstream redirect; return a stored blob if it makes the download moot."""
        path = url.path
        sha1 = routing.FILE_SHA1.match(path)
        if sha1:
            if job.run is None and self.config.mode is Mode.SNAPSHOT:
                # Served under its own spelling, without a 301: the timestamp is a run.
                job.run = job.target.ts
                await self.lookup.learn_run(job.target.archive, job.target.ts, job.target.ts)
            job.expect = job.expect.merge(sha1=sha1["sha1"])
            row = await self.index.call(Index.blob_by_sha1, sha1["sha1"])
            return self._shortcut(job, row)
        if path.startswith(_ARCHIVE_REDIRECT):
            parts = path[len(_ARCHIVE_REDIRECT) :].split("/", 2)
            if len(parts) == 3 and parts[0] == job.target.archive:
                try:
                    run = timestamps.canonical(parts[1])
                except timestamps.BadTimestamp:
                    return None
                await self.lookup.learn_run(job.target.archive, job.target.ts, run)
                await self.lookup.learn_run(job.target.archive, run, run)  # a run names itself
                job.run = run
                row = await self.lookup.cached(job.target, run)
                if row is None:
                    fresh = await self.job(job.target, run)
                    job.expect = job.expect.merge(
                        size=fresh.expect.size, sha256=fresh.expect.sha256
                    )
                return self._shortcut(job, row)
        return None

    def _shortcut(self, job: Job, row: BlobRow | None) -> BlobRow | None:
        """A stored blob the redirect named, if it is what the job expects."""
        if row is None:
            return None
        e = job.expect
        if (e.sha256 and e.sha256 != row.sha256) or (e.size is not None and e.size != row.size):
            return None
        self.metrics.inc("dedup_total")
        return row
