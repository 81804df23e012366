"""The aiohttp shell: front doors (mirror paths, forward-proxy URIs), hits, tees, errors.

Decisions live in ``cache``/``httpsem``/``routing``; this module only maps them to
HTTP. Hits are ``FileResponse`` (sendfile, and aiohttp implements Range/If-Range
per RFC 9110 §14 and If-Modified-Since per §13.1.3); misses stream from the flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractAccessLogger, AbstractStreamWriter

from cache_proxy import httpsem, routing
from cache_proxy.cache import Cache
from cache_proxy.config import ProxyConfig
from cache_proxy.flight import Aborted, Flight, tee
from cache_proxy.index import BlobRow
from cache_proxy.metrics import Metrics
from cache_proxy.routing import BadTarget, Target
from cache_proxy.upstream import NotFound, UpstreamError
from cache_proxy.verify import VerifyError

log = logging.getLogger("cache_proxy.app")
access_log = logging.getLogger("cache_proxy.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CACHE_KEY: Final = web.RequestKey("cache", str)
APP_KEY: Final[web.AppKey[ProxyApp]] = web.AppKey("proxy")
REFETCH_ROUNDS: Final = 3
FILE_CHUNK: Final = 256 * 1024


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


class AccessLogger(AbstractAccessLogger):
    """One line per request; also counts statuses and bytes served (even if not logging)."""

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        proxy = request.app[APP_KEY] if isinstance(request, web.Request) else None
        if proxy is not None:
            proxy.metrics.inc("requests_total", status=str(response.status))
            proxy.metrics.inc("served_bytes_total", response.body_length)
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s "%s %s" %d %d %s %.4f',
                request.remote,
                request.method,
                str(request.url) if is_forward(request) else request.path_qs,
                response.status,
                response.body_length,
                request.get(CACHE_KEY, "-") if isinstance(request, web.Request) else "-",
                time,
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
        self.cache = Cache(config, self.metrics)
        self.ready = False

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._front_door])
        app[APP_KEY] = self
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/archive/{tail:.+}", self.archive)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app: web.Application) -> None:
        await self.cache.open()
        self.ready = True

    async def _cleanup(self, app: web.Application) -> None:
        self.ready = False
        await self.cache.close()

    @web.middleware
    async def _front_door(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse CONNECT and foreign hosts: we are a cache for our upstreams, not a proxy."""
        if request.method == hdrs.METH_CONNECT:
            return _text(405, "CONNECT is refused: this proxy only caches Debian archives")
        if is_forward(request):  # RFC 9112 §3.2.2 absolute-form: forward proxy
            url = request.url
            if url.scheme != "http" or not routing.forward_host_allowed(
                url.host, url.port, self.config.allowed_hosts
            ):
                return _text(403, f"host {url.host} is not an upstream of this proxy")
            if not request.path.startswith("/archive/"):
                return _text(404, "only /archive/<archive>/<timestamp>/ URLs are served")
        response: web.StreamResponse = await handler(request)
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok") if self.ready else _text(503, "starting")

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render().encode(),
            headers={hdrs.CONTENT_TYPE: "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def archive(self, request: web.Request) -> web.StreamResponse:
        try:
            target = routing.parse_archive_path(request.path, self.config.archives)
        except BadTarget as exc:
            return _text(404, str(exc))
        return await self.serve(request, target)

    # ------------------------------------------------------------------ serving
    async def serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        for _ in range(REFETCH_ROUNDS):
            try:
                found = await self.cache.lookup(target)
            except Exception as exc:
                return error_response(exc)
            if isinstance(found, BlobRow):
                request[CACHE_KEY] = "HIT"
                return self._file(target, found)
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

    def _file(self, target: Target, row: BlobRow) -> BlobResponse:
        return BlobResponse(
            self.cache.blob_path(row.sha256),
            chunk_size=FILE_CHUNK,
            headers={
                hdrs.CONTENT_TYPE: httpsem.content_type(target.path),
                hdrs.CACHE_CONTROL: httpsem.cache_control(target, self.cache.volatile(target.ts)),
            },
        )

    async def _from_flight(
        self, request: web.Request, target: Target, flight: Flight
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
            return self._file(target, row)
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
