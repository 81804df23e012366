"""Shared fixtures for the cache proxy tests: a fake snapshot server and proxies on it.

Import into a test module with ``from tests.proxy_fixtures import *``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cache_proxy.config import Mode, ProxyConfig, RetryPolicy
from cache_proxy.server import ProxyServer
from tests.fakesnap import FakeSnapshot, Run, make_runs

__all__ = ["BIG", "RUNS", "SEC_RUNS", "Proxy", "big_fake", "fake", "http", "make_proxy", "metric"]

RUNS = ["20240101T000000Z", "20240102T000000Z", "20240103T000000Z"]
BIG = "pool/main/b/big/big_1.0_all.deb"  # big_fake's 3 MiB package: a hit sent with sendfile
SEC_RUNS = ["20240101T060000Z", "20240102T060000Z"]
FAST_RETRY = RetryPolicy(attempts=4, backoff_initial=0.01, backoff_max=0.05, retry_after_max=5.0)


def default_runs() -> dict[str, list[Run]]:
    return {
        "debian": make_runs("debian", "bookworm", RUNS),
        "debian-security": make_runs("debian-security", "bookworm-security", SEC_RUNS, seed=2),
    }


@dataclasses.dataclass
class Proxy:
    server: ProxyServer
    url: str  # http://127.0.0.1:PORT

    @property
    def metrics(self) -> Any:
        return self.server.proxy.metrics

    def archive_url(self, archive: str, ts: str, path: str) -> str:
        return f"{self.url}/archive/{archive}/{ts}/{path}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSnapshot]:
    server = FakeSnapshot(default_runs())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def big_fake() -> AsyncIterator[FakeSnapshot]:
    """Debian runs with one 3 MiB package (``BIG``) besides the small ones."""
    rng = random.Random(11)
    server = FakeSnapshot(
        {"debian": make_runs("debian", "bookworm", RUNS, extra={BIG: rng.randbytes(3 << 20)})}
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_proxy(
    tmp_path: Path, fake: FakeSnapshot
) -> AsyncIterator[Callable[..., Awaitable[Proxy]]]:
    started: list[ProxyServer] = []

    async def start(record: bool = False, cache_dir: Path | None = None, **overrides: Any) -> Proxy:
        settings: dict[str, Any] = {
            "cache_dir": cache_dir or tmp_path / "cache",
            "upstreams": (fake.mirror_base if record else fake.snapshot_base,),
            "mode": Mode.RECORD if record else Mode.SNAPSHOT,
            "host": "127.0.0.1",
            "port": 0,
            "retry": FAST_RETRY,
            "access_log": None,
            "record_window": None,  # the fake mirror is recorded under fixed past timestamps
        }
        settings.update(overrides)
        config = ProxyConfig(**settings)
        server = ProxyServer(config)
        await server.start()
        started.append(server)
        return Proxy(server, f"http://{server.address}")

    yield start
    for server in reversed(started):
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def metric(proxy: Proxy, name: str, **labels: str) -> float:
    value: float = proxy.metrics.get(name, **labels)
    return value
