"""The aiohttp shell: front doors (mirror paths, forward-proxy URIs), hits, tees, errors.

Decisions live in ``cache``/``httpsem``/``routing``; this module only maps them to
HTTP. Small hits come from memory, larger ones are ``blobresponse.BlobResponse``
(sendfile; conditional requests per RFC 9110 §13/§14); misses stream from the flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.abc import AbstractAccessLogger

from cache_proxy import httpsem, routing
from cache_proxy.accesslog import AccessLog
from cache_proxy.blobresponse import (
    CONDITIONAL,
    FILE_CHUNK,
    SMALL_BLOB,
    BlobResponse,
    open_blob,
)
from cache_proxy.board import Board
from cache_proxy.cache import Cache
from cache_proxy.config import ProxyConfig
from cache_proxy.flight import Aborted, Flight, tee
from cache_proxy.index import BlobRow
from cache_proxy.metrics import Metrics
from cache_proxy.pins import TooManyLeases, clamp_ttl
from cache_proxy.routing import BadTarget, Target
from cache_proxy.safety import http_logger, logsafe
from cache_proxy.upstream import NotFound, UpstreamError
from cache_proxy.verify import VerifyError

log = logging.getLogger("cache_proxy.app")
HTTP_LOG: Final = http_logger()

CACHE_KEY: Final = web.RequestKey("cache", str)
CACHE_HEADER: Final = "X-Cache"  # HIT, MISS or COALESCED, as squid and varnish say it
CLIENT_PROTOCOL: Final = "X-Reprobase-Client-Protocol"  # set by a load balancer in front
PIN_KEY: Final = web.RequestKey("pin", bool)  # served to a pinning client while a lease is open
PIN_HEADER: Final = "X-Reprobase-Pin"  # a hit worker's word to the primary: pin this one
PINS_PATH: Final = "/pins"
REFETCH_ROUNDS: Final = 3
SMALL_TOTAL: Final = 64 << 20
ANSWERS_MAX: Final = 65536
_READS: Final = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})
METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


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


@dataclass(frozen=True)
class Answer:
    """A whole warm-hit answer for one request path: sent again without any lookup."""

    sha256: str
    body: bytes
    headers: dict[str, str]


class SmallBlobs:
    """LRU of small blobs' bytes, bounded in total size, and the answers built from them.

    ``answers`` maps a request path (as sent) to its ready answer; only unconditional
    hits under immutable timestamps get one, and they all go whenever a blob
    leaves memory or the store, so an answer never outlives its bytes' welcome.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._items: OrderedDict[str, SmallBlob] = OrderedDict()
        self.answers: dict[str, Answer] = {}

    def remember(self, raw_path: str, answer: Answer) -> None:
        if len(self.answers) >= ANSWERS_MAX:
            self.answers.clear()
        self.answers[raw_path] = answer

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
            self.answers.clear()

    def clear(self) -> None:
        self._items.clear()
        self.answers.clear()
        self.size = 0


class AccessLogger(AbstractAccessLogger):
    """One line per request; also counts statuses and bytes served (even if not logging)."""

    owner: Front

    @property
    def enabled(self) -> bool:
        return True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        proxy = self.owner
        proxy.metrics.count_response(response.status, response.body_length)
        if proxy.access.enabled:
            # raw_path is the request target as sent: absolute-form for forward requests.
            # The method and target are the client's bytes: escaped, credentials redacted.
            proxy.access.write(
                f'{request.remote} "{logsafe(request.method, 32)} {logsafe(request.raw_path)}" '
                f"{response.status} {response.body_length} {request.get(CACHE_KEY, '-')} "
                f"{time:.4f}"
            )


class InternalLogger(AbstractAccessLogger):
    """The primary's door for its workers: they log and count their clients' requests."""

    @property
    def enabled(self) -> bool:
        return False

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        pass


def is_forward(request: web.BaseRequest) -> bool:
    """The request target is in absolute-form: apt is using us as its HTTP proxy."""
    return request.raw_path.startswith(("http://", "https://"))


def text_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


def error_response(exc: BaseException) -> web.Response:
    """Map a failure to one HTTP status at the edge; no credentials in what goes out."""
    if isinstance(exc, NotFound):
        return text_response(404, "not found upstream")
    if isinstance(exc, UpstreamError):
        return text_response(exc.status, f"upstream error: {logsafe(str(exc))}")
    if isinstance(exc, VerifyError):
        return text_response(502, f"upstream sent bad bytes: {logsafe(str(exc))}")
    if isinstance(exc, asyncio.TimeoutError):
        return text_response(504, f"upstream timed out: {logsafe(str(exc))}".rstrip(": "))
    log.error(
        "internal error: %s: %s",
        type(exc).__name__,
        logsafe(str(exc)),
        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
    )
    return text_response(502, f"proxy error: {type(exc).__name__}")


def _json(status: int, body: object) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body) + "\n", content_type="application/json"
    )


def speaks_http10(request: web.BaseRequest) -> bool:
    """The client is HTTP/1.0, here or behind a load balancer that says so in
    ``X-Reprobase-Client-Protocol`` (schedules/farm/nginx.conf): it has no chunked
    framing, so a body of unknown length must be verified before it is sent."""
    return (
        request.version < HttpVersion11
        or request.headers.get(CLIENT_PROTOCOL, "").strip().upper() == "HTTP/1.0"
    )


def end_broken(request: web.BaseRequest) -> None:
    """End a connection whose body cannot be completed: a reset (SO_LINGER 0), not a FIN,
    so that not even a close-delimited HTTP/1.0 body looks complete (RFC 9112 §6.3)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError, TypeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def peer_in(remote: str | None, nets: tuple[Any, ...]) -> bool:
    """Is the peer address ``remote`` in one of ``nets`` (IPv4-mapped IPv6 as IPv4)?"""
    if not remote:
        return False
    try:
        addr = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in nets)


class HitSource(Protocol):
    """What answering a hit needs: the primary's ``Cache`` or a worker's ``StoreReader``."""

    def lookup_hot(self, target: Target) -> BlobRow | None: ...
    def touch(self, sha256: str) -> None: ...
    def volatile(self, ts: str) -> bool: ...
    def blob_path(self, sha256: str) -> Path: ...


class Front:
    """The doors every process has: refusals, /healthz, and answering hits.

    ``serve`` decides what to do with an archive request that is not a hit
    already held in memory: the primary (``ProxyApp``) looks it up and downloads
    it; a hit worker (``workers.WorkerApp``) looks it up and relays misses.
    """

    source: HitSource

    def __init__(self, config: ProxyConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.small = SmallBlobs(SMALL_TOTAL)
        self.access = AccessLog(config.access_log)
        self.ready = False
        self.pin_nets = config.pin_nets

    def make_server(self, internal: bool = False) -> web.Server:
        """A low-level aiohttp server: four fixed doors need no router or middleware.

        ``internal``: the primary's door for its hit workers, whose requests the
        worker has already logged and counted.
        """
        trusted = internal

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await self.dispatch(request, trusted)
            except web.HTTPException:
                raise
            except Exception as exc:  # a request we cannot make sense of: one line, a 400
                log.warning(
                    "bad request from %s: %s: %s",
                    logsafe(str(request.remote)),
                    type(exc).__name__,
                    logsafe(str(exc)),
                )
                return text_response(400, "bad request")

        return web.Server(
            handler,
            logger=HTTP_LOG,
            access_log_class=self.access_logger_class(internal),
            access_log=log,
            handler_cancellation=False,  # a client leaving never cancels a download
        )

    def access_logger_class(self, internal: bool = False) -> type[AbstractAccessLogger]:
        proxy = self

        class Logger(AccessLogger):
            owner = proxy

        return InternalLogger if internal else Logger

    async def render_metrics(self) -> web.Response:
        return web.Response(
            body=self.metrics.render().encode(),
            headers={hdrs.CONTENT_TYPE: METRICS_TYPE},
        )

    def answers_current(self) -> bool:
        """False if remembered answers may name evicted blobs (then they are dropped)."""
        return True

    async def health(self) -> web.Response:
        """200 while serving; a failing background task makes it "degraded: ..." (still 200:
        hits and downloads work, an operator has something to fix)."""
        if not self.ready:
            return text_response(503, "starting")
        problems = self.health_problems()
        if problems:
            return text_response(200, "degraded: " + "; ".join(problems))
        return web.Response(text="ok")

    def health_problems(self) -> list[str]:
        """Background tasks that are failing (the proxy still serves)."""
        return []

    # ------------------------------------------------------------- build pins
    holds_pins = True  # False in a hit worker: the primary holds pins, it relays

    def pinning(self) -> bool:
        """A build's pin lease is open (see ``pins``)."""
        return False

    def pin_client(self, request: web.BaseRequest, trusted: bool) -> bool:
        """Do this request's blobs go to the open leases? A hit worker says so in
        ``X-Reprobase-Pin`` on the primary's own door; elsewhere the peer's address."""
        if trusted:
            return request.headers.get(PIN_HEADER) == "1"
        return peer_in(request.remote, self.pin_nets)

    def hold(self, sha256: str, size: int) -> None:
        """The open leases keep ``sha256`` (the primary's job)."""

    async def pins_door(self, request: web.BaseRequest) -> web.StreamResponse:
        return text_response(404, "no pins here")

    async def dispatch(self, request: web.BaseRequest, trusted: bool = False) -> web.StreamResponse:
        """Refuse CONNECT and foreign hosts: we cache our upstreams, we are no open proxy."""
        pin = self.pinning() and self.pin_client(request, trusted)
        if pin:
            request[PIN_KEY] = True
        answer = self.small.answers.get(request.raw_path)
        if (
            answer is not None
            and request.method in _READS
            and (self.holds_pins or not pin)
            and self.answers_current()
            and not any(h in request.headers for h in CONDITIONAL)
        ):
            # The same request as before, answered as before: nothing to look up.
            request[CACHE_KEY] = "HIT"
            self.source.touch(answer.sha256)
            if pin:
                self.hold(answer.sha256, len(answer.body))
            self.metrics.inc("hits_total")
            return web.Response(body=answer.body, headers=answer.headers)
        if request.method == hdrs.METH_CONNECT:
            return text_response(405, "CONNECT is refused: this proxy only caches Debian archives")
        if (request.path == PINS_PATH or request.path.startswith(PINS_PATH + "/")) and not (
            is_forward(request)
        ):
            if not trusted and not peer_in(request.remote, self.pin_nets):
                return text_response(403, "/pins is not served to this address")
            return await self.pins_door(request)
        if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
            return text_response(405, "only GET and HEAD")
        path = request.path
        if is_forward(request):  # RFC 9112 §3.2.2 absolute-form: forward proxy
            url = request.url
            if url.scheme != "http" or not routing.forward_host_allowed(
                url.host, url.port, self.config.allowed_hosts
            ):
                shown = logsafe(str(url.host), 256)
                return text_response(403, f"host {shown} is not an upstream of this proxy")
            if not path.startswith(("/archive/", "/file/")):
                return text_response(
                    404, "only /archive/<archive>/<timestamp>/ and /file/<sha1> URLs are served"
                )
        elif path == "/healthz":
            return await self.health()
        elif path == "/metrics":
            nets = self.config.metrics_nets
            if nets is not None and not trusted and not peer_in(request.remote, nets):
                return text_response(403, "/metrics is not served to this address")
            return await self.render_metrics()
        return await self.archive(request)

    async def archive(self, request: web.BaseRequest) -> web.StreamResponse:
        """``/archive/<archive>/<timestamp>/<path>``, or snapshot's ``/file/<sha1>``."""
        target = routing.parse_file_path(request.path)
        if target is None:
            try:
                target = routing.parse_archive_path(request.path, self.config.archives)
            except BadTarget as exc:
                return text_response(404, str(exc))
        return await self.serve(request, target)

    async def serve(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        raise NotImplementedError

    def _headers(self, request: web.BaseRequest, target: Target) -> dict[str, str]:
        return {
            hdrs.CONTENT_TYPE: httpsem.content_type(target.path),
            hdrs.CACHE_CONTROL: httpsem.cache_control(target, self.source.volatile(target.ts)),
            CACHE_HEADER: request.get(CACHE_KEY, "HIT"),
        }

    async def _file(
        self, request: web.BaseRequest, target: Target, row: BlobRow
    ) -> web.StreamResponse:
        """A stored blob (its hit is already counted)."""
        if row.size <= SMALL_BLOB and not any(h in request.headers for h in CONDITIONAL):
            # Small, unconditional hits from memory: no file system round trips at all.
            fast = self._small_response(request, target, row, count=False)
            if fast is not None:
                return fast
            loop = asyncio.get_running_loop()
            path = self.source.blob_path(row.sha256)
            small = await loop.run_in_executor(None, SmallBlob.load, path)
            self.small.put(row.sha256, small)
            headers = self._headers(request, target)
            headers.update(small.headers)
            return web.Response(body=small.body, headers=headers)
        return self._blob_response(request, target, row)

    def _small_response(
        self, request: web.BaseRequest, target: Target, row: BlobRow, count: bool = True
    ) -> web.Response | None:
        """A small blob already in memory, for a request with no conditions or ranges."""
        small = self.small.get(row.sha256)
        if small is None or any(h in request.headers for h in CONDITIONAL):
            return None
        self.source.touch(row.sha256)
        if count:
            self.metrics.inc("hits_total")
        headers = self._headers(request, target)
        headers.update(small.headers)
        if not self.source.volatile(target.ts):
            memo = {**headers, CACHE_HEADER: "HIT"}
            self.small.remember(request.raw_path, Answer(row.sha256, small.body, memo))
        return web.Response(body=small.body, headers=headers)

    def _blob_response(
        self, request: web.BaseRequest, target: Target, row: BlobRow
    ) -> BlobResponse:
        return open_blob(  # FileNotFoundError: evicted since the lookup
            self.source.blob_path(row.sha256),
            chunk_size=FILE_CHUNK,
            headers=self._headers(request, target),
        )


class ProxyApp(Front):
    """The primary: the one process that downloads, verifies, writes and evicts."""

    def __init__(self, config: ProxyConfig, board: Board | None = None) -> None:
        super().__init__(config, Metrics())
        self.board = board
        self.cache = Cache(config, self.metrics, on_evict=self._evicted)
        self.source = self.cache
        self.cache.pins.on_change = self._pins_changed

    def health_problems(self) -> list[str]:
        return self.cache.problems()

    def _evicted(self) -> None:
        self.small.clear()
        if self.board is not None:
            self.board.bump_generation()  # hit workers forget the blobs they remember

    # ------------------------------------------------------------- build pins
    def pinning(self) -> bool:
        # Without a size cap nothing is evicted: a lease has nothing to hold, and hit
        # workers keep answering the build's hits themselves.
        return self.config.max_size is not None and self.cache.pins.active

    def hold(self, sha256: str, size: int) -> None:
        self.cache.pins.hold(sha256, size)

    def _hold_when_done(self, done: asyncio.Future[BlobRow | None]) -> None:
        if not done.cancelled() and done.exception() is None:
            row = done.result()
            if row is not None:
                self.hold(row.sha256, row.size)

    def _pins_changed(self, active: bool) -> None:
        if self.board is not None and self.config.max_size is not None:
            self.board.set_pinning(active)  # workers relay pinning clients meanwhile

    def _pin_metrics(self) -> None:
        pins = self.cache.pins
        pins.expire()
        self.metrics.set("pin_leases", len(pins.leases))
        self.metrics.set("pinned_bytes", pins.bytes)
        self.metrics.set("pins_refused", pins.refused)

    async def pins_door(self, request: web.BaseRequest) -> web.StreamResponse:
        """``POST /pins[?ttl=S]`` opens a lease, ``POST /pins/<lease>[?ttl=S]`` renews it,
        ``DELETE /pins/<lease>`` ends it, ``GET /pins`` lists them (see ``pins``)."""
        pins = self.cache.pins
        lease_id = request.path[len(PINS_PATH) + 1 :]
        now = pins.clock()
        try:
            if request.method == hdrs.METH_GET and not lease_id:
                return _json(200, pins.report())
            if request.method == hdrs.METH_POST:
                try:
                    ttl = clamp_ttl(request.query.get("ttl"))
                except ValueError as exc:
                    return text_response(400, str(exc))
                if not lease_id:
                    try:
                        lease = pins.open(ttl)
                    except TooManyLeases as exc:
                        return text_response(429, str(exc))
                    log.info("pin lease %s opened for %.0f s", lease.id, ttl)
                    return _json(201, lease.report(now))
                renewed = pins.renew(lease_id, ttl)
                if renewed is None:
                    return text_response(404, "no such pin lease (ended or expired)")
                return _json(200, renewed.report(now))
            if request.method == hdrs.METH_DELETE and lease_id:
                ended = pins.release(lease_id)
                if ended is None:
                    return text_response(404, "no such pin lease (ended or expired)")
                log.info("pin lease %s released: %s", ended.id, ended.report(now))
                return _json(200, ended.report(now))
            return text_response(405, "POST /pins, POST or DELETE /pins/<lease>, GET /pins")
        finally:
            self._pin_metrics()

    async def render_metrics(self) -> web.Response:
        self._pin_metrics()
        also = self.board.totals() if self.board is not None else None
        return web.Response(
            body=self.metrics.render(also).encode(),
            headers={hdrs.CONTENT_TYPE: METRICS_TYPE},
        )

    async def startup(self) -> None:
        self.access.start()
        try:
            await self.cache.open()
        except BaseException:
            await self.cleanup()  # a refused start leaves no thread or task behind
            raise
        self.ready = True

    async def cleanup(self) -> None:
        self.ready = False
        await self.cache.close()
        await self.access.close()

    # ------------------------------------------------------------------ serving
    async def serve(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        pin = request.get(PIN_KEY, False)
        hot = self.cache.lookup_hot(target)
        if hot is not None:  # the warm-hit fast path: no awaits before the answer
            request[CACHE_KEY] = "HIT"
            fast = self._small_response(request, target, hot)
            if fast is not None:
                if pin:
                    self.hold(hot.sha256, hot.size)
                return fast
        for _ in range(REFETCH_ROUNDS):
            try:
                found = await self.cache.lookup(target)
            except Exception as exc:
                return error_response(exc)
            if isinstance(found, BlobRow):
                request[CACHE_KEY] = "HIT"
                stored = await self._stored(request, target, found)
                if stored is None:
                    continue  # evicted between lookup and open: look again (a miss now)
                if pin:
                    self.hold(found.sha256, found.size)  # before its serving pin goes
                return stored
            flight = found
            request[CACHE_KEY] = "MISS" if flight.waiters == 1 else "COALESCED"
            if pin and not flight.refetch:
                flight.done.add_done_callback(self._hold_when_done)
            if flight.refetch:
                try:
                    await asyncio.shield(flight.done)
                except Exception as exc:
                    return error_response(exc)
                continue
            return await self._from_flight(request, target, flight)
        return text_response(502, "file vanished while being stored")

    async def _stored(
        self, request: web.BaseRequest, target: Target, row: BlobRow
    ) -> web.StreamResponse | None:
        """A stored blob, pinned against eviction until its file is open; None if it is gone.

        Eviction never deletes a pinned blob, and a blob being deleted cannot be
        pinned: its deletion is awaited and the caller looks the file up again.
        """
        cache = self.cache
        deleting = cache.pin(row.sha256)
        if deleting is not None:
            await asyncio.shield(deleting)
            return None
        pinned = True
        try:
            if self.small.get(row.sha256) is None:
                os.stat(cache.blob_path(row.sha256))  # cached metadata: microseconds
            resp = await self._file(request, target, row)
            if isinstance(resp, BlobResponse):
                resp.released = lambda: cache.unpin(row.sha256)
                pinned = False  # the response unpins once it has the file open
            return resp
        except FileNotFoundError:
            cache.forget(row.sha256)  # an index row without its file: fetch it again
            return None
        finally:
            if pinned:
                cache.unpin(row.sha256)

    async def _from_flight(
        self, request: web.BaseRequest, target: Target, flight: Flight
    ) -> web.StreamResponse:
        """Stream a download in progress to a client, under one rule:

        **no client may take a body for complete unless it was verified.** The length
        is sent when known (announced by upstream, or from the Release/Packages
        chain) and the final byte is held back until the whole download passed
        every check (``flight.tee``). When the length is not known, an HTTP/1.1
        client gets chunked framing whose last chunk is only written after
        verification; an HTTP/1.0 client has no framing that could say "cut"
        (the end of a close-delimited body is the end of the body), so it waits for
        the verified blob and gets it with its Content-Length. A failed download
        ends the connection with a reset (``end_broken``), never a clean close.
        """
        await flight.started()
        ranged = hdrs.RANGE in request.headers or hdrs.IF_RANGE in request.headers
        unframed = speaks_http10(request) and (
            flight.attempt is None or flight.attempt.size is None
        )
        if flight.done.done() or ranged or unframed:
            # Ranges are served from the finished, verified blob (RFC 9110 §14.2).
            try:
                row = await asyncio.shield(flight.done)
            except Exception as exc:
                return error_response(exc)
            assert row is not None
            stored = await self._stored(request, target, row)
            return stored if stored is not None else text_response(503, "evicted; ask again")
        att = flight.attempt
        assert att is not None
        headers = self._headers(request, target)
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
            log.info("aborting %s: %s", logsafe(request.path), exc)
            end_broken(request)
            return resp
        await resp.write_eof()
        return resp
