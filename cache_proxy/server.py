"""Run the proxy: bind, announce the port, serve until SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Final

from aiohttp import web

from cache_proxy.app import ProxyApp
from cache_proxy.config import ProxyConfig

log = logging.getLogger("cache_proxy.server")
SHUTDOWN_TIMEOUT: Final = 5.0


def write_port_file(path: Path, address: str) -> None:
    """Atomically: readers see no file or the whole ``host:port`` line."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(address)
    os.replace(tmp, path)


class ProxyServer:
    """The proxy on a socket; ``start`` returns once it is listening and ready."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.proxy = ProxyApp(config)
        self._runner: web.ServerRunner | None = None
        self.port = 0

    @property
    def address(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        return f"[{shown}]:{self.port}" if ":" in shown else f"{shown}:{self.port}"

    async def start(self) -> str:
        await self.proxy.startup()
        self._runner = web.ServerRunner(self.proxy.make_server(), shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.config.host, self.config.port, backlog=1024, reuse_address=True
        )
        try:
            await site.start()
        except OSError:
            await self.stop()  # close the cache and its upstream session before failing
            raise
        for bound in self._runner.addresses:
            if isinstance(bound, tuple | list) and len(bound) >= 2:
                self.port = int(bound[1])
                break
        if self.config.port_file is not None:
            write_port_file(self.config.port_file, self.address)
        log.info("cache proxy listening on %s (cache %s)", self.address, self.config.cache_dir)
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            await self.proxy.cleanup()


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
        await server.stop()
