"""Run the proxy: bind, start hit workers, announce the port, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from typing import Final

from aiohttp import web

from cache_proxy import sendfile
from cache_proxy.app import ProxyApp
from cache_proxy.board import Board
from cache_proxy.config import ProxyConfig
from cache_proxy.workers import Workers

log = logging.getLogger("cache_proxy.server")
SHUTDOWN_TIMEOUT: Final = 5.0
LISTEN_BACKLOG: Final = 1024


def write_port_file(path: Path, address: str) -> None:
    """Atomically: readers see no file or the whole ``host:port`` line."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(address)
    os.replace(tmp, path)


def _addresses(host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen: list[tuple[int, tuple[str, int]]] = []
    for family, _, _, _, addr in infos:
        entry = (int(family), (str(addr[0]), int(addr[1])))
        if entry not in seen:
            seen.append(entry)
    return seen


def _listener(family: int, addr: tuple[str, int], reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_listeners(
    host: str, port: int, reuse_port: bool, joining: bool = False
) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` on one port (port 0: a free one).

    With ``reuse_port`` the port is first bound without it (unless ``joining``
    the primary's port), so that a port some other program, or another proxy,
    holds still fails with EADDRINUSE instead of silently sharing its connections.
    """
    addresses = _addresses(host, port)
    if reuse_port and not joining:
        family, addr = addresses[0]
        probe = _listener(family, addr, reuse_port=False)
        port = probe.getsockname()[1]
        for family, addr in addresses[1:]:
            _listener(family, (addr[0], port), reuse_port=False).close()
        probe.close()
    socks: list[socket.socket] = []
    try:
        for family, addr in addresses:
            sock = _listener(family, (addr[0], port or addr[1]), reuse_port)
            socks.append(sock)
            port = port or sock.getsockname()[1]
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


class ProxyServer:
    """The proxy on a socket; ``start`` returns once it is listening and ready.

    With ``config.workers`` > 1 this process is the primary and the others are
    hit workers (see ``workers``) sharing its port.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.board = Board.create(config.workers - 1) if config.workers > 1 else None
        self.proxy = ProxyApp(config, self.board)
        self._runner: web.ServerRunner | None = None
        self._internal: web.ServerRunner | None = None
        self._private: Path | None = None
        self.workers: Workers | None = None
        self._started = False
        self.port = 0

    @property
    def internal_socket(self) -> Path | None:
        """The Unix socket hit workers relay to (None with a single process)."""
        return self._private / "primary.sock" if self._private is not None else None

    @property
    def address(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        return f"[{shown}]:{self.port}" if ":" in shown else f"{shown}:{self.port}"

    async def start(self) -> str:
        await self.proxy.startup()
        self._started = True
        try:
            await self._listen()
        except BaseException:
            await self.stop()  # close the cache and its upstream session before failing
            raise
        if self.config.port_file is not None:
            write_port_file(self.config.port_file, self.address)
        log.info(
            "cache proxy listening on %s (cache %s, %d process%s)",
            self.address,
            self.config.cache_dir,
            self.config.workers,
            "" if self.config.workers == 1 else "es",
        )
        return self.address

    async def _listen(self) -> None:
        multi = self.board is not None
        socks = bind_listeners(self.config.host, self.config.port, reuse_port=multi)
        self.port = int(socks[0].getsockname()[1])
        self._runner = web.ServerRunner(self.proxy.make_server(), shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        for sock in socks:
            await web.SockSite(self._runner, sock, backlog=LISTEN_BACKLOG).start()
        if self.board is None:
            return
        # Workers reach us through a socket only our user can open.
        self._private = Path(tempfile.mkdtemp(prefix="reprobase-proxy-"))
        primary = self._private / "primary.sock"
        self._internal = web.ServerRunner(
            self.proxy.make_server(internal=True), shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._internal.setup()
        await web.UnixSite(self._internal, str(primary), backlog=LISTEN_BACKLOG).start()
        host, port = self.config.host, self.port
        workers = Workers(
            self.config,
            self.board,
            primary,
            lambda: bind_listeners(host, port, reuse_port=True, joining=True),
        )
        self.workers = workers
        await workers.start()

    async def stop(self) -> None:
        if self.workers is not None:
            await self.workers.stop()  # they relay to us: they go first
            self.workers = None
        for runner in (self._internal, self._runner):
            if runner is not None:
                await runner.cleanup()
        self._internal = self._runner = None
        if self._started:
            self._started = False
            await self.proxy.cleanup()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
        if self.board is not None:
            self.board.close()
            self.board = None


async def serve_forever(config: ProxyConfig) -> None:
    server = ProxyServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        log.info("cache proxy stopping")
        sendfile.shutdown()  # a stalled client must not keep the process alive
        await server.stop()
