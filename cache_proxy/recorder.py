"""Recorder mode: freeze a plain mirror's suite roots the first time a timestamp asks.

A plain mirror changes under us; a snapshot must not. On the first request for
``dists/<suite>/{InRelease,Release,Release.gpg}`` under a timestamp we fetch all
three, check they describe one mirror state (Release == InRelease's signed text),
and store them as that timestamp's forever. Indexes are later fetched by the hash
the frozen Release lists (``by-hash``), pool files checked against the frozen
Packages, so a mirror update mid-build cannot make the recording inconsistent.

The recorder is a client of the cache through the public seams of ``Freezer``
(which ``cache.Cache`` provides): it looks up what is frozen, asks the upstreams
itself, and stores what it freezes; it sees nothing else of the cache.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from datetime import timedelta
from pathlib import Path
from typing import Final, Protocol

import aiohttp
from yarl import URL

from cache_proxy import debindex, httpsem, timestamps
from cache_proxy.config import ProxyConfig
from cache_proxy.index import BlobRow
from cache_proxy.metrics import Metrics
from cache_proxy.routing import Target
from cache_proxy.safety import logsafe
from cache_proxy.upstream import NotFound, Upstream, UpstreamError
from cache_proxy.verify import Expect, Hasher

log = logging.getLogger("cache_proxy.recorder")

ROOTS: Final = ("InRelease", "Release", "Release.gpg")
CONSISTENCY_TRIES: Final = 3
MAX_ROOT_BYTES: Final = 64 << 20


class Freezer(Protocol):
    """What freezing a suite needs of the cache: its public seams (``cache.Cache``)."""

    @property
    def config(self) -> ProxyConfig:
        """``record_window``: how old a timestamp a new recording may be filed under."""

    @property
    def metrics(self) -> Metrics:
        """Where upstream bytes are counted (``upstream_bytes_total``)."""

    @property
    def upstream(self) -> Upstream:
        """The upstreams, asked with ``Upstream.fetch`` (retries, limits, fail-over)."""

    def upstream_urls(self, target: Target, ts: str, path: str) -> list[tuple[str, str]]:
        """(upstream base, URL) of ``path`` under ``ts`` on each upstream, in order."""
        ...

    async def cached(self, target: Target, run: str) -> BlobRow | None:
        """The blob stored for ``target`` under ``run``, without asking upstream."""

    def blob_path(self, sha256: str) -> Path:
        """Where a stored blob's bytes are (read-only)."""
        ...

    async def store_bytes(self, target: Target, data: bytes, mtime: float | None) -> BlobRow:
        """Store a small verified body as ``target``'s, under ``target.ts`` forever."""

    async def note_index(self, target: Target, run: str, row: BlobRow) -> None:
        """Learn the hashes a stored Release lists (so its indexes are fetched by hash)."""


async def _fetch_small(cache: Freezer, target: Target) -> tuple[bytes, float | None] | None:
    """Whole body of a small file, Content-Length checked; None if upstream has none."""
    urls = cache.upstream_urls(target, target.ts, target.quoted_path)

    async def on_body(resp: aiohttp.ClientResponse) -> tuple[bytes, float | None]:
        if (resp.content_length or 0) > MAX_ROOT_BYTES:
            raise UpstreamError(f"{logsafe(target.path)} is implausibly large")
        parts: list[bytes] = []
        got = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):  # bounded, length or not
            got += len(chunk)
            if got > MAX_ROOT_BYTES:
                raise UpstreamError(f"{logsafe(target.path)} is implausibly large")
            parts.append(chunk)
        data = b"".join(parts)
        cache.metrics.inc("upstream_bytes_total", len(data))
        hasher = Hasher(Expect(), resp.content_length)
        hasher.update(data)
        hasher.finish()  # raises VerifyError (retried) when truncated
        return data, httpsem.parse_http_date(resp.headers.get("Last-Modified"))

    async def on_redirect(url: URL) -> tuple[bytes, float | None] | None:
        return None

    try:
        return await cache.upstream.fetch(urls, on_body, on_redirect)
    except NotFound:
        return None


def _consistent(inrelease: bytes | None, release: bytes | None) -> bool:
    if inrelease is None or release is None:
        return True
    body = debindex.release_text(inrelease).strip()
    return body == release.decode("utf-8", errors="replace").strip()


def _same_state(
    anchor_name: str, anchor: bytes, fresh: dict[str, tuple[bytes, float | None] | None]
) -> bool:
    """Does the mirror still serve the state frozen as ``anchor``?"""
    inr, rel = fresh["InRelease"], fresh["Release"]
    if anchor_name == "InRelease":
        if inr is not None:
            return inr[0] == anchor
        return rel is not None and _consistent(anchor, rel[0])
    if rel is not None:
        return rel[0] == anchor
    return inr is not None and _consistent(inr[0], anchor)


def refuse_untrue_recording(
    window: timedelta | None, archive: str, ts: str, suite: str, now: dt.datetime | None = None
) -> None:
    """A new recording holds the mirror as it is now: refuse to file it under a timestamp
    far in the past (or in the future), where it would be a false pin."""
    if window is None:
        return
    when = timestamps.parse(ts)
    now = now or dt.datetime.now(dt.UTC)
    if when < now - window or when > now + dt.timedelta(hours=1):
        raise UpstreamError(
            f"no recording of {archive}/dists/{suite} under {ts}, and the mirror's state "
            f"now is not the state of {ts}: a recording is made only for timestamps of the "
            f"last {window.total_seconds() / 3600:g} hours",
            409,
        )


async def freeze_suite(cache: Freezer, archive: str, ts: str, suite: str) -> None:
    """Freeze ``dists/<suite>``'s roots under ``ts``, unless they are frozen already."""
    targets = {name: Target(archive, ts, f"dists/{suite}/{name}") for name in ROOTS}
    frozen = {name: await cache.cached(t, ts) for name, t in targets.items()}
    if all(v is None for v in frozen.values()):
        refuse_untrue_recording(cache.config.record_window, archive, ts, suite)
    fresh: dict[str, tuple[bytes, float | None] | None] = {}
    for _ in range(CONSISTENCY_TRIES):
        fresh = {name: await _fetch_small(cache, t) for name, t in targets.items()}
        inr, rel = fresh["InRelease"], fresh["Release"]
        if _consistent(inr[0] if inr else None, rel[0] if rel else None):
            break
        log.info("recorder: %s/%s changed while freezing; fetching again", archive, suite)
    else:
        raise UpstreamError(f"mirror keeps changing {archive}/dists/{suite}", 503)
    if all(v is None for v in fresh.values()) and all(v is None for v in frozen.values()):
        raise NotFound(f"{archive}/dists/{suite} has no InRelease or Release upstream")
    anchor_name = "InRelease" if frozen["InRelease"] is not None else "Release"
    anchor = frozen[anchor_name]
    same_state = True
    if anchor is not None:
        loop = asyncio.get_running_loop()
        anchor_bytes = await loop.run_in_executor(None, cache.blob_path(anchor.sha256).read_bytes)
        same_state = _same_state(anchor_name, anchor_bytes, fresh)
    for name in ROOTS:
        got = fresh[name]
        if frozen[name] is not None or got is None or not same_state:
            continue
        row = await cache.store_bytes(targets[name], got[0], got[1])
        if name in ("InRelease", "Release"):
            await cache.note_index(targets[name], ts, row)
    log.info("recorder: froze %s/%s under %s", archive, suite, ts)
