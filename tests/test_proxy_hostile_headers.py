"""An upstream answer whose header block breaks a bound, from the only mirror: one clear
line to the client and in the log, never the upstream's bytes, and nothing stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.fakesnap import FakeSnapshot, sha1
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import RUNS, Proxy, metric

MakeProxy = Callable[..., Awaitable[Proxy]]
POOL = "pool/main/p/pkg1/pkg1_1.0_all.deb"


def stored_files(cache_dir: Path) -> list[Path]:
    return [p for d in ("blobs", "tmp") for p in (cache_dir / d).rglob("*") if p.is_file()]


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as resp:
        return resp.status, (await resp.read()).decode("latin-1")


async def test_an_oversized_header_from_the_only_mirror_is_one_line_and_not_stored(
    fake: FakeSnapshot,
    make_proxy: MakeProxy,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await make_proxy()
    want = fake.runs["debian"][0].files[POOL]
    door = f"/file/{sha1(want)}"
    fake.inject(door, "bigheader", times=1)  # a 64 KiB header field of "x"
    url = proxy.archive_url("debian", RUNS[0], POOL)
    with caplog.at_level(logging.INFO, logger="cache_proxy"):
        status, text = await get(http, url)
    assert status == 502
    assert text == (
        "upstream error: upstream sent a header line over 8190 bytes: refused, nothing stored\n"
    )
    assert fake.count(door) == 1  # that mirror is given up, not asked again and again
    assert metric(proxy, "refused_total", reason="header") == 1
    assert stored_files(proxy.server.config.cache_dir) == []
    lines = [r.getMessage() for r in caplog.records]
    assert any("header line over 8190 bytes" in m for m in lines), lines
    assert not any("xxxx" in m or "\n" in m for m in lines), lines
    status, text = await get(http, url)  # it is a miss again, and this time it works
    assert status == 200 and text.encode("latin-1") == want
    assert fake.count(door) == 2


@pytest.fixture
async def many_headers() -> AsyncIterator[str]:
    """A server that answers every request with 200 header fields: its base URL."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        fields = "".join(f"X-Field-{i}: {i}\r\n" for i in range(200))
        writer.write(f"HTTP/1.1 200 OK\r\n{fields}Content-Length: 2\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/archive/"
    server.close()
    await server.wait_closed()


async def test_too_many_header_fields_is_one_line_and_not_stored(
    many_headers: str, make_proxy: MakeProxy, http: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(upstreams=(many_headers,))
    status, text = await get(http, proxy.archive_url("debian", RUNS[0], POOL))
    assert status == 502 and text.count("\n") == 1
    assert text.startswith("upstream error: upstream sent ") and "X-Field" not in text
    assert text.endswith(": refused, nothing stored\n"), text
    assert stored_files(proxy.server.config.cache_dir) == []
