"""Hit workers: more processes answering warm hits, one primary doing everything else.

One Python process saturates one core on warm hits (HTTP parsing and the
response machinery, not the copying, dominate). So the proxy runs ``--workers
N`` processes on one port (``SO_REUSEPORT``: the kernel spreads connections).
Only the primary downloads, verifies, writes the index, evicts and keeps the
single-flight table; a worker answers what is already stored and aliased (see
``reader``), and relays every other request to the primary over a Unix socket in
a private directory, streaming the answer back. Single flight therefore stays in
one process, and a relayed body that ends short is aborted, never completed.

Workers are spawned (not forked: the primary has threads by then) as
``python -m cache_proxy.workers``; their spec arrives pickled on stdin, and
stdin reaching EOF means the primary died, so a worker never outlives it.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import hdrs, web

from cache_proxy import sendfile
from cache_proxy.app import (
    CACHE_HEADER,
    CACHE_KEY,
    METRICS_TYPE,
    PIN_HEADER,
    PIN_KEY,
    Front,
    end_broken,
    text_response,
)
from cache_proxy.board import Board
from cache_proxy.config import ProxyConfig
from cache_proxy.loop import run_loop
from cache_proxy.metrics import RowMetrics
from cache_proxy.reader import StoreReader
from cache_proxy.routing import Target
from cache_proxy.safety import logsafe

log = logging.getLogger("cache_proxy.workers")

READY: Final = b"ready\n"
PRIMARY: Final = "http://primary.invalid"  # the Unix socket connector ignores the host
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 15.0
SHUTDOWN_TIMEOUT: Final = 5.0
HEALTH_SECONDS: Final = 2.0  # a primary slower than this to say ok is not healthy
LISTEN_BACKLOG: Final = 1024
# RFC 9110 §7.6.1: connection-specific fields are not relayed.
_HOP_BY_HOP: Final = frozenset(
    h.lower()
    for h in (
        hdrs.CONNECTION,
        "Keep-Alive",
        hdrs.PROXY_AUTHENTICATE,
        hdrs.PROXY_AUTHORIZATION,
        hdrs.TE,
        hdrs.TRAILER,
        hdrs.TRANSFER_ENCODING,
        hdrs.UPGRADE,
        hdrs.HOST,
        "Proxy-Connection",
        PIN_HEADER,  # the worker's own word to the primary, never a client's
    )
)
_NO_BODY: Final = frozenset({204, 304})


@dataclass(frozen=True)
class WorkerSpec:
    config: ProxyConfig
    row: int  # this worker's row on the board
    rows: int
    board_fd: int
    listen_fds: tuple[int, ...]
    primary: str  # the primary's Unix socket


def _relayed(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]


class WorkerApp(Front):
    def __init__(self, config: ProxyConfig, board: Board, row: int, primary: str) -> None:
        super().__init__(config, RowMetrics(board.row(row)))
        self.reader = StoreReader(config, board)
        self.source = self.reader
        self.primary = primary
        self._session: aiohttp.ClientSession | None = None
        # HTTP/1.0 clients are relayed as HTTP/1.0: the primary decides framing by the
        # client's version (see ProxyApp._from_flight), and such a client needs a length.
        self._session10: aiohttp.ClientSession | None = None

    def _primary_session(self, version: aiohttp.HttpVersion) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(self.primary, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=(hdrs.USER_AGENT, hdrs.ACCEPT_ENCODING, hdrs.ACCEPT),
            version=version,
        )

    async def startup(self) -> None:
        self.access.start()
        await self.reader.open()
        self._session = self._primary_session(aiohttp.HttpVersion11)
        self._session10 = self._primary_session(aiohttp.HttpVersion10)
        self.ready = True

    async def cleanup(self) -> None:
        self.ready = False
        for session in (self._session, self._session10):
            if session is not None:
                await session.close()
        await self.reader.close()
        await self.access.close()

    async def render_metrics(self) -> web.Response:
        """The primary sums every process's counters."""
        assert self._session is not None
        try:
            async with self._session.get(f"{PRIMARY}/metrics") as resp:
                body = await resp.read()
                return web.Response(
                    status=resp.status, body=body, headers={hdrs.CONTENT_TYPE: METRICS_TYPE}
                )
        except aiohttp.ClientError as exc:
            return text_response(503, f"primary unavailable: {exc}")

    async def health(self) -> web.Response:
        """Healthy only while the primary answers: a probe may land on any process, and
        a worker that says ok for a stuck primary would hide it (misses go there)."""
        if not self.ready:
            return text_response(503, "starting")
        assert self._session is not None
        try:
            async with self._session.get(
                f"{PRIMARY}/healthz", timeout=aiohttp.ClientTimeout(total=HEALTH_SECONDS)
            ) as resp:
                if resp.status == 200:
                    return web.Response(text="ok")
                return text_response(503, f"primary: {(await resp.text()).strip()}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return text_response(503, f"primary unavailable: {exc or 'no answer'}")

    def answers_current(self) -> bool:
        if self.reader.current():
            return True
        self.small.clear()  # the primary evicted blobs: forget every remembered answer
        return False

    # ------------------------------------------------------------- build pins
    holds_pins = False

    def pinning(self) -> bool:
        return self.reader.board.pinning

    async def pins_door(self, request: web.BaseRequest) -> web.StreamResponse:
        """Leases live in the primary (the peer was checked here): relay."""
        assert self._session is not None
        try:
            async with self._session.request(
                request.method, f"{PRIMARY}{request.rel_url}", allow_redirects=False
            ) as up:
                return web.Response(
                    status=up.status, body=await up.read(), headers=_relayed(up.headers.items())
                )
        except aiohttp.ClientError as exc:
            return text_response(503, f"primary unavailable: {exc}")

    async def serve(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        if request.get(PIN_KEY, False):
            # A build's lease is open and this is a pinning client: the primary serves
            # it, so that it holds the blob before a byte goes out.
            return await self.relay(request, target)
        reader = self.reader
        self.answers_current()
        hot = reader.lookup_hot(target)
        if hot is not None:  # the warm-hit fast path: no awaits before the answer
            request[CACHE_KEY] = "HIT"
            fast = self._small_response(request, target, hot)
            if fast is not None:
                return fast
        row = hot or await reader.lookup(target)
        if row is not None:
            request[CACHE_KEY] = "HIT"
            try:
                # The blob is opened here (blobresponse): once we answer, eviction
                # cannot turn the answer into a 404.
                resp = await self._file(request, target, row)
            except FileNotFoundError:
                pass  # evicted under us: the primary will fetch it again
            else:
                reader.touch(row.sha256)
                self.metrics.inc("hits_total")
                return resp
        return await self.relay(request, target)

    async def relay(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        """Ask the primary, stream its answer; a short body is aborted, never completed."""
        assert self._session is not None and self._session10 is not None
        url = f"{PRIMARY}{target.request_path}"
        session = self._session10 if request.version < aiohttp.HttpVersion11 else self._session
        try:
            up = await session.request(
                request.method,
                url,
                headers=[
                    *_relayed(request.headers.items()),
                    *([(PIN_HEADER, "1")] if request.get(PIN_KEY, False) else []),
                ],
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            return text_response(503, f"primary unavailable: {exc}")
        async with up:
            request[CACHE_KEY] = up.headers.get(CACHE_HEADER, "-")
            resp = web.StreamResponse(status=up.status, headers=_relayed(up.headers.items()))
            await resp.prepare(request)
            if request.method == hdrs.METH_HEAD or up.status in _NO_BODY:
                return resp
            sent = 0
            try:
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                    sent += len(chunk)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                log.info("aborting %s: primary's answer broke off: %s", logsafe(target.path), exc)
                end_broken(request)
                return resp
            except ConnectionResetError:
                return resp  # the client left; the primary's download goes on
            if up.content_length is not None and sent != up.content_length:
                end_broken(request)
                return resp
            await resp.write_eof()
            return resp


# ------------------------------------------------------------------ the worker
async def run_worker(spec: WorkerSpec) -> None:
    board = Board(spec.board_fd, spec.rows)
    app = WorkerApp(spec.config, board, spec.row, spec.primary)
    await app.startup()
    runner = web.ServerRunner(app.make_server(), shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    for fd in spec.listen_fds:
        sock = socket.socket(fileno=fd)
        await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    class Orphaned(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stop.set()  # the primary is gone: stop taking connections at once

    await loop.connect_read_pipe(Orphaned, sys.stdin)
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    try:
        await stop.wait()
    finally:
        sendfile.shutdown()
        await runner.cleanup()
        await app.cleanup()
        board.close()


def main() -> int:
    spec = pickle.load(sys.stdin.buffer)
    if not isinstance(spec, WorkerSpec):
        print("error: cache_proxy.workers is started by the proxy itself", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_loop(run_worker(spec))
    return 0


# ----------------------------------------------------------------- the primary
class Workers:
    """The primary's hit workers: started, watched, restarted, stopped."""

    def __init__(
        self,
        config: ProxyConfig,
        board: Board,
        primary: Path,
        bind: Callable[[], list[socket.socket]],
    ) -> None:
        self.config = config
        self.board = board
        self.primary = primary
        self.bind = bind
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(row) for row in range(self.board.rows)))

    async def _spawn(self, row: int) -> None:
        socks = self.bind()
        try:
            fds = tuple(s.fileno() for s in socks)
            spec = WorkerSpec(
                self.config, row, self.board.rows, self.board.fd, fds, str(self.primary)
            )
            argv = [sys.executable, "-m", "cache_proxy.workers"]
            log.info("starting hit worker %d: %s", row, " ".join(argv))
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(*fds, self.board.fd),
            )
        finally:
            for s in socks:
                s.close()  # the worker holds them now; a dead worker's sockets close with it
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(pickle.dumps(spec))
        await proc.stdin.drain()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line != READY:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"hit worker {row} did not start (exit status {proc.returncode})")
        self.procs[row] = proc
        task = asyncio.create_task(self._watch(row, proc))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, row: int, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if self._stopping:
            return
        log.error("hit worker %d exited with status %s; starting another", row, code)
        try:
            await self._spawn(row)
        except Exception as exc:
            log.error("could not restart hit worker %d: %s", row, exc)

    async def stop(self) -> None:
        self._stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for row, proc in self.procs.items():
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("hit worker %d did not stop; killing it", row)
                proc.kill()
                await proc.wait()
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


if __name__ == "__main__":
    # Run the imported module, not __main__, so the pickled spec's class matches.
    from cache_proxy import workers

    sys.exit(workers.main())
