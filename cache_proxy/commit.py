"""Verify before commit: an upstream body to a stored blob and the aliases that find it.

An attempt is written to a temp file while it is hashed (``Hasher`` checks size,
SHA-256, SHA-1 and Content-Length against what is expected), fsynced, then renamed
into the store under its SHA-256 (``BlobStore.commit``); a body that fails a check
is deleted, never stored, and the error makes the upstream retry it. Clients of
the flight read the temp file as it grows (``flight.tee``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from aiofiles.threadpool.binary import AsyncFileIO

from cache_proxy import httpsem
from cache_proxy.config import ProxyConfig
from cache_proxy.eviction import Evictor
from cache_proxy.flight import Flight
from cache_proxy.index import AsyncIndex, BlobRow, Index
from cache_proxy.lookup import Lookup
from cache_proxy.metrics import Metrics
from cache_proxy.routing import Target
from cache_proxy.safety import redact
from cache_proxy.store import BlobStore
from cache_proxy.upstream import SlowUpstream, Upstream
from cache_proxy.verify import Expect, Hasher, VerifyError

log = logging.getLogger("cache_proxy.commit")

READ_CHUNK = 256 * 1024


async def open_tmp(path: Path) -> AsyncFileIO:
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


class Committer:
    def __init__(
        self,
        config: ProxyConfig,
        metrics: Metrics,
        store: BlobStore,
        index: AsyncIndex,
        upstream: Upstream,
        lookup: Lookup,
        evictor: Evictor,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.store = store
        self.index = index
        self.upstream = upstream
        self.lookup = lookup
        self.evictor = evictor

    async def receive(
        self, flight: Flight, path: str, expect: Expect, resp: aiohttp.ClientResponse
    ) -> BlobRow:
        """Write one attempt at the file ``path`` to a temp file while hashing, verify, commit.

        A body cut short, or a connection the watchdog dropped as too slow
        (``SlowUpstream``), is continued from where it stopped (``Upstream.resume``: a
        Range request, or a whole answer whose first bytes are skipped), into the same
        temp file and the same attempt, so clients reading it see one stream; the
        final checks cover the joined bytes.
        """
        hasher = Hasher(expect, resp.content_length, self.config.max_body)
        ctype = httpsem.content_type(path)
        mtime = httpsem.parse_http_date(resp.headers.get("Last-Modified"))
        tmp = self.store.new_tmp()
        total = resp.content_length if resp.content_length is not None else expect.size
        flight.begin(tmp, total, ctype, mtime)
        loop = asyncio.get_running_loop()
        try:
            f = await open_tmp(tmp)
            async with AsyncExitStack() as stack:
                stack.push_async_callback(f.close)
                source, skip = resp, 0
                for resumes in range(self.config.resumes + 1):
                    try:
                        await self._copy(source, skip, f, hasher, flight)
                        break
                    except (
                        aiohttp.ClientPayloadError,
                        aiohttp.ClientConnectionError,
                        SlowUpstream,  # the watchdog dropped the connection: the same
                    ) as exc:
                        if resumes == self.config.resumes or total is None:
                            raise
                        log.info(
                            "upstream cut %s at %d bytes: %s",
                            redact(str(resp.url)),
                            hasher.size,
                            exc,
                        )
                        source, skip = await self.upstream.resume(
                            resp, hasher.size, total, allow_skip=expect.strong
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
        async for data in source.content.iter_chunked(READ_CHUNK):
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

    async def alias(self, keys: Iterable[str], row: BlobRow, run: str) -> None:
        """Record the committed blob ``row`` under every key, as of snapshot run ``run``."""
        fresh = await self.index.call(Index.blob, row.sha256) is None
        # Content under a past run never changes, whatever instant was asked for.
        expires = self.lookup.expires(run)
        await self.index.call(Index.add_blob, row, sorted(set(keys)), expires, time.time())
        if fresh:
            self.evictor.added(row.size)

    async def store_bytes(self, target: Target, data: bytes, mtime: float | None) -> BlobRow:
        """Store a small body already checked by its caller and alias it under ``target``
        (record mode's frozen Release files)."""
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
        await self.alias([target.key(target.ts)], row, target.ts)
        return row
