"""The aiohttp shell: front doors (mirror paths, forward-proxy URIs), hits, tees, errors.

Decisions live in ``cache``/``httpsem``/``routing``; this module only maps them to
HTTP. Hits are ``FileResponse`` (sendfile, and aiohttp implements Range/If-Range
per RFC 9110 §14 and If-Modified-Since per §13.1.3); misses stream from the flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger, AbstractStreamWriter

from cache_proxy import httpsem, routing
from cache_proxy.accesslog import AccessLog
from cache_proxy.cache import Cache
from cache_proxy.config import ProxyConfig
from cache_proxy.flight import Aborted, Flight, tee
from cache_proxy.index import BlobRow
from cache_proxy.metrics import Metrics
from cache_proxy.routing import BadTarget, Target
from cache_proxy.upstream import NotFound, UpstreamError
from cache_proxy.verify import VerifyError

log = logging.getLogger("cache_proxy.app")

CACHE_KEY: Final = web.RequestKey("cache", str)
REFETCH_ROUNDS: Final = 3
SMALL_BLOB: Final = 256 * 1024
SMALL_TOTAL: Final = 64 << 20
# Requests that need FileResponse's full RFC 9110 §13/§14 handling.
_CONDITIONAL: Final = (
    hdrs.RANGE,
    hdrs.IF_RANGE,
    hdrs.IF_MODIFIED_SINCE,
    hdrs.IF_UNMODIFIED_SINCE,
    hdrs.IF_NONE_MATCH,
    hdrs.IF_MATCH,
)
FILE_CHUNK: Final = 2 << 20  # sendfile fallback (uvloop) reads this much per step


class BlobResponse(web.FileResponse):
    """FileResponse plus If-Range with an entity-tag (RFC 9110 §13.1.5).

    aiohttp evaluates If-Range only as a date; with an entity-tag that does not
    strongly match, the whole representation must be sent instead of a range.
    """

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if_range = request.headers.get(hdrs.IF_RANGE, "")
        if hdrs.RANGE in request.headers and httpsem.is_entity_tag(if_range):
            loop = asyncio.get_running_loop()
            st = await loop.run_in_executor(None, os.stat, self._path)
            if not httpsem.strong_etag_match(if_range, httpsem.file_etag(st)):
                headers = request.headers.copy()
                del headers[hdrs.RANGE]
                request = request.clone(headers=headers)
        return await super().prepare(request)


@dataclass(frozen=True)
class SmallBlob:
    body: bytes
    headers: dict[str, str]  # the validators FileResponse would send for this file

    @classmethod
    def load(cls, path: Path) -> SmallBlob:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            body = f.read()
        return cls(
            body,
            {
                hdrs.ETAG: httpsem.file_etag(st),
                hdrs.LAST_MODIFIED: httpsem.http_date(st.st_mtime),
                hdrs.ACCEPT_RANGES: "bytes",
            },
        )


class SmallBlobs:
    """LRU of small blobs' bytes, bounded in total size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._items: OrderedDict[str, SmallBlob] = OrderedDict()

    def get(self, sha256: str) -> SmallBlob | None:
        item = self._items.get(sha256)
        if item is not None:
            self._items.move_to_end(sha256)
        return item

    def put(self, sha256: str, item: SmallBlob) -> None:
        if sha256 in self._items:
            return
        self._items[sha256] = item
        self.size += len(item.body)
        while self.size > self.limit:
            _, old = self._items.popitem(last=False)
            self.size -= len(old.body)

    def clear(self) -> None:
        self._items.clear()
        self.size = 0


class AccessLogger(AbstractAccessLogger):
    """One line per request; also counts statuses and bytes served (even if not logging)."""

    owner: ProxyApp

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        proxy = self.owner
        proxy.metrics.count_response(response.status, response.body_length)
        if proxy.access.enabled:
            # raw_path is the request target as sent: absolute-form for forward requests.
            proxy.access.write(
                f'{request.remote} "{request.method} {request.raw_path}" {response.status} '
                f"{response.body_length} {request.get(CACHE_KEY, '-')} {time:.4f}"
            )


def is_forward(request: web.BaseRequest) -> bool:
    """The request target is in absolute-form: apt is using us as its HTTP proxy."""
    return request.raw_path.startswith(("http://", "https://"))


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


def error_response(exc: BaseException) -> web.Response:
    """Map a failure to one HTTP status at the edge."""
    if isinstance(exc, NotFound):
        return _text(404, "not found upstream")
    if isinstance(exc, UpstreamError):
        return _text(exc.status, f"upstream error: {exc}")
    if isinstance(exc, VerifyError):
        return _text(502, f"upstream sent bad bytes: {exc}")
    if isinstance(exc, asyncio.TimeoutError):
        return _text(504, "upstream timed out")
    log.error("internal error: %s", exc, exc_info=exc)
    return _text(502, f"proxy error: {type(exc).__name__}")


class ProxyApp:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.small = SmallBlobs(SMALL_TOTAL)
        self.access = AccessLog(config.access_log)
        self.cache = Cache(config, self.metrics, on_evict=self.small.clear)
        self.ready = False

    def make_server(self) -> web.Server:
        """A low-level aiohttp server: four fixed doors need no router or middleware."""
        return web.Server(
            self.dispatch,
            access_log_class=self.access_logger_class(),
            access_log=log,
            handler_cancellation=False,  # a client leaving never cancels a download
        )

    def access_logger_class(self) -> type[AbstractAccessLogger]:
        proxy = self

        class Logger(AccessLogger):
            owner = proxy

        return Logger

    async def startup(self) -> None:
        self.access.start()
        await self.cache.open()
        self.ready = True

    async def cleanup(self) -> None:
        self.ready = False
        await self.cache.close()
        await self.access.close()

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Refuse CONNECT and foreign hosts: we cache our upstreams, we are no open proxy."""
        if request.method == hdrs.METH_CONNECT:
            return _text(405, "CONNECT is refused: this proxy only caches Debian archives")
        if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
            return _text(405, "only GET and HEAD")
        path = request.path
        if is_forward(request):  # RFC 9112 §3.2.2 absolute-form: forward proxy
            url = request.url
            if url.scheme != "http" or not routing.forward_host_allowed(
                url.host, url.port, self.config.allowed_hosts
            ):
                return _text(403, f"host {url.host} is not an upstream of this proxy")
            if not path.startswith("/archive/"):
                return _text(404, "only /archive/<archive>/<timestamp>/ URLs are served")
        elif path == "/healthz":
            return web.Response(text="ok") if self.ready else _text(503, "starting")
        elif path == "/metrics":
            return web.Response(
                body=self.metrics.render().encode(),
                headers={hdrs.CONTENT_TYPE: "text/plain; version=0.0.4; charset=utf-8"},
            )
        return await self.archive(request)

    async def archive(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            target = routing.parse_archive_path(request.path, self.config.archives)
        except BadTarget as exc:
            return _text(404, str(exc))
        return await self.serve(request, target)

    # ------------------------------------------------------------------ serving
    async def serve(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        hot = self.cache.lookup_hot(target)
        if hot is not None:  # the warm-hit fast path: no awaits before the answer
            request[CACHE_KEY] = "HIT"
            fast = self._small_response(request, target, hot)
            if fast is not None:
                return fast
        for _ in range(REFETCH_ROUNDS):
            try:
                found = await self.cache.lookup(target)
            except Exception as exc:
                return error_response(exc)
            if isinstance(found, BlobRow):
                request[CACHE_KEY] = "HIT"
                return await self._file(request, target, found)
            flight = found
            request[CACHE_KEY] = "MISS" if flight.waiters == 1 else "COALESCED"
            if flight.refetch:
                try:
                    await asyncio.shield(flight.done)
                except Exception as exc:
                    return error_response(exc)
                continue
            return await self._from_flight(request, target, flight)
        return _text(502, "file vanished while being stored")

    async def _file(
        self, request: web.BaseRequest, target: Target, row: BlobRow
    ) -> web.StreamResponse:
        headers: dict[str, str] = {
            hdrs.CONTENT_TYPE: httpsem.content_type(target.path),
            hdrs.CACHE_CONTROL: httpsem.cache_control(target, self.cache.volatile(target.ts)),
        }
        if row.size <= SMALL_BLOB and not any(h in request.headers for h in _CONDITIONAL):
            # Small, unconditional hits from memory: no file system round trips at all.
            fast = self._small_response(request, target, row)
            if fast is not None:
                return fast
            loop = asyncio.get_running_loop()
            path = self.cache.blob_path(row.sha256)
            small = await loop.run_in_executor(None, SmallBlob.load, path)
            self.small.put(row.sha256, small)
            headers.update(small.headers)
            return web.Response(body=small.body, headers=headers)
        return self._blob_response(target, row)

    def _small_response(
        self, request: web.BaseRequest, target: Target, row: BlobRow
    ) -> web.Response | None:
        """A small blob already in memory, for a request with no conditions or ranges."""
        small = self.small.get(row.sha256)
        if small is None or any(h in request.headers for h in _CONDITIONAL):
            return None
        self.cache.touch(row.sha256)
        self.metrics.inc("hits_total")
        headers = {
            hdrs.CONTENT_TYPE: httpsem.content_type(target.path),
            hdrs.CACHE_CONTROL: httpsem.cache_control(target, self.cache.volatile(target.ts)),
            **small.headers,
        }
        return web.Response(body=small.body, headers=headers)

    def _blob_response(self, target: Target, row: BlobRow) -> BlobResponse:
        return BlobResponse(
            self.cache.blob_path(row.sha256),
            chunk_size=FILE_CHUNK,
            headers={
                hdrs.CONTENT_TYPE: httpsem.content_type(target.path),
                hdrs.CACHE_CONTROL: httpsem.cache_control(target, self.cache.volatile(target.ts)),
            },
        )

    async def _from_flight(
        self, request: web.BaseRequest, target: Target, flight: Flight
    ) -> web.StreamResponse:
        await flight.started()
        ranged = hdrs.RANGE in request.headers or hdrs.IF_RANGE in request.headers
        if flight.done.done() or ranged:
            # Ranges are served from the finished, verified blob (RFC 9110 §14.2).
            try:
                row = await asyncio.shield(flight.done)
            except Exception as exc:
                return error_response(exc)
            assert row is not None
            return await self._file(request, target, row)
        att = flight.attempt
        assert att is not None
        headers = {
            hdrs.CONTENT_TYPE: httpsem.content_type(target.path),
            hdrs.CACHE_CONTROL: httpsem.cache_control(target, self.cache.volatile(target.ts)),
        }
        if att.mtime:
            headers[hdrs.LAST_MODIFIED] = httpsem.http_date(att.mtime)
            if httpsem.not_modified(request.headers.get(hdrs.IF_MODIFIED_SINCE), att.mtime):
                return web.Response(status=304, headers=headers)
        resp = web.StreamResponse(status=200, headers=headers)
        if att.size is not None:
            resp.content_length = att.size
        await resp.prepare(request)
        if request.method == hdrs.METH_HEAD:
            return resp
        try:
            async for chunk in tee(flight, self.cache.blob_path, att.size):
                await resp.write(chunk)
        except Aborted as exc:
            # Never let a client take an unverified or short body for a complete one.
            log.info("aborting %s: %s", request.path, exc)
            if request.transport is not None:
                request.transport.abort()
            return resp
        await resp.write_eof()
        return resp
