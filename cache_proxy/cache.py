"""The cache: from a ``Target`` to a stored blob, or to the flight that will store it.

Lookup order (no upstream request unless all fail):
1. the alias of the file under its resolved snapshot run;
2. by-hash paths: the hash in the path names the blob;
3. the hash the run's own Release/Packages/Sources lists for the path;
then one single-flight download, verified before it is committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiofiles.threadpool.binary import AsyncFileIO
from yarl import URL

from cache_proxy import debindex, httpsem, routing, timestamps
from cache_proxy.config import Mode, ProxyConfig
from cache_proxy.errors import UserError
from cache_proxy.flight import Flight
from cache_proxy.index import AccessTimes, AsyncIndex, BlobRow, Index, IndexDamaged
from cache_proxy.metrics import Metrics
from cache_proxy.routing import Kind, Target
from cache_proxy.safety import logsafe, redact
from cache_proxy.scrub import check_blob, scrub_store, set_aside
from cache_proxy.store import BlobStore
from cache_proxy.upstream import NotFound, Upstream, UpstreamError
from cache_proxy.verify import Expect, Hasher, VerifyError

log = logging.getLogger("cache_proxy.cache")

HOT_ENTRIES: Final = 65536
SCRUB_PAUSE: Final = 24 * 3600.0  # between two background scrub passes
SCRUB_RETRY: Final = 60.0  # after a pass that failed (disk or sqlite error)
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


async def _open_tmp(path: Path) -> AsyncFileIO:
    """``aiofiles.open(path, "wb")``, but a cancellation while the thread opens the file
    closes it once open instead of leaking it (a shutdown mid-download)."""
    loop = asyncio.get_running_loop()
    opening = loop.run_in_executor(None, lambda: open(path, "wb", buffering=0))  # noqa: SIM115
    try:
        raw = await asyncio.shield(opening)
    except asyncio.CancelledError:

        def close(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                done.result().close()

        opening.add_done_callback(close)
        raise
    return AsyncFileIO(raw, loop=loop, executor=None)


class Cache:
    def __init__(
        self, config: ProxyConfig, metrics: Metrics, on_evict: Callable[[], None] | None = None
    ) -> None:
        self.on_evict = on_evict
        self.config = config
        self.metrics = metrics
        self.store = BlobStore(config.cache_dir)
        self.index = AsyncIndex(config.cache_dir / "index.sqlite")
        self.upstream = Upstream(config, metrics)
        self.flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._hot: OrderedDict[str, BlobRow] = OrderedDict()
        self._runs: dict[tuple[str, str], tuple[str, float | None]] = {}
        self._linked: set[tuple[str, str, str]] = set()
        self._volatility = timestamps.Volatility(config.volatile_window)
        self._recent: OrderedDict[str, BlobRow] = OrderedDict()  # results of ended flights
        self._parsing: dict[tuple[str, str], set[asyncio.Task[None]]] = {}
        self.atimes = AccessTimes(self.index, metrics)
        self.size = 0
        self._evicting: asyncio.Task[None] | None = None
        self.serving: Counter[str] = Counter()  # blobs being opened for a client: kept
        self._deleting: dict[str, asyncio.Future[None]] = {}  # blobs eviction is removing
        self._evict_error: str | None = None
        self._scrub_error: str | None = None

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
        self.size = await self.index.call(Index.total_size)
        self.metrics.set("cache_bytes", self.size)
        self.metrics.set("cache_blobs", len(on_disk))
        await self.upstream.start()
        self.atimes.start()
        if self.config.scrub_rate:
            self._spawn(self._scrub_loop())

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scrub_loop(self) -> None:
        """The slow background scrub: every blob re-hashed at ``scrub_rate`` bytes/s, a
        damaged one deleted (as eviction would: never one being served); again daily."""
        loop = asyncio.get_running_loop()
        rate = self.config.scrub_rate
        while True:
            try:
                blobs = await loop.run_in_executor(None, lambda: list(self.store.scan()))
                for sha, _size in blobs:
                    await self._scrub_one(sha, rate)
                self.metrics.set("background_ok", 1, task="scrub")
                self._scrub_error = None
            except (OSError, sqlite3.Error) as exc:
                log.warning("background scrub: %s: %s", type(exc).__name__, exc)
                self._scrub_error = f"{type(exc).__name__}: {exc}"
                self.metrics.inc("background_errors_total", task="scrub")
                self.metrics.set("background_ok", 0, task="scrub")
            await asyncio.sleep(SCRUB_PAUSE if self._scrub_error is None else SCRUB_RETRY)

    async def _scrub_one(self, sha: str, rate: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            got = await loop.run_in_executor(None, check_blob, self.store.path(sha), sha)
        except FileNotFoundError:
            return  # evicted meanwhile
        self.metrics.inc("scrubbed_blobs_total")
        if not got.ok and sha not in self.serving and sha not in self._deleting:
            log.warning("background scrub: blob %s does not hash to its name: dropped", sha)
            await self._remove_blob(sha)
            self.metrics.inc("scrub_dropped_total")
            self.size -= got.size
            self.metrics.set("cache_bytes", self.size)
            self.metrics.inc("cache_blobs", -1)
            if self.on_evict is not None:
                self.on_evict()  # memory and hit workers forget it
        await asyncio.sleep(max(0.0, got.size / rate - (loop.time() - started)))

    async def close(self) -> None:
        """Abandon downloads in flight (their temp files are removed) and close the index."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._evicting:
            await asyncio.gather(self._evicting, return_exceptions=True)
        await self.atimes.stop()
        await self.upstream.close()
        await self.index.close()

    def blob_path(self, sha256: str) -> Path:
        return self.store.path(sha256)

    # ------------------------------------------------------------------- lookup
    def volatile(self, ts: str) -> bool:
        return self._volatility(ts)

    def _expires(self, volatile: bool) -> float | None:
        return time.time() + self.config.volatile_ttl if volatile else None

    async def run_for(self, target: Target) -> str | None:
        """The snapshot run ``target.ts`` resolves to, if known (always itself when recording)."""
        if self.config.mode is Mode.RECORD:
            return target.ts
        key = (target.archive, target.ts)
        hit = self._runs.get(key)
        now = time.time()
        if hit and (hit[1] is None or hit[1] > now):
            return hit[0]
        run = await self.index.call(Index.run_for, target.archive, target.ts, now)
        if run is not None:
            self._runs[key] = (run, None)
        return run

    async def _learn_run(self, archive: str, ts: str, run: str) -> None:
        expires = self._expires(self.volatile(ts))
        self._runs[(archive, ts)] = (run, expires)
        await self.index.call(Index.set_run, archive, ts, run, expires)

    def _remember(self, key: str, row: BlobRow) -> None:
        self._hot[key] = row
        self._hot.move_to_end(key)
        if len(self._hot) > HOT_ENTRIES:
            self._hot.popitem(last=False)

    def touch(self, sha256: str) -> None:
        self.atimes.touch(sha256)

    # ---------------------------------------------------------------- pinning
    def pin(self, sha256: str) -> asyncio.Future[None] | None:
        """Keep ``sha256`` from eviction while it is served; unpin when its file is open.

        If eviction is deleting it right now, nothing is pinned and the deletion is
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

    def forget(self, sha256: str) -> None:
        """Drop what memory says about a blob that is gone (the index is the truth)."""
        for table in (self._hot, self._recent):
            for key in [k for k, row in table.items() if row.sha256 == sha256]:
                del table[key]

    def problems(self) -> list[str]:
        evict = [f"eviction: {self._evict_error}"] if self._evict_error else []
        scrub = [f"background scrub: {self._scrub_error}"] if self._scrub_error else []
        return self.atimes.problems() + evict + scrub

    async def cached(self, target: Target, run: str) -> BlobRow | None:
        """Steps 1-3 of the lookup order, without any upstream request."""
        key = target.key(run)
        row = self._hot.get(key)
        if row is not None:
            return row
        now = time.time()
        row = await self.index.call(Index.alias, key, now)
        if row is None:
            sha = None
            bh = target.by_hash
            if bh and bh[0] == "SHA256":
                sha = bh[1]
            elif bh and bh[0] == "SHA1":
                found = await self.index.call(Index.blob_by_sha1, bh[1])
                sha = found.sha256 if found else None
            else:
                if target.kind is Kind.FILE:
                    await self._parsed(target.archive, run)
                exp = await self.index.call(Index.expectation, target.archive, run, target.path)
                sha = exp[1] if exp else None
            if sha is not None:
                row = await self.index.call(Index.blob, sha)
                if row is not None:
                    expires = self._expires(self.volatile(run))
                    await self.index.call(Index.add_blob, row, [key], expires, now)
        if row is not None and not self.volatile(run):
            self._remember(key, row)
        return row

    def lookup_hot(self, target: Target) -> BlobRow | None:
        """A blob remembered in memory for an immutable target, or None (then ``lookup``)."""
        if self.config.mode is Mode.RECORD:
            run: str | None = target.ts
        else:
            known = self._runs.get((target.archive, target.ts))
            run = known[0] if known and known[1] is None else None
        return self._hot.get(target.key(run)) if run is not None else None

    async def lookup(self, target: Target) -> BlobRow | Flight:
        """A stored blob, or the flight (new or joined) that will produce it."""
        if target.kind is Kind.SHA1:
            return await self._lookup_sha1(target)
        run = await self.run_for(target)
        if run is not None:
            row = await self.cached(target, run)
            if row is not None:
                self.touch(row.sha256)
                await self.note_index(target, run, row)
                self.metrics.inc("hits_total")
                return row
        if (
            self.config.mode is Mode.SNAPSHOT
            and target.kind is Kind.INDEX
            and (run is None or not await self._listed(target, run))
        ):
            # Verify indexes against their Release: learn it first if nobody asked for it.
            await self._ensure_release(target)
            run = await self.run_for(target)
            row = await self.cached(target, run) if run is not None else None
            if row is not None and run is not None:
                self.touch(row.sha256)
                await self.note_index(target, run, row)
                self.metrics.inc("hits_total")
                return row
        if self.config.mode is Mode.RECORD and target.kind in (Kind.RELEASE, Kind.INDEX):
            suite = target.suite
            assert suite is not None and run is not None
            if target.kind is Kind.RELEASE or not await self._suite_frozen(target, run):
                # The suite's roots are frozen together, then every waiter looks again.
                return await self._start(
                    f"freeze:{target.archive}/{run}/{suite}",
                    lambda f: self._freeze(f, target.archive, run, suite),
                    refetch=True,
                )
        job = await self._job(target, run)
        if (
            target.kind is Kind.FILE
            and run is not None
            and job.expect.sha256 is None
            and await self._find_listing(target, run)
        ):
            job = await self._job(target, run)
        return await self._start(target.key(run), lambda f: self._download(f, job))

    async def _listed(self, target: Target, run: str) -> bool:
        exp = await self.index.call(Index.expectation, target.archive, run, target.path)
        return exp is not None

    async def _lookup_sha1(self, target: Target) -> BlobRow | Flight:
        """``/file/<sha1>``: any blob with that SHA-1, else snapshot's own /file/ URL."""
        key = target.key()
        row = self._hot.get(key) or await self.index.call(Index.blob_by_sha1, target.path)
        if row is not None:
            self._remember(key, row)
            self.touch(row.sha256)
            self.metrics.inc("hits_total")
            return row
        if self.config.mode is Mode.RECORD:
            raise NotFound(f"/file/{target.path} is not stored, and a plain mirror has no /file/")
        job = Job(target, "", Expect(sha1=target.path), volatile=False)
        return await self._start(key, lambda f: self._download(f, job))

    async def _find_listing(self, target: Target, run: str) -> bool:
        """A pool file asked for before its Packages/Sources: fetch the index listing it.

        Only indexes of suites whose Release this run already has are tried (the
        Release is what makes them trustworthy). False: the file is checked by the
        SHA-1 of a ``/file/`` redirect if upstream sends one, else by its length
        alone, and ``unlisted_total`` counts it.
        """
        listed = await self.index.call(Index.release_listing, target.archive, run)
        for path in routing.listing_candidates(target.path, listed):
            index_target = Target(target.archive, run, path)
            try:
                found = await self.lookup(index_target)
                if isinstance(found, Flight):
                    await asyncio.shield(found.done)
            except Exception as exc:
                log.info("could not fetch %s to check %s: %s", path, logsafe(target.path), exc)
                continue
            await self._parsed(target.archive, run)
            if await self._listed(target, run):
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

    async def _start(
        self, key: str, body: Callable[[Flight], Awaitable[None]], refetch: bool = False
    ) -> Flight | BlobRow:
        flight = self.flights.get(key)
        if flight is not None:
            flight.waiters += 1
            self.metrics.inc("coalesced_total")
            return flight
        recent = self._recent.get(key)
        if recent is not None:
            # A flight for this key ended while our lookup was awaiting the index.
            self.metrics.inc("hits_total")
            return recent
        self.metrics.inc("misses_total")
        flight = Flight(key, refetch=refetch)
        flight.waiters = 1
        self.flights[key] = flight
        task = asyncio.create_task(self._run_flight(flight, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flight

    async def _run_flight(self, flight: Flight, body: Callable[[Flight], Awaitable[None]]) -> None:
        self.metrics.set("inflight_downloads", len(self.flights))
        try:
            await body(flight)
            done = flight.done
            row = done.result() if done.done() and done.exception() is None else None
            if row is not None:
                self._recent[flight.key] = row
                if len(self._recent) > RECENT_ENTRIES:
                    self._recent.popitem(last=False)
        except asyncio.CancelledError:
            flight.fail(UpstreamError("proxy shutting down", 503))
            raise
        except Exception as exc:  # every failure reaches the waiting clients
            flight.fail(exc)
        finally:
            self.flights.pop(flight.key, None)
            self.metrics.set("inflight_downloads", len(self.flights))

    # ------------------------------------------------------------------- fetch
    async def _job(self, target: Target, run: str | None) -> Job:
        expect = Expect(by_hash=target.by_hash)
        if run is not None and target.kind in (Kind.INDEX, Kind.FILE):
            exp = await self.index.call(Index.expectation, target.archive, run, target.path)
            if exp is not None:
                expect = expect.merge(size=exp[0], sha256=exp[1])
        return Job(target, run, expect, self.volatile(target.ts))

    def _urls(self, target: Target, ts: str, path: str) -> list[tuple[str, str]]:
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
        urls = self._urls(t, job.run or t.ts, path)

        async def on_redirect(url: URL) -> BlobRow | None:
            return await self._redirected(job, url)

        async def on_body(resp: aiohttp.ClientResponse) -> BlobRow:
            return await self._receive(flight, job, resp)

        try:
            row = await self.upstream.fetch(urls, on_body, on_redirect)
        except Exception:
            if job.expect.sha256 and path != t.quoted_path:  # mirror without by-hash
                urls = self._urls(t, job.run or t.ts, t.quoted_path)
                row = await self.upstream.fetch(urls, on_body, on_redirect)
            else:
                raise
        run = job.run or t.ts
        if job.run is None and self.config.mode is Mode.SNAPSHOT:
            await self._learn_run(t.archive, t.ts, run)
        await self._commit_aliases(job, row, run)
        await self.note_index(t.with_ts(run), run, row)
        flight.finish(row, from_attempt=True)

    async def _redirected(self, job: Job, url: URL) -> BlobRow | None:
        """Learn from an upstream redirect; return a stored blob if it makes the download moot."""
        path = url.path
        sha1 = routing.FILE_SHA1.match(path)
        if sha1:
            if job.run is None and self.config.mode is Mode.SNAPSHOT:
                # Served under its own spelling, without a 301: the timestamp is a run.
                job.run = job.target.ts
                await self._learn_run(job.target.archive, job.target.ts, job.target.ts)
            job.expect = job.expect.merge(sha1=sha1["sha1"])
            row = await self.index.call(Index.blob_by_sha1, sha1["sha1"])
            return await self._shortcut(job, row)
        if path.startswith(_ARCHIVE_REDIRECT):
            parts = path[len(_ARCHIVE_REDIRECT) :].split("/", 2)
            if len(parts) == 3 and parts[0] == job.target.archive:
                try:
                    run = timestamps.canonical(parts[1])
                except timestamps.BadTimestamp:
                    return None
                await self._learn_run(job.target.archive, job.target.ts, run)
                await self._learn_run(job.target.archive, run, run)  # a run names itself
                job.run = run
                row = await self.cached(job.target, run)
                if row is None:
                    fresh = await self._job(job.target, run)
                    job.expect = job.expect.merge(
                        size=fresh.expect.size, sha256=fresh.expect.sha256
                    )
                return await self._shortcut(job, row)
        return None

    async def _shortcut(self, job: Job, row: BlobRow | None) -> BlobRow | None:
        if row is None:
            return None
        e = job.expect
        if (e.sha256 and e.sha256 != row.sha256) or (e.size is not None and e.size != row.size):
            return None
        self.metrics.inc("dedup_total")
        return row

    async def _receive(self, flight: Flight, job: Job, resp: aiohttp.ClientResponse) -> BlobRow:
        """Write one attempt to a temp file while hashing, verify, commit.

        A body cut short is continued from where it stopped (``Upstream.resume``: a
        Range request, or a whole answer whose first bytes are skipped), into the same
        temp file and the same attempt, so clients reading it see one stream; the
        final checks cover the joined bytes.
        """
        hasher = Hasher(job.expect, resp.content_length, self.config.max_body)
        ctype = httpsem.content_type(job.target.path)
        mtime = httpsem.parse_http_date(resp.headers.get("Last-Modified"))
        tmp = self.store.new_tmp()
        total = resp.content_length if resp.content_length is not None else job.expect.size
        flight.begin(tmp, total, ctype, mtime)
        loop = asyncio.get_running_loop()
        try:
            f = await _open_tmp(tmp)
            async with AsyncExitStack() as stack:
                stack.push_async_callback(f.close)
                source, skip = resp, 0
                for resumes in range(self.config.resumes + 1):
                    try:
                        await self._copy(source, skip, f, hasher, flight)
                        break
                    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                        if resumes == self.config.resumes or total is None:
                            raise
                        log.info(
                            "upstream cut %s at %d bytes: %s",
                            redact(str(resp.url)),
                            hasher.size,
                            exc,
                        )
                        source, skip = await self.upstream.resume(
                            resp, hasher.size, total, allow_skip=job.expect.strong
                        )
                        await stack.enter_async_context(source)
                await loop.run_in_executor(None, os.fsync, f.fileno())
            digest = hasher.finish()  # the file is closed (and fsynced) by now
        except VerifyError:
            await loop.run_in_executor(None, self.store.discard, tmp)
            raise
        except BaseException:
            await asyncio.shield(loop.run_in_executor(None, self.store.discard, tmp))
            raise
        row = BlobRow(digest.sha256, digest.size, digest.sha1, mtime or 0.0, ctype)

        def commit() -> None:
            dest = self.store.commit(tmp, digest.sha256)
            if mtime:
                os.utime(dest, (mtime, mtime))

        await asyncio.shield(loop.run_in_executor(None, commit))
        return row

    async def _copy(
        self,
        source: aiohttp.ClientResponse,
        skip: int,
        f: AsyncFileIO,
        hasher: Hasher,
        flight: Flight,
    ) -> None:
        """Append ``source``'s body, less its first ``skip`` bytes, to the attempt's file."""
        async for data in source.content.iter_chunked(256 * 1024):
            chunk = data
            if skip:
                drop = min(skip, len(chunk))
                chunk, skip = chunk[drop:], skip - drop
                if not chunk:
                    continue
            self.metrics.inc("upstream_bytes_total", len(chunk))
            hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                n = await f.write(view)
                view = view[n or 0 :]
            flight.advance(len(chunk))

    async def _commit_aliases(self, job: Job, row: BlobRow, run: str) -> None:
        keys = {job.target.key(run), *job.keys}
        fresh = await self.index.call(Index.blob, row.sha256) is None
        # Content under a past run never changes, whatever instant was asked for.
        expires = self._expires(self.volatile(run))
        await self.index.call(Index.add_blob, row, sorted(keys), expires, time.time())
        if fresh:
            self.size += row.size
            self.metrics.set("cache_bytes", self.size)
            self.metrics.inc("cache_blobs")
            self._maybe_evict()

    # ----------------------------------------------------------------- indexes
    async def note_index(self, target: Target, run: str, row: BlobRow) -> None:
        """If ``row`` is a Release/Packages/Sources of (archive, run), learn its hashes."""
        if target.kind in (Kind.FILE, Kind.SHA1):
            return
        link = (target.archive, run, row.sha256)
        if link in self._linked:
            return
        logical = target.path
        if target.kind is Kind.BY_HASH:
            found = await self.index.call(Index.entry_path, target.archive, run, row.sha256)
            if found is None:
                return
            logical = found
        suite = target.suite
        name = logical.rsplit("/", 1)[-1]
        if target.kind is Kind.RELEASE and name in ("InRelease", "Release") and suite:
            kind, ext = "Release", suite
        elif (ik := routing.index_kind(logical)) is not None:
            kind, ext = ik
        else:
            return
        self._linked.add(link)
        task = asyncio.create_task(self._parse_and_link(target.archive, run, row, kind, ext))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._parsing.setdefault((target.archive, run), set()).add(task)
        task.add_done_callback(self._parsing[(target.archive, run)].discard)
        if kind == "Release":
            await task  # dists lookups right after need it; it is small

    async def _parse_and_link(
        self, archive: str, run: str, row: BlobRow, kind: str, ext: str
    ) -> None:
        try:
            if not await self.index.call(Index.has_index, row.sha256):
                path = self.store.path(row.sha256)
                loop = asyncio.get_running_loop()
                if kind == "Release":
                    raw = await loop.run_in_executor(None, path.read_bytes)
                    entries = debindex.parse_release(raw, ext)
                else:
                    entries = await loop.run_in_executor(
                        None, debindex.parse_index_file, path, kind, ext
                    )
                await self.index.call(Index.add_index, row.sha256, kind, entries)
            await self.index.call(Index.link_run_index, archive, run, row.sha256)
        except Exception as exc:  # an unparsable index only costs us shortcuts
            log.warning("could not parse %s %s: %s", kind, row.sha256, exc)
            self._linked.discard((archive, run, row.sha256))

    async def _parsed(self, archive: str, run: str) -> None:
        pending = self._parsing.get((archive, run))
        if pending:
            await asyncio.gather(*list(pending), return_exceptions=True)

    # ------------------------------------------------------------ record mode
    async def _suite_frozen(self, target: Target, run: str) -> bool:
        for name in ("InRelease", "Release"):
            t = Target(target.archive, run, f"dists/{target.suite}/{name}")
            row = await self.cached(t, run)
            if row is not None:
                await self.note_index(t, run, row)
                return True
        return False

    async def _freeze(self, flight: Flight, archive: str, run: str, suite: str) -> None:
        from cache_proxy.recorder import freeze_suite

        await freeze_suite(self, archive, run, suite)
        flight.finish(None, from_attempt=False)

    async def store_bytes(self, target: Target, data: bytes, mtime: float | None) -> BlobRow:
        """Store a small verified body and alias it under ``target`` (record-mode freezing)."""
        loop = asyncio.get_running_loop()
        hasher = Hasher(Expect(), len(data))
        hasher.update(data)
        digest = hasher.finish()
        tmp = self.store.new_tmp()

        def write() -> None:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            dest = self.store.commit(tmp, digest.sha256)
            if mtime:
                os.utime(dest, (mtime, mtime))

        await asyncio.shield(loop.run_in_executor(None, write))
        row = BlobRow(
            digest.sha256, digest.size, digest.sha1, mtime or 0.0, httpsem.content_type(target.path)
        )
        job = Job(target, target.ts, Expect(), self.volatile(target.ts))
        await self._commit_aliases(job, row, target.ts)
        return row

    # ---------------------------------------------------------------- eviction
    async def _remove_blob(self, sha: str) -> None:
        """Delete a blob nobody has pinned; from the first line on nobody can pin it (they
        await its deletion and look the file up again)."""
        loop = asyncio.get_running_loop()
        self._deleting[sha] = loop.create_future()
        self.forget(sha)
        try:
            await self.index.call(Index.delete_blob, sha)
            await loop.run_in_executor(None, self.store.remove, sha)
        finally:
            self._deleting.pop(sha).set_result(None)

    def _maybe_evict(self) -> None:
        cap = self.config.max_size
        if cap is None or self.size <= cap:
            return
        if self._evicting is None or self._evicting.done():
            self._evicting = asyncio.create_task(self._evict_reporting(cap))

    async def _evict_reporting(self, cap: int) -> None:
        """``_evict``, its failures (a sqlite or disk error) reported, never fatal: the
        next commit tries again."""
        try:
            await self._evict(cap)
        except (sqlite3.Error, OSError) as exc:
            if self._evict_error is None:
                log.warning("eviction failed: %s: %s", type(exc).__name__, exc)
            self._evict_error = f"{type(exc).__name__}: {exc}"
            self.metrics.inc("background_errors_total", task="eviction")
            self.metrics.set("background_ok", 0, task="eviction")
        else:
            self._evict_error = None
            self.metrics.set("background_ok", 1, task="eviction")

    async def _evict(self, cap: int) -> None:
        """Drop least recently used blobs until under the cap (in-flight ones are in tmp/)."""
        try:
            await self.atimes.flush()
        except (sqlite3.Error, OSError) as exc:  # LRU order from the last good write
            log.info("eviction: access times not written: %s", exc)
        while self.size > cap:
            victims = await self.index.call(Index.oldest, 64, sorted(self.serving))
            if not victims:
                break
            for sha, size in victims:
                if self.size <= cap:
                    break
                if sha in self.serving:  # pinned while we awaited: it stays
                    self.metrics.inc("evict_skipped_total")
                    continue
                await self._remove_blob(sha)
                self.size -= size
                self.metrics.inc("evictions_total")
                self.metrics.inc("evicted_bytes_total", size)
                self.metrics.inc("cache_blobs", -1)
        self._hot.clear()
        self._recent.clear()
        self._linked.clear()
        if self.on_evict is not None:
            self.on_evict()
        self.metrics.set("cache_bytes", self.size)
